//! The sessions index: bounds, expiry, conflicts, seeds, teardown under load.

use super::*;
use crate::cassette::{Cassette, Meta};
use crate::replay::verdict::Problem;

fn prepared(events: Vec<crate::cassette::Event>) -> Arc<Prepared> {
    Arc::new(Prepared::new(Cassette {
        meta: Meta {
            name: "t".into(),
            recorded_at: String::new(),
            upstream: String::new(),
        },
        events,
    }))
}

fn empty() -> Arc<Prepared> {
    prepared(Vec::new())
}

fn route<'a>(path: &'a [Canon], material: &'a (dyn Fn() -> Vec<u8> + Sync)) -> Route<'a> {
    static SETTINGS: std::sync::LazyLock<Arc<SessionSettings>> = std::sync::LazyLock::new(Arc::default);
    Route {
        settings: &SETTINGS,
        header: None,
        path_ids: path,
        body_ids: &[],
        seed_material: material,
    }
}

#[test]
fn sessions_are_bounded_lru_first_and_expire_when_idle() {
    let c = empty();
    let s = Sessions::new(1000, 2);
    let (g1, g2, g3) = ([Canon::guid(1)], [Canon::guid(2)], [Canon::guid(3)]);
    let a = s.find_or_create(&c, &route(&g1, &|| b"a".to_vec()), 0).unwrap();
    let _b = s.find_or_create(&c, &route(&g2, &|| b"b".to_vec()), 10).unwrap();
    let a2 = s.find_or_create(&c, &route(&g1, &|| b"a".to_vec()), 20).unwrap();
    assert!(Arc::ptr_eq(&a, &a2), "a known live id finds its session");
    let _c = s.find_or_create(&c, &route(&g3, &|| b"c".to_vec()), 30).unwrap();
    assert_eq!(s.live_count(), 2);
    let ended: Vec<Report> = s.reports().into_iter().filter(|r| !r.active).collect();
    assert_eq!(ended.len(), 1, "the least recently used session was evicted");
    let a_id = lock(&a).id().to_string();
    assert_ne!(ended[0].session, a_id);
    s.sweep(5_000);
    assert_eq!(s.live_count(), 0, "idle sessions expire");
    assert!(s.report(&a_id).is_some_and(|r| !r.active), "their reports are kept");
}

#[test]
fn ids_of_two_sessions_in_one_request_conflict() {
    let c = empty();
    let s = Sessions::new(1000, 10);
    s.find_or_create(&c, &route(&[Canon::guid(1)], &|| b"1".to_vec()), 0)
        .unwrap();
    s.find_or_create(&c, &route(&[Canon::guid(2)], &|| b"2".to_vec()), 0)
        .unwrap();
    let r = s.find_or_create(&c, &route(&[Canon::guid(1), Canon::guid(2)], &|| b"3".to_vec()), 0);
    assert!(matches!(r, Err(ProxyError::Conflict(_))));
}

#[test]
fn identical_new_requests_get_distinct_seeds() {
    let c = empty();
    let s = Sessions::new(1000, 10);
    let a = s.find_or_create(&c, &route(&[], &|| b"same".to_vec()), 0).unwrap();
    let b = s.find_or_create(&c, &route(&[], &|| b"same".to_vec()), 0).unwrap();
    assert_ne!(lock(&a).seed(), lock(&b).seed());
    // and the first one's seed is the deterministic one
    let (ida, idb) = (lock(&a).id().to_string(), lock(&b).id().to_string());
    s.end(&ida);
    s.end(&idb);
    let again = s.find_or_create(&c, &route(&[], &|| b"same".to_vec()), 0).unwrap();
    assert_eq!(lock(&again).seed(), lock(&a).seed());
}

#[test]
fn ending_a_session_while_a_request_holds_it_does_not_deadlock() {
    let c = empty();
    let s = Arc::new(Sessions::new(1000, 10));
    let a = s
        .find_or_create(&c, &route(&[Canon::guid(1)], &|| b"a".to_vec()), 0)
        .unwrap();
    let id = lock(&a).id().to_string();
    let mut guard = lock(&a);
    // its path id is its own: claiming it again takes no index lock
    assert!(guard.owns(&Canon::guid(1)));
    assert!(s.claim(&a, &mut guard, &[Canon::guid(1)]).is_ok());
    let s2 = s.clone();
    let id2 = id.clone();
    let ender = std::thread::spawn(move || s2.end(&id2));
    // the ender detaches the session under the index lock, then waits for the
    // session, which this thread holds: the index lock must still be reachable
    while s.live_count() != 0 {
        std::thread::yield_now();
    }
    let claimed = s.claim(&a, &mut guard, &[Canon::guid(9)]);
    // an id it owned is refused too once it ended (it is no longer live)
    let owned = s.claim(&a, &mut guard, &[Canon::guid(1)]);
    drop(guard);
    let report = ender.join().unwrap();
    assert!(report.is_some());
    assert!(matches!(claimed, Err(ClaimError::Ended)), "{claimed:?}");
    assert!(matches!(owned, Err(ClaimError::Ended)), "{owned:?}");
}

#[test]
fn a_verdict_names_the_first_unused_exchanges_and_counts_the_rest() {
    let events = (0..30)
        .map(|seq| {
            let uri = format!("/v1.0/communications/calls/{seq}");
            crate::cassette::Event::test_exchange(seq, "GET", &uri, crate::cassette::Body::Empty)
        })
        .collect();
    let s = Sessions::new(60_000, 10);
    let material = Vec::new;
    let shared = s.create_new(&prepared(events), &route(&[], &material), 0).unwrap();
    let report = lock(&shared).report(true);
    assert_eq!((report.unused.len(), report.unused_total), (30, 30));
    let problems = &lock(&shared).outcome().verdict.problems;
    assert_eq!(problems.len(), 21, "20 named, then a count");
    assert_eq!(problems[0], Problem::Unused { seq: 0 });
    assert_eq!(problems[20], Problem::MoreUnused { count: 10 });
    // the run's outcomes, read without full reports, are what the reports give
    let of_reports: Vec<Outcome> = s.reports().iter().map(Outcome::of).collect();
    let json = |o: &[Outcome]| serde_json::to_value(o).ok();
    assert_eq!(json(&s.outcomes().0), json(&of_reports));
}

#[test]
fn sessions_that_ended_alike_share_one_list_of_problems() {
    let events = (0..3)
        .map(|seq| {
            crate::cassette::Event::test_exchange(
                seq,
                "GET",
                "/v1.0/communications/calls",
                crate::cassette::Body::Empty,
            )
        })
        .collect();
    let (c, other) = (prepared(events), empty());
    let s = Sessions::new(60_000, 1);
    // each new session evicts the one before; past the ring of recently ended ones,
    // outcomes move to the run's history
    for n in 0..ENDED_KEPT as u128 + 40 {
        let ids = [Canon::guid(n)];
        let cassette = if n % 20 == 19 { &other } else { &c };
        s.find_or_create(cassette, &route(&ids, &|| n.to_le_bytes().to_vec()), 0)
            .unwrap();
    }
    let (outcomes, lost) = s.outcomes();
    assert_eq!((outcomes.len(), lost), (ENDED_KEPT + 40, 0), "every session is there");
    let history = &outcomes[..39];
    assert!(history.iter().all(|o| o.verdict.ok == o.verdict.problems.is_empty()));
    let unused: Vec<&Outcome> = history.iter().filter(|o| !o.verdict.ok).collect();
    assert_eq!(unused[0].verdict.problems.len(), 3, "3 unused exchanges");
    for pair in unused.windows(2) {
        assert_eq!(pair[0].verdict, pair[1].verdict);
    }
    let shared = history
        .windows(2)
        .filter(|w| Arc::ptr_eq(&w[0].verdict.problems, &w[1].verdict.problems))
        .count();
    // two in a row of the same cassette share; the other cassette's (ok) breaks the run
    assert_eq!(shared, 38 - 2 * history.iter().filter(|o| o.verdict.ok).count());
}

#[test]
fn a_session_routes_its_own_ids_and_only_its_latest_minted_ones() {
    let c = empty();
    let s = Sessions::new(60_000, 10);
    let call = [Canon::guid(1)];
    let a = s.find_or_create(&c, &route(&call, &|| b"a".to_vec()), 0).unwrap();
    let id = lock(&a).id().to_string();
    // a session repeating an action mints ids each time: far more than stay routed
    let minted: Vec<Canon> = (0..(index::MINTED_ROUTED as u128 + 10))
        .map(|n| Canon::guid(1000 + n))
        .collect();
    for chunk in minted.chunks(7) {
        s.served(&id, chunk, None);
    }
    let routes = |c: &Canon| {
        let ids = [c.clone()];
        s.find(&route(&ids, &Vec::new), 1)
            .unwrap()
            .is_some_and(|f| Arc::ptr_eq(&f, &a))
    };
    assert!(routes(&call[0]), "the call id its request named");
    assert!(routes(minted.last().unwrap()), "the latest minted id");
    assert!(routes(&minted[10]), "the oldest still kept");
    assert!(!routes(&minted[9]), "older minted ids stop routing");
    // a minted id a request names is the session's own from then on
    let named = [minted[10].clone()];
    assert!(s.claim(&a, &mut lock(&a), &named).is_ok());
    assert!(lock(&a).owns(&named[0]));
    let more: Vec<Canon> = (0..index::MINTED_ROUTED as u128)
        .map(|n| Canon::guid(100_000 + n))
        .collect();
    s.served(&id, &more, None);
    assert!(routes(&named[0]), "a named id outlives later mints");
    assert!(!routes(&minted[11]), "its unnamed neighbour does not");
    // ending it frees every id it held
    s.end(&id);
    assert!(!routes(&call[0]) && !routes(minted.last().unwrap()));
}

#[test]
fn a_seed_names_its_session_as_it_always_did() {
    for v in [0, 1, 0xdead_beef, u64::MAX, 0x0123_4567_89ab_cdef] {
        assert_eq!(&*short_name(v), format!("s-{v:016x}"));
    }
}
