//! Hostile input on the listeners: requests the loader could not load are refused or
//! stored safely, the callback face stores notifications only, and connections that
//! hold on (idle, a body that never ends) are closed while normal requests go on.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;
use graphvcr::cassette::Kind;
use graphvcr::config::BotUrl;

const JSON: (&str, &str) = ("content-type", "application/json");
const AUTH: (&str, &str) = ("authorization", "Bearer x");

/// Sends raw bytes and reads until the server closes (bounded): the bytes it sent back.
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_star_and_a_127_deep_body_never_poison_a_recording() {
    init();
    let graph = FakeGraph::start().await;
    let bot = FakeBot::start().await;
    let st = store();
    let mut cfg = record_config("hostile", &graph);
    cfg.bot_url = Some(BotUrl::parse(&bot.url()).unwrap());
    let rec = start_record(cfg, &st.store, true).await;
    for addr in [rec.graph, rec.callbacks.unwrap()] {
        let answer = raw(addr, b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(
            answer.contains("\"invalidRequest\"") && answer.contains("origin-form"),
            "{answer}"
        );
        let answer = raw(
            addr,
            b"GET http://elsewhere/v1.0/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "absolute-form: {answer}");
    }
    let deep = format!("{}1{}", "[".repeat(127), "]".repeat(127));
    for (url, headers) in [
        (
            format!("{}/v1.0/communications/calls/{}/keepAlive", rec.url(), guid(0xca11, 1)),
            vec![JSON, AUTH],
        ),
        (rec.callback_url("/api/calls"), vec![JSON]),
    ] {
        let r = send("POST", &url, &headers, deep.clone()).await;
        assert!(r.status < 500, "{}", String::from_utf8_lossy(&r.body));
    }
    rec.stop().await;
    let c = st.store.load("hostile").unwrap().unwrap();
    assert_eq!(
        c.events.len(),
        1,
        "the exchange; the callback's deep body is no JSON notification"
    );
    assert_eq!(c.events[0].request.body, graphvcr::cassette::Body::Text(deep.clone()));
    let json = graphvcr::app::export(&*st.store, "hostile", None).unwrap();
    assert!(graphvcr::cassette::json::parse(json.as_bytes(), "x").is_ok());
    let rp = start_replay(replay_config("hostile", None), &st.store).await;
    let r = send(
        "POST",
        &format!("{}/v1.0/communications/calls/{}/keepAlive", rp.url(), guid(0xca11, 2)),
        &[JSON],
        deep,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let _ = rp.stop().await;
}

fn notification(call: &str, path: &str, change: &str, data: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"value": [{"changeType": change,
        "resource": format!("/app/calls/{call}{path}"), "resourceUrl": format!("/communications/calls/{call}{path}"),
        "resourceData": data}]}))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_never_follow_a_get_and_the_callback_face_stores_notifications_only() {
    init();
    let graph = FakeGraph::start().await;
    let bot = FakeBot::start().await;
    let st = store();
    let mut cfg = record_config("poll", &graph);
    cfg.bot_url = Some(BotUrl::parse(&bot.url()).unwrap());
    let rec = start_record(cfg, &st.store, true).await;
    let call = guid(0xca11, 3);
    let r = send(
        "POST",
        &format!("{}/v1.0/communications/calls/{call}/participants/invite", rec.url()),
        &[JSON, AUTH],
        serde_json::to_vec(&invite_body(&guid(0xc0c0, 3), &guid(0x05e7, 3), None)).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    let op = body_json(&r)["id"].as_str().unwrap().to_string();
    let r = send(
        "GET",
        &format!("{}/v1.0/communications/calls/{call}/operations/{op}", rec.url()),
        &[AUTH],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 200, "the bot polls its operation");
    // Graph's notifications (posted here, after the poll), a tunnel's health probe and a non-JSON POST
    let cb = rec.callback_url("/api/calls");
    let roster = json!([{"id": guid(0x9a47, 1), "info": {"identity": {"user": {"id": guid(0x05e7, 3)}}}}]);
    for body in [
        notification(&call, "/participants", "updated", roster),
        notification(
            &call,
            &format!("/operations/{op}"),
            "deleted",
            json!({"id": op, "status": "completed"}),
        ),
    ] {
        assert_eq!(send("POST", &cb, &[JSON], body).await.status, 202);
    }
    assert_eq!(
        send("GET", &rec.callback_url("/health"), &[], Vec::new()).await.status,
        202
    );
    assert_eq!(
        send("POST", &cb, &[("content-type", "text/plain")], "ping")
            .await
            .status,
        202
    );
    bot.wait_for(4, Duration::from_secs(10)).await;
    rec.stop().await;
    let c = st.store.load("poll").unwrap().unwrap();
    let invite = c
        .events
        .iter()
        .find(|e| e.request.uri.ends_with("/invite"))
        .unwrap()
        .seq;
    let notes: Vec<_> = c.events.iter().filter(|e| e.kind == Kind::Notification).collect();
    assert_eq!(notes.len(), 2, "the probe and the text POST were forwarded, not stored");
    assert!(notes.iter().all(|n| n.follows == Some(invite)), "{notes:?}");

    replays_to_a_bot_that_never_polls(&st).await;
}

/// The recording "poll" replayed to a bot that only takes notifications.
async fn replays_to_a_bot_that_never_polls(st: &TestStore) {
    let bot = FakeBot::start().await;
    let mut cfg = replay_config("poll", Some(&bot));
    cfg.pacing = fast();
    let rp = start_replay(cfg, &st.store).await;
    let r = send(
        "POST",
        &format!(
            "{}/v1.0/communications/calls/{}/participants/invite",
            rp.url(),
            guid(0xca11, 4)
        ),
        &[JSON],
        serde_json::to_vec(&invite_body(&guid(0xc0c0, 4), &guid(0x05e7, 4), None)).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    let got = bot.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2, "a bot that never polls still gets both");
    let _ = rp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_never_ending_connections_are_closed_while_requests_go_on() {
    init();
    let st = store();
    let mut cfg = bundled_config("invite-one-participant", None);
    cfg.limits.header_timeout = Duration::from_secs(1);
    cfg.limits.body_timeout = Duration::from_secs(1);
    cfg.limits.connection_idle = Duration::from_secs(1);
    let rp = start_replay(cfg, &st.store).await;
    let mut held = Vec::new();
    for i in 0..2000 {
        let mut s = TcpStream::connect(rp.addr).await.unwrap();
        if i % 2 == 1 {
            let head = "POST /v1.0/communications/calls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{\"a\":";
            s.write_all(head.as_bytes()).await.unwrap();
        }
        held.push(s);
    }
    let r = invite(&rp.url(), "beta", 5).await;
    assert_eq!(
        r.status, 200,
        "a normal request is served while 2,000 connections hang on"
    );
    let mut answered = 0;
    for mut s in held {
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out)).await;
        assert!(read.is_ok(), "a connection was never closed");
        let text = String::from_utf8_lossy(&out);
        if text.starts_with("HTTP/1.1 408") {
            assert!(text.contains("--body-timeout"), "{text}");
            answered += 1;
        }
    }
    assert_eq!(answered, 1000, "each never-ending body gets a Graph-shaped 408");
    let _ = rp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_connection_cap_clients_wait_and_a_large_head_gets_a_graph_shaped_431() {
    init();
    let st = store();
    let mut cfg = bundled_config("invite-one-participant", None);
    cfg.limits.max_connections = 1;
    cfg.limits.connection_idle = Duration::from_millis(300);
    cfg.limits.max_header_bytes = 16 * 1024;
    let rp = start_replay(cfg, &st.store).await;
    let _idle = TcpStream::connect(rp.addr).await.unwrap();
    let r = invite(&rp.url(), "beta", 6).await;
    assert_eq!(r.status, 200, "served once the idle connection was closed");
    let big = "x".repeat(20 * 1024);
    let r = send(
        "GET",
        &format!("{}/_graphvcr/health", rp.url()),
        &[("x-big", &big)],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 431);
    assert_eq!(body_json(&r)["error"]["code"], "requestHeaderFieldsTooLarge");
    let _ = rp.stop().await;
}
