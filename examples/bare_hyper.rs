//! A bare hyper 1.x server that answers every request with one fixed response: the
//! baseline `scripts/bench.sh` compares graphvcr replay with, and the fast local "Graph"
//! that `record` is measured in front of.
//!
//! ```text
//! cargo run --release --example bare_hyper -- [--listen 127.0.0.1:0] [--response FILE]
//! ```
//!
//! Without `--response` it answers like Graph: the recorded response of the bundled
//! `invite-one-participant` cassette's invite (`200`, `Location`, the
//! `inviteParticipantsOperation` body). `--response FILE` serves a raw HTTP/1.1
//! response as `curl -si` prints it (bench.sh captures graphvcr's own answer to the
//! invite, so both sides send the same bytes); framing headers (`content-length`,
//! `date`, `connection`, `transfer-encoding`) are left to hyper, as graphvcr does.
//!
//! The serving stack is graphvcr's minus graphvcr: a tokio multi-thread runtime with
//! the default workers, hyper-util's auto builder (HTTP/1.1 and HTTP/2), `TCP_NODELAY`,
//! the request body read to its end before answering. Prints `listening on http://ADDR`
//! once it accepts connections.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

/// The fixed answer.
struct Fixed {
    status: http::StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

const FRAMING: [&str; 5] = [
    "content-length",
    "date",
    "connection",
    "transfer-encoding",
    "keep-alive",
];

fn header(name: &str, value: &str) -> Option<(HeaderName, HeaderValue)> {
    if FRAMING.contains(&name.to_ascii_lowercase().as_str()) {
        return None;
    }
    Some((
        HeaderName::from_bytes(name.as_bytes()).ok()?,
        HeaderValue::from_str(value.trim()).ok()?,
    ))
}

/// The bundled invite cassette's recorded response: how Graph answered the invite.
fn graph_invite() -> Fixed {
    let cassette = graphvcr::bundled::cassette("invite-one-participant")
        .expect("the invite cassette is bundled")
        .expect("the bundled invite cassette parses");
    let exchange = cassette.events.first().expect("the invite cassette has its exchange");
    let r = &exchange.response;
    Fixed {
        status: http::StatusCode::from_u16(r.status.unwrap_or(200)).expect("a recorded status"),
        headers: r.headers.iter().filter_map(|(n, v)| header(n, v)).collect(),
        body: Bytes::from(r.body.to_bytes()),
    }
}

/// A raw HTTP/1.1 response (`curl -si` output): status line, headers, blank line, body.
fn from_file(path: &str) -> Fixed {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read --response {path}: {e}"));
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{path}: no blank line after the headers (expected `curl -si` output)"));
    let head = std::str::from_utf8(&raw[..split]).expect("response head is UTF-8");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let code: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{path}: bad status line `{status_line}`"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .filter_map(|(n, v)| header(n, v))
        .collect();
    Fixed {
        status: http::StatusCode::from_u16(code).expect("a valid status code"),
        headers,
        body: Bytes::copy_from_slice(&raw[split + 4..]),
    }
}

fn args() -> (String, Option<String>) {
    let mut listen = "127.0.0.1:0".to_string();
    let mut response = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--listen" => listen = it.next().expect("--listen needs ADDR"),
            "--response" => response = Some(it.next().expect("--response needs FILE")),
            other => panic!("unknown argument `{other}` (usage: bare_hyper [--listen ADDR] [--response FILE])"),
        }
    }
    (listen, response)
}

#[tokio::main]
async fn main() {
    let (listen, response) = args();
    let fixed = Arc::new(response.as_deref().map_or_else(graph_invite, from_file));
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .unwrap_or_else(|e| panic!("cannot listen on {listen}: {e}"));
    let addr = listener.local_addr().expect("a bound listener has an address");
    println!("listening on http://{addr}");
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (fixed, builder) = (fixed.clone(), builder.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let fixed = fixed.clone();
                async move {
                    // read the request to its end, as any real server must
                    let _ = req.into_body().collect().await;
                    let mut resp = http::Response::new(Full::new(fixed.body.clone()));
                    *resp.status_mut() = fixed.status;
                    *resp.headers_mut() = fixed.headers.clone();
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}
