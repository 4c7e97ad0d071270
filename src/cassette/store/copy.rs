//! Read-only commands work on a copy: sled repairs a damaged log in place when it
//! opens it (it zeroes what it cannot read), so `list`, `show` and `export` copy the
//! store to a temporary directory, holding the original's lock meanwhile (no writer
//! can change it half-way), and open the copy.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::StoreError;

/// A private copy of a store, removed on drop, and the lock on the original.
pub(super) struct Snapshot {
    _dir: tempfile::TempDir,
    store: PathBuf,
    _lock: Option<File>,
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

impl Snapshot {
    /// Copies the store at `src` (nothing, if there is none).
    pub fn take(src: &Path) -> Result<Snapshot, StoreError> {
        use fs2::FileExt as _;
        let shown = src.display().to_string();
        let dir = tempfile::Builder::new()
            .prefix("graphvcr-read-only-")
            .tempdir()
            .map_err(|e| StoreError::Io(format!("cannot make a temporary copy of {shown}: {e}")))?;
        let store = dir.path().join("store");
        if !src.exists() {
            return Ok(Snapshot {
                _dir: dir,
                store,
                _lock: None,
            });
        }
        let lock = match File::open(src.join("db")) {
            Ok(f) => {
                f.try_lock_exclusive().map_err(|e| StoreError::Locked {
                    path: shown.clone(),
                    detail: e.to_string(),
                })?;
                Some(f)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(StoreError::Io(format!("{shown}: {e}"))),
        };
        copy_dir(src, &store).map_err(|e| StoreError::Io(format!("cannot copy {shown}: {e}")))?;
        Ok(Snapshot {
            _dir: dir,
            store,
            _lock: lock,
        })
    }

    /// The copy.
    pub fn path(&self) -> &Path {
        &self.store
    }
}
