//! The stored-event codec: an event's key (`epoch(u64 BE) seq(u64 BE)`), its value
//! (a format byte, a 16-byte checksum over seq and payload, the payload: the JSON,
//! LZ4-compressed since format 2) and the digest of a
//! cassette (the XOR of its events' checksums, so an append or an update is O(1)).

use sha2::{Digest as _, Sha256};

use crate::cassette::Event;

/// The format byte every stored event value starts with: its JSON as it is (stores
/// written before compression), or LZ4-compressed (a 4-byte size first). sled keeps
/// what it reads resident, so a compressed store also costs less memory to serve.
const FORMAT_JSON: u8 = 1;
const FORMAT_LZ4: u8 = 2;
const SUM_LEN: usize = 16;
const HEADER_LEN: usize = 1 + SUM_LEN;

/// One event's checksum.
pub type Sum = [u8; SUM_LEN];

/// The key of event `seq` of the cassette stored under `epoch`.
pub fn key(epoch: u64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&epoch.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The prefix every event key of `epoch` starts with.
pub fn epoch_prefix(epoch: u64) -> [u8; 8] {
    epoch.to_be_bytes()
}

/// `(epoch, seq)` of a key, if it is one.
pub fn parse_key(k: &[u8]) -> Option<(u64, u64)> {
    let epoch = u64::from_be_bytes(k.get(..8)?.try_into().ok()?);
    let seq = u64::from_be_bytes(k.get(8..16)?.try_into().ok()?);
    (k.len() == 16).then_some((epoch, seq))
}

fn checksum(seq: u64, json: &[u8]) -> Sum {
    let mut h = Sha256::new();
    h.update(seq.to_be_bytes());
    h.update(json);
    let full = h.finalize();
    let mut s = [0u8; SUM_LEN];
    s.copy_from_slice(&full[..SUM_LEN]);
    s
}

/// The stored value of an event, and its checksum.
pub fn encode(ev: &Event) -> Result<(Vec<u8>, Sum), String> {
    let json = serde_json::to_vec(ev).map_err(|e| format!("event {} cannot be encoded: {e}", ev.seq))?;
    let payload = lz4_flex::compress_prepend_size(&json);
    let sum = checksum(ev.seq, &payload);
    let mut v = Vec::with_capacity(HEADER_LEN + payload.len());
    v.push(FORMAT_LZ4);
    v.extend_from_slice(&sum);
    v.extend_from_slice(&payload);
    Ok((v, sum))
}

/// The checksum of a stored value when it is intact (format known, checksum right).
pub fn verify(seq: u64, value: &[u8]) -> Option<Sum> {
    if value.len() < HEADER_LEN || !matches!(value[0], FORMAT_JSON | FORMAT_LZ4) {
        return None;
    }
    let sum = checksum(seq, &value[HEADER_LEN..]);
    (value[1..HEADER_LEN] == sum).then_some(sum)
}

/// The checksum a value claims, without checking it (to take an old value out of a
/// digest it was added to).
pub fn claimed(value: &[u8]) -> Option<Sum> {
    value.get(1..HEADER_LEN)?.try_into().ok()
}

/// Decodes an intact stored event; `seq` is the one of its key.
pub fn decode(seq: u64, value: &[u8]) -> Result<(Event, Sum), String> {
    let sum = verify(seq, value).ok_or_else(|| format!("event {seq} fails its checksum"))?;
    let payload = &value[HEADER_LEN..];
    let inflated;
    let json = match value[0] {
        FORMAT_LZ4 => {
            inflated = inflate(payload).ok_or_else(|| format!("event {seq} does not decompress"))?;
            &inflated[..]
        }
        _ => payload,
    };
    let ev: Event = serde_json::from_slice(json).map_err(|e| format!("event {seq} does not decode: {e}"))?;
    if ev.seq != seq {
        return Err(format!("event stored as {seq} says it is {}", ev.seq));
    }
    Ok((ev, sum))
}

/// An LZ4 payload's JSON; `None` when it claims a size LZ4 cannot have produced from
/// it (at most 255 bytes per input byte) or does not decompress.
fn inflate(payload: &[u8]) -> Option<Vec<u8>> {
    let claimed = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?) as usize;
    if claimed > payload.len().saturating_mul(255) {
        return None;
    }
    lz4_flex::decompress_size_prepended(payload).ok()
}

/// A cassette's digest: the XOR of its events' checksums.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Digest(Sum);

impl Digest {
    /// Adds (or, a second time, removes) one checksum.
    pub fn toggle(&mut self, s: &Sum) {
        for (a, b) in self.0.iter_mut().zip(s) {
            *a ^= b;
        }
    }

    /// Adds (or removes) every checksum of another digest.
    pub fn toggle_all(&mut self, d: &Digest) {
        self.toggle(&d.0);
    }

    pub fn hex(&self) -> String {
        crate::cassette::json::hex(&self.0)
    }

    pub fn from_hex(s: &str) -> Option<Digest> {
        if s.len() != SUM_LEN * 2 || !s.is_ascii() {
            return None;
        }
        let mut d = [0u8; SUM_LEN];
        for (i, b) in d.iter_mut().enumerate() {
            *b = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
        }
        Some(Digest(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cassette::{Body, Kind, Request, Response};

    fn ev(seq: u64) -> Event {
        Event {
            kind: Kind::Exchange,
            seq,
            at_ms: 1,
            duration_ms: Some(2),
            follows: None,
            request: Request {
                method: "GET".into(),
                uri: "/v1.0/x".into(),
                headers: vec![],
                body: Body::Text("hi".into()),
            },
            response: Response {
                status: Some(200),
                ..Default::default()
            },
        }
    }

    #[test]
    fn roundtrip_and_damage_is_caught() {
        let (v, sum) = encode(&ev(3)).unwrap();
        assert_eq!(decode(3, &v).unwrap(), (ev(3), sum));
        assert!(decode(4, &v).is_err(), "a value under another seq");
        for i in 0..v.len() {
            let mut bad = v.clone();
            bad[i] ^= 0x20;
            assert!(decode(3, &bad).is_err(), "byte {i}");
        }
        assert!(decode(3, &v[..v.len() - 1]).is_err());
        assert_eq!(parse_key(&key(7, 9)), Some((7, 9)));
    }

    #[test]
    fn values_of_older_stores_still_decode_and_new_ones_are_compressed() {
        let e = crate::bundled::cassette("invite-one-participant")
            .expect("bundled")
            .expect("parses")
            .events
            .remove(1);
        let json = serde_json::to_vec(&e).unwrap();
        let mut old = vec![FORMAT_JSON];
        old.extend_from_slice(&checksum(e.seq, &json));
        old.extend_from_slice(&json);
        assert_eq!(decode(e.seq, &old).unwrap().0, e, "a format-1 value");
        let (new, _) = encode(&e).unwrap();
        assert_eq!(new[0], FORMAT_LZ4);
        assert!(
            new.len() * 3 < old.len() * 2,
            "{} bytes stored for {} of JSON",
            new.len(),
            json.len()
        );
        assert_eq!(decode(e.seq, &new).unwrap().0, e);
        // a size no LZ4 block of these bytes can have is refused before allocating
        let mut huge = u32::MAX.to_le_bytes().to_vec();
        huge.extend_from_slice(&[0u8; 8]);
        assert_eq!(inflate(&huge), None);
    }

    #[test]
    fn digest_toggles_and_prints() {
        let (_, a) = encode(&ev(0)).unwrap();
        let (_, b) = encode(&ev(1)).unwrap();
        let mut d = Digest::default();
        d.toggle(&a);
        d.toggle(&b);
        d.toggle(&a);
        let mut only_b = Digest::default();
        only_b.toggle(&b);
        assert_eq!(d, only_b);
        assert_eq!(Digest::from_hex(&d.hex()), Some(d));
        assert_eq!(Digest::from_hex("zz"), None);
    }
}
