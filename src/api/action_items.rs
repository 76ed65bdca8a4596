//! Action items: `POST/GET /api/v1/action-items`, `PATCH /api/v1/action-items/{id}`.
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::body::JsonText;
use super::error::{ApiError, ErrorBody};
use super::{AppState, Id};
use crate::model::action_item::{ActionItem, ActionItemEdit, ActionItemState, ActionOf, NewActionItem, parse_due};
use crate::store::ActionItemQuery;

const MAX_LIMIT: usize = 1000;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewBody {
    #[schema(max_length = 500)]
    title: String,
    /// A person or assignee name.
    owner: String,
    /// RFC 3339, or a date (`YYYY-MM-DD`: the end of that day, UTC).
    due: String,
    /// The incident (its review) it belongs to; or `problem`.
    incident: Option<i64>,
    problem: Option<i64>,
    #[schema(max_length = 200)]
    actor: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/action-items", tag = "action_items",
    summary = "Add an action item to an incident's review or to a problem",
    request_body = NewBody,
    responses(
        (status = 201, description = "The action item", body = ActionItem),
        (status = 400, description = "A bad body, which the error names", body = ErrorBody),
        (status = 404, description = "No such incident or problem", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonText(body): JsonText,
) -> Result<(StatusCode, Json<ActionItem>), ApiError> {
    let b: NewBody = crate::ingest::from_json_object(&body, "")?;
    let title = b.title.trim().to_owned();
    if title.is_empty() || title.chars().count() > 500 {
        return Err(ApiError::bad_request("title: 1 to 500 characters"));
    }
    let owner = b.owner.trim().to_owned();
    if owner.is_empty() {
        return Err(ApiError::bad_request("owner: name who does it"));
    }
    let due = parse_due(&b.due).map_err(|e| ApiError::bad_request(format!("due: {e}")))?;
    let of = match (b.incident, b.problem) {
        (Some(i), None) => ActionOf::Incident(i),
        (None, Some(p)) => ActionOf::Problem(p),
        _ => return Err(ApiError::bad_request("incident, problem: give exactly one")),
    };
    let item = NewActionItem { title, owner, due, of };
    let actor = caller.actor(b.actor)?;
    let made = state.store.from(caller.source).create_action_item(item, actor, crate::clock::now()).await?;
    Ok((StatusCode::CREATED, Json(made)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ActionItemList {
    #[serde(rename = "actionItems")]
    action_items: Vec<ActionItem>,
}

/// `owner`, `state` (`open`, `done`, `wont_do`), `overdue=true` (open past
/// their due date), `incident`, `limit` (≤1000); soonest due first.
#[utoipa::path(get, path = "/api/v1/action-items", tag = "action_items",
    summary = "List action items, soonest due first",
    params(
        ("owner" = Option<String>, Query),
        ("state" = inline(Option<ActionItemState>), Query),
        ("overdue" = Option<bool>, Query, description = "Only those open past their due date"),
        ("incident" = Option<i64>, Query),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "The action items", body = ActionItemList),
        (status = 400, description = "A bad parameter", body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Json<ActionItemList>, ApiError> {
    let mut q = ActionItemQuery { limit: 100, ..Default::default() };
    for (key, value) in super::query_pairs(query.as_deref())? {
        let bad = |want: &str| ApiError::bad_request(format!("{key}: expected {want}, got {value:?}"));
        match key.as_str() {
            "owner" => q.owner = Some(value.clone()),
            "state" => q.state = Some(ActionItemState::parse(&value).ok_or_else(|| bad("open, done or wont_do"))?),
            "overdue" => match value.as_str() {
                "true" => q.overdue_at = Some(crate::clock::now()),
                "false" => q.overdue_at = None,
                _ => return Err(bad("true or false")),
            },
            "incident" => q.incident = Some(value.parse().map_err(|_| bad("an incident id"))?),
            "limit" => q.limit = super::parse_limit(&key, &value, MAX_LIMIT)?,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {key:?}; known: owner, state, overdue, incident, limit"
                )));
            }
        }
    }
    Ok(Json(ActionItemList { action_items: state.store.list_action_items(q).await? }))
}

#[utoipa::path(patch, path = "/api/v1/action-items/{id}", tag = "action_items",
    summary = "Edit an action item: title, owner, due date, state (open, done, wont_do)",
    params(("id" = i64, Path)),
    request_body = ActionItemEdit,
    responses(
        (status = 200, description = "The action item as it is now", body = ActionItem),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 404, description = "No such action item", body = ErrorBody),
    ))]
pub async fn edit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    JsonText(body): JsonText,
) -> Result<Json<ActionItem>, ApiError> {
    let e: ActionItemEdit = crate::ingest::from_json_object(&body, "")?;
    let due = e.due.as_deref().map(parse_due).transpose().map_err(|m| ApiError::bad_request(format!("due: {m}")))?;
    let actor = caller.actor(e.actor.clone())?;
    Ok(Json(state.store.from(caller.source).edit_action_item(id, e, due, actor, crate::clock::now()).await?))
}
