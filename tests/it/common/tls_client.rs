//! A client that trusts only graphvcr's CA: straight to a TLS face on 127.0.0.1, or
//! through graphvcr's proxy face (`CONNECT host:443`, then TLS for `host`: the host is
//! resolved by the proxy, never by DNS), speaking HTTP/2 or HTTP/1.1 by ALPN.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How the client reaches the server.
#[derive(Debug, Clone, Copy)]
pub enum Via {
    /// Straight to a TLS face (no SNI: the client dials an IP address).
    Direct(SocketAddr),
    /// Through the proxy face, to `host:443`.
    Proxy(SocketAddr),
}

/// An answer read in full.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub version: http::Version,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }
}

/// A TLS client config trusting the PEM certificates in `ca` and nothing else.
pub fn trusting_only(ca: &Path, h2: bool) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("read CA") {
        roots.add(c.expect("CA pem")).expect("add CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = if h2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Arc::new(cfg)
}

/// Sends `CONNECT target` to the proxy; returns the status, the answer's head and
/// body text, and the stream (a tunnel when the status is 200).
pub async fn connect(proxy: SocketAddr, target: &str) -> (u16, String, TcpStream) {
    let mut s = TcpStream::connect(proxy).await.expect("connect to proxy");
    let req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("send CONNECT");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).await.expect("read CONNECT answer"), 1, "proxy closed");
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let status: u16 = text.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("status");
    let len = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.expect("read CONNECT body");
    (status, format!("{text}{}", String::from_utf8_lossy(&body)), s)
}

/// The TLS stream to `host` (SNI) over `via`.
pub async fn tls_stream(
    ca: &Path,
    via: Via,
    host: &str,
    h2: bool,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, std::io::Error> {
    let (tcp, name) = match via {
        Via::Direct(addr) => (TcpStream::connect(addr).await?, ServerName::IpAddress(addr.ip().into())),
        Via::Proxy(p) => {
            let (status, head, s) = connect(p, &format!("{host}:443")).await;
            assert_eq!(status, 200, "CONNECT {host}: {head}");
            (s, ServerName::try_from(host.to_string()).expect("name"))
        }
    };
    let name = match via {
        Via::Direct(_) if host != "127.0.0.1" => ServerName::try_from(host.to_string()).expect("name"),
        _ => name,
    };
    tokio_rustls::TlsConnector::from(trusting_only(ca, h2))
        .connect(name, tcp)
        .await
}

/// One request over a fresh TLS connection; `host` is the `Host`/SNI name.
#[allow(clippy::too_many_arguments)]
pub async fn request(
    ca: &Path,
    via: Via,
    host: &str,
    h2: bool,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    let stream = tls_stream(ca, via, host, h2).await.expect("TLS handshake");
    let io = TokioIo::new(stream);
    let authority = match via {
        Via::Direct(a) => a.to_string(),
        Via::Proxy(_) => host.to_string(),
    };
    // HTTP/2 carries scheme and authority as pseudo-headers; HTTP/1.1 the Host header
    let uri = if h2 {
        format!("https://{authority}{path}")
    } else {
        path.to_string()
    };
    let mut b = http::Request::builder().method(method).uri(uri);
    if !h2 {
        b = b.header("host", &authority);
    }
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    let req = b.body(Full::new(body.into())).expect("request");
    let resp = if h2 {
        let (mut tx, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .expect("h2 handshake");
        tokio::spawn(conn);
        tx.send_request(req).await.expect("h2 request")
    } else {
        let (mut tx, conn) = hyper::client::conn::http1::handshake(io).await.expect("h1 handshake");
        tokio::spawn(conn);
        tx.send_request(req).await.expect("h1 request")
    };
    let (parts, body) = resp.into_parts();
    Answer {
        status: parts.status.as_u16(),
        version: parts.version,
        headers: parts.headers,
        body: body.collect().await.expect("body").to_bytes(),
    }
}

/// The bot's invite for test call `n` (as `harness::invite`) over TLS.
pub async fn invite_over(ca: &Path, via: Via, host: &str, h2: bool, n: u64, auth: Option<&str>) -> Answer {
    let path = format!(
        "/v1.0/communications/calls/{}/participants/invite",
        super::harness::guid(0xca11, n)
    );
    let body = serde_json::to_vec(&super::harness::invite_body(
        &super::harness::guid(0xc0c0, n),
        &super::harness::guid(0x05e7, n),
        None,
    ))
    .expect("json");
    let mut headers = vec![("content-type", "application/json")];
    headers.extend(auth.map(|a| ("authorization", a)));
    request(ca, via, host, h2, "POST", &path, &headers, body).await
}
