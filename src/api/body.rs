//! Request bodies: size-limited, JSON content type, UTF-8 text, charged
//! against the budget of bytes held at once. Each failure gets its own
//! status and a JSON error.
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;
use crate::ingest::scan::KeyScan;

pub struct JsonText(pub String);

impl<S: Send + Sync> FromRequest<S> for JsonText {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        json_content_type(&req)?;
        let bytes = Bytes::from_request(req, state).await.map_err(|e| match e {
            BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => too_large(),
            other if budget_exhausted(&other) => BudgetExhausted.into(),
            other => ApiError::bad_request(format!("cannot read request body: {other}")),
        })?;
        Ok(JsonText(utf8(bytes.into())?))
    }
}

fn json_content_type(req: &Request) -> Result<(), ApiError> {
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if is_json(ct) {
        return Ok(());
    }
    let got = if ct.is_empty() { "none".to_owned() } else { format!("{ct:?}") };
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("expected Content-Type: application/json, got {got}"),
    ))
}

fn too_large() -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body is larger than the limit (--max-body)")
}

fn read_error(e: &axum::Error) -> ApiError {
    if budget_exhausted(e) {
        return BudgetExhausted.into();
    }
    ApiError::bad_request(format!("cannot read request body: {e}"))
}

fn utf8(bytes: Vec<u8>) -> Result<String, ApiError> {
    String::from_utf8(bytes).map_err(|e| {
        ApiError::bad_request("request body is not valid UTF-8")
            .with_detail(json!({ "byte_offset": e.utf8_error().valid_up_to() }))
    })
}

/// The bytes of request bodies held at once, over all requests, in KiB
/// permits: past it a request is refused with 503 (and retried by its
/// sender) rather than growing the gateway's memory without bound.
#[derive(Clone)]
pub struct BodyBudget(Arc<Semaphore>);

impl BodyBudget {
    pub fn new(bytes: usize) -> BodyBudget {
        BodyBudget(Arc::new(Semaphore::new((bytes / 1024).clamp(1, Semaphore::MAX_PERMITS))))
    }

    /// Reserve room for `bytes` more, or fail at once (never wait: waiting
    /// requests would hold their connections and buffers meanwhile).
    fn take(&self, bytes: usize) -> Result<OwnedSemaphorePermit, BudgetExhausted> {
        let kib = bytes.div_ceil(1024).max(1);
        let kib = u32::try_from(kib).map_err(|_| BudgetExhausted)?;
        self.0.clone().try_acquire_many_owned(kib).map_err(|_| BudgetExhausted)
    }
}

/// The body budget is spent: the request is refused with 503.
#[derive(Debug, thiserror::Error)]
#[error("the gateway holds too many request bodies right now (limits.max_buffered_bytes); retry")]
pub struct BudgetExhausted;

impl From<BudgetExhausted> for ApiError {
    fn from(e: BudgetExhausted) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).retry_after(1)
    }
}

/// Charge every request body against the budget as it arrives; what it
/// took is given back when the response is ready.
pub async fn budget(
    axum::extract::State(state): axum::extract::State<super::AppState>,
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use futures_util::StreamExt;
    let held: Arc<Mutex<Vec<OwnedSemaphorePermit>>> = Arc::default();
    let (parts, body) = req.into_parts();
    let budget = state.body_budget.clone();
    let charged = held.clone();
    let stream = body.into_data_stream().map(move |chunk| {
        let chunk = chunk?;
        let permit = budget.take(chunk.len()).map_err(axum::Error::new)?;
        charged.lock().expect("body budget").push(permit);
        Ok::<_, axum::Error>(chunk)
    });
    let resp = next.run(Request::from_parts(parts, Body::from_stream(stream))).await;
    drop(held);
    resp
}

/// Whether a body failed because the budget ran out.
fn budget_exhausted(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<BudgetExhausted>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The most of a body read before its sender is known (a PagerDuty
/// event's `routing_key` is inside it): strangers hold no more than this.
pub const UNAUTHENTICATED_BODY: usize = 64 * 1024;

/// A PagerDuty route's body and the sender its `routing_key` names. Without
/// an `Authorization` header, only the first [`UNAUTHENTICATED_BODY`] bytes
/// are read until the key (a top-level member, as every PagerDuty client
/// writes it) has been found and checked.
pub struct PagerDutyBody {
    /// A body that is not UTF-8 (`Err` with the offset of the first bad
    /// byte) is an invalid event, answered as PagerDuty answers those.
    pub text: Result<String, usize>,
    pub principal: crate::auth::Principal,
}

impl FromRequest<super::AppState> for PagerDutyBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &super::AppState) -> Result<Self, Self::Rejection> {
        use http_body_util::BodyExt;
        let caller =
            req.extensions().get::<super::auth::Caller>().cloned().ok_or_else(|| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the request passed no authentication")
            })?;
        json_content_type(&req)?;
        let max_body = state.config.max_body;
        let mut principal = caller.principal.clone();
        let mut body = req.into_body();
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let limit = if principal.is_some() { max_body } else { UNAUTHENTICATED_BODY };
            let frame = match body.frame().await {
                None => break,
                Some(f) => f.map_err(|e| read_error(&e))?,
            };
            let Ok(data) = frame.into_data() else { continue };
            if buf.len() + data.len() > max_body {
                return Err(too_large());
            }
            buf.extend_from_slice(&data);
            if principal.is_none() {
                match crate::ingest::scan::top_level_string(&buf, "routing_key") {
                    KeyScan::Found(key) => principal = Some(super::auth::by_routing_key(state, &caller, &key)?),
                    KeyScan::Incomplete if buf.len() <= limit => {}
                    // Refused before the rest of the body is read.
                    _ => return Err(super::auth::by_routing_key(state, &caller, "").unwrap_err()),
                }
            }
        }
        let principal = match principal {
            Some(p) => p,
            None => match crate::ingest::scan::top_level_string(&buf, "routing_key") {
                KeyScan::Found(key) => super::auth::by_routing_key(state, &caller, &key)?,
                _ => return Err(super::auth::by_routing_key(state, &caller, "").unwrap_err()),
            },
        };
        let text = String::from_utf8(buf).map_err(|e| e.utf8_error().valid_up_to());
        Ok(PagerDutyBody { text, principal })
    }
}

fn is_json(content_type: &str) -> bool {
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_content_types() {
        for (ct, ok) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON", true),
            ("application/vnd.api+json", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
            ("", false),
        ] {
            assert_eq!(super::is_json(ct), ok, "{ct}");
        }
    }
}
