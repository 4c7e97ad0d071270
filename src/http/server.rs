//! The accept loop: HTTP/1.1 and HTTP/2 (hyper-util auto, upgrades allowed for the
//! proxy's `CONNECT`), optional TLS (a plain-HTTP client on a TLS port is told so and
//! closed), header size and header-timeout limits, and graceful shutdown (stop
//! accepting, let in-flight requests finish). Knows nothing about Graph: it hands each
//! request to a `Handler`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::tls;
use super::wire::Resp;

/// A boxed handler future.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Resp> + Send>>;

/// What a listener serves. Implementors are cheap handles onto shared state: the
/// future they return owns what it needs.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: http::Request<Incoming>, peer: SocketAddr) -> HandlerFuture;
}

/// Limits and TLS for one listener.
#[derive(Clone)]
pub struct ServerOptions {
    /// Request-head buffer (HTTP/1) / header list (HTTP/2) size; beyond it: 431.
    pub max_header_bytes: usize,
    /// A client that has not sent its whole request head by then is disconnected.
    pub header_timeout: Duration,
    /// How long in-flight requests get to finish at shutdown.
    pub grace: Duration,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// hyper's connection builder with a listener's limits.
pub fn conn_builder(opts: &ServerOptions) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout)
        // hyper needs at least 8 KiB of buffer for HTTP/1 headers: a smaller
        // --max-header is raised to that
        .max_buf_size(opts.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(opts.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// Serves `listener` until `shutdown` resolves, then drains connections.
pub async fn serve(
    listener: TcpListener,
    handler: Arc<dyn Handler>,
    opts: ServerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let builder = Arc::new(conn_builder(&opts));
    let tls = opts.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            handler: handler.clone(),
            builder: builder.clone(),
            peer,
            watcher: graceful.watcher(),
        };
        tokio::spawn(conn.run(stream, tls.clone(), opts.header_timeout));
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(opts.grace) => tracing::warn!("shutdown: connections still open after {:?}", opts.grace),
    }
}

/// One accepted connection.
struct Conn {
    handler: Arc<dyn Handler>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    peer: SocketAddr,
    watcher: Watcher,
}

impl Conn {
    async fn run(self, mut stream: TcpStream, tls: Option<tokio_rustls::TlsAcceptor>, header_timeout: Duration) {
        let peer = self.peer;
        let Some(acceptor) = tls else {
            return serve_stream(stream, self.handler, peer, &self.builder, false, Some(self.watcher)).await;
        };
        match tokio::time::timeout(header_timeout, refuse_plain(&mut stream, peer)).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(_) => {
                tracing::debug!(%peer, "TLS client sent nothing within {header_timeout:?}");
                return;
            }
        }
        match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
            Ok(Ok(s)) => serve_stream(s, self.handler, peer, &self.builder, true, Some(self.watcher)).await,
            Ok(Err(e)) => tracing::warn!(%peer, "TLS handshake failed: {e}"),
            Err(_) => tracing::warn!(%peer, "TLS handshake timed out after {header_timeout:?}"),
        }
    }
}

/// On a TLS port: `true` when the client starts a TLS handshake; otherwise it is told
/// (in plain HTTP) that this port speaks TLS, the connection is closed and `false`.
async fn refuse_plain(stream: &mut TcpStream, peer: SocketAddr) -> bool {
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(1) if first[0] == tls::TLS_HANDSHAKE => true,
        Ok(0) | Err(_) => false,
        Ok(_) => {
            tracing::warn!(%peer, "a plain-HTTP client on a TLS port: told to use https://");
            let _ = stream.write_all(&tls::plain_on_tls_reply()).await;
            let _ = stream.shutdown().await;
            false
        }
    }
}

/// Serves HTTP on one established stream (plain, or decrypted TLS when `secure`)
/// until it closes. Requests on a secure stream carry an `https` absolute URI, so
/// handlers see the scheme the client used. Used by the accept loop and by the
/// proxy for the streams it decrypts.
pub async fn serve_stream<I>(
    io: I,
    handler: Arc<dyn Handler>,
    peer: SocketAddr,
    builder: &auto::Builder<TokioExecutor>,
    secure: bool,
    watcher: Option<Watcher>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        let h = handler.clone();
        if secure {
            mark_https(&mut req);
        }
        async move { Ok::<_, Infallible>(h.handle(req, peer).await) }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    let served = match watcher {
        Some(w) => w.watch(conn.into_owned()).await,
        None => conn.await,
    };
    if let Err(e) = served {
        tracing::debug!(%peer, "connection ended: {e}");
    }
}

/// Gives an origin-form request on a TLS stream its `https://host` (from `Host`).
fn mark_https<B>(req: &mut http::Request<B>) {
    if req.uri().scheme().is_some() {
        return;
    }
    let Some(host) = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()) else {
        return;
    };
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    if let Ok(u) = format!("https://{host}{pq}").parse() {
        *req.uri_mut() = u;
    }
}
