//! Capture-on-miss and write-back, passthrough, and stores that leave nothing behind.

use std::time::Duration;

use crate::common::*;
use graphvcr::config::{OnMiss, PassthroughConfig, ReplayConfig, UpstreamUrl};

const JSON: (&str, &str) = ("content-type", "application/json");

/// Records `grow` (one invite) and exports it into `dir/grow.json`.
async fn cassette_file(graph: &FakeGraph, dir: &std::path::Path) -> std::path::PathBuf {
    let st = store();
    let mut cfg = record_config("grow", graph);
    let file = dir.join("grow.json");
    cfg.export = Some(file.clone());
    let rec = start_record(cfg, &st.store, false).await;
    let r = send(
        "POST",
        &format!(
            "{}/v1.0/communications/calls/{}/participants/invite",
            rec.url(),
            guid(0xca11, 1)
        ),
        &[JSON, ("authorization", "Bearer x")],
        serde_json::to_vec(&invite_body(&guid(0xc0c0, 1), &guid(0x05e7, 1), None)).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    rec.stop().await;
    file
}

/// `grow`, replayed from the files in `dir` (the shared test CA, never the checkout's).
fn grow_config(dir: &std::path::Path) -> ReplayConfig {
    let mut cfg = ReplayConfig::new("grow").unwrap();
    cfg.tls.ca_dir = test_ca_dir();
    cfg.cassettes_dir = Some(dir.to_path_buf());
    cfg
}

fn capture_config(dir: &std::path::Path, graph: &FakeGraph, on_miss: OnMiss) -> ReplayConfig {
    let mut cfg = grow_config(dir);
    cfg.on_miss = on_miss;
    cfg.upstream = Some(UpstreamUrl::parse(&graph.url()).unwrap());
    cfg.upstream_ca = Some(graph.pki.ca_pem.clone());
    cfg
}

async fn keep_alive(base: &str, n: u64) -> graphvcr::http::client::Reply {
    send(
        "POST",
        &format!("{base}/v1.0/communications/calls/{}/keepAlive", guid(0xca11, n)),
        &[("authorization", "Bearer live")],
        Vec::new(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_is_recorded_once_written_back_to_its_file_and_served_next_time() {
    init();
    let graph = FakeGraph::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = cassette_file(&graph, dir.path()).await;
    let before = std::fs::read_to_string(&file).unwrap();
    let seen_before = graph.seen().len();

    let st = store();
    let rp = start_replay(capture_config(dir.path(), &graph, OnMiss::Record), &st.store).await;
    assert_eq!(
        invite(&rp.url(), "v1.0", 2).await.status,
        200,
        "the recorded invite is served"
    );
    let r = keep_alive(&rp.url(), 2).await;
    assert_eq!(
        r.status,
        200,
        "the miss went to Graph: {}",
        String::from_utf8_lossy(&r.body)
    );
    let sid = header(&r, "x-graphvcr-session");
    let rep = body_json(&admin(&rp.url(), "GET", &format!("sessions/{sid}")).await);
    assert_eq!(rep["forwarded"][0]["outcome"], "200", "{rep}");
    assert!(rep["forwarded"][0]["recorded_seq"].is_u64(), "{rep}");
    let out = rp.stop().await.unwrap();
    assert!(
        out.problems().is_empty(),
        "a recorded miss is no problem: {:?}",
        out.problems()
    );
    assert_eq!(graph.seen().len(), seen_before + 1, "forwarded once");

    let after = std::fs::read_to_string(&file).unwrap();
    let kept = before
        .trim_end()
        .trim_end_matches('}')
        .trim_end()
        .trim_end_matches(']')
        .trim_end();
    assert!(
        after.starts_with(kept),
        "the file keeps its layout; only events are added"
    );
    assert!(after[kept.len()..].contains("/keepAlive"), "{}", &after[kept.len()..]);
    assert!(
        !after.contains("Bearer live"),
        "the bot's token is redacted in the file"
    );

    // the next run, from the file alone, serves it without the upstream
    let st = store();
    let rp = start_replay(capture_config(dir.path(), &graph, OnMiss::Error), &st.store).await;
    assert_eq!(invite(&rp.url(), "v1.0", 3).await.status, 200);
    assert_eq!(keep_alive(&rp.url(), 3).await.status, 200);
    let out = rp.stop().await.unwrap();
    assert!(out.problems().is_empty(), "{:?}", out.problems());
    assert_eq!(graph.seen().len(), seen_before + 1, "no upstream contact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_forwards_and_stores_nothing() {
    init();
    let graph = FakeGraph::start().await;
    let dir = tempfile::tempdir().unwrap();
    cassette_file(&graph, dir.path()).await;
    let seen_before = graph.seen().len();

    // a session that passes misses through
    let st = store();
    let rp = start_replay(capture_config(dir.path(), &graph, OnMiss::Passthrough), &st.store).await;
    assert_eq!(keep_alive(&rp.url(), 4).await.status, 200);
    let _ = rp.stop().await.unwrap();
    assert_eq!(graph.seen().len(), seen_before + 1);
    let c = st.store.load("grow").unwrap().unwrap();
    assert!(
        c.events.iter().all(|e| !e.request.uri.ends_with("/keepAlive")),
        "passthrough stores nothing"
    );

    // `graphvcr passthrough`
    let st = store();
    let cfg = PassthroughConfig {
        upstream: UpstreamUrl::parse(&graph.url()).unwrap(),
        upstream_ca: Some(graph.pki.ca_pem.clone()),
        upstream_timeout: Duration::from_secs(5),
        limits: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let deps = graphvcr::app::Deps {
        store: st.store.clone(),
        clock: clock(),
    };
    let task = tokio::spawn(graphvcr::app::run_passthrough(cfg, deps, listener, async move {
        let _ = rx.await;
    }));
    assert_eq!(keep_alive(&base, 5).await.status, 200);
    let _ = tx.send(());
    task.await.unwrap().unwrap();
    assert_eq!(graph.seen().len(), seen_before + 2);
    assert!(st.store.list().unwrap().is_empty(), "nothing stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_miss_keeps_its_notifications_and_the_next_run_replays_them() {
    init();
    let graph = FakeGraph::start().await;
    let dir = tempfile::tempdir().unwrap();
    // a cassette with only a keepAlive
    let st = store();
    let mut rec_cfg = record_config("grow", &graph);
    rec_cfg.export = Some(dir.path().join("grow.json"));
    let rec = start_record(rec_cfg, &st.store, false).await;
    assert_eq!(keep_alive(&rec.url(), 7).await.status, 200);
    rec.stop().await;

    let bot = FakeBot::start().await;
    let mut cfg = capture_config(dir.path(), &graph, OnMiss::Record);
    cfg.bot_url = Some(graphvcr::config::BotUrl::parse(&bot.url()).unwrap());
    let st = store();
    let rp = start_replay_faces(cfg, &st.store, false, true).await;
    graph.set_callback(&format!("http://{}/api/calls", rp.callbacks.unwrap()));
    let r = send(
        "POST",
        &format!(
            "{}/v1.0/communications/calls/{}/participants/invite",
            rp.url(),
            guid(0xca11, 7)
        ),
        &[JSON, ("authorization", "Bearer live")],
        serde_json::to_vec(&invite_body(&guid(0xc0c0, 7), &guid(0x05e7, 7), None)).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "captured: {}", String::from_utf8_lossy(&r.body));
    bot.wait_for(2, Duration::from_secs(10)).await;
    let _ = rp.stop().await.unwrap();
    let c = graphvcr::cassette::json::parse(&std::fs::read(dir.path().join("grow.json")).unwrap(), "grow").unwrap();
    let captured = c
        .events
        .iter()
        .find(|e| e.request.uri.ends_with("/invite"))
        .expect("the invite was appended");
    let notes: Vec<_> = c
        .events
        .iter()
        .filter(|e| e.kind == graphvcr::cassette::Kind::Notification)
        .collect();
    assert_eq!(notes.len(), 2, "its notifications were recorded with it");
    assert!(notes.iter().all(|n| n.follows == Some(captured.seq)), "and follow it");

    // the next run serves the invite and its notifications, with no upstream
    let seen = graph.seen().len();
    let bot = FakeBot::start().await;
    let mut cfg = capture_config(dir.path(), &graph, OnMiss::Error);
    cfg.bot_url = Some(graphvcr::config::BotUrl::parse(&bot.url()).unwrap());
    cfg.pacing = fast();
    let rp = start_replay(cfg, &store().store).await;
    assert_eq!(invite(&rp.url(), "v1.0", 8).await.status, 200);
    assert_eq!(bot.wait_for(2, Duration::from_secs(10)).await.len(), 2);
    let _ = rp.stop().await;
    assert_eq!(graph.seen().len(), seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cassette_file_wins_over_a_stale_copy_in_a_cached_store() {
    init();
    let graph = FakeGraph::start().await;
    let (old_dir, new_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    cassette_file(&graph, old_dir.path()).await;
    // the same cassette, re-recorded elsewhere with a keepAlive added
    let st = store();
    let mut cfg = record_config("grow", &graph);
    cfg.export = Some(new_dir.path().join("grow.json"));
    let rec = start_record(cfg, &st.store, false).await;
    assert_eq!(keep_alive(&rec.url(), 9).await.status, 200);
    rec.stop().await;

    let cached = store();
    let _ = start_replay(grow_config(old_dir.path()), &cached.store)
        .await
        .stop()
        .await;
    let rp = start_replay(grow_config(new_dir.path()), &cached.store).await;
    assert_eq!(
        keep_alive(&rp.url(), 10).await.status,
        200,
        "the file's version is served"
    );
    let _ = rp.stop().await;
}
