//! Secrets inside free text — a header value, a request target, a JSON string, a text
//! or form body: JWT-looking strings, URL userinfo, and secret parameters
//! (`sig`, `code`, `token`, `client_secret`, connection-string keys, ...) wherever a
//! `name=value` pair starts a string or follows `?`, `&`, `;` or `#`.

use super::REDACTED;

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
        while let Some(&c) = b.get(j) {
            if is_b64url(c) {
                part_len += 1;
            } else if c == b'.' && part_len >= 4 && parts < 2 {
                parts += 1;
                part_len = 0;
            } else {
                break;
            }
            j += 1;
        }
        let boundary = start == 0 || b.get(start - 1).is_none_or(|&c| !is_b64url(c));
        if parts == 2 && part_len > 0 && boundary && j - start >= 20 {
            out.push((start, j));
            i = j;
        } else {
            i = start + 3;
        }
    }
    out
}

/// Replaces the byte ranges `found` (sorted, disjoint) of `s`.
fn splice(s: &str, found: &[(usize, usize)]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for &(a, b) in found {
        out.push_str(s.get(last..a).unwrap_or_default());
        out.push_str(REDACTED);
        last = b;
    }
    out.push_str(s.get(last..).unwrap_or_default());
    out
}

/// `scheme://user:password@host`: the userinfo's byte range.
fn find_userinfo(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(off) = s.get(from..).and_then(|t| t.find("://")) {
        let start = from + off + 3;
        let mut end = start;
        while let Some(&c) = b.get(end) {
            if matches!(c, b'/' | b'?' | b'#' | b'@')
                || c.is_ascii_whitespace()
                || matches!(c, b'"' | b'\'' | b'<' | b'>')
            {
                break;
            }
            end += 1;
        }
        if b.get(end) == Some(&b'@') && end > start && s.get(start..end) != Some(REDACTED) {
            out.push((start, end));
        }
        from = start;
    }
    out
}

/// Whether a parameter named `name` (any case) carries a secret.
pub fn is_secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    const EXACT: &[&str] = &[
        "sig",
        "code",
        "pwd",
        "sas",
        "assertion",
        "client_assertion",
        "key",
        "api-key",
        "apikey",
        "secret",
    ];
    EXACT.contains(&n.as_str())
        || ["token", "secret", "password", "passwd", "signature", "credential"]
            .iter()
            .any(|p| n.contains(p))
        || n.ends_with("key")
        || n.ends_with("_key")
        || n.ends_with("-key")
}

/// Connection-string keys whose values run to the next `;` (they may hold `=` and `&`).
fn is_connection_key(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "sharedaccesssignature",
        "accountkey",
        "sharedaccesskey",
        "password",
        "pwd",
    ]
    .contains(&n.as_str())
}

fn is_name_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'%' | b'[' | b']' | b'$')
}

fn ends_value(c: u8, connection: bool) -> bool {
    if connection {
        c == b';' || c.is_ascii_whitespace() || matches!(c, b'"' | b'\'')
    } else {
        matches!(c, b'&' | b'#' | b';' | b'"' | b'\'' | b'<' | b'>' | b',') || c.is_ascii_whitespace()
    }
}

/// Byte ranges of secret parameter values.
fn find_params(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    // every parameter has its `=`: most strings (paths, ids, names) have none
    if !b.contains(&b'=') {
        return out;
    }
    let mut i = 0;
    while i < b.len() {
        let boundary = i == 0 || matches!(b[i - 1], b'?' | b'&' | b';' | b'#');
        if !boundary || !is_name_byte(b[i]) {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < b.len() && is_name_byte(b[j]) {
            j += 1;
        }
        if b.get(j) != Some(&b'=') {
            i = j.max(i + 1);
            continue;
        }
        let name = s.get(i..j).unwrap_or_default();
        let connection = is_connection_key(name);
        let start = j + 1;
        let mut end = start;
        while end < b.len() && !ends_value(b[end], connection) {
            end += 1;
        }
        let value = s.get(start..end).unwrap_or_default();
        if (connection || is_secret_param(name)) && !value.is_empty() && value != REDACTED {
            out.push((start, end));
        }
        i = end.max(i + 1);
    }
    out
}

/// The built-in text rules, applied in turn: JWTs, URL userinfo, secret parameters.
pub fn scrub(s: &str) -> Option<String> {
    let mut cur: Option<String> = None;
    for find in [find_jwts as fn(&str) -> Vec<(usize, usize)>, find_userinfo, find_params] {
        let text = cur.as_deref().unwrap_or(s);
        let found = find(text);
        if !found.is_empty() {
            cur = Some(splice(text, &found));
        }
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_anywhere() {
        let cases = [
            ("/a?sig=abc&x=1&Token=t", "/a?sig=REDACTED&x=1&Token=REDACTED"),
            (
                "https://x.blob.core.windows.net/c/b.wav?sv=2020-08-04&se=2026&sig=AbC%2Fd%3D&sp=r",
                "https://x.blob.core.windows.net/c/b.wav?sv=2020-08-04&se=2026&sig=REDACTED&sp=r",
            ),
            (
                "grant_type=client_credentials&client_id=app&client_secret=s3cr3t&scope=x",
                "grant_type=client_credentials&client_id=app&client_secret=REDACTED&scope=x",
            ),
            (
                "DefaultEndpointsProtocol=https;AccountName=acc;AccountKey=AbC+/d==;EndpointSuffix=core.windows.net",
                "DefaultEndpointsProtocol=https;AccountName=acc;AccountKey=REDACTED;EndpointSuffix=core.windows.net",
            ),
            (
                "Endpoint=sb://ns/;SharedAccessKeyName=Root;SharedAccessKey=k=1&2",
                "Endpoint=sb://ns/;SharedAccessKeyName=Root;SharedAccessKey=REDACTED",
            ),
            (
                "https://bot/cb#access_token=abc&state=1",
                "https://bot/cb#access_token=REDACTED&state=1",
            ),
            (
                "https://user:pa55@graph.example/v1.0",
                "https://REDACTED@graph.example/v1.0",
            ),
            ("/api/calls?code=fn-key", "/api/calls?code=REDACTED"),
        ];
        for (input, want) in cases {
            assert_eq!(scrub(input).as_deref(), Some(want), "{input}");
            assert_eq!(scrub(want), None, "idempotent: {want}");
        }
        for clean in [
            "/v1.0/communications/calls?$top=1",
            "error code 5",
            "DiagCode: 412#10073",
            "a=b",
        ] {
            assert_eq!(scrub(clean), None, "{clean}");
        }
    }

    #[test]
    fn jwts_are_found_inside_text() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJhcHAiLCJ0aWQiOiJ0In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
        assert_eq!(scrub(&format!("Bearer {jwt}, more")).unwrap(), "Bearer REDACTED, more");
        assert!(find_jwts("eyJ alone").is_empty());
        assert!(find_jwts("keyJabc.def.ghi").is_empty());
    }
}
