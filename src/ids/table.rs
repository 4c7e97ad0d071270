//! The per-session binding table (recorded id -> live id, a bijection over canonical
//! values, plus member-scoped string bindings) and the pairing walk that proposes
//! bindings from a recorded request beside a live one.

use crate::hash::Map;

use serde_json::Value;

use super::mint::{mint, Seed};
use super::token::{scan, written_form, Canon, Token, Tokens};
use crate::cassette::{Node, Tree};
use crate::graph;

/// One recorded id's live counterpart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bound {
    pub live: Canon,
    /// How the recorded request and the bot wrote the id, kept only when writing the
    /// live value in the recorded spelling's form would not give the bot's spelling
    /// (never for minted ids). Boxed: it is rare, and a session's table holds a
    /// binding per id inline (64 bytes with its key instead of 112).
    pub echo: Option<Box<Echo>>,
    pub minted: bool,
}

/// The recorded spelling of a bound id and the bot's: an id written exactly as the
/// recording did is written back exactly as the bot did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Echo {
    pub rec_text: Box<str>,
    pub live_text: Box<str>,
}

impl Echo {
    /// What a binding must keep of the two spellings: nothing when both are their
    /// values written in one form (the usual case: no allocation), or when either is
    /// unknown (empty).
    fn of(recorded: &Canon, rec_text: &str, live: &Canon, live_text: &str) -> Option<Box<Echo>> {
        if rec_text.is_empty() || live_text.is_empty() {
            return None;
        }
        let plain = written_form(recorded, rec_text).is_some_and(|f| written_form(live, live_text) == Some(f));
        (!plain).then(|| {
            Box::new(Echo {
                rec_text: rec_text.into(),
                live_text: live_text.into(),
            })
        })
    }
}

/// What happened to a proposed binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindOutcome {
    New,
    Same,
    /// It would break the bijection: the caller keeps it request-scoped.
    Conflict,
}

/// A bijection recorded -> live over canonical ids, plus whole-string bindings for
/// non-id scalars that the bot sent differently (a `callbackUri`): those apply only
/// under the member name they were sent in.
#[derive(Clone, Debug, Default)]
pub struct IdTable {
    fwd: Map<Canon, Bound>,
    rev: Map<Canon, Canon>,
    /// Member -> recorded scalar -> live scalar.
    strings: Map<Box<str>, Map<Box<str>, Box<str>>>,
}

impl IdTable {
    pub fn get(&self, recorded: &Canon) -> Option<&Bound> {
        self.fwd.get(recorded)
    }

    /// Room for `n` bindings in an empty table at once (a session's first request binds
    /// its ids one by one: without this each map grew two or three times).
    pub fn reserve_first(&mut self, n: usize) {
        if self.fwd.is_empty() {
            self.fwd.reserve(n);
            self.rev.reserve(n);
        }
    }

    /// The live value for a recorded scalar under member `key`.
    pub fn string(&self, key: &str, recorded: &str) -> Option<&str> {
        self.strings.get(key)?.get(recorded).map(|s| &**s)
    }

    /// Whether `recorded -> live` can join the table, and whether it is already there.
    pub fn check(&self, recorded: &Canon, live: &Canon) -> BindOutcome {
        match (self.fwd.get(recorded), self.rev.get(live)) {
            (Some(b), _) if &b.live == live => BindOutcome::Same,
            (None, None) => BindOutcome::New,
            _ => BindOutcome::Conflict,
        }
    }

    /// Inserts a binding; conflicts are refused (the caller decides where they go).
    pub fn bind(&mut self, recorded: Canon, rec_text: &str, live: Canon, live_text: &str) -> BindOutcome {
        let outcome = self.check(&recorded, &live);
        match outcome {
            BindOutcome::New => {
                self.rev.insert(live.clone(), recorded.clone());
                let echo = Echo::of(&recorded, rec_text, &live, live_text);
                self.fwd.insert(
                    recorded,
                    Bound {
                        live,
                        echo,
                        minted: false,
                    },
                );
            }
            BindOutcome::Same => {
                // the latest request decides how an echo is written
                if let Some(b) = self.fwd.get_mut(&recorded) {
                    let kept = b
                        .echo
                        .as_ref()
                        .is_some_and(|e| *e.rec_text == *rec_text && *e.live_text == *live_text);
                    if !kept {
                        b.echo = Echo::of(&recorded, rec_text, &b.live, live_text);
                    }
                }
            }
            BindOutcome::Conflict => {}
        }
        outcome
    }

    /// Binds a recorded scalar under member `key` to a live one (last one wins).
    pub fn bind_string(&mut self, key: &str, recorded: &str, live: &str) {
        self.strings
            .entry(key.into())
            .or_default()
            .insert(recorded.into(), live.into());
    }

    /// The live id for `recorded`, minting one (deterministically) when unbound.
    /// Returns the binding and whether it was minted just now.
    pub fn mint(&mut self, seed: &Seed, recorded: &Canon) -> (&Bound, bool) {
        if self.fwd.contains_key(recorded) {
            return (&self.fwd[recorded], false);
        }
        let mut attempt = 0;
        let live = loop {
            let cand = mint(seed, recorded, attempt);
            // a 128-bit (or digit/letter) space: a clash twice in a row means the
            // recorded value leaves nothing to vary; keep it rather than spin
            if (&cand != recorded && !self.rev.contains_key(&cand)) || attempt >= 16 {
                break cand;
            }
            attempt += 1;
        };
        self.rev.insert(live.clone(), recorded.clone());
        let b = self.fwd.entry(recorded.clone()).or_insert(Bound {
            live,
            echo: None,
            minted: true,
        });
        (b, true)
    }

    /// All bindings, for reports.
    pub fn iter(&self) -> impl Iterator<Item = (&Canon, &Bound)> {
        self.fwd.iter()
    }
}

/// Where a paired token was found, which decides whether it may select a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair<'a> {
    pub recorded: Canon,
    pub rec_text: &'a str,
    pub live: Canon,
    pub live_text: &'a str,
    /// In the path, or under a call-scoped member (`replacesCallId`, ...).
    pub call_scoped: bool,
}

/// What walking a recorded request beside a live one found (borrowing both).
#[derive(Debug, Default, Clone)]
pub struct Pairing<'a> {
    pub tokens: Vec<Pair<'a>>,
    /// Non-id scalars that differ, by member: (member, recorded, live).
    pub strings: Vec<(&'a str, &'a str, &'a str)>,
}

impl<'a> Pairing<'a> {
    /// Pairs the tokens of two strings at the same position. A scalar under a member
    /// `key` whose text differs beyond its ids is bound whole, for that member only.
    pub fn strs(&mut self, rec: &'a str, live: &'a str, key: Option<&'a str>, call_scoped: bool) {
        let tr = scan(rec);
        let same = rec == live;
        if tr.is_empty() {
            // nothing to pair: only a member's differing text is bound (whatever the
            // live text holds, it differs from one without ids exactly when unequal)
            if let (false, Some(k)) = (same, key) {
                self.strings.push((k, rec, live));
            }
            return;
        }
        // the same text (most strings): scanned once, each id paired with itself
        let scanned_live = if same { Tokens::new() } else { scan(live) };
        let tl = if same { &tr } else { &scanned_live };
        if tr.len() == tl.len() {
            for (a, b) in tr.iter().zip(tl) {
                self.tokens.push(Pair {
                    recorded: a.canon.clone(),
                    rec_text: &rec[a.start..a.end],
                    live: b.canon.clone(),
                    live_text: &live[b.start..b.end],
                    call_scoped,
                });
            }
        }
        let differs = !same && (tr.len() != tl.len() || !same_gaps(rec, &tr, live, tl));
        if let (true, Some(k)) = (differs, key) {
            self.strings.push((k, rec, live));
        }
    }

    /// Walks a recorded JSON value beside a live one (objects by key, arrays by index).
    pub fn json<T: Tree>(&mut self, rec: &'a Value, live: &'a T, key: Option<&'a str>) {
        match (rec, live.node()) {
            (Value::String(a), Node::Str(b)) => {
                self.strs(a, b, key, key.is_some_and(graph::is_call_scoped_member));
            }
            (Value::Array(a), Node::Arr(b)) => {
                for (x, y) in a.iter().zip(b) {
                    self.json(x, y, key);
                }
            }
            (Value::Object(a), Node::Obj(..)) => {
                for (k, x) in a {
                    if graph::is_annotation_member(k) {
                        continue;
                    }
                    if let Some(y) = live.get(k) {
                        self.json(x, y, Some(k));
                    }
                }
            }
            _ => {}
        }
    }
}

/// The text of `s` outside its tokens, gap by gap.
fn gaps<'s>(s: &'s str, toks: &'s [Token]) -> impl Iterator<Item = &'s str> {
    let starts = std::iter::once(0).chain(toks.iter().map(|t| t.end));
    let ends = toks.iter().map(|t| t.start).chain(std::iter::once(s.len()));
    starts.zip(ends).map(move |(a, b)| &s[a..b])
}

/// Whether two strings with as many tokens read the same outside them.
fn same_gaps(a: &str, ta: &[Token], b: &str, tb: &[Token]) -> bool {
    gaps(a, ta).eq(gaps(b, tb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binding_is_small() {
        // a session's table holds one per id inline
        assert_eq!(std::mem::size_of::<Canon>(), 24);
        assert_eq!(std::mem::size_of::<(Canon, Bound)>(), 64);
    }

    #[test]
    fn minting_a_thread_with_nothing_to_vary_still_changes_it() {
        let seed = Seed::derive([b"t".as_slice()]);
        for t in ["19:meeting_@thread.v2", "19:_-_@thread.v2"] {
            let c = Canon::Thread(t.into());
            let mut table = IdTable::default();
            let (b, fresh) = table.mint(&seed, &c);
            assert!(fresh);
            assert_ne!(b.live, c, "{t}");
        }
    }

    #[test]
    fn pairing_reads_a_live_body_as_the_value_parsed_from_it() {
        let rec = serde_json::json!({
            "clientContext": "f2fa86af-3c51-4bc2-8fc0-475452d9764f",
            "participants": [{"identity": {"user": {"id": "5e7a0000-0000-4000-8000-000000000001"}}, "replacesCallId": "ab6233a5-20b7-4c5e-bea2-ce56c9776429"}],
            "callbackUri": "https://bot.example.com/api/calls"
        });
        // reordered, escaped, a repeated member, another callbackUri
        let live = br#"{"participants":[{"replacesCallId":"0B1C2D3E4F5061728394A5B6C7D8E9F0","identity":{"user":{"id":"5e7a0000-0000-4000-8000-0000000000ff"}}}],
            "callbackUri":"https:\/\/bot.test\/api\/calls","clientContext":"x","clientContext":"9a270000-0000-4000-8000-000000000007"}"#;
        let value: Value = serde_json::from_slice(live).unwrap();
        let json = crate::cassette::Json::parse(live).unwrap();
        let (mut a, mut b) = (Pairing::default(), Pairing::default());
        a.json(&rec, &value, None);
        b.json(&rec, &json, None);
        assert_eq!(a.tokens.len(), 3);
        assert_eq!(a.tokens, b.tokens);
        assert_eq!(a.strings, b.strings);
        assert_eq!(
            b.strings,
            [(
                "callbackUri",
                "https://bot.example.com/api/calls",
                "https://bot.test/api/calls"
            )]
        );
    }

    #[test]
    fn bijection_conflicts_are_refused() {
        let mut t = IdTable::default();
        let a = Canon::guid(1);
        let b = Canon::guid(2);
        let c = Canon::guid(3);
        assert_eq!(t.bind(a.clone(), "", b.clone(), ""), BindOutcome::New);
        assert_eq!(t.bind(a.clone(), "", b.clone(), ""), BindOutcome::Same);
        assert_eq!(t.bind(a, "", c.clone(), ""), BindOutcome::Conflict);
        assert_eq!(t.bind(c, "", b, ""), BindOutcome::Conflict);
    }
}
