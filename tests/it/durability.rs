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

/// Sends requests until `stop`; the mark of each that got `ok` joins `answered`.
/// `next(n)` gives the n-th request: target, body and its mark.
async fn hammer(stop: Arc<AtomicBool>, answered: Answered, ok: u16, next: impl Fn(u64) -> (String, Value, String)) {
    let c = client();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let (target, body, mark) = next(n);
        let bytes = Bytes::from(serde_json::to_vec(&body).unwrap());
        match c.send(Method::POST, &target, json_headers(), bytes).await {
            Ok(r) if r.status == ok => answered.lock().unwrap().push(mark),
            Ok(_) => {}
            Err(_) => tokio::task::yield_now().await,
        }
    }
}

/// The bot's invites, each with a clientContext of its own.
fn invite_of(url: &str, worker: u64, n: u64) -> (String, Value, String) {
    let ctx = guid(0xc0c0_0000 + worker as u32, n);
    let target = format!(
        "{url}/v1.0/communications/calls/{}/participants/invite",
        guid(0xca11, worker)
    );
    (target, invite_body(&ctx, &guid(0x05e7, n), None), ctx)
}

/// Graph's notifications, each marked.
fn notification_of(url: &str, worker: u64, n: u64) -> (String, Value, String) {
    let mark = guid(0x0a1e_0000 + worker as u32, n);
    let body = json!({"value": [{"changeType": "updated",
        "resourceUrl": format!("/communications/calls/{}", guid(0xca11, 100 + worker)),
        "resourceData": {"id": mark, "state": "established"}}]});
    (format!("{url}/api/calls"), body, mark)
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
        let args = record_args(&store, "kill", &graph.url(), &graph.pki.ca_pem, &bot.url(), &[]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
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
            let (f, c) = (face.clone(), callbacks.clone());
            let invites = hammer(stop.clone(), exchanges.clone(), 200, move |n| invite_of(&f, w, n));
            let notes = hammer(stop.clone(), notes.clone(), 202, move |n| notification_of(&c, w, n));
            tasks.push(tokio::spawn(invites));
            tasks.push(tokio::spawn(notes));
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
