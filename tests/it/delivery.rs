//! Replayed notifications: every bundled cassette, recorded timing and fast order,
//! retries for a bot that is down at first, a bot that stays down not tried again for
//! a while (and deliveries still retrying it giving up), and many concurrent sessions
//! never crossing.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;
use graphvcr::config::{BotUrl, Retry};

const JSON: (&str, &str) = ("content-type", "application/json");

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
    // nothing listens here yet; the default retries
    let (rp, port) = replay_to_a_bot_that_is_down(&st, Retry::default()).await;
    let r = invite(&rp.url(), "beta", 101).await;
    assert_eq!(r.status, 200);
    let sid = header(&r, "x-graphvcr-session");
    // the first attempt is refused while nothing listens
    wait_report(&rp.url(), &sid, Duration::from_secs(10), |rep| {
        rep["notification_retrying"]["attempts"][0]["error"].is_string()
    })
    .await;
    let bot = FakeBot::on(port.open());
    bot.fail_first.store(1, Ordering::SeqCst); // and one 503 once it is up
    let got = bot.wait_for(2, Duration::from_secs(15)).await;
    assert_eq!(got[0].body["value"][0]["changeType"], "deleted");
    let out = rp.stop().await.unwrap();
    assert_eq!(out.totals.pending, 0, "stop waits for queued deliveries");
    assert_eq!(bot.received().len(), 2, "each notification delivered once");
    let rep = out
        .reports
        .iter()
        .find(|r| r.session == sid)
        .expect("the session's report");
    let first = &rep.notifications[0];
    assert!(first.delivered);
    assert!(first.attempts.len() >= 2, "retried: {:?}", first.attempts);
    assert!(
        first.attempts[0].error.is_some(),
        "first attempt refused: {:?}",
        first.attempts
    );
    assert!(
        first.attempts.iter().any(|a| a.status == Some(503)),
        "the 503 was retried: {:?}",
        first.attempts
    );
}

/// Replay of the bundled invite whose bot URL is a port nothing listens on (every
/// connection refused), delivering with `retry`; the port is the caller's to open.
async fn replay_to_a_bot_that_is_down(st: &TestStore, retry: Retry) -> (Replaying, ClosedPort) {
    let port = ClosedPort::new();
    let mut cfg = replay_config("invite-one-participant", None);
    cfg.bot_url = Some(BotUrl::parse(&format!("http://{}", port.addr())).unwrap());
    cfg.cassettes_dir = Some(bundled());
    cfg.pacing = fast();
    cfg.retry = retry;
    (start_replay(cfg, &st.store).await, port)
}

/// `attempts` per delivery from `first_backoff`, and a breaker cool-down far longer
/// than any test.
fn retry(attempts: u32, first_backoff: Duration) -> Retry {
    Retry {
        attempts,
        first_backoff,
        max_backoff: Duration::from_secs(600),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_that_stays_down_is_not_tried_again_until_its_cool_down_ends() {
    init();
    let st = store();
    let (rp, port) = replay_to_a_bot_that_is_down(&st, retry(2, Duration::from_millis(10))).await;
    let addr = port.addr();
    let mut sessions = Vec::new();
    // one call after the other: the second starts once the first's deliveries ended
    for k in 0..2 {
        let r = invite(&rp.url(), "beta", 301 + k).await;
        assert_eq!(r.status, 200);
        let sid = header(&r, "x-graphvcr-session");
        wait_report(&rp.url(), &sid, Duration::from_secs(10), |rep| {
            rep["notifications"].as_array().is_some_and(|n| n.len() == 2)
        })
        .await;
        sessions.push(sid);
    }
    let out = rp.stop().await.unwrap();
    let deliveries: Vec<&graphvcr::notify::Delivery> = sessions
        .iter()
        .filter_map(|sid| out.reports.iter().find(|r| &r.session == sid))
        .flat_map(|r| &r.notifications)
        .collect();
    assert_eq!(deliveries.len(), 4);
    assert!(deliveries.iter().all(|d| !d.delivered));
    let tried: Vec<usize> = deliveries.iter().map(|d| d.attempts.len()).collect();
    assert_eq!(
        tried,
        [2, 0, 0, 0],
        "the first used its attempts, the others were not tried"
    );
    for d in deliveries.iter().filter(|d| d.attempts.is_empty()) {
        let why = d.reason.as_deref().unwrap_or_default();
        assert!(why.starts_with(&format!("not tried: http://{addr} refused")), "{why}");
    }
    assert_eq!(out.totals.failed, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_still_retrying_gives_up_once_another_found_the_bot_down() {
    init();
    let st = store();
    // a delivery is refused at 0, 1 and 3 s
    let (rp, port) = replay_to_a_bot_that_is_down(&st, retry(3, Duration::from_secs(1))).await;
    let addr = port.addr();
    let a = invite(&rp.url(), "beta", 401).await;
    assert_eq!(a.status, 200);
    let a = header(&a, "x-graphvcr-session");
    // the second call starts once the first one's delivery was refused twice (~1 s):
    // refused at ~1 and ~2 s, it is still backing off (until ~4 s) when the first
    // exhausts its attempts (~3 s) and opens the breaker; a stall of up to 1 s
    // anywhere (a loaded CI machine) keeps that order
    wait_report(&rp.url(), &a, Duration::from_secs(10), |rep| {
        rep["notification_retrying"]["attempts"]
            .as_array()
            .is_some_and(|t| t.len() >= 2)
    })
    .await;
    let b = invite(&rp.url(), "beta", 402).await;
    assert_eq!(b.status, 200);
    let b = header(&b, "x-graphvcr-session");
    wait_report(&rp.url(), &b, Duration::from_secs(10), |rep| {
        rep["notifications"].as_array().is_some_and(|n| n.len() == 2)
    })
    .await;
    let out = rp.stop().await.unwrap();
    let of = |sid: &str| {
        let r = out.reports.iter().find(|r| r.session == sid).expect("its report");
        let tried: Vec<usize> = r.notifications.iter().map(|d| d.attempts.len()).collect();
        let why: Vec<String> = r
            .notifications
            .iter()
            .map(|d| d.reason.as_deref().unwrap_or_default().to_string())
            .collect();
        (tried, why)
    };
    let (tried, _) = of(&a);
    assert_eq!(tried, [3, 0], "the first used its attempts, then the breaker opened");
    let (tried, why) = of(&b);
    assert_eq!(tried, [2, 0], "the second gave up instead of a third attempt: {why:?}");
    let down = format!("http://{addr} refused every connection of the last 1 delivery(ies)");
    assert_eq!(why[0], format!("not tried again: {down}"));
    assert!(why[1].starts_with(&format!("not tried: {down}")), "{}", why[1]);
    assert_eq!(out.totals.failed, 4);
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
    let out = rp.stop().await.unwrap();
    assert_eq!(out.totals.pending, 0, "stop waits for queued deliveries");
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
}
