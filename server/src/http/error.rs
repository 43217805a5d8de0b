//! Error replies and the JSON body extractor.
//!
//! Every error reply has an [`ApiError`] JSON body. Bodies are parsed with
//! `serde_path_to_error` so a `400` names the offending field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nird_proto::api::ApiError;
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
/// member is kept as the text it was sent as (`None` when absent or
/// `null`); the typed value sees it as `null`.
///
/// An inventory is the bulk of a body (≈ 250 KB with 2,500 packages) and
/// its hash covers its canonical text: kept as text, it is checked and
/// stored without ever being built as a `serde_json::Value` when it is
/// already canonical (as agents send it).
pub struct ApiJsonWithInventory<T>(pub T, pub Option<Box<RawValue>>);

impl<S, T> FromRequest<S> for ApiJsonWithInventory<T>
where
    S: Send + Sync,
    T: DeserializeOwned + serde::Serialize,
{
    type Rejection = HttpError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = decoded_body(req).await?;
        // Members as raw text: one validating pass over the body, nothing
        // built for the inventory. Duplicate members: the last wins, as
        // when parsing into a `Value`.
        let members: BTreeMap<String, Box<RawValue>> = serde_json::from_slice(&bytes)
            .map_err(|e| HttpError::bad_request(format!("JSON invalide : {e}")))?;
        let mut json = serde_json::Map::new();
        let mut inventory = None;
        for (name, raw) in members {
            if name == "inventory" {
                json.insert(name, serde_json::Value::Null);
                inventory = Some(raw).filter(|r| r.get() != "null");
            } else {
                let value = serde_json::from_str(raw.get())
                    .map_err(|e| HttpError::bad_request(format!("JSON invalide : {e}")))?;
                json.insert(name, value);
            }
        }
        let value = typed(serde_json::Value::Object(json))?;
        Ok(ApiJsonWithInventory(value, inventory))
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
