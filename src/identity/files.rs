//! The `--ca-dir` on disk: the CA certificate (public), the CA key and the signing key
//! (mode `0600`). Created once, atomically (files written into a fresh directory that
//! is then renamed into place), so concurrent first runs agree on one CA.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::IdentityError;

/// The CA certificate clients trust.
pub const CA_CERT: &str = "graphvcr-ca.pem";
/// The CA's private key.
pub const CA_KEY: &str = "graphvcr-ca-key.pem";
/// The RSA key graphvcr signs tokens with.
pub const SIGNING_KEY: &str = "graphvcr-signing-key.pem";

/// What `--ca-dir` holds, as text.
pub struct Material {
    pub ca_cert: String,
    pub ca_key: String,
    pub signing_key: String,
}

fn io_err(path: &Path, e: std::io::Error) -> IdentityError {
    IdentityError::Io {
        path: path.display().to_string(),
        detail: e.to_string(),
    }
}

fn read(dir: &Path) -> Result<Material, IdentityError> {
    let get = |name: &str| {
        let p = dir.join(name);
        std::fs::read_to_string(&p).map_err(|e| io_err(&p, e))
    };
    warn_if_readable(&dir.join(CA_KEY));
    Ok(Material {
        ca_cert: get(CA_CERT)?,
        ca_key: get(CA_KEY)?,
        signing_key: get(SIGNING_KEY)?,
    })
}

#[cfg(unix)]
fn warn_if_readable(p: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(m) = std::fs::metadata(p) {
        if m.permissions().mode() & 0o077 != 0 {
            tracing::warn!("{} is readable by others: `chmod 600` it", p.display());
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable(_: &Path) {}

/// Writes `text` to a new file, readable by its owner only when `secret`.
fn write_new(path: &Path, text: &str, secret: bool) -> Result<(), IdentityError> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut f = o.open(path).map_err(|e| io_err(path, e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| io_err(path, e))
}

fn write_all(dir: &Path, m: &Material) -> Result<(), IdentityError> {
    write_new(&dir.join(CA_KEY), &m.ca_key, true)?;
    write_new(&dir.join(SIGNING_KEY), &m.signing_key, true)?;
    // the certificate last: its presence means the directory is complete
    write_new(&dir.join(CA_CERT), &m.ca_cert, false)
}

fn staging_dir(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map_or_else(|| "ca".into(), |n| n.to_string_lossy().into_owned());
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    dir.with_file_name(format!(".{name}.new-{}-{n}", std::process::id()))
}

/// The material in `dir`, creating it with `make` when there is none yet. Returns it
/// and whether it was created now. Concurrent first runs agree on one CA: the loser
/// of the race reads the winner's.
pub fn load_or_create(
    dir: &Path,
    make: impl FnOnce() -> Result<Material, IdentityError>,
) -> Result<(Material, bool), IdentityError> {
    if dir.join(CA_CERT).exists() {
        return Ok((read(dir)?, false));
    }
    let m = make()?;
    match place(dir, &m) {
        Ok(()) => Ok((m, true)),
        Err(e) => theirs(dir).map(|m| (m, false)).ok_or(e),
    }
}

/// Puts the material in place: written into a fresh directory renamed onto `dir`
/// (atomic, also onto an empty `dir`); into `dir` itself when it already holds
/// something else.
fn place(dir: &Path, m: &Material) -> Result<(), IdentityError> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    }
    let staging = staging_dir(dir);
    std::fs::create_dir(&staging).map_err(|e| io_err(&staging, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o700));
    }
    let renamed = write_all(&staging, m).and_then(|()| std::fs::rename(&staging, dir).map_err(|e| io_err(dir, e)));
    if renamed.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
        if dir.is_dir() && !dir.join(CA_CERT).exists() {
            // a directory with other things in it: write beside them
            return write_all(dir, m);
        }
    }
    renamed
}

/// What another process (or thread) that won the race to create `dir` wrote: its
/// certificate comes last, so it is waited for a little.
fn theirs(dir: &Path) -> Option<Material> {
    for _ in 0..100 {
        if dir.join(CA_CERT).exists() {
            return read(dir).ok();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn race(dir: &Path) -> Vec<String> {
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let dir = dir.to_path_buf();
                std::thread::spawn(move || {
                    let (m, _) = load_or_create(&dir, || {
                        Ok(Material {
                            ca_cert: format!("cert {i}"),
                            ca_key: format!("key {i}"),
                            signing_key: format!("signing {i}"),
                        })
                    })
                    .map_err(|e| e.to_string())?;
                    assert_eq!(m.ca_key, m.ca_cert.replace("cert", "key"), "one creator's set");
                    Ok::<_, String>(m.ca_cert)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("no panic").expect("every racer gets the material"))
            .collect()
    }

    #[test]
    fn concurrent_first_runs_agree_on_one_ca() {
        let root = tempfile::tempdir().expect("tempdir");
        let fresh = race(&root.path().join("a").join("ca"));
        assert!(fresh.iter().all(|c| *c == fresh[0]), "{fresh:?}");
        let empty = root.path().join("empty");
        std::fs::create_dir(&empty).expect("mkdir");
        let into_empty = race(&empty);
        assert!(into_empty.iter().all(|c| *c == into_empty[0]), "{into_empty:?}");
        let on_disk = read(&empty).expect("read");
        assert_eq!(
            on_disk.ca_cert, into_empty[0],
            "what every racer uses is what is on disk"
        );
    }
}
