//! Request normalisation and matching: an arbitrary method, target and body, probed and
//! matched against a bundled cassette (index, scoring, miss diff), then served by a
//! replayer (binding, rewriting, scheduling) — never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use graphvcr::cassette::{json, Body, SledStore, Store};
use graphvcr::clock::FixedClock;
use graphvcr::http::client::HttpClient;
use graphvcr::matching::Probe;
use graphvcr::notify::Notifier;
use graphvcr::replay::{Prepared, Replayer, SessionLimits};
use libfuzzer_sys::fuzz_target;

struct World {
    rt: tokio::runtime::Runtime,
    prepared: Arc<Prepared>,
    replayer: Replayer,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        graphvcr::http::client::install_crypto_provider();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let _guard = rt.enter();
        let bytes = include_bytes!("../../cassettes/invite-one-participant.json");
        let prepared = Arc::new(Prepared::new(json::parse(bytes, "invite").expect("bundled cassette")));
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).expect("store"));
        let client = HttpClient::new(None, std::time::Duration::from_millis(50), 1 << 20).expect("client");
        // no bot: notifications fail fast and are reported, which is fine here
        let notifier = Arc::new(Notifier::new(client, None, None, Default::default()));
        let limits = SessionLimits { idle_ms: 1_000, max: 1_000 };
        let replayer = Replayer::new(
            prepared.clone(),
            store,
            Arc::new(FixedClock::new(0)),
            notifier,
            graphvcr::config::Pacing::default(),
            limits,
        );
        drop(_guard);
        World { rt, prepared, replayer, _dir: dir }
    })
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let method = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let uri = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let raw = parts.next().unwrap_or_default().to_vec();
    let body = Body::from_bytes(&raw);
    let w = world();
    if let Some(probe) = Probe::new(&method, &uri, &body) {
        let _ = probe.key();
        let _ = w.prepared.index().fits(&probe);
        let _ = w.prepared.index().explain_miss(&probe);
    }
    let Ok(req) = http::Request::builder().method(method.as_str()).uri(uri.as_str()).body(()) else {
        return;
    };
    let (parts, ()) = req.into_parts();
    let _guard = w.rt.enter();
    let _ = w.replayer.handle(&parts, Bytes::from(raw));
});
