//! Fan-out load for `scripts/bench.sh` (workloads f and f1): sends N new-call invites
//! at once (each its own replay session), then waits until the sink has received
//! EXPECTED notifications, and prints the wall time from the first request to the
//! last notification as one JSON line.
//!
//! ```text
//! cargo run --release --example fire -- GRAPHVCR_URL N SINK_URL EXPECTED
//! ```

#[path = "../benches/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

type Http = Client<HttpConnector, Full<Bytes>>;

async fn post(client: &Http, url: String, body: String) -> u16 {
    let req = http::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    match client.request(req).await {
        Ok(r) => {
            let status = r.status().as_u16();
            let _ = r.into_body().collect().await;
            status
        }
        Err(_) => 0,
    }
}

/// The sink's counts (`GET /`).
async fn counts(client: &Http, sink: &str) -> serde_json::Value {
    let req = http::Request::get(sink).body(Full::new(Bytes::new())).expect("request");
    let Ok(r) = client.request(req).await else {
        return serde_json::Value::Null;
    };
    let body = r.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    serde_json::from_slice(&body).unwrap_or_default()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, n, sink, expected] = args.as_slice() else {
        panic!("usage: fire GRAPHVCR_URL N SINK_URL EXPECTED");
    };
    let n: u64 = n.parse().expect("N is a number of calls");
    let expected: u64 = expected.parse().expect("EXPECTED is a number of notifications");
    let client: Http = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(n as usize)
        .build_http();
    // ids of this run's own: another run against the same process starts new sessions
    let base = u64::from(std::process::id()) << 20;
    let t0 = Instant::now();
    let calls: Vec<_> = (0..n)
        .map(|k| {
            let (client, n) = (client.clone(), base + k);
            let uri = format!(
                "{url}/beta/communications/calls/{}/participants/invite",
                common::guid(0xca11, n)
            );
            tokio::spawn(async move { post(&client, uri, common::invite_body(n)).await })
        })
        .collect();
    let mut ok = 0;
    for c in calls {
        ok += u64::from(c.await.unwrap_or(0) == 200);
    }
    let answered = t0.elapsed();
    let deadline = t0 + Duration::from_secs(120);
    let mut got = counts(&client, sink).await;
    while got["notifications"].as_u64().unwrap_or(0) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
        got = counts(&client, sink).await;
    }
    let wall = t0.elapsed();
    println!(
        "{}",
        serde_json::json!({
            "calls": n, "ok": ok, "answered_s": answered.as_secs_f64(), "wall_s": wall.as_secs_f64(),
            "expected": expected, "sink": got,
        })
    );
}
