//! `graphvcr demo`: replays a bundled invite cassette to a tiny built-in bot and prints
//! the timeline: the bot's request, graphvcr's response, each notification as the bot
//! received it, and the ids that were rewritten (highlighted on a terminal).

use std::collections::HashSet;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue};
use http::Method;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::app::{self, say, AppError, Deps};
use crate::cassette::{Body, CassetteError, Event, Kind};
use crate::clock::SystemClock;
use crate::config::{BotUrl, Limits, ReplayConfig};
use crate::http::client::{HttpClient, Reply};
use crate::http::server::{self, Handler, HandlerFuture};
use crate::http::wire::{self, Resp};
use crate::ids::{self, Canon, Seed};
use crate::replay::{Prepared, Replayer, Report};

/// A notification as the demo bot received it.
struct Got {
    at: Instant,
    path: String,
    body: Value,
}

/// The built-in bot: takes every POST, answers 202, reports it.
struct DemoBot {
    tx: mpsc::UnboundedSender<Got>,
}

impl Handler for DemoBot {
    fn handle(&self, req: http::Request<server::Body>, _peer: SocketAddr) -> HandlerFuture {
        let tx = self.tx.clone();
        Box::pin(async move {
            let at = Instant::now();
            let (parts, body) = req.into_parts();
            let bytes = wire::read_body(&parts.headers, body, 16 << 20)
                .await
                .unwrap_or_default();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let _ = tx.send(Got {
                at,
                path: parts.uri.to_string(),
                body,
            });
            let r: Resp = wire::response(202, HeaderMap::new(), Bytes::new());
            r
        })
    }
}

/// Highlights the live ids in a line (bold green on a terminal, `[...]` otherwise).
struct Highlighter {
    live: HashSet<Canon>,
    color: bool,
}

impl Highlighter {
    fn line(&self, s: &str) -> String {
        ids::map_tokens(s, |t, text| {
            self.live.contains(&t.canon).then(|| {
                if self.color {
                    format!("\x1b[1;32m{text}\x1b[0m")
                } else {
                    format!("[{text}]")
                }
            })
        })
        .into_owned()
    }
}

fn ms(since: Instant, at: Instant) -> String {
    format!("+{} ms", at.saturating_duration_since(since).as_millis())
}

fn summary(v: &Value) -> String {
    let items = crate::graph::notification_items(v);
    items
        .iter()
        .map(|n| {
            let what = n.get("changeType").and_then(Value::as_str).unwrap_or("?");
            let res = n
                .get("resourceUrl")
                .or_else(|| n.get("resource"))
                .and_then(Value::as_str)
                .unwrap_or("?");
            let data = n.get("resourceData").cloned().unwrap_or(Value::Null);
            let detail = match &data {
                Value::Object(o) => {
                    let mut d = Vec::new();
                    for k in ["status", "state", "clientContext", "id"] {
                        if let Some(x) = o.get(k).filter(|x| !x.is_null()) {
                            d.push(format!(
                                "{k} {}",
                                x.as_str().map_or_else(|| x.to_string(), str::to_string)
                            ));
                        }
                    }
                    d.join(", ")
                }
                Value::Array(a) => format!("roster of {} participant(s)", a.len()),
                _ => String::new(),
            };
            format!("{what} {res}  {detail}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A listener on a free loopback port.
async fn bind_local(what: &str) -> Result<(TcpListener, SocketAddr), AppError> {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| AppError::Runtime(format!("cannot listen for {what}: {e}")))?;
    let addr = l.local_addr().map_err(|e| AppError::Runtime(e.to_string()))?;
    Ok((l, addr))
}

/// Where a recorded id first shows up in the cassette, to label it for a human.
fn role_of(c: &Prepared, id: &str) -> String {
    fn find(v: &Value, id: &str, path: &str) -> Option<String> {
        match v {
            Value::String(s) if s.to_ascii_lowercase().contains(id) => Some(path.to_string()),
            Value::Array(a) => a.iter().find_map(|x| find(x, id, path)),
            Value::Object(o) => o.iter().find_map(|(k, x)| {
                let last = path.rsplit('.').next().unwrap_or("");
                let p = if last.is_empty() {
                    k.clone()
                } else {
                    format!("{last}.{k}")
                };
                find(x, id, &p)
            }),
            _ => None,
        }
    }
    for l in (0..c.heads().len()).filter_map(|i| c.load(i).ok()) {
        let e = l.event();
        let (path, _) = crate::graph::split_uri(&e.request.uri);
        let segs: Vec<&str> = path.split('/').collect();
        if let Some(i) = segs.iter().position(|s| s.to_ascii_lowercase() == id) {
            return format!(
                "{} id (path)",
                segs.get(i.wrapping_sub(1)).unwrap_or(&"").trim_end_matches('s')
            );
        }
        // the body graphvcr sends is compiled out of the event
        let sent = l.sent().json_value();
        let (request, response) = match e.kind {
            Kind::Exchange => (e.request.body.json().cloned(), sent),
            Kind::Notification => (sent, None),
        };
        for (side, b) in [("request", request), ("response", response)] {
            if let Some(k) = b.and_then(|v| find(&v, id, "")) {
                return format!("{k} ({side})");
            }
        }
        if let Some((h, _)) = e
            .request
            .headers
            .iter()
            .find(|(_, v)| v.to_ascii_lowercase().contains(id))
        {
            return format!("header {h}");
        }
    }
    String::new()
}

/// The bot's request: the recorded one, with ids of a call of its own; and those ids.
fn live_request(recorded: &Event) -> (String, String, HashSet<Canon>) {
    let seed = Seed::derive([b"graphvcr demo".as_slice()]);
    let mut live: HashSet<Canon> = HashSet::new();
    let mut fresh = |s: &str| {
        ids::map_tokens(s, |t, _| {
            let m = ids::mint(&seed, &t.canon, 0);
            live.insert(m.clone());
            Some(ids::render(&m, t.form))
        })
        .into_owned()
    };
    let uri = fresh(&recorded.request.uri);
    let body = match &recorded.request.body {
        Body::Json(v) => fresh(&serde_json::to_string(v).unwrap_or_default()),
        Body::Text(t) => fresh(t),
        _ => String::new(),
    };
    (uri, body, live)
}

/// Sends the bot's request to graphvcr and prints it and the response.
async fn call_graphvcr(graph: SocketAddr, recorded: &Event, hl: &mut Highlighter) -> Result<Reply, AppError> {
    let (uri, body, live) = live_request(recorded);
    hl.live.extend(live);
    let client =
        HttpClient::new(None, Duration::from_secs(10), 16 << 20).map_err(|e| AppError::Runtime(e.to_string()))?;
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let method = Method::from_bytes(recorded.request.method.as_bytes()).unwrap_or(Method::POST);
    say(&hl.line(&format!("{:>9}  bot -> graphvcr   {method} {uri}", "+0 ms")));
    say(&hl.line(&format!("{:>9}                    {body}", "")));
    let reply = client
        .send(method, &format!("http://{graph}{uri}"), headers, Bytes::from(body))
        .await
        .map_err(|e| AppError::Runtime(format!("the demo bot could not reach graphvcr: {e}")))?;
    Ok(reply)
}

/// Prints graphvcr's response.
fn print_reply(reply: &Reply, hl: &Highlighter, t0: Instant, at: Instant) {
    let location = wire::header_str(&reply.headers, "location").unwrap_or("-").to_string();
    say(&hl.line(&format!(
        "{:>9}  graphvcr -> bot   {}  Location: {location}",
        ms(t0, at),
        reply.status
    )));
    say(&hl.line(&format!(
        "{:>9}                    {}",
        "",
        String::from_utf8_lossy(&reply.body)
    )));
}

/// Prints each notification as the bot receives it, until `expected` arrived (or 30 s).
async fn collect(rx: &mut mpsc::UnboundedReceiver<Got>, expected: usize, hl: &Highlighter, t0: Instant) -> Vec<Got> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < expected {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(n)) => {
                say(&hl.line(&format!(
                    "{:>9}  graphvcr -> bot   notification POST {}: {}",
                    ms(t0, n.at),
                    n.path,
                    summary(&n.body)
                )));
                got.push(n);
            }
            _ => break,
        }
    }
    got
}

/// Prints the table of rewritten ids.
fn print_bindings(report: Option<&Report>, prepared: &Prepared, hl: &Highlighter) {
    say("");
    say("rewritten ids (recorded -> live):");
    for (r, l) in report.iter().flat_map(|rep| &rep.bindings) {
        if r != l {
            let role = role_of(prepared, r);
            say(&hl.line(&format!("  {role:<40} {r} -> {l}")));
        }
    }
}

/// The replay engine for the demo, over a store of its own.
fn demo_replayer(
    cassette: &str,
    dir: &Path,
    bot: SocketAddr,
    deps: &Deps,
    tmp_ca: std::path::PathBuf,
) -> Result<(ReplayConfig, Arc<Replayer>), AppError> {
    let mut cfg = ReplayConfig::new(cassette).map_err(|e| AppError::Usage(e.to_string()))?;
    cfg.cassettes_dir = Some(dir.to_path_buf());
    cfg.tls.ca_dir = tmp_ca;
    cfg.bot_url = Some(BotUrl::parse(&format!("http://{bot}")).map_err(AppError::Runtime)?);
    cfg.pacing.max_gap = Duration::from_secs(2);
    let replayer = app::replayer(&cfg, deps).map_err(|e| match e {
        AppError::Cassette(CassetteError::Unknown(n)) => AppError::Usage(format!(
            "no cassette `{n}`: not bundled ({}), and no {n}.json under {}",
            crate::bundled::CASSETTES.map(|(name, _)| name).join(", "),
            dir.display()
        )),
        other => other,
    })?;
    Ok((cfg, replayer))
}

/// The demo's outcome: ok when the bot got its response and every notification.
fn verdict(reply: &Reply, got: usize, expected: usize) -> Result<String, AppError> {
    if reply.status >= 400 {
        return Err(AppError::Runtime(format!(
            "graphvcr answered {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        )));
    }
    if got < expected {
        return Err(AppError::Runtime(format!(
            "the bot received {} of {expected} notifications",
            got
        )));
    }
    Ok(format!(
        "\ndemo ok: the bot got its response and {} notification(s), all carrying its own call's ids",
        got
    ))
}

/// Runs the demo against `cassette` from the JSON files in `dir`.
pub async fn run(cassette: &str, dir: &Path) -> Result<String, AppError> {
    crate::cassette::validate_name(cassette)?;
    let opened = app::open_store(Path::new(app::MEMORY_STORE))?;
    let ca_dir = opened
        .temp_dir()
        .map(|d| d.join("ca"))
        .unwrap_or_else(|| std::env::temp_dir().join("graphvcr-demo-ca"));
    let deps = Deps {
        store: opened.store.clone(),
        clock: Arc::new(SystemClock::new()),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let (bot_listener, bot_addr) = bind_local("the demo bot").await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let bot_task = tokio::spawn(server::serve(
        bot_listener,
        Arc::new(DemoBot { tx }),
        Limits::default().server_options(),
        stopped(stop_rx.clone()),
    ));
    let (cfg, replayer) = demo_replayer(cassette, dir, bot_addr, &deps, ca_dir)?;
    let prepared = replayer
        .cassette(cassette)
        .map_err(|e| AppError::Runtime(e.to_string()))?;
    let Some(first) = prepared.exchanges().first() else {
        return Err(AppError::Usage(format!(
            "cassette `{cassette}` has no exchange to replay"
        )));
    };
    let recorded = prepared
        .load(first.event)
        .map_err(|e| AppError::Runtime(e.to_string()))?
        .event()
        .clone();
    let expected = prepared.follows(0).len();
    say(&format!(
        "graphvcr demo: replaying `{cassette}` ({} exchange(s), {expected} notification(s)) to a built-in bot at http://{bot_addr}",
        prepared.exchanges().len(),
    ));
    say("");
    let (graph_listener, graph_addr) = bind_local("graphvcr").await?;
    let replay_task = tokio::spawn(app::serve_replay(
        cfg,
        deps,
        replayer.clone(),
        graph_listener,
        stopped(stop_rx),
    ));
    let mut hl = Highlighter {
        live: HashSet::new(),
        color: std::io::stdout().is_terminal(),
    };
    let t0 = Instant::now();
    let reply = call_graphvcr(graph_addr, &recorded, &mut hl).await?;
    let session = wire::header_str(&reply.headers, "x-graphvcr-session").unwrap_or_default();
    let report = replayer.report(session);
    for (_, l) in report.iter().flat_map(|r| &r.bindings) {
        hl.live.extend(ids::scan(l).into_iter().map(|t| t.canon));
    }
    print_reply(&reply, &hl, t0, Instant::now());
    let got = collect(&mut rx, expected, &hl, t0).await;
    let _ = stop_tx.send(true);
    let _ = replay_task.await;
    let _ = bot_task.await;
    print_bindings(report.as_ref(), &prepared, &hl);
    verdict(&reply, got.len(), expected)
}
