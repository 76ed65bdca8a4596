//! `/-/clock`: the controlled clock of a gateway started with `serve
//! --test-clock START`, for tests. The route exists only then (it is not
//! in `auth::ROUTES`, so it needs admin rights).
//!
//! `GET` says what time it is; `POST {"advance": "15m"}` or `POST {"to":
//! "2026-03-02T09:15:00Z"}` moves the clock forward and answers once every
//! timer due meanwhile has run, each at its own instant, as it would have on
//! the wall clock: a test reads the outcome right after.
use axum::Json;
use axum::extract::State;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::body::JsonText;
use super::error::ApiError;
use crate::clock::ClockError;
use crate::store::Store;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Move {
    /// How far to move, e.g. `15m`.
    advance: Option<crate::model::Duration>,
    /// The instant to move to (RFC 3339).
    to: Option<String>,
}

/// One move at a time: the steps of two would interleave.
static MOVING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn get() -> Json<Value> {
    Json(json!({ "now": crate::clock::now() }))
}

pub async fn post(State(state): State<AppState>, JsonText(body): JsonText) -> Result<Json<Value>, ApiError> {
    let m: Move = crate::ingest::from_json(&body, "")?;
    let _moving = MOVING.lock().await;
    let now = crate::clock::now();
    let target = match (m.advance, m.to.as_deref()) {
        (Some(d), None) => now.checked_add(d.signed()).map_err(|e| ApiError::bad_request(format!("advance: {e}")))?,
        (None, Some(to)) => to.parse::<Timestamp>().map_err(|e| {
            ApiError::bad_request(format!("to: expected an RFC 3339 time, got {to:?}: {e}"))
                .with_detail(json!({ "parameter": "to" }))
        })?,
        _ => {
            return Err(ApiError::bad_request(
                "give either \"advance\" (a duration such as \"15m\") or \"to\" (an RFC 3339 time)",
            ));
        }
    };
    if target < now {
        return Err(clock_error(ClockError::Backwards { now, to: target }));
    }
    let now = run_until(&state.store, target).await?;
    Ok(Json(json!({ "now": now })))
}

/// Move the clock to `target` in steps: to each SLA or escalation timer due
/// on the way, ticking there, then to `target`, ticking there. The regular
/// round (alert expiry, pending groups, auto-resolve, silences and
/// maintenance windows that end) runs at each step too, so what falls due
/// between two timers is done at the later one: a test moves to the instant
/// it asserts.
async fn run_until(store: &Store, target: Timestamp) -> Result<Timestamp, ApiError> {
    let mut at = crate::clock::now();
    loop {
        store.tick(at).await?;
        // The writer publishes its next timer after answering; a second
        // tick at the same instant (finding nothing more to do) is answered
        // only once it has, so the timers the first one set are seen.
        store.tick(at).await?;
        if at >= target {
            return Ok(at);
        }
        at = store.next_timer().filter(|t| *t > at && *t < target).unwrap_or(target);
        crate::clock::set(at).map_err(clock_error)?;
    }
}

fn clock_error(e: ClockError) -> ApiError {
    ApiError::bad_request(e.to_string())
}
