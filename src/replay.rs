//! Replay mode: prepared cassettes (index built once at load), sessions and their
//! global id index, matching a request to a recording, binding its ids, rewriting the
//! response and scheduling the notifications that follow it. Never contacts Graph.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use serde_json::Value;

use crate::cassette::{Body, Cassette, Event, Kind, Meta, Store};
use crate::clock::Clock;
use crate::config::ReplayConfig;
use crate::error::ProxyError;
use crate::graph::{self, GraphPath};
use crate::ids::{self, Canon, IdTable, Pairing, Rewriter, Seed};
use crate::matching::{Index, Probe};
use crate::notify::{Delivery, Job, Notifier, Outbox};
use crate::wire::{self, Resp};

/// A recorded exchange, parsed once.
#[derive(Debug)]
pub struct RecordedExchange {
    /// Index into the cassette's events.
    pub event: usize,
    pub path: Option<GraphPath>,
    pub query: Option<String>,
}

/// A cassette ready to serve: index by key, notifications by the exchange they follow,
/// the ids that stay stable, every id it mentions.
#[derive(Debug)]
pub struct Prepared {
    pub meta: Meta,
    pub events: Vec<Event>,
    pub exchanges: Vec<RecordedExchange>,
    pub index: Index,
    /// Per exchange (index entry): the notifications that follow it, in order.
    pub follows: Vec<Vec<usize>>,
    /// Notifications that need no trigger (`follows: null`).
    pub unattached: Vec<usize>,
    /// Ids at identity positions (tenant, users, apps): never minted.
    pub stable: HashSet<Canon>,
    /// Every id the cassette mentions (a live id equal to one is "bound to itself").
    pub recorded_ids: HashSet<Canon>,
}

fn collect_ids(v: &Value, out: &mut HashSet<Canon>) {
    match v {
        Value::String(s) => out.extend(ids::scan(s).into_iter().map(|t| t.canon)),
        Value::Array(a) => a.iter().for_each(|x| collect_ids(x, out)),
        Value::Object(o) => o.values().for_each(|x| collect_ids(x, out)),
        _ => {}
    }
}

impl Prepared {
    pub fn new(c: Cassette) -> Prepared {
        let mut exchanges = Vec::new();
        let mut probes = Vec::new();
        let mut entry_of_seq = HashMap::new();
        let mut stable = HashSet::new();
        let mut recorded_ids = HashSet::new();
        for (i, e) in c.events.iter().enumerate() {
            for b in [&e.request.body, &e.response.body] {
                match b {
                    Body::Json(v) => {
                        ids::collect_stable(v, None, &mut stable);
                        collect_ids(v, &mut recorded_ids);
                    }
                    Body::Text(s) => {
                        ids::collect_appids(s, &mut stable);
                        recorded_ids.extend(ids::scan(s).into_iter().map(|t| t.canon));
                    }
                    _ => {}
                }
            }
            recorded_ids.extend(ids::scan(&e.request.uri).into_iter().map(|t| t.canon));
            if e.kind != Kind::Exchange {
                continue;
            }
            let (path, query) = graph::split_uri(&e.request.uri);
            let gp = GraphPath::parse(path);
            let probe = match &gp {
                Some(gp) => Probe::from_parts(&e.request.method, gp, query, &e.request.body),
                // not a Graph path: indexed under a key no Graph request produces
                None => Probe {
                    method: e.request.method.to_ascii_uppercase(),
                    version: String::new(),
                    template: path.to_string(),
                    query: String::new(),
                    shape: crate::matching::Shape::of_body(&e.request.body),
                },
            };
            entry_of_seq.insert(e.seq, exchanges.len());
            probes.push(probe);
            exchanges.push(RecordedExchange {
                event: i,
                path: gp,
                query: query.map(str::to_string),
            });
        }
        let mut follows = vec![Vec::new(); exchanges.len()];
        let mut unattached = Vec::new();
        for (i, e) in c.events.iter().enumerate() {
            if e.kind != Kind::Notification {
                continue;
            }
            match e.follows.and_then(|s| entry_of_seq.get(&s)) {
                Some(&x) => follows[x].push(i),
                None => unattached.push(i),
            }
        }
        Prepared {
            meta: c.meta,
            events: c.events,
            exchanges,
            index: Index::build(probes),
            follows,
            unattached,
            stable,
            recorded_ids,
        }
    }

    pub fn name(&self) -> &str {
        &self.meta.name
    }

    fn exchange_event(&self, entry: usize) -> &Event {
        &self.events[self.exchanges[entry].event]
    }
}

/// One served request, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct Served {
    pub seq: u64,
    pub request: String,
    /// Every matching recording was already used: the last one was served again.
    pub repeated: bool,
    /// Bindings kept for this request only (they would have broken the bijection).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request_scoped: Vec<String>,
}

/// One request that matched nothing.
#[derive(Debug, Clone, Serialize)]
pub struct Missed {
    pub request: String,
    pub nearest_seq: Option<u64>,
    pub reason: String,
}

/// A session's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub session: String,
    pub cassette: String,
    pub active: bool,
    pub served: Vec<Served>,
    pub missed: Vec<Missed>,
    pub notifications: Vec<Delivery>,
    pub notifications_pending: usize,
    /// Recorded exchanges this session never used.
    pub unused: Vec<u64>,
    /// Recorded id -> live id.
    pub bindings: Vec<(String, String)>,
}

impl Report {
    pub fn clean(&self) -> bool {
        self.missed.is_empty() && self.unused.is_empty() && self.notifications.iter().all(|d| d.delivered)
    }
}

/// One replay of one cassette for one scenario.
pub struct Session {
    pub id: String,
    pub cassette: Arc<Prepared>,
    pub seed: Seed,
    pub table: IdTable,
    /// Times each exchange (index entry) was served.
    pub served_count: Vec<u32>,
    pub callback_uri: Option<String>,
    pub served: Vec<Served>,
    pub missed: Vec<Missed>,
    pub outbox: Option<Outbox>,
    /// Notification batches scheduled so far (message ids derive from it).
    pub batches: u64,
}

impl Session {
    fn report(&self, active: bool) -> Report {
        let unused = self
            .served_count
            .iter()
            .enumerate()
            .filter(|(_, n)| **n == 0)
            .map(|(i, _)| self.cassette.exchange_event(i).seq)
            .collect();
        let mut bindings: Vec<(String, String)> = self
            .table
            .iter()
            .map(|(r, b)| (r.to_string(), b.live.to_string()))
            .collect();
        bindings.sort();
        Report {
            session: self.id.clone(),
            cassette: self.cassette.name().to_string(),
            active,
            served: self.served.clone(),
            missed: self.missed.clone(),
            notifications: self.outbox.as_ref().map(Outbox::log).unwrap_or_default(),
            notifications_pending: self.outbox.as_ref().map_or(0, Outbox::pending),
            unused,
            bindings,
        }
    }
}

struct Entry {
    session: Arc<Mutex<Session>>,
    last_used_ms: u64,
    /// Live ids this session owns in the index.
    owned: Vec<Canon>,
    pending: Option<Arc<AtomicUsize>>,
}

impl Entry {
    fn busy(&self) -> bool {
        self.pending.as_ref().is_some_and(|p| p.load(Ordering::SeqCst) > 0)
    }
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<String, Entry>,
    /// Live id -> owning session.
    index: HashMap<Canon, String>,
    ended: VecDeque<Report>,
}

/// All sessions and the global index of live ids.
pub struct Sessions {
    inner: Mutex<Inner>,
    idle_ms: u64,
    max: usize,
    ended_max: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sessions {
    pub fn new(idle_ms: u64, max: usize) -> Sessions {
        Sessions {
            inner: Mutex::new(Inner::default()),
            idle_ms,
            max: max.max(1),
            ended_max: 1024,
        }
    }

    /// Finds the session a request belongs to, or creates it.
    fn find_or_create(
        &self,
        cassette: &Arc<Prepared>,
        header: Option<&str>,
        path_ids: &[Canon],
        body_ids: &[Canon],
        now_ms: u64,
    ) -> Result<Arc<Mutex<Session>>, ProxyError> {
        let mut inner = lock(&self.inner);
        let found = match header {
            Some(h) => inner.by_id.contains_key(h).then(|| h.to_string()),
            None => {
                let owner = |ids: &[Canon]| -> Result<Option<String>, ProxyError> {
                    let owners: HashSet<&String> = ids.iter().filter_map(|c| inner.index.get(c)).collect();
                    match owners.len() {
                        0 => Ok(None),
                        1 => Ok(owners.into_iter().next().cloned()),
                        _ => Err(ProxyError::Conflict(format!(
                            "the request's ids belong to {} different replay sessions",
                            owners.len()
                        ))),
                    }
                };
                match owner(path_ids)? {
                    Some(s) => Some(s),
                    None => owner(body_ids)?,
                }
            }
        };
        if let Some(id) = found {
            if let Some(e) = inner.by_id.get_mut(&id) {
                e.last_used_ms = now_ms;
                return Ok(e.session.clone());
            }
        }
        if inner.by_id.len() >= self.max {
            self.sweep_locked(&mut inner, now_ms);
        }
        if inner.by_id.len() >= self.max {
            self.evict_lru(&mut inner)?;
        }
        let mut parts: Vec<Vec<u8>> = vec![cassette.name().as_bytes().to_vec()];
        if let Some(h) = header {
            parts.push(h.as_bytes().to_vec());
        }
        parts.extend(path_ids.iter().chain(body_ids).map(|c| c.to_string().into_bytes()));
        let seed = Seed::derive(parts.iter().map(Vec::as_slice));
        let id = match header {
            Some(h) => h.to_string(),
            None => {
                let base = format!("s-{}", seed.short());
                let mut id = base.clone();
                let mut n = 1;
                while inner.by_id.contains_key(&id) {
                    n += 1;
                    id = format!("{base}-{n}");
                }
                id
            }
        };
        let session = Arc::new(Mutex::new(Session {
            id: id.clone(),
            cassette: cassette.clone(),
            seed,
            table: IdTable::default(),
            served_count: vec![0; cassette.exchanges.len()],
            callback_uri: None,
            served: Vec::new(),
            missed: Vec::new(),
            outbox: None,
            batches: 0,
        }));
        // claim the path ids now, so a concurrent request for the same call waits on
        // this session instead of creating another
        let owned: Vec<Canon> = path_ids
            .iter()
            .filter(|c| !cassette.recorded_ids.contains(*c) && !inner.index.contains_key(*c))
            .cloned()
            .collect();
        for c in &owned {
            inner.index.insert(c.clone(), id.clone());
        }
        inner.by_id.insert(
            id.clone(),
            Entry {
                session: session.clone(),
                last_used_ms: now_ms,
                owned,
                pending: None,
            },
        );
        tracing::debug!(session = %id, cassette = %cassette.name(), "session started");
        Ok(session)
    }

    /// Registers live ids for a session; refuses ids another session owns.
    fn claim(&self, session: &str, ids: &[Canon]) -> Result<(), ProxyError> {
        let mut inner = lock(&self.inner);
        if let Some(other) = ids
            .iter()
            .filter_map(|c| inner.index.get(c))
            .find(|o| o.as_str() != session)
        {
            return Err(ProxyError::Conflict(format!(
                "an id of this request already belongs to replay session {other}"
            )));
        }
        let mut fresh = Vec::new();
        for c in ids {
            if !inner.index.contains_key(c) {
                inner.index.insert(c.clone(), session.to_string());
                fresh.push(c.clone());
            }
        }
        if let Some(e) = inner.by_id.get_mut(session) {
            e.owned.extend(fresh);
        }
        Ok(())
    }

    fn conflicts(&self, session: &str, ids: &[Canon]) -> Option<String> {
        let inner = lock(&self.inner);
        ids.iter()
            .filter_map(|c| inner.index.get(c))
            .find(|o| o.as_str() != session)
            .cloned()
    }

    fn set_pending(&self, session: &str, pending: Arc<AtomicUsize>) {
        if let Some(e) = lock(&self.inner).by_id.get_mut(session) {
            e.pending = Some(pending);
        }
    }

    fn end_locked(&self, inner: &mut Inner, id: &str) -> Option<Report> {
        let e = inner.by_id.remove(id)?;
        for c in &e.owned {
            if inner.index.get(c).is_some_and(|o| o == id) {
                inner.index.remove(c);
            }
        }
        let report = lock(&e.session).report(false);
        if inner.ended.len() >= self.ended_max {
            inner.ended.pop_front();
        }
        inner.ended.push_back(report.clone());
        Some(report)
    }

    fn sweep_locked(&self, inner: &mut Inner, now_ms: u64) {
        let expired: Vec<String> = inner
            .by_id
            .iter()
            .filter(|(_, e)| !e.busy() && now_ms.saturating_sub(e.last_used_ms) >= self.idle_ms)
            .filter(|(_, e)| e.session.try_lock().is_ok())
            .map(|(k, _)| k.clone())
            .collect();
        for id in expired {
            tracing::debug!(session = %id, "session expired");
            self.end_locked(inner, &id);
        }
    }

    fn evict_lru(&self, inner: &mut Inner) -> Result<(), ProxyError> {
        let victim = inner
            .by_id
            .iter()
            .filter(|(_, e)| !e.busy() && e.session.try_lock().is_ok())
            .min_by_key(|(k, e)| (e.last_used_ms, (*k).clone()))
            .map(|(k, _)| k.clone());
        match victim {
            Some(id) => {
                tracing::debug!(session = %id, "session evicted (session limit)");
                self.end_locked(inner, &id);
                Ok(())
            }
            None => Err(ProxyError::Busy(format!(
                "all {} replay sessions are busy; raise --max-sessions",
                self.max
            ))),
        }
    }

    /// Ends idle sessions.
    pub fn sweep(&self, now_ms: u64) {
        let mut inner = lock(&self.inner);
        self.sweep_locked(&mut inner, now_ms);
    }

    /// Ends a session now and returns its final report.
    pub fn end(&self, id: &str) -> Option<Report> {
        let mut inner = lock(&self.inner);
        self.end_locked(&mut inner, id)
    }

    fn get(&self, id: &str) -> Option<Arc<Mutex<Session>>> {
        lock(&self.inner).by_id.get(id).map(|e| e.session.clone())
    }

    /// Reports of live and ended sessions.
    pub fn reports(&self) -> Vec<Report> {
        let (live, mut out): (Vec<Arc<Mutex<Session>>>, Vec<Report>) = {
            let inner = lock(&self.inner);
            (
                inner.by_id.values().map(|e| e.session.clone()).collect(),
                inner.ended.iter().cloned().collect(),
            )
        };
        out.extend(live.iter().map(|s| lock(s).report(true)));
        out.sort_by(|a, b| a.session.cmp(&b.session));
        out
    }

    pub fn report(&self, id: &str) -> Option<Report> {
        if let Some(s) = self.get(id) {
            return Some(lock(&s).report(true));
        }
        lock(&self.inner).ended.iter().rev().find(|r| r.session == id).cloned()
    }

    /// Deliveries queued or in progress across every live session.
    pub fn pending_deliveries(&self) -> usize {
        lock(&self.inner)
            .by_id
            .values()
            .filter_map(|e| e.pending.as_ref())
            .map(|p| p.load(Ordering::SeqCst))
            .sum()
    }

    pub fn live_count(&self) -> usize {
        lock(&self.inner).by_id.len()
    }
}

/// The replay engine behind the Graph face.
pub struct Replayer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    default_cassette: String,
    cassettes: RwLock<HashMap<String, Arc<Prepared>>>,
    pub sessions: Sessions,
    notifier: Arc<Notifier>,
    config: ReplayConfig,
}

/// A response built from a recording, before it is sent.
struct Prepped {
    resp: Resp,
    jobs: Vec<Job>,
    outbox: Option<Outbox>,
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
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

    /// Answers one bot request from the cassette.
    pub fn handle(&self, parts: &http::request::Parts, body: Bytes) -> Resp {
        let material = [
            parts.method.as_str().as_bytes(),
            parts.uri.to_string().as_bytes(),
            &body,
        ]
        .concat();
        match self.serve(parts, &body) {
            Ok(p) => {
                let Prepped { mut resp, jobs, outbox } = p;
                if let Some(outbox) = outbox {
                    let mut jobs = jobs.into_iter();
                    if let Some(mut first) = jobs.next() {
                        first.batch_start = Some(resp.body_mut().on_sent());
                        outbox.push(first);
                    }
                    jobs.for_each(|j| outbox.push(j));
                }
                resp
            }
            Err(e) => {
                tracing::warn!(method = %parts.method, uri = %parts.uri, "{e}");
                e.respond(&*self.clock, &material)
            }
        }
    }

    fn serve(&self, parts: &http::request::Parts, body: &Bytes) -> Result<Prepped, ProxyError> {
        let live_body = Body::from_bytes(body);
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let (path, query) = graph::split_uri(pq);
        let gp = GraphPath::parse(path).ok_or_else(|| {
            ProxyError::NotFound(format!(
                "`{path}` is not a Graph path: graphvcr serves /v1.0/... and /beta/... (admin: /_graphvcr/)"
            ))
        })?;
        let method = parts.method.as_str();
        let cassette = match header_str(&parts.headers, "x-graphvcr-cassette") {
            Some(name) => self.cassette(name)?,
            None => self.cassette(&self.default_cassette)?,
        };
        let probe = Probe::from_parts(method, &gp, query, &live_body);
        let path_ids: Vec<Canon> = gp
            .id_segments()
            .flat_map(|s| ids::scan(s).into_iter().map(|t| t.canon))
            .collect();
        let body_ids = call_scoped_ids(&live_body);
        let session = self.sessions.find_or_create(
            &cassette,
            header_str(&parts.headers, "x-graphvcr-session"),
            &path_ids,
            &body_ids,
            self.clock.mono_ms(),
        )?;
        let mut s = lock(&session);
        let cassette = s.cassette.clone();
        let shown = format!("{method} {pq}");

        let fits = cassette.index.fits(&probe);
        let Some(best) = fits.first() else {
            let (nearest, reason) = cassette.index.explain_miss(&probe);
            let nearest_seq = nearest.map(|e| cassette.exchange_event(e).seq);
            s.missed.push(Missed {
                request: shown,
                nearest_seq,
                reason: reason.clone(),
            });
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
            for (a, b) in rp.segments.iter().zip(&gp.segments) {
                pairing.strs(a, b, graph::is_id_segment(a));
            }
        }
        if let (Some(a), Some(b)) = (&rec.query, query) {
            pairing.strs(a, b, false);
        }
        match (&rec_ev.request.body, &live_body) {
            (Body::Json(a), Body::Json(b)) => pairing.json(a, b, None),
            (Body::Text(a), Body::Text(b)) => pairing.strs(a, b, false),
            _ => {}
        }
        let claims: Vec<Canon> = pairing
            .tokens
            .iter()
            .filter(|p| p.call_scoped && !cassette.recorded_ids.contains(&p.live))
            .map(|p| p.live.clone())
            .collect();
        if let Some(other) = self.sessions.conflicts(&s.id, &claims) {
            return Err(ProxyError::Conflict(format!(
                "an id of this request already belongs to replay session {other}"
            )));
        }
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
        for (r, l) in &pairing.strings {
            s.table.bind_string(r, l);
        }
        if graph::carries_callback_uri(method, &gp.segments) {
            if let Some(cb) = live_body
                .json()
                .and_then(|v| v.get("callbackUri"))
                .and_then(Value::as_str)
            {
                s.callback_uri = Some(cb.to_string());
            }
        }

        // rewrite the response and the notifications that follow it
        let live_origin = live_origin(&parts.headers, &parts.uri);
        let count = s.served_count[entry];
        let session_id = s.id.clone();
        let seed = s.seed;
        let sess = &mut *s;
        let mut rw = Rewriter {
            scoped: &scoped,
            table: &mut sess.table,
            stable: &cassette.stable,
            seed: &seed,
            minted: Vec::new(),
        };
        let mut headers = HeaderMap::new();
        for (n, v) in &rec_ev.response.headers {
            let lower = n.to_ascii_lowercase();
            if lower == "content-length" || lower == "transfer-encoding" || lower == "connection" {
                continue;
            }
            let value = if lower == "location" {
                graph::relocate(&rw.rewrite_str(v), live_origin.as_deref(), &gp.version)
            } else if graph::is_per_request_response_header(&lower) {
                match lower.as_str() {
                    "client-request-id" | "scenario-id" => header_str(&parts.headers, &lower)
                        .map(str::to_string)
                        .unwrap_or_else(|| rw.rewrite_str(v).into_owned()),
                    "request-id" => seed.guid(
                        "request-id",
                        &[(entry as u64).to_be_bytes(), u64::from(count).to_be_bytes()].concat(),
                    ),
                    _ => v.clone(),
                }
            } else {
                rw.rewrite_str(v).into_owned()
            };
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_str(&value)) {
                headers.append(n, v);
            }
        }
        if let Ok(v) = HeaderValue::from_str(&session_id) {
            headers.insert(HeaderName::from_static("x-graphvcr-session"), v);
        }
        let out_body = match &rec_ev.response.body {
            Body::Json(v) => Body::Json(rw.rewrite_json(v)),
            Body::Text(t) => Body::Text(rw.rewrite_str(t).into_owned()),
            other => other.clone(),
        };
        let jobs = self.notification_jobs(
            &cassette,
            &cassette.follows[entry],
            rec_ev.done_ms(),
            &mut rw,
            sess.callback_uri.as_deref(),
            sess.batches,
        );
        let minted = std::mem::take(&mut rw.minted);
        sess.batches += 1;
        sess.served_count[entry] += 1;
        sess.served.push(Served {
            seq: rec_ev.seq,
            request: shown,
            repeated,
            request_scoped,
        });
        let status = rec_ev.response.status.unwrap_or(200);
        let resp = wire::response(status, headers, out_body.to_bytes());
        let mut claimed = claims;
        claimed.extend(minted);
        self.sessions.claim(&session_id, &claimed)?;
        let outbox = self.outbox_for(sess, !jobs.is_empty());
        tracing::info!(session = %session_id, seq = rec_ev.seq, repeated, notifications = jobs.len(), "served");
        Ok(Prepped { resp, jobs, outbox })
    }

    fn outbox_for(&self, s: &mut Session, needed: bool) -> Option<Outbox> {
        if !needed {
            return None;
        }
        let ob = s
            .outbox
            .get_or_insert_with(|| Outbox::start(self.notifier.clone()))
            .clone();
        self.sessions.set_pending(&s.id, ob.pending_counter());
        Some(ob)
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
                let mut headers = HeaderMap::new();
                for (n, v) in &ev.request.headers {
                    let lower = n.to_ascii_lowercase();
                    if matches!(
                        lower.as_str(),
                        "authorization" | "content-length" | "host" | "connection" | "transfer-encoding"
                    ) {
                        continue;
                    }
                    let value = if lower == "x-microsoft-skype-message-id" {
                        rw.seed
                            .guid("message-id", &[ev.seq.to_be_bytes(), batch.to_be_bytes()].concat())
                    } else {
                        rw.rewrite_str(v).into_owned()
                    };
                    if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_str(&value)) {
                        headers.append(n, v);
                    }
                }
                if !headers.contains_key(header::CONTENT_TYPE) && ev.request.body.json().is_some() {
                    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                }
                let body = match &ev.request.body {
                    Body::Json(v) => Body::Json(rw.rewrite_json(v)),
                    Body::Text(t) => Body::Text(rw.rewrite_str(t).into_owned()),
                    other => other.clone(),
                };
                let uri = rw.rewrite_str(&ev.request.uri).into_owned();
                Job {
                    seq: ev.seq,
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
    /// notifications that need no trigger (`follows: null`), e.g. an incoming call.
    pub fn start_session(&self, cassette: &str, id: Option<&str>) -> Result<String, ProxyError> {
        let cassette = self.cassette(cassette)?;
        let name = id.map_or_else(|| format!("{}-start", cassette.name()), str::to_string);
        let session = self
            .sessions
            .find_or_create(&cassette, Some(&name), &[], &[], self.clock.mono_ms())?;
        let mut s = lock(&session);
        if s.batches > 0 || cassette.unattached.is_empty() {
            return Ok(s.id.clone());
        }
        let first_ms = cassette.unattached.first().map_or(0, |&i| cassette.events[i].at_ms);
        let seed = s.seed;
        let scoped = IdTable::default();
        let sess = &mut *s;
        let mut rw = Rewriter {
            scoped: &scoped,
            table: &mut sess.table,
            stable: &cassette.stable,
            seed: &seed,
            minted: Vec::new(),
        };
        let jobs = self.notification_jobs(&cassette, &cassette.unattached, first_ms, &mut rw, None, 0);
        let minted = std::mem::take(&mut rw.minted);
        sess.batches += 1;
        let id = sess.id.clone();
        self.sessions.claim(&id, &minted)?;
        if let Some(ob) = self.outbox_for(sess, !jobs.is_empty()) {
            jobs.into_iter().for_each(|j| ob.push(j));
        }
        Ok(id)
    }

    pub fn default_cassette(&self) -> &str {
        &self.default_cassette
    }

    /// Exchanges of the default cassette that no session used.
    pub fn unused_everywhere(&self) -> Vec<u64> {
        let reports = self.sessions.reports();
        let Ok(c) = self.cassette(&self.default_cassette) else {
            return Vec::new();
        };
        let used: HashSet<u64> = reports
            .iter()
            .filter(|r| r.cassette == c.name())
            .flat_map(|r| r.served.iter().map(|s| s.seq))
            .collect();
        (0..c.exchanges.len())
            .map(|i| c.exchange_event(i).seq)
            .filter(|s| !used.contains(s))
            .collect()
    }
}

/// Ids in a request body that may select a session (`replacesCallId`, ...).
fn call_scoped_ids(b: &Body) -> Vec<Canon> {
    fn walk(v: &Value, key: Option<&str>, out: &mut Vec<Canon>) {
        match v {
            Value::String(s) if key.is_some_and(graph::is_call_scoped_member) => {
                out.extend(ids::scan(s).into_iter().map(|t| t.canon));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, key, out)),
            Value::Object(o) => o.iter().for_each(|(k, x)| walk(x, Some(k), out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(v) = b.json() {
        walk(v, None, &mut out);
    }
    out
}

/// `scheme://host` the bot used to reach graphvcr.
fn live_origin(h: &HeaderMap, uri: &http::Uri) -> Option<String> {
    let host = header_str(h, "host")
        .map(str::to_string)
        .or_else(|| uri.authority().map(|a| a.to_string()))?;
    let scheme = header_str(h, "x-forwarded-proto")
        .or(uri.scheme_str())
        .unwrap_or("http");
    Some(format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> Arc<Prepared> {
        Arc::new(Prepared::new(Cassette {
            meta: Meta {
                name: "t".into(),
                recorded_at: String::new(),
                upstream: String::new(),
            },
            events: Vec::new(),
        }))
    }

    #[test]
    fn sessions_are_bounded_lru_first_and_expire_when_idle() {
        let c = empty();
        let s = Sessions::new(1000, 2);
        let a = s.find_or_create(&c, None, &[Canon::Guid(1)], &[], 0).unwrap();
        let _b = s.find_or_create(&c, None, &[Canon::Guid(2)], &[], 10).unwrap();
        let a2 = s.find_or_create(&c, None, &[Canon::Guid(1)], &[], 20).unwrap();
        assert!(Arc::ptr_eq(&a, &a2), "a known live id finds its session");
        let _c = s.find_or_create(&c, None, &[Canon::Guid(3)], &[], 30).unwrap();
        assert_eq!(s.live_count(), 2);
        let ended: Vec<Report> = s.reports().into_iter().filter(|r| !r.active).collect();
        assert_eq!(ended.len(), 1, "the least recently used session was evicted");
        let b_id = ended[0].session.clone();
        let a_id = lock(&a).id.clone();
        assert_ne!(b_id, a_id);
        s.sweep(5_000);
        assert_eq!(s.live_count(), 0, "idle sessions expire");
        assert!(s.report(&a_id).is_some_and(|r| !r.active), "their reports are kept");
    }

    #[test]
    fn ids_of_two_sessions_in_one_request_conflict() {
        let c = empty();
        let s = Sessions::new(1000, 10);
        s.find_or_create(&c, None, &[Canon::Guid(1)], &[], 0).unwrap();
        s.find_or_create(&c, None, &[Canon::Guid(2)], &[], 0).unwrap();
        let r = s.find_or_create(&c, None, &[Canon::Guid(1), Canon::Guid(2)], &[], 0);
        assert!(matches!(r, Err(ProxyError::Conflict(_))));
    }
}
