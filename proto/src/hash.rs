//! Content hashes shared by agent and server.
//!
//! The agent sends its full inventory only when its hash changed, so both
//! sides must agree on one canonical encoding: JSON with object keys sorted
//! (serde_json's default `Map` is a `BTreeMap`), no insignificant whitespace,
//! hashed with SHA-256 and written as lowercase hex.

use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Canonical JSON encoding of a serialisable value: keys sorted at every
/// level, compact. Two values that are equal as JSON encode identically.
pub fn canonical_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    // Going through `Value` sorts every object's keys (BTreeMap-backed Map).
    let value = serde_json::to_value(value)?;
    serde_json::to_vec(&value)
}

/// `sha256:`-less hex digest of the canonical JSON encoding of `value`.
pub fn content_hash<T: serde::Serialize>(value: &T) -> Result<String, serde_json::Error> {
    Ok(sha256_hex(&canonical_json(value)?))
}

/// Deepest nesting [`is_canonical_json`] follows (serde_json's own parsing
/// limit): deeper texts are left to the slow path, which refuses them.
const MAX_DEPTH: usize = 128;

/// True when `text` is exactly what [`canonical_json`] writes for the value
/// it denotes, checked in one pass without building that value: then its
/// hash is its content hash, and the text can be stored as it is.
///
/// Conservative: it answers false for a few canonical texts it does not
/// analyse (numbers other than integers of at most 18 digits, `\u`
/// escapes, object keys holding an escape, nesting deeper than 128); the
/// caller then parses and re-encodes (the slow path). It never answers true
/// for a text that is not canonical. Rules followed (serde_json's writer):
/// no whitespace outside strings; object keys in strictly increasing byte
/// order (so no duplicate); strings escape only `"`, `\\` and control
/// characters; integers without sign `+`, leading zero or `-0`.
pub fn is_canonical_json(text: &str) -> bool {
    scan_canonical(text, |_, _| ())
}

/// The members of a top-level JSON object as `(key, value text)` pairs, in
/// order, when `text` is canonical as [`is_canonical_json`] recognises it
/// (`None` otherwise, and for other values than objects): the parts of a
/// canonical document without parsing it twice.
pub fn canonical_members(text: &str) -> Option<Vec<(&str, &str)>> {
    if !text.starts_with('{') {
        return None;
    }
    let mut members = Vec::new();
    let canonical = scan_canonical(text, |key, value| {
        // Spans fall on the quotes and brackets the scan found: ASCII, so
        // on character boundaries.
        members.push((key, value));
    });
    canonical.then_some(members)
}

/// [`is_canonical_json`], calling `member(key, value)` for each member of
/// the top-level object.
fn scan_canonical<'t>(text: &'t str, mut member: impl FnMut(&'t str, &'t str)) -> bool {
    /// An open container and, for an object, its previous key's span.
    enum Open {
        Array,
        Object(usize, usize),
    }
    let b = text.as_bytes();
    // The top-level member whose value is being scanned: its key's span
    // and where its value starts.
    let mut top: Option<(usize, usize, usize)> = None;
    let mut i = 0;
    let mut open: Vec<Open> = Vec::new();
    loop {
        // A value starts at `i`.
        match b.get(i) {
            Some(b'{' | b'[') if open.len() >= MAX_DEPTH => return false,
            Some(b'{') if b.get(i + 1) == Some(&b'}') => i += 2,
            Some(b'{') => {
                let Some((start, end)) = canonical_key(b, i + 1) else {
                    return false;
                };
                open.push(Open::Object(start, end));
                if open.len() == 1 {
                    top = Some((start, end, end + 2));
                }
                i = end + 2;
                continue;
            }
            Some(b'[') if b.get(i + 1) == Some(&b']') => i += 2,
            Some(b'[') => {
                open.push(Open::Array);
                i += 1;
                continue;
            }
            Some(b'"') => match canonical_string_end(b, i) {
                Some(end) => i = end,
                None => return false,
            },
            Some(b'n') if b[i..].starts_with(b"null") => i += 4,
            Some(b't') if b[i..].starts_with(b"true") => i += 4,
            Some(b'f') if b[i..].starts_with(b"false") => i += 5,
            Some(b'-' | b'0'..=b'9') => match canonical_integer_end(b, i) {
                Some(end) => i = end,
                None => return false,
            },
            _ => return false,
        }
        // A value ended at `i`: close containers until the next value.
        loop {
            let depth = open.len();
            if depth == 1
                && let Some((key_start, key_end, value_start)) = top.take()
            {
                member(&text[key_start..key_end], &text[value_start..i]);
            }
            match (open.last_mut(), b.get(i)) {
                (None, next) => return next.is_none(),
                (Some(Open::Array), Some(b',')) => {
                    i += 1;
                    break;
                }
                (Some(Open::Array), Some(b']')) | (Some(Open::Object(..)), Some(b'}')) => {
                    open.pop();
                    i += 1;
                }
                (Some(Open::Object(prev_start, prev_end)), Some(b',')) => {
                    let Some((start, end)) = canonical_key(b, i + 1) else {
                        return false;
                    };
                    if b[start..end] <= b[*prev_start..*prev_end] {
                        return false;
                    }
                    (*prev_start, *prev_end) = (start, end);
                    if depth == 1 {
                        top = Some((start, end, end + 2));
                    }
                    i = end + 2;
                    break;
                }
                _ => return false,
            }
        }
    }
}

/// The span of the escape-free key starting with the `"` at `i`, when a
/// `:` follows it.
fn canonical_key(b: &[u8], i: usize) -> Option<(usize, usize)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let start = i + 1;
    let len = b
        .get(start..)?
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
    let end = start + len;
    (b[end] == b'"' && b.get(end + 1) == Some(&b':')).then_some((start, end))
}

/// Where the canonically escaped string starting with the `"` at `i` ends
/// (just past its closing quote).
fn canonical_string_end(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        match *b.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => match *b.get(i + 1)? {
                b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                _ => return None,
            },
            c if c < 0x20 => return None,
            _ => i += 1,
        }
    }
}

/// Where the integer starting at `i` ends, when serde_json writes it back
/// the same (no fraction or exponent, at most 18 digits, no `-0`).
fn canonical_integer_end(b: &[u8], mut i: usize) -> Option<usize> {
    let negative = b[i] == b'-';
    if negative {
        i += 1;
    }
    let digits = b
        .get(i..)?
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    let first = *b.get(i)?;
    let ok = match digits {
        0 => false,
        1 => !(negative && first == b'0'),
        n => n <= 18 && first != b'0',
    };
    let end = i + digits;
    (ok && !matches!(b.get(end), Some(b'.' | b'e' | b'E'))).then_some(end)
}

/// True if `s` looks like a lowercase hex SHA-256 digest (64 hex digits).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_does_not_change_the_hash() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":2,"x":[1,2]}}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{ "a": {"x":[1,2],"y":2}, "b":1 }"#).unwrap();
        assert_eq!(content_hash(&a).unwrap(), content_hash(&b).unwrap());
        assert_eq!(
            canonical_json(&a).unwrap(),
            br#"{"a":{"x":[1,2],"y":2},"b":1}"#
        );
    }

    #[test]
    fn canonical_texts_are_recognised() {
        for text in [
            r#"{}"#,
            r#"[]"#,
            r#"{"a":[1,-2,0,{"b":null}],"b":true,"c":false,"d":"x\"\\\n\té/"}"#,
            r#"{"a":{},"b":[],"c":[[],{}]}"#,
            r#"123456789012345678"#,
        ] {
            assert!(is_canonical_json(text), "{text}");
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(canonical_json(&value).unwrap(), text.as_bytes());
        }
    }

    #[test]
    fn members_of_a_canonical_object() {
        let text = r#"{"a":[1,{"b":2}],"c":"x","d":{},"e":null}"#;
        assert_eq!(
            canonical_members(text),
            Some(vec![
                ("a", r#"[1,{"b":2}]"#),
                ("c", r#""x""#),
                ("d", "{}"),
                ("e", "null")
            ])
        );
        assert_eq!(canonical_members("{}"), Some(vec![]));
        assert_eq!(canonical_members("[1]"), None);
        assert_eq!(canonical_members(r#"{"b":1,"a":2}"#), None);
    }

    #[test]
    fn other_texts_are_left_to_the_slow_path() {
        for text in [
            r#"{"b":1,"a":2}"#, // keys out of order
            r#"{"a":1,"a":2}"#, // duplicate key
            r#"{"a": 1}"#,      // whitespace
            r#" {}"#,
            r#"{ }"#,
            r#"[1.0]"#, // serde_json writes 1.0, but floats are not analysed
            r#"[1e3]"#,
            r#"[-0]"#,                  // serde_json reads a float -0.0
            r#"[1234567890123456789]"#, // 19 digits
            r#"["\/"]"#,                // serde_json writes "/"
            r#"["\u0041"]"#,
            r#"{"\u0041":1}"#,
            r#"[01]"#,
            r#"[1,]"#,
            r#"{"a":1,}"#,
            r#"{"a"}"#,
            r#"[nul]"#,
            r#"["a"#,
            r#"{"a":1}}"#,
            r#""#,
        ] {
            assert!(!is_canonical_json(text), "{text}");
        }
        let deep = format!("{}{}", "[".repeat(129), "]".repeat(129));
        assert!(!is_canonical_json(&deep));
        let deep = format!("{}{}", "[".repeat(128), "]".repeat(128));
        assert!(is_canonical_json(&deep));
    }

    /// True for values whose canonical text [`is_canonical_json`] analyses:
    /// integers of at most 18 digits, strings without `\\u`-escaped
    /// characters, keys without any escape.
    fn plain(value: &serde_json::Value) -> bool {
        use serde_json::Value;
        let plain_str = |s: &str| {
            !s.chars()
                .any(|c| c < ' ' && !"\u{8}\u{c}\n\r\t".contains(c))
        };
        match value {
            Value::Number(n) => {
                n.as_i64()
                    .or(n.as_u64().and_then(|u| i64::try_from(u).ok()))
                    .is_some()
                    && n.to_string().trim_start_matches('-').len() <= 18
            }
            Value::String(s) => plain_str(s),
            Value::Array(items) => items.iter().all(plain),
            Value::Object(map) => map
                .iter()
                .all(|(k, v)| !k.chars().any(|c| c < ' ' || c == '"' || c == '\\') && plain(v)),
            _ => true,
        }
    }

    /// A JSON value written with random layout choices: sorted or
    /// unsorted keys, optional spaces, numbers and strings in one of their
    /// spellings.
    fn arbitrary_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            prop_oneof![
                Just("-0"),
                Just("0"),
                Just("1.0"),
                Just("1e2"),
                Just("-1.5"),
                Just("00"),
            ]
            .prop_map(str::to_owned),
            "[a-c\"\\\\/\u{e9}\n\u{1}]{0,4}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            prop_oneof![Just(r#""\/""#), Just(r#""\u0041""#), Just(r#""\u0001""#)]
                .prop_map(str::to_owned),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            let space = prop_oneof![9 => Just(""), 1 => Just(" ")];
            prop_oneof![
                (
                    proptest::collection::vec(inner.clone(), 0..4),
                    space.clone()
                )
                    .prop_map(|(items, sp)| format!("[{}]", items.join(&format!(",{sp}")))),
                (
                    proptest::collection::vec(("[a-c]{0,2}|\\\\u0061", inner), 0..4),
                    any::<bool>(),
                    space,
                )
                    .prop_map(|(mut members, sort, sp)| {
                        if sort {
                            members.sort();
                        }
                        let members: Vec<String> = members
                            .into_iter()
                            .map(|(k, v)| format!("\"{k}\":{sp}{v}"))
                            .collect();
                        format!("{{{}}}", members.join(","))
                    }),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn recognised_texts_are_canonical(text in arbitrary_text()) {
            let parsed = serde_json::from_str::<serde_json::Value>(&text);
            if is_canonical_json(&text) {
                let value = parsed.expect("a recognised text is JSON");
                proptest::prop_assert_eq!(canonical_json(&value).unwrap(), text.as_bytes());
                // Members are the object's, each canonical.
                if let serde_json::Value::Object(map) = &value {
                    let members = canonical_members(&text).expect("an object's members");
                    proptest::prop_assert_eq!(members.len(), map.len());
                    for (key, raw) in members {
                        proptest::prop_assert_eq!(
                            canonical_json(&map[key]).unwrap(),
                            raw.as_bytes()
                        );
                    }
                }
            }
        }

        #[test]
        fn canonical_encodings_of_plain_values_are_recognised(text in arbitrary_text()) {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
                let canonical = String::from_utf8(canonical_json(&value).unwrap()).unwrap();
                if plain(&value) {
                    proptest::prop_assert!(is_canonical_json(&canonical), "{}", canonical);
                }
            }
        }
    }

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(is_sha256_hex(&sha256_hex(b"")));
        assert!(!is_sha256_hex("ABC"));
    }
}
