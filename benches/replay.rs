//! Replay's work per request, in process (run: `cargo bench --bench replay`): a
//! new-call invite at the session limit (a session created and the least recently
//! used one evicted every time), a repeat in one live session, building a served
//! exchange's notifications, and a poll served (and one missed) in a live session of a
//! cassette with 100, 10k and 100k recordings on that one path.

mod common;

/// The server's allocator (`src/main.rs`), so these figures are the server's work: on
/// glibc's malloc, building notifications measured mostly its page faults.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use graphvcr::config::{BotUrl, Pacing};
use graphvcr::ids::{IdTable, Rewriter, Seed};
use graphvcr::replay::{notification_jobs, NotificationBatch, Prepared, SessionSettings};

/// `--max-sessions`' default: the new-call bench runs at this limit.
const MAX_SESSIONS: usize = 10_000;

/// Panics (after the measurement) if any answer was not a `200`: a bench of errors
/// measures nothing.
fn all_ok(what: &str, bad: u64) {
    assert_eq!(bad, 0, "{what}: {bad} requests were not answered 200");
}

fn new_call_at_the_limit(c: &mut Criterion) {
    let (replayer, _dir) = common::replayer(common::bundled(), MAX_SESSIONS);
    let mut n = 0u64;
    let mut bad = 0u64;
    let t = Instant::now();
    for _ in 0..MAX_SESSIONS {
        n += 1;
        let (parts, body) = common::new_invite(n);
        bad += u64::from(common::status(&replayer.handle_now(&parts, &body)) != 200);
    }
    eprintln!("{MAX_SESSIONS} sessions created in {:?}", t.elapsed());
    all_ok("filling the sessions", bad);
    c.bench_function("serve/new-call invite at the session limit (create + evict)", |b| {
        b.iter_batched(
            || {
                n += 1;
                common::new_invite(n)
            },
            |(parts, body)| bad += u64::from(common::status(&replayer.handle_now(&parts, &body)) != 200),
            BatchSize::SmallInput,
        )
    });
    all_ok("new-call invites", bad);
}

fn repeat_in_a_live_session(c: &mut Criterion) {
    let (replayer, _dir) = common::replayer(common::bundled(), MAX_SESSIONS);
    let uri = format!(
        "/beta/communications/calls/{}/participants/invite",
        common::guid(0xca11, 1)
    );
    let parts = common::request("POST", &uri, &[("x-graphvcr-session", "bench-live")]);
    let body = Bytes::from(common::invite_body(1));
    let mut bad = 0u64;
    c.bench_function("serve/repeat in one live session", |b| {
        b.iter(|| bad += u64::from(common::status(&replayer.handle_now(&parts, &body)) != 200))
    });
    all_ok("repeats", bad);
}

fn notifications(c: &mut Criterion) {
    let prepared = Prepared::new(common::bundled());
    let settings = SessionSettings {
        bot_url: Some(BotUrl::parse("http://127.0.0.1:3978").expect("bot url")),
        pacing: Pacing {
            fast: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let seed = Seed::derive([&b"bench"[..]]);
    let scoped = IdTable::default();
    // the table as serving the invite's response left it (its operation id minted)
    let mut served = IdTable::default();
    let response = prepared.load_exchange(0).expect("the invite");
    Rewriter::new(&scoped, &mut served, prepared.stable(), &seed).rewrite_template(response.sent());
    let events = prepared.load_all(prepared.follows(0)).expect("its notifications");
    let batch = NotificationBatch {
        events: &events,
        after_ms: prepared.exchange_head(0).done_ms(),
        callback_uri: None,
        number: 1,
        patience: None,
        settings: &settings,
    };
    assert_eq!(batch.events.len(), 2, "the invite triggers 2 notifications");
    c.bench_function("notifications/build the invite's 2 (rewrite, headers, address)", |b| {
        b.iter_batched(
            || served.clone(),
            |mut table| {
                let mut rw = Rewriter::new(&scoped, &mut table, prepared.stable(), &seed);
                notification_jobs(&batch, &mut rw)
            },
            BatchSize::SmallInput,
        )
    });
}

fn polls_on_one_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("serve/poll in a live session, recordings on one path");
    group.sample_size(10);
    let live = format!(
        "/v1.0/communications/calls/{}/operations/{}",
        common::guid(0x1ca11, 7),
        common::guid(0x10b, 7)
    );
    let parts = common::request("GET", &live, &[("x-graphvcr-session", "bench-poll")]);
    // the same poll on another version: recorded nowhere, answered 404 with its diff
    let missed = common::request(
        "GET",
        &live.replacen("/v1.0/", "/beta/", 1),
        &[("x-graphvcr-session", "bench-poll")],
    );
    for n in [100, 10_000, 100_000] {
        let t = Instant::now();
        let (replayer, _dir) = common::replayer(common::polls(n), MAX_SESSIONS);
        eprintln!("polls cassette of {n} generated and prepared in {:?}", t.elapsed());
        let mut bad = 0u64;
        group.bench_with_input(BenchmarkId::new("hit", n), &n, |b, _| {
            b.iter(|| bad += u64::from(common::status(&replayer.handle_now(&parts, &Bytes::new())) != 200))
        });
        all_ok("polls", bad);
        let mut found = 0u64;
        group.bench_with_input(BenchmarkId::new("miss (404 with its diff)", n), &n, |b, _| {
            b.iter(|| found += u64::from(common::status(&replayer.handle_now(&missed, &Bytes::new())) != 404))
        });
        assert_eq!(found, 0, "every miss answered 404");
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    let rt = common::runtime();
    let _guard = rt.enter();
    // Order matters: a bench that follows one which freed much memory (10k sessions,
    // a live session grown by 100k repeats) measured up to 3x slower on glibc's heap.
    // The repeat bench, whose session grows without bound, runs last.
    notifications(c);
    new_call_at_the_limit(c);
    polls_on_one_path(c);
    repeat_in_a_live_session(c);
}

criterion_group! {
    name = replay;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(replay);
