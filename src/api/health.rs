//! Liveness and readiness.
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use super::AppState;

/// Alive: the process answers HTTP.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: the database answers and the rules are loaded.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let db = state.store.ping().await;
    let rules = state.rules();
    let ready = db.is_ok();
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "database": match &db { Ok(()) => "ok", Err(e) => e.public_message() },
        "rules": { "files": rules.files.len(), "incident_rules": rules.incident_rules.len() },
    });
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body))
}
