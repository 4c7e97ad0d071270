//! Where things are: listen addresses, the bot's and the upstream's URLs, and the TLS
//! and forward-proxy settings of the faces.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::defaults;

/// Where notifications go: scheme, host, port and an optional path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotUrl {
    /// `http://127.0.0.1:3978`
    pub origin: String,
    /// `""` or `/prefix` (no trailing slash)
    pub prefix: String,
}

impl BotUrl {
    pub fn parse(s: &str) -> Result<BotUrl, String> {
        let uri: http::Uri = s.parse().map_err(|_| format!("--bot-url `{s}` is not a URL"))?;
        let (Some(scheme), Some(auth)) = (uri.scheme_str(), uri.authority()) else {
            return Err(format!(
                "--bot-url `{s}` needs a scheme and host, e.g. http://127.0.0.1:3978"
            ));
        };
        if scheme != "http" && scheme != "https" {
            return Err(format!("--bot-url `{s}`: only http and https are supported"));
        }
        if uri.query().is_some() {
            return Err(format!(
                "--bot-url `{s}`: no query allowed (the notification's own path and query are appended)"
            ));
        }
        Ok(BotUrl {
            origin: format!("{scheme}://{auth}"),
            prefix: uri.path().trim_end_matches('/').to_string(),
        })
    }

    /// The URL for a notification whose path and query are `path_and_query`.
    pub fn target(&self, path_and_query: &str) -> String {
        let pq = if path_and_query.starts_with('/') {
            path_and_query.to_string()
        } else {
            format!("/{path_and_query}")
        };
        format!("{}{}{}", self.origin, self.prefix, pq)
    }
}

/// The upstream's base URL, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl(pub String);

impl UpstreamUrl {
    pub fn parse(s: &str) -> Result<UpstreamUrl, String> {
        let uri: http::Uri = s.parse().map_err(|_| format!("--upstream `{s}` is not a URL"))?;
        match (uri.scheme_str(), uri.authority()) {
            (Some(scheme @ ("https" | "http")), Some(auth)) if uri.query().is_none() => {
                // userinfo is never sent upstream (hyper ignores it) and must never be stored
                let host = auth.as_str().rsplit('@').next().unwrap_or_default();
                let url = format!("{scheme}://{host}{}", uri.path());
                Ok(UpstreamUrl(url.trim_end_matches('/').to_string()))
            }
            _ => Err(format!("--upstream `{s}` must be an http(s) URL without a query")),
        }
    }

    /// The upstream URL for a request target (`/v1.0/...`).
    pub fn join(&self, path_and_query: &str) -> String {
        format!("{}{}", self.0, path_and_query)
    }
}

/// TLS on the faces (`--tls`, `--callback-tls`) and where certificates come from.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// The Graph face speaks HTTPS.
    pub graph: bool,
    /// The callback face speaks HTTPS (record).
    pub callbacks: bool,
    /// The local CA and signing key live here.
    pub ca_dir: PathBuf,
    /// More names the faces' leaves are issued for (`--tls-name`).
    pub names: Vec<String>,
    /// `--tls-cert` and `--tls-key`: the faces use these instead of a local-CA leaf.
    pub cert: Option<(PathBuf, PathBuf)>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            graph: false,
            callbacks: false,
            ca_dir: PathBuf::from(defaults::CA_DIR),
            names: Vec::new(),
            cert: None,
        }
    }
}

/// The proxy face's host rules.
#[derive(Debug, Clone, Default)]
pub struct ProxySettings {
    /// Intercepted besides `defaults::INTERCEPTED` (`--intercept`).
    pub intercept: Vec<String>,
    /// Tunnelled even in replay (`--allow-host`).
    pub allow: Vec<String>,
    /// Record: where an intercepted identity host's requests go instead of
    /// `https://HOST` (`--upstream-for HOST=URL`).
    pub upstreams: Vec<(String, UpstreamUrl)>,
}

impl ProxySettings {
    /// Every intercepted host, lowercase.
    pub fn intercepted(&self) -> Vec<String> {
        let mut v: Vec<String> = defaults::INTERCEPTED.iter().map(|h| h.to_string()).collect();
        for h in &self.intercept {
            let h = h.to_ascii_lowercase();
            if !v.contains(&h) {
                v.push(h);
            }
        }
        v
    }

    /// Where `host`'s requests go in record.
    pub fn upstream_for(&self, host: &str) -> UpstreamUrl {
        self.upstreams
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(host))
            .map_or_else(|| UpstreamUrl(format!("https://{host}")), |(_, u)| u.clone())
    }
}

/// `HOST=URL` of `--upstream-for`.
pub fn parse_host_upstream(s: &str) -> Result<(String, UpstreamUrl), String> {
    let (host, url) = s
        .split_once('=')
        .ok_or_else(|| format!("--upstream-for `{s}` must be HOST=URL"))?;
    Ok((host.trim().to_ascii_lowercase(), UpstreamUrl::parse(url.trim())?))
}

/// A listen address; `localhost` is accepted for `127.0.0.1`.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let s2 = s.replace("localhost", "127.0.0.1");
    s2.parse()
        .map_err(|_| format!("`{s}` is not an address like 127.0.0.1:8060"))
}
