//! Drift: what changed between two recordings of one scenario (`graphvcr diff`).
//! Exchanges and notifications are paired by key and order (`pair`), each pair is
//! compared structurally with ids, timestamps and request ids ignored (`compare`,
//! `volatile`), and the findings, by severity, are rendered as text, JSON or JUnit XML
//! (`report`).
//! Knows Graph (paths, notification items, enum members), does no I/O.

mod compare;
mod pair;
pub mod report;
mod volatile;

use crate::cassette::{Cassette, Event, Kind};
use compare::Delta;

/// How much a finding matters; a breaking one makes `graphvcr diff` exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Timing and free-text values: worth a look, never a failure.
    Info,
    /// A bot may need attention: an added member, a reordering, another enum value.
    Notable,
    /// A bot written against OLD may break on NEW.
    Breaking,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Notable => "notable",
            Severity::Breaking => "breaking",
        }
    }
}

/// What kind of difference a finding is; its severity follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// An exchange or notification of OLD that NEW does not have.
    Missing,
    /// An exchange or notification only NEW has.
    Extra,
    /// A member (or list item, header, body) OLD has and NEW lacks (or has as `null`).
    Removed,
    /// A member NEW has and OLD lacks.
    Added,
    /// A value of another JSON type (or a body of another kind).
    TypeChanged,
    /// Another HTTP status (or no answer at all).
    StatusChanged,
    /// Paired, but in another order (or following another exchange).
    Reordered,
    /// Another value of a Graph enumeration member (or `@odata.type`).
    EnumChanged,
    /// Another free-text, number or boolean value (ids and timestamps already ignored).
    ValueChanged,
    /// Latency or notification delay beyond the tolerance.
    Timing,
}

impl Change {
    pub fn severity(self) -> Severity {
        match self {
            Change::Missing | Change::Extra | Change::Removed | Change::TypeChanged | Change::StatusChanged => {
                Severity::Breaking
            }
            Change::Added | Change::Reordered | Change::EnumChanged => Severity::Notable,
            Change::ValueChanged | Change::Timing => Severity::Info,
        }
    }

    /// Its name in JSON output and JUnit failure types: `removed`, `type_changed`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Missing => "missing",
            Change::Extra => "extra",
            Change::Removed => "removed",
            Change::Added => "added",
            Change::TypeChanged => "type_changed",
            Change::StatusChanged => "status_changed",
            Change::Reordered => "reordered",
            Change::EnumChanged => "enum_changed",
            Change::ValueChanged => "value_changed",
            Change::Timing => "timing",
        }
    }
}

/// How two recordings are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    timing_tolerance_ms: u64,
}

impl Options {
    /// Timing differences up to `timing_tolerance_ms` are not reported.
    pub fn new(timing_tolerance_ms: u64) -> Options {
        Options { timing_tolerance_ms }
    }

    pub fn timing_tolerance_ms(&self) -> u64 {
        self.timing_tolerance_ms
    }
}

impl Default for Options {
    fn default() -> Options {
        Options::new(crate::config::defaults::DIFF_TIMING_TOLERANCE_MS)
    }
}

/// One exchange or notification the report speaks about: a pair, or one side alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    kind: Kind,
    old: Option<u64>,
    new: Option<u64>,
    key: String,
}

impl Subject {
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Its seq in OLD (`None`: only NEW has it).
    pub fn old_seq(&self) -> Option<u64> {
        self.old
    }

    /// Its seq in NEW (`None`: only OLD has it).
    pub fn new_seq(&self) -> Option<u64> {
        self.new
    }

    /// What it was paired on: `POST v1.0 /communications/calls/{id}/participants/invite`,
    /// or a notification's `changeType` and resource template.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn paired(&self) -> bool {
        self.old.is_some() && self.new.is_some()
    }
}

/// One difference, tied to its subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    subject: usize,
    change: Change,
    path: String,
    detail: String,
}

impl Finding {
    /// The index of its subject in `Report::subjects`.
    pub fn subject(&self) -> usize {
        self.subject
    }

    pub fn change(&self) -> Change {
        self.change
    }

    pub fn severity(&self) -> Severity {
        self.change.severity()
    }

    /// Where, as in the cassette file: `response.json.participants[0].id`,
    /// `response.status`, `request.headers.location`; empty for the whole event.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What changed, in a sentence (values clipped).
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

/// One side of the comparison, as the report names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    label: String,
    cassette: String,
    exchanges: usize,
    notifications: usize,
}

impl Side {
    fn of(c: &Cassette) -> Side {
        let count = |k: Kind| c.events.iter().filter(|e| e.kind == k).count();
        Side {
            label: c.meta.name.clone(),
            cassette: c.meta.name.clone(),
            exchanges: count(Kind::Exchange),
            notifications: count(Kind::Notification),
        }
    }

    /// How the user named it (a file or a cassette name); the cassette name by default.
    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn cassette(&self) -> &str {
        &self.cassette
    }

    pub fn exchanges(&self) -> usize {
        self.exchanges
    }

    pub fn notifications(&self) -> usize {
        self.notifications
    }
}

/// Everything `diff` found.
#[derive(Debug, Clone)]
pub struct Report {
    old: Side,
    new: Side,
    options: Options,
    subjects: Vec<Subject>,
    findings: Vec<Finding>,
}

impl Report {
    /// Names the two sides as the user did (`old.json`, a cassette name).
    pub fn relabel(&mut self, old: &str, new: &str) {
        self.old.label = old.to_string();
        self.new.label = new.to_string();
    }

    pub fn old_side(&self) -> &Side {
        &self.old
    }

    pub fn new_side(&self) -> &Side {
        &self.new
    }

    pub fn options(&self) -> Options {
        self.options
    }

    /// Pairs first (in OLD's order, missing ones in place), then what only NEW has.
    pub fn subjects(&self) -> &[Subject] {
        &self.subjects
    }

    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// The findings about subject `i`.
    pub fn findings_of(&self, i: usize) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.subject == i)
    }

    pub fn count(&self, s: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity() == s).count()
    }

    /// Whether anything breaking was found (`graphvcr diff` exits 1).
    pub fn breaking(&self) -> bool {
        self.count(Severity::Breaking) > 0
    }
}

/// What one subject will be, before findings are attached.
enum Plan<'c> {
    Pair {
        kind: Kind,
        old: &'c Event,
        new: &'c Event,
        key: String,
        deltas: Vec<Delta>,
    },
    Alone {
        kind: Kind,
        event: &'c Event,
        key: String,
        in_old: bool,
    },
}

impl Plan<'_> {
    /// Subjects read in OLD's order; what only NEW has comes last, in NEW's order.
    fn order(&self) -> (u8, u64) {
        match self {
            Plan::Pair { old, .. } => (0, old.seq),
            Plan::Alone {
                event, in_old: true, ..
            } => (0, event.seq),
            Plan::Alone { event, .. } => (1, event.seq),
        }
    }
}

/// Compares two recordings of one scenario: OLD (the cassette) and NEW (a fresh one).
pub fn diff(old: &Cassette, new: &Cassette, opts: &Options) -> Report {
    let tol = opts.timing_tolerance_ms;
    let ex = pair::pair(&pair::items(old, Kind::Exchange), &pair::items(new, Kind::Exchange));
    let nt = pair::pair(
        &pair::items(old, Kind::Notification),
        &pair::items(new, Kind::Notification),
    );
    let mut plans: Vec<Plan> = Vec::new();
    for p in &ex.pairs {
        let mut deltas = compare::exchange(p.old, p.new, tol);
        if p.reordered {
            deltas.insert(0, compare::reordered("exchanges", p.old_pos, p.new_pos));
        }
        plans.push(pair_plan(Kind::Exchange, p, deltas));
    }
    for p in &nt.pairs {
        let delays = (delay(old, p.old), delay(new, p.new));
        let mut deltas = compare::notification(p.old, p.new, delays, tol);
        if p.reordered {
            deltas.insert(0, compare::reordered("notifications", p.old_pos, p.new_pos));
        }
        if let Some(d) = follows_changed(&ex, p.old, p.new) {
            deltas.push(d);
        }
        plans.push(pair_plan(Kind::Notification, p, deltas));
    }
    for (kind, pairing) in [(Kind::Exchange, &ex), (Kind::Notification, &nt)] {
        for (in_old, alone) in [(true, &pairing.missing), (false, &pairing.extra)] {
            plans.extend(alone.iter().map(|it| Plan::Alone {
                kind,
                event: it.event,
                key: it.key.clone(),
                in_old,
            }));
        }
    }
    plans.sort_by_key(Plan::order);
    build(Side::of(old), Side::of(new), *opts, plans)
}

fn pair_plan<'c>(kind: Kind, p: &pair::Paired<'c>, deltas: Vec<Delta>) -> Plan<'c> {
    Plan::Pair {
        kind,
        old: p.old,
        new: p.new,
        key: p.key.clone(),
        deltas,
    }
}

fn build(old: Side, new: Side, options: Options, plans: Vec<Plan>) -> Report {
    let mut subjects = Vec::with_capacity(plans.len());
    let mut findings = Vec::new();
    for (i, plan) in plans.into_iter().enumerate() {
        let (subject, deltas) = match plan {
            Plan::Pair {
                kind,
                old,
                new,
                key,
                deltas,
            } => (
                Subject {
                    kind,
                    old: Some(old.seq),
                    new: Some(new.seq),
                    key,
                },
                deltas,
            ),
            Plan::Alone {
                kind,
                event,
                key,
                in_old,
            } => {
                let seq = Some(event.seq);
                let (o, n) = if in_old { (seq, None) } else { (None, seq) };
                let delta = compare::alone(kind, in_old);
                (
                    Subject {
                        kind,
                        old: o,
                        new: n,
                        key,
                    },
                    vec![delta],
                )
            }
        };
        subjects.push(subject);
        findings.extend(deltas.into_iter().map(|d| Finding {
            subject: i,
            change: d.change,
            path: d.path,
            detail: d.detail,
        }));
    }
    Report {
        old,
        new,
        options,
        subjects,
        findings,
    }
}

/// How long after its exchange's response a notification arrived (after the cassette
/// start when it follows nothing); negative when it came before the response.
fn delay(c: &Cassette, n: &Event) -> i64 {
    let base = n
        .follows
        .and_then(|f| c.events.get(usize::try_from(f).ok()?))
        .map_or(0, Event::done_ms);
    i64::try_from(n.at_ms).unwrap_or(i64::MAX) - i64::try_from(base).unwrap_or(i64::MAX)
}

/// A paired notification whose exchange (`follows`) is not the pair of OLD's one.
fn follows_changed(ex: &pair::Pairing, old: &Event, new: &Event) -> Option<Delta> {
    let want = old.follows.map(|f| ex.new_seq_of(f));
    let got = new.follows;
    match want {
        None if got.is_none() => None,
        Some(w) if w == got => None,
        _ => Some(compare::follows(old.follows, got)),
    }
}

#[cfg(test)]
mod tests;
