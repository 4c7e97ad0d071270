//! Rendering a drift report: readable text (one line per finding under the exchange or
//! notification it is about, named by seq in OLD and NEW), JSON, and JUnit XML (a
//! testcase per exchange/notification, a failure per breaking finding).

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::{Finding, Report, Severity, Side, Subject};
use crate::cassette::Kind;
use crate::xml::{escape as xml, junit_head, JUNIT_TAIL};

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Exchange => "exchange",
        Kind::Notification => "notification",
    }
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {one}s")
    }
}

fn seq(s: Option<u64>) -> String {
    s.map_or_else(|| "-".to_string(), |s| format!("#{s}"))
}

/// `exchange OLD #0 -> NEW #0  POST v1.0 /communications/calls/{id}/participants/invite`
pub fn title(s: &Subject) -> String {
    format!(
        "{} OLD {} -> NEW {}  {}",
        kind_name(s.kind()),
        seq(s.old_seq()),
        seq(s.new_seq()),
        s.key()
    )
}

/// `response.json.clientContext: member removed (was "...")`
pub fn line(f: &Finding) -> String {
    if f.path().is_empty() {
        f.detail().to_string()
    } else {
        format!("{}: {}", f.path(), f.detail())
    }
}

fn side(tag: &str, s: &Side) -> String {
    format!(
        "{tag} {}: cassette `{}`, {}, {}",
        s.label(),
        s.cassette(),
        plural(s.exchanges(), "exchange"),
        plural(s.notifications(), "notification")
    )
}

/// The last line: counts by severity and how the events paired.
pub fn summary(r: &Report) -> String {
    let subjects = r.subjects();
    let paired = subjects.iter().filter(|s| s.paired()).count();
    let missing = subjects.iter().filter(|s| s.new_seq().is_none()).count();
    let extra = subjects.iter().filter(|s| s.old_seq().is_none()).count();
    format!(
        "{} breaking, {} notable, {} info; {} paired, {missing} missing in NEW, {extra} only in NEW",
        r.count(Severity::Breaking),
        r.count(Severity::Notable),
        r.count(Severity::Info),
        plural(paired, "event")
    )
}

/// The report as text: both sides, then each subject with findings, then the summary.
pub fn text(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", side("OLD", r.old_side()));
    let _ = writeln!(out, "{}", side("NEW", r.new_side()));
    out.push('\n');
    for (i, s) in r.subjects().iter().enumerate() {
        let mut findings = r.findings_of(i).peekable();
        if findings.peek().is_none() {
            continue;
        }
        let _ = writeln!(out, "{}", title(s));
        for f in findings {
            let _ = writeln!(out, "  {:<9} {}", f.severity().as_str(), line(f));
        }
    }
    if r.findings().is_empty() {
        let _ = writeln!(
            out,
            "no drift beyond ids, timestamps, request ids and timing within {} ms",
            r.options().timing_tolerance_ms()
        );
    } else {
        out.push('\n');
    }
    out.push_str(&summary(r));
    out
}

fn side_json(s: &Side) -> Value {
    json!({
        "source": s.label(),
        "cassette": s.cassette(),
        "exchanges": s.exchanges(),
        "notifications": s.notifications(),
    })
}

/// The report as JSON: both sides, the summary, every subject and a flat list of
/// findings (each naming its subject's kind, seqs and key).
pub fn json(r: &Report) -> String {
    let subjects: Vec<Value> = r
        .subjects()
        .iter()
        .map(|s| json!({"kind": s.kind(), "old_seq": s.old_seq(), "new_seq": s.new_seq(), "key": s.key()}))
        .collect();
    let findings: Vec<Value> = r
        .findings()
        .iter()
        .map(|f| {
            let s = &r.subjects()[f.subject()];
            json!({
                "severity": f.severity().as_str(),
                "change": f.change().as_str(),
                "kind": s.kind(),
                "old_seq": s.old_seq(),
                "new_seq": s.new_seq(),
                "key": s.key(),
                "path": f.path(),
                "detail": f.detail(),
            })
        })
        .collect();
    let v = json!({
        "old": side_json(r.old_side()),
        "new": side_json(r.new_side()),
        "timing_tolerance_ms": r.options().timing_tolerance_ms(),
        "breaking": r.breaking(),
        "summary": {
            "breaking": r.count(Severity::Breaking),
            "notable": r.count(Severity::Notable),
            "info": r.count(Severity::Info),
            "text": summary(r),
        },
        "subjects": subjects,
        "findings": findings,
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// The report as JUnit XML: a testcase per subject, a `<failure>` per breaking finding,
/// the notable and info findings as the testcase's `<system-out>`.
pub fn junit(r: &Report) -> String {
    let subjects = r.subjects();
    let failed = (0..subjects.len())
        .filter(|&i| r.findings_of(i).any(|f| f.severity() == Severity::Breaking))
        .count();
    let suite = format!("graphvcr diff {} -> {}", r.old_side().label(), r.new_side().label());
    let mut out = String::new();
    junit_head(&mut out, "graphvcr diff", &suite, subjects.len(), failed);
    for (i, s) in subjects.iter().enumerate() {
        let _ = write!(
            out,
            "    <testcase name=\"{}\" classname=\"graphvcr.diff.{}\"",
            xml(&title(s)),
            kind_name(s.kind())
        );
        let (breaking, other): (Vec<&Finding>, Vec<&Finding>) =
            r.findings_of(i).partition(|f| f.severity() == Severity::Breaking);
        if breaking.is_empty() && other.is_empty() {
            out.push_str("/>\n");
            continue;
        }
        out.push_str(">\n");
        for f in breaking {
            let l = xml(&line(f));
            let kind = f.change().as_str();
            let _ = writeln!(out, "      <failure message=\"{l}\" type=\"{kind}\">{l}</failure>");
        }
        if !other.is_empty() {
            let lines: Vec<String> = other
                .iter()
                .map(|f| format!("{}: {}", f.severity().as_str(), line(f)))
                .collect();
            let _ = writeln!(out, "      <system-out>{}</system-out>", xml(&lines.join("\n")));
        }
        out.push_str("    </testcase>\n");
    }
    out.push_str(JUNIT_TAIL);
    out
}
