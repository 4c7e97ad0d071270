//! CI reports written on stop: JUnit XML (one `<testcase>` per session, named by
//! session and cassette, a `<failure>` per problem) and the run as JSON.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::json;

use super::replay::ReplayOutcome;
use super::AppError;
use crate::replay::Outcome;
use crate::xml::{escape as xml, junit_head, JUNIT_TAIL};

/// A JUnit XML report: one testcase per session, a failure per problem.
pub fn junit(outcomes: &[Outcome]) -> String {
    let failures: usize = outcomes.iter().filter(|o| !o.verdict.ok).count();
    let mut out = String::new();
    junit_head(&mut out, "graphvcr", "graphvcr replay", outcomes.len(), failures);
    for o in outcomes {
        let _ = write!(
            out,
            "    <testcase name=\"{}\" classname=\"{}\"",
            xml(&o.session),
            xml(&o.cassette)
        );
        if o.verdict.ok {
            out.push_str("/>\n");
            continue;
        }
        out.push_str(">\n");
        for p in o.verdict.problems.iter() {
            let line = xml(&p.line());
            let _ = writeln!(out, "      <failure message=\"{line}\">{line}</failure>");
        }
        out.push_str("    </testcase>\n");
    }
    out.push_str(JUNIT_TAIL);
    out
}

/// The run as JSON: totals, every session's outcome, the latest reports.
pub fn json(o: &ReplayOutcome) -> String {
    let v = json!({
        "summary": o.summary(),
        "totals": {
            "misses": o.totals.misses,
            "delivered": o.totals.delivered,
            "failed": o.totals.failed,
            "pending": o.totals.pending,
        },
        "sessions": o.outcomes,
        "sessions_not_kept": o.lost,
        "reports": o.reports,
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// Writes a report file atomically (temp file, then rename).
pub fn write(path: &Path, text: &str) -> Result<(), AppError> {
    let fail = |e: std::io::Error| AppError::Runtime(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}
