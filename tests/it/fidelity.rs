//! Replay fidelity: a request never recorded is refused (by structure, enum values, or
//! strictly), every new action gets a new resource, incoming calls ring until the bot
//! is up, and conflicts name what conflicts.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;
use graphvcr::config::BotUrl;
use graphvcr::matching::MatchMode;

const JSON: (&str, &str) = ("content-type", "application/json");

async fn post_invite(base: &str, call: &str, body: &Value, session: Option<&str>) -> graphvcr::http::client::Reply {
    let mut headers = vec![JSON];
    if let Some(s) = session {
        headers.push(("x-graphvcr-session", s));
    }
    send(
        "POST",
        &format!("{base}/beta/communications/calls/{call}/participants/invite"),
        &headers,
        serde_json::to_vec(body).unwrap(),
    )
    .await
}

fn user_invite(ctx: &str, user: &str, display: Option<&str>, provider: bool) -> Value {
    let mut who = json!({"id": user});
    if provider {
        who["identityProvider"] = Value::from("AAD");
    }
    if let Some(d) = display {
        who["displayName"] = Value::from(d);
    }
    json!({"clientContext": ctx, "participants": [{"identity": {"user": who}}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pstn_invite_never_matches_a_user_invite_and_strict_refuses_sdk_differences() {
    init();
    let st = store();
    let rp = start_replay(bundled_config("invite-one-participant", None), &st.store).await;
    let pstn =
        json!({"clientContext": guid(0xc0c0, 1), "participants": [{"identity": {"phone": {"id": "+14255550100"}}}]});
    let r = post_invite(&rp.url(), &guid(0xca11, 1), &pstn, None).await;
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
    let e = body_json(&r);
    assert_eq!(e["error"]["code"], "itemNotFound");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(msg.contains("identity.phone: sent, not recorded"), "{msg}");
    assert!(msg.contains("identity.user: recorded, not sent"), "{msg}");
    assert!(
        msg.contains("refused: a member holding an object or list is on one side only"),
        "{msg}"
    );
    assert!(
        !mentions(&e, "278405a3-f568-4b3e-b684-009193463064"),
        "no recorded user id leaks: {e}"
    );

    // the same user invite, without identityProvider and with another display name
    let sdk = user_invite(&guid(0xc0c0, 2), &guid(0x05e7, 2), Some("Someone Else"), false);
    let r = post_invite(&rp.url(), &guid(0xca11, 2), &sdk, None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let _ = rp.stop().await;

    let mut cfg = bundled_config("invite-one-participant", None);
    cfg.match_mode = MatchMode::Strict;
    let rp = start_replay(cfg, &st.store).await;
    let r = post_invite(&rp.url(), &guid(0xca11, 3), &sdk, None).await;
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
    let msg = body_json(&r)["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("--match strict"), "{msg}");
    let _ = rp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_new_invite_in_a_call_is_a_new_operation_with_its_own_notifications() {
    init();
    let st = store();
    let bot = FakeBot::start().await;
    let mut cfg = bundled_config("invite-one-participant", Some(&bot));
    cfg.pacing = fast();
    let rp = start_replay(cfg, &st.store).await;
    let call = guid(0xca11, 10);
    let first = user_invite(&guid(0xc0c0, 10), &guid(0x05e7, 10), None, true);
    let second = user_invite(&guid(0xc0c0, 11), &guid(0x05e7, 11), None, true);
    let mut ops = Vec::new();
    for body in [&first, &second, &second] {
        let r = post_invite(&rp.url(), &call, body, Some("one-call")).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let op = body_json(&r)["id"].as_str().unwrap().to_string();
        assert!(header(&r, "location").ends_with(&format!("/calls/{call}/operations/{op}")));
        ops.push(op);
    }
    assert_ne!(ops[0], ops[1], "a second, different invite is a new operation");
    assert_ne!(ops[1], ops[2], "so is a third, identical to the second");
    assert_ne!(ops[0], ops[2]);
    let got = bot.wait_for(6, Duration::from_secs(10)).await;
    let done: Vec<String> = got
        .iter()
        .filter(|n| n.body["value"][0]["changeType"] == "deleted")
        .map(|n| {
            n.body["value"][0]["resourceData"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(done, ops, "each operation's own notification, in order");
    let rep = wait_report(&rp.url(), "one-call", Duration::from_secs(10), |r| {
        r["notifications_pending"] == 0
    })
    .await;
    let served = rep["served"].as_array().unwrap();
    assert_eq!(served[1]["repeated"], true);
    assert!(
        served[1]["minted"]
            .as_array()
            .is_some_and(|m| m.iter().any(|x| mentions(x, &ops[1]))),
        "the report names the ids minted for the repeat: {rep}"
    );
    let _ = rp.stop().await;
}

/// Records an incoming call (a notification that follows nothing) and its answer.
async fn record_incoming(st: &TestStore) {
    let graph = FakeGraph::start().await;
    let bot = FakeBot::start().await;
    let mut cfg = record_config("ringing", &graph);
    cfg.bot_url = Some(BotUrl::parse(&bot.url()).unwrap());
    let rec = start_record(cfg, &st.store, true).await;
    graph.set_callback(&rec.callback_url("/api/calls"));
    let call = guid(0x1c0, 1);
    assert_eq!(graph.post_incoming_call(&call).await.status, 202);
    let r = send(
        "POST",
        &format!("{}/v1.0/communications/calls/{call}/answer", rec.url()),
        &[JSON, ("authorization", "Bearer x")],
        serde_json::to_vec(&answer_body()).unwrap(),
    )
    .await;
    assert_eq!(r.status, 202);
    rec.stop().await;
}

fn answer_body() -> Value {
    json!({"callbackUri": "https://bot.contoso.com/api/calls", "acceptedModalities": ["audio"], "mediaConfig": {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incoming_call_rings_until_a_late_bot_is_up_and_the_bot_drives_it() {
    init();
    let st = store();
    record_incoming(&st).await;
    let port = ClosedPort::new();
    let addr = port.addr();
    let mut cfg = replay_config("ringing", None);
    cfg.bot_url = Some(BotUrl::parse(&format!("http://{addr}")).unwrap());
    cfg.pacing = fast();
    cfg.retry.max_backoff = Duration::from_millis(50);
    let attempts = cfg.retry.attempts as usize;
    let rp = start_replay(cfg, &st.store).await;
    // the bot is still starting: the call keeps ringing past the usual attempts
    wait_report(&rp.url(), "ringing-start", Duration::from_secs(20), |r| {
        r["notification_retrying"]["attempts"]
            .as_array()
            .is_some_and(|a| a.len() > attempts + 2)
    })
    .await;
    let bot = FakeBot::on(port.open());
    let got = bot.wait_for(1, Duration::from_secs(20)).await;
    let minted = got[0].body["value"][0]["resourceData"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = send(
        "POST",
        &format!("{}/v1.0/communications/calls/{minted}/answer", rp.url()),
        &[JSON],
        serde_json::to_vec(&answer_body()).unwrap(),
    )
    .await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(header(&r, "x-graphvcr-session"), "ringing-start");
    let out = rp.stop().await.unwrap();
    assert!(out.problems().is_empty(), "{:?}", out.problems());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_started_through_the_admin_api_ring_new_calls_and_names_are_not_reused() {
    init();
    let st = store();
    record_incoming(&st).await;
    let bot = FakeBot::start().await;
    let mut cfg = replay_config("ringing", Some(&bot));
    cfg.pacing = fast();
    cfg.ring_at_start = false;
    let rp = start_replay(cfg, &st.store).await;
    let url = format!("{}/_graphvcr/sessions", rp.url());
    let post = |body: &'static str| send("POST", &url, &[JSON], body);
    let (a, b) = (post("{}").await, post("").await);
    assert_eq!((a.status, b.status), (201, 201), "{}", String::from_utf8_lossy(&b.body));
    let (a, b) = (body_json(&a), body_json(&b));
    assert_ne!(a["session"], b["session"]);
    let (ca, cb) = (a["calls"][0].as_str().unwrap(), b["calls"][0].as_str().unwrap());
    assert_ne!(ca, cb, "two rings, two calls with their own minted ids");
    let got = bot.wait_for(2, Duration::from_secs(10)).await;
    let announced: Vec<&str> = got
        .iter()
        .filter_map(|n| n.body["value"][0]["resourceData"]["id"].as_str())
        .collect();
    assert!(announced.contains(&ca) && announced.contains(&cb), "{announced:?}");

    let named = post(r#"{"session": "ci-ring"}"#).await;
    assert_eq!(named.status, 201);
    let again = post(r#"{"session": "ci-ring"}"#).await;
    assert_eq!(again.status, 409);
    assert!(body_json(&again)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ci-ring"));
    bot.wait_for(3, Duration::from_secs(10)).await;
    let rung = post(r#"{"session": "ci-ring", "ring": true}"#).await;
    assert_eq!(rung.status, 200, "{}", String::from_utf8_lossy(&rung.body));
    assert_eq!(body_json(&rung)["notifications"], 0, "everything was delivered already");
    for (body, member) in [
        (r#"{"cassete": "x"}"#, "cassete"),
        (r#"{"ring": "yes"}"#, "ring"),
        (r#"{"session": 7}"#, "session"),
    ] {
        let r = post(body).await;
        assert_eq!(r.status, 400, "{body}");
        let msg = body_json(&r)["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.contains(&format!("`{member}`")), "{msg}");
    }
    let _ = rp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_owned_by_another_session_is_a_409_naming_both() {
    init();
    let st = store();
    let rp = start_replay(bundled_config("invite-one-participant", None), &st.store).await;
    let call = guid(0xca11, 30);
    let body = user_invite(&guid(0xc0c0, 30), &guid(0x05e7, 30), None, true);
    assert_eq!(post_invite(&rp.url(), &call, &body, Some("owner")).await.status, 200);
    let r = post_invite(&rp.url(), &call, &body, Some("intruder")).await;
    assert_eq!(r.status, 409);
    let msg = body_json(&r)["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains(&call) && msg.contains("owner"), "{msg}");
    let _ = rp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_all_lists_each_failed_delivery_with_its_session_target_and_status() {
    init();
    let st = store();
    let bot = FakeBot::start().await;
    bot.fail_first.store(100, std::sync::atomic::Ordering::SeqCst);
    let mut cfg = bundled_config("invite-one-participant", Some(&bot));
    cfg.pacing = fast();
    cfg.retry.attempts = 1;
    cfg.expect_all = true;
    let rp = start_replay(cfg, &st.store).await;
    let body = user_invite(&guid(0xc0c0, 40), &guid(0x05e7, 40), None, true);
    assert_eq!(
        post_invite(&rp.url(), &guid(0xca11, 40), &body, Some("failing"))
            .await
            .status,
        200
    );
    wait_report(&rp.url(), "failing", Duration::from_secs(10), |r| {
        r["notifications_pending"] == 0
    })
    .await;
    let err = rp.stop().await.unwrap_err().to_string();
    assert!(
        err.contains("session failing (cassette invite-one-participant): notification #1 to http://127.0.0.1:"),
        "{err}"
    );
    assert!(err.contains("(last: 503)"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_far_larger_than_any_recording_misses_without_being_parsed() {
    init();
    let st = store();
    let rp = start_replay(bundled_config("invite-one-participant", None), &st.store).await;
    let mut body = user_invite(&guid(0xc0c0, 50), &guid(0x05e7, 50), None, true);
    body["clientContext"] = Value::from("x".repeat(4 << 20));
    let r = post_invite(&rp.url(), &guid(0xca11, 50), &body, Some("big")).await;
    assert_eq!(r.status, 404);
    let msg = body_json(&r)["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("far larger than any recording"), "{msg}");
    assert!(msg.len() < 1000, "the diff never echoes the body");
    let rep = body_json(&admin(&rp.url(), "GET", "sessions/big").await);
    assert_eq!(rep["missed_total"], 1, "{rep}");
    let _ = rp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_changes_nothing_and_a_miss_never_echoes_one() {
    init();
    let graph = FakeGraph::start().await;
    let st = store();
    let rec = start_record(record_config("signed", &graph), &st.store, false).await;
    let op = |base: &str, sig: &str| {
        format!(
            "{base}/v1.0/communications/calls/{}/operations/{}?sig={sig}",
            guid(0xca11, 60),
            guid(0x0b, 60)
        )
    };
    let r = send(
        "GET",
        &op(&rec.url(), "recorded-secret"),
        &[("authorization", "Bearer x")],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 200);
    rec.stop().await;
    let rp = start_replay(replay_config("signed", None), &st.store).await;
    let r = send(
        "GET",
        &op(&rp.url(), "live-secret-1"),
        &[("x-graphvcr-session", "sig")],
        Vec::new(),
    )
    .await;
    assert_eq!(
        r.status,
        200,
        "a redacted value matches any live one: {}",
        String::from_utf8_lossy(&r.body)
    );
    let miss = send(
        "POST",
        &format!(
            "{}/v1.0/communications/calls/{}/mute?code=live-secret-2",
            rp.url(),
            guid(0xca11, 60)
        ),
        &[JSON, ("x-graphvcr-session", "sig")],
        r#"{"clientContext": "x", "token": "live-secret-3"}"#,
    )
    .await;
    assert_eq!(miss.status, 404);
    let rep = admin(&rp.url(), "GET", "sessions/sig").await;
    for (what, bytes) in [("miss", &miss.body), ("report", &rep.body)] {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains("live-secret"), "{what} echoes a secret: {text}");
    }
    let _ = rp.stop().await;
}
