//! The check every open runs: each stored event against its checksum, each cassette
//! against its event count and digest, and the metadata against the seal (a cassette
//! missing, or older than the seal vouches for, was lost by sled's recovery).

use std::collections::{BTreeMap, HashMap};

use super::codec::{self, Digest};
use super::seal::{Seal, SealEntry};
use super::sled::MetaRecord;
use super::{Damage, StoreError};

/// What an open found.
pub(super) struct Verified {
    pub records: BTreeMap<String, MetaRecord>,
    pub damaged: BTreeMap<String, Damage>,
    /// Epochs no cassette points at (an import or a removal cut short).
    pub orphans: Vec<u64>,
    pub next_epoch: u64,
    pub next_stamp: u64,
    /// What the seal keeps vouching for: the old entry of a damaged cassette (so the
    /// damage stays reported), the current state of every other.
    pub seal: Seal,
}

#[derive(Default)]
struct Tally {
    intact: u64,
    bad: u64,
    digest: Digest,
}

/// Every event, in key order; stops at the first error the iterator returns.
fn tally(events: &::sled::Tree) -> (HashMap<u64, Tally>, Option<u64>) {
    let mut out: HashMap<u64, Tally> = HashMap::new();
    let mut last = 0;
    for kv in events.iter() {
        let Ok((k, v)) = kv else {
            return (out, Some(last));
        };
        let Some((epoch, seq)) = codec::parse_key(&k) else {
            continue;
        };
        last = epoch;
        let t = out.entry(epoch).or_default();
        match codec::verify(seq, &v) {
            Some(sum) => {
                t.intact += 1;
                t.digest.toggle(&sum);
            }
            None => t.bad += 1,
        }
    }
    (out, None)
}

pub(super) fn entry_of(r: &MetaRecord) -> SealEntry {
    SealEntry {
        stamp: r.stamp,
        count: r.count,
        digest: r.digest.clone(),
        file: r.source.as_ref().map(|s| s.path.clone()),
    }
}

/// Every record in tree `meta`; the names whose record does not decode, apart.
fn read_records(meta: &::sled::Tree, path: &str) -> Result<(BTreeMap<String, MetaRecord>, Vec<String>), StoreError> {
    let mut records = BTreeMap::new();
    let mut undecodable = Vec::new();
    for kv in meta.iter() {
        let (k, v) = kv.map_err(|e| StoreError::Corrupt {
            path: path.to_string(),
            detail: e.to_string(),
        })?;
        let name = String::from_utf8_lossy(&k).into_owned();
        match serde_json::from_slice::<MetaRecord>(&v) {
            Ok(r) => {
                records.insert(name, r);
            }
            Err(_) => undecodable.push(name),
        }
    }
    Ok((records, undecodable))
}

/// A record against its events and its seal entry: `None` when whole.
fn judge(name: &str, r: &MetaRecord, t: Option<&Tally>, incomplete: bool, old: Option<&SealEntry>) -> Option<Damage> {
    let intact = t.map_or(0, |t| t.intact);
    let whole = !incomplete
        && t.map_or(0, |t| t.bad) == 0
        && intact == r.count
        && Digest::from_hex(&r.digest) == Some(t.map(|t| t.digest).unwrap_or_default());
    let behind = old.is_some_and(|s| r.stamp < s.stamp || (r.stamp == s.stamp && !s.same(&entry_of(r))));
    if whole && !behind {
        return None;
    }
    let expected = r.count.max(old.map_or(0, |s| s.count));
    Some(Damage {
        name: name.to_string(),
        readable: intact.min(expected),
        expected,
        file: r
            .source
            .as_ref()
            .map(|s| s.path.clone())
            .or_else(|| old.and_then(|s| s.file.clone())),
    })
}

/// Reads and checks the whole store.
pub(super) fn verify(
    meta: &::sled::Tree,
    events: &::sled::Tree,
    sealed: Seal,
    path: &str,
) -> Result<Verified, StoreError> {
    let (records, undecodable) = read_records(meta, path)?;
    let (tallies, stopped_at) = tally(events);
    let mut damaged = BTreeMap::new();
    let mut seal = Seal::new();
    for (name, r) in &records {
        let old = sealed.get(name);
        let incomplete = stopped_at.is_some_and(|e| r.epoch >= e);
        match judge(name, r, tallies.get(&r.epoch), incomplete, old) {
            None => {
                seal.insert(name.clone(), entry_of(r));
            }
            Some(d) => {
                if let Some(s) = old {
                    seal.insert(name.clone(), s.clone());
                }
                damaged.insert(name.clone(), d);
            }
        }
    }
    let lost = sealed.keys().filter(|n| !records.contains_key(*n)).cloned();
    for name in lost.chain(undecodable).collect::<Vec<_>>() {
        let old = sealed.get(&name);
        if let Some(s) = old {
            seal.insert(name.clone(), s.clone());
        }
        let d = Damage {
            name: name.clone(),
            readable: 0,
            expected: old.map_or(0, |s| s.count),
            file: old.and_then(|s| s.file.clone()),
        };
        damaged.insert(name, d);
    }
    let referenced: std::collections::HashSet<u64> = records.values().map(|r| r.epoch).collect();
    let orphans = tallies.keys().copied().filter(|e| !referenced.contains(e)).collect();
    let next_epoch = tallies.keys().chain(referenced.iter()).max().map_or(1, |m| m + 1);
    let next_stamp = records
        .values()
        .map(|r| r.stamp)
        .chain(sealed.values().map(|s| s.stamp))
        .max()
        .map_or(1, |m| m + 1);
    Ok(Verified {
        records,
        damaged,
        orphans,
        next_epoch,
        next_stamp,
        seal,
    })
}
