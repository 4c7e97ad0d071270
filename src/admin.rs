//! The admin API under `/_graphvcr/` on the Graph listener:
//!
//! | method | path | what |
//! | --- | --- | --- |
//! | GET | `/_graphvcr/health` | `{"status":"ok","mode":...}` |
//! | GET | `/_graphvcr/cassettes` | cassettes in the store |
//! | GET | `/_graphvcr/sessions` | reports of live and ended sessions (replay) |
//! | POST | `/_graphvcr/sessions` | start a session `{"cassette"?, "session"?}`; delivers its untriggered notifications |
//! | GET | `/_graphvcr/sessions/{id}` | one session's report |
//! | DELETE | `/_graphvcr/sessions/{id}` | end a session, return its final report |

use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};

use crate::cassette::Store;
use crate::clock::Clock;
use crate::error::ProxyError;
use crate::http::wire::{self, Resp};
use crate::replay::Replayer;

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

    fn route(&self, parts: &http::request::Parts, body: &Bytes) -> Result<(u16, Value), ProxyError> {
        let path = parts.uri.path().trim_end_matches('/');
        let rest = path.strip_prefix(PREFIX).unwrap_or("");
        let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let m = &parts.method;
        match (m, segs.as_slice()) {
            (&Method::GET, ["health"]) => Ok((200, json!({ "status": "ok", "mode": self.mode }))),
            (&Method::GET, ["cassettes"]) => {
                let list: Vec<Value> = self
                    .store
                    .list()?
                    .into_iter()
                    .map(|s| {
                        json!({
                            "name": s.meta.name,
                            "recorded_at": s.meta.recorded_at,
                            "upstream": s.meta.upstream,
                            "events": s.events,
                            "source": s.source.map(|x| x.path),
                        })
                    })
                    .collect();
                Ok((200, Value::Array(list)))
            }
            (&Method::GET, ["sessions"]) => {
                let reports = self.replayer()?.reports();
                Ok((200, serde_json::to_value(reports).unwrap_or(Value::Null)))
            }
            (&Method::POST, ["sessions"]) => {
                let r = self.replayer()?;
                let req: Value = if body.is_empty() {
                    json!({})
                } else {
                    serde_json::from_slice(body)
                        .map_err(|e| ProxyError::BadRequest(format!("session request is not JSON: {e}")))?
                };
                let cassette = req
                    .get("cassette")
                    .and_then(Value::as_str)
                    .unwrap_or(r.default_cassette())
                    .to_string();
                let id = req.get("session").and_then(Value::as_str);
                let id = r.start_session(&cassette, id)?;
                Ok((201, json!({ "session": id, "cassette": cassette })))
            }
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
