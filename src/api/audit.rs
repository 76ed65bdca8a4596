//! `GET /api/v1/audit` (admin): who changed what, when, from where.
use axum::Json;
use axum::extract::{RawQuery, State};

use super::AppState;
use super::error::ApiError;
use crate::store::{AuditEntry, AuditQuery};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    entries: Vec<AuditEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// `actor`, `action` (e.g. `incident.acknowledge`), `target` (`incident:7`),
/// `since` (RFC 3339), `limit`, `cursor`; newest first.
pub async fn list(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Json<AuditPage>, ApiError> {
    let pairs = super::query_pairs(query.as_deref())?;
    let mut q = AuditQuery { limit: DEFAULT_LIMIT, ..Default::default() };
    for (key, value) in pairs {
        match key.as_str() {
            "actor" => q.actor = Some(value),
            "action" => q.action = Some(value),
            "target" => {
                if value.split_once(':').is_none_or(|(_, id)| id.parse::<i64>().is_err()) {
                    return Err(ApiError::bad_request(format!(
                        "target: expected KIND:ID like incident:7, got {value:?}"
                    )));
                }
                q.target = Some(value)
            }
            "since" => {
                q.since = Some(value.parse().map_err(|e| {
                    ApiError::bad_request(format!("since: expected an RFC 3339 time, got {value:?}: {e}"))
                })?)
            }
            "limit" => q.limit = super::parse_limit(&key, &value, MAX_LIMIT)?,
            "cursor" => {
                q.before =
                    Some(value.parse().map_err(|_| ApiError::bad_request(format!("cursor: not a cursor: {value:?}")))?)
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {key:?}; known: actor, action, target, since, limit, cursor"
                )));
            }
        }
    }
    let limit = q.limit;
    q.limit += 1;
    let (entries, next_cursor) = super::id_page(state.store.list_audit(q).await?, limit, |e| e.id);
    Ok(Json(AuditPage { entries, next_cursor }))
}
