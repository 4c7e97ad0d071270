//! Wiring per mode: builds the store-facing pieces and the faces on their listeners,
//! runs them until the shutdown signal, then drains and flushes. Everything is passed
//! in (listeners, shutdown, clock, store), so tests run the real thing in-process.
//! `faces` routes each listener's requests; `cassettes` syncs cassette files and runs
//! the `cassette` subcommands.

mod cassettes;
mod faces;

pub use cassettes::{cassette_command, export, import_changed, CassetteCmd};

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderValue;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::Admin;
use crate::cassette::{Cassette, CassetteError, Meta, Store, StoreError};
use crate::clock::{self, Clock};
use crate::config::{RecordConfig, ReplayConfig};
use crate::http::client::HttpClient;
use crate::notify::Notifier;
use crate::record::{CallbackFace, RecordFace, Recorder};
use crate::replay::{Prepared, ReplayTotals, Replayer, Report, SessionLimits};
use faces::{spawn_face, GraphFace, Mode};

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
}

impl AppError {
    /// 0 ok, 1 runtime failure, 2 usage error or unknown cassette, 3 store unusable,
    /// 4 `--expect-all` found problems.
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
            AppError::Runtime(_) => 1,
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

/// What a record run left behind.
#[derive(Debug, Clone)]
pub struct RecordOutcome {
    pub cassette: String,
    pub events: u64,
    pub exported: Option<PathBuf>,
}

/// Creates the (empty) cassette a recording goes into; an existing one needs
/// `--overwrite`.
fn start_cassette(cfg: &RecordConfig, deps: &Deps) -> Result<(), AppError> {
    if deps.store.info(&cfg.cassette)?.is_some() && !cfg.overwrite {
        return Err(AppError::Usage(format!(
            "cassette `{}` already exists; pass --overwrite to record over it, or choose another name",
            cfg.cassette
        )));
    }
    let meta = Meta {
        name: cfg.cassette.clone(),
        recorded_at: clock::rfc3339(deps.clock.unix_ms()),
        upstream: cfg.upstream.0.clone(),
    };
    let empty = Cassette {
        meta,
        events: Vec::new(),
    };
    deps.store.replace(&empty, None)?;
    deps.store.flush()?;
    Ok(())
}

/// `graphvcr record`: serves until `shutdown`, then flushes (and exports if asked).
pub async fn run_record(
    cfg: RecordConfig,
    deps: Deps,
    graph_listener: TcpListener,
    callback_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<RecordOutcome, AppError> {
    let store = deps.store.clone();
    if callback_listener.is_some() && cfg.bot_url.is_none() {
        return Err(AppError::Usage(
            "--callback-listen needs --bot-url (where notifications are forwarded)".into(),
        ));
    }
    let upstream = HttpClient::new(cfg.upstream_ca.as_deref(), cfg.upstream_timeout, cfg.limits.max_body)
        .map_err(|e| AppError::Usage(e.to_string()))?;
    start_cassette(&cfg, &deps)?;
    let recorder = Arc::new(Recorder::new(
        &cfg.cassette,
        store.clone(),
        deps.clock.clone(),
        cfg.rules.clone(),
        cfg.scrub_pii,
    ));
    let stop = fan_out(shutdown);
    let mut tasks = Vec::new();
    let face = GraphFace::new(
        Admin::new("record", store.clone(), None, deps.clock.clone()),
        Mode::Record(Arc::new(RecordFace::new(
            recorder.clone(),
            upstream.clone(),
            cfg.upstream.clone(),
            deps.clock.clone(),
        ))),
    );
    tasks.push(spawn_face(
        graph_listener,
        face,
        &cfg.limits,
        &deps.clock,
        "graph",
        &stop,
    )?);
    if let (Some(l), Some(bot)) = (callback_listener, &cfg.bot_url) {
        let face = CallbackFace::new(recorder.clone(), upstream.clone(), bot.clone(), deps.clock.clone());
        tasks.push(spawn_face(l, face, &cfg.limits, &deps.clock, "callbacks", &stop)?);
    }
    for t in tasks {
        let _ = t.await;
    }
    let _ = tokio::time::timeout(cfg.upstream_timeout, recorder.drain()).await;
    store.flush()?;
    let events = store.info(&cfg.cassette)?.map_or(0, |s| s.events);
    tracing::info!(cassette = %cfg.cassette, events, "recording stopped");
    let exported = match &cfg.export {
        Some(path) => {
            export(&*store, &cfg.cassette, Some(path))?;
            Some(path.clone())
        }
        None => None,
    };
    Ok(RecordOutcome {
        cassette: cfg.cassette,
        events,
        exported,
    })
}

/// What a replay run saw.
#[derive(Debug, Clone)]
pub struct ReplayOutcome {
    /// Live sessions and the latest ended ones.
    pub reports: Vec<Report>,
    /// Exchanges of the served cassette no session ever used.
    pub unused: Vec<u64>,
    /// Counts over every session of the run.
    pub totals: ReplayTotals,
}

impl ReplayOutcome {
    /// One line per problem `--expect-all` cares about.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.reports {
            for m in &r.missed {
                out.push(format!("session {}: miss {}: {}", r.session, m.request, m.reason));
            }
        }
        let listed = out.len() as u64;
        if self.totals.misses > listed {
            out.push(format!("{} request(s) in all matched no recording", self.totals.misses));
        }
        if self.totals.failed > 0 {
            out.push(format!("{} notification(s) not delivered", self.totals.failed));
        }
        if self.totals.pending > 0 {
            out.push(format!("{} notification(s) still pending at stop", self.totals.pending));
        }
        if !self.unused.is_empty() {
            out.push(format!("recorded exchanges never used: {:?}", self.unused));
        }
        out
    }
}

/// Builds the replay engine for `cfg` (imports changed cassette files first).
pub fn replayer(cfg: &ReplayConfig, deps: &Deps) -> Result<Arc<Replayer>, AppError> {
    if let Some(dir) = &cfg.cassettes_dir {
        import_changed(&*deps.store, dir)?;
    }
    let c = deps
        .store
        .load(&cfg.cassette)?
        .ok_or_else(|| CassetteError::Unknown(cfg.cassette.clone()))?;
    let client =
        HttpClient::new(None, cfg.notify_timeout, cfg.limits.max_body).map_err(|e| AppError::Runtime(e.to_string()))?;
    let auth = match &cfg.notify_auth {
        Some(a) => Some(
            HeaderValue::from_str(a)
                .map_err(|_| AppError::Usage("--notify-auth is not a valid header value".into()))?,
        ),
        None => None,
    };
    let notifier = Arc::new(Notifier::new(client, cfg.bot_url.clone(), auth, cfg.retry));
    let limits = SessionLimits {
        idle_ms: u64::try_from(cfg.session_idle.as_millis()).unwrap_or(u64::MAX),
        max: cfg.max_sessions,
    };
    Ok(Arc::new(Replayer::new(
        Arc::new(Prepared::new(c)),
        deps.store.clone(),
        deps.clock.clone(),
        notifier,
        cfg.pacing,
        limits,
    )))
}

/// Serves an already built replay engine (the demo shares it).
pub async fn serve_replay(
    cfg: ReplayConfig,
    deps: Deps,
    replayer: Arc<Replayer>,
    graph_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<ReplayOutcome, AppError> {
    let stop = fan_out(shutdown);
    let face = GraphFace::new(
        Admin::new("replay", deps.store.clone(), Some(replayer.clone()), deps.clock.clone()),
        Mode::Replay(replayer.clone()),
    );
    let task = spawn_face(graph_listener, face, &cfg.limits, &deps.clock, "graph", &stop)?;
    if replayer
        .cassette(&cfg.cassette)
        .is_ok_and(|c| !c.unattached().is_empty())
    {
        if let Err(e) = replayer.start_session(&cfg.cassette, None) {
            tracing::warn!("start-up notifications: {e}");
        }
    }
    let sweeper = {
        let r = replayer.clone();
        let every = (cfg.session_idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
        let mut stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => r.sweep(),
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        })
    };
    let _ = task.await;
    let _ = sweeper.await;
    // let queued notifications go out before reporting: wait while deliveries make
    // progress; give up after one delivery's worst case passes without any
    let patience = cfg.pacing.max_gap
        + cfg.notify_timeout * cfg.retry.attempts.max(1)
        + (1..cfg.retry.attempts).map(|n| cfg.retry.backoff(n)).sum::<Duration>()
        + Duration::from_secs(1);
    let mut last = replayer.totals().pending;
    let mut since = tokio::time::Instant::now();
    while last > 0 && since.elapsed() < patience {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = replayer.totals().pending;
        if now < last {
            since = tokio::time::Instant::now();
        }
        last = now;
    }
    let outcome = ReplayOutcome {
        reports: replayer.reports(),
        unused: replayer.unused_everywhere(),
        totals: replayer.totals(),
    };
    if cfg.expect_all {
        let problems = outcome.problems();
        if !problems.is_empty() {
            return Err(AppError::ExpectAll(format!(
                "--expect-all: {} problem(s): {}",
                problems.len(),
                problems.join(" | ")
            )));
        }
    }
    Ok(outcome)
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
