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
    /// How many bytes of events the check read.
    pub read_bytes: u64,
}

#[derive(Default)]
struct Tally {
    intact: u64,
    bad: u64,
    digest: Digest,
    bytes: u64,
    /// The last event read (the highest seq) and its checksum, when intact.
    last: Option<(u64, codec::Sum)>,
}

impl Tally {
    /// This tally without a torn append: the event one past what `r` counts, whose
    /// record a crash kept from being written (an append writes its event, then its
    /// record: `SledStore::put_event`). It was never answered (answers wait for the
    /// flush after both), so it is dropped rather than taken for damage.
    fn without_torn_append(&self, r: &MetaRecord) -> Option<(Tally, u64)> {
        let (seq, sum) = self.last?;
        let mut digest = self.digest;
        digest.toggle(&sum);
        let torn = self.bad == 0 && seq == r.count && self.intact == r.count + 1;
        (torn && Digest::from_hex(&r.digest) == Some(digest)).then(|| {
            let t = Tally {
                intact: r.count,
                bad: 0,
                digest,
                bytes: self.bytes,
                last: None,
            };
            (t, seq)
        })
    }
}

/// Every event, in two halves of the key space read at once (verifying each event's
/// checksum is most of an open's work); what each half found, and the epoch from
/// which events may be missing when an iterator failed.
fn tally(events: &::sled::Tree) -> (HashMap<u64, Tally>, Option<u64>) {
    let bound = |kv: ::sled::Result<Option<(::sled::IVec, ::sled::IVec)>>| {
        let (k, _) = kv.ok().flatten()?;
        <[u8; 16]>::try_from(&k[..]).ok().map(u128::from_be_bytes)
    };
    let halves = bound(events.first())
        .zip(bound(events.last()))
        .filter(|(a, b)| b > a)
        .map(|(a, b)| a + (b - a) / 2 + 1);
    let Some(mid) = halves else {
        return tally_range(events.iter(), 0);
    };
    let split = mid.to_be_bytes();
    let (lo, hi) = std::thread::scope(|s| {
        let hi = s.spawn(|| tally_range(events.range(split..), (mid >> 64) as u64));
        (tally_range(events.range(..split), 0), hi.join())
    });
    // a half that panicked is read again here
    let hi = hi.unwrap_or_else(|_| tally_range(events.range(split..), (mid >> 64) as u64));
    let (mut out, lo_stop) = lo;
    for (epoch, t) in hi.0 {
        let o = out.entry(epoch).or_default();
        o.intact += t.intact;
        o.bad += t.bad;
        o.bytes += t.bytes;
        o.digest.toggle_all(&t.digest);
        // the upper half's keys come after the lower half's
        if t.last.is_some() || t.bad > 0 {
            o.last = t.last;
        }
    }
    // a failure in the lower half leaves everything after it unread
    (out, lo_stop.or(hi.1))
}

/// The events of one key range, in order, from epoch `from` on; stops at the first
/// error the iterator returns (and says at which epoch).
fn tally_range(events: ::sled::Iter, from: u64) -> (HashMap<u64, Tally>, Option<u64>) {
    let mut out: HashMap<u64, Tally> = HashMap::new();
    let mut last = from;
    for kv in events {
        let Ok((k, v)) = kv else {
            return (out, Some(last));
        };
        let Some((epoch, seq)) = codec::parse_key(&k) else {
            continue;
        };
        last = epoch;
        let t = out.entry(epoch).or_default();
        t.bytes += v.len() as u64;
        t.last = codec::verify(seq, &v).map(|sum| (seq, sum));
        match t.last {
            Some((_, sum)) => {
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

/// [`judge`], after dropping a torn append (the one damage a crash may leave that lost
/// nothing: see [`Tally::without_torn_append`]) when that makes the cassette whole.
fn settle(
    name: &str,
    r: &MetaRecord,
    t: Option<&Tally>,
    incomplete: bool,
    old: Option<&SealEntry>,
    events: &::sled::Tree,
) -> Option<Damage> {
    let damage = judge(name, r, t, incomplete, old)?;
    let Some((whole, seq)) = t.and_then(|t| t.without_torn_append(r)) else {
        return Some(damage);
    };
    if judge(name, r, Some(&whole), incomplete, old).is_some() {
        return Some(damage);
    }
    let dropped = events.remove(codec::key(r.epoch, seq)).and_then(|_| events.flush());
    match dropped {
        Ok(_) => {
            tracing::warn!(
                cassette = name,
                seq,
                "dropped an event written just before a crash (never answered)"
            );
            None
        }
        Err(_) => Some(damage),
    }
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
        match settle(name, r, tallies.get(&r.epoch), incomplete, old, events) {
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
    let read_bytes = tallies.values().map(|t| t.bytes).sum();
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
        read_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cassette::{Body, Event};

    /// The tally read in two halves at once is the tally read in one pass: per epoch,
    /// the same intact and bad counts and the same digest.
    #[test]
    fn two_halves_tally_as_one_pass() {
        let db = ::sled::Config::new().temporary(true).open().unwrap();
        let events = db.open_tree("events").unwrap();
        for (epoch, n) in [(1u64, 7u64), (2, 1), (5, 40)] {
            for seq in 0..n {
                let ev = Event::test_exchange(seq, "GET", &format!("/v1.0/communications/calls/{seq}"), Body::Empty);
                let (mut v, _) = codec::encode(&ev).unwrap();
                if epoch == 5 && seq == 3 {
                    // a damaged event counts as bad on either reading
                    let last = v.len() - 1;
                    v[last] ^= 0xff;
                }
                events.insert(codec::key(epoch, seq), v).unwrap();
            }
        }
        let summary = |t: &HashMap<u64, Tally>| {
            let mut v: Vec<(u64, u64, u64, String, Option<u64>)> = t
                .iter()
                .map(|(e, t)| (*e, t.intact, t.bad, t.digest.hex(), t.last.map(|(seq, _)| seq)))
                .collect();
            v.sort();
            v
        };
        let (halves, stop) = tally(&events);
        let (whole, whole_stop) = tally_range(events.iter(), 0);
        assert_eq!((stop, whole_stop), (None, None));
        assert_eq!(summary(&halves), summary(&whole));
        assert_eq!(whole.get(&5).map(|t| (t.intact, t.bad)), Some((39, 1)));
        assert_eq!(
            whole.get(&1).and_then(|t| t.last).map(|(seq, _)| seq),
            Some(6),
            "the last event read"
        );
    }
}
