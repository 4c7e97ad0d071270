use super::*;
use proptest::prelude::*;

/// Two trees read alike: the same nodes, members in the same order.
fn same<A: Tree, B: Tree>(a: &A, b: &B) -> bool {
    match (a.node(), b.node()) {
        (Node::Null, Node::Null) => true,
        (Node::Bool(x), Node::Bool(y)) => x == y,
        (Node::Num(x), Node::Num(y)) => x == y,
        (Node::Str(x), Node::Str(y)) => x == y,
        (Node::Arr(x), Node::Arr(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        (Node::Obj(x), Node::Obj(y)) => {
            x.clone().count() == y.clone().count() && x.zip(y).all(|((kx, x), (ky, y))| kx == ky && same(x, y))
        }
        _ => false,
    }
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(r#""a""#.to_string()),
        Just(r#""b""#.to_string()),
        Just(r#""a\"b\\n\u00e9""#.to_string()),
        Just(r#""ab6233a5-20b7-4c5e-bea2-ce56c9776429""#.to_string()),
    ]
}

/// JSON text, with repeated members, escapes, numbers of every kind and whitespace.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("-0".to_string()),
        Just("1.50".to_string()),
        Just("1e2".to_string()),
        Just("18446744073709551615".to_string()),
        Just("-9223372036854775808".to_string()),
        Just("1e400".to_string()),
        text(),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(" , "))),
            prop::collection::vec((text(), inner), 0..6).prop_map(|kv| format!(
                "{{{}}}",
                kv.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(",")
            )),
        ]
    })
}

proptest! {
    #[test]
    fn a_live_body_reads_as_the_value_serde_json_parses(s in json_text()) {
        let value: Result<Value, _> = serde_json::from_str(&s);
        let live = Json::parse(s.as_bytes());
        match (value, live) {
            (Ok(v), Some(j)) => {
                prop_assert!(same(&v, &j), "{s}");
                prop_assert_eq!(v.depth(), j.depth());
            }
            (Err(_), None) => {}
            (v, j) => prop_assert!(false, "{s}: {v:?} / {j:?}"),
        }
    }
}

#[test]
fn a_repeated_member_keeps_its_first_place_and_its_last_value_in_large_objects_too() {
    for n in [3, MEMBERS_SCANNED + 5] {
        let mut members: Vec<String> = (0..n).map(|i| format!(r#""k{i}":{i}"#)).collect();
        members.push(r#""k1":"last""#.to_string());
        members.push(format!(r#""k{}":"end""#, n - 1));
        let s = format!("{{{}}}", members.join(","));
        let v: Value = serde_json::from_str(&s).unwrap();
        let j = Json::parse(s.as_bytes()).unwrap();
        assert!(same(&v, &j), "{s}");
        assert_eq!(j.get("k1").and_then(Tree::as_str), Some("last"));
    }
}

#[test]
fn strings_without_escapes_are_borrowed() {
    let s = br#"{"a":"plain","b\u0041":"esc\"aped"}"#;
    let Some(Json::Obj(m)) = Json::parse(s) else {
        panic!("an object")
    };
    assert!(matches!(&m[0], (Cow::Borrowed("a"), Json::Str(Cow::Borrowed("plain")))));
    assert!(matches!(&m[1], (Cow::Owned(k), Json::Str(Cow::Owned(v))) if k == "bA" && v == "esc\"aped"));
}

#[test]
fn live_bodies_are_classified_as_recorded_ones() {
    let deep = format!("{}{}", "[".repeat(MAX_JSON_DEPTH + 1), "]".repeat(MAX_JSON_DEPTH + 1));
    let cases: [&[u8]; 5] = [b"", br#"{"a":1}"#, b"not json", &[0xff, 0xfe], deep.as_bytes()];
    for b in cases {
        let (recorded, live) = (super::super::Body::from_bytes(b), LiveBody::read(b));
        let kinds = match (recorded.view(), live.view()) {
            (BodyRef::Empty, BodyRef::Empty) => true,
            (BodyRef::Json(v), BodyRef::Json(j)) => same(v, j),
            (BodyRef::Text(a), BodyRef::Text(b)) => a == b,
            (BodyRef::Bytes(a), BodyRef::Bytes(b)) => a == b,
            _ => false,
        };
        assert!(kinds, "{:?}", String::from_utf8_lossy(b));
    }
}
