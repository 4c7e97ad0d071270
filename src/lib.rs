//! graphvcr: a record/replay proxy for Microsoft Graph cloud-communications traffic.
//!
//! # The data's path through the code
//!
//! ```text
//!  record                                        replay
//!  bot ──REST──> server ─> app::GraphFace        bot ──REST──> server ─> app::GraphFace
//!                 (wire: body limits)                           │
//!                 │                                             v
//!                 v                                   replay::Replayer
//!            record::RecordFace                        ├─ replay::Sessions: header / live-id index / new (seed)
//!             ├─ upstream::HttpClient ──> Graph        ├─ replay::Prepared: matching::Index::fits(Probe)
//!             ├─ redact::event                         ├─ ids::Pairing -> IdTable (bind)
//!             └─ cassette::Store + Committer           ├─ ids::Rewriter (response, Location, notifications)
//!                (durable before the response)         └─ notify::Outbox ──POST──> bot (paced, retried)
//!  Graph ──POST──> notify::CallbackFace ──> bot
//!                   └─ record::Recorder::store_notification (follows settled, redacted, stored)
//!
//!  cassettes/*.json <── cassette::json (import/export) ──> cassette::SledStore
//! ```
//!
//! Module map: `graph` and `ids` hold Graph knowledge (paths, header policy, id
//! forms); `server`, `upstream` and `wire` are HTTP plumbing that knows nothing about
//! Graph; `matching`, `replay`, `record` and `notify` are the two modes; `cassette`
//! is the model, interchange and store; `app` wires it all and `cli`/`config` turn the
//! command line into settings. `admin` serves `/_graphvcr/`.

pub mod admin;
pub mod app;
pub mod cassette;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod error;
pub mod graph;
pub mod ids;
pub mod matching;
pub mod notify;
pub mod record;
pub mod redact;
pub mod replay;
pub mod server;
pub mod upstream;
pub mod wire;
