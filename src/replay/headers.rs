//! Executes Graph's header policy (classified in `graph`) on recorded headers: the
//! response headers a served exchange carries and the headers of each notification.
//! Framing headers never carry over.

use std::borrow::Cow;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::graph::{self, NotificationHeader, ResponseHeader};
use crate::http::wire::header_str;
use crate::ids::Rewriter;

/// What a header rewrite does with one recorded header.
enum HeaderRule {
    /// Apply the id table.
    Rewrite,
    /// Use this value.
    Set(String),
    Drop,
}

/// Rewrites recorded headers (framing headers already left out, names and values
/// parsed) by `rule` (given the lowercase name). A value is copied only when it
/// changes, once, into its `HeaderValue`.
fn rewrite_headers<'h>(
    recorded: impl ExactSizeIterator<Item = (&'h HeaderName, &'h str, Option<&'h HeaderValue>)>,
    rw: &mut Rewriter<'_>,
    mut rule: impl FnMut(&str, &str, &mut Rewriter<'_>) -> HeaderRule,
) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(recorded.len());
    for (name, v, parsed) in recorded {
        let value = match rule(name.as_str(), v, rw) {
            HeaderRule::Rewrite => match rw.rewrite_str(v) {
                Cow::Borrowed(same) => parsed.map_or_else(|| HeaderValue::from_str(same), |p| Ok(p.clone())),
                Cow::Owned(x) => HeaderValue::try_from(x),
            },
            HeaderRule::Set(x) => HeaderValue::try_from(x),
            HeaderRule::Drop => continue,
        };
        if let Ok(v) = value {
            out.append(name.clone(), v);
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
    recorded: impl ExactSizeIterator<Item = (&'h HeaderName, &'h str, Option<&'h HeaderValue>)>,
    rw: &mut Rewriter<'_>,
    live: &LiveRequest<'_>,
    request_id: &[u8],
) -> HeaderMap {
    rewrite_headers(recorded, rw, |name, v, rw| match graph::response_header(name) {
        ResponseHeader::Relocate => HeaderRule::Set(graph::relocate(&rw.rewrite_str(v), live.origin, live.version)),
        ResponseHeader::Echo => match header_str(live.headers, name) {
            Some(echo) => HeaderRule::Set(echo.to_string()),
            None => HeaderRule::Rewrite,
        },
        ResponseHeader::Regenerate => HeaderRule::Set(rw.seed().guid(name, request_id)),
        ResponseHeader::Rewrite => HeaderRule::Rewrite,
    })
}

/// A notification's headers: Graph's token dropped, message ids fresh from `message`.
pub fn notification_headers<'h>(
    recorded: impl ExactSizeIterator<Item = (&'h HeaderName, &'h str, Option<&'h HeaderValue>)>,
    rw: &mut Rewriter<'_>,
    message: &[u8],
) -> HeaderMap {
    rewrite_headers(recorded, rw, |name, _, rw| match graph::notification_header(name) {
        NotificationHeader::Drop => HeaderRule::Drop,
        NotificationHeader::Fresh => HeaderRule::Set(rw.seed().guid(name, message)),
        NotificationHeader::Rewrite => HeaderRule::Rewrite,
    })
}
