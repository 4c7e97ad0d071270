//! The bodies of a prepared cassette's events (what replay reads of an event beyond
//! its seq and timing): held in memory for a small cassette, read from the store when
//! served for a large one, with the most recently read kept. A large cassette is then
//! served without being held: its memory is its index and what sessions read.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use http::{HeaderName, HeaderValue};

use super::headers::Recorded;
use crate::cassette::{Body, Event, EventReader, Kind, StoreError};
use crate::hash::{Map, Set};
use crate::ids::{self, Template, Tokens};
use crate::sync::lock;

/// A recorded event as replay serves it: the body graphvcr sends (an exchange's
/// response, a notification's request) compiled for rewriting and taken out of it,
/// and the names of the headers it sends parsed once.
#[derive(Debug)]
pub struct Loaded {
    event: Event,
    sent: Template,
    /// The headers it sends, parsed once (framing headers, and names HTTP refuses,
    /// left out).
    headers: Vec<SentHeader>,
}

/// A recorded header as replay sends it.
#[derive(Debug)]
struct SentHeader {
    name: HeaderName,
    /// Where its value is in the event's list.
    at: usize,
    /// The recorded value, parsed (sent as is when rewriting leaves it unchanged).
    value: Option<HeaderValue>,
    /// The ids in it.
    tokens: Tokens,
}

impl Loaded {
    /// Compiles event `e`'s sent body (see [`Bindable`]) and takes it out.
    pub fn compile(mut e: Event, bindable: &Bindable) -> Loaded {
        let (headers, body) = match e.kind {
            Kind::Exchange => (&e.response.headers, &mut e.response.body),
            Kind::Notification => (&e.request.headers, &mut e.request.body),
        };
        let parsed = headers
            .iter()
            .enumerate()
            .filter(|(_, (n, _))| !crate::http::wire::is_framing_header(n))
            .filter_map(|(at, (n, v))| {
                Some(SentHeader {
                    name: HeaderName::from_bytes(n.as_bytes()).ok()?,
                    at,
                    value: HeaderValue::from_str(v).ok(),
                    tokens: ids::scan(v),
                })
            })
            .collect();
        let sent = Template::compile(body, &|k, s| bindable.holds(k, s));
        *body = Body::Empty;
        Loaded {
            event: e,
            sent,
            headers: parsed,
        }
    }

    /// The headers this event sends (an exchange's response, a notification's request),
    /// framing headers left out.
    pub fn sent_headers(&self) -> impl ExactSizeIterator<Item = Recorded<'_>> {
        let recorded = match self.event.kind {
            Kind::Exchange => &self.event.response.headers,
            Kind::Notification => &self.event.request.headers,
        };
        self.headers.iter().map(move |h| Recorded {
            name: &h.name,
            value: recorded.get(h.at).map_or("", |(_, v)| v.as_str()),
            parsed: h.value.as_ref(),
            tokens: &h.tokens,
        })
    }

    /// The event, without its sent body.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// The sent body, compiled; its JSON is `sent().json_value()`.
    pub fn sent(&self) -> &Template {
        &self.sent
    }
}

/// The strings the cassette's requests hold under each member: a template keeps a
/// string without ids only where one of them is the same (only those can be bound
/// whole, `Pairing::strs`).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Bindable {
    by_member: Map<Box<str>, Set<Box<str>>>,
}

impl Bindable {
    /// Adds the strings of a recorded exchange's request body.
    pub fn add(&mut self, request: &Body) {
        if let Body::Json(v) = request {
            crate::ids::visit_strings(v, &mut |key, _, s| {
                if let Some(k) = key {
                    match self.by_member.get_mut(k) {
                        Some(set) => {
                            if !set.contains(s) {
                                set.insert(s.into());
                            }
                        }
                        None => {
                            self.by_member.insert(k.into(), Set::from_iter([s.into()]));
                        }
                    }
                }
            });
        }
    }

    pub fn holds(&self, member: &str, s: &str) -> bool {
        self.by_member.get(member).is_some_and(|set| set.contains(s))
    }
}

/// How many events a store-served cassette keeps read (about 2 to 10 KB each).
pub const KEPT: usize = 1024;

/// Where the bodies are.
pub(super) enum Bodies {
    /// Every event's, by index.
    Held(Vec<Arc<Loaded>>),
    /// In the store, read when served.
    Stored(Stored),
}

/// Bodies read from the store: by event index, its seq is the index.
pub(super) struct Stored {
    reader: Arc<dyn EventReader>,
    bindable: Bindable,
    kept: Mutex<Kept>,
}

/// The events read most recently, oldest evicted first.
#[derive(Default)]
struct Kept {
    by_index: Map<usize, Arc<Loaded>>,
    order: VecDeque<usize>,
}

impl std::fmt::Debug for Bodies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bodies::Held(v) => write!(f, "Held({} events)", v.len()),
            Bodies::Stored(s) => write!(f, "Stored({} kept)", lock(&s.kept).order.len()),
        }
    }
}

impl Bodies {
    pub fn stored(reader: Arc<dyn EventReader>, bindable: Bindable) -> Bodies {
        Bodies::Stored(Stored {
            reader,
            bindable,
            kept: Mutex::new(Kept::default()),
        })
    }

    /// Event `i`'s (recorded as seq `seq`).
    pub fn get(&self, i: usize, seq: u64) -> Result<Arc<Loaded>, StoreError> {
        let s = match self {
            Bodies::Held(v) => {
                return v
                    .get(i)
                    .cloned()
                    .ok_or_else(|| StoreError::Io(format!("no event {i} in the prepared cassette")))
            }
            Bodies::Stored(s) => s,
        };
        if let Some(l) = lock(&s.kept).by_index.get(&i) {
            return Ok(l.clone());
        }
        // read and compiled outside the lock: two sessions may both read it, once
        let l = Arc::new(Loaded::compile(s.reader.event(seq)?, &s.bindable));
        let mut kept = lock(&s.kept);
        if kept.by_index.insert(i, l.clone()).is_none() {
            kept.order.push_back(i);
            while kept.order.len() > KEPT {
                if let Some(old) = kept.order.pop_front() {
                    kept.by_index.remove(&old);
                }
            }
        }
        Ok(l)
    }
}
