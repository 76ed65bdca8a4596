//! `GET /metrics`, and the middleware that times every request.
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::metrics::metrics;

/// Prometheus metrics, in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "health",
    description = "Open instead of viewer with `auth.public_metrics: true`.",
    responses((status = 200, description = "The metrics", body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8")))]
pub async fn scrape(State(state): State<AppState>) -> Response {
    if let Err(e) = state.store.update_gauges(crate::clock::now(), &state.rules()).await {
        // The counters are still worth having; stale gauges say so in the log.
        tracing::warn!(error = %e, "reading the gauges for /metrics failed");
    }
    match super::heartbeats::views(&state, crate::clock::now()).await {
        Ok(views) => metrics().heartbeats(&views.iter().map(|v| v.gauges()).collect::<Vec<_>>()),
        Err(e) => tracing::warn!(error = e.error, "reading the heartbeats for /metrics failed"),
    }
    let now = crate::clock::now();
    match super::oncall::coverage(&state, now).await {
        Ok(schedules) => {
            let gauges: Vec<_> =
                schedules.iter().map(|(s, covered, end, live)| (s.as_str(), *covered, *end, *live)).collect();
            metrics().oncall(&gauges);
        }
        Err(e) => tracing::warn!(error = e.error, "reading who is on call for /metrics failed"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], metrics().encode()).into_response()
}

/// The sender format an ingest route speaks, for `alertgate_ingest_rejected_total`.
fn ingest_source(route: &str) -> Option<&'static str> {
    Some(match route {
        "/api/v1/ingest/alertmanager" => "alertmanager",
        "/api/v2/alerts" => "prometheus",
        "/api/v1/ingest/grafana" => "grafana",
        "/v2/enqueue" => "pagerduty",
        "/api/v1/ingest/generic/{name}" => "generic",
        _ => return None,
    })
}

fn rejection_reason(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "unavailable",
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "unauthorized",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        _ => "invalid",
    }
}

/// Time each request under its route pattern (never the raw path: ids
/// would make the label unbounded) and count refused ingest requests.
pub async fn observe(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let method = crate::metrics::method_label(req.method().as_str());
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status();
    let endpoint = route.as_deref().unwrap_or("unmatched");
    metrics()
        .http_duration
        .with_label_values(&[endpoint, method, status.as_str()])
        .observe(started.elapsed().as_secs_f64());
    if let Some(source) = route.as_deref().and_then(ingest_source)
        && (status.is_client_error() || status.is_server_error())
    {
        metrics().ingest_rejected.with_label_values(&[source, rejection_reason(status)]).inc();
    }
    resp
}
