//! [`SledStore`]: the sled-backed store. Tree `meta` holds a record per cassette
//! (metadata, source, epoch, count, digest, stamp); tree `events` holds events keyed
//! `epoch seq`; tree `derived` what replay derived from a cassette (by name). Every
//! write to a cassette updates its record in the same transaction; the records are
//! also kept in memory, so listing never touches a damaged tree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sled::Transactional;

use super::codec::{self, Digest};
use super::copy::Snapshot;
use super::open::{handles, patient, Handles, REOPEN_AFTER};
use super::read::{self, SledReader};
use super::seal::{self, Seal};
use super::verify::{self, Verified};
use super::{Damage, Publish, Source, Staging, Store, StoreError, Stored, Streamed};
use crate::cassette::{Cassette, Event, Meta};
use crate::sync::lock;

/// A cassette's record in tree `meta`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct MetaRecord {
    #[serde(flatten)]
    pub meta: Meta,
    #[serde(default)]
    pub source: Option<Source>,
    /// Which events are this cassette's.
    pub epoch: u64,
    pub count: u64,
    /// Hex XOR of the events' checksums.
    pub digest: String,
    /// Store-wide stamp of the last change.
    pub stamp: u64,
}

/// Everything writes change, behind one lock.
struct Writes {
    records: BTreeMap<String, MetaRecord>,
    damaged: BTreeMap<String, Damage>,
    seal: Seal,
    /// Bumped whenever `seal` changes.
    version: u64,
    next_epoch: u64,
    next_stamp: u64,
}

impl Writes {
    fn stamp(&mut self) -> u64 {
        self.next_stamp += 1;
        self.next_stamp - 1
    }

    fn seal_record(&mut self, name: &str, r: &MetaRecord) {
        self.seal.insert(name.to_string(), verify::entry_of(r));
        self.version += 1;
    }
}

/// The sled-backed store.
pub struct SledStore {
    db: sled::Db,
    meta: sled::Tree,
    events: sled::Tree,
    /// Replay's prepared summaries, by name (`Store::derived`).
    derived: sled::Tree,
    dir: PathBuf,
    writes: Mutex<Writes>,
    /// The version of the seal last written.
    sealed: Mutex<u64>,
    /// Set for a read-only command's copy: the copy (removed on drop) and the lock on
    /// the original.
    snapshot: Option<Snapshot>,
    /// `--store memory`: removed on exit, so a commit never waits for the disk.
    ephemeral: bool,
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

fn tx_err(e: sled::transaction::TransactionError<()>) -> StoreError {
    io(format!("{e:?}"))
}

impl SledStore {
    /// Opens (or creates) the store and verifies it; damaged cassettes are listed by
    /// [`Store::damage`]. sled can panic on corrupt files, so the open is guarded and
    /// every failure says how to recover.
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        patient(|| Self::open_at(path, path, None))
    }

    /// Opens a store that lives only as long as this process (`--store memory`):
    /// commits are not flushed to disk, since nothing of it outlives the run.
    pub fn open_ephemeral(path: &Path) -> Result<SledStore, StoreError> {
        Ok(SledStore {
            ephemeral: true,
            ..Self::open(path)?
        })
    }

    /// Opens a copy of the store for a read-only command, holding the original's lock
    /// meanwhile: sled repairs a damaged log when it opens it, and a read-only command
    /// must leave the evidence as it found it. A store that does not exist opens empty.
    pub fn open_read_only(path: &Path) -> Result<SledStore, StoreError> {
        let snap = patient(|| Snapshot::take(path))?;
        let copy = snap.path().to_path_buf();
        Self::open_at(&copy, path, Some(snap))
    }

    fn open_at(path: &Path, shown: &Path, snapshot: Option<Snapshot>) -> Result<SledStore, StoreError> {
        let shown = shown.display().to_string();
        let sealed = seal::read(path)?;
        let sealed_names: Vec<String> = sealed.keys().cloned().collect();
        let p = path.to_path_buf();
        let s2 = shown.clone();
        let opened = std::panic::catch_unwind(move || {
            let h = handles(&p, &s2)?;
            let v = verify::verify(&h.meta, &h.events, sealed, &s2)?;
            if v.read_bytes <= REOPEN_AFTER {
                return Ok::<_, StoreError>((h, v));
            }
            drop(h);
            Ok((handles(&p, &s2)?, v))
        });
        let (
            Handles {
                db,
                meta,
                events,
                derived,
            },
            v,
        ) = Self::opened(opened, shown, &sealed_names)?;
        let Verified {
            records,
            damaged,
            orphans,
            next_epoch,
            next_stamp,
            seal,
            ..
        } = v;
        let clean = damaged.is_empty();
        let store = SledStore {
            db,
            meta,
            events,
            derived,
            dir: path.to_path_buf(),
            writes: Mutex::new(Writes {
                records,
                damaged,
                seal,
                version: 1,
                next_epoch,
                next_stamp,
            }),
            sealed: Mutex::new(0),
            snapshot,
            ephemeral: false,
        };
        if clean && store.snapshot.is_none() {
            for epoch in orphans {
                store.drop_epoch(epoch)?;
            }
        }
        Ok(store)
    }

    /// What the guarded open gave: a store it cannot read names what its seal held.
    fn opened(
        opened: std::thread::Result<Result<(Handles, Verified), StoreError>>,
        shown: String,
        sealed_names: &[String],
    ) -> Result<(Handles, Verified), StoreError> {
        let held = |detail: String| match sealed_names.is_empty() {
            true => detail,
            false => format!("{detail}; it held {}", sealed_names.join(", ")),
        };
        match opened {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(StoreError::Corrupt { path, detail })) => Err(StoreError::Corrupt {
                path,
                detail: held(detail),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::Corrupt {
                path: shown,
                detail: held("sled panicked while reading it".to_string()),
            }),
        }
    }

    fn writable(&self) -> Result<std::sync::MutexGuard<'_, Writes>, StoreError> {
        if self.snapshot.is_some() {
            return Err(StoreError::ReadOnly);
        }
        Ok(lock(&self.writes))
    }

    fn damaged(w: &Writes, name: &str) -> Result<(), StoreError> {
        w.damaged
            .get(name)
            .map_or(Ok(()), |d| Err(StoreError::Damaged(vec![d.clone()])))
    }

    /// Removes every event of `epoch`, a batch at a time.
    fn drop_epoch(&self, epoch: u64) -> Result<(), StoreError> {
        loop {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for k in self.events.scan_prefix(codec::epoch_prefix(epoch)).keys().take(1024) {
                batch.remove(k.map_err(io)?);
                n += 1;
            }
            if n == 0 {
                return Ok(());
            }
            self.events.apply_batch(batch).map_err(io)?;
        }
    }

    fn stored(r: &MetaRecord) -> Stored {
        Stored {
            meta: r.meta.clone(),
            events: r.count,
            source: r.source.clone(),
        }
    }

    fn record_bytes(r: &MetaRecord) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(r).map_err(io)
    }

    /// Visits every event of a record, verified: `Damaged` (and the cassette marked
    /// so) when one is not intact or the count or digest is not the record's.
    fn read_events(&self, name: &str, r: &MetaRecord, visit: &mut dyn FnMut(Event)) -> Result<(), StoreError> {
        let s = read::scan(&self.events, r.epoch, visit);
        if s.whole && s.count == r.count && Digest::from_hex(&r.digest) == Some(s.digest) {
            return Ok(());
        }
        let d = Damage {
            name: name.to_string(),
            readable: s.count,
            expected: r.count,
            file: r.source.as_ref().map(|s| s.path.clone()),
        };
        lock(&self.writes).damaged.insert(name.to_string(), d.clone());
        Err(StoreError::Damaged(vec![d]))
    }

    /// A cassette's metadata and a reader of its record's epoch.
    fn streamed(&self, name: &str, r: MetaRecord) -> Streamed {
        let reader = Arc::new(SledReader::new(self.events.clone(), r.epoch, name));
        Streamed { meta: r.meta, reader }
    }

    /// The record of a cassette that is not known damaged.
    fn readable(&self, name: &str) -> Result<Option<MetaRecord>, StoreError> {
        let w = lock(&self.writes);
        Self::damaged(&w, name)?;
        Ok(w.records.get(name).cloned())
    }
}

impl Store for SledStore {
    fn list(&self) -> Result<Vec<Stored>, StoreError> {
        Ok(lock(&self.writes).records.values().map(Self::stored).collect())
    }

    fn info(&self, name: &str) -> Result<Option<Stored>, StoreError> {
        Ok(lock(&self.writes).records.get(name).map(Self::stored))
    }

    fn load(&self, name: &str) -> Result<Option<Cassette>, StoreError> {
        let Some(r) = self.readable(name)? else {
            return Ok(None);
        };
        let mut events = Vec::new();
        self.read_events(name, &r, &mut |e| events.push(e))?;
        Ok(Some(Cassette { meta: r.meta, events }))
    }

    fn stream(&self, name: &str, visit: &mut dyn FnMut(Event)) -> Result<Option<Streamed>, StoreError> {
        let Some(r) = self.readable(name)? else {
            return Ok(None);
        };
        self.read_events(name, &r, visit)?;
        Ok(Some(self.streamed(name, r)))
    }

    fn derived(&self, name: &str) -> Result<Option<(Vec<u8>, Streamed)>, StoreError> {
        let Some(r) = self.readable(name)? else {
            return Ok(None);
        };
        let Some(blob) = read::derived(&self.derived, name, r.epoch, &r.digest)? else {
            return Ok(None);
        };
        Ok(Some((blob, self.streamed(name, r))))
    }

    fn put_derived(&self, name: &str, blob: &[u8]) -> Result<(), StoreError> {
        let w = self.writable()?;
        let Some(r) = w.records.get(name) else {
            return Ok(());
        };
        read::put_derived(&self.derived, name, r.epoch, &r.digest, blob)
    }

    fn event(&self, name: &str, seq: u64) -> Result<Option<Event>, StoreError> {
        let Some(epoch) = lock(&self.writes).records.get(name).map(|r| r.epoch) else {
            return Ok(None);
        };
        read::event(&self.events, epoch, seq, name)
    }

    fn set_source(&self, name: &str, source: Option<Source>) -> Result<(), StoreError> {
        let mut w = self.writable()?;
        let Some(r) = w.records.get_mut(name) else {
            return Ok(());
        };
        let mut updated = r.clone();
        updated.source = source;
        self.meta
            .insert(name.as_bytes(), Self::record_bytes(&updated)?)
            .map_err(io)?;
        *r = updated.clone();
        if !w.damaged.contains_key(name) {
            w.seal_record(name, &updated);
        }
        Ok(())
    }

    fn put_event(&self, name: &str, ev: &Event) -> Result<(), StoreError> {
        let (value, sum) = codec::encode(ev).map_err(io)?;
        let mut w = self.writable()?;
        Self::damaged(&w, name)?;
        let mut r = w
            .records
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::Missing(name.to_string()))?;
        let key = codec::key(r.epoch, ev.seq);
        let mut digest = Digest::from_hex(&r.digest).unwrap_or_default();
        // the next seq is new: what its key may hold was never counted (overwritten)
        let appending = ev.seq == r.count;
        let old = if appending {
            None
        } else {
            self.events.get(key).map_err(io)?
        };
        match &old {
            Some(old) => digest.toggle(&codec::claimed(old).unwrap_or_default()),
            None => r.count += 1,
        }
        digest.toggle(&sum);
        r.digest = digest.hex();
        r.stamp = w.stamp();
        let rec = Self::record_bytes(&r)?;
        if appending {
            // two writes, not a batch (see NOTES); a crash between: a torn append (`verify`)
            self.events.insert(&key[..], value.as_slice()).map_err(io)?;
            self.meta.insert(name.as_bytes(), rec.as_slice()).map_err(io)?;
        } else {
            (&self.meta, &self.events)
                .transaction(|(tm, te)| {
                    te.insert(&key[..], value.as_slice())?;
                    tm.insert(name.as_bytes(), rec.as_slice())?;
                    Ok(())
                })
                .map_err(tx_err)?;
        }
        w.seal_record(name, &r);
        w.records.insert(name.to_string(), r);
        Ok(())
    }

    fn remove(&self, name: &str) -> Result<bool, StoreError> {
        let mut w = self.writable()?;
        let Some(r) = w.records.get(name).cloned() else {
            return Ok(false);
        };
        // the seal first: a crash after the removal is durable must not look like damage
        if w.seal.remove(name).is_some() {
            w.version += 1;
            let mut sealed = lock(&self.sealed);
            seal::write(&self.dir, &w.seal)?;
            *sealed = w.version;
        }
        self.meta.remove(name.as_bytes()).map_err(io)?;
        self.derived.remove(name.as_bytes()).map_err(io)?;
        w.records.remove(name);
        w.damaged.remove(name);
        drop(w);
        self.drop_epoch(r.epoch)?;
        Ok(true)
    }

    fn stage(&self) -> Result<Staging, StoreError> {
        let mut w = self.writable()?;
        w.next_epoch += 1;
        Ok(Staging::new(w.next_epoch - 1))
    }

    fn stage_event(&self, staging: &mut Staging, ev: &Event) -> Result<(), StoreError> {
        if self.snapshot.is_some() {
            return Err(StoreError::ReadOnly);
        }
        let (value, sum) = codec::encode(ev).map_err(io)?;
        match self
            .events
            .insert(codec::key(staging.epoch, ev.seq), value)
            .map_err(io)?
        {
            Some(old) => staging.digest.toggle(&codec::claimed(&old).unwrap_or_default()),
            None => staging.count += 1,
        }
        staging.digest.toggle(&sum);
        Ok(())
    }

    fn publish(&self, staged: Vec<Publish>) -> Result<(), StoreError> {
        let mut w = self.writable()?;
        let mut updates = Vec::with_capacity(staged.len());
        for p in staged {
            let r = MetaRecord {
                meta: p.meta,
                source: p.source,
                epoch: p.staging.epoch,
                count: p.staging.count,
                digest: p.staging.digest.hex(),
                stamp: w.stamp(),
            };
            let bytes = Self::record_bytes(&r)?;
            updates.push((r, bytes));
        }
        self.meta
            .transaction(|tm| {
                for (r, bytes) in &updates {
                    tm.insert(r.meta.name.as_bytes(), bytes.as_slice())?;
                }
                Ok(())
            })
            .map_err(tx_err)?;
        let mut replaced = Vec::new();
        for (r, _) in updates {
            let name = r.meta.name.clone();
            w.seal_record(&name, &r);
            w.damaged.remove(&name);
            if let Some(old) = w.records.insert(name, r) {
                replaced.push(old.epoch);
            }
        }
        drop(w);
        for epoch in replaced {
            self.drop_epoch(epoch)?;
        }
        Ok(())
    }

    fn discard(&self, staging: Staging) -> Result<(), StoreError> {
        self.drop_epoch(staging.epoch)
    }

    fn damage(&self) -> Vec<Damage> {
        lock(&self.writes).damaged.values().cloned().collect()
    }

    fn flushes(&self) -> bool {
        self.snapshot.is_none() && !self.ephemeral
    }

    fn flush_then(&self, durable: &mut dyn FnMut(&Result<(), StoreError>)) -> Result<(), StoreError> {
        if !self.flushes() {
            durable(&Ok(()));
            return Ok(());
        }
        let pending = {
            let w = lock(&self.writes);
            (w.version > *lock(&self.sealed)).then(|| (w.version, w.seal.clone()))
        };
        let r = self.db.flush().map(|_| ()).map_err(io);
        durable(&r);
        r?;
        if let Some((version, seal_now)) = pending {
            let mut sealed = lock(&self.sealed);
            if version > *sealed {
                seal::write(&self.dir, &seal_now)?;
                *sealed = version;
            }
        }
        Ok(())
    }
}
