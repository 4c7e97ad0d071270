//! Wiring: builds the store-facing pieces, the faces and their listeners for each mode,
//! runs them until the shutdown signal, then drains and flushes. Also the `cassette`
//! subcommands. Everything is passed in (listeners, shutdown, clock, store), so tests
//! run the real thing in-process.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderValue;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::{self, Admin};
use crate::cassette::{self, json as cjson, Cassette, CassetteError, Kind, Meta, Source, Store, StoreError};
use crate::clock::{self, Clock};
use crate::config::{Limits, RecordConfig, ReplayConfig};
use crate::error::ProxyError;
use crate::notify::{CallbackFace, Notifier};
use crate::record::{RecordFace, Recorder};
use crate::redact;
use crate::replay::{Prepared, ReplayTotals, Replayer, Report};
use crate::server::{self, Handler, HandlerFuture, ServerOptions};
use crate::upstream::HttpClient;
use crate::wire::{self, BodyError};

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

/// A face that wants the whole request body: reads it within the limit first.
trait Endpoint: Send + Sync + 'static {
    fn call(self: Arc<Self>, parts: http::request::Parts, body: Bytes) -> HandlerFuture;
}

struct BodyReader<E> {
    inner: Arc<E>,
    max_body: usize,
    clock: Arc<dyn Clock>,
}

impl<E: Endpoint> Handler for BodyReader<E> {
    fn handle(&self, req: http::Request<hyper::body::Incoming>, _peer: SocketAddr) -> HandlerFuture {
        let inner = self.inner.clone();
        let max = self.max_body;
        let clock = self.clock.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            match wire::read_body(&parts.headers, body, max).await {
                Ok(b) => inner.call(parts, b).await,
                Err(e) => {
                    let err = match e {
                        BodyError::TooLarge { limit } => ProxyError::TooLarge(limit),
                        BodyError::Read(m) => ProxyError::BadRequest(m),
                    };
                    tracing::warn!(method = %parts.method, uri = %parts.uri, "{err}");
                    err.respond(&*clock, parts.uri.to_string().as_bytes())
                }
            }
        })
    }
}

enum Mode {
    Record(Arc<RecordFace>),
    Replay(Arc<Replayer>),
}

struct GraphFace {
    admin: Admin,
    mode: Mode,
}

impl Endpoint for GraphFace {
    fn call(self: Arc<Self>, parts: http::request::Parts, body: Bytes) -> HandlerFuture {
        Box::pin(async move {
            if admin::owns(parts.uri.path()) {
                return self.admin.handle(&parts, &body);
            }
            match &self.mode {
                Mode::Record(r) => r.clone().handle(parts, body).await,
                Mode::Replay(r) => r.handle(&parts, body),
            }
        })
    }
}

impl Endpoint for CallbackFace {
    fn call(self: Arc<Self>, parts: http::request::Parts, body: Bytes) -> HandlerFuture {
        Box::pin(self.handle(parts, body))
    }
}

fn options(l: &Limits) -> ServerOptions {
    ServerOptions {
        max_header_bytes: l.max_header_bytes,
        header_timeout: l.header_timeout,
        ..ServerOptions::default()
    }
}

/// Starts serving `listener` in the background; prints the `listening on` line.
fn spawn_face<E: Endpoint>(
    listener: TcpListener,
    face: E,
    limits: &Limits,
    clock: &Arc<dyn Clock>,
    label: &str,
    stop: &watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, AppError> {
    let addr = listener
        .local_addr()
        .map_err(|e| AppError::Runtime(format!("listener has no address: {e}")))?;
    let handler: Arc<dyn Handler> = Arc::new(BodyReader {
        inner: Arc::new(face),
        max_body: limits.max_body,
        clock: clock.clone(),
    });
    let mut stop = stop.clone();
    let task = tokio::spawn(server::serve(listener, handler, options(limits), async move {
        let _ = stop.wait_for(|s| *s).await;
    }));
    say(&format!("listening on http://{addr} ({label})"));
    Ok(task)
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

/// `graphvcr record`: serves until `shutdown`, then flushes (and exports if asked).
pub async fn run_record(
    cfg: RecordConfig,
    deps: Deps,
    graph_listener: TcpListener,
    callback_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<RecordOutcome, AppError> {
    let store = deps.store.clone();
    if store.info(&cfg.cassette)?.is_some() && !cfg.overwrite {
        return Err(AppError::Usage(format!(
            "cassette `{}` already exists; pass --overwrite to record over it, or choose another name",
            cfg.cassette
        )));
    }
    if callback_listener.is_some() && cfg.bot_url.is_none() {
        return Err(AppError::Usage(
            "--callback-listen needs --bot-url (where notifications are forwarded)".into(),
        ));
    }
    let upstream = HttpClient::new(cfg.upstream_ca.as_deref(), cfg.upstream_timeout, cfg.limits.max_body)
        .map_err(|e| AppError::Usage(e.to_string()))?;
    let meta = Meta {
        name: cfg.cassette.clone(),
        recorded_at: clock::rfc3339(deps.clock.unix_ms()),
        upstream: cfg.upstream.0.clone(),
    };
    store.replace(
        &Cassette {
            meta,
            events: Vec::new(),
        },
        None,
    )?;
    store.flush()?;
    let recorder = Arc::new(Recorder::new(
        &cfg.cassette,
        store.clone(),
        deps.clock.clone(),
        cfg.upstream_timeout,
    ));
    let stop = fan_out(shutdown);
    let mut tasks = Vec::new();
    let face = GraphFace {
        admin: Admin {
            mode: "record",
            store: store.clone(),
            replayer: None,
            clock: deps.clock.clone(),
        },
        mode: Mode::Record(Arc::new(RecordFace {
            recorder: recorder.clone(),
            upstream: upstream.clone(),
            config: cfg.clone(),
            clock: deps.clock.clone(),
        })),
    };
    tasks.push(spawn_face(
        graph_listener,
        face,
        &cfg.limits,
        &deps.clock,
        "graph",
        &stop,
    )?);
    if let (Some(l), Some(bot)) = (callback_listener, &cfg.bot_url) {
        let face = CallbackFace {
            recorder: recorder.clone(),
            client: upstream.clone(),
            bot_url: bot.clone(),
            clock: deps.clock.clone(),
        };
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
    Ok(Arc::new(Replayer::new(
        cfg.clone(),
        deps.store.clone(),
        deps.clock.clone(),
        notifier,
        Arc::new(Prepared::new(c)),
    )))
}

/// `graphvcr replay`: serves the cassette until `shutdown`.
pub async fn run_replay(
    cfg: ReplayConfig,
    deps: Deps,
    graph_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<ReplayOutcome, AppError> {
    let replayer = replayer(&cfg, &deps)?;
    serve_replay(cfg, deps, replayer, graph_listener, shutdown).await
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
    let face = GraphFace {
        admin: Admin {
            mode: "replay",
            store: deps.store.clone(),
            replayer: Some(replayer.clone()),
            clock: deps.clock.clone(),
        },
        mode: Mode::Replay(replayer.clone()),
    };
    let task = spawn_face(graph_listener, face, &cfg.limits, &deps.clock, "graph", &stop)?;
    if replayer.cassette(&cfg.cassette).is_ok_and(|c| !c.unattached.is_empty()) {
        if let Err(e) = replayer.start_session(&cfg.cassette, None) {
            tracing::warn!("start-up notifications: {e}");
        }
    }
    let sweeper = {
        let r = replayer.clone();
        let clock = deps.clock.clone();
        let every = (cfg.session_idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
        let mut stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => r.sessions.sweep(clock.mono_ms()),
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
        reports: replayer.sessions.reports(),
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

/// Imports every `*.json` in `dir` whose content changed since its last import/export.
/// Everything is parsed before anything is written: one bad file imports nothing.
pub fn import_changed(store: &dyn Store, dir: &Path) -> Result<usize, AppError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(CassetteError::Io {
                path: dir.display().to_string(),
                source,
            }
            .into())
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let parsed = parse_all(&files)?;
    let mut n = 0;
    for (path, c, hash) in parsed {
        let shown = source_path(&path);
        if let Some(stored) = store.info(&c.meta.name)? {
            match &stored.source {
                Some(src) if src.hash == hash => continue,
                Some(src) if src.path == shown => {}
                // recorded here, or imported from another file: never overwritten silently
                _ => {
                    tracing::warn!(
                        cassette = %c.meta.name,
                        file = %path.display(),
                        "not imported: the store's cassette of that name did not come from this file \
                         (`graphvcr cassette rm` it to import the file)"
                    );
                    continue;
                }
            }
        }
        store.replace(&c, Some(Source { path: shown, hash }))?;
        tracing::info!(cassette = %c.meta.name, file = %path.display(), "imported");
        n += 1;
    }
    if n > 0 {
        store.flush()?;
    }
    Ok(n)
}

/// How a cassette file is remembered as a source: its canonical path when it has one.
fn source_path(p: &Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

fn parse_all(files: &[PathBuf]) -> Result<Vec<(PathBuf, Cassette, String)>, AppError> {
    let mut out: Vec<(PathBuf, Cassette, String)> = Vec::new();
    for f in files {
        let (c, hash) = cjson::read_file(f)?;
        if let Some((other, _, _)) = out.iter().find(|(_, o, _)| o.meta.name == c.meta.name) {
            return Err(AppError::Usage(format!(
                "{} and {} both hold cassette `{}`",
                other.display(),
                f.display(),
                c.meta.name
            )));
        }
        out.push((f.clone(), c, hash));
    }
    Ok(out)
}

/// Exports a cassette as JSON (to a file, recorded as its source, or returned).
pub fn export(store: &dyn Store, name: &str, out: Option<&Path>) -> Result<String, AppError> {
    cassette::validate_name(name)?;
    let c = store
        .load(name)?
        .ok_or_else(|| CassetteError::Unknown(name.to_string()))?;
    if let Some(f) = redact::find_secret(&c) {
        return Err(CassetteError::SecretFound {
            name: name.to_string(),
            finding: f,
        }
        .into());
    }
    match out {
        Some(path) => {
            let hash = cjson::write_file(&c, path)?;
            store.set_source(
                name,
                Some(Source {
                    path: source_path(path),
                    hash,
                }),
            )?;
            store.flush()?;
            Ok(format!(
                "exported `{name}` ({} events) to {}",
                c.events.len(),
                path.display()
            ))
        }
        None => Ok(cjson::to_string(&c)),
    }
}

/// `graphvcr cassette ...`
#[derive(Debug, Clone)]
pub enum CassetteCmd {
    List,
    Show(String),
    Export { name: String, out: Option<PathBuf> },
    Import(Vec<PathBuf>),
    Rm(String),
}

/// Runs a cassette subcommand; returns what to print.
pub fn cassette_command(store: &dyn Store, cmd: CassetteCmd) -> Result<String, AppError> {
    match cmd {
        CassetteCmd::List => {
            let mut list = store.list()?;
            list.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
            if list.is_empty() {
                return Ok("no cassettes in the store".to_string());
            }
            Ok(list
                .iter()
                .map(|s| {
                    format!(
                        "{}\t{} events\trecorded {}\t{}",
                        s.meta.name,
                        s.events,
                        if s.meta.recorded_at.is_empty() {
                            "-"
                        } else {
                            &s.meta.recorded_at
                        },
                        s.source.as_ref().map_or("-", |x| x.path.as_str())
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"))
        }
        CassetteCmd::Show(name) => {
            cassette::validate_name(&name)?;
            let c = store.load(&name)?.ok_or_else(|| CassetteError::Unknown(name.clone()))?;
            let mut out = format!(
                "{} (recorded {}, upstream {}, {} events)\n",
                c.meta.name,
                c.meta.recorded_at,
                c.meta.upstream,
                c.events.len()
            );
            for e in &c.events {
                let answer = match (e.response.status, &e.response.error) {
                    (Some(s), _) => s.to_string(),
                    (None, Some(err)) => format!("failed: {err}"),
                    (None, None) => "-".to_string(),
                };
                let line = match e.kind {
                    Kind::Exchange => format!(
                        "#{:<3} {:>6} ms  {} {} -> {} ({} ms)",
                        e.seq,
                        e.at_ms,
                        e.request.method,
                        e.request.uri,
                        answer,
                        e.duration_ms.unwrap_or(0)
                    ),
                    Kind::Notification => format!(
                        "#{:<3} {:>6} ms  notification {} {} (follows {}) -> {}",
                        e.seq,
                        e.at_ms,
                        e.request.method,
                        e.request.uri,
                        e.follows.map_or("nothing".to_string(), |f| format!("#{f}")),
                        answer
                    ),
                };
                out.push_str(&line);
                out.push('\n');
            }
            Ok(out.trim_end().to_string())
        }
        CassetteCmd::Export { name, out } => export(store, &name, out.as_deref()),
        CassetteCmd::Import(files) => {
            let parsed = parse_all(&files)?;
            let mut lines = Vec::new();
            for (path, c, hash) in &parsed {
                store.replace(
                    c,
                    Some(Source {
                        path: source_path(path),
                        hash: hash.clone(),
                    }),
                )?;
                lines.push(format!(
                    "imported `{}` ({} events) from {}",
                    c.meta.name,
                    c.events.len(),
                    path.display()
                ));
            }
            store.flush()?;
            Ok(lines.join("\n"))
        }
        CassetteCmd::Rm(name) => {
            cassette::validate_name(&name)?;
            if !store.remove(&name)? {
                return Err(CassetteError::Unknown(name).into());
            }
            store.flush()?;
            Ok(format!("removed `{name}`"))
        }
    }
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
