//! Wiring for `replay` and `serve`: the replay engine built from the settings, the
//! Graph face serving it, incoming calls rung at start-up, idle sessions swept, an
//! optional stop once everything was served, and on stop: queued notifications
//! drained, every session's verdict, CI reports written, `--expect-all` applied.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderValue;
use tokio::net::TcpListener;

use tokio::sync::watch;

use super::faces::{handler, spawn_handler, GraphFace, Mode};
use super::misses::{MissRecorders, Misses};
use super::proxy::{spawn_proxy, IdentityRoute, ProxyFace, Secure};
use super::{fan_out, import_changed, import_hashed, reports, AppError, Deps, Faces};
use crate::admin::{Admin, Guard};
use crate::cassette::CassetteError;
use crate::clock::Clock;
use crate::config::ReplayConfig;
use crate::http::client::HttpClient;
use crate::identity::{CallbackAuth, Identity, IdentityFace, NotifyAuth};
use crate::notify::Notifier;
use crate::record::CallbackFace;
use crate::replay::{
    Outcome, Prepared, ReplayOptions, ReplayTotals, Replayer, Report, SessionLimits, SessionSettings, Start,
};

/// What a replay run saw.
#[derive(Debug, Clone)]
pub struct ReplayOutcome {
    /// Live sessions and the latest ended ones.
    pub reports: Vec<Report>,
    /// Every session of the run, with its verdict.
    pub outcomes: Vec<Outcome>,
    /// Sessions so old their outcome was not kept.
    pub lost: u64,
    /// Exchanges of the default cassette (`replay`) that no session ever used.
    pub unused: Vec<u64>,
    /// Counts over every session of the run.
    pub totals: ReplayTotals,
}

impl ReplayOutcome {
    /// The stop line: sessions, requests served and missed, notifications failed.
    pub fn summary(&self) -> String {
        let served: u64 = self.outcomes.iter().map(|o| o.served_total).sum();
        let missed: u64 = self.outcomes.iter().map(|o| o.missed_total).sum();
        let failing = self.outcomes.iter().filter(|o| !o.verdict.ok).count();
        format!(
            "replay stopped: {} sessions ({failing} not ok), {served} served, {missed} missed, {} notifications delivered, {} notifications failed",
            self.outcomes.len() as u64 + self.lost,
            self.totals.delivered,
            self.totals.failed
        )
    }

    /// One line per problem `--expect-all` cares about, naming session and cassette.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for o in &self.outcomes {
            for p in o.verdict.problems.iter() {
                out.push(format!("session {} (cassette {}): {}", o.session, o.cassette, p.line()));
            }
        }
        if self.totals.pending > 0 {
            out.push(format!("{} notification(s) still pending at stop", self.totals.pending));
        }
        if self.lost > 0 {
            out.push(format!(
                "{} older session(s) were not kept; their verdicts are unknown",
                self.lost
            ));
        }
        out
    }
}

/// The settings every session starts with, from the command line.
fn session_defaults(cfg: &ReplayConfig) -> SessionSettings {
    SessionSettings {
        bot_url: cfg.bot_url.clone(),
        pacing: cfg.pacing,
        match_mode: cfg.match_mode,
        on_miss: cfg.on_miss,
        expect_misses: cfg.expect_misses,
        faults: Arc::from(cfg.faults.clone()),
        chaos: cfg.chaos,
    }
}

/// `--notify-auth none`: notifications carry no `Authorization`.
pub const NOTIFY_AUTH_NONE: &str = "none";

/// The identity whose key signs replayed notifications: none when `--notify-auth`
/// gives a fixed value (or `none`).
fn signing_identity(cfg: &ReplayConfig, clock: &Arc<dyn Clock>) -> Result<Option<Arc<Identity>>, AppError> {
    if cfg.notify_auth.is_some() {
        return Ok(None);
    }
    let id = Identity::load_or_create(&cfg.tls.ca_dir, &**clock).map_err(|e| AppError::Usage(e.to_string()))?;
    Ok(Some(Arc::new(id)))
}

/// Builds the replay engine for `cfg` (imports changed cassette files first).
pub fn replayer(cfg: &ReplayConfig, deps: &Deps) -> Result<Arc<Replayer>, AppError> {
    replayer_with(cfg, deps, None)
}

/// [`replayer`], with the cassette files already hashed (`hashed`, from
/// `cassette::json::hash_files` of `cfg.cassettes_dir`, run while the store opened).
pub fn replayer_with(
    cfg: &ReplayConfig,
    deps: &Deps,
    hashed: Option<Vec<(std::path::PathBuf, String)>>,
) -> Result<Arc<Replayer>, AppError> {
    match (hashed, &cfg.cassettes_dir) {
        (Some(files), _) => {
            import_hashed(&*deps.store, &files)?;
        }
        (None, Some(dir)) => {
            import_changed(&*deps.store, dir)?;
        }
        (None, None) => {}
    }

    let default = match &cfg.cassette {
        Some(name) => {
            let p = match Prepared::stream(&*deps.store, name, cfg.hold_events)? {
                Some(p) => p,
                None => {
                    Prepared::new(crate::bundled::cassette(name).ok_or_else(|| CassetteError::Unknown(name.clone()))??)
                }
            };
            for f in &cfg.faults {
                crate::replay::validate_fault(f, &p).map_err(|e| AppError::Usage(e.to_string()))?;
            }
            Some(Arc::new(p))
        }
        None => None,
    };
    if let Some(c) = cfg.chaos {
        super::say(&format!(
            "chaos: seed {} at rate {} (run again with --chaos {} for the same faults)",
            c.seed, c.rate, c.seed
        ));
    }
    let client =
        HttpClient::new(None, cfg.notify_timeout, cfg.limits.max_body).map_err(|e| AppError::Runtime(e.to_string()))?;
    let auth = match cfg.notify_auth.as_deref() {
        Some(a) if a != NOTIFY_AUTH_NONE => Some(
            HeaderValue::from_str(a)
                .map_err(|_| AppError::Usage("--notify-auth is not a valid header value".into()))?,
        ),
        _ => None,
    };
    let mode = match signing_identity(cfg, &deps.clock)? {
        Some(id) => NotifyAuth::Sign(id.signer().clone()),
        None => NotifyAuth::Fixed,
    };
    let authorizer = Arc::new(CallbackAuth::new(mode, deps.clock.clone()));
    let notifier = Arc::new(Notifier::new(client, auth, cfg.retry).with_authorizer(authorizer));
    let options = ReplayOptions {
        defaults: session_defaults(cfg),
        limits: SessionLimits {
            idle_ms: u64::try_from(cfg.session_idle.as_millis()).unwrap_or(u64::MAX),
            max: cfg.max_sessions,
        },
        ring_timeout: cfg.ring_timeout,
        hold_events: cfg.hold_events,
    };
    Ok(Arc::new(Replayer::new(
        default,
        deps.store.clone(),
        deps.clock.clone(),
        notifier,
        options,
    )))
}

/// Serves an already built replay engine (the demo shares it) on the Graph face.
pub async fn serve_replay(
    cfg: ReplayConfig,
    deps: Deps,
    replayer: Arc<Replayer>,
    graph_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<ReplayOutcome, AppError> {
    let faces = Faces {
        graph: graph_listener,
        callbacks: None,
        proxy: None,
    };
    serve_replay_faces(cfg, deps, replayer, faces, shutdown).await
}

/// The forwarder of misses, when an upstream is set.
fn misses(cfg: &ReplayConfig, deps: &Deps) -> Result<Option<Arc<Misses>>, AppError> {
    let Some(up) = &cfg.upstream else { return Ok(None) };
    let client = HttpClient::new(cfg.upstream_ca.as_deref(), cfg.upstream_timeout, cfg.limits.max_body)
        .map_err(|e| AppError::Usage(e.to_string()))?;
    Ok(Some(Arc::new(Misses::new(
        client,
        up.clone(),
        deps.store.clone(),
        deps.clock.clone(),
    ))))
}

/// Starts replay's faces: the Graph face (with the callback-token metadata when
/// notifications are signed) and, if given, the proxy face.
fn spawn_replay_faces(
    cfg: &ReplayConfig,
    deps: &Deps,
    replayer: &Arc<Replayer>,
    misses: Option<Arc<Misses>>,
    faces: Faces,
    stop: &watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, AppError> {
    let secure = Secure::load(&cfg.tls, &cfg.proxy, faces.proxy.is_some(), &deps.clock)?;
    let identity = match secure.identity() {
        Some(id) => Some(id.clone()),
        None => signing_identity(cfg, &deps.clock)?,
    };
    let identity_face = identity.map(|id| Arc::new(IdentityFace::new(id.signer().clone(), deps.clock.clone())));
    let mode = if cfg.cassette.is_some() { "replay" } else { "serve" };
    let face = Arc::new(
        GraphFace::new(
            Admin::new(mode, deps.store.clone(), Some(replayer.clone()), deps.clock.clone())
                .with_guard(Guard::new(faces.graph.local_addr().ok(), &cfg.limits.admin_hosts)),
            Mode::Replay(replayer.clone(), misses.clone()),
            deps.clock.clone(),
        )
        .with_identity(identity_face.clone()),
    );
    let opts = secure.options(&cfg.limits, &cfg.tls, cfg.tls.graph)?;
    let h = handler(face.clone(), &cfg.limits, &deps.clock);
    let task = spawn_handler(faces.graph, h, opts, "graph", stop)?;
    let callback_task = match (faces.callbacks, &misses, &cfg.bot_url) {
        (Some(l), Some(m), Some(bot)) => {
            let client = HttpClient::new(cfg.upstream_ca.as_deref(), cfg.upstream_timeout, cfg.limits.max_body)
                .map_err(|e| AppError::Usage(e.to_string()))?;
            let face = CallbackFace::new(MissRecorders(m.clone()), client, bot.clone(), deps.clock.clone());
            let opts = secure.options(&cfg.limits, &cfg.tls, cfg.tls.callbacks)?;
            Some(spawn_handler(
                l,
                handler(Arc::new(face), &cfg.limits, &deps.clock),
                opts,
                "callbacks",
                stop,
            )?)
        }
        (Some(_), _, _) => {
            return Err(AppError::Usage(
                "--callback-listen (captured misses' notifications) needs --upstream and --bot-url".into(),
            ))
        }
        _ => None,
    };
    let proxy_task = match (faces.proxy, identity_face) {
        (Some(l), Some(idf)) => {
            let client = HttpClient::new(None, cfg.notify_timeout, cfg.limits.max_body)
                .map_err(|e| AppError::Runtime(e.to_string()))?;
            let face = ProxyFace {
                graph: face,
                identity: IdentityRoute::Answer(idf),
                client,
                refuse_others: true,
            };
            Some(spawn_proxy(
                l,
                face,
                &cfg.proxy,
                &secure,
                &cfg.limits,
                &deps.clock,
                stop,
            )?)
        }
        _ => None,
    };
    Ok([Some(task), callback_task, proxy_task].into_iter().flatten().collect())
}

/// Serves an already built replay engine on the Graph face and, if given, the proxy
/// face, until `shutdown`, or until done with `--exit-when-done`.
pub async fn serve_replay_faces(
    cfg: ReplayConfig,
    deps: Deps,
    replayer: Arc<Replayer>,
    faces: Faces,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<ReplayOutcome, AppError> {
    let done = match cfg.exit_when_done {
        Some(idle) => {
            let r = replayer.clone();
            Some(async move { r.done(idle).await })
        }
        None => None,
    };
    let stop = fan_out(async move {
        match done {
            Some(done) => tokio::select! {
                () = shutdown => {}
                () = done => tracing::info!("everything replayed: stopping"),
            },
            None => shutdown.await,
        }
    });
    let misses = misses(&cfg, &deps)?;
    let tasks = spawn_replay_faces(&cfg, &deps, &replayer, misses.clone(), faces, &stop)?;
    if let (true, Some(c)) = (cfg.ring_at_start, &cfg.cassette) {
        ring_at_start(&replayer, c);
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
    for t in tasks {
        let _ = t.await;
    }
    let _ = sweeper.await;
    drain(&replayer, &cfg).await;
    if let Some(m) = &misses {
        write_back(&deps, m, cfg.upstream_timeout).await?;
    }
    finish(&cfg, &replayer)
}

/// Capture-on-miss: once the recorders settle, every cassette that came from a JSON
/// file and gained events is written back to that file, so nothing appended is lost.
async fn write_back(deps: &Deps, misses: &Misses, patience: Duration) -> Result<(), AppError> {
    for rec in misses.recorders() {
        let _ = tokio::time::timeout(patience, rec.drain()).await;
    }
    deps.store.flush()?;
    for name in misses.cassettes() {
        let Some(source) = deps.store.info(&name)?.and_then(|s| s.source) else {
            tracing::info!(cassette = %name, "gained events; no JSON file to write back (export it to keep them)");
            continue;
        };
        let path = std::path::PathBuf::from(&source.path);
        super::export(&*deps.store, &name, Some(&path))?;
        tracing::info!(cassette = %name, file = %path.display(), "appended events written back");
    }
    Ok(())
}

/// Lets queued notifications go out before reporting: waits while deliveries make
/// progress; gives up after one delivery's worst case passes without any.
async fn drain(replayer: &Replayer, cfg: &ReplayConfig) {
    let patience = cfg.pacing.max_gap
        + cfg.notify_timeout * cfg.retry.attempts.max(1)
        + (1..cfg.retry.attempts).map(|n| cfg.retry.backoff(n)).sum::<Duration>()
        + Duration::from_secs(1);
    let mut last = replayer.totals().pending;
    let mut since = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while last > 0 && since.elapsed() < patience {
        tick.tick().await;
        let now = replayer.totals().pending;
        if now < last {
            since = tokio::time::Instant::now();
        }
        last = now;
    }
}

/// The run's outcome: every verdict, the CI reports written, `--expect-all` applied.
fn finish(cfg: &ReplayConfig, replayer: &Replayer) -> Result<ReplayOutcome, AppError> {
    let (outcomes, lost) = replayer.outcomes();
    let outcome = ReplayOutcome {
        reports: replayer.reports(),
        outcomes,
        lost,
        unused: replayer.unused_everywhere(),
        totals: replayer.totals(),
    };
    if let Some(path) = &cfg.report_junit {
        reports::write(path, &reports::junit(&outcome.outcomes))?;
    }
    if let Some(path) = &cfg.report_json {
        reports::write(path, &reports::json(&outcome))?;
    }
    if cfg.expect_all {
        let problems = outcome.problems();
        if !problems.is_empty() {
            return Err(AppError::ExpectAll(format!(
                "--expect-all: {} problem(s):\n  {}",
                problems.len(),
                problems.join("\n  ")
            )));
        }
    }
    Ok(outcome)
}

/// Rings the default cassette's incoming calls (if it has any) in `{cassette}-start`.
fn ring_at_start(replayer: &Replayer, cassette: &str) {
    if !replayer.cassette(cassette).is_ok_and(|c| !c.unattached().is_empty()) {
        return;
    }
    let name = format!("{cassette}-start");
    let start = Start {
        cassette: Some(cassette),
        session: Some(&name),
        ring_again: false,
        settings: None,
    };
    match replayer.start(&start) {
        Ok(s) => tracing::info!(session = %s.session, calls = ?s.calls, "incoming call(s) ringing"),
        Err(e) => tracing::warn!("start-up notifications: {e}"),
    }
}
