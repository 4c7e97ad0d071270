//! One proxy for a whole CI suite: `serve` with many cassettes and parallel sessions,
//! per-session settings, verdicts, `--expect-all`, JUnit reports, bad admin input.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;
use graphvcr::config::{BotUrl, ReplayConfig};

const JSON: (&str, &str) = ("content-type", "application/json");

/// Records `name`: an invite (with its two notifications) and, if asked, a keepAlive.
async fn record_invite(st: &TestStore, name: &str, keep_alive: bool) {
    let graph = FakeGraph::start().await;
    let bot = FakeBot::start().await;
    let mut cfg = record_config(name, &graph);
    cfg.bot_url = Some(BotUrl::parse(&bot.url()).unwrap());
    let rec = start_record(cfg, &st.store, true).await;
    graph.set_callback(&rec.callback_url("/api/calls"));
    let call = guid(0xca11, 900);
    let r = send(
        "POST",
        &format!("{}/v1.0/communications/calls/{call}/participants/invite", rec.url()),
        &[JSON, ("authorization", "Bearer x")],
        serde_json::to_vec(&invite_body(&guid(0xc0c0, 900), &guid(0x05e7, 900), None)).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    bot.wait_for(2, Duration::from_secs(10)).await;
    if keep_alive {
        let r = send(
            "POST",
            &format!("{}/v1.0/communications/calls/{call}/keepAlive", rec.url()),
            &[("authorization", "Bearer x")],
            Vec::new(),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    rec.stop().await;
}

fn serve_config() -> ReplayConfig {
    let mut cfg = ReplayConfig::serve();
    cfg.tls.ca_dir = test_ca_dir();
    cfg.cassettes_dir = Some(bundled());
    cfg.pacing = fast();
    cfg
}

async fn start_session(base: &str, body: Value) -> Value {
    let r = send(
        "POST",
        &format!("{base}/_graphvcr/sessions"),
        &[JSON],
        serde_json::to_vec(&body).unwrap(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    body_json(&r)
}

/// The invite a test sends for `n` on `cassette`, in session `session`.
async fn invite_in(base: &str, cassette: &str, session: &str, n: u64) -> graphvcr::http::client::Reply {
    let (version, body) = match cassette {
        "invite-pstn-participant" => (
            "beta",
            json!({"clientContext": guid(0xc0c0, n), "participants": [{"identity": {"phone": {"id": format!("+1555{n:07}")}}}]}),
        ),
        "recorded-invite" => ("v1.0", invite_body(&guid(0xc0c0, n), &guid(0x05e7, n), None)),
        _ => ("beta", invite_body(&guid(0xc0c0, n), &guid(0x05e7, n), None)),
    };
    send(
        "POST",
        &format!(
            "{base}/{version}/communications/calls/{}/participants/invite",
            guid(0xca11, n)
        ),
        &[JSON, ("x-graphvcr-session", session)],
        serde_json::to_vec(&body).unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_serve_process_runs_fifty_parallel_sessions_on_three_cassettes_for_two_bots() {
    init();
    let st = store();
    record_invite(&st, "recorded-invite", false).await;
    let bots = [FakeBot::start().await, FakeBot::start().await];
    let rp = start_replay(serve_config(), &st.store).await;
    let base = Arc::new(rp.url());
    let cassettes = ["invite-one-participant", "invite-pstn-participant", "recorded-invite"];
    let mut tasks = Vec::new();
    for n in 0..50u64 {
        let (base, cassette, bot) = (base.clone(), cassettes[n as usize % 3], bots[n as usize % 2].url());
        tasks.push(tokio::spawn(async move {
            let session = format!("t-{n}");
            start_session(
                &base,
                json!({"cassette": cassette, "session": session, "bot_url": bot, "timing": "fast"}),
            )
            .await;
            let r = invite_in(&base, cassette, &session, 2000 + n).await;
            assert_eq!(r.status, 200, "{cassette}: {}", String::from_utf8_lossy(&r.body));
            assert_eq!(header(&r, "x-graphvcr-session"), session);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for (k, bot) in bots.iter().enumerate() {
        let got = bot.wait_for(50, Duration::from_secs(30)).await;
        let calls = by_key(&got, |r| {
            resource_url(r).split('/').nth(3).unwrap_or_default().to_string()
        });
        assert_eq!(calls.len(), 25, "bot {k} gets exactly its 25 sessions' calls");
        for (call, notes) in calls {
            let n = (0..50u64)
                .find(|n| guid(0xca11, 2000 + n) == call)
                .expect("a call of this test");
            assert_eq!(n as usize % 2, k, "call {call} reached the other bot");
            assert_eq!(notes.len(), 2, "call {call}");
        }
    }
    for n in 0..50u64 {
        let rep = wait_report(&base, &format!("t-{n}"), Duration::from_secs(10), |r| {
            r["notifications_pending"] == 0
        })
        .await;
        assert_eq!(rep["cassette"], cassettes[n as usize % 3]);
        assert_eq!(rep["served_total"], 1, "{rep}");
        assert_eq!(rep["notifications_delivered"], 2, "{rep}");
        assert_eq!(rep["verdict"]["ok"], true, "{rep}");
        assert!(mentions(&rep["bindings"], &guid(0xca11, 2000 + n)), "{rep}");
    }
    let out = rp.stop().await.unwrap();
    assert!(out.problems().is_empty(), "{:?}", out.problems());
}

/// Four sessions of `two-step`: `full` uses both exchanges, `partial` skips the
/// keepAlive, `declared` adds a declared miss, `budget` an undeclared one it expects.
async fn drive_four_sessions(base: &str) {
    let keep_alive = |n: u64, session: &'static str| {
        let url = format!("{base}/v1.0/communications/calls/{}/keepAlive", guid(0xca11, n));
        async move { send("POST", &url, &[("x-graphvcr-session", session)], Vec::new()).await }
    };
    let bogus = |session: &'static str, declared: bool| {
        let url = format!("{base}/v1.0/communications/calls/{}/mute", guid(0xca11, 1));
        let mut h = vec![("x-graphvcr-session", session)];
        if declared {
            h.push(("x-graphvcr-expect", "miss"));
        }
        async move { send("POST", &url, &h, Vec::new()).await }
    };
    for (n, session, extra) in [
        (1u64, "full", 0),
        (2, "partial", -1),
        (3, "declared", 1),
        (4, "budget", 2),
    ] {
        let mut body = json!({"cassette": "two-step", "session": session});
        if extra == 2 {
            body["expect_misses"] = Value::from(1);
        }
        start_session(base, body).await;
        assert_eq!(invite_in(base, "recorded-invite", session, n).await.status, 200);
        if extra >= 0 {
            assert_eq!(keep_alive(n, session).await.status, 200);
        }
        if extra > 0 {
            assert_eq!(bogus(session, extra == 1).await.status, 404);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_name_unused_exchanges_declared_misses_stay_ok_and_junit_lists_each_session() {
    init();
    let st = store();
    record_invite(&st, "two-step", true).await;
    let bot = FakeBot::start().await;
    let junit = st.dir.path().join("reports/graphvcr.xml");
    let mut cfg = serve_config();
    cfg.bot_url = Some(BotUrl::parse(&bot.url()).unwrap());
    cfg.expect_all = true;
    cfg.report_junit = Some(junit.clone());
    let rp = start_replay(cfg, &st.store).await;
    let base = rp.url();
    drive_four_sessions(&base).await;
    bot.wait_for(8, Duration::from_secs(10)).await;
    let partial = wait_report(&base, "partial", Duration::from_secs(10), |r| {
        r["notifications_pending"] == 0
    })
    .await;
    assert_eq!(partial["verdict"]["ok"], false);
    let keep_alive_seq = st
        .store
        .load("two-step")
        .unwrap()
        .unwrap()
        .events
        .iter()
        .find(|e| e.request.uri.ends_with("/keepAlive"))
        .unwrap()
        .seq;
    assert_eq!(
        partial["verdict"]["problems"],
        json!([{"kind": "unused", "seq": keep_alive_seq}]),
        "{partial}"
    );
    for s in ["full", "declared", "budget"] {
        let rep = wait_report(&base, s, Duration::from_secs(10), |r| r["notifications_pending"] == 0).await;
        assert_eq!(rep["verdict"], json!({"ok": true}), "{s}: {rep}");
    }
    let err = rp.stop().await.unwrap_err();
    assert_eq!(err.exit_code(), 4);
    let msg = err.to_string();
    let expected = format!("session partial (cassette two-step): recorded exchange #{keep_alive_seq} never used");
    assert!(msg.contains(&expected), "{msg}");
    assert_eq!(msg.matches("session ").count(), 1, "only the failing session: {msg}");

    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("valid XML");
    let cases: HashMap<String, usize> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| {
            assert_eq!(n.attribute("classname"), Some("two-step"));
            let failures = n.children().filter(|c| c.has_tag_name("failure")).count();
            (n.attribute("name").unwrap_or_default().to_string(), failures)
        })
        .collect();
    let expected: HashMap<String, usize> = [("full", 0), ("partial", 1), ("declared", 0), ("budget", 0)]
        .map(|(k, v)| (k.to_string(), v))
        .into();
    assert_eq!(cases, expected);
    let suite = doc.descendants().find(|n| n.has_tag_name("testsuite")).unwrap();
    assert_eq!(suite.attribute("tests"), Some("4"));
    assert_eq!(suite.attribute("failures"), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_what_it_cannot_place_and_bad_admin_input_is_named() {
    init();
    let st = store();
    let rp = start_replay(serve_config(), &st.store).await;
    let base = rp.url();
    let r = invite(&base, "beta", 7).await;
    assert_eq!(r.status, 400);
    let msg = body_json(&r)["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("x-graphvcr-session") && msg.contains("x-graphvcr-cassette"),
        "{msg}"
    );
    // a new session by header, its cassette by header
    let r = send(
        "POST",
        &format!(
            "{base}/beta/communications/calls/{}/participants/invite",
            guid(0xca11, 8)
        ),
        &[
            JSON,
            ("x-graphvcr-session", "by-header"),
            ("x-graphvcr-cassette", "invite-one-participant"),
        ],
        serde_json::to_vec(&invite_body(&guid(0xc0c0, 8), &guid(0x05e7, 8), None)).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    let url = format!("{base}/_graphvcr/sessions");
    let post = |body: &'static str| send("POST", &url, &[JSON], body);
    let cases: [(&str, u16, &str); 8] = [
        ("{not json", 400, "not JSON"),
        ("[]", 400, "JSON object"),
        (
            r#"{"cassette": "invite-one-participant", "colour": "red"}"#,
            400,
            "`colour`",
        ),
        (r#"{"cassette": 123}"#, 400, "`cassette`"),
        (
            r#"{"cassette": "invite-one-participant", "timing": "slow"}"#,
            400,
            "`timing`",
        ),
        (r#"{"cassette": "invite-one-participant", "speed": -1}"#, 400, "`speed`"),
        (
            r#"{"cassette": "invite-one-participant", "bot_url": "nope"}"#,
            400,
            "`bot_url`",
        ),
        (r#"{"cassette": "no-such-cassette"}"#, 404, "no-such-cassette"),
    ];
    for (body, status, needle) in cases {
        let r = post(body).await;
        assert_eq!(r.status, status, "{body}");
        let e = body_json(&r);
        assert!(
            e["error"]["code"].is_string() && e["error"]["innerError"]["request-id"].is_string(),
            "{e}"
        );
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{body}: {msg}");
    }
    let r = post("{}").await;
    assert_eq!(r.status, 400, "serve has no default cassette");
    assert!(body_json(&r)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`cassette`"));
    let r = admin(&base, "GET", "sessions/nobody").await;
    assert_eq!(r.status, 404);
    assert_eq!(body_json(&r)["error"]["code"], "itemNotFound");
    let _ = rp.stop().await;
}
