//! HTTP routes. Handlers parse, call the store, and map errors to JSON
//! answers in one place (`error`).
mod action_items;
mod alerts;
mod amv2;
mod audit;
pub mod auth;
mod body;
mod changes;
mod clock;
pub mod error;
mod health;
mod heartbeats;
mod incidents;
mod ingest;
mod metrics;
mod notifications;
pub mod oncall;
pub mod openapi;
mod problems;
mod reports;
mod reviews;
mod silences;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Config;
use crate::ingest::IngestContext;
use crate::rules::RuleSet;
use crate::store::{SharedRules, Store};

/// Set on every answer, so a client can tell alertgate from another server
/// on the port it was given (an Alertmanager answers `/api/v1/alerts` too).
pub const VERSION_HEADER: &str = "x-alertgate-version";

async fn version_header(mut resp: axum::response::Response) -> axum::response::Response {
    resp.headers_mut().insert(VERSION_HEADER, axum::http::HeaderValue::from_static(env!("CARGO_PKG_VERSION")));
    resp
}

/// The key/value pairs of a query string, in order (keys may repeat).
fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, error::ApiError> {
    serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| error::ApiError::bad_request(format!("bad query string: {e}")))
}

/// Cut a list fetched with `limit + 1` rows (newest id first) to `limit`;
/// the cursor of the next page is the last row's id when there is more.
fn id_page<T>(mut rows: Vec<T>, limit: usize, id: impl Fn(&T) -> i64) -> (Vec<T>, Option<String>) {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = rows.last().filter(|_| more).map(|r| id(r).to_string());
    (rows, next)
}

/// A page size from the query string, 1 to `max`.
fn parse_limit(key: &str, value: &str, max: usize) -> Result<usize, error::ApiError> {
    value.parse().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| {
        error::ApiError::bad_request(format!("{key}: expected a number from 1 to {max}, got {value:?}"))
            .with_detail(serde_json::json!({ "parameter": key }))
    })
}

/// The path parameters of the route, percent-decoded; one that is not
/// UTF-8 is a JSON 400 (axum's own rejection would be plain text).
async fn path_params(parts: &mut axum::http::request::Parts) -> Result<Vec<(String, String)>, error::ApiError> {
    use axum::extract::FromRequestParts;
    let params = axum::extract::RawPathParams::from_request_parts(parts, &())
        .await
        .map_err(|e| error::ApiError::bad_request(format!("bad path: {}", e.body_text())))?;
    Ok(params.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
}

/// A numeric `{id}` path parameter; anything else is a JSON 400.
pub struct Id(pub i64);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Id {
    type Rejection = error::ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let params = path_params(parts).await?;
        let raw = params.into_iter().find(|(k, _)| k == "id").map(|(_, v)| v).unwrap_or_default();
        raw.parse().map(Id).map_err(|_| error::ApiError::bad_request(format!("id: expected a number, got {raw:?}")))
    }
}

/// The last path parameter of the route as text (`{fingerprint}`,
/// `{name}`, `{action}`); a malformed one is a JSON 400.
pub struct PathText(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PathText {
    type Rejection = error::ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PathText(path_params(parts).await?.pop().map(|(_, v)| v).unwrap_or_default()))
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    rules: SharedRules,
    pub limiters: Arc<auth::Limiters>,
    pub body_budget: body::BodyBudget,
}

impl AppState {
    pub fn new(store: Store, config: Arc<Config>, rules: SharedRules) -> Self {
        let limiters = Arc::new(auth::Limiters::new(&config.limits));
        let body_budget = body::BodyBudget::new(config.limits.max_buffered_bytes);
        AppState { store, config, rules, limiters, body_budget }
    }

    /// Load the rules directory again and swap the new set in whole; a
    /// broken set is refused and the old rules keep running.
    pub fn reload_rules(&self) -> Result<Arc<RuleSet>, Vec<crate::rules::RuleError>> {
        let loaded = self.config.load_rules();
        crate::metrics::metrics().rules_loaded(loaded.is_ok());
        let set = Arc::new(loaded?);
        *self.rules.write().expect("rules lock") = set.clone();
        tracing::info!(files = set.files.len(), incident_rules = set.incident_rules.len(), "rules reloaded");
        Ok(set)
    }

    pub fn rules(&self) -> Arc<RuleSet> {
        self.rules.read().expect("rules lock").clone()
    }

    fn ingest_context(&self) -> IngestContext {
        IngestContext { now: crate::clock::now(), resolve_timeout: self.config.resolve_timeout.signed() }
    }
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Reloaded {
    /// Always `reloaded`.
    status: String,
    files: usize,
    incident_rules: usize,
    inhibit_rules: usize,
}

/// `POST /-/reload`, as in Prometheus and Alertmanager.
#[utoipa::path(post, path = "/-/reload", tag = "admin",
    summary = "Load the rules directory again",
    description = "The new set is swapped in whole; a broken set is refused with its errors and the old rules keep running.",
    responses(
        (status = 200, description = "The new rules are in force", body = Reloaded),
        (status = 400, description = "The rules are broken; `detail.errors` lists every error with file and line", body = error::ErrorBody),
    ))]
async fn reload(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<auth::Caller>,
) -> Result<axum::Json<Reloaded>, error::ApiError> {
    let result = state.reload_rules();
    let detail = match &result {
        Ok(set) => serde_json::json!({ "ok": true, "files": set.files.len() }),
        Err(errors) => serde_json::json!({ "ok": false, "errors": errors.len() }),
    };
    state.store.from(caller.source).audit("rules.reload", caller.name(), detail, crate::clock::now()).await?;
    match result {
        Ok(set) => Ok(axum::Json(Reloaded {
            status: "reloaded".to_owned(),
            files: set.files.len(),
            incident_rules: set.incident_rules.len(),
            inhibit_rules: set.inhibit_rules.len(),
        })),
        Err(errors) => {
            let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            tracing::warn!(errors = %lines.join("; "), "rule reload refused; the old rules keep running");
            Err(error::ApiError::bad_request("rule reload refused; the old rules keep running")
                .with_detail(serde_json::json!({ "errors": lines })))
        }
    }
}

/// Every route of the API, each from its handler's annotation, so the
/// router and the OpenAPI document ([`openapi::document`]) are one list.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(metrics::scrape))
        .routes(routes!(health::readyz))
        .routes(routes!(openapi::serve))
        .routes(routes!(ingest::alertmanager))
        .routes(routes!(ingest::prometheus))
        .routes(routes!(ingest::grafana))
        .routes(routes!(ingest::pagerduty))
        .routes(routes!(ingest::generic))
        .routes(routes!(alerts::list))
        .routes(routes!(alerts::get))
        .routes(routes!(incidents::list, incidents::report))
        .routes(routes!(incidents::get))
        .routes(routes!(incidents::assign))
        .routes(routes!(incidents::note))
        .routes(routes!(incidents::priority))
        .routes(routes!(incidents::act))
        .routes(routes!(incidents::link_alerts))
        .routes(routes!(incidents::merge))
        .routes(routes!(reviews::start, reviews::get, reviews::edit))
        .routes(routes!(reviews::markdown))
        .routes(routes!(reviews::problem))
        .routes(routes!(action_items::create, action_items::list))
        .routes(routes!(action_items::edit))
        .routes(routes!(silences::create, silences::list))
        .routes(routes!(silences::expire))
        .routes(routes!(problems::create, problems::list))
        .routes(routes!(problems::get, problems::update))
        .routes(routes!(problems::link))
        .routes(routes!(changes::create, changes::list))
        .routes(routes!(changes::pagerduty))
        .routes(routes!(reports::sla))
        .routes(routes!(notifications::list))
        .routes(routes!(notifications::retry))
        .routes(routes!(heartbeats::list))
        .routes(routes!(heartbeats::get, heartbeats::ping))
        .routes(routes!(oncall::oncall))
        .routes(routes!(oncall::schedules))
        .routes(routes!(oncall::shifts))
        .routes(routes!(oncall::create_override, oncall::list_overrides))
        .routes(routes!(oncall::delete_override))
        .routes(routes!(oncall::schedule_calendar))
        .routes(routes!(oncall::people))
        .routes(routes!(oncall::person_calendar))
        .routes(routes!(oncall::create_feed, oncall::list_feeds))
        .routes(routes!(oncall::revoke_feed))
        .routes(routes!(audit::list))
        .routes(routes!(reload))
        .merge(amv2::routes())
}

/// The API's routes behind their guards (permissions, body budget). The
/// server joins the console's routes to them and then [`finish`]es both.
pub fn routes(state: &AppState) -> Router<AppState> {
    let max_body = state.config.max_body;
    let (api, _) = api_routes().split_for_parts();
    // Only on a controlled clock (`serve --test-clock`); elsewhere a 404 like
    // any unknown path. Not in `auth::ROUTES`, so it needs admin rights (and
    // it is not in the OpenAPI document: it is for tests only).
    let api = if crate::clock::is_controlled() {
        api.route("/-/clock", axum::routing::get(clock::get).post(clock::post))
    } else {
        api
    };
    api.fallback(|| async { error::ApiError::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(max_body))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), body::budget))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::guard))
}

/// What every answer shares, the API's and the console's: request metrics
/// and the version header.
pub fn finish(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .route_layer(axum::middleware::from_fn(metrics::observe))
        .layer(axum::middleware::map_response(version_header))
        .with_state(state)
}
