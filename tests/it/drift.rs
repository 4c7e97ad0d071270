//! `graphvcr diff`: two recordings of the invite flow from the fake Graph, compared by
//! the binary. Drift (a member added, one removed, a notification fewer) is classified
//! and fails the run; recordings that differ only in ids and timing do not.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use crate::cli::run;
use crate::common::*;
use graphvcr::config::BotUrl;

/// Records the bot's invite for test call `n` as cassette `name` (waiting for the bot to
/// get `notifications`) and exports it to `dir/name.json`.
async fn record(graph: &FakeGraph, st: &TestStore, name: &str, n: u64, notifications: usize, dir: &Path) -> PathBuf {
    let bot = FakeBot::start().await;
    let mut cfg = record_config(name, graph);
    cfg.bot_url = Some(BotUrl::parse(&bot.url()).unwrap());
    let rec = start_record(cfg, &st.store, true).await;
    graph.set_callback(&rec.callback_url("/api/calls"));
    let (call, ctx, user) = (guid(0xca11, n), guid(0xc0c0, n), guid(0x05e7, n));
    let r = send(
        "POST",
        &format!("{}/v1.0/communications/calls/{call}/participants/invite", rec.url()),
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer bot-token"),
        ],
        serde_json::to_vec(&invite_body(&ctx, &user, None)).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    bot.wait_for(notifications, Duration::from_secs(10)).await;
    let out = rec.stop().await;
    assert_eq!(out.events, 1 + notifications as u64);
    let path = dir.join(format!("{name}.json"));
    graphvcr::app::export(&*st.store, name, Some(&path)).unwrap();
    path
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Where the recordings put their events (a notification may be stored before the
/// response it follows): the invite's seq in OLD and NEW, the roster update's in OLD.
struct Seqs {
    old_invite: u64,
    new_invite: u64,
    old_roster: u64,
}

fn seqs(old: &Path, new: &Path) -> Seqs {
    let events = |p: &Path| -> Vec<Value> {
        let v: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        v["events"].as_array().unwrap().clone()
    };
    let find = |evs: &[Value], pred: &dyn Fn(&Value) -> bool| -> u64 {
        evs.iter().find(|e| pred(e)).and_then(|e| e["seq"].as_u64()).unwrap()
    };
    let (o, n) = (events(old), events(new));
    let exchange = |e: &Value| e["kind"] == "exchange";
    let roster = |e: &Value| e["kind"] == "notification" && e["request"]["json"]["value"][0]["changeType"] == "updated";
    Seqs {
        old_invite: find(&o, &exchange),
        new_invite: find(&n, &exchange),
        old_roster: find(&o, &roster),
    }
}

/// JUnit: a testcase per exchange/notification, a failure per breaking finding.
fn assert_junit(junit: &Path, q: &Seqs) {
    let xml = std::fs::read_to_string(junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
    let cases: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    assert_eq!(cases.len(), 3, "{xml}");
    let failures: Vec<(&str, Option<&str>)> = cases
        .iter()
        .flat_map(|c| {
            c.children()
                .filter(|n| n.has_tag_name("failure"))
                .map(|f| (c.attribute("name").unwrap(), f.attribute("type")))
        })
        .collect();
    assert_eq!(failures.len(), 2, "{xml}");
    assert!(
        failures.iter().any(|f| f
            .0
            .starts_with(&format!("exchange OLD #{} -> NEW #{}", q.old_invite, q.new_invite))
            && f.1 == Some("removed")),
        "{failures:?}"
    );
    assert!(
        failures.iter().any(
            |f| f.0.starts_with(&format!("notification OLD #{} -> NEW -", q.old_roster)) && f.1 == Some("missing")
        ),
        "{failures:?}"
    );
}

/// The text names each finding by seq and path.
fn assert_text(old: &Path, new: &Path, q: &Seqs) {
    let (code, text, _) = run(&["diff", s(old), s(new)]);
    assert_eq!(code, 1);
    assert!(
        text.contains(&format!(
            "exchange OLD #{} -> NEW #{}  POST v1.0 /communications/calls/{{id}}/participants/invite",
            q.old_invite, q.new_invite
        )),
        "{text}"
    );
    assert!(
        text.contains("breaking  response.json.clientContext: member removed"),
        "{text}"
    );
    assert!(
        text.contains("notable   response.json.ringingTimeoutInSeconds: member added: 60"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "notification OLD #{} -> NEW -  updated /communications/calls/{{id}}/participants",
            q.old_roster
        )),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_member_a_removed_member_and_a_missing_notification_are_drift() {
    init();
    let graph = FakeGraph::start().await;
    let st = store();
    let old = record(&graph, &st, "before", 1, 2, st.dir.path()).await;
    let b = &graph.behaviour;
    b.invite_adds_member.store(true, Ordering::SeqCst);
    b.invite_drops_client_context.store(true, Ordering::SeqCst);
    b.skip_roster_update.store(true, Ordering::SeqCst);
    let new = record(&graph, &st, "after", 2, 1, st.dir.path()).await;

    let junit = st.dir.path().join("drift.xml");
    let (code, out, err) = run(&["diff", s(&old), s(&new), "--json", "--junit", s(&junit)]);
    assert_eq!(code, 1, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let found: Vec<(String, String, String, Value, Value)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let t = |k: &str| f[k].as_str().unwrap().to_string();
            (
                t("severity"),
                t("kind"),
                t("path"),
                f["old_seq"].clone(),
                f["new_seq"].clone(),
            )
        })
        .collect();
    let q = seqs(&old, &new);
    let want = |sev: &str, kind: &str, path: &str, old: Value, new: Value| {
        (sev.to_string(), kind.to_string(), path.to_string(), old, new)
    };
    let (oi, ni) = (Value::from(q.old_invite), Value::from(q.new_invite));
    let mut expected = vec![
        want(
            "breaking",
            "exchange",
            "response.json.clientContext",
            oi.clone(),
            ni.clone(),
        ),
        want("notable", "exchange", "response.json.ringingTimeoutInSeconds", oi, ni),
        want("breaking", "notification", "", q.old_roster.into(), Value::Null),
    ];
    let mut found = found;
    let order = |f: &(String, String, String, Value, Value)| (f.1.clone(), f.2.clone());
    found.sort_by_key(order);
    expected.sort_by_key(order);
    assert_eq!(found, expected, "only the drift, not the ids: {out}");
    let missing = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "notification")
        .unwrap();
    assert_eq!(missing["change"], "missing");
    assert_junit(&junit, &q);
    assert_text(&old, &new, &q);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_that_differ_only_in_ids_and_timing_are_no_drift() {
    init();
    let graph = FakeGraph::start().await;
    let st = store();
    let first = record(&graph, &st, "first", 3, 2, st.dir.path()).await;
    graph.behaviour.delay_ms.store(25, Ordering::SeqCst);
    graph.behaviour.notify_gap_ms.store(15, Ordering::SeqCst);
    let second = record(&graph, &st, "second", 4, 2, st.dir.path()).await;
    let a = std::fs::read_to_string(&first).unwrap();
    assert!(
        a.contains(&guid(0xca11, 3)) && !a.contains(&guid(0xca11, 4)),
        "other ids"
    );

    // by name, from a store the binary imports them into
    let other = st.dir.path().join("cli-store");
    let (code, _, err) = run(&["cassette", "--store", s(&other), "import", s(&first), s(&second)]);
    assert_eq!(code, 0, "{err}");
    for tolerance in ["1000", "0"] {
        let (code, out, err) = run(&[
            "diff",
            "--store",
            s(&other),
            "first",
            "second",
            "--timing-tolerance",
            tolerance,
        ]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("0 breaking, 0 notable"), "timing is info at most: {out}");
        assert!(
            out.contains("3 events paired, 0 missing in NEW, 0 only in NEW"),
            "{out}"
        );
    }
}

#[test]
fn bad_input_is_a_one_line_error_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let none = dir.path().join("no-store");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\n  \"graphvcr\": 1,\n  \"name\": }").unwrap();
    let bundled_file = bundled().join("invite-one-participant.json");
    for (args, says) in [
        (
            vec!["diff", "missing/old.json", "invite-one-participant"],
            "cannot read missing/old.json".to_string(),
        ),
        (
            vec!["diff", "--store", s(&none), "nope", "invite-one-participant"],
            "no cassette named `nope`".to_string(),
        ),
        (
            vec!["diff", s(&bad), s(&bundled_file)],
            format!("{}:3:11", bad.display()),
        ),
        (
            vec!["diff", "../x", "invite-one-participant"],
            "cannot read ../x".to_string(),
        ),
    ] {
        let (code, out, err) = run(&args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(&says), "{args:?}: {err}");
    }
    assert!(!none.exists(), "diff never creates a store");
    // a bundled cassette by name against its own file: no drift
    let (code, out, _) = run(&["diff", "--store", s(&none), s(&bundled_file), "invite-one-participant"]);
    assert_eq!(code, 0, "{out}");
}
