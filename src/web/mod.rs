//! The console: pages for on-call engineers, served by the gateway itself.
//!
//! Server-rendered HTML from minijinja templates embedded in the binary,
//! one small script and one stylesheet (embedded too: it works
//! air-gapped), and Server-Sent Events that tell open pages to fetch their
//! live part again. Every page and action calls the same store operations
//! and checks the same permissions as the JSON API (`crate::auth`); the
//! console has no rules of its own.
mod alerts;
mod assets;
mod incidents;
mod itsm;
mod live;
mod oncall;
mod reports;
mod session;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::Value;

use crate::api::AppState;
use crate::api::error::ApiError;

pub use session::Viewer;

/// What the console keeps beside the API's state.
pub struct Console {
    templates: minijinja::Environment<'static>,
    sessions: session::Sessions,
    fragments: live::FragmentCache,
    /// The external URL's path (`/alertgate`), or empty: links start with it.
    base: String,
    /// Cookies are `Secure` when the gateway serves HTTPS.
    secure_cookies: bool,
}

impl Console {
    fn new(config: &crate::config::Config) -> Console {
        Console {
            templates: view::environment(),
            sessions: session::Sessions::new(config.web.session_ttl.signed()),
            fragments: live::FragmentCache::default(),
            base: config.web.path_prefix(),
            secure_cookies: config.tls.is_some()
                || config.web.external_url.as_deref().is_some_and(|u| u.starts_with("https:")),
        }
    }

    /// Render a template; a template error is a bug, logged and shown as a 500.
    fn render(&self, name: &str, ctx: Value) -> Result<String, WebError> {
        self.templates.get_template(name).and_then(|t| t.render(ctx)).map_err(|e| {
            tracing::error!(template = name, error = %e, "rendering a console page failed");
            WebError(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered"))
        })
    }
}

/// The console's routes; mounted beside the API's (outside its bearer-token
/// guard: the console signs people in with a session cookie instead).
pub fn router(state: AppState) -> Router<AppState> {
    let console = Arc::new(Console::new(&state.config));
    Router::new()
        .route(
            "/",
            get(|axum::Extension(c): axum::Extension<Arc<Console>>| async move {
                Redirect::to(&format!("{}/incidents", c.base))
            }),
        )
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/events", get(live::events))
        .route("/assets/{name}", get(assets::serve))
        .route("/incidents", get(incidents::list).post(incidents::report))
        .route("/incidents/bulk", post(incidents::bulk))
        .route("/incidents/{id}", get(incidents::show))
        .route("/incidents/{id}/act", post(incidents::act))
        .route("/incidents/{id}/assign", post(incidents::assign))
        .route("/incidents/{id}/priority", post(incidents::priority))
        .route("/incidents/{id}/note", post(incidents::note))
        .route("/alerts", get(alerts::list))
        .route("/oncall", get(oncall::page))
        .route("/oncall/overrides", post(oncall::create_override))
        .route("/oncall/overrides/{id}/delete", post(oncall::delete_override))
        .route("/silences", get(alerts::silences).post(alerts::create_silence))
        .route("/silences/preview", get(alerts::preview))
        .route("/silences/{id}/expire", post(alerts::expire_silence))
        .route("/problems", get(itsm::problems))
        .route("/problems/{id}", get(itsm::problem))
        .route("/changes", get(itsm::changes))
        .route("/notifications", get(itsm::notifications))
        .route("/notifications/{id}/retry", post(itsm::retry))
        .route("/audit", get(itsm::audit))
        .route("/reports", get(reports::page))
        .route("/reports/sla.csv", get(reports::csv))
        .layer(axum::middleware::from_fn_with_state(state, session::resolve))
        .layer(axum::middleware::from_fn(security_headers))
        .layer(axum::Extension(console))
}

/// No inline script or style is allowed: label text that slipped through
/// escaping still could not run. Pages are never cached (they show who is
/// signed in and live data).
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// An error shown as a page. The status and message come from the API's
/// mapping (`api::error`), so the console answers as the API would.
#[derive(Debug)]
pub struct WebError(pub ApiError);

impl WebError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> WebError {
        WebError(ApiError::new(status, message))
    }

    pub fn bad_request(message: impl Into<String>) -> WebError {
        WebError(ApiError::bad_request(message))
    }

    pub fn not_found(message: impl Into<String>) -> WebError {
        WebError(ApiError::not_found(message))
    }
}

impl From<ApiError> for WebError {
    fn from(e: ApiError) -> Self {
        WebError(e)
    }
}

impl From<crate::store::StoreError> for WebError {
    fn from(e: crate::store::StoreError) -> Self {
        WebError(e.into())
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.0.status;
        // A plain page: the error may come from before a session exists.
        let body = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
             <title>{code} · alertgate</title><link rel=\"stylesheet\" href=\"{css}\"></head>\
             <body><main class=\"error-page\"><h1>{code}</h1><p role=\"alert\" id=\"error\">{msg}</p>\
             <p><a href=\"/incidents\">Incidents</a></p></main></body></html>",
            code = status.as_u16(),
            css = assets::url("console.css"),
            msg = view::escape(&self.0.error),
        );
        let mut resp = (status, Html(body)).into_response();
        if let Some(s) = self.0.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, s.into());
        }
        resp
    }
}

pub type PageResult = Result<Response, WebError>;
