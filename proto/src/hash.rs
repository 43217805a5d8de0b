//! Content hashes shared by agent and server.
//!
//! The agent sends its full inventory only when its hash changed, so both
//! sides must agree on one canonical encoding: JSON with object keys sorted
//! (serde_json's default `Map` is a `BTreeMap`), no insignificant whitespace,
//! hashed with SHA-256 and written as lowercase hex.

use std::ops::Range;

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

/// Deepest nesting [`is_canonical_json`] follows: serde_json's own parsing
/// limit (it parses 127 nested arrays, not 128). Deeper texts are left to
/// the slow path, which refuses them.
const MAX_DEPTH: usize = 127;

/// True when `text` is exactly what [`canonical_json`] writes for the value
/// it denotes, checked in one pass without building that value: then its
/// hash is its content hash, and the text can be stored as it is.
///
/// Conservative: it answers false for a few canonical texts it does not
/// analyse (`\u` escapes, object keys holding an escape, nesting deeper
/// than 127); the caller then parses and re-encodes (the slow path). It
/// never answers true for a text that is not canonical. Rules followed
/// (serde_json's writer): no whitespace outside strings; object keys in
/// strictly increasing byte order (so no duplicate); strings escape only
/// `"`, `\\` and control characters; integers without sign `+`, leading
/// zero or `-0`; other numbers as serde_json writes them back.
pub fn is_canonical_json(text: &str) -> bool {
    scan_canonical(text, MAX_DEPTH, |_, _| ()) == Some(text.len())
}

/// Member spans and end of the canonical object at the start of `text`,
/// nested at most `max_depth` deep: the spans of the top-level members'
/// keys (without quotes) and values.
#[allow(clippy::type_complexity)]
fn object_spans(
    text: &str,
    max_depth: usize,
) -> Option<(Vec<(Range<usize>, Range<usize>)>, usize)> {
    if !text.starts_with('{') {
        return None;
    }
    let mut spans = Vec::new();
    // Spans fall on the quotes and brackets the scan found: ASCII, so on
    // character boundaries.
    let end = scan_canonical(text, max_depth, |key, value| spans.push((key, value)))?;
    Some((spans, end))
}

/// A JSON object's canonical text (what [`canonical_json`] writes for it)
/// with the spans of its top-level members, found once: a server checks an
/// inventory is canonical, hashes it and splits it into parts without
/// scanning its ≈ 250 KB again at each step. Only built from a text that
/// is canonical or from a parsed object, so the spans are always right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalObject {
    text: String,
    /// Each member's key as written (escapes kept, quotes left out) and
    /// its value's text.
    members: Vec<(Range<usize>, Range<usize>)>,
}

/// The empty object, `{}`.
impl Default for CanonicalObject {
    fn default() -> Self {
        CanonicalObject {
            text: "{}".to_owned(),
            members: Vec::new(),
        }
    }
}

impl CanonicalObject {
    /// `text` when it is a canonical object as [`is_canonical_json`]
    /// recognises it (one scan); otherwise the text back, for the caller's
    /// slow path (parse with [`serde_json`], then [`Self::from_map`]).
    pub fn from_text(text: String) -> Result<Self, String> {
        match object_spans(&text, MAX_DEPTH) {
            Some((members, end)) if end == text.len() => Ok(CanonicalObject { text, members }),
            _ => Err(text),
        }
    }

    /// The canonical object at the start of `text` (one scan, which stops
    /// at its end) and the length of its text; `None` when `text` does not
    /// start with one. What follows it is not looked at. `enclosing`: how
    /// many levels of the document `text` comes from hold it (1 for a
    /// member of a request body), so that it is refused past the depth
    /// serde_json would refuse the whole document at.
    pub fn from_prefix(text: &str, enclosing: usize) -> Option<(Self, usize)> {
        let (members, end) = object_spans(text, MAX_DEPTH.checked_sub(enclosing)?)?;
        let object = CanonicalObject {
            text: text.get(..end)?.to_owned(),
            members,
        };
        Some((object, end))
    }

    /// The canonical text of a parsed object, written member by member
    /// exactly as [`canonical_json`] writes it (keys sorted, escaped as
    /// serde_json escapes them).
    pub fn from_map(map: &serde_json::Map<String, serde_json::Value>) -> serde_json::Result<Self> {
        // A `Map` is ordered by key (serde_json's default BTreeMap):
        // iteration order is the canonical order.
        let mut text = String::from("{");
        let mut members = Vec::with_capacity(map.len());
        for (key, value) in map {
            if text.len() > 1 {
                text.push(',');
            }
            let key_start = text.len() + 1;
            text.push_str(&serde_json::to_string(key)?);
            let key_end = text.len() - 1;
            text.push(':');
            let value_start = text.len();
            // A `Value`'s maps are ordered too: written as it is, it is its
            // canonical encoding (what `canonical_json` writes, without
            // the copy `to_value` makes of it).
            text.push_str(&serde_json::to_string(value)?);
            members.push((key_start..key_end, value_start..text.len()));
        }
        text.push('}');
        Ok(CanonicalObject { text, members })
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The canonical text, given back.
    pub fn into_string(self) -> String {
        self.text
    }

    /// The top-level members in order, as `(key as written between its
    /// quotes, value text)`.
    pub fn members(&self) -> impl Iterator<Item = (&str, &str)> {
        self.members
            .iter()
            .map(|(key, value)| (&self.text[key.clone()], &self.text[value.clone()]))
    }

    /// The value text of member `key` (compared as written), if present.
    pub fn member(&self, key: &str) -> Option<&str> {
        self.members().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The lowercase hex SHA-256 of the text: the content hash.
    pub fn sha256_hex(&self) -> String {
        sha256_hex(self.text.as_bytes())
    }
}

/// Where the canonical value at the start of `text` ends (as
/// [`is_canonical_json`] recognises it), calling `member(key, value)` for
/// each member of the top-level object; `None` when it is not canonical.
fn scan_canonical(
    text: &str,
    max_depth: usize,
    mut member: impl FnMut(Range<usize>, Range<usize>),
) -> Option<usize> {
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
            Some(b'{' | b'[') if open.len() >= max_depth => return None,
            Some(b'{') if b.get(i + 1) == Some(&b'}') => i += 2,
            Some(b'{') => {
                let (start, end) = canonical_key(b, i + 1)?;
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
            Some(b'"') => i = canonical_string_end(b, i)?,
            Some(b'n') if b[i..].starts_with(b"null") => i += 4,
            Some(b't') if b[i..].starts_with(b"true") => i += 4,
            Some(b'f') if b[i..].starts_with(b"false") => i += 5,
            Some(b'-' | b'0'..=b'9') => i = canonical_number_end(text, i)?,
            _ => return None,
        }
        // A value ended at `i`: close containers until the next value.
        loop {
            let depth = open.len();
            if depth == 1
                && let Some((key_start, key_end, value_start)) = top.take()
            {
                member(key_start..key_end, value_start..i);
            }
            match (open.last_mut(), b.get(i)) {
                (None, _) => return Some(i),
                (Some(Open::Array), Some(b',')) => {
                    i += 1;
                    break;
                }
                (Some(Open::Array), Some(b']')) | (Some(Open::Object(..)), Some(b'}')) => {
                    open.pop();
                    i += 1;
                }
                (Some(Open::Object(prev_start, prev_end)), Some(b',')) => {
                    let (start, end) = canonical_key(b, i + 1)?;
                    if !increasing(&b[*prev_start..*prev_end], &b[start..end]) {
                        return None;
                    }
                    (*prev_start, *prev_end) = (start, end);
                    if depth == 1 {
                        top = Some((start, end, end + 2));
                    }
                    i = end + 2;
                    break;
                }
                _ => return None,
            }
        }
    }
}

/// True when key `next` sorts strictly after `prev` (byte order). Written
/// out rather than as `next > prev`: keys are a few bytes long and compared
/// once per member (12,500 times in a 2,500-package inventory), where a call
/// to `memcmp` per comparison cost more than the comparison.
fn increasing(prev: &[u8], next: &[u8]) -> bool {
    for (p, n) in prev.iter().zip(next) {
        if p != n {
            return n > p;
        }
    }
    next.len() > prev.len()
}

/// The span of the escape-free key starting with the `"` at `i`, when a
/// `:` follows it.
fn canonical_key(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let Range { start, end } = plain_string_contents(b, i)?;
    (b.get(end + 1) == Some(&b':')).then_some((start, end))
}

/// The span of the contents of the JSON string starting with the `"` at
/// `i` in `b`, when it holds no escape and no control character (the
/// closing quote is at the span's end).
pub fn plain_string_contents(b: &[u8], i: usize) -> Option<Range<usize>> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let start = i + 1;
    let end = next_special(b, start)?;
    (b[end] == b'"').then_some(start..end)
}

/// The index of the first byte at or after `i` that ends a run of plain
/// string contents: a quote, a backslash or a control character (< 0x20).
/// Eight bytes at a time (the zero-byte test of Hacker's Delight 6-1 on
/// each pattern): package names and versions are 5–30 bytes long, and the
/// byte-by-byte loop was a third of the scan's time.
fn next_special(b: &[u8], mut i: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        // A byte's high bit is set where it is zero (or < 0x20 for the
        // last test). Borrows may mark bytes above a marked one, never
        // below: the lowest mark is exact.
        let marks = (quote.wrapping_sub(ONES) & !quote
            | backslash.wrapping_sub(ONES) & !backslash
            | w.wrapping_sub(ONES * 0x20) & !w)
            & HIGH;
        if marks != 0 {
            return Some(i + (marks.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b.get(i..)?
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| i + p)
}

/// Where the canonically escaped string starting with the `"` at `i` ends
/// (just past its closing quote).
fn canonical_string_end(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        i = next_special(b, i)?;
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

/// Where the number starting at `i` ends, when serde_json writes it back
/// the same. Integers of at most 18 digits are checked here; any other
/// number (a battery's 57.7 Wh, a 19-digit integer) by serde_json itself,
/// read then written as [`canonical_json`] does: the same answer, for the
/// few such numbers a document holds.
fn canonical_number_end(text: &str, i: usize) -> Option<usize> {
    let b = text.as_bytes();
    if let Some(end) = canonical_integer_end(b, i) {
        return Some(end);
    }
    let len = b
        .get(i..)?
        .iter()
        .take_while(|c| matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
        .count();
    let token = text.get(i..i + len)?;
    let value: serde_json::Value = serde_json::from_str(token).ok()?;
    (serde_json::to_string(&value).ok()? == token).then_some(i + len)
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
    fn next_special_finds_the_first_quote_backslash_or_control_byte() {
        let naive = |b: &[u8], i: usize| {
            b.get(i..)?
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                .map(|p| i + p)
        };
        // Every special byte (and bytes around them: 0x1F/0x20, UTF-8
        // continuation bytes, 0x7F, 0xFF) at every offset of a 20-byte
        // text, after another special or not, from every start.
        let specials = [b'"', b'\\', 0, 0x1F, b'\n'];
        let plain = [b'a', 0x20, b'!', b'#', b'[', b']', 0x7F, 0x80, 0xC3, 0xFF];
        for &s in &specials {
            for &p in &plain {
                for at in 0..20 {
                    for second in [None, Some(at + 3)] {
                        let mut text = vec![p; 20];
                        text[at] = s;
                        if let Some(j) = second.filter(|j| *j < 20) {
                            text[j] = b'"';
                        }
                        for start in 0..=21 {
                            assert_eq!(
                                next_special(&text, start),
                                naive(&text, start),
                                "{text:?} from {start}"
                            );
                        }
                    }
                }
                assert_eq!(next_special(&[p; 19], 0), None);
            }
        }
        assert_eq!(next_special(b"", 0), None);
        assert_eq!(next_special(b"ab", 5), None);
    }

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
            r#"{"design_capacity_wh":{"value":57.7},"n":[1.0,-0.5,1e-7,12345678901234567890]}"#,
        ] {
            assert!(is_canonical_json(text), "{text}");
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(canonical_json(&value).unwrap(), text.as_bytes());
        }
    }

    #[test]
    fn members_of_a_canonical_object() {
        let members = |text: &str| {
            CanonicalObject::from_text(text.to_owned()).ok().map(|o| {
                o.members()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect::<Vec<_>>()
            })
        };
        let text = r#"{"a":[1,{"b":2}],"c":"x","d":{},"e":null}"#;
        let expected = [
            ("a", r#"[1,{"b":2}]"#),
            ("c", r#""x""#),
            ("d", "{}"),
            ("e", "null"),
        ];
        assert_eq!(
            members(text),
            Some(
                expected
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            )
        );
        assert_eq!(members("{}"), Some(vec![]));
        assert_eq!(members("[1]"), None);
        assert_eq!(members(r#"{"b":1,"a":2}"#), None);
    }

    #[test]
    fn other_texts_are_left_to_the_slow_path() {
        for text in [
            r#"{"b":1,"a":2}"#, // keys out of order
            r#"{"a":1,"a":2}"#, // duplicate key
            r#"{"a": 1}"#,      // whitespace
            r#" {}"#,
            r#"{ }"#,
            r#"[1e3]"#,   // serde_json writes 1000.0
            r#"[57.70]"#, // 57.7
            r#"[1.5E2]"#, // 150.0
            r#"[+1]"#,
            r#"[1.]"#,
            r#"[1-2]"#,
            r#"[-0]"#,   // serde_json reads a float -0.0
            r#"["\/"]"#, // serde_json writes "/"
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
        // Exactly as deep as serde_json parses, standing alone and as a
        // member of a body.
        for n in [126, 127, 128, 129] {
            let deep = format!("{}{}", "[".repeat(n), "]".repeat(n));
            let parses = serde_json::from_str::<serde_json::Value>(&deep).is_ok();
            assert_eq!(is_canonical_json(&deep), parses, "{n}");
            let object = format!("{{\"a\":{}}}", &deep[1..deep.len() - 1]);
            let body = format!("{{\"inventory\":{object}}}");
            let body_parses = serde_json::from_str::<serde_json::Value>(&body).is_ok();
            assert_eq!(
                CanonicalObject::from_prefix(&format!("{object}}}"), 1).is_some(),
                body_parses,
                "{n} in a body"
            );
        }
    }

    /// True for values whose canonical text [`is_canonical_json`] analyses:
    /// strings without `\\u`-escaped characters, keys without any escape.
    fn plain(value: &serde_json::Value) -> bool {
        use serde_json::Value;
        let plain_str = |s: &str| {
            !s.chars()
                .any(|c| c < ' ' && !"\u{8}\u{c}\n\r\t".contains(c))
        };
        match value {
            // Every number: integers are checked by the scan, the others
            // by serde_json's own reading and writing.
            Value::Number(_) => true,
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
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| serde_json::to_string(&f).unwrap()),
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
                    let object = CanonicalObject::from_text(text.clone()).expect("an object's members");
                    // Found the same at the start of a longer text.
                    let (prefixed, len) = CanonicalObject::from_prefix(&format!("{text},]"), 0)
                        .expect("a canonical object as a prefix");
                    proptest::prop_assert_eq!(len, text.len());
                    proptest::prop_assert_eq!(&prefixed, &object);
                    proptest::prop_assert_eq!(object.members().count(), map.len());
                    for (key, raw) in object.members() {
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
                // Any object, escaped keys included, written member by
                // member: the same text, and members that are the map's.
                if let serde_json::Value::Object(map) = &value {
                    let object = CanonicalObject::from_map(map).unwrap();
                    proptest::prop_assert_eq!(object.as_str(), canonical.as_str());
                    proptest::prop_assert_eq!(object.members().count(), map.len());
                    for ((key, raw), (name, member)) in object.members().zip(map) {
                        let quoted = serde_json::to_string(name).unwrap();
                        proptest::prop_assert_eq!(key, &quoted[1..quoted.len() - 1]);
                        proptest::prop_assert_eq!(raw.as_bytes(), canonical_json(member).unwrap());
                    }
                    if let Ok(scanned) = CanonicalObject::from_text(canonical.clone()) {
                        proptest::prop_assert_eq!(scanned, object);
                    }
                }
                if plain(&value) {
                    proptest::prop_assert!(is_canonical_json(&canonical), "{}", canonical);
                }
            }
        }
    }

    #[test]
    fn canonical_objects_from_text_and_from_a_map() {
        let text = r#"{"a":[1,{"b":2}],"c":"x","d":{},"e":null}"#;
        let object = CanonicalObject::from_text(text.to_owned()).unwrap();
        assert_eq!(object.member("a"), Some(r#"[1,{"b":2}]"#));
        assert_eq!(object.member("e"), Some("null"));
        assert_eq!(object.member("b"), None);
        assert_eq!(object.sha256_hex(), sha256_hex(text.as_bytes()));
        // Not canonical, or not an object: the text comes back.
        for text in [r#"{"b":1,"a":2}"#, r#"{"a": 1}"#, "[1]", "{"] {
            assert_eq!(
                CanonicalObject::from_text(text.to_owned()),
                Err(text.to_owned())
            );
        }
        // A key with an escape: canonical for serde_json, not analysed by
        // the scan, written by `from_map`.
        let value: serde_json::Value =
            serde_json::from_str(r#"{"z":1,"a\nb":{"y":[],"x":"\u0041"}}"#).unwrap();
        let serde_json::Value::Object(map) = &value else {
            unreachable!()
        };
        let object = CanonicalObject::from_map(map).unwrap();
        assert_eq!(object.as_str().as_bytes(), canonical_json(&value).unwrap());
        assert_eq!(
            object.members().collect::<Vec<_>>(),
            vec![(r"a\nb", r#"{"x":"A","y":[]}"#), ("z", "1")]
        );
        assert_eq!(
            CanonicalObject::from_map(&serde_json::Map::new())
                .unwrap()
                .as_str(),
            "{}"
        );
    }

    #[test]
    fn a_canonical_object_at_the_start_of_a_text() {
        let (object, len) =
            CanonicalObject::from_prefix(r#"{"a":{"b":[1]},"c":2},"x":[}"#, 0).unwrap();
        assert_eq!(len, 21);
        assert_eq!(object.as_str(), r#"{"a":{"b":[1]},"c":2}"#);
        assert_eq!(
            object,
            CanonicalObject::from_text(object.as_str().to_owned()).unwrap()
        );
        assert_eq!(
            CanonicalObject::from_prefix("{}]", 0).map(|(o, n)| (o.into_string(), n)),
            Some(("{}".into(), 2))
        );
        for text in [r#"{"b":1,"a":2}"#, r#"{"a": 1}"#, "[1]", "{", r#""a""#] {
            assert_eq!(CanonicalObject::from_prefix(text, 0), None, "{text}");
        }
    }

    /// A laptop's inventory (its battery in Wh: floats) takes the fast
    /// path, as agents send it.
    #[test]
    fn a_real_laptop_inventory_is_recognised() {
        let value: serde_json::Value =
            serde_json::from_str(include_str!("../../agent/tests/fixtures/laptop-t430.json"))
                .unwrap();
        let text = String::from_utf8(canonical_json(&value).unwrap()).unwrap();
        assert!(text.contains(r#""design_capacity_wh":{"value":57.7}"#));
        assert!(CanonicalObject::from_text(text).is_ok());
    }

    #[test]
    fn key_order_is_byte_order() {
        assert!(increasing(b"a", b"b"));
        assert!(increasing(b"a", b"ab"));
        assert!(increasing(b"", b"a"));
        assert!(!increasing(b"ab", b"a"));
        assert!(!increasing(b"a", b"a"));
        assert!(increasing(b"section", b"size_kib"));
        assert!(!increasing("é".as_bytes(), b"z"));
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
