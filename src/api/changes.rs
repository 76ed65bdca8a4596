//! Changes and deploys: `POST/GET /api/v1/changes`, and PagerDuty change
//! events at `POST /v2/change/enqueue`.
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::body::JsonText;
use super::error::ApiError;
use crate::ingest::change;
use crate::model::change::Change;

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

pub async fn create(
    State(state): State<AppState>,
    JsonText(body): JsonText,
) -> Result<(StatusCode, Json<Change>), ApiError> {
    let c = change::parse_api(&body, crate::clock::now())?;
    Ok((StatusCode::CREATED, Json(state.store.record_change(c).await?)))
}

/// As PagerDuty answers: `202 {"status":"success","message":"Change event processed"}`,
/// and 400 with `status: "invalid event"` naming each problem.
pub async fn pagerduty(State(state): State<AppState>, JsonText(body): JsonText) -> Result<Response, ApiError> {
    let c = match change::parse_pagerduty(&body, crate::clock::now()) {
        Ok(c) => c,
        Err(e) => return Ok(super::ingest::pagerduty_invalid(e)),
    };
    let stored = state.store.record_change(c).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "status": "success", "message": "Change event processed", "id": stored.id })),
    )
        .into_response())
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangePage {
    changes: Vec<Change>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// `service`, `limit`, `cursor`; most recently recorded first.
pub async fn list(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Json<ChangePage>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("bad query string: {e}")))?;
    let (mut service, mut before, mut limit) = (None, None, DEFAULT_LIMIT);
    for (key, value) in pairs {
        match key.as_str() {
            "service" => service = Some(value),
            "limit" => limit = super::parse_limit(&key, &value, MAX_LIMIT)?,
            "cursor" => {
                before = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| ApiError::bad_request(format!("cursor: not a cursor: {value:?}")))?,
                )
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {key:?}; known: service, limit, cursor"
                )));
            }
        }
    }
    let mut changes = state.store.list_changes(service, before, limit + 1).await?;
    let more = changes.len() > limit;
    changes.truncate(limit);
    let next_cursor = changes.last().filter(|_| more).map(|c| c.id.to_string());
    Ok(Json(ChangePage { changes, next_cursor }))
}
