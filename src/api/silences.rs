//! Silences: `POST /api/v1/silences`, `GET /api/v1/silences`,
//! `DELETE /api/v1/silences/{id}` (expire).
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::body::JsonText;
use super::error::{ApiError, ErrorBody};
use super::{AppState, Id};
use crate::engine::silence::{Silence, SilenceState};
use crate::rules::matcher::parse_matchers;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewSilence {
    /// Alertmanager matchers, e.g. `alertname="DiskFull"` or `{job=~"node.*"}`;
    /// at least one must not match the empty string.
    #[schema(min_items = 1)]
    matchers: Vec<String>,
    /// RFC 3339; now when absent or past.
    #[schema(format = DateTime)]
    starts_at: Option<String>,
    /// RFC 3339, after the start and in the future.
    #[schema(format = DateTime)]
    ends_at: String,
    /// Who creates it (without tokens); the token's name otherwise.
    #[schema(max_length = 200)]
    created_by: Option<String>,
    #[serde(default)]
    comment: String,
}

#[utoipa::path(post, path = "/api/v1/silences", tag = "silences",
    summary = "Create a silence",
    request_body = NewSilence,
    responses(
        (status = 201, description = "Created", body = Silence),
        (status = 400, description = "An invalid silence: `detail.errors` names every problem", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonText(body): JsonText,
) -> Result<(StatusCode, Json<Silence>), ApiError> {
    let b: NewSilence = crate::ingest::from_json_object(&body, "")?;
    let mut problems = Vec::new();
    let mut matchers = Vec::new();
    for (i, m) in b.matchers.iter().enumerate() {
        match parse_matchers(m) {
            Ok(ms) => matchers.extend(ms),
            Err(e) => problems.push(json!({ "path": format!("matchers[{i}]"), "message": e.to_string() })),
        }
    }
    let matchers_parsed = problems.is_empty();
    let now = crate::clock::now();
    let time = |v: &str, path: &str, problems: &mut Vec<serde_json::Value>| match crate::ingest::parse_time(v) {
        Ok(Some(t)) => Some(t),
        Ok(None) => None,
        Err(e) => {
            problems.push(json!({ "path": path, "message": e }));
            None
        }
    };
    let starts_at = b.starts_at.as_deref().and_then(|v| time(v, "startsAt", &mut problems)).unwrap_or(now).max(now);
    let ends_at = time(&b.ends_at, "endsAt", &mut problems);
    let end = ends_at.unwrap_or(jiff::Timestamp::MAX);
    for (path, message) in crate::engine::silence::problems(&matchers, starts_at, end, now) {
        // Only a fully parsed list can be judged as a whole.
        if path != "matchers" || matchers_parsed {
            problems.push(json!({ "path": path, "message": message }));
        }
    }
    let created_by = caller.actor(b.created_by).ok();
    if created_by.is_none() {
        problems.push(json!({ "path": "createdBy", "message": "name who creates the silence" }));
    }
    if !problems.is_empty() || ends_at.is_none() {
        let summary: Vec<String> =
            problems.iter().map(|p| format!("{}: {}", text(&p["path"]), text(&p["message"]))).collect();
        return Err(ApiError::bad_request(format!("invalid silence: {}", summary.join("; ")))
            .with_detail(json!({ "errors": problems })));
    }
    let silence = state
        .store
        .from(caller.source)
        .create_silence(
            matchers,
            starts_at,
            ends_at.expect("checked"),
            created_by.expect("checked"),
            b.comment,
            crate::clock::now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(silence)))
}

fn text(v: &serde_json::Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// A silence with its state now.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SilenceNow {
    #[serde(flatten)]
    silence: Silence,
    state: SilenceState,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SilenceList {
    silences: Vec<SilenceNow>,
}

/// `?expired=true` includes silences that have ended; `filter` (repeatable,
/// a matcher) keeps those with an equal matcher (same label, operator and
/// value), as Alertmanager filters silences.
#[utoipa::path(get, path = "/api/v1/silences", tag = "silences",
    summary = "List silences",
    params(
        ("expired" = Option<bool>, Query, description = "`true` lists ended silences too"),
        ("filter" = Option<Vec<String>>, Query, explode,
            description = "Repeatable matcher; keeps silences with an equal matcher (same label, operator and value)"),
    ),
    responses(
        (status = 200, description = "The silences", body = SilenceList),
        (status = 400, description = "A bad or unknown query parameter", body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Json<SilenceList>, ApiError> {
    let pairs = super::query_pairs(query.as_deref())?;
    let mut expired = false;
    let mut filter = Vec::new();
    for (k, v) in pairs {
        match (k.as_str(), v.as_str()) {
            ("expired", "true") => expired = true,
            ("expired", "false") => expired = false,
            ("filter", m) => filter.extend(parse_matchers(m).map_err(|e| {
                ApiError::bad_request(format!("filter: {e}")).with_detail(json!({ "parameter": "filter" }))
            })?),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {k}={v:?}; known: expired=true|false, filter=MATCHER"
                )));
            }
        }
    }
    let now = crate::clock::now();
    let silences = state
        .store
        .list_silences(expired, crate::clock::now())
        .await?
        .into_iter()
        .filter(|s| filter.iter().all(|f| s.matchers.iter().any(|m| m.same_as(f))))
        .map(|silence| SilenceNow { state: silence.state(now), silence })
        .collect();
    Ok(Json(SilenceList { silences }))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Expired {
    /// Always `expired`.
    status: String,
    id: i64,
}

#[utoipa::path(delete, path = "/api/v1/silences/{id}", tag = "silences",
    summary = "Expire a silence now",
    params(("id" = i64, Path)),
    responses(
        (status = 200, description = "Expired (or it had ended already)", body = Expired),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 404, description = "No such silence", body = ErrorBody),
    ))]
pub async fn expire(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
) -> Result<Json<Expired>, ApiError> {
    state.store.from(caller.source).expire_silence(id, caller.name(), crate::clock::now()).await?;
    Ok(Json(Expired { status: "expired".to_owned(), id }))
}
