//! Secret rules: what is redacted before anything reaches the store or a log, and the
//! scan that refuses to export or import a cassette in which a secret survived — one
//! set of rules for both, so the scan finds exactly what redaction would change.
//!
//! Redacted: credential headers (`Authorization`, `Cookie`, `Set-Cookie`, any header
//! named like key/token/secret/password), JSON members named like
//! token/secret/password/key, and in every string (header values, request targets,
//! JSON strings, text and form bodies) JWTs, URL userinfo, secret parameters and
//! connection-string keys (`text`). User rules add headers, members and regexes.

mod text;

use std::borrow::Cow;

use serde_json::Value;

use crate::cassette::{Body, Event, Headers, Meta, Response};

use text::{contains_any, is_one_of};
pub use text::{find_jwts, is_secret_param};

/// What a redacted value becomes.
pub const REDACTED: &str = "REDACTED";

/// Whether a header (any case) is a credential as a whole.
pub fn is_secret_header(name: &str) -> bool {
    contains_any(
        name,
        &[
            "authorization",
            "cookie",
            "key",
            "token",
            "secret",
            "password",
            "credential",
            "signature",
        ],
    )
}

/// Whether one of the words of a member name is in `of` (lowercase): the words of
/// `recordingAccessToken` are recording, access, token (runs of ASCII letters and
/// digits, split where a capital follows a small letter or a digit).
fn has_word(name: &str, of: &[&str]) -> bool {
    let b = name.as_bytes();
    // a word starts and ends at ASCII bytes: always a char boundary
    let is_one = |w: Option<&str>| w.is_some_and(|w| is_one_of(w, of));
    let mut start = None;
    let mut prev_lower = false;
    for (i, &c) in b.iter().enumerate() {
        let alnum = c.is_ascii_alphanumeric();
        if !alnum || (c.is_ascii_uppercase() && prev_lower) {
            if let Some(s) = start.take() {
                if is_one(name.get(s..i)) {
                    return true;
                }
            }
        }
        if alnum && start.is_none() {
            start = Some(i);
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
    }
    start.is_some_and(|s| is_one(name.get(s..)))
}

/// Whether a JSON member (any case) holds a secret: named like token, secret,
/// password, credential or key (`privateKey`, `apiKey`, `recordingAccessToken`).
pub fn is_secret_member(name: &str) -> bool {
    const PARTS: &[&str] = &[
        "token",
        "secret",
        "password",
        "passwd",
        "credential",
        "apikey",
        "privatekey",
        "accountkey",
        "accesskey",
        "signature",
    ];
    contains_any(name, PARTS) || has_word(name, &["key", "keys", "pwd", "sig"])
}

/// The built-in rules applied to one string.
fn builtin_str(s: &str) -> Option<String> {
    text::scrub(s)
}

/// A request target (or any URL) as logs, miss diffs and reports may show it.
pub fn shown_uri(u: &str) -> Cow<'_, str> {
    match builtin_str(u) {
        Some(s) => Cow::Owned(s),
        None => Cow::Borrowed(u),
    }
}

/// Free text (a body, an error) as logs and reports may show it.
pub fn shown_text(s: &str) -> Cow<'_, str> {
    shown_uri(s)
}

/// A JSON value as logs and reports may show it.
pub fn shown_json(v: &Value) -> Value {
    let mut v = v.clone();
    Rules::default().json(&mut v);
    v
}

/// The redaction rules: the built-in ones plus the user's.
#[derive(Debug, Default, Clone)]
pub struct Rules {
    /// `--redact-header` and `--redact-json` names, matched in any case.
    headers: Vec<String>,
    members: Vec<String>,
    regexes: Vec<regex::Regex>,
}

impl Rules {
    /// Built-in rules plus `--redact-header`, `--redact-json` and `--redact-regex`.
    pub fn new(headers: &[String], members: &[String], regexes: &[String]) -> Result<Rules, String> {
        let regexes = regexes
            .iter()
            .map(|r| regex::Regex::new(r).map_err(|e| format!("--redact-regex `{r}`: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Rules {
            headers: headers.to_vec(),
            members: members.to_vec(),
            regexes,
        })
    }

    /// One string, all rules.
    pub fn string(&self, s: &str) -> Option<String> {
        let mut cur = builtin_str(s);
        for re in &self.regexes {
            let text = cur.as_deref().unwrap_or(s);
            if let Some(r) = redact_regex(re, text) {
                cur = Some(r);
            }
        }
        cur
    }

    fn string_in_place(&self, s: &mut String) {
        if let Some(r) = self.string(s) {
            *s = r;
        }
    }

    /// Credential headers entirely (keeping an auth scheme), the string rules in any other.
    pub fn headers(&self, h: &mut Headers) {
        for (name, value) in h.iter_mut() {
            if is_secret_header(name) || is_one_of(name, &self.headers) {
                *value = match value.split_once(' ') {
                    Some((scheme, _)) if contains_any(name, &["authorization"]) => format!("{scheme} {REDACTED}"),
                    _ => REDACTED.to_string(),
                };
            } else {
                self.string_in_place(value);
            }
        }
    }

    /// Secret members and the string rules anywhere in a JSON value.
    pub fn json(&self, v: &mut Value) {
        match v {
            Value::Object(o) => {
                for (k, x) in o.iter_mut() {
                    let user = is_one_of(k, &self.members);
                    let builtin = (x.is_string() || x.is_number()) && is_secret_member(k);
                    if (user && !x.is_null()) || builtin {
                        if x.as_str() != Some(REDACTED) {
                            *x = Value::String(REDACTED.to_string());
                        }
                    } else {
                        self.json(x);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.json(x)),
            Value::String(s) => self.string_in_place(s),
            _ => {}
        }
    }

    pub fn body(&self, b: &mut Body) {
        match b {
            Body::Json(v) => self.json(v),
            Body::Text(s) => self.string_in_place(s),
            Body::Empty | Body::Bytes(_) => {}
        }
    }

    /// Redacts a whole event in place; called on every event before it is stored.
    pub fn event(&self, e: &mut Event) {
        self.string_in_place(&mut e.request.uri);
        self.headers(&mut e.request.headers);
        self.body(&mut e.request.body);
        self.response(&mut e.response);
    }

    /// Redacts a response in place.
    pub fn response(&self, r: &mut Response) {
        self.headers(&mut r.headers);
        self.body(&mut r.body);
        if let Some(err) = &mut r.error {
            self.string_in_place(err);
        }
    }

    /// Redacts a cassette's metadata (an upstream URL's userinfo or query).
    pub fn meta(&self, m: &mut Meta) {
        self.string_in_place(&mut m.upstream);
        self.string_in_place(&mut m.recorded_at);
    }

    /// Where a secret survives in `e`: what redaction would change, named.
    pub fn findings(&self, e: &Event) -> Vec<String> {
        let mut r = e.clone();
        self.event(&mut r);
        let at = format!("event {}", e.seq);
        let mut out = Vec::new();
        if r.request.uri != e.request.uri {
            out.push(format!("{at}: a secret in the request target"));
        }
        for (side, a, b) in [
            ("request", &e.request.headers, &r.request.headers),
            ("response", &e.response.headers, &r.response.headers),
        ] {
            for ((n, v), (_, w)) in a.iter().zip(b) {
                if v != w {
                    out.push(format!("{at}: {side} header `{n}`"));
                }
            }
        }
        for (side, a, b) in [
            ("request", &e.request.body, &r.request.body),
            ("response", &e.response.body, &r.response.body),
        ] {
            if let Some(f) = body_difference(a, b, side) {
                out.push(format!("{at}: {f}"));
            }
        }
        if r.response.error != e.response.error {
            out.push(format!("{at}: a secret in the recorded error"));
        }
        out
    }

    /// Where a secret survives in a cassette's metadata.
    pub fn meta_findings(&self, m: &Meta) -> Vec<String> {
        let mut r = m.clone();
        self.meta(&mut r);
        if r == *m {
            Vec::new()
        } else {
            vec!["a secret in the cassette's upstream URL".to_string()]
        }
    }
}

/// Every match of `re` (or of its groups, when it has some) replaced.
fn redact_regex(re: &regex::Regex, s: &str) -> Option<String> {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for caps in re.captures_iter(s) {
        if caps.len() > 1 {
            ranges.extend(caps.iter().skip(1).flatten().map(|m| (m.start(), m.end())));
        } else if let Some(m) = caps.get(0) {
            ranges.push((m.start(), m.end()));
        }
    }
    ranges.retain(|&(a, b)| b > a && s.get(a..b) != Some(REDACTED));
    if ranges.is_empty() {
        return None;
    }
    ranges.sort_unstable();
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for (a, b) in ranges {
        if a < last {
            continue;
        }
        out.push_str(s.get(last..a).unwrap_or_default());
        out.push_str(REDACTED);
        last = b;
    }
    out.push_str(s.get(last..).unwrap_or_default());
    (out != s).then_some(out)
}

fn body_difference(a: &Body, b: &Body, side: &str) -> Option<String> {
    match (a, b) {
        (Body::Json(x), Body::Json(y)) => json_difference(x, y, side),
        (x, y) if x != y => Some(format!("a secret in the {side} text")),
        _ => None,
    }
}

/// The path of the first place two JSON values differ.
fn json_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => x
            .iter()
            .zip(y.iter())
            .find_map(|((k, v), (_, w))| json_difference(v, w, &format!("{path}.{k}"))),
        (Value::Array(x), Value::Array(y)) => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (v, w))| json_difference(v, w, &format!("{path}[{i}]"))),
        (x, y) if x != y => Some(format!("member `{path}`")),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
