//! The JSON interchange (format version 1): parse with file/line/column errors and full
//! validation, and write in a stable, reviewable layout (bodies compact, in key order).

use std::io::Read as _;
use std::path::Path;

use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{validate_name, Cassette, CassetteError, Event, Kind, Meta, StoreError, FORMAT_VERSION};

/// Why an event handler stopped a streamed parse.
#[derive(Debug)]
pub enum Stop {
    /// The event breaks a rule of the format.
    Invalid(String),
    /// The event holds a secret.
    Secret(String),
    /// Storing it failed.
    Store(StoreError),
}

/// Hex SHA-256 of a file's bytes: decides whether a file changed since its import.
pub fn content_hash(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of `d` (digests as the store and files show them).
pub(crate) fn hex(d: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(d.len() * 2);
    for b in d {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// The structural rules every cassette keeps, checked one event at a time: dense
/// ordered seqs, and `follows` pointing at an exchange (earlier or later: a
/// notification is stored when it arrives, which may be before its exchange's
/// response). Memory: one bit per event, plus the forward `follows`.
#[derive(Debug, Default)]
pub struct Checker {
    count: u64,
    exchanges: Vec<u64>,
    forward: Vec<(u64, u64)>,
}

impl Checker {
    fn is_exchange(&self, seq: u64) -> bool {
        let (w, b) = ((seq / 64) as usize, seq % 64);
        self.exchanges.get(w).is_some_and(|x| x & (1 << b) != 0)
    }

    pub fn event(&mut self, e: &Event) -> Result<(), String> {
        let i = self.count;
        if e.seq != i {
            return Err(format!(
                "event #{i} has seq {}, expected {i} (seqs are dense, in order)",
                e.seq
            ));
        }
        if i % 64 == 0 {
            self.exchanges.push(0);
        }
        if e.kind == Kind::Exchange {
            if let Some(w) = self.exchanges.last_mut() {
                *w |= 1 << (i % 64);
            }
        }
        match e.follows {
            Some(f) if f < i && !self.is_exchange(f) => return Err(not_an_exchange(i, f)),
            Some(f) if f >= i => self.forward.push((i, f)),
            _ => {}
        }
        self.count += 1;
        Ok(())
    }

    /// Checks what could only be checked at the end.
    pub fn finish(&self) -> Result<u64, String> {
        for &(i, f) in &self.forward {
            if f >= self.count || !self.is_exchange(f) {
                return Err(not_an_exchange(i, f));
            }
        }
        Ok(self.count)
    }
}

fn not_an_exchange(i: u64, f: u64) -> String {
    format!("event #{i} follows seq {f}, which is not an exchange of this cassette")
}

/// Structural rules of a whole cassette (see [`Checker`]).
pub fn validate(c: &Cassette) -> Result<(), String> {
    let mut ch = Checker::default();
    for e in &c.events {
        ch.event(e)?;
    }
    ch.finish().map(|_| ())
}

type OnEvent<'a> = &'a mut dyn FnMut(Event) -> Result<(), Stop>;

/// The envelope, read member by member; `events` is handed on one event at a time.
struct Envelope<'a> {
    on_event: OnEvent<'a>,
    stop: &'a mut Option<Stop>,
}

#[derive(Default)]
struct Head {
    version: Option<u32>,
    name: Option<String>,
    recorded_at: String,
    upstream: String,
    events: bool,
}

const FIELDS: &[&str] = &["graphvcr", "name", "recorded_at", "upstream", "events"];

impl<'de> DeserializeSeed<'de> for Envelope<'_> {
    type Value = Head;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Head, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Envelope<'_> {
    type Value = Head;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a graphvcr cassette object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Head, A::Error> {
        let mut head = Head::default();
        while let Some(k) = m.next_key::<String>()? {
            match k.as_str() {
                "graphvcr" => head.version = Some(m.next_value()?),
                "name" => head.name = Some(m.next_value()?),
                "recorded_at" => head.recorded_at = m.next_value()?,
                "upstream" => head.upstream = m.next_value()?,
                "events" => {
                    m.next_value_seed(Events {
                        on_event: &mut *self.on_event,
                        stop: &mut *self.stop,
                    })?;
                    head.events = true;
                }
                other => return Err(A::Error::unknown_field(other, FIELDS)),
            }
        }
        for (present, field) in [
            (head.version.is_some(), "graphvcr"),
            (head.name.is_some(), "name"),
            (head.events, "events"),
        ] {
            if !present {
                return Err(A::Error::missing_field(field));
            }
        }
        Ok(head)
    }
}

struct Events<'a> {
    on_event: OnEvent<'a>,
    stop: &'a mut Option<Stop>,
}

impl<'de> DeserializeSeed<'de> for Events<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Events<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
        while let Some(ev) = s.next_element::<Event>()? {
            if let Err(stop) = (self.on_event)(ev) {
                *self.stop = Some(stop);
                return Err(A::Error::custom("stopped"));
            }
        }
        Ok(())
    }
}

/// Streams a cassette, validating each event before handing it to `on_event`; the
/// metadata and the number of events come back at the end.
fn stream<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    file: &str,
    on_event: OnEvent<'_>,
) -> Result<(Meta, u64), CassetteError> {
    let mut checker = Checker::default();
    let mut stop = None;
    let mut checked = |e: Event| {
        checker.event(&e).map_err(Stop::Invalid)?;
        on_event(e)
    };
    let env = Envelope {
        on_event: &mut checked,
        stop: &mut stop,
    };
    let parsed = env.deserialize(&mut de).and_then(|h| de.end().map(|_| h));
    let invalid = |message: String| CassetteError::Invalid {
        file: file.to_string(),
        message,
    };
    let head = match (parsed, stop) {
        (Ok(h), _) => h,
        (Err(_), Some(Stop::Store(e))) => return Err(CassetteError::Store(e)),
        (Err(_), Some(Stop::Secret(finding))) => {
            return Err(CassetteError::SecretFound {
                name: file.to_string(),
                finding,
            })
        }
        (Err(e), Some(Stop::Invalid(message))) => return Err(parse_error(file, &e, message)),
        (Err(e), None) => {
            let message = e.to_string().split(" at line ").next().unwrap_or_default().to_string();
            return Err(parse_error(file, &e, message));
        }
    };
    if head.version != Some(FORMAT_VERSION) {
        return Err(invalid(format!(
            "format version {} is not supported (this graphvcr reads version {FORMAT_VERSION})",
            head.version.unwrap_or_default()
        )));
    }
    let name = head.name.unwrap_or_default();
    validate_name(&name).map_err(|e| invalid(e.to_string()))?;
    let count = checker.finish().map_err(invalid)?;
    let meta = Meta {
        name,
        recorded_at: head.recorded_at,
        upstream: head.upstream,
    };
    Ok((meta, count))
}

fn parse_error(file: &str, e: &serde_json::Error, message: String) -> CassetteError {
    CassetteError::Parse {
        file: file.to_string(),
        line: e.line(),
        column: e.column(),
        message,
    }
}

/// Parses and validates a cassette held in memory; `file` names it in errors.
pub fn parse(bytes: &[u8], file: &str) -> Result<Cassette, CassetteError> {
    let mut events = Vec::new();
    let (meta, _) = stream(serde_json::Deserializer::from_slice(bytes), file, &mut |e| {
        events.push(e);
        Ok(())
    })?;
    Ok(Cassette { meta, events })
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
}

impl<R: std::io::Read> std::io::Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n.min(buf.len())]);
        Ok(n)
    }
}

fn open(path: &Path) -> Result<std::io::BufReader<Hashing<std::fs::File>>, CassetteError> {
    let f = std::fs::File::open(path).map_err(|source| CassetteError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(std::io::BufReader::with_capacity(
        64 * 1024,
        Hashing {
            inner: f,
            hash: Sha256::new(),
        },
    ))
}

/// Streams a cassette file: one event in memory at a time, each validated and handed
/// to `on_event`. Returns the metadata, the number of events and the file's hash.
pub fn stream_file(path: &Path, on_event: OnEvent<'_>) -> Result<(Meta, u64, String), CassetteError> {
    let mut r = open(path)?;
    let shown = path.display().to_string();
    let (meta, n) = stream(serde_json::Deserializer::from_reader(&mut r), &shown, on_event)?;
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    Ok((meta, n, hex(&r.into_inner().hash.finalize())))
}

/// A file's content hash, read in chunks.
pub fn file_hash(path: &Path) -> Result<String, CassetteError> {
    let mut r = open(path)?;
    std::io::copy(&mut r, &mut std::io::sink()).map_err(|source| CassetteError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(hex(&r.into_inner().hash.finalize()))
}

/// Every `*.json` file in `dir` with its `file_hash`, sorted by path (none when `dir`
/// does not exist). Replay runs this beside opening the store: both read everything.
pub fn hash_files(dir: &Path) -> Result<Vec<(std::path::PathBuf, String)>, CassetteError> {
    let io = |source| CassetteError::Io {
        path: dir.display().to_string(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut files: Vec<std::path::PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files.into_iter().map(|f| file_hash(&f).map(|h| (f, h))).collect()
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
