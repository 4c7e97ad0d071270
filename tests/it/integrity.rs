//! Store integrity through the real binary: a store damaged on purpose (one byte, a
//! truncation, with and without a sled snapshot) never serves a cassette with events
//! missing; every command names the damage and exits 3, read-only commands leave the
//! damaged bytes as they were, and none hangs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;

const NAMES: [&str; 4] = [
    "invite-multiple-participants",
    "invite-one-participant",
    "invite-pstn-participant",
    "invite-replace-p2p-call",
];
const LIMIT: Duration = Duration::from_secs(20);

/// Damage done to sled's `db` file.
type Damage = Box<dyn Fn(&mut Vec<u8>)>;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `cassette import` of the four bundled invites into `store`.
fn import_bundled(store: &Path) -> (i32, String, String) {
    let files: Vec<String> = NAMES
        .iter()
        .map(|n| format!("{}/{n}.json", bundled().display()))
        .collect();
    let mut args = vec!["cassette", "--store", s(store), "import"];
    args.extend(files.iter().map(String::as_str));
    run_bin(&args, LIMIT)
}

/// A store holding the four bundled invites (3 events each), imported by the CLI;
/// `snapshot`: then opened read-write once, which makes sled write a snapshot.
fn pristine(dir: &Path, snapshot: bool) -> PathBuf {
    let store = dir.join(if snapshot { "snap" } else { "fresh" });
    let (code, _, err) = import_bundled(&store);
    assert_eq!(code, 0, "{err}");
    if snapshot {
        let (code, _, _) = run_bin(&["cassette", "--store", s(&store), "rm", "none"], LIMIT);
        assert_eq!(code, 2);
        assert!(std::fs::read_dir(&store).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("snap.")));
    }
    store
}

fn copy_store(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A failure must name a cassette it could not serve and say how to recover.
fn names_the_damage(err: &str) {
    let named = NAMES.iter().any(|n| err.contains(n));
    let said = err.contains("is damaged: ") || err.contains("is unreadable");
    assert!(named && said && err.contains("re-import"), "{err}");
}

/// Runs the read-only commands and replay on a damaged store.
fn check(store: &Path, empty: &Path, what: &str) {
    let db = std::fs::read(store.join("db")).unwrap();
    let (code, out, err) = run_bin(&["cassette", "--store", s(store), "list"], LIMIT);
    if code == 0 {
        assert_eq!(
            out.matches("\t3 events\t").count(),
            4,
            "{what}: list exits 0 with events missing: {out}"
        );
    } else {
        assert_eq!(code, 3, "{what}: {err}");
        names_the_damage(&err);
    }
    for name in ["invite-one-participant", "invite-replace-p2p-call"] {
        let (code, out, err) = run_bin(&["cassette", "--store", s(store), "show", name], LIMIT);
        match code {
            0 => assert!(out.contains("3 events"), "{what}: show {name}: {out}"),
            _ => {
                assert_eq!(code, 3, "{what}: show {name}: {err}");
                names_the_damage(&err);
            }
        }
        let (code, out, err) = run_bin(&["cassette", "--store", s(store), "export", name], LIMIT);
        match code {
            0 => assert_eq!(
                graphvcr::cassette::json::parse(out.as_bytes(), "out")
                    .unwrap()
                    .events
                    .len(),
                3,
                "{what}: export {name}"
            ),
            _ => assert_eq!(code, 3, "{what}: export {name}: {err}"),
        }
    }
    assert!(
        std::fs::read(store.join("db")).unwrap() == db,
        "{what}: a read-only command changed the store"
    );
    let args = [
        "replay",
        "--cassette",
        "invite-one-participant",
        "--store",
        s(store),
        "--cassettes",
        s(empty),
        "--listen",
        "127.0.0.1:0",
    ];
    match start_bin(&args, 1, LIMIT) {
        Ok(mut r) => {
            kill9(r.child.id());
            let _ = r.child.wait();
            let (code, out, _) = run_bin(
                &["cassette", "--store", s(store), "show", "invite-one-participant"],
                LIMIT,
            );
            assert!(
                code == 0 && out.contains("3 events"),
                "{what}: replay served a damaged cassette"
            );
        }
        Err((code, err)) => {
            assert_eq!(code, 3, "{what}: replay: {err}");
            names_the_damage(&err);
        }
    }
}

#[test]
fn a_damaged_store_is_reported_never_served_partially_and_nothing_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("no-cassettes");
    let fresh = pristine(dir.path(), false);
    let snap = pristine(dir.path(), true);
    // the log as written by the import: damage it where the data is
    let data_len = std::fs::metadata(fresh.join("db")).unwrap().len() as usize;
    let mut damages: Vec<(String, Damage)> = Vec::new();
    for pct in [1usize, 20, 45, 70, 95, 99] {
        let at = data_len * pct / 100;
        damages.push((
            format!("byte {at} changed"),
            Box::new(move |b: &mut Vec<u8>| b[at] ^= 0x5a),
        ));
    }
    for pct in [10usize, 50, 90] {
        let at = data_len * pct / 100;
        damages.push((
            format!("truncated at {at}"),
            Box::new(move |b: &mut Vec<u8>| b.truncate(at)),
        ));
    }
    let mut n = 0;
    for (base, label) in [(&fresh, "no snapshot"), (&snap, "snapshot")] {
        for (what, damage) in &damages {
            n += 1;
            let store = dir.path().join(format!("trial-{n}"));
            copy_store(base, &store);
            let mut db = std::fs::read(store.join("db")).unwrap();
            damage(&mut db);
            std::fs::write(store.join("db"), db).unwrap();
            check(&store, &empty, &format!("{label}, {what}"));
        }
    }
}

#[test]
fn re_importing_from_its_file_repairs_a_damaged_cassette() {
    let dir = tempfile::tempdir().unwrap();
    let store = pristine(dir.path(), false);
    let mut db = std::fs::read(store.join("db")).unwrap();
    db.truncate(db.len() / 2);
    std::fs::write(store.join("db"), db).unwrap();
    let (code, _, err) = run_bin(&["cassette", "--store", s(&store), "list"], LIMIT);
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = import_bundled(&store);
    assert_eq!(
        code, 0,
        "the file a cassette came from replaces it without --overwrite: {err}"
    );
    let (code, out, err) = run_bin(&["cassette", "--store", s(&store), "list"], LIMIT);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("\t3 events\t").count(), 4, "{out}");
}
