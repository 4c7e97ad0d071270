//! Pairing the events of two recordings: each event's key (an exchange's method,
//! version and path template — `matching::Probe`; a notification's `changeType` and
//! resource template per item), the k-th event of a key in OLD with the k-th in NEW,
//! and which pairs moved (those off the longest run kept in order).

use serde_json::Value;

use crate::cassette::{Body, Cassette, Event, Kind};
use crate::graph::{self, GraphPath};
use crate::matching::{template_ids, Probe};

/// An event with the key it pairs on.
pub(super) struct Item<'c> {
    pub event: &'c Event,
    pub key: String,
}

/// The events of `kind` in `c`, in order, with their keys.
pub(super) fn items(c: &Cassette, kind: Kind) -> Vec<Item<'_>> {
    c.events
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| Item {
            event: e,
            key: match kind {
                Kind::Exchange => exchange_key(e),
                Kind::Notification => notification_key(e),
            },
        })
        .collect()
}

/// `POST v1.0 /communications/calls/{id}/participants/invite` (query sorted, ids as
/// `{id}`); a path outside Graph's grammar keeps its method and id-templated path.
pub(super) fn exchange_key(e: &Event) -> String {
    match Probe::new(&e.request.method, &e.request.uri, &Body::Empty) {
        Some(p) => p.key(),
        None => format!(
            "{} {}",
            e.request.method.to_ascii_uppercase(),
            template_ids(&e.request.uri)
        ),
    }
}

/// `updated /communications/calls/{id}/participants` for each item of the callback
/// body (joined by ` + `); a body that is no Graph notification keys on its path.
pub(super) fn notification_key(e: &Event) -> String {
    let items: Vec<String> = match &e.request.body {
        Body::Json(v) => graph::notification_items(v).into_iter().filter_map(item_key).collect(),
        _ => Vec::new(),
    };
    if items.is_empty() {
        let (path, _) = graph::split_uri(&e.request.uri);
        return format!("{} {}", e.request.method.to_ascii_uppercase(), template_ids(path));
    }
    items.join(" + ")
}

fn item_key(item: &Value) -> Option<String> {
    let change = item.get("changeType").and_then(Value::as_str);
    let resource = item
        .get("resourceUrl")
        .or_else(|| item.get("resource"))
        .and_then(Value::as_str);
    if change.is_none() && resource.is_none() {
        return None;
    }
    Some(format!(
        "{} {}",
        change.unwrap_or("(no changeType)"),
        resource.map_or_else(|| "(no resource)".to_string(), resource_template)
    ))
}

/// A notification's resource as a template: `/app/calls/{id}/operations/{id}` reads as
/// `/communications/calls/{id}/operations/{id}` (Graph's path grammar, version-less).
pub(super) fn resource_template(resource: &str) -> String {
    let (path, _) = graph::split_uri(resource);
    let parsed =
        GraphPath::parse(path).or_else(|| GraphPath::parse(&format!("/v1.0/{}", path.trim_start_matches('/'))));
    match parsed {
        Some(gp) => gp.template(),
        None => template_ids(path),
    }
}

/// Two events paired, and where each stands among the events of its kind.
pub(super) struct Paired<'c> {
    pub old: &'c Event,
    pub new: &'c Event,
    pub key: String,
    pub old_pos: usize,
    pub new_pos: usize,
    /// Off the longest run of pairs that kept their order.
    pub reordered: bool,
}

/// The pairs (in OLD's order) and the events of each side that found none.
pub(super) struct Pairing<'c> {
    pub pairs: Vec<Paired<'c>>,
    pub missing: Vec<Item<'c>>,
    pub extra: Vec<Item<'c>>,
}

impl Pairing<'_> {
    /// The NEW seq of the event OLD's `seq` was paired with.
    pub fn new_seq_of(&self, old_seq: u64) -> Option<u64> {
        self.pairs.iter().find(|p| p.old.seq == old_seq).map(|p| p.new.seq)
    }
}

/// Pairs by key and order: the k-th OLD event of a key with the k-th NEW one.
pub(super) fn pair<'c>(old: &[Item<'c>], new: &[Item<'c>]) -> Pairing<'c> {
    let mut taken = vec![false; new.len()];
    let mut next: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut pairs = Vec::new();
    let mut missing = Vec::new();
    for (i, o) in old.iter().enumerate() {
        let from = next.get(o.key.as_str()).copied().unwrap_or(0);
        match (from..new.len()).find(|&j| new[j].key == o.key) {
            Some(j) => {
                taken[j] = true;
                next.insert(o.key.as_str(), j + 1);
                pairs.push(Paired {
                    old: o.event,
                    new: new[j].event,
                    key: o.key.clone(),
                    old_pos: i,
                    new_pos: j,
                    reordered: false,
                });
            }
            None => {
                next.insert(o.key.as_str(), new.len());
                missing.push(Item {
                    event: o.event,
                    key: o.key.clone(),
                });
            }
        }
    }
    let positions: Vec<usize> = pairs.iter().map(|p| p.new_pos).collect();
    for (p, kept) in pairs.iter_mut().zip(in_order(&positions)) {
        p.reordered = !kept;
    }
    let extra = new
        .iter()
        .zip(&taken)
        .filter(|(_, t)| !**t)
        .map(|(n, _)| Item {
            event: n.event,
            key: n.key.clone(),
        })
        .collect();
    Pairing { pairs, missing, extra }
}

/// Marks the members of one longest strictly increasing subsequence of `xs`: the pairs
/// that kept their order; the others moved (patience sorting, O(n log n)).
pub(super) fn in_order(xs: &[usize]) -> Vec<bool> {
    // tails[k]: index into xs of the smallest tail of an increasing run of length k+1
    let mut tails: Vec<usize> = Vec::new();
    let mut prev: Vec<Option<usize>> = vec![None; xs.len()];
    for (i, &x) in xs.iter().enumerate() {
        let k = tails.partition_point(|&t| xs[t] < x);
        prev[i] = k.checked_sub(1).map(|k| tails[k]);
        if k == tails.len() {
            tails.push(i);
        } else {
            tails[k] = i;
        }
    }
    let mut kept = vec![false; xs.len()];
    let mut at = tails.last().copied();
    while let Some(i) = at {
        kept[i] = true;
        at = prev[i];
    }
    kept
}
