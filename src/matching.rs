//! Matching a live request against recorded ones: the key (method, version, path
//! template, query), the body shape, scoring, the key index, and the miss diff.
//!
//! The key must be equal. Shapes must agree in structure where both sides have it
//! (value types, list lengths); members present on one side only and differing scalar
//! values only lower the score. Object key order, whitespace, unicode escaping,
//! `@odata.type` and `null` members never matter; ids are compared as placeholders.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::cassette::Body;
use crate::graph::{self, GraphPath};
use crate::ids;

/// What a request is matched on, ready for comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub method: String,
    pub version: String,
    pub template: String,
    pub query: String,
    pub shape: Shape,
}

impl Probe {
    /// Reduces a request to its probe; `None` when the path is not a Graph path.
    pub fn new(method: &str, uri: &str, body: &Body) -> Option<Probe> {
        let (path, query) = graph::split_uri(uri);
        let gp = GraphPath::parse(path)?;
        Some(Probe::from_parts(method, &gp, query, body))
    }

    pub fn from_parts(method: &str, gp: &GraphPath, query: Option<&str>, body: &Body) -> Probe {
        Probe {
            method: method.to_ascii_uppercase(),
            version: gp.version.clone(),
            template: gp.template(),
            query: normalise_query(query),
            shape: Shape::of_body(body),
        }
    }

    /// The index key: method, version, template and sorted query.
    pub fn key(&self) -> String {
        let mut k = format!("{} {} {}", self.method, self.version, self.template);
        if !self.query.is_empty() {
            k.push('?');
            k.push_str(&self.query);
        }
        k
    }
}

fn template_ids(s: &str) -> String {
    ids::map_tokens(s, |_, _| Some("{id}".to_string())).into_owned()
}

fn normalise_query(q: Option<&str>) -> String {
    let Some(q) = q.filter(|q| !q.is_empty()) else {
        return String::new();
    };
    let mut parts: Vec<String> = q.split('&').filter(|p| !p.is_empty()).map(template_ids).collect();
    parts.sort();
    parts.join("&")
}

/// A body reduced for comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Empty,
    Null,
    Bool(bool),
    Num(String),
    /// A string with its ids replaced by `{id}`.
    Str(String),
    Arr(Vec<Shape>),
    Obj(BTreeMap<String, Shape>),
    /// A non-JSON text body (ids templated).
    Text(String),
    /// A binary body, by content.
    Bytes(Vec<u8>),
}

impl Shape {
    pub fn of_body(b: &Body) -> Shape {
        match b {
            Body::Empty => Shape::Empty,
            Body::Json(v) => Shape::of_json(v),
            Body::Text(s) => Shape::Text(template_ids(s)),
            Body::Bytes(b) => Shape::Bytes(b.clone()),
        }
    }

    pub fn of_json(v: &Value) -> Shape {
        match v {
            Value::Null => Shape::Null,
            Value::Bool(b) => Shape::Bool(*b),
            Value::Number(n) => Shape::Num(n.to_string()),
            Value::String(s) => Shape::Str(template_ids(s)),
            Value::Array(a) => Shape::Arr(a.iter().map(Shape::of_json).collect()),
            Value::Object(o) => Shape::Obj(
                o.iter()
                    .filter(|(k, v)| !graph::is_annotation_member(k) && !v.is_null())
                    .map(|(k, v)| (k.clone(), Shape::of_json(v)))
                    .collect(),
            ),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Shape::Empty => "no body",
            Shape::Null => "null",
            Shape::Bool(_) => "a boolean",
            Shape::Num(_) => "a number",
            Shape::Str(_) => "a string",
            Shape::Arr(_) => "a list",
            Shape::Obj(_) => "an object",
            Shape::Text(_) => "a text body",
            Shape::Bytes(_) => "a binary body",
        }
    }
}

/// How a recorded request compares with a live one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    /// Disagreements that rule the candidate out (types, list lengths).
    pub structural: Vec<String>,
    /// Disagreements that only lower the score (one-sided members, scalar values).
    pub soft: Vec<String>,
}

impl Comparison {
    pub fn compatible(&self) -> bool {
        self.structural.is_empty()
    }

    pub fn penalty(&self) -> usize {
        self.soft.len()
    }

    /// The most telling differences, for messages.
    pub fn summary(&self, max: usize) -> String {
        let all: Vec<&String> = self.structural.iter().chain(&self.soft).take(max).collect();
        let more = self.structural.len() + self.soft.len() - all.len();
        let mut s = all.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("; ");
        if more > 0 {
            s.push_str(&format!("; and {more} more"));
        }
        s
    }
}

/// `s`, cut to at most `max` characters (diffs and reports never echo megabytes).
pub fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}… ({} bytes)", &s[..i], s.len()),
        None => s.to_string(),
    }
}

fn at(path: &str) -> &str {
    if path.is_empty() {
        "the body"
    } else {
        path
    }
}

fn scalar_text(s: &Shape) -> String {
    match s {
        Shape::Str(x) | Shape::Text(x) => format!("{:?}", clip(x, 120)),
        Shape::Num(n) => clip(n, 40),
        Shape::Bool(b) => b.to_string(),
        other => other.kind().to_string(),
    }
}

/// Compares a recorded shape (left) with a live one (right).
pub fn compare(rec: &Shape, live: &Shape) -> Comparison {
    let mut c = Comparison::default();
    walk(rec, live, &mut String::new(), &mut c);
    c
}

fn walk(rec: &Shape, live: &Shape, path: &mut String, c: &mut Comparison) {
    match (rec, live) {
        (Shape::Obj(a), Shape::Obj(b)) => {
            for (k, x) in a {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                match b.get(k) {
                    Some(y) => walk(x, y, path, c),
                    None => c.soft.push(format!("{path}: recorded, not sent")),
                }
                path.truncate(len);
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                c.soft.push(format!("{p}: sent, not recorded"));
            }
        }
        (Shape::Arr(a), Shape::Arr(b)) => {
            if a.len() != b.len() {
                c.structural
                    .push(format!("{}: {} items recorded, {} sent", at(path), a.len(), b.len()));
                return;
            }
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(x, y, path, c);
                path.truncate(len);
            }
        }
        (Shape::Str(x), Shape::Str(y)) | (Shape::Text(x), Shape::Text(y)) => {
            if !x.eq_ignore_ascii_case(y) {
                c.soft.push(format!(
                    "{}: recorded {:?}, sent {:?}",
                    at(path),
                    clip(x, 120),
                    clip(y, 120)
                ));
            }
        }
        (a, b) if std::mem::discriminant(a) == std::mem::discriminant(b) => {
            if a != b {
                c.soft.push(format!(
                    "{}: recorded {}, sent {}",
                    at(path),
                    scalar_text(a),
                    scalar_text(b)
                ));
            }
        }
        (a, b) => c
            .structural
            .push(format!("{}: recorded {}, sent {}", at(path), a.kind(), b.kind())),
    }
}

/// The recorded exchanges of one cassette, indexed by key.
#[derive(Debug, Default)]
pub struct Index {
    probes: Vec<Probe>,
    /// The recorded seq of each entry, for messages.
    seqs: Vec<u64>,
    by_key: HashMap<String, Vec<usize>>,
}

/// A candidate that fits, with its comparison.
#[derive(Debug, Clone)]
pub struct Fit {
    pub entry: usize,
    pub comparison: Comparison,
}

impl Index {
    /// Builds the index; entry `i` is the `i`-th (probe, recorded seq) given.
    pub fn build(entries: Vec<(Probe, u64)>) -> Index {
        let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
        let (probes, seqs): (Vec<Probe>, Vec<u64>) = entries.into_iter().unzip();
        for (i, p) in probes.iter().enumerate() {
            by_key.entry(p.key()).or_default().push(i);
        }
        Index { probes, seqs, by_key }
    }

    /// Compatible candidates for `live`, best first (lowest penalty, then earliest).
    pub fn fits(&self, live: &Probe) -> Vec<Fit> {
        let Some(cands) = self.by_key.get(&live.key()) else {
            return Vec::new();
        };
        let mut fits: Vec<Fit> = cands
            .iter()
            .map(|&i| Fit {
                entry: i,
                comparison: compare(&self.probes[i].shape, &live.shape),
            })
            .filter(|f| f.comparison.compatible())
            .collect();
        fits.sort_by_key(|f| (f.comparison.penalty(), f.entry));
        fits
    }

    /// The nearest recorded entry to a request that found no fit, and why it differs.
    pub fn explain_miss(&self, live: &Probe) -> (Option<usize>, String) {
        let shown = |p: &Probe| clip(&format!("{} /{}{}", p.method, p.version, p.template), 300);
        if let Some(cands) = self.by_key.get(&live.key()) {
            let best = cands
                .iter()
                .map(|&i| (i, compare(&self.probes[i].shape, &live.shape)))
                .min_by_key(|(i, c)| (c.structural.len(), c.penalty(), *i));
            if let Some((i, c)) = best {
                return (
                    Some(i),
                    format!(
                        "no recorded exchange matches {}; nearest is #{} with the same path, whose body differs: {}",
                        shown(live),
                        self.seqs[i],
                        c.summary(4)
                    ),
                );
            }
        }
        let nearest = self
            .probes
            .iter()
            .enumerate()
            .map(|(i, p)| (i, key_distance(p, live)))
            .min_by_key(|(i, d)| (*d, *i));
        match nearest {
            None => (
                None,
                format!(
                    "no recorded exchange matches {}: the cassette has no exchanges",
                    shown(live)
                ),
            ),
            Some((i, _)) => {
                let p = &self.probes[i];
                let mut why = Vec::new();
                if p.method != live.method {
                    why.push(format!("method {} recorded, {} sent", p.method, live.method));
                }
                if p.version != live.version {
                    why.push(format!("version {} recorded, {} sent", p.version, live.version));
                }
                if p.template != live.template {
                    why.push(format!("path {} recorded, {} sent", p.template, live.template));
                }
                if p.query != live.query {
                    why.push(format!("query {:?} recorded, {:?} sent", p.query, live.query));
                }
                (
                    Some(i),
                    format!(
                        "no recorded exchange matches {}; nearest is #{} {}: {}",
                        shown(live),
                        self.seqs[i],
                        shown(p),
                        why.join("; ")
                    ),
                )
            }
        }
    }
}

fn key_distance(a: &Probe, b: &Probe) -> usize {
    let segs = |p: &Probe| p.template.split('/').map(str::to_string).collect::<Vec<_>>();
    let (x, y) = (segs(a), segs(b));
    // Levenshtein over path segments
    let mut prev: Vec<usize> = (0..=y.len()).collect();
    for (i, sx) in x.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, sy) in y.iter().enumerate() {
            let sub = prev[j] + usize::from(sx != sy);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    let path = prev[y.len()] * 4;
    path + 3 * usize::from(a.method != b.method) + usize::from(a.version != b.version) + usize::from(a.query != b.query)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn probe(uri: &str, body: Value) -> Probe {
        Probe::new("POST", uri, &Body::Json(body)).unwrap()
    }

    #[test]
    fn key_order_odata_type_and_nulls_do_not_matter() {
        let a = probe(
            "/beta/communications/calls/ab6233a5-20b7-4c5e-bea2-ce56c9776429/participants/invite",
            json!({"participants":[{"@odata.type":"#microsoft.graph.invitationParticipantInfo","identity":{"user":{"id":"278405a3-f568-4b3e-b684-009193463064"}}}],"clientContext":"f2fa86af-3c51-4bc2-8fc0-475452d9764f"}),
        );
        let b = probe(
            "/beta/app/calls/11111111-20b7-4c5e-bea2-ce56c9776429/participants/microsoft.graph.invite",
            json!({"clientContext":"99999999-3c51-4bc2-8fc0-475452d9764f","participants":[{"identity":{"user":{"id":"00000000-f568-4b3e-b684-009193463064"}},"replacesCallId":null}]}),
        );
        assert_eq!(a.key(), b.key());
        let c = compare(&a.shape, &b.shape);
        assert!(c.compatible() && c.penalty() == 0, "{c:?}");
    }

    #[test]
    fn list_length_is_structural_and_one_sided_members_are_soft() {
        let a = probe("/v1.0/communications/calls/x", json!({"p":[1,2],"displayName":"a"}));
        let b = probe("/v1.0/communications/calls/x", json!({"p":[1]}));
        let c = compare(&a.shape, &b.shape);
        assert!(!c.compatible());
        assert!(c.summary(3).contains("p: 2 items recorded, 1 sent"), "{}", c.summary(3));
        let d = compare(
            &probe("/v1.0/x", json!({"a":1,"b":"x"})).shape,
            &probe("/v1.0/x", json!({"a":1})).shape,
        );
        assert!(d.compatible() && d.penalty() == 1);
    }

    #[test]
    fn diffs_never_quote_huge_values() {
        let big = "x".repeat(1 << 20);
        let c = compare(
            &probe("/v1.0/x", json!({"a": "small"})).shape,
            &probe("/v1.0/x", json!({"a": big})).shape,
        );
        assert!(c.summary(4).len() < 400, "{}", c.summary(4).len());
        assert_eq!(clip("héllo", 2), "hé… (6 bytes)");
    }

    #[test]
    fn miss_names_the_nearest() {
        let idx = Index::build(vec![(
            probe(
                "/beta/communications/calls/ab6233a5-20b7-4c5e-bea2-ce56c9776429/participants/invite",
                json!({}),
            ),
            3,
        )]);
        let live = probe(
            "/v1.0/communications/calls/ab6233a5-20b7-4c5e-bea2-ce56c9776429/participants/invite",
            json!({}),
        );
        assert!(idx.fits(&live).is_empty());
        let (n, msg) = idx.explain_miss(&live);
        assert_eq!(n, Some(0));
        assert!(msg.contains("version beta recorded, v1.0 sent"), "{msg}");
        assert!(msg.contains("nearest is #3 "), "named by recorded seq: {msg}");
    }
}
