//! One replay session: one replay of one cassette for one scenario — which recorded
//! exchanges it consumed, its binding table (recorded id -> live id), its seed, its
//! outbox, and the report of what it served, missed and delivered.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use crate::hash::Map;

use super::faults::{self, Applied};
use super::prepared::Prepared;
pub use super::report::{Forwarded, Missed, Outcome, Report, Served, SettingsView};
use super::settings::SessionSettings;
use super::verdict::{MissCount, Problem, Verdict};
use crate::faults::ResponseFault;
use crate::ids::{self, Canon, IdTable, Pairing, Rewriter, Seed};
use crate::matching::{Group, Index, MatchMode, Query};
use crate::notify::Job;
use crate::notify::{Delivery, DeliveryLog, Notifier, Outbox};
use crate::ring::Ring;
pub use crate::ring::REPORT_TAIL;

/// How many unused exchanges a verdict names one by one (the rest are counted).
const UNUSED_LISTED: usize = 20;

/// Exchanges a session never served: the first ones and how many in all.
struct Unused {
    first: Vec<u64>,
    total: usize,
}

/// What binding one request left behind.
#[derive(Default)]
pub struct Bound {
    /// Bindings for this request only (they would have broken the bijection).
    pub scoped: IdTable,
    /// The same, for the report.
    pub request_scoped: Vec<(Canon, Canon)>,
}

/// A session's rewriter and what serving reads beside it (see [`Session::writing`]).
pub struct Writing<'a> {
    pub rw: Rewriter<'a>,
    pub id: &'a str,
    pub callback_uri: Option<&'a str>,
    pub settings: &'a SessionSettings,
    /// The number the next notification batch gets.
    pub number: u64,
}

/// One replay of one cassette for one scenario.
pub struct Session {
    id: Arc<str>,
    cassette: Arc<Prepared>,
    seed: Seed,
    table: IdTable,
    /// Times each exchange (index entry) was served, for those served at all (a
    /// session costs the same whatever the cassette's size).
    served_count: Map<usize, u32>,
    /// Per shape group: where its first unserved recording may be.
    cursors: Map<usize, usize>,
    /// The `callbackUri` learned from a create-call or answer request.
    callback_uri: Option<String>,
    served: Ring<Served>,
    missed: Ring<Missed>,
    forwarded: Ring<Forwarded>,
    outbox: Option<Outbox>,
    /// Notification batches scheduled so far (message ids derive from it).
    batches: u64,
    /// Started (or rung) through the admin API or at start-up.
    announced: bool,
    settings: Arc<SessionSettings>,
    /// Misses the requests did not declare.
    undeclared_misses: u64,
    /// Requests seen so far, by `METHOD template` (response faults count them).
    occurrences: Map<String, u64>,
    faults: Ring<Applied>,
    /// Live ids its requests claimed (the first `OWNED_KNOWN`), which the index holds
    /// for it as long as it lives: a request naming only these claims nothing anew.
    owned: smallvec::SmallVec<[Canon; 4]>,
}

/// How many owned ids a session remembers for itself.
const OWNED_KNOWN: usize = 32;

impl Session {
    pub fn new(id: Arc<str>, cassette: Arc<Prepared>, seed: Seed, settings: Arc<SessionSettings>) -> Session {
        Session {
            id,
            served_count: Map::default(),
            cursors: Map::default(),
            cassette,
            seed,
            table: IdTable::default(),
            callback_uri: None,
            served: Ring::new(REPORT_TAIL),
            missed: Ring::new(REPORT_TAIL),
            forwarded: Ring::new(REPORT_TAIL),
            outbox: None,
            batches: 0,
            announced: false,
            settings,
            undeclared_misses: 0,
            occurrences: Map::default(),
            faults: Ring::new(REPORT_TAIL),
            owned: smallvec::SmallVec::new(),
        }
    }

    /// Whether the index holds `c` for this session (false when it is not known to).
    pub fn owns(&self, c: &Canon) -> bool {
        self.owned.contains(c)
    }

    /// Remembers ids the index now holds for this session.
    pub fn note_owned(&mut self, ids: &[Canon]) {
        for c in ids {
            if self.owned.len() < OWNED_KNOWN && !self.owned.contains(c) {
                self.owned.push(c.clone());
            }
        }
    }

    /// The response fault this request gets instead of (or before) its recording.
    pub fn response_fault(&mut self, method: &str, template: &str) -> Option<ResponseFault> {
        let (fault, applied) =
            faults::response_fault(&self.settings, &self.seed, &mut self.occurrences, method, template)?;
        tracing::info!(session = %self.id, fault = %applied.fault, target = %applied.target, "fault applied");
        self.faults.push(applied);
        Some(fault)
    }

    /// Applies the session's notification faults to a batch about to be queued.
    pub fn fault_batch(&mut self, jobs: &mut Vec<Job>, events: &[usize], number: u64) {
        for a in faults::apply(jobs, events, &self.cassette, &self.settings, &self.seed, number) {
            tracing::info!(session = %self.id, fault = %a.fault, target = %a.target, "fault applied");
            self.faults.push(a);
        }
    }

    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    /// Whether the session was started through the admin API or at start-up.
    pub fn announced(&self) -> bool {
        self.announced
    }

    pub fn announce(&mut self) {
        self.announced = true;
    }

    /// Nothing happened in it yet: no request served or missed, nothing queued.
    pub fn is_untouched(&self) -> bool {
        self.batches == 0 && self.served.total() == 0 && self.missed.total() == 0
    }

    /// Seqs of the recorded notifications this session delivered or has queued.
    pub fn delivered_or_queued(&self) -> std::collections::HashSet<u64> {
        self.outbox
            .as_ref()
            .map(Outbox::delivered_or_queued)
            .unwrap_or_default()
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    #[cfg(test)]
    pub fn seed(&self) -> &Seed {
        &self.seed
    }

    pub fn cassette(&self) -> &Arc<Prepared> {
        &self.cassette
    }

    pub fn learn_callback_uri(&mut self, uri: &str) {
        self.callback_uri = Some(uri.to_string());
    }

    /// How often index entry `entry` was served.
    pub fn served_count(&self, entry: usize) -> u32 {
        self.served_count.get(&entry).copied().unwrap_or(0)
    }

    /// The recording to serve for `live`: the best one not yet used (its exact shape
    /// first), else the latest of them again (polling repeats its last answer), with
    /// whether it repeats; `None` when nothing recorded fits.
    pub fn pick(&mut self, index: &Index, live: &Query<'_>, mode: MatchMode) -> Option<(usize, bool)> {
        let slot = index.slot(live)?;
        let exact = index.exact_in(slot, live);
        if let Some(e) = exact.and_then(|g| self.next_in(g)) {
            return Some((e, false));
        }
        // the key's only group, all served: its last recording again (nothing to
        // compare, so the live shape is never built)
        if let (Some(g), 1) = (exact, index.groups_in(slot)) {
            return g.entries.last().map(|&e| (e, true));
        }
        let candidates = index.candidates_in(slot, live, mode);
        for g in &candidates.groups {
            if let Some(e) = self.next_in(g) {
                return Some((e, false));
            }
        }
        let last = candidates.groups.iter().filter_map(|g| g.entries.last()).max()?;
        Some((*last, true))
    }

    /// The first recording of a group this session has not served (a group's
    /// recordings are served in order, so its cursor only moves forward).
    fn next_in(&mut self, g: &Group) -> Option<usize> {
        let mut pos = self.cursors.get(&g.id).copied().unwrap_or(0);
        while g.entries.get(pos).is_some_and(|e| self.served_count.contains_key(e)) {
            pos += 1;
        }
        self.cursors.insert(g.id, pos);
        g.entries.get(pos).copied()
    }

    /// Applies what pairing found; bindings that would break the bijection stay
    /// scoped to this request.
    pub fn bind(&mut self, pairing: &Pairing) -> Bound {
        let mut out = Bound::default();
        self.table.reserve_first(pairing.tokens.len());
        for p in &pairing.tokens {
            let outcome = self
                .table
                .bind(p.recorded.clone(), p.rec_text, p.live.clone(), p.live_text);
            if outcome == ids::BindOutcome::Conflict {
                out.scoped
                    .bind(p.recorded.clone(), p.rec_text, p.live.clone(), p.live_text);
                out.request_scoped.push((p.recorded.clone(), p.live.clone()));
            }
        }
        for (k, r, l) in &pairing.strings {
            self.table.bind_string(k, r, l);
        }
        out
    }

    /// Serving index entry `entry` again, as a new action: the ids its action creates
    /// get fresh live ids for this serve (and its notifications), derived from the
    /// seed and how often it was served. Returns them, `(recorded, live)`.
    pub fn remint(&self, entry: usize, bound: &mut Bound) -> Vec<(Canon, Canon)> {
        let count = self.served_count(entry).to_be_bytes();
        let seed = Seed::derive([&self.seed.0[..], b"repeat", &(entry as u64).to_be_bytes(), &count]);
        let mut created: Vec<&Canon> = self.cassette.created(entry).iter().collect();
        created.sort();
        created
            .into_iter()
            .map(|rec| {
                let live = ids::mint(&seed, rec, 0);
                bound.scoped.bind(rec.clone(), "", live.clone(), "");
                (rec.clone(), live)
            })
            .collect()
    }

    /// The rewriter beside what a response and its notifications read from the session
    /// (borrowed together: nothing is copied out first).
    pub fn writing<'a>(&'a mut self, scoped: &'a IdTable) -> Writing<'a> {
        Writing {
            rw: Rewriter::new(scoped, &mut self.table, self.cassette.stable(), &self.seed),
            id: &self.id,
            callback_uri: self.callback_uri.as_deref(),
            settings: &self.settings,
            number: self.batches,
        }
    }

    /// Serves from `newer`, a later version of this session's cassette with events
    /// appended (capture-on-miss); the exchange `seq` counts as served.
    pub fn adopt(&mut self, newer: Arc<Prepared>, seq: u64) {
        if newer.name() != self.cassette.name() || newer.exchanges().len() < self.cassette.exchanges().len() {
            return;
        }
        // entries keep their numbers (events are appended); groups are renumbered
        self.cursors.clear();
        if let Some(entry) = newer.entry_of(seq) {
            *self.served_count.entry(entry).or_insert(0) += 1;
        }
        self.cassette = newer;
    }

    /// Records that index entry `entry` was served (and scheduled a batch).
    pub fn note_served(&mut self, entry: usize, s: Served) {
        *self.served_count.entry(entry).or_insert(0) += 1;
        self.batches += 1;
        self.served.push(s);
    }

    pub fn note_forwarded(&mut self, f: Forwarded) {
        self.forwarded.push(f);
    }

    pub fn note_missed(&mut self, m: Missed) {
        if !m.expected {
            self.undeclared_misses += 1;
        }
        self.missed.push(m);
    }

    /// `ok`, or the problems: misses beyond those expected, exchanges never used,
    /// notifications not delivered.
    fn verdict<'a>(&self, unused: &Unused, deliveries: impl Iterator<Item = &'a Delivery>) -> Verdict {
        let mut problems = Vec::new();
        if self.undeclared_misses > self.settings.expect_misses {
            if self.settings.expect_misses > 0 {
                problems.push(Problem::Misses(Box::new(MissCount {
                    count: self.undeclared_misses,
                    expected: self.settings.expect_misses,
                })));
            }
            for m in self.missed.iter().filter(|m| !m.expected) {
                problems.push(Problem::miss(m.request.clone(), m.reason.clone()));
            }
        }
        let listed = unused.first.len().min(UNUSED_LISTED);
        problems.extend(unused.first[..listed].iter().map(|&seq| Problem::Unused { seq }));
        if unused.total > listed {
            problems.push(Problem::MoreUnused {
                count: unused.total - listed,
            });
        }
        problems.extend(deliveries.filter(|d| !d.delivered).map(Problem::undelivered));
        Verdict::of(problems)
    }

    /// Counts a batch that no response triggered (a ringing session).
    pub fn note_batch(&mut self) {
        self.batches += 1;
    }

    /// The session's outbox, created on first use; the second value is its pending
    /// counter when it was created just now (for the sessions index).
    pub fn outbox(&mut self, notifier: &Arc<Notifier>) -> (&Outbox, Option<Arc<AtomicUsize>>) {
        let mut created = None;
        let o = self.outbox.get_or_insert_with(|| {
            let o = Outbox::new(notifier.clone());
            created = Some(o.pending_counter());
            o
        });
        (o, created)
    }

    /// One line for the log when the session ends: what it served, missed, delivered.
    pub fn log_end(&self, why: &str) {
        let (delivered, failed) = self.outbox.as_ref().map_or((0, 0), Outbox::counts);
        tracing::info!(
            session = %self.id,
            cassette = %self.cassette.name(),
            served = self.served.total(),
            missed = self.missed.total(),
            delivered,
            failed,
            "session ended ({why})"
        );
    }

    /// The first `listed` exchanges never served, and how many there are: costs
    /// what the session served, not the cassette's size.
    fn unused(&self, listed: usize) -> Unused {
        let n = self.cassette.exchanges().len();
        let first = (0..n)
            .filter(|i| !self.served_count.contains_key(i))
            .take(listed)
            .map(|i| self.cassette.exchange_head(i).seq)
            .collect();
        let served = self.served_count.keys().filter(|&&i| i < n).count();
        Unused {
            first,
            total: n - served,
        }
    }

    /// What the run keeps of this session: its verdict and counts, without the
    /// copies a full report makes (served, bindings).
    pub fn outcome(&self) -> Outcome {
        let unused = self.unused(UNUSED_LISTED);
        let verdict = match &self.outbox {
            Some(o) => o.with_recent(|recent| self.verdict(&unused, recent)),
            None => self.verdict(&unused, std::iter::empty()),
        };
        Outcome {
            session: self.id.clone(),
            cassette: self.cassette.shared_name().clone(),
            verdict,
            served_total: self.served.total(),
            missed_total: self.missed.total(),
        }
    }

    pub fn report(&self, active: bool) -> Report {
        let unused = self.unused(REPORT_TAIL);
        let mut bindings: Vec<(String, String)> = self
            .table
            .iter()
            .map(|(r, b)| (r.to_string(), b.live.to_string()))
            .collect();
        bindings.sort();
        let (log, pending) = match &self.outbox {
            Some(o) => (o.log(), o.pending()),
            None => (DeliveryLog::default(), 0),
        };
        Report {
            session: self.id.to_string(),
            cassette: self.cassette.name().to_string(),
            active,
            verdict: self.verdict(&unused, log.recent.iter()),
            settings: SettingsView::of(&self.settings),
            served_total: self.served.total(),
            served: self.served.to_vec(),
            missed_total: self.missed.total(),
            missed: self.missed.to_vec(),
            forwarded: self.forwarded.to_vec(),
            faults: self.faults.to_vec(),
            notifications: log.recent,
            notifications_delivered: log.delivered,
            notifications_failed: log.failed,
            notifications_pending: pending,
            notification_retrying: log.retrying,
            unused_total: unused.total,
            unused: unused.first,
            bindings,
        }
    }
}
