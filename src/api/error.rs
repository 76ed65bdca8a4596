//! Errors become HTTP responses here and nowhere else.
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::ingest::IngestError;
use crate::store::StoreError;

/// A JSON error answer: `{"error": "...", "detail": ...}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: String,
    pub detail: Value,
    /// Seconds, for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError { status, error: error.into(), detail: Value::Null, retry_after: None }
    }

    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn bad_request(error: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, error)
    }

    pub fn not_found(error: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, error)
    }
}

/// The body of every error answer of alertgate's own API.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in a sentence that names the field or parameter at fault.
    pub error: String,
    /// More, by kind of error: `{"errors": [{"path", "message"}]}` for an
    /// invalid payload, `{"parameter": NAME}` for a bad query parameter.
    #[serde(skip_serializing_if = "Value::is_null")]
    #[schema(value_type = Object)]
    pub detail: Value,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: self.error, detail: self.detail };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut().insert(axum::http::header::RETRY_AFTER, s.into());
        }
        // Every 401 says how to authenticate (RFC 9110), whichever check refused.
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"alertgate\""),
            );
        }
        resp
    }
}

/// An error of the Alertmanager API (`/api/v2/...`): the body is the
/// message as a JSON string, as Alertmanager answers and its clients
/// (amtool, karma, Grafana) read it.
#[derive(Debug)]
pub struct AlertmanagerError(pub ApiError);

impl<E: Into<ApiError>> From<E> for AlertmanagerError {
    fn from(e: E) -> Self {
        AlertmanagerError(e.into())
    }
}

impl IntoResponse for AlertmanagerError {
    fn into_response(self) -> Response {
        let retry_after = self.0.retry_after;
        let mut resp = (self.0.status, axum::Json(Value::String(self.0.error))).into_response();
        if let Some(s) = retry_after {
            resp.headers_mut().insert(axum::http::header::RETRY_AFTER, s.into());
        }
        resp
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        ApiError::bad_request(format!("invalid payload: {e}")).with_detail(json!({ "errors": e.errors }))
    }
}

impl From<StoreError> for ApiError {
    /// Callers see a fixed message per kind of failure; the details (SQLite's
    /// own text) go to the log only.
    fn from(e: StoreError) -> Self {
        let unavailable = |msg: &str| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, msg);
        match &e {
            StoreError::NotFound(m) => ApiError::not_found(m.clone()),
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m.clone()),
            StoreError::Invalid(m) => ApiError::bad_request(m.clone()),
            _ if e.is_unavailable() => {
                tracing::warn!(error = %e, "store unavailable");
                unavailable(e.public_message())
            }
            _ => {
                tracing::error!(error = %e, "store error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.public_message())
            }
        }
    }
}
