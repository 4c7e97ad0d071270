//! Outgoing HTTP: a pooled hyper-util client over rustls (ring provider, webpki roots
//! plus any `--upstream-ca`), HTTP/1.1 and HTTP/2 by ALPN, with timeouts and body
//! limits. Used to reach Graph (record) and the bot (notifications). Knows nothing
//! about Graph.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderMap;
use http::{Method, Uri};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::wire::{self, BodyError};

/// Why an outgoing request failed, from the caller's point of view.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {target}: {detail}")]
    Connect { target: String, detail: String },
    #[error("{target} did not answer within {after:?}")]
    Timeout { target: String, after: Duration },
    #[error("{target} failed: {detail}")]
    Failed { target: String, detail: String },
    #[error("{target} answered with a body over the limit of {limit} bytes")]
    TooLarge { target: String, limit: usize },
    #[error("invalid URL {0}")]
    BadUrl(String),
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot read CA file {path}: {detail}")]
    Ca { path: String, detail: String },
    #[error("TLS set-up failed: {0}")]
    Tls(String),
}

/// A response read in full.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A pooled HTTP(S) client.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
    max_body: usize,
}

/// Installs the ring crypto provider for rustls once per process (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl HttpClient {
    /// A client trusting the webpki roots plus the PEM certificates in `extra_ca`.
    pub fn new(extra_ca: Option<&Path>, timeout: Duration, max_body: usize) -> Result<HttpClient, SetupError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = extra_ca {
            let ca_err = |detail: String| SetupError::Ca {
                path: path.display().to_string(),
                detail,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| ca_err(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ca_err(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_err("no certificate in it".into()));
            }
            for c in certs {
                roots.add(c).map_err(|e| ca_err(e.to_string()))?;
            }
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| SetupError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(https);
        Ok(HttpClient {
            inner,
            timeout,
            max_body,
        })
    }

    /// Sends a request to an absolute URL and reads the whole response.
    pub async fn send(&self, method: Method, url: &str, headers: HeaderMap, body: Bytes) -> Result<Reply, ClientError> {
        let uri: Uri = url.parse().map_err(|_| ClientError::BadUrl(url.to_string()))?;
        let target = match (uri.scheme_str(), uri.authority()) {
            (Some(s), Some(a)) => format!("{s}://{a}"),
            _ => return Err(ClientError::BadUrl(url.to_string())),
        };
        let mut req = http::Request::new(Full::new(body));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        let limit = self.max_body;
        let exchange = async {
            let resp = self.inner.request(req).await.map_err(|e| {
                let detail = error_chain(&e);
                if e.is_connect() {
                    ClientError::Connect {
                        target: target.clone(),
                        detail,
                    }
                } else {
                    ClientError::Failed {
                        target: target.clone(),
                        detail,
                    }
                }
            })?;
            let (parts, body) = resp.into_parts();
            let body = wire::read_body(&parts.headers, body, limit)
                .await
                .map_err(|e| match e {
                    BodyError::TooLarge { limit } => ClientError::TooLarge {
                        target: target.clone(),
                        limit,
                    },
                    BodyError::Read(detail) => ClientError::Failed {
                        target: target.clone(),
                        detail,
                    },
                    BodyError::TimedOut(after) => ClientError::Timeout {
                        target: target.clone(),
                        after,
                    },
                })?;
            let mut headers = parts.headers;
            wire::strip_hop_by_hop(&mut headers);
            Ok(Reply {
                status: parts.status.as_u16(),
                headers,
                body,
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout {
                target,
                after: self.timeout,
            }),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
