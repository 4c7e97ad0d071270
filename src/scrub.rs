//! `--scrub-pii`: display names, phone numbers and email addresses are replaced at
//! record time with consistent pseudonyms — the same value gets the same pseudonym
//! everywhere in a recording, so a replay still sees one person as one person:
//! `Person 1`, `+99900000001` (the original's length, so it still lexes as a phone id)
//! and `person1@example.com`. The mapping lives in memory only, never in the store.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

use crate::cassette::{Body, Event, Response};
use crate::sync::lock;

/// Finds byte ranges to replace in a string.
type Finder = fn(&str) -> Vec<(usize, usize)>;

#[derive(Default)]
struct Pseudonyms {
    names: HashMap<String, String>,
    phones: HashMap<String, String>,
    emails: HashMap<String, String>,
}

fn pseudonym(map: &mut HashMap<String, String>, original: &str, make: impl FnOnce(usize) -> String) -> String {
    let n = map.len() + 1;
    map.entry(original.to_string()).or_insert_with(|| make(n)).clone()
}

/// Members whose string value is a person's name.
fn is_name_member(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    k.ends_with("displayname") || k == "givenname" || k == "surname"
}

fn is_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-')
}

/// Byte ranges of email addresses (`19:x@thread.v2` thread ids are not addresses).
fn find_emails(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (at, _) in s.match_indices('@') {
        let mut start = at;
        while start > 0 && is_local(b[start - 1]) {
            start -= 1;
        }
        let mut end = at + 1;
        while end < b.len() && is_domain(b[end]) {
            end += 1;
        }
        let domain = s.get(at + 1..end).unwrap_or_default().trim_end_matches('.');
        let end = at + 1 + domain.len();
        let tld = domain.rsplit('.').next().unwrap_or_default();
        let ok = start < at
            && domain.contains('.')
            && tld.len() >= 2
            && tld.bytes().all(|c| c.is_ascii_alphabetic())
            && (start == 0 || b[start - 1] != b':')
            && out.last().is_none_or(|&(_, e)| e <= start);
        if ok {
            out.push((start, end));
        }
    }
    out
}

/// Byte ranges of E.164 numbers: `+` and 7 to 15 digits.
fn find_phones(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    for (plus, _) in s.match_indices('+') {
        let mut end = plus + 1;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        let digits = end - plus - 1;
        let boundary = plus == 0 || !b[plus - 1].is_ascii_alphanumeric();
        if boundary && (7..=15).contains(&digits) && b.get(end).is_none_or(|c| !c.is_ascii_alphanumeric()) {
            out.push((plus, end));
        }
    }
    out
}

/// Consistent pseudonyms for one recording.
#[derive(Default)]
pub struct Scrubber {
    seen: Mutex<Pseudonyms>,
}

impl Scrubber {
    pub fn new() -> Scrubber {
        Scrubber::default()
    }

    /// Phone numbers and emails inside a string.
    pub fn string(&self, s: &str) -> Option<String> {
        let mut p = lock(&self.seen);
        let mut cur: Option<String> = None;
        let finders: [Finder; 2] = [find_emails, find_phones];
        for (i, find) in finders.into_iter().enumerate() {
            let text = cur.as_deref().unwrap_or(s);
            let found = find(text);
            if found.is_empty() {
                continue;
            }
            let mut out = String::with_capacity(text.len());
            let mut last = 0;
            for (a, b) in found {
                let orig = text.get(a..b).unwrap_or_default();
                let fake = if i == 0 {
                    pseudonym(&mut p.emails, orig, |n| format!("person{n}@example.com"))
                } else {
                    let digits = orig.len() - 1;
                    pseudonym(&mut p.phones, orig, |n| {
                        format!("+999{n:0>width$}", width = digits.saturating_sub(3))
                    })
                };
                out.push_str(text.get(last..a).unwrap_or_default());
                out.push_str(&fake);
                last = b;
            }
            out.push_str(text.get(last..).unwrap_or_default());
            cur = Some(out);
        }
        cur
    }

    fn in_place(&self, s: &mut String) {
        if let Some(r) = self.string(s) {
            *s = r;
        }
    }

    fn json(&self, v: &mut Value) {
        match v {
            Value::Object(o) => {
                for (k, x) in o.iter_mut() {
                    match x {
                        Value::String(s) if is_name_member(k) && !s.is_empty() => {
                            *s = pseudonym(&mut lock(&self.seen).names, s, |n| format!("Person {n}"));
                        }
                        other => self.json(other),
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.json(x)),
            Value::String(s) => self.in_place(s),
            _ => {}
        }
    }

    fn body(&self, b: &mut Body) {
        match b {
            Body::Json(v) => self.json(v),
            Body::Text(s) => self.in_place(s),
            _ => {}
        }
    }

    /// Scrubs a whole event in place (before redaction, before storing).
    pub fn event(&self, e: &mut Event) {
        self.in_place(&mut e.request.uri);
        for (_, v) in e.request.headers.iter_mut() {
            self.in_place(v);
        }
        self.body(&mut e.request.body);
        self.response(&mut e.response);
    }

    /// Scrubs a response in place.
    pub fn response(&self, r: &mut Response) {
        for (_, v) in r.headers.iter_mut() {
            self.in_place(v);
        }
        self.body(&mut r.body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pseudonyms_are_consistent() {
        let s = Scrubber::new();
        let mut a = json!({"user": {"displayName": "John Doe", "id": "x"}, "phone": {"id": "+14255550100"},
            "mail": "john.doe@contoso.com", "thread": "19:meeting_abc@thread.v2", "t": "19:x@thread.skype",
            "msg": "participant 4:+14255550100 (john.doe@contoso.com) left"});
        s.json(&mut a);
        assert_eq!(
            a,
            json!({"user": {"displayName": "Person 1", "id": "x"}, "phone": {"id": "+99900000001"},
                "mail": "person1@example.com", "thread": "19:meeting_abc@thread.v2", "t": "19:x@thread.skype",
                "msg": "participant 4:+99900000001 (person1@example.com) left"})
        );
        let mut b = json!({"displayName": "John Doe", "other": {"displayName": "Jane"}});
        s.json(&mut b);
        assert_eq!(
            b,
            json!({"displayName": "Person 1", "other": {"displayName": "Person 2"}})
        );
        assert_eq!(s.string("call +1234 or 2026-01-01"), None, "too short, not a phone");
    }
}
