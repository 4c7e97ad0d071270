//! Planted secrets: recorded through the real binary (Graph face, callback face, an
//! upstream URL with userinfo, user rules, `--scrub-pii`), none reaches the store's
//! bytes, the export or the log; and the scan and `cassette import` refuse a cassette
//! file holding any one of them.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::Method;
use serde_json::{json, Value};

use crate::common::*;

const LIMIT: Duration = Duration::from_secs(20);

/// Plants a secret in an event of a cassette file.
type Plant = Box<dyn Fn(&mut Value)>;

async fn post(url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> u16 {
    let mut h = HeaderMap::new();
    for (n, v) in headers {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    client()
        .send(Method::POST, url, h, Bytes::from(body))
        .await
        .expect("graphvcr answers")
        .status
}

/// What the bot and Graph send, every secret in it marked `PLANT`.
async fn plant(face: &str, callbacks: &str) {
    let bearer = format!("Bearer {}", jwt("PLANTbearer"));
    let body = json!({
        "privateKey": "PLANTprivatekey", "recordingAccessToken": "PLANTaccesstoken",
        "connectionString": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=PLANTaccountkey;EndpointSuffix=core.windows.net",
        "bus": "Endpoint=sb://ns/;SharedAccessKeyName=root;SharedAccessKey=PLANTsharedkey",
        "recordingLocation": "https://acc.blob.core.windows.net/r/a.wav?sv=2020&sig=PLANTjsonsig",
        "callbackUri": "https://bot.contoso.com/api/calls?code=PLANTjsoncode",
        "meetingCode": "PLANTusermember", "note": "pin:PLANTuserregex",
        "identity": {"user": {"displayName": "Alice PLANTname", "id": guid(0x05e7, 1)}},
        "mail": "alice.PLANTmail@contoso.com", "phone": {"id": "+14255550199"}
    });
    let headers = [
        ("content-type", "application/json"),
        ("authorization", bearer.as_str()),
        ("x-api-key", "PLANTxapikey"),
        ("api-key", "PLANTapikey"),
        ("x-functions-key", "PLANTfunctionskey"),
        ("ocp-apim-subscription-key", "PLANTocpkey"),
        ("cookie", "s=PLANTcookie"),
        ("x-tenant-pin", "PLANTuserheader"),
    ];
    let url = format!("{face}/v1.0/echo?refresh_token=PLANTrefresh&sig=PLANTquerysig&$top=1");
    assert_eq!(post(&url, &headers, serde_json::to_vec(&body).unwrap()).await, 200);
    let form = "grant_type=client_credentials&client_id=app&client_secret=PLANTformsecret&scope=x";
    let h = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("authorization", "Bearer x"),
    ];
    assert_eq!(
        post(&format!("{face}/v1.0/echo"), &h, form.as_bytes().to_vec()).await,
        200
    );
    let note = json!({"value": [{"changeType": "updated", "resourceUrl": format!("/communications/calls/{}", guid(0xca11, 1)),
        "resourceData": {"recordingLocation": "https://acc.blob.core.windows.net/r/b.wav?sv=2020&sig=PLANTnotesig"}}]});
    let h = [("content-type", "application/json"), ("authorization", bearer.as_str())];
    let cb = format!("{callbacks}/api/calls?token=PLANTcallbacktoken");
    assert_eq!(post(&cb, &h, serde_json::to_vec(&note).unwrap()).await, 202);
}

fn planted_in(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let plain = ["PLANT", "+14255550199", "c2lnbmF0dXJlLVBMQU5UYmVhcmVy"];
    for p in plain.iter().chain(ECHO_SECRETS.iter()) {
        if let Some(at) = text.find(p) {
            let context: String = text[at.saturating_sub(60)..].chars().take(120).collect();
            panic!("{what} holds `{p}`: {context}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_planted_secret_reaches_the_store_the_export_or_the_log() {
    init();
    let graph = FakeGraph::start().await;
    let bot = FakeBot::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (store, export) = (dir.path().join("store"), dir.path().join("planted.json"));
    let upstream = graph.url().replace("https://", "https://graph-user:PLANTpassword@");
    let extra = [
        "--export",
        export.to_str().unwrap(),
        "--log",
        "debug",
        "--redact-header",
        "x-tenant-pin",
        "--redact-json",
        "meetingCode",
        "--redact-regex",
        r"pin:(\w+)",
        "--scrub-pii",
    ];
    let args = record_args(&store, "planted", &upstream, &graph.pki.ca_pem, &bot.url(), &extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let rec = start_bin(&args, 2, LIMIT).expect("record starts");
    plant(
        &format!("http://{}", rec.addr("graph")),
        &format!("http://{}", rec.addr("callbacks")),
    )
    .await;
    bot.wait_for(1, LIMIT).await;
    assert!(Command::new("kill")
        .args(["-TERM", &rec.child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = tokio::task::spawn_blocking(move || rec.child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("exchange recorded") && log.contains("$top=1"),
        "the log shows requests: {log}"
    );
    planted_in("the log", log.as_bytes());
    planted_in("the export", &std::fs::read(&export).unwrap());
    for (path, bytes) in all_bytes(&store) {
        planted_in(&path.display().to_string(), &bytes);
    }
    let c = graphvcr::cassette::json::parse(&std::fs::read(&export).unwrap(), "x").unwrap();
    assert_eq!(c.events.len(), 3);
    let sent = c.events[0].request.body.json().unwrap();
    assert_eq!(sent["identity"]["user"]["displayName"], "Person 1", "{sent}");
    assert_eq!(sent["phone"]["id"], "+99900000001");
    assert!(c.meta.upstream.starts_with("https://127.0.0.1:"), "{}", c.meta.upstream);
}

/// A bundled cassette with one secret planted by `plant`, written to `dir/name.json`.
fn planted_file(dir: &Path, name: &str, plant: impl Fn(&mut Value)) -> String {
    let mut v: Value =
        serde_json::from_slice(&std::fs::read(bundled().join("invite-one-participant.json")).unwrap()).unwrap();
    v["name"] = Value::from(name);
    plant(&mut v["events"][0]);
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    path.display().to_string()
}

fn header(ev: &mut Value, side: &str, name: &str, value: &str) {
    ev[side]["headers"].as_array_mut().unwrap().push(json!([name, value]));
}

/// Each planted secret, by name, and where it goes in an event.
fn cases() -> Vec<(&'static str, Plant)> {
    vec![
        ("x-api-key", Box::new(|e| header(e, "request", "x-api-key", "k"))),
        ("api-key", Box::new(|e| header(e, "request", "api-key", "k"))),
        (
            "x-functions-key",
            Box::new(|e| header(e, "response", "x-functions-key", "k")),
        ),
        (
            "authorization",
            Box::new(|e| header(e, "request", "authorization", "Bearer abc")),
        ),
        (
            "location-sig",
            Box::new(|e| header(e, "response", "location", "https://g/x?sig=abc")),
        ),
        (
            "location-code",
            Box::new(|e| header(e, "response", "location", "https://g/x?code=abc")),
        ),
        (
            "query-token",
            Box::new(|e| e["request"]["uri"] = Value::from("/beta/x?refresh_token=abc")),
        ),
        (
            "json-sig",
            Box::new(|e| e["response"]["json"]["recordingLocation"] = Value::from("https://b/r?sig=abc")),
        ),
        (
            "account-key",
            Box::new(|e| e["request"]["json"]["cs"] = Value::from("AccountName=a;AccountKey=abc")),
        ),
        (
            "private-key",
            Box::new(|e| e["request"]["json"]["privateKey"] = Value::from("abc")),
        ),
        (
            "jwt",
            Box::new(|e| e["request"]["json"]["t"] = Value::from(jwt("scan"))),
        ),
        (
            "form-secret",
            Box::new(|e| {
                let o = e["request"].as_object_mut().unwrap();
                o.remove("json");
                o.insert("text".into(), Value::from("client_id=a&client_secret=abc"));
            }),
        ),
        (
            "userinfo",
            Box::new(|e| e["request"]["json"]["u"] = Value::from("https://me:pw@host/x")),
        ),
    ]
}

#[test]
fn the_scan_and_import_refuse_a_file_holding_any_planted_secret() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let cases = cases();
    for (name, plant) in &cases {
        let file = planted_file(dir.path(), name, plant);
        let (code, out, err) = run_bin(&["cassette", "--store", store.to_str().unwrap(), "scan", &file], LIMIT);
        assert_eq!(code, 2, "scan {name}: {out}{err}");
        assert!(out.contains("event 0:"), "scan {name} names where: {out}");
        let (code, _, err) = run_bin(
            &["cassette", "--store", store.to_str().unwrap(), "import", &file],
            LIMIT,
        );
        assert_eq!(code, 2, "import {name}: {err}");
        assert!(
            err.contains("holds a secret") && err.contains("--allow-secrets"),
            "{err}"
        );
    }
    // imported anyway, the export still refuses it; a clean file scans clean
    let file = planted_file(dir.path(), "kept", &cases[0].1);
    let s = store.to_str().unwrap();
    assert_eq!(
        run_bin(&["cassette", "--store", s, "import", "--allow-secrets", &file], LIMIT).0,
        0
    );
    let (code, _, err) = run_bin(&["cassette", "--store", s, "export", "kept"], LIMIT);
    assert_eq!(code, 2, "{err}");
    assert_eq!(run_bin(&["cassette", "--store", s, "scan", "kept"], LIMIT).0, 2);
    let clean = bundled().join("invite-one-participant.json");
    let (code, out, _) = run_bin(&["cassette", "--store", s, "scan", clean.to_str().unwrap()], LIMIT);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn importing_over_a_recorded_cassette_needs_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    {
        let st = graphvcr::cassette::SledStore::open(&store).unwrap();
        let mut c = graphvcr::cassette::json::parse(
            &std::fs::read(bundled().join("invite-one-participant.json")).unwrap(),
            "x",
        )
        .unwrap();
        c.events.truncate(1);
        graphvcr::cassette::Store::replace(&st, &c, None).unwrap();
        graphvcr::cassette::Store::flush(&st).unwrap();
    }
    let file = bundled().join("invite-one-participant.json");
    let (s, f) = (store.to_str().unwrap(), file.to_str().unwrap());
    let (code, _, err) = run_bin(&["cassette", "--store", s, "import", f], LIMIT);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("recorded, 1 events") && err.contains("--overwrite"),
        "{err}"
    );
    let (code, out, err) = run_bin(&["cassette", "--store", s, "import", "--overwrite", f], LIMIT);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(3 events)"), "{out}");
    let (code, _, err) = run_bin(&["cassette", "--store", s, "import", f], LIMIT);
    assert_eq!(code, 0, "the file it came from re-imports it: {err}");
}
