//! Recorder tests: what the faces accept is what the store and the interchange load.

use proptest::prelude::*;

use super::*;
use crate::cassette::json;

fn parts(method: &str, target: &str) -> Option<http::request::Parts> {
    let req = http::Request::builder().method(method).uri(target).body(()).ok()?;
    Some(req.into_parts().0)
}

fn recordable(method: &str, target: &str, headers: &[(String, String)], body: &[u8]) -> Option<Event> {
    let mut p = parts(method, target)?;
    for (n, v) in headers {
        if let (Ok(n), Ok(v)) = (
            http::header::HeaderName::from_bytes(n.as_bytes()),
            http::header::HeaderValue::from_bytes(v.as_bytes()),
        ) {
            p.headers.append(n, v);
        }
    }
    let pq = recordable_target(&p).ok()?;
    let mut ev = recorded_event(
        Kind::Exchange,
        1,
        &p.method,
        pq,
        &p.headers,
        body,
        Response {
            status: Some(200),
            body: Body::from_bytes(body),
            ..Default::default()
        },
    );
    ev.duration_ms = Some(0);
    Rules::default().event(&mut ev);
    Some(ev)
}

/// Loads what a face would store, through the stored-event codec and the interchange.
fn loads(ev: &Event) {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::cassette::SledStore::open(dir.path()).unwrap();
    let c = crate::cassette::Cassette {
        meta: crate::cassette::Meta {
            name: "p".into(),
            recorded_at: String::new(),
            upstream: String::new(),
        },
        events: vec![ev.clone()],
    };
    store.replace(&c, None).unwrap();
    assert_eq!(store.load("p").unwrap().unwrap(), c);
    assert_eq!(json::parse(json::to_string(&c).as_bytes(), "p.json").unwrap(), c);
}

#[test]
fn star_and_absolute_targets_are_refused_before_storing() {
    for t in ["*", "http://graph.example/v1.0/x", "graph.example:443"] {
        for m in ["OPTIONS", "GET", "CONNECT"] {
            if let Some(p) = parts(m, t) {
                assert!(recordable_target(&p).is_err(), "{m} {t}");
            }
        }
    }
    assert_eq!(
        recordable_target(&parts("GET", "/v1.0/x?a=1").unwrap()).unwrap(),
        "/v1.0/x?a=1"
    );
}

#[test]
fn a_body_too_deep_for_the_loader_is_stored_as_text() {
    for depth in [60, 126, 127, 128, 200] {
        let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let ev = recordable("POST", "/v1.0/deep", &[], body.as_bytes()).unwrap();
        loads(&ev);
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::vec(("[a-zA-Z@._]{0,8}", inner), 0..6)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        prop::collection::vec(any::<u8>(), 0..64),
        ".{0,40}".prop_map(String::into_bytes),
        (1usize..300).prop_map(|d| format!("{}{}", "{\"a\":".repeat(d), "}".repeat(d)).into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Every event a face would store loads back, unchanged.
    #[test]
    fn every_recordable_event_loads(
        method in "[A-Z]{1,8}",
        target in prop_oneof!["/[ -~]{0,40}", "[ -~]{0,40}", Just("*".to_string())],
        headers in prop::collection::vec(("[a-z-]{1,12}", "[ -~]{0,24}"), 0..4),
        body in body(),
    ) {
        if let Some(ev) = recordable(&method, &target, &headers, &body) {
            loads(&ev);
        }
    }
}
