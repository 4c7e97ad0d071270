//! Fault injection: callback faults (fail, drop, duplicate, reorder), Graph faults on
//! responses (429 with Retry-After, then the recording), seeded chaos, bad specs.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

const JSON: (&str, &str) = ("content-type", "application/json");

async fn session_with(base: &str, name: &str, faults: &[&str]) {
    let body = json!({"cassette": "invite-one-participant", "session": name, "timing": "fast", "faults": faults});
    let r = send(
        "POST",
        &format!("{base}/_graphvcr/sessions"),
        &[JSON],
        serde_json::to_vec(&body).unwrap(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

async fn invite_in(base: &str, session: &str, n: u64) -> graphvcr::http::client::Reply {
    send(
        "POST",
        &format!(
            "{base}/beta/communications/calls/{}/participants/invite",
            guid(0xca11, n)
        ),
        &[JSON, ("x-graphvcr-session", session)],
        serde_json::to_vec(&invite_body(&guid(0xc0c0, n), &guid(0x05e7, n), None)).unwrap(),
    )
    .await
}

fn change(r: &Received) -> String {
    r.body["value"][0]["changeType"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The bot got the operation notification `failed`, with the resultInfo and live ids.
async fn assert_failed_operation(bot: &FakeBot, ctx: &str) {
    let failed = bot.wait_for(2, Duration::from_secs(10)).await;
    let data = &failed[0].body["value"][0]["resourceData"];
    assert_eq!(data["status"], "failed");
    assert_eq!(data["resultInfo"]["code"], 500);
    assert_eq!(data["resultInfo"]["subcode"], 8510);
    assert_eq!(data["resultInfo"]["message"], "no answer");
    assert_eq!(data["clientContext"], Value::from(ctx), "live ids still");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_faults_fail_drop_duplicate_and_reorder_notifications() {
    init();
    let st = store();
    let bots = [
        FakeBot::start().await,
        FakeBot::start().await,
        FakeBot::start().await,
        FakeBot::start().await,
    ];
    let mut cfg = bundled_config("invite-one-participant", None);
    cfg.pacing = fast();
    let rp = start_replay(cfg, &st.store).await;
    let base = rp.url();
    let cases = [
        ("failing", "fail@1,code=500,subcode=8510,message=no answer"),
        ("dropping", "drop@updated:/communications/calls/{id}/participants"),
        ("twice", "duplicate@1"),
        ("swapped", "reorder@1"),
    ];
    for (k, (name, fault)) in cases.iter().enumerate() {
        let body = json!({"cassette": "invite-one-participant", "session": name, "timing": "fast",
                          "bot_url": bots[k].url(), "faults": [fault]});
        let r = send(
            "POST",
            &format!("{base}/_graphvcr/sessions"),
            &[JSON],
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let r = invite_in(&base, name, 60 + k as u64).await;
        assert_eq!(r.status, 200);
        if k == 0 {
            assert_eq!(
                body_json(&r)["status"],
                "Running",
                "the operation in the response stays Running"
            );
        }
    }
    assert_failed_operation(&bots[0], &guid(0xc0c0, 60)).await;

    let dropped = wait_report(&base, "dropping", Duration::from_secs(10), |r| {
        r["notifications_pending"] == 0
    })
    .await;
    assert_eq!(bots[1].received().len(), 1, "the roster update never comes");
    assert_eq!(change(&bots[1].received()[0]), "deleted");
    assert_eq!(dropped["faults"][0]["fault"], cases[1].1, "{dropped}");
    assert_eq!(dropped["faults"][0]["target"], "notification #2");

    let twice = bots[2].wait_for(3, Duration::from_secs(10)).await;
    let ids: Vec<String> = twice
        .iter()
        .map(|r| r.headers["x-microsoft-skype-message-id"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids[0], ids[1],
        "a duplicate carries the same message id, as Graph's retry does"
    );
    assert_eq!(
        [change(&twice[0]), change(&twice[1]), change(&twice[2])],
        ["deleted", "deleted", "updated"]
    );

    let swapped = bots[3].wait_for(2, Duration::from_secs(10)).await;
    assert_eq!([change(&swapped[0]), change(&swapped[1])], ["updated", "deleted"]);
    for name in ["failing", "twice", "swapped"] {
        let rep = wait_report(&base, name, Duration::from_secs(10), |r| {
            r["notifications_pending"] == 0
        })
        .await;
        assert_eq!(rep["faults"].as_array().map(Vec::len), Some(1), "{name}: {rep}");
    }
    let _ = rp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_invite_gets_429_with_retry_after_and_the_retry_gets_the_recording() {
    init();
    let st = store();
    let rp = start_replay(bundled_config("invite-one-participant", None), &st.store).await;
    session_with(
        &rp.url(),
        "throttled",
        &["429@POST /communications/calls/{id}/participants/invite,nth=1,retry-after=1"],
    )
    .await;
    let r = invite_in(&rp.url(), "throttled", 70).await;
    assert_eq!(r.status, 429);
    assert_eq!(header(&r, "retry-after"), "1");
    assert_eq!(body_json(&r)["error"]["code"], "TooManyRequests");
    let r = invite_in(&rp.url(), "throttled", 70).await;
    assert_eq!(r.status, 200, "the recording was not consumed");
    let rep = body_json(&admin(&rp.url(), "GET", "sessions/throttled").await);
    assert_eq!(rep["served"][0]["repeated"], false);
    assert!(rep["faults"][0]["target"].as_str().unwrap().ends_with("(#1)"), "{rep}");
    let _ = rp.stop().await;
}

/// The faults chaos applies to one invite in a fresh replay with `seed`.
async fn chaos_run(seed: u64) -> Value {
    let st = store();
    let bot = FakeBot::start().await;
    let mut cfg = bundled_config("invite-one-participant", Some(&bot));
    cfg.pacing = fast();
    cfg.chaos = Some(graphvcr::faults::chaos::Chaos { seed, rate: 1.0 });
    let rp = start_replay(cfg, &st.store).await;
    let mut faults = Vec::new();
    for n in 0..4u64 {
        let r = invite_in(&rp.url(), &format!("chaos-{n}"), 80 + n).await;
        let rep = wait_report(&rp.url(), &format!("chaos-{n}"), Duration::from_secs(10), |r| {
            r["notifications_pending"] == 0
        })
        .await;
        faults.push(json!({"status": r.status, "faults": rep["faults"]}));
    }
    let _ = rp.stop().await;
    Value::Array(faults)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_chaos_seed_gives_the_same_faults_and_another_seed_differs() {
    init();
    let a = chaos_run(42).await;
    assert!(mentions(&a, "chaos 42"), "faults were applied: {a}");
    assert_eq!(a, chaos_run(42).await);
    assert_ne!(a, chaos_run(43).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_that_names_nothing_recorded_is_refused_by_name() {
    init();
    let st = store();
    let rp = start_replay(bundled_config("invite-one-participant", None), &st.store).await;
    for (spec, needle) in [
        ("drop@9", "no such notification"),
        ("fail@2", "operation notification"),
        ("500@GET /communications/calls/{id}/participants", "no such request"),
        ("explode@1", "no notification fault"),
    ] {
        let body = json!({"cassette": "invite-one-participant", "faults": [spec]});
        let r = send(
            "POST",
            &format!("{}/_graphvcr/sessions", rp.url()),
            &[JSON],
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
        assert_eq!(r.status, 400, "{spec}");
        let msg = body_json(&r)["error"]["message"].as_str().unwrap().to_string();
        assert!(
            msg.contains(spec) && msg.contains(needle) && msg.contains("`faults`"),
            "{msg}"
        );
    }
    let _ = rp.stop().await;
}
