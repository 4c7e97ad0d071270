//! Comparing two paired events: status, bodies (structurally, member by member),
//! Graph's headers and timing. What never counts is `volatile`'s (ids, timestamps,
//! request ids, date headers); `null` members and serializer metadata don't either.
//! Each difference is a `Delta`: what changed, where (a cassette-file path), a sentence.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::volatile::{ignored_header, normalise, redacted, same_text};
use super::Change;
use crate::cassette::{Body, Event, Headers, Kind, Response};
use crate::graph;
use crate::matching::clip;

/// One difference between two paired events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Delta {
    pub change: Change,
    pub path: String,
    pub detail: String,
}

fn delta(change: Change, path: &str, detail: String) -> Delta {
    Delta {
        change,
        path: path.to_string(),
        detail,
    }
}

/// A paired exchange: Graph's status, the bot's request body, Graph's response body
/// and headers, and the upstream latency.
pub(super) fn exchange(old: &Event, new: &Event, tolerance_ms: u64) -> Vec<Delta> {
    let mut out = Vec::new();
    status(&old.response, &new.response, &mut out);
    body(&old.request.body, &new.request.body, "request", &mut out);
    body(&old.response.body, &new.response.body, "response", &mut out);
    headers(
        &old.response.headers,
        &new.response.headers,
        "response.headers",
        &mut out,
    );
    let ms = |e: &Event| i64::try_from(e.duration_ms.unwrap_or(0)).unwrap_or(i64::MAX);
    let t = Timing {
        what: "upstream latency",
        path: "duration_ms",
        tolerance_ms,
    };
    t.compare((ms(old), ms(new)), &mut out);
    out
}

/// A paired notification: Graph's body and headers, the bot's answer, and how long
/// after its exchange's response (`delays`) it arrived.
pub(super) fn notification(old: &Event, new: &Event, delays: (i64, i64), tolerance_ms: u64) -> Vec<Delta> {
    let mut out = Vec::new();
    status(&old.response, &new.response, &mut out);
    body(&old.request.body, &new.request.body, "request", &mut out);
    headers(&old.request.headers, &new.request.headers, "request.headers", &mut out);
    let what = if old.follows.is_some() {
        "delay after its exchange's response"
    } else {
        "arrival after the recording's start"
    };
    let t = Timing {
        what,
        path: "at_ms",
        tolerance_ms,
    };
    t.compare(delays, &mut out);
    out
}

/// An event only one side has.
pub(super) fn alone(kind: Kind, in_old: bool) -> Delta {
    let what = match kind {
        Kind::Exchange => "exchange",
        Kind::Notification => "notification",
    };
    if in_old {
        delta(Change::Missing, "", format!("{what} missing in NEW"))
    } else {
        delta(Change::Extra, "", format!("{what} only in NEW (not in OLD)"))
    }
}

/// A pair off the longest run that kept its order (positions counted from 1).
pub(super) fn reordered(among: &str, old_pos: usize, new_pos: usize) -> Delta {
    delta(
        Change::Reordered,
        "",
        format!(
            "order changed: position {} among the {among} in OLD, {} in NEW",
            old_pos + 1,
            new_pos + 1
        ),
    )
}

/// A paired notification that follows another exchange than OLD's one's pair.
pub(super) fn follows(old: Option<u64>, new: Option<u64>) -> Delta {
    let show = |f: Option<u64>| f.map_or_else(|| "nothing".to_string(), |s| format!("#{s}"));
    delta(
        Change::Reordered,
        "follows",
        format!("follows another exchange: {} in OLD, {} in NEW", show(old), show(new)),
    )
}

fn status(old: &Response, new: &Response, out: &mut Vec<Delta>) {
    if old.status == new.status && old.error.is_none() == new.error.is_none() {
        return;
    }
    let answer = |r: &Response| match (r.status, &r.error) {
        (Some(s), _) => s.to_string(),
        (None, Some(e)) => format!("no answer ({})", clip(e, 80)),
        (None, None) => "no status".to_string(),
    };
    let d = format!("status changed: {} -> {}", answer(old), answer(new));
    out.push(delta(Change::StatusChanged, "response.status", d));
}

fn body_kind(b: &Body) -> &'static str {
    match b {
        Body::Empty => "no body",
        Body::Json(_) => "json",
        Body::Text(_) => "text",
        Body::Bytes(_) => "base64",
    }
}

fn body_preview(b: &Body) -> String {
    match b {
        Body::Json(v) => preview(v),
        Body::Text(s) => format!("{:?}", clip(s, 60)),
        Body::Bytes(b) => format!("{} bytes", b.len()),
        Body::Empty => String::new(),
    }
}

/// Bodies: JSON member by member; text with ids and timestamps templated; bytes exactly.
fn body(old: &Body, new: &Body, at: &str, out: &mut Vec<Delta>) {
    let path = |b: &Body| format!("{at}.{}", body_kind(b));
    match (old, new) {
        (Body::Empty, Body::Empty) => {}
        (Body::Json(a), Body::Json(b)) => Walk::new(path(old), out).value(a, b, None),
        (Body::Text(a), Body::Text(b)) => {
            let (x, y) = (normalise(a), normalise(b));
            if x != y {
                let d = format!("value changed: {:?} -> {:?}", clip(&x, 60), clip(&y, 60));
                out.push(delta(Change::ValueChanged, &path(old), d));
            }
        }
        (Body::Bytes(a), Body::Bytes(b)) if a == b => {}
        (Body::Bytes(_), Body::Bytes(_)) => {
            let d = format!("value changed: {} -> {}", body_preview(old), body_preview(new));
            out.push(delta(Change::ValueChanged, &path(old), d));
        }
        (_, Body::Empty) => {
            let d = format!("body removed (was {})", body_preview(old));
            out.push(delta(Change::Removed, &path(old), d));
        }
        (Body::Empty, _) => {
            let d = format!("body added: {}", body_preview(new));
            out.push(delta(Change::Added, &path(new), d));
        }
        _ => {
            let d = format!("body type changed: was {}, now {}", body_kind(old), body_kind(new));
            out.push(delta(Change::TypeChanged, at, d));
        }
    }
}

/// Header values by lower-case name (repeats joined by `, `), ignored ones left out.
fn header_map(h: &Headers) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = BTreeMap::new();
    for (n, v) in h.iter().filter(|(n, _)| !ignored_header(n)) {
        m.entry(n.to_ascii_lowercase())
            .and_modify(|x| {
                x.push_str(", ");
                x.push_str(v);
            })
            .or_insert_with(|| v.clone());
    }
    m
}

fn headers(old: &Headers, new: &Headers, at: &str, out: &mut Vec<Delta>) {
    let (a, b) = (header_map(old), header_map(new));
    let at_name = |n: &str| {
        let mut p = at.to_string();
        push_key(&mut p, n);
        p
    };
    for (n, v) in &a {
        match b.get(n) {
            None => {
                let d = format!("header removed (was {:?})", clip(v, 60));
                out.push(delta(Change::Removed, &at_name(n), d));
            }
            Some(w) if !same_text(v, w) => {
                let d = format!(
                    "header value changed: {:?} -> {:?}",
                    clip(&normalise(v), 60),
                    clip(&normalise(w), 60)
                );
                out.push(delta(Change::ValueChanged, &at_name(n), d));
            }
            Some(_) => {}
        }
    }
    for (n, w) in b.iter().filter(|(n, _)| !a.contains_key(*n)) {
        let d = format!("header added: {:?}", clip(w, 60));
        out.push(delta(Change::Added, &at_name(n), d));
    }
}

/// Upstream latency or notification delay, reported beyond the tolerance.
struct Timing {
    what: &'static str,
    path: &'static str,
    tolerance_ms: u64,
}

impl Timing {
    fn compare(&self, (old, new): (i64, i64), out: &mut Vec<Delta>) {
        let d = new.saturating_sub(old);
        if d.unsigned_abs() <= self.tolerance_ms {
            return;
        }
        let detail = format!(
            "{}: {old} ms -> {new} ms ({d:+} ms; tolerance {} ms)",
            self.what, self.tolerance_ms
        );
        out.push(delta(Change::Timing, self.path, detail));
    }
}

/// Appends a member name to a path: `a.b`, or `a["@odata.type"]` when it needs quoting.
fn push_key(path: &mut String, key: &str) {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'$'));
    if plain {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    } else {
        path.push('[');
        path.push_str(&serde_json::to_string(key).unwrap_or_default());
        path.push(']');
    }
}

/// Whether a member takes part: not `null`, and no serializer metadata other than
/// `@odata.type` (which tells an SDK what to deserialize).
fn counts(key: &str, v: &Value) -> bool {
    !v.is_null() && (graph::is_annotation_member(key) || !graph::is_serializer_annotation(key))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A value as compact JSON, clipped.
fn preview(v: &Value) -> String {
    clip(&serde_json::to_string(v).unwrap_or_default(), 80)
}

/// Walks two JSON values in parallel, keeping the path of where it is.
struct Walk<'o> {
    path: String,
    out: &'o mut Vec<Delta>,
}

impl<'o> Walk<'o> {
    fn new(path: String, out: &'o mut Vec<Delta>) -> Walk<'o> {
        Walk { path, out }
    }

    fn push(&mut self, change: Change, detail: String) {
        self.out.push(delta(change, &self.path, detail));
    }

    fn value(&mut self, old: &Value, new: &Value, key: Option<&str>) {
        match (old, new) {
            (Value::Object(a), Value::Object(b)) => self.object(a, b),
            (Value::Array(a), Value::Array(b)) => self.array(a, b, key),
            (Value::String(a), Value::String(b)) => self.string(a, b, key),
            (Value::Number(a), Value::Number(b)) => {
                if a != b && a.as_f64() != b.as_f64() {
                    self.push(Change::ValueChanged, format!("value changed: {a} -> {b}"));
                }
            }
            (Value::Bool(a), Value::Bool(b)) => {
                if a != b {
                    self.push(Change::ValueChanged, format!("value changed: {a} -> {b}"));
                }
            }
            (Value::Null, Value::Null) => {}
            (a, b) => {
                let d = format!(
                    "value type changed: was {} ({}), now {} ({})",
                    kind(a),
                    preview(a),
                    kind(b),
                    preview(b)
                );
                self.push(Change::TypeChanged, d);
            }
        }
    }

    fn object(&mut self, a: &Map<String, Value>, b: &Map<String, Value>) {
        for (k, x) in a.iter().filter(|(k, x)| counts(k, x)) {
            let len = self.path.len();
            push_key(&mut self.path, k);
            match b.get(k).filter(|y| counts(k, y)) {
                Some(y) => self.value(x, y, Some(k)),
                None => self.push(Change::Removed, format!("member removed (was {})", preview(x))),
            }
            self.path.truncate(len);
        }
        let added = b
            .iter()
            .filter(|(k, y)| counts(k, y) && !a.get(*k).is_some_and(|x| counts(k, x)));
        for (k, y) in added {
            let len = self.path.len();
            push_key(&mut self.path, k);
            self.push(Change::Added, format!("member added: {}", preview(y)));
            self.path.truncate(len);
        }
    }

    /// Lists item by item: what OLD has past NEW's end was removed, and the reverse.
    fn array(&mut self, a: &[Value], b: &[Value], key: Option<&str>) {
        for i in 0..a.len().max(b.len()) {
            let len = self.path.len();
            self.path.push_str(&format!("[{i}]"));
            match (a.get(i), b.get(i)) {
                (Some(x), Some(y)) => self.value(x, y, key),
                (Some(x), None) => self.push(Change::Removed, format!("item removed (was {})", preview(x))),
                (None, Some(y)) => self.push(Change::Added, format!("item added: {}", preview(y))),
                (None, None) => {}
            }
            self.path.truncate(len);
        }
    }

    /// Enumeration values (and `@odata.type`) compare ignoring case and are notable
    /// when they differ; other strings are free text.
    fn string(&mut self, a: &str, b: &str, key: Option<&str>) {
        if redacted(a, b) {
            return;
        }
        let (x, y) = (normalise(a), normalise(b));
        let enumeration = key.is_some_and(|k| graph::is_enum_member(k) || graph::is_annotation_member(k));
        if x == y || (enumeration && x.eq_ignore_ascii_case(&y)) {
            return;
        }
        let (change, what) = if enumeration {
            (Change::EnumChanged, "enum value changed")
        } else {
            (Change::ValueChanged, "value changed")
        };
        self.push(change, format!("{what}: {:?} -> {:?}", clip(&x, 60), clip(&y, 60)));
    }
}
