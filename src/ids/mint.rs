//! Deterministic minting: a session's seed, and new ids of a recorded id's kind and
//! form derived from it (so the same live inputs always mint the same ids).

use sha2::{Digest, Sha256};

use super::token::{render_guid, Canon};

/// A session's seed: everything minted in a session derives from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Seed(pub [u8; 32]);

impl Seed {
    /// A seed from arbitrary parts (cassette name, the first request's ids ...).
    pub fn derive<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Seed {
        let mut h = Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_be_bytes());
            h.update(p);
        }
        Seed(h.finalize().into())
    }

    /// 32 bytes derived from the seed and a label; the basis of every minted value.
    pub fn bytes(&self, label: &[u8], data: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.0);
        h.update((label.len() as u64).to_be_bytes());
        h.update(label);
        h.update(data);
        h.finalize().into()
    }

    /// A deterministic GUID for `label`/`data`, written in lowercase dashed form.
    pub fn guid(&self, label: &str, data: &[u8]) -> String {
        render_guid(guid_from(self.bytes(label.as_bytes(), data)), false, true)
    }

    /// The seed's first 64 bits: session names show them as 16 hex digits.
    pub fn short(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(b)
    }
}

fn guid_from(h: [u8; 32]) -> u128 {
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    let v = u128::from_be_bytes(b);
    // version 4, RFC 4122 variant: minted ids look like the GUIDs Graph hands out.
    (v & !(0xF << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62)
}

/// A new id of `recorded`'s kind, derived from the seed; `attempt` breaks collisions.
pub fn mint(seed: &Seed, recorded: &Canon, attempt: u32) -> Canon {
    let key = |tag: &[u8], data: &[u8]| {
        // on the stack for a GUID (and most phone numbers and thread ids)
        let mut d: smallvec::SmallVec<[u8; 64]> = smallvec::SmallVec::with_capacity(data.len() + 4);
        d.extend_from_slice(data);
        d.extend_from_slice(&attempt.to_be_bytes());
        seed.bytes(tag, &d)
    };
    match recorded {
        Canon::Guid(v) => Canon::guid(guid_from(key(b"guid", &v.get().to_be_bytes()))),
        Canon::Phone(p) => {
            let h = key(b"phone", p.as_bytes());
            let mut out = String::with_capacity(p.len());
            for (k, c) in p.chars().enumerate() {
                // keep `+` and the first two digits (country code), mint the rest
                if k < 3 {
                    out.push(c);
                } else {
                    out.push(char::from(b'0' + h[k % 32] % 10));
                }
            }
            Canon::Phone(out.into())
        }
        Canon::Thread(t) => {
            let h = key(b"thread", t.as_bytes());
            let (head, tail) = t.split_once('@').unwrap_or((t, ""));
            let body = head.strip_prefix("19:").unwrap_or(head);
            let (lead, core) = match body.strip_prefix("meeting_") {
                Some(core) => ("meeting_", core),
                None => ("", body),
            };
            let mut out = String::with_capacity(t.len() + 8);
            out.push_str("19:");
            out.push_str(lead);
            let mut changed = false;
            for (k, c) in core.chars().enumerate() {
                let r = h[k % 32];
                let m = match c {
                    '0'..='9' => char::from(b'0' + r % 10),
                    'a'..='z' => char::from(b'a' + r % 26),
                    'A'..='Z' => char::from(b'A' + r % 26),
                    other => other,
                };
                changed |= m != c;
                out.push(m);
            }
            if !changed {
                // nothing to vary (e.g. `19:meeting_@thread.v2`): append derived characters
                out.extend(h[..8].iter().map(|b| char::from(b'a' + b % 26)));
            }
            if !tail.is_empty() {
                out.push('@');
                out.push_str(tail);
            }
            Canon::Thread(out.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::token::{render, scan};

    #[test]
    fn minting_is_deterministic_and_keeps_form() {
        let seed = Seed::derive([b"x".as_slice()]);
        let r = scan("57DAB8B1894C409AB240BD8BEAE78896").remove(0);
        let a = mint(&seed, &r.canon, 0);
        assert_eq!(a, mint(&seed, &r.canon, 0));
        assert_ne!(a, r.canon);
        let text = render(&a, r.form);
        assert_eq!(text.len(), 32);
        assert_eq!(text, text.to_ascii_uppercase());
        let th = Canon::Thread("19:meeting_NDM3MjEw@thread.v2".into());
        let m = mint(&seed, &th, 0);
        let Canon::Thread(m) = m else { panic!() };
        assert!(m.starts_with("19:meeting_") && m.ends_with("@thread.v2") && m.len() == 29);
    }
}
