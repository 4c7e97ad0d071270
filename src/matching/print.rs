//! A body's shape fingerprint and the exact-shape test, read straight from the body:
//! a live request finds its recorded shape group without building its shape (a tree
//! of owned strings). `print_body(b) == Shape::of_body(b).print()` and
//! `shape.matches_body(b) == (Shape::of_body(b) == *shape)`, always (a property
//! test holds them to it); the print only narrows, the test decides.

use std::fmt::Write as _;

use super::shape::Shape;
use crate::cassette::{BodyRef, Node, Tree};
use crate::graph;
use crate::ids;

/// FNV-1a over bytes: the same bytes give the same print however they are split, so
/// a templated string hashes alike from its shape (`{id}` written) and from its body
/// (tokens replaced as they are read).
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    const START: Fnv = Fnv(0xcbf2_9ce4_8422_2325);

    fn bytes(mut self, b: &[u8]) -> Fnv {
        for &x in b {
            self.0 = (self.0 ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3);
        }
        self
    }

    fn tag(self, t: u8) -> Fnv {
        self.bytes(&[t])
    }

    fn word(self, n: u64) -> Fnv {
        self.bytes(&n.to_le_bytes())
    }
}

impl std::fmt::Write for Fnv {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        *self = self.bytes(s.as_bytes());
        Ok(())
    }
}

/// A string with its ids written as `{id}`, fed to `f` piece by piece.
fn templated(s: &str, mut f: impl FnMut(&str)) {
    let mut last = 0;
    for t in ids::scan(s) {
        f(&s[last..t.start]);
        f("{id}");
        last = t.end;
    }
    f(&s[last..]);
}

/// An object's print: its members' prints summed (member order never counts).
fn object(len: usize, members: impl Iterator<Item = u64>) -> u64 {
    let sum = members.fold(0u64, u64::wrapping_add);
    Fnv::START.tag(b'o').word(len as u64).word(sum).0
}

fn member(key: &str, value: u64) -> u64 {
    Fnv::START.tag(b'k').bytes(key.as_bytes()).word(value).0
}

fn list(items: impl Iterator<Item = u64>) -> u64 {
    items.fold(Fnv::START.tag(b'a'), Fnv::word).0
}

/// The members of a JSON object a shape keeps.
pub(super) fn kept<'a, T: Tree + 'a>(members: T::Members<'a>) -> impl Iterator<Item = (&'a str, &'a T)> + Clone {
    members.filter(|(k, v)| !graph::is_serializer_annotation(k) && !v.is_null())
}

impl Shape {
    /// The shape's fingerprint (equal shapes, equal prints).
    pub fn print(&self) -> u64 {
        match self {
            Shape::Empty => Fnv::START.tag(b'e').0,
            Shape::Null => Fnv::START.tag(b'n').0,
            Shape::Bool(b) => Fnv::START.tag(b'b').tag(u8::from(*b)).0,
            Shape::Num(n) => Fnv::START.tag(b'#').bytes(n.as_bytes()).0,
            Shape::Str(s) => Fnv::START.tag(b's').bytes(s.as_bytes()).0,
            Shape::Arr(a) => list(a.iter().map(Shape::print)),
            Shape::Obj(m) => object(m.len(), m.iter().map(|(k, v)| member(k, v.print()))),
            Shape::Text(s) => Fnv::START.tag(b't').bytes(s.as_bytes()).0,
            Shape::Bytes(b) => Fnv::START.tag(b'x').bytes(b).0,
        }
    }

    /// Whether `b` has exactly this shape, without building its shape.
    pub fn matches_body<T: Tree>(&self, b: BodyRef<'_, T>) -> bool {
        match (self, b) {
            (Shape::Empty, BodyRef::Empty) => true,
            (Shape::Text(t), BodyRef::Text(s)) => templated_eq(t, s),
            (Shape::Bytes(x), BodyRef::Bytes(y)) => x == y,
            (shape, BodyRef::Json(v)) => shape.matches_json(v),
            _ => false,
        }
    }

    fn matches_json<T: Tree>(&self, v: &T) -> bool {
        match (self, v.node()) {
            (Shape::Null, Node::Null) => true,
            (Shape::Bool(a), Node::Bool(b)) => *a == b,
            (Shape::Num(a), Node::Num(n)) => {
                let mut w = EqWriter(Some(a));
                // an EqWriter never fails; a mismatch leaves it empty
                let _ = write!(w, "{n}");
                w.0 == Some("")
            }
            (Shape::Str(t), Node::Str(s)) => templated_eq(t, s),
            (Shape::Arr(a), Node::Arr(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.matches_json(y)),
            (Shape::Obj(m), Node::Obj(o)) => {
                let mut n = 0;
                let all = kept::<T>(o).all(|(k, v)| {
                    n += 1;
                    m.get(k).is_some_and(|s| s.matches_json(v))
                });
                all && n == m.len()
            }
            _ => false,
        }
    }
}

/// The print `Shape::of_body(b)` has, read from `b`.
pub fn print_body<T: Tree>(b: BodyRef<'_, T>) -> u64 {
    match b {
        BodyRef::Empty => Fnv::START.tag(b'e').0,
        BodyRef::Json(v) => print_json(v),
        BodyRef::Text(s) => templated_print(Fnv::START.tag(b't'), s),
        BodyRef::Bytes(x) => Fnv::START.tag(b'x').bytes(x).0,
    }
}

fn print_json<T: Tree>(v: &T) -> u64 {
    match v.node() {
        Node::Null => Fnv::START.tag(b'n').0,
        Node::Bool(b) => Fnv::START.tag(b'b').tag(u8::from(b)).0,
        Node::Num(n) => {
            let mut h = Fnv::START.tag(b'#');
            let _ = write!(h, "{n}");
            h.0
        }
        Node::Str(s) => templated_print(Fnv::START.tag(b's'), s),
        Node::Arr(a) => list(a.iter().map(print_json)),
        Node::Obj(o) => {
            let members = kept::<T>(o);
            object(members.clone().count(), members.map(|(k, v)| member(k, print_json(v))))
        }
    }
}

fn templated_print(h: Fnv, s: &str) -> u64 {
    let mut h = h;
    templated(s, |piece| h = h.bytes(piece.as_bytes()));
    h.0
}

/// Whether `s` with its ids written as `{id}` reads `t`.
fn templated_eq(t: &str, s: &str) -> bool {
    let mut w = EqWriter(Some(t));
    templated(s, |piece| {
        let _ = w.write_str(piece);
    });
    w.0 == Some("")
}

/// Compares what is written with the text still expected (`None` once it differed).
struct EqWriter<'a>(Option<&'a str>);

impl std::fmt::Write for EqWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 = self.0.and_then(|rest| rest.strip_prefix(s));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cassette::{Body, LiveBody};
    use crate::matching::{compare, MatchMode};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..3).prop_map(|n| json!(n)),
            Just(json!(1.5)),
            prop_oneof![
                Just("a"),
                Just("b {id} c"),
                Just("ab6233a5-20b7-4c5e-bea2-ce56c9776429"),
                Just("AB6233A520B74C5EBEA2CE56C9776429"),
                Just("x 19:meeting_N2E@thread.v2 y"),
                Just("+14255550100"),
                Just("{id}"),
            ]
            .prop_map(|s| Value::String(s.into())),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::vec((prop_oneof![Just("a"), Just("b"), Just("@odata.type")], inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn a_body_read_directly_prints_and_matches_as_its_shape(a in value(), b in value()) {
            let (ta, tb) = (serde_json::to_vec(&a).unwrap(), serde_json::to_vec(&b).unwrap());
            let (ba, bb) = (Body::Json(a), Body::Json(b));
            let (sa, sb) = (Shape::of_body(&ba), Shape::of_body(&bb));
            prop_assert_eq!(print_body(ba.view()), sa.print());
            prop_assert_eq!(print_body(bb.view()), sb.print());
            prop_assert!(sa.matches_body(ba.view()));
            prop_assert_eq!(sa.matches_body(bb.view()), sa == sb);
            prop_assert_eq!(sb.matches_body(ba.view()), sa == sb);
            // the same bodies read live (borrowed from their bytes) print and match alike
            let (la, lb) = (LiveBody::read(&ta), LiveBody::read(&tb));
            prop_assert_eq!(&Shape::of_view(la.view()), &sa);
            prop_assert_eq!(print_body(la.view()), sa.print());
            prop_assert_eq!(sa.matches_body(lb.view()), sa == sb);
            prop_assert_eq!(sb.matches_body(la.view()), sa == sb);
            // a shape always fits itself (a key's only group needs no comparing)
            for mode in [MatchMode::Loose, MatchMode::Default, MatchMode::Strict] {
                let c = compare(&sa, &sa, mode);
                prop_assert!(c.compatible() && c.penalty() == 0);
            }
        }
    }

    #[test]
    fn text_and_binary_bodies_match_only_their_own_shape() {
        let text = Body::Text("call ab6233a5-20b7-4c5e-bea2-ce56c9776429 ended".into());
        let other = Body::Text("call ab6233a5-20b7-4c5e-bea2-ce56c9776429 began".into());
        let bytes = Body::Bytes(vec![1, 2, 3]);
        for b in [&text, &other, &bytes, &Body::Empty] {
            assert_eq!(print_body(b.view()), Shape::of_body(b).print());
        }
        assert!(Shape::of_body(&text).matches_body(text.view()));
        assert!(!Shape::of_body(&text).matches_body(other.view()));
        assert!(!Shape::of_body(&text).matches_body(bytes.view()));
        assert!(Shape::of_body(&bytes).matches_body(bytes.view()));
        assert!(!Shape::Empty.matches_body(Body::Json(json!({})).view()));
    }
}
