//! The sessions index: every live replay session, the global index of live ids that
//! routes requests to them, idle expiry, the session limit (least recently used idle
//! session evicted first) and the bounded ring of ended sessions (their reports stay
//! readable, their deliveries go on).
//!
//! Lock order: a session's mutex may be held while the index lock is taken, never the
//! other way round (teardown detaches under the index lock, then reports). A request
//! takes the index lock to find its session (a new one: again to enter it), once to
//! claim its ids, once after serving. What a new session needs (its seed, the session
//! itself) is built before that lock, and what leaves (dropped sessions, outcomes)
//! after it: two requests' turns under it stay short. Session names are shared
//! (`Arc<str>`): the index, the last-use order and the ids it owns clone no strings.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::prepared::Prepared;
use super::session::{Outcome, Report, Session};
use super::settings::SessionSettings;
use crate::error::ProxyError;
use crate::ids::{Canon, Seed};
use crate::ring::Ring;
use crate::sync::lock;

/// A session as the index and requests share it.
pub type Shared = Arc<Held>;

/// A session behind its lock, and whether it is still live: cleared when it leaves
/// the index (read without the index lock).
pub struct Held {
    session: Mutex<Session>,
    live: AtomicBool,
}

impl Held {
    fn new(session: Session) -> Held {
        Held {
            session: Mutex::new(session),
            live: AtomicBool::new(true),
        }
    }

    /// Still in the index (cleared once, when it leaves: never set again).
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    pub(super) fn retire(&self) {
        self.live.store(false, Ordering::Release);
    }
}

impl std::ops::Deref for Held {
    type Target = Mutex<Session>;

    fn deref(&self) -> &Mutex<Session> {
        &self.session
    }
}

/// A session's name as the index keeps it.
type Name = Arc<str>;

mod index;
use index::{Entry, Inner, Retired};

/// How many ended sessions keep their reports.
const ENDED_KEPT: usize = 1024;

/// How many outcomes of older ended sessions a run keeps (for CI reports).
const OUTCOMES_KEPT: usize = 100_000;

/// How a request names its session.
pub struct Route<'a> {
    /// The settings a new session starts with.
    pub settings: &'a Arc<SessionSettings>,
    /// `x-graphvcr-session`, when sent.
    pub header: Option<&'a str>,
    /// Call-scoped ids in the path, then in the body.
    pub path_ids: &'a [Canon],
    pub body_ids: &'a [Canon],
    /// What a new session's seed derives from (besides the cassette name); only
    /// called when a session is created, outside the index lock.
    pub seed_material: &'a (dyn Fn() -> Vec<u8> + Sync),
}

/// Why ids could not be claimed for a session.
#[derive(Debug)]
pub enum ClaimError {
    /// The session ended (idle, evicted, deleted) while the request held it.
    Ended,
    /// Another session owns one of the ids.
    Taken(ProxyError),
}

/// All sessions and the global index of live ids.
pub struct Sessions {
    inner: Mutex<Inner>,
    /// Outcomes of sessions that left the ring of ended ones (its own lock: written
    /// after a session's outcome is taken, outside the index lock).
    history: Mutex<Ring<Outcome>>,
    idle_ms: u64,
    max: usize,
}

/// `s-` and 16 hex digits: the name of a session that named none, from its seed,
/// formatted on the stack into its one allocation (the shared `Name`).
fn short_name(v: u64) -> Name {
    use std::io::Write as _;
    let mut b = [0u8; 18];
    let _ = write!(&mut b[..], "s-{v:016x}");
    // ASCII by construction
    Name::from(std::str::from_utf8(&b).unwrap_or("s-"))
}

/// A new session built before the index lock is taken, for its first seed.
struct Draft {
    seed: Seed,
    id: Name,
    session: Shared,
}

impl Sessions {
    pub fn new(idle_ms: u64, max: usize) -> Sessions {
        Sessions {
            inner: Mutex::new(Inner::new(ENDED_KEPT)),
            history: Mutex::new(Ring::new(OUTCOMES_KEPT)),
            idle_ms,
            max: max.max(1),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// The live session a request names: by header, else by a live id in the path,
    /// else in the body.
    pub fn find(&self, route: &Route<'_>, now_ms: u64) -> Result<Option<Shared>, ProxyError> {
        self.inner().find(route, now_ms)
    }

    /// A live session by name.
    pub fn get(&self, id: &str) -> Option<Shared> {
        self.inner().by_id.get(id).map(|e| e.session.clone())
    }

    /// Finds the session a request belongs to, or creates it: by header, else by a
    /// live id in the path, else in the body, else new.
    pub fn find_or_create(
        &self,
        cassette: &Arc<Prepared>,
        route: &Route<'_>,
        now_ms: u64,
    ) -> Result<Shared, ProxyError> {
        match self.find(route, now_ms)? {
            Some(s) => Ok(s),
            None => self.create_new(cassette, route, now_ms),
        }
    }

    /// Creates the session for a request that named none that is live (unless a
    /// concurrent request just created it).
    pub fn create_new(&self, cassette: &Arc<Prepared>, route: &Route<'_>, now_ms: u64) -> Result<Shared, ProxyError> {
        let material = (route.seed_material)();
        let draft = Self::draft(cassette, route, &material, 0);
        let mut retired: Vec<Retired> = Vec::new();
        let r = self.create(cassette, route, &material, draft, now_ms, &mut retired);
        self.finish(retired);
        r
    }

    /// The session for seed attempt `n` (outside the index lock when `n` is 0).
    fn draft(cassette: &Arc<Prepared>, route: &Route<'_>, material: &[u8], n: u32) -> Draft {
        let (seed, id) = Self::seed_for(cassette.name(), route.header, material, n);
        let session = Session::new(id.clone(), cassette.clone(), seed, route.settings.clone());
        Draft {
            seed,
            id,
            session: Arc::new(Held::new(session)),
        }
    }

    /// Creates the session (unless a concurrent request just did) under one lock.
    fn create(
        &self,
        cassette: &Arc<Prepared>,
        route: &Route<'_>,
        material: &[u8],
        draft: Draft,
        now_ms: u64,
        retired: &mut Vec<Retired>,
    ) -> Result<Shared, ProxyError> {
        let mut inner = self.inner();
        if let Some(s) = inner.find(route, now_ms)? {
            return Ok(s);
        }
        if inner.by_id.len() >= self.max {
            retired.extend(self.expired(&mut inner, now_ms));
        }
        if inner.by_id.len() >= self.max {
            retired.push(self.evict_lru(&mut inner)?);
        }
        // the same live request always gets the same seed, unless a live session
        // already holds it (an identical request from another test): then the next
        let mut draft = draft;
        let mut n = 0;
        while !inner.free(&draft.seed, &draft.id) {
            n += 1;
            draft = Self::draft(cassette, route, material, n);
        }
        let Draft {
            seed,
            id: name,
            session,
        } = draft;
        // claim the request's ids now (none is owned: `find` found no owner), so a
        // concurrent request for the same call joins this session instead of creating
        // another; ids of the recording itself never route
        let mut owned: Vec<Canon> = Vec::with_capacity(route.path_ids.len() + route.body_ids.len());
        for c in route.path_ids.iter().chain(route.body_ids) {
            if !cassette.mentions(c) && !inner.index.contains_key(c) {
                inner.index.insert(c.clone(), name.clone());
                owned.push(c.clone());
            }
        }
        // nobody else can reach the session yet: its lock is free, whatever the order
        lock(&session).note_owned(&owned);
        inner.seeds.insert(seed);
        let used = inner.lru.touch(&name, None, now_ms);
        let entry = Entry {
            session: session.clone(),
            seed,
            used,
            owned,
            minted: Default::default(),
            pending: None,
        };
        tracing::debug!(session = %name, cassette = %cassette.name(), "session started");
        inner.by_id.insert(name, entry);
        Ok(session)
    }

    /// Seed attempt `n` for a new session and its name.
    fn seed_for(cassette: &str, header: Option<&str>, material: &[u8], n: u32) -> (Seed, Name) {
        let count = n.to_be_bytes();
        let parts: [&[u8]; 4] = [cassette.as_bytes(), header.unwrap_or("").as_bytes(), material, &count];
        let seed = Seed::derive(parts.into_iter().take(if n == 0 { 3 } else { 4 }));
        let id = match header {
            Some(h) => Name::from(h),
            None => short_name(seed.short()),
        };
        (seed, id)
    }

    /// Reserves live ids for `session` (`s`, locked), all or none: refused (and
    /// nothing reserved) when another session owns one of them or the session is no
    /// longer live. Ids the session is known to own already need no index lock: only
    /// leaving the index takes an id from its owner.
    pub fn claim(&self, session: &Shared, s: &mut Session, ids: &[Canon]) -> Result<(), ClaimError> {
        if session.is_live() && ids.iter().all(|c| s.owns(c)) {
            return Ok(());
        }
        let id = s.id();
        let mut inner = self.inner();
        if !inner.by_id.get(id).is_some_and(|e| Arc::ptr_eq(&e.session, session)) {
            return Err(ClaimError::Ended);
        }
        let taken = ids
            .iter()
            .find_map(|c| inner.index.get(c).filter(|o| ***o != *id).map(|o| (c, o)));
        if let Some((c, other)) = taken {
            return Err(ClaimError::Taken(ProxyError::Conflict(format!(
                "id {c} of this request already belongs to replay session {other}"
            ))));
        }
        inner.insert_ids(id, ids, false);
        drop(inner);
        s.note_owned(ids);
        Ok(())
    }

    /// After serving: registers ids minted for a session (one owned elsewhere, never
    /// expected as seeds differ, is skipped) and the pending counter of a new outbox.
    pub fn served(&self, session: &str, minted: &[Canon], pending: Option<Arc<AtomicUsize>>) {
        let mut inner = self.inner();
        let Some(e) = inner.by_id.get_mut(session) else {
            return;
        };
        if pending.is_some() {
            e.pending = pending;
        }
        let elsewhere = inner.insert_ids(session, minted, true);
        if elsewhere > 0 {
            tracing::warn!(session, "{elsewhere} minted id(s) already owned by another session");
        }
    }

    /// Retires the sessions idle for too long, oldest first.
    fn expired(&self, inner: &mut Inner, now_ms: u64) -> Vec<Retired> {
        let ids: Vec<Name> = inner
            .lru
            .iter()
            .take_while(|(u, _)| now_ms.saturating_sub(u.ms) >= self.idle_ms)
            .filter(|(_, id)| inner.by_id.get(*id).is_some_and(Entry::idle))
            .map(|(_, id)| Name::clone(id))
            .collect();
        ids.into_iter().filter_map(|id| inner.retire(&id)).collect()
    }

    /// Retires the least recently used idle session.
    fn evict_lru(&self, inner: &mut Inner) -> Result<Retired, ProxyError> {
        let victim = inner
            .lru
            .iter()
            .find(|(_, id)| inner.by_id.get(*id).is_some_and(Entry::idle))
            .map(|(_, id)| Name::clone(id));
        match victim.and_then(|id| inner.retire(&id)) {
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

    /// After the index lock: logs the end of retired sessions, and moves the outcomes
    /// of those pushed out of the ring of ended ones to the run's history.
    fn finish(&self, retired: Vec<Retired>) {
        if retired.is_empty() {
            return;
        }
        if tracing::enabled!(tracing::Level::INFO) {
            for r in &retired {
                lock(&r.ended).log_end("ended");
            }
        }
        let outcomes: Vec<Outcome> = retired
            .iter()
            .filter_map(|r| r.dropped.as_ref())
            .map(|s| lock(s).outcome())
            .collect();
        if outcomes.is_empty() {
            return;
        }
        let mut history = lock(&self.history);
        for mut o in outcomes {
            // the sessions of one cassette that did one thing end alike, one after another
            if let Some(last) = history.last() {
                o.verdict.share(&last.verdict);
            }
            history.push(o);
        }
    }

    /// Every session of the run: live and recently ended ones from their reports, older
    /// ones from the history; and how many older ones the history no longer holds.
    pub fn outcomes(&self) -> (Vec<Outcome>, u64) {
        let (history, lost) = {
            let h = lock(&self.history);
            (h.to_vec(), h.total() - h.len() as u64)
        };
        let (live, ended) = self.held();
        let mut now: Vec<Outcome> = live.iter().chain(&ended).map(|s| lock(s).outcome()).collect();
        // stable: a live session before an ended one of the same id, as in `reports`
        now.sort_by(|a, b| a.session.cmp(&b.session));
        let mut out = history;
        out.extend(now);
        (out, lost)
    }

    /// The live sessions and the recently ended ones.
    fn held(&self) -> (Vec<Shared>, Vec<Shared>) {
        let inner = self.inner();
        (
            inner.by_id.values().map(|e| e.session.clone()).collect(),
            inner.ended.iter().map(|(_, s)| s.clone()).collect(),
        )
    }

    /// Ends idle sessions.
    pub fn sweep(&self, now_ms: u64) {
        let retired = {
            let mut inner = self.inner();
            self.expired(&mut inner, now_ms)
        };
        self.finish(retired);
    }

    /// Ends a session now and returns its report (deliveries already queued go on).
    pub fn end(&self, id: &str) -> Option<Report> {
        let retired = self.inner().retire(id)?;
        let session = retired.ended.clone();
        self.finish(vec![retired]);
        let report = lock(&session).report(false);
        Some(report)
    }

    /// Reports of live and ended sessions, by session id.
    pub fn reports(&self) -> Vec<Report> {
        let (live, ended) = self.held();
        let mut out: Vec<Report> = live.iter().map(|s| lock(s).report(true)).collect();
        out.extend(ended.iter().map(|s| lock(s).report(false)));
        out.sort_by(|a, b| a.session.cmp(&b.session));
        out
    }

    pub fn report(&self, id: &str) -> Option<Report> {
        let (live, ended) = {
            let inner = self.inner();
            let live = inner.by_id.get(id).map(|e| e.session.clone());
            let ended = inner
                .ended
                .iter()
                .rev()
                .find(|(k, _)| **k == *id)
                .map(|(_, s)| s.clone());
            (live, ended)
        };
        match (live, ended) {
            (Some(s), _) => Some(lock(&s).report(true)),
            (None, Some(s)) => Some(lock(&s).report(false)),
            (None, None) => None,
        }
    }

    #[cfg(test)]
    pub fn live_count(&self) -> usize {
        self.inner().by_id.len()
    }
}

#[cfg(test)]
mod tests;
