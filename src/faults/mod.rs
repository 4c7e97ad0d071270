//! Fault injection, one spelling for every fault: `KIND@TARGET[,param=value...]`, the
//! same on the command line (`--fault`) and in a session's `faults`.
//!
//! Notification faults target a recorded notification by seq or by
//! `changeType:template` (`drop@2`, `delay@2,ms=500`, `duplicate@1`, `reorder@1`,
//! `fail@1,code=500,subcode=8510,message=...`,
//! `drop@updated:/communications/calls/{id}/participants`). Response faults target a
//! request by `METHOD template` and occurrence (`429@POST
//! /communications/calls/{id}/participants/invite,nth=1,retry-after=1`, `503@...,every=3`,
//! `500@...`, `404@...`, `delay@GET /communications/calls/{id},ms=200`). `chaos` picks
//! faults from these lists, deterministically from a seed.

pub mod chaos;

use std::time::Duration;

use serde_json::Value;

use crate::graph::{self, GraphPath};

/// What happens to a targeted notification.
#[derive(Debug, Clone, PartialEq)]
pub enum NotifyFault {
    Drop,
    Delay(Duration),
    /// Delivered twice, with the same message id (as Graph does on a retry).
    Duplicate,
    /// Delivered after the next one of its batch.
    Reorder,
    /// An operation that completes as `failed`, with this `resultInfo`.
    Fail {
        code: i64,
        subcode: i64,
        message: String,
    },
}

/// What a targeted request gets instead of (or before) its recording.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFault {
    /// A Graph-shaped error with this status (`429` with `Retry-After`, `503`, `500`,
    /// `404`); the recording is not consumed, so a retry gets it.
    Status { status: u16, retry_after: Option<u64> },
    /// The recording, after this long.
    Delay(Duration),
}

/// Which notification a fault targets.
#[derive(Debug, Clone, PartialEq)]
pub enum NotifyTarget {
    Seq(u64),
    /// `changeType` and resource template (`/communications/calls/{id}/participants`).
    Kind {
        change: String,
        template: String,
    },
}

/// Which requests a response fault targets: method, template, occurrence.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestTarget {
    pub method: String,
    /// Template without the API version (`/communications/calls/{id}`).
    pub template: String,
    /// The `nth` matching request of the session (1-based), or every `every`th.
    pub occurrence: Occurrence,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Occurrence {
    Nth(u64),
    Every(u64),
}

impl Occurrence {
    /// Whether the `n`th matching request (1-based) is hit.
    pub fn hits(self, n: u64) -> bool {
        match self {
            Occurrence::Nth(k) => n == k,
            Occurrence::Every(k) => k > 0 && n % k == 0,
        }
    }
}

/// One fault, as parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    Notification {
        target: NotifyTarget,
        fault: NotifyFault,
        spec: String,
    },
    Response {
        target: RequestTarget,
        fault: ResponseFault,
        spec: String,
    },
}

impl Fault {
    /// The fault as it was written.
    pub fn spec(&self) -> &str {
        match self {
            Fault::Notification { spec, .. } | Fault::Response { spec, .. } => spec,
        }
    }
}

/// Why a fault spec was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("fault `{spec}`: {why}")]
pub struct FaultError {
    pub spec: String,
    pub why: String,
}

fn err(spec: &str, why: impl Into<String>) -> FaultError {
    FaultError {
        spec: crate::matching::clip(spec, 200),
        why: why.into(),
    }
}

/// `a=1,b=2` after the target, as pairs; every one must be in `allowed`.
fn params<'a>(spec: &str, rest: &'a [&'a str], allowed: &[&str]) -> Result<Vec<(&'a str, &'a str)>, FaultError> {
    let mut out = Vec::new();
    for p in rest {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| err(spec, format!("`{p}` is not param=value")))?;
        if !allowed.contains(&k.trim()) {
            return Err(err(
                spec,
                format!("unknown parameter `{k}` (allowed: {})", allowed.join(", ")),
            ));
        }
        out.push((k.trim(), v.trim()));
    }
    Ok(out)
}

fn number<T: std::str::FromStr>(spec: &str, key: &str, v: &str) -> Result<T, FaultError> {
    v.parse()
        .map_err(|_| err(spec, format!("`{key}` must be a number, not `{v}`")))
}

/// The resource template of a path-like string: Graph's `/app` spelled
/// `/communications`, id segments as `{id}`, no version, no query.
pub fn resource_template(path: &str) -> String {
    let (path, _) = graph::split_uri(path);
    let with_version = format!("/v1.0/{}", path.trim_start_matches('/'));
    match GraphPath::parse(&with_version) {
        Some(gp) => gp.template(),
        None => path.to_string(),
    }
}

/// The (changeType, resource template) of each item of a recorded callback body.
pub fn notification_kinds(body: &Value) -> Vec<(String, String)> {
    graph::notification_items(body)
        .into_iter()
        .map(|n| {
            let change = n.get("changeType").and_then(Value::as_str).unwrap_or_default();
            let res = n
                .get("resourceUrl")
                .or_else(|| n.get("resource"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            (change.to_ascii_lowercase(), resource_template(res))
        })
        .collect()
}

/// Parses one fault spec.
pub fn parse(spec: &str) -> Result<Fault, FaultError> {
    let (kind, rest) = spec
        .split_once('@')
        .ok_or_else(|| err(spec, "expected KIND@TARGET[,param=value...]"))?;
    let mut parts: Vec<&str> = rest.split(',').collect();
    let target = parts.remove(0).trim();
    if target.is_empty() {
        return Err(err(spec, "no target after `@`"));
    }
    let by_request = target
        .split_once(' ')
        .is_some_and(|(m, _)| m.bytes().all(|b| b.is_ascii_uppercase()));
    if by_request {
        parse_response(spec, kind.trim(), target, &parts)
    } else {
        parse_notification(spec, kind.trim(), target, &parts)
    }
}

fn parse_notification(spec: &str, kind: &str, target: &str, rest: &[&str]) -> Result<Fault, FaultError> {
    let target = match target.parse::<u64>() {
        Ok(seq) => NotifyTarget::Seq(seq),
        Err(_) => {
            let (change, template) = target
                .split_once(':')
                .ok_or_else(|| err(spec, "a notification target is a seq or changeType:template"))?;
            NotifyTarget::Kind {
                change: change.to_ascii_lowercase(),
                template: resource_template(template),
            }
        }
    };
    let fault = match kind {
        "drop" | "duplicate" | "reorder" => {
            params(spec, rest, &[])?;
            match kind {
                "drop" => NotifyFault::Drop,
                "duplicate" => NotifyFault::Duplicate,
                _ => NotifyFault::Reorder,
            }
        }
        "delay" => {
            let p = params(spec, rest, &["ms"])?;
            let ms = p
                .iter()
                .find(|(k, _)| *k == "ms")
                .map(|(k, v)| number::<u64>(spec, k, v));
            NotifyFault::Delay(Duration::from_millis(ms.ok_or_else(|| err(spec, "delay needs ms=N"))??))
        }
        "fail" => {
            let p = params(spec, rest, &["code", "subcode", "message"])?;
            let get = |k: &str| p.iter().find(|(pk, _)| *pk == k).map(|(_, v)| *v);
            NotifyFault::Fail {
                code: get("code").map(|v| number(spec, "code", v)).transpose()?.unwrap_or(500),
                subcode: get("subcode")
                    .map(|v| number(spec, "subcode", v))
                    .transpose()?
                    .unwrap_or(8510),
                message: get("message")
                    .unwrap_or("Operation failed: the participant could not be reached.")
                    .to_string(),
            }
        }
        other => {
            return Err(err(
                spec,
                format!("`{other}` is no notification fault (drop, delay, duplicate, reorder, fail)"),
            ))
        }
    };
    Ok(Fault::Notification {
        target,
        fault,
        spec: spec.to_string(),
    })
}

fn parse_response(spec: &str, kind: &str, target: &str, rest: &[&str]) -> Result<Fault, FaultError> {
    let (method, path) = target.split_once(' ').unwrap_or((target, ""));
    let allowed: &[&str] = match kind {
        "429" | "503" => &["nth", "every", "retry-after"],
        "delay" => &["nth", "every", "ms"],
        _ => &["nth", "every"],
    };
    let p = params(spec, rest, allowed)?;
    let get = |k: &str| p.iter().find(|(pk, _)| *pk == k).map(|(_, v)| *v);
    let occurrence = match (get("nth"), get("every")) {
        (Some(_), Some(_)) => return Err(err(spec, "give nth= or every=, not both")),
        (Some(n), None) => Occurrence::Nth(number(spec, "nth", n)?),
        (None, Some(n)) => Occurrence::Every(number(spec, "every", n)?),
        (None, None) => Occurrence::Nth(1),
    };
    if matches!(occurrence, Occurrence::Nth(0) | Occurrence::Every(0)) {
        return Err(err(spec, "nth and every count from 1"));
    }
    let fault = match kind {
        "429" | "503" | "500" | "404" => ResponseFault::Status {
            status: number(spec, "status", kind)?,
            retry_after: get("retry-after").map(|v| number(spec, "retry-after", v)).transpose()?,
        },
        "delay" => {
            let ms: u64 = number(spec, "ms", get("ms").ok_or_else(|| err(spec, "delay needs ms=N"))?)?;
            ResponseFault::Delay(Duration::from_millis(ms))
        }
        other => {
            return Err(err(
                spec,
                format!("`{other}` is no response fault (429, 503, 500, 404, delay)"),
            ))
        }
    };
    Ok(Fault::Response {
        target: RequestTarget {
            method: method.to_string(),
            template: resource_template(path),
            occurrence,
        },
        fault,
        spec: spec.to_string(),
    })
}

#[cfg(test)]
mod tests;
