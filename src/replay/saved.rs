//! A large cassette's prepared summary, kept in the store beside it
//! (`Store::put_derived`): its next start reads this instead of streaming and
//! preparing every event. Tied to the cassette's epoch and digest by the store, and to
//! this layout by `FORMAT`.

use serde::{Deserialize, Serialize};

use super::bodies::Bindable;
use super::prepare::{Head, RecordedExchange, Summary};
use crate::hash::{Map, Set};
use crate::ids::Canon;
use crate::matching::{Index, IndexParts};

/// Bumped whenever what is kept changes: an older summary is prepared afresh.
const FORMAT: u32 = 3;

#[derive(Serialize)]
struct Kept<'a> {
    format: u32,
    heads: &'a [Head],
    exchanges: &'a [RecordedExchange],
    index: IndexParts,
    follows: &'a [Vec<usize>],
    unattached: &'a [usize],
    stable: &'a Set<Canon>,
    recorded_ids: &'a Set<Canon>,
    created: &'a [Set<Canon>],
    largest_body: &'a Map<String, usize>,
    operations: &'a [bool],
    kinds: &'a [Vec<(String, String)>],
    bindable: &'a Bindable,
}

#[derive(Deserialize)]
struct Read {
    format: u32,
    heads: Vec<Head>,
    exchanges: Vec<RecordedExchange>,
    index: IndexParts,
    follows: Vec<Vec<usize>>,
    unattached: Vec<usize>,
    stable: Set<Canon>,
    recorded_ids: Set<Canon>,
    created: Vec<Set<Canon>>,
    largest_body: Map<String, usize>,
    operations: Vec<bool>,
    kinds: Vec<Vec<(String, String)>>,
    bindable: Bindable,
}

/// The summary and the strings requests bind, as kept.
pub(super) fn encode(s: &Summary, bindable: &Bindable) -> Vec<u8> {
    let kept = Kept {
        format: FORMAT,
        heads: &s.heads,
        exchanges: &s.exchanges,
        index: s.index.parts(),
        follows: &s.follows,
        unattached: &s.unattached,
        stable: &s.stable,
        recorded_ids: &s.recorded_ids,
        created: &s.created,
        largest_body: &s.largest_body,
        operations: &s.operations,
        kinds: &s.kinds,
        bindable,
    };
    serde_json::to_vec(&kept).unwrap_or_default()
}

/// What `encode` kept, when it reads as a summary of this layout whose parts agree.
pub(super) fn decode(bytes: &[u8]) -> Option<(Summary, Bindable)> {
    let r: Read = serde_json::from_slice(bytes).ok()?;
    let n = r.exchanges.len();
    let index = Index::from_parts(r.index)?;
    let agree = r.format == FORMAT
        && index.len() == n
        && r.follows.len() == n
        && r.created.len() == n
        && r.operations.len() == r.heads.len()
        && r.kinds.len() == r.heads.len()
        && r.exchanges.iter().all(|x| x.event < r.heads.len())
        && r.follows
            .iter()
            .flatten()
            .chain(&r.unattached)
            .all(|&i| i < r.heads.len());
    agree.then(|| {
        let summary = Summary {
            heads: r.heads,
            exchanges: r.exchanges,
            index,
            follows: r.follows,
            unattached: r.unattached,
            stable: r.stable,
            recorded_ids: r.recorded_ids,
            created: r.created,
            largest_body: r.largest_body,
            operations: r.operations,
            kinds: r.kinds,
        };
        (summary, r.bindable)
    })
}
