//! The ingest endpoints: one per sender format. Each parses the whole body
//! first (any invalid alert refuses the request, naming every problem), then
//! answers only after the store has committed the alerts.
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::auth::Caller;
use super::body::{JsonText, PagerDutyBody};
use super::error::{ApiError, ErrorBody};
use super::{AppState, PathText};
use crate::ingest::{self, FieldError, IngestError};
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

/// What an ingest request committed.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Ingested {
    /// Always `success`.
    status: String,
    /// Updates taken: alerts, acknowledgements and resolves.
    received: usize,
    outcome: IngestOutcome,
}

async fn commit(
    state: &AppState,
    caller: &Caller,
    mut updates: Vec<AlertUpdate>,
    source: &'static str,
    now: jiff::Timestamp,
) -> Result<Json<Ingested>, ApiError> {
    admit(state, caller, updates.len())?;
    let sender = sender_of(caller);
    if let Some(p) = sender {
        ingest::add_sender_labels(&mut updates, &p.labels);
    }
    let received = updates.len();
    let labels = received_labels(&updates, source);
    let outcome: IngestOutcome = state.store.ingest_from(updates, now, sender.map(|p| p.name.clone())).await?;
    count(&labels, &outcome);
    Ok(Json(Ingested { status: "success".to_owned(), received, outcome }))
}

/// Alertmanager's webhook (version 4): whole groups, each alert with its
/// own fingerprint, status and times.
#[utoipa::path(post, path = "/api/v1/ingest/alertmanager", tag = "ingest",
    request_body = ingest::alertmanager::Webhook,
    responses(
        (status = 200, description = "Every alert is durably committed", body = Ingested),
        (status = 400, description = "Invalid payload: `detail.errors` names every problem; nothing is stored", body = ErrorBody),
        (status = 413, description = "Larger than `--max-body`, or more alerts than `limits.max_alerts_per_request` or the alert burst allows", body = ErrorBody),
        (status = 429, description = "Over `limits.ingest.alerts_per_second`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub async fn alertmanager(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonText(body): JsonText,
) -> Result<Json<Ingested>, ApiError> {
    let ctx = state.ingest_context();
    let updates = parse_off_workers(body, move |b| ingest::alertmanager::parse(b, &ctx)).await?;
    commit(&state, &caller, updates, "alertmanager", ctx.now).await
}

/// Alertmanager's API v2 push, as Prometheus sends alerts: firing until
/// `endsAt` unless re-sent; without `endsAt`, until the resolve timeout.
#[utoipa::path(post, path = "/api/v2/alerts", tag = "ingest",
    request_body = Vec<ingest::prometheus::PostableAlert>,
    responses(
        (status = 200, description = "Every alert is durably committed", body = Ingested),
        (status = 400, description = "Invalid payload: `detail.errors` names every problem; nothing is stored", body = ErrorBody),
        (status = 413, description = "Larger than `--max-body`, or more alerts than `limits.max_alerts_per_request` or the alert burst allows", body = ErrorBody),
        (status = 429, description = "Over `limits.ingest.alerts_per_second`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub async fn prometheus(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonText(body): JsonText,
) -> Result<Json<Ingested>, ApiError> {
    let ctx = state.ingest_context();
    let updates = parse_off_workers(body, move |b| ingest::prometheus::parse(b, &ctx)).await?;
    commit(&state, &caller, updates, "prometheus", ctx.now).await
}

/// Grafana alerting's webhook contact point.
#[utoipa::path(post, path = "/api/v1/ingest/grafana", tag = "ingest",
    request_body = ingest::grafana::Webhook,
    responses(
        (status = 200, description = "Every alert is durably committed", body = Ingested),
        (status = 400, description = "Invalid payload: `detail.errors` names every problem; nothing is stored", body = ErrorBody),
        (status = 413, description = "Larger than `--max-body`, or more alerts than `limits.max_alerts_per_request` or the alert burst allows", body = ErrorBody),
        (status = 429, description = "Over `limits.ingest.alerts_per_second`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub async fn grafana(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonText(body): JsonText,
) -> Result<Json<Ingested>, ApiError> {
    let ctx = state.ingest_context();
    let updates = parse_off_workers(body, move |b| ingest::grafana::parse(b, &ctx)).await?;
    commit(&state, &caller, updates, "grafana", ctx.now).await
}

/// Any JSON, through the mapping `generic.NAME` of the config.
#[utoipa::path(post, path = "/api/v1/ingest/generic/{name}", tag = "ingest",
    params(("name" = String, Path, description = "A mapping named under `generic` in the config")),
    request_body(content = serde_json::Value, content_type = "application/json",
        description = "Whatever the sender sends; the mapping says where the alerts, labels and status are"),
    responses(
        (status = 200, description = "Every alert is durably committed", body = Ingested),
        (status = 400, description = "Invalid payload: `detail.errors` names every problem; nothing is stored", body = ErrorBody),
        (status = 404, description = "No mapping of this name; `detail.known` lists those there are", body = ErrorBody),
        (status = 413, description = "Larger than `--max-body`, or more alerts than `limits.max_alerts_per_request` or the alert burst allows", body = ErrorBody),
        (status = 429, description = "Over `limits.ingest.alerts_per_second`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub async fn generic(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathText(name): PathText,
    JsonText(body): JsonText,
) -> Result<Json<Ingested>, ApiError> {
    let Some(mapping) = state.config.generic.get(&name) else {
        let known: Vec<_> = state.config.generic.keys().collect();
        return Err(ApiError::not_found(format!("no generic mapping named {name:?} in the config"))
            .with_detail(json!({ "known": known })));
    };
    let ctx = state.ingest_context();
    let updates = mapping.parse(&body, &ctx)?;
    commit(&state, &caller, updates, "generic", ctx.now).await
}

/// PagerDuty's answer to an event it took.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Enqueued {
    /// Always `success`.
    status: String,
    message: String,
    dedup_key: crate::model::Fingerprint,
}

/// PagerDuty's answer to an invalid event, plus alertgate's own `error`
/// and `detail`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct InvalidEvent {
    /// Always `invalid event`.
    status: String,
    message: String,
    /// Each problem as `path: message`.
    errors: Vec<String>,
    error: String,
    detail: InvalidEventDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct InvalidEventDetail {
    errors: Vec<FieldError>,
    /// Where a body that is not UTF-8 goes wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    byte_offset: Option<usize>,
}

/// PagerDuty answers `202 {"status":"success","message":"Event processed","dedup_key":...}`
/// and `400 {"status":"invalid event","message":"Event object is invalid","errors":[...]}`;
/// so do we, plus our own `error`/`detail` fields on errors.
#[utoipa::path(post, path = "/v2/enqueue", tag = "ingest",
    description = "The PagerDuty Events API v2. The sender is named by the event's `routing_key` (an ingest \
        token), or by an `Authorization` header.",
    request_body = ingest::pagerduty::Event,
    responses(
        (status = 202, description = "The event is durably committed", body = Enqueued),
        (status = 400, description = "An invalid event, as PagerDuty answers it", body = InvalidEvent),
        (status = 401, description = "The `routing_key` (or the header's token) is not a valid token", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"alertgate\"`"))),
        (status = 403, description = "The token may not post events", body = ErrorBody),
        (status = 413, description = "Larger than `--max-body` (64 KiB before the routing key is known)", body = ErrorBody),
        (status = 429, description = "Over the sender's rate", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub async fn pagerduty(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PagerDutyBody { text: body, principal }: PagerDutyBody,
) -> Result<Response, ApiError> {
    let caller = Caller { principal: Some(principal), ..caller };
    admit(&state, &caller, 1)?;
    let ctx = state.ingest_context();
    let body = match body {
        Ok(b) => b,
        Err(byte_offset) => return Ok(pagerduty_not_utf8(byte_offset)),
    };
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
    let answer =
        Enqueued { status: "success".to_owned(), message: "Event processed".to_owned(), dedup_key: event.dedup_key };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

pub(super) fn pagerduty_invalid(e: IngestError) -> Response {
    invalid_event(format!("invalid payload: {e}"), e, None)
}

pub(super) fn pagerduty_not_utf8(byte_offset: usize) -> Response {
    let message = "request body is not valid UTF-8";
    invalid_event(message.to_owned(), IngestError::single("", message), Some(byte_offset))
}

fn invalid_event(error: String, e: IngestError, byte_offset: Option<usize>) -> Response {
    let body = InvalidEvent {
        status: "invalid event".to_owned(),
        message: "Event object is invalid".to_owned(),
        errors: e.errors.iter().map(|f| format!("{}: {}", f.path, f.message)).collect(),
        error,
        detail: InvalidEventDetail { errors: e.errors, byte_offset },
    };
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}
