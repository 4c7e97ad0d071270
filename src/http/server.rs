//! The accept loop: HTTP/1.1 and HTTP/2 (hyper-util auto, upgrades allowed for the
//! proxy's `CONNECT`), optional TLS (a plain-HTTP client on a TLS port is told so and
//! closed), and a bound on everything a client can hold: the request head (size and time), the body (time, by
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
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::conn::{Activity, ServerBody, Tracked};
use super::tls;
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

    /// The `Date` of a response that sets none, as Unix milliseconds. hyper's own is
    /// off: a handler with an injected clock answers the same bytes for the same
    /// request. The default is the system clock.
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// An HTTP `Date` value for Unix milliseconds `ms` (formatted once per second and
/// thread: every response carries one).
pub fn http_date(ms: u64) -> http::HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(u64, http::HeaderValue)>> = const { std::cell::RefCell::new(None) };
    }
    let secs = ms / 1000;
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((s, v)) if *s == secs => v.clone(),
            _ => {
                let t = std::time::UNIX_EPOCH + Duration::from_secs(secs);
                let v = http::HeaderValue::from_str(&httpdate::fmt_http_date(t))
                    .unwrap_or(http::HeaderValue::from_static(""));
                *last = Some((secs, v.clone()));
                v
            }
        }
    })
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
    /// Counts what is written (the target's length, without writing it anywhere).
    struct Count(usize);
    impl std::fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut target = Count(0);
    let _ = std::fmt::Write::write_fmt(&mut target, format_args!("{}", p.uri));
    let headers: usize = p.headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    p.method.as_str().len() + target.0 + headers + 12
}

/// hyper's connection builder with a listener's limits.
pub fn conn_builder(opts: &ServerOptions) -> auto::Builder<TokioExecutor> {
    // hyper refuses heads over twice the limit itself (a bare 431); between the limit
    // and that, the handler renders the refusal
    let buffer = opts.max_header_bytes.saturating_mul(2).max(8192);
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .auto_date_header(false)
        .header_read_timeout(opts.header_timeout)
        .max_buf_size(buffer);
    b.http2()
        .timer(TokioTimer::new())
        .auto_date_header(false)
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
    let builder = conn_builder(&opts);
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
        mut stream: TcpStream,
        builder: auto::Builder<TokioExecutor>,
        tls: Option<tokio_rustls::TlsAcceptor>,
        stop: watch::Receiver<bool>,
    ) {
        let (peer, header_timeout) = (self.peer, self.opts.header_timeout);
        let activity = Arc::new(Activity::new());
        let Some(acceptor) = tls else {
            let io = Tracked::new(stream, activity.clone());
            let stream = Stream::new(self.handler.clone(), peer, &self.opts, false);
            return stream.serve(TokioIo::new(io), &builder, activity, Some(stop)).await;
        };
        match tokio::time::timeout(header_timeout, refuse_plain(&mut stream, peer)).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(_) => return tracing::debug!(%peer, "TLS client sent nothing within {header_timeout:?}"),
        }
        let io = Tracked::new(stream, activity.clone());
        match tokio::time::timeout(header_timeout, acceptor.accept(io)).await {
            Ok(Ok(s)) => {
                let stream = Stream::new(self.handler.clone(), peer, &self.opts, true);
                stream.serve(TokioIo::new(s), &builder, activity, Some(stop)).await
            }
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
/// until it closes. Used by the accept loop and by the proxy for the streams it
/// decrypts (those stop with the proxy's connection, not on their own).
pub async fn serve_stream<I>(io: I, handler: Arc<dyn Handler>, peer: SocketAddr, opts: &ServerOptions, secure: bool)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let io = Tracked::new(io, activity.clone());
    let builder = conn_builder(opts);
    Stream::new(handler, peer, opts, secure)
        .serve(TokioIo::new(io), &builder, activity, None)
        .await
}

/// What serving one stream needs.
struct Stream {
    handler: Arc<dyn Handler>,
    peer: SocketAddr,
    max_head: usize,
    body_timeout: Duration,
    idle_timeout: Duration,
    /// Requests carry an `https` absolute URI, so handlers see the scheme used.
    secure: bool,
}

impl Stream {
    fn new(handler: Arc<dyn Handler>, peer: SocketAddr, opts: &ServerOptions, secure: bool) -> Stream {
        Stream {
            handler,
            peer,
            max_head: opts.max_header_bytes,
            body_timeout: opts.body_timeout,
            idle_timeout: opts.idle_timeout,
            secure,
        }
    }

    async fn serve<I>(
        self,
        io: I,
        builder: &auto::Builder<TokioExecutor>,
        activity: Arc<Activity>,
        mut stop: Option<watch::Receiver<bool>>,
    ) where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (handler, peer, secure) = (self.handler.clone(), self.peer, self.secure);
        let (max_head, body_timeout) = (self.max_head, self.body_timeout);
        let a = activity.clone();
        let svc = hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            let (handler, busy) = (handler.clone(), a.begin());
            if secure {
                mark_https(&mut req);
            }
            async move {
                let (parts, body) = req.into_parts();
                let mut resp = if head_size(&parts) > max_head {
                    let msg = format!("request head exceeds the limit of {max_head} bytes");
                    handler.refuse(431, &msg, &parts)
                } else {
                    let req = http::Request::from_parts(parts, ServerBody::new(body, body_timeout));
                    handler.handle(req, peer).await
                };
                if !resp.headers().contains_key(http::header::DATE) {
                    let date = http_date(handler.now_ms());
                    resp.headers_mut().insert(http::header::DATE, date);
                }
                drop(busy);
                Ok::<_, Infallible>(resp)
            }
        });
        let conn = builder.serve_connection_with_upgrades(io, svc);
        tokio::pin!(conn);
        let idle = activity.idle(self.idle_timeout);
        tokio::pin!(idle);
        let mut closing = false;
        let stopped = async {
            match stop.as_mut() {
                Some(s) => drop(s.wait_for(|v| *v).await),
                None => std::future::pending::<()>().await,
            }
        };
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                    return;
                }
                () = &mut idle, if !closing => {
                    tracing::debug!(%peer, "closing an idle connection");
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = &mut stopped, if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
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
        req.extensions_mut().insert(super::wire::Resolved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_formatted_once_a_second_and_read_the_same() {
        let at = 1_795_773_600_000;
        assert_eq!(http_date(at + 123), "Fri, 27 Nov 2026 10:00:00 GMT");
        assert_eq!(http_date(at + 999), "Fri, 27 Nov 2026 10:00:00 GMT");
        assert_eq!(http_date(at + 1000), "Fri, 27 Nov 2026 10:00:01 GMT");
        assert_eq!(http_date(at), "Fri, 27 Nov 2026 10:00:00 GMT");
    }

    #[test]
    fn a_head_counts_its_target_as_written() {
        for uri in [
            "/v1.0/communications/calls?a=1",
            "http://graph.microsoft.com/v1.0/x",
            "graph.microsoft.com:443",
        ] {
            let method = if uri.ends_with(":443") { "CONNECT" } else { "GET" };
            let (p, ()) = http::Request::builder()
                .method(method)
                .uri(uri)
                .body(())
                .unwrap()
                .into_parts();
            assert_eq!(head_size(&p), method.len() + p.uri.to_string().len() + 12, "{uri}");
        }
    }
}
