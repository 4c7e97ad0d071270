//! Recorded bodies compiled once for rewriting: their bytes as served and, for each
//! string a live rewrite may change, where it sits, the member it sits under and the
//! id tokens in it. A rewrite then copies bytes and splices replacements, instead of
//! walking, cloning and re-serialising the JSON tree on every request.

use serde_json::Value;

use super::token::scan;
use crate::cassette::Body;
use crate::graph;

/// One string of a template that a rewrite may replace.
#[derive(Debug)]
pub(super) struct Piece {
    /// Byte span in the template's bytes (with its quotes in JSON).
    pub start: u32,
    pub end: u32,
    /// Whether it has ids in it (found again when rewriting: keeping the tokens
    /// would cost more memory than the body's bytes).
    pub has_ids: bool,
    /// What few pieces need besides (boxed: a piece is 16 bytes without).
    pub rare: Option<Box<Rare>>,
}

/// The rarer parts of a piece.
#[derive(Debug)]
pub(super) struct Rare {
    /// The member it sits under (list items under their list's member), kept only
    /// when a request may bind the string under it.
    pub key: Option<Box<str>>,
    /// The string, when its bytes are not it as they stand (JSON escapes).
    pub unescaped: Option<Box<str>>,
}

/// Whether a string under a member may be bound whole by some request (a template
/// keeps such strings even without ids in them).
pub type Bindable<'a> = &'a dyn Fn(&str, &str) -> bool;

/// A recorded body ready to be rewritten (`Rewriter::rewrite_template`).
#[derive(Debug, Default)]
pub struct Template {
    pub(super) bytes: Vec<u8>,
    pub(super) pieces: Vec<Piece>,
    /// Replacements are written as JSON strings (else as they are).
    pub(super) json: bool,
}

impl Piece {
    /// The member a request may bind the string under.
    pub fn key(&self) -> Option<&str> {
        self.rare.as_ref().and_then(|r| r.key.as_deref())
    }

    /// The string itself (its bytes are UTF-8 text: a JSON or text body's).
    pub fn text<'t>(&'t self, bytes: &'t [u8], json: bool) -> &'t str {
        if let Some(u) = self.rare.as_ref().and_then(|r| r.unescaped.as_deref()) {
            return u;
        }
        let (a, b) = (self.start as usize, self.end as usize);
        let inner = if json { &bytes[a + 1..b - 1] } else { &bytes[a..b] };
        std::str::from_utf8(inner).unwrap_or_default()
    }
}

impl Template {
    /// Compiles a recorded body: the same bytes `Body::to_bytes` gives, and the
    /// strings a rewrite reads: every JSON string outside annotations with ids in it
    /// or that sits under a member, the whole of a text body.
    pub fn of(body: &Body) -> Template {
        Template::compile(body, &|_, _| true)
    }

    /// [`Template::of`], keeping id-less strings under a member only when
    /// `bindable(member, string)` (a cassette knows which its requests can bind).
    pub fn compile(body: &Body, bindable: Bindable<'_>) -> Template {
        match body {
            Body::Json(v) => {
                let mut t = Template {
                    json: true,
                    ..Template::default()
                };
                t.write(v, None, bindable);
                t.bytes.shrink_to_fit();
                t.pieces.shrink_to_fit();
                t
            }
            Body::Text(s) => Template {
                bytes: s.as_bytes().to_vec(),
                pieces: vec![Piece {
                    start: 0,
                    end: span(s.len()),
                    has_ids: true,
                    rare: None,
                }],
                json: false,
            },
            other => Template {
                bytes: other.to_bytes(),
                ..Template::default()
            },
        }
    }

    /// Whether the body is JSON.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// The JSON value of the body, parsed afresh (for the rare reader that needs it).
    pub fn json_value(&self) -> Option<serde_json::Value> {
        self.json.then(|| serde_json::from_slice(&self.bytes).ok()).flatten()
    }

    /// The body as recorded.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Writes `v` (sitting under member `key`) as compact JSON, as serde_json does.
    fn write(&mut self, v: &Value, key: Option<&str>, bindable: Bindable<'_>) {
        match v {
            Value::String(s) => {
                let start = self.bytes.len();
                crate::jsonstr::push_string(&mut self.bytes, s);
                let has_ids = !scan(s).is_empty();
                let key = key.filter(|k| bindable(k, s));
                if key.is_some() || has_ids {
                    let end = self.bytes.len();
                    let plain = end - start == s.len() + 2;
                    self.pieces.push(Piece {
                        start: span(start),
                        end: span(end),
                        has_ids,
                        rare: (key.is_some() || !plain).then(|| {
                            Box::new(Rare {
                                key: key.map(Into::into),
                                unescaped: (!plain).then(|| s.as_str().into()),
                            })
                        }),
                    });
                }
            }
            Value::Array(a) => {
                self.bytes.push(b'[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        self.bytes.push(b',');
                    }
                    self.write(x, key, bindable);
                }
                self.bytes.push(b']');
            }
            Value::Object(o) => {
                self.bytes.push(b'{');
                for (i, (k, x)) in o.iter().enumerate() {
                    if i > 0 {
                        self.bytes.push(b',');
                    }
                    crate::jsonstr::push_string(&mut self.bytes, k);
                    self.bytes.push(b':');
                    if graph::is_annotation_member(k) {
                        write_json(&mut self.bytes, x);
                    } else {
                        self.write(x, Some(k), bindable);
                    }
                }
                self.bytes.push(b'}');
            }
            other => write_json(&mut self.bytes, other),
        }
    }
}

/// A byte offset as a template keeps it (bodies past 4 GiB are not served anyway).
fn span(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Appends `v` as compact JSON (writing into a `Vec` cannot fail, nor can
/// serialising a JSON value or a string).
pub(super) fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    if let Err(e) = serde_json::to_writer(out, v) {
        tracing::error!("cannot write JSON: {e}");
    }
}

#[cfg(test)]
mod tests {
    use crate::hash::Set;

    use proptest::prelude::*;
    use serde_json::{json, Map};

    use super::*;
    use crate::ids::token::render_guid;
    use crate::ids::{Canon, IdTable, Rewriter, Seed};

    /// A string of id-like and plain parts, including what JSON must escape.
    fn text() -> impl Strategy<Value = String> {
        let part = prop_oneof![
            (0u128..4).prop_map(|v| render_guid(v, false, true)),
            (0u128..4).prop_map(|v| render_guid(v, true, false)),
            Just("19:meeting_Abc-1@thread.v2".to_string()),
            Just("+14255550100".to_string()),
            Just("default".to_string()),
            Just("a \"quoted\" \\ é\n".to_string()),
            "[a-z/:=]{0,6}",
        ];
        prop::collection::vec(part, 0..4).prop_map(|p| p.concat())
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            text().prop_map(Value::from),
            Just(Value::from("default")),
            any::<i64>().prop_map(Value::from),
            Just(Value::Null),
            Just(json!(1.5)),
        ];
        let key = prop_oneof![
            Just("id"),
            Just("subject"),
            Just("@odata.type"),
            Just("resourceUrl"),
            Just("tags")
        ];
        leaf.prop_recursive(4, 24, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..4).prop_map(|kv| Value::Object(
                    kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<Map<_, _>>()
                )),
            ]
        })
    }

    fn table() -> IdTable {
        let mut t = IdTable::default();
        let (rec, live) = (render_guid(1, false, true), render_guid(0xfeed, false, true));
        t.bind(Canon::guid(1), &rec, Canon::guid(0xfeed), &live);
        t.bind_string("subject", "default", "weekly \"sync\"");
        t.bind_string("tags", "default", "x");
        t
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn a_template_rewrites_to_the_bytes_and_mints_of_a_tree_rewrite(v in value()) {
            let (seed, stable, scoped) = (Seed::derive([b"t".as_slice()]), Set::from_iter([Canon::guid(3)]), IdTable::default());
            let (mut a, mut b) = (table(), table());
            let mut tree = Rewriter::new(&scoped, &mut a, &stable, &seed);
            let want = serde_json::to_vec(&tree.rewrite_json(&v)).unwrap();
            let mut fast = Rewriter::new(&scoped, &mut b, &stable, &seed);
            let t = Template::of(&Body::Json(v.clone()));
            let recorded = serde_json::to_vec(&v).unwrap();
            prop_assert_eq!(t.bytes(), recorded.as_slice());
            let got = fast.rewrite_template(&t);
            prop_assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
            prop_assert_eq!(fast.into_minted(), tree.into_minted());
        }

        #[test]
        fn a_text_template_rewrites_like_a_string(s in text()) {
            let (seed, stable, scoped) = (Seed::derive([b"t".as_slice()]), Set::default(), IdTable::default());
            let (mut a, mut b) = (table(), table());
            let want = Rewriter::new(&scoped, &mut a, &stable, &seed).rewrite_str(&s).into_owned();
            let got = Rewriter::new(&scoped, &mut b, &stable, &seed).rewrite_template(&Template::of(&Body::Text(s)));
            prop_assert_eq!(got, want.into_bytes());
        }
    }
}
