//! Alertmanager's API v2, read and silences, beside the push endpoint
//! `POST /api/v2/alerts`: what amtool, karma and Grafana's Alertmanager
//! data source call. Answers have the shapes of Alertmanager 0.25's
//! OpenAPI spec; errors are JSON strings, as Alertmanager sends them.
//! How alertgate's rules map to receivers and groups is in [`view`].
mod view;

use std::sync::OnceLock;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use axum::{Extension, Json, Router};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::body::JsonText;
use super::error::{AlertmanagerError, ApiError};
use crate::rules::matcher::{Matcher, parse_matchers};
use crate::store::SilenceSpec;
use view::{AlertFilter, SilenceRef};

type AmResult<T> = Result<T, AlertmanagerError>;

/// When this gateway started serving, for `uptime`.
static STARTED: OnceLock<Timestamp> = OnceLock::new();

/// The read routes and the silence routes (the push route stays with
/// ingest). Merged into the main router, under its auth guard.
pub fn routes() -> Router<AppState> {
    STARTED.get_or_init(crate::clock::now);
    Router::new()
        .route("/api/v2/status", get(status))
        .route("/api/v2/receivers", get(receivers))
        .route("/api/v2/alerts", get(alerts))
        .route("/api/v2/alerts/groups", get(groups))
        .route("/api/v2/silences", get(silences).post(post_silence))
        .route("/api/v2/silence/{id}", get(get_silence).delete(delete_silence))
}

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

/// `GET /api/v2/status`: a cluster of one ready peer (this gateway),
/// `versionInfo` naming the Alertmanager API release it answers as
/// `version` (clients such as karma choose their API by it) and alertgate's
/// own version as `revision`, the rules as an Alertmanager config.
async fn status(State(state): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let address = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map_or_else(|| state.config.listen.to_string(), str::to_owned);
    let name = format!("alertgate@{}", host_name());
    let started = *STARTED.get_or_init(crate::clock::now);
    Json(json!({
        "cluster": { "name": name, "status": "ready", "peers": [{ "name": name, "address": address }] },
        "config": { "original": view::config_yaml(&state.rules(), &state.config.resolve_timeout.to_string()) },
        "uptime": view::time(started),
        "versionInfo": {
            "branch": "alertgate",
            "buildDate": "",
            "buildUser": "alertgate",
            "goVersion": "none (alertgate is written in Rust)",
            "revision": format!("alertgate {}", env!("CARGO_PKG_VERSION")),
            "version": "0.25.0",
        },
    }))
}

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

async fn alerts(State(state): State<AppState>, RawQuery(query): RawQuery) -> AmResult<Json<Vec<view::GettableAlert>>> {
    let filter = alert_filter(query.as_deref())?;
    let now = crate::clock::now();
    let (firing, silences) = tokio::try_join!(state.store.firing_alerts(), state.store.list_silences(false))?;
    Ok(Json(view::alerts(&state.rules(), &firing, &silences, &filter, now)))
}

async fn groups(State(state): State<AppState>, RawQuery(query): RawQuery) -> AmResult<Json<Vec<view::AlertGroup>>> {
    let filter = alert_filter(query.as_deref())?;
    let now = crate::clock::now();
    let (firing, silences) = tokio::try_join!(state.store.firing_alerts(), state.store.list_silences(false))?;
    Ok(Json(view::groups(&state.rules(), &firing, &silences, &filter, now)))
}

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
    Ok(Json(view::silences(&all, &filter, now)))
}

/// The silence a path names; 404 for ids no silence can have.
fn path_silence(raw: &str) -> AmResult<i64> {
    match view::parse_silence_id(raw) {
        SilenceRef::Id(id) => Ok(id),
        SilenceRef::Unknown => Err(not_found()),
        SilenceRef::Malformed => Err(bad(format!("silenceID: expected a silence id (a UUID), got {raw:?}"))),
    }
}

async fn get_silence(State(state): State<AppState>, Path(raw): Path<String>) -> AmResult<Json<view::GettableSilence>> {
    let id = path_silence(&raw)?;
    match state.store.get_silence(id).await? {
        Some(s) => Ok(Json(view::silence(&s, crate::clock::now()))),
        None => Err(not_found()),
    }
}

/// Expire a silence; one that has ended already stays as it is (200).
async fn delete_silence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
) -> AmResult<StatusCode> {
    let id = path_silence(&raw)?;
    match state.store.from(caller.source).expire_silence(id, caller.name()).await {
        Ok(()) => Ok(StatusCode::OK),
        Err(crate::store::StoreError::NotFound(_)) => Err(not_found()),
        Err(e) => Err(e.into()),
    }
}

/// `postableSilence`. Fields Alertmanager does not know are ignored, so
/// what `amtool silence query -o json` prints can be posted back.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableSilence {
    id: Option<String>,
    matchers: Option<Vec<view::AmMatcher>>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    created_by: Option<String>,
    #[serde(default)]
    comment: String,
}

/// `POST /api/v2/silences`: create a silence, or with the `id` of one,
/// change it as Alertmanager does (in place, or replaced by a new one).
async fn post_silence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonText(body): JsonText,
) -> AmResult<Json<Value>> {
    let b: PostableSilence = crate::ingest::from_json(&body, "").map_err(|e| bad(format!("invalid silence: {e}")))?;
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
            store.create_silence(s.matchers, s.starts_at, s.ends_at, s.created_by, s.comment).await?
        }
        Some(raw) => match view::parse_silence_id(raw) {
            SilenceRef::Id(id) => match store.update_silence(id, spec).await {
                Err(crate::store::StoreError::NotFound(_)) => return Err(not_found()),
                other => other?,
            },
            SilenceRef::Unknown | SilenceRef::Malformed => return Err(not_found()),
        },
    };
    Ok(Json(json!({ "silenceID": view::silence_id(silence.id) })))
}
