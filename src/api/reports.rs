//! `GET /api/v1/reports/sla`: JSON, or CSV with `Accept: text/csv`.
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::store::{ReportGroup, SlaReport};

/// `from`, `to` (RFC 3339; default the last 30 days), `group_by`
/// (`service` default, `priority`, `rule`).
#[utoipa::path(get, path = "/api/v1/reports/sla", tag = "reports",
    summary = "SLA report: incidents, MTTA, MTTR, compliance and breaches by group",
    params(
        ("from" = Option<String>, Query, format = DateTime, description = "RFC 3339; default 30 days before `to`"),
        ("to" = Option<String>, Query, format = DateTime, description = "RFC 3339; default now"),
        ("group_by" = inline(Option<ReportGroup>), Query, description = "Default `service`"),
    ),
    responses(
        (status = 200, description = "The report; as CSV with `Accept: text/csv`",
            content((SlaReport = "application/json"), (String = "text/csv"))),
        (status = 400, description = "A bad or unknown query parameter, or `from` not before `to`", body = ErrorBody),
    ))]
pub async fn sla(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = super::query_pairs(query.as_deref())?;
    let now = crate::clock::now();
    let (mut from, mut to, mut group) = (None, None, ReportGroup::Service);
    for (key, value) in pairs {
        let time = |v: &str| {
            v.parse::<jiff::Timestamp>()
                .map_err(|e| ApiError::bad_request(format!("{key}: expected an RFC 3339 time, got {v:?}: {e}")))
        };
        match key.as_str() {
            "from" => from = Some(time(&value)?),
            "to" => to = Some(time(&value)?),
            "group_by" => {
                group = ReportGroup::parse(&value).ok_or_else(|| {
                    ApiError::bad_request(format!("group_by: {value:?} is not one of service, priority, rule"))
                })?
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {key:?}; known: from, to, group_by"
                )));
            }
        }
    }
    let to = to.unwrap_or(now);
    let from = from.unwrap_or_else(|| to.checked_sub(jiff::SignedDuration::from_hours(24 * 30)).unwrap_or(to));
    if from >= to {
        return Err(ApiError::bad_request("from: must be before to"));
    }
    let report = state.store.sla_report(from, to, group).await?;
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.split(',').any(|t| t.trim().starts_with("text/csv")));
    if wants_csv {
        Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], report.to_csv()).into_response())
    } else {
        Ok(axum::Json(report).into_response())
    }
}
