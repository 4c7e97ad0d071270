//! TLS and the proxy face for a run: loads the identity material when a face needs
//! it, builds the faces' TLS configs, says how to trust the CA, and wires the proxy
//! face — which hosts it intercepts, tunnels or refuses, and where each intercepted
//! host's requests go (Graph face; identity answers in replay; in record, identity
//! traffic is forwarded and never stored).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Uri};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::faces::{handler, spawn_handler, Endpoint, GraphFace};
use super::{say, AppError};
use crate::clock::Clock;
use crate::config::{Limits, ProxySettings, TlsSettings, UpstreamUrl};
use crate::error::ProxyError;
use crate::http::client::{ClientError, HttpClient};
use crate::http::proxy::{ForwardProxy, HostAction, ProxiedHost, ProxyFault, ProxyPolicy};
use crate::http::server::{HandlerFuture, ServerOptions};
use crate::http::tls::{self, LeafResolver};
use crate::http::wire::{self, Resp};
use crate::identity::{Identity, IdentityFace, CALLBACK_METADATA_HOST, LOGIN_HOST};

/// The TLS side of a run: the identity material (when loaded) and the leaf resolver.
pub struct Secure {
    identity: Option<Arc<Identity>>,
    resolver: Option<Arc<LeafResolver>>,
}

/// Names the faces' no-SNI leaf covers: loopback and every `--tls-name`.
fn face_names(tls: &TlsSettings) -> Vec<String> {
    let mut v: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.extend(tls.names.iter().map(|n| n.to_ascii_lowercase()));
    v
}

impl Secure {
    /// Loads (or creates) `--ca-dir` when a face needs it (a TLS face without its own
    /// certificate, or the proxy face); prints how to trust the CA.
    pub fn load(
        tls: &TlsSettings,
        proxy: &ProxySettings,
        proxy_face: bool,
        clock: &Arc<dyn Clock>,
    ) -> Result<Secure, AppError> {
        let needed = proxy_face || ((tls.graph || tls.callbacks) && tls.cert.is_none());
        if !needed {
            return Ok(Secure {
                identity: None,
                resolver: None,
            });
        }
        let identity =
            Arc::new(Identity::load_or_create(&tls.ca_dir, &**clock).map_err(|e| AppError::Usage(e.to_string()))?);
        let mut allowed = face_names(tls);
        allowed.extend(proxy.intercepted());
        let resolver = Arc::new(LeafResolver::new(
            identity.ca().clone(),
            &allowed,
            &face_names(tls),
            clock.clone(),
        ));
        let p = identity.ca_path().display();
        say(&format!(
            "trust graphvcr's CA {p}: Node NODE_EXTRA_CA_CERTS={p}; Python SSL_CERT_FILE={p} \
             (requests: REQUESTS_CA_BUNDLE={p}); .NET: add it to the OS trust store"
        ));
        Ok(Secure {
            identity: Some(identity),
            resolver: Some(resolver),
        })
    }

    pub fn identity(&self) -> Option<&Arc<Identity>> {
        self.identity.as_ref()
    }

    /// The server config of a TLS face (`--tls-cert/--tls-key`, else local-CA leaves).
    pub fn face_config(&self, tls: &TlsSettings) -> Result<Arc<rustls::ServerConfig>, AppError> {
        let usage = |e: tls::TlsError| AppError::Usage(e.to_string());
        if let Some((cert, key)) = &tls.cert {
            return tls::file_config(cert, key).map_err(usage);
        }
        let r = self
            .resolver
            .clone()
            .ok_or_else(|| AppError::Runtime("TLS asked for without a CA".into()))?;
        tls::resolver_config(r).map_err(usage)
    }

    /// Server options of a face: TLS when `on`.
    pub fn options(&self, limits: &Limits, tls: &TlsSettings, on: bool) -> Result<ServerOptions, AppError> {
        let mut o = limits.server_options();
        if on {
            o.tls = Some(self.face_config(tls)?);
        }
        Ok(o)
    }
}

/// What the proxy face does per host.
struct Policy {
    intercepted: HashSet<String>,
    /// `None`: tunnel everything else (record); else tunnel only these (replay).
    allowed: Option<HashSet<String>>,
    clock: Arc<dyn Clock>,
}

impl ProxyPolicy for Policy {
    fn action(&self, host: &str) -> HostAction {
        if self.intercepted.contains(host) {
            return HostAction::Intercept;
        }
        match &self.allowed {
            Some(a) if !a.contains(host) => HostAction::Refuse,
            _ => HostAction::Tunnel,
        }
    }

    fn fault(&self, fault: &ProxyFault, method: &Method, uri: &Uri) -> Resp {
        let e = match fault {
            ProxyFault::Refused(host) => ProxyError::Refused(format!(
                "graphvcr replay refuses traffic to `{host}`: a replay must not reach the network \
                 (tunnel it with --allow-host {host}, or intercept it with --intercept {host})"
            )),
            ProxyFault::BadTarget(m) => ProxyError::BadRequest(m.clone()),
            ProxyFault::TooLarge(n) => ProxyError::TooLarge(*n),
            ProxyFault::Unreachable { target, detail } => ProxyError::Upstream(ClientError::Connect {
                target: target.clone(),
                detail: detail.clone(),
            }),
        };
        e.respond(&*self.clock, method, uri, b"")
    }
}

/// Where a record run sends an intercepted identity host's requests: forwarded as
/// they are, and never stored (they carry client secrets).
struct Forwarder {
    client: HttpClient,
    to: UpstreamUrl,
    clock: Arc<dyn Clock>,
}

impl Forwarder {
    async fn forward(&self, parts: &http::request::Parts, body: Bytes) -> Resp {
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let sent = self
            .client
            .send(
                parts.method.clone(),
                &self.to.join(pq),
                wire::proxy_headers(&parts.headers),
                body,
            )
            .await;
        match sent {
            Ok(r) => wire::response(r.status, r.headers, r.body),
            Err(e) => ProxyError::Upstream(e).respond(&*self.clock, &parts.method, &parts.uri, b""),
        }
    }
}

/// How intercepted identity traffic is handled.
pub enum IdentityRoute {
    /// Replay: answered offline.
    Answer(Arc<IdentityFace>),
    /// Record: forwarded unrecorded, with this client and these upstreams.
    Forward(Box<(HttpClient, ProxySettings)>),
}

/// The handler behind the proxy's interception: by host, to the Graph face or the
/// identity endpoints.
struct InterceptFace {
    graph: Arc<GraphFace>,
    identity: IdentityRoute,
    clock: Arc<dyn Clock>,
}

impl Endpoint for InterceptFace {
    fn call(self: Arc<Self>, parts: http::request::Parts, body: Bytes) -> HandlerFuture {
        let host = parts.extensions.get::<ProxiedHost>().map(|h| h.host().to_string());
        let is_identity = matches!(host.as_deref(), Some(LOGIN_HOST | CALLBACK_METADATA_HOST));
        if !is_identity {
            return self.graph.clone().call(parts, body);
        }
        Box::pin(async move {
            let host = host.unwrap_or_default();
            match &self.identity {
                IdentityRoute::Answer(f) if host == LOGIN_HOST => f.login(&parts, &body),
                IdentityRoute::Answer(f) => f.callback_metadata(&parts),
                IdentityRoute::Forward(route) => {
                    let (client, settings) = &**route;
                    let fw = Forwarder {
                        client: client.clone(),
                        to: settings.upstream_for(&host),
                        clock: self.clock.clone(),
                    };
                    tracing::info!(%host, path = parts.uri.path(), "identity request forwarded (not recorded)");
                    fw.forward(&parts, body).await
                }
            }
        })
    }
}

/// What the proxy face is built from.
pub struct ProxyFace {
    pub graph: Arc<GraphFace>,
    pub identity: IdentityRoute,
    /// Carries tunnelled plain-HTTP requests.
    pub client: HttpClient,
    /// Replay: refuse hosts that are neither intercepted nor allowed.
    pub refuse_others: bool,
}

/// Starts the proxy face on `listener`.
pub fn spawn_proxy(
    listener: TcpListener,
    face: ProxyFace,
    settings: &ProxySettings,
    secure: &Secure,
    limits: &Limits,
    clock: &Arc<dyn Clock>,
    stop: &watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, AppError> {
    let resolver = secure
        .resolver
        .clone()
        .ok_or_else(|| AppError::Runtime("the proxy face needs the CA".into()))?;
    let tls = tls::resolver_config(resolver).map_err(|e| AppError::Usage(e.to_string()))?;
    let policy = Arc::new(Policy {
        intercepted: settings.intercepted().into_iter().collect(),
        allowed: face.refuse_others.then(|| settings.allow.iter().cloned().collect()),
        clock: clock.clone(),
    });
    let inner = handler(
        Arc::new(InterceptFace {
            graph: face.graph,
            identity: face.identity,
            clock: clock.clone(),
        }),
        limits,
        clock,
    );
    let opts = limits.server_options();
    let proxy = ForwardProxy::new(policy, inner, tls, face.client, &opts, limits.max_body);
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    let task = spawn_handler(listener, Arc::new(proxy), opts, "proxy", stop)?;
    if let Some(a) = addr {
        say(&format!(
            "proxy: HTTPS_PROXY=http://{a} (intercepts {})",
            settings.intercepted().join(", ")
        ));
    }
    Ok(task)
}
