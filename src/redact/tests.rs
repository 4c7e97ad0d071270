//! Redaction and scan tests: every planted secret of issue 8 is redacted, and the scan
//! names what redaction would change.

use serde_json::json;

use super::*;
use crate::cassette::{Kind, Request, Response};

const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJhcHAiLCJ0aWQiOiJ0In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ";

fn pairs(v: &[(&str, &str)]) -> Headers {
    v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn credential_headers_go_and_urls_inside_headers_are_scrubbed() {
    let mut h = pairs(&[
        ("Authorization", &format!("Bearer {JWT}")),
        ("Set-Cookie", "a=b"),
        ("x-api-key", "k1"),
        ("api-key", "k2"),
        ("x-functions-key", "k3"),
        ("Ocp-Apim-Subscription-Key", "k4"),
        ("x-other", JWT),
        ("location", "https://graph/x?sv=1&sig=abc&code=c"),
        ("x-plain", "hello"),
    ]);
    Rules::default().headers(&mut h);
    let values: Vec<&str> = h.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(
        values,
        vec![
            "Bearer REDACTED",
            "REDACTED",
            "REDACTED",
            "REDACTED",
            "REDACTED",
            "REDACTED",
            "REDACTED",
            "https://graph/x?sv=1&sig=REDACTED&code=REDACTED",
            "hello"
        ]
    );
}

#[test]
fn members_named_like_secrets() {
    let mut v = json!({
        "recordingAccessToken": "abc", "nested": [{"clientSecret": "s"}], "privateKey": "pk",
        "apiKey": 1, "key": "k", "id": "x", "tokenMeetingInfo": {"token": "t"}, "monkey": "m",
        "recordingLocation": "https://acc.blob.core.windows.net/r/a.wav?sig=SAS&se=1",
        "connection": "AccountName=a;AccountKey=ZZZ;EndpointSuffix=x"
    });
    Rules::default().json(&mut v);
    assert_eq!(
        v,
        json!({
            "recordingAccessToken": "REDACTED", "nested": [{"clientSecret": "REDACTED"}], "privateKey": "REDACTED",
            "apiKey": "REDACTED", "key": "REDACTED", "id": "x", "tokenMeetingInfo": {"token": "REDACTED"}, "monkey": "m",
            "recordingLocation": "https://acc.blob.core.windows.net/r/a.wav?sig=REDACTED&se=1",
            "connection": "AccountName=a;AccountKey=REDACTED;EndpointSuffix=x"
        })
    );
}

#[test]
fn member_words_split_at_case_digits_and_punctuation() {
    let long = format!("{}Token", "a".repeat(70));
    for secret in [
        "primaryKey",
        "KEY",
        "api_keys",
        "x2Key",
        "userSig",
        "\u{e9}Key",
        "db-pwd",
        long.as_str(),
    ] {
        assert!(is_secret_member(secret), "{secret}");
    }
    for plain in ["monkey", "sigma", "keyboardLayout", "Keynote", "signal", "\u{e9}", ""] {
        assert!(!is_secret_member(plain), "{plain}");
    }
    assert!(is_secret_header("X-Api-KEY") && is_secret_header(&format!("{}-token", "x".repeat(80))));
    assert!(!is_secret_header("Content-Type"));
}

#[test]
fn user_rules() {
    let rules = Rules::new(
        &["X-Tenant-Pin".into()],
        &["meetingCode".into()],
        &[r"pin:(\d+)".into(), "sekrit".into()],
    )
    .unwrap();
    let mut h = pairs(&[("x-tenant-pin", "1234")]);
    rules.headers(&mut h);
    assert_eq!(h[0].1, "REDACTED");
    let mut v = json!({"meetingCode": {"a": 1}, "note": "pin:4321 and sekrit!"});
    rules.json(&mut v);
    assert_eq!(
        v,
        json!({"meetingCode": "REDACTED", "note": "pin:REDACTED and REDACTED!"})
    );
    assert!(Rules::new(&[], &[], &["(".into()]).is_err());
}

fn event(uri: &str, body: Body) -> Event {
    Event {
        kind: Kind::Exchange,
        seq: 4,
        at_ms: 0,
        duration_ms: Some(0),
        follows: None,
        request: Request {
            method: "POST".into(),
            uri: uri.into(),
            headers: pairs(&[("x-api-key", "k")]),
            body,
        },
        response: Response {
            status: Some(200),
            ..Default::default()
        },
    }
}

#[test]
fn findings_name_what_redaction_would_change() {
    let e = event(
        "/token?refresh_token=r",
        Body::Text("client_id=a&client_secret=b".into()),
    );
    let f = Rules::default().findings(&e);
    assert_eq!(
        f,
        vec![
            "event 4: a secret in the request target",
            "event 4: request header `x-api-key`",
            "event 4: a secret in the request text"
        ]
    );
    let mut clean = e.clone();
    Rules::default().event(&mut clean);
    assert!(Rules::default().findings(&clean).is_empty(), "redaction is idempotent");
    let j = event("/x", Body::Json(json!({"a": {"privateKey": "p"}})));
    assert_eq!(
        Rules::default().findings(&j)[1],
        "event 4: member `request.a.privateKey`"
    );
}

#[test]
fn shown_uri_hides_query_secrets() {
    assert_eq!(
        shown_uri("/t?refresh_token=abc&sig=x&a=1"),
        "/t?refresh_token=REDACTED&sig=REDACTED&a=1"
    );
    assert!(matches!(shown_uri("/v1.0/communications/calls"), Cow::Borrowed(_)));
    let mut m = Meta {
        name: "n".into(),
        recorded_at: String::new(),
        upstream: "https://user:pass@graph.example".into(),
    };
    Rules::default().meta(&mut m);
    assert_eq!(m.upstream, "https://REDACTED@graph.example");
}
