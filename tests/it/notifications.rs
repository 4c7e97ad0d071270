//! Callback notifications: recorded on the callback face and tied to their exchange,
//! re-delivered in replay with the live call's ids, paced, retried, never crossed.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;
use graphvcr::cassette::Kind;
use graphvcr::config::BotUrl;

const JSON: (&str, &str) = ("content-type", "application/json");

/// Records one invite with its two notifications through both faces; checks what the
/// bot got and what was stored. Returns the recorded call, context, user and op ids.
pub(crate) async fn record_invite_flow(graph: &FakeGraph, bot: &FakeBot, st: &TestStore) -> [String; 4] {
    let mut cfg = record_config("flow", graph);
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
    // a notification is stored when it arrives: it may precede its exchange's response
    let invite = c.events.iter().find(|e| e.kind == Kind::Exchange).unwrap().seq;
    let notes: Vec<_> = c.events.iter().filter(|e| e.kind == Kind::Notification).collect();
    assert_eq!(c.events.len(), 3);
    assert!(notes.iter().all(|n| n.follows == Some(invite)), "{notes:?}");
    assert!(
        notes.iter().all(|n| n.response.status == Some(202)),
        "the bot's answer is recorded"
    );
    // Graph's callback JWT never reaches the store nor an export
    st.store.flush().unwrap();
    let sig = jwt(GRAPH_JWT_TAG);
    let sig = sig.rsplit('.').next().unwrap();
    for (path, bytes) in all_bytes(st.dir.path()) {
        assert!(!contains(&bytes, sig.as_bytes()), "callback JWT in {}", path.display());
    }
    assert!(!graphvcr::app::export(&*st.store, "flow", None).unwrap().contains(sig));

    [call, ctx, user, rec_op]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_are_recorded_then_replayed_for_the_live_call() {
    init();
    let graph = FakeGraph::start().await;
    let bot = FakeBot::start().await;
    let st = store();
    let [call, ctx, user, rec_op] = record_invite_flow(&graph, &bot, &st).await;
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
    let answered = Instant::now();
    let got = bot.wait_for(2, Duration::from_secs(10)).await;
    assert!(
        got[0].at < answered,
        "the operation result reached the bot before the response"
    );
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

/// A create-call body as the SDKs send it, joining the meeting of `thread`.
fn create_call(callback: &str, user: &str, thread: &str) -> Value {
    serde_json::json!({
        "@odata.type": "#microsoft.graph.call",
        "callbackUri": callback,
        "chatInfo": {"@odata.type": "#microsoft.graph.chatInfo", "threadId": thread, "messageId": "0"},
        "targets": [{"@odata.type": "#microsoft.graph.invitationParticipantInfo", "identity": {"@odata.type": "#microsoft.graph.identitySet", "user": {"@odata.type": "#microsoft.graph.identity", "displayName": "John", "id": user}}}],
        "requestedModalities": ["audio"],
        "mediaConfig": {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
        "tenantId": TENANT
    })
}

/// Records a create-call (and its two call-state notifications) and its DELETE.
async fn record_create_call(graph: &FakeGraph, bot: &FakeBot, st: &TestStore) -> String {
    let mut cfg = record_config("create", graph);
    cfg.bot_url = Some(BotUrl::parse(&bot.url()).unwrap());
    let rec = start_record(cfg, &st.store, true).await;
    let body = create_call(
        &rec.callback_url("/api/v2/callback?instance=7"),
        &guid(0x05e7, 1),
        "19:meeting_UmVjb3JkZWQ@thread.v2",
    );
    let r = send(
        "POST",
        &format!("{}/v1.0/communications/calls", rec.url()),
        &[JSON, ("authorization", "Bearer x")],
        serde_json::to_vec(&body).unwrap(),
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
    let create = c
        .events
        .iter()
        .find(|e| e.kind == Kind::Exchange && e.request.method == "POST")
        .unwrap()
        .seq;
    let follows: Vec<Option<u64>> = c
        .events
        .iter()
        .filter(|e| e.kind == Kind::Notification)
        .map(|e| e.follows)
        .collect();
    assert_eq!(
        follows,
        vec![Some(create), Some(create)],
        "call-state notifications follow the create call"
    );
    rec_call
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_call_routes_notifications_to_the_live_callback_uri_and_its_minted_id_finds_the_session() {
    init();
    let graph = FakeGraph::start().await;
    let bot = FakeBot::start().await;
    let st = store();
    let rec_call = record_create_call(&graph, &bot, &st).await;
    // both live joins are to the same meeting (one chat thread), which is not the recorded one
    let thread = "19:meeting_TGl2ZU1lZXRpbmc@thread.v2";
    let create = |callback: &str, user: &str| create_call(callback, user, thread);

    let bot2 = FakeBot::start().await;
    let mut cfg = replay_config("create", Some(&bot2));
    cfg.pacing = fast();
    let rp = start_replay(cfg, &st.store).await;
    let live_cb = "https://bot.contoso.com/hooks/calls?instance=9";
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
    let port = ClosedPort::new();
    let closed = port.addr();
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
