//! The cassette store: a small trait and its sled implementation, with integrity.
//!
//! - `codec`: stored events (key, checksummed value) and a cassette's digest.
//! - `sled`: [`SledStore`] — tree `meta` (by name: metadata, epoch, event count,
//!   digest, stamp) and tree `events` keyed `epoch seq`; a cassette's events live under
//!   an epoch of their own, so an import is staged and then published atomically.
//! - `verify`: the check every open runs (every event's checksum, each cassette's
//!   count and digest, the seal), `seal`: the witness file outside sled.
//! - `read`: the verified scan of a cassette's events and a reader of single events
//!   pinned to the epoch it was opened on (replay serves large cassettes from it).
//! - `open`: what sled's open errors mean, and waiting for a lock being released.
//! - `copy`: read-only commands open a copy, so they never make damage worse.
//! - `commit`: group commit for durable appends.

pub mod codec;
mod commit;
mod copy;
mod open;
mod read;
mod seal;
mod sled;
mod verify;

pub use self::sled::SledStore;
pub use codec::Digest;
pub use commit::Committer;

use serde::{Deserialize, Serialize};

use super::{Cassette, Event, Meta};

/// Store failures; `Locked`, `Corrupt` and `Damaged` make a command exit with 3.
#[derive(Debug, thiserror::Error, Clone)]
pub enum StoreError {
    #[error("store {path} is in use by another graphvcr process ({detail}); stop it or pass another --store")]
    Locked { path: String, detail: String },
    #[error("store {path} is unreadable ({detail}); move it aside and re-import your cassettes with `graphvcr cassette import cassettes/*.json`")]
    Corrupt { path: String, detail: String },
    #[error("{}", damage_message(.0))]
    Damaged(Vec<Damage>),
    #[error("store error: {0}")]
    Io(String),
    #[error("no cassette named `{0}` in the store")]
    Missing(String),
    #[error("this store was opened read-only")]
    ReadOnly,
}

impl StoreError {
    /// Whether the store (or a cassette a command needs) cannot be used: exit code 3.
    pub fn unusable(&self) -> bool {
        matches!(
            self,
            StoreError::Locked { .. } | StoreError::Corrupt { .. } | StoreError::Damaged(_)
        )
    }
}

/// A cassette whose stored events do not match its count and digest, or that is
/// missing or older than the seal says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub name: String,
    /// Events that are intact.
    pub readable: u64,
    /// Events the cassette had.
    pub expected: u64,
    /// The JSON file it was imported from or exported to, if any.
    pub file: Option<String>,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let file = self
            .file
            .clone()
            .unwrap_or_else(|| format!("cassettes/{}.json", self.name));
        write!(
            f,
            "cassette {} is damaged: {} of {} events readable; re-import it from its JSON file ({file}) or restore the store",
            self.name, self.readable, self.expected
        )
    }
}

fn damage_message(d: &[Damage]) -> String {
    let Some((first, rest)) = d.split_first() else {
        return "a cassette is damaged".into();
    };
    let mut s = first.to_string();
    if !rest.is_empty() {
        let others: Vec<String> = rest
            .iter()
            .map(|x| format!("{} ({} of {} events readable)", x.name, x.readable, x.expected))
            .collect();
        s.push_str(&format!("; also damaged: {}", others.join(", ")));
    }
    s
}

/// Where a cassette's JSON file lives and the hash of its content at the last import
/// or export: a file whose hash differs is imported again at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub path: String,
    pub hash: String,
}

/// A cassette as listed: metadata, number of events, file source.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub meta: Meta,
    pub events: u64,
    pub source: Option<Source>,
}

/// Events being written under a fresh epoch, not yet visible under any name.
#[derive(Debug)]
pub struct Staging {
    epoch: u64,
    count: u64,
    digest: Digest,
}

impl Staging {
    fn new(epoch: u64) -> Staging {
        Staging {
            epoch,
            count: 0,
            digest: Digest::default(),
        }
    }

    /// Events staged so far.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// Single events of one stored cassette, read when needed.
pub trait EventReader: Send + Sync + 'static {
    /// Event `seq`, verified against its checksum; an error when it is gone or damaged.
    fn event(&self, seq: u64) -> Result<Event, StoreError>;
}

/// A cassette streamed from the store: its metadata and a reader of its events.
pub struct Streamed {
    pub meta: Meta,
    pub reader: std::sync::Arc<dyn EventReader>,
}

/// A staged cassette to publish under its name.
#[derive(Debug)]
pub struct Publish {
    pub staging: Staging,
    pub meta: Meta,
    pub source: Option<Source>,
}

/// What the proxy needs from a store. Writes are buffered until `flush`.
pub trait Store: Send + Sync + 'static {
    fn list(&self) -> Result<Vec<Stored>, StoreError>;
    fn info(&self, name: &str) -> Result<Option<Stored>, StoreError>;
    /// A whole cassette, verified against its count and digest (`Damaged` otherwise).
    fn load(&self, name: &str) -> Result<Option<Cassette>, StoreError>;
    /// Visits every event of a cassette in seq order, verified as `load` verifies them
    /// (on `Damaged` some were visited: discard what was built from them), and returns
    /// its metadata and a reader of its events: a cassette served without being held.
    fn stream(&self, name: &str, visit: &mut dyn FnMut(Event)) -> Result<Option<Streamed>, StoreError>;
    /// What was derived from the cassette as it is now (`put_derived`; replay's
    /// prepared summary) and a reader of its events, without reading them; `None`
    /// when nothing was, or the cassette changed since.
    fn derived(&self, name: &str) -> Result<Option<(Vec<u8>, Streamed)>, StoreError>;
    /// Keeps `blob`, derived from the cassette as it is now, beside it (replaced by
    /// the next, dropped with the cassette, ignored once it changes).
    fn put_derived(&self, name: &str, blob: &[u8]) -> Result<(), StoreError>;
    /// One intact event.
    fn event(&self, name: &str, seq: u64) -> Result<Option<Event>, StoreError>;
    fn set_source(&self, name: &str, source: Option<Source>) -> Result<(), StoreError>;
    /// Appends (or overwrites) one event of an existing cassette.
    fn put_event(&self, name: &str, ev: &Event) -> Result<(), StoreError>;
    fn remove(&self, name: &str) -> Result<bool, StoreError>;
    /// Starts staging events under a fresh epoch.
    fn stage(&self) -> Result<Staging, StoreError>;
    fn stage_event(&self, staging: &mut Staging, ev: &Event) -> Result<(), StoreError>;
    /// Points each name at its staged events, all at once, and drops what they replace.
    fn publish(&self, staged: Vec<Publish>) -> Result<(), StoreError>;
    /// Drops staged events.
    fn discard(&self, staging: Staging) -> Result<(), StoreError>;
    /// The damaged cassettes found when the store was opened or since.
    fn damage(&self) -> Vec<Damage>;
    /// Makes every write so far durable, calls `durable` as soon as it is, then brings
    /// the seal up to date.
    fn flush_then(&self, durable: &mut dyn FnMut(&Result<(), StoreError>)) -> Result<(), StoreError>;

    /// Whether a write needs `flush_then` to become durable; a store that lives only
    /// as long as the process (`--store memory`) has nothing to make durable, so its
    /// writers need not wait on the flusher at all.
    fn flushes(&self) -> bool {
        true
    }

    /// Makes every write so far durable.
    fn flush(&self) -> Result<(), StoreError> {
        self.flush_then(&mut |_| {})
    }

    /// Replaces a cassette (metadata and all events) atomically.
    fn replace(&self, c: &Cassette, source: Option<Source>) -> Result<(), StoreError> {
        let mut staging = self.stage()?;
        for e in &c.events {
            if let Err(err) = self.stage_event(&mut staging, e) {
                let _ = self.discard(staging);
                return Err(err);
            }
        }
        self.publish(vec![Publish {
            staging,
            meta: c.meta.clone(),
            source,
        }])
    }
}

#[cfg(test)]
mod tests;
