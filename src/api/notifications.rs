//! The outbox over HTTP: `GET /api/v1/notifications`,
//! `POST /api/v1/notifications/{id}/retry`.
use axum::extract::{RawQuery, State};
use axum::{Extension, Json};

use super::auth::Caller;
use super::error::ApiError;
use super::{AppState, Id};
use crate::model::notification::NotificationState;
use crate::store::NotificationView;

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationPage {
    notifications: Vec<NotificationView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// `state` (`pending`, `sent`, `failed`), `notifier`, `incident`, `limit`, `cursor`; newest first.
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

pub async fn retry(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
) -> Result<Json<NotificationView>, ApiError> {
    state.store.from(caller.source).retry_notification(id, caller.name()).await?;
    let found = state.store.list_notifications(None, None, None, Some(id + 1), 1).await?;
    found.into_iter().find(|n| n.id == id).map(Json).ok_or_else(|| ApiError::not_found(format!("no notification {id}")))
}
