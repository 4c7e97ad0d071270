//! Record mode: the recorder owns the recording in progress — arrival order, the
//! `follows` rule that ties a notification to its exchange, redaction and the durable
//! commit. Its two faces (`face`: the bot's Graph calls, `callbacks`: Graph's
//! notifications) hand it what they forwarded.

mod callbacks;
mod face;

pub use callbacks::CallbackFace;
pub use face::RecordFace;

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::{self, HeaderMap};
use serde_json::Value;
use tokio::sync::Notify;

use crate::cassette::{Body, Committer, Event, Kind, Request, Response, Store, StoreError};
use crate::clock::Clock;
use crate::graph;
use crate::http::client::Reply;
use crate::http::wire;
use crate::ids::{self, Canon};
use crate::redact;

/// What the follows rule needs to know about a stored exchange.
struct Summary {
    seq: u64,
    /// When it began, in the order of `begin` tickets.
    ticket: u64,
    /// Ids in the request (uri, body) and the response (body, `Location`).
    ids: HashSet<Canon>,
    /// Ids in the response only: an operation id found here ties its notifications.
    response_ids: HashSet<Canon>,
}

#[derive(Default)]
struct State {
    next_seq: u64,
    next_ticket: u64,
    in_flight: BTreeSet<u64>,
    exchanges: Vec<Summary>,
    /// Notifications are stored in arrival order: tickets handed out, tickets done.
    notes_issued: u64,
    notes_done: u64,
}

/// A notification's place in line: its arrival order and the exchanges it waits for.
/// Dropping it without storing still frees its place, so later ones never wait on it.
pub struct Arrival {
    rec: Arc<Recorder>,
    pub at_ms: u64,
    ticket: u64,
    waiting_on: Vec<u64>,
    /// Exchanges that began after this (ticket > horizon) cannot have triggered it.
    horizon: u64,
    settled: bool,
}

impl Drop for Arrival {
    fn drop(&mut self) {
        if !self.settled {
            self.rec.settle(self.ticket);
        }
    }
}

/// The recording in progress: one cassette, its sequence, and the exchanges in flight.
pub struct Recorder {
    cassette: String,
    store: Arc<dyn Store>,
    committer: Committer,
    clock: Arc<dyn Clock>,
    t0: u64,
    /// Offset of `t0` from the cassette's start (appending to an existing cassette).
    base_ms: u64,
    state: Mutex<State>,
    changed: Notify,
    pending_notes: AtomicUsize,
    notes_done: Notify,
    settle_timeout: Duration,
}

/// Removes an exchange from the in-flight set however the request ends.
struct InFlight<'a> {
    rec: &'a Recorder,
    ticket: u64,
}

impl InFlight<'_> {
    fn ticket(&self) -> u64 {
        self.ticket
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut st) = self.rec.state.lock() {
            st.in_flight.remove(&self.ticket);
        }
        self.rec.changed.notify_waiters();
    }
}

fn ids_of_body(b: &Body, out: &mut HashSet<Canon>) {
    match b {
        Body::Json(v) => ids::collect(v, out),
        Body::Text(s) => out.extend(ids::scan(s).into_iter().map(|t| t.canon)),
        _ => {}
    }
}

/// The ids a notification is about: operation ids of its `resourceUrl`s, and the
/// call-scoped ids of `resource`/`resourceUrl`/`resourceData` (identities excluded).
fn notification_ids(body: &Body) -> (Vec<Canon>, HashSet<Canon>) {
    let mut ops = Vec::new();
    let mut about = HashSet::new();
    let Some(v) = body.json() else {
        return (ops, about);
    };
    for item in graph::notification_items(v) {
        for key in ["resourceUrl", "resource"] {
            if let Some(op) = item.get(key).and_then(Value::as_str).and_then(graph::operation_id_in) {
                ops.extend(ids::scan(op).into_iter().map(|t| t.canon));
            }
        }
        for key in graph::NOTIFICATION_RESOURCE_MEMBERS {
            if let Some(x) = item.get(key) {
                let mut found = HashSet::new();
                ids::collect(x, &mut found);
                let mut stable = HashSet::new();
                ids::collect_stable(x, &mut stable);
                about.extend(found.into_iter().filter(|c| !stable.contains(c)));
            }
        }
    }
    (ops, about)
}

impl Recorder {
    /// Starts recording into `cassette`, which must already exist in the store.
    pub fn new(cassette: &str, store: Arc<dyn Store>, clock: Arc<dyn Clock>, settle_timeout: Duration) -> Recorder {
        let committer = Committer::new(store.clone());
        let t0 = clock.mono_ms();
        Recorder {
            cassette: cassette.to_string(),
            store,
            committer,
            clock,
            t0,
            base_ms: 0,
            state: Mutex::new(State::default()),
            changed: Notify::new(),
            pending_notes: AtomicUsize::new(0),
            notes_done: Notify::new(),
            settle_timeout,
        }
    }

    /// Appends to `cassette` as it is in the store: seqs continue after its last event,
    /// and offsets after its last offset (capture-on-miss).
    pub fn appending(
        cassette: &str,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settle_timeout: Duration,
    ) -> Result<Recorder, StoreError> {
        let existing = store.load(cassette)?.map(|c| c.events).unwrap_or_default();
        let last_ms = existing.iter().map(Event::done_ms).max().unwrap_or(0);
        let mut r = Recorder::new(cassette, store, clock, settle_timeout);
        r.base_ms = last_ms.saturating_add(1);
        if let Ok(mut st) = r.state.lock() {
            st.next_seq = existing.len() as u64;
        }
        Ok(r)
    }

    /// Milliseconds since the recording started.
    pub fn now_ms(&self) -> u64 {
        self.base_ms + self.clock.mono_ms().saturating_sub(self.t0)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::Io("recorder state poisoned".into()))
    }

    fn begin(&self) -> InFlight<'_> {
        let ticket = match self.state.lock() {
            Ok(mut st) => {
                st.next_ticket += 1;
                let t = st.next_ticket;
                st.in_flight.insert(t);
                t
            }
            Err(_) => 0,
        };
        InFlight { rec: self, ticket }
    }

    /// Registers a notification that just arrived: it will be stored after the
    /// notifications that arrived before it and after the exchanges now in flight.
    pub fn arrival(self: &Arc<Self>) -> Arrival {
        // counted from arrival, so a stop right after the bot answered still waits for it
        self.pending_notes.fetch_add(1, Ordering::SeqCst);
        let at_ms = self.now_ms();
        let (ticket, waiting_on, horizon) = match self.state.lock() {
            Ok(mut st) => {
                let ticket = st.notes_issued;
                st.notes_issued += 1;
                (ticket, st.in_flight.iter().copied().collect(), st.next_ticket)
            }
            Err(_) => (0, Vec::new(), u64::MAX),
        };
        Arrival {
            rec: self.clone(),
            at_ms,
            ticket,
            waiting_on,
            horizon,
            settled: false,
        }
    }

    /// A notification's turn is over (stored or abandoned).
    fn settle(&self, ticket: u64) {
        if let Ok(mut st) = self.state.lock() {
            st.notes_done = st.notes_done.max(ticket + 1);
        }
        self.changed.notify_waiters();
        if self.pending_notes.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.notes_done.notify_waiters();
        }
    }

    /// Stores an exchange (redacted) and makes it durable.
    async fn store_exchange(&self, mut ev: Event, ticket: u64) -> Result<u64, StoreError> {
        redact::event(&mut ev);
        let mut ids = HashSet::new();
        let mut response_ids = HashSet::new();
        ids_of_body(&ev.response.body, &mut response_ids);
        for (n, v) in &ev.response.headers {
            if n.eq_ignore_ascii_case("location") {
                response_ids.extend(ids::scan(v).into_iter().map(|t| t.canon));
            }
        }
        ids.extend(ids::scan(&ev.request.uri).into_iter().map(|t| t.canon));
        ids_of_body(&ev.request.body, &mut ids);
        ids.extend(response_ids.iter().cloned());
        let seq = {
            let mut st = self.lock()?;
            ev.seq = st.next_seq;
            self.store.put_event(&self.cassette, &ev)?;
            st.next_seq += 1;
            st.exchanges.push(Summary {
                seq: ev.seq,
                ticket,
                ids,
                response_ids,
            });
            ev.seq
        };
        self.committer.commit().await?;
        Ok(seq)
    }

    /// Stores a notification once the exchanges that were in flight when it arrived
    /// have completed (so `follows` can name the exchange whose response it belongs
    /// to) and every notification that arrived before it is stored.
    pub async fn store_notification(&self, mut ev: Event, mut arrival: Arrival) -> Result<u64, StoreError> {
        let r = self.store_notification_inner(&mut ev, &arrival).await;
        arrival.settled = true;
        self.settle(arrival.ticket);
        r
    }

    async fn store_notification_inner(&self, ev: &mut Event, arrival: &Arrival) -> Result<u64, StoreError> {
        let deadline = tokio::time::Instant::now() + self.settle_timeout;
        loop {
            let changed = self.changed.notified();
            let ready = {
                let st = self.lock()?;
                st.notes_done >= arrival.ticket && !arrival.waiting_on.iter().any(|t| st.in_flight.contains(t))
            };
            if ready {
                break;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                tracing::warn!(
                    "notification stored before its exchange or predecessors completed (waited {:?})",
                    self.settle_timeout
                );
                break;
            }
        }
        ev.at_ms = arrival.at_ms;
        redact::event(ev);
        let (ops, about) = notification_ids(&ev.request.body);
        let seq = {
            let mut st = self.lock()?;
            let before = || st.exchanges.iter().filter(|x| x.ticket <= arrival.horizon);
            let by_op = before()
                .find(|x| ops.iter().any(|o| x.response_ids.contains(o)))
                .map(|x| x.seq);
            ev.follows = by_op.or_else(|| {
                before()
                    .rev()
                    .find(|x| about.iter().any(|i| x.ids.contains(i)))
                    .map(|x| x.seq)
            });
            ev.seq = st.next_seq;
            self.store.put_event(&self.cassette, ev)?;
            st.next_seq += 1;
            ev.seq
        };
        self.committer.commit().await?;
        tracing::info!(seq, follows = ?ev.follows, "notification recorded");
        Ok(seq)
    }

    /// Waits until every notification handed to `store_notification` is stored.
    pub async fn drain(&self) {
        loop {
            let done = self.notes_done.notified();
            if self.pending_notes.load(Ordering::SeqCst) == 0 {
                return;
            }
            done.await;
        }
    }
}

/// Headers as they go upstream: what a proxy forwards, minus graphvcr's own.
pub fn forward_headers(h: &HeaderMap) -> HeaderMap {
    let mut out = wire::proxy_headers(h);
    out.remove("x-graphvcr-session");
    out.remove("x-graphvcr-cassette");
    out
}

/// A peer's reply as the caller gets it back, and as it is stored.
pub fn recorded_reply(reply: &Reply) -> (HeaderMap, Response) {
    let mut h = reply.headers.clone();
    h.remove(header::CONTENT_LENGTH);
    let stored = Response {
        status: Some(reply.status),
        headers: wire::to_pairs(&h),
        body: Body::from_bytes(&reply.body),
        error: None,
    };
    (h, stored)
}

/// The event a face hands the recorder: the request as forwarded and what came back.
fn recorded_event(
    kind: Kind,
    at_ms: u64,
    method: &http::Method,
    path_and_query: String,
    headers: &HeaderMap,
    body: &[u8],
    response: Response,
) -> Event {
    Event {
        kind,
        seq: 0,
        at_ms,
        duration_ms: None,
        follows: None,
        request: Request {
            method: method.as_str().to_string(),
            uri: path_and_query,
            headers: wire::to_pairs(headers),
            body: Body::from_bytes(body),
        },
        response,
    }
}
