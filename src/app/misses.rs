//! What a replay miss does when its session says so: forwarded upstream as it is
//! (`on_miss: passthrough`), or forwarded, stored in the session's cassette (redacted,
//! durable before the bot sees the answer), appended and served (`on_miss: record`).
//! Lives in `app` because it joins the two modes: replay never imports record.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::cassette::Body;
use crate::cassette::Store;
use crate::clock::Clock;
use crate::config::UpstreamUrl;
use crate::error::ProxyError;
use crate::http::client::HttpClient;
use crate::http::wire::{self, Resp};
use crate::record::{forward_headers, recorded_reply, RecordFace, Recorder, Recorders};
use crate::redact::Rules;
use crate::replay::{Forward, Forwarded, Replayer};
use crate::sync::lock;

/// The recordings captured misses are appended to, for the callback face: a
/// notification joins the one whose exchanges it names.
pub struct MissRecorders(pub Arc<Misses>);

impl Recorders for MissRecorders {
    fn recorder_for(&self, body: &Body) -> Option<Arc<Recorder>> {
        self.0.recorders().into_iter().find(|r| r.relates(body))
    }
}

/// Forwards the misses sessions hand back.
pub struct Misses {
    client: HttpClient,
    upstream: UpstreamUrl,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// One recorder per cassette being appended to.
    recorders: Mutex<HashMap<String, Arc<RecordFace>>>,
}

impl Misses {
    pub fn new(client: HttpClient, upstream: UpstreamUrl, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Misses {
        Misses {
            client,
            upstream,
            store,
            clock,
            recorders: Mutex::new(HashMap::new()),
        }
    }

    /// The cassettes appended to so far.
    pub fn cassettes(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.recorders).keys().cloned().collect();
        names.sort();
        names
    }

    /// The recorders appending to cassettes so far (their callbacks, their drain).
    pub fn recorders(&self) -> Vec<Arc<Recorder>> {
        lock(&self.recorders).values().map(|f| f.recorder().clone()).collect()
    }

    fn face_for(&self, cassette: &str) -> Result<Arc<RecordFace>, ProxyError> {
        let mut faces = lock(&self.recorders);
        if let Some(f) = faces.get(cassette) {
            return Ok(f.clone());
        }
        let rec = Recorder::appending(cassette, self.store.clone(), self.clock.clone(), Rules::default())?;
        let face = Arc::new(RecordFace::new(
            Arc::new(rec),
            self.client.clone(),
            self.upstream.clone(),
            self.clock.clone(),
        ));
        faces.insert(cassette.to_string(), face.clone());
        Ok(face)
    }

    /// Forwards one miss and reports what happened to its session.
    pub async fn forward(&self, replayer: &Replayer, f: Forward, parts: http::request::Parts, body: Bytes) -> Resp {
        let request = replayer.shown(&parts);
        let (mut resp, recorded_seq) = if f.record {
            match self.face_for(&f.cassette) {
                Ok(face) => face.handle_recorded(parts, body).await,
                Err(e) => (e.respond(&*self.clock, &parts.method, &parts.uri, &body), None),
            }
        } else {
            (self.pass(&parts, body).await, None)
        };
        if let Some(seq) = recorded_seq {
            if let Err(e) = replayer.adopt_recorded(&f.session, &f.cassette, seq) {
                tracing::warn!(cassette = %f.cassette, seq, "recorded, but not served from the cassette yet: {e}");
            }
        }
        if let Ok(v) = http::HeaderValue::from_str(&f.session) {
            resp.headers_mut()
                .insert(http::HeaderName::from_static("x-graphvcr-session"), v);
        }
        let outcome = resp.status().as_u16().to_string();
        tracing::info!(session = %f.session, %request, %outcome, record = f.record, "miss forwarded upstream");
        replayer.note_forwarded(
            &f.session,
            Forwarded {
                request,
                outcome,
                recorded_seq,
            },
        );
        resp
    }

    /// `graphvcr passthrough`: forwards and logs, storing nothing.
    pub async fn pass_through(&self, parts: http::request::Parts, body: Bytes) -> Resp {
        let resp = self.pass(&parts, body).await;
        tracing::info!(method = %parts.method, uri = %crate::matching::clip(&parts.uri.to_string(), 300), status = resp.status().as_u16(), "passed through");
        resp
    }

    /// Forwards a request upstream and returns the answer, storing nothing.
    async fn pass(&self, parts: &http::request::Parts, body: Bytes) -> Resp {
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let sent = self
            .client
            .send(
                parts.method.clone(),
                &self.upstream.join(pq),
                forward_headers(&parts.headers),
                body.clone(),
            )
            .await;
        match sent {
            Ok(reply) => {
                let (headers, _) = recorded_reply(&reply);
                wire::response(reply.status, headers, reply.body)
            }
            Err(e) => ProxyError::Upstream(e).respond(&*self.clock, &parts.method, &parts.uri, &body),
        }
    }
}
