//! HTTP plumbing that knows nothing about Graph: the accept loop (`server`), the
//! outgoing pooled client that reaches Graph and the bot (`client`), per-connection
//! bookkeeping (`conn`: activity, idle watch, the timed request body), and shared wire
//! helpers (`wire`: bodies, limits, hop-by-hop headers).

pub mod client;
pub mod conn;
pub mod server;
pub mod wire;
