//! The TLS Graph face: a client that trusts only graphvcr's CA records an invite (the
//! bot's token reaches Graph, the cassette holds it redacted) and replays it over
//! HTTP/2 and HTTP/1.1; bad clients on the TLS port get clear errors.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::tls_client::{invite_over, request, tls_stream};
use crate::common::*;

const BOT_TOKEN: &str = "Bearer bot-secret-token-5b1f";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_recorded_over_tls_replays_over_h2_and_http1() {
    init();
    let graph = FakeGraph::start().await;
    let st = store();
    let ca = graphvcr::identity::ca_cert_path(&test_ca_dir());
    let mut cfg = record_config("tls-invite", &graph);
    cfg.tls.graph = true;
    let rec = start_record(cfg, &st.store, false).await;
    let auth = ("authorization", BOT_TOKEN);
    let r = invite_over(&ca, Via::Direct(rec.graph), "127.0.0.1", false, 1, Some(auth.1)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let seen = graph.seen();
    assert_eq!(
        seen.last().unwrap().headers["authorization"],
        BOT_TOKEN,
        "the bot's token reached Graph"
    );
    rec.stop().await;
    let c = st.store.load("tls-invite").unwrap().unwrap();
    let stored_auth: Vec<&str> = c.events[0]
        .request
        .headers
        .iter()
        .filter(|(n, _)| n == "authorization")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(stored_auth, vec!["Bearer REDACTED"]);
    st.store.flush().unwrap();
    for (path, bytes) in all_bytes(st.dir.path()) {
        assert!(
            !contains(&bytes, b"bot-secret-token"),
            "bot token in {}",
            path.display()
        );
    }

    let mut cfg = replay_config("tls-invite", None);
    cfg.tls.graph = true;
    let rp = start_replay(cfg, &st.store).await;
    for (n, h2) in [(2, true), (3, false)] {
        let r = invite_over(&ca, Via::Direct(rp.addr), "127.0.0.1", h2, n, None).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(
            r.version,
            if h2 {
                http::Version::HTTP_2
            } else {
                http::Version::HTTP_11
            }
        );
        let body = r.json();
        assert_eq!(body["clientContext"], guid(0xc0c0, n).as_str());
        assert!(mentions(&body, &guid(0x05e7, n)), "live invitee: {body}");
        let op = body["id"].as_str().unwrap();
        let want = format!(
            "https://{}/v1.0/communications/calls/{}/operations/{op}",
            rp.addr,
            guid(0xca11, n)
        );
        assert_eq!(r.header("location"), want, "Location points back at the TLS face");
    }
    rp.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_clients_on_the_tls_port_get_clear_errors_and_it_keeps_serving() {
    init();
    let st = store();
    let mut cfg = bundled_config("invite-one-participant", None);
    cfg.tls.graph = true;
    let rp = start_replay(cfg, &st.store).await;
    let ca = graphvcr::identity::ca_cert_path(&test_ca_dir());
    // a name graphvcr has no certificate for: the handshake fails
    let err = tls_stream(&ca, Via::Direct(rp.addr), "unknown.example", false)
        .await
        .unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("alert") || err.to_string().contains("handshake"),
        "{err}"
    );
    // plain HTTP on the TLS port: told so, in plain HTTP
    let mut s = tokio::net::TcpStream::connect(rp.addr).await.unwrap();
    s.write_all(b"GET /_graphvcr/health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.contains("speaks TLS") && out.contains("https://"), "{out}");
    // still serving
    let r = request(
        &ca,
        Via::Direct(rp.addr),
        "localhost",
        true,
        "GET",
        "/_graphvcr/health",
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 200);
    rp.stop().await.unwrap();
}
