//! Running graphvcr in-process on 127.0.0.1:0 (record and replay), a client for it,
//! test ids and tokens, and assertions over bytes and JSON.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue};
use http::Method;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::fake_bot::{FakeBot, Received};
use super::fake_graph::FakeGraph;
use graphvcr::app::{self, Deps, RecordOutcome, ReplayOutcome};
use graphvcr::cassette::{SledStore, Store};
use graphvcr::clock::{Clock, FixedClock};
use graphvcr::config::{BotUrl, Pacing, RecordConfig, ReplayConfig};
use graphvcr::http::client::{HttpClient, Reply};

/// 2026-11-27T10:00:00Z
pub const NOW_MS: u64 = 1_795_773_600_000;

pub fn init() {
    graphvcr::http::client::install_crypto_provider();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

/// The bot's app id: the audience of Graph's callback tokens.
pub const BOT_APP_ID: &str = "b07ab07a-1d2e-4f3a-9b8c-7d6e5f4a3b2c";

/// A JWT-looking bearer token whose signature part is easy to search for.
pub fn jwt(tag: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.{}",
        b64(r#"{"alg":"RS256","typ":"JWT"}"#),
        b64(&format!(
            r#"{{"iss":"https://api.botframework.com","aud":"{BOT_APP_ID}","tid":"72f988bf-86f1-41af-91ab-2d7cd011db47","iat":1,"tag":"{tag}"}}"#
        )),
        b64(&format!("signature-{tag}-not-real"))
    )
}

/// A test id: a lowercase dashed GUID made of `n`.
pub fn guid(prefix: u32, n: u64) -> String {
    format!(
        "{prefix:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (n >> 32) & 0xffff,
        n & 0xfff,
        (n >> 12) & 0xfff,
        n
    )
}

// ---- HTTP client side ----------------------------------------------------------------

pub fn client() -> HttpClient {
    HttpClient::new(None, Duration::from_secs(20), 64 << 20).expect("client")
}

pub async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
    let mut h = HeaderMap::new();
    for (n, v) in headers {
        h.append(
            http::header::HeaderName::from_bytes(n.as_bytes()).expect("header name"),
            HeaderValue::from_str(v).expect("header value"),
        );
    }
    client()
        .send(
            Method::from_bytes(method.as_bytes()).expect("method"),
            url,
            h,
            body.into(),
        )
        .await
        .expect("request to graphvcr")
}

pub fn body_json(r: &Reply) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&r.body)))
}

pub fn header(r: &Reply, name: &str) -> String {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

pub struct TestStore {
    pub store: Arc<dyn Store>,
    pub dir: tempfile::TempDir,
}

pub fn store() -> TestStore {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("store")).expect("open store"));
    TestStore { store, dir }
}

pub fn clock() -> Arc<dyn Clock> {
    Arc::new(FixedClock::new(NOW_MS))
}

pub struct Recording {
    pub graph: SocketAddr,
    pub callbacks: Option<SocketAddr>,
    pub proxy: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<RecordOutcome, app::AppError>>,
}

impl Recording {
    pub fn url(&self) -> String {
        format!("http://{}", self.graph)
    }

    pub fn callback_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.callbacks.expect("callback face"))
    }

    pub async fn stop(mut self) -> RecordOutcome {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.task).await.expect("record task").expect("record run")
    }
}

/// One `--ca-dir` for every test (and every run): its RSA key is generated once.
pub fn test_ca_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("graphvcr-test-ca");
        graphvcr::identity::Identity::load_or_create(&dir, &*clock()).expect("test CA");
        dir
    })
    .clone()
}

pub fn record_config(name: &str, graph: &FakeGraph) -> RecordConfig {
    let mut cfg = RecordConfig::new(name, &graph.url()).expect("record config");
    cfg.tls.ca_dir = test_ca_dir();
    cfg.upstream_ca = Some(graph.pki.ca_pem.clone());
    cfg.upstream_timeout = Duration::from_secs(5);
    cfg
}

pub async fn start_record(cfg: RecordConfig, store: &Arc<dyn Store>, with_callbacks: bool) -> Recording {
    start_record_with(cfg, store, with_callbacks, false).await
}

async fn bind_local() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    (l, a)
}

async fn bind_if(on: bool) -> (Option<TcpListener>, Option<SocketAddr>) {
    if !on {
        return (None, None);
    }
    let (l, a) = bind_local().await;
    (Some(l), Some(a))
}

/// Records on the Graph face, and on the callback and proxy faces when asked.
pub async fn start_record_with(
    cfg: RecordConfig,
    store: &Arc<dyn Store>,
    with_callbacks: bool,
    with_proxy: bool,
) -> Recording {
    assert!(cfg.tls.ca_dir.is_absolute(), "a test keeps its CA out of the checkout");
    let (graph, addr) = bind_local().await;
    let (cb, cb_addr) = bind_if(with_callbacks).await;
    let (proxy, proxy_addr) = bind_if(with_proxy).await;
    let (tx, rx) = oneshot::channel::<()>();
    let deps = Deps {
        store: store.clone(),
        clock: clock(),
    };
    let faces = app::Faces {
        graph,
        callbacks: cb,
        proxy,
    };
    let task = tokio::spawn(app::run_record_faces(cfg, deps, faces, async move {
        let _ = rx.await;
    }));
    Recording {
        graph: addr,
        callbacks: cb_addr,
        proxy: proxy_addr,
        stop: Some(tx),
        task,
    }
}

pub struct Replaying {
    pub addr: SocketAddr,
    pub proxy: Option<SocketAddr>,
    /// The callback face (captured misses' notifications), when asked.
    pub callbacks: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<ReplayOutcome, app::AppError>>,
}

impl Replaying {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(mut self) -> Result<ReplayOutcome, app::AppError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.task).await.expect("replay task")
    }
}

pub fn replay_config(name: &str, bot: Option<&FakeBot>) -> ReplayConfig {
    let mut cfg = ReplayConfig::new(name).expect("replay config");
    cfg.tls.ca_dir = test_ca_dir();
    cfg.bot_url = bot.map(|b| BotUrl::parse(&b.url()).expect("bot url"));
    cfg
}

/// Replay of a bundled cassette (imported from `cassettes/` at start).
pub fn bundled_config(name: &str, bot: Option<&FakeBot>) -> ReplayConfig {
    let mut cfg = replay_config(name, bot);
    cfg.cassettes_dir = Some(bundled());
    cfg
}

pub async fn start_replay(cfg: ReplayConfig, store: &Arc<dyn Store>) -> Replaying {
    start_replay_with(cfg, store, false).await
}

/// Replays on the Graph face, and on the proxy face when asked.
pub async fn start_replay_with(cfg: ReplayConfig, store: &Arc<dyn Store>, with_proxy: bool) -> Replaying {
    start_replay_faces(cfg, store, with_proxy, false).await
}

/// Replays on the Graph face, and on the proxy and callback faces when asked.
pub async fn start_replay_faces(
    cfg: ReplayConfig,
    store: &Arc<dyn Store>,
    with_proxy: bool,
    with_callbacks: bool,
) -> Replaying {
    assert!(cfg.tls.ca_dir.is_absolute(), "a test keeps its CA out of the checkout");
    let (l, addr) = bind_local().await;
    let (proxy, proxy_addr) = bind_if(with_proxy).await;
    let (callbacks, callbacks_addr) = bind_if(with_callbacks).await;
    let (tx, rx) = oneshot::channel::<()>();
    let deps = Deps {
        store: store.clone(),
        clock: clock(),
    };
    let replayer = app::replayer(&cfg, &deps).expect("replayer builds");
    let faces = app::Faces {
        graph: l,
        callbacks,
        proxy,
    };
    let task = tokio::spawn(app::serve_replay_faces(cfg, deps, replayer, faces, async move {
        let _ = rx.await;
    }));
    Replaying {
        addr,
        proxy: proxy_addr,
        callbacks: callbacks_addr,
        stop: Some(tx),
        task,
    }
}

/// The repository's bundled cassettes.
pub fn bundled() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cassettes")
}

/// Every byte of every file under `dir`.
pub fn all_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.push((p, b));
            }
        }
    }
    out
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A compact invite body as the Node SDK sends it (with `@odata.type`).
pub fn invite_body(ctx: &str, user: &str, replaces: Option<&str>) -> Value {
    let mut p = json!({
        "@odata.type": "#microsoft.graph.invitationParticipantInfo",
        "identity": {"@odata.type": "#microsoft.graph.identitySet", "user": {"@odata.type": "#microsoft.graph.identity", "id": user, "identityProvider": "AAD"}}
    });
    if let Some(r) = replaces {
        p["replacesCallId"] = Value::from(r);
    }
    json!({"participants": [p], "clientContext": ctx})
}

/// The bot's invite for test call `n` (call, clientContext and invitee derived from `n`).
pub async fn invite(base: &str, version: &str, n: u64) -> Reply {
    send(
        "POST",
        &format!(
            "{base}/{version}/communications/calls/{}/participants/invite",
            guid(0xca11, n)
        ),
        &[("content-type", "application/json")],
        serde_json::to_vec(&invite_body(&guid(0xc0c0, n), &guid(0x05e7, n), None)).expect("json"),
    )
    .await
}

/// A call to the admin API: `admin(&base, "GET", "sessions/x")`.
pub async fn admin(base: &str, method: &str, path: &str) -> Reply {
    send(method, &format!("{base}/_graphvcr/{path}"), &[], Vec::new()).await
}

/// Polls a session's report (admin API) until `done` holds; panics after `limit`.
pub async fn wait_report(base: &str, session: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    let mut every = tokio::time::interval(Duration::from_millis(10));
    loop {
        every.tick().await;
        let rep = body_json(&admin(base, "GET", &format!("sessions/{session}")).await);
        if done(&rep) {
            return rep;
        }
        assert!(tokio::time::Instant::now() < deadline, "report never got there: {rep}");
    }
}

/// Counts strings equal to or containing `needle` anywhere in a JSON value.
pub fn mentions(v: &Value, needle: &str) -> bool {
    serde_json::to_string(v)
        .expect("json")
        .to_ascii_lowercase()
        .contains(&needle.to_ascii_lowercase())
}

pub fn by_key(v: &[Received], key: impl Fn(&Received) -> String) -> HashMap<String, Vec<&Received>> {
    let mut m: HashMap<String, Vec<&Received>> = HashMap::new();
    for r in v {
        m.entry(key(r)).or_default().push(r);
    }
    m
}

/// `--timing fast`: no waiting, order kept.
pub fn fast() -> Pacing {
    Pacing {
        fast: true,
        ..Pacing::default()
    }
}

/// The `resourceUrl` of a received notification's first item.
pub fn resource_url(r: &Received) -> String {
    r.body["value"][0]["resourceUrl"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}
