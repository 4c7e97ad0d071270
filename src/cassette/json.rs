//! The JSON interchange (format version 1): parse with file/line/column errors and full
//! validation, and write in a stable, reviewable layout (bodies compact, in key order).

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{validate_name, Cassette, CassetteError, Event, Kind, Meta, FORMAT_VERSION};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    graphvcr: u32,
    name: String,
    #[serde(default)]
    recorded_at: String,
    #[serde(default)]
    upstream: String,
    events: Vec<Event>,
}

/// Hex SHA-256 of a file's bytes: decides whether a file changed since its import.
pub fn content_hash(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses and validates a cassette; `file` names it in errors.
pub fn parse(bytes: &[u8], file: &str) -> Result<Cassette, CassetteError> {
    let env: Envelope = serde_json::from_slice(bytes).map_err(|e| CassetteError::Parse {
        file: file.to_string(),
        line: e.line(),
        column: e.column(),
        message: e.to_string().split(" at line ").next().unwrap_or_default().to_string(),
    })?;
    let invalid = |message: String| CassetteError::Invalid {
        file: file.to_string(),
        message,
    };
    if env.graphvcr != FORMAT_VERSION {
        return Err(invalid(format!(
            "format version {} is not supported (this graphvcr reads version {FORMAT_VERSION})",
            env.graphvcr
        )));
    }
    validate_name(&env.name).map_err(|e| invalid(e.to_string()))?;
    let cassette = Cassette {
        meta: Meta {
            name: env.name,
            recorded_at: env.recorded_at,
            upstream: env.upstream,
        },
        events: env.events,
    };
    validate(&cassette).map_err(invalid)?;
    Ok(cassette)
}

/// Structural rules every cassette keeps: dense ordered seqs and `follows` pointing
/// at an exchange.
pub fn validate(c: &Cassette) -> Result<(), String> {
    for (i, e) in c.events.iter().enumerate() {
        if e.seq != i as u64 {
            return Err(format!(
                "event #{i} has seq {}, expected {i} (seqs are dense, in order)",
                e.seq
            ));
        }
        if let Some(f) = e.follows {
            match c.events.get(f as usize) {
                Some(t) if t.kind == Kind::Exchange => {}
                _ => {
                    return Err(format!(
                        "event #{i} follows seq {f}, which is not an exchange of this cassette"
                    ))
                }
            }
        }
    }
    Ok(())
}

/// Reads and parses a cassette file.
pub fn read_file(path: &Path) -> Result<(Cassette, String), CassetteError> {
    let bytes = std::fs::read(path).map_err(|source| CassetteError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let c = parse(&bytes, &path.display().to_string())?;
    Ok((c, content_hash(&bytes)))
}

/// Writes a cassette in the interchange layout.
pub fn to_string(c: &Cassette) -> String {
    let mut out = String::with_capacity(4096);
    out.push_str("{\n");
    let head = [
        ("graphvcr", Value::from(FORMAT_VERSION)),
        ("name", Value::from(c.meta.name.as_str())),
        ("recorded_at", Value::from(c.meta.recorded_at.as_str())),
        ("upstream", Value::from(c.meta.upstream.as_str())),
    ];
    for (k, v) in head {
        out.push_str(&format!("  {}: {},\n", quote(k), v));
    }
    out.push_str("  \"events\": [");
    for (i, e) in c.events.iter().enumerate() {
        out.push_str(if i == 0 { "\n" } else { ",\n" });
        let v = serde_json::to_value(e).unwrap_or(Value::Null);
        write_pretty(&v, 2, &mut out);
    }
    out.push_str(if c.events.is_empty() { "]\n}\n" } else { "\n  ]\n}\n" });
    out
}

/// Writes the file atomically (temp file + rename) and returns its content hash.
pub fn write_file(c: &Cassette, path: &Path) -> Result<String, CassetteError> {
    let text = to_string(c);
    let io = |source| CassetteError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text.as_bytes()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(content_hash(text.as_bytes()))
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// Pretty down to messages; headers and bodies stay on one line each.
fn write_pretty(v: &Value, depth: usize, out: &mut String) {
    let pad = |d: usize| "  ".repeat(d);
    match v {
        Value::Object(o) if !o.is_empty() => {
            out.push_str(&pad(depth));
            out.push_str("{\n");
            for (i, (k, x)) in o.iter().enumerate() {
                out.push_str(&pad(depth + 1));
                out.push_str(&quote(k));
                out.push_str(": ");
                if matches!(x, Value::Object(_)) && k != "json" {
                    let mut inner = String::new();
                    write_pretty(x, depth + 1, &mut inner);
                    out.push_str(inner.trim_start());
                } else {
                    out.push_str(&serde_json::to_string(x).unwrap_or_default());
                }
                out.push_str(if i + 1 < o.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(depth));
            out.push('}');
        }
        other => {
            out.push_str(&pad(depth));
            out.push_str(&serde_json::to_string(other).unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cassette::{Body, Request, Response};
    use serde_json::json;

    fn sample() -> Cassette {
        Cassette {
            meta: Meta {
                name: "t".into(),
                recorded_at: "2026-11-27T10:00:00Z".into(),
                upstream: "https://graph.microsoft.com".into(),
            },
            events: vec![Event {
                kind: Kind::Exchange,
                seq: 0,
                at_ms: 0,
                duration_ms: Some(5),
                follows: None,
                request: Request {
                    method: "POST".into(),
                    uri: "/beta/communications/calls".into(),
                    headers: vec![("content-type".into(), "application/json".into())],
                    body: Body::Json(json!({"z": 1, "a": [1, 2]})),
                },
                response: Response {
                    status: Some(201),
                    ..Default::default()
                },
            }],
        }
    }

    #[test]
    fn roundtrip_keeps_key_order() {
        let c = sample();
        let text = to_string(&c);
        assert!(text.contains(r#""json": {"z":1,"a":[1,2]}"#), "{text}");
        let back = parse(text.as_bytes(), "t.json").unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err = parse(b"{\n  \"graphvcr\": 1,\n  \"name\": }", "bad.json").unwrap_err();
        match err {
            CassetteError::Parse { line, column, .. } => assert_eq!((line, column), (3, 11)),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn bad_seq_and_follows_are_refused() {
        let mut c = sample();
        c.events[0].seq = 4;
        assert!(validate(&c).is_err());
        let mut c = sample();
        let mut n = c.events[0].clone();
        n.kind = Kind::Notification;
        n.seq = 1;
        n.follows = Some(7);
        c.events.push(n);
        assert!(validate(&c).unwrap_err().contains("follows seq 7"));
    }
}
