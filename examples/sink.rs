//! A fast notification sink (a bot that takes everything) for `scripts/bench.sh`:
//! answers every `POST` with `202`, counts the notifications and, per call, the order
//! of their `changeType`s. `GET /` answers the counts as JSON; they are printed too on
//! SIGTERM or Ctrl-C.
//!
//! ```text
//! cargo run --release --example sink -- [--listen 127.0.0.1:0]
//! ```
//!
//! The counts: `notifications` (POSTs taken), `rate_per_s` (over the span from the
//! first to the latest), `calls` (distinct call ids in `resourceUrl`), `sequences`
//! (how many calls saw each order of change types, e.g. `"deleted,updated": 1000`, so
//! a lost or reordered notification shows as another sequence) and `unparsed` (bodies
//! that were not Graph notifications). Prints `listening on http://ADDR` once bound.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Deserialize;

#[derive(Deserialize)]
struct Notifications {
    value: Vec<Item>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    resource_url: Option<String>,
    change_type: Option<String>,
}

#[derive(Default)]
struct Counts {
    notifications: u64,
    unparsed: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    /// Call id -> change types in arrival order.
    calls: HashMap<String, String>,
}

/// The call id of `/communications/calls/{id}/...` (or `/app/calls/{id}`).
fn call_id(resource_url: &str) -> Option<&str> {
    let rest = resource_url.split_once("/calls/")?.1;
    Some(rest.split('/').next().unwrap_or(rest))
}

impl Counts {
    fn take(&mut self, body: &[u8]) {
        let now = Instant::now();
        self.notifications += 1;
        self.first.get_or_insert(now);
        self.last = Some(now);
        let Ok(n) = serde_json::from_slice::<Notifications>(body) else {
            self.unparsed += 1;
            return;
        };
        for item in n.value {
            let Some(call) = item.resource_url.as_deref().and_then(call_id) else {
                continue;
            };
            let seq = self.calls.entry(call.to_string()).or_default();
            if !seq.is_empty() {
                seq.push(',');
            }
            seq.push_str(item.change_type.as_deref().unwrap_or("?"));
        }
    }

    fn json(&self) -> serde_json::Value {
        let span = match (self.first, self.last) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        let rate = if span > 0.0 {
            self.notifications as f64 / span
        } else {
            0.0
        };
        let mut sequences: BTreeMap<&str, u64> = BTreeMap::new();
        for s in self.calls.values() {
            *sequences.entry(s.as_str()).or_default() += 1;
        }
        serde_json::json!({
            "notifications": self.notifications,
            "span_s": (span * 1000.0).round() / 1000.0,
            "rate_per_s": rate.round(),
            "calls": self.calls.len(),
            "sequences": sequences,
            "unparsed": self.unparsed,
        })
    }
}

async fn answer(counts: Arc<Mutex<Counts>>, req: http::Request<hyper::body::Incoming>) -> http::Response<Full<Bytes>> {
    let post = req.method() == http::Method::POST;
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut counts = counts.lock().expect("the sink's counts lock");
    if !post {
        let mut r = http::Response::new(Full::new(Bytes::from(counts.json().to_string())));
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        return r;
    }
    counts.take(&body);
    let mut r = http::Response::new(Full::new(Bytes::new()));
    *r.status_mut() = http::StatusCode::ACCEPTED;
    r
}

async fn stopped() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[tokio::main]
async fn main() {
    let mut listen = "127.0.0.1:0".to_string();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--listen" => listen = it.next().expect("--listen needs ADDR"),
            other => panic!("unknown argument `{other}` (usage: sink [--listen ADDR])"),
        }
    }
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .unwrap_or_else(|e| panic!("cannot listen on {listen}: {e}"));
    println!(
        "listening on http://{}",
        listener.local_addr().expect("a bound address")
    );
    let counts = Arc::new(Mutex::new(Counts::default()));
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    let stop = stopped();
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let (counts, builder) = (counts.clone(), builder.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let counts = counts.clone();
                async move { Ok::<_, Infallible>(answer(counts, req).await) }
            });
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
    println!("{}", counts.lock().expect("the sink's counts lock").json());
}
