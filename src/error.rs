//! Errors a request can end in, each saying who failed: the bot (4xx), the upstream
//! (502/504), the store or graphvcr itself (500). Rendered as Graph-shaped bodies.

use crate::cassette::StoreError;
use crate::clock::Clock;
use crate::graph;
use crate::http::client::ClientError;
use crate::http::wire::{self, Resp};
use crate::ids::Seed;
use crate::redact::shown_uri;

/// Who is to blame for a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    Bot,
    Upstream,
    Store,
    Proxy,
}

/// A request that cannot be answered normally.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{0}")]
    BadRequest(String),
    #[error("request body exceeds the limit of {0} bytes")]
    TooLarge(usize),
    /// A request the HTTP layer refuses (408 body too slow, 431 head too large).
    #[error("{1}")]
    Framing(u16, String),
    #[error("{message}")]
    Miss { message: String, nearest: Option<u64> },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    UnsupportedMedia(String),
    /// A fault injected on purpose (`429@...`, `503@...`): Graph's answer to a
    /// throttled or failing request.
    #[error("fault injected by graphvcr: {status}")]
    Injected { status: u16, retry_after: Option<u64> },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Busy(String),
    #[error("upstream: {0}")]
    Upstream(#[from] ClientError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl ProxyError {
    pub fn status(&self) -> u16 {
        match self {
            ProxyError::BadRequest(_) => 400,
            ProxyError::TooLarge(_) => 413,
            ProxyError::Framing(status, _) => *status,
            ProxyError::Miss { .. } | ProxyError::NotFound(_) => 404,
            ProxyError::Refused(_) => 403,
            ProxyError::UnsupportedMedia(_) => 415,
            ProxyError::Injected { status, .. } => *status,
            ProxyError::Conflict(_) => 409,
            ProxyError::Busy(_) => 503,
            ProxyError::Upstream(ClientError::Timeout { .. }) => 504,
            ProxyError::Upstream(_) => 502,
            ProxyError::Store(_) | ProxyError::Internal(_) => 500,
        }
    }

    pub fn blame(&self) -> Blame {
        match self {
            ProxyError::BadRequest(_)
            | ProxyError::TooLarge(_)
            | ProxyError::Framing(..)
            | ProxyError::Miss { .. }
            | ProxyError::NotFound(_)
            | ProxyError::Refused(_)
            | ProxyError::UnsupportedMedia(_)
            | ProxyError::Conflict(_) => Blame::Bot,
            ProxyError::Upstream(_) | ProxyError::Injected { .. } => Blame::Upstream,
            ProxyError::Store(_) => Blame::Store,
            ProxyError::Busy(_) | ProxyError::Internal(_) => Blame::Proxy,
        }
    }

    /// Who failed, as `innerError.graphvcr-failed` names it.
    fn failed(&self) -> &'static str {
        let blame = match self.blame() {
            Blame::Bot => "request",
            Blame::Upstream => "upstream",
            Blame::Store => "store",
            Blame::Proxy => "graphvcr",
        };
        if matches!(self, ProxyError::Injected { .. }) {
            "injected"
        } else {
            blame
        }
    }

    /// The one way any face answers a failed request: logged, and rendered as a
    /// Graph-shaped error whose `request-id` derives from the request itself (method,
    /// target, body) and whose date comes from the injected clock.
    pub fn respond(&self, clock: &dyn Clock, method: &http::Method, uri: &http::Uri, body: &[u8]) -> Resp {
        let target = uri_text(uri);
        match self.blame() {
            Blame::Bot | Blame::Upstream => tracing::warn!(%method, uri = %shown_uri(&target), "{self}"),
            _ => tracing::error!(%method, uri = %shown_uri(&target), "{self}"),
        }
        let rid = Seed::derive([method.as_str().as_bytes(), target.as_bytes(), body]).guid("request-id", b"");
        self.to_response(&rid, &crate::clock::graph_date(clock.unix_ms()))
    }

    /// The Graph-shaped error response.
    pub fn to_response(&self, request_id: &str, date: &str) -> Resp {
        let status = self.status();
        let inner = graph::InnerError {
            request_id,
            date,
            failed: Some(self.failed()),
            nearest_seq: match self {
                ProxyError::Miss { nearest, .. } => *nearest,
                _ => None,
            },
        };
        let message = format_args!("graphvcr: {self}");
        let body = graph::ErrorBody::new(graph::error_code(status), &message, inner).to_bytes();
        let mut resp = wire::json_bytes_response(status, body);
        if let ProxyError::Injected {
            retry_after: Some(secs),
            ..
        } = self
        {
            if let Ok(v) = http::HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(http::header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

/// The request target as `Uri`'s `Display` writes it, borrowed for the usual
/// origin-form target (`/path?query`) instead of written out again.
fn uri_text(uri: &http::Uri) -> std::borrow::Cow<'_, str> {
    match (uri.scheme(), uri.authority(), uri.path_and_query()) {
        (None, None, Some(pq)) => pq.as_str().into(),
        _ => uri.to_string().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::uri_text;

    #[test]
    fn a_target_reads_as_the_uri_writes_it() {
        for t in [
            "/v1.0/communications/calls?$top=1",
            "/",
            "*",
            "https://graph.microsoft.com/v1.0/x?a=b",
            "graph.microsoft.com:443",
        ] {
            let uri: http::Uri = t.parse().unwrap();
            assert_eq!(uri_text(&uri), uri.to_string(), "{t}");
        }
    }
}
