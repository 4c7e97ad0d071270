//! The seal: a small file beside sled's own (`graphvcr.seal`) naming every cassette
//! with the stamp, event count and digest it had at the last flush. sled recovers a
//! damaged log by dropping everything after the damage, which leaves a consistent but
//! older store; the seal is the witness outside sled that tells such a store from a
//! whole one. It is written after sled's flush, so it never vouches for more than sled
//! holds; a removal updates it before the store, so a crash never looks like damage.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::StoreError;

const FILE: &str = "graphvcr.seal";
const VERSION: u32 = 1;

/// What the seal vouches for about one cassette.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealEntry {
    /// The store-wide write stamp of the cassette's last change.
    pub stamp: u64,
    pub count: u64,
    pub digest: String,
    /// The JSON file it came from or went to, to name in a damage report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

impl SealEntry {
    /// Whether two entries vouch for the same content (the file aside).
    pub fn same(&self, other: &SealEntry) -> bool {
        (self.stamp, self.count, &self.digest) == (other.stamp, other.count, &other.digest)
    }
}

/// Every sealed cassette, by name.
pub type Seal = BTreeMap<String, SealEntry>;

#[derive(Serialize, Deserialize)]
struct SealFile {
    graphvcr_seal: u32,
    cassettes: Seal,
    /// Hex SHA-256 of `cassettes` as written: a damaged seal is not trusted.
    check: String,
}

fn check_of(cassettes: &Seal) -> Result<String, StoreError> {
    let bytes = serde_json::to_vec(cassettes).map_err(|e| StoreError::Io(format!("seal: {e}")))?;
    Ok(crate::cassette::json::hex(&Sha256::digest(&bytes)))
}

/// Where the seal of the store in `dir` lives.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Reads the seal; a store without one (new, or from before seals) has an empty seal.
pub fn read(dir: &Path) -> Result<Seal, StoreError> {
    let p = path(dir);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Seal::new()),
        Err(e) => return Err(StoreError::Io(format!("{}: {e}", p.display()))),
    };
    let damaged = |detail: String| StoreError::Corrupt {
        path: dir.display().to_string(),
        detail: format!("its seal {} is damaged: {detail}", p.display()),
    };
    let f: SealFile = serde_json::from_slice(&bytes).map_err(|e| damaged(e.to_string()))?;
    if f.graphvcr_seal != VERSION {
        return Err(damaged(format!("seal version {} is not supported", f.graphvcr_seal)));
    }
    if check_of(&f.cassettes)? != f.check {
        return Err(damaged("its checksum does not match".into()));
    }
    Ok(f.cassettes)
}

/// Replaces the seal atomically and durably (temp file, fsync, rename, fsync dir).
pub fn write(dir: &Path, cassettes: &Seal) -> Result<(), StoreError> {
    let p = path(dir);
    let io = |e: std::io::Error| StoreError::Io(format!("{}: {e}", p.display()));
    let f = SealFile {
        graphvcr_seal: VERSION,
        check: check_of(cassettes)?,
        cassettes: cassettes.clone(),
    };
    let bytes = serde_json::to_vec(&f).map_err(|e| StoreError::Io(format!("seal: {e}")))?;
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(&bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, &p).map_err(io)?;
    if let Ok(d) = std::fs::File::open(dir) {
        // the rename itself must survive a crash; not every platform can sync a dir
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_empty());
        let mut s = Seal::new();
        s.insert(
            "a".into(),
            SealEntry {
                stamp: 3,
                count: 2,
                digest: "00".repeat(16),
                file: None,
            },
        );
        write(dir.path(), &s).unwrap();
        assert_eq!(read(dir.path()).unwrap(), s);
        let raw = std::fs::read_to_string(path(dir.path())).unwrap();
        std::fs::write(path(dir.path()), raw.replace("\"count\":2", "\"count\":3")).unwrap();
        assert!(read(dir.path()).unwrap_err().unusable());
    }
}
