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
const FORMAT: u32 = 4;

/// What a kept summary starts with: its JSON follows, lz4-compressed (a quarter of
/// the size, and sled holds what it read for the whole run).
const MAGIC: &[u8; 4] = b"gvs\x04";

/// lz4 expands at most 255 times: a larger claimed size is not a kept summary.
const MOST_EXPANSION: usize = 255;

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
    let json = serde_json::to_vec(&kept).unwrap_or_default();
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&lz4_flex::compress_prepend_size(&json));
    out
}

/// The JSON inside a kept summary.
fn unpack(bytes: &[u8]) -> Option<Vec<u8>> {
    let packed = bytes.strip_prefix(MAGIC)?;
    let size = u32::from_le_bytes(packed.get(..4)?.try_into().ok()?) as usize;
    if size > packed.len().saturating_mul(MOST_EXPANSION) {
        return None;
    }
    lz4_flex::decompress_size_prepended(packed).ok()
}

/// What `encode` kept, when it reads as a summary of this layout whose parts agree.
pub(super) fn decode(bytes: &[u8]) -> Option<(Summary, Bindable)> {
    let r: Read = serde_json::from_slice(&unpack(bytes)?).ok()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_summary_is_packed_and_what_is_not_one_is_refused_without_reading_it() {
        let json = br#"{"format":4,"heads":[]}"#.repeat(50);
        let mut packed = MAGIC.to_vec();
        packed.extend_from_slice(&lz4_flex::compress_prepend_size(&json));
        assert!(packed.len() < json.len() / 4, "{} of {}", packed.len(), json.len());
        assert_eq!(unpack(&packed).as_deref(), Some(&json[..]));
        assert_eq!(unpack(&json), None, "a summary kept before packing is prepared afresh");
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&[0; 16]);
        assert_eq!(unpack(&huge), None, "a size no packing gives is not believed");
        assert_eq!(unpack(&packed[..packed.len() - 3]), None, "cut short");
        assert!(decode(&packed).is_none(), "JSON that is not a summary");
    }
}
