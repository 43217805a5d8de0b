//! Error replies and the JSON body extractor.
//!
//! Every error reply has an [`ApiError`] JSON body. Bodies are parsed with
//! `serde_path_to_error` so a `400` names the offending field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nird_proto::api::ApiError;
use nird_proto::hash::CanonicalObject;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

use crate::store::StoreError;

/// An HTTP error with its code and French message.
#[derive(Debug)]
pub struct HttpError {
    /// Status code.
    pub status: StatusCode,
    /// Stable machine-readable code (see [`ApiError::error`]).
    pub code: &'static str,
    /// Message for people.
    pub message: String,
}

impl HttpError {
    /// `400 bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        HttpError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
        }
    }

    /// `401 unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        HttpError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: message.into(),
        }
    }

    /// `404 not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        HttpError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
        }
    }

    /// `503 overloaded`: retry later.
    pub fn unavailable(message: impl Into<String>) -> Self {
        HttpError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "overloaded",
            message: message.into(),
        }
    }

    /// `413 payload_too_large`.
    pub fn too_large() -> Self {
        HttpError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            message: format!(
                "corps de requête trop gros (maximum {} octets)",
                nird_proto::api::MAX_BODY_BYTES
            ),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = ApiError {
            error: self.code.into(),
            message: self.message,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<StoreError> for HttpError {
    fn from(e: StoreError) -> Self {
        let (status, code) = match &e {
            StoreError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            StoreError::AlreadyExists(_) | StoreError::Conflict(_) => {
                (StatusCode::CONFLICT, "conflict")
            }
            StoreError::Token(_) | StoreError::BadCredential => {
                (StatusCode::UNAUTHORIZED, "unauthorized")
            }
            StoreError::Retired => (StatusCode::FORBIDDEN, "forbidden"),
            StoreError::Closed => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            StoreError::Backend(detail) => {
                tracing::error!(error = %detail, "storage failure");
                return HttpError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: "internal",
                    message: "erreur interne du serveur".into(),
                };
            }
        };
        HttpError {
            status,
            code,
            message: e.to_string(),
        }
    }
}

/// Inflates a gzip body, at most [`nird_proto::api::MAX_BODY_BYTES`] once
/// inflated (the limit on the compressed bytes is the router's): a gzip bomb
/// gets `413` after reading that much, never more.
fn gunzip(compressed: &[u8]) -> Result<Bytes, HttpError> {
    use std::io::Read as _;
    let limit = nird_proto::api::MAX_BODY_BYTES as u64;
    let mut inflated = Vec::with_capacity(compressed.len().saturating_mul(8).min(limit as usize));
    flate2::read::GzDecoder::new(compressed)
        .take(limit + 1)
        .read_to_end(&mut inflated)
        .map_err(|e| HttpError::bad_request(format!("corps gzip illisible : {e}")))?;
    if inflated.len() as u64 > limit {
        return Err(HttpError::too_large());
    }
    Ok(Bytes::from(inflated))
}

/// A JSON object body, parsed with field-naming errors and the body size
/// limit mapped to `413`; `Content-Encoding: gzip` bodies are inflated
/// first (bounded), other encodings get `415`. Its top-level `inventory`
/// member is kept apart (`None` when absent or `null`); the typed value
/// sees it as `null`.
///
/// An inventory is the bulk of a body (≈ 250 KB with 2,500 packages) and
/// its hash covers its canonical text: when it is already canonical (as
/// agents send it), it is checked by one scan that also finds its members,
/// and never built as a `serde_json::Value`.
pub struct ApiJsonWithInventory<T>(pub T, pub Option<SentInventory>);

/// An inventory as a body carried it, known to be JSON.
#[derive(Debug, PartialEq)]
pub enum SentInventory {
    /// Canonical text, its members found by the scan that checked it.
    Canonical(CanonicalObject),
    /// Any other spelling, parsed (its canonical text is written from it).
    Parsed(serde_json::Value),
}

impl SentInventory {
    /// `text`, a JSON value: scanned, or parsed when not canonical.
    fn from_text(text: String) -> Result<Self, serde_json::Error> {
        match CanonicalObject::from_text(text) {
            Ok(document) => Ok(SentInventory::Canonical(document)),
            Err(text) => serde_json::from_str(&text).map(SentInventory::Parsed),
        }
    }
}

impl<S, T> FromRequest<S> for ApiJsonWithInventory<T>
where
    S: Send + Sync,
    T: DeserializeOwned + serde::Serialize,
{
    type Rejection = HttpError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = decoded_body(req).await?;
        let (json, inventory) = match members_checked_apart(&bytes) {
            Some(parts) => parts,
            None => members_parsed(&bytes)?,
        };
        let value = typed(serde_json::Value::Object(json))?;
        Ok(ApiJsonWithInventory(value, inventory))
    }
}

/// A body's members but the inventory (as `null`), and the inventory.
type BodyMembers = (
    serde_json::Map<String, serde_json::Value>,
    Option<SentInventory>,
);

/// The body's members, the inventory apart: the fast path, for valid
/// bodies only. The object's structure is followed without parsing
/// ([`object_members`]), then each member is checked on its own: the
/// inventory by the canonical scan (parsed only when not canonical), the
/// others (a few hundred bytes) parsed. So the inventory is gone over once
/// instead of twice. `None` for anything else, even valid JSON this does
/// not follow (keys with escapes, nesting deeper than 120): the full parse
/// ([`members_parsed`]) then answers exactly as it always did, errors
/// included.
fn members_checked_apart(bytes: &[u8]) -> Option<BodyMembers> {
    let text = std::str::from_utf8(bytes).ok()?;
    // The inventory, when canonical, is checked and its members found by
    // the scan that finds where it ends: gone over once. One entry per
    // `inventory` member, in order.
    let mut scanned: Vec<Option<CanonicalObject>> = Vec::new();
    let members = object_members(text, |key, rest| {
        if key == "inventory" {
            let found = CanonicalObject::from_prefix(rest, 1);
            let len = found.as_ref().map(|(_, len)| *len);
            scanned.push(found.map(|(document, _)| document));
            if len.is_some() {
                return len;
            }
        }
        value_end(rest.as_bytes())
    })?;
    let mut scanned = scanned.into_iter();
    let mut json = serde_json::Map::new();
    let mut inventory = None;
    // Duplicate members: the last wins, as when parsing into a `Value`;
    // each is checked.
    for (name, raw) in members {
        if name == "inventory" {
            json.insert(name.to_owned(), serde_json::Value::Null);
            inventory = match (raw, scanned.next().flatten()) {
                (_, Some(document)) => Some(SentInventory::Canonical(document)),
                ("null", None) => None,
                // Not canonical (the scan said so already): parsed.
                (raw, None) => Some(SentInventory::Parsed(serde_json::from_str(raw).ok()?)),
            };
        } else {
            json.insert(name.to_owned(), serde_json::from_str(raw).ok()?);
        }
    }
    Some((json, inventory))
}

/// The body's members, the inventory apart, from a full parse (members
/// as raw text, then each parsed): any body, and the error messages.
fn members_parsed(bytes: &[u8]) -> Result<BodyMembers, HttpError> {
    let invalid = |e: serde_json::Error| HttpError::bad_request(format!("JSON invalide : {e}"));
    // Duplicate members: the last wins, as when parsing into a `Value`.
    let members: BTreeMap<String, Box<RawValue>> =
        serde_json::from_slice(bytes).map_err(invalid)?;
    let mut json = serde_json::Map::new();
    let mut inventory = None;
    for (name, raw) in members {
        if name == "inventory" {
            json.insert(name, serde_json::Value::Null);
            inventory = match raw.get() {
                "null" => None,
                _ => Some(
                    SentInventory::from_text(Box::<str>::from(raw).into_string())
                        .map_err(invalid)?,
                ),
            };
        } else {
            let value = serde_json::from_str(raw.get()).map_err(invalid)?;
            json.insert(name, value);
        }
    }
    Ok((json, inventory))
}

/// Deepest nesting [`object_members`] follows; deeper bodies take the full
/// parse (serde_json's limit is 128).
const MEMBERS_MAX_DEPTH: usize = 120;

/// The members of the JSON object `text` as `(key, value text)` pairs, in
/// order, found by following its structure only: whitespace, braces,
/// brackets, commas, colons; `value_len(key, rest)` says how long the
/// value at the start of `rest` is ([`value_end`] follows brackets and
/// strings). The values are not checked (the caller checks each); keys
/// are, and must hold no escape. `None` when the text is not an object of
/// that form.
fn object_members(
    text: &str,
    mut value_len: impl FnMut(&str, &str) -> Option<usize>,
) -> Option<Vec<(&str, &str)>> {
    let b = text.as_bytes();
    let mut i = skip_whitespace(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_whitespace(b, i + 1);
    let mut members = Vec::new();
    if b.get(i) == Some(&b'}') {
        return (skip_whitespace(b, i + 1) == b.len()).then_some(members);
    }
    loop {
        let key = nird_proto::hash::plain_string_contents(b, i)?;
        i = skip_whitespace(b, key.end + 1);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let start = skip_whitespace(b, i + 1);
        // Every index is at an ASCII byte or just past one: on character
        // boundaries.
        let key = text.get(key)?;
        let end = start + value_len(key, text.get(start..)?)?;
        members.push((key, text.get(start..end)?));
        i = skip_whitespace(b, end);
        match b.get(i) {
            Some(b',') => i = skip_whitespace(b, i + 1),
            Some(b'}') => return (skip_whitespace(b, i + 1) == b.len()).then_some(members),
            _ => return None,
        }
    }
}

/// The index of the first non-whitespace byte from `i`.
fn skip_whitespace(b: &[u8], i: usize) -> usize {
    i + b.get(i..).map_or(0, |rest| {
        rest.iter()
            .take_while(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
            .count()
    })
}

/// The length of the value at the start of `b`, following brackets and
/// strings only (a scalar runs to the next delimiter).
fn value_end(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    let mut depth = 0usize;
    loop {
        match *b.get(i)? {
            b'"' => i = string_end(b, i)?,
            b'{' | b'[' => {
                depth += 1;
                if depth > MEMBERS_MAX_DEPTH {
                    return None;
                }
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                i += 1;
            }
            _ if depth > 0 => {
                // Up to the next string or bracket.
                i += b
                    .get(i..)?
                    .iter()
                    .position(|c| matches!(c, b'"' | b'{' | b'[' | b'}' | b']'))?;
                continue;
            }
            _ => {
                let len = b[i..]
                    .iter()
                    .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                    .unwrap_or(b.len() - i);
                return (len > 0).then_some(i + len);
            }
        }
        if depth == 0 {
            return Some(i);
        }
    }
}

/// Just past the closing quote of the string whose opening quote is at
/// `i` (escapes skipped, not checked).
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        i += b.get(i..)?.iter().position(|&c| c == b'"' || c == b'\\')?;
        if b[i] == b'"' {
            return Some(i + 1);
        }
        i += 2;
    }
}

/// The request's body, inflated when gzip-compressed (see
/// [`ApiJsonWithInventory`]).
async fn decoded_body(req: Request) -> Result<Bytes, HttpError> {
    let encoding = req
        .headers()
        .get(axum::http::header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    let bytes = read_body(req).await?;
    match encoding.as_deref() {
        None | Some("identity") => Ok(bytes),
        Some("gzip") => gunzip(&bytes),
        Some(other) => Err(HttpError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_encoding",
            message: format!("encodage de corps « {other} » non pris en charge (gzip ou aucun)"),
        }),
    }
}

/// The typed value of a parsed body, with the API's rules on top of
/// serde's.
fn typed<T: DeserializeOwned + serde::Serialize>(
    mut json: serde_json::Value,
) -> Result<T, HttpError> {
    // JSON Schema counts `3.0` as an integer; so does this API. The
    // inventory is left as sent: its exact text is what its hash covers.
    integral_floats_as_integers(&mut json, 0);
    let value: T = serde_path_to_error::deserialize(&json).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner();
        if path == "." {
            HttpError::bad_request(format!("JSON invalide : {inner}"))
        } else {
            HttpError::bad_request(format!("JSON invalide, champ « {path} » : {inner}"))
        }
    })?;
    // serde also reads a struct written as an array of its fields
    // (`"trust": [1, 2]`); the API (and its OpenAPI document) only
    // accepts objects.
    let canonical = serde_json::to_value(&value)
        .map_err(|e| HttpError::bad_request(format!("JSON invalide : {e}")))?;
    if let Some(path) = object_written_as_array(&json, &canonical, "") {
        let path = if path.is_empty() {
            ".".to_owned()
        } else {
            path
        };
        return Err(HttpError::bad_request(format!(
            "JSON invalide, champ « {path} » : objet attendu"
        )));
    }
    Ok(value)
}

/// Bytes of an over-limit body still read (and dropped) before the `413`
/// goes out: most HTTP clients send their whole body before reading the
/// reply, and a connection closed under them reads as a network error, not
/// as "too large". Bodies announced bigger than this are refused at once;
/// the request timeout bounds a slow sender.
const DRAIN_BYTES: usize = 16 * 1024 * 1024;

/// Reads a request body of at most `MAX_BODY_BYTES` bytes.
async fn read_body(req: Request) -> Result<Bytes, HttpError> {
    use http_body_util::BodyExt as _;
    let limit = nird_proto::api::MAX_BODY_BYTES;
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > (limit + DRAIN_BYTES) as u64) {
        return Err(HttpError::too_large());
    }
    let mut body = req.into_body();
    // Sized once from the announced length (bounded): a 250 KB inventory
    // is not copied again at each doubling.
    let mut buf = Vec::with_capacity(declared.map_or(0, |n| n.min(limit as u64) as usize));
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| HttpError::bad_request(format!("corps de requête illisible : {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total = total.saturating_add(data.len());
        if total > limit + DRAIN_BYTES {
            break;
        }
        if total <= limit {
            buf.extend_from_slice(&data);
        }
    }
    if total > limit {
        return Err(HttpError::too_large());
    }
    Ok(Bytes::from(buf))
}

/// Rewrites numbers such as `3.0` as the integer `3`, everywhere except in
/// the top-level `inventory` (opaque JSON hashed as sent).
fn integral_floats_as_integers(value: &mut serde_json::Value, depth: usize) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9_007_199_254_740_992.0
            {
                // Exact: |f| < 2^53.
                #[allow(clippy::cast_possible_truncation)]
                let i = f as i64;
                *value = Value::from(i);
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| integral_floats_as_integers(v, depth + 1)),
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if !(depth == 0 && k == "inventory") {
                    integral_floats_as_integers(v, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// The path of the first place where `parsed` (what the types wrote back)
/// holds an object and `sent` does not, if any.
fn object_written_as_array(
    sent: &serde_json::Value,
    parsed: &serde_json::Value,
    path: &str,
) -> Option<String> {
    use serde_json::Value;
    match (sent, parsed) {
        (Value::Object(s), Value::Object(p)) => p.iter().find_map(|(k, pv)| {
            let sv = s.get(k)?;
            object_written_as_array(sv, pv, format!("{path}.{k}").trim_start_matches('.'))
        }),
        (_, Value::Object(_)) => Some(path.to_owned()),
        (Value::Array(s), Value::Array(p)) => s
            .iter()
            .zip(p)
            .enumerate()
            .find_map(|(i, (sv, pv))| object_written_as_array(sv, pv, &format!("{path}[{i}]"))),
        _ => None,
    }
}

#[cfg(test)]
mod shape_tests {
    use super::object_written_as_array;
    use nird_proto::api::CheckinRequest;
    use serde_json::json;

    fn first_bad(sent: serde_json::Value) -> Option<String> {
        let parsed: CheckinRequest = serde_json::from_value(sent.clone()).unwrap();
        object_written_as_array(&sent, &serde_json::to_value(&parsed).unwrap(), "")
    }

    #[test]
    fn structs_written_as_arrays_are_found() {
        let hash = "0".repeat(64);
        assert_eq!(
            first_bad(json!({"inventory_hash": hash, "trust": [null, null]})),
            Some("trust".into())
        );
        assert_eq!(
            first_bad(
                json!({"inventory_hash": hash, "applied": [{"name": "a", "version": 1}, ["b", 2]]})
            ),
            Some("applied[1]".into())
        );
        assert_eq!(
            first_bad(
                json!({"inventory_hash": hash, "applied": [{"name": "a", "version": 1}],
                             "trust": {"problems": []}, "inventory": {"x": [1, {"y": 2}]}})
            ),
            None
        );
    }
}

#[cfg(test)]
mod body_tests {
    use super::*;

    fn members(text: &str) -> Option<Vec<(&str, &str)>> {
        object_members(text, |_, rest| value_end(rest.as_bytes()))
    }

    /// The fast path's answer, and the full parse's (`Err` for a refused
    /// body).
    fn both(text: &str) -> (Option<BodyMembers>, Result<BodyMembers, String>) {
        (
            members_checked_apart(text.as_bytes()),
            members_parsed(text.as_bytes()).map_err(|e| e.message),
        )
    }

    #[test]
    fn members_are_found_by_structure() {
        let text = r#" { "a" : [1, {"b": "]}\"["}] ,"inventory":{"x":1},"c":"\u00e9", "d":-1.5e3,"e":null}  "#;
        assert_eq!(
            members(text),
            Some(vec![
                ("a", r#"[1, {"b": "]}\"["}]"#),
                ("inventory", r#"{"x":1}"#),
                ("c", r#""\u00e9""#),
                ("d", "-1.5e3"),
                ("e", "null"),
            ])
        );
        assert_eq!(members("{}"), Some(vec![]));
        assert_eq!(members(" { } "), Some(vec![]));
        for refused in [
            "",
            "[]",
            "{",
            "{}}",
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{"a":}"#,
            r#"{"a\u0041":1}"#,
            r#"{"a":"x}"#,
            r#"{"a":1]"#,
            r#"{"a":[1}"#,
            r#"{"a":1 "b":2}"#,
            r#"{"a":]}"#,
        ] {
            // `{"a":[1}` is followed (a bracket closes a bracket); its value
            // is then refused by the parse of the member.
            if refused == r#"{"a":[1}"# {
                continue;
            }
            assert_eq!(members(refused), None, "{refused}");
        }
        let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(121), "]".repeat(121));
        assert_eq!(members(&deep), None);
    }

    #[test]
    fn the_fast_path_answers_as_the_full_parse() {
        let canonical = r#"{"cpu":{"model":"x"},"software":{"value":{"packages":[]}}}"#;
        let body = format!(r#"{{"inventory_hash":"00","inventory":{canonical},"applied":[]}}"#);
        let (fast, full) = both(&body);
        let fast = fast.unwrap();
        assert_eq!(Ok(&fast), full.as_ref());
        assert_eq!(
            fast.1,
            Some(SentInventory::Canonical(
                CanonicalObject::from_text(canonical.to_owned()).unwrap()
            ))
        );
        assert_eq!(fast.0["inventory"], serde_json::Value::Null);
        // Not canonical: parsed. Duplicates: the last wins.
        let (fast, full) = both(r#"{"inventory":{"b":1,"a":2},"inventory":{"b": 1}}"#);
        assert_eq!(fast.as_ref(), full.as_ref().ok());
        assert_eq!(
            fast.unwrap().1,
            Some(SentInventory::Parsed(serde_json::json!({"b": 1})))
        );
        // `null` is no inventory.
        let (fast, _) = both(r#"{"inventory":null}"#);
        assert_eq!(fast.unwrap().1, None);
        // Invalid members or values: left to the full parse, which refuses.
        for invalid in [
            r#"{"inventory":{"a":1,}}"#,
            r#"{"inventory":{"a":[1}}"#,
            r#"{"a":[1}"#,
            r#"{"a":tru}"#,
            r#"{"a":"\x"}"#,
            "{\"a\":\"\u{1}\"}",
        ] {
            let (fast, full) = both(invalid);
            assert!(fast.is_none() && full.is_err(), "{invalid}");
        }
    }

    /// Bodies from valid JSON objects, then possibly mangled by one byte.
    fn bodies() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("-1.5e3".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            "[a-c\"\\\\{}\\[\\],: \u{e9}]{0,5}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            Just(r#""\u0041\/""#.to_owned()),
        ];
        let value = leaf.prop_recursive(4, 24, 4, |inner| {
            let sp = prop_oneof![4 => Just(""), 1 => Just(" "), 1 => Just("\n ")];
            prop_oneof![
                (proptest::collection::vec(inner.clone(), 0..4), sp.clone())
                    .prop_map(|(items, sp)| format!("[{sp}{}]", items.join(&format!(",{sp}")))),
                (proptest::collection::vec(("[a-c]{0,2}", inner), 0..4), sp).prop_map(
                    |(members, sp)| {
                        let m: Vec<String> = members
                            .into_iter()
                            .map(|(k, v)| format!("\"{k}\":{sp}{v}"))
                            .collect();
                        format!("{{{sp}{}}}", m.join(","))
                    }
                ),
            ]
        });
        let key = prop_oneof![
            Just("inventory".to_owned()),
            "[a-c]{1,2}",
            Just("a\\u0062".to_owned())
        ];
        let object = (
            proptest::collection::vec((key, value), 0..5),
            prop_oneof![Just(""), Just(" ")],
        )
            .prop_map(|(members, sp)| {
                let m: Vec<String> = members
                    .into_iter()
                    .map(|(k, v)| format!("{sp}\"{k}\"{sp}:{sp}{v}{sp}"))
                    .collect();
                format!("{sp}{{{}}}{sp}", m.join(","))
            });
        (object, any::<usize>(), any::<u8>(), 0..3u8).prop_map(|(text, at, byte, edit)| {
            let mut bytes = text.into_bytes();
            let at = at % (bytes.len() + 1);
            let bytes_to_add = b"{}[]\",:\\ 0an";
            let byte = bytes_to_add[usize::from(byte) % bytes_to_add.len()];
            match edit {
                0 => {}
                1 => bytes.insert(at, byte),
                _ if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => {}
            }
            String::from_utf8(bytes).unwrap_or_default()
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Whatever the body, the fast path gives the full parse's answer,
        /// or none (and the full parse answers).
        #[test]
        fn fast_path_is_the_full_parse_or_nothing(body in bodies()) {
            let (fast, full) = both(&body);
            if let Some(fast) = fast {
                proptest::prop_assert_eq!(Ok(fast), full);
            }
        }
    }
}
