//! The cassette store: a small trait, its sled implementation (tree `meta` by name,
//! tree `events` keyed `name \0 seq(u64 BE)`), and group commit for durable appends.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sled::Transactional;
use tokio::sync::oneshot;

use super::{Cassette, Event, Meta};

/// Store failures; `Locked`/`Corrupt` mean the store is unusable (exit code 3).
#[derive(Debug, thiserror::Error, Clone)]
pub enum StoreError {
    #[error("store {path} is in use by another graphvcr process ({detail}); stop it or pass another --store")]
    Locked { path: String, detail: String },
    #[error("store {path} is unreadable ({detail}); move it aside and re-import your cassettes with `graphvcr cassette import cassettes/*.json`")]
    Corrupt { path: String, detail: String },
    #[error("store error: {0}")]
    Io(String),
    #[error("stored data for `{name}` is unreadable: {detail}")]
    Decode { name: String, detail: String },
}

impl StoreError {
    /// Whether the store as a whole cannot be used (as opposed to one failed write).
    pub fn unusable(&self) -> bool {
        matches!(self, StoreError::Locked { .. } | StoreError::Corrupt { .. })
    }
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

#[derive(Serialize, Deserialize)]
struct MetaRecord {
    #[serde(flatten)]
    meta: Meta,
    #[serde(default)]
    source: Option<Source>,
}

/// What the proxy needs from a store. Writes are buffered until `flush`.
pub trait Store: Send + Sync + 'static {
    fn list(&self) -> Result<Vec<Stored>, StoreError>;
    fn info(&self, name: &str) -> Result<Option<Stored>, StoreError>;
    fn load(&self, name: &str) -> Result<Option<Cassette>, StoreError>;
    /// Replaces a cassette (metadata and all events) atomically.
    fn replace(&self, c: &Cassette, source: Option<Source>) -> Result<(), StoreError>;
    fn set_source(&self, name: &str, source: Option<Source>) -> Result<(), StoreError>;
    /// Appends (or overwrites) one event of an existing cassette.
    fn put_event(&self, name: &str, ev: &Event) -> Result<(), StoreError>;
    fn remove(&self, name: &str) -> Result<bool, StoreError>;
    /// Makes every write so far durable.
    fn flush(&self) -> Result<(), StoreError>;
}

/// The sled-backed store.
pub struct SledStore {
    db: sled::Db,
    meta: sled::Tree,
    events: sled::Tree,
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

fn event_key(name: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 9);
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn event_prefix(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 1);
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k
}

impl SledStore {
    /// sled's page cache: enough for many cassettes, far below sled's 1 GiB default.
    pub const CACHE_BYTES: u64 = 64 * 1024 * 1024;

    /// Opens (or creates) the store. sled can panic on corrupt files, so the open is
    /// guarded and every failure says how to recover.
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        let shown = path.display().to_string();
        let p = path.to_path_buf();
        let opened = std::panic::catch_unwind(move || {
            let db = sled::Config::new().path(&p).cache_capacity(Self::CACHE_BYTES).open()?;
            let meta = db.open_tree("meta")?;
            let events = db.open_tree("events")?;
            Ok::<_, sled::Error>((db, meta, events))
        });
        match opened {
            Ok(Ok((db, meta, events))) => Ok(SledStore { db, meta, events }),
            Ok(Err(sled::Error::Io(e)))
                if e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("lock") =>
            {
                Err(StoreError::Locked {
                    path: shown,
                    detail: e.to_string(),
                })
            }
            Ok(Err(sled::Error::Io(e))) => Err(StoreError::Io(format!("{shown}: {e}"))),
            Ok(Err(e)) => Err(StoreError::Corrupt {
                path: shown,
                detail: e.to_string(),
            }),
            Err(_) => Err(StoreError::Corrupt {
                path: shown,
                detail: "sled panicked while reading it".to_string(),
            }),
        }
    }

    fn read_meta(&self, name: &str, raw: &[u8]) -> Result<MetaRecord, StoreError> {
        serde_json::from_slice(raw).map_err(|e| StoreError::Decode {
            name: name.to_string(),
            detail: e.to_string(),
        })
    }

    fn count(&self, name: &str) -> u64 {
        self.events.scan_prefix(event_prefix(name)).keys().count() as u64
    }
}

impl Store for SledStore {
    fn list(&self) -> Result<Vec<Stored>, StoreError> {
        let mut out = Vec::new();
        for kv in self.meta.iter() {
            let (k, v) = kv.map_err(io)?;
            let name = String::from_utf8_lossy(&k).to_string();
            let rec = self.read_meta(&name, &v)?;
            out.push(Stored {
                events: self.count(&name),
                meta: rec.meta,
                source: rec.source,
            });
        }
        Ok(out)
    }

    fn info(&self, name: &str) -> Result<Option<Stored>, StoreError> {
        let Some(v) = self.meta.get(name.as_bytes()).map_err(io)? else {
            return Ok(None);
        };
        let rec = self.read_meta(name, &v)?;
        Ok(Some(Stored {
            events: self.count(name),
            meta: rec.meta,
            source: rec.source,
        }))
    }

    fn load(&self, name: &str) -> Result<Option<Cassette>, StoreError> {
        let Some(v) = self.meta.get(name.as_bytes()).map_err(io)? else {
            return Ok(None);
        };
        let rec = self.read_meta(name, &v)?;
        let mut events = Vec::new();
        for kv in self.events.scan_prefix(event_prefix(name)) {
            let (_, v) = kv.map_err(io)?;
            let ev: Event = serde_json::from_slice(&v).map_err(|e| StoreError::Decode {
                name: name.to_string(),
                detail: e.to_string(),
            })?;
            events.push(ev);
        }
        Ok(Some(Cassette { meta: rec.meta, events }))
    }

    fn replace(&self, c: &Cassette, source: Option<Source>) -> Result<(), StoreError> {
        let name = c.meta.name.as_str();
        let old: Vec<sled::IVec> = self
            .events
            .scan_prefix(event_prefix(name))
            .keys()
            .collect::<Result<_, _>>()
            .map_err(io)?;
        let meta = serde_json::to_vec(&MetaRecord {
            meta: c.meta.clone(),
            source,
        })
        .map_err(io)?;
        let mut encoded = Vec::with_capacity(c.events.len());
        for e in &c.events {
            encoded.push((event_key(name, e.seq), serde_json::to_vec(e).map_err(io)?));
        }
        (&self.meta, &self.events)
            .transaction(|(tm, te)| {
                for k in &old {
                    te.remove(k)?;
                }
                for (k, v) in &encoded {
                    te.insert(k.as_slice(), v.as_slice())?;
                }
                tm.insert(name.as_bytes(), meta.as_slice())?;
                Ok(())
            })
            .map_err(|e: sled::transaction::TransactionError<()>| io(format!("{e:?}")))
    }

    fn set_source(&self, name: &str, source: Option<Source>) -> Result<(), StoreError> {
        let Some(v) = self.meta.get(name.as_bytes()).map_err(io)? else {
            return Ok(());
        };
        let mut rec = self.read_meta(name, &v)?;
        rec.source = source;
        let raw = serde_json::to_vec(&rec).map_err(io)?;
        self.meta.insert(name.as_bytes(), raw).map_err(io)?;
        Ok(())
    }

    fn put_event(&self, name: &str, ev: &Event) -> Result<(), StoreError> {
        let v = serde_json::to_vec(ev).map_err(io)?;
        self.events.insert(event_key(name, ev.seq), v).map_err(io)?;
        Ok(())
    }

    fn remove(&self, name: &str) -> Result<bool, StoreError> {
        let existed = self.meta.remove(name.as_bytes()).map_err(io)?.is_some();
        let keys: Vec<sled::IVec> = self
            .events
            .scan_prefix(event_prefix(name))
            .keys()
            .collect::<Result<_, _>>()
            .map_err(io)?;
        for k in keys {
            self.events.remove(k).map_err(io)?;
        }
        Ok(existed)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(io)
    }
}

type Waiter = oneshot::Sender<Result<(), StoreError>>;

/// Group commit: callers ask for durability; one flusher thread serves every request
/// that queued while the previous flush ran with a single `flush`.
#[derive(Clone)]
pub struct Committer {
    tx: std::sync::mpsc::Sender<Waiter>,
}

impl Committer {
    pub fn new(store: Arc<dyn Store>) -> Committer {
        let (tx, rx) = std::sync::mpsc::channel::<Waiter>();
        std::thread::Builder::new()
            .name("graphvcr-flush".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut waiters = vec![first];
                    waiters.extend(rx.try_iter());
                    let r = store.flush();
                    for w in waiters {
                        let _ = w.send(r.clone());
                    }
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!("cannot start the flush thread: {e}"));
        Committer { tx }
    }

    /// Resolves once everything written before the call is durable.
    pub async fn commit(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(tx)
            .map_err(|_| StoreError::Io("the flush thread is gone".into()))?;
        rx.await
            .map_err(|_| StoreError::Io("the flush thread is gone".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cassette::{Body, Kind, Request, Response};

    fn ev(seq: u64) -> Event {
        Event {
            kind: Kind::Exchange,
            seq,
            at_ms: seq * 10,
            duration_ms: Some(1),
            follows: None,
            request: Request {
                method: "GET".into(),
                uri: "/v1.0/communications/calls".into(),
                headers: vec![],
                body: Body::Empty,
            },
            response: Response {
                status: Some(200),
                ..Default::default()
            },
        }
    }

    fn cassette(name: &str, n: u64) -> Cassette {
        Cassette {
            meta: Meta {
                name: name.into(),
                recorded_at: String::new(),
                upstream: String::new(),
            },
            events: (0..n).map(ev).collect(),
        }
    }

    #[test]
    fn replace_load_remove() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        s.replace(&cassette("a", 3), None).unwrap();
        s.replace(&cassette("ab", 1), None).unwrap();
        s.replace(&cassette("a", 2), None).unwrap();
        assert_eq!(s.load("a").unwrap().unwrap().events.len(), 2);
        assert_eq!(s.info("ab").unwrap().unwrap().events, 1);
        s.put_event("a", &ev(2)).unwrap();
        assert_eq!(s.load("a").unwrap().unwrap().events.len(), 3);
        assert!(s.remove("a").unwrap());
        assert!(s.load("a").unwrap().is_none());
        assert_eq!(s.list().unwrap().len(), 1);
    }

    #[test]
    fn second_open_reports_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _a = SledStore::open(dir.path()).unwrap();
        match SledStore::open(dir.path()) {
            Err(e) => assert!(e.unusable(), "{e}"),
            Ok(_) => panic!("opened twice"),
        }
    }

    #[tokio::test]
    async fn group_commit_serves_many() {
        let dir = tempfile::tempdir().unwrap();
        let s: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
        let c = Committer::new(s.clone());
        let mut tasks = Vec::new();
        for i in 0..20 {
            let c = c.clone();
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.put_event("x", &ev(i)).unwrap();
                c.commit().await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    }
}
