//! REST record/replay: recording through the proxy over TLS, replay with ids rewritten,
//! matching across SDK spellings, misses, redaction and bad input.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;
use graphvcr::cassette::Body;
use graphvcr::http::client::Reply;

const JSON: (&str, &str) = ("content-type", "application/json");

async fn record_one_invite(
    graph: &FakeGraph,
    st: &TestStore,
    name: &str,
    token: &str,
) -> (String, String, String, String) {
    let rec = start_record(record_config(name, graph), &st.store, false).await;
    let (call, ctx, user) = (guid(0xca11, 1), guid(0xc0c0, 1), guid(0x05e7, 1));
    let auth = format!("Bearer {token}");
    let r = send(
        "POST",
        &format!("{}/v1.0/communications/calls/{call}/participants/invite", rec.url()),
        &[JSON, ("authorization", &auth), ("client-request-id", &guid(0xc1, 1))],
        serde_json::to_vec(&invite_body(&ctx, &user, None)).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let op = body_json(&r)["id"].as_str().unwrap().to_string();
    let out = rec.stop().await;
    assert_eq!(out.events, 1);
    (call, ctx, user, op)
}

/// Sends one invite for `call` to a replay process of its own.
async fn replay_once(st: &TestStore, call: &str, body: Vec<u8>) -> Reply {
    let rp = start_replay(replay_config("invite", None), &st.store).await;
    let url = format!("{}/v1.0/communications/calls/{call}/participants/invite", rp.url());
    let r = send("POST", &url, &[JSON], body).await;
    let _ = rp.stop().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_then_replay_rewrites_ids_for_a_new_call() {
    init();
    let graph = FakeGraph::start().await;
    let st = store();
    let (rec_call, rec_ctx, rec_user, rec_op) = record_one_invite(&graph, &st, "invite", &jwt("bot")).await;
    // the upstream saw the request over TLS (HTTP/2 by ALPN), with the bot's credentials
    assert_eq!(graph.seen().len(), 1);
    assert_eq!(graph.seen()[0].version, http::Version::HTTP_2);
    let upstream_connections = graph.connections.load(Ordering::SeqCst);

    let rp = start_replay(replay_config("invite", None), &st.store).await;
    let call = guid(0xca11, 2);
    let ctx = guid(0xc0c0, 2).to_uppercase().replace('-', "");
    let user = guid(0x05e7, 2);
    let url = format!("{}/v1.0/communications/calls/{call}/participants/invite", rp.url());
    let body = serde_json::to_vec(&invite_body(&ctx, &user, None)).unwrap();
    let r1 = send("POST", &url, &[JSON], body.clone()).await;
    assert_eq!(r1.status, 200, "{}", String::from_utf8_lossy(&r1.body));
    let v = body_json(&r1);
    assert_eq!(
        v["clientContext"],
        Value::from(ctx.as_str()),
        "clientContext comes back exactly as sent"
    );
    assert_eq!(
        v["participants"][0]["identity"]["user"]["id"],
        Value::from(user.as_str())
    );
    assert_eq!(
        v["participants"][0]["identity"]["user"]["tenantId"],
        Value::from(TENANT),
        "tenant stays as recorded"
    );
    let op = v["id"].as_str().unwrap().to_string();
    assert_ne!(op, rec_op, "the operation id is minted per session");
    assert_eq!(
        graphvcr::ids::scan(&op).len(),
        1,
        "minted op id keeps the GUID format: {op}"
    );
    assert_eq!(
        header(&r1, "location"),
        format!("{}/v1.0/communications/calls/{call}/operations/{op}", rp.url())
    );
    for old in [&rec_call, &rec_ctx, &rec_user, &rec_op] {
        assert!(!mentions(&v, old), "recorded id {old} leaked into {v}");
        assert!(!header(&r1, "location").contains(old.as_str()));
    }

    // the same live request in a fresh session gives byte-identical output
    let sid = header(&r1, "x-graphvcr-session");
    let ended = admin(&rp.url(), "DELETE", &format!("sessions/{sid}")).await;
    assert_eq!(ended.status, 200);
    let r2 = send("POST", &url, &[JSON], body.clone()).await;
    assert_eq!(r2.status, 200);
    assert_eq!(r1.body, r2.body);
    for h in ["location", "request-id", "x-graphvcr-session", "content-type"] {
        assert_eq!(header(&r1, h), header(&r2, h), "header {h}");
    }
    let _ = rp.stop().await;

    // and so does a new replay process (Location differs only by the listener's port)
    let r3 = replay_once(&st, &call, body).await;
    assert_eq!(r1.body, r3.body);
    assert_eq!(header(&r1, "request-id"), header(&r3, "request-id"));

    assert_eq!(
        graph.connections.load(Ordering::SeqCst),
        upstream_connections,
        "replay opened a connection to the upstream"
    );
    assert_eq!(graph.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_never_reaches_the_store_or_an_export() {
    init();
    let graph = FakeGraph::start().await;
    let st = store();
    let token = jwt("secret-bot-token");
    record_one_invite(&graph, &st, "secret", &token).await;
    let forwarded = graph.seen()[0]
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        forwarded,
        format!("Bearer {token}"),
        "the upstream still gets the real token"
    );
    st.store.flush().unwrap();
    let signature = token.rsplit('.').next().unwrap();
    let files = all_bytes(st.dir.path());
    assert!(!files.is_empty());
    for (path, bytes) in &files {
        assert!(!contains(bytes, token.as_bytes()), "token found in {}", path.display());
        assert!(
            !contains(bytes, signature.as_bytes()),
            "token signature found in {}",
            path.display()
        );
    }
    let exported = graphvcr::app::export(&*st.store, "secret", None).unwrap();
    assert!(!exported.contains(signature));
    assert!(exported.contains("Bearer REDACTED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_spellings_match_the_same_recording() {
    init();
    let graph = FakeGraph::start().await;
    let st = store();
    record_one_invite(&graph, &st, "sdks", &jwt("bot")).await;
    let rp = start_replay(replay_config("sdks", None), &st.store).await;

    // Node: compact, with @odata.type
    let node = serde_json::to_string(&invite_body(&guid(0xc0c0, 11), &guid(0x05e7, 11), None)).unwrap();
    // Python: sorted keys, ", " / ": " separators, no @odata.type
    let python = format!(
        r#"{{"clientContext": "{}", "participants": [{{"identity": {{"user": {{"id": "{}", "identityProvider": "AAD"}}}}}}]}}"#,
        guid(0xc0c0, 12),
        guid(0x05e7, 12)
    );
    // .NET: namespace-qualified action, pretty-printed, unicode escapes, explicit nulls
    let dotnet = format!(
        "{{\n  \"participants\": [\n    {{\n      \"identity\": {{\n        \"user\": {{\n          \"identityProvider\": \"\\u0041AD\",\n          \"id\": \"{}\"\n        }}\n      }},\n      \"replacesCallId\": null\n    }}\n  ],\n  \"clientContext\": \"{}\"\n}}",
        guid(0x05e7, 13),
        guid(0xc0c0, 13)
    );
    let cases = [
        ("invite", node, 21),
        ("invite", python, 22),
        ("microsoft.graph.invite", dotnet, 23),
    ];
    for (action, body, n) in cases {
        let call = guid(0xca11, n);
        let r = send(
            "POST",
            &format!("{}/v1.0/communications/calls/{call}/participants/{action}", rp.url()),
            &[JSON],
            body.clone(),
        )
        .await;
        assert_eq!(r.status, 200, "{body}: {}", String::from_utf8_lossy(&r.body));
        let sid = header(&r, "x-graphvcr-session");
        let rep = body_json(&admin(&rp.url(), "GET", &format!("sessions/{sid}")).await);
        assert_eq!(rep["served"][0]["seq"], 0);
        assert_eq!(rep["served"][0]["repeated"], false);
        assert!(header(&r, "location").contains(&call));
    }
    let _ = rp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_names_the_nearest_recording() {
    init();
    let graph = FakeGraph::start().await;
    let st = store();
    record_one_invite(&graph, &st, "miss", &jwt("bot")).await;
    let rp = start_replay(replay_config("miss", None), &st.store).await;
    let mut two = invite_body(&guid(0xc0c0, 31), &guid(0x05e7, 31), None);
    let second = two["participants"][0].clone();
    two["participants"].as_array_mut().unwrap().push(second);
    let call = guid(0xca11, 31);
    let r = send(
        "POST",
        &format!("{}/v1.0/communications/calls/{call}/participants/invite", rp.url()),
        &[JSON],
        serde_json::to_vec(&two).unwrap(),
    )
    .await;
    assert_eq!(r.status, 404);
    let e = body_json(&r);
    assert_eq!(e["error"]["code"], "itemNotFound");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(msg.contains("nearest is #0"), "{msg}");
    assert!(msg.contains("participants: 1 items recorded, 2 sent"), "{msg}");
    assert_eq!(e["error"]["innerError"]["date"], "2026-11-27T10:00:00");
    assert!(e["error"]["innerError"]["request-id"].is_string());
    assert_eq!(e["error"]["innerError"]["graphvcr-nearest-seq"], 0);

    let r = send(
        "POST",
        &format!("{}/beta/communications/calls/{call}/participants/invite", rp.url()),
        &[JSON],
        serde_json::to_vec(&invite_body(&guid(0xc0c0, 32), &guid(0x05e7, 32), None)).unwrap(),
    )
    .await;
    assert_eq!(r.status, 404);
    let msg = body_json(&r)["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("version v1.0 recorded, beta sent"), "{msg}");

    let out = rp.stop().await.unwrap();
    let missed: Vec<_> = out.reports.iter().flat_map(|r| r.missed.clone()).collect();
    assert_eq!(missed.len(), 2);
    assert_eq!(missed[0].nearest_seq, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_requests_get_successive_recordings_then_the_last_repeats() {
    init();
    let graph = FakeGraph::start().await;
    let st = store();
    let rec = start_record(record_config("poll", &graph), &st.store, false).await;
    let call = guid(0xca11, 41);
    let url = |base: &str, op: &str| format!("{base}/v1.0/communications/calls/{call}/operations/{op}");
    let op = guid(0x0b, 41);
    for _ in 0..2 {
        let r = send(
            "GET",
            &url(&rec.url(), &op),
            &[("authorization", "Bearer x")],
            Vec::new(),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    rec.stop().await;
    let rp = start_replay(replay_config("poll", None), &st.store).await;
    let live_call_op = guid(0x0b, 42);
    let mut seqs = Vec::new();
    let mut sid = String::new();
    for _ in 0..3 {
        let r = send("GET", &url(&rp.url(), &live_call_op), &[], Vec::new()).await;
        assert_eq!(r.status, 200);
        assert_eq!(body_json(&r)["id"], Value::from(live_call_op.as_str()));
        sid = header(&r, "x-graphvcr-session");
    }
    let rep = body_json(&admin(&rp.url(), "GET", &format!("sessions/{sid}")).await);
    for s in rep["served"].as_array().unwrap() {
        seqs.push((s["seq"].as_u64().unwrap(), s["repeated"].as_bool().unwrap()));
    }
    assert_eq!(seqs, vec![(0, false), (1, false), (1, true)]);
    let _ = rp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_json_bodies_are_recorded_as_text_and_replay() {
    init();
    let graph = FakeGraph::start().await;
    let st = store();
    let rec = start_record(record_config("text", &graph), &st.store, false).await;
    let call = guid(0xca11, 51);
    let r = send(
        "POST",
        &format!("{}/v1.0/communications/calls/{call}/keepAlive", rec.url()),
        &[("content-type", "text/plain"), ("authorization", "Bearer x")],
        "ping {not json",
    )
    .await;
    assert_eq!(r.status, 200);
    rec.stop().await;
    let c = st.store.load("text").unwrap().unwrap();
    assert_eq!(c.events[0].request.body, Body::Text("ping {not json".into()));

    let rp = start_replay(replay_config("text", None), &st.store).await;
    let r = send(
        "POST",
        &format!("{}/v1.0/communications/calls/{}/keepAlive", rp.url(), guid(0xca11, 52)),
        &[("content-type", "text/plain")],
        "ping {not json",
    )
    .await;
    assert_eq!(r.status, 200);
    let _ = rp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413_and_nothing_is_stored() {
    init();
    let graph = FakeGraph::start().await;
    let st = store();
    let mut cfg = record_config("big", &graph);
    cfg.limits.max_body = 1024;
    let rec = start_record(cfg, &st.store, false).await;
    let big = json!({"clientContext": "x".repeat(4000)});
    let r = send(
        "POST",
        &format!(
            "{}/v1.0/communications/calls/{}/participants/invite",
            rec.url(),
            guid(0xca11, 61)
        ),
        &[JSON, ("authorization", "Bearer x")],
        serde_json::to_vec(&big).unwrap(),
    )
    .await;
    assert_eq!(r.status, 413);
    assert_eq!(body_json(&r)["error"]["code"], "requestEntityTooLarge");
    assert_eq!(rec.stop().await.events, 0);
    assert!(graph.seen().is_empty(), "nothing may reach the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_gets_502_and_slow_upstream_504_and_nothing_is_stored() {
    init();
    let graph = FakeGraph::start().await;
    let st = store();
    // a port nobody listens on
    let port = ClosedPort::new();
    let closed = port.addr();
    let mut cfg = record_config("down", &graph);
    cfg.upstream = graphvcr::config::UpstreamUrl::parse(&format!("https://{closed}")).unwrap();
    let rec = start_record(cfg, &st.store, false).await;
    let body = serde_json::to_vec(&invite_body(&guid(0xc0c0, 71), &guid(0x05e7, 71), None)).unwrap();
    let path = format!("/v1.0/communications/calls/{}/participants/invite", guid(0xca11, 71));
    let r = send(
        "POST",
        &format!("{}{path}", rec.url()),
        &[JSON, ("authorization", "Bearer x")],
        body.clone(),
    )
    .await;
    assert_eq!(r.status, 502);
    let e = body_json(&r);
    assert_eq!(e["error"]["code"], "badGateway");
    assert_eq!(e["error"]["innerError"]["graphvcr-failed"], "upstream");
    assert_eq!(rec.stop().await.events, 0);

    let mut cfg = record_config("slow", &graph);
    cfg.upstream_timeout = Duration::from_millis(300);
    graph.behaviour.delay_ms.store(2000, Ordering::SeqCst);
    let rec = start_record(cfg, &st.store, false).await;
    let r = send(
        "POST",
        &format!("{}{path}", rec.url()),
        &[JSON, ("authorization", "Bearer x")],
        body,
    )
    .await;
    assert_eq!(r.status, 504);
    assert_eq!(body_json(&r)["error"]["code"], "gatewayTimeout");
    assert_eq!(rec.stop().await.events, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_over_an_existing_cassette_needs_overwrite() {
    init();
    let graph = FakeGraph::start().await;
    let st = store();
    record_one_invite(&graph, &st, "twice", &jwt("bot")).await;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let deps = graphvcr::app::Deps {
        store: st.store.clone(),
        clock: clock(),
    };
    let err = graphvcr::app::run_record(record_config("twice", &graph), deps, l, None, async {})
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("--overwrite"), "{err}");
    assert_eq!(
        st.store.info("twice").unwrap().unwrap().events,
        1,
        "the old recording is intact"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_never_overwrites_a_cassette_recorded_under_the_same_name() {
    init();
    let graph = FakeGraph::start().await;
    let st = store();
    // a recording that happens to share a bundled cassette's name
    record_one_invite(&graph, &st, "invite-one-participant", &jwt("bot")).await;
    let before = st.store.load("invite-one-participant").unwrap().unwrap();
    let n = graphvcr::app::import_changed(&*st.store, &bundled()).unwrap();
    assert_eq!(n, 3, "the other bundled cassettes are imported");
    assert_eq!(st.store.load("invite-one-participant").unwrap().unwrap(), before);
    // a file that changed is imported again, from the same path
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.json");
    let mut c = st.store.load("invite-pstn-participant").unwrap().unwrap();
    st.store.remove("invite-pstn-participant").unwrap();
    std::fs::write(&file, graphvcr::cassette::json::to_string(&c)).unwrap();
    assert_eq!(graphvcr::app::import_changed(&*st.store, dir.path()).unwrap(), 1);
    assert_eq!(
        graphvcr::app::import_changed(&*st.store, dir.path()).unwrap(),
        0,
        "unchanged: skipped"
    );
    c.meta.recorded_at = "2026-11-28T00:00:00Z".into();
    std::fs::write(&file, graphvcr::cassette::json::to_string(&c)).unwrap();
    assert_eq!(graphvcr::app::import_changed(&*st.store, dir.path()).unwrap(), 1);
    assert_eq!(
        st.store
            .load("invite-pstn-participant")
            .unwrap()
            .unwrap()
            .meta
            .recorded_at,
        "2026-11-28T00:00:00Z"
    );
}
