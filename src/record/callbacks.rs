//! Record mode, callback face: take Graph's notification POSTs, forward each to the
//! bot, answer Graph with the bot's answer, and hand the notification (with the
//! non-secret claims of Graph's callback token) to the recorder.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::{forward_headers, recorded_event, recorded_reply, Recorder};
use crate::cassette::{Kind, Response};
use crate::clock::Clock;
use crate::config::BotUrl;
use crate::error::ProxyError;
use crate::http::client::HttpClient;
use crate::http::wire::{self, Resp};
use crate::identity;

/// Record mode, callback face: forward to the bot, answer Graph with the bot's answer,
/// record the notification.
pub struct CallbackFace {
    recorder: Arc<Recorder>,
    client: HttpClient,
    bot_url: BotUrl,
    clock: Arc<dyn Clock>,
}

impl CallbackFace {
    pub fn new(recorder: Arc<Recorder>, client: HttpClient, bot_url: BotUrl, clock: Arc<dyn Clock>) -> Self {
        CallbackFace {
            recorder,
            client,
            bot_url,
            clock,
        }
    }

    /// Forwards the notification and records it. The work runs in its own task, so a
    /// caller that hangs up mid-way cancels neither the forwarding nor the recording.
    pub async fn handle(self: Arc<Self>, parts: http::request::Parts, body: Bytes) -> Resp {
        let (tx, rx) = oneshot::channel();
        let face = self.clone();
        let (method, uri) = (parts.method.clone(), parts.uri.clone());
        tokio::spawn(async move { face.forward_and_record(parts, body, tx).await });
        rx.await.unwrap_or_else(|_| {
            ProxyError::Internal("the notification task ended without an answer".into()).respond(
                &*self.clock,
                &method,
                &uri,
                b"",
            )
        })
    }

    async fn forward_and_record(&self, parts: http::request::Parts, body: Bytes, answer: oneshot::Sender<Resp>) {
        let arrival = self.recorder.arrival();
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        let headers = forward_headers(&parts.headers);
        let target = self.bot_url.target(&pq);
        let result = self
            .client
            .send(parts.method.clone(), &target, headers.clone(), body.clone())
            .await;
        let (resp, recorded) = match result {
            Ok(reply) => {
                let (h, recorded) = recorded_reply(&reply);
                (wire::response(reply.status, h, reply.body), recorded)
            }
            Err(e) => {
                tracing::warn!(%target, "notification not delivered to the bot: {e}");
                let recorded = Response {
                    error: Some(format!("bot: {e}")),
                    ..Default::default()
                };
                let err = ProxyError::Upstream(e);
                (err.respond(&*self.clock, &parts.method, &parts.uri, &body), recorded)
            }
        };
        let _ = answer.send(resp);
        // Graph's token itself is redacted; its non-secret claims are kept for replay
        let mut kept = headers;
        identity::keep_callback_claims(&parts.headers, &mut kept);
        let ev = recorded_event(
            Kind::Notification,
            arrival.at_ms,
            &parts.method,
            pq,
            &kept,
            &body,
            recorded,
        );
        if let Err(e) = self.recorder.store_notification(ev, arrival).await {
            tracing::error!("notification could not be stored: {e}");
        }
    }
}
