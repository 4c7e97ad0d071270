//! Properties over arbitrary input (proptest): rewriting is deterministic, a bound id
//! comes back exactly as the bot wrote it, and nothing panics on arbitrary JSON, paths
//! or stored bytes — the redaction rules, the scrubber, matching, the interchange
//! parser and the stored-event codec.

use graphvcr::hash::Set;

use proptest::prelude::*;
use serde_json::Value;

use graphvcr::cassette::store::codec;
use graphvcr::cassette::{json, Body};
use graphvcr::ids::{scan, IdTable, Pairing, Rewriter, Seed};
use graphvcr::matching::Probe;
use graphvcr::redact::{shown_uri, Rules};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-f0-9-]{0,40}".prop_map(Value::from),
        "(\\+1[0-9]{10}|19:[a-z]{3}@thread\\.v2|8:orgid:[a-f0-9-]{36}|https://x/c\\?sig=[a-z]{3})"
            .prop_map(Value::from),
        ".{0,16}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(("[a-zA-Z@.]{0,10}", inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn guid() -> impl Strategy<Value = String> {
    any::<u128>().prop_map(|n| {
        let h = format!("{n:032x}");
        format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
    })
}

/// A table bound from pairing `rec` with `live`, as a session binds a request.
fn table_of(rec: &Value, live: &Value) -> IdTable {
    let mut p = Pairing::default();
    p.json(rec, live, None);
    let mut t = IdTable::default();
    for pair in &p.tokens {
        t.bind(pair.recorded.clone(), pair.rec_text, pair.live.clone(), pair.live_text);
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn rewriting_is_deterministic(rec in any_json(), live in any_json(), seed in any::<[u8; 8]>()) {
        let seed = Seed::derive([&seed[..]]);
        let (scoped, stable) = (IdTable::default(), Set::default());
        let run = || {
            let mut t = table_of(&rec, &live);
            let mut rw = Rewriter::new(&scoped, &mut t, &stable, &seed);
            (rw.rewrite_json(&rec), rw.rewrite_json(&live))
        };
        prop_assert_eq!(run(), run());
    }

    #[test]
    fn a_bound_id_comes_back_as_the_bot_wrote_it(r in guid(), l in guid(), upper in any::<bool>()) {
        let live = if upper { l.to_uppercase() } else { l.clone() };
        let rec = serde_json::json!({"call": r});
        let mut t = table_of(&rec, &serde_json::json!({"call": live}));
        let (scoped, stable, seed) = (IdTable::default(), Set::default(), Seed::derive([&b"s"[..]]));
        let mut rw = Rewriter::new(&scoped, &mut t, &stable, &seed);
        prop_assert_eq!(rw.rewrite_str(&format!("/v1.0/communications/calls/{r}")).into_owned(),
            format!("/v1.0/communications/calls/{live}"));
    }

    #[test]
    fn nothing_panics_on_arbitrary_json_and_paths(v in any_json(), path in "[ -~]{0,60}", method in "[A-Za-z]{0,8}") {
        let body = Body::Json(v.clone());
        let _ = Probe::new(&method, &path, &body);
        let _ = scan(&path);
        let _ = shown_uri(&path);
        let mut j = v.clone();
        Rules::default().json(&mut j);
        let mut again = j.clone();
        Rules::default().json(&mut again);
        prop_assert_eq!(&j, &again, "redaction is idempotent");
        graphvcr::scrub::Scrubber::new().string(&path);
        let _ = json::parse(serde_json::to_string(&v).unwrap().as_bytes(), "x.json");
    }

    #[test]
    fn stored_bytes_never_panic_the_codec(bytes in prop::collection::vec(any::<u8>(), 0..200), seq in any::<u64>()) {
        let _ = codec::decode(seq, &bytes);
        let _ = codec::parse_key(&bytes);
        let _ = json::parse(&bytes, "x.json");
    }
}
