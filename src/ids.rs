//! Id-like tokens: finding them in any string, their canonical value, the per-session
//! binding table (recorded id -> live id), deterministic minting and rewriting.
//!
//! Tokens are GUIDs (any case, with or without dashes; also inside `8:orgid:<guid>`,
//! URLs and free text), E.164 phone numbers and chat thread ids (`19:...@thread.v2`).
//! A GUID is compared as 128 bits, so `AB62...` and `ab62-...` are the same id.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::cassette::Body;
use crate::graph;

/// The canonical value of an id, independent of how it was written.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Canon {
    Guid(u128),
    /// `+` and the digits.
    Phone(Box<str>),
    /// The whole thread id, `19:...@thread.v2`.
    Thread(Box<str>),
}

/// How a token was written, so a replacement can be written the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    Guid { upper: bool, dashed: bool },
    Phone,
    Thread,
}

/// One id-like token found in a string: byte range, value and written form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub start: usize,
    pub end: usize,
    pub canon: Canon,
    pub form: Form,
}

fn is_boundary(b: Option<&u8>) -> bool {
    b.is_none_or(|c| !c.is_ascii_alphanumeric())
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// A GUID starting at `i`: 36 chars dashed 8-4-4-4-12 or 32 hex digits.
fn guid_at(b: &[u8], i: usize) -> Option<(usize, u128, Form)> {
    let parse = |len: usize, dashed: bool| -> Option<(usize, u128, Form)> {
        let s = b.get(i..i + len)?;
        if !is_boundary(b.get(i + len)) {
            return None;
        }
        let mut v: u128 = 0;
        let (mut upper, mut lower) = (false, false);
        for (k, &c) in s.iter().enumerate() {
            if dashed && matches!(k, 8 | 13 | 18 | 23) {
                if c != b'-' {
                    return None;
                }
                continue;
            }
            let h = hex_val(c)?;
            upper |= c.is_ascii_uppercase();
            lower |= c.is_ascii_lowercase();
            v = (v << 4) | u128::from(h);
        }
        Some((
            i + len,
            v,
            Form::Guid {
                upper: upper && !lower,
                dashed,
            },
        ))
    };
    parse(36, true).or_else(|| parse(32, false))
}

/// A thread id starting at `i`: `19:` + `[A-Za-z0-9_-]+` + `@thread.` + `[a-z0-9]+`.
fn thread_at(b: &[u8], i: usize) -> Option<usize> {
    let rest = b.get(i..)?;
    if !rest.starts_with(b"19:") {
        return None;
    }
    let mut j = i + 3;
    while b
        .get(j)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
    {
        j += 1;
    }
    if j == i + 3 || !b.get(j..)?.starts_with(b"@thread.") {
        return None;
    }
    j += "@thread.".len();
    let k0 = j;
    while b.get(j).is_some_and(|c| c.is_ascii_alphanumeric()) {
        j += 1;
    }
    (j > k0).then_some(j)
}

/// An E.164 number starting at `i`: `+` and 7 to 15 digits, not followed by a digit.
fn phone_at(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'+') {
        return None;
    }
    let mut j = i + 1;
    while b.get(j).is_some_and(u8::is_ascii_digit) {
        j += 1;
    }
    let n = j - i - 1;
    ((7..=15).contains(&n) && b.get(i + 1) != Some(&b'0') && is_boundary(b.get(j))).then_some(j)
}

/// Every id-like token in `s`, left to right, non-overlapping.
pub fn scan(s: &str) -> Vec<Token> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let at_boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        if at_boundary {
            if let Some(end) = thread_at(b, i) {
                out.push(Token {
                    start: i,
                    end,
                    canon: Canon::Thread(s[i..end].into()),
                    form: Form::Thread,
                });
                i = end;
                continue;
            }
            if let Some((end, v, form)) = guid_at(b, i) {
                out.push(Token {
                    start: i,
                    end,
                    canon: Canon::Guid(v),
                    form,
                });
                i = end;
                continue;
            }
            if let Some(end) = phone_at(b, i) {
                out.push(Token {
                    start: i,
                    end,
                    canon: Canon::Phone(s[i..end].into()),
                    form: Form::Phone,
                });
                i = end;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// Replaces tokens in `s`: `f` returns the replacement, or `None` to keep one.
/// Borrows when nothing changes.
pub fn map_tokens<'s>(s: &'s str, mut f: impl FnMut(&Token, &str) -> Option<String>) -> Cow<'s, str> {
    let toks = scan(s);
    let mut out = String::new();
    let mut last = 0;
    let mut changed = false;
    for t in &toks {
        let text = &s[t.start..t.end];
        match f(t, text) {
            Some(r) if r != text => {
                if !changed {
                    out.reserve(s.len() + 16);
                    changed = true;
                }
                out.push_str(&s[last..t.start]);
                out.push_str(&r);
                last = t.end;
            }
            _ => {}
        }
    }
    if !changed {
        return Cow::Borrowed(s);
    }
    out.push_str(&s[last..]);
    Cow::Owned(out)
}

/// Writes `canon` in `form`; a form of another kind falls back to the canon's own.
pub fn render(canon: &Canon, form: Form) -> String {
    match (canon, form) {
        (Canon::Guid(v), Form::Guid { upper, dashed }) => render_guid(*v, upper, dashed),
        (Canon::Guid(v), _) => render_guid(*v, false, true),
        (Canon::Phone(p), _) => p.to_string(),
        (Canon::Thread(t), _) => t.to_string(),
    }
}

fn render_guid(v: u128, upper: bool, dashed: bool) -> String {
    let hex = if upper {
        format!("{v:032X}")
    } else {
        format!("{v:032x}")
    };
    if !dashed {
        return hex;
    }
    let mut out = String::with_capacity(36);
    for (k, part) in [(0, 8), (8, 12), (12, 16), (16, 20), (20, 32)].iter().enumerate() {
        if k > 0 {
            out.push('-');
        }
        out.push_str(&hex[part.0..part.1]);
    }
    out
}

/// The natural written form of a canon (lowercase dashed GUIDs).
pub fn natural_form(canon: &Canon) -> Form {
    match canon {
        Canon::Guid(_) => Form::Guid {
            upper: false,
            dashed: true,
        },
        Canon::Phone(_) => Form::Phone,
        Canon::Thread(_) => Form::Thread,
    }
}

impl std::fmt::Display for Canon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&render(self, natural_form(self)))
    }
}

/// A session's seed: everything minted in a session derives from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Seed(pub [u8; 32]);

impl Seed {
    /// A seed from arbitrary parts (cassette name, the first request's ids ...).
    pub fn derive<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Seed {
        let mut h = Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_be_bytes());
            h.update(p);
        }
        Seed(h.finalize().into())
    }

    /// 32 bytes derived from the seed and a label; the basis of every minted value.
    pub fn bytes(&self, label: &[u8], data: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.0);
        h.update((label.len() as u64).to_be_bytes());
        h.update(label);
        h.update(data);
        h.finalize().into()
    }

    /// A deterministic GUID for `label`/`data`, written in lowercase dashed form.
    pub fn guid(&self, label: &str, data: &[u8]) -> String {
        render_guid(guid_from(self.bytes(label.as_bytes(), data)), false, true)
    }

    /// Short hex name of the seed (session ids).
    pub fn short(&self) -> String {
        let mut s = String::with_capacity(16);
        for b in &self.0[..8] {
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

fn guid_from(h: [u8; 32]) -> u128 {
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    let v = u128::from_be_bytes(b);
    // version 4, RFC 4122 variant: minted ids look like the GUIDs Graph hands out.
    (v & !(0xF << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62)
}

/// A new id of `recorded`'s kind, derived from the seed; `attempt` breaks collisions.
pub fn mint(seed: &Seed, recorded: &Canon, attempt: u32) -> Canon {
    let key = |tag: &[u8], data: &[u8]| {
        let mut d = Vec::with_capacity(data.len() + 4);
        d.extend_from_slice(data);
        d.extend_from_slice(&attempt.to_be_bytes());
        seed.bytes(tag, &d)
    };
    match recorded {
        Canon::Guid(v) => Canon::Guid(guid_from(key(b"guid", &v.to_be_bytes()))),
        Canon::Phone(p) => {
            let h = key(b"phone", p.as_bytes());
            let mut out = String::with_capacity(p.len());
            for (k, c) in p.chars().enumerate() {
                // keep `+` and the first two digits (country code), mint the rest
                if k < 3 {
                    out.push(c);
                } else {
                    out.push(char::from(b'0' + h[k % 32] % 10));
                }
            }
            Canon::Phone(out.into())
        }
        Canon::Thread(t) => {
            let h = key(b"thread", t.as_bytes());
            let (head, tail) = t.split_once('@').unwrap_or((t, ""));
            let body = head.strip_prefix("19:").unwrap_or(head);
            let (lead, core) = match body.strip_prefix("meeting_") {
                Some(core) => ("meeting_", core),
                None => ("", body),
            };
            let mut out = String::with_capacity(t.len() + 8);
            out.push_str("19:");
            out.push_str(lead);
            let mut changed = false;
            for (k, c) in core.chars().enumerate() {
                let r = h[k % 32];
                let m = match c {
                    '0'..='9' => char::from(b'0' + r % 10),
                    'a'..='z' => char::from(b'a' + r % 26),
                    'A'..='Z' => char::from(b'A' + r % 26),
                    other => other,
                };
                changed |= m != c;
                out.push(m);
            }
            if !changed {
                // nothing to vary (e.g. `19:meeting_@thread.v2`): append derived characters
                out.extend(h[..8].iter().map(|b| char::from(b'a' + b % 26)));
            }
            if !tail.is_empty() {
                out.push('@');
                out.push_str(tail);
            }
            Canon::Thread(out.into())
        }
    }
}

/// One recorded id's live counterpart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bound {
    pub live: Canon,
    /// The live token exactly as the bot wrote it (empty for minted ids).
    pub live_text: Box<str>,
    /// The recorded token exactly as the recorded request wrote it (empty for minted).
    pub rec_text: Box<str>,
    pub minted: bool,
}

/// What happened to a proposed binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindOutcome {
    New,
    Same,
    /// It would break the bijection: the caller keeps it request-scoped.
    Conflict,
}

/// A bijection recorded -> live over canonical ids, plus whole-string bindings for
/// non-id scalars that the bot sent differently (a `callbackUri`): those apply only
/// under the member name they were sent in.
#[derive(Clone, Debug, Default)]
pub struct IdTable {
    fwd: HashMap<Canon, Bound>,
    rev: HashMap<Canon, Canon>,
    strings: HashMap<(Box<str>, Box<str>), Box<str>>,
}

impl IdTable {
    pub fn get(&self, recorded: &Canon) -> Option<&Bound> {
        self.fwd.get(recorded)
    }

    /// The live value for a recorded scalar under member `key`.
    pub fn string(&self, key: &str, recorded: &str) -> Option<&str> {
        if self.strings.is_empty() {
            return None;
        }
        self.strings.get(&(key.into(), recorded.into())).map(|s| &**s)
    }

    /// Whether `recorded -> live` can join the table, and whether it is already there.
    pub fn check(&self, recorded: &Canon, live: &Canon) -> BindOutcome {
        match (self.fwd.get(recorded), self.rev.get(live)) {
            (Some(b), _) if &b.live == live => BindOutcome::Same,
            (None, None) => BindOutcome::New,
            _ => BindOutcome::Conflict,
        }
    }

    /// Inserts a binding; conflicts are refused (the caller decides where they go).
    pub fn bind(&mut self, recorded: Canon, rec_text: &str, live: Canon, live_text: &str) -> BindOutcome {
        let outcome = self.check(&recorded, &live);
        match outcome {
            BindOutcome::New => {
                self.rev.insert(live.clone(), recorded.clone());
                self.fwd.insert(
                    recorded,
                    Bound {
                        live,
                        live_text: live_text.into(),
                        rec_text: rec_text.into(),
                        minted: false,
                    },
                );
            }
            BindOutcome::Same => {
                // the latest request decides how an echo is written
                if let Some(b) = self.fwd.get_mut(&recorded) {
                    b.live_text = live_text.into();
                    b.rec_text = rec_text.into();
                }
            }
            BindOutcome::Conflict => {}
        }
        outcome
    }

    /// Binds a recorded scalar under member `key` to a live one (last one wins).
    pub fn bind_string(&mut self, key: &str, recorded: &str, live: &str) {
        self.strings.insert((key.into(), recorded.into()), live.into());
    }

    /// The live id for `recorded`, minting one (deterministically) when unbound.
    /// Returns the binding and whether it was minted just now.
    pub fn mint(&mut self, seed: &Seed, recorded: &Canon) -> (&Bound, bool) {
        if self.fwd.contains_key(recorded) {
            return (&self.fwd[recorded], false);
        }
        let mut attempt = 0;
        let live = loop {
            let cand = mint(seed, recorded, attempt);
            // a 128-bit (or digit/letter) space: a clash twice in a row means the
            // recorded value leaves nothing to vary; keep it rather than spin
            if (&cand != recorded && !self.rev.contains_key(&cand)) || attempt >= 16 {
                break cand;
            }
            attempt += 1;
        };
        self.rev.insert(live.clone(), recorded.clone());
        let b = self.fwd.entry(recorded.clone()).or_insert(Bound {
            live,
            live_text: "".into(),
            rec_text: "".into(),
            minted: true,
        });
        (b, true)
    }

    /// All bindings, for reports.
    pub fn iter(&self) -> impl Iterator<Item = (&Canon, &Bound)> {
        self.fwd.iter()
    }
}

/// Applies a session's table to recorded text: bound ids become live ids, stable
/// identities stay, every other id is minted (and remembered in the table).
pub struct Rewriter<'a> {
    /// Request-scoped bindings (those that would break the bijection), checked first.
    pub scoped: &'a IdTable,
    pub table: &'a mut IdTable,
    pub stable: &'a HashSet<Canon>,
    pub seed: &'a Seed,
    /// Live ids minted during this rewrite, for the session index.
    pub minted: Vec<Canon>,
}

impl<'a> Rewriter<'a> {
    pub fn new(scoped: &'a IdTable, table: &'a mut IdTable, stable: &'a HashSet<Canon>, seed: &'a Seed) -> Self {
        Rewriter {
            scoped,
            table,
            stable,
            seed,
            minted: Vec::new(),
        }
    }

    fn replacement(&mut self, tok: &Token, text: &str) -> Option<String> {
        let bound = match self.scoped.get(&tok.canon) {
            Some(b) => b,
            None => match self.table.get(&tok.canon) {
                Some(b) => b,
                None if self.stable.contains(&tok.canon) => return None,
                None => {
                    let (b, fresh) = self.table.mint(self.seed, &tok.canon);
                    if fresh {
                        self.minted.push(b.live.clone());
                    }
                    b
                }
            },
        };
        if !bound.rec_text.is_empty() && *bound.rec_text == *text && !bound.live_text.is_empty() {
            return Some(bound.live_text.to_string());
        }
        if bound.live == tok.canon {
            return None;
        }
        Some(render(&bound.live, tok.form))
    }

    /// Rewrites the ids inside one string.
    pub fn rewrite_str<'s>(&mut self, s: &'s str) -> Cow<'s, str> {
        map_tokens(s, |t, text| self.replacement(t, text))
    }

    fn member_string(&self, key: &str, s: &str) -> Option<String> {
        self.scoped
            .string(key, s)
            .or_else(|| self.table.string(key, s))
            .map(str::to_string)
    }

    /// Rewrites every string in a JSON value; `@odata.type` values are never touched.
    pub fn rewrite_json(&mut self, v: &Value) -> Value {
        self.rewrite_member(v, None)
    }

    /// `v` sits under member `key` (list items stay under their list's member).
    fn rewrite_member(&mut self, v: &Value, key: Option<&str>) -> Value {
        match v {
            Value::String(s) => match key.and_then(|k| self.member_string(k, s)) {
                Some(live) => Value::String(live),
                None => Value::String(self.rewrite_str(s).into_owned()),
            },
            Value::Array(a) => Value::Array(a.iter().map(|x| self.rewrite_member(x, key)).collect()),
            Value::Object(o) => {
                let mut m = Map::with_capacity(o.len());
                for (k, x) in o {
                    let nv = if graph::is_annotation_member(k) {
                        x.clone()
                    } else {
                        self.rewrite_member(x, Some(k))
                    };
                    m.insert(k.clone(), nv);
                }
                Value::Object(m)
            }
            other => other.clone(),
        }
    }

    /// Rewrites a recorded body (JSON and text; other bytes stay as recorded).
    pub fn rewrite_body(&mut self, b: &Body) -> Body {
        match b {
            Body::Json(v) => Body::Json(self.rewrite_json(v)),
            Body::Text(t) => Body::Text(self.rewrite_str(t).into_owned()),
            other => other.clone(),
        }
    }
}

/// Where a paired token was found, which decides whether it may select a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub recorded: Canon,
    pub rec_text: String,
    pub live: Canon,
    pub live_text: String,
    /// In the path, or under a call-scoped member (`replacesCallId`, ...).
    pub call_scoped: bool,
}

/// What walking a recorded request beside a live one found.
#[derive(Debug, Default, Clone)]
pub struct Pairing {
    pub tokens: Vec<Pair>,
    /// Non-id scalars that differ, by member: (member, recorded, live).
    pub strings: Vec<(String, String, String)>,
}

impl Pairing {
    /// Pairs the tokens of two strings at the same position. A scalar under a member
    /// `key` whose text differs beyond its ids is bound whole, for that member only.
    pub fn strs(&mut self, rec: &str, live: &str, key: Option<&str>, call_scoped: bool) {
        let tr = scan(rec);
        let tl = scan(live);
        if tr.len() == tl.len() {
            for (a, b) in tr.iter().zip(&tl) {
                self.tokens.push(Pair {
                    recorded: a.canon.clone(),
                    rec_text: rec[a.start..a.end].to_string(),
                    live: b.canon.clone(),
                    live_text: live[b.start..b.end].to_string(),
                    call_scoped,
                });
            }
        }
        let differs = rec != live && (tr.len() != tl.len() || gaps(rec, &tr) != gaps(live, &tl));
        if let (true, Some(k)) = (differs, key) {
            self.strings.push((k.to_string(), rec.to_string(), live.to_string()));
        }
    }

    /// Walks two JSON values in parallel (objects by key, arrays by index).
    pub fn json(&mut self, rec: &Value, live: &Value, key: Option<&str>) {
        match (rec, live) {
            (Value::String(a), Value::String(b)) => {
                self.strs(a, b, key, key.is_some_and(graph::is_call_scoped_member));
            }
            (Value::Array(a), Value::Array(b)) => {
                for (x, y) in a.iter().zip(b) {
                    self.json(x, y, key);
                }
            }
            (Value::Object(a), Value::Object(b)) => {
                for (k, x) in a {
                    if graph::is_annotation_member(k) {
                        continue;
                    }
                    if let Some(y) = b.get(k) {
                        self.json(x, y, Some(k));
                    }
                }
            }
            _ => {}
        }
    }
}

/// The text of `s` outside its tokens.
fn gaps<'s>(s: &'s str, toks: &[Token]) -> Vec<&'s str> {
    let mut out = Vec::with_capacity(toks.len() + 1);
    let mut last = 0;
    for t in toks {
        out.push(&s[last..t.start]);
        last = t.end;
    }
    out.push(&s[last..]);
    out
}

/// Visits every string in a JSON value with the member it sits under and that
/// member's parent (`@odata.type` values are skipped: they never hold ids).
pub fn visit_strings<'v>(v: &'v Value, f: &mut impl FnMut(Option<&str>, Option<&str>, &'v str)) {
    fn walk<'v>(
        v: &'v Value,
        key: Option<&str>,
        parent: Option<&str>,
        f: &mut impl FnMut(Option<&str>, Option<&str>, &'v str),
    ) {
        match v {
            Value::String(s) => f(key, parent, s),
            Value::Array(a) => a.iter().for_each(|x| walk(x, key, parent, f)),
            Value::Object(o) => {
                for (k, x) in o.iter().filter(|(k, _)| !graph::is_annotation_member(k)) {
                    walk(x, Some(k), key, f);
                }
            }
            _ => {}
        }
    }
    walk(v, None, None, f);
}

/// Every id in a JSON value.
pub fn collect(v: &Value, out: &mut HashSet<Canon>) {
    visit_strings(v, &mut |_, _, s| out.extend(scan(s).into_iter().map(|t| t.canon)));
}

/// Ids under call-scoped members (`replacesCallId`, ...), in order.
pub fn call_scoped(v: &Value) -> Vec<Canon> {
    let mut out = Vec::new();
    visit_strings(v, &mut |k, _, s| {
        if k.is_some_and(graph::is_call_scoped_member) {
            out.extend(scan(s).into_iter().map(|t| t.canon));
        }
    });
    out
}

/// Collects the ids that sit at identity positions (`tenantId`, `user.id`, ...) or
/// follow `appid:`: they stay as recorded unless the bot sends them.
pub fn collect_stable(v: &Value, out: &mut HashSet<Canon>) {
    visit_strings(v, &mut |k, parent, s| match k {
        Some(k) if graph::is_identity_member(parent, k) => out.extend(scan(s).into_iter().map(|t| t.canon)),
        _ => collect_appids(s, out),
    });
}

/// Ids written as `appid:<guid>` inside free text.
pub fn collect_appids(s: &str, out: &mut HashSet<Canon>) {
    if !s.contains("appid:") {
        return;
    }
    for t in scan(s) {
        if s[..t.start].ends_with("appid:") {
            out.insert(t.canon);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn finds_guids_in_every_form() {
        let s = "calls/ab6233a5-20b7-4c5e-bea2-ce56c9776429 and 57DAB8B1894C409AB240BD8BEAE78896 8:orgid:278405a3-f568-4b3e-b684-009193463064";
        let t = scan(s);
        assert_eq!(t.len(), 3);
        assert_eq!(
            t[1].form,
            Form::Guid {
                upper: true,
                dashed: false
            }
        );
        assert_eq!(&s[t[2].start..t[2].end], "278405a3-f568-4b3e-b684-009193463064");
        let a = scan("AB6233A5-20B7-4C5E-BEA2-CE56C9776429");
        assert_eq!(a[0].canon, t[0].canon);
    }

    #[test]
    fn finds_phones_and_threads() {
        let s = "participant 4:+61450078883. in 19:meeting_NDM3MjEw@thread.v2 x";
        let t = scan(s);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].canon, Canon::Phone("+61450078883".into()));
        assert_eq!(t[1].canon, Canon::Thread("19:meeting_NDM3MjEw@thread.v2".into()));
    }

    #[test]
    fn ignores_longer_hex_runs_and_short_numbers() {
        assert!(scan("c814b44b73fcd7f3f6b6ec48b524218185ca49b3").is_empty());
        assert!(scan("+123").is_empty());
        assert!(scan("sourceId 1").is_empty());
    }

    #[test]
    fn minting_is_deterministic_and_keeps_form() {
        let seed = Seed::derive([b"x".as_slice()]);
        let r = scan("57DAB8B1894C409AB240BD8BEAE78896").remove(0);
        let a = mint(&seed, &r.canon, 0);
        assert_eq!(a, mint(&seed, &r.canon, 0));
        assert_ne!(a, r.canon);
        let text = render(&a, r.form);
        assert_eq!(text.len(), 32);
        assert_eq!(text, text.to_ascii_uppercase());
        let th = Canon::Thread("19:meeting_NDM3MjEw@thread.v2".into());
        let m = mint(&seed, &th, 0);
        let Canon::Thread(m) = m else { panic!() };
        assert!(m.starts_with("19:meeting_") && m.ends_with("@thread.v2") && m.len() == 29);
    }

    #[test]
    fn echoed_values_come_back_as_sent() {
        let seed = Seed::derive([b"s".as_slice()]);
        let mut table = IdTable::default();
        let mut p = Pairing::default();
        p.json(
            &json!({"clientContext": "f2fa86af-3c51-4bc2-8fc0-475452d9764f"}),
            &json!({"clientContext": "0B1C2D3E4F5061728394A5B6C7D8E9F0"}),
            None,
        );
        for pair in &p.tokens {
            table.bind(
                pair.recorded.clone(),
                &pair.rec_text,
                pair.live.clone(),
                &pair.live_text,
            );
        }
        let stable = HashSet::new();
        let scoped = IdTable::default();
        let mut rw = Rewriter::new(&scoped, &mut table, &stable, &seed);
        let out = rw.rewrite_json(&json!({
            "clientContext": "f2fa86af-3c51-4bc2-8fc0-475452d9764f",
            "other": "F2FA86AF-3C51-4BC2-8FC0-475452D9764F",
            "id": "eec3812a-fdc3-4fb4-825c-a06c9f35414e"
        }));
        assert_eq!(out["clientContext"], "0B1C2D3E4F5061728394A5B6C7D8E9F0");
        assert_eq!(out["other"], "0B1C2D3E-4F50-6172-8394-A5B6C7D8E9F0");
        assert_ne!(out["id"], "eec3812a-fdc3-4fb4-825c-a06c9f35414e");
        assert_eq!(rw.minted.len(), 1);
    }

    #[test]
    fn differing_scalars_are_bound_only_under_their_member() {
        let seed = Seed::derive([b"m".as_slice()]);
        let mut p = Pairing::default();
        p.json(
            &json!({"subject": "default", "callbackUri": "https://bot.contoso.com/api/calls"}),
            &json!({"subject": "weekly", "callbackUri": "https://127.0.0.1:9/cb"}),
            None,
        );
        let mut table = IdTable::default();
        for (k, r, l) in &p.strings {
            table.bind_string(k, r, l);
        }
        let (stable, scoped) = (HashSet::new(), IdTable::default());
        let mut rw = Rewriter::new(&scoped, &mut table, &stable, &seed);
        let out = rw.rewrite_json(&json!({
            "subject": "default",
            "endpointType": "default",
            "callbackUri": "https://bot.contoso.com/api/calls"
        }));
        assert_eq!(out["subject"], "weekly");
        assert_eq!(out["endpointType"], "default", "another member keeps its value");
        assert_eq!(out["callbackUri"], "https://127.0.0.1:9/cb");
        // list items stay under their list's member
        let mut p = Pairing::default();
        p.json(
            &json!({"requestedModalities": ["audio"]}),
            &json!({"requestedModalities": ["video"]}),
            None,
        );
        for (k, r, l) in &p.strings {
            table.bind_string(k, r, l);
        }
        let mut rw = Rewriter::new(&scoped, &mut table, &stable, &seed);
        let out = rw.rewrite_json(&json!({"requestedModalities": ["audio"], "mediaType": "audio"}));
        assert_eq!(out, json!({"requestedModalities": ["video"], "mediaType": "audio"}));
    }

    #[test]
    fn minting_a_thread_with_nothing_to_vary_still_changes_it() {
        let seed = Seed::derive([b"t".as_slice()]);
        for t in ["19:meeting_@thread.v2", "19:_-_@thread.v2"] {
            let c = Canon::Thread(t.into());
            let mut table = IdTable::default();
            let (b, fresh) = table.mint(&seed, &c);
            assert!(fresh);
            assert_ne!(b.live, c, "{t}");
        }
    }

    #[test]
    fn bijection_conflicts_are_refused() {
        let mut t = IdTable::default();
        let a = Canon::Guid(1);
        let b = Canon::Guid(2);
        let c = Canon::Guid(3);
        assert_eq!(t.bind(a.clone(), "", b.clone(), ""), BindOutcome::New);
        assert_eq!(t.bind(a.clone(), "", b.clone(), ""), BindOutcome::Same);
        assert_eq!(t.bind(a, "", c.clone(), ""), BindOutcome::Conflict);
        assert_eq!(t.bind(c, "", b, ""), BindOutcome::Conflict);
    }

    proptest! {
        #[test]
        fn guid_render_roundtrips(v in any::<u128>(), upper in any::<bool>(), dashed in any::<bool>()) {
            let text = render_guid(v, upper, dashed);
            let toks = scan(&text);
            prop_assert_eq!(toks.len(), 1);
            prop_assert_eq!(&toks[0].canon, &Canon::Guid(v));
            prop_assert_eq!(render(&toks[0].canon, toks[0].form), text);
        }

        #[test]
        fn scan_never_panics_and_tokens_are_ordered(s in ".{0,200}") {
            let toks = scan(&s);
            let mut last = 0;
            for t in toks {
                prop_assert!(t.start >= last && t.end > t.start && s.is_char_boundary(t.start) && s.is_char_boundary(t.end));
                last = t.end;
            }
        }

        #[test]
        fn rewriting_with_an_identity_table_changes_nothing(v in any::<u128>(), pre in "[ a-z/:=]{0,10}") {
            let g = render_guid(v, false, true);
            let s = format!("{pre}{g}");
            let mut table = IdTable::default();
            table.bind(Canon::Guid(v), &g, Canon::Guid(v), &g);
            let stable = HashSet::new();
            let scoped = IdTable::default();
            let seed = Seed::derive([b"p".as_slice()]);
            let mut rw = Rewriter::new(&scoped, &mut table, &stable, &seed);
            let out = rw.rewrite_str(&s).into_owned();
            prop_assert_eq!(out, s);
        }
    }
}
