//! The accept loop: HTTP/1.1 and HTTP/2 (hyper-util auto), optional TLS, and a bound on
//! everything a client can hold: the request head (size and time), the body (time, by
//! [`ServerBody`]), an idle connection (`idle_timeout`), the number of connections
//! (beyond it, clients wait in the backlog), accept errors (backed off). Graceful
//! shutdown stops accepting and lets in-flight requests finish. Knows nothing about
//! Graph: each request goes to a [`Handler`], which also renders the server's own
//! refusals (a head over the limit) so they look like the face's other errors.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::conn::{Activity, ServerBody, Tracked};
use super::wire::Resp;

pub use super::conn::ServerBody as Body;

/// A boxed handler future.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Resp> + Send>>;

/// What a listener serves. Implementors are cheap handles onto shared state: the
/// future they return owns what it needs.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: http::Request<ServerBody>, peer: SocketAddr) -> HandlerFuture;

    /// The answer to a request the server refuses itself (`status` 431: its head is
    /// over the limit). The default is a plain-text body.
    fn refuse(&self, status: u16, message: &str, _req: &http::request::Parts) -> Resp {
        super::wire::response(status, http::HeaderMap::new(), message.to_string())
    }
}

/// Limits and TLS for one listener.
#[derive(Clone)]
pub struct ServerOptions {
    /// Request-head size (HTTP/1 and HTTP/2); beyond it: 431.
    pub max_header_bytes: usize,
    /// A client that has not sent its whole request head by then is disconnected.
    pub header_timeout: Duration,
    /// A request whose body has not arrived by then (after its head) fails.
    pub body_timeout: Duration,
    /// A connection with no request in progress and no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long in-flight requests get to finish at shutdown.
    pub grace: Duration,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Accept errors (EMFILE and friends) back off, doubling from 5 ms to 1 s.
struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(Self::MAX);
        d
    }
}

/// The size of a request head as the limit counts it.
fn head_size(p: &http::request::Parts) -> usize {
    let headers: usize = p.headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    p.method.as_str().len() + p.uri.to_string().len() + headers + 12
}

fn builder(opts: &ServerOptions) -> auto::Builder<TokioExecutor> {
    // hyper refuses heads over twice the limit itself (a bare 431); between the limit
    // and that, the handler renders the refusal
    let buffer = opts.max_header_bytes.saturating_mul(2).max(8192);
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout)
        .max_buf_size(buffer);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(buffer).unwrap_or(u32::MAX));
    b
}

/// Serves `listener` until `shutdown` resolves, then drains connections.
pub async fn serve(
    listener: TcpListener,
    handler: Arc<dyn Handler>,
    opts: ServerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let max = opts
        .max_connections
        .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let slots = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(false);
    let builder = builder(&opts);
    let tls = opts.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let mut backoff = Backoff(Backoff::FIRST);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    let wait = backoff.next();
                    tracing::warn!("accept failed: {e}; retrying in {wait:?}");
                    tokio::time::sleep(wait).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        backoff = Backoff(Backoff::FIRST);
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            handler: handler.clone(),
            opts: opts.clone(),
            peer,
            _permit: permit,
        };
        tokio::spawn(conn.run(stream, builder.clone(), tls.clone(), stop_rx.clone()));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    tokio::select! {
        r = slots.acquire_many(max as u32) => drop(r),
        () = tokio::time::sleep(opts.grace) => tracing::warn!("shutdown: connections still open after {:?}", opts.grace),
    }
}

/// One accepted connection and what it holds.
struct Conn {
    handler: Arc<dyn Handler>,
    opts: ServerOptions,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
}

impl Conn {
    async fn run(
        self,
        stream: TcpStream,
        builder: auto::Builder<TokioExecutor>,
        tls: Option<tokio_rustls::TlsAcceptor>,
        stop: watch::Receiver<bool>,
    ) {
        let activity = Arc::new(Activity::new());
        let io = Tracked::new(stream, activity.clone());
        match tls {
            None => self.serve(TokioIo::new(io), &builder, activity, stop).await,
            Some(acceptor) => match tokio::time::timeout(self.opts.header_timeout, acceptor.accept(io)).await {
                Ok(Ok(s)) => self.serve(TokioIo::new(s), &builder, activity, stop).await,
                Ok(Err(e)) => tracing::debug!(peer = %self.peer, "TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(peer = %self.peer, "TLS handshake timed out"),
            },
        }
    }

    async fn serve<I>(
        &self,
        io: I,
        builder: &auto::Builder<TokioExecutor>,
        activity: Arc<Activity>,
        mut stop: watch::Receiver<bool>,
    ) where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (handler, peer) = (self.handler.clone(), self.peer);
        let (max_head, body_timeout) = (self.opts.max_header_bytes, self.opts.body_timeout);
        let a = activity.clone();
        let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let (handler, busy) = (handler.clone(), a.begin());
            async move {
                let (parts, body) = req.into_parts();
                let resp = if head_size(&parts) > max_head {
                    let msg = format!("request head exceeds the limit of {max_head} bytes");
                    handler.refuse(431, &msg, &parts)
                } else {
                    let req = http::Request::from_parts(parts, ServerBody::new(body, body_timeout));
                    handler.handle(req, peer).await
                };
                drop(busy);
                Ok::<_, Infallible>(resp)
            }
        });
        let conn = builder.serve_connection(io, svc);
        tokio::pin!(conn);
        let idle = activity.idle(self.opts.idle_timeout);
        tokio::pin!(idle);
        let mut closing = false;
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(peer = %self.peer, "connection ended: {e}");
                    }
                    return;
                }
                () = &mut idle, if !closing => {
                    tracing::debug!(peer = %self.peer, "closing an idle connection");
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                _ = stop.wait_for(|s| *s), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}
