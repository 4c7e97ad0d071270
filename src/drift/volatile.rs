//! What differs between any two recordings without being drift: ids (`{id}`),
//! ISO-8601 timestamps (`{time}`), redacted secrets, and the headers that change with
//! every message — request ids and echoes (by `graph`'s header policy), Skype message
//! ids, dates, Graph's diagnostics and framing.

use std::borrow::Cow;

use crate::graph::{self, NotificationHeader, ResponseHeader};
use crate::http::wire;
use crate::matching::template_ids;
use crate::redact::REDACTED;

/// Headers that differ from one message to the next without saying anything about
/// Graph's behaviour: dates and Graph's diagnostics. Request ids, echoes and Skype
/// message ids are found through `graph`'s header policy; framing through `wire`.
const VOLATILE_HEADERS: &[&str] = &["date", "expires", "last-modified", "age", "x-ms-ags-diagnostic"];

pub(super) fn ignored_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    VOLATILE_HEADERS.contains(&n.as_str())
        || wire::is_framing_header(&n)
        || matches!(
            graph::response_header(&n),
            ResponseHeader::Echo | ResponseHeader::Regenerate
        )
        || matches!(
            graph::notification_header(&n),
            NotificationHeader::Drop | NotificationHeader::Fresh
        )
}

/// Two strings that are the same once ids and timestamps are templated (a redacted
/// value equals anything).
pub(super) fn same_text(a: &str, b: &str) -> bool {
    redacted(a, b) || normalise(a) == normalise(b)
}

/// A redacted secret on either side: it matches anything.
pub(super) fn redacted(a: &str, b: &str) -> bool {
    a.contains(REDACTED) || b.contains(REDACTED)
}

/// `s` with ids as `{id}` and ISO-8601 timestamps as `{time}`.
pub(super) fn normalise(s: &str) -> String {
    template_ids(&template_times(s))
}

/// `s` with every ISO-8601-looking timestamp (`2026-11-27T10:00:00.123Z`,
/// `2026-11-27 10:00+01:00`) as `{time}`.
pub(super) fn template_times(s: &str) -> Cow<'_, str> {
    let b = s.as_bytes();
    let mut out = String::new();
    let (mut last, mut i) = (0, 0);
    while i < b.len() {
        match timestamp_at(b, i) {
            Some(end) => {
                out.push_str(&s[last..i]);
                out.push_str("{time}");
                last = end;
                i = end;
            }
            None => i += 1,
        }
    }
    if last == 0 {
        return Cow::Borrowed(s);
    }
    out.push_str(&s[last..]);
    Cow::Owned(out)
}

fn digits(b: &[u8], i: usize, n: usize) -> bool {
    b.get(i..i + n).is_some_and(|d| d.iter().all(u8::is_ascii_digit))
}

/// The end of a timestamp starting at `i`: `YYYY-MM-DD[T ]hh:mm[:ss[.f+]][Z|±hh[:]mm]`.
fn timestamp_at(b: &[u8], i: usize) -> Option<usize> {
    let at = |k: usize| b.get(k).copied();
    let starts = (i == 0 || !b[i - 1].is_ascii_alphanumeric())
        && digits(b, i, 4)
        && at(i + 4) == Some(b'-')
        && digits(b, i + 5, 2)
        && at(i + 7) == Some(b'-')
        && digits(b, i + 8, 2)
        && matches!(at(i + 10), Some(b'T' | b't' | b' '))
        && digits(b, i + 11, 2)
        && at(i + 13) == Some(b':')
        && digits(b, i + 14, 2);
    if !starts {
        return None;
    }
    let mut j = i + 16;
    if at(j) == Some(b':') && digits(b, j + 1, 2) {
        j += 3;
        if matches!(at(j), Some(b'.' | b',')) && digits(b, j + 1, 1) {
            j += 1;
            while digits(b, j, 1) {
                j += 1;
            }
        }
    }
    match at(j) {
        Some(b'Z' | b'z') => j += 1,
        Some(b'+' | b'-') if digits(b, j + 1, 2) => {
            j += 3;
            if at(j) == Some(b':') && digits(b, j + 1, 2) {
                j += 3;
            } else if digits(b, j, 2) {
                j += 2;
            }
        }
        _ => {}
    }
    Some(j)
}
