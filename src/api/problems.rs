//! Problems: `GET/POST /api/v1/problems`, `GET/PATCH /api/v1/problems/{id}`,
//! `POST /api/v1/problems/{id}/incidents`.
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::body::JsonText;
use super::error::{ApiError, ErrorBody};
use super::{AppState, Id};
use crate::model::problem::{Problem, ProblemState};
use crate::store::{NewProblem, ProblemDetail, ProblemQuery, ProblemUpdate};

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;
const MAX_TEXT: usize = 10_000;

fn text(value: Option<String>, path: &str, required: bool) -> Result<Option<String>, ApiError> {
    let v = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    match &v {
        None if required => Err(ApiError::bad_request(format!("{path}: required"))),
        Some(s) if s.chars().count() > MAX_TEXT => {
            Err(ApiError::bad_request(format!("{path}: longer than {MAX_TEXT} characters")))
        }
        _ => Ok(v),
    }
}

/// A problem opened by hand. Texts are trimmed, at most 10,000 characters.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewProblem)]
struct NewBody {
    #[schema(max_length = 200)]
    actor: Option<String>,
    /// Required.
    title: Option<String>,
    key: Option<String>,
    /// Also accepted as `rootCause`.
    #[serde(alias = "rootCause")]
    root_cause: Option<String>,
    workaround: Option<String>,
    /// Incidents to link at once.
    #[serde(default)]
    incidents: Vec<i64>,
}

#[utoipa::path(post, path = "/api/v1/problems", tag = "problems",
    summary = "Open a problem",
    request_body = NewBody,
    responses(
        (status = 201, description = "Opened", body = ProblemDetail),
        (status = 400, description = "An invalid body", body = ErrorBody),
        (status = 404, description = "A linked incident does not exist", body = ErrorBody),
        (status = 409, description = "A linked incident cannot be linked", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonText(body): JsonText,
) -> Result<(StatusCode, Json<ProblemDetail>), ApiError> {
    let b: NewBody = crate::ingest::from_json_object(&body, "")?;
    let p = NewProblem {
        title: text(b.title, "title", true)?.unwrap_or_default(),
        key: text(b.key, "key", false)?,
        root_cause: text(b.root_cause, "root_cause", false)?,
        workaround: text(b.workaround, "workaround", false)?,
        incidents: b.incidents,
    };
    let id = state.store.from(caller.source).create_problem(p, caller.actor(b.actor)?, crate::clock::now()).await?;
    Ok((StatusCode::CREATED, detail(&state, id).await?))
}

#[utoipa::path(get, path = "/api/v1/problems/{id}", tag = "problems",
    summary = "One problem, with its incidents and timeline",
    params(("id" = i64, Path)),
    responses(
        (status = 200, description = "The problem", body = ProblemDetail),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 404, description = "No such problem", body = ErrorBody),
    ))]
pub async fn get(State(state): State<AppState>, Id(id): Id) -> Result<Json<ProblemDetail>, ApiError> {
    detail(&state, id).await
}

async fn detail(state: &AppState, id: i64) -> Result<Json<ProblemDetail>, ApiError> {
    match state.store.get_problem(id).await? {
        Some(d) => Ok(Json(d)),
        None => Err(ApiError::not_found(format!("no problem {id}"))),
    }
}

/// What to change; absent fields stay. Texts are trimmed, at most 10,000 characters.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ProblemChange)]
struct PatchBody {
    #[schema(max_length = 200)]
    actor: Option<String>,
    title: Option<String>,
    /// Also accepted as `rootCause`.
    #[serde(alias = "rootCause")]
    root_cause: Option<String>,
    workaround: Option<String>,
    #[schema(value_type = Option<ProblemState>)]
    state: Option<String>,
}

#[utoipa::path(patch, path = "/api/v1/problems/{id}", tag = "problems",
    summary = "Change a problem: title, root cause, workaround, state",
    params(("id" = i64, Path)),
    request_body = PatchBody,
    responses(
        (status = 200, description = "The problem as it is now", body = ProblemDetail),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 404, description = "No such problem", body = ErrorBody),
        (status = 409, description = "Not a state the problem can go to", body = ErrorBody),
    ))]
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    JsonText(body): JsonText,
) -> Result<Json<ProblemDetail>, ApiError> {
    let b: PatchBody = crate::ingest::from_json_object(&body, "")?;
    let new_state = match &b.state {
        None => None,
        Some(s) => Some(ProblemState::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!("state: unknown state {s:?}: open, known_error, resolved, closed"))
        })?),
    };
    let u = ProblemUpdate {
        title: text(b.title, "title", false)?,
        root_cause: text(b.root_cause, "root_cause", false)?,
        workaround: text(b.workaround, "workaround", false)?,
        state: new_state,
    };
    state.store.from(caller.source).update_problem(id, u, caller.actor(b.actor)?, crate::clock::now()).await?;
    detail(&state, id).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ProblemLink)]
struct LinkBody {
    #[schema(max_length = 200)]
    actor: Option<String>,
    /// At least one incident id.
    #[schema(min_items = 1)]
    incidents: Vec<i64>,
}

#[utoipa::path(post, path = "/api/v1/problems/{id}/incidents", tag = "problems",
    summary = "Link incidents to a problem",
    params(("id" = i64, Path)),
    request_body = LinkBody,
    responses(
        (status = 200, description = "The problem as it is now", body = ProblemDetail),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 404, description = "No such problem or incident", body = ErrorBody),
        (status = 409, description = "The problem is closed", body = ErrorBody),
    ))]
pub async fn link(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    JsonText(body): JsonText,
) -> Result<Json<ProblemDetail>, ApiError> {
    let b: LinkBody = crate::ingest::from_json_object(&body, "")?;
    if b.incidents.is_empty() {
        return Err(ApiError::bad_request("incidents: name at least one incident id"));
    }
    state
        .store
        .from(caller.source)
        .link_incidents(id, b.incidents, caller.actor(b.actor)?, crate::clock::now())
        .await?;
    detail(&state, id).await
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProblemPage {
    problems: Vec<Problem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// `state` (repeatable or comma-separated), `limit`, `cursor`.
#[utoipa::path(get, path = "/api/v1/problems", tag = "problems",
    summary = "List problems, newest first",
    params(
        ("state" = Option<Vec<String>>, Query, explode,
            description = "Repeatable or comma-separated: `open`, `known_error`, `resolved`, `closed`"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 500, description = "Page size (default 50)"),
        ("cursor" = Option<i64>, Query, description = "`nextCursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of problems", body = ProblemPage),
        (status = 400, description = "A bad or unknown query parameter", body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Json<ProblemPage>, ApiError> {
    let pairs = super::query_pairs(query.as_deref())?;
    let mut q = ProblemQuery { limit: DEFAULT_LIMIT, ..Default::default() };
    for (key, value) in pairs {
        let bad = |msg: String| ApiError::bad_request(format!("{key}: {msg}")).with_detail(json!({ "parameter": key }));
        match key.as_str() {
            "state" => {
                for v in value.split(',').filter(|v| !v.is_empty()) {
                    q.states.push(
                        ProblemState::parse(v)
                            .ok_or_else(|| bad(format!("unknown state {v:?}: open, known_error, resolved, closed")))?,
                    );
                }
            }
            "limit" => q.limit = super::parse_limit(&key, &value, MAX_LIMIT)?,
            "cursor" => q.before = Some(value.parse().map_err(|_| bad(format!("not a cursor: {value:?}")))?),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {key:?}; known: state, limit, cursor"
                )));
            }
        }
    }
    let limit = q.limit;
    q.limit += 1;
    let (problems, next_cursor) = super::id_page(state.store.list_problems(q).await?, limit, |p| p.id);
    Ok(Json(ProblemPage { problems, next_cursor }))
}
