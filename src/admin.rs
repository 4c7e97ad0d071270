//! The admin API under `/_graphvcr/` on the Graph listener:
//!
//! | method | path | what |
//! | --- | --- | --- |
//! | GET | `/_graphvcr/health` | `{"status":"ok","mode":...}` |
//! | GET | `/_graphvcr/cassettes` | cassettes in the store |
//! | GET | `/_graphvcr/sessions` | reports of live and ended sessions (replay) |
//! | POST | `/_graphvcr/sessions` | start a session `{"cassette"?, "session"?, "ring"?}` and ring it (deliver its untriggered notifications): `201` with the session and the live call ids; an existing name is `409` unless `"ring": true` (`200`) |
//! | GET | `/_graphvcr/sessions/{id}` | one session's report |
//! | DELETE | `/_graphvcr/sessions/{id}` | end a session, return its final report |

use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};

use crate::cassette::Store;
use crate::clock::Clock;
use crate::config::{BotUrl, OnMiss};
use crate::error::ProxyError;
use crate::http::wire::{self, Resp};
use crate::matching::MatchMode;
use crate::replay::{Replayer, SessionSettings, Start};

/// The path prefix the admin API owns.
pub const PREFIX: &str = "/_graphvcr";

/// What the admin API can see.
pub struct Admin {
    mode: &'static str,
    store: Arc<dyn Store>,
    replayer: Option<Arc<Replayer>>,
    clock: Arc<dyn Clock>,
}

/// True when a request path belongs to the admin API.
pub fn owns(path: &str) -> bool {
    path == PREFIX || path.starts_with("/_graphvcr/")
}

/// The members `POST /_graphvcr/sessions` takes.
const SESSION_MEMBERS: &[&str] = &[
    "cassette",
    "session",
    "ring",
    "bot_url",
    "timing",
    "speed",
    "match",
    "on_miss",
    "expect_misses",
];

/// A session's settings from the request's members, the replayer's defaults otherwise.
fn session_settings(m: &Members, defaults: &SessionSettings) -> Result<SessionSettings, ProxyError> {
    let mut s = defaults.clone();
    if let Some(url) = m.str("bot_url")? {
        s.bot_url = Some(BotUrl::parse(url).map_err(|e| ProxyError::BadRequest(format!("member `bot_url`: {e}")))?);
    }
    if let Some(t) = m.choice("timing", &["recorded", "fast"])? {
        s.pacing.fast = t == "fast";
    }
    if let Some(x) = m.positive("speed")? {
        s.pacing.speed = x;
    }
    if let Some(x) = m.choice("match", &["strict", "default", "loose"])? {
        s.match_mode = MatchMode::parse(x).unwrap_or_default();
    }
    if let Some(x) = m.choice("on_miss", &["error", "record", "passthrough"])? {
        s.on_miss = OnMiss::parse(x).unwrap_or_default();
    }
    if let Some(n) = m.u64("expect_misses")? {
        s.expect_misses = n;
    }
    Ok(s)
}

/// A JSON object body whose members are known and typed: anything else is a `400`
/// naming the member.
struct Members(serde_json::Map<String, Value>);

impl Members {
    fn parse(body: &[u8], what: &str, allowed: &[&str]) -> Result<Members, ProxyError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Members(serde_json::Map::new()));
        }
        let v: Value =
            serde_json::from_slice(body).map_err(|e| ProxyError::BadRequest(format!("{what} is not JSON: {e}")))?;
        let Value::Object(obj) = v else {
            return Err(ProxyError::BadRequest(format!("{what} must be a JSON object")));
        };
        if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ProxyError::BadRequest(format!(
                "{what}: unknown member `{}` (allowed: {})",
                crate::matching::clip(k, 64),
                allowed.join(", ")
            )));
        }
        Ok(Members(obj))
    }

    fn str(&self, key: &str) -> Result<Option<&str>, ProxyError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ProxyError::BadRequest(format!("member `{key}` must be a string"))),
        }
    }

    /// A string member that must be one of `allowed`.
    fn choice(&self, key: &str, allowed: &[&str]) -> Result<Option<&str>, ProxyError> {
        match self.str(key)? {
            Some(v) if !allowed.contains(&v) => Err(ProxyError::BadRequest(format!(
                "member `{key}` must be one of {}, not {:?}",
                allowed.join(", "),
                crate::matching::clip(v, 64)
            ))),
            v => Ok(v),
        }
    }

    fn u64(&self, key: &str) -> Result<Option<u64>, ProxyError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| ProxyError::BadRequest(format!("member `{key}` must be a non-negative integer"))),
        }
    }

    fn positive(&self, key: &str) -> Result<Option<f64>, ProxyError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() && x > 0.0 => Ok(Some(x)),
                _ => Err(ProxyError::BadRequest(format!(
                    "member `{key}` must be a positive number"
                ))),
            },
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, ProxyError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ProxyError::BadRequest(format!("member `{key}` must be true or false"))),
        }
    }
}

impl Admin {
    pub fn new(
        mode: &'static str,
        store: Arc<dyn Store>,
        replayer: Option<Arc<Replayer>>,
        clock: Arc<dyn Clock>,
    ) -> Admin {
        Admin {
            mode,
            store,
            replayer,
            clock,
        }
    }

    pub fn handle(&self, parts: &http::request::Parts, body: &Bytes) -> Resp {
        match self.route(parts, body) {
            Ok((status, v)) => wire::json_response(status, &v),
            Err(e) => e.respond(&*self.clock, &parts.method, &parts.uri, body),
        }
    }

    fn replayer(&self) -> Result<&Arc<Replayer>, ProxyError> {
        self.replayer
            .as_ref()
            .ok_or_else(|| ProxyError::NotFound(format!("sessions exist in replay mode only (this is {})", self.mode)))
    }

    /// `POST /_graphvcr/sessions`: a new session (`201`), or an existing one rung
    /// again with `{"ring": true}` (`200`).
    fn start_session(&self, body: &[u8]) -> Result<(u16, Value), ProxyError> {
        let r = self.replayer()?;
        let m = Members::parse(body, "session request", SESSION_MEMBERS)?;
        let session = m.str("session")?;
        if let Some(name) = session {
            crate::replay::validate_session_name(name)?;
        }
        let cassette = m.str("cassette")?;
        if cassette.is_none() && r.default_cassette().is_none() {
            return Err(ProxyError::BadRequest(
                "session request: member `cassette` is required (this graphvcr serves many cassettes)".into(),
            ));
        }
        let start = Start {
            cassette,
            session,
            ring_again: m.bool("ring")?.unwrap_or(false),
            settings: Some(session_settings(&m, r.defaults())?),
        };
        let started = r.start(&start)?;
        let status = if started.created { 201 } else { 200 };
        Ok((status, serde_json::to_value(started).unwrap_or(Value::Null)))
    }

    /// The store's cassettes, and the bundled ones it does not shadow.
    fn cassettes(&self) -> Result<Value, ProxyError> {
        let stored = self.store.list()?;
        let mut list: Vec<Value> = stored
            .iter()
            .map(|s| {
                json!({
                    "name": s.meta.name,
                    "recorded_at": s.meta.recorded_at,
                    "upstream": s.meta.upstream,
                    "events": s.events,
                    "source": s.source.as_ref().map(|x| x.path.clone()),
                })
            })
            .collect();
        for (name, _) in crate::bundled::CASSETTES {
            if !stored.iter().any(|s| s.meta.name == name) {
                list.push(json!({ "name": name, "source": "bundled" }));
            }
        }
        Ok(Value::Array(list))
    }

    fn route(&self, parts: &http::request::Parts, body: &Bytes) -> Result<(u16, Value), ProxyError> {
        let path = parts.uri.path().trim_end_matches('/');
        let rest = path.strip_prefix(PREFIX).unwrap_or("");
        let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let m = &parts.method;
        match (m, segs.as_slice()) {
            (&Method::GET, ["health"]) => Ok((200, json!({ "status": "ok", "mode": self.mode }))),
            (&Method::GET, ["cassettes"]) => Ok((200, self.cassettes()?)),
            (&Method::GET, ["sessions"]) => {
                let reports = self.replayer()?.reports();
                Ok((200, serde_json::to_value(reports).unwrap_or(Value::Null)))
            }
            (&Method::POST, ["sessions"]) => self.start_session(body),
            (&Method::GET, ["sessions", id]) => {
                let rep = self
                    .replayer()?
                    .report(id)
                    .ok_or_else(|| ProxyError::NotFound(format!("no session `{id}`")))?;
                Ok((200, serde_json::to_value(rep).unwrap_or(Value::Null)))
            }
            (&Method::DELETE, ["sessions", id]) => {
                let rep = self
                    .replayer()?
                    .end(id)
                    .ok_or_else(|| ProxyError::NotFound(format!("no live session `{id}`")))?;
                Ok((200, serde_json::to_value(rep).unwrap_or(Value::Null)))
            }
            _ => Err(ProxyError::NotFound(format!("no admin endpoint {m} {path}"))),
        }
    }
}
