//! Record mode, callback face: take Graph's notification POSTs, store each at once
//! (durable before Graph gets its answer), forward it to the bot meanwhile, answer
//! Graph with the bot's answer and write that answer into the stored notification.
//! Anything that is not a POST of a JSON body (a tunnel's health probe, a GET) is
//! forwarded and answered but not stored. Graph's callback token is redacted; its
//! non-secret claims are kept for replay to sign with.

use std::sync::Arc;

use bytes::Bytes;

use super::{forward_headers, recordable_target, recorded_event, recorded_reply, Recorder};
use crate::cassette::{Body, Kind, Response};
use crate::clock::Clock;
use crate::config::BotUrl;
use crate::error::ProxyError;
use crate::http::client::HttpClient;
use crate::http::wire::{self, Resp};
use crate::identity;
use crate::redact::shown_uri;
use crate::sync::{to_the_end, Panicked};

/// Which recording a notification joins: the one recording (record mode), or the
/// cassette a replay is appending a captured miss to (`on_miss: record`); `None`:
/// forward it only.
pub trait Recorders: Send + Sync + 'static {
    fn recorder_for(&self, body: &Body) -> Option<Arc<Recorder>>;
}

impl Recorders for Arc<Recorder> {
    fn recorder_for(&self, _body: &Body) -> Option<Arc<Recorder>> {
        Some(self.clone())
    }
}

/// Callback face: forward to the bot, answer Graph with the bot's answer, record the
/// notification.
pub struct CallbackFace {
    recorders: Box<dyn Recorders>,
    client: HttpClient,
    bot_url: BotUrl,
    clock: Arc<dyn Clock>,
}

impl CallbackFace {
    pub fn new(recorders: impl Recorders, client: HttpClient, bot_url: BotUrl, clock: Arc<dyn Clock>) -> Self {
        CallbackFace {
            recorders: Box::new(recorders),
            client,
            bot_url,
            clock,
        }
    }

    /// Forwards the notification and records it, to the end even when the caller hangs
    /// up mid-way (`sync::to_the_end`): it cancels neither the forwarding nor the
    /// recording.
    pub async fn handle(self: Arc<Self>, parts: http::request::Parts, body: Bytes) -> Resp {
        let face = self.clone();
        let (method, uri) = (parts.method.clone(), parts.uri.clone());
        let work = to_the_end(async move {
            match face.forward_and_record(&parts, body.clone()).await {
                Ok(r) => r,
                Err(e) => e.respond(&*face.clock, &parts.method, &parts.uri, &body),
            }
        });
        work.await.unwrap_or_else(|Panicked| {
            ProxyError::Internal("the notification failed (a panic, in the log)".into()).respond(
                &*self.clock,
                &method,
                &uri,
                b"",
            )
        })
    }

    /// Forwards to the bot: the answer for Graph and the answer as stored.
    async fn forward(&self, parts: &http::request::Parts, pq: &str, body: Bytes) -> (Resp, Response) {
        let headers = forward_headers(&parts.headers);
        let target = self.bot_url.target(pq);
        match self
            .client
            .send(parts.method.clone(), &target, headers, body.clone())
            .await
        {
            Ok(reply) => {
                let (h, recorded) = recorded_reply(&reply);
                (wire::response(reply.status, h, reply.body), recorded)
            }
            Err(e) => {
                tracing::warn!(target = %shown_uri(&target), "notification not delivered to the bot: {e}");
                let recorded = Response {
                    error: Some(format!("bot: {e}")),
                    ..Default::default()
                };
                let err = ProxyError::Upstream(e);
                (err.respond(&*self.clock, &parts.method, &parts.uri, &body), recorded)
            }
        }
    }

    async fn forward_and_record(&self, parts: &http::request::Parts, body: Bytes) -> Result<Resp, ProxyError> {
        let pq = recordable_target(parts)?;
        let mut kept = forward_headers(&parts.headers);
        identity::keep_callback_claims(&parts.headers, &mut kept);
        let mut ev = recorded_event(
            Kind::Notification,
            0,
            &parts.method,
            pq.clone(),
            &kept,
            &body,
            Response::default(),
        );
        if parts.method != http::Method::POST || !matches!(ev.request.body, Body::Json(_)) {
            tracing::debug!(method = %parts.method, uri = %shown_uri(&pq), "forwarded, not recorded (not a notification)");
            return Ok(self.forward(parts, &pq, body).await.0);
        }
        let Some(recorder) = self.recorders.recorder_for(&ev.request.body) else {
            tracing::debug!(uri = %shown_uri(&pq), "forwarded, not recorded (no recording it belongs to)");
            return Ok(self.forward(parts, &pq, body).await.0);
        };
        ev.at_ms = recorder.now_ms();
        let (arrived, (resp, recorded)) = tokio::join!(recorder.note_arrived(ev), self.forward(parts, &pq, body));
        let arrived = arrived?;
        recorder.note_answered(arrived, recorded);
        Ok(resp)
    }
}
