//! Kill -9 during recording, with concurrent exchanges and notifications at full rate:
//! every exchange whose response reached the bot, and every notification Graph got an
//! answer for, is in the store — the real binary against the in-process fake Graph.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue};
use http::Method;
use serde_json::{json, Value};

use crate::common::*;
use graphvcr::cassette::{Kind, SledStore, Store};

const TRIALS: u64 = 20;
const WORKERS: u64 = 6;

type Answered = Arc<Mutex<Vec<String>>>;

fn json_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("authorization", HeaderValue::from_static("Bearer bot-token"));
    h
}

/// The bot's invites, each with a clientContext of its own, until `stop`.
async fn invites(url: String, worker: u64, stop: Arc<AtomicBool>, answered: Answered) {
    let c = client();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let ctx = guid(0xc0c0_0000 + worker as u32, n);
        let body = invite_body(&ctx, &guid(0x05e7, n), None);
        let target = format!(
            "{url}/v1.0/communications/calls/{}/participants/invite",
            guid(0xca11, worker)
        );
        let bytes = Bytes::from(serde_json::to_vec(&body).unwrap());
        match c.send(Method::POST, &target, json_headers(), bytes).await {
            Ok(r) if r.status == 200 => answered.lock().unwrap().push(ctx),
            Ok(_) => {}
            Err(_) => tokio::task::yield_now().await,
        }
    }
}

/// Graph's notifications, each marked, until `stop`.
async fn notifications(url: String, worker: u64, stop: Arc<AtomicBool>, answered: Answered) {
    let c = client();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let mark = guid(0x0a1e_0000 + worker as u32, n);
        let body = json!({"value": [{"changeType": "updated",
            "resourceUrl": format!("/communications/calls/{}", guid(0xca11, 100 + worker)),
            "resourceData": {"id": mark, "state": "established"}}]});
        let bytes = Bytes::from(serde_json::to_vec(&body).unwrap());
        match c
            .send(Method::POST, &format!("{url}/api/calls"), json_headers(), bytes)
            .await
        {
            Ok(r) if r.status == 202 => answered.lock().unwrap().push(mark),
            Ok(_) => {}
            Err(_) => tokio::task::yield_now().await,
        }
    }
}

fn has(events: &[graphvcr::cassette::Event], kind: Kind, want: &str, at: impl Fn(&Value) -> &Value) -> bool {
    events
        .iter()
        .filter(|e| e.kind == kind)
        .filter_map(|e| e.request.body.json())
        .any(|v| at(v).as_str() == Some(want))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_recording_loses_nothing_that_was_answered() {
    init();
    let graph = FakeGraph::start().await;
    let bot = FakeBot::start().await;
    let mut totals = (0, 0);
    for trial in 0..TRIALS {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let args = [
            "record",
            "--cassette",
            "kill",
            "--store",
            store.to_str().unwrap(),
            "--upstream",
            &graph.url(),
            "--upstream-ca",
            graph.pki.ca_pem.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--callback-listen",
            "127.0.0.1:0",
            "--bot-url",
            &bot.url(),
        ];
        let mut rec = start_bin(&args, 2, Duration::from_secs(20)).expect("record starts");
        let (face, callbacks) = (
            format!("http://{}", rec.addr("graph")),
            format!("http://{}", rec.addr("callbacks")),
        );
        graph.set_callback(&format!("{callbacks}/api/calls"));
        let stop = Arc::new(AtomicBool::new(false));
        let (exchanges, notes): (Answered, Answered) = Default::default();
        let mut tasks = Vec::new();
        for w in 0..WORKERS {
            tasks.push(tokio::spawn(invites(face.clone(), w, stop.clone(), exchanges.clone())));
            tasks.push(tokio::spawn(notifications(
                callbacks.clone(),
                w,
                stop.clone(),
                notes.clone(),
            )));
        }
        // the moment of the kill is what varies between trials
        tokio::time::sleep(Duration::from_millis(150 + trial * 97 % 250)).await;
        kill9(rec.child.id());
        let _ = tokio::task::spawn_blocking(move || rec.child.wait()).await;
        let (exchanges, notes) = (exchanges.lock().unwrap().clone(), notes.lock().unwrap().clone());
        stop.store(true, Ordering::SeqCst);
        for t in tasks {
            let _ = t.await;
        }
        let s = SledStore::open(&store).expect("the store opens after kill -9");
        assert!(s.damage().is_empty(), "trial {trial}: {:?}", s.damage());
        let events = s.load("kill").unwrap().unwrap().events;
        for ctx in &exchanges {
            assert!(
                has(&events, Kind::Exchange, ctx, |v| &v["clientContext"]),
                "trial {trial}: answered invite {ctx} lost"
            );
        }
        for mark in &notes {
            assert!(
                has(&events, Kind::Notification, mark, |v| &v["value"][0]["resourceData"]
                    ["id"]),
                "trial {trial}: answered notification {mark} lost"
            );
        }
        totals.0 += exchanges.len();
        totals.1 += notes.len();
    }
    eprintln!(
        "kill -9: {TRIALS} trials, {} answered exchanges and {} answered notifications, none lost",
        totals.0, totals.1
    );
    assert!(totals.0 > 0 && totals.1 > 0, "the load reached graphvcr: {totals:?}");
}
