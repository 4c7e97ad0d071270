//! Secret rules: what is redacted before anything reaches the store, and the scan that
//! refuses to export a cassette in which a secret survived.
//!
//! Redacted: credential headers (`Authorization`, `Cookie`, `Set-Cookie`, ...), JWT-looking
//! strings anywhere, JSON members named like token/secret/password, and query
//! parameters such as `sig` or `token`.

use serde_json::Value;

use crate::cassette::{Body, Cassette, Event, Headers};

/// What a redacted value becomes.
pub const REDACTED: &str = "REDACTED";

const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-ms-client-secret",
    "ocp-apim-subscription-key",
];

const SECRET_QUERY: &[&str] = &[
    "sig",
    "signature",
    "token",
    "access_token",
    "id_token",
    "refresh_token",
    "code",
    "client_secret",
    "password",
    "key",
];

fn is_secret_member(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "token",
        "secret",
        "password",
        "passwd",
        "apikey",
        "api_key",
        "credential",
    ]
    .iter()
    .any(|p| k.contains(p))
}

fn is_b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// Byte ranges of JWT-looking strings: `eyJ...` . `...` . `...`.
pub fn find_jwts(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = s.get(i..).and_then(|t| t.find("eyJ")) {
        let start = i + off;
        let mut j = start;
        let mut parts = 0;
        let mut part_len = 0;
        while j < b.len() {
            if is_b64url(b[j]) {
                part_len += 1;
            } else if b[j] == b'.' && part_len >= 4 && parts < 2 {
                parts += 1;
                part_len = 0;
            } else {
                break;
            }
            j += 1;
        }
        let boundary = start == 0 || !is_b64url(b[start - 1]);
        if parts == 2 && boundary && j - start >= 20 {
            out.push((start, j));
            i = j;
        } else {
            i = start + 3;
        }
    }
    out
}

/// Replaces every JWT-looking string in `s`.
pub fn scrub_str(s: &str) -> Option<String> {
    let found = find_jwts(s);
    if found.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for (a, b) in found {
        out.push_str(&s[last..a]);
        out.push_str(REDACTED);
        last = b;
    }
    out.push_str(&s[last..]);
    Some(out)
}

/// Redacts credential headers entirely and JWTs inside any other header.
pub fn headers(h: &mut Headers) {
    for (name, value) in h.iter_mut() {
        let n = name.to_ascii_lowercase();
        if SECRET_HEADERS.contains(&n.as_str()) {
            *value = match value.split_once(' ') {
                Some((scheme, _)) if n.ends_with("authorization") => format!("{scheme} {REDACTED}"),
                _ => REDACTED.to_string(),
            };
        } else if let Some(s) = scrub_str(value) {
            *value = s;
        }
    }
}

/// Redacts secret query parameters and JWTs in a request target.
pub fn uri(u: &str) -> String {
    let scrubbed = scrub_str(u).unwrap_or_else(|| u.to_string());
    let Some((path, query)) = scrubbed.split_once('?') else {
        return scrubbed;
    };
    let q: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if SECRET_QUERY.contains(&k.to_ascii_lowercase().as_str()) => {
                format!("{k}={REDACTED}")
            }
            _ => kv.to_string(),
        })
        .collect();
    format!("{path}?{}", q.join("&"))
}

/// Redacts secret-named members and JWTs anywhere in a JSON value.
pub fn json(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if is_secret_member(k) && (x.is_string() || x.is_number()) {
                    *x = Value::String(REDACTED.to_string());
                } else {
                    json(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(json),
        Value::String(s) => {
            if let Some(r) = scrub_str(s) {
                *s = r;
            }
        }
        _ => {}
    }
}

fn body(b: &mut Body) {
    match b {
        Body::Json(v) => json(v),
        Body::Text(s) => {
            if let Some(r) = scrub_str(s) {
                *s = r;
            }
        }
        Body::Empty | Body::Bytes(_) => {}
    }
}

/// Redacts a whole event in place; called on every event before it is stored.
pub fn event(e: &mut Event) {
    e.request.uri = uri(&e.request.uri);
    headers(&mut e.request.headers);
    body(&mut e.request.body);
    headers(&mut e.response.headers);
    body(&mut e.response.body);
    if let Some(err) = &mut e.response.error {
        if let Some(r) = scrub_str(err) {
            *err = r;
        }
    }
}

fn json_finding(v: &Value, path: &str) -> Option<String> {
    match v {
        Value::Object(o) => o.iter().find_map(|(k, x)| {
            if is_secret_member(k) && x.as_str().is_some_and(|s| s != REDACTED) {
                Some(format!("member `{path}.{k}`"))
            } else {
                json_finding(x, &format!("{path}.{k}"))
            }
        }),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| json_finding(x, &format!("{path}[{i}]"))),
        Value::String(s) => (!find_jwts(s).is_empty()).then(|| format!("a JWT at `{path}`")),
        _ => None,
    }
}

/// The first secret that survived in a cassette, if any.
pub fn find_secret(c: &Cassette) -> Option<String> {
    for e in &c.events {
        let at = format!("event {}", e.seq);
        for (n, v) in e.request.headers.iter().chain(&e.response.headers) {
            let lower = n.to_ascii_lowercase();
            let clean = v == REDACTED || v.ends_with(&format!(" {REDACTED}"));
            if SECRET_HEADERS.contains(&lower.as_str()) && !clean {
                return Some(format!("{at}: header `{n}`"));
            }
            if !find_jwts(v).is_empty() {
                return Some(format!("{at}: a JWT in header `{n}`"));
            }
        }
        if uri(&e.request.uri) != e.request.uri {
            return Some(format!("{at}: a secret in the request uri"));
        }
        for (side, b) in [("request", &e.request.body), ("response", &e.response.body)] {
            let found = match b {
                Body::Json(v) => json_finding(v, side),
                Body::Text(s) => (!find_jwts(s).is_empty()).then(|| format!("a JWT in the {side} text")),
                _ => None,
            };
            if let Some(f) = found {
                return Some(format!("{at}: {f}"));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJhcHAiLCJ0aWQiOiJ0In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ";

    #[test]
    fn jwts_are_found_inside_text() {
        let s = format!("Bearer {JWT}, more");
        assert_eq!(scrub_str(&s).unwrap(), "Bearer REDACTED, more");
        assert!(find_jwts("eyJ alone").is_empty());
        assert!(find_jwts("keyJabc.def.ghi").is_empty());
    }

    #[test]
    fn headers_members_and_query() {
        let mut h = vec![
            ("Authorization".to_string(), format!("Bearer {JWT}")),
            ("Set-Cookie".to_string(), "a=b".to_string()),
            ("x-other".to_string(), JWT.to_string()),
        ];
        headers(&mut h);
        assert_eq!(h[0].1, "Bearer REDACTED");
        assert_eq!(h[1].1, "REDACTED");
        assert_eq!(h[2].1, "REDACTED");
        let mut v = json!({"recordingAccessToken": "abc", "nested": [{"clientSecret": "s"}], "id": "x"});
        json(&mut v);
        assert_eq!(
            v,
            json!({"recordingAccessToken": "REDACTED", "nested": [{"clientSecret": "REDACTED"}], "id": "x"})
        );
        assert_eq!(uri("/a?sig=abc&x=1&Token=t"), "/a?sig=REDACTED&x=1&Token=REDACTED");
    }
}
