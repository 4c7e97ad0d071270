//! The stored-event codec: arbitrary stored bytes decode or fail cleanly; an event
//! built from arbitrary JSON that encodes decodes back unchanged.
#![no_main]

use graphvcr::cassette::store::codec;
use graphvcr::cassette::Event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let seq = data.first().copied().unwrap_or(0) as u64;
    let _ = codec::decode(seq, data);
    let _ = codec::parse_key(data);
    if let Ok(ev) = serde_json::from_slice::<Event>(data) {
        let (value, sum) = codec::encode(&ev).expect("an event encodes");
        let (back, sum2) = codec::decode(ev.seq, &value).expect("what was encoded decodes");
        assert_eq!((back, sum2), (ev, sum));
    }
});
