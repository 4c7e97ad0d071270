//! The index under the sessions lock: live sessions by name, live ids by owner, seeds
//! in use, last-use order and the ring of ended sessions; what retiring a session
//! detaches. No session lock is taken here (see the lock order in `sessions`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::{Name, Route, Shared};
use crate::error::ProxyError;
use crate::hash::{Map, Set};
use crate::ids::{Canon, Seed};
use crate::ring::Ring;

pub(super) struct Entry {
    pub(super) session: Shared,
    pub(super) seed: Seed,
    pub(super) used: Used,
    /// Live ids this session owns in the index: those its requests named...
    pub(super) owned: Vec<Canon>,
    /// ... and those minted for it, the latest `MINTED_ROUTED` (a session repeating an
    /// action mints ids every time; older ones stop routing).
    pub(super) minted: VecDeque<Canon>,
    pub(super) pending: Option<Arc<AtomicUsize>>,
}

/// How many of the ids minted for a session route requests to it.
pub(super) const MINTED_ROUTED: usize = 4096;

impl Entry {
    /// Idle: no delivery queued and nobody inside it right now.
    pub(super) fn idle(&self) -> bool {
        self.pending.as_ref().is_none_or(|p| p.load(Ordering::SeqCst) == 0) && self.session.try_lock().is_ok()
    }
}

/// When a session was last used: the clock's millisecond, then a count that orders
/// uses within one millisecond (the last-use order compares two integers, no names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Used {
    pub(super) ms: u64,
    tick: u64,
}

pub(super) struct Inner {
    pub(super) by_id: Map<Name, Entry>,
    /// Live id -> owning session.
    pub(super) index: Map<Canon, Name>,
    /// Seeds of live sessions (no two live sessions share one).
    pub(super) seeds: Set<Seed>,
    /// Ended sessions by id, oldest first.
    pub(super) ended: Ring<(Name, Shared)>,
    /// Live sessions by last use, least recent first (expiry and eviction read it in order).
    pub(super) lru: LastUse,
}

/// Live sessions by last use, least recent first.
#[derive(Default)]
pub(super) struct LastUse {
    order: BTreeMap<Used, Name>,
    ticks: u64,
}

impl LastUse {
    /// Marks `name` as used at `now_ms` (its previous use, if any, is `was`).
    pub(super) fn touch(&mut self, name: &Name, was: Option<Used>, now_ms: u64) -> Used {
        if let Some(w) = was {
            self.order.remove(&w);
        }
        self.ticks += 1;
        let used = Used {
            ms: now_ms,
            tick: self.ticks,
        };
        self.order.insert(used, name.clone());
        used
    }

    pub(super) fn remove(&mut self, used: &Used) {
        self.order.remove(used);
    }

    /// Least recent first.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&Used, &Name)> {
        self.order.iter()
    }
}

/// A session that left the index: kept in the ring of ended ones, and the older ended
/// session it pushed out of that ring (its outcome goes to the history). Dropped
/// outside the index lock.
pub(super) struct Retired {
    pub(super) ended: Shared,
    pub(super) dropped: Option<Shared>,
    _owned: (Vec<Canon>, VecDeque<Canon>),
}

impl Inner {
    /// An empty index keeping the reports of the `ended_kept` sessions that ended last.
    pub(super) fn new(ended_kept: usize) -> Inner {
        Inner {
            by_id: Map::default(),
            index: Map::default(),
            seeds: Set::default(),
            ended: Ring::new(ended_kept),
            lru: LastUse::default(),
        }
    }

    /// Detaches a session and the ids it owns (no session lock taken here) and keeps it
    /// in the ring of ended ones.
    pub(super) fn retire(&mut self, id: &str) -> Option<Retired> {
        let (name, e) = self.by_id.remove_entry(id)?;
        e.session.retire();
        self.seeds.remove(&e.seed);
        self.lru.remove(&e.used);
        for c in e.owned.iter().chain(&e.minted) {
            unroute(&mut self.index, c, id);
        }
        let dropped = self.ended.push((name, e.session.clone())).map(|(_, s)| s);
        Some(Retired {
            ended: e.session,
            dropped,
            _owned: (e.owned, e.minted),
        })
    }

    /// Whether a new session may take this seed and name.
    pub(super) fn free(&self, seed: &Seed, id: &str) -> bool {
        !self.seeds.contains(seed) && !self.by_id.contains_key(id)
    }

    pub(super) fn owner(&self, ids: &[Canon]) -> Result<Option<Name>, ProxyError> {
        let mut owners: Vec<(&Canon, &Name)> = Vec::new();
        for c in ids {
            if let Some(o) = self.index.get(c) {
                if !owners.iter().any(|(_, x)| *x == o) {
                    owners.push((c, o));
                }
            }
        }
        match owners.as_slice() {
            [] => Ok(None),
            [(_, o)] => Ok(Some(Name::clone(o))),
            many => {
                let each: Vec<String> = many.iter().map(|(c, o)| format!("id {c} to session {o}")).collect();
                Err(ProxyError::Conflict(format!(
                    "the request's ids belong to {} different replay sessions: {}",
                    many.len(),
                    each.join(", ")
                )))
            }
        }
    }

    /// The live session a request names, marked as used now.
    pub(super) fn find(&mut self, route: &Route<'_>, now_ms: u64) -> Result<Option<Shared>, ProxyError> {
        let found = match route.header {
            Some(h) => self.by_id.get_key_value(h).map(|(k, _)| k.clone()),
            None => match self.owner(route.path_ids)? {
                Some(s) => Some(s),
                None => self.owner(route.body_ids)?,
            },
        };
        let Some(id) = found else { return Ok(None) };
        let Some(e) = self.by_id.get_mut(&id) else {
            return Ok(None);
        };
        if e.used.ms != now_ms {
            e.used = self.lru.touch(&id, Some(e.used), now_ms);
        }
        Ok(Some(e.session.clone()))
    }

    /// Marks ids as owned by `session` (those owned by nobody yet); returns how many
    /// another session owns. Minted ids route only while among the latest
    /// `MINTED_ROUTED` minted for it; a minted id a request names becomes one of its
    /// own (it routes for as long as the session lives).
    pub(super) fn insert_ids(&mut self, session: &str, ids: &[Canon], minted: bool) -> usize {
        let Some(name) = self.by_id.get_key_value(session).map(|(k, _)| k.clone()) else {
            return 0;
        };
        let Some(e) = self.by_id.get_mut(session) else {
            return 0;
        };
        let mut elsewhere = 0;
        for c in ids {
            match self.index.entry(c.clone()) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(name.clone());
                    if minted {
                        e.minted.push_back(c.clone());
                    } else {
                        e.owned.push(c.clone());
                    }
                }
                std::collections::hash_map::Entry::Occupied(o) if **o.get() != *session => elsewhere += 1,
                std::collections::hash_map::Entry::Occupied(_) if !minted => {
                    if let Some(at) = e.minted.iter().position(|m| m == c) {
                        e.minted.remove(at);
                        e.owned.push(c.clone());
                    }
                }
                std::collections::hash_map::Entry::Occupied(_) => {}
            }
        }
        while e.minted.len() > MINTED_ROUTED {
            if let Some(old) = e.minted.pop_front() {
                unroute(&mut self.index, &old, session);
            }
        }
        elsewhere
    }
}

/// Removes `c`'s route to `session`: one lookup, and one more only if it routed
/// elsewhere (never expected: only this removes an entry, for its owner).
fn unroute(index: &mut Map<Canon, Name>, c: &Canon, session: &str) {
    if let Some(o) = index.remove(c) {
        if *o != *session {
            index.insert(c.clone(), o);
        }
    }
}
