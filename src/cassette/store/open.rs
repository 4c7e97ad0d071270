//! Opening sled: what its errors mean for the user (locked, unreadable) and waiting
//! briefly for a lock this process is about to release.

use super::StoreError;

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
