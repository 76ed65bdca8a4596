//! `GET /api/v1/audit` (admin): who changed what, when, from where.
use axum::Json;
use axum::extract::{RawQuery, State};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::store::{AuditEntry, AuditQuery};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    entries: Vec<AuditEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// `actor`, `action` (e.g. `incident.acknowledge`), `target` (`incident:7`),
/// `since` (RFC 3339), `limit`, `cursor`; newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "admin",
    summary = "The audit log: who changed what, when, from where; newest first",
    params(
        ("actor" = Option<String>, Query),
        ("action" = Option<String>, Query, description = "e.g. `incident.acknowledge`"),
        ("target" = Option<String>, Query, pattern = "^[^:]*:-?[0-9]+$", description = "`KIND:ID`, e.g. `incident:7`"),
        ("since" = Option<String>, Query, format = DateTime, description = "RFC 3339"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
        ("cursor" = Option<i64>, Query, description = "`nextCursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of entries", body = AuditPage),
        (status = 400, description = "A bad or unknown query parameter", body = ErrorBody),
    ))]
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
