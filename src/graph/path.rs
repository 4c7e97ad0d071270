//! A request path as matching reads it: the Graph API version and the normalised
//! segments after it, kept in one buffer.

use super::{is_id_segment, ACTION_PREFIX, VERSIONS};

/// A request path split the way matching needs it: its version and its segments after
/// the version, normalised (`/app/calls` reads as `/communications/calls`,
/// `microsoft.graph.` is dropped from actions, percent-escapes are left as they are).
/// The segments are kept in one buffer (a live request's path costs one allocation);
/// stored as `{"version", "segments": [..]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphPath {
    /// `v1.0` or `beta`.
    version: &'static str,
    /// The segments, one after another.
    text: String,
    /// Where each segment ends in `text`.
    ends: smallvec::SmallVec<[u32; 8]>,
    /// Which of the first 32 segments are one id each (found once, when parsed).
    ids: u32,
}

/// A [`GraphPath`] as stored.
#[derive(serde::Serialize, serde::Deserialize)]
struct PathParts {
    version: String,
    segments: Vec<String>,
}

impl serde::Serialize for GraphPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        PathParts {
            version: self.version.to_string(),
            segments: self.segments().map(str::to_string).collect(),
        }
        .serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for GraphPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<GraphPath, D::Error> {
        let p = PathParts::deserialize(d)?;
        let version = VERSIONS
            .into_iter()
            .find(|v| *v == p.version)
            .ok_or_else(|| serde::de::Error::custom(format!("`{}` is not a Graph API version", p.version)))?;
        let len = p.segments.iter().map(String::len).sum();
        Ok(GraphPath::of(version, p.segments.iter().map(String::as_str), len))
    }
}

impl GraphPath {
    /// Parses `/v1.0/communications/calls/...` (query already removed).
    pub fn parse(path: &str) -> Option<GraphPath> {
        let mut parts = path.split('/').filter(|s| !s.is_empty());
        let first = parts.next()?;
        let version = VERSIONS.into_iter().find(|v| *v == first)?;
        let segments = parts.enumerate().map(|(i, seg)| match seg {
            "app" if i == 0 => "communications",
            _ => seg.strip_prefix(ACTION_PREFIX).unwrap_or(seg),
        });
        Some(GraphPath::of(version, segments, path.len()))
    }

    /// The path of `segments` (at most `len` bytes in all).
    fn of<'a>(version: &'static str, segments: impl Iterator<Item = &'a str>, len: usize) -> GraphPath {
        let mut text = String::with_capacity(len);
        let mut ends = smallvec::SmallVec::new();
        let mut ids = 0u32;
        for (i, seg) in segments.enumerate() {
            if i < 32 && is_id_segment(seg) {
                ids |= 1 << i;
            }
            text.push_str(seg);
            // a path longer than 4 GiB never reaches here (the server bounds request heads)
            ends.push(u32::try_from(text.len()).unwrap_or(u32::MAX));
        }
        GraphPath {
            version,
            text,
            ends,
            ids,
        }
    }

    /// The segments, each with whether it is one id (a call, operation, participant).
    pub fn segments_with_ids(&self) -> impl Iterator<Item = (&str, bool)> {
        self.segments().enumerate().map(|(i, seg)| {
            let id = if i < 32 {
                self.ids & (1 << i) != 0
            } else {
                is_id_segment(seg)
            };
            (seg, id)
        })
    }

    /// `v1.0` or `beta`.
    pub fn version(&self) -> &'static str {
        self.version
    }

    /// The segments after the version, in order.
    pub fn segments(&self) -> impl ExactSizeIterator<Item = &str> + Clone {
        (0..self.ends.len()).map(|i| {
            let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
            // the bounds were taken from `text` itself, at segment ends
            self.text.get(start..self.ends[i] as usize).unwrap_or("")
        })
    }

    /// Segment `i`.
    pub fn segment(&self, i: usize) -> Option<&str> {
        self.segments().nth(i)
    }

    /// The path template: every segment that is one id-like token becomes `{id}`.
    pub fn template(&self) -> String {
        let mut out = String::with_capacity(self.text.len() + 2 * self.ends.len() + 8);
        for (seg, id) in self.segments_with_ids() {
            out.push('/');
            if id {
                out.push_str("{id}");
            } else {
                out.push_str(seg);
            }
        }
        out
    }

    /// The ids that name the resource (call, operation, participant ...), in path order.
    pub fn id_segments(&self) -> impl Iterator<Item = &str> {
        self.segments_with_ids().filter_map(|(s, id)| id.then_some(s))
    }
}
