//! Unit tests of the drift comparison, pairing and rendering, on hand-made cassettes.

use serde_json::{json, Value};

use super::pair::{in_order, resource_template};
use super::volatile::template_times;
use super::*;
use crate::cassette::{Body, Meta, Request, Response};

const CALL_A: &str = "ab6233a5-20b7-4c5e-bea2-ce56c9776429";
const CALL_B: &str = "11111111-2222-4333-8444-555555555555";
const OP_A: &str = "eec3812a-fdc3-4fb4-825c-a06c9f35414e";
const OP_B: &str = "99999999-fdc3-4fb4-825c-a06c9f35414e";

fn headers(h: &[(&str, &str)]) -> Vec<(String, String)> {
    h.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

fn invite(seq: u64, call: &str, op: &str, resp: Value, resp_headers: &[(&str, &str)]) -> Event {
    Event {
        kind: Kind::Exchange,
        seq,
        at_ms: 0,
        duration_ms: Some(180),
        follows: None,
        request: Request {
            method: "POST".into(),
            uri: format!("/v1.0/communications/calls/{call}/participants/invite"),
            headers: headers(&[("content-type", "application/json")]),
            body: Body::Json(json!({"clientContext": "ctx", "participants": [{"identity": {"user": {"id": op}}}]})),
        },
        response: Response {
            status: Some(200),
            headers: headers(resp_headers),
            body: Body::Json(resp),
            error: None,
        },
    }
}

fn op_body(op: &str, status: &str) -> Value {
    json!({"@odata.type": "#microsoft.graph.inviteParticipantsOperation", "id": op, "status": status, "resultInfo": null})
}

fn note(seq: u64, follows: u64, at_ms: u64, change: &str, resource: &str, data: Value) -> Event {
    Event {
        kind: Kind::Notification,
        seq,
        at_ms,
        duration_ms: None,
        follows: Some(follows),
        request: Request {
            method: "POST".into(),
            uri: "/api/calls".into(),
            headers: headers(&[("content-type", "application/json")]),
            body: Body::Json(json!({"value": [{"changeType": change, "resource": resource, "resourceData": data}]})),
        },
        response: Response {
            status: Some(202),
            ..Response::default()
        },
    }
}

fn cassette(events: Vec<Event>) -> Cassette {
    Cassette {
        meta: Meta {
            name: "t".into(),
            recorded_at: String::new(),
            upstream: String::new(),
        },
        events,
    }
}

/// A recording of an invite for `call`: the exchange and its two notifications.
fn flow(call: &str, op: &str, op_status: &str) -> Vec<Event> {
    let rid = if call == CALL_A {
        "7c4ee9b2-5e3a-4c1e-9d41-2a6f0b8e3d51"
    } else {
        "0b0b0b0b-5e3a-4c1e-9d41-2a6f0b8e3d51"
    };
    let date = if call == CALL_A {
        "Thu, 27 Nov 2026 10:00:00 GMT"
    } else {
        "Fri, 05 Mar 2027 18:30:12 GMT"
    };
    let loc = format!("https://graph.microsoft.com/v1.0/communications/calls/{call}/operations/{op}");
    vec![
        invite(
            0,
            call,
            op,
            op_body(op, op_status),
            &[("request-id", rid), ("date", date), ("location", &loc)],
        ),
        note(
            1,
            0,
            950,
            "deleted",
            &format!("/app/calls/{call}/operations/{op}"),
            json!({"status": "completed"}),
        ),
        note(
            2,
            0,
            990,
            "updated",
            &format!("/app/calls/{call}/participants"),
            json!([{"id": op}]),
        ),
    ]
}

fn changes(r: &Report) -> Vec<(Change, String)> {
    r.findings()
        .iter()
        .map(|f| (f.change(), f.path().to_string()))
        .collect()
}

#[test]
fn recordings_that_differ_only_in_ids_times_and_request_ids_have_no_findings() {
    let mut old = cassette(flow(CALL_A, OP_A, "Running"));
    let mut new = cassette(flow(CALL_B, OP_B, "running"));
    if let Body::Json(v) = &mut old.events[0].response.body {
        v["createdDateTime"] = json!("2026-11-27T10:00:00.1234567Z");
    }
    if let Body::Json(v) = &mut new.events[0].response.body {
        v["createdDateTime"] = json!("2027-03-05T18:30:12Z");
    }
    new.events[2].at_ms += 400;
    for (c, m) in [
        (&mut old, "97415038-ef12-458f-a8a2-3d3a0ae92e8e"),
        (&mut new, "00000000-ef12-458f-a8a2-3d3a0ae92e8e"),
    ] {
        c.events[1]
            .request
            .headers
            .push(("X-Microsoft-Skype-Message-ID".into(), m.into()));
        let diag = format!(r#"{{"ServerInfo":{{"DataCenter":"{m}","Slice":"E"}}}}"#);
        c.events[0].response.headers.push(("x-ms-ags-diagnostic".into(), diag));
        let len = if m.starts_with('9') { "812" } else { "790" };
        c.events[0].response.headers.push(("content-length".into(), len.into()));
    }
    let r = diff(&old, &new, &Options::default());
    assert!(r.findings().is_empty(), "{}", report::text(&r));
    assert_eq!(r.subjects().len(), 3);
    assert!(r.subjects().iter().all(Subject::paired));
    assert!(!r.breaking());
    assert_eq!(r.subjects()[2].key(), "updated /communications/calls/{id}/participants");
}

#[test]
fn members_removed_added_retyped_and_enum_values_changed_get_their_severity() {
    let old = cassette(vec![invite(
        0,
        CALL_A,
        OP_A,
        json!({"id": OP_A, "status": "Running", "clientContext": "c", "count": 1, "subject": "a", "$id": "1", "x": null}),
        &[],
    )]);
    let new = cassette(vec![invite(
        0,
        CALL_B,
        OP_B,
        json!({"id": OP_B, "status": "Completed", "count": "1", "subject": "b", "mediaState": {"audio": "active"}}),
        &[],
    )]);
    let r = diff(&old, &new, &Options::default());
    let got = changes(&r);
    assert_eq!(
        got,
        vec![
            (Change::EnumChanged, "response.json.status".to_string()),
            (Change::Removed, "response.json.clientContext".to_string()),
            (Change::TypeChanged, "response.json.count".to_string()),
            (Change::ValueChanged, "response.json.subject".to_string()),
            (Change::Added, "response.json.mediaState".to_string()),
        ],
        "{}",
        report::text(&r)
    );
    let sev: Vec<Severity> = r.findings().iter().map(Finding::severity).collect();
    use Severity::*;
    assert_eq!(sev, vec![Notable, Breaking, Breaking, Info, Notable]);
    assert!(r.breaking());
    assert!(r.findings()[1].detail().contains(r#"member removed (was "c")"#));
}

#[test]
fn a_null_member_counts_as_absent_and_odata_type_is_compared_as_an_enum() {
    let old = cassette(vec![invite(
        0,
        CALL_A,
        OP_A,
        json!({"@odata.type": "#a", "resultInfo": null}),
        &[],
    )]);
    let new = cassette(vec![invite(0, CALL_A, OP_A, json!({"@odata.type": "#b"}), &[])]);
    let r = diff(&old, &new, &Options::default());
    assert_eq!(
        changes(&r),
        vec![(Change::EnumChanged, r#"response.json["@odata.type"]"#.to_string())]
    );
}

#[test]
fn status_headers_and_list_items() {
    let loc = format!("https://graph.microsoft.com/v1.0/communications/calls/{CALL_A}/operations/{OP_A}");
    let old = cassette(vec![invite(
        0,
        CALL_A,
        OP_A,
        json!({"p": [1, 2]}),
        &[("location", &loc)],
    )]);
    let mut new = cassette(vec![invite(0, CALL_B, OP_B, json!({"p": [1]}), &[("x-new", "1")])]);
    new.events[0].response.status = Some(404);
    let r = diff(&old, &new, &Options::default());
    assert_eq!(
        changes(&r),
        vec![
            (Change::StatusChanged, "response.status".to_string()),
            (Change::Removed, "response.json.p[1]".to_string()),
            (Change::Removed, "response.headers.location".to_string()),
            (Change::Added, "response.headers.x-new".to_string()),
        ]
    );
    assert!(r.findings()[0].detail().contains("200 -> 404"));
}

#[test]
fn missing_and_extra_events_are_breaking_and_named_by_seq() {
    let old = cassette(flow(CALL_A, OP_A, "Running"));
    let mut new = cassette(flow(CALL_B, OP_B, "Running"));
    new.events.remove(2);
    let mut get = invite(2, CALL_B, OP_B, json!({}), &[]);
    get.request.method = "GET".into();
    get.request.uri = format!("/v1.0/communications/calls/{CALL_B}");
    new.events.push(get);
    let r = diff(&old, &new, &Options::default());
    let alone: Vec<(Kind, Option<u64>, Option<u64>, Change)> = r
        .findings()
        .iter()
        .map(|f| {
            let s = &r.subjects()[f.subject()];
            (s.kind(), s.old_seq(), s.new_seq(), f.change())
        })
        .collect();
    assert_eq!(
        alone,
        vec![
            (Kind::Notification, Some(2), None, Change::Missing),
            (Kind::Exchange, None, Some(2), Change::Extra),
        ]
    );
    let text = report::text(&r);
    assert!(
        text.contains("notification OLD #2 -> NEW -  updated /communications/calls/{id}/participants"),
        "{text}"
    );
    assert!(
        text.contains("exchange OLD - -> NEW #2  GET v1.0 /communications/calls/{id}"),
        "{text}"
    );
    assert!(
        text.ends_with("2 breaking, 0 notable, 0 info; 2 events paired, 1 missing in NEW, 1 only in NEW"),
        "{text}"
    );
}

#[test]
fn swapped_notifications_are_one_notable_reordering() {
    let old = cassette(flow(CALL_A, OP_A, "Running"));
    let mut new = cassette(flow(CALL_B, OP_B, "Running"));
    new.events.swap(1, 2);
    for (i, e) in new.events.iter_mut().enumerate() {
        e.seq = i as u64;
    }
    let r = diff(&old, &new, &Options::default());
    let got: Vec<(Change, Option<u64>, Option<u64>)> = r
        .findings()
        .iter()
        .map(|f| {
            (
                f.change(),
                r.subjects()[f.subject()].old_seq(),
                r.subjects()[f.subject()].new_seq(),
            )
        })
        .collect();
    assert_eq!(got.len(), 1, "{}", report::text(&r));
    assert_eq!(got[0].0, Change::Reordered);
    assert!(!r.breaking());
}

#[test]
fn a_notification_that_follows_another_exchange_is_notable() {
    let mut old = cassette(flow(CALL_A, OP_A, "Running"));
    old.events.push(invite(3, CALL_A, OP_A, json!({}), &[]));
    let mut new = old.clone();
    new.events[2].follows = Some(3);
    let r = diff(&old, &new, &Options::default());
    assert_eq!(changes(&r), vec![(Change::Reordered, "follows".to_string())]);
    assert!(r.findings()[0].detail().contains("#0 in OLD, #3 in NEW"));
}

#[test]
fn timing_beyond_the_tolerance_is_info() {
    let old = cassette(flow(CALL_A, OP_A, "Running"));
    let mut new = cassette(flow(CALL_B, OP_B, "Running"));
    new.events[0].duration_ms = Some(1500);
    new.events[1].at_ms = 950 + 1320 + 2000;
    new.events[2].at_ms = 990 + 1320;
    let r = diff(&old, &new, &Options::new(1000));
    assert_eq!(
        changes(&r),
        vec![
            (Change::Timing, "duration_ms".to_string()),
            (Change::Timing, "at_ms".to_string())
        ]
    );
    assert!(r.findings().iter().all(|f| f.severity() == Severity::Info));
    assert!(r.findings()[0]
        .detail()
        .contains("180 ms -> 1500 ms (+1320 ms; tolerance 1000 ms)"));
    // relative to the response: 950-180 = 770 then, 4270-1500 = 2770 now
    assert!(
        r.findings()[1].detail().contains("770 ms -> 2770 ms"),
        "{}",
        r.findings()[1].detail()
    );
    assert!(diff(&old, &new, &Options::new(5000)).findings().is_empty());
}

#[test]
fn timestamps_are_templated_in_their_iso_forms_only() {
    for s in [
        "2026-11-27T10:00:00Z",
        "2026-11-27T10:00:00.1234567Z",
        "2026-11-27 10:00",
        "2026-11-27T10:00:00+01:00",
        "2026-11-27T10:00:00-0800",
    ] {
        assert_eq!(template_times(s), "{time}", "{s}");
    }
    assert_eq!(template_times("at 2026-11-27T10:00:00Z."), "at {time}.");
    for s in ["2026-11-27", "12026-11-27T10:00", "v2026-11-27T10:00", "plain"] {
        assert_eq!(template_times(s), s, "{s}");
    }
}

#[test]
fn pairs_off_the_longest_ordered_run_moved() {
    assert_eq!(in_order(&[0, 1, 2]), vec![true, true, true]);
    assert_eq!(in_order(&[1, 0, 2]).iter().filter(|k| !**k).count(), 1);
    assert_eq!(in_order(&[2, 0, 1]), vec![false, true, true]);
    assert!(in_order(&[]).is_empty());
}

#[test]
fn resources_read_as_graph_templates() {
    assert_eq!(
        resource_template(&format!("/app/calls/{CALL_A}/operations/{OP_A}")),
        "/communications/calls/{id}/operations/{id}"
    );
    assert_eq!(
        resource_template(&format!("/beta/communications/calls/{CALL_A}")),
        "/communications/calls/{id}"
    );
    assert_eq!(resource_template(&format!("/other/{CALL_A}")), "/other/{id}");
}

#[test]
fn json_and_junit_name_every_subject() {
    let old = cassette(flow(CALL_A, OP_A, "Running"));
    let mut new = cassette(flow(CALL_B, OP_B, "Running"));
    new.events.remove(2);
    if let Body::Json(v) = &mut new.events[0].response.body {
        v["extra"] = json!(true);
    }
    let mut r = diff(&old, &new, &Options::default());
    r.relabel("old <1>.json", "new.json");
    let j: Value = serde_json::from_str(&report::json(&r)).unwrap();
    assert_eq!(j["breaking"], true);
    assert_eq!(j["old"]["source"], "old <1>.json");
    assert_eq!(j["summary"]["breaking"], 1);
    assert_eq!(j["summary"]["notable"], 1);
    assert_eq!(j["findings"][0]["path"], "response.json.extra");
    assert_eq!(j["findings"][1]["change"], "missing");
    assert_eq!(j["findings"][1]["old_seq"], 2);
    assert_eq!(j["findings"][1]["new_seq"], Value::Null);
    let xml = report::junit(&r);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let cases: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    assert_eq!(cases.len(), 3);
    let failures: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("failure")).collect();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].attribute("type"), Some("missing"));
    let suite = doc.descendants().find(|n| n.has_tag_name("testsuite")).unwrap();
    assert_eq!(suite.attribute("name"), Some("graphvcr diff old <1>.json -> new.json"));
    assert_eq!(suite.attribute("failures"), Some("1"));
}
