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
    Guid(Guid),
    /// `+` and the digits.
    Phone(Box<str>),
    /// The whole thread id, `19:...@thread.v2`.
    Thread(Box<str>),
}

impl Canon {
    pub const fn guid(v: u128) -> Canon {
        Canon::Guid(Guid::new(v))
    }
}

/// A GUID's 128 bits as two words: a `u128` would align `Canon` to 16 bytes and make
/// it 32; sessions, the sessions index and every token hold canons. Ordered, hashed,
/// serialized and shown as the `u128` it is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(from = "u128", into = "u128")]
pub struct Guid {
    hi: u64,
    lo: u64,
}

impl Guid {
    pub const fn new(v: u128) -> Guid {
        Guid {
            hi: (v >> 64) as u64,
            lo: v as u64,
        }
    }

    pub const fn get(self) -> u128 {
        (self.hi as u128) << 64 | self.lo as u128
    }
}

impl From<u128> for Guid {
    fn from(v: u128) -> Guid {
        Guid::new(v)
    }
}

impl From<Guid> for u128 {
    fn from(g: Guid) -> u128 {
        g.get()
    }
}

impl std::fmt::Debug for Guid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.get())
    }
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

/// The cases of a GUID's letters, as [`hex8`] reports them.
const LOWER: u8 = 0x10;
const UPPER: u8 = 0x20;

/// The value of 8 hex digits (the first the most significant) and their letters'
/// cases, read 8 bytes at once; `None` when one of them is no hex digit.
fn hex8(chunk: &[u8]) -> Option<(u64, u8)> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let x = u64::from_be_bytes(chunk.try_into().ok()?);
    if x & HIGH != 0 {
        return None;
    }
    // each byte's high bit set when `lo <= byte <= hi` (bytes below 0x80: no carry
    // crosses into the next)
    let within = |lo: u64, hi: u64| (x + ONES * (0x80 - lo)) & !(x + ONES * (0x7f - hi)) & HIGH;
    let (digit, lower, upper) = (within(0x30, 0x39), within(0x61, 0x66), within(0x41, 0x46));
    if digit | lower | upper != HIGH {
        return None;
    }
    // a letter's value is its low nibble + 9; then the 8 nibbles packed, first highest
    let mut v = (x & (ONES * 0x0f)) + ((lower | upper) >> 7) * 9;
    v = (v | (v >> 4)) & 0x00ff_00ff_00ff_00ff;
    v = (v | (v >> 8)) & 0x0000_ffff_0000_ffff;
    v = (v | (v >> 16)) & 0x0000_0000_ffff_ffff;
    let case = (if lower != 0 { LOWER } else { 0 }) | (if upper != 0 { UPPER } else { 0 });
    Some((v, case))
}

/// A GUID starting at `i`: 36 chars dashed 8-4-4-4-12 or 32 hex digits.
fn guid_at(b: &[u8], i: usize) -> Option<(usize, u128, Form)> {
    let g = guid_parts(b, i)?;
    let upper = g.case & UPPER != 0 && g.case & LOWER == 0;
    Some((
        g.end,
        g.value,
        Form::Guid {
            upper,
            dashed: g.dashed,
        },
    ))
}

/// A GUID read: where it ends, its value, whether dashed, its letters' cases.
struct GuidParts {
    end: usize,
    value: u128,
    dashed: bool,
    case: u8,
}

/// [`guid_at`]'s reading: the 32 digits (the dashed form's copied together first), 8 at a
/// time.
fn guid_parts(b: &[u8], i: usize) -> Option<GuidParts> {
    // a dashed GUID has its first dash 8 characters in: most words fail here
    let dashed = b.get(i + 8) == Some(&b'-');
    let len = if dashed { 36 } else { 32 };
    let s = b.get(i..i + len)?;
    if !is_boundary(b.get(i + len)) {
        return None;
    }
    let mut digits = [0u8; 32];
    let digits: &[u8] = if dashed {
        if s[13] != b'-' || s[18] != b'-' || s[23] != b'-' {
            return None;
        }
        for (to, from) in [
            (0..8, 0..8),
            (8..12, 9..13),
            (12..16, 14..18),
            (16..20, 19..23),
            (20..32, 24..36),
        ] {
            digits[to].copy_from_slice(&s[from]);
        }
        &digits
    } else {
        s
    };
    let (mut value, mut case) = (0u128, 0u8);
    for chunk in digits.chunks_exact(8) {
        let (v, c) = hex8(chunk)?;
        value = (value << 32) | u128::from(v);
        case |= c;
    }
    Some(GuidParts {
        end: i + len,
        value,
        dashed,
        case,
    })
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
        c if c.is_ascii_hexdigit() => match thread_at(b, i) {
            Some(end) => (end, Canon::Thread(s[i..end].into()), Form::Thread),
            None => guid_at(b, i).map(|(end, v, form)| (end, Canon::guid(v), form))?,
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
        let Some(r) = f(t, text) else {
            continue;
        };
        // read once: an id written on the stack is checked as UTF-8 when read
        let r = r.as_ref();
        if r == text {
            continue;
        }
        if !changed {
            out.reserve(s.len() + 16);
            changed = true;
        }
        out.push_str(&s[last..t.start]);
        out.push_str(r);
        last = t.end;
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
        (Canon::Guid(v), Form::Guid { upper, dashed }) => guid_text(v.get(), upper, dashed),
        (Canon::Guid(v), _) => guid_text(v.get(), false, true),
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
            // exactly `v` written in one form: all of the text, its letters in one case
            let g = guid_parts(text.as_bytes(), 0)?;
            let mixed = g.case & UPPER != 0 && g.case & LOWER != 0;
            (g.end == text.len() && g.value == v.get() && !mixed).then_some(Form::Guid {
                upper: g.case & UPPER != 0,
                dashed: g.dashed,
            })
        }
        Canon::Phone(p) => (**p == *text).then_some(Form::Phone),
        Canon::Thread(t) => (**t == *text).then_some(Form::Thread),
    }
}

pub(crate) fn render_guid(v: u128, upper: bool, dashed: bool) -> String {
    guid_text(v, upper, dashed).as_ref().to_string()
}

/// Where each of a GUID's 16 bytes is written (two digits): dashed 8-4-4-4-12, or not.
const DASHED_AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
const PLAIN_AT: [usize; 16] = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30];

/// A GUID's 32 hex digits (36 with dashes), written on the stack.
fn guid_bytes(v: u128, upper: bool, dashed: bool) -> ([u8; 36], usize) {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let (at, len) = if dashed { (&DASHED_AT, 36) } else { (&PLAIN_AT, 32) };
    let mut out = [b'-'; 36];
    for (&p, byte) in at.iter().zip(v.to_be_bytes()) {
        out[p] = digits[usize::from(byte >> 4)];
        out[p + 1] = digits[usize::from(byte & 0xf)];
    }
    (out, len)
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
                let (buf, len) = guid_bytes(v.get(), false, true);
                // hex digits and dashes: always UTF-8
                f.write_str(std::str::from_utf8(&buf[..len]).map_err(|_| std::fmt::Error)?)
            }
            Canon::Phone(t) | Canon::Thread(t) => f.write_str(t),
        }
    }
}

#[cfg(test)]
mod tests;
