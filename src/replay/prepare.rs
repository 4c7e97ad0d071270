//! Preparing a cassette from its events taken one at a time, in seq order (from
//! memory, or as the store streams them): the match index, the notifications each
//! exchange triggers, the ids that stay stable, every id the cassette mentions and
//! those each exchange creates. Bodies are kept only when the cassette is held.

use std::sync::Arc;

use crate::cassette::{Body, Event, Kind};
use crate::graph::{self, GraphPath};
use crate::hash::{Map, Set};
use crate::ids::{self, Canon};
use crate::matching::{Index, Probe, Shape};

use super::bodies::{Bindable, Loaded};

/// What replay knows of every event without reading its bodies.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Head {
    pub kind: Kind,
    pub seq: u64,
    pub at_ms: u64,
    pub duration_ms: Option<u64>,
    pub follows: Option<u64>,
}

impl Head {
    fn of(e: &Event) -> Head {
        Head {
            kind: e.kind,
            seq: e.seq,
            at_ms: e.at_ms,
            duration_ms: e.duration_ms,
            follows: e.follows,
        }
    }

    /// When the response was complete, as an offset from the cassette start.
    pub fn done_ms(&self) -> u64 {
        self.at_ms.saturating_add(self.duration_ms.unwrap_or(0))
    }
}

/// A recorded exchange, parsed once.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct RecordedExchange {
    /// Index into the cassette's events.
    pub event: usize,
    pub method: String,
    pub path: Option<GraphPath>,
    pub query: Option<String>,
}

/// Everything prepared but the bodies.
#[derive(Debug)]
pub(super) struct Summary {
    pub heads: Vec<Head>,
    pub exchanges: Vec<RecordedExchange>,
    pub index: Index,
    pub follows: Vec<Vec<usize>>,
    pub unattached: Vec<usize>,
    pub stable: Set<Canon>,
    pub recorded_ids: Set<Canon>,
    pub created: Vec<Set<Canon>>,
    pub largest_body: Map<String, usize>,
    pub operations: Vec<bool>,
    /// Per event: a notification's (change type, resource template) pairs, which
    /// notification faults name (empty for an exchange).
    pub kinds: Vec<Vec<(String, String)>>,
}

/// Takes events one at a time; `finish` gives the summary, the strings requests can
/// bind, and (when held) the events compiled for serving.
#[derive(Default)]
pub(super) struct Builder {
    /// Most events held: past it, none are.
    hold: usize,
    held: Vec<Event>,
    heads: Vec<Head>,
    exchanges: Vec<RecordedExchange>,
    probes: Vec<(Probe, u64)>,
    entry_of_seq: Map<u64, usize>,
    stable: Set<Canon>,
    recorded_ids: Set<Canon>,
    largest_body: Map<String, usize>,
    operations: Vec<bool>,
    kinds: Vec<Vec<(String, String)>>,
    bindable: Bindable,
    /// The event each id first shows up in.
    first: Map<Canon, usize>,
    /// Per event, the ids of its request side (target, body, headers) and of its
    /// response side (body, headers such as `Location`).
    sides: Vec<[Box<[Canon]>; 2]>,
}

/// The ids in a body.
fn body_ids(body: &Body) -> Set<Canon> {
    let mut out = Set::default();
    match body {
        Body::Json(v) => ids::collect(v, &mut out),
        Body::Text(s) => out.extend(ids::scan(s).into_iter().map(|t| t.canon)),
        _ => {}
    }
    out
}

/// Adds the ids in strings (a target, header values).
fn add_ids<'s>(out: &mut Set<Canon>, strs: impl IntoIterator<Item = &'s str>) {
    for s in strs {
        out.extend(ids::scan(s).into_iter().map(|t| t.canon));
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

impl Builder {
    /// Keeps the events of a cassette of at most `hold` events (served from memory).
    pub fn new(hold: usize) -> Builder {
        Builder {
            hold,
            ..Builder::default()
        }
    }

    /// Takes the next event (seq order).
    pub fn push(&mut self, e: Event) {
        let i = self.heads.len();
        for b in [&e.request.body, &e.response.body] {
            match b {
                Body::Json(v) => ids::collect_stable(v, &mut self.stable),
                Body::Text(s) => ids::collect_appids(s, &mut self.stable),
                _ => {}
            }
        }
        ids::collect_stable_headers(&e.request.headers, &mut self.stable);
        // each side's ids: the request's target, body and headers; the response's
        // body and headers (such as `Location`)
        let mut request = body_ids(&e.request.body);
        let mut response = body_ids(&e.response.body);
        add_ids(&mut request, [e.request.uri.as_str()]);
        // every id the cassette mentions: in its targets and bodies
        self.recorded_ids.extend(request.iter().chain(&response).cloned());
        add_ids(&mut request, e.request.headers.iter().map(|(_, v)| v.as_str()));
        add_ids(&mut response, e.response.headers.iter().map(|(_, v)| v.as_str()));
        for c in request.iter().chain(&response) {
            if !self.first.contains_key(c) {
                self.first.insert(c.clone(), i);
            }
        }
        self.sides
            .push([request.into_iter().collect(), response.into_iter().collect()]);
        self.operations.push(reports_operation(&e));
        let notification = e.request.body.json().filter(|_| e.kind == Kind::Notification);
        self.kinds
            .push(notification.map(crate::faults::notification_kinds).unwrap_or_default());
        if e.kind == Kind::Exchange {
            self.exchange(i, &e);
        }
        self.heads.push(Head::of(&e));
        if self.heads.len() <= self.hold {
            self.held.push(e);
        } else if !self.held.is_empty() {
            self.held = Vec::new();
        }
    }

    fn exchange(&mut self, i: usize, e: &Event) {
        let (probe, gp, query) = recorded_probe(e);
        self.entry_of_seq.insert(e.seq, self.exchanges.len());
        let size = e.request.body.to_bytes().len();
        let largest = self.largest_body.entry(probe.key()).or_insert(0);
        *largest = (*largest).max(size);
        self.probes.push((probe, e.seq));
        self.bindable.add(&e.request.body);
        self.exchanges.push(RecordedExchange {
            event: i,
            method: e.request.method.clone(),
            path: gp,
            query: query.map(str::to_string),
        });
    }

    /// The summary, the strings requests bind, and the events compiled when all are
    /// held (else `None`).
    pub fn finish(self) -> (Summary, Bindable, Option<Vec<Arc<Loaded>>>) {
        let n = self.exchanges.len();
        let mut follows = vec![Vec::new(); n];
        let mut unattached = Vec::new();
        for (i, h) in self.heads.iter().enumerate() {
            if h.kind != Kind::Notification {
                continue;
            }
            match h.follows.and_then(|s| self.entry_of_seq.get(&s)) {
                Some(&x) => follows[x].push(i),
                None => unattached.push(i),
            }
        }
        let created = self.created(&follows);
        let held = (self.held.len() == self.heads.len()).then(|| {
            self.held
                .into_iter()
                .map(|e| Arc::new(Loaded::compile(e, &self.bindable)))
                .collect()
        });
        let summary = Summary {
            heads: self.heads,
            exchanges: self.exchanges,
            index: Index::build(self.probes),
            follows,
            unattached,
            stable: self.stable,
            recorded_ids: self.recorded_ids,
            created,
            largest_body: self.largest_body,
            operations: self.operations,
            kinds: self.kinds,
        };
        (summary, self.bindable, held)
    }

    /// Per exchange, the ids its action creates: in its response or the notifications
    /// that follow it, not in its request, in no earlier event, not stable.
    fn created(&self, follows: &[Vec<usize>]) -> Vec<Set<Canon>> {
        self.exchanges
            .iter()
            .enumerate()
            .map(|(entry, x)| {
                let [request, response] = &self.sides[x.event];
                let mut made: Set<Canon> = response.iter().cloned().collect();
                for &n in &follows[entry] {
                    made.extend(self.sides[n][0].iter().cloned());
                }
                let new_here = |c: &Canon| self.first.get(c).is_none_or(|&i| i >= x.event);
                made.retain(|c| !request.contains(c) && new_here(c) && !self.stable.contains(c));
                made
            })
            .collect()
    }
}
