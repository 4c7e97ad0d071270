//! Reading admin request bodies: a JSON object whose members are known and typed
//! (anything else is a `400` naming the member), and a session's settings from them.

use serde_json::Value;

use crate::config::{BotUrl, OnMiss};
use crate::error::ProxyError;
use crate::matching::MatchMode;
use std::sync::Arc;

use crate::faults::{self, Fault};
use crate::replay::{validate_fault, Prepared, SessionSettings};

/// The members `POST /_graphvcr/sessions` takes.
pub const SESSION_MEMBERS: &[&str] = &[
    "cassette",
    "session",
    "ring",
    "bot_url",
    "timing",
    "speed",
    "match",
    "on_miss",
    "expect_misses",
    "faults",
];

/// A session's settings from the request's members, the replayer's defaults otherwise.
pub fn session_settings(m: &Members, defaults: &SessionSettings) -> Result<SessionSettings, ProxyError> {
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
    if let Some(specs) = m.strings("faults")? {
        let parsed: Result<Vec<Fault>, _> = specs.iter().map(|spec| faults::parse(spec)).collect();
        s.faults = Arc::from(parsed.map_err(|e| ProxyError::BadRequest(format!("member `faults`: {e}")))?);
    }
    Ok(s)
}

/// Refuses faults that name nothing `cassette` recorded.
pub fn check_faults(s: &SessionSettings, cassette: &Prepared) -> Result<(), ProxyError> {
    for f in s.faults.iter() {
        validate_fault(f, cassette).map_err(|e| ProxyError::BadRequest(format!("member `faults`: {e}")))?;
    }
    Ok(())
}

/// A JSON object body whose members are known and typed: anything else is a `400`
/// naming the member.
pub struct Members(serde_json::Map<String, Value>);

impl Members {
    pub fn parse(body: &[u8], what: &str, allowed: &[&str]) -> Result<Members, ProxyError> {
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

    pub fn str(&self, key: &str) -> Result<Option<&str>, ProxyError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ProxyError::BadRequest(format!("member `{key}` must be a string"))),
        }
    }

    /// A string member that must be one of `allowed`.
    pub fn choice(&self, key: &str, allowed: &[&str]) -> Result<Option<&str>, ProxyError> {
        match self.str(key)? {
            Some(v) if !allowed.contains(&v) => Err(ProxyError::BadRequest(format!(
                "member `{key}` must be one of {}, not {:?}",
                allowed.join(", "),
                crate::matching::clip(v, 64)
            ))),
            v => Ok(v),
        }
    }

    pub fn u64(&self, key: &str) -> Result<Option<u64>, ProxyError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| ProxyError::BadRequest(format!("member `{key}` must be a non-negative integer"))),
        }
    }

    pub fn positive(&self, key: &str) -> Result<Option<f64>, ProxyError> {
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

    /// A member holding a list of strings.
    pub fn strings(&self, key: &str) -> Result<Option<Vec<&str>>, ProxyError> {
        let wrong = || ProxyError::BadRequest(format!("member `{key}` must be a list of strings"));
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().ok_or_else(wrong))
                .collect::<Result<_, _>>()
                .map(Some),
            Some(_) => Err(wrong()),
        }
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, ProxyError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ProxyError::BadRequest(format!("member `{key}` must be true or false"))),
        }
    }
}
