//! The live request as replay sees it: parsed into its Graph path, shown in reports,
//! reduced to a new session's seed material, paired with a recorded request — and a
//! body far too large to match refused before it is parsed.

use bytes::Bytes;

use std::sync::atomic::Ordering;

use super::prepared::RecordedExchange;
use super::session::Missed;
use super::sessions::Route;
use super::{OnMiss, Replayer};
use crate::cassette::{Body, Event, LiveBody};
use crate::error::ProxyError;
use crate::graph::{self, GraphPath};
use crate::http::wire::header_str;
use crate::ids::Canon;
use crate::ids::{self, Pairing};
use crate::matching::{self, Probe};
use crate::sync::lock;

/// A parsed live request.
pub struct Live<'a> {
    pub parts: &'a http::request::Parts,
    pub method: &'a str,
    /// Path and query as sent.
    pub pq: &'a str,
    pub path: GraphPath,
    pub query: Option<&'a str>,
    pub body: LiveBody<'a>,
    /// The key matching looks up (built here, before the session's lock is taken);
    /// its shape is left unset: matching reads the body (`matching::Query`).
    pub probe: Probe,
}

impl<'a> Live<'a> {
    pub fn parse(parts: &'a http::request::Parts, body: &'a Bytes) -> Result<Live<'a>, ProxyError> {
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let (path, query) = graph::split_uri(pq);
        let gp = GraphPath::parse(path).ok_or_else(|| {
            ProxyError::NotFound(format!(
                "`{path}` is not a Graph path: graphvcr serves /v1.0/... and /beta/... (admin: /_graphvcr/)"
            ))
        })?;
        let body = LiveBody::read(body);
        let method = parts.method.as_str();
        let probe = Probe::head(method, &gp, query);
        Ok(Live {
            parts,
            method,
            pq,
            path: gp,
            query,
            body,
            probe,
        })
    }

    /// The request as reports and messages show it.
    pub fn shown(&self) -> String {
        let uri = crate::redact::shown_uri(self.pq);
        let mut s = String::with_capacity(self.method.len() + 1 + uri.len());
        s.push_str(self.method);
        s.push(' ');
        s.push_str(&uri);
        // at most 300 bytes is at most 300 characters: nothing to clip
        if s.len() > 300 {
            matching::clip(&s, 300)
        } else {
            s
        }
    }
}

/// `a=1&b=2` as (key, value) pairs.
fn query_pairs(q: &str) -> Vec<(&str, &str)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect()
}

/// What a new session's seed derives from: the request's path template, its ids and
/// every string it carries, order-free (so SDK key order and whitespace don't count).
pub fn seed_material(live: &Live<'_>) -> Vec<u8> {
    use std::fmt::Write as _;
    // each part written once into one buffer, then sorted and deduplicated as a
    // sorted set of the parts' strings would be (the same bytes, no string per part)
    let mut buf = String::with_capacity(256);
    let mut parts: Vec<std::ops::Range<usize>> = Vec::with_capacity(16);
    let mut part = |buf: &mut String, write: &dyn Fn(&mut String)| {
        let start = buf.len();
        write(buf);
        parts.push(start..buf.len());
    };
    for seg in live.path.segments() {
        for t in ids::scan(seg) {
            part(&mut buf, &|b| {
                let _ = write!(b, "id:{}", t.canon);
            });
        }
    }
    if let Some(q) = live.query {
        part(&mut buf, &|b| {
            b.push_str("q:");
            b.push_str(q);
        });
    }
    match &live.body {
        LiveBody::Json(v) => ids::visit_strings(v, &mut |k, _, s| {
            part(&mut buf, &|b| {
                b.push_str(k.unwrap_or(""));
                b.push('=');
                b.push_str(s);
            })
        }),
        LiveBody::Text(t) => part(&mut buf, &|b| {
            b.push_str("text:");
            b.push_str(t);
        }),
        _ => {}
    }
    parts.sort_unstable_by(|a, b| buf[a.clone()].cmp(&buf[b.clone()]));
    parts.dedup_by(|a, b| buf[a.clone()] == buf[b.clone()]);
    let mut out = Vec::with_capacity(buf.len() + parts.len() + 64);
    out.extend_from_slice(live.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(live.probe.template.as_bytes());
    out.push(b'\n');
    for r in parts {
        out.extend_from_slice(&buf.as_bytes()[r]);
        out.push(b'\n');
    }
    out
}

/// Walks the recorded request beside the live one: path, query and body.
pub fn pair<'a>(rec: &'a RecordedExchange, rec_ev: &'a Event, live: &'a Live<'_>) -> Pairing<'a> {
    let mut pairing = Pairing::default();
    if let Some(rp) = &rec.path {
        for ((a, id), b) in rp.segments_with_ids().zip(live.path.segments()) {
            pairing.strs(a, b, None, id);
        }
    }
    if let (Some(a), Some(b)) = (&rec.query, live.query) {
        let mut lq = query_pairs(b);
        for (k, v) in query_pairs(a) {
            if let Some(i) = lq.iter().position(|(lk, _)| *lk == k) {
                pairing.strs(v, lq.remove(i).1, None, false);
            }
        }
    }
    match (&rec_ev.request.body, &live.body) {
        (Body::Json(a), LiveBody::Json(b)) => pairing.json(a, b, None),
        (Body::Text(a), LiveBody::Text(b)) => pairing.strs(a, b, None, false),
        _ => {}
    }
    pairing
}

/// Bodies larger than this are first checked against the largest recording of
/// their request (see `Replayer::refuse_oversized`).
pub const OVERSIZE_CHECK: usize = 64 * 1024;

impl Replayer {
    /// A body far larger than any recording of its request cannot match: it misses
    /// before it is parsed (a 16 MiB JSON body parses into far more memory), unless
    /// its session forwards misses.
    pub(super) fn refuse_oversized(&self, parts: &http::request::Parts, len: usize) -> Result<(), ProxyError> {
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let (path, query) = graph::split_uri(pq);
        let Some(gp) = graph::GraphPath::parse(path) else {
            return Ok(());
        };
        let header = header_str(&parts.headers, "x-graphvcr-session");
        let path_ids: Vec<Canon> = gp
            .id_segments()
            .flat_map(|s| ids::scan(s).into_iter().map(|t| t.canon))
            .collect();
        let route = Route {
            settings: &self.defaults,
            header,
            path_ids: &path_ids,
            body_ids: &[],
            seed_material: &Vec::new,
        };
        let session = self.sessions.find(&route, self.clock.mono_ms())?;
        let cassette = match &session {
            Some(s) => lock(s).cassette().clone(),
            None => match self.cassette_for(header_str(&parts.headers, "x-graphvcr-cassette")) {
                Ok(c) => c,
                Err(_) => return Ok(()),
            },
        };
        let key = matching::key_of(parts.method.as_str(), &gp, query);
        let Some(largest) = cassette.body_too_large(&key, len) else {
            return Ok(());
        };
        let reason = format!(
            "no recorded exchange matches {}: its {len}-byte body is far larger than any recording of it \
             (the largest is {largest} bytes)",
            matching::clip(&key, 300)
        );
        let shared = match session {
            Some(s) => s,
            None => self.sessions.create_new(&cassette, &route, self.clock.mono_ms())?,
        };
        {
            let mut s = lock(&shared);
            if s.settings().on_miss != OnMiss::Error {
                return Ok(());
            }
            s.note_missed(Missed {
                request: matching::clip(&key, 300),
                nearest_seq: None,
                reason: reason.clone(),
                expected: false,
            });
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        Err(ProxyError::Miss {
            message: format!("cassette `{}`: {reason}", cassette.name()),
            nearest: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_material_is_the_sorted_distinct_parts_whatever_their_order() {
        let parts = http::Request::post("/beta/app/calls/0f3a1b2c-0000-4000-8000-00000000abcd/participants/invite?b=2")
            .body(())
            .map(|r| r.into_parts().0)
            .unwrap();
        let body = Bytes::from_static(
            br##"{"z":"x","@odata.type":"#t","a":["y","x"],"c":{"z":"x"},"n":1,"id":"0F3A1B2C-0000-4000-8000-00000000ABCD"}"##,
        );
        let live = Live::parse(&parts, &body).unwrap();
        let got = String::from_utf8(seed_material(&live)).unwrap();
        assert_eq!(
            got,
            "POST /communications/calls/{id}/participants/invite\n\
             a=x\na=y\nid:0f3a1b2c-0000-4000-8000-00000000abcd\n\
             id=0F3A1B2C-0000-4000-8000-00000000ABCD\nq:b=2\nz=x\n"
        );
        let reordered = Bytes::from_static(
            br##"{"id":"0F3A1B2C-0000-4000-8000-00000000ABCD","c":{"z":"x"},"a":["x","y"],"z":"x"}"##,
        );
        let again = Live::parse(&parts, &reordered).unwrap();
        assert_eq!(seed_material(&again).as_slice(), got.as_bytes());
    }
}
