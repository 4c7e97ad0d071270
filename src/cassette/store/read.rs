//! Reading a stored cassette's events: the verified scan behind `load` and `stream`,
//! [`SledReader`], which reads single events of the epoch it was opened on, and what
//! was derived from a cassette (tree `derived`), tied to its epoch and digest.

use sha2::{Digest as _, Sha256};

use super::codec::{self, Digest};
use super::{EventReader, StoreError};
use crate::cassette::Event;

/// What a scan of one epoch found.
pub(super) struct Scanned {
    /// Events visited, all intact, with seqs 0, 1, ...
    pub count: u64,
    pub digest: Digest,
    /// No event failed to read, decode or follow its predecessor.
    pub whole: bool,
}

/// Visits the events of `epoch` in seq order, stopping at the first that is not
/// intact (or does not follow the one before).
pub(super) fn scan(events: &sled::Tree, epoch: u64, visit: &mut dyn FnMut(Event)) -> Scanned {
    let mut s = Scanned {
        count: 0,
        digest: Digest::default(),
        whole: true,
    };
    for kv in events.scan_prefix(codec::epoch_prefix(epoch)) {
        let decoded = kv.map_err(|e| e.to_string()).and_then(|(k, v)| {
            let (_, seq) = codec::parse_key(&k).ok_or("bad key")?;
            codec::decode(seq, &v)
        });
        match decoded {
            Ok((ev, sum)) if ev.seq == s.count => {
                s.digest.toggle(&sum);
                s.count += 1;
                visit(ev);
            }
            _ => {
                s.whole = false;
                break;
            }
        }
    }
    s
}

/// Reads events of one epoch of one cassette: what it read when opened stays what it
/// reads, whatever is imported under the name later (a replaced epoch reads as gone).
pub(super) struct SledReader {
    events: sled::Tree,
    epoch: u64,
    name: String,
}

impl SledReader {
    pub fn new(events: sled::Tree, epoch: u64, name: &str) -> SledReader {
        SledReader {
            events,
            epoch,
            name: name.to_string(),
        }
    }
}

/// Event `seq` of `epoch`, if stored, verified against its checksum.
pub(super) fn event(events: &sled::Tree, epoch: u64, seq: u64, name: &str) -> Result<Option<Event>, StoreError> {
    let Some(value) = events
        .get(codec::key(epoch, seq))
        .map_err(|e| StoreError::Io(e.to_string()))?
    else {
        return Ok(None);
    };
    codec::decode(seq, &value)
        .map(|(e, _)| Some(e))
        .map_err(|e| StoreError::Io(format!("cassette `{name}`: {e}")))
}

impl EventReader for SledReader {
    fn event(&self, seq: u64) -> Result<Event, StoreError> {
        event(&self.events, self.epoch, seq, &self.name)?.ok_or_else(|| {
            StoreError::Io(format!(
                "event {seq} of cassette `{}` is no longer in the store (the cassette was replaced or removed while it was served)",
                self.name
            ))
        })
    }
}

/// A derived value: `epoch(u64 BE) digest(hex, 32) checksum(32, of the blob) blob`.
const DERIVED_HEAD: usize = 8 + 32 + 32;

fn blob_sum(blob: &[u8]) -> [u8; 32] {
    Sha256::digest(blob).into()
}

/// The blob derived from cassette `name` at `epoch` with `digest`, if one was and is
/// intact.
pub(super) fn derived(tree: &sled::Tree, name: &str, epoch: u64, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(v) = tree.get(name.as_bytes()).map_err(|e| StoreError::Io(e.to_string()))? else {
        return Ok(None);
    };
    if v.len() < DERIVED_HEAD || v[..8] != epoch.to_be_bytes() || &v[8..40] != digest.as_bytes() {
        return Ok(None);
    }
    let blob = &v[DERIVED_HEAD..];
    Ok((v[40..DERIVED_HEAD] == blob_sum(blob)).then(|| blob.to_vec()))
}

/// Keeps `blob`, derived from cassette `name` at `epoch` with `digest`.
pub(super) fn put_derived(
    tree: &sled::Tree,
    name: &str,
    epoch: u64,
    digest: &str,
    blob: &[u8],
) -> Result<(), StoreError> {
    if digest.len() != 32 {
        return Err(StoreError::Io(format!(
            "cassette `{name}` has a digest of an unknown form"
        )));
    }
    let mut v = Vec::with_capacity(DERIVED_HEAD + blob.len());
    v.extend_from_slice(&epoch.to_be_bytes());
    v.extend_from_slice(digest.as_bytes());
    v.extend_from_slice(&blob_sum(blob));
    v.extend_from_slice(blob);
    tree.insert(name.as_bytes(), v)
        .map_err(|e| StoreError::Io(e.to_string()))?;
    Ok(())
}
