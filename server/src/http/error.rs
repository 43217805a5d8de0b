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

/// A JSON body, parsed with field-naming errors and the body size limit
/// mapped to `413`.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                HttpError::too_large()
            } else {
                HttpError::bad_request(format!("corps de requête illisible : {rejection}"))
            }
        })?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.inner();
            if path == "." {
                HttpError::bad_request(format!("JSON invalide : {inner}"))
            } else {
                HttpError::bad_request(format!("JSON invalide, champ « {path} » : {inner}"))
            }
        })?;
        de.end()
            .map_err(|e| HttpError::bad_request(format!("JSON invalide : {e}")))?;
        Ok(ApiJson(value))
    }
}
