//! The tiny server loop both doubles (fake Graph, fake bot) run on, response helpers,
//! and a loopback port that refuses connections.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::header::HeaderValue;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;

pub type Resp = http::Response<Full<Bytes>>;
pub type BoxFut = std::pin::Pin<Box<dyn std::future::Future<Output = Resp> + Send>>;
pub type Handler = Arc<dyn Fn(http::request::Parts, Bytes) -> BoxFut + Send + Sync>;

/// Serves `handler` on `listener` (TLS when given) until the returned sender drops;
/// counts accepted connections.
pub fn serve_double(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: Handler,
    connections: Arc<AtomicUsize>,
) -> oneshot::Sender<()> {
    let (tx, mut rx) = oneshot::channel::<()>();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                _ = &mut rx => break,
            };
            connections.fetch_add(1, Ordering::SeqCst);
            let h = handler.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let h = h.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                        Ok::<_, std::convert::Infallible>(h(parts, bytes).await)
                    }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match acceptor {
                    Some(a) => {
                        if let Ok(s) = a.accept(stream).await {
                            let _ = builder.serve_connection(TokioIo::new(s), svc).await;
                        }
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                    }
                }
            });
        }
    });
    tx
}

pub fn respond(status: u16, headers: &[(&str, String)], body: impl Into<Bytes>) -> Resp {
    let mut r = http::Response::new(Full::new(body.into()));
    *r.status_mut() = http::StatusCode::from_u16(status).expect("status");
    for (n, v) in headers {
        r.headers_mut().append(
            http::header::HeaderName::from_bytes(n.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    r
}

pub fn json_resp(status: u16, headers: &[(&str, String)], v: &Value) -> Resp {
    let mut h: Vec<(&str, String)> = vec![("content-type", "application/json".to_string())];
    h.extend(headers.iter().cloned());
    respond(status, &h, serde_json::to_vec(v).expect("json"))
}

/// A loopback port bound but not listening: every connection to it is refused, and
/// the port stays this test's (a listener dropped to free its port lets another test,
/// running at the same time, be given the same port). `open` makes it listen.
pub struct ClosedPort {
    socket: TcpSocket,
    addr: std::net::SocketAddr,
}

impl ClosedPort {
    pub fn new() -> ClosedPort {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.bind(([127, 0, 0, 1], 0).into()).expect("bind a closed port");
        let addr = socket.local_addr().expect("addr");
        ClosedPort { socket, addr }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Starts listening on the port, e.g. for a bot that comes up late.
    pub fn open(self) -> TcpListener {
        self.socket.listen(1024).expect("listen")
    }
}
