//! Opening sled: its configuration and trees, what its errors mean for the user
//! (locked, unreadable), and waiting briefly for a lock this process is about to
//! release.

use std::path::Path;

use super::StoreError;

/// sled's page cache: enough for many cassettes, far below sled's 1 GiB default. sled
/// 0.34 only evicts once a cache shard has seen 64 reads (16,384 in all), so a store
/// read once keeps every page it read: see [`REOPEN_AFTER`].
pub const CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// An open whose check read more events than this opens the store again, so the
/// pages the check read are not held for the whole run (the check of a 10k-exchange
/// cassette reads about 30 MB; opening again costs about 10 ms).
pub(super) const REOPEN_AFTER: u64 = 4 * 1024 * 1024;

/// The open database and its trees.
pub(super) struct Handles {
    pub db: sled::Db,
    pub meta: sled::Tree,
    pub events: sled::Tree,
    pub derived: sled::Tree,
}

/// Opens the database at `path` (`shown` in errors) and its trees.
pub(super) fn handles(path: &Path, shown: &str) -> Result<Handles, StoreError> {
    let err = |e| open_error(shown.to_string(), e);
    let db = sled::Config::new()
        .path(path)
        .cache_capacity(CACHE_BYTES)
        // every durable write flushes explicitly (group commit); without sled's own
        // flusher thread, dropping the store releases its lock at once
        .flush_every_ms(None)
        .open()
        .map_err(err)?;
    Ok(Handles {
        meta: db.open_tree("meta").map_err(err)?,
        events: db.open_tree("events").map_err(err)?,
        derived: db.open_tree("derived").map_err(err)?,
        db,
    })
}

pub(super) fn open_error(shown: String, e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("lock") => {
            StoreError::Locked {
                path: shown,
                detail: e.to_string(),
            }
        }
        sled::Error::Io(e) => StoreError::Io(format!("{shown}: {e}")),
        e => StoreError::Corrupt {
            path: shown,
            detail: e.to_string(),
        },
    }
}

/// How long an open waits for a lock that is about to be released: a store dropped a
/// moment ago (in this process) keeps its lock until sled's I/O threads let go.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs `open` again while the store is locked, for up to `LOCK_PATIENCE`; another
/// process holding it still gets `Locked`, a little later.
pub(super) fn patient<T>(open: impl Fn() -> Result<T, StoreError>) -> Result<T, StoreError> {
    let deadline = std::time::Instant::now() + LOCK_PATIENCE;
    loop {
        match open() {
            Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => return r,
        }
    }
}
