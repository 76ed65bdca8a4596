//! Alertmanager's API v2, read and silences, beside the push endpoint
//! `POST /api/v2/alerts`: what amtool, karma and Grafana's Alertmanager
//! data source call. Answers have the shapes of Alertmanager 0.25's
//! OpenAPI spec; errors are JSON strings, as Alertmanager sends them.
//! How alertgate's rules map to receivers and groups is in [`view`].
mod view;

use std::sync::OnceLock;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::{Extension, Json};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::body::JsonText;
use super::error::{AlertmanagerError, ApiError};
use super::{AppState, PathText};
use crate::rules::matcher::{Matcher, parse_matchers};
use crate::store::SilenceSpec;
use view::{AlertFilter, SilenceRef};

type AmResult<T> = Result<T, AlertmanagerError>;

/// When this gateway started serving, for `uptime`.
static STARTED: OnceLock<Timestamp> = OnceLock::new();

/// The read routes and the silence routes (the push route stays with
/// ingest). Merged into the main router, under its auth guard.
pub fn routes() -> OpenApiRouter<AppState> {
    STARTED.get_or_init(crate::clock::now);
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(receivers))
        .routes(routes!(alerts))
        .routes(routes!(groups))
        .routes(routes!(silences, post_silence))
        .routes(routes!(get_silence, delete_silence))
}

/// An error of this API: the message as a JSON string.
#[derive(utoipa::ToSchema)]
#[schema(as = am::Error, value_type = String)]
#[allow(dead_code)] // the schema of `AlertmanagerError`'s body
pub struct ErrorMessage(String);

fn bad(message: impl Into<String>) -> AlertmanagerError {
    AlertmanagerError(ApiError::bad_request(message))
}

fn not_found() -> AlertmanagerError {
    AlertmanagerError(ApiError::not_found("silence not found"))
}

/// This host's name, for the one peer of the "cluster".
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// `alertmanagerStatus`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = am::Status)]
pub struct Status {
    cluster: ClusterStatus,
    config: AlertmanagerConfig,
    #[schema(format = DateTime)]
    uptime: String,
    version_info: VersionInfo,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = am::ClusterStatus)]
pub struct ClusterStatus {
    name: String,
    /// Always `ready`: one peer, this gateway.
    status: String,
    peers: Vec<PeerStatus>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = am::PeerStatus)]
pub struct PeerStatus {
    name: String,
    address: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = am::Config)]
pub struct AlertmanagerConfig {
    /// alertgate's incident rules as an Alertmanager configuration (YAML).
    original: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = am::VersionInfo)]
pub struct VersionInfo {
    branch: String,
    build_date: String,
    build_user: String,
    go_version: String,
    /// alertgate's own version.
    revision: String,
    /// The Alertmanager API release answered.
    version: String,
}

/// `GET /api/v2/status`: a cluster of one ready peer (this gateway),
/// `versionInfo` naming the Alertmanager API release it answers as
/// `version` (clients such as karma choose their API by it) and alertgate's
/// own version as `revision`, the rules as an Alertmanager config.
#[utoipa::path(get, path = "/api/v2/status", tag = "alertmanager",
    responses((status = 200, description = "This gateway as an Alertmanager cluster of one", body = Status)))]
async fn status(State(state): State<AppState>, headers: HeaderMap) -> Json<Status> {
    let address = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map_or_else(|| state.config.listen.to_string(), str::to_owned);
    let name = format!("alertgate@{}", host_name());
    let started = *STARTED.get_or_init(crate::clock::now);
    Json(Status {
        cluster: ClusterStatus {
            name: name.clone(),
            status: "ready".to_owned(),
            peers: vec![PeerStatus { name, address }],
        },
        config: AlertmanagerConfig {
            original: view::config_yaml(&state.rules(), &state.config.resolve_timeout.to_string()),
        },
        uptime: view::time(started),
        version_info: VersionInfo {
            branch: "alertgate".to_owned(),
            build_date: String::new(),
            build_user: "alertgate".to_owned(),
            go_version: "none (alertgate is written in Rust)".to_owned(),
            revision: format!("alertgate {}", env!("CARGO_PKG_VERSION")),
            version: "0.25.0".to_owned(),
        },
    })
}

/// A receiver per incident rule, and `unrouted` for alerts no rule takes.
#[utoipa::path(get, path = "/api/v2/receivers", tag = "alertmanager",
    responses((status = 200, description = "The receivers", body = Vec<view::Receiver>)))]
async fn receivers(State(state): State<AppState>) -> Json<Vec<view::Receiver>> {
    Json(view::receivers(&state.rules()))
}

/// A boolean query parameter: `true`/`false` (also `1`/`0`).
fn flag(key: &str, value: &str) -> AmResult<bool> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(bad(format!("{key}: expected true or false, got {value:?}"))),
    }
}

/// One `filter` parameter: a matcher (`a="b"`, `a=~b`) or a `{...}` list.
fn filter_matchers(value: &str) -> AmResult<Vec<Matcher>> {
    parse_matchers(value).map_err(|e| bad(format!("bad matcher in filter: {e}")))
}

/// The query parameters of the alert endpoints (for the document; they
/// are read by [`alert_filter`]).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct AlertParams {
    /// Show active alerts (default true).
    active: Option<bool>,
    /// Show silenced alerts (default true).
    silenced: Option<bool>,
    /// Show inhibited alerts (default true).
    inhibited: Option<bool>,
    /// Show unprocessed alerts (alertgate has none).
    unprocessed: Option<bool>,
    /// Repeatable matcher the alerts must match.
    #[param(explode)]
    filter: Option<Vec<String>>,
    /// A regular expression the receiver's name must match.
    receiver: Option<String>,
}

/// The filters of the alert endpoints; parameters Alertmanager does not
/// know are ignored, as Alertmanager ignores them.
fn alert_filter(query: Option<&str>) -> AmResult<AlertFilter> {
    let mut f = AlertFilter { active: true, silenced: true, inhibited: true, ..Default::default() };
    for (key, value) in super::query_pairs(query)? {
        match key.as_str() {
            "active" => f.active = flag(&key, &value)?,
            "silenced" => f.silenced = flag(&key, &value)?,
            "inhibited" => f.inhibited = flag(&key, &value)?,
            // alertgate processes each alert when it arrives: none is unprocessed.
            "unprocessed" => {
                flag(&key, &value)?;
            }
            "filter" => f.matchers.extend(filter_matchers(&value)?),
            "receiver" if !value.is_empty() => {
                let re = regex::Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| bad(format!("failed to parse receiver param: {e}")))?;
                f.receiver = Some(re);
            }
            _ => {}
        }
    }
    Ok(f)
}

/// Firing alerts with their status now, sorted by fingerprint.
#[utoipa::path(get, path = "/api/v2/alerts", tag = "alertmanager",
    params(AlertParams),
    responses(
        (status = 200, description = "The alerts", body = Vec<view::GettableAlert>),
        (status = 400, description = "A bad parameter", body = ErrorMessage),
        (status = 503, description = "Storage is busy or shutting down; retry", body = ErrorMessage),
    ))]
async fn alerts(State(state): State<AppState>, RawQuery(query): RawQuery) -> AmResult<Json<Vec<view::GettableAlert>>> {
    let filter = alert_filter(query.as_deref())?;
    let now = crate::clock::now();
    let (firing, silences) =
        tokio::try_join!(state.store.firing_alerts(), state.store.list_silences(false, crate::clock::now()))?;
    Ok(Json(view::alerts(state.store.silence_ids(), &state.rules(), &firing, &silences, &filter, now)))
}

/// Firing alerts grouped by receiver and group labels.
#[utoipa::path(get, path = "/api/v2/alerts/groups", tag = "alertmanager",
    params(AlertParams),
    responses(
        (status = 200, description = "The alert groups", body = Vec<view::AlertGroup>),
        (status = 400, description = "A bad parameter", body = ErrorMessage),
        (status = 503, description = "Storage is busy or shutting down; retry", body = ErrorMessage),
    ))]
async fn groups(State(state): State<AppState>, RawQuery(query): RawQuery) -> AmResult<Json<Vec<view::AlertGroup>>> {
    let filter = alert_filter(query.as_deref())?;
    let now = crate::clock::now();
    let (firing, silences) =
        tokio::try_join!(state.store.firing_alerts(), state.store.list_silences(false, crate::clock::now()))?;
    Ok(Json(view::groups(state.store.silence_ids(), &state.rules(), &firing, &silences, &filter, now)))
}

/// Silences, active first, then pending, then those that ended in the last 120 hours.
#[utoipa::path(get, path = "/api/v2/silences", tag = "alertmanager",
    params(("filter" = Option<Vec<String>>, Query, explode,
        description = "Repeatable matcher; keeps silences with an equal matcher")),
    responses(
        (status = 200, description = "The silences", body = Vec<view::GettableSilence>),
        (status = 400, description = "A bad matcher", body = ErrorMessage),
        (status = 503, description = "Storage is busy or shutting down; retry", body = ErrorMessage),
    ))]
async fn silences(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> AmResult<Json<Vec<view::GettableSilence>>> {
    let mut filter = Vec::new();
    for (key, value) in super::query_pairs(query.as_deref())? {
        if key == "filter" {
            filter.extend(filter_matchers(&value)?);
        }
    }
    let now = crate::clock::now();
    let since = now.checked_sub(view::EXPIRED_SILENCE_RETENTION).unwrap_or(now);
    let all = state.store.silences_ended_after(since).await?;
    Ok(Json(view::silences(state.store.silence_ids(), &all, &filter, now)))
}

/// The silence a path names; 404 for ids no silence can have.
fn path_silence(ids: view::SilenceIds, raw: Result<PathText, ApiError>) -> AmResult<i64> {
    let PathText(raw) = raw.map_err(AlertmanagerError)?;
    match ids.parse(&raw) {
        SilenceRef::Id(id) => Ok(id),
        SilenceRef::Unknown | SilenceRef::Numbered { .. } => Err(not_found()),
        SilenceRef::Malformed => Err(bad(format!("silenceID: expected a silence id (a UUID), got {raw:?}"))),
    }
}

#[utoipa::path(get, path = "/api/v2/silence/{id}", tag = "alertmanager",
    params(("id" = String, Path, description = "The silence's id (Alertmanager's `silenceID`)")),
    responses(
        (status = 200, description = "The silence", body = view::GettableSilence),
        (status = 400, description = "Not a silence id", body = ErrorMessage),
        (status = 404, description = "No such silence", body = ErrorMessage),
        (status = 503, description = "Storage is busy or shutting down; retry", body = ErrorMessage),
    ))]
async fn get_silence(
    State(state): State<AppState>,
    raw: Result<PathText, ApiError>,
) -> AmResult<Json<view::GettableSilence>> {
    let id = path_silence(state.store.silence_ids(), raw)?;
    match state.store.get_silence(id).await? {
        Some(s) => Ok(Json(view::silence(state.store.silence_ids(), &s, crate::clock::now()))),
        None => Err(not_found()),
    }
}

/// Expire a silence; one that has ended already stays as it is (200).
#[utoipa::path(delete, path = "/api/v2/silence/{id}", tag = "alertmanager",
    params(("id" = String, Path, description = "The silence's id (Alertmanager's `silenceID`)")),
    responses(
        (status = 200, description = "Expired"),
        (status = 400, description = "Not a silence id", body = ErrorMessage),
        (status = 404, description = "No such silence", body = ErrorMessage),
        (status = 503, description = "Storage is busy or shutting down; retry", body = ErrorMessage),
    ))]
async fn delete_silence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    raw: Result<PathText, ApiError>,
) -> AmResult<StatusCode> {
    let id = path_silence(state.store.silence_ids(), raw)?;
    match state.store.from(caller.source).expire_silence(id, caller.name(), crate::clock::now()).await {
        Ok(()) => Ok(StatusCode::OK),
        Err(crate::store::StoreError::NotFound(_)) => Err(not_found()),
        Err(e) => Err(e.into()),
    }
}

/// `postableSilence`. Fields Alertmanager does not know are ignored, so
/// what `amtool silence query -o json` prints can be posted back.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = am::PostableSilence)]
struct PostableSilence {
    /// The silence to change; absent to create one.
    id: Option<String>,
    /// Required; at least one must not match the empty string.
    matchers: Option<Vec<view::AmMatcher>>,
    #[schema(format = DateTime)]
    starts_at: Option<String>,
    /// Required.
    #[schema(format = DateTime)]
    ends_at: Option<String>,
    /// Required without tokens; the token's name otherwise.
    #[schema(max_length = 200)]
    created_by: Option<String>,
    #[serde(default)]
    comment: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = am::SilenceCreated)]
pub struct SilenceCreated {
    #[serde(rename = "silenceID")]
    silence_id: String,
}

/// `POST /api/v2/silences`: create a silence, or with the `id` of one,
/// change it as Alertmanager does (in place, or replaced by a new one).
#[utoipa::path(post, path = "/api/v2/silences", tag = "alertmanager",
    request_body = PostableSilence,
    responses(
        (status = 200, description = "Created or changed", body = SilenceCreated),
        (status = 400, description = "An invalid silence", body = ErrorMessage),
        (status = 404, description = "No silence has the given id", body = ErrorMessage),
        (status = 413, description = "Larger than `--max-body`", body = ErrorMessage),
        (status = 415, description = "Not `Content-Type: application/json`", body = ErrorMessage),
        (status = 503, description = "Storage is busy, or too many bodies are held; retry", body = ErrorMessage),
    ))]
async fn post_silence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<JsonText, ApiError>,
) -> AmResult<Json<SilenceCreated>> {
    let JsonText(body) = body.map_err(AlertmanagerError)?;
    let b: PostableSilence =
        crate::ingest::from_json_object(&body, "").map_err(|e| bad(format!("invalid silence: {e}")))?;
    let now = crate::clock::now();
    let time = |v: Option<&str>, name: &str| -> AmResult<Option<Timestamp>> {
        match v.map(crate::ingest::parse_time).transpose() {
            Ok(t) => Ok(t.flatten()),
            Err(e) => Err(bad(format!("{name}: {e}"))),
        }
    };
    let starts_at = time(b.starts_at.as_deref(), "startsAt")?.unwrap_or(now);
    let ends_at = time(b.ends_at.as_deref(), "endsAt")?.ok_or_else(|| bad("endsAt in body is required"))?;
    let matchers = b
        .matchers
        .ok_or_else(|| bad("matchers in body is required"))?
        .iter()
        .map(view::AmMatcher::to_matcher)
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    let problems = crate::engine::silence::problems(&matchers, starts_at, ends_at, now);
    if !problems.is_empty() {
        let text: Vec<String> = problems.iter().map(|(path, message)| format!("{path}: {message}")).collect();
        return Err(bad(format!("invalid silence: {}", text.join("; "))));
    }
    let created_by = caller.actor(b.created_by).map_err(|_| bad("createdBy in body is required"))?;
    let spec = SilenceSpec { matchers, starts_at, ends_at, created_by, comment: b.comment };
    let store = state.store.from(caller.source);
    let silence = match b.id.as_deref().filter(|id| !id.is_empty()) {
        None => {
            let s = SilenceSpec { starts_at: spec.starts_at.max(now), ..spec };
            store
                .create_silence(s.matchers, s.starts_at, s.ends_at, s.created_by, s.comment, crate::clock::now())
                .await?
        }
        Some(raw) => match state.store.silence_ids().parse(raw) {
            SilenceRef::Id(id) => match store.update_silence(id, spec, crate::clock::now()).await {
                Err(crate::store::StoreError::NotFound(_)) => return Err(not_found()),
                other => other?,
            },
            SilenceRef::Unknown | SilenceRef::Numbered { .. } | SilenceRef::Malformed => return Err(not_found()),
        },
    };
    Ok(Json(SilenceCreated { silence_id: state.store.silence_ids().format(silence.id) }))
}
