//! Replay mode: routes a request to its session, matches it against the prepared
//! cassette (choose), binds its ids (bind), rewrites the recorded response and
//! schedules the notifications that follow it (respond). Never contacts Graph.

mod bodies;
mod callbacks;
mod faults;
mod headers;
mod live;
mod prepare;
mod prepared;
mod report;
mod run;
mod saved;
mod session;
mod sessions;
mod settings;
mod start;
mod verdict;

pub use bodies::Loaded;
/// Building a served exchange's notifications on their own: a hook for the criterion
/// bench (`benches/replay.rs`); the server calls it from `Replayer::respond`.
pub use callbacks::{jobs as notification_jobs, Batch as NotificationBatch};
pub use faults::{validate as validate_fault, Applied};
pub use prepared::{Head, Prepared, RecordedExchange, HOLD_EVENTS};
pub use report::{Forwarded, Missed, Outcome, Report, Served};
pub use session::REPORT_TAIL;
pub use settings::{validate_session_name, OnMiss, SessionSettings};
pub use start::{Start, Started};
pub use verdict::{Problem, Verdict};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use tokio::sync::oneshot;

use crate::cassette::{Store, Tree};
use crate::clock::Clock;
use crate::error::ProxyError;
use crate::faults::ResponseFault;
use crate::graph;
use crate::http::wire::{self, header_str, Resp};
use crate::ids::{self, Canon};
use crate::matching::Query;
use crate::notify::{Job, Notifier};
use crate::sync::{lock, Turns};
use callbacks::Batch;
use headers::LiveRequest;
use live::{pair, seed_material, Live, OVERSIZE_CHECK};
use session::{Bound, Session};
use sessions::{ClaimError, Route, Sessions, Shared};

/// Stripes of the session turns (two live sessions rarely share one).
const TURN_STRIPES: usize = 64;

/// How replay sessions are bounded.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// An idle session ends after this long.
    pub idle_ms: u64,
    /// Most sessions alive at once.
    pub max: usize,
}

/// How the replayer serves.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// What sessions start with (each may set its own).
    pub defaults: SessionSettings,
    pub limits: SessionLimits,
    /// How long a ringing call's notifications retry a bot that refuses connections.
    pub ring_timeout: std::time::Duration,
    /// Cassettes with more events than this are served from the store, not held.
    pub hold_events: usize,
}

/// The replay engine behind the Graph face.
pub struct Replayer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// `replay --cassette NAME`; `serve` has none (requests name theirs).
    default_cassette: Option<String>,
    cassettes: RwLock<HashMap<String, Arc<Prepared>>>,
    sessions: Sessions,
    notifier: Arc<Notifier>,
    defaults: Arc<SessionSettings>,
    ring_timeout: std::time::Duration,
    hold_events: usize,
    /// Sessions started without a name, for their generated names.
    unnamed: AtomicU64,
    /// When the latest bot request arrived (monotonic ms).
    last_request_ms: AtomicU64,
    /// Requests that matched nothing, in all sessions ever.
    misses: AtomicU64,
    /// Turns of each session's requests.
    turns: Turns,
}

/// What the replayer made of a request.
pub enum Handled {
    /// The answer, from the cassette (or an error).
    Answer(Resp),
    /// The answer, to be sent after this long (an injected delay).
    Delayed(std::time::Duration, Resp),
    /// A miss its session forwards upstream (the caller does the forwarding).
    Forward(Forward),
}

/// A miss to forward upstream.
#[derive(Debug, Clone)]
pub struct Forward {
    pub session: String,
    pub cassette: String,
    /// Also store it in the cassette (`on_miss: record`), else only forward.
    pub record: bool,
}

/// What matching decided.
enum Choice {
    Serve {
        entry: usize,
        repeated: bool,
    },
    /// Forward the miss; `true` = record it too.
    Forward(bool),
}

/// The recorded exchange a request is served from, read before anything changes.
struct Chosen {
    entry: usize,
    repeated: bool,
    exchange: Arc<Loaded>,
    /// The notifications that follow it, in order.
    notifications: Vec<Arc<Loaded>>,
}

/// Counts over a whole replay run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayTotals {
    pub misses: u64,
    pub delivered: u64,
    pub failed: u64,
    pub pending: usize,
}

impl Replayer {
    /// A replayer serving `default_cassette` to requests that name none (`replay`),
    /// or only the cassettes requests and sessions name (`serve`, `None`).
    pub fn new(
        default_cassette: Option<Arc<Prepared>>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        notifier: Arc<Notifier>,
        options: ReplayOptions,
    ) -> Replayer {
        let mut cassettes = HashMap::new();
        let name = default_cassette.map(|c| {
            let name = c.name().to_string();
            cassettes.insert(name.clone(), c);
            name
        });
        Replayer {
            store,
            clock,
            default_cassette: name,
            cassettes: RwLock::new(cassettes),
            sessions: Sessions::new(options.limits.idle_ms, options.limits.max),
            notifier,
            defaults: Arc::new(options.defaults),
            ring_timeout: options.ring_timeout,
            hold_events: options.hold_events,
            unnamed: AtomicU64::new(0),
            last_request_ms: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            turns: Turns::new(TURN_STRIPES),
        }
    }

    /// The prepared cassette `name`, loaded from the store on first use.
    pub fn cassette(&self, name: &str) -> Result<Arc<Prepared>, ProxyError> {
        if let Some(c) = self.cassettes.read().ok().and_then(|m| m.get(name).cloned()) {
            return Ok(c);
        }
        crate::cassette::validate_name(name).map_err(|e| ProxyError::BadRequest(e.to_string()))?;
        let p = match Prepared::stream(&*self.store, name, self.hold_events)? {
            Some(p) => p,
            None => Prepared::new(
                crate::bundled::cassette(name)
                    .ok_or_else(|| ProxyError::NotFound(format!("no cassette named `{name}` in the store")))?
                    .map_err(|e| ProxyError::Internal(e.to_string()))?,
            ),
        };
        let p = Arc::new(p);
        if let Ok(mut m) = self.cassettes.write() {
            m.insert(name.to_string(), p.clone());
        }
        Ok(p)
    }

    pub fn default_cassette(&self) -> Option<&str> {
        self.default_cassette.as_deref()
    }

    /// The settings sessions start with.
    pub fn defaults(&self) -> &SessionSettings {
        &self.defaults
    }

    /// The cassette a new session replays: the request's, else the default one.
    fn cassette_for(&self, named: Option<&str>) -> Result<Arc<Prepared>, ProxyError> {
        match named.or(self.default_cassette.as_deref()) {
            Some(name) => self.cassette(name),
            None => Err(ProxyError::BadRequest(
                "this graphvcr serves many cassettes: name the session with `x-graphvcr-session` \
                 (started through POST /_graphvcr/sessions) or its cassette with `x-graphvcr-cassette`"
                    .into(),
            )),
        }
    }

    /// Answers one bot request from the cassette, or says to forward it. Its only
    /// wait is for its session's turn.
    pub async fn handle(&self, parts: &http::request::Parts, body: &Bytes) -> Handled {
        self.last_request_ms.store(self.clock.mono_ms(), Ordering::Relaxed);
        match self.serve(parts, body).await {
            Ok(h) => h,
            Err(e) => Handled::Answer(e.respond(&*self.clock, &parts.method, &parts.uri, body)),
        }
    }

    /// [`Replayer::handle`] for a synchronous caller (in-process benches and tools).
    pub fn handle_now(&self, parts: &http::request::Parts, body: &Bytes) -> Handled {
        crate::sync::now(self.handle(parts, body))
    }

    async fn serve(&self, parts: &http::request::Parts, body: &Bytes) -> Result<Handled, ProxyError> {
        if body.len() > OVERSIZE_CHECK {
            self.refuse_oversized(parts, body.len())?;
        }
        let live = Live::parse(parts, body)?;
        let path_ids: Vec<Canon> = live
            .path
            .id_segments()
            .flat_map(|s| ids::scan(s).into_iter().map(|t| t.canon))
            .collect();
        // a create-call makes a new call: ids in its body (a meeting's thread) never
        // route it into another call's session
        let body_ids = match live.body.json() {
            Some(v) if !graph::creates_call(live.method, &live.path) => ids::call_scoped(v),
            _ => Vec::new(),
        };
        let material = || seed_material(&live);
        let header = header_str(&parts.headers, "x-graphvcr-session");
        if let Some(h) = header {
            validate_session_name(h)?;
        }
        let route = Route {
            settings: &self.defaults,
            header,
            path_ids: &path_ids,
            body_ids: &body_ids,
            seed_material: &material,
        };
        // a session can end (idle, evicted) between finding it and claiming in it
        for _ in 0..3 {
            let now = self.clock.mono_ms();
            let shared = match self.sessions.find(&route, now)? {
                Some(s) => s,
                None => {
                    let cassette = self.cassette_for(header_str(&parts.headers, "x-graphvcr-cassette"))?;
                    self.sessions.create_new(&cassette, &route, now)?
                }
            };
            // requests of one session take turns without blocking a worker thread
            let _turn = self.turns.take(Arc::as_ptr(&shared) as usize).await;
            let mut s = lock(&shared);
            if let Some(handled) = self.serve_in(&shared, &mut s, &live)? {
                return Ok(handled);
            }
        }
        Err(ProxyError::Busy("replay sessions are churning; retry".into()))
    }

    /// Serves `live` inside its (locked) session; `None` when the session ended
    /// before the request could claim its ids (the caller looks it up again).
    fn serve_in(&self, shared: &Shared, s: &mut Session, live: &Live<'_>) -> Result<Option<Handled>, ProxyError> {
        let cassette = s.cassette().clone();
        let delay = match s.response_fault(live.method, &live.probe.template) {
            Some(ResponseFault::Status { status, retry_after }) => {
                let e = ProxyError::Injected { status, retry_after };
                let resp = e.respond(&*self.clock, &live.parts.method, &live.parts.uri, live.pq.as_bytes());
                return Ok(Some(Handled::Answer(resp)));
            }
            Some(ResponseFault::Delay(d)) => Some(d),
            None => None,
        };
        let (entry, repeated) = match self.choose(s, &cassette, live)? {
            Choice::Serve { entry, repeated } => (entry, repeated),
            Choice::Forward(record) => {
                return Ok(Some(Handled::Forward(Forward {
                    session: s.id().to_string(),
                    cassette: cassette.name().to_string(),
                    record,
                })))
            }
        };
        let chosen = Chosen {
            entry,
            repeated,
            exchange: cassette.load_exchange(entry)?,
            notifications: cassette.load_all(cassette.follows(entry))?,
        };
        let Some(bound) = self.bind(shared, s, &cassette, &chosen, live)? else {
            return Ok(None);
        };
        let resp = self.respond(s, &cassette, &chosen, bound, live);
        Ok(Some(match delay {
            Some(d) => Handled::Delayed(d, resp),
            None => Handled::Answer(resp),
        }))
    }

    /// Matches the request: the entry to serve and whether it repeats; a miss the
    /// session forwards; or a miss.
    fn choose(&self, s: &mut Session, cassette: &Prepared, live: &Live<'_>) -> Result<Choice, ProxyError> {
        let mode = s.settings().match_mode;
        let query = Query::new(&live.probe, &live.body);
        if let Some((entry, repeated)) = s.pick(cassette.index(), &query, mode) {
            return Ok(Choice::Serve { entry, repeated });
        }
        match s.settings().on_miss {
            OnMiss::Error => {}
            OnMiss::Record => return Ok(Choice::Forward(true)),
            OnMiss::Passthrough => return Ok(Choice::Forward(false)),
        }
        let (nearest, reason) = cassette.index().explain_miss(&query, mode);
        let nearest_seq = nearest.map(|e| cassette.exchange_head(e).seq);
        let message = format!("cassette `{}`: {reason}", cassette.name());
        s.note_missed(Missed {
            request: live.shown(),
            nearest_seq,
            reason,
            expected: header_str(&live.parts.headers, "x-graphvcr-expect")
                .is_some_and(|v| v.eq_ignore_ascii_case("miss")),
        });
        self.misses.fetch_add(1, Ordering::Relaxed);
        Err(ProxyError::Miss {
            message,
            nearest: nearest_seq,
        })
    }

    /// Pairs the recorded request with the live one, claims the live ids for the
    /// session (or refuses: another session owns one) and binds them.
    fn bind(
        &self,
        shared: &Shared,
        s: &mut Session,
        cassette: &Prepared,
        chosen: &Chosen,
        live: &Live<'_>,
    ) -> Result<Option<Bound>, ProxyError> {
        let pairing = pair(&cassette.exchanges()[chosen.entry], chosen.exchange.event(), live);
        let claims: Vec<Canon> = pairing
            .tokens
            .iter()
            .filter(|p| p.call_scoped && !cassette.mentions(&p.live))
            .map(|p| p.live.clone())
            .collect();
        // reserve the request's ids (or refuse) before anything changes
        match self.sessions.claim(shared, s, &claims) {
            Ok(()) => {}
            Err(ClaimError::Ended) => return Ok(None),
            Err(ClaimError::Taken(e)) => return Err(e),
        }
        let bound = s.bind(&pairing);
        if graph::carries_callback_uri(live.method, &live.path) {
            if let Some(cb) = live
                .body
                .json()
                .and_then(|v| v.get("callbackUri"))
                .and_then(Tree::as_str)
            {
                s.learn_callback_uri(cb);
            }
        }
        Ok(Some(bound))
    }

    /// Rewrites the recorded response and queues the notifications that follow it.
    fn respond(
        &self,
        s: &mut Session,
        cassette: &Prepared,
        chosen: &Chosen,
        mut bound: Bound,
        live: &Live<'_>,
    ) -> Resp {
        let (entry, repeated) = (chosen.entry, chosen.repeated);
        let rec_ev = chosen.exchange.event();
        // a state-changing request served again is a new action: new resources
        let reminted = if repeated && graph::changes_state(live.method) {
            s.remint(entry, &mut bound)
        } else {
            Vec::new()
        };
        let origin = wire::request_origin(&live.parts.headers, &live.parts.uri);
        let mut request_id = [0u8; 16];
        request_id[..8].copy_from_slice(&(entry as u64).to_be_bytes());
        request_id[8..].copy_from_slice(&u64::from(s.served_count(entry)).to_be_bytes());
        let (mut resp, jobs, minted, number) = {
            let w = s.writing(&bound.scoped);
            let mut rw = w.rw;
            let live_req = LiveRequest {
                headers: &live.parts.headers,
                origin: origin.as_deref(),
                version: live.path.version(),
            };
            let mut headers =
                headers::response_headers(chosen.exchange.sent_headers(), &mut rw, &live_req, &request_id);
            if let Ok(v) = HeaderValue::from_str(w.id) {
                headers.insert(HeaderName::from_static("x-graphvcr-session"), v);
            }
            let body = rw.rewrite_template(chosen.exchange.sent());
            let resp = wire::response(rec_ev.response.status.unwrap_or(200), headers, body);
            let batch = Batch {
                events: &chosen.notifications,
                after_ms: rec_ev.done_ms(),
                callback_uri: w.callback_uri,
                number: w.number,
                patience: None,
                settings: w.settings,
            };
            let jobs = callbacks::jobs(&batch, &mut rw);
            (resp, jobs, rw.into_minted(), w.number)
        };
        let mut jobs = jobs;
        s.fault_batch(&mut jobs, cassette.follows(entry), number);
        let mut minted = minted;
        minted.extend(reminted.iter().map(|(_, l)| l.clone()));
        s.note_served(
            entry,
            Served {
                seq: rec_ev.seq,
                request: live.shown(),
                repeated,
                request_scoped: bound.request_scoped,
                minted: reminted,
            },
        );
        cassette.mark_used(entry);
        tracing::debug!(session = %s.id(), seq = rec_ev.seq, repeated, notifications = jobs.len(), "served");
        let pending = if jobs.is_empty() {
            None
        } else {
            let after = resp.body_mut().on_sent();
            self.dispatch(s, after, jobs)
        };
        self.sessions.served(s.id(), &minted, pending);
        resp
    }

    /// Queues a batch of notifications to start once `after` fires (the triggering
    /// response is out). Called under the session lock, so batches keep the order
    /// their responses were served in. Returns the pending counter of a new outbox.
    fn dispatch(
        &self,
        s: &mut Session,
        after: oneshot::Receiver<()>,
        mut jobs: Vec<Job>,
    ) -> Option<Arc<std::sync::atomic::AtomicUsize>> {
        let first = jobs.first_mut()?;
        first.batch_start = Some(after);
        let (outbox, created) = s.outbox(&self.notifier);
        outbox.push_batch(jobs);
        created
    }
}
