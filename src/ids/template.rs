//! Recorded bodies compiled once for rewriting: their bytes as served and, for each
//! string a live rewrite may change, where it sits, the member it sits under and the
//! id tokens in it. A rewrite then copies bytes and splices replacements, instead of
//! walking, cloning and re-serialising the JSON tree on every request.

use serde_json::Value;

use super::token::{scan, Token};
use crate::cassette::Body;
use crate::graph;

/// One string of a template that a rewrite may replace.
#[derive(Debug)]
pub(super) struct Piece {
    /// Byte span in the template's bytes (with its quotes in JSON).
    pub start: usize,
    pub end: usize,
    /// The member it sits under (list items under their list's member).
    pub key: Option<Box<str>>,
    /// The string itself, unescaped.
    pub text: Box<str>,
    pub tokens: Vec<Token>,
}

/// A recorded body ready to be rewritten (`Rewriter::rewrite_template`).
#[derive(Debug, Default)]
pub struct Template {
    pub(super) bytes: Vec<u8>,
    pub(super) pieces: Vec<Piece>,
    /// Replacements are written as JSON strings (else as they are).
    pub(super) json: bool,
}

impl Template {
    /// Compiles a recorded body: the same bytes `Body::to_bytes` gives, and the
    /// strings a rewrite reads (every JSON string outside annotations that has ids or
    /// sits under a member; the whole of a text body).
    pub fn of(body: &Body) -> Template {
        match body {
            Body::Json(v) => {
                let mut t = Template {
                    json: true,
                    ..Template::default()
                };
                t.write(v, None);
                t
            }
            Body::Text(s) => Template {
                bytes: s.as_bytes().to_vec(),
                pieces: vec![Piece {
                    start: 0,
                    end: s.len(),
                    key: None,
                    text: s.as_str().into(),
                    tokens: scan(s),
                }],
                json: false,
            },
            other => Template {
                bytes: other.to_bytes(),
                ..Template::default()
            },
        }
    }

    /// The body as recorded.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Writes `v` (sitting under member `key`) as compact JSON, as serde_json does.
    fn write(&mut self, v: &Value, key: Option<&str>) {
        match v {
            Value::String(s) => {
                let start = self.bytes.len();
                write_json(&mut self.bytes, s);
                let tokens = scan(s);
                if key.is_some() || !tokens.is_empty() {
                    self.pieces.push(Piece {
                        start,
                        end: self.bytes.len(),
                        key: key.map(Into::into),
                        text: s.as_str().into(),
                        tokens,
                    });
                }
            }
            Value::Array(a) => {
                self.bytes.push(b'[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        self.bytes.push(b',');
                    }
                    self.write(x, key);
                }
                self.bytes.push(b']');
            }
            Value::Object(o) => {
                self.bytes.push(b'{');
                for (i, (k, x)) in o.iter().enumerate() {
                    if i > 0 {
                        self.bytes.push(b',');
                    }
                    write_json(&mut self.bytes, k);
                    self.bytes.push(b':');
                    if graph::is_annotation_member(k) {
                        write_json(&mut self.bytes, x);
                    } else {
                        self.write(x, Some(k));
                    }
                }
                self.bytes.push(b'}');
            }
            other => write_json(&mut self.bytes, other),
        }
    }
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
    use std::collections::HashSet;

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
        t.bind(Canon::Guid(1), &rec, Canon::Guid(0xfeed), &live);
        t.bind_string("subject", "default", "weekly \"sync\"");
        t.bind_string("tags", "default", "x");
        t
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn a_template_rewrites_to_the_bytes_and_mints_of_a_tree_rewrite(v in value()) {
            let (seed, stable, scoped) = (Seed::derive([b"t".as_slice()]), HashSet::from([Canon::Guid(3)]), IdTable::default());
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
            let (seed, stable, scoped) = (Seed::derive([b"t".as_slice()]), HashSet::new(), IdTable::default());
            let (mut a, mut b) = (table(), table());
            let want = Rewriter::new(&scoped, &mut a, &stable, &seed).rewrite_str(&s).into_owned();
            let got = Rewriter::new(&scoped, &mut b, &stable, &seed).rewrite_template(&Template::of(&Body::Text(s)));
            prop_assert_eq!(got, want.into_bytes());
        }
    }
}
