//! The recorded exchanges of one cassette, indexed for matching in time that does not
//! grow with the cassette: by key (method, version, template, query), then by body
//! shape. Identical recordings (a long call's polls) share one shape group, so a live
//! request with a recorded shape finds its candidates with two hash lookups; only a
//! request whose exact shape was never recorded is compared, once per distinct shape.

use std::fmt::Write as _;

use crate::hash::Map;

use super::shape::{clip_tail, compare, Comparison, MatchMode, Shape};
use super::{Probe, Query};

/// A group of recordings with one key and one shape, in recorded order.
#[derive(Debug)]
pub struct Group {
    /// Unique within the cassette.
    pub id: usize,
    /// Index entries, ascending.
    pub entries: Vec<usize>,
    shape: Shape,
}

/// Every recording of one key.
#[derive(Debug)]
struct Key {
    /// The key's parts, for messages (method, version, template, query).
    head: Probe,
    groups: Vec<usize>,
    /// Groups by their shape's print (`Shape::print`; shapes that share one print
    /// are told apart by comparing them).
    by_print: Map<u64, Vec<usize>>,
}

impl Key {
    fn add(&mut self, print: u64, g: usize) {
        self.groups.push(g);
        self.by_print.entry(print).or_default().push(g);
    }
}

/// The recorded exchanges of one cassette.
#[derive(Debug, Default)]
pub struct Index {
    /// The recorded seq of each entry, for messages.
    seqs: Vec<u64>,
    groups: Vec<Group>,
    keys: Vec<Key>,
    by_key: Map<String, usize>,
}

/// An index as kept beside a cassette (`replay::saved`): each group's shape and
/// entries (each shape once, however many recordings share it), each key's head and
/// groups, each entry's recorded seq. Group ids are kept: sessions count by them.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct IndexParts {
    seqs: Vec<u64>,
    groups: Vec<(Shape, Vec<usize>)>,
    keys: Vec<(Probe, Vec<usize>)>,
}

/// A recorded key, as [`Index::slot`] found it.
#[derive(Debug, Clone, Copy)]
pub struct Slot(usize);

/// Candidate groups for a live request, best first; each holds compatible recordings.
#[derive(Debug, Default)]
pub struct Candidates<'a> {
    pub groups: Vec<&'a Group>,
}

impl Index {
    /// Builds the index; entry `i` is the `i`-th (probe, recorded seq) given.
    pub fn build(entries: Vec<(Probe, u64)>) -> Index {
        let mut idx = Index::default();
        for (i, (mut p, seq)) in entries.into_iter().enumerate() {
            idx.seqs.push(seq);
            let k = *idx.by_key.entry(p.key()).or_insert_with(|| {
                idx.keys.push(Key {
                    head: Probe {
                        shape: Shape::Empty,
                        ..p.clone()
                    },
                    groups: Vec::new(),
                    by_print: Map::default(),
                });
                idx.keys.len() - 1
            });
            let shape = std::mem::replace(&mut p.shape, Shape::Empty);
            let key = &mut idx.keys[k];
            let print = shape.print();
            let same = key
                .by_print
                .get(&print)
                .and_then(|gs| gs.iter().copied().find(|&g| idx.groups[g].shape == shape));
            match same {
                Some(g) => idx.groups[g].entries.push(i),
                None => {
                    let g = idx.groups.len();
                    key.add(print, g);
                    idx.groups.push(Group {
                        id: g,
                        entries: vec![i],
                        shape,
                    });
                }
            }
        }
        idx
    }

    /// How many entries it indexes.
    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }

    /// The index as kept (`from_parts` builds it again).
    pub fn parts(&self) -> IndexParts {
        IndexParts {
            seqs: self.seqs.clone(),
            groups: self
                .groups
                .iter()
                .map(|g| (g.shape.clone(), g.entries.clone()))
                .collect(),
            keys: self.keys.iter().map(|k| (k.head.clone(), k.groups.clone())).collect(),
        }
    }

    /// The index `parts` kept, if its parts agree (every key with a group, every
    /// group of one key, every entry of one group, all in range).
    pub fn from_parts(p: IndexParts) -> Option<Index> {
        let mut idx = Index {
            seqs: p.seqs,
            ..Index::default()
        };
        let mut owned = vec![false; p.groups.len()];
        let mut entered = vec![false; idx.seqs.len()];
        for (id, (shape, entries)) in p.groups.into_iter().enumerate() {
            for &e in &entries {
                if std::mem::replace(entered.get_mut(e)?, true) {
                    return None;
                }
            }
            idx.groups.push(Group { id, entries, shape });
        }
        for (head, groups) in p.keys {
            if groups.is_empty() {
                return None;
            }
            let mut key = Key {
                head,
                groups: Vec::with_capacity(groups.len()),
                by_print: Map::default(),
            };
            for g in groups {
                if std::mem::replace(owned.get_mut(g)?, true) {
                    return None;
                }
                key.add(idx.groups[g].shape.print(), g);
            }
            idx.by_key.insert(key.head.key(), idx.keys.len());
            idx.keys.push(key);
        }
        let whole = owned.iter().all(|&o| o) && entered.iter().all(|&e| e);
        let ordered = idx
            .groups
            .iter()
            .all(|g| !g.entries.is_empty() && g.entries.is_sorted());
        (whole && ordered && idx.by_key.len() == idx.keys.len()).then_some(idx)
    }

    /// The recorded key a live request has, looked up once for [`Index::exact_in`] and
    /// [`Index::candidates_in`].
    pub fn slot(&self, live: &Query<'_>) -> Option<Slot> {
        thread_local! {
            // the key of the request this thread serves: no allocation per lookup
            static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        KEY.with_borrow_mut(|k| {
            live.head().write_key(k);
            self.by_key.get(k.as_str()).map(|&s| Slot(s))
        })
    }

    /// The group of recordings with the live request's exact key and shape, if any:
    /// found without comparing anything.
    pub fn exact(&self, live: &Query<'_>) -> Option<&Group> {
        self.exact_in(self.slot(live)?, live)
    }

    /// How many shape groups the key has.
    pub fn groups_in(&self, slot: Slot) -> usize {
        self.keys.get(slot.0).map_or(0, |k| k.groups.len())
    }

    /// [`Index::exact`] within the key already looked up.
    pub fn exact_in(&self, slot: Slot, live: &Query<'_>) -> Option<&Group> {
        let key = self.keys.get(slot.0)?;
        let same_print = key.by_print.get(&live.print())?;
        same_print.iter().map(|&g| &self.groups[g]).find(|g| live.is(&g.shape))
    }

    /// Every group a live request may be served from, best first: by (penalty,
    /// earliest entry), so its exact shape (penalty 0) comes before other spellings.
    pub fn candidates(&self, live: &Query<'_>, mode: MatchMode) -> Candidates<'_> {
        match self.slot(live) {
            Some(slot) => self.candidates_in(slot, live, mode),
            None => Candidates::default(),
        }
    }

    /// [`Index::candidates`] within the key already looked up.
    pub fn candidates_in(&self, slot: Slot, live: &Query<'_>, mode: MatchMode) -> Candidates<'_> {
        let Some(key) = self.keys.get(slot.0) else {
            return Candidates::default();
        };
        let mut scored: Vec<(usize, &Group)> = key
            .groups
            .iter()
            .map(|&g| &self.groups[g])
            .filter_map(|g| {
                let c = compare(&g.shape, live.shape(), mode);
                c.compatible().then_some((c.penalty(), g))
            })
            .collect();
        scored.sort_by_key(|(penalty, g)| (*penalty, g.entries[0]));
        Candidates {
            groups: scored.into_iter().map(|(_, g)| g).collect(),
        }
    }

    /// The nearest recorded entry to a request that found no fit, and why it differs:
    /// compared with each distinct shape of its key, else with each distinct key. The
    /// message is written into one string as it is found.
    pub fn explain_miss(&self, query: &Query<'_>, mode: MatchMode) -> (Option<usize>, String) {
        let live = query.head();
        let mut msg = String::with_capacity(256);
        msg.push_str("no recorded exchange matches ");
        push_shown(&mut msg, live);
        if let Some(key) = self.by_key.get(&live.key()).map(|&k| &self.keys[k]) {
            let best: Option<(usize, Comparison)> = key
                .groups
                .iter()
                .map(|&g| &self.groups[g])
                .map(|g| (g.entries[0], compare(&g.shape, query.shape(), mode)))
                .min_by_key(|(i, c)| (c.refused.len(), c.penalty(), *i));
            if let Some((i, c)) = best {
                let _ = write!(
                    msg,
                    "; nearest is #{} with the same path, whose body differs: {}",
                    self.seqs[i],
                    c.summary(4)
                );
                return (Some(i), msg);
            }
        }
        let live_segs: Vec<&str> = live.template.split('/').collect();
        let mut rows = (Vec::new(), Vec::new());
        let nearest = self
            .keys
            .iter()
            .map(|k| (self.groups[k.groups[0]].entries[0], &k.head))
            .min_by_key(|(i, p)| (key_distance(p, live, &live_segs, &mut rows), *i));
        let Some((i, p)) = nearest else {
            msg.push_str(": the cassette has no exchanges");
            return (None, msg);
        };
        let _ = write!(msg, "; nearest is #{} ", self.seqs[i]);
        push_shown(&mut msg, p);
        msg.push_str(": ");
        let mut first = true;
        let mut why = |msg: &mut String, args: std::fmt::Arguments<'_>| {
            if !std::mem::take(&mut first) {
                msg.push_str("; ");
            }
            let _ = msg.write_fmt(args);
        };
        if p.method != live.method {
            why(
                &mut msg,
                format_args!("method {} recorded, {} sent", p.method, live.method),
            );
        }
        if p.version != live.version {
            why(
                &mut msg,
                format_args!("version {} recorded, {} sent", p.version, live.version),
            );
        }
        if p.template != live.template {
            why(
                &mut msg,
                format_args!("path {} recorded, {} sent", p.template, live.template),
            );
        }
        if p.query != live.query {
            let sent = crate::redact::shown_uri(&live.query);
            why(&mut msg, format_args!("query {:?} recorded, {sent:?} sent", p.query));
        }
        (Some(i), msg)
    }
}

/// `METHOD /version/template` as misses show it, cut to 300 characters.
fn push_shown(out: &mut String, p: &Probe) {
    let start = out.len();
    out.push_str(&p.method);
    out.push_str(" /");
    out.push_str(&p.version);
    out.push_str(&p.template);
    clip_tail(out, start, 300);
}

/// How far a recorded key is from a live request's: path segments apart (edit
/// distance, weighted most), then method, version and query. Allocates only its two
/// rows, once per miss (`rows`), however many keys there are.
fn key_distance(a: &Probe, live: &Probe, live_segs: &[&str], rows: &mut (Vec<usize>, Vec<usize>)) -> usize {
    let (prev, cur) = rows;
    prev.clear();
    prev.extend(0..=live_segs.len());
    for (i, sx) in a.template.split('/').enumerate() {
        cur.clear();
        cur.push(i + 1);
        for (j, sy) in live_segs.iter().enumerate() {
            let sub = prev[j] + usize::from(sx != *sy);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        std::mem::swap(prev, cur);
    }
    let path = prev[live_segs.len()] * 4;
    path + 3 * usize::from(a.method != live.method)
        + usize::from(a.version != live.version)
        + usize::from(a.query != live.query)
}
