//! Post-incident reviews: `POST/GET/PATCH /api/v1/incidents/{id}/review`
//! and `GET /api/v1/incidents/{id}/review.md`.
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::Deserialize;

use super::auth::Caller;
use super::body::JsonText;
use super::error::{ApiError, ErrorBody};
use super::{AppState, Id};
use crate::model::review::{Review, ReviewEdit};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct StartBody {
    #[schema(max_length = 200)]
    actor: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/incidents/{id}/review", tag = "reviews",
    summary = "Start the post-incident review of a resolved incident, its timeline drafted from the incident's",
    params(("id" = i64, Path)),
    request_body = StartBody,
    responses(
        (status = 201, description = "The review, a draft", body = Review),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 404, description = "No such incident", body = ErrorBody),
        (status = 409, description = "The incident is not resolved, or has its review", body = ErrorBody),
    ))]
pub async fn start(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    JsonText(body): JsonText,
) -> Result<(StatusCode, Json<Review>), ApiError> {
    let b: StartBody =
        if body.trim().is_empty() { StartBody { actor: None } } else { crate::ingest::from_json_object(&body, "")? };
    let actor = caller.actor(b.actor)?;
    Ok((
        StatusCode::CREATED,
        Json(state.store.from(caller.source).create_review(id, actor, crate::clock::now()).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/incidents/{id}/review", tag = "reviews",
    summary = "An incident's post-incident review",
    params(("id" = i64, Path)),
    responses(
        (status = 200, description = "The review", body = Review),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 404, description = "No such incident, or it has no review", body = ErrorBody),
    ))]
pub async fn get(State(state): State<AppState>, Id(id): Id) -> Result<Json<Review>, ApiError> {
    Ok(Json(found(&state, id).await?))
}

#[utoipa::path(patch, path = "/api/v1/incidents/{id}/review", tag = "reviews",
    summary = "Edit a review: its fields, its timeline, its state (draft, in_review, published)",
    params(("id" = i64, Path)),
    request_body = ReviewEdit,
    responses(
        (status = 200, description = "The review as it is now", body = Review),
        (status = 400, description = "A bad id or body; publishing without a summary", body = ErrorBody),
        (status = 404, description = "No such review", body = ErrorBody),
        (status = 409, description = "Published, or a state it cannot move to", body = ErrorBody),
    ))]
pub async fn edit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    JsonText(body): JsonText,
) -> Result<Json<Review>, ApiError> {
    let edit: ReviewEdit = crate::ingest::from_json_object(&body, "")?;
    let actor = caller.actor(edit.actor.clone())?;
    Ok(Json(state.store.from(caller.source).edit_review(id, edit, actor, crate::clock::now()).await?))
}

#[utoipa::path(get, path = "/api/v1/incidents/{id}/review.md", tag = "reviews",
    summary = "A review as Markdown",
    params(("id" = i64, Path)),
    responses(
        (status = 200, description = "The review", body = String, content_type = "text/markdown"),
        (status = 400, description = "A bad id", body = ErrorBody),
        (status = 404, description = "No such incident, or it has no review", body = ErrorBody),
    ))]
pub async fn markdown(State(state): State<AppState>, Id(id): Id) -> Result<impl IntoResponse, ApiError> {
    let review = found(&state, id).await?;
    let incident = state
        .store
        .get_incident(id, crate::clock::now())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no incident {id}")))?;
    let text = crate::model::review::markdown(&incident.incident, &review);
    Ok(([(header::CONTENT_TYPE, "text/markdown; charset=utf-8")], text))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ProblemBody {
    /// An existing problem to link the incident to; absent to open one
    /// from the review (its summary as title, its root cause).
    problem: Option<i64>,
    workaround: Option<String>,
    #[schema(max_length = 200)]
    actor: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/incidents/{id}/review/problem", tag = "reviews",
    summary = "Link the reviewed incident to a problem, or open one from its review",
    params(("id" = i64, Path)),
    request_body = ProblemBody,
    responses(
        (status = 200, description = "The problem, as it is now", body = crate::store::ProblemDetail),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 404, description = "No such incident, review or problem", body = ErrorBody),
        (status = 409, description = "The problem is closed", body = ErrorBody),
    ))]
pub async fn problem(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    JsonText(body): JsonText,
) -> Result<Json<crate::store::ProblemDetail>, ApiError> {
    let b: ProblemBody = crate::ingest::from_json_object(&body, "")?;
    let workaround = b.workaround.map(|w| w.trim().to_owned()).filter(|w| !w.is_empty());
    let actor = caller.actor(b.actor)?;
    let pid =
        state.store.from(caller.source).review_problem(id, b.problem, workaround, actor, crate::clock::now()).await?;
    let detail = state.store.get_problem(pid).await?.ok_or_else(|| ApiError::not_found(format!("no problem {pid}")))?;
    Ok(Json(detail))
}

async fn found(state: &AppState, id: i64) -> Result<Review, ApiError> {
    state.store.get_review(id).await?.ok_or_else(|| ApiError::not_found(format!("incident {id} has no review")))
}
