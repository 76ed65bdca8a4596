//! The request body of an ingest call: size-limited, JSON content type,
//! UTF-8 text. Each failure gets its own status and a JSON error.
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde_json::json;

use super::error::ApiError;

pub struct JsonText(pub String);

impl<S: Send + Sync> FromRequest<S> for JsonText {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        if !is_json(&ct) {
            let got = if ct.is_empty() { "none".to_owned() } else { format!("{ct:?}") };
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("expected Content-Type: application/json, got {got}"),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| match e {
            BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body is larger than the limit (--max-body)")
            }
            other => ApiError::bad_request(format!("cannot read request body: {other}")),
        })?;
        let text = String::from_utf8(bytes.into()).map_err(|e| {
            ApiError::bad_request("request body is not valid UTF-8")
                .with_detail(json!({ "byte_offset": e.utf8_error().valid_up_to() }))
        })?;
        Ok(JsonText(text))
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
