//! Validated settings for each mode. Built from the parsed command line (or directly by
//! tests); this module never reads the process environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cassette::{validate_name, CassetteError};
use crate::http::server::ServerOptions;
use crate::redact::Rules;

/// Defaults, written once: clap's defaults and the settings' own read these.
pub mod defaults {
    use std::time::Duration;

    pub const LISTEN: &str = "127.0.0.1:8060";
    pub const STORE: &str = ".graphvcr/store";
    pub const CASSETTES: &str = "cassettes";
    pub const UPSTREAM: &str = "https://graph.microsoft.com";
    pub const DEMO_CASSETTE: &str = "invite-one-participant";
    pub const MAX_BODY: usize = 16 * 1024 * 1024;
    pub const MAX_HEADER: usize = 64 * 1024;
    pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    pub const MAX_CONNECTIONS: usize = 4096;
    /// How long in-flight requests get to finish at shutdown.
    pub const GRACE: Duration = Duration::from_secs(10);
    pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);
    pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);
    pub const MAX_GAP: Duration = Duration::from_secs(10);
    pub const SPEED: f64 = 1.0;
    pub const SESSION_IDLE: Duration = Duration::from_secs(300);
    pub const MAX_SESSIONS: usize = 10_000;
    pub const DELIVERY_ATTEMPTS: u32 = 5;
    pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
    pub const MAX_BACKOFF: Duration = Duration::from_secs(2);
}

/// A byte size as the command line writes it (`16MiB`, `64KiB`, `1000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub usize);

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (unit, mul) in [("GiB", 1usize << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if self.0 >= mul && self.0 % mul == 0 {
                return write!(f, "{}{unit}", self.0 / mul);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for Size {
    type Err = String;

    /// `16MiB`, `64K`, `1000` -> bytes.
    fn from_str(s: &str) -> Result<Size, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: usize = num.parse().map_err(|_| format!("`{s}` is not a size like 16MiB"))?;
        let mul: usize = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1000,
            "kib" => 1024,
            "m" | "mb" => 1_000_000,
            "mib" => 1024 * 1024,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1024 * 1024 * 1024,
            _ => return Err(format!("`{s}`: unknown unit (use K, M, G, KiB, MiB, GiB)")),
        };
        n.checked_mul(mul)
            .map(Size)
            .ok_or_else(|| format!("`{s}` is too large"))
    }
}

/// Settings every listener shares.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request or response body accepted (bytes); beyond it: 413.
    pub max_body: usize,
    /// Largest request head (bytes); beyond it: 431.
    pub max_header_bytes: usize,
    /// A client must send its request head within this time.
    pub header_timeout: Duration,
    /// ... and a request's whole body within this time after its head.
    pub body_timeout: Duration,
    /// A connection with no request in progress and no traffic is closed after this.
    pub idle_timeout: Duration,
    /// Most connections served at once per listener.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: defaults::MAX_BODY,
            max_header_bytes: defaults::MAX_HEADER,
            header_timeout: defaults::HEADER_TIMEOUT,
            body_timeout: defaults::BODY_TIMEOUT,
            idle_timeout: defaults::IDLE_TIMEOUT,
            max_connections: defaults::MAX_CONNECTIONS,
        }
    }
}

impl Limits {
    /// What the accept loop needs of these limits.
    pub fn server_options(&self) -> ServerOptions {
        ServerOptions {
            max_header_bytes: self.max_header_bytes,
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
            grace: defaults::GRACE,
            tls: None,
        }
    }
}

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

/// `record` settings.
#[derive(Debug, Clone)]
pub struct RecordConfig {
    pub cassette: String,
    pub upstream: UpstreamUrl,
    pub upstream_ca: Option<PathBuf>,
    pub upstream_timeout: Duration,
    pub export: Option<PathBuf>,
    pub bot_url: Option<BotUrl>,
    pub overwrite: bool,
    /// Redaction rules: the built-in ones plus the user's.
    pub rules: Rules,
    /// `--scrub-pii`: pseudonyms for display names, phone numbers and emails.
    pub scrub_pii: bool,
    pub limits: Limits,
}

impl RecordConfig {
    pub fn new(cassette: &str, upstream: &str) -> Result<RecordConfig, ConfigError> {
        validate_name(cassette)?;
        Ok(RecordConfig {
            cassette: cassette.to_string(),
            upstream: UpstreamUrl::parse(upstream).map_err(ConfigError::Invalid)?,
            upstream_ca: None,
            upstream_timeout: defaults::UPSTREAM_TIMEOUT,
            export: None,
            bot_url: None,
            overwrite: false,
            rules: Rules::default(),
            scrub_pii: false,
            limits: Limits::default(),
        })
    }
}

/// How replay paces notifications.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacing {
    /// `--timing fast`: no waiting, order kept.
    pub fast: bool,
    /// `--speed X`: recorded gaps divided by X.
    pub speed: f64,
    /// `--max-gap`: no single wait longer than this.
    pub max_gap: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            fast: false,
            speed: defaults::SPEED,
            max_gap: defaults::MAX_GAP,
        }
    }
}

impl Pacing {
    /// Cumulative waits, from the response, for notifications recorded at the given
    /// offsets after it.
    pub fn schedule(&self, offsets_ms: &[u64]) -> Vec<Duration> {
        let mut out = Vec::with_capacity(offsets_ms.len());
        let mut total = Duration::ZERO;
        let mut prev = 0u64;
        for &o in offsets_ms {
            let gap = o.saturating_sub(prev);
            prev = prev.max(o);
            if !self.fast {
                let secs = gap as f64 / 1000.0 / self.speed.max(1e-9);
                let g = Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX);
                total = total.saturating_add(g.min(self.max_gap));
            }
            out.push(total);
        }
        out
    }
}

/// Delivery retry policy: attempts and back-off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: defaults::DELIVERY_ATTEMPTS,
            first_backoff: defaults::FIRST_BACKOFF,
            max_backoff: defaults::MAX_BACKOFF,
        }
    }
}

impl Retry {
    /// The wait after failed attempt `n` (1-based).
    pub fn backoff(&self, n: u32) -> Duration {
        let mul = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.first_backoff.saturating_mul(mul).min(self.max_backoff)
    }
}

/// `replay` settings.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    pub cassette: String,
    /// Imported at start when changed; `None` = import nothing.
    pub cassettes_dir: Option<PathBuf>,
    pub bot_url: Option<BotUrl>,
    pub pacing: Pacing,
    pub retry: Retry,
    pub notify_auth: Option<String>,
    pub notify_timeout: Duration,
    pub session_idle: Duration,
    pub max_sessions: usize,
    pub expect_all: bool,
    pub limits: Limits,
}

impl ReplayConfig {
    pub fn new(cassette: &str) -> Result<ReplayConfig, ConfigError> {
        validate_name(cassette)?;
        Ok(ReplayConfig {
            cassette: cassette.to_string(),
            cassettes_dir: None,
            bot_url: None,
            pacing: Pacing::default(),
            retry: Retry::default(),
            notify_auth: None,
            notify_timeout: defaults::NOTIFY_TIMEOUT,
            session_idle: defaults::SESSION_IDLE,
            max_sessions: defaults::MAX_SESSIONS,
            expect_all: false,
            limits: Limits::default(),
        })
    }
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Name(#[from] CassetteError),
}

/// A listen address; `localhost` is accepted for `127.0.0.1`.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let s2 = s.replace("localhost", "127.0.0.1");
    s2.parse()
        .map_err(|_| format!("`{s}` is not an address like 127.0.0.1:8060"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!("16MiB".parse::<Size>().unwrap(), Size(16 * 1024 * 1024));
        assert_eq!("1000".parse::<Size>().unwrap(), Size(1000));
        assert!("12 parsecs".parse::<Size>().is_err());
        assert_eq!(Size(defaults::MAX_BODY).to_string(), "16MiB");
        assert_eq!(Size(1000).to_string(), "1000");
    }

    #[test]
    fn bot_url_joins_paths() {
        let b = BotUrl::parse("http://127.0.0.1:3978/bot/").unwrap();
        assert_eq!(b.target("/api/calls?x=1"), "http://127.0.0.1:3978/bot/api/calls?x=1");
        assert!(BotUrl::parse("127.0.0.1:3978").is_err());
    }

    #[test]
    fn upstream_userinfo_is_dropped() {
        let u = UpstreamUrl::parse("https://user:pass@graph.example:8443/").unwrap();
        assert_eq!(u.0, "https://graph.example:8443");
        assert_eq!(UpstreamUrl::parse("http://h/base/").unwrap().0, "http://h/base");
    }

    #[test]
    fn pacing_caps_and_scales() {
        let p = Pacing {
            fast: false,
            speed: 2.0,
            max_gap: Duration::from_millis(300),
        };
        let s = p.schedule(&[100, 1100, 1200]);
        assert_eq!(
            s,
            vec![
                Duration::from_millis(50),
                Duration::from_millis(350),
                Duration::from_millis(400)
            ]
        );
        let f = Pacing { fast: true, ..p }.schedule(&[100, 1100]);
        assert_eq!(f, vec![Duration::ZERO, Duration::ZERO]);
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        let r = Retry::default();
        let waits: Vec<_> = (1..=6).map(|n| r.backoff(n).as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 400, 800, 1600, 2000]);
    }
}
