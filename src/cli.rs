//! The command line (clap): subcommands, flags, `GRAPHVCR_*` environment variables,
//! help with an example per subcommand, and the conversion into validated settings.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{
    self, defaults, BotUrl, Limits, OnMiss, Pacing, PassthroughConfig, ProxySettings, RecordConfig, ReplayConfig, Size,
    TlsSettings, UpstreamUrl,
};
use crate::matching::MatchMode;

/// Record/replay proxy for Microsoft Graph cloud-communications traffic.
///
/// Point your calling bot's Graph base URL at graphvcr (e.g. http://127.0.0.1:8060/v1.0).
/// `record` forwards to Graph and stores every exchange and callback notification in a
/// cassette; `replay` answers from the cassette with ids rewritten for the live call
/// and re-delivers the notifications to your bot.
#[derive(Debug, Parser)]
#[command(name = "graphvcr", version, about, long_about, propagate_version = true)]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax): error, warn, info, debug, graphvcr=debug ...
    #[arg(long, env = "GRAPHVCR_LOG", default_value = "info", global = true)]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Forward the bot's Graph calls (and Graph's callbacks) and record them as a cassette.
    #[command(
        after_help = "Example:\n  graphvcr record --cassette invite-flow --export cassettes/invite-flow.json \\\n      --callback-listen 127.0.0.1:8061 --bot-url http://127.0.0.1:3978\n  (bot: Graph base URL http://127.0.0.1:8060/v1.0; tunnel: Graph callbacks -> 127.0.0.1:8061)"
    )]
    Record(RecordArgs),
    /// Answer the bot from a cassette, rewriting ids for the live call; never contacts Graph.
    #[command(
        after_help = "Example:\n  graphvcr replay --cassette invite-one-participant --bot-url http://127.0.0.1:3978\n  (bot: Graph base URL http://127.0.0.1:8060/beta)"
    )]
    Replay(ReplayArgs),
    /// Serve every cassette to a whole test suite: requests pick their session and
    /// cassette by header (x-graphvcr-session, x-graphvcr-cassette) or the admin API.
    #[command(
        after_help = "Example:\n  graphvcr serve --cassettes cassettes --bot-url http://127.0.0.1:3978 --expect-all --report-junit graphvcr.xml\n  curl -X POST http://127.0.0.1:8060/_graphvcr/sessions -H 'content-type: application/json' \\\n      -d '{\"cassette\":\"invite-one-participant\",\"session\":\"test-1\"}'"
    )]
    Serve(ServeArgs),
    /// List, show, export, import or remove cassettes in the store.
    #[command(
        after_help = "Examples:\n  graphvcr cassette list\n  graphvcr cassette show invite-one-participant\n  graphvcr cassette export invite-flow -o cassettes/invite-flow.json\n  graphvcr cassette import cassettes/*.json\n  graphvcr cassette rm invite-flow"
    )]
    Cassette(CassetteArgs),
    /// Forward every request to Graph and log it; store nothing.
    #[command(after_help = "Example:\n  graphvcr passthrough --upstream https://graph.microsoft.com")]
    Passthrough(PassthroughArgs),
    /// graphvcr's local certificate authority (the CA your bot trusts for --tls and the proxy).
    #[command(after_help = "Example:\n  export NODE_EXTRA_CA_CERTS=$(graphvcr ca path)")]
    Ca(CaArgs),
    /// Replay a bundled invite cassette to a built-in bot and print the timeline.
    #[command(after_help = "Example:\n  graphvcr demo\n  graphvcr demo --cassette invite-pstn-participant")]
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct StoreArg {
    /// The sled store directory (`memory`: a temporary one, removed on exit).
    #[arg(long, env = "GRAPHVCR_STORE", default_value = defaults::STORE, global = true)]
    pub store: PathBuf,
}

#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Largest request/response body, in bytes (suffixes K, M, G, KiB, MiB, GiB).
    #[arg(long, env = "GRAPHVCR_MAX_BODY", default_value_t = Size(defaults::MAX_BODY))]
    pub max_body: Size,
    /// Largest request head, in bytes; larger heads get 431.
    #[arg(long, env = "GRAPHVCR_MAX_HEADER", default_value_t = Size(defaults::MAX_HEADER))]
    pub max_header: Size,
    /// Seconds a client gets to send its request head.
    #[arg(long, env = "GRAPHVCR_HEADER_TIMEOUT", default_value_t = defaults::HEADER_TIMEOUT.as_secs_f64())]
    pub header_timeout: f64,
}

impl LimitArgs {
    fn limits(&self) -> Result<Limits, String> {
        Ok(Limits {
            max_body: self.max_body.0,
            max_header_bytes: self.max_header.0,
            header_timeout: seconds(self.header_timeout, "--header-timeout")?,
        })
    }
}

/// TLS on the faces and the forward-proxy face (record and replay).
#[derive(Debug, Args)]
pub struct TlsArgs {
    /// Serve the Graph face over HTTPS (HTTP/2 and HTTP/1.1 by ALPN), with a leaf from
    /// graphvcr's local CA (or --tls-cert/--tls-key).
    #[arg(long, env = "GRAPHVCR_TLS")]
    pub tls: bool,
    /// Where graphvcr keeps its local CA and signing key (created on first use).
    #[arg(long, env = "GRAPHVCR_CA_DIR", default_value = defaults::CA_DIR)]
    pub ca_dir: PathBuf,
    /// Another name (DNS name or IP) the faces' certificates are issued for; repeatable.
    #[arg(long = "tls-name", env = "GRAPHVCR_TLS_NAME", value_delimiter = ',')]
    pub tls_names: Vec<String>,
    /// PEM certificate chain for the TLS faces (instead of a local-CA leaf).
    #[arg(long, env = "GRAPHVCR_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "GRAPHVCR_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Forward-proxy face (point HTTPS_PROXY here): intercepts Graph and the identity hosts.
    #[arg(long, env = "GRAPHVCR_PROXY_LISTEN", value_parser = config::parse_listen)]
    pub proxy_listen: Option<std::net::SocketAddr>,
    /// Another host the proxy terminates TLS for and handles as Graph; repeatable.
    #[arg(long = "intercept", env = "GRAPHVCR_INTERCEPT", value_delimiter = ',')]
    pub intercept: Vec<String>,
}

impl TlsArgs {
    fn settings(&self, callbacks: bool) -> TlsSettings {
        TlsSettings {
            graph: self.tls,
            callbacks,
            ca_dir: self.ca_dir.clone(),
            names: self.tls_names.clone(),
            cert: self.tls_cert.clone().zip(self.tls_key.clone()),
        }
    }
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Cassette to record into.
    #[arg(long, env = "GRAPHVCR_CASSETTE")]
    pub cassette: String,
    /// Graph's base URL.
    #[arg(long, env = "GRAPHVCR_UPSTREAM", default_value = defaults::UPSTREAM)]
    pub upstream: String,
    /// Extra PEM CA certificate(s) to trust for the upstream.
    #[arg(long, env = "GRAPHVCR_UPSTREAM_CA")]
    pub upstream_ca: Option<PathBuf>,
    /// Seconds to wait for the upstream.
    #[arg(long, env = "GRAPHVCR_UPSTREAM_TIMEOUT", default_value_t = defaults::UPSTREAM_TIMEOUT.as_secs_f64())]
    pub upstream_timeout: f64,
    /// Graph face: the bot's Graph base URL points here.
    #[arg(long, env = "GRAPHVCR_LISTEN", default_value = defaults::LISTEN, value_parser = config::parse_listen)]
    pub listen: std::net::SocketAddr,
    /// Callback face: where Graph's notifications arrive (your tunnel ends here).
    #[arg(long, env = "GRAPHVCR_CALLBACK_LISTEN", value_parser = config::parse_listen)]
    pub callback_listen: Option<std::net::SocketAddr>,
    /// Where notifications are forwarded: scheme, host, port and optional path prefix.
    #[arg(long, env = "GRAPHVCR_BOT_URL")]
    pub bot_url: Option<String>,
    /// Write the cassette's JSON to this file on stop.
    #[arg(long, env = "GRAPHVCR_EXPORT")]
    pub export: Option<PathBuf>,
    /// Record over an existing cassette of the same name.
    #[arg(long, env = "GRAPHVCR_OVERWRITE", value_parser = boolish())]
    pub overwrite: bool,
    /// Serve the callback face over HTTPS too.
    #[arg(long, env = "GRAPHVCR_CALLBACK_TLS")]
    pub callback_tls: bool,
    /// Proxy face: send an intercepted identity host's requests to URL instead of
    /// https://HOST (HOST=URL); repeatable.
    #[arg(long = "upstream-for", env = "GRAPHVCR_UPSTREAM_FOR", value_parser = config::parse_host_upstream)]
    pub upstream_for: Vec<(String, UpstreamUrl)>,
    #[command(flatten)]
    pub faces: TlsArgs,
    #[command(flatten)]
    pub store: StoreArg,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Debug, Args)]
pub struct PassthroughArgs {
    /// Graph's base URL.
    #[arg(long, env = "GRAPHVCR_UPSTREAM", default_value = defaults::UPSTREAM)]
    pub upstream: String,
    /// Extra PEM CA certificate(s) to trust for the upstream.
    #[arg(long, env = "GRAPHVCR_UPSTREAM_CA")]
    pub upstream_ca: Option<PathBuf>,
    /// Seconds to wait for the upstream.
    #[arg(long, env = "GRAPHVCR_UPSTREAM_TIMEOUT", default_value_t = defaults::UPSTREAM_TIMEOUT.as_secs_f64())]
    pub upstream_timeout: f64,
    /// Graph face: the bot's Graph base URL points here.
    #[arg(long, env = "GRAPHVCR_LISTEN", default_value = defaults::LISTEN, value_parser = config::parse_listen)]
    pub listen: std::net::SocketAddr,
    #[command(flatten)]
    pub store: StoreArg,
    #[command(flatten)]
    pub limits: LimitArgs,
}

impl PassthroughArgs {
    pub fn config(&self) -> Result<PassthroughConfig, String> {
        Ok(PassthroughConfig {
            upstream: UpstreamUrl::parse(&self.upstream)?,
            upstream_ca: self.upstream_ca.clone(),
            upstream_timeout: seconds(self.upstream_timeout, "--upstream-timeout")?,
            limits: self.limits.limits()?,
        })
    }
}

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

/// Reads a boolean flag's environment variable as 1/0, true/false, yes/no, on/off.
fn boolish() -> clap::builder::BoolishValueParser {
    clap::builder::BoolishValueParser::new()
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

#[derive(Debug, Args)]
pub struct CassetteArgs {
    #[command(flatten)]
    pub store: StoreArg,
    #[command(subcommand)]
    pub command: CassetteCommand,
}

#[derive(Debug, Subcommand)]
pub enum CassetteCommand {
    /// List the cassettes in the store.
    #[command(after_help = "Example:\n  graphvcr cassette list --store .graphvcr/store")]
    List,
    /// Show a cassette's events.
    #[command(after_help = "Example:\n  graphvcr cassette show invite-one-participant")]
    Show { name: String },
    /// Write a cassette as JSON (stdout unless -o); refuses if a secret survived.
    #[command(after_help = "Example:\n  graphvcr cassette export invite-flow -o cassettes/invite-flow.json")]
    Export {
        name: String,
        /// File to write (atomically); without it the JSON goes to stdout.
        #[arg(short, long, env = "GRAPHVCR_OUTPUT")]
        output: Option<PathBuf>,
    },
    /// Import cassette JSON files (all or nothing).
    #[command(after_help = "Example:\n  graphvcr cassette import cassettes/*.json")]
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Remove a cassette from the store.
    #[command(after_help = "Example:\n  graphvcr cassette rm invite-flow")]
    Rm { name: String },
}

#[derive(Debug, Args)]
pub struct CaArgs {
    /// Where graphvcr keeps its local CA and signing key (created on first use).
    #[arg(long, env = "GRAPHVCR_CA_DIR", default_value = defaults::CA_DIR, global = true)]
    pub ca_dir: PathBuf,
    #[command(subcommand)]
    pub command: CaCommand,
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Print the CA certificate's path (creating the CA if needed).
    #[command(after_help = "Example:\n  SSL_CERT_FILE=$(graphvcr ca path) python bot.py")]
    Path,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Bundled cassette to replay.
    #[arg(long, env = "GRAPHVCR_CASSETTE", default_value = defaults::DEMO_CASSETTE)]
    pub cassette: String,
    /// Directory of cassette JSON files.
    #[arg(long, env = "GRAPHVCR_CASSETTES", default_value = defaults::CASSETTES)]
    pub cassettes: PathBuf,
}

fn seconds(v: f64, flag: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v).map_err(|_| format!("{flag} must be a non-negative number of seconds, not {v}"))
}

impl RecordArgs {
    pub fn config(&self) -> Result<RecordConfig, String> {
        let mut c = RecordConfig::new(&self.cassette, &self.upstream).map_err(|e| e.to_string())?;
        c.upstream_ca = self.upstream_ca.clone();
        c.upstream_timeout = seconds(self.upstream_timeout, "--upstream-timeout")?;
        c.export = self.export.clone();
        c.bot_url = self.bot_url.as_deref().map(BotUrl::parse).transpose()?;
        c.overwrite = self.overwrite;
        c.limits = self.limits.limits()?;
        c.tls = self.faces.settings(self.callback_tls);
        c.proxy = ProxySettings {
            intercept: self.faces.intercept.clone(),
            allow: Vec::new(),
            upstreams: self.upstream_for.clone(),
        };
        Ok(c)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
