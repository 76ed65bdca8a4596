//! Liveness and readiness.
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;

/// Alive: the process answers HTTP.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process answers", body = String, content_type = "text/plain",
        example = "ok\n")))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    status: ReadyState,
    /// `ok`, or why the database does not answer.
    database: String,
    rules: LoadedRules,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub enum ReadyState {
    #[serde(rename = "ready")]
    Ready,
    #[serde(rename = "not ready")]
    NotReady,
}

/// The rules in force.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct LoadedRules {
    files: usize,
    incident_rules: usize,
}

/// Ready: the database answers and the rules are loaded.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready to take alerts", body = Readiness),
        (status = 503, description = "The database does not answer", body = Readiness),
    ))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let db = state.store.ping().await;
    let rules = state.rules();
    let ready = db.is_ok();
    let body = Readiness {
        status: if ready { ReadyState::Ready } else { ReadyState::NotReady },
        database: match &db {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.public_message().to_owned(),
        },
        rules: LoadedRules { files: rules.files.len(), incident_rules: rules.incident_rules.len() },
    };
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body))
}
