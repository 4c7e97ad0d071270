//! The fake Graph: an in-process stand-in for Graph's calls API over TLS (rcgen CA). It
//! checks the bearer token, answers invites, create-call, answer, keepAlive, DELETE and
//! operation GETs the way Graph does (and echoes `POST /{version}/echo` with secrets), and POSTs Graph-shaped callback notifications
//! (bearer JWT, Skype headers) to the callback it was given.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue};
use http::Method;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::doubles::{json_resp, respond, serve_double, Handler, Resp};
use super::harness::{client, guid, jwt};
use super::pki::{pki, TestPki};
use graphvcr::http::client::Reply;

/// A request the fake Graph saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub version: http::Version,
    pub headers: HeaderMap,
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
    /// Drift: the invite's operation gains a member (`ringingTimeoutInSeconds`).
    pub invite_adds_member: AtomicBool,
    /// Drift: the invite's operation loses its `clientContext`.
    pub invite_drops_client_context: AtomicBool,
    /// Drift: the invite's roster `updated` notification is never posted.
    pub skip_roster_update: AtomicBool,
}

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const GRAPH_JWT_TAG: &str = "graph-callback";
/// The access token the fake Azure AD hands out in record runs.
pub const UPSTREAM_TOKEN: &str = "upstream-issued-token-7f3e91";

/// What the fake Graph's routes share.
#[derive(Default)]
struct State {
    seen: Mutex<Vec<Seen>>,
    /// Where notifications go (graphvcr's callback face + path).
    callback: Mutex<Option<String>>,
    behaviour: Arc<GraphBehaviour>,
    next_op: AtomicU64,
}

/// The in-process stand-in for Graph, on https://127.0.0.1:PORT.
pub struct FakeGraph {
    pub addr: SocketAddr,
    pub pki: TestPki,
    pub connections: Arc<AtomicUsize>,
    pub behaviour: Arc<GraphBehaviour>,
    state: Arc<State>,
    _stop: oneshot::Sender<()>,
}

impl FakeGraph {
    pub async fn start() -> FakeGraph {
        let pki = pki();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fake graph");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let state = Arc::new(State {
            next_op: AtomicU64::new(1),
            ..State::default()
        });
        let shared = state.clone();
        let handler: Handler = Arc::new(move |parts, body| {
            let state = shared.clone();
            Box::pin(async move { graph_route(parts, body, &state).await })
        });
        let stop = serve_double(listener, Some(pki.server.clone()), handler, connections.clone());
        FakeGraph {
            addr,
            pki,
            connections,
            behaviour: state.behaviour.clone(),
            state,
            _stop: stop,
        }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    pub fn set_callback(&self, url: &str) {
        *self.state.callback.lock().expect("lock") = Some(url.to_string());
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().expect("lock").clone()
    }

    /// Posts an incoming-call notification (a call nobody asked for) to the callback.
    pub async fn post_incoming_call(&self, call_id: &str) -> Reply {
        let url = self.state.callback.lock().expect("lock").clone().expect("callback set");
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
async fn post_notification(url: &str, body: &Value, chain: &str) -> Result<Reply, graphvcr::http::client::ClientError> {
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

/// The request's standard response headers (`request-id`, echoed `client-request-id`).
fn std_headers(parts: &http::request::Parts, state: &State) -> Vec<(&'static str, String)> {
    let rid = guid(0x4e9e57, state.next_op.load(Ordering::SeqCst));
    let mut h = vec![
        ("request-id", rid),
        ("strict-transport-security", "max-age=31536000".to_string()),
    ];
    if let Some(c) = parts.headers.get("client-request-id").and_then(|v| v.to_str().ok()) {
        h.push(("client-request-id", c.to_string()));
    }
    h
}

async fn graph_route(parts: http::request::Parts, body: Bytes, state: &State) -> Resp {
    state.seen.lock().expect("lock").push(Seen {
        version: parts.version,
        headers: parts.headers.clone(),
    });
    if parts.method == Method::POST && parts.uri.path().ends_with("/oauth2/v2.0/token") {
        // stands in for Azure AD in record runs (`--upstream-for login.microsoftonline.com=...`)
        return json_resp(
            200,
            &[],
            &json!({"token_type": "Bearer", "expires_in": 3599, "access_token": UPSTREAM_TOKEN}),
        );
    }
    let delay = state.behaviour.delay_ms.load(Ordering::SeqCst);
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
    let headers = std_headers(&parts, state);
    let version = segs.first().copied().unwrap_or("v1.0").to_string();
    let rest: Vec<&str> = segs.iter().skip(1).copied().collect();
    let calls = |r: &[&str]| r.len() >= 2 && (r[0] == "communications" || r[0] == "app") && r[1] == "calls";
    let action = |r: &[&str], name: &str| {
        r.last()
            .is_some_and(|a| *a == name || *a == format!("microsoft.graph.{name}"))
    };
    match (parts.method.as_str(), rest.as_slice()) {
        ("POST", r) if calls(r) && r.len() == 5 && r[3] == "participants" && action(r, "invite") => {
            invite(r[2], &version, &body, headers, state).await
        }
        ("POST", r) if calls(r) && r.len() == 2 => create_call(&version, &body, headers, state),
        ("POST", r) if calls(r) && r.len() == 4 && action(r, "answer") => respond(202, &headers, Bytes::new()),
        ("POST", r) if calls(r) && r.len() == 4 && r[3] == "keepAlive" => respond(200, &headers, Bytes::new()),
        ("DELETE", r) if calls(r) && r.len() == 3 => respond(204, &headers, Bytes::new()),
        ("POST", ["echo"]) => echo(&parts, &body, headers),
        ("GET", r) if calls(r) && r.len() == 5 && r[3] == "operations" => json_resp(
            200,
            &headers,
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

/// Secrets planted in every `POST /{version}/echo` response (see `echo`).
pub const ECHO_SECRETS: [&str; 4] = ["PLANTlocsig", "PLANTloccode", "PLANTsetcookie", "PLANTrespfnkey"];

/// `POST /{version}/echo` (not Graph): answers with the request's body (JSON or text)
/// and response headers that carry secrets, as real services do (a SAS `Location`).
fn echo(parts: &http::request::Parts, body: &[u8], mut headers: Vec<(&'static str, String)>) -> Resp {
    let [sig, code, cookie, key] = ECHO_SECRETS;
    headers.push((
        "location",
        format!("https://graph.microsoft.com/v1.0/x?sv=2020&sig={sig}&code={code}"),
    ));
    headers.push(("set-cookie", format!("session={cookie}; HttpOnly")));
    headers.push(("x-functions-key", key.to_string()));
    let ct = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    headers.push(("content-type", ct));
    respond(200, &headers, Bytes::copy_from_slice(body))
}

/// `POST /communications/calls/{id}/participants/invite`: a running operation, then its
/// completion and the roster update posted to the callback.
async fn invite(
    call: &str,
    version: &str,
    body: &[u8],
    mut headers: Vec<(&'static str, String)>,
    state: &State,
) -> Resp {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return graph_error(400, "BadRequest", "Invalid request body.");
    };
    let op = guid(0x0e7a7104, state.next_op.fetch_add(1, Ordering::SeqCst));
    let ctx = req.get("clientContext").cloned().unwrap_or(Value::Null);
    let participants = echo_participants(req.get("participants").unwrap_or(&Value::Null));
    let mut resp = json!({
        "@odata.type": "#microsoft.graph.inviteParticipantsOperation",
        "id": op,
        "status": "Running",
        "clientContext": ctx,
        "resultInfo": null,
        "participants": participants
    });
    let b = &state.behaviour;
    if let Some(o) = resp.as_object_mut() {
        if b.invite_adds_member.load(Ordering::SeqCst) {
            o.insert("ringingTimeoutInSeconds".into(), Value::from(60));
        }
        if b.invite_drops_client_context.load(Ordering::SeqCst) {
            o.remove("clientContext");
        }
    }
    let location = format!("https://graph.microsoft.com/{version}/communications/calls/{call}/operations/{op}");
    let first = operation_notification(call, &op, &ctx, &participants);
    let second = (!b.skip_roster_update.load(Ordering::SeqCst)).then(|| roster_notification(call, &participants));
    let target = state.callback.lock().expect("lock").clone();
    let gap = Duration::from_millis(state.behaviour.notify_gap_ms.load(Ordering::SeqCst));
    if let Some(url) = target {
        let chain = call.to_string();
        if state.behaviour.notify_before_response.load(Ordering::SeqCst) {
            // the operation result reaches the bot before the invite's response
            let _ = post_notification(&url, &first, &chain).await;
            tokio::spawn(async move {
                tokio::time::sleep(gap).await;
                if let Some(n) = second {
                    let _ = post_notification(&url, &n, &chain).await;
                }
            });
        } else {
            tokio::spawn(async move {
                for n in std::iter::once(first).chain(second) {
                    tokio::time::sleep(gap).await;
                    let _ = post_notification(&url, &n, &chain).await;
                }
            });
        }
    }
    headers.push(("location", location));
    json_resp(200, &headers, &resp)
}

/// `POST /communications/calls`: the created call; its progress goes to `callbackUri`.
fn create_call(version: &str, body: &[u8], mut headers: Vec<(&'static str, String)>, state: &State) -> Resp {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return graph_error(400, "BadRequest", "Invalid request body.");
    };
    let call = guid(0x5a11ca11, state.next_op.fetch_add(1, Ordering::SeqCst));
    let mut created = req.clone();
    if let Some(o) = created.as_object_mut() {
        o.insert("id".into(), Value::from(call.clone()));
        o.insert("state".into(), Value::from("establishing"));
        o.insert("myParticipantId".into(), Value::from(guid(0x3e1f, 7)));
        o.insert("tenantId".into(), Value::from(TENANT));
    }
    if let Some(cb) = req.get("callbackUri").and_then(Value::as_str).map(str::to_string) {
        let gap = Duration::from_millis(state.behaviour.notify_gap_ms.load(Ordering::SeqCst));
        let call = call.clone();
        tokio::spawn(async move {
            for s in ["establishing", "established"] {
                tokio::time::sleep(gap).await;
                let _ = post_notification(&cb, &call_state(&call, s), &call).await;
            }
        });
    }
    headers.push((
        "location",
        format!("https://graph.microsoft.com/{version}/communications/calls/{call}"),
    ));
    json_resp(201, &headers, &created)
}
