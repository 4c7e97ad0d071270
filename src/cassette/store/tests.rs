//! Store tests: replace/load/remove, locking, group commit, and damage found at open.

use std::sync::Arc;

use super::*;
use crate::cassette::{Body, Kind, Request, Response};

fn ev(seq: u64) -> Event {
    Event {
        kind: Kind::Exchange,
        seq,
        at_ms: seq * 10,
        duration_ms: Some(1),
        follows: None,
        request: Request {
            method: "GET".into(),
            uri: "/v1.0/communications/calls".into(),
            headers: vec![],
            body: Body::Empty,
        },
        response: Response {
            status: Some(200),
            ..Default::default()
        },
    }
}

fn cassette(name: &str, n: u64) -> Cassette {
    Cassette {
        meta: Meta {
            name: name.into(),
            recorded_at: String::new(),
            upstream: String::new(),
        },
        events: (0..n).map(ev).collect(),
    }
}

#[test]
fn replace_load_remove() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path()).unwrap();
    s.replace(&cassette("a", 3), None).unwrap();
    s.replace(&cassette("ab", 1), None).unwrap();
    s.replace(&cassette("a", 2), None).unwrap();
    assert_eq!(s.load("a").unwrap().unwrap().events.len(), 2);
    assert_eq!(s.info("ab").unwrap().unwrap().events, 1);
    s.put_event("a", &ev(2)).unwrap();
    s.put_event("a", &ev(2)).unwrap();
    assert_eq!(s.load("a").unwrap().unwrap().events.len(), 3);
    assert!(s.remove("a").unwrap());
    assert!(s.load("a").unwrap().is_none());
    assert_eq!(s.list().unwrap().len(), 1);
    s.flush().unwrap();
    drop(s);
    let s = SledStore::open(dir.path()).unwrap();
    assert!(s.damage().is_empty(), "{:?}", s.damage());
    assert_eq!(s.load("ab").unwrap().unwrap().events.len(), 1);
}

#[test]
fn second_open_reports_locked() {
    let dir = tempfile::tempdir().unwrap();
    let _a = SledStore::open(dir.path()).unwrap();
    match SledStore::open(dir.path()) {
        Err(e) => assert!(e.unusable(), "{e}"),
        Ok(_) => panic!("opened twice"),
    }
    match SledStore::open_read_only(dir.path()) {
        Err(e) => assert!(e.unusable(), "{e}"),
        Ok(_) => panic!("copied while in use"),
    }
}

#[test]
fn a_cassette_older_than_its_seal_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path()).unwrap();
    s.replace(&cassette("a", 3), None).unwrap();
    s.flush().unwrap();
    let old_seal = std::fs::read(seal::path(dir.path())).unwrap();
    s.replace(&cassette("b", 1), None).unwrap();
    s.flush().unwrap();
    let new_seal = std::fs::read(seal::path(dir.path())).unwrap();
    drop(s);
    // a store that lost "b" (as sled's recovery of a damaged log would leave it)
    std::fs::write(seal::path(dir.path()), &old_seal).unwrap();
    let s = SledStore::open(dir.path()).unwrap();
    s.remove("b").unwrap();
    s.flush().unwrap();
    drop(s);
    std::fs::write(seal::path(dir.path()), &new_seal).unwrap();
    let s = SledStore::open_read_only(dir.path()).unwrap();
    let d = s.damage();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].to_string(), "cassette b is damaged: 0 of 1 events readable; re-import it from its JSON file (cassettes/b.json) or restore the store");
    assert!(s.load("a").unwrap().is_some());
    assert!(s.put_event("a", &ev(3)).is_err(), "a copy is read-only");
}

/// Writes event `seq` of cassette `name` straight into sled, its record left as it
/// was: what a crash between an append's two writes leaves.
fn write_event_alone(dir: &std::path::Path, name: &str, seq: u64) {
    let h = super::open::handles(dir, "test").unwrap();
    let rec: super::sled::MetaRecord = serde_json::from_slice(&h.meta.get(name).unwrap().unwrap()).unwrap();
    let (value, _) = codec::encode(&ev(seq)).unwrap();
    h.events.insert(codec::key(rec.epoch, seq), value).unwrap();
    h.events.flush().unwrap();
}

#[test]
fn an_append_torn_by_a_crash_is_dropped_and_a_gap_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path()).unwrap();
    s.replace(&cassette("x", 3), None).unwrap();
    s.put_event("x", &ev(3)).unwrap();
    s.flush().unwrap();
    drop(s);
    // the next append's event written, its record not
    write_event_alone(dir.path(), "x", 4);
    let s = SledStore::open(dir.path()).unwrap();
    assert!(s.damage().is_empty(), "{:?}", s.damage());
    assert_eq!(s.load("x").unwrap().unwrap().events.len(), 4, "the torn append is gone");
    // appending again takes its place
    s.put_event("x", &ev(4)).unwrap();
    s.flush().unwrap();
    drop(s);
    let s = SledStore::open(dir.path()).unwrap();
    assert!(s.damage().is_empty());
    assert_eq!(s.load("x").unwrap().unwrap().events.len(), 5);
    drop(s);
    // an event past a gap is no append of this record's: damage, kept as evidence
    write_event_alone(dir.path(), "x", 9);
    let s = SledStore::open(dir.path()).unwrap();
    assert_eq!(s.damage().len(), 1);
}

#[test]
fn read_only_open_of_no_store_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open_read_only(&dir.path().join("none")).unwrap();
    assert!(s.list().unwrap().is_empty());
    assert!(!dir.path().join("none").exists());
}

#[tokio::test]
async fn group_commit_serves_many() {
    let dir = tempfile::tempdir().unwrap();
    let s: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
    s.replace(&cassette("x", 0), None).unwrap();
    let c = Committer::new(s.clone());
    let mut tasks = Vec::new();
    for i in 0..20 {
        let c = c.clone();
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.put_event("x", &ev(i)).unwrap();
            c.commit().await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(s.load("x").unwrap().unwrap().events.len(), 20);
}

#[tokio::test]
async fn a_store_that_lives_with_the_process_commits_without_a_flusher() {
    let dir = tempfile::tempdir().unwrap();
    let durable = SledStore::open(&dir.path().join("disk")).unwrap();
    assert!(durable.flushes());
    let s: Arc<dyn Store> = Arc::new(SledStore::open_ephemeral(&dir.path().join("mem")).unwrap());
    assert!(!s.flushes(), "nothing to make durable");
    s.replace(&cassette("x", 0), None).unwrap();
    let c = Committer::new(s.clone());
    s.put_event("x", &ev(0)).unwrap();
    c.commit().await.unwrap();
    assert_eq!(s.load("x").unwrap().unwrap().events.len(), 1);
}

/// `n` events each with `kb` KB of hex that does not compress.
fn bulky(name: &str, n: u64, kb: usize) -> Cassette {
    let mut c = cassette(name, n);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for e in &mut c.events {
        let hex: String = (0..kb * 1024 / 16)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                format!("{x:016x}")
            })
            .collect();
        e.response.body = Body::Json(serde_json::Value::String(hex));
    }
    c
}

#[test]
fn a_store_whose_check_read_much_is_opened_again_and_still_held_and_written() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path()).unwrap();
    let kb = 64;
    let n = super::open::REOPEN_AFTER / 1024 / kb as u64 + 8;
    s.replace(&bulky("big", n, kb), None).unwrap();
    s.flush().unwrap();
    drop(s);
    let s = SledStore::open(dir.path()).unwrap();
    assert!(s.damage().is_empty(), "{:?}", s.damage());
    match SledStore::open(dir.path()) {
        Err(e) => assert!(e.unusable(), "{e}"),
        Ok(_) => panic!("opened twice: the store opened again let go of its lock"),
    }
    s.put_event("big", &ev(n)).unwrap();
    s.flush().unwrap();
    drop(s);
    let s = SledStore::open(dir.path()).unwrap();
    assert!(s.damage().is_empty(), "{:?}", s.damage());
    let c = s.load("big").unwrap().unwrap();
    assert_eq!(c.events.len() as u64, n + 1);
    assert_eq!(c.events[0].response.body, bulky("big", 1, kb).events[0].response.body);
}
