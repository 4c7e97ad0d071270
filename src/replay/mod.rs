//! Replay mode: routes a request to its session, matches it against the prepared
//! cassette, binds its ids, rewrites the recorded response and schedules the
//! notifications that follow it. Never contacts Graph.

mod prepared;
mod sessions;

pub use prepared::{Prepared, RecordedExchange};
pub use sessions::{Missed, Report, Served, Session, Sessions, REPORT_TAIL};

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Method;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::cassette::{Body, Headers, Store};
use crate::clock::Clock;
use crate::config::ReplayConfig;
use crate::error::ProxyError;
use crate::graph::{self, GraphPath, NotificationHeader, ResponseHeader};
use crate::ids::{self, Canon, IdTable, Pairing, Rewriter};
use crate::matching::Probe;
use crate::notify::{Job, Notifier, Outbox};
use crate::wire::{self, header_str, Resp};
use sessions::{lock_session, Route};

/// The replay engine behind the Graph face.
pub struct Replayer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    default_cassette: String,
    cassettes: RwLock<HashMap<String, Arc<Prepared>>>,
    pub sessions: Sessions,
    notifier: Arc<Notifier>,
    config: ReplayConfig,
    /// Requests that matched nothing, in all sessions ever.
    misses: AtomicU64,
}

/// Counts over a whole replay run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayTotals {
    pub misses: u64,
    pub delivered: u64,
    pub failed: u64,
    pub pending: usize,
}

/// A parsed live request.
struct Live<'a> {
    parts: &'a http::request::Parts,
    method: &'a str,
    /// Path and query as sent.
    pq: &'a str,
    path: GraphPath,
    query: Option<&'a str>,
    body: Body,
}

/// What a header rewrite does with one recorded header.
enum HeaderRule {
    /// Apply the id table.
    Rewrite,
    /// Use this value.
    Set(String),
    Drop,
}

/// Rewrites recorded headers; framing headers never carry over.
fn rewrite_headers(
    recorded: &Headers,
    rw: &mut Rewriter<'_>,
    mut rule: impl FnMut(&str, &str, &mut Rewriter<'_>) -> HeaderRule,
) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (n, v) in recorded {
        if wire::is_framing_header(n) {
            continue;
        }
        let lower = n.to_ascii_lowercase();
        let value = match rule(&lower, v, rw) {
            HeaderRule::Rewrite => rw.rewrite_str(v).into_owned(),
            HeaderRule::Set(x) => x,
            HeaderRule::Drop => continue,
        };
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_str(&value)) {
            out.append(n, v);
        }
    }
    out
}

/// `a=1&b=2` as (key, value) pairs.
fn query_pairs(q: &str) -> Vec<(&str, &str)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect()
}

/// What a new session's seed derives from: the request's path template, its ids and
/// every string it carries, order-free (so SDK key order and whitespace don't count).
fn seed_material(live: &Live<'_>) -> Vec<u8> {
    let mut parts: BTreeSet<String> = BTreeSet::new();
    for seg in &live.path.segments {
        parts.extend(ids::scan(seg).into_iter().map(|t| format!("id:{}", t.canon)));
    }
    if let Some(q) = live.query {
        parts.insert(format!("q:{q}"));
    }
    match &live.body {
        Body::Json(v) => ids::visit_strings(v, &mut |k, _, s| {
            parts.insert(format!("{}={s}", k.unwrap_or("")));
        }),
        Body::Text(t) => {
            parts.insert(format!("text:{t}"));
        }
        _ => {}
    }
    let mut out = format!("{} {}\n", live.method, live.path.template()).into_bytes();
    for p in parts {
        out.extend_from_slice(p.as_bytes());
        out.push(b'\n');
    }
    out
}

impl Replayer {
    pub fn new(
        config: ReplayConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        notifier: Arc<Notifier>,
        first: Arc<Prepared>,
    ) -> Replayer {
        let sessions = Sessions::new(config.session_idle.as_millis() as u64, config.max_sessions);
        let mut cassettes = HashMap::new();
        cassettes.insert(first.name().to_string(), first);
        Replayer {
            store,
            clock,
            default_cassette: config.cassette.clone(),
            cassettes: RwLock::new(cassettes),
            sessions,
            notifier,
            config,
            misses: AtomicU64::new(0),
        }
    }

    /// The prepared cassette `name`, loaded from the store on first use.
    pub fn cassette(&self, name: &str) -> Result<Arc<Prepared>, ProxyError> {
        if let Some(c) = self.cassettes.read().ok().and_then(|m| m.get(name).cloned()) {
            return Ok(c);
        }
        crate::cassette::validate_name(name).map_err(|e| ProxyError::BadRequest(e.to_string()))?;
        let c = self
            .store
            .load(name)?
            .ok_or_else(|| ProxyError::NotFound(format!("no cassette named `{name}` in the store")))?;
        let p = Arc::new(Prepared::new(c));
        if let Ok(mut m) = self.cassettes.write() {
            m.insert(name.to_string(), p.clone());
        }
        Ok(p)
    }

    pub fn default_cassette(&self) -> &str {
        &self.default_cassette
    }

    /// Answers one bot request from the cassette.
    pub fn handle(&self, parts: &http::request::Parts, body: Bytes) -> Resp {
        match self.serve(parts, &body) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(method = %parts.method, uri = %parts.uri, "{e}");
                let material = [
                    parts.method.as_str().as_bytes(),
                    parts.uri.to_string().as_bytes(),
                    &body,
                ]
                .concat();
                e.respond(&*self.clock, &material)
            }
        }
    }

    fn serve(&self, parts: &http::request::Parts, body: &Bytes) -> Result<Resp, ProxyError> {
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let (path, query) = graph::split_uri(pq);
        let gp = GraphPath::parse(path).ok_or_else(|| {
            ProxyError::NotFound(format!(
                "`{path}` is not a Graph path: graphvcr serves /v1.0/... and /beta/... (admin: /_graphvcr/)"
            ))
        })?;
        let live = Live {
            parts,
            method: parts.method.as_str(),
            pq,
            path: gp,
            query,
            body: Body::from_bytes(body),
        };
        let cassette = match header_str(&parts.headers, "x-graphvcr-cassette") {
            Some(name) => self.cassette(name)?,
            None => self.cassette(&self.default_cassette)?,
        };
        let path_ids: Vec<Canon> = live
            .path
            .id_segments()
            .flat_map(|s| ids::scan(s).into_iter().map(|t| t.canon))
            .collect();
        // a create-call makes a new call: ids in its body (a meeting's thread) never
        // route it into another call's session
        let body_ids = match live.body.json() {
            Some(v) if !graph::creates_call(live.method, &live.path.segments) => ids::call_scoped(v),
            _ => Vec::new(),
        };
        let material = || seed_material(&live);
        let route = Route {
            header: header_str(&parts.headers, "x-graphvcr-session"),
            path_ids: &path_ids,
            body_ids: &body_ids,
            seed_material: &material,
        };
        // a session can end (idle, evicted) between finding it and locking it
        for _ in 0..3 {
            let session = self.sessions.find_or_create(&cassette, &route, self.clock.mono_ms())?;
            let mut s = lock_session(&session);
            if self.sessions.is_current(&session, &s.id) {
                return self.serve_in(&mut s, &live);
            }
        }
        Err(ProxyError::Busy("replay sessions are churning; retry".into()))
    }

    /// Serves `live` inside its (locked) session.
    fn serve_in(&self, s: &mut Session, live: &Live<'_>) -> Result<Resp, ProxyError> {
        let cassette = s.cassette.clone();
        let probe = Probe::from_parts(live.method, &live.path, live.query, &live.body);
        let shown = crate::matching::clip(&format!("{} {}", live.method, live.pq), 300);
        let fits = cassette.index.fits(&probe);
        let Some(best) = fits.first() else {
            let (nearest, reason) = cassette.index.explain_miss(&probe);
            let nearest_seq = nearest.map(|e| cassette.exchange_event(e).seq);
            s.note_missed(Missed {
                request: shown,
                nearest_seq,
                reason: reason.clone(),
            });
            self.misses.fetch_add(1, Ordering::Relaxed);
            return Err(ProxyError::Miss {
                message: format!("cassette `{}`: {reason}", cassette.name()),
                nearest: nearest_seq,
            });
        };
        let (entry, repeated) = match fits.iter().find(|f| s.served_count[f.entry] == 0) {
            Some(f) => (f.entry, false),
            None => (fits.iter().map(|f| f.entry).max().unwrap_or(best.entry), true),
        };
        let rec = &cassette.exchanges[entry];
        let rec_ev = cassette.exchange_event(entry);

        // bind: walk the recorded request beside the live one
        let mut pairing = Pairing::default();
        if let Some(rp) = &rec.path {
            for (a, b) in rp.segments.iter().zip(&live.path.segments) {
                pairing.strs(a, b, None, graph::is_id_segment(a));
            }
        }
        if let (Some(a), Some(b)) = (&rec.query, live.query) {
            let mut lq = query_pairs(b);
            for (k, v) in query_pairs(a) {
                if let Some(i) = lq.iter().position(|(lk, _)| *lk == k) {
                    pairing.strs(v, lq.remove(i).1, None, false);
                }
            }
        }
        match (&rec_ev.request.body, &live.body) {
            (Body::Json(a), Body::Json(b)) => pairing.json(a, b, None),
            (Body::Text(a), Body::Text(b)) => pairing.strs(a, b, None, false),
            _ => {}
        }
        let claims: Vec<Canon> = pairing
            .tokens
            .iter()
            .filter(|p| p.call_scoped && !cassette.recorded_ids.contains(&p.live))
            .map(|p| p.live.clone())
            .collect();
        // reserve the request's ids (or refuse) before anything changes
        self.sessions.claim(&s.id, &claims)?;
        let mut scoped = IdTable::default();
        let mut request_scoped = Vec::new();
        for p in &pairing.tokens {
            if s.table
                .bind(p.recorded.clone(), &p.rec_text, p.live.clone(), &p.live_text)
                == ids::BindOutcome::Conflict
            {
                scoped.bind(p.recorded.clone(), &p.rec_text, p.live.clone(), &p.live_text);
                request_scoped.push(format!("{} -> {}", p.recorded, p.live));
            }
        }
        for (k, r, l) in &pairing.strings {
            s.table.bind_string(k, r, l);
        }
        if graph::carries_callback_uri(live.method, &live.path.segments) {
            if let Some(cb) = live
                .body
                .json()
                .and_then(|v| v.get("callbackUri"))
                .and_then(Value::as_str)
            {
                s.callback_uri = Some(cb.to_string());
            }
        }

        // rewrite the response and the notifications that follow it
        let origin = wire::request_origin(&live.parts.headers, &live.parts.uri);
        let count = s.served_count[entry];
        let seed = s.seed;
        let (mut resp, jobs, minted) = {
            let mut rw = Rewriter::new(&scoped, &mut s.table, &cassette.stable, &seed);
            let request_id = [(entry as u64).to_be_bytes(), u64::from(count).to_be_bytes()].concat();
            let mut headers =
                rewrite_headers(
                    &rec_ev.response.headers,
                    &mut rw,
                    |name, v, rw| match graph::response_header(name) {
                        ResponseHeader::Relocate => HeaderRule::Set(graph::relocate(
                            &rw.rewrite_str(v),
                            origin.as_deref(),
                            &live.path.version,
                        )),
                        ResponseHeader::Echo => match header_str(&live.parts.headers, name) {
                            Some(echo) => HeaderRule::Set(echo.to_string()),
                            None => HeaderRule::Rewrite,
                        },
                        ResponseHeader::Regenerate => HeaderRule::Set(seed.guid(name, &request_id)),
                        ResponseHeader::Rewrite => HeaderRule::Rewrite,
                    },
                );
            if let Ok(v) = HeaderValue::from_str(&s.id) {
                headers.insert(HeaderName::from_static("x-graphvcr-session"), v);
            }
            let body = rw.rewrite_body(&rec_ev.response.body);
            let status = rec_ev.response.status.unwrap_or(200);
            let resp = wire::response(status, headers, body.to_bytes());
            let jobs = self.notification_jobs(
                &cassette,
                &cassette.follows[entry],
                rec_ev.done_ms(),
                &mut rw,
                s.callback_uri.as_deref(),
                s.batches,
            );
            (resp, jobs, rw.minted)
        };
        s.batches += 1;
        s.served_count[entry] += 1;
        s.note_served(Served {
            seq: rec_ev.seq,
            request: shown,
            repeated,
            request_scoped,
        });
        self.sessions.claim_minted(&s.id, &minted);
        cassette.mark_used(entry);
        tracing::info!(session = %s.id, seq = rec_ev.seq, repeated, notifications = jobs.len(), "served");
        if !jobs.is_empty() {
            let after = resp.body_mut().on_sent();
            self.dispatch(s, after, jobs);
        }
        Ok(resp)
    }

    /// Queues a batch of notifications to start once `after` fires (the triggering
    /// response is out). Called under the session lock, so batches keep the order
    /// their responses were served in.
    fn dispatch(&self, s: &mut Session, after: oneshot::Receiver<()>, mut jobs: Vec<Job>) {
        let Some(first) = jobs.first_mut() else {
            return;
        };
        first.batch_start = Some(after);
        let outbox = match &s.outbox {
            Some(o) => o,
            None => {
                let o = Outbox::new(self.notifier.clone());
                self.sessions.set_pending(&s.id, o.pending_counter());
                s.outbox.insert(o)
            }
        };
        outbox.push_batch(jobs);
    }

    /// Rewrites and addresses a batch of notifications, paced from `after_ms`.
    fn notification_jobs(
        &self,
        cassette: &Prepared,
        events: &[usize],
        after_ms: u64,
        rw: &mut Rewriter<'_>,
        callback_uri: Option<&str>,
        batch: u64,
    ) -> Vec<Job> {
        let offsets: Vec<u64> = events
            .iter()
            .map(|&i| cassette.events[i].at_ms.saturating_sub(after_ms))
            .collect();
        let waits = self.config.pacing.schedule(&offsets);
        events
            .iter()
            .zip(waits)
            .map(|(&i, wait)| {
                let ev = &cassette.events[i];
                let mut headers =
                    rewrite_headers(
                        &ev.request.headers,
                        rw,
                        |name, _, rw| match graph::notification_header(name) {
                            NotificationHeader::Drop => HeaderRule::Drop,
                            NotificationHeader::Fresh => HeaderRule::Set(
                                rw.seed
                                    .guid(name, &[ev.seq.to_be_bytes(), batch.to_be_bytes()].concat()),
                            ),
                            NotificationHeader::Rewrite => HeaderRule::Rewrite,
                        },
                    );
                if !headers.contains_key(header::CONTENT_TYPE) && ev.request.body.json().is_some() {
                    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                let body = rw.rewrite_body(&ev.request.body);
                let uri = rw.rewrite_str(&ev.request.uri).into_owned();
                Job {
                    seq: ev.seq,
                    method: Method::from_bytes(ev.request.method.as_bytes()).unwrap_or(Method::POST),
                    url: self.notifier.target(callback_uri, &uri),
                    headers,
                    body: Bytes::from(body.to_bytes()),
                    wait,
                    batch_start: None,
                }
            })
            .collect()
    }

    /// Starts a session explicitly (admin API, start-up) and delivers the cassette's
    /// notifications that need no trigger (`follows: null`), e.g. an incoming call,
    /// with ids minted for it that later requests can use.
    pub fn start_session(&self, cassette: &str, id: Option<&str>) -> Result<String, ProxyError> {
        let cassette = self.cassette(cassette)?;
        let name = id.map_or_else(|| format!("{}-start", cassette.name()), str::to_string);
        let route = Route {
            header: Some(&name),
            path_ids: &[],
            body_ids: &[],
            seed_material: &Vec::new,
        };
        let session = self.sessions.find_or_create(&cassette, &route, self.clock.mono_ms())?;
        let mut s = lock_session(&session);
        if !self.sessions.is_current(&session, &s.id) {
            return Err(ProxyError::Conflict(format!(
                "replay session {} ended while starting",
                s.id
            )));
        }
        if s.batches > 0 || cassette.unattached.is_empty() {
            return Ok(s.id.clone());
        }
        let first_ms = cassette.unattached.first().map_or(0, |&i| cassette.events[i].at_ms);
        let seed = s.seed;
        let scoped = IdTable::default();
        let (jobs, minted) = {
            let mut rw = Rewriter::new(&scoped, &mut s.table, &cassette.stable, &seed);
            let jobs = self.notification_jobs(&cassette, &cassette.unattached, first_ms, &mut rw, None, 0);
            (jobs, rw.minted)
        };
        self.sessions.claim_minted(&s.id, &minted);
        s.batches += 1;
        // no response triggers these: their batch starts now
        let (now, after) = oneshot::channel();
        let _ = now.send(());
        self.dispatch(&mut s, after, jobs);
        Ok(s.id.clone())
    }

    /// Totals over every session ever (they outlive the ring of ended reports).
    pub fn totals(&self) -> ReplayTotals {
        let n = &self.notifier.totals;
        ReplayTotals {
            misses: self.misses.load(Ordering::Relaxed),
            delivered: n.delivered.load(Ordering::Relaxed),
            failed: n.failed.load(Ordering::Relaxed),
            pending: n.pending.load(Ordering::SeqCst),
        }
    }

    /// Exchanges of the default cassette that no session used.
    pub fn unused_everywhere(&self) -> Vec<u64> {
        self.cassette(&self.default_cassette)
            .map(|c| c.unused())
            .unwrap_or_default()
    }
}
