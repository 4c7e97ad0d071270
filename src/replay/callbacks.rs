//! Building the notifications a served exchange (or a ringing session) triggers:
//! each recorded notification rewritten for the live session, addressed and paced.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::Method;

use super::bodies::Loaded;
use super::headers::notification_headers;
use super::settings::SessionSettings;
use crate::config::BotUrl;
use crate::ids::Rewriter;
use crate::notify::Job;

/// What a batch of notifications is built from.
pub struct Batch<'a> {
    /// The recorded notifications, in order (`Prepared::load_all`).
    pub events: &'a [Arc<Loaded>],
    /// Offset of the trigger (the recorded response's end) the waits count from.
    pub after_ms: u64,
    /// The `callbackUri` the session learned, if any.
    pub callback_uri: Option<&'a str>,
    /// The session's batch number (message ids derive from it).
    pub number: u64,
    /// How long a refused connection is retried (a ringing call), if longer than usual.
    pub patience: Option<std::time::Duration>,
    /// The session's settings: pacing and where notifications go.
    pub settings: &'a SessionSettings,
}

/// Why a notification cannot go anywhere (one text for every such notification).
const NOWHERE: &str = "no bot URL given and no callbackUri learned in this session";

/// Where a notification goes: the live `callbackUri` when the session learned one,
/// else the recorded path; the session's bot URL supplies scheme, host, port and
/// prefix (the bot's public tunnel URL then still reaches the local bot).
pub fn target(
    bot: Option<&BotUrl>,
    callback_uri: Option<&str>,
    recorded_uri: &str,
) -> Result<String, Cow<'static, str>> {
    match (callback_uri, bot) {
        (Some(cb), Some(bot)) => {
            let pq = cb
                .parse::<http::Uri>()
                .ok()
                .and_then(|u| u.path_and_query().map(|p| p.as_str().to_string()))
                .unwrap_or_else(|| "/".to_string());
            Ok(bot.target(&pq))
        }
        (Some(cb), None) => Ok(cb.to_string()),
        (None, Some(bot)) => Ok(bot.target(recorded_uri)),
        (None, None) => Err(Cow::Borrowed(NOWHERE)),
    }
}

/// Rewrites and addresses a batch of notifications, paced from the trigger.
pub fn jobs(batch: &Batch<'_>, rw: &mut Rewriter<'_>) -> Vec<Job> {
    let offsets: Vec<u64> = batch
        .events
        .iter()
        .map(|l| l.event().at_ms.saturating_sub(batch.after_ms))
        .collect();
    let waits = batch.settings.pacing.schedule(&offsets);
    batch
        .events
        .iter()
        .zip(waits)
        .map(|(loaded, wait)| {
            let ev = loaded.event();
            let mut job = Job {
                seq: ev.seq,
                method: Method::from_bytes(ev.request.method.as_bytes()).unwrap_or(Method::POST),
                url: target(batch.settings.bot_url.as_ref(), batch.callback_uri, &ev.request.uri),
                headers: HeaderMap::new(),
                body: Bytes::new(),
                wait,
                batch_start: None,
                patience: batch.patience,
            };
            if job.url.is_err() {
                // nowhere to go: reported undeliverable, not built (nor its ids minted)
                return job;
            }
            let uri = rw.rewrite_str(&ev.request.uri).into_owned();
            job.url = target(batch.settings.bot_url.as_ref(), batch.callback_uri, &uri);
            let message = [ev.seq.to_be_bytes(), batch.number.to_be_bytes()].concat();
            job.headers = notification_headers(loaded.sent_headers(), rw, &message);
            if !job.headers.contains_key(header::CONTENT_TYPE) && loaded.sent().is_json() {
                job.headers
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            job.body = Bytes::from(rw.rewrite_template(loaded.sent()));
            job
        })
        .collect()
}
