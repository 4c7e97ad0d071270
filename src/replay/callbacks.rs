//! Building the notifications a served exchange (or a ringing session) triggers:
//! each recorded notification rewritten for the live session, addressed and paced.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::Method;

use super::headers::notification_headers;
use super::prepared::Prepared;
use crate::config::Pacing;
use crate::ids::Rewriter;
use crate::notify::{Job, Notifier};

/// What a batch of notifications is built from.
pub struct Batch<'a> {
    /// Event indices of the recorded notifications, in order.
    pub events: &'a [usize],
    /// Offset of the trigger (the recorded response's end) the waits count from.
    pub after_ms: u64,
    /// The `callbackUri` the session learned, if any.
    pub callback_uri: Option<&'a str>,
    /// The session's batch number (message ids derive from it).
    pub number: u64,
    /// How long a refused connection is retried (a ringing call), if longer than usual.
    pub patience: Option<std::time::Duration>,
}

/// Rewrites and addresses a batch of notifications, paced from the trigger.
pub fn jobs(
    cassette: &Prepared,
    batch: &Batch<'_>,
    pacing: &Pacing,
    notifier: &Notifier,
    rw: &mut Rewriter<'_>,
) -> Vec<Job> {
    let offsets: Vec<u64> = batch
        .events
        .iter()
        .map(|&i| cassette.event(i).at_ms.saturating_sub(batch.after_ms))
        .collect();
    let waits = pacing.schedule(&offsets);
    batch
        .events
        .iter()
        .zip(waits)
        .map(|(&i, wait)| {
            let ev = cassette.event(i);
            let message = [ev.seq.to_be_bytes(), batch.number.to_be_bytes()].concat();
            let mut headers = notification_headers(&ev.request.headers, rw, &message);
            if !headers.contains_key(header::CONTENT_TYPE) && ev.request.body.json().is_some() {
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            let body = rw.rewrite_body(&ev.request.body);
            let uri = rw.rewrite_str(&ev.request.uri).into_owned();
            Job {
                seq: ev.seq,
                method: Method::from_bytes(ev.request.method.as_bytes()).unwrap_or(Method::POST),
                url: notifier.target(batch.callback_uri, &uri),
                headers,
                body: Bytes::from(body.to_bytes()),
                wait,
                batch_start: None,
                patience: batch.patience,
            }
        })
        .collect()
}
