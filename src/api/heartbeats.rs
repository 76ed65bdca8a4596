//! Heartbeats: `GET /api/v1/heartbeats` (each one's state), `GET
//! /api/v1/heartbeats/{name}`, and the ping, `POST
//! /api/v1/heartbeats/{name}`, answered once it is durably committed.
use std::collections::BTreeMap;

use axum::extract::State;
use axum::{Extension, Json};
use jiff::Timestamp;
use serde_json::json;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::{AppState, PathText};
use crate::engine::heartbeat as decide;
use crate::model::heartbeat::HeartbeatState;
use crate::model::{Fingerprint, LabelSet};
use crate::rules::heartbeat::Heartbeat;
use crate::store::HeartbeatStored;

/// A heartbeat of the rules and where it stands.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatView {
    /// Its name in the rules (and in its ping's URL).
    name: String,
    /// `never` (no ping yet: nothing is expected before the first), `up`,
    /// `late` (past the interval) or `down` (past interval and grace: its
    /// alert fires).
    state: HeartbeatState,
    /// The last ping; `null` before the first.
    last_ping: Option<Timestamp>,
    /// When it is late without another ping: `interval` after the last.
    late_at: Option<Timestamp>,
    /// When it is down without another ping, and its alert fires:
    /// `interval + grace` after the last.
    deadline: Option<Timestamp>,
    /// Expected at least this often.
    #[schema(example = "1m")]
    interval: String,
    /// How much later a ping may come before it is down.
    #[schema(example = "2m")]
    grace: String,
    /// A firing alert matching all of these pings it; none: pinged by HTTP only.
    matchers: Vec<String>,
    /// The labels of the alert a miss raises.
    labels: LabelSet,
    /// The fingerprint of that alert (`GET /api/v1/alerts/{fingerprint}`).
    alert_fingerprint: Fingerprint,
}

impl HeartbeatView {
    fn new(hb: &Heartbeat, stored: Option<&HeartbeatStored>, now: Timestamp) -> HeartbeatView {
        let last_ping = stored.map(|s| s.last_ping);
        let timing = hb.timing();
        HeartbeatView {
            name: hb.name.clone(),
            state: hb.state(last_ping, now),
            last_ping,
            late_at: last_ping.map(|t| timing.late_at(t)),
            deadline: last_ping.map(|t| timing.deadline(t)),
            interval: hb.interval.to_string(),
            grace: hb.grace.to_string(),
            matchers: hb.matchers.iter().map(ToString::to_string).collect(),
            labels: decide::labels(hb),
            alert_fingerprint: decide::fingerprint(&hb.name),
        }
    }
}

impl HeartbeatView {
    /// What the heartbeat gauges of `/metrics` show of it.
    pub(super) fn gauges(&self) -> (&str, HeartbeatState, Option<Timestamp>) {
        (&self.name, self.state, self.last_ping)
    }
}

/// Every heartbeat of the rules at `now`, by name.
pub(super) async fn views(state: &AppState, now: Timestamp) -> Result<Vec<HeartbeatView>, ApiError> {
    let rules = state.rules();
    let stored: BTreeMap<String, HeartbeatStored> = state.store.heartbeats().await?;
    Ok(rules.heartbeats.values().map(|hb| HeartbeatView::new(hb, stored.get(&hb.name), now)).collect())
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct HeartbeatList {
    heartbeats: Vec<HeartbeatView>,
}

/// The heartbeats of the rules, by name, with their state now.
#[utoipa::path(get, path = "/api/v1/heartbeats", tag = "heartbeats",
    responses((status = 200, description = "Every heartbeat of the rules, by name", body = HeartbeatList)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<HeartbeatList>, ApiError> {
    Ok(Json(HeartbeatList { heartbeats: views(&state, crate::clock::now()).await? }))
}

fn unknown(state: &AppState, name: &str) -> ApiError {
    let known: Vec<String> = state.rules().heartbeats.keys().cloned().collect();
    ApiError::not_found(format!("no heartbeat named {name:?} in the rules")).with_detail(json!({ "known": known }))
}

async fn view(state: &AppState, name: &str) -> Result<Json<HeartbeatView>, ApiError> {
    let now = crate::clock::now();
    let found = views(state, now).await?.into_iter().find(|v| v.name == name);
    found.map(Json).ok_or_else(|| unknown(state, name))
}

/// One heartbeat with its state now.
#[utoipa::path(get, path = "/api/v1/heartbeats/{name}", tag = "heartbeats",
    params(("name" = String, Path, description = "A heartbeat of the rules")),
    responses(
        (status = 200, description = "The heartbeat", body = HeartbeatView),
        (status = 404, description = "No heartbeat of this name; `detail.known` lists those there are", body = ErrorBody),
    ))]
pub async fn get(State(state): State<AppState>, PathText(name): PathText) -> Result<Json<HeartbeatView>, ApiError> {
    view(&state, &name).await
}

/// Ping a heartbeat: it is up until `interval` from now, and an alert its
/// miss raised resolves. Any body is ignored, so a cron job can call
/// `curl -fsS -X POST -H "Authorization: Bearer $TOKEN" URL`.
#[utoipa::path(post, path = "/api/v1/heartbeats/{name}", tag = "heartbeats",
    params(("name" = String, Path, description = "A heartbeat of the rules")),
    responses(
        (status = 200, description = "The ping is durably committed; the heartbeat as it stands now", body = HeartbeatView),
        (status = 404, description = "No heartbeat of this name; `detail.known` lists those there are", body = ErrorBody),
    ))]
pub async fn ping(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathText(name): PathText,
) -> Result<Json<HeartbeatView>, ApiError> {
    if !state.rules().heartbeats.contains_key(&name) {
        return Err(unknown(&state, &name));
    }
    state.store.from(caller.source).ping_heartbeat(name.clone(), crate::clock::now()).await.map_err(|e| match e {
        crate::store::StoreError::NotFound(_) => unknown(&state, &name),
        other => other.into(),
    })?;
    view(&state, &name).await
}
