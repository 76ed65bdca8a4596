//! The ingest endpoints: one per sender format. Each parses the whole body
//! first (any invalid alert refuses the request, naming every problem), then
//! answers only after the store has committed the alerts.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::AppState;
use super::auth::Caller;
use super::body::{JsonText, PagerDutyBody};
use super::error::ApiError;
use crate::ingest::{self, IngestError};
use crate::model::AlertUpdate;
use crate::store::IngestOutcome;

/// What a request brought, by status, for `alertgate_alerts_received_total`.
struct Received {
    source: &'static str,
    /// firing, resolved, acknowledge
    counts: [u64; 3],
}

fn received_labels(updates: &[AlertUpdate], source: &'static str) -> Received {
    let mut counts = [0; 3];
    for u in updates {
        counts[match u {
            AlertUpdate::Observe(a) if a.status == crate::model::AlertStatus::Firing => 0,
            AlertUpdate::Observe(_) | AlertUpdate::Resolve { .. } => 1,
            AlertUpdate::Acknowledge { .. } => 2,
        }] += 1;
    }
    Received { source, counts }
}

/// Count what a committed request brought: one update per status, not per alert.
fn count(r: &Received, outcome: &IngestOutcome) {
    let m = crate::metrics::metrics();
    for (status, n) in ["firing", "resolved", "acknowledge"].iter().zip(r.counts) {
        if n > 0 {
            m.alerts_received.with_label_values(&[r.source, status]).inc_by(n);
        }
    }
    m.alerts_deduplicated.with_label_values(&[r.source]).inc_by(outcome.repeated + outcome.stale);
}

/// Bodies past which parsing runs on a blocking thread: a large batch must
/// not hold an async worker that other senders' requests need.
const LARGE_BODY: usize = 64 * 1024;

/// Parse `body` with `parse`, off the async workers when it is large.
async fn parse_off_workers<T: Send + 'static>(
    body: String,
    parse: impl FnOnce(&str) -> Result<T, IngestError> + Send + 'static,
) -> Result<T, ApiError> {
    if body.len() <= LARGE_BODY {
        return Ok(parse(&body)?);
    }
    tokio::task::spawn_blocking(move || parse(&body))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("parsing failed: {e}")))?
        .map_err(ApiError::from)
}

/// A request over `limits.max_alerts_per_request` is refused whole, and
/// every request is charged to its caller's alert rate.
fn admit(state: &AppState, caller: &Caller, alerts: usize) -> Result<(), ApiError> {
    let max = state.config.limits.max_alerts_per_request;
    if alerts > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "this request carries {alerts} alerts; at most {max} are taken per request \
                 (limits.max_alerts_per_request): send them in several requests"
            ),
        )
        .with_detail(json!({ "alerts": alerts, "max_alerts_per_request": max })));
    }
    super::auth::charge_alerts(state, caller, alerts)
}

/// The sender's token: its static labels go onto every alert, its name
/// is who acknowledges.
fn sender_of(caller: &Caller) -> Option<&crate::auth::Principal> {
    caller.principal.as_ref().filter(|p| !p.is_anonymous())
}

async fn commit(
    state: &AppState,
    caller: &Caller,
    mut updates: Vec<AlertUpdate>,
    source: &'static str,
    now: jiff::Timestamp,
) -> Result<Response, ApiError> {
    admit(state, caller, updates.len())?;
    let sender = sender_of(caller);
    if let Some(p) = sender {
        ingest::add_sender_labels(&mut updates, &p.labels);
    }
    let received = updates.len();
    let labels = received_labels(&updates, source);
    let outcome: IngestOutcome = state.store.ingest_from(updates, now, sender.map(|p| p.name.clone())).await?;
    count(&labels, &outcome);
    Ok(Json(json!({ "status": "success", "received": received, "outcome": outcome })).into_response())
}

pub async fn alertmanager(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonText(body): JsonText,
) -> Result<Response, ApiError> {
    let ctx = state.ingest_context();
    let updates = parse_off_workers(body, move |b| ingest::alertmanager::parse(b, &ctx)).await?;
    commit(&state, &caller, updates, "alertmanager", ctx.now).await
}

pub async fn prometheus(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonText(body): JsonText,
) -> Result<Response, ApiError> {
    let ctx = state.ingest_context();
    let updates = parse_off_workers(body, move |b| ingest::prometheus::parse(b, &ctx)).await?;
    commit(&state, &caller, updates, "prometheus", ctx.now).await
}

pub async fn grafana(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonText(body): JsonText,
) -> Result<Response, ApiError> {
    let ctx = state.ingest_context();
    let updates = parse_off_workers(body, move |b| ingest::grafana::parse(b, &ctx)).await?;
    commit(&state, &caller, updates, "grafana", ctx.now).await
}

pub async fn generic(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    JsonText(body): JsonText,
) -> Result<Response, ApiError> {
    let Some(mapping) = state.config.generic.get(&name) else {
        let known: Vec<_> = state.config.generic.keys().collect();
        return Err(ApiError::not_found(format!("no generic mapping named {name:?} in the config"))
            .with_detail(json!({ "known": known })));
    };
    let ctx = state.ingest_context();
    let updates = mapping.parse(&body, &ctx)?;
    commit(&state, &caller, updates, "generic", ctx.now).await
}

/// PagerDuty answers `202 {"status":"success","message":"Event processed","dedup_key":...}`
/// and `400 {"status":"invalid event","message":"Event object is invalid","errors":[...]}`;
/// so do we, plus our own `error`/`detail` fields on errors.
pub async fn pagerduty(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PagerDutyBody { text: body, principal }: PagerDutyBody,
) -> Result<Response, ApiError> {
    let caller = Caller { principal: Some(principal), ..caller };
    admit(&state, &caller, 1)?;
    let ctx = state.ingest_context();
    let mut event = match ingest::pagerduty::parse(&body, &ctx) {
        Ok(e) => e,
        Err(e) => return Ok(pagerduty_invalid(e)),
    };
    let sender = sender_of(&caller);
    if let Some(p) = sender {
        ingest::add_sender_labels(std::slice::from_mut(&mut event.update), &p.labels);
        // Without a dedup_key the key is the label hash, which the labels changed.
        event.dedup_key = event.update.fingerprint().clone();
    }
    let labels = received_labels(std::slice::from_ref(&event.update), "pagerduty");
    let outcome = state.store.ingest_from(vec![event.update], ctx.now, sender.map(|p| p.name.clone())).await?;
    count(&labels, &outcome);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "status": "success", "message": "Event processed", "dedup_key": event.dedup_key })),
    )
        .into_response())
}

pub(super) fn pagerduty_invalid(e: IngestError) -> Response {
    let messages: Vec<String> = e.errors.iter().map(|f| format!("{}: {}", f.path, f.message)).collect();
    (
        StatusCode::BAD_REQUEST,
        Json(json!({
            "status": "invalid event",
            "message": "Event object is invalid",
            "errors": messages,
            "error": format!("invalid payload: {e}"),
            "detail": { "errors": e.errors },
        })),
    )
        .into_response()
}
