//! Test doubles and helpers: a fake Graph over TLS (rcgen CA) that answers the calls API
//! and POSTs callback notifications the way Graph does (`fake_graph`, `pki`), a fake
//! bot (`fake_bot`), the server loop they share (`doubles`), the harness that runs
//! graphvcr in-process on 127.0.0.1:0 (`harness`), the real binary (`bin`), and a
//! client that trusts only graphvcr's CA, direct or through its proxy (`tls_client`).

pub mod bin;
pub mod doubles;
pub mod fake_bot;
pub mod fake_graph;
pub mod harness;
pub mod jwks;
pub mod pki;
pub mod tls_client;

pub use bin::*;
pub use doubles::ClosedPort;
pub use fake_bot::*;
pub use fake_graph::*;
pub use harness::*;
pub use tls_client::Via;
