//! HTTP plumbing that knows nothing about Graph: the accept loop (`server`), server
//! TLS with a local CA's leaves per SNI name (`tls`), the forward proxy (`proxy`:
//! CONNECT, interception, tunnels), the outgoing pooled client that reaches Graph and
//! the bot (`client`), per-connection bookkeeping (`conn`: activity, idle watch, the
//! timed request body), and shared wire helpers (`wire`: bodies, limits, hop-by-hop
//! headers).

pub mod client;
pub mod conn;
pub mod proxy;
pub mod server;
pub mod tls;
pub mod wire;
