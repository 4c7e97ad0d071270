//! CI reports written on stop: JUnit XML (one `<testcase>` per session, named by
//! session and cassette, a `<failure>` per problem) and the run as JSON.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::json;

use super::replay::ReplayOutcome;
use super::AppError;
use crate::replay::Outcome;

/// Escapes text for an XML attribute or element.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// A JUnit XML report: one testcase per session, a failure per problem.
pub fn junit(outcomes: &[Outcome]) -> String {
    let failures: usize = outcomes.iter().filter(|o| !o.verdict.ok).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"graphvcr\" tests=\"{}\" failures=\"{failures}\">",
        outcomes.len()
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"graphvcr replay\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\">",
        outcomes.len()
    );
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
        for p in &o.verdict.problems {
            let line = xml(&p.line());
            let _ = writeln!(out, "      <failure message=\"{line}\">{line}</failure>");
        }
        out.push_str("    </testcase>\n");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
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
