//! A session's verdict for CI: `ok`, or each problem — misses beyond those expected,
//! exchanges of its cassette it never used, notifications not delivered.
//! (Notifications still queued at stop are counted by the run, not by a verdict.)

use std::borrow::Cow;
use std::sync::Arc;

use serde::Serialize;

use crate::notify::Delivery;

/// One reason a session is not ok. Small (the run keeps up to 100,000 sessions'
/// verdicts): 16 bytes, every variant wider than one word boxed.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// A request matched no recording (and was not declared a miss).
    Miss(Box<Miss>),
    /// More undeclared misses than `expect_misses` allows (their count).
    Misses(Box<MissCount>),
    /// A recorded exchange this session never used.
    Unused { seq: u64 },
    /// More unused exchanges than a verdict names one by one.
    MoreUnused { count: usize },
    /// A notification the bot never took.
    Undelivered(Box<Undelivered>),
}

/// How many requests matched no recording, and how many were expected to.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MissCount {
    pub count: u64,
    pub expected: u64,
}

/// A request that matched no recording.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Miss {
    pub request: String,
    pub reason: String,
}

/// A notification the bot never took.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Undelivered {
    pub seq: u64,
    pub target: Option<String>,
    pub attempts: usize,
    /// The last attempt's status or error, or why none was made (most often one of a
    /// few fixed texts, kept without a copy).
    pub last: Cow<'static, str>,
}

impl Problem {
    /// A request that matched no recording, as a problem.
    pub fn miss(request: String, reason: String) -> Problem {
        Problem::Miss(Box::new(Miss { request, reason }))
    }

    /// A notification delivery that failed, as a problem.
    pub fn undelivered(d: &Delivery) -> Problem {
        let last = match d.attempts.last() {
            Some(a) => a
                .status
                .map_or_else(|| a.error.clone().unwrap_or_default(), |s| s.to_string())
                .into(),
            None => d.reason.clone().unwrap_or(Cow::Borrowed("never attempted")),
        };
        Problem::Undelivered(Box::new(Undelivered {
            seq: d.seq,
            target: d.url.clone(),
            attempts: d.attempts.len(),
            last,
        }))
    }

    /// One line, for logs, `--expect-all` and JUnit.
    pub fn line(&self) -> String {
        match self {
            Problem::Miss(m) => format!("miss {}: {}", m.request, m.reason),
            Problem::Misses(m) => {
                format!("{} request(s) matched no recording ({} expected)", m.count, m.expected)
            }
            Problem::Unused { seq } => format!("recorded exchange #{seq} never used"),
            Problem::MoreUnused { count } => format!("and {count} more recorded exchanges never used"),
            Problem::Undelivered(u) => format!(
                "notification #{} to {} not delivered after {} attempt(s) (last: {})",
                u.seq,
                u.target.as_deref().unwrap_or("nowhere"),
                u.attempts,
                u.last
            ),
        }
    }
}

/// `ok`, or the problems.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Verdict {
    pub ok: bool,
    /// Exactly as many as there are (a verdict is kept for the whole run), shared
    /// between verdicts that list the same (`share`).
    #[serde(skip_serializing_if = "<[Problem]>::is_empty")]
    pub problems: Arc<[Problem]>,
}

impl Verdict {
    pub fn of(problems: Vec<Problem>) -> Verdict {
        /// Every ok verdict's (no allocation per session).
        static NONE: std::sync::LazyLock<Arc<[Problem]>> = std::sync::LazyLock::new(|| Arc::new([]));
        Verdict {
            ok: problems.is_empty(),
            problems: if problems.is_empty() {
                NONE.clone()
            } else {
                problems.into()
            },
        }
    }

    /// Holds `other`'s problems instead of its own where they are the same: the
    /// sessions of one cassette that did one thing end with one verdict, and a run
    /// keeps up to 100,000 of them.
    pub fn share(&mut self, other: &Verdict) {
        if !Arc::ptr_eq(&self.problems, &other.problems) && self.problems == other.problems {
            self.problems = other.problems.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_is_two_words_and_reads_as_it_did() {
        assert_eq!(std::mem::size_of::<Problem>(), 16);
        let m = Problem::Misses(Box::new(MissCount { count: 3, expected: 1 }));
        assert_eq!(
            serde_json::to_value(&m).ok(),
            Some(serde_json::json!({"kind": "misses", "count": 3, "expected": 1}))
        );
        assert_eq!(m.line(), "3 request(s) matched no recording (1 expected)");
        let v = Verdict::of(vec![Problem::Unused { seq: 4 }]);
        assert_eq!(
            serde_json::to_value(&v).ok(),
            Some(serde_json::json!({"ok": false, "problems": [{"kind": "unused", "seq": 4}]}))
        );
        assert_eq!(
            serde_json::to_value(Verdict::of(Vec::new())).ok(),
            Some(serde_json::json!({"ok": true}))
        );
    }
}
