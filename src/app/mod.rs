//! Wiring per mode: builds the store-facing pieces and the faces on their listeners,
//! runs them until the shutdown signal, then drains and flushes. Everything is passed
//! in (listeners, shutdown, clock, store), so tests run the real thing in-process.
//! `faces` routes each listener's requests; `proxy` adds TLS and the proxy face;
//! `cassettes` syncs cassette files and runs the `cassette` subcommands; `diff` runs
//! `graphvcr diff`.

mod cassettes;
mod diff;
mod faces;
mod misses;
mod proxy;
mod record;
mod replay;
mod reports;

pub use cassettes::{cassette_command, export, import_changed, import_hashed, CassetteCmd};
pub use diff::{diff_command, DiffCmd};
pub use record::{run_record, run_record_faces, RecordOutcome};
pub use replay::{replayer, replayer_with, serve_replay, serve_replay_faces, ReplayOutcome, NOTIFY_AUTH_NONE};

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::{Admin, Guard};
use crate::cassette::{CassetteError, SledStore, Store, StoreError};
use crate::clock::Clock;
use crate::config::PassthroughConfig;
use crate::http::client::HttpClient;
use faces::{handler, spawn_handler, GraphFace, Mode};

/// The listeners a run serves: the Graph face, and optionally the callback face
/// (record) and the proxy face.
pub struct Faces {
    pub graph: TcpListener,
    pub callbacks: Option<TcpListener>,
    pub proxy: Option<TcpListener>,
}

/// A failure of a whole command, with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Cassette(#[from] CassetteError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Runtime(String),
    #[error("{0}")]
    ExpectAll(String),
    /// `diff` found breaking drift; holds the report, which goes to stdout.
    #[error("breaking drift found")]
    Drift(String),
}

impl AppError {
    /// 0 ok, 1 runtime failure (or `diff` found breaking drift), 2 usage error or
    /// unknown cassette, 3 store unusable, 4 `--expect-all` found problems.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Usage(_) => 2,
            AppError::Cassette(CassetteError::Store(e)) | AppError::Store(e) => {
                if e.unusable() {
                    3
                } else {
                    1
                }
            }
            AppError::Cassette(CassetteError::Io { .. }) => 1,
            AppError::Cassette(_) => 2,
            AppError::Runtime(_) | AppError::Drift(_) => 1,
            AppError::ExpectAll(_) => 4,
        }
    }
}

/// What every mode is given.
#[derive(Clone)]
pub struct Deps {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
}

/// `--store memory`: a temporary store, removed on exit.
pub const MEMORY_STORE: &str = "memory";

/// An open store, and the temporary directory it lives in (`--store memory`),
/// removed when this is dropped.
pub struct OpenStore {
    pub store: Arc<dyn Store>,
    temp: Option<PathBuf>,
}

impl OpenStore {
    /// The temporary directory of a `memory` store (removed with it).
    pub fn temp_dir(&self) -> Option<&std::path::Path> {
        self.temp.as_deref()
    }
}

impl Drop for OpenStore {
    fn drop(&mut self) {
        if let Some(dir) = self.temp.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Opens the store at `path`, or a temporary one for `memory`.
pub fn open_store(path: &std::path::Path) -> Result<OpenStore, AppError> {
    if path.as_os_str() != MEMORY_STORE {
        let store = SledStore::open(path)?;
        // damaged cassettes are named now; a mode that needs one fails with exit 3
        for d in store.damage() {
            tracing::warn!("{d}");
        }
        return Ok(OpenStore {
            store: Arc::new(store),
            temp: None,
        });
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("graphvcr-{}-{stamp}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| AppError::Runtime(format!("cannot create {}: {e}", dir.display())))?;
    let opened = OpenStore {
        store: Arc::new(SledStore::open_ephemeral(&dir.join("store"))?),
        temp: Some(dir),
    };
    Ok(opened)
}

/// Prints a line on stdout; a closed stdout is not an error worth dying for.
pub fn say(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Turns the caller's shutdown future into a signal every listener can watch.
fn fan_out(shutdown: impl Future<Output = ()> + Send + 'static) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    rx
}

/// `graphvcr passthrough`: forwards every request to the upstream and logs it,
/// storing nothing; serves until `shutdown`.
pub async fn run_passthrough(
    cfg: PassthroughConfig,
    deps: Deps,
    graph_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let client = HttpClient::new(cfg.upstream_ca.as_deref(), cfg.upstream_timeout, cfg.limits.max_body)
        .map_err(|e| AppError::Usage(e.to_string()))?;
    let misses = misses::Misses::new(client, cfg.upstream.clone(), deps.store.clone(), deps.clock.clone());
    let stop = fan_out(shutdown);
    let face = GraphFace::new(
        Admin::new("passthrough", deps.store.clone(), None, deps.clock.clone())
            .with_guard(Guard::new(graph_listener.local_addr().ok(), &cfg.limits.admin_hosts)),
        Mode::Passthrough(Arc::new(misses)),
        deps.clock.clone(),
    );
    let h = handler(Arc::new(face), &cfg.limits, &deps.clock);
    let task = spawn_handler(graph_listener, h, cfg.limits.server_options(), "graph", &stop)?;
    let _ = task.await;
    Ok(())
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("stopping: finishing in-flight requests");
}
