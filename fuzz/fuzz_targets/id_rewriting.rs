//! Id rewriting: a recorded and a live JSON value (or text) paired, bound and rewritten
//! twice — never a panic, and the same output both times.
#![no_main]

use graphvcr::hash::Set;

use graphvcr::ids::{IdTable, Pairing, Rewriter, Seed};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn value(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(b).into_owned()))
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (rec, live) = (value(&data[..split]), value(data.get(split + 1..).unwrap_or_default()));
    let seed = Seed::derive([data]);
    let (scoped, stable) = (IdTable::default(), Set::default());
    let run = || {
        let mut p = Pairing::default();
        p.json(&rec, &live, None);
        let mut t = IdTable::default();
        for pair in &p.tokens {
            t.bind(pair.recorded.clone(), &pair.rec_text, pair.live.clone(), &pair.live_text);
        }
        for (k, r, l) in &p.strings {
            t.bind_string(k, r, l);
        }
        let mut rw = Rewriter::new(&scoped, &mut t, &stable, &seed);
        let out = rw.rewrite_json(&rec);
        let text = rw.rewrite_str(&String::from_utf8_lossy(data)).into_owned();
        (out, text)
    };
    assert_eq!(run(), run());
});
