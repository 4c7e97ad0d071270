//! Record mode: the recorder owns the recording in progress — sequence numbers, the
//! `follows` bookkeeping (`follows`), scrubbing and redaction, and durability. An
//! exchange is stored, and durable, before the bot sees its response; a notification
//! is stored, and durable, before Graph gets its answer, and what it learns later (the
//! bot's answer, its settled `follows`) is written as an update. Its two faces
//! (`face`: the bot's Graph calls, `callbacks`: Graph's notifications) hand it what
//! they forwarded.

mod callbacks;
mod face;
mod follows;

pub use callbacks::{CallbackFace, Recorders};
pub use face::RecordFace;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::header::{self, HeaderMap};
use tokio::sync::Notify;

use crate::cassette::{Body, Committer, Event, Kind, Request, Response, Store, StoreError};
use crate::clock::Clock;
use crate::error::ProxyError;
use crate::http::client::Reply;
use crate::http::wire;
use crate::redact::Rules;
use crate::scrub::Scrubber;
use crate::sync::lock;
use follows::{Ledger, NoteIds, Settled, Summary};

/// Where a stored notification is in its life: what its `follows` is, and what the
/// store holds.
struct Note {
    follows: Option<u64>,
    settled: bool,
    /// The bot answered (the face holds the event to write).
    answered: bool,
    writing: bool,
    /// The `follows` stored together with the bot's answer, once written.
    written: Option<Option<u64>>,
}

impl Note {
    /// The `follows` to write now, if a write is due and nobody is writing.
    /// `have_event`: the caller holds the event (else it re-reads it from the store).
    fn claim(&mut self, have_event: bool) -> Option<Option<u64>> {
        let due = self.answered && !self.writing && self.written != Some(self.follows);
        (due && (have_event || self.written.is_some())).then(|| {
            self.writing = true;
            self.follows
        })
    }

    fn finished(&self) -> bool {
        self.settled && !self.writing && self.written == Some(self.follows)
    }
}

#[derive(Default)]
struct State {
    ledger: Ledger,
    notes: HashMap<u64, Note>,
}

/// The recording in progress: one cassette, its sequence, and what is still settling.
pub struct Recorder {
    cassette: String,
    store: Arc<dyn Store>,
    committer: Committer,
    clock: Arc<dyn Clock>,
    t0: u64,
    /// Offset of `t0` from the cassette's start (appending to an existing cassette).
    base_ms: u64,
    rules: Rules,
    scrub: Option<Scrubber>,
    /// The next seq, held across the write that takes it: seqs are stored in order and
    /// a failed write leaves no gap. Taken before `state` where both are (never after),
    /// so the ledger (`begin`, a completion) does not wait for an exchange's write (a
    /// notification's arrival writes under both: its `follows` is read and registered
    /// with its seq).
    next_seq: Mutex<u64>,
    state: Mutex<State>,
    /// Signalled when the last note finishes (for `drain`).
    idle: Notify,
}

/// An exchange in flight; tells the ledger however the request ends.
pub struct InFlight<'a> {
    rec: &'a Recorder,
    ticket: u64,
    done: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.done {
            let settled = lock(&self.rec.state).ledger.done(self.ticket, None);
            self.rec.apply_settled(settled);
        }
    }
}

/// A notification stored at arrival, to be completed with the bot's answer.
pub struct Arrived {
    pub seq: u64,
    pub event: Event,
}

impl Recorder {
    /// Starts recording into `cassette`, which must already exist in the store.
    pub fn new(
        cassette: &str,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        rules: Rules,
        scrub_pii: bool,
    ) -> Recorder {
        let committer = Committer::new(store.clone());
        let t0 = clock.mono_ms();
        Recorder {
            cassette: cassette.to_string(),
            store,
            committer,
            clock,
            t0,
            base_ms: 0,
            rules,
            scrub: scrub_pii.then(Scrubber::new),
            next_seq: Mutex::new(0),
            state: Mutex::new(State::default()),
            idle: Notify::new(),
        }
    }

    /// Appends to `cassette` as it is in the store: seqs continue after its last event,
    /// and offsets after its last offset (capture-on-miss).
    pub fn appending(
        cassette: &str,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        rules: Rules,
    ) -> Result<Recorder, StoreError> {
        let existing = store.load(cassette)?.map(|c| c.events).unwrap_or_default();
        let last_ms = existing.iter().map(Event::done_ms).max().unwrap_or(0);
        let mut r = Recorder::new(cassette, store, clock, rules, false);
        r.base_ms = last_ms.saturating_add(1);
        r.next_seq = Mutex::new(existing.len() as u64);
        Ok(r)
    }

    /// Whether a notification body can belong to this recording: it names an id one of
    /// its exchanges carried, or an exchange is in flight.
    pub fn relates(&self, body: &Body) -> bool {
        lock(&self.state).ledger.relates(&NoteIds::of(body))
    }

    /// Milliseconds since the recording started.
    pub fn now_ms(&self) -> u64 {
        self.base_ms + self.clock.mono_ms().saturating_sub(self.t0)
    }

    fn clean(&self, ev: &mut Event) {
        if let Some(s) = &self.scrub {
            s.event(ev);
        }
        self.rules.event(ev);
    }

    /// An exchange begins (only one that changes state can be followed).
    fn begin(&self, method: &http::Method) -> InFlight<'_> {
        let changes_state = !matches!(*method, http::Method::GET | http::Method::HEAD);
        let ticket = lock(&self.state).ledger.begin(changes_state);
        InFlight {
            rec: self,
            ticket,
            done: false,
        }
    }

    /// Stores an exchange (scrubbed, redacted) and makes it durable; then settles the
    /// notifications that waited for it.
    async fn store_exchange(&self, mut ev: Event, mut in_flight: InFlight<'_>) -> Result<u64, StoreError> {
        self.clean(&mut ev);
        {
            // the seq is taken only by a successful write: a failed one leaves no gap
            let mut next = lock(&self.next_seq);
            ev.seq = *next;
            self.store.put_event(&self.cassette, &ev)?;
            *next += 1;
        }
        self.committer.commit().await?;
        let settled = lock(&self.state)
            .ledger
            .done(in_flight.ticket, Some(Summary::of(&ev, in_flight.ticket)));
        in_flight.done = true;
        self.apply_settled(settled);
        Ok(ev.seq)
    }

    /// Stores a notification the moment it arrives (with the `follows` known so far
    /// and a placeholder answer) and makes it durable.
    pub async fn note_arrived(&self, mut ev: Event) -> Result<Arrived, StoreError> {
        self.clean(&mut ev);
        ev.response = Response {
            error: Some("graphvcr stopped before the bot answered".into()),
            ..Default::default()
        };
        let ids = NoteIds::of(&ev.request.body);
        let evicted = {
            let mut next = lock(&self.next_seq);
            let mut st = lock(&self.state);
            let (follows, horizon) = st.ledger.provisional(&ids);
            ev.seq = *next;
            ev.follows = follows;
            self.store.put_event(&self.cassette, &ev)?;
            *next += 1;
            let (settled, evicted) = st.ledger.register(ev.seq, ids, horizon);
            let note = Note {
                follows,
                settled,
                answered: false,
                writing: false,
                written: None,
            };
            st.notes.insert(ev.seq, note);
            evicted
        };
        self.apply_settled(evicted);
        if let Err(e) = self.committer.commit().await {
            self.forget(ev.seq);
            return Err(e);
        }
        Ok(Arrived { seq: ev.seq, event: ev })
    }

    fn forget(&self, seq: u64) {
        let mut st = lock(&self.state);
        st.notes.remove(&seq);
        if st.notes.is_empty() {
            self.idle.notify_waiters();
        }
    }

    /// Writes the bot's answer into a stored notification (not waited for: the next
    /// group commit, or the final flush, makes it durable).
    pub fn note_answered(&self, mut a: Arrived, response: Response) {
        a.event.response = response;
        if let Some(s) = &self.scrub {
            s.response(&mut a.event.response);
        }
        self.rules.response(&mut a.event.response);
        let mut claim = lock(&self.state).notes.get_mut(&a.seq).and_then(|n| {
            n.answered = true;
            n.claim(true)
        });
        while let Some(follows) = claim {
            a.event.follows = follows;
            let r = self.store.put_event(&self.cassette, &a.event);
            claim = self.written(a.seq, follows, r, true);
        }
        tracing::info!(seq = a.seq, follows = ?a.event.follows, "notification recorded");
    }

    /// After a write of `seq`: records it, and claims the next write if one is due.
    fn written(
        &self,
        seq: u64,
        follows: Option<u64>,
        r: Result<(), StoreError>,
        have_event: bool,
    ) -> Option<Option<u64>> {
        if let Err(e) = &r {
            tracing::error!(seq, "notification update not stored: {e}");
        }
        let mut st = lock(&self.state);
        let n = st.notes.get_mut(&seq)?;
        n.writing = false;
        n.written = Some(follows);
        if r.is_err() {
            // give up on this notification: it is stored as it arrived
            n.written = Some(n.follows);
        }
        let next = n.claim(have_event);
        if n.finished() {
            st.notes.remove(&seq);
            if st.notes.is_empty() {
                self.idle.notify_waiters();
            }
        }
        next
    }

    /// Notifications whose `follows` became final: rewritten where the store holds
    /// another one.
    fn apply_settled(&self, settled: Vec<Settled>) {
        for (seq, follows) in settled {
            let mut claim = {
                let mut st = lock(&self.state);
                let Some(n) = st.notes.get_mut(&seq) else { continue };
                n.follows = follows;
                n.settled = true;
                n.claim(false)
            };
            while let Some(f) = claim {
                let r = match self.store.event(&self.cassette, seq) {
                    Ok(Some(mut ev)) => {
                        ev.follows = f;
                        self.store.put_event(&self.cassette, &ev)
                    }
                    Ok(None) => Err(StoreError::Missing(format!("{} #{seq}", self.cassette))),
                    Err(e) => Err(e),
                };
                claim = self.written(seq, f, r, false);
            }
            let mut st = lock(&self.state);
            if st.notes.get(&seq).is_some_and(Note::finished) {
                st.notes.remove(&seq);
                if st.notes.is_empty() {
                    self.idle.notify_waiters();
                }
            }
        }
    }

    /// Waits until every notification is answered and settled (bounded by the caller).
    pub async fn drain(&self) {
        loop {
            let idle = self.idle.notified();
            if lock(&self.state).notes.is_empty() {
                return;
            }
            idle.await;
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

/// Only an origin-form target (`/path?query`) is recorded: `OPTIONS *` or an
/// absolute-form target would be stored as a uri the loader refuses.
fn recordable_target(parts: &http::request::Parts) -> Result<String, ProxyError> {
    match wire::origin_form(parts) {
        Some(pq) => Ok(pq.to_string()),
        None => Err(ProxyError::BadRequest(format!(
            "request target `{}` is not recorded: only origin-form targets (`/path?query`) are",
            crate::redact::shown_uri(&parts.uri.to_string())
        ))),
    }
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

#[cfg(test)]
mod tests;
