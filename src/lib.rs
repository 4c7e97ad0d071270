//! graphvcr: a record/replay proxy for Microsoft Graph cloud-communications traffic.
//!
//! # The data's path through the code
//!
//! ```text
//!  record                                          replay
//!  bot ──REST──> http::server ─> app::faces        bot ──REST──> http::server ─> app::faces
//!                 (GraphFace: admin | mode)                       │ (body limits, admin)
//!                 │                                               v
//!                 v                                     replay::Replayer (live body: cassette::tree, borrowed)
//!            record::RecordFace                          ├─ replay::sessions: header / live-id index / new (seed)
//!             ├─ http::client ──> Graph                  ├─ choose: replay::Prepared + matching::Index::fits
//!             └─ record::Recorder                        ├─ bind: ids::Pairing -> session's ids::IdTable
//!                ├─ redact::event                        ├─ respond: ids::Rewriter, replay::headers
//!                └─ cassette::Store + Committer          └─ replay::callbacks ─> notify::Outbox ──POST──> bot
//!                   (durable before the response)                              (paced, retried)
//!  Graph ──POST──> record::CallbackFace ──> bot
//!                   └─ record::Recorder (follows settled, redacted, stored)
//!
//!  cassettes/*.json <── app::cassettes, cassette::json ──> cassette::SledStore
//! ```
//!
//! # Module map
//!
//! - Graph knowledge: `graph` (paths, header policy, member rules, error bodies) and
//!   `ids` (`token` lexing, `mint`, `table` binding, `rewrite`, `walk`).
//! - HTTP plumbing, knowing no Graph: `http` (`server`, `tls`, `proxy`, `client`, `wire`).
//! - Identity: `identity` (local CA and signing key, offline tokens, OpenID/JWKS
//!   documents, the callback-token claims policy).
//! - The two modes: `record` (recorder, Graph face, callback face) and `replay`
//!   (replayer, sessions, prepared cassettes — held, or served from the store with
//!   their summary kept there — notification building), with `matching`
//!   and `notify` (delivery). Replay and delivery never import record.
//! - Cassettes: `cassette` (model, JSON interchange, sled store, and `tree`: one view
//!   over recorded `serde_json::Value`s and live bodies read borrowed from the request
//!   bytes, so each JSON walk is written once); `redact` (secrets);
//!   `drift` (what changed between two recordings of one scenario: `graphvcr diff`).
//! - Wiring: `app` (modes, faces, cassette files), `admin` (`/_graphvcr/`), `cli` and
//!   `config` (command line into settings), `demo`, `bundled` (the seed's cassettes,
//!   compiled in).
//! - Fault injection: `faults` (the spec language, seeded chaos); `replay::faults`
//!   applies them in a session.
//! - Small shared pieces: `clock` (injected time), `error` (who failed), `jsonstr`
//!   (JSON string escaping, eight bytes at a time), `ring` (bounded report tails),
//!   `sync` (poison-tolerant locking and session turns), `xml` (the JUnit reports'
//!   escaping and envelope).

pub mod admin;
pub mod app;
pub mod bundled;
pub mod cassette;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod drift;
pub mod error;
pub mod faults;
pub mod graph;
pub mod hash;
pub mod http;
pub mod identity;
pub mod ids;
pub mod jsonstr;
pub mod matching;
pub mod notify;
pub mod record;
pub mod redact;
pub mod replay;
pub mod ring;
pub mod scrub;
pub mod sync;
pub mod xml;
