//! Cassette import: any bytes parse or fail cleanly; what parses survives the secret
//! scan and redaction without panicking, and writes back to the same cassette.
#![no_main]

use graphvcr::cassette::json;
use graphvcr::redact::Rules;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(c) = json::parse(data, "fuzz.json") else {
        return;
    };
    let rules = Rules::default();
    for e in &c.events {
        let _ = rules.findings(e);
        let mut r = e.clone();
        rules.event(&mut r);
        assert!(rules.findings(&r).is_empty(), "redaction leaves nothing for the scan");
    }
    let text = json::to_string(&c);
    let back = json::parse(text.as_bytes(), "again.json").expect("what was written parses");
    assert_eq!(back, c);
});
