//! Rewriting recorded text for a live session: bound ids become live ids, stable
//! identities stay, every other id is minted (and remembered in the table).

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::mint::Seed;
use super::table::IdTable;
use super::template::Template;
use super::token::{render_id, scan, splice, splice_to, Canon, IdText, Token};
use crate::cassette::Body;
use crate::graph;
use crate::hash::Set;

/// Applies a session's table to recorded text: bound ids become live ids, stable
/// identities stay, every other id is minted (and remembered in the table).
pub struct Rewriter<'a> {
    /// Request-scoped bindings (those that would break the bijection), checked first.
    scoped: &'a IdTable,
    table: &'a mut IdTable,
    stable: &'a Set<Canon>,
    seed: &'a Seed,
    /// Live ids minted during this rewrite, for the session index.
    minted: Vec<Canon>,
}

impl<'a> Rewriter<'a> {
    pub fn new(scoped: &'a IdTable, table: &'a mut IdTable, stable: &'a Set<Canon>, seed: &'a Seed) -> Self {
        Rewriter {
            scoped,
            table,
            stable,
            seed,
            minted: Vec::new(),
        }
    }

    /// The session seed everything minted derives from.
    pub fn seed(&self) -> &Seed {
        self.seed
    }

    /// Live ids minted so far in this rewrite.
    pub fn minted(&self) -> &[Canon] {
        &self.minted
    }

    /// The live ids this rewrite minted, for the session index.
    pub fn into_minted(self) -> Vec<Canon> {
        self.minted
    }

    fn replacement(&mut self, tok: &Token, text: &str) -> Option<IdText> {
        let bound = match self.scoped.get(&tok.canon) {
            Some(b) => b,
            None => match self.table.get(&tok.canon) {
                Some(b) => b,
                None if self.stable.contains(&tok.canon) => return None,
                None => {
                    let (b, fresh) = self.table.mint(self.seed, &tok.canon);
                    if fresh {
                        self.minted.push(b.live.clone());
                    }
                    b
                }
            },
        };
        if let Some(e) = bound.echo.as_ref().filter(|e| *e.rec_text == *text) {
            return Some(IdText::new(&e.live_text));
        }
        if bound.live == tok.canon {
            return None;
        }
        Some(render_id(&bound.live, tok.form))
    }

    /// Rewrites the ids inside one string.
    pub fn rewrite_str<'s>(&mut self, s: &'s str) -> Cow<'s, str> {
        self.rewrite_scanned(s, &scan(s))
    }

    /// [`Rewriter::rewrite_str`] with the ids of `s` already found (`toks`, by `scan`).
    pub fn rewrite_scanned<'s>(&mut self, s: &'s str, toks: &[Token]) -> Cow<'s, str> {
        splice(s, toks, |t, text| self.replacement(t, text))
    }

    fn member_string(&self, key: &str, s: &str) -> Option<String> {
        self.scoped
            .string(key, s)
            .or_else(|| self.table.string(key, s))
            .map(str::to_string)
    }

    /// Rewrites every string in a JSON value; `@odata.type` values are never touched.
    pub fn rewrite_json(&mut self, v: &Value) -> Value {
        self.rewrite_member(v, None)
    }

    /// `v` sits under member `key` (list items stay under their list's member).
    fn rewrite_member(&mut self, v: &Value, key: Option<&str>) -> Value {
        match v {
            Value::String(s) => match key.and_then(|k| self.member_string(k, s)) {
                Some(live) => Value::String(live),
                None => Value::String(self.rewrite_str(s).into_owned()),
            },
            Value::Array(a) => Value::Array(a.iter().map(|x| self.rewrite_member(x, key)).collect()),
            Value::Object(o) => {
                let mut m = Map::with_capacity(o.len());
                for (k, x) in o {
                    let nv = if graph::is_annotation_member(k) {
                        x.clone()
                    } else {
                        self.rewrite_member(x, Some(k))
                    };
                    m.insert(k.clone(), nv);
                }
                Value::Object(m)
            }
            other => other.clone(),
        }
    }

    /// Rewrites a compiled recorded body: the bytes `rewrite_body(..).to_bytes()`
    /// gives, minting in the same order, without rebuilding the JSON.
    pub fn rewrite_template(&mut self, t: &Template) -> Vec<u8> {
        let mut out = Vec::with_capacity(t.bytes.len() + 64);
        let mut last = 0;
        // each rewritten piece is written here first (one buffer for all of them)
        let mut piece = String::new();
        for p in &t.pieces {
            let text = p.text(&t.bytes, t.json);
            piece.clear();
            let changed = match p.key().and_then(|k| self.member_string(k, text)) {
                Some(l) => {
                    piece.push_str(&l);
                    true
                }
                None if p.has_ids => {
                    let toks = scan(text);
                    splice_to(&mut piece, text, &toks, |tok, text| self.replacement(tok, text))
                }
                None => false,
            };
            if !changed {
                continue;
            }
            let live = piece.as_str();
            out.extend_from_slice(&t.bytes[last..p.start as usize]);
            if t.json {
                crate::jsonstr::push_string(&mut out, live);
            } else {
                out.extend_from_slice(live.as_bytes());
            }
            last = p.end as usize;
        }
        out.extend_from_slice(&t.bytes[last..]);
        out
    }

    /// Rewrites a recorded body (JSON and text; other bytes stay as recorded).
    pub fn rewrite_body(&mut self, b: &Body) -> Body {
        match b {
            Body::Json(v) => Body::Json(self.rewrite_json(v)),
            Body::Text(t) => Body::Text(self.rewrite_str(t).into_owned()),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::table::Pairing;
    use crate::ids::token::render_guid;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn an_id_written_as_recorded_comes_back_as_the_bot_wrote_it_whatever_the_spellings() {
        let seed = Seed::derive([b"s".as_slice()]);
        let recs = [
            "f2fa86af-3c51-4bc2-8fc0-475452d9764f",
            "F2FA86AF-3C51-4BC2-8FC0-475452D9764F",
            "f2fa86af3c514bc28fc0475452d9764f",
            "F2fa86af-3c51-4bc2-8fc0-475452d9764f",
        ];
        let lives = [
            "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
            "0B1C2D3E-4F50-6172-8394-A5B6C7D8E9F0",
            "0B1C2D3E4F5061728394A5B6C7D8E9F0",
            "0b1C2d3e-4f50-6172-8394-a5b6c7d8e9f0",
        ];
        for (i, rec) in recs.into_iter().enumerate() {
            for (j, live) in lives.into_iter().enumerate() {
                let mut table = IdTable::default();
                let mut p = Pairing::default();
                p.strs(rec, live, None, false);
                for pair in &p.tokens {
                    table.bind(pair.recorded.clone(), pair.rec_text, pair.live.clone(), pair.live_text);
                }
                // both written in one plain form (lower or upper, dashed) keeps no spellings
                let plain = i == j && i < 2;
                assert_eq!(table.iter().all(|(_, b)| b.echo.is_none()), plain, "{rec} -> {live}");
                let (stable, scoped) = (Set::default(), IdTable::default());
                let mut rw = Rewriter::new(&scoped, &mut table, &stable, &seed);
                assert_eq!(rw.rewrite_str(rec), live, "{rec} -> {live}");
                // another spelling of the recorded id: the live value in that spelling's form
                let upper = rec.to_ascii_uppercase();
                if upper != rec {
                    let Canon::Guid(v) = p.tokens[0].live else {
                        panic!("a GUID")
                    };
                    assert_eq!(rw.rewrite_str(&upper), render_guid(v.get(), true, rec.len() == 36));
                }
            }
        }
    }

    #[test]
    fn echoed_values_come_back_as_sent() {
        let seed = Seed::derive([b"s".as_slice()]);
        let mut table = IdTable::default();
        let rec = json!({"clientContext": "f2fa86af-3c51-4bc2-8fc0-475452d9764f"});
        let live = json!({"clientContext": "0B1C2D3E4F5061728394A5B6C7D8E9F0"});
        let mut p = Pairing::default();
        p.json(&rec, &live, None);
        for pair in &p.tokens {
            table.bind(pair.recorded.clone(), pair.rec_text, pair.live.clone(), pair.live_text);
        }
        let stable = Set::default();
        let scoped = IdTable::default();
        let mut rw = Rewriter::new(&scoped, &mut table, &stable, &seed);
        let out = rw.rewrite_json(&json!({
            "clientContext": "f2fa86af-3c51-4bc2-8fc0-475452d9764f",
            "other": "F2FA86AF-3C51-4BC2-8FC0-475452D9764F",
            "id": "eec3812a-fdc3-4fb4-825c-a06c9f35414e"
        }));
        assert_eq!(out["clientContext"], "0B1C2D3E4F5061728394A5B6C7D8E9F0");
        assert_eq!(out["other"], "0B1C2D3E-4F50-6172-8394-A5B6C7D8E9F0");
        assert_ne!(out["id"], "eec3812a-fdc3-4fb4-825c-a06c9f35414e");
        assert_eq!(rw.minted().len(), 1);
    }

    #[test]
    fn differing_scalars_are_bound_only_under_their_member() {
        let seed = Seed::derive([b"m".as_slice()]);
        let rec = json!({"subject": "default", "callbackUri": "https://bot.contoso.com/api/calls"});
        let live = json!({"subject": "weekly", "callbackUri": "https://127.0.0.1:9/cb"});
        let mut p = Pairing::default();
        p.json(&rec, &live, None);
        let mut table = IdTable::default();
        for (k, r, l) in &p.strings {
            table.bind_string(k, r, l);
        }
        let (stable, scoped) = (Set::default(), IdTable::default());
        let mut rw = Rewriter::new(&scoped, &mut table, &stable, &seed);
        let out = rw.rewrite_json(&json!({
            "subject": "default",
            "endpointType": "default",
            "callbackUri": "https://bot.contoso.com/api/calls"
        }));
        assert_eq!(out["subject"], "weekly");
        assert_eq!(out["endpointType"], "default", "another member keeps its value");
        assert_eq!(out["callbackUri"], "https://127.0.0.1:9/cb");
        // list items stay under their list's member
        let (rec, live) = (
            json!({"requestedModalities": ["audio"]}),
            json!({"requestedModalities": ["video"]}),
        );
        let mut p = Pairing::default();
        p.json(&rec, &live, None);
        for (k, r, l) in &p.strings {
            table.bind_string(k, r, l);
        }
        let mut rw = Rewriter::new(&scoped, &mut table, &stable, &seed);
        let out = rw.rewrite_json(&json!({"requestedModalities": ["audio"], "mediaType": "audio"}));
        assert_eq!(out, json!({"requestedModalities": ["video"], "mediaType": "audio"}));
    }
    proptest! {

        #[test]
        fn rewriting_with_an_identity_table_changes_nothing(v in any::<u128>(), pre in "[ a-z/:=]{0,10}") {
            let g = render_guid(v, false, true);
            let s = format!("{pre}{g}");
            let mut table = IdTable::default();
            table.bind(Canon::guid(v), &g, Canon::guid(v), &g);
            let stable = Set::default();
            let scoped = IdTable::default();
            let seed = Seed::derive([b"p".as_slice()]);
            let mut rw = Rewriter::new(&scoped, &mut table, &stable, &seed);
            let out = rw.rewrite_str(&s).into_owned();
            prop_assert_eq!(out, s);
        }
    }
}
