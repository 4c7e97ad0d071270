//! The `follows` rule and its bookkeeping. A notification is stored the moment it
//! arrives, with the `follows` the exchanges completed so far give it; when exchanges
//! that were in flight then (and change state: never a GET/HEAD) complete, its
//! `follows` is settled. Each in-flight exchange lists the notifications waiting for
//! it, so completing one touches only those: no wake-all, no scan.
//!
//! The rule (DESIGN.md): among state-changing exchanges that began before the
//! notification, the first whose response carries an operation id of its
//! `resourceUrl`; else the latest whose request or response shares a call-scoped id
//! of its `resource`/`resourceUrl`/`resourceData`; else none.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::cassette::Body;
use crate::graph;
use crate::hash::Set as HashSet;
use crate::ids::{self, Canon};

/// At most this many notifications wait for a settlement; beyond it the oldest is
/// settled with what is known (memory stays bounded whatever the exchanges do).
const MAX_OPEN: usize = 100_000;

/// At most this many ids of an exchange are remembered for the rule: Graph's calls
/// carry a handful, and a huge body must not cost memory for the whole recording.
const MAX_IDS: usize = 1_000;

fn capped(mut ids: HashSet<Canon>) -> HashSet<Canon> {
    if ids.len() > MAX_IDS {
        ids = ids.into_iter().take(MAX_IDS).collect();
    }
    ids.shrink_to_fit();
    ids
}

/// What the rule needs to know about a stored exchange.
pub struct Summary {
    seq: u64,
    /// When it began, in the order of `begin` tickets.
    ticket: u64,
    /// Ids in the request (uri, body) and the response (body, `Location`).
    ids: HashSet<Canon>,
    /// Ids in the response only: an operation id found here ties its notifications.
    response_ids: HashSet<Canon>,
}

fn ids_of_body(b: &Body, out: &mut HashSet<Canon>) {
    match b {
        Body::Json(v) => ids::collect(v, out),
        Body::Text(s) => out.extend(ids::scan(s).into_iter().map(|t| t.canon)),
        _ => {}
    }
}

impl Summary {
    /// The ids of a (redacted) exchange.
    pub fn of(ev: &crate::cassette::Event, ticket: u64) -> Summary {
        let mut ids = HashSet::default();
        let mut response_ids = HashSet::default();
        ids_of_body(&ev.response.body, &mut response_ids);
        for (n, v) in &ev.response.headers {
            if n.eq_ignore_ascii_case("location") {
                response_ids.extend(ids::scan(v).into_iter().map(|t| t.canon));
            }
        }
        ids.extend(ids::scan(&ev.request.uri).into_iter().map(|t| t.canon));
        ids_of_body(&ev.request.body, &mut ids);
        ids.extend(response_ids.iter().cloned());
        Summary {
            seq: ev.seq,
            ticket,
            ids: capped(ids),
            response_ids: capped(response_ids),
        }
    }
}

/// The ids a notification is about: operation ids of its `resourceUrl`s, and the
/// call-scoped ids of `resource`/`resourceUrl`/`resourceData` (identities excluded).
pub struct NoteIds {
    ops: Vec<Canon>,
    about: HashSet<Canon>,
}

impl NoteIds {
    pub fn of(body: &Body) -> NoteIds {
        let mut ops = Vec::new();
        let mut about = HashSet::default();
        let Some(v) = body.json() else {
            return NoteIds { ops, about };
        };
        for item in graph::notification_items(v) {
            for key in ["resourceUrl", "resource"] {
                if let Some(op) = item.get(key).and_then(Value::as_str).and_then(graph::operation_id_in) {
                    ops.extend(ids::scan(op).into_iter().map(|t| t.canon));
                }
            }
            for key in graph::NOTIFICATION_RESOURCE_MEMBERS {
                if let Some(x) = item.get(key) {
                    let mut found = HashSet::default();
                    ids::collect(x, &mut found);
                    let mut stable = HashSet::default();
                    ids::collect_stable(x, &mut stable);
                    about.extend(found.into_iter().filter(|c| !stable.contains(c)));
                }
            }
        }
        NoteIds { ops, about }
    }
}

struct Open {
    ids: NoteIds,
    /// Exchanges with a later ticket began after the notification.
    horizon: u64,
    waiting: usize,
}

/// Exchanges in flight and done, and the notifications still waiting for some.
#[derive(Default)]
pub struct Ledger {
    next_ticket: u64,
    /// State-changing exchanges in flight, each with the notifications waiting for it.
    in_flight: BTreeMap<u64, Vec<u64>>,
    exchanges: Vec<Summary>,
    open: BTreeMap<u64, Open>,
}

/// A notification whose `follows` is now final.
pub type Settled = (u64, Option<u64>);

impl Ledger {
    /// An exchange begins; only one that changes state can be followed.
    pub fn begin(&mut self, changes_state: bool) -> u64 {
        self.next_ticket += 1;
        if changes_state {
            self.in_flight.insert(self.next_ticket, Vec::new());
        }
        self.next_ticket
    }

    fn follows(&self, ids: &NoteIds, horizon: u64) -> Option<u64> {
        let before = || self.exchanges.iter().filter(|x| x.ticket <= horizon);
        before()
            .find(|x| ids.ops.iter().any(|o| x.response_ids.contains(o)))
            .or_else(|| before().rev().find(|x| ids.about.iter().any(|i| x.ids.contains(i))))
            .map(|x| x.seq)
    }

    /// Whether a notification with these ids can follow an exchange of this recording.
    pub fn relates(&self, ids: &NoteIds) -> bool {
        !self.in_flight.is_empty() || self.follows(ids, self.next_ticket).is_some()
    }

    /// A notification arrives: its `follows` from the exchanges done so far, and the
    /// horizon of exchanges that began before it.
    pub fn provisional(&self, ids: &NoteIds) -> (Option<u64>, u64) {
        let horizon = self.next_ticket;
        (self.follows(ids, horizon), horizon)
    }

    /// The notification is stored as `seq`: whether its `follows` is final. When it is
    /// not, the `done` of the last exchange it waits for settles it. Also returns the
    /// notifications settled early to keep the ledger bounded.
    pub fn register(&mut self, seq: u64, ids: NoteIds, horizon: u64) -> (bool, Vec<Settled>) {
        if self.in_flight.is_empty() {
            return (true, Vec::new());
        }
        for waiting in self.in_flight.values_mut() {
            waiting.push(seq);
        }
        let waiting = self.in_flight.len();
        self.open.insert(seq, Open { ids, horizon, waiting });
        let mut evicted = Vec::new();
        while self.open.len() > MAX_OPEN {
            if let Some((s, o)) = self.open.pop_first() {
                evicted.push((s, self.follows(&o.ids, o.horizon)));
            }
        }
        (false, evicted)
    }

    /// An exchange ended: stored (with its summary) or not. Returns the notifications
    /// it settled.
    pub fn done(&mut self, ticket: u64, stored: Option<Summary>) -> Vec<Settled> {
        if let Some(s) = stored {
            if self.in_flight.contains_key(&ticket) {
                self.exchanges.push(s);
            }
        }
        let Some(waiting) = self.in_flight.remove(&ticket) else {
            return Vec::new();
        };
        let mut settled = Vec::new();
        for seq in waiting {
            let last = match self.open.get_mut(&seq) {
                Some(o) => {
                    o.waiting -= 1;
                    o.waiting == 0
                }
                None => false,
            };
            if let Some(o) = last.then(|| self.open.remove(&seq)).flatten() {
                settled.push((seq, self.follows(&o.ids, o.horizon)));
            }
        }
        settled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cassette::Event;
    use serde_json::json;

    const CALL: &str = "ab6233a5-20b7-4c5e-bea2-ce56c9776429";
    const OP: &str = "eec3812a-fdc3-4fb4-825c-a06c9f35414e";

    fn exchange(seq: u64, method: &str, uri: &str, response: Value) -> Event {
        Event::test_exchange(seq, method, uri, Body::Json(response))
    }

    fn note(url: &str) -> NoteIds {
        NoteIds::of(&Body::Json(json!({"value": [{"resourceUrl": url}]})))
    }

    #[test]
    fn a_notification_waits_for_the_exchange_in_flight_and_never_for_a_get() {
        let mut l = Ledger::default();
        let invite = l.begin(true);
        let get = l.begin(false);
        let n = note(&format!("/communications/calls/{CALL}/operations/{OP}"));
        let (now, horizon) = l.provisional(&n);
        assert_eq!((now, l.register(5, n, horizon).0), (None, false));
        let ev = exchange(
            3,
            "GET",
            &format!("/v1.0/communications/calls/{CALL}/operations/{OP}"),
            json!({"id": OP}),
        );
        assert!(
            l.done(get, Some(Summary::of(&ev, get))).is_empty(),
            "a GET settles nothing"
        );
        let ev = exchange(
            4,
            "POST",
            &format!("/v1.0/communications/calls/{CALL}/participants/invite"),
            json!({"id": OP}),
        );
        assert_eq!(l.done(invite, Some(Summary::of(&ev, invite))), vec![(5, Some(4))]);
        let n = note(&format!("/communications/calls/{CALL}/participants"));
        let (now, horizon) = l.provisional(&n);
        assert_eq!(
            (now, l.register(6, n, horizon).0),
            (Some(4), true),
            "shares the call id with the invite, not the GET"
        );
    }

    #[test]
    fn an_exchange_that_failed_still_releases_its_waiters() {
        let mut l = Ledger::default();
        let t = l.begin(true);
        let n = note("/communications/calls/x");
        let (_, horizon) = l.provisional(&n);
        l.register(0, n, horizon);
        assert_eq!(l.done(t, None), vec![(0, None)]);
    }
}
