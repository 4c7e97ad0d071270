//! Replay sessions: one replay of one cassette for one scenario (cursor, binding table,
//! seed, outbox), the global index of live ids that routes requests to them, idle
//! expiry, the session limit (least recently used idle session evicted first) and the
//! bounded ring of ended sessions (their reports stay readable, their deliveries go on).
//!
//! Lock order: a session's mutex may be held while the sessions' inner mutex is taken,
//! never the other way round (teardown detaches under the inner lock, then reports).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

use super::prepared::Prepared;
use crate::error::ProxyError;
use crate::ids::{Canon, IdTable, Seed};
use crate::notify::{Delivery, Outbox};

/// How many served/missed entries a report keeps (the totals count them all).
pub const REPORT_TAIL: usize = 1000;

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
    pub served_total: u64,
    /// The latest served requests (at most `REPORT_TAIL`).
    pub served: Vec<Served>,
    pub missed_total: u64,
    pub missed: Vec<Missed>,
    /// The latest deliveries (at most `REPORT_TAIL`).
    pub notifications: Vec<Delivery>,
    pub notifications_delivered: u64,
    pub notifications_failed: u64,
    pub notifications_pending: usize,
    /// Recorded exchanges this session never used.
    pub unused: Vec<u64>,
    /// Recorded id -> live id.
    pub bindings: Vec<(String, String)>,
}

fn push_bounded<T>(q: &mut VecDeque<T>, x: T) {
    if q.len() >= REPORT_TAIL {
        q.pop_front();
    }
    q.push_back(x);
}

/// One replay of one cassette for one scenario.
pub struct Session {
    pub id: String,
    pub cassette: Arc<Prepared>,
    pub seed: Seed,
    pub table: IdTable,
    /// Times each exchange (index entry) was served.
    pub served_count: Vec<u32>,
    /// The `callbackUri` learned from a create-call or answer request.
    pub callback_uri: Option<String>,
    served: VecDeque<Served>,
    served_total: u64,
    missed: VecDeque<Missed>,
    missed_total: u64,
    pub outbox: Option<Outbox>,
    /// Notification batches scheduled so far (message ids derive from it).
    pub batches: u64,
}

impl Session {
    fn new(id: String, cassette: Arc<Prepared>, seed: Seed) -> Session {
        Session {
            id,
            served_count: vec![0; cassette.exchanges.len()],
            cassette,
            seed,
            table: IdTable::default(),
            callback_uri: None,
            served: VecDeque::new(),
            served_total: 0,
            missed: VecDeque::new(),
            missed_total: 0,
            outbox: None,
            batches: 0,
        }
    }

    pub fn note_served(&mut self, s: Served) {
        self.served_total += 1;
        push_bounded(&mut self.served, s);
    }

    pub fn note_missed(&mut self, m: Missed) {
        self.missed_total += 1;
        push_bounded(&mut self.missed, m);
    }

    pub fn report(&self, active: bool) -> Report {
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
        let (notifications, delivered, failed, pending) = match &self.outbox {
            Some(o) => {
                let (log, delivered, failed) = o.log();
                (log, delivered, failed, o.pending())
            }
            None => (Vec::new(), 0, 0, 0),
        };
        Report {
            session: self.id.clone(),
            cassette: self.cassette.name().to_string(),
            active,
            served_total: self.served_total,
            served: self.served.iter().cloned().collect(),
            missed_total: self.missed_total,
            missed: self.missed.iter().cloned().collect(),
            notifications,
            notifications_delivered: delivered,
            notifications_failed: failed,
            notifications_pending: pending,
            unused,
            bindings,
        }
    }
}

/// A session as the index and requests share it.
type Shared = Arc<Mutex<Session>>;

struct Entry {
    session: Shared,
    seed: Seed,
    last_used_ms: u64,
    /// Live ids this session owns in the index.
    owned: Vec<Canon>,
    pending: Option<Arc<AtomicUsize>>,
}

impl Entry {
    /// Idle: no delivery queued and nobody inside it right now.
    fn idle(&self) -> bool {
        self.pending.as_ref().is_none_or(|p| p.load(Ordering::SeqCst) == 0) && self.session.try_lock().is_ok()
    }
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<String, Entry>,
    /// Live id -> owning session.
    index: HashMap<Canon, String>,
    /// Seeds of live sessions (no two live sessions share one).
    seeds: HashSet<Seed>,
    /// Ended sessions by id, oldest first.
    ended: VecDeque<(String, Shared)>,
    /// Live sessions by last use, least recent first (expiry and eviction read it in order).
    lru: BTreeSet<(u64, String)>,
}

impl Inner {
    /// Detaches a session and the ids it owns (no session lock taken here).
    fn detach(&mut self, id: &str) -> Option<(String, Entry)> {
        let e = self.by_id.remove(id)?;
        self.seeds.remove(&e.seed);
        self.lru.remove(&(e.last_used_ms, id.to_string()));
        for c in &e.owned {
            if self.index.get(c).is_some_and(|o| o == id) {
                self.index.remove(c);
            }
        }
        Some((id.to_string(), e))
    }

    fn owner(&self, ids: &[Canon]) -> Result<Option<String>, ProxyError> {
        let owners: HashSet<&String> = ids.iter().filter_map(|c| self.index.get(c)).collect();
        match owners.len() {
            0 => Ok(None),
            1 => Ok(owners.into_iter().next().cloned()),
            n => Err(ProxyError::Conflict(format!(
                "the request's ids belong to {n} different replay sessions"
            ))),
        }
    }

    fn foreign_owner(&self, session: &str, ids: &[Canon]) -> Option<String> {
        ids.iter()
            .filter_map(|c| self.index.get(c))
            .find(|o| o.as_str() != session)
            .cloned()
    }
}

/// How a request names its session.
pub struct Route<'a> {
    /// `x-graphvcr-session`, when sent.
    pub header: Option<&'a str>,
    /// Call-scoped ids in the path, then in the body.
    pub path_ids: &'a [Canon],
    pub body_ids: &'a [Canon],
    /// What a new session's seed derives from (besides the cassette name); only
    /// called when a session is created.
    pub seed_material: &'a dyn Fn() -> Vec<u8>,
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

    /// Finds the session a request belongs to, or creates it: by header, else by a
    /// live id in the path, else in the body, else new.
    pub fn find_or_create(
        &self,
        cassette: &Arc<Prepared>,
        route: &Route<'_>,
        now_ms: u64,
    ) -> Result<Arc<Mutex<Session>>, ProxyError> {
        let mut detached: Vec<(String, Entry)> = Vec::new();
        let r = self.find_or_create_locked(cassette, route, now_ms, &mut detached);
        self.finish(detached);
        r
    }

    fn find_or_create_locked(
        &self,
        cassette: &Arc<Prepared>,
        route: &Route<'_>,
        now_ms: u64,
        detached: &mut Vec<(String, Entry)>,
    ) -> Result<Arc<Mutex<Session>>, ProxyError> {
        let mut inner = lock(&self.inner);
        let found = match route.header {
            Some(h) => inner.by_id.contains_key(h).then(|| h.to_string()),
            None => match inner.owner(route.path_ids)? {
                Some(s) => Some(s),
                None => inner.owner(route.body_ids)?,
            },
        };
        if let Some(id) = found {
            let inner = &mut *inner;
            if let Some(e) = inner.by_id.get_mut(&id) {
                if e.last_used_ms != now_ms {
                    inner.lru.remove(&(e.last_used_ms, id.clone()));
                    e.last_used_ms = now_ms;
                    inner.lru.insert((now_ms, id));
                }
                return Ok(e.session.clone());
            }
        }
        if inner.by_id.len() >= self.max {
            detached.extend(self.expired(&mut inner, now_ms));
        }
        if inner.by_id.len() >= self.max {
            detached.push(self.evict_lru(&mut inner)?);
        }
        // the seed: the same live request always gets the same one, unless a live
        // session already holds it (an identical request from another test)
        let name = cassette.name().as_bytes();
        let material = (route.seed_material)();
        let mut n: u32 = 0;
        let (seed, id) = loop {
            let count = n.to_be_bytes();
            let parts: [&[u8]; 4] = [name, route.header.unwrap_or("").as_bytes(), &material, &count];
            let seed = Seed::derive(parts.into_iter().take(if n == 0 { 3 } else { 4 }));
            let id = match route.header {
                Some(h) => h.to_string(),
                None => format!("s-{}", seed.short()),
            };
            let taken = inner.seeds.contains(&seed) || inner.by_id.contains_key(&id);
            if !taken {
                break (seed, id);
            }
            n += 1;
        };
        let session = Arc::new(Mutex::new(Session::new(id.clone(), cassette.clone(), seed)));
        // claim the path ids now, so a concurrent request for the same call joins this
        // session instead of creating another; ids of the recording itself never route
        let owned: Vec<Canon> = route
            .path_ids
            .iter()
            .filter(|c| !cassette.recorded_ids.contains(*c) && !inner.index.contains_key(*c))
            .cloned()
            .collect();
        for c in &owned {
            inner.index.insert(c.clone(), id.clone());
        }
        inner.seeds.insert(seed);
        inner.lru.insert((now_ms, id.clone()));
        inner.by_id.insert(
            id.clone(),
            Entry {
                session: session.clone(),
                seed,
                last_used_ms: now_ms,
                owned,
                pending: None,
            },
        );
        tracing::debug!(session = %id, cassette = %cassette.name(), "session started");
        Ok(session)
    }

    /// Whether `session` is still the live session of its id (it may have ended while
    /// a request waited for it, and another may have taken its name since).
    pub fn is_current(&self, session: &Arc<Mutex<Session>>, id: &str) -> bool {
        lock(&self.inner)
            .by_id
            .get(id)
            .is_some_and(|e| Arc::ptr_eq(&e.session, session))
    }

    /// Reserves live ids for a live session, all or none: refused (and nothing
    /// reserved) when another session owns one of them.
    pub fn claim(&self, session: &str, ids: &[Canon]) -> Result<(), ProxyError> {
        let mut inner = lock(&self.inner);
        if !inner.by_id.contains_key(session) {
            return Err(ProxyError::Conflict(format!("replay session {session} has ended")));
        }
        if let Some(other) = inner.foreign_owner(session, ids) {
            return Err(ProxyError::Conflict(format!(
                "an id of this request already belongs to replay session {other}"
            )));
        }
        Self::insert_ids(&mut inner, session, ids);
        Ok(())
    }

    /// Registers ids minted for a session; one owned elsewhere (never expected: seeds
    /// differ) is skipped, not a reason to drop the others.
    pub fn claim_minted(&self, session: &str, ids: &[Canon]) {
        let mut inner = lock(&self.inner);
        if !inner.by_id.contains_key(session) {
            return;
        }
        let free: Vec<Canon> = ids
            .iter()
            .filter(|c| inner.index.get(*c).is_none_or(|o| o == session))
            .cloned()
            .collect();
        if free.len() < ids.len() {
            tracing::warn!(
                session,
                "{} minted id(s) already owned by another session",
                ids.len() - free.len()
            );
        }
        Self::insert_ids(&mut inner, session, &free);
    }

    fn insert_ids(inner: &mut Inner, session: &str, ids: &[Canon]) {
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
    }

    pub fn set_pending(&self, session: &str, pending: Arc<AtomicUsize>) {
        if let Some(e) = lock(&self.inner).by_id.get_mut(session) {
            e.pending = Some(pending);
        }
    }

    /// Detaches the sessions idle for too long, oldest first.
    fn expired(&self, inner: &mut Inner, now_ms: u64) -> Vec<(String, Entry)> {
        let ids: Vec<String> = inner
            .lru
            .iter()
            .take_while(|(t, _)| now_ms.saturating_sub(*t) >= self.idle_ms)
            .filter(|(_, id)| inner.by_id.get(id).is_some_and(Entry::idle))
            .map(|(_, id)| id.clone())
            .collect();
        ids.into_iter().filter_map(|id| inner.detach(&id)).collect()
    }

    /// Detaches the least recently used idle session.
    fn evict_lru(&self, inner: &mut Inner) -> Result<(String, Entry), ProxyError> {
        let victim = inner
            .lru
            .iter()
            .find(|(_, id)| inner.by_id.get(id).is_some_and(Entry::idle))
            .map(|(_, id)| id.clone());
        match victim.and_then(|id| inner.detach(&id)) {
            Some(e) => {
                tracing::debug!("session evicted (session limit)");
                Ok(e)
            }
            None => Err(ProxyError::Busy(format!(
                "all {} replay sessions are busy; raise --max-sessions",
                self.max
            ))),
        }
    }

    /// Keeps detached sessions in the ring of ended ones.
    fn finish(&self, detached: Vec<(String, Entry)>) {
        if detached.is_empty() {
            return;
        }
        let mut inner = lock(&self.inner);
        for (id, e) in detached {
            if inner.ended.len() >= self.ended_max {
                inner.ended.pop_front();
            }
            inner.ended.push_back((id, e.session));
        }
    }

    /// Ends idle sessions.
    pub fn sweep(&self, now_ms: u64) {
        let detached = {
            let mut inner = lock(&self.inner);
            self.expired(&mut inner, now_ms)
        };
        self.finish(detached);
    }

    /// Ends a session now and returns its report (deliveries already queued go on).
    pub fn end(&self, id: &str) -> Option<Report> {
        let (id, e) = lock(&self.inner).detach(id)?;
        let session = e.session.clone();
        self.finish(vec![(id, e)]);
        let report = lock(&session).report(false);
        Some(report)
    }

    /// Reports of live and ended sessions, by session id.
    pub fn reports(&self) -> Vec<Report> {
        let (live, ended): (Vec<Shared>, Vec<Shared>) = {
            let inner = lock(&self.inner);
            (
                inner.by_id.values().map(|e| e.session.clone()).collect(),
                inner.ended.iter().map(|(_, s)| s.clone()).collect(),
            )
        };
        let mut out: Vec<Report> = live.iter().map(|s| lock(s).report(true)).collect();
        out.extend(ended.iter().map(|s| lock(s).report(false)));
        out.sort_by(|a, b| a.session.cmp(&b.session));
        out
    }

    pub fn report(&self, id: &str) -> Option<Report> {
        let (live, ended) = {
            let inner = lock(&self.inner);
            (
                inner.by_id.get(id).map(|e| e.session.clone()),
                inner.ended.iter().rev().find(|(k, _)| k == id).map(|(_, s)| s.clone()),
            )
        };
        match (live, ended) {
            (Some(s), _) => Some(lock(&s).report(true)),
            (None, Some(s)) => Some(lock(&s).report(false)),
            (None, None) => None,
        }
    }

    pub fn live_count(&self) -> usize {
        lock(&self.inner).by_id.len()
    }
}

/// Locks a session (a poisoned lock is still usable: state is plain data).
pub fn lock_session(s: &Mutex<Session>) -> MutexGuard<'_, Session> {
    lock(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cassette::{Cassette, Meta};

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

    fn route<'a>(path: &'a [Canon], material: &'a dyn Fn() -> Vec<u8>) -> Route<'a> {
        Route {
            header: None,
            path_ids: path,
            body_ids: &[],
            seed_material: material,
        }
    }

    #[test]
    fn sessions_are_bounded_lru_first_and_expire_when_idle() {
        let c = empty();
        let s = Sessions::new(1000, 2);
        let (g1, g2, g3) = ([Canon::Guid(1)], [Canon::Guid(2)], [Canon::Guid(3)]);
        let a = s.find_or_create(&c, &route(&g1, &|| b"a".to_vec()), 0).unwrap();
        let _b = s.find_or_create(&c, &route(&g2, &|| b"b".to_vec()), 10).unwrap();
        let a2 = s.find_or_create(&c, &route(&g1, &|| b"a".to_vec()), 20).unwrap();
        assert!(Arc::ptr_eq(&a, &a2), "a known live id finds its session");
        let _c = s.find_or_create(&c, &route(&g3, &|| b"c".to_vec()), 30).unwrap();
        assert_eq!(s.live_count(), 2);
        let ended: Vec<Report> = s.reports().into_iter().filter(|r| !r.active).collect();
        assert_eq!(ended.len(), 1, "the least recently used session was evicted");
        let a_id = lock(&a).id.clone();
        assert_ne!(ended[0].session, a_id);
        s.sweep(5_000);
        assert_eq!(s.live_count(), 0, "idle sessions expire");
        assert!(s.report(&a_id).is_some_and(|r| !r.active), "their reports are kept");
    }

    #[test]
    fn ids_of_two_sessions_in_one_request_conflict() {
        let c = empty();
        let s = Sessions::new(1000, 10);
        s.find_or_create(&c, &route(&[Canon::Guid(1)], &|| b"1".to_vec()), 0)
            .unwrap();
        s.find_or_create(&c, &route(&[Canon::Guid(2)], &|| b"2".to_vec()), 0)
            .unwrap();
        let r = s.find_or_create(&c, &route(&[Canon::Guid(1), Canon::Guid(2)], &|| b"3".to_vec()), 0);
        assert!(matches!(r, Err(ProxyError::Conflict(_))));
    }

    #[test]
    fn identical_new_requests_get_distinct_seeds() {
        let c = empty();
        let s = Sessions::new(1000, 10);
        let a = s.find_or_create(&c, &route(&[], &|| b"same".to_vec()), 0).unwrap();
        let b = s.find_or_create(&c, &route(&[], &|| b"same".to_vec()), 0).unwrap();
        assert_ne!(lock(&a).seed, lock(&b).seed);
        // and the first one's seed is the deterministic one
        let (ida, idb) = (lock(&a).id.clone(), lock(&b).id.clone());
        s.end(&ida);
        s.end(&idb);
        let again = s.find_or_create(&c, &route(&[], &|| b"same".to_vec()), 0).unwrap();
        assert_eq!(lock(&again).seed, lock(&a).seed);
    }

    #[test]
    fn ending_a_session_while_a_request_holds_it_does_not_deadlock() {
        let c = empty();
        let s = Arc::new(Sessions::new(1000, 10));
        let a = s
            .find_or_create(&c, &route(&[Canon::Guid(1)], &|| b"a".to_vec()), 0)
            .unwrap();
        let id = lock(&a).id.clone();
        let guard = lock(&a);
        let s2 = s.clone();
        let id2 = id.clone();
        let ender = std::thread::spawn(move || s2.end(&id2));
        // while the session is held, the request can still reach the inner lock
        std::thread::sleep(std::time::Duration::from_millis(50));
        let claimed = s.claim(&id, &[Canon::Guid(9)]);
        drop(guard);
        let report = ender.join().unwrap();
        assert!(report.is_some());
        assert!(claimed.is_err() || s.live_count() == 0);
        assert!(!s.is_current(&a, &id));
    }
}
