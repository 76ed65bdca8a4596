//! `/reports`: SLA compliance, MTTA and MTTR per service and per priority
//! over a range, as tables and as bar charts drawn on the server (SVG), and
//! the CSV download.
use std::sync::Arc;

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::view::{self, param};
use super::{Console, PageResult, Viewer, WebError};
use crate::api::AppState;
use crate::store::{ReportGroup, ReportRow, SlaReport};

/// `from` and `to` as dates (`2026-11-01`, UTC days, `to` inclusive) or RFC
/// 3339 times; the last 30 days by default.
fn range(pairs: &[(String, String)], now: Timestamp) -> Result<(Timestamp, Timestamp), WebError> {
    let parse = |key: &str, end_of_day: bool| -> Result<Option<Timestamp>, WebError> {
        let Some(v) = param(pairs, key) else { return Ok(None) };
        if let Ok(t) = v.parse::<Timestamp>() {
            return Ok(Some(t));
        }
        let d: jiff::civil::Date = v
            .parse()
            .map_err(|_| WebError::bad_request(format!("{key}: expected a date like 2026-11-01, got {v:?}")))?;
        let d = if end_of_day { d.tomorrow().map_err(|e| WebError::bad_request(e.to_string()))? } else { d };
        Ok(Some(d.to_zoned(jiff::tz::TimeZone::UTC).map_err(|e| WebError::bad_request(e.to_string()))?.timestamp()))
    };
    let to = parse("to", true)?.unwrap_or(now);
    let from = parse("from", false)?.unwrap_or_else(|| to - SignedDuration::from_hours(24 * 30));
    if from >= to {
        return Err(WebError::bad_request("from: must be before to"));
    }
    Ok((from, to))
}

fn group(pairs: &[(String, String)]) -> Result<ReportGroup, WebError> {
    let g = param(pairs, "group_by").unwrap_or("service");
    ReportGroup::parse(g)
        .ok_or_else(|| WebError::bad_request(format!("group_by: {g:?} is not one of service, priority, rule")))
}

/// Bars per group: compliance in percent (respond, resolve) and the mean
/// times scaled to the longest.
fn chart(rows: &[ReportRow]) -> Value {
    let (left, width, row_h) = (120.0, 300.0, 34.0);
    let longest = rows.iter().flat_map(|r| [r.mtta_seconds, r.mttr_seconds]).flatten().fold(1.0_f64, f64::max);
    let bar = |value: Option<f64>, scale: f64, class: &str, text: String, y: f64| {
        value.map(|v| json!({ "x": left, "y": y, "w": (v / scale * width).clamp(1.0, width).round(), "class": class, "text": text }))
    };
    let items: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let y = 8.0 + i as f64 * row_h;
            let pct = |v: Option<f64>| v.map(|p| format!("{p:.1} %")).unwrap_or_default();
            json!({
                "label": if r.key.is_empty() { "(none)" } else { r.key.as_str() }, "y": y + 13.0,
                "compliance": [
                    bar(r.respond_compliance_percent, 100.0, "respond", pct(r.respond_compliance_percent), y),
                    bar(r.resolve_compliance_percent, 100.0, "resolve", pct(r.resolve_compliance_percent), y + 14.0),
                ],
                "times": [
                    bar(r.mtta_seconds, longest, "respond", r.mtta_seconds.map(view::human_seconds).map(|t| format!("MTTA {t}")).unwrap_or_default(), y),
                    bar(r.mttr_seconds, longest, "resolve", r.mttr_seconds.map(view::human_seconds).map(|t| format!("MTTR {t}")).unwrap_or_default(), y + 14.0),
                ],
            })
        })
        .collect();
    json!({ "height": 16.0 + rows.len() as f64 * row_h, "rows": items, "left": left, "width": width })
}

fn section(title: &str, group_by: &str, r: &SlaReport) -> Value {
    json!({ "title": title, "group_by": group_by, "report": r, "chart": chart(&r.groups) })
}

/// `GET /reports`: `from`, `to`.
pub async fn page(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let pairs = view::query_pairs(raw.as_deref())?;
    let now = crate::clock::now();
    let (from, to) = range(&pairs, now)?;
    let by_service = state.store.sla_report(from, to, ReportGroup::Service).await?;
    let by_priority = state.store.sla_report(from, to, ReportGroup::Priority).await?;
    let day = |t: Timestamp| t.strftime("%Y-%m-%d").to_string();
    let last_day = day(to - SignedDuration::from_millis(1));
    let ctx = json!({
        "from": day(from), "to": last_day,
        "range_query": serde_urlencoded::to_string([("from", day(from)), ("to", last_day.clone())]).unwrap_or_default(),
        "sections": [section("By service", "service", &by_service), section("By priority", "priority", &by_priority)],
        "total": by_service.total, "top_problems": by_service.top_problems,
    });
    Ok(Html(console.render("reports.html", view::page(&console, &viewer, "reports", ctx))?).into_response())
}

/// `GET /reports/sla.csv`: `from`, `to`, `group_by` — the API's CSV, as a download.
pub async fn csv(State(state): State<AppState>, _viewer: Viewer, RawQuery(raw): RawQuery) -> PageResult {
    let pairs = view::query_pairs(raw.as_deref())?;
    let (from, to) = range(&pairs, crate::clock::now())?;
    let g = group(&pairs)?;
    let report = state.store.sla_report(from, to, g).await?;
    let mut resp = report.to_csv().into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    let name = format!("attachment; filename=\"sla-{}-{}.csv\"", from.strftime("%Y%m%d"), to.strftime("%Y%m%d"));
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_cover_whole_utc_days() {
        let now: Timestamp = "2026-11-26T10:00:00Z".parse().unwrap();
        let pairs = vec![("from".to_owned(), "2026-11-01".to_owned()), ("to".to_owned(), "2026-11-02".to_owned())];
        let (from, to) = range(&pairs, now).unwrap();
        assert_eq!(from.to_string(), "2026-11-01T00:00:00Z");
        assert_eq!(to.to_string(), "2026-11-03T00:00:00Z", "to is inclusive");
        let (from, to) = range(&[], now).unwrap();
        assert_eq!(to, now);
        assert_eq!(to.duration_since(from), SignedDuration::from_hours(720));
        assert!(range(&[("from".into(), "2026-12-01".into()), ("to".into(), "2026-11-01".into())], now).is_err());
    }
}
