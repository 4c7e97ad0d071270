//! Id-like tokens: finding them in any string, their canonical value and written form,
//! and writing a canonical value back in a given form. Imports no other crate module.
//!
//! Tokens are GUIDs (any case, with or without dashes; also inside `8:orgid:<guid>`,
//! URLs and free text), E.164 phone numbers and chat thread ids (`19:...@thread.v2`).
//! A GUID is compared as 128 bits, so `AB62...` and `ab62-...` are the same id.

use std::borrow::Cow;

/// The canonical value of an id, independent of how it was written.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Canon {
    Guid(u128),
    /// `+` and the digits.
    Phone(Box<str>),
    /// The whole thread id, `19:...@thread.v2`.
    Thread(Box<str>),
}

/// How a token was written, so a replacement can be written the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    Guid { upper: bool, dashed: bool },
    Phone,
    Thread,
}

/// One id-like token found in a string: byte range, value and written form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub start: usize,
    pub end: usize,
    pub canon: Canon,
    pub form: Form,
}

fn is_boundary(b: Option<&u8>) -> bool {
    b.is_none_or(|c| !c.is_ascii_alphanumeric())
}

/// Each byte's hex digit value in the low nibble, `LOWER` or `UPPER` added for a
/// letter, `NOT_HEX` for a byte that is none: one load per character read.
const HEX: [u8; 256] = {
    let mut t = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = (10 + i as u8) | LOWER;
        t[b'A' as usize + i] = (10 + i as u8) | UPPER;
        i += 1;
    }
    t
};
const NOT_HEX: u8 = 0xff;
const LOWER: u8 = 0x10;
const UPPER: u8 = 0x20;

fn is_hex(c: u8) -> bool {
    HEX[usize::from(c)] != NOT_HEX
}

/// Appends the hex digits `s` to `v`, and their letters' cases to `case`; `None` at a
/// byte that is no hex digit.
fn hex_digits(s: &[u8], v: &mut u64, case: &mut u8) -> Option<()> {
    for &c in s {
        let t = HEX[usize::from(c)];
        if t == NOT_HEX {
            return None;
        }
        *case |= t;
        *v = (*v << 4) | u64::from(t & 0xf);
    }
    Some(())
}

/// A GUID starting at `i`: 36 chars dashed 8-4-4-4-12 or 32 hex digits, read as two
/// 64-bit halves (the first 16 digits, the last 16).
fn guid_at(b: &[u8], i: usize) -> Option<(usize, u128, Form)> {
    // a dashed GUID has its first dash 8 characters in: most words fail here
    let dashed = b.get(i + 8) == Some(&b'-');
    let len = if dashed { 36 } else { 32 };
    let s = b.get(i..i + len)?;
    if !is_boundary(b.get(i + len)) {
        return None;
    }
    let (mut hi, mut lo, mut case) = (0u64, 0u64, 0u8);
    if dashed {
        if s[13] != b'-' || s[18] != b'-' || s[23] != b'-' {
            return None;
        }
        for run in [&s[..8], &s[9..13], &s[14..18]] {
            hex_digits(run, &mut hi, &mut case)?;
        }
        for run in [&s[19..23], &s[24..]] {
            hex_digits(run, &mut lo, &mut case)?;
        }
    } else {
        hex_digits(&s[..16], &mut hi, &mut case)?;
        hex_digits(&s[16..], &mut lo, &mut case)?;
    }
    let upper = case & UPPER != 0 && case & LOWER == 0;
    Some((
        len + i,
        (u128::from(hi) << 64) | u128::from(lo),
        Form::Guid { upper, dashed },
    ))
}

/// A thread id starting at `i`: `19:` + `[A-Za-z0-9_-]+` + `@thread.` + `[a-z0-9]+`.
fn thread_at(b: &[u8], i: usize) -> Option<usize> {
    let rest = b.get(i..)?;
    if !rest.starts_with(b"19:") {
        return None;
    }
    let mut j = i + 3;
    while b
        .get(j)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
    {
        j += 1;
    }
    if j == i + 3 || !b.get(j..)?.starts_with(b"@thread.") {
        return None;
    }
    j += "@thread.".len();
    let k0 = j;
    while b.get(j).is_some_and(|c| c.is_ascii_alphanumeric()) {
        j += 1;
    }
    (j > k0).then_some(j)
}

/// An E.164 number starting at `i`: `+` and 7 to 15 digits, not followed by a digit.
fn phone_at(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'+') {
        return None;
    }
    let mut j = i + 1;
    while b.get(j).is_some_and(u8::is_ascii_digit) {
        j += 1;
    }
    let n = j - i - 1;
    ((7..=15).contains(&n) && b.get(i + 1) != Some(&b'0') && is_boundary(b.get(j))).then_some(j)
}

/// The token starting at `i` (a word boundary), if any; only the kinds that can
/// start with `b[i]` are tried.
fn token_at(s: &str, i: usize) -> Option<Token> {
    let b = s.as_bytes();
    let (end, canon, form) = match b[i] {
        b'+' => phone_at(b, i).map(|end| (end, Canon::Phone(s[i..end].into()), Form::Phone))?,
        c if is_hex(c) => match thread_at(b, i) {
            Some(end) => (end, Canon::Thread(s[i..end].into()), Form::Thread),
            None => guid_at(b, i).map(|(end, v, form)| (end, Canon::Guid(v), form))?,
        },
        _ => return None,
    };
    Some(Token {
        start: i,
        end,
        canon,
        form,
    })
}

/// Tokens of one string: most strings hold none, one or two (held inline, no
/// allocation per string scanned).
pub type Tokens = smallvec::SmallVec<[Token; 2]>;

/// Every id-like token in `s`, left to right, non-overlapping.
pub fn scan(s: &str) -> Tokens {
    let b = s.as_bytes();
    let mut out = Tokens::new();
    let mut i = 0;
    while i < b.len() {
        // `i` is at a word boundary here
        match token_at(s, i) {
            Some(t) => {
                i = t.end;
                out.push(t);
            }
            None => i += 1,
        }
        // no token starts inside a word: skip to the next boundary
        while i < b.len() && b[i - 1].is_ascii_alphanumeric() {
            i += 1;
        }
    }
    out
}

/// Replaces tokens in `s`: `f` returns the replacement, or `None` to keep one.
/// Borrows when nothing changes.
pub fn map_tokens<'s, R: AsRef<str>>(s: &'s str, f: impl FnMut(&Token, &str) -> Option<R>) -> Cow<'s, str> {
    splice(s, &scan(s), f)
}

/// [`map_tokens`] over tokens already found in `s` (by [`scan`]).
pub fn splice<'s, R: AsRef<str>>(s: &'s str, toks: &[Token], f: impl FnMut(&Token, &str) -> Option<R>) -> Cow<'s, str> {
    let mut out = String::new();
    if splice_to(&mut out, s, toks, f) {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(s)
    }
}

/// [`splice`] appending to `out` (a buffer the caller reuses): whether anything
/// changed; `out` is left untouched when nothing did.
pub fn splice_to<R: AsRef<str>>(
    out: &mut String,
    s: &str,
    toks: &[Token],
    mut f: impl FnMut(&Token, &str) -> Option<R>,
) -> bool {
    let mut last = 0;
    let mut changed = false;
    for t in toks {
        let text = &s[t.start..t.end];
        match f(t, text) {
            Some(r) if r.as_ref() != text => {
                if !changed {
                    out.reserve(s.len() + 16);
                    changed = true;
                }
                out.push_str(&s[last..t.start]);
                out.push_str(r.as_ref());
                last = t.end;
            }
            _ => {}
        }
    }
    if changed {
        out.push_str(&s[last..]);
    }
    changed
}

/// An id written out, on the stack for GUIDs and most phone numbers and thread ids
/// (what [`render_id`] gives: rewriting writes one per replaced token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdText(smallvec::SmallVec<[u8; 48]>);

impl IdText {
    pub fn new(s: &str) -> IdText {
        IdText(smallvec::SmallVec::from_slice(s.as_bytes()))
    }
}

impl AsRef<str> for IdText {
    fn as_ref(&self) -> &str {
        // built from a `str` or from ASCII hex digits and dashes only
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

/// Writes `canon` in `form`; a form of another kind falls back to the canon's own.
pub fn render(canon: &Canon, form: Form) -> String {
    render_id(canon, form).as_ref().to_string()
}

/// [`render`] without a heap allocation for a GUID.
pub fn render_id(canon: &Canon, form: Form) -> IdText {
    match (canon, form) {
        (Canon::Guid(v), Form::Guid { upper, dashed }) => guid_text(*v, upper, dashed),
        (Canon::Guid(v), _) => guid_text(*v, false, true),
        (Canon::Phone(p), _) => IdText::new(p),
        (Canon::Thread(t), _) => IdText::new(t),
    }
}

fn guid_text(v: u128, upper: bool, dashed: bool) -> IdText {
    let (buf, len) = guid_bytes(v, upper, dashed);
    IdText(smallvec::SmallVec::from_slice(&buf[..len]))
}

/// The form `text` writes `canon` in, when `text` is exactly what [`render`] writes
/// for that form (a mixed-case GUID is no form's rendering).
pub fn written_form(canon: &Canon, text: &str) -> Option<Form> {
    match canon {
        Canon::Guid(v) => {
            let upper = text.bytes().any(|c| c.is_ascii_uppercase());
            let dashed = text.len() == 36;
            let (buf, len) = guid_bytes(*v, upper, dashed);
            (buf.get(..len) == Some(text.as_bytes())).then_some(Form::Guid { upper, dashed })
        }
        Canon::Phone(p) => (**p == *text).then_some(Form::Phone),
        Canon::Thread(t) => (**t == *text).then_some(Form::Thread),
    }
}

pub(crate) fn render_guid(v: u128, upper: bool, dashed: bool) -> String {
    guid_text(v, upper, dashed).as_ref().to_string()
}

/// A GUID's 32 hex digits (36 with dashes), written on the stack.
fn guid_bytes(v: u128, upper: bool, dashed: bool) -> ([u8; 36], usize) {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut out = [0u8; 36];
    let mut n = 0;
    // a byte at a time (two digits), the dashes before bytes 4, 6, 8 and 10
    for (k, byte) in v.to_be_bytes().into_iter().enumerate() {
        if dashed && matches!(k, 4 | 6 | 8 | 10) {
            out[n] = b'-';
            n += 1;
        }
        out[n] = digits[usize::from(byte >> 4)];
        out[n + 1] = digits[usize::from(byte & 0xf)];
        n += 2;
    }
    (out, n)
}

/// The natural written form of a canon (lowercase dashed GUIDs).
pub fn natural_form(canon: &Canon) -> Form {
    match canon {
        Canon::Guid(_) => Form::Guid {
            upper: false,
            dashed: true,
        },
        Canon::Phone(_) => Form::Phone,
        Canon::Thread(_) => Form::Thread,
    }
}

impl std::fmt::Display for Canon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Canon::Guid(v) => {
                let (buf, len) = guid_bytes(*v, false, true);
                // hex digits and dashes: always UTF-8
                f.write_str(std::str::from_utf8(&buf[..len]).map_err(|_| std::fmt::Error)?)
            }
            Canon::Phone(t) | Canon::Thread(t) => f.write_str(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_guids_in_every_form() {
        let s = "calls/ab6233a5-20b7-4c5e-bea2-ce56c9776429 and 57DAB8B1894C409AB240BD8BEAE78896 8:orgid:278405a3-f568-4b3e-b684-009193463064";
        let t = scan(s);
        assert_eq!(t.len(), 3);
        assert_eq!(
            t[1].form,
            Form::Guid {
                upper: true,
                dashed: false
            }
        );
        assert_eq!(&s[t[2].start..t[2].end], "278405a3-f568-4b3e-b684-009193463064");
        let a = scan("AB6233A5-20B7-4C5E-BEA2-CE56C9776429");
        assert_eq!(a[0].canon, t[0].canon);
    }

    #[test]
    fn finds_phones_and_threads() {
        let s = "participant 4:+61450078883. in 19:meeting_NDM3MjEw@thread.v2 x";
        let t = scan(s);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].canon, Canon::Phone("+61450078883".into()));
        assert_eq!(t[1].canon, Canon::Thread("19:meeting_NDM3MjEw@thread.v2".into()));
    }

    #[test]
    fn ignores_longer_hex_runs_and_short_numbers() {
        assert!(scan("c814b44b73fcd7f3f6b6ec48b524218185ca49b3").is_empty());
        assert!(scan("+123").is_empty());
        assert!(scan("sourceId 1").is_empty());
    }

    /// The scan as first written: every boundary tries every kind.
    fn scan_every_boundary(s: &str) -> Vec<Token> {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if i == 0 || !b[i - 1].is_ascii_alphanumeric() {
                let found = thread_at(b, i)
                    .map(|end| (end, Canon::Thread(s[i..end].into()), Form::Thread))
                    .or_else(|| guid_at(b, i).map(|(end, v, form)| (end, Canon::Guid(v), form)))
                    .or_else(|| phone_at(b, i).map(|end| (end, Canon::Phone(s[i..end].into()), Form::Phone)));
                if let Some((end, canon, form)) = found {
                    out.push(Token {
                        start: i,
                        end,
                        canon,
                        form,
                    });
                    i = end;
                    continue;
                }
            }
            i += 1;
        }
        out
    }

    /// Text dense in token starts and near-tokens.
    fn id_soup() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            any::<u128>().prop_map(|v| render_guid(v, v % 2 == 0, v % 3 != 0)),
            "\\+[0-9]{5,16}",
            "19:[a-zA-Z0-9_-]{0,6}@thread\\.v[0-9]",
            "[a-f0-9+:/ .@-]{1,12}",
            ".{0,4}",
        ];
        proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat())
    }

    /// Runs of hex digits and dashes, GUIDs in either form among them.
    fn hex_runs() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9a-fA-F-]{30,38}",
            (any::<u128>(), any::<bool>(), any::<bool>(), "[0-9a-f-]{0,2}")
                .prop_map(|(v, upper, dashed, tail)| render_guid(v, upper, dashed) + &tail),
        ]
    }

    proptest! {
        #[test]
        fn skipping_words_finds_the_same_tokens(s in id_soup()) {
            prop_assert_eq!(scan(&s).to_vec(), scan_every_boundary(&s));
        }

        #[test]
        fn a_guid_is_written_as_std_formats_it(v in any::<u128>(), upper in any::<bool>(), dashed in any::<bool>()) {
            let hex = format!("{v:032x}");
            let mut want = if dashed {
                format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
            } else {
                hex
            };
            if upper {
                want.make_ascii_uppercase();
            }
            prop_assert_eq!(render_guid(v, upper, dashed), want);
        }

        #[test]
        fn a_guid_is_read_where_std_parses_one(s in hex_runs()) {
            // the alphabet is hex digits and dashes: a boundary is a dash or the end
            let at_boundary = |n: usize| s.len() == n || s.as_bytes()[n] == b'-';
            let hex = |r: &str| r.bytes().all(|c| c.is_ascii_hexdigit());
            let dashed = s.get(..36).filter(|g| {
                g.char_indices().all(|(k, c)| (c == '-') == matches!(k, 8 | 13 | 18 | 23)) && at_boundary(36)
            });
            let plain = s.get(..32).filter(|g| hex(g) && at_boundary(32));
            let want = match (dashed, plain) {
                (Some(g), _) => u128::from_str_radix(&g.replace('-', ""), 16).ok().map(|v| (36, v)),
                (None, Some(g)) => u128::from_str_radix(g, 16).ok().map(|v| (32, v)),
                _ => None,
            };
            let got = guid_at(s.as_bytes(), 0).map(|(end, v, _)| (end, v));
            prop_assert_eq!(got, want);
        }

        #[test]
        fn guid_render_roundtrips(v in any::<u128>(), upper in any::<bool>(), dashed in any::<bool>()) {
            let text = render_guid(v, upper, dashed);
            let toks = scan(&text);
            prop_assert_eq!(toks.len(), 1);
            prop_assert_eq!(&toks[0].canon, &Canon::Guid(v));
            prop_assert_eq!(render(&toks[0].canon, toks[0].form), text);
        }

        #[test]
        fn scan_never_panics_and_tokens_are_ordered(s in ".{0,200}") {
            let toks = scan(&s);
            let mut last = 0;
            for t in toks {
                prop_assert!(t.start >= last && t.end > t.start && s.is_char_boundary(t.start) && s.is_char_boundary(t.end));
                last = t.end;
            }
        }
    }
}
