//! HTTP plumbing shared by the server and the clients: the response body type (which
//! can tell when it has been sent), size-limited body reading, hop-by-hop headers and
//! header-map conversions. Knows nothing about Graph.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{BodyExt, Limited};
use tokio::sync::oneshot;

/// A complete response body that fires a signal once it has been handed to the
/// connection (or dropped), so work can wait until a response is out.
#[derive(Debug, Default)]
pub struct OutBody {
    data: Option<Bytes>,
    sent: Option<oneshot::Sender<()>>,
}

impl OutBody {
    pub fn new(data: impl Into<Bytes>) -> OutBody {
        let data = data.into();
        OutBody {
            data: (!data.is_empty()).then_some(data),
            sent: None,
        }
    }

    /// A receiver that resolves once the body has been written or dropped.
    pub fn on_sent(&mut self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.sent = Some(tx);
        rx
    }
}

impl Drop for OutBody {
    fn drop(&mut self) {
        if let Some(tx) = self.sent.take() {
            let _ = tx.send(());
        }
    }
}

impl HttpBody for OutBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.data.take() {
            Some(d) => Poll::Ready(Some(Ok(Frame::data(d)))),
            None => {
                if let Some(tx) = self.sent.take() {
                    let _ = tx.send(());
                }
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// The response type every handler returns.
pub type Resp = http::Response<OutBody>;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("body exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the body did not arrive within {0:?}")]
    TimedOut(std::time::Duration),
    #[error("body could not be read: {0}")]
    Read(String),
}

/// A request body that did not end by its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the body did not arrive within {0:?}")]
pub struct BodyTimedOut(pub std::time::Duration);

/// Reads a whole body, refusing more than `limit` bytes (checked against
/// `Content-Length` first, then while reading).
pub async fn read_body<B>(headers: &HeaderMap, body: B, limit: usize) -> Result<Bytes, BodyError>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(BodyError::TooLarge { limit }),
        Err(e) => match e.downcast_ref::<BodyTimedOut>() {
            Some(t) => Err(BodyError::TimedOut(t.0)),
            None => Err(BodyError::Read(e.to_string())),
        },
    }
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Connection-level headers a proxy must not forward (RFC 9110 §7.6.1), plus those
/// named in `Connection`.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(*n);
    }
}

/// Headers that describe one hop's framing rather than the message: a stored message
/// replayed later gets fresh ones (`Content-Length`, `Host`, hop-by-hop).
pub fn is_framing_header(name: &str) -> bool {
    ["content-length", "host"]
        .iter()
        .chain(HOP_BY_HOP)
        .any(|h| h.eq_ignore_ascii_case(name))
}

/// Request headers as a proxy forwards them: no hop-by-hop, no `Host` (the client
/// sets it), no `Content-Length` (recomputed), no `Accept-Encoding` (bodies stay
/// uncompressed, so what is stored stays readable).
pub fn proxy_headers(h: &HeaderMap) -> HeaderMap {
    let mut out = h.clone();
    strip_hop_by_hop(&mut out);
    out.remove(http::header::HOST);
    out.remove(http::header::ACCEPT_ENCODING);
    out.remove(http::header::CONTENT_LENGTH);
    out
}

/// Marks a request whose absolute target graphvcr resolved itself (a TLS stream's
/// `https://host`, a proxy's intercepted host), not one a client sent on a face.
#[derive(Debug, Clone, Copy)]
pub struct Resolved;

/// The target's path and query when the request is in origin form (`/path?query`;
/// HTTP/2 requests carry theirs as pseudo-headers and always are; a target graphvcr
/// resolved itself counts too): not `*`, not an absolute or authority form.
pub fn origin_form(parts: &http::request::Parts) -> Option<&str> {
    let pq = parts.uri.path_and_query()?.as_str();
    let absolute = parts.uri.scheme().is_some() || parts.uri.authority().is_some();
    let ours = parts.extensions.get::<Resolved>().is_some();
    (pq.starts_with('/') && (parts.version == http::Version::HTTP_2 || !absolute || ours)).then_some(pq)
}

/// `scheme://host[:port]` the client used to reach us (`X-Forwarded-Proto` honoured).
pub fn request_origin(h: &HeaderMap, uri: &http::Uri) -> Option<String> {
    let scheme = header_str(h, "x-forwarded-proto")
        .or(uri.scheme_str())
        .unwrap_or("http");
    let host = header_str(h, "host").or(uri.authority().map(http::uri::Authority::as_str))?;
    let mut origin = String::with_capacity(scheme.len() + 3 + host.len());
    for part in [scheme, "://", host] {
        origin.push_str(part);
    }
    Some(origin)
}

/// `a=1&b=x%20y` (a query or an `application/x-www-form-urlencoded` body) as decoded
/// pairs; `+` is a space, bad escapes stay as written.
pub fn form_pairs(s: &str) -> Vec<(String, String)> {
    fn decode(t: &str) -> String {
        let b = t.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                },
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Header pairs in order, values that are not UTF-8 replaced lossily.
pub fn to_pairs(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Builds a header map from pairs, skipping pairs that are not valid HTTP.
pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_str(v)) {
            h.append(n, v);
        }
    }
    h
}

/// A header's value as text, if present and visible ASCII.
pub fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// A response with a body and headers.
pub fn response(status: u16, headers: HeaderMap, body: impl Into<Bytes>) -> Resp {
    let mut r = http::Response::new(OutBody::new(body));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    *r.headers_mut() = headers;
    r
}

/// A JSON response.
pub fn json_response(status: u16, v: &serde_json::Value) -> Resp {
    json_bytes_response(status, serde_json::to_vec(v).unwrap_or_default())
}

/// A response with a JSON body already written.
pub fn json_bytes_response(status: u16, body: Vec<u8>) -> Resp {
    let mut h = HeaderMap::new();
    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response(status, h, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    #[tokio::test]
    async fn limits_are_enforced() {
        let h = HeaderMap::new();
        let ok = read_body(&h, Full::new(Bytes::from_static(b"12345")), 5).await.unwrap();
        assert_eq!(&ok[..], b"12345");
        let err = read_body(&h, Full::new(Bytes::from_static(b"123456")), 5)
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { limit: 5 }));
    }

    #[test]
    fn forms_decode() {
        let p = form_pairs(
            "grant_type=client_credentials&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default&x=a+b&bad=%zz%4",
        );
        assert_eq!(p[1].1, "https://graph.microsoft.com/.default");
        assert_eq!(p[2].1, "a b");
        assert_eq!(p[3].1, "%zz%4");
    }

    #[test]
    fn hop_by_hop_goes() {
        let mut h = from_pairs([
            ("connection", "x-foo, close"),
            ("x-foo", "1"),
            ("x-bar", "2"),
            ("te", "trailers"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(to_pairs(&h), vec![("x-bar".to_string(), "2".to_string())]);
    }

    #[tokio::test]
    async fn out_body_signals_when_sent() {
        let mut b = OutBody::new("x");
        let rx = b.on_sent();
        let collected = b.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"x");
        rx.await.unwrap();
    }
}
