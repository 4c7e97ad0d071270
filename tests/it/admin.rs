//! The admin API, and the limits every listener enforces (request heads).

use std::time::Duration;

use serde_json::json;

use crate::common::*;

const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_lists_starts_reports_and_ends_sessions() {
    init();
    let st = store();
    let cfg = bundled_config("invite-one-participant", None);
    let rp = start_replay(cfg, &st.store).await;
    let admin = |p: &str| format!("{}/_graphvcr/{p}", rp.url());
    let health = body_json(&send("GET", &admin("health"), &[], Vec::new()).await);
    assert_eq!(health, json!({"status": "ok", "mode": "replay"}));
    let list = body_json(&send("GET", &admin("cassettes"), &[], Vec::new()).await);
    assert_eq!(list.as_array().unwrap().len(), 4);

    // a named session on another cassette, picked by header
    let r = send(
        "POST",
        &admin("sessions"),
        &[JSON],
        r#"{"session":"ci-1","cassette":"invite-pstn-participant"}"#,
    )
    .await;
    assert_eq!(r.status, 201);
    let phone =
        json!({"clientContext": guid(0xc0c0, 91), "participants": [{"identity": {"phone": {"id": "+15550001111"}}}]});
    let r = send(
        "POST",
        &format!(
            "{}/beta/communications/calls/{}/participants/invite",
            rp.url(),
            guid(0xca11, 91)
        ),
        &[JSON, ("x-graphvcr-session", "ci-1")],
        serde_json::to_vec(&phone).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(header(&r, "x-graphvcr-session"), "ci-1");
    assert_eq!(
        body_json(&r)["participants"][0]["identity"]["phone"]["id"],
        "+15550001111"
    );
    let rep = body_json(&send("GET", &admin("sessions/ci-1"), &[], Vec::new()).await);
    assert_eq!(rep["cassette"], "invite-pstn-participant");
    assert_eq!(rep["served_total"], 1);
    assert_eq!(rep["active"], true);
    let ended = send("DELETE", &admin("sessions/ci-1"), &[], Vec::new()).await;
    assert_eq!(ended.status, 200);
    let rep = body_json(&send("GET", &admin("sessions/ci-1"), &[], Vec::new()).await);
    assert_eq!(rep["active"], false);
    assert_eq!(rep["served_total"], 1, "an ended session's report stays readable");
    let missing = send("GET", &admin("sessions/nope"), &[], Vec::new()).await;
    assert_eq!(missing.status, 404);
    assert_eq!(body_json(&missing)["error"]["code"], "itemNotFound");
    let _ = rp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_session_lets_its_queued_notifications_go_and_its_report_follows() {
    init();
    let st = store();
    let bot = FakeBot::start().await;
    let mut cfg = bundled_config("invite-one-participant", Some(&bot));
    cfg.pacing.speed = 4.0;
    let rp = start_replay(cfg, &st.store).await;
    let r = invite(&rp.url(), "beta", 95).await;
    assert_eq!(r.status, 200);
    let sid = header(&r, "x-graphvcr-session");
    let ended = admin(&rp.url(), "DELETE", &format!("sessions/{sid}")).await;
    assert_eq!(ended.status, 200);
    bot.wait_for(2, Duration::from_secs(10)).await;
    let rep = wait_report(&rp.url(), &sid, Duration::from_secs(10), |rep| {
        rep["notifications_pending"] == 0
    })
    .await;
    assert_eq!(rep["notifications_delivered"], 2, "{rep}");
    assert_eq!(rep["notifications_pending"], 0);
    let out = rp.stop().await.unwrap();
    assert!(out.problems().is_empty(), "{:?}", out.problems());
    assert_eq!(out.totals.delivered, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_get_431_and_slow_heads_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    init();
    let st = store();
    let mut cfg = bundled_config("invite-one-participant", None);
    cfg.limits.max_header_bytes = 16 * 1024;
    cfg.limits.header_timeout = Duration::from_millis(300);
    let rp = start_replay(cfg, &st.store).await;

    let big = "x".repeat(64 * 1024);
    let r = send(
        "GET",
        &format!("{}/_graphvcr/health", rp.url()),
        &[("x-big", &big)],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 431);

    let mut slow = tokio::net::TcpStream::connect(rp.addr).await.unwrap();
    slow.write_all(b"POST /beta/communications/calls HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf)).await;
    assert!(closed.is_ok(), "a client that never finishes its head is disconnected");
    let _ = rp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_refuses_foreign_hosts_non_json_posts_and_large_bodies() {
    init();
    let st = store();
    let rp = start_replay(bundled_config("invite-one-participant", None), &st.store).await;
    let url = format!("{}/_graphvcr/sessions", rp.url());
    let r = send("GET", &url, &[("host", "attacker.example:8060")], Vec::new()).await;
    assert_eq!(r.status, 403, "DNS rebinding: a foreign Host is refused");
    assert!(body_json(&r)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("attacker.example"));
    let r = send("POST", &url, &[("content-type", "text/plain")], r#"{"session":"csrf"}"#).await;
    assert_eq!(r.status, 415, "a cross-site form post cannot start a session");
    assert_eq!(admin(&rp.url(), "GET", "sessions/csrf").await.status, 404);
    let big = format!(r#"{{"session":"{}"}}"#, "x".repeat(100 * 1024));
    let r = send("POST", &url, &[JSON], big).await;
    assert_eq!(r.status, 413);
    let r = send("POST", &url, &[JSON], r#"{"cassette":123}"#).await;
    assert_eq!(r.status, 400);
    assert!(body_json(&r)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`cassette`"));
    let long = format!(r#"{{"session":"{}"}}"#, "s".repeat(200));
    assert_eq!(
        send("POST", &url, &[JSON], long).await.status,
        400,
        "session names are at most 128 characters"
    );
    let r = send(
        "GET",
        &format!("{}/_graphvcr/health", rp.url()),
        &[("host", "localhost:1")],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 200, "loopback names pass");
    let _ = rp.stop().await;
}
