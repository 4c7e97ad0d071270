//! The binary: exit codes, one-line errors, the listening line and graceful stop.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::common::*;

fn graphvcr() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_graphvcr"));
    c.env_remove("GRAPHVCR_STORE")
        .env("GRAPHVCR_LOG", "warn")
        .env("GRAPHVCR_CA_DIR", test_ca_dir());
    c
}

pub(crate) fn run(args: &[&str]) -> (i32, String, String) {
    let out = graphvcr().args(args).output().expect("run graphvcr");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_unknown_cassette_is_a_one_line_error_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let empty = dir.path().join("none");
    let (code, _, err) = run(&[
        "replay",
        "--cassette",
        "nope",
        "--store",
        store.to_str().unwrap(),
        "--cassettes",
        empty.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("no cassette named `nope`"), "{err}");
    let (code, _, err) = run(&["cassette", "--store", store.to_str().unwrap(), "show", "nope"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn a_cassette_name_that_climbs_out_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    for args in [
        vec!["cassette", "--store", store.to_str().unwrap(), "rm", "../x"],
        vec![
            "record",
            "--cassette",
            "../x",
            "--store",
            store.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        vec![
            "replay",
            "--cassette",
            "../x",
            "--store",
            store.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
    ] {
        let (code, _, err) = run(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("is not allowed"), "{err}");
    }
    assert!(!dir.path().join("x").exists());
}

#[test]
fn a_malformed_import_reports_file_line_and_column_and_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let good = bundled().join("invite-one-participant.json");
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        "{\n  \"graphvcr\": 1,\n  \"name\": \"bad\",\n  \"events\": [ {\"kind\": \"exchange\",, } ]\n}\n",
    )
    .unwrap();
    let (code, _, err) = run(&[
        "cassette",
        "--store",
        store.to_str().unwrap(),
        "import",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("{}:4:35", bad.display())), "{err}");
    let (code, out, _) = run(&["cassette", "--store", store.to_str().unwrap(), "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("no cassettes"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_prints_its_address_serves_and_stops_on_sigterm() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut child = graphvcr()
        .args([
            "replay",
            "--cassette",
            "invite-one-participant",
            "--listen",
            "127.0.0.1:0",
            "--cassettes",
            bundled().to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
            "--timing",
            "fast",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut l = String::new();
        BufReader::new(stdout).read_line(&mut l).map(|_| l)
    })
    .await
    .unwrap()
    .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|s| s.strip_suffix(" (graph)"))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    assert!(!addr.ends_with(":0"), "the real port is printed: {addr}");
    let r = send(
        "POST",
        &format!(
            "http://{addr}/beta/communications/calls/{}/participants/invite",
            guid(0xca11, 7)
        ),
        &[("content-type", "application/json")],
        serde_json::to_vec(&invite_body(&guid(0xc0c0, 7), &guid(0x05e7, 7), None)).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn the_demo_replays_every_bundled_invite_and_exits_0() {
    let names = [
        "invite-one-participant",
        "invite-multiple-participants",
        "invite-replace-p2p-call",
        "invite-pstn-participant",
    ];
    let runs: Vec<_> = names
        .iter()
        .map(|name| {
            let name = name.to_string();
            std::thread::spawn(move || {
                let dir = bundled();
                let out = graphvcr()
                    .args(["demo", "--cassette", &name, "--cassettes", dir.to_str().unwrap()])
                    .output()
                    .unwrap();
                (name, out)
            })
        })
        .collect();
    for r in runs {
        let (name, out) = r.join().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            stdout.matches("graphvcr -> bot   notification").count(),
            2,
            "{name}: {stdout}"
        );
        assert!(stdout.contains("rewritten ids (recorded -> live)"), "{stdout}");
        assert!(stdout.contains("demo ok"), "{stdout}");
    }
}

#[test]
fn an_unreadable_store_exits_3_with_how_to_recover() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(store.join("conf"), [0xffu8; 64]).unwrap();
    let (code, _, err) = run(&["cassette", "list", "--store", store.to_str().unwrap()]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("move it aside"), "{err}");
}

#[test]
fn the_demo_runs_from_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = graphvcr().arg("demo").current_dir(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("demo ok"), "{stdout}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "the demo leaves nothing behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_a_memory_store_serves_bundled_cassettes_and_leaves_nothing_on_disk() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let mut child = graphvcr()
        .args([
            "serve",
            "--store",
            "memory",
            "--listen",
            "127.0.0.1:0",
            "--timing",
            "fast",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut l = String::new();
        BufReader::new(stdout).read_line(&mut l).map(|_| l)
    })
    .await
    .unwrap()
    .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|s| s.strip_suffix(" (graph)"))
        .unwrap();
    let r = send(
        "POST",
        &format!("http://{addr}/_graphvcr/sessions"),
        &[("content-type", "application/json")],
        r#"{"cassette": "invite-one-participant", "session": "mem"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing in the working directory"
    );
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("graphvcr-{pid}-")))
        .collect();
    assert!(leftovers.is_empty(), "the temporary store is removed: {leftovers:?}");
}

#[test]
fn ca_path_creates_the_ca_once_with_a_private_key_only_its_owner_reads() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let (code, out, err) = run(&["ca", "path", "--ca-dir", ca_dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let path = std::path::PathBuf::from(out.trim());
    assert_eq!(path, ca_dir.join("graphvcr-ca.pem"));
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for key in ["graphvcr-ca-key.pem", "graphvcr-signing-key.pem"] {
            let mode = std::fs::metadata(ca_dir.join(key)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
    }
    let again = run(&["ca", "path", "--ca-dir", ca_dir.to_str().unwrap()]);
    assert_eq!(again.1, out, "the same CA the second time");
}
