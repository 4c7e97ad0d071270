//! Body shapes and how a recorded shape compares with a live one: which differences
//! refuse a candidate (and by which rule) and which only lower its score, per match
//! mode. Ids are compared as placeholders; a redacted recorded value matches anything.

use std::collections::BTreeMap;

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::cassette::{Body, BodyRef, Node, Tree};
use crate::graph;
use crate::ids;
use crate::redact::{self, REDACTED};

/// How strictly a live request must agree with a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatchMode {
    /// Value types and list lengths must agree; everything else only scores.
    Loose,
    /// Also: no object or list member on one side only; Graph enum values equal.
    #[default]
    Default,
    /// Also: the same members on both sides, and equal non-id scalars.
    Strict,
}

impl MatchMode {
    pub fn parse(s: &str) -> Option<MatchMode> {
        match s {
            "loose" => Some(MatchMode::Loose),
            "default" => Some(MatchMode::Default),
            "strict" => Some(MatchMode::Strict),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MatchMode::Loose => "loose",
            MatchMode::Default => "default",
            MatchMode::Strict => "strict",
        }
    }
}

/// A body reduced for comparison.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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

/// A string with every id replaced by `{id}`.
pub fn template_ids(s: &str) -> String {
    ids::map_tokens(s, |_, _| Some("{id}")).into_owned()
}

impl Shape {
    pub fn of_body(b: &Body) -> Shape {
        Shape::of_view(b.view())
    }

    /// The shape of a recorded or a live body.
    pub fn of_view<T: Tree>(b: BodyRef<'_, T>) -> Shape {
        match b {
            BodyRef::Empty => Shape::Empty,
            BodyRef::Json(v) => Shape::of_json(v),
            BodyRef::Text(s) => Shape::Text(template_ids(s)),
            BodyRef::Bytes(b) => Shape::Bytes(b.to_vec()),
        }
    }

    pub fn of_json<T: Tree>(v: &T) -> Shape {
        match v.node() {
            Node::Null => Shape::Null,
            Node::Bool(b) => Shape::Bool(b),
            Node::Num(n) => Shape::Num(n.to_string()),
            Node::Str(s) => Shape::Str(template_ids(s)),
            Node::Arr(a) => Shape::Arr(a.iter().map(Shape::of_json).collect()),
            Node::Obj(o) => Shape::Obj(
                super::print::kept::<T>(o)
                    .map(|(k, v)| (k.to_string(), Shape::of_json(v)))
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

    /// An object or a list: a member holding one is structure, not a scalar.
    fn is_structure(&self) -> bool {
        matches!(self, Shape::Obj(_) | Shape::Arr(_))
    }
}

/// Why a candidate was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// A value of another type (every mode).
    Type,
    /// Lists of different lengths (every mode).
    Length,
    /// An object or list member on one side only (default, strict).
    OneSided,
    /// Different values of a Graph enumeration member (default, strict).
    Enum,
    /// Any member on one side only, or a different non-id scalar (strict).
    Strict,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::Type => "value types differ",
            Rule::Length => "list lengths differ",
            Rule::OneSided => "a member holding an object or list is on one side only",
            Rule::Enum => "Graph enumeration values differ",
            Rule::Strict => "--match strict",
        }
    }
}

/// How a recorded request compares with a live one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    /// Disagreements that rule the candidate out, with the rule that refused.
    pub refused: Vec<(Rule, String)>,
    /// Disagreements that only lower the score (one-sided scalars, scalar values).
    pub soft: Vec<String>,
}

impl Comparison {
    pub fn compatible(&self) -> bool {
        self.refused.is_empty()
    }

    pub fn penalty(&self) -> usize {
        self.soft.len()
    }

    /// The most telling differences, refusals first (each naming its rule).
    pub fn summary(&self, max: usize) -> String {
        let refused = self.refused.iter().map(|(r, d)| format!("{d} (refused: {})", r.name()));
        let all: Vec<String> = refused.chain(self.soft.iter().cloned()).take(max).collect();
        let more = self.refused.len() + self.soft.len() - all.len();
        let mut s = all.join("; ");
        if more > 0 {
            s.push_str(&format!("; and {more} more"));
        }
        s
    }
}

/// `s`, cut to at most `max` characters (diffs and reports never echo megabytes).
pub fn clip(s: &str, max: usize) -> String {
    match cut(s, max) {
        Some(i) => {
            let mut out = s[..i].to_string();
            mark_cut(&mut out, s.len());
            out
        }
        None => s.to_string(),
    }
}

/// What [`clip`] makes of `out[start..]`, in place.
pub fn clip_tail(out: &mut String, start: usize, max: usize) {
    if let Some(i) = cut(&out[start..], max) {
        let len = out.len() - start;
        out.truncate(start + i);
        mark_cut(out, len);
    }
}

/// Where `s` is cut to keep `max` characters, when it has more.
fn cut(s: &str, max: usize) -> Option<usize> {
    s.char_indices().nth(max).map(|(i, _)| i)
}

/// Says that a text of `len` bytes was cut.
fn mark_cut(out: &mut String, len: usize) {
    let _ = write!(out, "… ({len} bytes)");
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

/// Whether a recorded string is (or holds) a redacted secret: it matches any value.
fn redacted(recorded: &str) -> bool {
    recorded.contains(REDACTED)
}

/// Compares a recorded shape (left) with a live one (right) under `mode`.
pub fn compare(rec: &Shape, live: &Shape, mode: MatchMode) -> Comparison {
    let mut w = Walk {
        mode,
        path: String::new(),
        out: Comparison::default(),
    };
    w.walk(rec, live, None);
    w.out
}

struct Walk {
    mode: MatchMode,
    path: String,
    out: Comparison,
}

impl Walk {
    fn refuse(&mut self, rule: Rule, detail: String) {
        self.out.refused.push((rule, detail));
    }

    /// A member on one side only: structure refuses (default, strict), a scalar only
    /// scores (default) or refuses (strict).
    fn one_sided(&mut self, key: &str, value: &Shape, side: &str) {
        let p = if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        };
        let detail = format!("{p}: {side}");
        match self.mode {
            MatchMode::Strict => self.refuse(Rule::Strict, detail),
            MatchMode::Default if value.is_structure() => self.refuse(Rule::OneSided, detail),
            _ => self.out.soft.push(detail),
        }
    }

    fn walk(&mut self, rec: &Shape, live: &Shape, key: Option<&str>) {
        match (rec, live) {
            (Shape::Obj(a), Shape::Obj(b)) => self.objects(a, b),
            (Shape::Arr(a), Shape::Arr(b)) => {
                if a.len() != b.len() {
                    let d = format!("{}: {} items recorded, {} sent", at(&self.path), a.len(), b.len());
                    return self.refuse(Rule::Length, d);
                }
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    let len = self.path.len();
                    self.path.push_str(&format!("[{i}]"));
                    self.walk(x, y, key);
                    self.path.truncate(len);
                }
            }
            (Shape::Str(x), Shape::Str(y)) | (Shape::Text(x), Shape::Text(y)) => self.strings(x, y, key),
            (a, b) if std::mem::discriminant(a) == std::mem::discriminant(b) => {
                if a != b {
                    let d = format!(
                        "{}: recorded {}, sent {}",
                        at(&self.path),
                        scalar_text(a),
                        scalar_text(b)
                    );
                    self.scalar_differs(d);
                }
            }
            (a, b) => {
                let d = format!("{}: recorded {}, sent {}", at(&self.path), a.kind(), b.kind());
                self.refuse(Rule::Type, d);
            }
        }
    }

    fn objects(&mut self, a: &BTreeMap<String, Shape>, b: &BTreeMap<String, Shape>) {
        for (k, x) in a {
            match b.get(k) {
                Some(y) => {
                    let len = self.path.len();
                    if !self.path.is_empty() {
                        self.path.push('.');
                    }
                    self.path.push_str(k);
                    self.walk(x, y, Some(k));
                    self.path.truncate(len);
                }
                None => self.one_sided(k, x, "recorded, not sent"),
            }
        }
        for (k, y) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
            self.one_sided(k, y, "sent, not recorded");
        }
    }

    fn strings(&mut self, x: &str, y: &str, key: Option<&str>) {
        if x.eq_ignore_ascii_case(y) || redacted(x) {
            return;
        }
        // a miss diff never echoes a secret the bot sent
        let (x, y) = if key.is_some_and(redact::is_secret_member) {
            (Cow::Borrowed(REDACTED), Cow::Borrowed(REDACTED))
        } else {
            (redact::shown_text(x), redact::shown_text(y))
        };
        let d = format!(
            "{}: recorded {:?}, sent {:?}",
            at(&self.path),
            clip(&x, 120),
            clip(&y, 120)
        );
        let enumeration = key.is_some_and(graph::is_enum_member);
        match self.mode {
            MatchMode::Default | MatchMode::Strict if enumeration => self.refuse(Rule::Enum, d),
            _ => self.scalar_differs(d),
        }
    }

    fn scalar_differs(&mut self, detail: String) {
        if self.mode == MatchMode::Strict {
            self.refuse(Rule::Strict, detail);
        } else {
            self.out.soft.push(detail);
        }
    }
}
