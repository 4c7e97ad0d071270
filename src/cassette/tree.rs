//! JSON as walks read it: [`Tree`], one view over a `serde_json::Value` (recordings)
//! and over [`Json`], a live body read borrowed from the request bytes (no string
//! copied unless it has escapes, no map built), so each walk is written once; and
//! [`BodyRef`], a body of either kind.
//!
//! A live body reads as the `Value` serde_json would parse from the same bytes: the
//! same members in the same order (a repeated member keeps its first place and its
//! last value), the same strings and numbers.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

use super::model::{MAX_JSON_BYTES, MAX_JSON_DEPTH};
use crate::hash::Map;

/// One JSON node as a walk sees it.
pub enum Node<'a, T: Tree + 'a> {
    Null,
    Bool(bool),
    Num(&'a Number),
    Str(&'a str),
    Arr(&'a [T]),
    /// The members, in order.
    Obj(T::Members<'a>),
}

/// A JSON tree a walk can read.
pub trait Tree: Sized {
    type Members<'a>: Iterator<Item = (&'a str, &'a Self)> + Clone
    where
        Self: 'a;

    fn node(&self) -> Node<'_, Self>;

    /// Member `key` of an object.
    fn get(&self, key: &str) -> Option<&Self> {
        match self.node() {
            Node::Obj(mut m) => m.find(|(k, _)| *k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self.node() {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self.node(), Node::Null)
    }

    /// How deeply lists and objects nest (a scalar is 0 deep).
    fn depth(&self) -> usize {
        match self.node() {
            Node::Arr(a) => 1 + a.iter().map(Tree::depth).max().unwrap_or(0),
            Node::Obj(m) => 1 + m.map(|(_, v)| v.depth()).max().unwrap_or(0),
            _ => 0,
        }
    }
}

type ValueMembers<'a> = std::iter::Map<serde_json::map::Iter<'a>, fn((&'a String, &'a Value)) -> (&'a str, &'a Value)>;

fn value_member<'a>((k, v): (&'a String, &'a Value)) -> (&'a str, &'a Value) {
    (k.as_str(), v)
}

impl Tree for Value {
    type Members<'a> = ValueMembers<'a>;

    fn node(&self) -> Node<'_, Value> {
        match self {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(*b),
            Value::Number(n) => Node::Num(n),
            Value::String(s) => Node::Str(s),
            Value::Array(a) => Node::Arr(a),
            Value::Object(o) => Node::Obj(o.iter().map(value_member as fn(_) -> _)),
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.as_object()?.get(key)
    }
}

/// A live JSON body, borrowing its strings from the request bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'b> {
    Null,
    Bool(bool),
    Num(Number),
    Str(Cow<'b, str>),
    Arr(Vec<Json<'b>>),
    Obj(Vec<(Cow<'b, str>, Json<'b>)>),
}

type JsonMembers<'a, 'b> = std::iter::Map<
    std::slice::Iter<'a, (Cow<'b, str>, Json<'b>)>,
    fn(&'a (Cow<'b, str>, Json<'b>)) -> (&'a str, &'a Json<'b>),
>;

fn json_member<'a, 'b>((k, v): &'a (Cow<'b, str>, Json<'b>)) -> (&'a str, &'a Json<'b>) {
    (k, v)
}

impl<'b> Tree for Json<'b> {
    type Members<'a>
        = JsonMembers<'a, 'b>
    where
        Self: 'a;

    fn node(&self) -> Node<'_, Json<'b>> {
        match self {
            Json::Null => Node::Null,
            Json::Bool(b) => Node::Bool(*b),
            Json::Num(n) => Node::Num(n),
            Json::Str(s) => Node::Str(s),
            Json::Arr(a) => Node::Arr(a),
            Json::Obj(m) => Node::Obj(m.iter().map(json_member as fn(_) -> _)),
        }
    }
}

impl<'b> Json<'b> {
    /// The bytes as JSON, when they are JSON a body keeps as JSON (`parse_kept`).
    pub fn parse(bytes: &'b [u8]) -> Option<Json<'b>> {
        parse_kept(bytes)
    }
}

/// The bytes as a JSON tree, when a body keeps them as JSON: they parse, at most
/// `MAX_JSON_BYTES` long and `MAX_JSON_DEPTH` deep (recorded and live bodies alike).
pub(super) fn parse_kept<'b, T: Tree + serde::Deserialize<'b>>(bytes: &'b [u8]) -> Option<T> {
    if bytes.len() > MAX_JSON_BYTES {
        return None;
    }
    serde_json::from_slice::<T>(bytes)
        .ok()
        .filter(|j| j.depth() <= MAX_JSON_DEPTH)
}

/// Objects with more members than this find a repeated member through a map.
const MEMBERS_SCANNED: usize = 16;

/// An object's members as serde_json keeps them: a repeated member keeps its first
/// place and takes the last value.
#[derive(Default)]
struct Members<'b> {
    list: Vec<(Cow<'b, str>, Json<'b>)>,
    /// Member name -> place, once the object is too large to scan.
    places: Option<Map<Cow<'b, str>, usize>>,
}

impl<'b> Members<'b> {
    fn push(&mut self, k: Cow<'b, str>, v: Json<'b>) {
        let at = match &self.places {
            Some(p) => p.get(&k).copied(),
            None => self.list.iter().position(|(x, _)| *x == k),
        };
        if let Some(slot) = at.and_then(|i| self.list.get_mut(i)) {
            slot.1 = v;
            return;
        }
        if let Some(p) = &mut self.places {
            p.insert(k.clone(), self.list.len());
        }
        self.list.push((k, v));
        if self.places.is_none() && self.list.len() > MEMBERS_SCANNED {
            let places = self.list.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect();
            self.places = Some(places);
        }
    }
}

/// A string or member name, borrowed when it has no escapes.
struct Text<'b>(Cow<'b, str>);

impl<'de> serde::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_string())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Json<'de>, E> {
        Ok(Json::Num(n.into()))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Json<'de>, E> {
        Ok(Json::Num(n.into()))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Json<'de>, E> {
        // as serde_json's own `Value`: a number that is no finite f64 reads as null
        Ok(Number::from_f64(n).map_or(Json::Null, Json::Num))
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(s.to_string())))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(x) = seq.next_element()? {
            items.push(x);
        }
        Ok(Json::Arr(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut members = Members::default();
        while let Some(Text(k)) = map.next_key()? {
            let v = map.next_value()?;
            members.push(k, v);
        }
        Ok(Json::Obj(members.list))
    }
}

impl<'de> serde::Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json<'de>, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

/// A body of either kind as walks read it.
pub enum BodyRef<'a, T> {
    Empty,
    Json(&'a T),
    Text(&'a str),
    Bytes(&'a [u8]),
}

impl<T> Clone for BodyRef<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for BodyRef<'_, T> {}

impl<'a, T> BodyRef<'a, T> {
    pub fn json(self) -> Option<&'a T> {
        match self {
            BodyRef::Json(v) => Some(v),
            _ => None,
        }
    }
}

/// A live request's body, classified as `Body::from_bytes` would classify it, and
/// borrowing the request bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveBody<'b> {
    Empty,
    Json(Json<'b>),
    Text(&'b str),
    Bytes(&'b [u8]),
}

impl<'b> LiveBody<'b> {
    pub fn read(b: &'b [u8]) -> LiveBody<'b> {
        if b.is_empty() {
            return LiveBody::Empty;
        }
        if let Some(j) = Json::parse(b) {
            return LiveBody::Json(j);
        }
        match std::str::from_utf8(b) {
            Ok(s) => LiveBody::Text(s),
            Err(_) => LiveBody::Bytes(b),
        }
    }

    pub fn view(&self) -> BodyRef<'_, Json<'b>> {
        match self {
            LiveBody::Empty => BodyRef::Empty,
            LiveBody::Json(j) => BodyRef::Json(j),
            LiveBody::Text(s) => BodyRef::Text(s),
            LiveBody::Bytes(b) => BodyRef::Bytes(b),
        }
    }

    pub fn json(&self) -> Option<&Json<'b>> {
        self.view().json()
    }
}

#[cfg(test)]
mod tests;
