//! Matching a live request against recorded ones: the key (method, version, path
//! template, query), the key index, choosing among candidates, and the miss diff.
//! How two bodies compare (`shape`) depends on the match mode.
//!
//! The key must be equal. Shapes must agree in structure (value types, list lengths,
//! objects and lists on both sides, Graph enum values — see `shape::MatchMode`); other
//! differences only lower the score. Object key order, whitespace, unicode escaping,
//! OData annotations and `null` members never matter; ids are compared as placeholders.

mod index;
mod print;
mod shape;

pub use index::{Candidates, Group, Index, IndexParts, Slot};
pub use print::print_body;
pub use shape::{clip, compare, template_ids, Comparison, MatchMode, Rule, Shape};

use std::cell::OnceCell;

use crate::cassette::{Body, BodyRef, Json, LiveBody};
use crate::graph::{self, GraphPath};

/// What a request is matched on, ready for comparison.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Probe {
    pub method: String,
    pub version: String,
    pub template: String,
    pub query: String,
    pub shape: Shape,
}

impl Probe {
    /// Reduces a request to its probe; `None` when the path is not a Graph path.
    pub fn new(method: &str, uri: &str, body: &Body) -> Option<Probe> {
        let (path, query) = graph::split_uri(uri);
        let gp = GraphPath::parse(path)?;
        Some(Probe::from_parts(method, &gp, query, body))
    }

    pub fn from_parts(method: &str, gp: &GraphPath, query: Option<&str>, body: &Body) -> Probe {
        Probe {
            shape: Shape::of_body(body),
            ..Probe::head(method, gp, query)
        }
    }

    /// A request's key parts alone (its shape left `Empty`): what a [`Query`] holds.
    pub fn head(method: &str, gp: &GraphPath, query: Option<&str>) -> Probe {
        Probe {
            method: method.to_ascii_uppercase(),
            version: gp.version().to_string(),
            template: gp.template(),
            query: normalise_query(query),
            shape: Shape::Empty,
        }
    }

    /// The index key: method, version, template and sorted query.
    pub fn key(&self) -> String {
        let mut k = String::new();
        self.write_key(&mut k);
        k
    }

    /// [`Probe::key`] written over `k` (a lookup reuses one buffer).
    pub fn write_key(&self, k: &mut String) {
        write_key(k, &self.method, &self.version, &self.template, &self.query)
    }
}

/// A live request as matching sees it: its key parts and its body, reduced to a
/// shape only if it must be compared (an exact shape is found from the body itself).
pub struct Query<'a> {
    head: &'a Probe,
    body: Option<BodyRef<'a, Json<'a>>>,
    shape: OnceCell<Shape>,
}

impl<'a> Query<'a> {
    /// The request with key parts `head` (its shape unused) and `body`.
    pub fn new(head: &'a Probe, body: &'a LiveBody<'a>) -> Query<'a> {
        Query {
            head,
            body: Some(body.view()),
            shape: OnceCell::new(),
        }
    }

    /// A request already reduced to a full probe (shape included).
    pub fn of(probe: &'a Probe) -> Query<'a> {
        Query {
            head: probe,
            body: None,
            shape: OnceCell::from(probe.shape.clone()),
        }
    }

    pub fn head(&self) -> &Probe {
        self.head
    }

    /// The body's shape, built the first time it is asked for.
    pub fn shape(&self) -> &Shape {
        self.shape
            .get_or_init(|| self.body.map_or(Shape::Empty, Shape::of_view))
    }

    /// The shape's print, from the body when the shape was not built.
    fn print(&self) -> u64 {
        match (self.shape.get(), self.body) {
            (None, Some(b)) => print_body(b),
            _ => self.shape().print(),
        }
    }

    /// Whether `shape` is exactly this request's.
    fn is(&self, shape: &Shape) -> bool {
        match (self.shape.get(), self.body) {
            (None, Some(b)) => shape.matches_body(b),
            _ => self.shape() == shape,
        }
    }
}

/// The index key of a request, from its method and target alone (no body).
pub fn key_of(method: &str, gp: &GraphPath, query: Option<&str>) -> String {
    let mut k = String::new();
    write_key(
        &mut k,
        &method.to_ascii_uppercase(),
        gp.version(),
        &gp.template(),
        &normalise_query(query),
    );
    k
}

fn write_key(k: &mut String, method: &str, version: &str, template: &str, query: &str) {
    // `METHOD version template[?query]`, in one allocation at most
    k.clear();
    k.reserve(method.len() + version.len() + template.len() + query.len() + 3);
    for (i, part) in [method, version, template].into_iter().enumerate() {
        if i > 0 {
            k.push(' ');
        }
        k.push_str(part);
    }
    if !query.is_empty() {
        k.push('?');
        k.push_str(query);
    }
}

fn normalise_query(q: Option<&str>) -> String {
    let Some(q) = q.filter(|q| !q.is_empty()) else {
        return String::new();
    };
    // a secret parameter's value never counts: the recording holds it redacted
    let mut parts: Vec<String> = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, _)) if crate::redact::is_secret_param(k) => format!("{k}={}", crate::redact::REDACTED),
            _ => template_ids(p),
        })
        .collect();
    parts.sort();
    parts.join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn probe(uri: &str, body: Value) -> Probe {
        Probe::new("POST", uri, &Body::Json(body)).unwrap()
    }

    #[test]
    fn an_index_kept_as_parts_is_built_again_the_same_and_bad_parts_are_refused() {
        let call = "/v1.0/communications/calls/ab6233a5-20b7-4c5e-bea2-ce56c9776429";
        let probes = vec![
            (probe(&format!("{call}/mute"), json!({"clientContext":"a"})), 0),
            (probe(&format!("{call}/unmute"), json!({})), 2),
            (probe(&format!("{call}/mute"), json!({"clientContext":"b"})), 3),
            (probe(&format!("{call}/mute"), json!({})), 5),
        ];
        let built = Index::build(probes);
        let kept = serde_json::to_string(&built.parts()).unwrap();
        let again = Index::from_parts(serde_json::from_str(&kept).unwrap()).expect("agrees");
        assert_eq!(serde_json::to_string(&again.parts()).unwrap(), kept);
        let live = probe(&format!("{call}/mute"), json!({"clientContext":"c"}));
        let ids = |i: &Index| {
            i.candidates(&Query::of(&live), MatchMode::Default)
                .groups
                .iter()
                .map(|g| (g.id, g.entries.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&again), ids(&built));
        assert_eq!(again.len(), 4);
        // a group out of range, a group no key owns, an entry in two groups, a key
        // without a group
        for bad in [
            kept.replace("[0,2,3]", "[0,2,9]"),
            kept.replace("[1]]]}", "[]],[{\"method\":\"GET\",\"version\":\"v1.0\",\"template\":\"/x\",\"query\":\"\",\"shape\":\"Empty\"},[1]]]}"),
            kept.replace("[0,2,3]", "[0,2]"),
            kept.replace(r#"{"Obj":{}},[3]"#, r#"{"Obj":{}},[1]"#),
        ] {
            assert_ne!(bad, kept);
            assert!(
                Index::from_parts(serde_json::from_str(&bad).unwrap()).is_none(),
                "{bad}"
            );
        }
    }

    #[test]
    fn key_order_odata_type_and_nulls_do_not_matter() {
        let a = probe(
            "/beta/communications/calls/ab6233a5-20b7-4c5e-bea2-ce56c9776429/participants/invite",
            json!({"participants":[{"@odata.type":"#microsoft.graph.invitationParticipantInfo","identity":{"user":{"id":"278405a3-f568-4b3e-b684-009193463064"}}}],"clientContext":"f2fa86af-3c51-4bc2-8fc0-475452d9764f"}),
        );
        let b = probe(
            "/beta/app/calls/11111111-20b7-4c5e-bea2-ce56c9776429/participants/microsoft.graph.invite",
            json!({"clientContext":"99999999-3c51-4bc2-8fc0-475452d9764f","participants":[{"identity":{"user":{"id":"00000000-f568-4b3e-b684-009193463064"}},"replacesCallId":null}]}),
        );
        assert_eq!(a.key(), b.key());
        let c = compare(&a.shape, &b.shape, MatchMode::Default);
        assert!(c.compatible() && c.penalty() == 0, "{c:?}");
    }

    #[test]
    fn list_length_is_structural_and_one_sided_members_are_soft() {
        let a = probe("/v1.0/communications/calls/x", json!({"p":[1,2],"displayName":"a"}));
        let b = probe("/v1.0/communications/calls/x", json!({"p":[1]}));
        let c = compare(&a.shape, &b.shape, MatchMode::Default);
        assert!(!c.compatible());
        assert!(c.summary(3).contains("p: 2 items recorded, 1 sent"), "{}", c.summary(3));
        let d = compare(
            &probe("/v1.0/x", json!({"a":1,"b":"x"})).shape,
            &probe("/v1.0/x", json!({"a":1})).shape,
            MatchMode::Default,
        );
        assert!(d.compatible() && d.penalty() == 1);
    }

    fn cmp(rec: Value, live: Value, mode: MatchMode) -> Comparison {
        compare(&Shape::of_json(&rec), &Shape::of_json(&live), mode)
    }

    #[test]
    fn an_identity_of_another_kind_is_refused_and_named() {
        let user = json!({"participants": [{"identity": {"user": {"id": "278405a3-f568-4b3e-b684-009193463064", "displayName": "A"}}}]});
        let phone = json!({"participants": [{"identity": {"phone": {"id": "+14255550100"}}}]});
        let c = cmp(user.clone(), phone, MatchMode::Default);
        assert!(!c.compatible());
        let s = c.summary(4);
        assert!(s.contains("participants[0].identity.user: recorded, not sent"), "{s}");
        assert!(s.contains("participants[0].identity.phone: sent, not recorded"), "{s}");
        assert!(
            s.contains("refused: a member holding an object or list is on one side only"),
            "{s}"
        );
        // loose keeps today's scoring
        let phone = json!({"participants": [{"identity": {"phone": {"id": "+14255550100"}}}]});
        assert!(cmp(user, phone, MatchMode::Loose).compatible());
    }

    #[test]
    fn sdk_differences_only_score_but_strict_refuses_them() {
        let rec = json!({"identity": {"user": {"id": "278405a3-f568-4b3e-b684-009193463064", "identityProvider": "AAD", "displayName": "A"}}, "$id": "1"});
        let live = json!({"identity": {"@odata.type": "#microsoft.graph.identitySet", "user": {"id": "11111111-f568-4b3e-b684-009193463064", "displayName": "B"}}});
        let c = cmp(rec.clone(), live.clone(), MatchMode::Default);
        assert!(c.compatible(), "{c:?}");
        assert_eq!(c.penalty(), 2, "{c:?}");
        let c = cmp(rec, live, MatchMode::Strict);
        assert!(!c.compatible());
        assert!(c.summary(4).contains("--match strict"), "{}", c.summary(4));
    }

    #[test]
    fn enum_values_must_be_equal_ignoring_case() {
        let c = cmp(
            json!({"requestedModalities": ["audio"]}),
            json!({"requestedModalities": ["video"]}),
            MatchMode::Default,
        );
        assert_eq!(c.refused.first().map(|r| r.0), Some(Rule::Enum), "{c:?}");
        let c = cmp(
            json!({"requestedModalities": ["audio"]}),
            json!({"requestedModalities": ["Audio"]}),
            MatchMode::Default,
        );
        assert!(c.compatible() && c.penalty() == 0);
        let c = cmp(json!({"subject": "a"}), json!({"subject": "b"}), MatchMode::Default);
        assert!(c.compatible() && c.penalty() == 1, "free text only scores");
    }

    #[test]
    fn a_redacted_recorded_value_matches_any_live_value() {
        let c = cmp(
            json!({"token": "REDACTED", "url": "https://x/?sig=REDACTED"}),
            json!({"token": "abc", "url": "https://x/?sig=zzz"}),
            MatchMode::Strict,
        );
        assert!(c.compatible() && c.penalty() == 0, "{c:?}");
    }

    #[test]
    fn identical_recordings_share_a_group_and_are_found_without_comparing() {
        let poll = |n: u32| {
            probe(&format!("/v1.0/communications/calls/ab6233a5-20b7-4c5e-bea2-ce56c9776429/operations/{n:08x}-f568-4b3e-b684-009193463064"), json!({}))
        };
        let mut entries: Vec<(Probe, u64)> = (0..1000).map(|n| (poll(n), u64::from(n))).collect();
        entries.push((
            probe("/v1.0/communications/calls/x/operations/y", json!({"a": "b"})),
            1000,
        ));
        let idx = Index::build(entries);
        let g = idx.exact(&Query::of(&poll(5000))).expect("the polls' group");
        assert_eq!(g.entries.len(), 1000);
        assert_eq!(g.entries[0], 0);
        let c = idx.candidates(&Query::of(&poll(1)), MatchMode::Default);
        assert_eq!(c.groups.len(), 1, "one comparison per distinct shape");
    }

    #[test]
    fn diffs_never_quote_huge_values() {
        let big = "x".repeat(1 << 20);
        let c = compare(
            &probe("/v1.0/x", json!({"a": "small"})).shape,
            &probe("/v1.0/x", json!({"a": big})).shape,
            MatchMode::Default,
        );
        assert!(c.summary(4).len() < 400, "{}", c.summary(4).len());
        assert_eq!(clip("héllo", 2), "hé… (6 bytes)");
    }

    #[test]
    fn miss_names_the_nearest() {
        let idx = Index::build(vec![(
            probe(
                "/beta/communications/calls/ab6233a5-20b7-4c5e-bea2-ce56c9776429/participants/invite",
                json!({}),
            ),
            3,
        )]);
        let live = probe(
            "/v1.0/communications/calls/ab6233a5-20b7-4c5e-bea2-ce56c9776429/participants/invite",
            json!({}),
        );
        assert!(idx.candidates(&Query::of(&live), MatchMode::Default).groups.is_empty());
        assert!(idx.exact(&Query::of(&live)).is_none());
        let (n, msg) = idx.explain_miss(&Query::of(&live), MatchMode::Default);
        assert_eq!(n, Some(0));
        assert!(msg.contains("version beta recorded, v1.0 sent"), "{msg}");
        assert!(msg.contains("nearest is #3 "), "named by recorded seq: {msg}");
    }

    #[test]
    fn miss_messages_read_the_same_in_every_case() {
        let call = "ab6233a5-20b7-4c5e-bea2-ce56c9776429";
        let at = |method: &str, path: &str, body: Value| {
            let mut p = probe(path, body);
            p.method = method.into();
            p
        };
        let explain = |idx: &Index, live: &Probe| idx.explain_miss(&Query::of(live), MatchMode::Default);
        let idx = Index::build(vec![
            (
                at(
                    "POST",
                    &format!("/beta/communications/calls/{call}/mute?x=1"),
                    json!({}),
                ),
                7,
            ),
            (at("POST", "/v1.0/communications/calls", json!({"a": "b"})), 9),
        ]);
        let cases = [
            at("GET", &format!("/v1.0/communications/calls/{call}/unmute"), json!({})),
            at("POST", "/v1.0/communications/calls", json!({"a": 1})),
        ];
        assert_eq!(
            explain(&idx, &cases[0]),
            (
                Some(0),
                "no recorded exchange matches GET /v1.0/communications/calls/{id}/unmute; nearest is #7 POST \
                 /beta/communications/calls/{id}/mute: method POST recorded, GET sent; version beta recorded, \
                 v1.0 sent; path /communications/calls/{id}/mute recorded, /communications/calls/{id}/unmute \
                 sent; query \"x=1\" recorded, \"\" sent"
                    .to_string()
            )
        );
        assert_eq!(
            explain(&idx, &cases[1]),
            (
                Some(1),
                "no recorded exchange matches POST /v1.0/communications/calls; nearest is #9 with the same \
                 path, whose body differs: a: recorded a string, sent a number (refused: value types differ)"
                    .to_string()
            )
        );
        // the request is shown cut to 300 characters, the path it sent in full
        let long = format!("/v1.0/communications/calls/{}", "y".repeat(400));
        let (n, msg) = explain(&idx, &at("GET", &long, json!({})));
        let shown = format!("GET /v1.0/communications/calls/{}… (431 bytes)", "y".repeat(269));
        assert_eq!(n, Some(1));
        assert_eq!(
            msg,
            format!(
                "no recorded exchange matches {shown}; nearest is #9 POST /v1.0/communications/calls: method \
                 POST recorded, GET sent; path /communications/calls recorded, {} sent",
                &long[5..]
            )
        );
        assert_eq!(
            explain(&Index::build(vec![]), &cases[0]),
            (
                None,
                "no recorded exchange matches GET /v1.0/communications/calls/{id}/unmute: the cassette has no \
                 exchanges"
                    .to_string()
            )
        );
    }
}
