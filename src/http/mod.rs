//! HTTP plumbing that knows nothing about Graph: the accept loop (`server`), the
//! outgoing pooled client that reaches Graph and the bot (`client`), and shared wire
//! helpers (`wire`: bodies, limits, hop-by-hop headers).

pub mod client;
pub mod server;
pub mod wire;
