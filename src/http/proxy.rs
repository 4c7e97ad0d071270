//! The forward-proxy face: `CONNECT host:port` and absolute-form requests. A policy
//! says, per host, whether to intercept (terminate TLS with a leaf for that host and
//! hand the decrypted requests to a `Handler`), tunnel (copy bytes both ways, or
//! forward a plain-HTTP request) or refuse. Every failure is an answer to that one
//! request; the proxy keeps serving. Knows nothing about Graph.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::client::HttpClient;
use super::server::{self, Handler, HandlerFuture, ServerOptions};
use super::wire::{self, BodyError, Resp};

/// What the proxy does with a host's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostAction {
    /// Terminate TLS (a leaf from the local CA) and hand the requests to the handler.
    Intercept,
    /// Pass the bytes (or the plain-HTTP request) on untouched.
    Tunnel,
    /// Answer with the policy's refusal.
    Refuse,
}

/// Why the proxy could not carry a request.
#[derive(Debug, thiserror::Error)]
pub enum ProxyFault {
    #[error("the proxy refuses traffic to `{0}`")]
    Refused(String),
    #[error("{0}")]
    BadTarget(String),
    #[error("cannot reach {target}: {detail}")]
    Unreachable { target: String, detail: String },
    #[error("request body exceeds the limit of {0} bytes")]
    TooLarge(usize),
}

/// Per-host decisions and how failures are rendered.
pub trait ProxyPolicy: Send + Sync + 'static {
    /// What to do with traffic for `host` (lowercase, no port).
    fn action(&self, host: &str) -> HostAction;
    /// The answer to a request the proxy cannot carry (logged by the policy).
    fn fault(&self, fault: &ProxyFault, method: &Method, uri: &Uri) -> Resp;
}

/// The host an intercepted request was sent to (from its `CONNECT` or absolute URI),
/// set as a request extension for the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedHost(String);

impl ProxiedHost {
    pub fn new(host: &str) -> ProxiedHost {
        ProxiedHost(host.to_ascii_lowercase())
    }

    /// Lowercase, without the port.
    pub fn host(&self) -> &str {
        &self.0
    }
}

struct Shared {
    policy: Arc<dyn ProxyPolicy>,
    inner: Arc<dyn Handler>,
    tls: tokio_rustls::TlsAcceptor,
    opts: ServerOptions,
    client: HttpClient,
    max_body: usize,
    timeout: Duration,
}

/// The proxy face's handler.
#[derive(Clone)]
pub struct ForwardProxy(Arc<Shared>);

impl ForwardProxy {
    /// `tls` terminates intercepted hosts; `client` carries tunnelled plain-HTTP
    /// requests; `opts` limit the decrypted connections as on any listener.
    pub fn new(
        policy: Arc<dyn ProxyPolicy>,
        inner: Arc<dyn Handler>,
        tls: Arc<rustls::ServerConfig>,
        client: HttpClient,
        opts: &ServerOptions,
        max_body: usize,
    ) -> ForwardProxy {
        ForwardProxy(Arc::new(Shared {
            policy,
            inner,
            tls: tokio_rustls::TlsAcceptor::from(tls),
            opts: opts.clone(),
            client,
            max_body,
            timeout: opts.header_timeout,
        }))
    }
}

impl Handler for ForwardProxy {
    fn handle(&self, req: http::Request<server::Body>, peer: SocketAddr) -> HandlerFuture {
        let s = self.0.clone();
        Box::pin(async move {
            let (method, uri) = (req.method().clone(), req.uri().clone());
            let r = if method == Method::CONNECT {
                connect(&s, req, peer).await
            } else {
                absolute(&s, req, peer).await
            };
            r.unwrap_or_else(|f| s.policy.fault(&f, &method, &uri))
        })
    }

    fn now_ms(&self) -> u64 {
        self.0.inner.now_ms()
    }
}

/// `host` and `port` of a `CONNECT` target (`host:port`, IPv6 in brackets).
fn connect_target(uri: &Uri) -> Result<(String, u16), ProxyFault> {
    let bad = || ProxyFault::BadTarget(format!("CONNECT needs a host:port target, not `{uri}`"));
    let auth = uri.authority().ok_or_else(bad)?;
    let port = auth.port_u16().ok_or_else(bad)?;
    let host = auth.host().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_ascii_lowercase(), port))
}

async fn connect(s: &Arc<Shared>, req: http::Request<server::Body>, peer: SocketAddr) -> Result<Resp, ProxyFault> {
    let (host, port) = connect_target(req.uri())?;
    match s.policy.action(&host) {
        HostAction::Refuse => Err(ProxyFault::Refused(host)),
        HostAction::Intercept => {
            let s = s.clone();
            tokio::spawn(async move {
                let io = match hyper::upgrade::on(req).await {
                    Ok(u) => TokioIo::new(u),
                    Err(e) => return tracing::debug!(%peer, "CONNECT {host}: no tunnel: {e}"),
                };
                let stream = match tokio::time::timeout(s.timeout, s.tls.accept(io)).await {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => return tracing::warn!(%peer, "CONNECT {host}: TLS handshake failed: {e}"),
                    Err(_) => return tracing::warn!(%peer, "CONNECT {host}: TLS handshake timed out"),
                };
                let handler: Arc<dyn Handler> = Arc::new(Intercepted {
                    inner: s.inner.clone(),
                    host: ProxiedHost::new(&host),
                });
                server::serve_stream(stream, handler, peer, &s.opts, true).await;
            });
            Ok(wire::response(200, http::HeaderMap::new(), ""))
        }
        HostAction::Tunnel => {
            let target = format!("{host}:{port}");
            let upstream = match tokio::time::timeout(s.timeout, TcpStream::connect((host.as_str(), port))).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => return Err(unreachable(&target, e.to_string())),
                Err(_) => return Err(unreachable(&target, format!("no connection within {:?}", s.timeout))),
            };
            tokio::spawn(async move {
                let mut upstream = upstream;
                match hyper::upgrade::on(req).await {
                    Ok(u) => {
                        let mut client = TokioIo::new(u);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                    Err(e) => tracing::debug!(%peer, "CONNECT {target}: no tunnel: {e}"),
                }
            });
            tracing::info!(%peer, "tunnelling to {host}:{port}");
            Ok(wire::response(200, http::HeaderMap::new(), ""))
        }
    }
}

fn unreachable(target: &str, detail: String) -> ProxyFault {
    ProxyFault::Unreachable {
        target: target.to_string(),
        detail,
    }
}

/// An absolute-form request (`GET http://host/path`): intercepted, forwarded or refused.
async fn absolute(s: &Arc<Shared>, mut req: http::Request<server::Body>, peer: SocketAddr) -> Result<Resp, ProxyFault> {
    let Some(host) = req.uri().host().map(str::to_ascii_lowercase) else {
        return Err(ProxyFault::BadTarget(format!(
            "this is a forward proxy: send `CONNECT host:443` or an absolute URL, not `{}`",
            req.uri()
        )));
    };
    let headers = req.headers_mut();
    headers.remove(http::header::PROXY_AUTHORIZATION);
    headers.remove("proxy-connection");
    match s.policy.action(&host) {
        HostAction::Refuse => Err(ProxyFault::Refused(host)),
        HostAction::Intercept => {
            req.extensions_mut().insert(ProxiedHost::new(&host));
            req.extensions_mut().insert(wire::Resolved);
            Ok(s.inner.handle(req, peer).await)
        }
        HostAction::Tunnel => {
            let (parts, body) = req.into_parts();
            let body = wire::read_body(&parts.headers, body, s.max_body)
                .await
                .map_err(|e| match e {
                    BodyError::TooLarge { limit } => ProxyFault::TooLarge(limit),
                    BodyError::TimedOut(after) => {
                        ProxyFault::BadTarget(format!("the request body did not arrive within {after:?}"))
                    }
                    BodyError::Read(m) => ProxyFault::BadTarget(m),
                })?;
            let url = parts.uri.to_string();
            let reply = s
                .client
                .send(parts.method, &url, wire::proxy_headers(&parts.headers), body)
                .await
                .map_err(|e| unreachable(&host, e.to_string()))?;
            Ok(wire::response(reply.status, reply.headers, reply.body))
        }
    }
}

/// The requests of one intercepted tunnel, marked with the host they went to.
struct Intercepted {
    inner: Arc<dyn Handler>,
    host: ProxiedHost,
}

impl Handler for Intercepted {
    fn handle(&self, mut req: http::Request<server::Body>, peer: SocketAddr) -> HandlerFuture {
        req.headers_mut().remove(http::header::PROXY_AUTHORIZATION);
        req.extensions_mut().insert(self.host.clone());
        self.inner.handle(req, peer)
    }

    fn now_ms(&self) -> u64 {
        self.inner.now_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_targets_need_host_and_port() {
        let t = |s: &str| connect_target(&s.parse::<Uri>().unwrap());
        assert_eq!(
            t("graph.microsoft.com:443").unwrap(),
            ("graph.microsoft.com".into(), 443)
        );
        assert_eq!(t("[::1]:8443").unwrap(), ("::1".into(), 8443));
        assert!(t("graph.microsoft.com").is_err());
    }
}
