//! Callback notifications: recorded on the callback face and tied to their exchange,
//! re-delivered in replay with the live call's ids, paced, retried, never crossed.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;
use graphvcr::cassette::Kind;
use graphvcr::config::{BotUrl, Pacing};

const JSON: (&str, &str) = ("content-type", "application/json");

fn fast() -> Pacing {
    Pacing {
        fast: true,
        ..Pacing::default()
    }
}

fn resource_url(r: &Received) -> String {
    r.body["value"][0]["resourceUrl"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_are_recorded_then_replayed_for_the_live_call() {
    init();
    let graph = FakeGraph::start().await;
    let bot = FakeBot::start().await;
    let st = store();
    let mut cfg = record_config("flow", &graph);
    cfg.bot_url = Some(BotUrl::parse(&bot.url()).unwrap());
    let rec = start_record(cfg, &st.store, true).await;
    graph.set_callback(&rec.callback_url("/api/calls"));
    let (call, ctx, user) = (guid(0xca11, 1), guid(0xc0c0, 1), guid(0x05e7, 1));
    let r = send(
        "POST",
        &format!("{}/v1.0/communications/calls/{call}/participants/invite", rec.url()),
        &[JSON, ("authorization", "Bearer bot-token")],
        serde_json::to_vec(&invite_body(&ctx, &user, None)).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    let rec_op = body_json(&r)["id"].as_str().unwrap().to_string();

    // record: the bot gets Graph's notifications through graphvcr, headers and all
    let got = bot.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got[0].body["value"][0]["changeType"], "deleted");
    assert_eq!(got[1].body["value"][0]["changeType"], "updated");
    let h = &got[0].headers;
    assert_eq!(h["user-agent"], "Microsoft-Skype/3.0,(Calling/1.0)");
    assert!(
        h["authorization"].to_str().unwrap().starts_with("Bearer eyJ"),
        "the bot validates Graph's JWT itself"
    );
    assert!(h.contains_key("x-microsoft-skype-chain-id") && h.contains_key("x-microsoft-skype-message-id"));
    rec.stop().await;

    let c = st.store.load("flow").unwrap().unwrap();
    let kinds: Vec<(Kind, Option<u64>)> = c.events.iter().map(|e| (e.kind, e.follows)).collect();
    assert_eq!(
        kinds,
        vec![
            (Kind::Exchange, None),
            (Kind::Notification, Some(0)),
            (Kind::Notification, Some(0))
        ]
    );
    assert_eq!(c.events[1].response.status, Some(202), "the bot's answer is recorded");
    // Graph's callback JWT never reaches the store nor an export
    st.store.flush().unwrap();
    let sig = jwt(GRAPH_JWT_TAG);
    let sig = sig.rsplit('.').next().unwrap();
    for (path, bytes) in all_bytes(st.dir.path()) {
        assert!(!contains(&bytes, sig.as_bytes()), "callback JWT in {}", path.display());
    }
    assert!(!graphvcr::app::export(&*st.store, "flow", None).unwrap().contains(sig));

    // replay for another call: the bot gets both notifications, rewritten
    let bot2 = FakeBot::start().await;
    let mut cfg = replay_config("flow", Some(&bot2));
    cfg.pacing = fast();
    cfg.notify_auth = Some("Bearer replay-test".into());
    let rp = start_replay(cfg, &st.store).await;
    let (call2, ctx2, user2) = (guid(0xca11, 2), guid(0xc0c0, 2), guid(0x05e7, 2));
    let r = send(
        "POST",
        &format!("{}/v1.0/communications/calls/{call2}/participants/invite", rp.url()),
        &[JSON],
        serde_json::to_vec(&invite_body(&ctx2, &user2, None)).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    let op = body_json(&r)["id"].as_str().unwrap().to_string();
    assert_ne!(op, rec_op);
    assert!(header(&r, "location").ends_with(&format!("/calls/{call2}/operations/{op}")));
    let got = bot2.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2);
    let (done, roster) = (&got[0].body["value"][0], &got[1].body["value"][0]);
    assert_eq!(done["changeType"], "deleted", "recorded order kept");
    assert_eq!(
        done["resourceUrl"],
        Value::from(format!("/communications/calls/{call2}/operations/{op}"))
    );
    assert_eq!(
        done["resource"],
        Value::from(format!("/app/calls/{call2}/operations/{op}"))
    );
    assert_eq!(done["resourceData"]["id"], Value::from(op.as_str()));
    assert_eq!(done["resourceData"]["clientContext"], Value::from(ctx2.as_str()));
    assert_eq!(
        roster["resourceUrl"],
        Value::from(format!("/communications/calls/{call2}/participants"))
    );
    assert_eq!(
        roster["resourceData"][0]["info"]["identity"]["user"]["id"],
        Value::from(user2.as_str())
    );
    for n in &got {
        for old in [&call, &ctx, &user, &rec_op] {
            assert!(!mentions(&n.body, old), "recorded id {old} in {}", n.body);
        }
        assert_eq!(n.path, "/api/calls");
        assert_eq!(n.headers["authorization"], "Bearer replay-test");
        assert_eq!(
            n.headers["x-microsoft-skype-chain-id"].to_str().unwrap(),
            call2,
            "chain id bound like the call id"
        );
    }
    assert_ne!(
        got[0].headers["x-microsoft-skype-message-id"],
        got[1].headers["x-microsoft-skype-message-id"]
    );
    let out = rp.stop().await.unwrap();
    let delivered: Vec<bool> = out
        .reports
        .iter()
        .flat_map(|r| r.notifications.iter().map(|d| d.delivered))
        .collect();
    assert_eq!(delivered, vec![true, true]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_that_arrives_before_its_response_still_follows_it() {
    init();
    let graph = FakeGraph::start().await;
    let bot = FakeBot::start().await;
    let st = store();
    graph.behaviour.notify_before_response.store(true, Ordering::SeqCst);
    let mut cfg = record_config("early", &graph);
    cfg.bot_url = Some(BotUrl::parse(&bot.url()).unwrap());
    let rec = start_record(cfg, &st.store, true).await;
    graph.set_callback(&rec.callback_url("/api/calls"));
    // an unrelated exchange first, so "latest exchange" alone would be wrong
    let other = send(
        "POST",
        &format!("{}/v1.0/communications/calls/{}/keepAlive", rec.url(), guid(0xca11, 9)),
        &[("authorization", "Bearer x")],
        Vec::new(),
    )
    .await;
    assert_eq!(other.status, 200);
    let r = send(
        "POST",
        &format!(
            "{}/v1.0/communications/calls/{}/participants/invite",
            rec.url(),
            guid(0xca11, 10)
        ),
        &[JSON, ("authorization", "Bearer x")],
        serde_json::to_vec(&invite_body(&guid(0xc0c0, 10), &guid(0x05e7, 10), None)).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    let got = bot.wait_for(2, Duration::from_secs(10)).await;
    assert!(got[0].at < Instant::now());
    rec.stop().await;
    let c = st.store.load("early").unwrap().unwrap();
    let invite = c
        .events
        .iter()
        .find(|e| e.kind == Kind::Exchange && e.request.uri.ends_with("/invite"))
        .unwrap()
        .seq;
    let notes: Vec<_> = c.events.iter().filter(|e| e.kind == Kind::Notification).collect();
    assert_eq!(notes.len(), 2);
    for n in notes {
        assert_eq!(n.follows, Some(invite), "notification #{} follows the invite", n.seq);
        assert!(n.seq > invite);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incoming_call_follows_nothing_and_replays_at_start_with_a_minted_call_id() {
    init();
    let graph = FakeGraph::start().await;
    let bot = FakeBot::start().await;
    let st = store();
    let mut cfg = record_config("incoming", &graph);
    cfg.bot_url = Some(BotUrl::parse(&bot.url()).unwrap());
    let rec = start_record(cfg, &st.store, true).await;
    graph.set_callback(&rec.callback_url("/api/calls"));
    let call = guid(0x1c0, 1);
    let r = graph.post_incoming_call(&call).await;
    assert_eq!(r.status, 202, "the bot's answer goes back to Graph");
    bot.wait_for(1, Duration::from_secs(10)).await;
    let answer = serde_json::json!({
        "callbackUri": "https://bot.contoso.com/api/calls",
        "acceptedModalities": ["audio"],
        "mediaConfig": {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}
    });
    let r = send(
        "POST",
        &format!("{}/v1.0/communications/calls/{call}/answer", rec.url()),
        &[JSON, ("authorization", "Bearer x")],
        serde_json::to_vec(&answer).unwrap(),
    )
    .await;
    assert_eq!(r.status, 202);
    rec.stop().await;
    let c = st.store.load("incoming").unwrap().unwrap();
    let note = c.events.iter().find(|e| e.kind == Kind::Notification).unwrap();
    assert_eq!(note.follows, None);

    let bot2 = FakeBot::start().await;
    let mut cfg = replay_config("incoming", Some(&bot2));
    cfg.pacing = fast();
    let rp = start_replay(cfg, &st.store).await;
    let got = bot2.wait_for(1, Duration::from_secs(10)).await;
    let data = &got[0].body["value"][0]["resourceData"];
    let minted = data["id"].as_str().unwrap().to_string();
    assert_ne!(minted, call);
    assert_eq!(
        got[0].body["value"][0]["resourceUrl"],
        Value::from(format!("/communications/calls/{minted}"))
    );
    assert_eq!(data["tenantId"], Value::from(TENANT));
    // the bot answers the call it was told about, under its minted id
    let r = send(
        "POST",
        &format!("{}/v1.0/communications/calls/{minted}/answer", rp.url()),
        &[JSON],
        serde_json::to_vec(&answer).unwrap(),
    )
    .await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let out = rp.stop().await.unwrap();
    assert_eq!(
        out.reports.len(),
        1,
        "the answer joined the session that announced the call"
    );
    assert_eq!(out.reports[0].served.len(), 1);
}

/// Rewrites every id in `s` to a fresh one (same mapping for the same id).
fn fresh_ids(s: &str, map: &mut HashMap<String, String>, n: &mut u64) -> String {
    let mut out = String::new();
    let mut last = 0;
    for t in graphvcr::ids::scan(s) {
        out.push_str(&s[last..t.start]);
        let old = s[t.start..t.end].to_ascii_lowercase();
        let new = map
            .entry(old.clone())
            .or_insert_with(|| {
                *n += 1;
                if old.starts_with('+') {
                    format!("+1555{:07}", *n)
                } else {
                    guid(0xf7e5, *n)
                }
            })
            .clone();
        out.push_str(&new);
        last = t.end;
    }
    out.push_str(&s[last..]);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bundled_cassette_replays_with_its_notifications() {
    init();
    let st = store();
    let names = [
        "invite-one-participant",
        "invite-multiple-participants",
        "invite-replace-p2p-call",
        "invite-pstn-participant",
    ];
    for (i, name) in names.iter().enumerate() {
        let bot = FakeBot::start().await;
        let mut cfg = bundled_config(name, Some(&bot));
        cfg.pacing = fast();
        let rp = start_replay(cfg, &st.store).await;
        let c = st.store.load(name).unwrap().unwrap();
        let req = &c.events[0].request;
        let mut map = HashMap::new();
        let mut n = 100 * i as u64;
        let uri = fresh_ids(&req.uri, &mut map, &mut n);
        let body = fresh_ids(
            &serde_json::to_string(req.body.json().unwrap()).unwrap(),
            &mut map,
            &mut n,
        );
        let r = send("POST", &format!("{}{uri}", rp.url()), &[JSON], body).await;
        assert_eq!(r.status, 200, "{name}: {}", String::from_utf8_lossy(&r.body));
        let got = bot.wait_for(2, Duration::from_secs(10)).await;
        assert_eq!(got.len(), 2, "{name}");
        let recorded_call = graphvcr::ids::scan(&req.uri)[0].clone();
        let recorded_call = &req.uri[recorded_call.start..recorded_call.end];
        for (k, note) in got.iter().enumerate() {
            let url = resource_url(note);
            assert!(!url.contains(recorded_call), "{name}: recorded call id in {url}");
            let live_ids: Vec<&String> = map.values().collect();
            assert!(
                live_ids.iter().any(|id| url.contains(id.as_str())),
                "{name} #{k}: {url} names no live id"
            );
            let recorded = c.events[k + 1].request.body.json().unwrap();
            assert_eq!(
                note.body["value"][0]["changeType"], recorded["value"][0]["changeType"],
                "{name}: order"
            );
        }
        let out = rp.stop().await.unwrap();
        assert!(out.reports.iter().all(|r| r.missed.is_empty()), "{name}");
        assert_eq!(out.unused, Vec::<u64>::new(), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_timing_keeps_the_gaps_and_fast_keeps_the_order() {
    init();
    let st = store();
    let bot = FakeBot::start().await;
    let cfg = bundled_config("invite-one-participant", Some(&bot));
    let rp = start_replay(cfg, &st.store).await;
    let c = st.store.load("invite-one-participant").unwrap().unwrap();
    let done = c.events[0].at_ms + c.events[0].duration_ms.unwrap();
    let offsets: Vec<u64> = c.events[1..].iter().map(|e| e.at_ms - done).collect();
    let invite =
        |n: u64| serde_json::to_vec(&invite_body(&guid(0xc0c0, n), &guid(0x05e7, n), Some(&guid(0x9292, n)))).unwrap();
    let r = send(
        "POST",
        &format!(
            "{}/beta/communications/calls/{}/participants/invite",
            rp.url(),
            guid(0xca11, 81)
        ),
        &[JSON],
        invite(81),
    )
    .await;
    let t0 = Instant::now();
    assert_eq!(r.status, 200);
    let got = bot.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got[0].body["value"][0]["changeType"], "deleted");
    assert_eq!(got[1].body["value"][0]["changeType"], "updated");
    let slack = Duration::from_millis(100);
    for (n, off) in got.iter().zip(&offsets) {
        let waited = n.at.saturating_duration_since(t0);
        assert!(
            waited + slack >= Duration::from_millis(*off),
            "delivered after {waited:?}, recorded offset {off} ms"
        );
    }
    let _ = rp.stop().await;

    let bot = FakeBot::start().await;
    let mut cfg = replay_config("invite-one-participant", Some(&bot));
    cfg.pacing = fast();
    let rp = start_replay(cfg, &st.store).await;
    for k in 0..3u64 {
        let r = send(
            "POST",
            &format!(
                "{}/beta/communications/calls/{}/participants/invite",
                rp.url(),
                guid(0xca11, 90 + k)
            ),
            &[JSON],
            invite(90 + k),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    let got = bot.wait_for(6, Duration::from_secs(10)).await;
    for (call, notes) in by_key(&got, |r| {
        resource_url(r).split('/').nth(3).unwrap_or_default().to_string()
    }) {
        let kinds: Vec<&str> = notes
            .iter()
            .map(|n| n.body["value"][0]["changeType"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, vec!["deleted", "updated"], "call {call}");
    }
    let _ = rp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_that_is_down_at_first_gets_each_notification_once_after_retries() {
    init();
    let st = store();
    // nothing listens here yet
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cfg = replay_config("invite-one-participant", None);
    cfg.bot_url = Some(BotUrl::parse(&format!("http://{addr}")).unwrap());
    cfg.cassettes_dir = Some(bundled());
    cfg.pacing = fast();
    let rp = start_replay(cfg, &st.store).await;
    let r = invite(&rp.url(), "beta", 101).await;
    assert_eq!(r.status, 200);
    let sid = header(&r, "x-graphvcr-session");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let bot = FakeBot::on(tokio::net::TcpListener::bind(addr).await.unwrap());
    bot.fail_first.store(1, Ordering::SeqCst); // and one 503 once it is up
    let got = bot.wait_for(2, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bot.received().len(), 2, "each notification delivered once");
    assert_eq!(got[0].body["value"][0]["changeType"], "deleted");
    let rep = body_json(&admin(&rp.url(), "GET", &format!("sessions/{sid}")).await);
    let first = &rep["notifications"][0];
    assert_eq!(first["delivered"], true);
    let attempts = first["attempts"].as_array().unwrap();
    assert!(attempts.len() >= 2, "retried: {attempts:?}");
    assert!(attempts[0]["error"].is_string(), "first attempt refused: {attempts:?}");
    assert!(
        attempts.iter().any(|a| a["status"] == 503),
        "the 503 was retried: {attempts:?}"
    );
    let _ = rp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_sessions_never_cross() {
    init();
    let st = store();
    let bot = FakeBot::start().await;
    let mut cfg = bundled_config("invite-one-participant", Some(&bot));
    cfg.pacing = fast();
    let rp = start_replay(cfg, &st.store).await;
    let base = Arc::new(rp.url());
    let mut tasks = Vec::new();
    for k in 0..200u64 {
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let (call, ctx, user) = (guid(0xca11, 1000 + k), guid(0xc0c0, 1000 + k), guid(0x05e7, 1000 + k));
            let r = send(
                "POST",
                &format!("{base}/beta/communications/calls/{call}/participants/invite"),
                &[JSON],
                serde_json::to_vec(&invite_body(&ctx, &user, Some(&guid(0x9292, 1000 + k)))).unwrap(),
            )
            .await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            (call, ctx, user, body_json(&r)["id"].as_str().unwrap().to_string())
        }));
    }
    let mut calls = HashMap::new();
    for t in tasks {
        let (call, ctx, user, op) = t.await.unwrap();
        calls.insert(call, (ctx, user, op));
    }
    let got = bot.wait_for(400, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(bot.received().len(), 400, "none lost, none duplicated");
    let grouped = by_key(&got, |r| {
        resource_url(r).split('/').nth(3).unwrap_or_default().to_string()
    });
    assert_eq!(grouped.len(), 200);
    for (call, notes) in grouped {
        let (ctx, user, op) = calls
            .get(&call)
            .unwrap_or_else(|| panic!("notification for unknown call {call}"));
        assert_eq!(notes.len(), 2, "call {call}");
        let done = &notes[0].body["value"][0];
        assert_eq!(done["changeType"], "deleted");
        assert_eq!(done["resourceData"]["clientContext"], Value::from(ctx.as_str()));
        assert_eq!(done["resourceData"]["id"], Value::from(op.as_str()));
        let roster = &notes[1].body["value"][0];
        assert_eq!(
            roster["resourceData"][0]["info"]["identity"]["application"]["id"],
            Value::from(user.as_str())
        );
    }
    let _ = rp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_call_routes_notifications_to_the_live_callback_uri_and_its_minted_id_finds_the_session() {
    init();
    let graph = FakeGraph::start().await;
    let bot = FakeBot::start().await;
    let st = store();
    let mut cfg = record_config("create", &graph);
    cfg.bot_url = Some(BotUrl::parse(&bot.url()).unwrap());
    let rec = start_record(cfg, &st.store, true).await;
    // both live joins are to the same meeting (one chat thread), which is not the recorded one
    let thread = std::cell::Cell::new("19:meeting_UmVjb3JkZWQ@thread.v2");
    let create = |callback: &str, user: &str| {
        serde_json::json!({
            "@odata.type": "#microsoft.graph.call",
            "callbackUri": callback,
            "chatInfo": {"@odata.type": "#microsoft.graph.chatInfo", "threadId": thread.get(), "messageId": "0"},
            "targets": [{"@odata.type": "#microsoft.graph.invitationParticipantInfo", "identity": {"@odata.type": "#microsoft.graph.identitySet", "user": {"@odata.type": "#microsoft.graph.identity", "displayName": "John", "id": user}}}],
            "requestedModalities": ["audio"],
            "mediaConfig": {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
            "tenantId": TENANT
        })
    };
    let r = send(
        "POST",
        &format!("{}/v1.0/communications/calls", rec.url()),
        &[JSON, ("authorization", "Bearer x")],
        serde_json::to_vec(&create(
            &rec.callback_url("/api/v2/callback?instance=7"),
            &guid(0x05e7, 1),
        ))
        .unwrap(),
    )
    .await;
    assert_eq!(r.status, 201);
    let rec_call = body_json(&r)["id"].as_str().unwrap().to_string();
    let got = bot.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(
        got[0].path, "/api/v2/callback?instance=7",
        "record forwards path and query to --bot-url"
    );
    let r = send(
        "DELETE",
        &format!("{}/v1.0/communications/calls/{rec_call}", rec.url()),
        &[("authorization", "Bearer x")],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 204);
    rec.stop().await;
    let c = st.store.load("create").unwrap().unwrap();
    let follows: Vec<Option<u64>> = c
        .events
        .iter()
        .filter(|e| e.kind == Kind::Notification)
        .map(|e| e.follows)
        .collect();
    assert_eq!(
        follows,
        vec![Some(0), Some(0)],
        "call-state notifications follow the create call"
    );

    let bot2 = FakeBot::start().await;
    let mut cfg = replay_config("create", Some(&bot2));
    cfg.pacing = fast();
    let rp = start_replay(cfg, &st.store).await;
    let live_cb = "https://bot.contoso.com/hooks/calls?instance=9";
    thread.set("19:meeting_TGl2ZU1lZXRpbmc@thread.v2");
    let r = send(
        "POST",
        &format!("{}/v1.0/communications/calls", rp.url()),
        &[JSON],
        serde_json::to_vec(&create(live_cb, &guid(0x05e7, 2))).unwrap(),
    )
    .await;
    assert_eq!(r.status, 201);
    let v = body_json(&r);
    let minted = v["id"].as_str().unwrap().to_string();
    assert_ne!(minted, rec_call);
    assert_eq!(
        v["callbackUri"],
        Value::from(live_cb),
        "echoed callbackUri is the live one"
    );
    assert!(header(&r, "location").ends_with(&format!("/v1.0/communications/calls/{minted}")));
    let got = bot2.wait_for(2, Duration::from_secs(10)).await;
    for n in &got {
        assert_eq!(
            n.path, "/hooks/calls?instance=9",
            "the learned callbackUri's path, on --bot-url's host"
        );
        assert_eq!(resource_url(n), format!("/communications/calls/{minted}"));
    }
    let r = send(
        "DELETE",
        &format!("{}/v1.0/communications/calls/{minted}", rp.url()),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 204);
    // another test's create-call, in parallel, is a call (and a session) of its own
    let r = send(
        "POST",
        &format!("{}/v1.0/communications/calls", rp.url()),
        &[JSON],
        serde_json::to_vec(&create(
            "https://bot.contoso.com/hooks/calls?instance=10",
            &guid(0x05e7, 3),
        ))
        .unwrap(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let other = body_json(&r)["id"].as_str().unwrap().to_string();
    assert_ne!(other, minted);
    bot2.wait_for(4, Duration::from_secs(10)).await;
    let out = rp.stop().await.unwrap();
    assert_eq!(out.reports.len(), 2);
    let first = out
        .reports
        .iter()
        .find(|r| r.served_total == 2)
        .expect("the DELETE found the session by its minted call id");
    assert!(first.bindings.iter().any(|(_, l)| *l == minted));
    assert!(out.unused.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_that_is_down_while_recording_gets_graph_a_502_and_the_notification_is_kept() {
    init();
    let graph = FakeGraph::start().await;
    let st = store();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cfg = record_config("botdown", &graph);
    cfg.bot_url = Some(BotUrl::parse(&format!("http://{closed}")).unwrap());
    let rec = start_record(cfg, &st.store, true).await;
    graph.set_callback(&rec.callback_url("/api/calls"));
    let r = graph.post_incoming_call(&guid(0x1c0, 2)).await;
    assert_eq!(r.status, 502);
    assert_eq!(body_json(&r)["error"]["code"], "badGateway");
    rec.stop().await;
    let c = st.store.load("botdown").unwrap().unwrap();
    assert_eq!(c.events.len(), 1);
    let err = c.events[0].response.error.clone().unwrap_or_default();
    assert!(err.contains("cannot connect"), "{err}");
    assert!(
        c.events[0].request.body.json().is_some(),
        "the notification itself is kept"
    );
}
