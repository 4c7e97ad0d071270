//! `replay` and `serve` on the command line: their flags and the settings they make.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{boolish, seconds, LimitArgs, StoreArg, TlsArgs};
use crate::config::{self, defaults, BotUrl, OnMiss, Pacing, ProxySettings, ReplayConfig, UpstreamUrl};
use crate::matching::MatchMode;

/// How notifications are paced in replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Timing {
    /// The recorded gaps (each capped by --max-gap, divided by --speed).
    Recorded,
    /// No waiting; order kept.
    Fast,
}

/// How strictly a request must agree with a recording to match it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Match {
    /// Also require the same members on both sides and equal non-id scalars.
    Strict,
    /// Refuse other types, list lengths, objects or lists on one side only, other
    /// Graph enum values; other differences only lower the score.
    Default,
    /// Refuse only other types and list lengths.
    Loose,
}

impl Match {
    fn mode(self) -> MatchMode {
        match self {
            Match::Strict => MatchMode::Strict,
            Match::Default => MatchMode::Default,
            Match::Loose => MatchMode::Loose,
        }
    }
}

/// When a cassette's incoming calls (notifications that follow nothing) ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Ring {
    /// At start-up, for the default cassette (and through the admin API).
    Start,
    /// Only when a session is started through the admin API.
    Api,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Cassette to serve.
    #[arg(long, env = "GRAPHVCR_CASSETTE")]
    pub cassette: String,
    /// When the cassette's incoming calls ring.
    #[arg(long, env = "GRAPHVCR_RING", value_enum, default_value = "start")]
    pub ring: Ring,
    /// Stop once every recorded exchange was served and every notification delivered
    /// (or after --idle-timeout without a request).
    #[arg(long, env = "GRAPHVCR_EXIT_WHEN_DONE", value_parser = boolish())]
    pub exit_when_done: bool,
    /// With --exit-when-done: seconds without a request after which replay stops.
    #[arg(long, env = "GRAPHVCR_IDLE_TIMEOUT", default_value_t = defaults::IDLE_TIMEOUT.as_secs_f64())]
    pub idle_timeout: f64,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// What `replay` and `serve` share.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Graph face: the bot's Graph base URL points here.
    #[arg(long, env = "GRAPHVCR_LISTEN", default_value = defaults::LISTEN, value_parser = config::parse_listen)]
    pub listen: std::net::SocketAddr,
    /// Directory of cassette JSON files imported at start when changed.
    #[arg(long, env = "GRAPHVCR_CASSETTES", default_value = defaults::CASSETTES)]
    pub cassettes: PathBuf,
    /// Where notifications go: scheme, host, port and optional path prefix (replaces
    /// those of a learned callbackUri). Sessions may set their own.
    #[arg(long, env = "GRAPHVCR_BOT_URL")]
    pub bot_url: Option<String>,
    /// Notification pacing.
    #[arg(long, env = "GRAPHVCR_TIMING", value_enum, default_value = "recorded")]
    pub timing: Timing,
    /// Divide recorded gaps by this factor.
    #[arg(long, env = "GRAPHVCR_SPEED", default_value_t = defaults::SPEED)]
    pub speed: f64,
    /// Longest wait between two notifications, in seconds.
    #[arg(long, env = "GRAPHVCR_MAX_GAP", default_value_t = defaults::MAX_GAP.as_secs_f64())]
    pub max_gap: f64,
    /// Authorization header value sent with notifications instead of the token
    /// graphvcr signs from the recorded claims; `none` sends none.
    #[arg(long, env = "GRAPHVCR_NOTIFY_AUTH")]
    pub notify_auth: Option<String>,
    /// Proxy face: tunnel this host even in replay (others are refused); repeatable.
    #[arg(long = "allow-host", env = "GRAPHVCR_ALLOW_HOST", value_delimiter = ',')]
    pub allow_host: Vec<String>,
    #[command(flatten)]
    pub faces: TlsArgs,
    /// Seconds after which an idle session ends.
    #[arg(long, env = "GRAPHVCR_SESSION_IDLE", default_value_t = defaults::SESSION_IDLE.as_secs_f64())]
    pub session_idle: f64,
    /// Most sessions alive at once (least recently used idle ones are evicted).
    #[arg(long, env = "GRAPHVCR_MAX_SESSIONS", default_value_t = defaults::MAX_SESSIONS)]
    pub max_sessions: usize,
    /// Cassettes with more events than this are served from the store, their bodies
    /// read when a session needs them (a long recording is not held in memory).
    #[arg(long, env = "GRAPHVCR_HOLD_EVENTS", default_value_t = defaults::HOLD_EVENTS)]
    pub hold_events: usize,
    /// How strictly a request must agree with a recording.
    #[arg(long = "match", env = "GRAPHVCR_MATCH", value_enum, default_value = "default")]
    pub match_mode: Match,
    /// What a request that matches no recording gets: a 404 (error), or forwarded to
    /// --upstream and appended to the cassette (record), or only forwarded (passthrough).
    #[arg(long, env = "GRAPHVCR_ON_MISS", value_enum, default_value = "error")]
    pub on_miss: OnMissArg,
    /// Misses a session may have and keep its verdict ok.
    #[arg(long, env = "GRAPHVCR_EXPECT_MISSES", default_value_t = 0)]
    pub expect_misses: u64,
    /// With --on-miss record: where Graph's notifications for captured misses arrive
    /// (they are forwarded to --bot-url and appended with their exchange).
    #[arg(long, env = "GRAPHVCR_CALLBACK_LISTEN", value_parser = config::parse_listen)]
    pub callback_listen: Option<std::net::SocketAddr>,
    /// Graph's base URL, for --on-miss record|passthrough.
    #[arg(long, env = "GRAPHVCR_UPSTREAM")]
    pub upstream: Option<String>,
    /// Extra PEM CA certificate(s) to trust for the upstream.
    #[arg(long, env = "GRAPHVCR_UPSTREAM_CA")]
    pub upstream_ca: Option<PathBuf>,
    /// Seconds to wait for the upstream.
    #[arg(long, env = "GRAPHVCR_UPSTREAM_TIMEOUT", default_value_t = defaults::UPSTREAM_TIMEOUT.as_secs_f64())]
    pub upstream_timeout: f64,
    /// Seconds a ringing call's notifications wait for a bot that is not up yet.
    #[arg(long, env = "GRAPHVCR_RING_TIMEOUT", default_value_t = defaults::RING_TIMEOUT.as_secs_f64())]
    pub ring_timeout: f64,
    /// Attempts per notification (a refused connection or a 5xx is retried).
    #[arg(long, env = "GRAPHVCR_DELIVERY_ATTEMPTS", default_value_t = defaults::DELIVERY_ATTEMPTS)]
    pub delivery_attempts: u32,
    /// Longest wait between two attempts, in seconds (the wait doubles from 0.1 s).
    #[arg(long, env = "GRAPHVCR_DELIVERY_BACKOFF_MAX", default_value_t = defaults::MAX_BACKOFF.as_secs_f64())]
    pub delivery_backoff_max: f64,
    /// Exit with code 4 if any session's verdict is not ok (a miss beyond those
    /// expected, an exchange of its cassette never used, a notification not delivered).
    #[arg(long, env = "GRAPHVCR_EXPECT_ALL", value_parser = boolish())]
    pub expect_all: bool,
    /// Inject a fault into every session that sets none: KIND@TARGET[,param=value...],
    /// e.g. drop@2, fail@1,code=500, 429@POST /communications/calls/{id}/participants/invite,nth=1,retry-after=1;
    /// repeatable.
    #[arg(long = "fault", env = "GRAPHVCR_FAULT", value_delimiter = ';')]
    pub faults: Vec<String>,
    /// Seeded chaos: random faults, the same for the same seed (printed at start).
    #[arg(long, env = "GRAPHVCR_CHAOS")]
    pub chaos: Option<u64>,
    /// With --chaos: the share of notifications and requests that get a fault.
    #[arg(long, env = "GRAPHVCR_CHAOS_RATE", default_value_t = 0.1)]
    pub chaos_rate: f64,
    /// Write a JUnit XML report on stop (one testcase per session).
    #[arg(long, env = "GRAPHVCR_REPORT_JUNIT")]
    pub report_junit: Option<PathBuf>,
    /// Write every session's report as JSON on stop.
    #[arg(long, env = "GRAPHVCR_REPORT_JSON")]
    pub report_json: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArg,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// What a miss gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnMissArg {
    /// A Graph-shaped 404 naming the nearest recording.
    Error,
    /// Forward to --upstream, store, append to the cassette, serve.
    Record,
    /// Forward to --upstream, store nothing.
    Passthrough,
}

impl ServeArgs {
    /// `serve`'s settings (no default cassette).
    pub fn config(&self) -> Result<ReplayConfig, String> {
        let mut c = ReplayConfig::serve();
        self.apply(&mut c)?;
        Ok(c)
    }

    fn apply(&self, c: &mut ReplayConfig) -> Result<(), String> {
        c.cassettes_dir = Some(self.cassettes.clone());
        c.bot_url = self.bot_url.as_deref().map(BotUrl::parse).transpose()?;
        if !(self.speed.is_finite() && self.speed > 0.0) {
            return Err("--speed must be a positive number".into());
        }
        c.pacing = Pacing {
            fast: self.timing == Timing::Fast,
            speed: self.speed,
            max_gap: seconds(self.max_gap, "--max-gap")?,
        };
        c.notify_auth = self.notify_auth.clone();
        c.session_idle = seconds(self.session_idle, "--session-idle")?;
        if self.max_sessions == 0 {
            return Err("--max-sessions must be at least 1".into());
        }
        c.max_sessions = self.max_sessions;
        c.hold_events = self.hold_events;
        c.expect_all = self.expect_all;
        c.match_mode = self.match_mode.mode();
        c.on_miss = match self.on_miss {
            OnMissArg::Error => OnMiss::Error,
            OnMissArg::Record => OnMiss::Record,
            OnMissArg::Passthrough => OnMiss::Passthrough,
        };
        c.expect_misses = self.expect_misses;
        c.upstream = self.upstream.as_deref().map(UpstreamUrl::parse).transpose()?;
        if c.on_miss != OnMiss::Error && c.upstream.is_none() {
            return Err(format!(
                "--on-miss {} needs --upstream (where misses go)",
                c.on_miss.as_str()
            ));
        }
        c.upstream_ca = self.upstream_ca.clone();
        c.upstream_timeout = seconds(self.upstream_timeout, "--upstream-timeout")?;
        c.ring_timeout = seconds(self.ring_timeout, "--ring-timeout")?;
        if self.delivery_attempts == 0 {
            return Err("--delivery-attempts must be at least 1".into());
        }
        c.retry.attempts = self.delivery_attempts;
        c.retry.max_backoff = seconds(self.delivery_backoff_max, "--delivery-backoff-max")?;
        c.faults = self
            .faults
            .iter()
            .map(|f| crate::faults::parse(f).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        if let Some(seed) = self.chaos {
            if !(self.chaos_rate > 0.0 && self.chaos_rate <= 1.0) {
                return Err("--chaos-rate must be in (0, 1]".into());
            }
            c.chaos = Some(crate::faults::chaos::Chaos {
                seed,
                rate: self.chaos_rate,
            });
        }
        c.report_junit = self.report_junit.clone();
        c.report_json = self.report_json.clone();
        c.limits = self.limits.limits()?;
        c.tls = self.faces.settings(false);
        c.proxy = ProxySettings {
            intercept: self.faces.intercept.clone(),
            allow: self.allow_host.iter().map(|h| h.to_ascii_lowercase()).collect(),
            upstreams: Vec::new(),
        };
        Ok(())
    }
}

impl ReplayArgs {
    pub fn config(&self) -> Result<ReplayConfig, String> {
        let mut c = ReplayConfig::new(&self.cassette).map_err(|e| e.to_string())?;
        self.serve.apply(&mut c)?;
        c.ring_at_start = self.ring == Ring::Start;
        if self.exit_when_done {
            c.exit_when_done = Some(seconds(self.idle_timeout, "--idle-timeout")?);
        }
        Ok(c)
    }
}
