//! The accept loop: HTTP/1.1 and HTTP/2 (hyper-util auto), optional TLS, header size
//! and header-timeout limits, and graceful shutdown (stop accepting, let in-flight
//! requests finish). Knows nothing about Graph: it hands each request to a `Handler`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

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

/// Serves `listener` until `shutdown` resolves, then drains connections.
pub async fn serve(
    listener: TcpListener,
    handler: Arc<dyn Handler>,
    opts: ServerOptions,
    shutdown: impl Future<Output = ()>,
) {
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
        let h = handler.clone();
        let svc = hyper::service::service_fn(move |req| {
            let h = h.clone();
            async move { Ok::<_, Infallible>(h.handle(req, peer).await) }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let header_timeout = opts.header_timeout;
        tokio::spawn(async move {
            let served = match tls {
                None => {
                    watcher
                        .watch(builder.serve_connection(TokioIo::new(stream), svc).into_owned())
                        .await
                }
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, "TLS handshake failed: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    watcher
                        .watch(builder.serve_connection(TokioIo::new(stream), svc).into_owned())
                        .await
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(opts.grace) => tracing::warn!("shutdown: connections still open after {:?}", opts.grace),
    }
}
