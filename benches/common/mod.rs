//! What the criterion benches share: cassettes generated with `graphvcr::cassette`'s
//! model types (no big files committed), a replayer as `replay` builds it, and live
//! requests as the Graph face hands them over.

#![allow(dead_code)] // each bench binary uses its own part

use std::sync::Arc;

use bytes::Bytes;
use graphvcr::cassette::{Body, Cassette, Event, Kind, Meta, Request, Response, SledStore, Store};
use graphvcr::clock::FixedClock;
use graphvcr::http::client::HttpClient;
use graphvcr::notify::Notifier;
use graphvcr::replay::{Handled, Prepared, ReplayOptions, Replayer, SessionLimits, SessionSettings};
use serde_json::{json, Value};

/// The tenant of the bundled cassettes: a stable identity, never varied.
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// A GUID of its own per (kind, n).
pub fn guid(kind: u32, n: u64) -> String {
    format!("{kind:08x}-0000-4000-8000-{n:012x}")
}

/// The bundled `invite-one-participant` cassette.
pub fn bundled() -> Cassette {
    graphvcr::bundled::cassette("invite-one-participant")
        .expect("bundled cassette")
        .expect("the bundled cassette parses")
}

fn meta(name: String) -> Meta {
    Meta {
        name,
        recorded_at: "2026-11-27T10:00:00Z".into(),
        upstream: "https://graph.microsoft.com".into(),
    }
}

/// Every dashed GUID in `s` but the tenant made unique to `copy`.
fn vary(s: &str, copy: usize) -> String {
    graphvcr::ids::map_tokens(s, |_, text| {
        (text.len() == 36 && text != TENANT).then(|| format!("{}{copy:012x}", &text[..24]))
    })
    .into_owned()
}

fn vary_body(b: &mut Body, copy: usize) {
    if let Body::Json(v) = b {
        *v = serde_json::from_str(&vary(&v.to_string(), copy)).expect("varied JSON parses");
    }
}

/// `n` copies of the bundled invite (exchange + its 2 notifications), each with ids
/// of its own: a long recording of the same action, all on one path.
pub fn invites(n: usize) -> Cassette {
    let base = bundled();
    let per = base.events.len() as u64;
    let mut events = Vec::with_capacity(n * base.events.len());
    for copy in 0..n {
        let first = copy as u64 * per;
        for ev in &base.events {
            let mut e = ev.clone();
            e.seq = first + ev.seq;
            e.at_ms = copy as u64 * 2000 + ev.at_ms;
            e.follows = ev.follows.map(|f| first + f);
            e.request.uri = vary(&e.request.uri, copy);
            for (_, v) in e.request.headers.iter_mut().chain(e.response.headers.iter_mut()) {
                *v = vary(v, copy);
            }
            vary_body(&mut e.request.body, copy);
            vary_body(&mut e.response.body, copy);
            events.push(e);
        }
    }
    Cassette {
        meta: meta(format!("bench-invites-{n}")),
        events,
    }
}

/// The bundled invite followed by `k` notifications: its first (the operation's
/// outcome), then its roster update repeated, a few ms apart (each a notification of
/// its own: `deleted,updated,updated,...` per call at the sink).
pub fn burst(k: usize) -> Cassette {
    let base = bundled();
    let (invite, done, roster) = (&base.events[0], &base.events[1], &base.events[2]);
    let mut events = vec![invite.clone()];
    for i in 0..k {
        let mut e = if i == 0 { done.clone() } else { roster.clone() };
        e.seq = 1 + i as u64;
        e.at_ms = done.at_ms + i as u64;
        events.push(e);
    }
    Cassette {
        meta: meta(format!("bench-burst-{k}")),
        events,
    }
}

fn exchange(seq: usize, method: &str, uri: String, body: Value, response: Value) -> Event {
    let json_headers = || vec![("content-type".to_string(), "application/json".to_string())];
    let (headers, body) = match body {
        Value::Null => (Vec::new(), Body::Empty),
        v => (json_headers(), Body::Json(v)),
    };
    let mut resp_headers = json_headers();
    resp_headers.push(("request-id".into(), guid(0x4e9, seq as u64)));
    Event {
        kind: Kind::Exchange,
        seq: seq as u64,
        at_ms: seq as u64 * 100,
        duration_ms: Some(20),
        follows: None,
        request: Request {
            method: method.into(),
            uri,
            headers,
            body,
        },
        response: Response {
            status: Some(200),
            headers: resp_headers,
            body: Body::Json(response),
            error: None,
        },
    }
}

fn operation(op: &str, status: &str, ctx: &str) -> Value {
    json!({"@odata.type": "#microsoft.graph.commsOperation", "id": op, "status": status,
           "clientContext": ctx, "resultInfo": null})
}

/// `n` polls `GET /v1.0/communications/calls/{call}/operations/{op}` of one call, each
/// operation polled 10 times: many recordings sharing one path and no body.
pub fn polls(n: usize) -> Cassette {
    let call = guid(0xca11, 0);
    let events = (0..n)
        .map(|i| {
            let op = guid(0x0b, (i / 10) as u64);
            let status = if i % 10 == 9 { "completed" } else { "running" };
            let uri = format!("/v1.0/communications/calls/{call}/operations/{op}");
            exchange(i, "GET", uri, Value::Null, operation(&op, status, &guid(0xc0c0, 0)))
        })
        .collect();
    Cassette {
        meta: meta(format!("bench-polls-{n}")),
        events,
    }
}

/// The call-API requests a spread cassette cycles through (method, path after
/// `/communications/calls`, body with `{ctx}`/`{user}`/`{p}` placeholders).
const ACTIONS: [(&str, &str, &str); 27] = [
    (
        "POST",
        "",
        r##"{"callbackUri":"https://bot.example.com/api/calls","targets":[{"identity":{"user":{"id":"{user}"}}}],"requestedModalities":["audio"],"mediaConfig":{"@odata.type":"#microsoft.graph.serviceHostedMediaConfig"}}"##,
    ),
    ("GET", "/{call}", ""),
    ("DELETE", "/{call}", ""),
    (
        "POST",
        "/{call}/answer",
        r##"{"callbackUri":"https://bot.example.com/api/calls","acceptedModalities":["audio"],"mediaConfig":{"@odata.type":"#microsoft.graph.serviceHostedMediaConfig"}}"##,
    ),
    ("POST", "/{call}/reject", r##"{"reason":"busy"}"##),
    (
        "POST",
        "/{call}/redirect",
        r##"{"targets":[{"identity":{"user":{"id":"{user}"}}}]}"##,
    ),
    (
        "POST",
        "/{call}/transfer",
        r##"{"transferTarget":{"endpointType":"default","identity":{"user":{"id":"{user}"}}}}"##,
    ),
    (
        "POST",
        "/{call}/playPrompt",
        r##"{"clientContext":"{ctx}","prompts":[{"@odata.type":"#microsoft.graph.mediaPrompt","mediaInfo":{"uri":"https://cdn.example.com/beep.wav","resourceId":"{ctx}"}}]}"##,
    ),
    (
        "POST",
        "/{call}/recordResponse",
        r##"{"clientContext":"{ctx}","bargeInAllowed":true,"maxRecordDurationInSeconds":10}"##,
    ),
    (
        "POST",
        "/{call}/cancelMediaProcessing",
        r##"{"clientContext":"{ctx}"}"##,
    ),
    ("POST", "/{call}/subscribeToTone", r##"{"clientContext":"{ctx}"}"##),
    ("POST", "/{call}/keepAlive", "{}"),
    ("POST", "/{call}/mute", r##"{"clientContext":"{ctx}"}"##),
    ("POST", "/{call}/unmute", r##"{"clientContext":"{ctx}"}"##),
    (
        "POST",
        "/{call}/updateRecordingStatus",
        r##"{"clientContext":"{ctx}","status":"recording"}"##,
    ),
    ("POST", "/{call}/changeScreenSharingRole", r##"{"role":"viewer"}"##),
    ("GET", "/{call}/participants", ""),
    ("GET", "/{call}/participants/{p}", ""),
    (
        "POST",
        "/{call}/participants/invite",
        r##"{"participants":[{"identity":{"user":{"id":"{user}"}}}],"clientContext":"{ctx}"}"##,
    ),
    (
        "POST",
        "/{call}/participants/{p}/mute",
        r##"{"clientContext":"{ctx}"}"##,
    ),
    ("DELETE", "/{call}/participants/{p}", ""),
    ("GET", "/{call}/operations/{op}", ""),
    (
        "POST",
        "/{call}/participants/{p}/startHoldMusic",
        r##"{"clientContext":"{ctx}"}"##,
    ),
    (
        "POST",
        "/{call}/participants/{p}/stopHoldMusic",
        r##"{"clientContext":"{ctx}"}"##,
    ),
    ("GET", "/{call}/audioRoutingGroups", ""),
    (
        "POST",
        "/{call}/audioRoutingGroups",
        r##"{"routingMode":"multicast","sources":["{p}"],"receivers":["{p}"]}"##,
    ),
    ("GET", "/{call}/contentSharingSessions", ""),
];

fn fill(template: &str, i: usize) -> String {
    template
        .replace("{call}", &guid(0xca11, (i / 50) as u64))
        .replace("{p}", &guid(0x9a27, i as u64))
        .replace("{op}", &guid(0x0b, i as u64))
        .replace("{ctx}", &guid(0xc0c0, i as u64))
        .replace("{user}", &guid(0x05e7, i as u64))
}

/// `n` exchanges spread over the call API: 27 actions in both versions, 54 keys.
pub fn spread(n: usize) -> Cassette {
    let events = (0..n)
        .map(|i| {
            let (method, path, body) = ACTIONS[i % ACTIONS.len()];
            let version = if (i / ACTIONS.len()) % 2 == 0 { "v1.0" } else { "beta" };
            let uri = format!("/{version}/communications/calls{}", fill(path, i));
            let body = match body {
                "" => Value::Null,
                b => serde_json::from_str(&fill(b, i)).expect("action body parses"),
            };
            let op = guid(0x0b, i as u64);
            exchange(i, method, uri, body, operation(&op, "running", &guid(0xc0c0, i as u64)))
        })
        .collect();
    Cassette {
        meta: meta(format!("bench-spread-{n}")),
        events,
    }
}

/// A replayer as `replay --cassette X --timing fast` builds it, with no bot URL (its
/// notifications are built and queued, then reported undeliverable), and its store;
/// call inside a tokio runtime.
pub fn replayer(cassette: Cassette, max_sessions: usize) -> (Replayer, tempfile::TempDir) {
    graphvcr::http::client::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).expect("store"));
    let client = HttpClient::new(None, std::time::Duration::from_secs(1), 1 << 20).expect("client");
    let notifier = Arc::new(Notifier::new(client, None, Default::default()));
    let options = ReplayOptions {
        defaults: SessionSettings {
            pacing: graphvcr::config::Pacing {
                fast: true,
                ..Default::default()
            },
            ..Default::default()
        },
        limits: SessionLimits {
            idle_ms: 300_000,
            max: max_sessions,
        },
        ring_timeout: std::time::Duration::from_secs(30),
        hold_events: graphvcr::config::defaults::HOLD_EVENTS,
    };
    let prepared = Arc::new(Prepared::new(cassette));
    let clock = Arc::new(FixedClock::new(1_790_000_000_000));
    (Replayer::new(Some(prepared), store, clock, notifier, options), dir)
}

/// A request as the Graph face hands it to the replayer.
pub fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    let mut b = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "127.0.0.1:8060")
        .header("content-type", "application/json");
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(()).expect("request").into_parts().0
}

/// The documented invite for a call of its own (`n`): fresh call id, clientContext,
/// replacesCallId and invitee, so it starts a new session.
pub fn new_invite(n: u64) -> (http::request::Parts, Bytes) {
    let uri = format!("/beta/communications/calls/{}/participants/invite", guid(0xca11, n));
    (request("POST", &uri, &[]), Bytes::from(invite_body(n)))
}

pub fn invite_body(n: u64) -> String {
    format!(
        r##"{{"clientContext":"{}","participants":[{{"@odata.type":"#microsoft.graph.invitationParticipantInfo","identity":{{"@odata.type":"#microsoft.graph.identitySet","user":{{"@odata.type":"#microsoft.graph.identity","id":"{}","identityProvider":"AAD"}}}},"replacesCallId":"{}"}}]}}"##,
        guid(0xc0c0, n),
        guid(0x05e7, n),
        guid(0x9292, n)
    )
}

/// The status the replayer answered (0 for a forwarded miss).
pub fn status(h: &Handled) -> u16 {
    match h {
        Handled::Answer(r) | Handled::Delayed(_, r) => r.status().as_u16(),
        Handled::Forward(_) => 0,
    }
}

/// A tokio runtime like the server's, with one worker (deliveries run there while
/// the bench thread serves).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}
