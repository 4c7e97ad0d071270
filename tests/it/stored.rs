//! A cassette served from the store (`--hold-events`: more events than that are not
//! held in memory, their bodies read when a session needs them) answers and notifies
//! byte for byte as the same cassette held in memory.

use std::time::Duration;

use crate::common::*;

/// What the bot saw of one run: every reply (status, headers, body; the
/// proxy's own address, which `Location` names, left out) and every notification
/// (path, headers but the bot's own host, body), in order.
async fn run(hold_events: usize) -> (Vec<String>, Vec<String>) {
    let st = store();
    let bot = FakeBot::start().await;
    let mut cfg = bundled_config("invite-one-participant", Some(&bot));
    cfg.pacing = fast();
    cfg.hold_events = hold_events;
    let rp = start_replay(cfg, &st.store).await;
    let call = guid(0xca11, 40);
    let first = invite_body(&guid(0xc0c0, 40), &guid(0x05e7, 40), Some(&guid(0x9292, 40)));
    let second = invite_body(&guid(0xc0c0, 41), &guid(0x05e7, 41), Some(&guid(0x9292, 41)));
    let mut replies = Vec::new();
    for (path, body) in [
        (format!("/beta/communications/calls/{call}/participants/invite"), &first),
        (
            format!("/beta/communications/calls/{call}/participants/invite"),
            &second,
        ),
        (
            format!("/beta/communications/calls/{call}/participants/invite"),
            &second,
        ),
        (format!("/beta/communications/calls/{call}/participants/mute"), &first),
    ] {
        let url = format!("{}{path}", rp.url());
        let headers = [("content-type", "application/json"), ("x-graphvcr-session", "stored")];
        let r = send("POST", &url, &headers, serde_json::to_vec(body).unwrap()).await;
        // from the injected clock, not the wall clock
        assert_eq!(header(&r, "date"), "Fri, 27 Nov 2026 10:00:00 GMT");
        let shown = format!("{} {:?} {}", r.status, r.headers, String::from_utf8_lossy(&r.body));
        replies.push(shown.replace(&rp.url(), "{graphvcr}"));
    }
    let got = bot.wait_for(6, Duration::from_secs(10)).await;
    let notifications = got
        .iter()
        .map(|n| {
            let mut h = n.headers.clone();
            h.remove("host");
            format!("{} {h:?} {}", n.path, n.body)
        })
        .collect();
    let rep = wait_report(&rp.url(), "stored", Duration::from_secs(10), |r| {
        r["notifications_pending"] == 0
    })
    .await;
    assert_eq!(rep["served"].as_array().map(Vec::len), Some(3), "{rep}");
    assert_eq!(rep["missed"].as_array().map(Vec::len), Some(1), "{rep}");
    let _ = rp.stop().await;
    (replies, notifications)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cassette_served_from_the_store_answers_and_notifies_as_one_held() {
    init();
    let (held_replies, held_notes) = run(graphvcr::config::defaults::HOLD_EVENTS).await;
    let (stored_replies, stored_notes) = run(0).await;
    assert!(
        held_replies[..3].iter().all(|r| r.starts_with("200 ")),
        "{held_replies:#?}"
    );
    assert!(held_replies[3].starts_with("404 "), "{}", held_replies[3]);
    assert_eq!(held_notes.len(), 6, "two per invite");
    assert_eq!(held_replies, stored_replies);
    assert_eq!(held_notes, stored_notes);
}
