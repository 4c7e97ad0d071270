//! The cassette data model: exchanges and notifications with their timing, and bodies
//! kept as parsed JSON, UTF-8 text or raw bytes. Serde forms follow format version 1.

use base64::Engine as _;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::tree::{parse_kept, BodyRef};

/// The interchange format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Ordered `[name, value]` header pairs; duplicates allowed.
pub type Headers = Vec<(String, String)>;

/// A message body: exactly one of parsed JSON, UTF-8 text, other bytes, or nothing.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Body {
    #[default]
    Empty,
    Json(Value),
    Text(String),
    Bytes(Vec<u8>),
}

/// JSON nested deeper than this is kept as text: a stored event wraps its body in a
/// few more levels, and the loader (serde_json) stops at 128.
pub const MAX_JSON_DEPTH: usize = 64;

/// JSON larger than this is kept as text: a parsed value costs many times its size.
pub const MAX_JSON_BYTES: usize = 1024 * 1024;

impl Body {
    /// Classifies raw bytes: JSON when they parse (and are at most `MAX_JSON_BYTES`
    /// long and `MAX_JSON_DEPTH` deep), else text when UTF-8, else bytes.
    pub fn from_bytes(b: &[u8]) -> Body {
        if b.is_empty() {
            return Body::Empty;
        }
        if let Some(v) = parse_kept::<Value>(b) {
            return Body::Json(v);
        }
        match std::str::from_utf8(b) {
            Ok(s) => Body::Text(s.to_string()),
            Err(_) => Body::Bytes(b.to_vec()),
        }
    }

    /// The bytes to send: JSON is written compactly in its recorded key order.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Body::Empty => Vec::new(),
            Body::Json(v) => serde_json::to_vec(v).unwrap_or_default(),
            Body::Text(s) => s.as_bytes().to_vec(),
            Body::Bytes(b) => b.clone(),
        }
    }

    pub fn json(&self) -> Option<&Value> {
        match self {
            Body::Json(v) => Some(v),
            _ => None,
        }
    }

    /// The body as walks read it (see `tree`).
    pub fn view(&self) -> BodyRef<'_, Value> {
        match self {
            Body::Empty => BodyRef::Empty,
            Body::Json(v) => BodyRef::Json(v),
            Body::Text(s) => BodyRef::Text(s),
            Body::Bytes(b) => BodyRef::Bytes(b),
        }
    }
}

/// A recorded request (the bot's REST call, or Graph's callback POST).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    pub method: String,
    /// Path and query, e.g. `/beta/communications/calls/{id}/participants/invite`.
    pub uri: String,
    pub headers: Headers,
    pub body: Body,
}

/// A recorded response; `error` instead of a status when the peer never answered.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Response {
    pub status: Option<u16>,
    pub headers: Headers,
    pub body: Body,
    pub error: Option<String>,
}

/// What an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The bot's request to Graph and Graph's response.
    Exchange,
    /// Graph's callback POST to the bot and the bot's answer.
    Notification,
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: Kind,
    /// Dense, in the order events were written.
    pub seq: u64,
    /// Offset from the cassette start: when the request (or notification) arrived.
    pub at_ms: u64,
    /// Upstream latency (exchanges).
    pub duration_ms: Option<u64>,
    /// The exchange a notification belongs to; `None` = needs no trigger.
    pub follows: Option<u64>,
    pub request: Request,
    pub response: Response,
}

impl Event {
    /// A recorded exchange answered `200` with `body`, for tests.
    #[cfg(test)]
    pub fn test_exchange(seq: u64, method: &str, uri: &str, body: Body) -> Event {
        Event {
            kind: Kind::Exchange,
            seq,
            at_ms: 0,
            duration_ms: Some(0),
            follows: None,
            request: Request {
                method: method.into(),
                uri: uri.into(),
                ..Default::default()
            },
            response: Response {
                status: Some(200),
                body,
                ..Default::default()
            },
        }
    }

    /// When the response was complete, as an offset from the cassette start.
    pub fn done_ms(&self) -> u64 {
        self.at_ms.saturating_add(self.duration_ms.unwrap_or(0))
    }
}

/// Cassette metadata (the interchange envelope minus events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub name: String,
    pub recorded_at: String,
    pub upstream: String,
}

/// A whole cassette.
#[derive(Debug, Clone, PartialEq)]
pub struct Cassette {
    pub meta: Meta,
    pub events: Vec<Event>,
}

// ---- serde forms -------------------------------------------------------------------

fn some_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

fn put_body<M: serde::ser::SerializeMap>(m: &mut M, body: &Body) -> Result<(), M::Error> {
    match body {
        Body::Empty => Ok(()),
        Body::Json(v) => m.serialize_entry("json", v),
        Body::Text(s) => m.serialize_entry("text", s),
        Body::Bytes(b) => m.serialize_entry("base64", &base64::engine::general_purpose::STANDARD.encode(b)),
    }
}

/// The three body members as they were read, before checking that at most one is set.
struct BodyFields {
    json: Option<Value>,
    text: Option<String>,
    base64: Option<String>,
}

impl BodyFields {
    fn into_body<E: serde::de::Error>(self) -> Result<Body, E> {
        match (self.json, self.text, self.base64) {
            (None, None, None) => Ok(Body::Empty),
            (Some(v), None, None) => Ok(Body::Json(v)),
            (None, Some(s), None) => Ok(Body::Text(s)),
            (None, None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b.as_bytes())
                .map(Body::Bytes)
                .map_err(|e| E::custom(format!("`base64` body is not base64: {e}"))),
            _ => Err(E::custom("a body is exactly one of `json`, `text` or `base64`")),
        }
    }
}

impl Serialize for Request {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("method", &self.method)?;
        m.serialize_entry("uri", &self.uri)?;
        m.serialize_entry("headers", &self.headers)?;
        put_body(&mut m, &self.body)?;
        m.end()
    }
}

impl<'de> Deserialize<'de> for Request {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            method: String,
            uri: String,
            #[serde(default)]
            headers: Headers,
            #[serde(default, deserialize_with = "some_value")]
            json: Option<Value>,
            #[serde(default)]
            text: Option<String>,
            #[serde(default)]
            base64: Option<String>,
        }
        let r = Raw::deserialize(d)?;
        if !r.uri.starts_with('/') {
            return Err(D::Error::custom(format!("request uri `{}` must start with `/`", r.uri)));
        }
        let body = BodyFields {
            json: r.json,
            text: r.text,
            base64: r.base64,
        }
        .into_body()?;
        Ok(Request {
            method: r.method,
            uri: r.uri,
            headers: r.headers,
            body,
        })
    }
}

impl Serialize for Response {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        if let Some(st) = self.status {
            m.serialize_entry("status", &st)?;
        }
        if let Some(e) = &self.error {
            m.serialize_entry("error", e)?;
        }
        if self.error.is_none() || !self.headers.is_empty() {
            m.serialize_entry("headers", &self.headers)?;
        }
        put_body(&mut m, &self.body)?;
        m.end()
    }
}

impl<'de> Deserialize<'de> for Response {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            #[serde(default)]
            status: Option<u16>,
            #[serde(default)]
            error: Option<String>,
            #[serde(default)]
            headers: Headers,
            #[serde(default, deserialize_with = "some_value")]
            json: Option<Value>,
            #[serde(default)]
            text: Option<String>,
            #[serde(default)]
            base64: Option<String>,
        }
        let r = Raw::deserialize(d)?;
        if r.status.is_none() && r.error.is_none() {
            return Err(D::Error::custom("a response needs `status` or `error`"));
        }
        if let Some(st) = r.status {
            if !(100..=999).contains(&st) {
                return Err(D::Error::custom(format!("status {st} is not an HTTP status")));
            }
        }
        let body = BodyFields {
            json: r.json,
            text: r.text,
            base64: r.base64,
        }
        .into_body()?;
        Ok(Response {
            status: r.status,
            headers: r.headers,
            body,
            error: r.error,
        })
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("kind", &self.kind)?;
        m.serialize_entry("seq", &self.seq)?;
        m.serialize_entry("at_ms", &self.at_ms)?;
        match self.kind {
            Kind::Exchange => m.serialize_entry("duration_ms", &self.duration_ms.unwrap_or(0))?,
            Kind::Notification => m.serialize_entry("follows", &self.follows)?,
        }
        m.serialize_entry("request", &self.request)?;
        m.serialize_entry("response", &self.response)?;
        m.end()
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            kind: Kind,
            seq: u64,
            at_ms: u64,
            #[serde(default)]
            duration_ms: Option<u64>,
            #[serde(default)]
            follows: Option<u64>,
            request: Request,
            response: Response,
        }
        let r = Raw::deserialize(d)?;
        if r.kind == Kind::Exchange && r.follows.is_some() {
            return Err(D::Error::custom("`follows` belongs to notifications, not exchanges"));
        }
        if r.kind == Kind::Exchange && r.response.status.is_none() {
            return Err(D::Error::custom("an exchange's response needs a `status`"));
        }
        Ok(Event {
            kind: r.kind,
            seq: r.seq,
            at_ms: r.at_ms,
            duration_ms: r.duration_ms,
            follows: r.follows,
            request: r.request,
            response: r.response,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn body_classification() {
        assert_eq!(Body::from_bytes(b""), Body::Empty);
        assert_eq!(Body::from_bytes(br#"{"a":1}"#), Body::Json(json!({"a":1})));
        assert_eq!(Body::from_bytes(b"hello"), Body::Text("hello".into()));
        assert_eq!(Body::from_bytes(&[0xff, 0x00]), Body::Bytes(vec![0xff, 0]));
    }

    #[test]
    fn event_roundtrips_and_json_null_body_survives() {
        let e = Event {
            kind: Kind::Notification,
            seq: 3,
            at_ms: 10,
            duration_ms: None,
            follows: None,
            request: Request {
                method: "POST".into(),
                uri: "/api/calls".into(),
                headers: vec![("a".into(), "b".into())],
                body: Body::Json(Value::Null),
            },
            response: Response {
                status: None,
                headers: vec![],
                body: Body::Empty,
                error: Some("refused".into()),
            },
        };
        let s = serde_json::to_string(&e).unwrap();
        assert!(s.contains(r#""follows":null"#), "{s}");
        let back: Event = serde_json::from_str(&s).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn two_bodies_are_refused() {
        let s = r#"{"method":"GET","uri":"/x","json":{},"text":"a"}"#;
        let err = serde_json::from_str::<Request>(s).unwrap_err();
        assert!(err.to_string().contains("exactly one"), "{err}");
    }
}
