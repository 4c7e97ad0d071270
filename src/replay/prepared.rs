//! A cassette prepared for serving, once at load (`prepare`): the match index, the
//! notifications each exchange triggers, the ids that stay stable and every id it
//! mentions; the events' bodies held, or read from the store when served (`bodies`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::cassette::{Cassette, Meta, Store, StoreError};
use crate::hash::Set;
use crate::ids::Canon;
use crate::matching::Index;

use super::bodies::{Bodies, Loaded};
use super::prepare::{Builder, Summary};
pub use super::prepare::{Head, RecordedExchange};
use super::saved;

/// Cassettes with more events than this are served from the store, not held.
pub const HOLD_EVENTS: usize = 4096;

/// A cassette ready to serve.
#[derive(Debug)]
pub struct Prepared {
    meta: Meta,
    /// `meta.name`, shared by the outcomes of its sessions.
    name: Arc<str>,
    summary: Summary,
    bodies: Bodies,
    /// Per exchange: served by some session, ever.
    used: Vec<AtomicBool>,
}

impl Prepared {
    /// Prepares a cassette held in memory.
    pub fn new(c: Cassette) -> Prepared {
        let mut b = Builder::new(usize::MAX);
        for e in c.events {
            b.push(e);
        }
        let (summary, _, held) = b.finish();
        Prepared::of(c.meta, summary, Bodies::Held(held.unwrap_or_default()))
    }

    /// Prepares cassette `name` as the store streams it (`None`: not stored): held
    /// when it has at most `hold` events, else served from the store, its bodies read
    /// when a session needs them. A cassette served from the store keeps its summary
    /// there (`saved`), and its next start reads that instead of every event, as long
    /// as the cassette is unchanged.
    pub fn stream(store: &dyn Store, name: &str, hold: usize) -> Result<Option<Prepared>, StoreError> {
        if let Some((blob, streamed)) = store.derived(name)? {
            if let Some((summary, bindable)) = saved::decode(&blob).filter(|(s, _)| s.heads.len() > hold) {
                let bodies = Bodies::stored(streamed.reader, bindable);
                return Ok(Some(Prepared::of(streamed.meta, summary, bodies)));
            }
        }
        let mut b = Builder::new(hold);
        let Some(streamed) = store.stream(name, &mut |e| b.push(e))? else {
            return Ok(None);
        };
        let (summary, bindable, held) = b.finish();
        let bodies = match held {
            Some(h) => Bodies::Held(h),
            None => {
                let kept = store
                    .put_derived(name, &saved::encode(&summary, &bindable))
                    .and_then(|()| store.flush());
                if let Err(e) = kept {
                    // served all the same; prepared again at the next start
                    tracing::debug!("cassette `{name}`: its prepared summary was not kept: {e}");
                }
                Bodies::stored(streamed.reader, bindable)
            }
        };
        Ok(Some(Prepared::of(streamed.meta, summary, bodies)))
    }

    fn of(meta: Meta, summary: Summary, bodies: Bodies) -> Prepared {
        Prepared {
            name: meta.name.as_str().into(),
            meta,
            used: (0..summary.exchanges.len()).map(|_| AtomicBool::new(false)).collect(),
            summary,
            bodies,
        }
    }

    /// Whether a live body of `len` bytes for index key `key` is too large to match
    /// any recording (allowing generous room for SDK whitespace and escaping): such a
    /// request misses without being parsed.
    pub fn body_too_large(&self, key: &str, len: usize) -> Option<usize> {
        let largest = self.summary.largest_body.get(key).copied().unwrap_or(0);
        (len > largest.saturating_mul(4).saturating_add(4096)).then_some(largest)
    }

    /// The index entry of the exchange recorded as `seq`.
    pub fn entry_of(&self, seq: u64) -> Option<usize> {
        let s = &self.summary;
        s.exchanges.iter().position(|x| s.heads[x.event].seq == seq)
    }

    /// The ids index entry `entry`'s action creates (in its response or the
    /// notifications that follow it, not in its request, never seen before it, not
    /// stable). Served again in a session, a state-changing exchange mints these
    /// afresh: a new action, a new resource.
    pub fn created(&self, entry: usize) -> &Set<Canon> {
        &self.summary.created[entry]
    }

    pub fn mark_used(&self, entry: usize) {
        if let Some(u) = self.used.get(entry) {
            u.store(true, Ordering::Relaxed);
        }
    }

    /// Seqs of the exchanges no session has served.
    pub fn unused(&self) -> Vec<u64> {
        (0..self.summary.exchanges.len())
            .filter(|&i| !self.used[i].load(Ordering::Relaxed))
            .map(|i| self.exchange_head(i).seq)
            .collect()
    }

    pub fn name(&self) -> &str {
        &self.meta.name
    }

    pub fn shared_name(&self) -> &Arc<str> {
        &self.name
    }

    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Every recorded event's head, in seq order.
    pub fn heads(&self) -> &[Head] {
        &self.summary.heads
    }

    /// Event `i`'s head (`i` an index into `heads`).
    pub fn head(&self, i: usize) -> &Head {
        &self.summary.heads[i]
    }

    /// Event `i` as served: without the body graphvcr sends, which is compiled for
    /// rewriting (read from the store when the cassette is not held).
    pub fn load(&self, i: usize) -> Result<Arc<Loaded>, StoreError> {
        self.bodies.get(i, self.summary.heads[i].seq)
    }

    /// Events `events` as served, in order.
    pub fn load_all(&self, events: &[usize]) -> Result<Vec<Arc<Loaded>>, StoreError> {
        events.iter().map(|&i| self.load(i)).collect()
    }

    /// Event `i`'s (change type, resource template) pairs, if it is a notification.
    pub fn notification_kinds(&self, i: usize) -> &[(String, String)] {
        self.summary.kinds.get(i).map_or(&[], Vec::as_slice)
    }

    /// Whether event `i` is a notification reporting an operation's outcome.
    pub fn reports_operation(&self, i: usize) -> bool {
        self.summary.operations.get(i).copied().unwrap_or(false)
    }

    /// The recorded exchanges, in order; index entry `i` is exchange `i`.
    pub fn exchanges(&self) -> &[RecordedExchange] {
        &self.summary.exchanges
    }

    pub fn index(&self) -> &Index {
        &self.summary.index
    }

    /// The notifications (event indices) that follow index entry `entry`, in order.
    pub fn follows(&self, entry: usize) -> &[usize] {
        &self.summary.follows[entry]
    }

    /// Notifications that need no trigger (`follows: null`), in order.
    pub fn unattached(&self) -> &[usize] {
        &self.summary.unattached
    }

    /// Ids at identity positions (tenant, users, apps): never minted.
    pub fn stable(&self) -> &Set<Canon> {
        &self.summary.stable
    }

    /// Whether the recording itself mentions `id` (such a live id is "bound to itself").
    pub fn mentions(&self, id: &Canon) -> bool {
        self.summary.recorded_ids.contains(id)
    }

    /// The head of the recorded exchange behind index entry `entry`.
    pub fn exchange_head(&self, entry: usize) -> &Head {
        &self.summary.heads[self.summary.exchanges[entry].event]
    }

    /// The recorded exchange behind index entry `entry`, as served.
    pub fn load_exchange(&self, entry: usize) -> Result<Arc<Loaded>, StoreError> {
        self.load(self.summary.exchanges[entry].event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cassette::SledStore;

    fn stored(names: &[&str]) -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("store");
        for n in names {
            let c = crate::bundled::cassette(n).expect("bundled").expect("parses");
            store.replace(&c, None).expect("stored");
        }
        (dir, store)
    }

    #[test]
    fn a_cassette_served_from_the_store_is_prepared_as_one_held() {
        let name = "invite-one-participant";
        let (_dir, store) = stored(&[name]);
        let held = Prepared::new(store.load(name).expect("loads").expect("stored"));
        let lazy = Prepared::stream(&store, name, 0).expect("streams").expect("stored");
        assert!(matches!(lazy.bodies, Bodies::Stored(_)), "{:?}", lazy.bodies);
        let streamed_held = Prepared::stream(&store, name, usize::MAX)
            .expect("streams")
            .expect("stored");
        assert!(matches!(streamed_held.bodies, Bodies::Held(_)));
        assert!(
            store.derived(name).expect("reads").is_some(),
            "the lazy one kept its summary"
        );
        let again = Prepared::stream(&store, name, 0).expect("reads").expect("stored");
        for p in [&lazy, &streamed_held, &again] {
            let (a, b) = (&held.summary, &p.summary);
            assert_eq!(format!("{:?}", a.heads), format!("{:?}", b.heads));
            assert_eq!(format!("{:?}", a.exchanges), format!("{:?}", b.exchanges));
            assert_eq!((&a.follows, &a.unattached), (&b.follows, &b.unattached));
            assert_eq!((&a.stable, &a.recorded_ids), (&b.stable, &b.recorded_ids));
            assert_eq!((&a.created, &a.largest_body), (&b.created, &b.largest_body));
            assert_eq!((&a.operations, &a.kinds), (&b.operations, &b.kinds));
            for i in 0..held.heads().len() {
                let (a, b) = (held.load(i).expect("held"), p.load(i).expect("loads"));
                assert_eq!(a.event(), b.event(), "event {i}");
                let sent = |l: &Loaded| format!("{:?}", l.sent());
                assert_eq!(sent(&a), sent(&b), "event {i}'s sent body, its pieces");
            }
        }
    }

    #[test]
    fn a_kept_summary_is_read_only_while_its_cassette_is_unchanged() {
        let name = "invite-one-participant";
        let (_dir, store) = stored(&[name]);
        assert!(store.derived(name).expect("reads").is_none());
        Prepared::stream(&store, name, 0).expect("streams").expect("stored");
        let (blob, _) = store.derived(name).expect("reads").expect("kept");
        let (summary, _) = saved::decode(&blob).expect("decodes");
        assert_eq!(summary.heads.len(), 3);
        assert!(saved::decode(&blob[1..]).is_none(), "a damaged summary is not one");
        let mut more = store.load(name).expect("loads").expect("stored").events.remove(1);
        more.seq = 3;
        store.put_event(name, &more).expect("appended");
        assert!(store.derived(name).expect("reads").is_none(), "the cassette changed");
        let grown = Prepared::stream(&store, name, 0).expect("streams").expect("stored");
        assert_eq!(grown.heads().len(), 4);
        store.remove(name).expect("removed");
        assert!(store.derived(name).expect("reads").is_none());
    }

    #[test]
    fn a_replaced_cassette_is_never_read_as_the_one_being_served() {
        let name = "invite-one-participant";
        let (_dir, store) = stored(&[name]);
        let lazy = Prepared::stream(&store, name, 0).expect("streams").expect("stored");
        let kept = lazy.load(0).expect("read before");
        let mut other = crate::bundled::cassette("invite-multiple-participants")
            .expect("bundled")
            .expect("parses");
        other.meta.name = name.to_string();
        store.replace(&other, None).expect("replaced");
        assert_eq!(lazy.load(0).expect("kept").event(), kept.event());
        let err = lazy.load(1).expect_err("its epoch is gone");
        assert!(err.to_string().contains("no longer in the store"), "{err}");
    }
}
