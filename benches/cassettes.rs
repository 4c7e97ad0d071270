//! Cassette size (run: `cargo bench --bench cassettes`): loading a cassette (its JSON,
//! the sled store) and preparing it for serving (held, and streamed as replay does), at 100 and 10k exchanges; and
//! matching a live request (probe, key index, candidates compared and ranked; on a
//! miss also the nearest-candidate diff the server answers with) against 100, 10k and
//! 100k recorded exchanges, spread over the call API and sharing one path, hit and
//! miss; and appending a recorded exchange to the store and redacting one, as `record`
//! does for each.
//! The cassettes are generated here, never committed.

mod common;

/// The server's allocator (`src/main.rs`), so these figures are the server's work: on
/// glibc's malloc, building notifications measured mostly its page faults.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use graphvcr::cassette::{json, Body, Cassette, LiveBody, SledStore, Store};
use graphvcr::config::defaults::HOLD_EVENTS;
use graphvcr::matching::{MatchMode, Probe, Query};
use graphvcr::replay::Prepared;

fn load(c: &mut Criterion) {
    for n in [100, 10_000] {
        let cassette = common::invites(n);
        let name = cassette.meta.name.clone();
        let text = json::to_string(&cassette);
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("store");
        store.replace(&cassette, None).expect("store the cassette");
        store.flush().expect("flush");
        let mut group = c.benchmark_group(format!("load/{n} invites + 2 notifications each"));
        group.sample_size(10);
        group.bench_function("parse JSON", |b| {
            b.iter_with_large_drop(|| json::parse(text.as_bytes(), "bench.json").expect("parses"))
        });
        group.bench_function("sled load", |b| {
            b.iter_with_large_drop(|| store.load(&name).expect("loads").expect("stored"))
        });
        group.bench_function("prepare", |b| {
            b.iter_batched(|| cassette.clone(), Prepared::new, BatchSize::LargeInput)
        });
        group.bench_function("start-up (sled load + prepare)", |b| {
            b.iter_with_large_drop(|| Prepared::new(store.load(&name).expect("loads").expect("stored")))
        });
        group.bench_function("start-up as replay does it (streamed; held up to --hold-events)", |b| {
            b.iter_with_large_drop(|| {
                Prepared::stream(&store, &name, HOLD_EVENTS)
                    .expect("streams")
                    .expect("stored")
            })
        });
        group.finish();
    }
}

/// How the recorded exchanges are laid out, and a live request that hits and one
/// that misses.
struct Layout {
    name: &'static str,
    make: fn(usize) -> Cassette,
    hit: (&'static str, String, String),
    miss: (&'static str, String, String),
}

fn layouts() -> Vec<Layout> {
    let call = common::guid(0x1ca11, 7);
    let (p, op, ctx) = (
        common::guid(0x19a27, 7),
        common::guid(0x10b, 7),
        common::guid(0x1c0c0, 7),
    );
    let pstn = format!(
        r##"{{"clientContext":"{ctx}","participants":[{{"@odata.type":"#microsoft.graph.invitationParticipantInfo","identity":{{"@odata.type":"#microsoft.graph.identitySet","phone":{{"@odata.type":"#microsoft.graph.identity","id":"+12345678901"}}}}}}]}}"##
    );
    vec![
        Layout {
            // 54 keys: 2 candidates each at 100, ~1,850 at 100k; the miss has no key
            name: "spread over the call API",
            make: common::spread,
            hit: (
                "POST",
                format!("/beta/communications/calls/{call}/participants/{p}/mute"),
                format!(r#"{{"clientContext":"{ctx}"}}"#),
            ),
            miss: (
                "POST",
                format!("/v1.0/communications/calls/{call}/sendDtmfTones"),
                format!(r#"{{"clientContext":"{ctx}","tones":["tone1"]}}"#),
            ),
        },
        Layout {
            // GET polls of operations; the miss is the same poll on another version
            name: "polls on one path",
            make: common::polls,
            hit: (
                "GET",
                format!("/v1.0/communications/calls/{call}/operations/{op}"),
                String::new(),
            ),
            miss: (
                "GET",
                format!("/beta/communications/calls/{call}/operations/{op}"),
                String::new(),
            ),
        },
        Layout {
            // invites; the miss is a PSTN invite on the same key, refused by every candidate
            name: "invites on one path",
            make: common::invites,
            hit: (
                "POST",
                format!("/beta/communications/calls/{call}/participants/invite"),
                common::invite_body(7),
            ),
            miss: (
                "POST",
                format!("/beta/communications/calls/{call}/participants/invite"),
                pstn,
            ),
        },
    ]
}

fn matching(c: &mut Criterion) {
    for layout in layouts() {
        let mut group = c.benchmark_group(format!("match/{}", layout.name));
        group.sample_size(10);
        let hit_body = LiveBody::read(layout.hit.2.as_bytes());
        let miss_body = LiveBody::read(layout.miss.2.as_bytes());
        for n in [100, 10_000, 100_000] {
            let t = Instant::now();
            let prepared = Prepared::new((layout.make)(n));
            eprintln!(
                "{}: {n} exchanges generated and prepared in {:?}",
                layout.name,
                t.elapsed()
            );
            let index = prepared.index();
            // the request's key parts, as replay parses them (its body is read by the query)
            let head = |(m, uri, _): &(&str, String, String)| Probe::new(m, uri, &Body::Empty).expect("graph path");
            // what a session does: the exact shape's group first, else every compatible group
            let hit = |q: &Query<'_>| {
                index.exact(q).map(|g| g.entries[0]).or_else(|| {
                    index
                        .candidates(q, MatchMode::Default)
                        .groups
                        .first()
                        .map(|g| g.entries[0])
                })
            };
            let (hit_head, miss_head) = (head(&layout.hit), head(&layout.miss));
            assert!(hit(&Query::new(&hit_head, &hit_body)).is_some(), "the hit fits");
            assert!(hit(&Query::new(&miss_head, &miss_body)).is_none(), "the miss misses");
            group.bench_with_input(BenchmarkId::new("hit", n), &n, |b, _| {
                b.iter(|| hit(&Query::new(&head(&layout.hit), &hit_body)))
            });
            group.bench_with_input(BenchmarkId::new("miss (with its diff)", n), &n, |b, _| {
                b.iter(|| {
                    let p = head(&layout.miss);
                    let q = Query::new(&p, &miss_body);
                    (hit(&q), index.explain_miss(&q, MatchMode::Default))
                })
            });
        }
        group.finish();
    }
}

/// One recorded exchange appended to a cassette (`Store::put_event`, what `record`
/// writes per exchange before its group commit), to a store on disk and to a
/// `--store memory` one: an append is two sled writes, never a batch (a batch writes
/// sled's log buffer out twice).
fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("store/append a recorded exchange (put_event)");
    let dir = tempfile::tempdir().expect("tempdir");
    let stores = [
        ("on disk", SledStore::open(&dir.path().join("disk")).expect("store")),
        (
            "memory",
            SledStore::open_ephemeral(&dir.path().join("mem")).expect("store"),
        ),
    ];
    let exchange = common::bundled().events[0].clone();
    for (what, store) in &stores {
        let mut empty = common::bundled();
        empty.events.clear();
        store.replace(&empty, None).expect("an empty cassette");
        let mut seq = 0;
        group.bench_function(*what, |b| {
            b.iter(|| {
                let mut ev = exchange.clone();
                ev.seq = seq;
                seq += 1;
                store.put_event(&empty.meta.name, &ev).expect("appended");
            })
        });
    }
    group.finish();
}

/// Redacting one recorded exchange as `record` does before storing it
/// (`redact::Rules::event`: every header, the request target, every JSON member and
/// string of both bodies).
fn redact(c: &mut Criterion) {
    let rules = graphvcr::redact::Rules::default();
    let exchange = common::bundled().events[0].clone();
    c.bench_function("record/redact a recorded exchange (Rules::event)", |b| {
        b.iter_batched(
            || exchange.clone(),
            |mut ev| {
                rules.event(&mut ev);
                ev
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group! {
    name = cassettes;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = load, matching, append, redact
}
criterion_main!(cassettes);
