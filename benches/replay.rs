//! Replay hot path: matching a live invite against a cassette and producing the
//! rewritten response and notifications (run: `cargo bench --bench replay`).

use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use graphvcr::cassette::{json, SledStore, Store};
use graphvcr::clock::FixedClock;
use graphvcr::http::client::HttpClient;
use graphvcr::matching::{MatchMode, Probe};
use graphvcr::notify::Notifier;
use graphvcr::replay::{Handled, Prepared, ReplayOptions, Replayer, SessionLimits, SessionSettings};

const INVITE: &str = r##"{"clientContext":"0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0","participants":[{"@odata.type":"#microsoft.graph.invitationParticipantInfo","identity":{"@odata.type":"#microsoft.graph.identitySet","user":{"@odata.type":"#microsoft.graph.identity","id":"11112222-3333-4444-5555-666677778888","identityProvider":"AAD"}},"replacesCallId":"aaaabbbb-cccc-4ddd-8eee-ffff00001111"}]}"##;

fn status(h: Handled) -> u16 {
    match h {
        Handled::Answer(r) | Handled::Delayed(_, r) => r.status().as_u16(),
        Handled::Forward(_) => 0,
    }
}

fn bench(c: &mut Criterion) {
    let bytes = std::fs::read("cassettes/invite-one-participant.json").expect("run from the repository root");
    let cassette = json::parse(&bytes, "invite-one-participant.json").expect("bundled cassette parses");
    let body = graphvcr::cassette::Body::from_bytes(INVITE.as_bytes());
    let uri = "/beta/communications/calls/12345678-90ab-4cde-8f01-234567890abc/participants/invite";

    c.bench_function("prepare cassette", |b| b.iter(|| Prepared::new(cassette.clone())));
    let prepared = Arc::new(Prepared::new(cassette.clone()));
    c.bench_function("match invite (probe + index)", |b| {
        b.iter(|| {
            let p = Probe::new("POST", uri, &body).expect("graph path");
            prepared.index().candidates(&p, MatchMode::Default).groups.len()
        })
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    graphvcr::http::client::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).expect("store"));
    let client = HttpClient::new(None, std::time::Duration::from_secs(1), 1 << 20).expect("client");
    let notifier = Arc::new(Notifier::new(client, None, Default::default()));
    let limits = SessionLimits {
        idle_ms: 300_000,
        max: 1_000_000,
    };
    let options = ReplayOptions {
        defaults: SessionSettings::default(),
        limits,
        ring_timeout: std::time::Duration::from_secs(30),
    };
    let replayer = Replayer::new(Some(prepared), store, Arc::new(FixedClock::new(0)), notifier, options);
    let mut n = 0u64;
    c.bench_function("serve invite in a new session (match, bind, rewrite, schedule)", |b| {
        b.iter(|| {
            n += 1;
            let req = http::Request::builder()
                .method("POST")
                .uri(uri)
                .header("content-type", "application/json")
                .header("x-graphvcr-session", format!("bench-{n}"))
                .body(())
                .expect("request");
            let (parts, ()) = req.into_parts();
            status(replayer.handle(&parts, &Bytes::from_static(INVITE.as_bytes())))
        })
    });
    c.bench_function("serve a repeated request in a live session", |b| {
        b.iter(|| {
            let req = http::Request::builder()
                .method("POST")
                .uri(uri)
                .header("content-type", "application/json")
                .header("x-graphvcr-session", "bench-live")
                .body(())
                .expect("request");
            let (parts, ()) = req.into_parts();
            status(replayer.handle(&parts, &Bytes::from_static(INVITE.as_bytes())))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
