//! Reading alerts: `GET /api/v1/alerts` and `GET /api/v1/alerts/{fingerprint}`.
use axum::Json;
use axum::extract::{RawQuery, State};
use serde_json::json;

use super::error::{ApiError, ErrorBody};
use super::{AppState, PathText};
use crate::model::{AlertRecord, AlertStatus, Fingerprint};
use crate::rules::matcher::parse_matchers;
use crate::store::{AlertPage, AlertQuery};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// Query parameters: `state` (or `status`) = firing|resolved, `source`,
/// `fingerprint`, `filter` (repeatable, Alertmanager matchers such as
/// `severity=~"crit.*"` or `{a="1",b!="2"}`), `limit` (1-1000), `cursor`.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts",
    summary = "List alerts, newest first",
    params(
        ("state" = inline(Option<AlertStatus>), Query, description = "Only firing or only resolved alerts (`status` is an alias)"),
        ("source" = Option<String>, Query, description = "The integration: `alertmanager`, `prometheus`, `grafana`, `pagerduty`, `generic:NAME`; `heartbeat` for missed heartbeats' alerts"),
        ("fingerprint" = Option<String>, Query, min_length = 1, max_length = 255, description = "One alert"),
        ("muted" = Option<bool>, Query, description = "`true`: only alerts a silence or an inhibition keeps from incidents; `false`: only the others"),
        ("filter" = Option<Vec<String>>, Query, explode, description = "Repeatable; Alertmanager matchers, e.g. `severity=~\"crit.*\"` or `{a=\"1\",b!=\"2\"}`"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
        ("cursor" = Option<i64>, Query, description = "`nextCursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of alerts", body = AlertPage),
        (status = 400, description = "A bad or unknown query parameter", body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Json<AlertPage>, ApiError> {
    let q = parse_query(query.as_deref().unwrap_or(""))?;
    Ok(Json(state.store.list_alerts(q).await?))
}

/// One alert, with the sender's raw payload.
#[utoipa::path(get, path = "/api/v1/alerts/{fingerprint}", tag = "alerts",
    params(("fingerprint" = String, Path, min_length = 1, max_length = 255, description = "The alert's fingerprint")),
    responses(
        (status = 200, description = "The alert", body = AlertRecord),
        (status = 400, description = "Not a fingerprint", body = ErrorBody),
        (status = 404, description = "No alert has this fingerprint", body = ErrorBody),
    ))]
pub async fn get(State(state): State<AppState>, PathText(fp): PathText) -> Result<Json<AlertRecord>, ApiError> {
    let fp = Fingerprint::parse(&fp).map_err(|e| ApiError::bad_request(format!("fingerprint: {e}")))?;
    match state.store.get_alert(fp.clone()).await? {
        Some(a) => Ok(Json(a)),
        None => Err(ApiError::not_found(format!("no alert with fingerprint {fp}"))),
    }
}

fn parse_query(raw: &str) -> Result<AlertQuery, ApiError> {
    let pairs = super::query_pairs(Some(raw))?;
    let mut q = AlertQuery { limit: DEFAULT_LIMIT, ..Default::default() };
    for (key, value) in pairs {
        let bad = |msg: String| ApiError::bad_request(format!("{key}: {msg}")).with_detail(json!({ "parameter": key }));
        match key.as_str() {
            "state" | "status" => {
                q.status = Some(
                    AlertStatus::parse(&value)
                        .ok_or_else(|| bad(format!("expected firing or resolved, got {value:?}")))?,
                )
            }
            "source" => q.source = Some(value),
            "fingerprint" => q.fingerprint = Some(Fingerprint::parse(&value).map_err(|e| bad(e.to_string()))?),
            "muted" => {
                q.muted = Some(match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad(format!("expected true or false, got {value:?}"))),
                })
            }
            "filter" | "matcher" => q.matchers.extend(parse_matchers(&value).map_err(|e| bad(e.to_string()))?),
            "limit" => q.limit = super::parse_limit(&key, &value, MAX_LIMIT)?,
            "cursor" => {
                q.before =
                    Some(value.parse().map_err(|_| bad(format!("not a cursor from a previous page: {value:?}")))?)
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {key:?}; known: state, source, fingerprint, muted, filter, limit, cursor"
                )));
            }
        }
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters() {
        let q = parse_query("state=firing&filter=%7Bseverity%3D%22critical%22%7D&filter=job!%3Dx&limit=5&cursor=42")
            .unwrap();
        assert_eq!(q.status, Some(AlertStatus::Firing));
        assert_eq!(q.matchers.len(), 2);
        assert_eq!(q.limit, 5);
        assert_eq!(q.before, Some(42));
        for bad in ["state=burning", "limit=0", "limit=5000", "filter=a%3D%22", "cursor=x", "colour=red"] {
            assert!(parse_query(bad).is_err(), "{bad}");
        }
    }
}
