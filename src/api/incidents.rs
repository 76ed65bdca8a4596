//! Incidents: list, show, and what on-call engineers do to them.
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::body::JsonText;
use super::error::{ApiError, ErrorBody};
use super::{AppState, Id, PathText};
use crate::model::incident::{Impact, IncidentAction, IncidentState, NewReport, Priority, Urgency};
use crate::store::{DetailPage, IncidentCursor, IncidentDetail, IncidentPage, IncidentQuery, IncidentSort, SlaFilter};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

/// Query parameters: `state` (also `open`: not resolved or closed; `all`), `priority` (repeatable or comma-separated),
/// `service`, `assignee`, `rule`, `since`/`until` (RFC 3339, on creation
/// time), `sla` (`breached`, `at_risk`, `running`, `paused`, `met`), `sort` (`-created_at` default, `created_at`, `priority`,
/// `-updated_at`), `limit` (1-500), `cursor`.
#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents",
    summary = "List incidents",
    params(
        ("state" = Option<Vec<String>>, Query, explode,
            description = "Repeatable or comma-separated: `open` (not resolved or closed), `all`, `triggered`, \
                `acknowledged`, `on_hold`, `resolved`, `closed`; default all"),
        ("priority" = Option<Vec<String>>, Query, explode, description = "Repeatable or comma-separated: `P1` to `P5`"),
        ("service" = Option<String>, Query),
        ("assignee" = Option<String>, Query),
        ("rule" = Option<String>, Query, description = "The incident rule that opened it"),
        ("since" = Option<String>, Query, format = DateTime, description = "Created at or after (RFC 3339)"),
        ("until" = Option<String>, Query, format = DateTime, description = "Created before (RFC 3339)"),
        ("sla" = inline(Option<SlaCondition>), Query, description = "With a clock in this condition"),
        ("sort" = inline(Option<IncidentOrder>), Query, description = "Default `-created_at`"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 500, description = "Page size (default 50)"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of incidents", body = IncidentPage),
        (status = 400, description = "A bad or unknown query parameter", body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Json<IncidentPage>, ApiError> {
    let q = parse_query(query.as_deref().unwrap_or(""))?;
    Ok(Json(state.store.list_incidents(q).await?))
}

/// `GET /api/v1/incidents/{id}`: `alerts_limit` (1-1000, default 500),
/// `alerts_cursor`, `timeline_limit` (1-5000, default 1000),
/// `timeline_cursor`, `timeline_order` (`asc`, default, or `desc`).
#[utoipa::path(get, path = "/api/v1/incidents/{id}", tag = "incidents",
    summary = "One incident, with a page of its alerts and timeline",
    params(
        ("id" = i64, Path),
        ("alerts_limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "Default 500"),
        ("alerts_cursor" = Option<String>, Query, description = "`alertsNextCursor` of the previous answer"),
        ("timeline_limit" = Option<usize>, Query, minimum = 1, maximum = 5000, description = "Default 1000"),
        ("timeline_cursor" = Option<i64>, Query, description = "`timelineNextCursor` of the previous answer"),
        ("timeline_order" = inline(Option<TimelineOrder>), Query, description = "Default `asc`"),
    ),
    responses(
        (status = 200, description = "The incident", body = IncidentDetail),
        (status = 400, description = "A bad id or query parameter", body = ErrorBody),
        (status = 404, description = "No such incident", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Id(id): Id,
    RawQuery(query): RawQuery,
) -> Result<Json<IncidentDetail>, ApiError> {
    let page = detail_page(query.as_deref())?;
    match state.store.get_incident_page(id, page, crate::clock::now()).await? {
        Some(d) => Ok(Json(d)),
        None => Err(ApiError::not_found(format!("no incident {id}"))),
    }
}

/// An incident as a person reports it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    /// What is wrong, in a line. Not blank.
    #[schema(max_length = 500)]
    title: String,
    description: Option<String>,
    service: Option<String>,
    /// `high`, `medium` (default) or `low`.
    impact: Option<Impact>,
    /// `high`, `medium` (default) or `low`.
    urgency: Option<Urgency>,
    /// Who reported it (a customer, a colleague); the caller when absent.
    #[schema(max_length = 200)]
    reporter: Option<String>,
    /// Labels incident rules and SLA policies may match on.
    #[serde(default)]
    labels: crate::model::LabelSet,
    assignee: Option<String>,
    #[schema(max_length = 200)]
    actor: Option<String>,
}

const MAX_TITLE: usize = 500;

/// `POST /api/v1/incidents`: a person reports an incident no alert caught.
#[utoipa::path(post, path = "/api/v1/incidents", tag = "incidents",
    summary = "Report an incident (the service desk)",
    request_body = ReportBody,
    responses(
        (status = 201, description = "Opened; the incident as it is now", body = IncidentDetail),
        (status = 400, description = "A bad body, which the error names", body = ErrorBody),
    ))]
pub async fn report(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonText(body): JsonText,
) -> Result<(StatusCode, Json<IncidentDetail>), ApiError> {
    let b: ReportBody = parse_body(&body)?;
    let title = b.title.trim().to_owned();
    if title.is_empty() || title.chars().count() > MAX_TITLE {
        return Err(ApiError::bad_request(format!("title: a report needs a title of 1 to {MAX_TITLE} characters")));
    }
    let mut errors = crate::ingest::Errors::default();
    crate::ingest::check_labels_optional(&b.labels, "labels", &mut errors);
    errors.finish(())?;
    let blank_none = |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let report = NewReport {
        title,
        description: blank_none(b.description),
        service: blank_none(b.service),
        impact: b.impact.unwrap_or(Impact::Medium),
        urgency: b.urgency.unwrap_or(Urgency::Medium),
        reporter: blank_none(b.reporter),
        labels: b.labels,
        assignee: blank_none(b.assignee),
    };
    let id =
        state.store.from(caller.source).report_incident(report, caller.actor(b.actor)?, crate::clock::now()).await?;
    Ok((StatusCode::CREATED, detail(&state, id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct LinkAlertsBody {
    /// Fingerprints of stored alerts (see `GET /api/v1/alerts`).
    fingerprints: Vec<String>,
    #[schema(max_length = 200)]
    actor: Option<String>,
}

/// Most alerts one request links.
const MAX_LINKED: usize = 1000;

#[utoipa::path(post, path = "/api/v1/incidents/{id}/alerts", tag = "incidents",
    summary = "Link alerts to an open incident by hand",
    params(("id" = i64, Path)),
    request_body = LinkAlertsBody,
    responses(
        (status = 200, description = "Linked; the incident as it is now", body = IncidentDetail),
        (status = 400, description = "A bad id or body, or an unknown fingerprint", body = ErrorBody),
        (status = 404, description = "No such incident", body = ErrorBody),
        (status = 409, description = "The incident is resolved or closed", body = ErrorBody),
    ))]
pub async fn link_alerts(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    JsonText(body): JsonText,
) -> Result<Json<IncidentDetail>, ApiError> {
    let b: LinkAlertsBody = parse_body(&body)?;
    if b.fingerprints.is_empty() || b.fingerprints.len() > MAX_LINKED {
        return Err(ApiError::bad_request(format!("fingerprints: 1 to {MAX_LINKED} fingerprints")));
    }
    let fingerprints = b
        .fingerprints
        .iter()
        .enumerate()
        .map(|(i, f)| {
            crate::model::Fingerprint::parse(f).map_err(|e| ApiError::bad_request(format!("fingerprints[{i}]: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let actor = caller.actor(b.actor)?;
    state.store.from(caller.source).link_alerts(id, fingerprints, actor, crate::clock::now()).await?;
    detail(&state, id).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct MergeBody {
    /// The incident this one merges into; it must be open.
    into: i64,
    comment: Option<String>,
    #[schema(max_length = 200)]
    actor: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/incidents/{id}/merge", tag = "incidents",
    summary = "Merge an incident into another: its alerts, timeline and links move, and it closes pointing there",
    params(("id" = i64, Path)),
    request_body = MergeBody,
    responses(
        (status = 200, description = "Merged; the incident merged into, as it is now", body = IncidentDetail),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 404, description = "No such incident", body = ErrorBody),
        (status = 409, description = "Not possible: the same incident, this one closed, or the other not open", body = ErrorBody),
    ))]
pub async fn merge(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    JsonText(body): JsonText,
) -> Result<Json<IncidentDetail>, ApiError> {
    let b: MergeBody = parse_body(&body)?;
    let actor = caller.actor(b.actor)?;
    state.store.from(caller.source).merge(id, b.into, b.comment, actor, crate::clock::now()).await?;
    detail(&state, b.into).await
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
    match state.store.get_incident(id, crate::clock::now()).await? {
        Some(d) => Ok(Json(d)),
        None => Err(ApiError::not_found(format!("no incident {id}"))),
    }
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, ApiError> {
    Ok(crate::ingest::from_json_object(body, "")?)
}

/// The `sla` filter of the incident list.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // the schema of a parameter parsed by hand
enum SlaCondition {
    Breached,
    AtRisk,
    Running,
    Paused,
    Met,
}

/// The `sort` of the incident list.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // the schema of a parameter parsed by hand
enum IncidentOrder {
    #[schema(rename = "-created_at")]
    CreatedDesc,
    #[schema(rename = "created_at")]
    CreatedAsc,
    #[schema(rename = "priority")]
    Priority,
    #[schema(rename = "-updated_at")]
    UpdatedDesc,
}

#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // the schema of a parameter parsed by hand
enum TimelineOrder {
    Asc,
    Desc,
}

/// Who does it and why. Without tokens, `actor` names who does it;
/// with them, the token's name is recorded (a different `actor` as
/// `TOKEN for ACTOR`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    #[schema(max_length = 200)]
    actor: Option<String>,
    comment: Option<String>,
}

/// `POST /api/v1/incidents/{id}/{acknowledge|resolve|reopen|hold|close}`.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/{action}", tag = "incidents",
    summary = "Acknowledge, hold, resolve, reopen or close an incident",
    params(("id" = i64, Path), ("action" = inline(IncidentAction), Path)),
    request_body = ActionBody,
    responses(
        (status = 200, description = "Done; the incident as it is now", body = IncidentDetail),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 404, description = "No such incident, or no such action", body = ErrorBody),
        (status = 409, description = "Not possible in the incident's state, which the error names", body = ErrorBody),
    ))]
pub async fn act(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    PathText(action): PathText,
    JsonText(body): JsonText,
) -> Result<Json<IncidentDetail>, ApiError> {
    let action = IncidentAction::parse(&action).ok_or_else(|| {
        ApiError::not_found(format!("unknown action {action:?}: acknowledge, resolve, reopen, hold or close"))
    })?;
    let b: ActionBody = parse_body(&body)?;
    state.store.from(caller.source).act(id, action, caller.actor(b.actor)?, b.comment, crate::clock::now()).await?;
    detail(&state, id).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    #[schema(max_length = 200)]
    actor: Option<String>,
    /// `null` (or empty) unassigns.
    assignee: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/incidents/{id}/assign", tag = "incidents",
    summary = "Assign an incident to someone, or unassign it",
    params(("id" = i64, Path)),
    request_body = AssignBody,
    responses(
        (status = 200, description = "The incident as it is now", body = IncidentDetail),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 404, description = "No such incident", body = ErrorBody),
        (status = 409, description = "Not possible in the incident's state", body = ErrorBody),
    ))]
pub async fn assign(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    JsonText(body): JsonText,
) -> Result<Json<IncidentDetail>, ApiError> {
    let b: AssignBody = parse_body(&body)?;
    let assignee = b.assignee.map(|a| a.trim().to_owned()).filter(|a| !a.is_empty());
    state.store.from(caller.source).assign(id, assignee, caller.actor(b.actor)?, crate::clock::now()).await?;
    detail(&state, id).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    #[schema(max_length = 200)]
    actor: Option<String>,
    /// Not blank.
    text: String,
}

#[utoipa::path(post, path = "/api/v1/incidents/{id}/notes", tag = "incidents",
    summary = "Add a note to an incident's timeline",
    params(("id" = i64, Path)),
    request_body = NoteBody,
    responses(
        (status = 201, description = "Added; the incident as it is now", body = IncidentDetail),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 404, description = "No such incident", body = ErrorBody),
        (status = 409, description = "Not possible in the incident's state", body = ErrorBody),
    ))]
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
    state.store.from(caller.source).note(id, b.text, caller.actor(b.actor)?, crate::clock::now()).await?;
    Ok((StatusCode::CREATED, detail(&state, id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PriorityBody {
    #[schema(max_length = 200)]
    actor: Option<String>,
    #[schema(value_type = Priority)]
    priority: String,
    comment: Option<String>,
}

#[utoipa::path(patch, path = "/api/v1/incidents/{id}/priority", tag = "incidents",
    summary = "Change an incident's priority, recorded with before and after",
    params(("id" = i64, Path)),
    request_body = PriorityBody,
    responses(
        (status = 200, description = "The incident as it is now", body = IncidentDetail),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 404, description = "No such incident", body = ErrorBody),
        (status = 409, description = "Not possible in the incident's state", body = ErrorBody),
    ))]
pub async fn priority(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    JsonText(body): JsonText,
) -> Result<Json<IncidentDetail>, ApiError> {
    let b: PriorityBody = parse_body(&body)?;
    let p = Priority::parse(&b.priority)
        .ok_or_else(|| ApiError::bad_request(format!("priority: expected P1 to P5, got {:?}", b.priority)))?;
    state.store.from(caller.source).set_priority(id, p, caller.actor(b.actor)?, b.comment, crate::clock::now()).await?;
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
