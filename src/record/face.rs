//! Record mode, Graph face: forward the bot's request upstream, store the exchange
//! (redacted, durable before the bot sees the response), respond.

use std::sync::Arc;

use bytes::Bytes;

use super::{forward_headers, recordable_target, recorded_event, recorded_reply, Recorder};
use crate::cassette::Kind;
use crate::clock::Clock;
use crate::config::UpstreamUrl;
use crate::error::ProxyError;
use crate::http::client::HttpClient;
use crate::http::wire::{self, Resp};
use crate::redact::shown_uri;
use crate::sync::{to_the_end, Panicked};

/// The record-mode Graph face: forwards to the upstream and records.
pub struct RecordFace {
    recorder: Arc<Recorder>,
    upstream: HttpClient,
    upstream_url: UpstreamUrl,
    clock: Arc<dyn Clock>,
}

impl RecordFace {
    pub fn new(
        recorder: Arc<Recorder>,
        upstream: HttpClient,
        upstream_url: UpstreamUrl,
        clock: Arc<dyn Clock>,
    ) -> Self {
        RecordFace {
            recorder,
            upstream,
            upstream_url,
            clock,
        }
    }

    /// The recorder this face stores into.
    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.recorder
    }

    /// Forwards one request and records it; every failure becomes a Graph error. The
    /// work runs to its end even when the bot hangs up (`sync::to_the_end`): a request
    /// Graph acted on is never kept out of the cassette.
    pub async fn handle(self: Arc<Self>, parts: http::request::Parts, body: Bytes) -> Resp {
        self.handle_recorded(parts, body).await.0
    }

    /// As `handle`, also saying which seq the exchange was stored as.
    pub async fn handle_recorded(self: Arc<Self>, parts: http::request::Parts, body: Bytes) -> (Resp, Option<u64>) {
        let face = self.clone();
        let (method, uri) = (parts.method.clone(), parts.uri.clone());
        let work = to_the_end(async move {
            match face.forward(&parts, body.clone()).await {
                Ok((r, seq)) => (r, Some(seq)),
                Err(e) => (e.respond(&*face.clock, &parts.method, &parts.uri, &body), None),
            }
        });
        work.await.unwrap_or_else(|Panicked| {
            let err = ProxyError::Internal("the exchange failed (a panic, in the log)".into());
            (err.respond(&*self.clock, &method, &uri, b""), None)
        })
    }

    async fn forward(&self, parts: &http::request::Parts, body: Bytes) -> Result<(Resp, u64), ProxyError> {
        let pq = recordable_target(parts)?;
        let headers = forward_headers(&parts.headers);
        let at_ms = self.recorder.now_ms();
        let in_flight = self.recorder.begin(&parts.method);
        let started = self.clock.mono_ms();
        let reply = self
            .upstream
            .send(
                parts.method.clone(),
                &self.upstream_url.join(&pq),
                headers.clone(),
                body.clone(),
            )
            .await?;
        let duration_ms = self.clock.mono_ms().saturating_sub(started);
        let (resp_headers, response) = recorded_reply(&reply);
        let shown = shown_uri(&pq).into_owned();
        let mut ev = recorded_event(Kind::Exchange, at_ms, &parts.method, pq, &headers, &body, response);
        ev.duration_ms = Some(duration_ms);
        let seq = self.recorder.store_exchange(ev, in_flight).await?;
        tracing::debug!(seq, method = %parts.method, uri = %shown, status = reply.status, duration_ms, "exchange recorded");
        Ok((wire::response(reply.status, resp_headers, reply.body), seq))
    }
}
