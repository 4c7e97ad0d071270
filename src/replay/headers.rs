//! Executes Graph's header policy (classified in `graph`) on recorded headers: the
//! response headers a served exchange carries and the headers of each notification.
//! Framing headers never carry over.

use std::borrow::Cow;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::graph::{self, NotificationHeader, ResponseHeader};
use crate::http::wire::header_str;
use crate::ids::{Rewriter, Token};

/// What a header rewrite does with one recorded header.
enum HeaderRule {
    /// Apply the id table.
    Rewrite,
    /// Use this value.
    Set(String),
    Drop,
}

/// A recorded header as a rewrite reads it: parsed, and its ids found, once per
/// recorded event (see `bodies::Loaded`).
pub struct Recorded<'h> {
    pub name: &'h HeaderName,
    pub value: &'h str,
    /// `value` as a header value, when it is one.
    pub parsed: Option<&'h HeaderValue>,
    pub tokens: &'h [Token],
}

impl<'h> Recorded<'h> {
    /// The value with the session's ids in it.
    fn rewritten(&self, rw: &mut Rewriter<'_>) -> Cow<'h, str> {
        if self.tokens.is_empty() {
            Cow::Borrowed(self.value)
        } else {
            rw.rewrite_scanned(self.value, self.tokens)
        }
    }
}

/// Rewrites recorded headers (framing headers already left out) by `rule` (given
/// the lowercase name). A value is copied only when it changes, once, into its
/// `HeaderValue`.
fn rewrite_headers<'h>(
    recorded: impl ExactSizeIterator<Item = Recorded<'h>>,
    rw: &mut Rewriter<'_>,
    mut rule: impl FnMut(&Recorded<'h>, &mut Rewriter<'_>) -> HeaderRule,
) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(recorded.len());
    for h in recorded {
        let value = match rule(&h, rw) {
            // unchanged: the recorded value as parsed at load (none when it is no
            // header value)
            HeaderRule::Rewrite => match h.rewritten(rw) {
                Cow::Borrowed(_) => h.parsed.cloned(),
                Cow::Owned(x) => HeaderValue::try_from(x).ok(),
            },
            HeaderRule::Set(x) => HeaderValue::try_from(x).ok(),
            HeaderRule::Drop => continue,
        };
        if let Some(v) = value {
            out.append(h.name.clone(), v);
        }
    }
    out
}

/// What the live request tells the response headers.
pub struct LiveRequest<'a> {
    pub headers: &'a HeaderMap,
    /// `scheme://host[:port]` the bot used to reach graphvcr.
    pub origin: Option<&'a str>,
    /// The API version the bot called (`v1.0`, `beta`).
    pub version: &'a str,
}

/// A served exchange's response headers: `Location` pointed back at graphvcr, echoes
/// of the live request, per-response ids regenerated from `request_id` material.
pub fn response_headers<'h>(
    recorded: impl ExactSizeIterator<Item = Recorded<'h>>,
    rw: &mut Rewriter<'_>,
    live: &LiveRequest<'_>,
    request_id: &[u8],
) -> HeaderMap {
    rewrite_headers(recorded, rw, |h, rw| match graph::response_header(h.name.as_str()) {
        ResponseHeader::Relocate => HeaderRule::Set(graph::relocate(&h.rewritten(rw), live.origin, live.version)),
        ResponseHeader::Echo => match header_str(live.headers, h.name.as_str()) {
            Some(echo) => HeaderRule::Set(echo.to_string()),
            None => HeaderRule::Rewrite,
        },
        ResponseHeader::Regenerate => HeaderRule::Set(rw.seed().guid(h.name.as_str(), request_id)),
        ResponseHeader::Rewrite => HeaderRule::Rewrite,
    })
}

/// A notification's headers: Graph's token dropped, message ids fresh from `message`.
pub fn notification_headers<'h>(
    recorded: impl ExactSizeIterator<Item = Recorded<'h>>,
    rw: &mut Rewriter<'_>,
    message: &[u8],
) -> HeaderMap {
    rewrite_headers(recorded, rw, |h, rw| {
        match graph::notification_header(h.name.as_str()) {
            NotificationHeader::Drop => HeaderRule::Drop,
            NotificationHeader::Fresh => HeaderRule::Set(rw.seed().guid(h.name.as_str(), message)),
            NotificationHeader::Rewrite => HeaderRule::Rewrite,
        }
    })
}
