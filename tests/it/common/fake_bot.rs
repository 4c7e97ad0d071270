//! The fake bot: the bot's callback endpoint on http://127.0.0.1:PORT, recording every
//! notification it takes (optionally refusing the first ones with 503).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HeaderMap;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};

use super::doubles::{respond, serve_double, Handler};
use super::harness::guid;

/// A notification the bot received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    pub at: Instant,
}

/// The bot's callback endpoint on http://127.0.0.1:PORT.
pub struct FakeBot {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    /// Answer 503 to this many requests first.
    pub fail_first: Arc<AtomicUsize>,
    arrived: Arc<Notify>,
    _stop: oneshot::Sender<()>,
}

impl FakeBot {
    pub async fn start() -> FakeBot {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind bot");
        FakeBot::on(l)
    }

    pub fn on(listener: TcpListener) -> FakeBot {
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let fail_first = Arc::new(AtomicUsize::new(0));
        let arrived = Arc::new(Notify::new());
        let state = (received.clone(), fail_first.clone(), arrived.clone());
        let handler: Handler = Arc::new(move |parts: http::request::Parts, body: Bytes| {
            let (received, fail_first, arrived) = state.clone();
            Box::pin(async move {
                if fail_first.load(Ordering::SeqCst) > 0 {
                    fail_first.fetch_sub(1, Ordering::SeqCst);
                    return respond(503, &[], Bytes::new());
                }
                let msg = parts
                    .headers
                    .get("x-microsoft-skype-message-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                received.lock().expect("lock").push(Received {
                    path: parts.uri.to_string(),
                    headers: parts.headers.clone(),
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    at: Instant::now(),
                });
                arrived.notify_waiters();
                respond(
                    202,
                    &[("client-request-id", msg), ("scenario-id", guid(0x5ce, 1))],
                    Bytes::new(),
                )
            })
        });
        let stop = serve_double(listener, None, handler, Arc::new(AtomicUsize::new(0)));
        FakeBot {
            addr,
            received,
            fail_first,
            arrived,
            _stop: stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    /// Waits until at least `n` notifications arrived (panics after `limit`).
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.arrived.notified();
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let got = self.received();
                assert!(got.len() >= n, "bot received {} notifications, expected {n}", got.len());
                return got;
            }
        }
    }
}
