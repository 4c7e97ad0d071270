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

mod guard;
mod members;

pub use guard::{Guard, MAX_BODY};

use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};

use crate::cassette::Store;
use crate::clock::Clock;
use crate::error::ProxyError;
use crate::http::wire::{self, Resp};
use crate::replay::{Replayer, Start};
use members::{check_faults, session_settings, Members, SESSION_MEMBERS};

/// The path prefix the admin API owns.
pub const PREFIX: &str = "/_graphvcr";

/// What the admin API can see.
pub struct Admin {
    mode: &'static str,
    store: Arc<dyn Store>,
    replayer: Option<Arc<Replayer>>,
    clock: Arc<dyn Clock>,
    guard: Guard,
}

/// True when a request path belongs to the admin API.
pub fn owns(path: &str) -> bool {
    path == PREFIX || path.starts_with("/_graphvcr/")
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
            guard: Guard::default(),
        }
    }

    /// Who may use it (the listener's address, extra host names).
    pub fn with_guard(mut self, guard: Guard) -> Admin {
        self.guard = guard;
        self
    }

    pub fn handle(&self, parts: &http::request::Parts, body: &Bytes) -> Resp {
        let answer = self
            .guard
            .check(parts, body.len())
            .and_then(|()| self.route(parts, body));
        match answer {
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
        let settings = session_settings(&m, r.defaults())?;
        if let Some(name) = cassette.or(r.default_cassette()) {
            check_faults(&settings, &*r.cassette(name)?)?;
        }
        let start = Start {
            cassette,
            session,
            ring_again: m.bool("ring")?.unwrap_or(false),
            settings: Some(settings),
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
