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
const FORMAT: u8 = 5;

/// What a kept summary starts with (its layout's `FORMAT` last); then the packed size
/// of its first part (u32, little endian) and its two parts, each JSON lz4-compressed (a
/// quarter of the size, and sled holds what it read for the whole run). The parts are
/// read on two threads at once.
const MAGIC: &[u8; 4] = &[b'g', b'v', b's', FORMAT];

/// lz4 expands at most 255 times: a larger claimed size is not a kept summary.
const MOST_EXPANSION: usize = 255;

#[derive(Serialize)]
struct Kept<'a> {
    heads: &'a [Head],
    exchanges: &'a [RecordedExchange],
    index: IndexParts,
    follows: &'a [Vec<usize>],
    unattached: &'a [usize],
    largest_body: &'a Map<String, usize>,
    operations: &'a [bool],
}

/// The second part: the ids and strings.
#[derive(Serialize)]
struct KeptIds<'a> {
    stable: &'a Set<Canon>,
    recorded_ids: &'a Set<Canon>,
    created: &'a [Set<Canon>],
    kinds: &'a [Vec<(String, String)>],
    bindable: &'a Bindable,
}

#[derive(Deserialize)]
struct Read {
    heads: Vec<Head>,
    exchanges: Vec<RecordedExchange>,
    index: IndexParts,
    follows: Vec<Vec<usize>>,
    unattached: Vec<usize>,
    largest_body: Map<String, usize>,
    operations: Vec<bool>,
}

#[derive(Deserialize)]
struct ReadIds {
    stable: Set<Canon>,
    recorded_ids: Set<Canon>,
    created: Vec<Set<Canon>>,
    kinds: Vec<Vec<(String, String)>>,
    bindable: Bindable,
}

/// The summary and the strings requests bind, as kept.
pub(super) fn encode(s: &Summary, bindable: &Bindable) -> Vec<u8> {
    let kept = Kept {
        heads: &s.heads,
        exchanges: &s.exchanges,
        index: s.index.parts(),
        follows: &s.follows,
        unattached: &s.unattached,
        largest_body: &s.largest_body,
        operations: &s.operations,
    };
    let ids = KeptIds {
        stable: &s.stable,
        recorded_ids: &s.recorded_ids,
        created: &s.created,
        kinds: &s.kinds,
        bindable,
    };
    let pack = |json: serde_json::Result<Vec<u8>>| lz4_flex::compress_prepend_size(&json.unwrap_or_default());
    let (first, second) = (pack(serde_json::to_vec(&kept)), pack(serde_json::to_vec(&ids)));
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&u32::try_from(first.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&first);
    out.extend_from_slice(&second);
    out
}

/// A kept summary's two packed parts.
fn parts(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let framed = bytes.strip_prefix(MAGIC)?;
    let first = u32::from_le_bytes(framed.get(..4)?.try_into().ok()?) as usize;
    let framed = &framed[4..];
    (first <= framed.len()).then(|| framed.split_at(first))
}

/// The JSON inside one packed part.
fn unpack(packed: &[u8]) -> Option<Vec<u8>> {
    let size = u32::from_le_bytes(packed.get(..4)?.try_into().ok()?) as usize;
    if size > packed.len().saturating_mul(MOST_EXPANSION) {
        return None;
    }
    lz4_flex::decompress_size_prepended(packed).ok()
}

fn read<T: serde::de::DeserializeOwned>(packed: &[u8]) -> Option<T> {
    serde_json::from_slice(&unpack(packed)?).ok()
}

/// What `encode` kept, when it reads as a summary of this layout whose parts agree.
pub(super) fn decode(bytes: &[u8]) -> Option<(Summary, Bindable)> {
    let (first, second) = parts(bytes)?;
    let (r, ids) = std::thread::scope(|s| {
        let ids = s.spawn(|| read::<ReadIds>(second));
        (read::<Read>(first), ids.join().ok().flatten())
    });
    let (r, ids) = (r?, ids?);
    let n = r.exchanges.len();
    let index = Index::from_parts(r.index)?;
    let agree = index.len() == n
        && r.follows.len() == n
        && ids.created.len() == n
        && r.operations.len() == r.heads.len()
        && ids.kinds.len() == r.heads.len()
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
            stable: ids.stable,
            recorded_ids: ids.recorded_ids,
            created: ids.created,
            largest_body: r.largest_body,
            operations: r.operations,
            kinds: ids.kinds,
        };
        (summary, ids.bindable)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_summary_is_packed_and_what_is_not_one_is_refused_without_reading_it() {
        let json = br#"{"heads":[],"exchanges":[]}"#.repeat(50);
        let packed = lz4_flex::compress_prepend_size(&json);
        assert!(packed.len() < json.len() / 4, "{} of {}", packed.len(), json.len());
        assert_eq!(unpack(&packed).as_deref(), Some(&json[..]));
        let mut kept = MAGIC.to_vec();
        kept.extend_from_slice(&(packed.len() as u32).to_le_bytes());
        kept.extend_from_slice(&packed);
        kept.extend_from_slice(b"second");
        assert_eq!(parts(&kept), Some((&packed[..], &b"second"[..])));
        assert_eq!(parts(&json), None, "a summary kept before packing is prepared afresh");
        assert_eq!(parts(&kept[..kept.len() - 7 - 4]), None, "its first part cut short");
        let mut huge = u32::MAX.to_le_bytes().to_vec();
        huge.extend_from_slice(&[0; 16]);
        assert_eq!(unpack(&huge), None, "a size no packing gives is not believed");
        assert_eq!(unpack(&packed[..packed.len() - 3]), None, "cut short");
        assert!(decode(&kept).is_none(), "JSON that is not a summary");
    }
}
