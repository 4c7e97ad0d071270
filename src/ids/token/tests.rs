//! The token reader and writer against std and a reference scan.

use super::*;
use proptest::prelude::*;

#[test]
fn finds_guids_in_every_form() {
    let s = "calls/ab6233a5-20b7-4c5e-bea2-ce56c9776429 and 57DAB8B1894C409AB240BD8BEAE78896 8:orgid:278405a3-f568-4b3e-b684-009193463064";
    let t = scan(s);
    assert_eq!(t.len(), 3);
    assert_eq!(
        t[1].form,
        Form::Guid {
            upper: true,
            dashed: false
        }
    );
    assert_eq!(&s[t[2].start..t[2].end], "278405a3-f568-4b3e-b684-009193463064");
    let a = scan("AB6233A5-20B7-4C5E-BEA2-CE56C9776429");
    assert_eq!(a[0].canon, t[0].canon);
}

#[test]
fn finds_phones_and_threads() {
    let s = "participant 4:+61450078883. in 19:meeting_NDM3MjEw@thread.v2 x";
    let t = scan(s);
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].canon, Canon::Phone("+61450078883".into()));
    assert_eq!(t[1].canon, Canon::Thread("19:meeting_NDM3MjEw@thread.v2".into()));
}

#[test]
fn ignores_longer_hex_runs_and_short_numbers() {
    assert!(scan("c814b44b73fcd7f3f6b6ec48b524218185ca49b3").is_empty());
    assert!(scan("+123").is_empty());
    assert!(scan("sourceId 1").is_empty());
}

/// The scan as first written: every boundary tries every kind.
fn scan_every_boundary(s: &str) -> Vec<Token> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if i == 0 || !b[i - 1].is_ascii_alphanumeric() {
            let found = thread_at(b, i)
                .map(|end| (end, Canon::Thread(s[i..end].into()), Form::Thread))
                .or_else(|| guid_at(b, i).map(|(end, v, form)| (end, Canon::guid(v), form)))
                .or_else(|| phone_at(b, i).map(|end| (end, Canon::Phone(s[i..end].into()), Form::Phone)));
            if let Some((end, canon, form)) = found {
                out.push(Token {
                    start: i,
                    end,
                    canon,
                    form,
                });
                i = end;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// Text dense in token starts and near-tokens.
fn id_soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<u128>().prop_map(|v| render_guid(v, v % 2 == 0, v % 3 != 0)),
        "\\+[0-9]{5,16}",
        "19:[a-zA-Z0-9_-]{0,6}@thread\\.v[0-9]",
        "[a-f0-9+:/ .@-]{1,12}",
        ".{0,4}",
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

/// Runs of hex digits and dashes, GUIDs in either form among them.
fn hex_runs() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-fA-F-]{30,38}",
        // a GUID with one character swapped for a byte just outside a hex range
        (
            any::<u128>(),
            any::<bool>(),
            any::<bool>(),
            0usize..36,
            "[/:@G`gé\\x7f]"
        )
            .prop_map(|(v, upper, dashed, at, c)| {
                let t = render_guid(v, upper, dashed);
                let at = at.min(t.len() - 1);
                format!("{}{c}{}", &t[..at], &t[at + 1..])
            }),
        (any::<u128>(), any::<bool>(), any::<bool>(), "[0-9a-f-]{0,2}")
            .prop_map(|(v, upper, dashed, tail)| render_guid(v, upper, dashed) + &tail),
    ]
}

proptest! {
    #[test]
    fn a_guid_orders_and_serializes_as_its_u128(a in any::<u128>(), b in any::<u128>()) {
        prop_assert_eq!(Guid::new(a).get(), a);
        prop_assert_eq!(Guid::new(a).cmp(&Guid::new(b)), a.cmp(&b));
        // a kept summary written before the two-word form reads the same
        let json = serde_json::to_string(&Canon::guid(a)).unwrap();
        prop_assert_eq!(&json, &format!("{{\"Guid\":{a}}}"));
        prop_assert_eq!(serde_json::from_str::<Canon>(&json).unwrap(), Canon::guid(a));
        prop_assert_eq!(format!("{:?}", Canon::guid(a)), format!("Guid({a})"));
    }

    #[test]
    fn skipping_words_finds_the_same_tokens(s in id_soup()) {
        prop_assert_eq!(scan(&s).to_vec(), scan_every_boundary(&s));
    }

    #[test]
    fn a_guid_is_written_as_std_formats_it(v in any::<u128>(), upper in any::<bool>(), dashed in any::<bool>()) {
        let hex = format!("{v:032x}");
        let mut want = if dashed {
            format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
        } else {
            hex
        };
        if upper {
            want.make_ascii_uppercase();
        }
        prop_assert_eq!(render_guid(v, upper, dashed), want);
    }

    #[test]
    fn a_guid_is_read_where_std_parses_one(s in hex_runs()) {
        let at_boundary = |n: usize| s.len() == n || !s.as_bytes()[n].is_ascii_alphanumeric();
        let hex = |r: &str| r.bytes().all(|c| c.is_ascii_hexdigit());
        let dashed = s.get(..36).filter(|g| {
            g.char_indices().all(|(k, c)| (c == '-') == matches!(k, 8 | 13 | 18 | 23)) && at_boundary(36)
        });
        let plain = s.get(..32).filter(|g| hex(g) && at_boundary(32));
        let want = match (dashed, plain) {
            (Some(g), _) => u128::from_str_radix(&g.replace('-', ""), 16).ok().map(|v| (36, v)),
            (None, Some(g)) => u128::from_str_radix(g, 16).ok().map(|v| (32, v)),
            _ => None,
        };
        let got = guid_at(s.as_bytes(), 0).map(|(end, v, _)| (end, v));
        prop_assert_eq!(got, want);
    }

    #[test]
    fn a_written_form_is_one_its_text_renders_in(v in any::<u128>(), upper in any::<bool>(), dashed in any::<bool>(), flip in 0usize..40) {
        let text = render_guid(v, upper, dashed);
        prop_assert_eq!(written_form(&Canon::guid(v), &text), Some(Form::Guid { upper, dashed }));
        // one letter of several in the other case (mixed), or another value: no form
        let letters = text.bytes().filter(u8::is_ascii_alphabetic).count();
        let mut other = text.clone().into_bytes();
        if let Some(c) = other.get_mut(flip).filter(|c| c.is_ascii_alphabetic() && letters > 1) {
            *c ^= 0x20;
            let other = String::from_utf8(other).unwrap();
            prop_assert_eq!(written_form(&Canon::guid(v), &other), None);
        }
        prop_assert_eq!(written_form(&Canon::guid(v ^ 1), &text), None);
    }

    #[test]
    fn guid_render_roundtrips(v in any::<u128>(), upper in any::<bool>(), dashed in any::<bool>()) {
        let text = render_guid(v, upper, dashed);
        let toks = scan(&text);
        prop_assert_eq!(toks.len(), 1);
        prop_assert_eq!(&toks[0].canon, &Canon::guid(v));
        prop_assert_eq!(render(&toks[0].canon, toks[0].form), text);
    }

    #[test]
    fn scan_never_panics_and_tokens_are_ordered(s in ".{0,200}") {
        let toks = scan(&s);
        let mut last = 0;
        for t in toks {
            prop_assert!(t.start >= last && t.end > t.start && s.is_char_boundary(t.start) && s.is_char_boundary(t.end));
            last = t.end;
        }
    }
}
