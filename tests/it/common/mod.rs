//! Test doubles and helpers: a fake Graph over TLS (rcgen CA) that answers the calls API
//! and POSTs callback notifications the way Graph does, a fake bot, and helpers that run
//! graphvcr in-process on 127.0.0.1:0.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue};
use http::Method;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};

use graphvcr::app::{self, Deps, RecordOutcome, ReplayOutcome};
use graphvcr::cassette::{SledStore, Store};
use graphvcr::clock::{Clock, FixedClock};
use graphvcr::config::{BotUrl, RecordConfig, ReplayConfig};
use graphvcr::upstream::{HttpClient, Reply};

/// 2026-11-27T10:00:00Z
pub const NOW_MS: u64 = 1_795_773_600_000;

pub fn init() {
    graphvcr::upstream::install_crypto_provider();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

/// A JWT-looking bearer token whose signature part is easy to search for.
pub fn jwt(tag: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.{}",
        b64(r#"{"alg":"RS256","typ":"JWT"}"#),
        b64(&format!(
            r#"{{"aud":"app","tid":"72f988bf-86f1-41af-91ab-2d7cd011db47","tag":"{tag}"}}"#
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

// ---- a tiny server loop for the doubles ------------------------------------------------

type Resp = http::Response<Full<Bytes>>;
type BoxFut = std::pin::Pin<Box<dyn std::future::Future<Output = Resp> + Send>>;
type Handler = Arc<dyn Fn(http::request::Parts, Bytes) -> BoxFut + Send + Sync>;

/// Serves `handler` on `listener` (TLS when given) until the returned sender drops;
/// counts accepted connections.
fn serve_double(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: Handler,
    connections: Arc<AtomicUsize>,
) -> oneshot::Sender<()> {
    let (tx, mut rx) = oneshot::channel::<()>();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                _ = &mut rx => break,
            };
            connections.fetch_add(1, Ordering::SeqCst);
            let h = handler.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let h = h.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                        Ok::<_, std::convert::Infallible>(h(parts, bytes).await)
                    }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match acceptor {
                    Some(a) => {
                        if let Ok(s) = a.accept(stream).await {
                            let _ = builder.serve_connection(TokioIo::new(s), svc).await;
                        }
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                    }
                }
            });
        }
    });
    tx
}

fn respond(status: u16, headers: &[(&str, String)], body: impl Into<Bytes>) -> Resp {
    let mut r = http::Response::new(Full::new(body.into()));
    *r.status_mut() = http::StatusCode::from_u16(status).expect("status");
    for (n, v) in headers {
        r.headers_mut().append(
            http::header::HeaderName::from_bytes(n.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    r
}

fn json_resp(status: u16, headers: &[(&str, String)], v: &Value) -> Resp {
    let mut h: Vec<(&str, String)> = vec![("content-type", "application/json".to_string())];
    h.extend(headers.iter().cloned());
    respond(status, &h, serde_json::to_vec(v).expect("json"))
}

// ---- TLS ------------------------------------------------------------------------------

/// A CA and a server certificate for 127.0.0.1/localhost signed by it.
pub struct TestPki {
    pub ca_pem: PathBuf,
    pub server: Arc<rustls::ServerConfig>,
    _dir: tempfile::TempDir,
}

pub fn pki() -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "graphvcr test CA");
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).expect("params");
    params.distinguished_name.push(DnType::CommonName, "graph.test");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_pem = dir.path().join("ca.pem");
    std::fs::write(&ca_pem, ca.pem()).expect("write ca");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("server config");
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TestPki {
        ca_pem,
        server: Arc::new(server),
        _dir: dir,
    }
}

// ---- fake Graph -----------------------------------------------------------------------

/// A request the fake Graph saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub version: http::Version,
    pub method: String,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// How the fake Graph behaves.
#[derive(Default)]
pub struct GraphBehaviour {
    /// Post the operation-completed notification before answering the invite.
    pub notify_before_response: AtomicBool,
    /// Delay every answer by this many ms.
    pub delay_ms: AtomicU64,
    /// Gap between the invite response and each notification (ms).
    pub notify_gap_ms: AtomicU64,
}

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const GRAPH_JWT_TAG: &str = "graph-callback";

/// The in-process stand-in for Graph, on https://127.0.0.1:PORT.
pub struct FakeGraph {
    pub addr: SocketAddr,
    pub pki: TestPki,
    pub connections: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Where notifications go (graphvcr's callback face + path).
    pub callback: Arc<Mutex<Option<String>>>,
    pub behaviour: Arc<GraphBehaviour>,
    next_op: Arc<AtomicU64>,
    _stop: oneshot::Sender<()>,
}

impl FakeGraph {
    pub async fn start() -> FakeGraph {
        let pki = pki();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fake graph");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let callback: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let behaviour = Arc::new(GraphBehaviour::default());
        let next_op = Arc::new(AtomicU64::new(1));
        let state = (seen.clone(), callback.clone(), behaviour.clone(), next_op.clone());
        let handler: Handler = Arc::new(move |parts, body| {
            let (seen, callback, behaviour, next_op) = state.clone();
            Box::pin(async move { graph_route(parts, body, seen, callback, behaviour, next_op).await })
        });
        let stop = serve_double(listener, Some(pki.server.clone()), handler, connections.clone());
        FakeGraph {
            addr,
            pki,
            connections,
            seen,
            callback,
            behaviour,
            next_op,
            _stop: stop,
        }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    pub fn set_callback(&self, url: &str) {
        *self.callback.lock().expect("lock") = Some(url.to_string());
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// Posts an incoming-call notification (a call nobody asked for) to the callback.
    pub async fn post_incoming_call(&self, call_id: &str) -> Reply {
        let url = self.callback.lock().expect("lock").clone().expect("callback set");
        post_notification(&url, &incoming_call(call_id), call_id)
            .await
            .expect("callback face answers")
    }
}

fn call_state(call: &str, state: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.commsNotifications",
        "value": [{
            "@odata.type": "#microsoft.graph.commsNotification",
            "changeType": "updated",
            "resource": format!("/app/calls/{call}"),
            "resourceUrl": format!("/communications/calls/{call}"),
            "resourceData": {"@odata.type": "#microsoft.graph.call", "state": state, "id": call}
        }]
    })
}

fn incoming_call(call_id: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.commsNotifications",
        "value": [{
            "@odata.type": "#microsoft.graph.commsNotification",
            "changeType": "created",
            "resource": format!("/app/calls/{call_id}"),
            "resourceUrl": format!("/communications/calls/{call_id}"),
            "resourceData": {
                "@odata.type": "#microsoft.graph.call",
                "state": "incoming",
                "direction": "incoming",
                "callbackUri": "https://bot.contoso.com/api/calls",
                "tenantId": TENANT,
                "myParticipantId": "a1c2e3f4-5b6d-4e7f-8a9b-0c1d2e3f4a5b",
                "source": {"@odata.type": "#microsoft.graph.participantInfo", "identity": {"@odata.type": "#microsoft.graph.identitySet", "user": {"@odata.type": "#microsoft.graph.identity", "id": "3cbceccb-6bbe-4dc0-b4cb-b171df0161cf", "tenantId": TENANT}}},
                "id": call_id
            }
        }]
    })
}

/// Posts one notification the way Graph does (bearer JWT, Skype headers).
async fn post_notification(url: &str, body: &Value, chain: &str) -> Result<Reply, graphvcr::upstream::ClientError> {
    static MESSAGE: AtomicU64 = AtomicU64::new(1);
    let msg = guid(0x9e55a9e0, MESSAGE.fetch_add(1, Ordering::SeqCst));
    let mut h = HeaderMap::new();
    let pairs = [
        ("content-type", "application/json; charset=utf-8".to_string()),
        ("accept", "application/json".to_string()),
        ("authorization", format!("Bearer {}", jwt(GRAPH_JWT_TAG))),
        ("user-agent", "Microsoft-Skype/3.0,(Calling/1.0)".to_string()),
        ("x-microsoft-skype-chain-id", chain.to_string()),
        ("x-microsoft-skype-message-id", msg),
        ("x-microsoft-skype-caller-region", "amer".to_string()),
        ("scenario-id", chain.to_string()),
    ];
    for (n, v) in pairs {
        h.append(n, HeaderValue::from_str(&v).expect("value"));
    }
    client()
        .send(
            Method::POST,
            url,
            h,
            Bytes::from(serde_json::to_vec(body).expect("json")),
        )
        .await
}

fn graph_error(status: u16, code: &str, message: &str) -> Resp {
    json_resp(
        status,
        &[],
        &json!({"error": {"code": code, "message": message, "innerError": {"request-id": guid(0xe1, 1), "date": "2026-11-27T10:00:00"}}}),
    )
}

fn operation_notification(call: &str, op: &str, ctx: &Value, participants: &Value) -> Value {
    let mut parts = participants.clone();
    if let Some(a) = parts.as_array_mut() {
        for p in a {
            if let Some(o) = p.as_object_mut() {
                o.remove("replacesCallId");
            }
        }
    }
    json!({
        "@odata.type": "#microsoft.graph.commsNotifications",
        "value": [{
            "@odata.type": "#microsoft.graph.commsNotification",
            "changeType": "deleted",
            "resource": format!("/app/calls/{call}/operations/{op}"),
            "resourceUrl": format!("/communications/calls/{call}/operations/{op}"),
            "resourceData": {
                "@odata.type": "#microsoft.graph.inviteParticipantsOperation",
                "participants": parts,
                "status": "completed",
                "clientContext": ctx,
                "id": op
            }
        }]
    })
}

fn roster_notification(call: &str, participants: &Value) -> Value {
    let roster: Vec<Value> = participants
        .as_array()
        .map(|a| {
            a.iter()
                .enumerate()
                .map(|(i, p)| {
                    json!({
                        "@odata.type": "#microsoft.graph.participant",
                        "info": {"@odata.type": "#microsoft.graph.participantInfo", "identity": p.get("identity").cloned().unwrap_or(Value::Null), "endpointType": "default"},
                        "mediaStreams": [{"@odata.type": "#microsoft.graph.mediaStream", "mediaType": "audio", "sourceId": (i * 2 + 1).to_string(), "direction": "sendReceive", "serverMuted": false}],
                        "isMuted": false,
                        "isInLobby": false,
                        "id": guid(0x9a471c19, i as u64 + 1)
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "@odata.type": "#microsoft.graph.commsNotifications",
        "value": [{
            "@odata.type": "#microsoft.graph.commsNotification",
            "changeType": "updated",
            "resource": format!("/app/calls/{call}/participants"),
            "resourceUrl": format!("/communications/calls/{call}/participants"),
            "resourceData": roster
        }]
    })
}

/// Adds Graph's echo of identities (tenant ids) to invitees.
fn echo_participants(parts: &Value) -> Value {
    let mut out = parts.clone();
    if let Some(a) = out.as_array_mut() {
        for p in a {
            if let Some(idset) = p.get_mut("identity").and_then(Value::as_object_mut) {
                for (k, who) in idset.iter_mut() {
                    if k.starts_with('@') {
                        continue;
                    }
                    if let Some(o) = who.as_object_mut() {
                        if k != "phone" {
                            o.insert("tenantId".into(), Value::from(TENANT));
                        }
                    }
                }
            }
        }
    }
    out
}

async fn graph_route(
    parts: http::request::Parts,
    body: Bytes,
    seen: Arc<Mutex<Vec<Seen>>>,
    callback: Arc<Mutex<Option<String>>>,
    behaviour: Arc<GraphBehaviour>,
    next_op: Arc<AtomicU64>,
) -> Resp {
    seen.lock().expect("lock").push(Seen {
        version: parts.version,
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let delay = behaviour.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if !parts
        .headers
        .get("authorization")
        .is_some_and(|v| v.as_bytes().starts_with(b"Bearer "))
    {
        return graph_error(401, "InvalidAuthenticationToken", "Access token is empty.");
    }
    let path = parts.uri.path().to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rid = guid(0x4e9e57, next_op.load(Ordering::SeqCst));
    let mut std_headers = vec![
        ("request-id", rid.clone()),
        ("strict-transport-security", "max-age=31536000".to_string()),
    ];
    if let Some(c) = parts.headers.get("client-request-id").and_then(|v| v.to_str().ok()) {
        std_headers.push(("client-request-id", c.to_string()));
    }
    let version = segs.first().copied().unwrap_or("v1.0").to_string();
    let rest: Vec<&str> = segs.iter().skip(1).copied().collect();
    let calls = |r: &[&str]| r.len() >= 2 && (r[0] == "communications" || r[0] == "app") && r[1] == "calls";
    match (parts.method.as_str(), rest.as_slice()) {
        ("POST", r)
            if calls(r)
                && r.len() == 5
                && r[3] == "participants"
                && (r[4] == "invite" || r[4] == "microsoft.graph.invite") =>
        {
            let call = r[2].to_string();
            let Ok(req) = serde_json::from_slice::<Value>(&body) else {
                return graph_error(400, "BadRequest", "Invalid request body.");
            };
            let op = guid(0x0e7a7104, next_op.fetch_add(1, Ordering::SeqCst));
            let ctx = req.get("clientContext").cloned().unwrap_or(Value::Null);
            let participants = echo_participants(req.get("participants").unwrap_or(&Value::Null));
            let resp = json!({
                "@odata.type": "#microsoft.graph.inviteParticipantsOperation",
                "id": op,
                "status": "Running",
                "clientContext": ctx,
                "resultInfo": null,
                "participants": participants
            });
            let location = format!("https://graph.microsoft.com/{version}/communications/calls/{call}/operations/{op}");
            let first = operation_notification(&call, &op, &ctx, &participants);
            let second = roster_notification(&call, &participants);
            let target = callback.lock().expect("lock").clone();
            let gap = Duration::from_millis(behaviour.notify_gap_ms.load(Ordering::SeqCst));
            let early = behaviour.notify_before_response.load(Ordering::SeqCst);
            if let Some(url) = target {
                let chain = call.clone();
                let posting = async move {
                    if !early {
                        tokio::time::sleep(gap).await;
                    }
                    let _ = post_notification(&url, &first, &chain).await;
                    tokio::time::sleep(gap).await;
                    let _ = post_notification(&url, &second, &chain).await;
                };
                tokio::spawn(posting);
                if early {
                    // the operation result reaches the bot before the invite's response
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
            std_headers.push(("location", location));
            json_resp(200, &std_headers, &resp)
        }
        ("POST", r) if calls(r) && r.len() == 2 => {
            let Ok(req) = serde_json::from_slice::<Value>(&body) else {
                return graph_error(400, "BadRequest", "Invalid request body.");
            };
            let call = guid(0x5a11ca11, next_op.fetch_add(1, Ordering::SeqCst));
            let mut created = req.clone();
            if let Some(o) = created.as_object_mut() {
                o.insert("id".into(), Value::from(call.clone()));
                o.insert("state".into(), Value::from("establishing"));
                o.insert("myParticipantId".into(), Value::from(guid(0x3e1f, 7)));
                o.insert("tenantId".into(), Value::from(TENANT));
            }
            // Graph reports the call's progress to the callbackUri the bot gave
            if let Some(cb) = req.get("callbackUri").and_then(Value::as_str).map(str::to_string) {
                let gap = Duration::from_millis(behaviour.notify_gap_ms.load(Ordering::SeqCst));
                let call = call.clone();
                tokio::spawn(async move {
                    for state in ["establishing", "established"] {
                        tokio::time::sleep(gap).await;
                        let _ = post_notification(&cb, &call_state(&call, state), &call).await;
                    }
                });
            }
            std_headers.push((
                "location",
                format!("https://graph.microsoft.com/{version}/communications/calls/{call}"),
            ));
            json_resp(201, &std_headers, &created)
        }
        ("POST", r) if calls(r) && r.len() == 4 && (r[3] == "answer" || r[3] == "microsoft.graph.answer") => {
            respond(202, &std_headers, Bytes::new())
        }
        ("POST", r) if calls(r) && r.len() == 4 && r[3] == "keepAlive" => respond(200, &std_headers, Bytes::new()),
        ("DELETE", r) if calls(r) && r.len() == 3 => respond(204, &std_headers, Bytes::new()),
        ("GET", r) if calls(r) && r.len() == 5 && r[3] == "operations" => json_resp(
            200,
            &std_headers,
            &json!({"@odata.type": "#microsoft.graph.commsOperation", "id": r[4], "status": "completed", "clientContext": null, "resultInfo": null}),
        ),
        _ => graph_error(
            404,
            "UnknownError",
            &format!(
                "No HTTP resource was found that matches the request URI '{}'.",
                parts.uri
            ),
        ),
    }
}

// ---- fake bot -------------------------------------------------------------------------

/// A notification the bot received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    pub at: Instant,
}

/// The bot's callback endpoint on http://127.0.0.1:PORT.
pub struct FakeBot {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    /// Requests answered so far (including failures).
    pub hits: Arc<AtomicUsize>,
    /// Answer 503 to this many requests first.
    pub fail_first: Arc<AtomicUsize>,
    arrived: Arc<Notify>,
    _stop: oneshot::Sender<()>,
}

impl FakeBot {
    pub async fn start() -> FakeBot {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind bot");
        FakeBot::on(l)
    }

    pub fn on(listener: TcpListener) -> FakeBot {
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let hits = Arc::new(AtomicUsize::new(0));
        let fail_first = Arc::new(AtomicUsize::new(0));
        let arrived = Arc::new(Notify::new());
        let state = (received.clone(), hits.clone(), fail_first.clone(), arrived.clone());
        let handler: Handler = Arc::new(move |parts: http::request::Parts, body: Bytes| {
            let (received, hits, fail_first, arrived) = state.clone();
            Box::pin(async move {
                hits.fetch_add(1, Ordering::SeqCst);
                if fail_first.load(Ordering::SeqCst) > 0 {
                    fail_first.fetch_sub(1, Ordering::SeqCst);
                    return respond(503, &[], Bytes::new());
                }
                let msg = parts
                    .headers
                    .get("x-microsoft-skype-message-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                received.lock().expect("lock").push(Received {
                    path: parts.uri.to_string(),
                    headers: parts.headers.clone(),
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    at: Instant::now(),
                });
                arrived.notify_waiters();
                respond(
                    202,
                    &[("client-request-id", msg), ("scenario-id", guid(0x5ce, 1))],
                    Bytes::new(),
                )
            })
        });
        let stop = serve_double(listener, None, handler, Arc::new(AtomicUsize::new(0)));
        FakeBot {
            addr,
            received,
            hits,
            fail_first,
            arrived,
            _stop: stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    /// Waits until at least `n` notifications arrived (panics after `limit`).
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.arrived.notified();
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let got = self.received();
                assert!(got.len() >= n, "bot received {} notifications, expected {n}", got.len());
                return got;
            }
        }
    }
}

// ---- graphvcr in-process ----------------------------------------------------------------

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

pub fn record_config(name: &str, graph: &FakeGraph) -> RecordConfig {
    let mut cfg = RecordConfig::new(name, &graph.url()).expect("record config");
    cfg.upstream_ca = Some(graph.pki.ca_pem.clone());
    cfg.upstream_timeout = Duration::from_secs(5);
    cfg
}

pub async fn start_record(cfg: RecordConfig, store: &Arc<dyn Store>, with_callbacks: bool) -> Recording {
    let graph = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = graph.local_addr().expect("addr");
    let cb = if with_callbacks {
        Some(TcpListener::bind("127.0.0.1:0").await.expect("bind"))
    } else {
        None
    };
    let cb_addr = cb.as_ref().map(|l| l.local_addr().expect("addr"));
    let (tx, rx) = oneshot::channel::<()>();
    let deps = Deps {
        store: store.clone(),
        clock: clock(),
    };
    let task = tokio::spawn(app::run_record(cfg, deps, graph, cb, async move {
        let _ = rx.await;
    }));
    Recording {
        graph: addr,
        callbacks: cb_addr,
        stop: Some(tx),
        task,
    }
}

pub struct Replaying {
    pub addr: SocketAddr,
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
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let deps = Deps {
        store: store.clone(),
        clock: clock(),
    };
    let replayer = app::replayer(&cfg, &deps).expect("replayer builds");
    let task = tokio::spawn(app::serve_replay(cfg, deps, replayer, l, async move {
        let _ = rx.await;
    }));
    Replaying {
        addr,
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
