//! Incidents: list, show, and what on-call engineers do to them.
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::body::JsonText;
use super::error::ApiError;
use super::{AppState, Id};
use crate::model::incident::{IncidentAction, IncidentState, Priority};
use crate::store::{DetailPage, IncidentCursor, IncidentDetail, IncidentPage, IncidentQuery, IncidentSort, SlaFilter};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

/// Query parameters: `state` (also `open`: not resolved or closed; `all`), `priority` (repeatable or comma-separated),
/// `service`, `assignee`, `rule`, `since`/`until` (RFC 3339, on creation
/// time), `sla` (`breached`, `at_risk`, `running`, `paused`, `met`), `sort` (`-created_at` default, `created_at`, `priority`,
/// `-updated_at`), `limit` (1-500), `cursor`.
pub async fn list(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Json<IncidentPage>, ApiError> {
    let q = parse_query(query.as_deref().unwrap_or(""))?;
    Ok(Json(state.store.list_incidents(q).await?))
}

/// `GET /api/v1/incidents/{id}`: `alerts_limit` (1-1000, default 500),
/// `alerts_cursor`, `timeline_limit` (1-5000, default 1000),
/// `timeline_cursor`, `timeline_order` (`asc`, default, or `desc`).
pub async fn get(
    State(state): State<AppState>,
    Id(id): Id,
    RawQuery(query): RawQuery,
) -> Result<Json<IncidentDetail>, ApiError> {
    let page = detail_page(query.as_deref())?;
    match state.store.get_incident_page(id, page).await? {
        Some(d) => Ok(Json(d)),
        None => Err(ApiError::not_found(format!("no incident {id}"))),
    }
}

fn detail_page(query: Option<&str>) -> Result<DetailPage, ApiError> {
    let mut page = DetailPage::default();
    let bad = |key: &str, value: &str, want: &str| {
        ApiError::bad_request(format!("{key}: expected {want}, got {value:?}"))
            .with_detail(serde_json::json!({ "parameter": key }))
    };
    for (key, value) in super::query_pairs(query)? {
        match key.as_str() {
            "alerts_limit" => page.alerts_limit = super::parse_limit(&key, &value, DetailPage::MAX_ALERTS)?,
            "timeline_limit" => page.timeline_limit = super::parse_limit(&key, &value, DetailPage::MAX_TIMELINE)?,
            "alerts_cursor" => {
                let parsed = value.split_once(':').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
                page.alerts_after = Some(parsed.ok_or_else(|| bad(&key, &value, "a cursor from alertsNextCursor"))?);
            }
            "timeline_cursor" => {
                page.timeline_after =
                    Some(value.parse().map_err(|_| bad(&key, &value, "a cursor from timelineNextCursor"))?)
            }
            "timeline_order" => {
                page.timeline_newest_first = match value.as_str() {
                    "asc" => false,
                    "desc" => true,
                    _ => return Err(bad(&key, &value, "asc or desc")),
                }
            }
            _ => return Err(ApiError::bad_request(format!("unknown parameter {key:?}"))),
        }
    }
    Ok(page)
}

async fn detail(state: &AppState, id: i64) -> Result<Json<IncidentDetail>, ApiError> {
    match state.store.get_incident(id).await? {
        Some(d) => Ok(Json(d)),
        None => Err(ApiError::not_found(format!("no incident {id}"))),
    }
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, ApiError> {
    Ok(crate::ingest::from_json(body, "")?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    actor: Option<String>,
    comment: Option<String>,
}

/// `POST /api/v1/incidents/{id}/{acknowledge|resolve|reopen|hold|close}`.
pub async fn act(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    Path(params): Path<std::collections::HashMap<String, String>>,
    JsonText(body): JsonText,
) -> Result<Json<IncidentDetail>, ApiError> {
    let action = params.get("action").map(String::as_str).unwrap_or_default();
    let action = IncidentAction::parse(action).ok_or_else(|| {
        ApiError::not_found(format!("unknown action {action:?}: acknowledge, resolve, reopen, hold or close"))
    })?;
    let b: ActionBody = parse_body(&body)?;
    state.store.from(caller.source).act(id, action, caller.actor(b.actor)?, b.comment).await?;
    detail(&state, id).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    actor: Option<String>,
    /// `null` unassigns.
    assignee: Option<String>,
}

pub async fn assign(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    JsonText(body): JsonText,
) -> Result<Json<IncidentDetail>, ApiError> {
    let b: AssignBody = parse_body(&body)?;
    let assignee = b.assignee.map(|a| a.trim().to_owned()).filter(|a| !a.is_empty());
    state.store.from(caller.source).assign(id, assignee, caller.actor(b.actor)?).await?;
    detail(&state, id).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    actor: Option<String>,
    text: String,
}

pub async fn note(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    JsonText(body): JsonText,
) -> Result<(StatusCode, Json<IncidentDetail>), ApiError> {
    let b: NoteBody = parse_body(&body)?;
    if b.text.trim().is_empty() {
        return Err(ApiError::bad_request("text: a note needs text"));
    }
    state.store.from(caller.source).note(id, b.text, caller.actor(b.actor)?).await?;
    Ok((StatusCode::CREATED, detail(&state, id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriorityBody {
    actor: Option<String>,
    priority: String,
    comment: Option<String>,
}

pub async fn priority(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    JsonText(body): JsonText,
) -> Result<Json<IncidentDetail>, ApiError> {
    let b: PriorityBody = parse_body(&body)?;
    let p = Priority::parse(&b.priority)
        .ok_or_else(|| ApiError::bad_request(format!("priority: expected P1 to P5, got {:?}", b.priority)))?;
    state.store.from(caller.source).set_priority(id, p, caller.actor(b.actor)?, b.comment).await?;
    detail(&state, id).await
}

fn parse_query(raw: &str) -> Result<IncidentQuery, ApiError> {
    let pairs = super::query_pairs(Some(raw))?;
    let mut q = IncidentQuery { limit: DEFAULT_LIMIT, ..Default::default() };
    for (key, value) in pairs {
        let bad = |msg: String| ApiError::bad_request(format!("{key}: {msg}")).with_detail(json!({ "parameter": key }));
        let time = |v: &str| {
            v.parse::<jiff::Timestamp>().map_err(|e| bad(format!("expected an RFC 3339 time, got {v:?}: {e}")))
        };
        match key.as_str() {
            "state" => {
                for v in value.split(',').filter(|v| !v.is_empty()) {
                    match v {
                        // Not resolved or closed: what still needs someone.
                        "open" => q.states.extend(IncidentState::ALL.iter().copied().filter(|s| s.is_open())),
                        "all" => q.states.extend(IncidentState::ALL.iter().copied()),
                        _ => q.states.push(IncidentState::parse(v).ok_or_else(|| {
                            bad(format!(
                                "unknown state {v:?}: open, all, triggered, acknowledged, on_hold, resolved, closed"
                            ))
                        })?),
                    }
                }
                q.states.sort_by_key(|s| s.as_str());
                q.states.dedup();
            }
            "priority" => {
                for v in value.split(',').filter(|v| !v.is_empty()) {
                    q.priorities.push(Priority::parse(v).ok_or_else(|| bad(format!("expected P1 to P5, got {v:?}")))?);
                }
            }
            "service" => q.service = Some(value),
            "assignee" => q.assignee = Some(value),
            "rule" => q.rule = Some(value),
            "since" => q.since = Some(time(&value)?),
            "until" => q.until = Some(time(&value)?),
            "sla" => q.sla = Some(SlaFilter::parse(&value).ok_or_else(|| {
                bad(format!(
                    "unknown SLA condition {value:?}: breached, at_risk, running, paused, met, resolved_unacknowledged"
                ))
            })?),
            "sort" => {
                q.sort = match value.as_str() {
                    "-created_at" => IncidentSort::CreatedDesc,
                    "created_at" => IncidentSort::CreatedAsc,
                    "priority" => IncidentSort::Priority,
                    "-updated_at" => IncidentSort::UpdatedDesc,
                    other => {
                        return Err(bad(format!(
                            "unknown sort {other:?}: -created_at, created_at, priority, -updated_at"
                        )));
                    }
                }
            }
            "limit" => q.limit = super::parse_limit(&key, &value, MAX_LIMIT)?,
            "cursor" => {
                q.cursor = Some(
                    IncidentCursor::parse(&value)
                        .ok_or_else(|| bad(format!("not a cursor from a previous page: {value:?}")))?,
                )
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {key:?}; known: state, priority, service, assignee, rule, since, until, sla, sort, limit, cursor"
                )));
            }
        }
    }
    Ok(q)
}
