//! Validated settings for each mode. Built from the parsed command line (or directly by
//! tests); this module never reads the process environment.

use std::path::PathBuf;
use std::time::Duration;

use crate::cassette::{validate_name, CassetteError};
use crate::faults::chaos::Chaos;
use crate::faults::Fault;
use crate::http::server::ServerOptions;
use crate::matching::MatchMode;

mod net;

use crate::redact::Rules;
pub use net::{parse_host_upstream, parse_listen, BotUrl, ProxySettings, TlsSettings, UpstreamUrl};

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
    /// A connection with no request in progress is closed after this.
    pub const CONNECTION_IDLE: Duration = Duration::from_secs(60);
    pub const MAX_CONNECTIONS: usize = 4096;
    /// How long in-flight requests get to finish at shutdown.
    pub const GRACE: Duration = Duration::from_secs(10);
    pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);
    pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);
    pub const MAX_GAP: Duration = Duration::from_secs(10);
    pub const SPEED: f64 = 1.0;
    pub const SESSION_IDLE: Duration = Duration::from_secs(300);
    pub const MAX_SESSIONS: usize = 10_000;
    /// Cassettes with more events are served from the store, not held in memory.
    pub const HOLD_EVENTS: usize = 4096;
    pub const DELIVERY_ATTEMPTS: u32 = 5;
    pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
    pub const MAX_BACKOFF: Duration = Duration::from_secs(2);
    /// How long a ringing call's notifications wait for a bot that is not up yet.
    pub const RING_TIMEOUT: Duration = Duration::from_secs(30);
    /// `--exit-when-done`: stop after this long without a request.
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
    pub const CA_DIR: &str = ".graphvcr/ca";
    /// `graphvcr diff`: latency and notification-delay differences up to this are not
    /// reported (Graph's own latency varies by hundreds of milliseconds).
    pub const DIFF_TIMING_TOLERANCE_MS: u64 = 1000;
    /// Hosts the proxy face terminates TLS for: Graph and the identity hosts.
    pub const INTERCEPTED: [&str; 3] = ["graph.microsoft.com", "login.microsoftonline.com", "api.aps.skype.com"];
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
    pub connection_idle: Duration,
    /// Most connections served at once per listener.
    pub max_connections: usize,
    /// Host names the admin API answers besides loopback and the listener's address.
    pub admin_hosts: Vec<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: defaults::MAX_BODY,
            max_header_bytes: defaults::MAX_HEADER,
            header_timeout: defaults::HEADER_TIMEOUT,
            body_timeout: defaults::BODY_TIMEOUT,
            connection_idle: defaults::CONNECTION_IDLE,
            max_connections: defaults::MAX_CONNECTIONS,
            admin_hosts: Vec::new(),
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
            idle_timeout: self.connection_idle,
            max_connections: self.max_connections,
            grace: defaults::GRACE,
            tls: None,
        }
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
    pub tls: TlsSettings,
    pub proxy: ProxySettings,
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
            tls: TlsSettings::default(),
            proxy: ProxySettings::default(),
        })
    }
}

/// `passthrough` settings: forward everything, store nothing.
#[derive(Debug, Clone)]
pub struct PassthroughConfig {
    pub upstream: UpstreamUrl,
    pub upstream_ca: Option<PathBuf>,
    pub upstream_timeout: Duration,
    pub limits: Limits,
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
    /// The cassette requests that name none replay (`replay`); `serve` has none.
    pub cassette: Option<String>,
    /// Imported at start when changed; `None` = import nothing.
    pub cassettes_dir: Option<PathBuf>,
    pub bot_url: Option<BotUrl>,
    pub pacing: Pacing,
    pub retry: Retry,
    pub notify_auth: Option<String>,
    pub notify_timeout: Duration,
    pub session_idle: Duration,
    pub max_sessions: usize,
    /// Cassettes with more events than this are served from the store (their bodies
    /// read when served), not held in memory.
    pub hold_events: usize,
    pub expect_all: bool,
    /// How strictly requests must agree with recordings.
    pub match_mode: MatchMode,
    /// Ring the default cassette's incoming calls at start-up (else only through
    /// the admin API).
    pub ring_at_start: bool,
    /// How long untriggered notifications wait for a bot that refuses connections.
    pub ring_timeout: Duration,
    /// What a miss does (sessions may differ).
    pub on_miss: OnMiss,
    /// Misses a session may have and stay ok.
    pub expect_misses: u64,
    /// Where misses are forwarded (`--on-miss record|passthrough`).
    pub upstream: Option<UpstreamUrl>,
    pub upstream_ca: Option<PathBuf>,
    pub upstream_timeout: Duration,
    /// Write a JUnit XML report (one testcase per session) on stop.
    pub report_junit: Option<PathBuf>,
    /// Write every session's report as JSON on stop.
    pub report_json: Option<PathBuf>,
    /// Faults injected into every session that sets none (`--fault`).
    pub faults: Vec<Fault>,
    /// Random faults from a seed (`--chaos SEED --chaos-rate R`).
    pub chaos: Option<Chaos>,
    /// Stop once every recorded exchange was served and every notification delivered,
    /// or after this long without a request.
    pub exit_when_done: Option<Duration>,
    pub limits: Limits,
    pub tls: TlsSettings,
    pub proxy: ProxySettings,
}

/// What a request that matches no recording gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnMiss {
    /// A Graph-shaped `404` naming the nearest recording.
    #[default]
    Error,
    /// Forwarded upstream, stored, appended to the cassette and served.
    Record,
    /// Forwarded upstream, not stored.
    Passthrough,
}

impl OnMiss {
    pub fn parse(s: &str) -> Option<OnMiss> {
        match s {
            "error" => Some(OnMiss::Error),
            "record" => Some(OnMiss::Record),
            "passthrough" => Some(OnMiss::Passthrough),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OnMiss::Error => "error",
            OnMiss::Record => "record",
            OnMiss::Passthrough => "passthrough",
        }
    }
}

impl ReplayConfig {
    /// `replay --cassette NAME`.
    pub fn new(cassette: &str) -> Result<ReplayConfig, ConfigError> {
        validate_name(cassette)?;
        let mut c = ReplayConfig::serve();
        c.cassette = Some(cassette.to_string());
        Ok(c)
    }

    /// `serve`: no default cassette.
    pub fn serve() -> ReplayConfig {
        ReplayConfig {
            cassette: None,
            cassettes_dir: None,
            bot_url: None,
            pacing: Pacing::default(),
            retry: Retry::default(),
            notify_auth: None,
            notify_timeout: defaults::NOTIFY_TIMEOUT,
            session_idle: defaults::SESSION_IDLE,
            max_sessions: defaults::MAX_SESSIONS,
            hold_events: defaults::HOLD_EVENTS,
            expect_all: false,
            match_mode: MatchMode::Default,
            ring_at_start: true,
            ring_timeout: defaults::RING_TIMEOUT,
            on_miss: OnMiss::Error,
            expect_misses: 0,
            upstream: None,
            upstream_ca: None,
            upstream_timeout: defaults::UPSTREAM_TIMEOUT,
            report_junit: None,
            report_json: None,
            exit_when_done: None,
            faults: Vec::new(),
            chaos: None,
            limits: Limits::default(),
            tls: TlsSettings::default(),
            proxy: ProxySettings::default(),
        }
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
