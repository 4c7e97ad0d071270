//! The command line (clap): subcommands, flags, `GRAPHVCR_*` environment variables,
//! help with an example per subcommand, and the conversion into validated settings.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{
    self, defaults, BotUrl, Limits, PassthroughConfig, ProxySettings, RecordConfig, Size, TlsSettings, UpstreamUrl,
};
use crate::redact::Rules;

mod diff;
mod serve;

pub use diff::DiffArgs;
pub use serve::{Match, OnMissArg, ReplayArgs, Ring, ServeArgs, Timing};

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
    /// Compare two recordings of one scenario: what changed apart from ids, timestamps,
    /// request ids and timing. Exit 1 when anything breaking changed.
    #[command(
        after_help = "Examples:\n  graphvcr diff cassettes/invite-flow.json invite-flow-rerecorded\n  graphvcr diff old.json new.json --json\n  graphvcr diff old.json new.json --junit drift.xml --timing-tolerance 500\n\nBreaking: a removed member, a changed value type or status, a missing or extra exchange\nor notification. Notable: an added member, a reordering, another enum value. Info: other values, timing.\nExit codes: 0 nothing breaking, 1 breaking drift, 2 bad input."
    )]
    Diff(DiffArgs),
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
    /// A host name the admin API answers besides loopback names and the listener's
    /// own address (e.g. a sidecar's service name); repeatable.
    #[arg(long = "admin-host", env = "GRAPHVCR_ADMIN_HOST", value_delimiter = ',')]
    pub admin_hosts: Vec<String>,
    /// Seconds a client gets to send a request's whole body once its head arrived.
    #[arg(long, env = "GRAPHVCR_BODY_TIMEOUT", default_value_t = defaults::BODY_TIMEOUT.as_secs_f64())]
    pub body_timeout: f64,
    /// Seconds a connection may sit idle (no request in progress, nothing sent) before it is closed.
    #[arg(long, env = "GRAPHVCR_CONNECTION_IDLE", default_value_t = defaults::CONNECTION_IDLE.as_secs_f64())]
    pub connection_idle: f64,
    /// Most connections served at once per listener; further clients wait to be accepted.
    #[arg(long, env = "GRAPHVCR_MAX_CONNECTIONS", default_value_t = defaults::MAX_CONNECTIONS)]
    pub max_connections: usize,
}

/// User redaction rules, added to the built-in ones.
#[derive(Debug, Args, Default)]
pub struct RedactArgs {
    /// Also redact this header (any case); repeatable.
    #[arg(
        long = "redact-header",
        value_name = "NAME",
        env = "GRAPHVCR_REDACT_HEADER",
        value_delimiter = ',',
        global = true
    )]
    pub headers: Vec<String>,
    /// Also redact the value of this JSON member (any case, any depth); repeatable.
    #[arg(
        long = "redact-json",
        value_name = "MEMBER",
        env = "GRAPHVCR_REDACT_JSON",
        value_delimiter = ',',
        global = true
    )]
    pub members: Vec<String>,
    /// Also redact what this regex matches (its groups, if it has any) in every string; repeatable.
    #[arg(
        long = "redact-regex",
        value_name = "RE",
        env = "GRAPHVCR_REDACT_REGEX",
        global = true
    )]
    pub regexes: Vec<String>,
}

impl RedactArgs {
    pub fn rules(&self) -> Result<Rules, String> {
        Rules::new(&self.headers, &self.members, &self.regexes)
    }
}

impl LimitArgs {
    fn limits(&self) -> Result<Limits, String> {
        Ok(Limits {
            max_body: self.max_body.0,
            max_header_bytes: self.max_header.0,
            header_timeout: seconds(self.header_timeout, "--header-timeout")?,
            body_timeout: seconds(self.body_timeout, "--body-timeout")?,
            connection_idle: seconds(self.connection_idle, "--connection-idle")?,
            max_connections: if self.max_connections == 0 {
                return Err("--max-connections must be at least 1".into());
            } else {
                self.max_connections
            },
            admin_hosts: self.admin_hosts.clone(),
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
    /// Graph's base URL (userinfo in it is dropped: never sent, never stored).
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
    /// Replace display names, phone numbers and email addresses with consistent pseudonyms.
    #[arg(long, env = "GRAPHVCR_SCRUB_PII")]
    pub scrub_pii: bool,
    #[command(flatten)]
    pub redact: RedactArgs,
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

#[derive(Debug, Args)]
pub struct CassetteArgs {
    #[command(flatten)]
    pub store: StoreArg,
    #[command(flatten)]
    pub redact: RedactArgs,
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
    /// Import cassette JSON files (all or nothing); refuses a file that holds a secret.
    #[command(after_help = "Example:\n  graphvcr cassette import cassettes/*.json")]
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Replace a cassette that was recorded, or imported from another file.
        #[arg(long)]
        overwrite: bool,
        /// Import even if the secret scan finds something.
        #[arg(long)]
        allow_secrets: bool,
    },
    /// Run the secret scan alone over cassettes in the store or cassette files.
    #[command(
        after_help = "Example:\n  graphvcr cassette scan invite-flow\n  graphvcr cassette scan cassettes/*.json"
    )]
    Scan {
        #[arg(required = true, value_name = "NAME|FILE")]
        targets: Vec<String>,
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

/// Reads a boolean flag's environment variable as 1/0, true/false, yes/no, on/off.
pub(crate) fn boolish() -> clap::builder::BoolishValueParser {
    clap::builder::BoolishValueParser::new()
}

pub(crate) fn seconds(v: f64, flag: &str) -> Result<Duration, String> {
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
        c.scrub_pii = self.scrub_pii;
        c.rules = self.redact.rules()?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
