//! HTTP routes. Handlers parse, call the store, and map errors to JSON
//! answers in one place (`error`).
mod alerts;
mod body;
pub mod error;
mod health;
mod ingest;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::config::Config;
use crate::ingest::IngestContext;
use crate::rules::RuleSet;
use crate::store::{SharedRules, Store};

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    rules: SharedRules,
}

impl AppState {
    pub fn new(store: Store, config: Arc<Config>, rules: SharedRules) -> Self {
        AppState {
            store,
            config,
            rules,
        }
    }

    pub fn rules(&self) -> Arc<RuleSet> {
        self.rules.read().expect("rules lock").clone()
    }

    fn ingest_context(&self) -> IngestContext {
        IngestContext {
            now: crate::clock::now(),
            resolve_timeout: self.config.resolve_timeout.signed(),
        }
    }
}

pub fn router(state: AppState) -> Router {
    let max_body = state.config.max_body;
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/api/v1/ingest/alertmanager", post(ingest::alertmanager))
        .route("/api/v2/alerts", post(ingest::prometheus))
        .route("/api/v1/ingest/grafana", post(ingest::grafana))
        .route("/v2/enqueue", post(ingest::pagerduty))
        .route("/api/v1/ingest/generic/{name}", post(ingest::generic))
        .route("/api/v1/alerts", get(alerts::list))
        .route("/api/v1/alerts/{fingerprint}", get(alerts::get))
        .fallback(|| async { error::ApiError::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}
