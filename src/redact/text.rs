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

/// Whether `hay` contains one of `needles` (lowercase ASCII) in any case: one pass,
/// each needle tried where its first letter is. Names and parameters are short: a
/// searcher's set-up (`str::contains`) costs more than this whole search.
pub(super) fn contains_any(hay: &str, needles: &[&str]) -> bool {
    // the needles' first bytes as bits of `byte & 31`: a byte whose bit is clear starts
    // none of them (one that is set is compared in full)
    let firsts = needles
        .iter()
        .filter_map(|n| n.as_bytes().first())
        .fold(0u32, |m, &c| m | 1 << (c & 31));
    let h = hay.as_bytes();
    (0..h.len()).any(|i| {
        let (c, rest) = (h[i].to_ascii_lowercase(), &h[i..]);
        firsts & 1 << (c & 31) != 0
            && needles.iter().any(|n| {
                let n = n.as_bytes();
                n.first() == Some(&c) && rest.get(..n.len()).is_some_and(|r| r.eq_ignore_ascii_case(n))
            })
    })
}

/// Whether `name` is one of `names` in any (ASCII) case.
pub(super) fn is_one_of<S: AsRef<str>>(name: &str, names: &[S]) -> bool {
    names.iter().any(|n| n.as_ref().eq_ignore_ascii_case(name))
}

/// Whether a parameter named `name` (any case) carries a secret.
pub fn is_secret_param(name: &str) -> bool {
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
    let ends_key = name.len() >= 3 && name.as_bytes()[name.len() - 3..].eq_ignore_ascii_case(b"key");
    is_one_of(name, EXACT)
        || contains_any(
            name,
            &["token", "secret", "password", "passwd", "signature", "credential"],
        )
        || ends_key
}

/// Connection-string keys whose values run to the next `;` (they may hold `=` and `&`).
fn is_connection_key(name: &str) -> bool {
    is_one_of(
        name,
        &[
            "sharedaccesssignature",
            "accountkey",
            "sharedaccesskey",
            "password",
            "pwd",
        ],
    )
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

/// Whether `b` holds what one of the text rules starts at: `eyJ` (a JWT), `://` (a
/// URL's userinfo) or `=` (a parameter). Most strings (ids, names, paths) hold none,
/// and this one pass is all they cost.
fn may_hold_secret(b: &[u8]) -> bool {
    b.iter().enumerate().any(|(i, &c)| match c {
        b'=' => true,
        b'e' => b.get(i + 1..i + 3) == Some(b"yJ"),
        b':' => b.get(i + 1..i + 3) == Some(b"//"),
        _ => false,
    })
}

/// The built-in text rules, applied in turn: JWTs, URL userinfo, secret parameters.
pub fn scrub(s: &str) -> Option<String> {
    if !may_hold_secret(s.as_bytes()) {
        return None;
    }
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

    #[test]
    fn the_pre_checks_pass_every_rule_they_stand_for() {
        assert_eq!(scrub("https://u:p@h/x").unwrap(), "https://REDACTED@h/x");
        assert_eq!(scrub("a=1;pwd=x").unwrap(), "a=1;pwd=REDACTED");
        for plain in [
            "",
            "e",
            "ey",
            "a:/",
            "a:",
            "278405a3-f568-4b3e-b684-009193463064",
            "/communications/calls",
        ] {
            assert_eq!(scrub(plain), None, "{plain}");
        }
        assert!(contains_any("X-API-Token", &["token"]) && contains_any("tok", &["t", "token"]));
        assert!(!contains_any("tok", &["token"]) && !contains_any("", &["token"]));
        assert!(is_secret_param("Client_Secret") && is_secret_param("SAS") && is_secret_param("x-KEY"));
        assert!(!is_secret_param("keyboard") && !is_secret_param("ke"));
    }
}
