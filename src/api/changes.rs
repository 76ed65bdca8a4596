//! Changes and deploys: `POST/GET /api/v1/changes`, and PagerDuty change
//! events at `POST /v2/change/enqueue`.
use super::AppState;
use super::auth::Caller;
use super::body::{JsonText, PagerDutyBody};
use super::error::{ApiError, ErrorBody};
use crate::ingest::change;
use crate::model::change::Change;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

/// Record a change or deploy; one with `suppress` is a maintenance window
/// that mutes its service's alerts while it lasts.
#[utoipa::path(post, path = "/api/v1/changes", tag = "changes",
    request_body = crate::ingest::change::ApiChange,
    responses(
        (status = 201, description = "Recorded", body = Change),
        (status = 400, description = "Invalid change: `detail.errors` names every problem", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonText(body): JsonText,
) -> Result<(StatusCode, Json<Change>), ApiError> {
    let mut c = change::parse_api(&body, crate::clock::now())?;
    let given = Some(std::mem::take(&mut c.created_by)).filter(|a| !a.is_empty());
    c.created_by = caller.actor(given).unwrap_or_else(|_| "api".to_owned());
    Ok((StatusCode::CREATED, Json(state.store.from(caller.source).record_change(c, crate::clock::now()).await?)))
}

/// PagerDuty's answer to a change event it took, with the change's id.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ChangeEnqueued {
    /// Always `success`.
    status: String,
    message: String,
    id: i64,
}

/// As PagerDuty answers: `202 {"status":"success","message":"Change event processed"}`,
/// and 400 with `status: "invalid event"` naming each problem.
#[utoipa::path(post, path = "/v2/change/enqueue", tag = "changes",
    description = "PagerDuty's change events. The sender is named by the event's `routing_key` (an ingest \
        token), or by an `Authorization` header.",
    request_body = crate::ingest::change::PdChange,
    responses(
        (status = 202, description = "The change is recorded", body = ChangeEnqueued),
        (status = 400, description = "An invalid event, as PagerDuty answers it", body = super::ingest::InvalidEvent),
        (status = 401, description = "The `routing_key` (or the header's token) is not a valid token", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"alertgate\"`"))),
        (status = 403, description = "The token may not post events", body = ErrorBody),
        (status = 413, description = "Larger than `--max-body` (64 KiB before the routing key is known)", body = ErrorBody),
        (status = 429, description = "Over the sender's rate", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub async fn pagerduty(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PagerDutyBody { text: body, principal }: PagerDutyBody,
) -> Result<Response, ApiError> {
    let body = match body {
        Ok(b) => b,
        Err(byte_offset) => return Ok(super::ingest::pagerduty_not_utf8(byte_offset)),
    };
    let mut c = match change::parse_pagerduty(&body, crate::clock::now()) {
        Ok(c) => c,
        Err(e) => return Ok(super::ingest::pagerduty_invalid(e)),
    };
    if !principal.is_anonymous() {
        c.created_by = principal.name;
    }
    let stored = state.store.from(caller.source).record_change(c, crate::clock::now()).await?;
    let answer =
        ChangeEnqueued { status: "success".to_owned(), message: "Change event processed".to_owned(), id: stored.id };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangePage {
    changes: Vec<Change>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// `service`, `limit`, `cursor`; most recently recorded first.
#[utoipa::path(get, path = "/api/v1/changes", tag = "changes",
    summary = "List changes, most recently recorded first",
    params(
        ("service" = Option<String>, Query, description = "Only this service's changes"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 500, description = "Page size (default 50)"),
        ("cursor" = Option<i64>, Query, description = "`nextCursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of changes", body = ChangePage),
        (status = 400, description = "A bad or unknown query parameter", body = ErrorBody),
    ))]
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
