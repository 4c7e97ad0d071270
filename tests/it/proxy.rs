//! The proxy face: a client configured only with the proxy and graphvcr's CA reaches
//! `https://graph.microsoft.com` (resolved by the proxy, never by DNS): recorded
//! against the fake Graph via `--upstream`, replayed with live ids; other hosts are
//! tunnelled in record and refused (403) in replay, and the proxy keeps serving.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::tls_client::{connect, invite_over};
use crate::common::*;

const GRAPH: &str = "graph.microsoft.com";

/// A plain HTTP/1.1 GET through an established tunnel; returns the status line.
async fn get_through(mut tunnel: tokio::net::TcpStream, host: &str) -> String {
    let req = format!("GET /tunnelled HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
    tunnel.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tunnel.read_to_string(&mut out).await.unwrap();
    out.lines().next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_through_the_proxy_is_recorded_then_replayed_other_hosts_tunnelled_or_refused() {
    init();
    let graph = FakeGraph::start().await;
    let bot = FakeBot::start().await;
    let st = store();
    let ca = graphvcr::identity::ca_cert_path(&test_ca_dir());
    let rec = start_record_with(record_config("via-proxy", &graph), &st.store, false, true).await;
    let proxy = Via::Proxy(rec.proxy.unwrap());
    let auth = ("authorization", "Bearer bot-token");
    let r = invite_over(&ca, proxy, GRAPH, true, 1, Some(auth.1)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(graph.seen().len(), 1, "recorded against the fake Graph (--upstream)");
    // another host is tunnelled untouched in record
    let bot_host = format!("127.0.0.1:{}", bot.addr.port());
    let (status, head, tunnel) = connect(rec.proxy.unwrap(), &bot_host).await;
    assert_eq!(status, 200, "{head}");
    assert!(get_through(tunnel, &bot_host).await.contains("202"));
    rec.stop().await;
    assert_eq!(st.store.load("via-proxy").unwrap().unwrap().events.len(), 1);

    let rp = start_replay_with(replay_config("via-proxy", None), &st.store, true).await;
    let p = rp.proxy.unwrap();
    let r = invite_over(&ca, Via::Proxy(p), GRAPH, false, 2, None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    assert_eq!(body["clientContext"], guid(0xc0c0, 2).as_str());
    let op = body["id"].as_str().unwrap();
    let want = format!(
        "https://{GRAPH}/v1.0/communications/calls/{}/operations/{op}",
        guid(0xca11, 2)
    );
    assert_eq!(
        r.header("location"),
        want,
        "Location keeps Graph's origin: the bot comes back through the proxy"
    );
    // replay: any other host is refused, naming it; the proxy keeps serving
    let (status, head, _) = connect(p, &bot_host).await;
    assert_eq!(status, 403, "{head}");
    assert!(head.contains("127.0.0.1") && head.contains("--allow-host"), "{head}");
    assert!(head.contains(r#""code":"forbidden""#), "Graph-shaped: {head}");
    let (status, head, _) = connect(p, "no-port-here").await;
    assert_eq!(status, 400, "{head}");
    let r = invite_over(&ca, Via::Proxy(p), GRAPH, true, 3, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        bot.received().len(),
        1,
        "only the tunnelled request of the record run reached that host"
    );
    rp.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_host_is_tunnelled_in_replay() {
    init();
    let bot = FakeBot::start().await;
    let st = store();
    let mut cfg = bundled_config("invite-one-participant", None);
    cfg.proxy.allow = vec!["127.0.0.1".into()];
    let rp = start_replay_with(cfg, &st.store, true).await;
    let host = format!("127.0.0.1:{}", bot.addr.port());
    let (status, head, tunnel) = connect(rp.proxy.unwrap(), &host).await;
    assert_eq!(status, 200, "{head}");
    assert!(get_through(tunnel, &host).await.contains("202"));
    rp.stop().await.unwrap();
}
