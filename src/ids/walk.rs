//! Walking JSON for ids: every string with the member it sits under, every id, the
//! call-scoped ids that route requests, and the ids at identity positions.

use std::collections::HashSet;
use std::hash::BuildHasher;

use super::token::{scan, Canon};
use crate::cassette::{Node, Tree};
use crate::graph;

/// Visits every string in a JSON value with the member it sits under and that
/// member's parent (`@odata.type` values are skipped: they never hold ids).
pub fn visit_strings<'v, T: Tree>(v: &'v T, f: &mut impl FnMut(Option<&str>, Option<&str>, &'v str)) {
    fn walk<'v, T: Tree>(
        v: &'v T,
        key: Option<&str>,
        parent: Option<&str>,
        f: &mut impl FnMut(Option<&str>, Option<&str>, &'v str),
    ) {
        match v.node() {
            Node::Str(s) => f(key, parent, s),
            Node::Arr(a) => a.iter().for_each(|x| walk(x, key, parent, f)),
            Node::Obj(o) => {
                for (k, x) in o.filter(|(k, _)| !graph::is_annotation_member(k)) {
                    walk(x, Some(k), key, f);
                }
            }
            _ => {}
        }
    }
    walk(v, None, None, f);
}

/// Every id in a JSON value.
pub fn collect<S: BuildHasher, T: Tree>(v: &T, out: &mut HashSet<Canon, S>) {
    visit_strings(v, &mut |_, _, s| out.extend(scan(s).into_iter().map(|t| t.canon)));
}

/// Ids under call-scoped members (`replacesCallId`, ...), in order.
pub fn call_scoped<T: Tree>(v: &T) -> Vec<Canon> {
    let mut out = Vec::new();
    visit_strings(v, &mut |k, _, s| {
        if k.is_some_and(graph::is_call_scoped_member) {
            out.extend(scan(s).into_iter().map(|t| t.canon));
        }
    });
    out
}

/// Collects the ids that sit at identity positions (`tenantId`, `user.id`, ...) or
/// follow `appid:`: they stay as recorded unless the bot sends them.
pub fn collect_stable<S: BuildHasher, T: Tree>(v: &T, out: &mut HashSet<Canon, S>) {
    visit_strings(v, &mut |k, parent, s| match k {
        Some(k) if graph::is_identity_member(parent, k) => out.extend(scan(s).into_iter().map(|t| t.canon)),
        _ => collect_appids(s, out),
    });
}

/// Collects the ids of recorded headers that hold identities (Graph's callback-token
/// claims): like `collect_stable`, they stay as recorded unless the bot sends them.
pub fn collect_stable_headers<S: BuildHasher>(headers: &[(String, String)], out: &mut HashSet<Canon, S>) {
    for (n, v) in headers {
        if graph::is_identity_header(n) {
            out.extend(scan(v).into_iter().map(|t| t.canon));
        }
    }
}

/// Ids written as `appid:<guid>` inside free text.
pub fn collect_appids<S: BuildHasher>(s: &str, out: &mut HashSet<Canon, S>) {
    if !s.contains("appid:") {
        return;
    }
    for t in scan(s) {
        if s[..t.start].ends_with("appid:") {
            out.insert(t.canon);
        }
    }
}
