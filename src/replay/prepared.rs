//! A cassette prepared for serving, once at load: the match index, the notifications
//! each exchange triggers, the ids that stay stable and every id it mentions.

use std::collections::{HashMap, HashSet};

use crate::hash::Set;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cassette::{Body, Cassette, Event, Kind, Meta};
use crate::graph::{self, GraphPath};
use crate::ids::{self, Canon, Template};
use crate::matching::{Index, Probe, Shape};

/// A recorded exchange, parsed once.
#[derive(Debug)]
pub struct RecordedExchange {
    /// Index into the cassette's events.
    pub event: usize,
    pub path: Option<GraphPath>,
    pub query: Option<String>,
}

/// A cassette ready to serve.
#[derive(Debug)]
pub struct Prepared {
    meta: Meta,
    events: Vec<Event>,
    exchanges: Vec<RecordedExchange>,
    index: Index,
    /// Per exchange (index entry): the notifications that follow it, in order.
    follows: Vec<Vec<usize>>,
    /// Notifications that need no trigger (`follows: null`).
    unattached: Vec<usize>,
    /// Ids at identity positions (tenant, users, apps): never minted.
    stable: Set<Canon>,
    /// Every id the cassette mentions (a live id equal to one is "bound to itself").
    recorded_ids: Set<Canon>,
    /// Per exchange: the ids its action creates (in its response or notifications,
    /// not in its request, never seen before it, not stable). Served again in a
    /// session, a state-changing exchange mints these afresh: a new action, a new
    /// resource.
    created: Vec<HashSet<Canon>>,
    /// Per index key: the largest recorded request body, in bytes.
    largest_body: HashMap<String, usize>,
    /// Per exchange: served by some session, ever.
    used: Vec<AtomicBool>,
    /// Per event: the body graphvcr sends, compiled for rewriting (an exchange's
    /// response, a notification's request). `events` no longer hold these bodies:
    /// a parsed JSON tree costs many times its bytes, and only the template is read.
    sent: Vec<Template>,
    /// Per event: a notification that reports an operation's outcome.
    operations: Vec<bool>,
}

/// The ids in one side of an event: target and body (request), body and headers
/// such as `Location` (response).
fn ids_in(e: &Event, response: bool, out: &mut HashSet<Canon>) {
    let (body, headers) = if response {
        (&e.response.body, &e.response.headers)
    } else {
        out.extend(ids::scan(&e.request.uri).into_iter().map(|t| t.canon));
        (&e.request.body, &e.request.headers)
    };
    match body {
        Body::Json(v) => ids::collect(v, out),
        Body::Text(s) => out.extend(ids::scan(s).into_iter().map(|t| t.canon)),
        _ => {}
    }
    for (_, v) in headers {
        out.extend(ids::scan(v).into_iter().map(|t| t.canon));
    }
}

/// The match probe of a recorded exchange's request, with its parsed path and query.
fn recorded_probe(e: &Event) -> (Probe, Option<GraphPath>, Option<&str>) {
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
            shape: Shape::of_body(&e.request.body),
        },
    };
    (probe, gp, query)
}

/// Whether a notification reports an operation's outcome (its resource is one).
fn reports_operation(e: &Event) -> bool {
    let Some(v) = e.request.body.json().filter(|_| e.kind == Kind::Notification) else {
        return false;
    };
    graph::notification_items(v).iter().any(|n| {
        n.get("resourceUrl")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|u| graph::operation_id_in(u).is_some())
    })
}

/// Compiles the body graphvcr sends of each event (an exchange's response, a
/// notification's request) and takes it out of the event. Strings without ids stay
/// pieces of a template only where a recorded request holds the same string under
/// the same member: only those can be bound whole (`Pairing::strs`).
fn sent_templates(events: &mut [Event]) -> Vec<Template> {
    let mut bindable: HashMap<String, HashSet<&str>> = HashMap::new();
    for e in events.iter().filter(|e| e.kind == Kind::Exchange) {
        if let Body::Json(v) = &e.request.body {
            ids::visit_strings(v, &mut |key, _, s| {
                if let Some(k) = key {
                    match bindable.get_mut(k) {
                        Some(set) => {
                            set.insert(s);
                        }
                        None => {
                            bindable.insert(k.to_string(), HashSet::from([s]));
                        }
                    }
                }
            });
        }
    }
    let can_bind = |k: &str, s: &str| bindable.get(k).is_some_and(|v| v.contains(s));
    let templates: Vec<Template> = events
        .iter()
        .map(|e| {
            let body = match e.kind {
                Kind::Exchange => &e.response.body,
                Kind::Notification => &e.request.body,
            };
            Template::compile(body, &can_bind)
        })
        .collect();
    drop(bindable);
    for e in events.iter_mut() {
        match e.kind {
            Kind::Exchange => e.response.body = Body::Empty,
            Kind::Notification => e.request.body = Body::Empty,
        }
    }
    templates
}

/// Per exchange, the ids its action creates: in its response or the notifications
/// that follow it, not in its request, in no earlier event, not stable.
fn created_ids(
    events: &[Event],
    exchanges: &[RecordedExchange],
    follows: &[Vec<usize>],
    stable: &Set<Canon>,
) -> Vec<HashSet<Canon>> {
    // where each id first shows up
    let mut first: HashMap<Canon, usize> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        let mut here = HashSet::new();
        ids_in(e, false, &mut here);
        ids_in(e, true, &mut here);
        for c in here {
            first.entry(c).or_insert(i);
        }
    }
    exchanges
        .iter()
        .enumerate()
        .map(|(entry, x)| {
            let ev = &events[x.event];
            let mut request = HashSet::new();
            ids_in(ev, false, &mut request);
            let mut made = HashSet::new();
            ids_in(ev, true, &mut made);
            for &n in &follows[entry] {
                ids_in(&events[n], false, &mut made);
            }
            let new_here = |c: &Canon| first.get(c).is_none_or(|&i| i >= x.event);
            made.retain(|c| !request.contains(c) && new_here(c) && !stable.contains(c));
            made
        })
        .collect()
}

impl Prepared {
    pub fn new(c: Cassette) -> Prepared {
        let mut exchanges = Vec::new();
        let mut probes = Vec::new();
        let mut entry_of_seq = HashMap::new();
        let mut stable = Set::default();
        let mut recorded_ids = Set::default();
        let mut largest_body: HashMap<String, usize> = HashMap::new();
        for (i, e) in c.events.iter().enumerate() {
            for b in [&e.request.body, &e.response.body] {
                match b {
                    Body::Json(v) => {
                        ids::collect_stable(v, &mut stable);
                        ids::collect(v, &mut recorded_ids);
                    }
                    Body::Text(s) => {
                        ids::collect_appids(s, &mut stable);
                        recorded_ids.extend(ids::scan(s).into_iter().map(|t| t.canon));
                    }
                    _ => {}
                }
            }
            recorded_ids.extend(ids::scan(&e.request.uri).into_iter().map(|t| t.canon));
            ids::collect_stable_headers(&e.request.headers, &mut stable);
            if e.kind != Kind::Exchange {
                continue;
            }
            let (probe, gp, query) = recorded_probe(e);
            entry_of_seq.insert(e.seq, exchanges.len());
            let size = e.request.body.to_bytes().len();
            let largest = largest_body.entry(probe.key()).or_insert(0);
            *largest = (*largest).max(size);
            probes.push((probe, e.seq));
            exchanges.push(RecordedExchange {
                event: i,
                path: gp,
                query: query.map(str::to_string),
            });
        }
        let n = exchanges.len();
        let mut follows = vec![Vec::new(); n];
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
        let created = created_ids(&c.events, &exchanges, &follows, &stable);
        let mut events = c.events;
        let operations = events.iter().map(reports_operation).collect();
        let sent = sent_templates(&mut events);
        Prepared {
            meta: c.meta,
            events,
            exchanges,
            created,
            largest_body,
            index: Index::build(probes),
            follows,
            unattached,
            stable,
            recorded_ids,
            used: (0..n).map(|_| AtomicBool::new(false)).collect(),
            sent,
            operations,
        }
    }

    /// Whether a live body of `len` bytes for index key `key` is too large to match
    /// any recording (allowing generous room for SDK whitespace and escaping): such a
    /// request misses without being parsed.
    pub fn body_too_large(&self, key: &str, len: usize) -> Option<usize> {
        let largest = self.largest_body.get(key).copied().unwrap_or(0);
        (len > largest.saturating_mul(4).saturating_add(4096)).then_some(largest)
    }

    /// The index entry of the exchange recorded as `seq`.
    pub fn entry_of(&self, seq: u64) -> Option<usize> {
        self.exchanges.iter().position(|x| self.events[x.event].seq == seq)
    }

    /// The ids index entry `entry`'s action creates (see `created`).
    pub fn created(&self, entry: usize) -> &HashSet<Canon> {
        &self.created[entry]
    }

    pub fn mark_used(&self, entry: usize) {
        if let Some(u) = self.used.get(entry) {
            u.store(true, Ordering::Relaxed);
        }
    }

    /// Seqs of the exchanges no session has served.
    pub fn unused(&self) -> Vec<u64> {
        (0..self.exchanges.len())
            .filter(|&i| !self.used[i].load(Ordering::Relaxed))
            .map(|i| self.exchange_event(i).seq)
            .collect()
    }

    pub fn name(&self) -> &str {
        &self.meta.name
    }

    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Every recorded event, in seq order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Event `i`'s sent body (its response, for a notification its request),
    /// compiled for rewriting; its JSON is `sent(i).json_value()`.
    pub fn sent(&self, i: usize) -> &Template {
        &self.sent[i]
    }

    /// Whether event `i` is a notification reporting an operation's outcome.
    pub fn reports_operation(&self, i: usize) -> bool {
        self.operations.get(i).copied().unwrap_or(false)
    }

    /// Event `i` (an index into `events`), without the body graphvcr sends (see
    /// [`Prepared::sent`]).
    pub fn event(&self, i: usize) -> &Event {
        &self.events[i]
    }

    /// The recorded exchanges, in order; index entry `i` is exchange `i`.
    pub fn exchanges(&self) -> &[RecordedExchange] {
        &self.exchanges
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The notifications (event indices) that follow index entry `entry`, in order.
    pub fn follows(&self, entry: usize) -> &[usize] {
        &self.follows[entry]
    }

    /// Notifications that need no trigger (`follows: null`), in order.
    pub fn unattached(&self) -> &[usize] {
        &self.unattached
    }

    /// Ids at identity positions: never minted.
    pub fn stable(&self) -> &Set<Canon> {
        &self.stable
    }

    /// Whether the recording itself mentions `id` (such a live id is "bound to itself").
    pub fn mentions(&self, id: &Canon) -> bool {
        self.recorded_ids.contains(id)
    }

    /// The recorded exchange behind index entry `entry`.
    pub fn exchange_event(&self, entry: usize) -> &Event {
        &self.events[self.exchanges[entry].event]
    }
}
