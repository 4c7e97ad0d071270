//! JSON string contents written quickly: eight bytes at a time are checked for the
//! few that need escaping, and the runs between them are copied whole. Writes what
//! `serde_json` writes, byte for byte (a proptest holds them to it).

use std::fmt;

/// Appends `s` to `out` as the inside of a JSON string.
pub fn push_escaped(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let (mut run, mut i) = (0, 0);
    while i < b.len() {
        if let Some(w) = b.get(i..i + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) {
            if !any_special(u64::from_le_bytes(w)) {
                i += 8;
                continue;
            }
        }
        let c = b[i];
        i += 1;
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let unicode;
        let escape: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                unicode = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 0xf)],
                ];
                &unicode
            }
            _ => continue,
        };
        out.extend_from_slice(&b[run..i - 1]);
        out.extend_from_slice(escape);
        run = i;
    }
    out.extend_from_slice(&b[run..]);
}

/// Appends `s` to `out` as a JSON string, quotes and all.
pub fn push_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    push_escaped(out, s);
    out.push(b'"');
}

/// Whether any of the eight bytes is a quote, a backslash or a control character
/// (the bit tricks answer exactly, though not which byte it is).
fn any_special(w: u64) -> bool {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES * 0x80;
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    (control | zero_in(w ^ (ONES * u64::from(b'"'))) | zero_in(w ^ (ONES * u64::from(b'\\')))) != 0
}

/// Formats into `out`, escaped as the inside of a JSON string (`write!` a
/// `Display` into a body without holding its text first).
pub struct Escaping<'a>(&'a mut Vec<u8>);

impl<'a> Escaping<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Escaping<'a> {
        Escaping(out)
    }
}

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        push_escaped(self.0, s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = Vec::new();
        push_escaped(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_what_json_must() {
        let s = "a \"miss\" at C:\\x\n\t\u{1}\u{7f}é";
        assert_eq!(escaped(s), "a \\\"miss\\\" at C:\\\\x\\n\\t\\u0001\u{7f}é");
        assert_eq!(escaped(""), "");
        assert_eq!(escaped("0123456789abcdef\u{1f}"), "0123456789abcdef\\u001f");
    }

    proptest! {
        #[test]
        fn writes_what_serde_json_writes(s in "(\\PC|[\\x00-\\x1f\"\\\\\u{7f}]){0,80}") {
            let want = serde_json::to_string(&s).unwrap();
            prop_assert_eq!(format!("\"{}\"", escaped(&s)), want);
        }
    }
}
