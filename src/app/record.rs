//! Wiring for `record`: the empty cassette, the recorder, the Graph face forwarding
//! to the upstream, the callback face forwarding to the bot, the proxy face; on stop,
//! notifications settled, the store flushed and the cassette exported if asked.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::faces::{handler, spawn_handler, GraphFace, Mode};
use super::proxy::{spawn_proxy, IdentityRoute, ProxyFace, Secure};
use super::{export, fan_out, AppError, Deps, Faces};
use crate::admin::{Admin, Guard};
use crate::cassette::{Cassette, Meta, Store};
use crate::clock;
use crate::config::RecordConfig;
use crate::http::client::HttpClient;
use crate::record::{CallbackFace, RecordFace, Recorder};

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

/// `graphvcr record` on the Graph and callback faces.
pub async fn run_record(
    cfg: RecordConfig,
    deps: Deps,
    graph_listener: TcpListener,
    callback_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<RecordOutcome, AppError> {
    let faces = Faces {
        graph: graph_listener,
        callbacks: callback_listener,
        proxy: None,
    };
    run_record_faces(cfg, deps, faces, shutdown).await
}

/// `graphvcr record`: serves until `shutdown`, then flushes (and exports if asked).
pub async fn run_record_faces(
    cfg: RecordConfig,
    deps: Deps,
    faces: Faces,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<RecordOutcome, AppError> {
    let store = deps.store.clone();
    let (graph_listener, callback_listener) = (faces.graph, faces.callbacks);
    if callback_listener.is_some() && cfg.bot_url.is_none() {
        return Err(AppError::Usage(
            "--callback-listen needs --bot-url (where notifications are forwarded)".into(),
        ));
    }
    let upstream = HttpClient::new(cfg.upstream_ca.as_deref(), cfg.upstream_timeout, cfg.limits.max_body)
        .map_err(|e| AppError::Usage(e.to_string()))?;
    let secure = Secure::load(&cfg.tls, &cfg.proxy, faces.proxy.is_some(), &deps.clock)?;
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
    let face = Arc::new(GraphFace::new(
        Admin::new("record", store.clone(), None, deps.clock.clone())
            .with_guard(Guard::new(graph_listener.local_addr().ok(), &cfg.limits.admin_hosts)),
        Mode::Record(Arc::new(RecordFace::new(
            recorder.clone(),
            upstream.clone(),
            cfg.upstream.clone(),
            deps.clock.clone(),
        ))),
        deps.clock.clone(),
    ));
    let opts = secure.options(&cfg.limits, &cfg.tls, cfg.tls.graph)?;
    let h = handler(face.clone(), &cfg.limits, &deps.clock);
    tasks.push(spawn_handler(graph_listener, h, opts, "graph", &stop)?);
    if let (Some(l), Some(bot)) = (callback_listener, &cfg.bot_url) {
        let face = CallbackFace::new(recorder.clone(), upstream.clone(), bot.clone(), deps.clock.clone());
        let opts = secure.options(&cfg.limits, &cfg.tls, cfg.tls.callbacks)?;
        let h = handler(Arc::new(face), &cfg.limits, &deps.clock);
        tasks.push(spawn_handler(l, h, opts, "callbacks", &stop)?);
    }
    if let Some(l) = faces.proxy {
        let face = ProxyFace {
            graph: face,
            identity: IdentityRoute::Forward(Box::new((upstream.clone(), cfg.proxy.clone()))),
            client: upstream.clone(),
            refuse_others: false,
        };
        tasks.push(spawn_proxy(
            l,
            face,
            &cfg.proxy,
            &secure,
            &cfg.limits,
            &deps.clock,
            &stop,
        )?);
    }
    for t in tasks {
        let _ = t.await;
    }
    finish(cfg, &store, &recorder).await
}

/// After the faces stopped: notifications settled, the store flushed, the cassette
/// exported if asked.
async fn finish(cfg: RecordConfig, store: &Arc<dyn Store>, recorder: &Recorder) -> Result<RecordOutcome, AppError> {
    let _ = tokio::time::timeout(cfg.upstream_timeout, recorder.drain()).await;
    store.flush()?;
    let events = store.info(&cfg.cassette)?.map_or(0, |s| s.events);
    tracing::info!(cassette = %cfg.cassette, events, "recording stopped");
    let exported = match &cfg.export {
        Some(path) => {
            export(&**store, &cfg.cassette, Some(path))?;
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
