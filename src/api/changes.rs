//! Changes and deploys: `POST/GET /api/v1/changes`, and PagerDuty change
//! events at `POST /v2/change/enqueue`.
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::AppState;
use super::auth::Caller;
use super::body::{JsonText, PagerDutyBody};
use super::error::ApiError;
use crate::ingest::change;
use crate::model::change::Change;

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonText(body): JsonText,
) -> Result<(StatusCode, Json<Change>), ApiError> {
    let mut c = change::parse_api(&body, crate::clock::now())?;
    let given = Some(std::mem::take(&mut c.created_by)).filter(|a| !a.is_empty());
    c.created_by = caller.actor(given).unwrap_or_else(|_| "api".to_owned());
    Ok((StatusCode::CREATED, Json(state.store.from(caller.source).record_change(c).await?)))
}

/// As PagerDuty answers: `202 {"status":"success","message":"Change event processed"}`,
/// and 400 with `status: "invalid event"` naming each problem.
pub async fn pagerduty(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PagerDutyBody { text: body, principal }: PagerDutyBody,
) -> Result<Response, ApiError> {
    let mut c = match change::parse_pagerduty(&body, crate::clock::now()) {
        Ok(c) => c,
        Err(e) => return Ok(super::ingest::pagerduty_invalid(e)),
    };
    if !principal.is_anonymous() {
        c.created_by = principal.name;
    }
    let stored = state.store.from(caller.source).record_change(c).await?;
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
    let pairs = super::query_pairs(query.as_deref())?;
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
    let (changes, next_cursor) =
        super::id_page(state.store.list_changes(service, before, limit + 1).await?, limit, |c| c.id);
    Ok(Json(ChangePage { changes, next_cursor }))
}
