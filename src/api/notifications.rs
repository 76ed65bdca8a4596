//! The outbox over HTTP: `GET /api/v1/notifications`,
//! `POST /api/v1/notifications/{id}/retry`.
use axum::extract::{RawQuery, State};
use axum::{Extension, Json};

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::{AppState, Id};
use crate::model::notification::NotificationState;
use crate::store::NotificationView;

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationPage {
    notifications: Vec<NotificationView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // the schema of a parameter parsed by hand
enum DeliveryState {
    Pending,
    Sent,
    Failed,
}

/// `state` (`pending`, `sent`, `failed`), `notifier`, `incident`, `limit`, `cursor`; newest first.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications",
    summary = "List notifications (the outbox), newest first",
    params(
        ("state" = inline(Option<DeliveryState>), Query),
        ("notifier" = Option<String>, Query),
        ("incident" = Option<i64>, Query, description = "Only this incident's"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 500, description = "Page size (default 50)"),
        ("cursor" = Option<i64>, Query, description = "`nextCursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of notifications", body = NotificationPage),
        (status = 400, description = "A bad or unknown query parameter", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<NotificationPage>, ApiError> {
    let pairs = super::query_pairs(query.as_deref())?;
    let (mut st, mut notifier, mut incident, mut before, mut limit) = (None, None, None, None, DEFAULT_LIMIT);
    for (key, value) in pairs {
        let number = |v: &str| {
            v.parse::<i64>().map_err(|_| ApiError::bad_request(format!("{key}: expected a number, got {v:?}")))
        };
        match key.as_str() {
            "state" => {
                st = Some(NotificationState::parse(&value).ok_or_else(|| {
                    ApiError::bad_request(format!("state: unknown state {value:?}: pending, sent, failed"))
                })?);
            }
            "notifier" => notifier = Some(value),
            "incident" => incident = Some(number(&value)?),
            "cursor" => before = Some(number(&value)?),
            "limit" => limit = super::parse_limit(&key, &value, MAX_LIMIT)?,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {key:?}; known: state, notifier, incident, limit, cursor"
                )));
            }
        }
    }
    let rows = state.store.list_notifications(st, notifier, incident, before, limit + 1).await?;
    let (notifications, next_cursor) = super::id_page(rows, limit, |n| n.id);
    Ok(Json(NotificationPage { notifications, next_cursor }))
}

/// Deliver a failed or pending notification again, now.
#[utoipa::path(post, path = "/api/v1/notifications/{id}/retry", tag = "notifications",
    params(("id" = i64, Path)),
    responses(
        (status = 200, description = "Queued again", body = NotificationView),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 404, description = "No such notification", body = ErrorBody),
        (status = 409, description = "Sent already", body = ErrorBody),
    ))]
pub async fn retry(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
) -> Result<Json<NotificationView>, ApiError> {
    state.store.from(caller.source).retry_notification(id, caller.name(), crate::clock::now()).await?;
    let found = state.store.list_notifications(None, None, None, Some(id + 1), 1).await?;
    found.into_iter().find(|n| n.id == id).map(Json).ok_or_else(|| ApiError::not_found(format!("no notification {id}")))
}
