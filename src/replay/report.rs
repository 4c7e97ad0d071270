//! What a replay session reports: the requests it served, missed and forwarded, its
//! settings as shown, and the outcome a run keeps once the full report is gone.

use std::sync::Arc;

use serde::Serialize;

use super::faults::Applied;
use super::settings::SessionSettings;
use super::verdict::Verdict;
use crate::ids::Canon;
use crate::notify::Delivery;

/// One served request, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct Served {
    pub seq: u64,
    pub request: String,
    /// Every matching recording was already used: the last one was served again.
    pub repeated: bool,
    /// Bindings kept for this request only (they would have broken the bijection),
    /// shown `recorded -> live`.
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "arrows")]
    pub request_scoped: Vec<(Canon, Canon)>,
    /// For a repeated action: the ids minted afresh for it, shown `recorded -> live`
    /// (formatted when a report is written, not per request).
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "arrows")]
    pub minted: Vec<(Canon, Canon)>,
}

/// (recorded, live) pairs as `recorded -> live` strings.
fn arrows<S: serde::Serializer>(pairs: &[(Canon, Canon)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(pairs.iter().map(|(r, l)| format!("{r} -> {l}")))
}

/// One request that matched nothing.
#[derive(Debug, Clone, Serialize)]
pub struct Missed {
    pub request: String,
    pub nearest_seq: Option<u64>,
    pub reason: String,
    /// Declared by the request (`x-graphvcr-expect: miss`): not a problem.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub expected: bool,
}

/// A miss the session forwarded upstream (`on_miss: record|passthrough`).
#[derive(Debug, Clone, Serialize)]
pub struct Forwarded {
    pub request: String,
    /// The upstream's status, or why there was none.
    pub outcome: String,
    /// The seq it was recorded as (`on_miss: record`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_seq: Option<u64>,
}

/// A session's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub session: String,
    pub cassette: String,
    pub active: bool,
    /// `ok`, or what went wrong (for CI).
    pub verdict: Verdict,
    /// The session's settings (notification target, pacing, matching, misses).
    pub settings: SettingsView,
    pub served_total: u64,
    /// The latest served requests (at most `REPORT_TAIL`).
    pub served: Vec<Served>,
    pub missed_total: u64,
    pub missed: Vec<Missed>,
    /// Misses forwarded upstream (they are no problems).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub forwarded: Vec<Forwarded>,
    /// Faults applied to this session's notifications and responses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<Applied>,
    /// The latest deliveries (at most `REPORT_TAIL`).
    pub notifications: Vec<Delivery>,
    pub notifications_delivered: u64,
    pub notifications_failed: u64,
    pub notifications_pending: usize,
    /// The notification being retried now, with its attempts so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification_retrying: Option<Delivery>,
    /// Recorded exchanges this session never used (the first `REPORT_TAIL`).
    pub unused: Vec<u64>,
    pub unused_total: usize,
    /// Recorded id -> live id.
    pub bindings: Vec<(String, String)>,
}

/// What a run keeps of a session once its full report is gone: enough for CI.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub session: Arc<str>,
    pub cassette: Arc<str>,
    pub verdict: Verdict,
    pub served_total: u64,
    pub missed_total: u64,
}

impl Outcome {
    /// What a full report says of the same session (`Session::outcome` reads it
    /// without one; the tests hold them to the same).
    #[cfg(test)]
    pub fn of(r: &Report) -> Outcome {
        Outcome {
            session: r.session.as_str().into(),
            cassette: r.cassette.as_str().into(),
            verdict: r.verdict.clone(),
            served_total: r.served_total,
            missed_total: r.missed_total,
        }
    }
}

/// A session's settings as reports show them.
#[derive(Debug, Clone, Serialize)]
pub struct SettingsView {
    pub bot_url: Option<String>,
    pub timing: &'static str,
    pub speed: f64,
    #[serde(rename = "match")]
    pub match_mode: &'static str,
    pub on_miss: &'static str,
    pub expect_misses: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chaos: Option<String>,
}

impl SettingsView {
    pub(super) fn of(s: &SessionSettings) -> SettingsView {
        SettingsView {
            bot_url: s.bot_url.as_ref().map(|b| format!("{}{}", b.origin, b.prefix)),
            timing: if s.pacing.fast { "fast" } else { "recorded" },
            speed: s.pacing.speed,
            match_mode: s.match_mode.as_str(),
            on_miss: s.on_miss.as_str(),
            expect_misses: s.expect_misses,
            faults: s.faults.iter().map(|f| f.spec().to_string()).collect(),
            chaos: s.chaos.map(|c| format!("seed {}, rate {}", c.seed, c.rate)),
        }
    }
}
