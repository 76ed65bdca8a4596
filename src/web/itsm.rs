//! `/problems`, `/problems/{id}`, `/changes`, `/notifications` and `/audit`.
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::session::Form;
use super::view::{self, param};
use super::{Console, PageResult, Viewer, WebError};
use crate::api::AppState;
use crate::model::change::Change;
use crate::model::notification::NotificationState;
use crate::model::problem::ProblemState;
use crate::store::{AuditQuery, ProblemQuery};

const PAGE: usize = 100;

fn cursor(pairs: &[(String, String)]) -> Result<Option<i64>, WebError> {
    param(pairs, "cursor")
        .map(|c| c.parse().map_err(|_| WebError::bad_request("cursor: not from a previous page")))
        .transpose()
}

/// The link to the page after `rows` (fetched with one row extra).
fn next_link<T>(rows: &mut Vec<T>, pairs: &[(String, String)], id: impl Fn(&T) -> i64) -> Option<String> {
    if rows.len() <= PAGE {
        return None;
    }
    rows.truncate(PAGE);
    let last = id(rows.last()?);
    let mut kept: Vec<(String, String)> = pairs.iter().filter(|(k, _)| k != "cursor").cloned().collect();
    kept.push(("cursor".into(), last.to_string()));
    Some(format!("?{}", serde_urlencoded::to_string(kept).unwrap_or_default()))
}

/// `GET /problems`: `state` (default: open and known errors; `all`).
pub async fn problems(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let pairs = view::query_pairs(raw.as_deref())?;
    let st = param(&pairs, "state").unwrap_or("active").to_owned();
    let states = match st.as_str() {
        "active" => vec![ProblemState::Open, ProblemState::KnownError],
        "all" => vec![],
        s => vec![ProblemState::parse(s).ok_or_else(|| WebError::bad_request(format!("state: unknown state {s:?}")))?],
    };
    let mut rows = state.store.list_problems(ProblemQuery { states, before: cursor(&pairs)?, limit: PAGE + 1 }).await?;
    let next = next_link(&mut rows, &pairs, |p| p.id);
    let ctx = json!({ "problems": rows, "state": st, "next": next });
    Ok(Html(console.render("problems.html", view::page(&console, &viewer, "problems", ctx))?).into_response())
}

/// `GET /problems/{id}`: its root cause, workaround, incidents and timeline.
pub async fn problem(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    viewer: Viewer,
    Path(raw): Path<String>,
) -> PageResult {
    let id: i64 = raw.parse().map_err(|_| WebError::not_found(format!("no problem {raw:?}")))?;
    let p = state.store.get_problem(id).await?.ok_or_else(|| WebError::not_found(format!("no problem {id}")))?;
    let mut v = serde_json::to_value(&p).unwrap_or_default();
    if let Some(t) = v["timeline"].as_array_mut() {
        t.reverse();
    }
    let ctx = json!({ "problem": v });
    Ok(Html(console.render("problem.html", view::page(&console, &viewer, "problems", ctx))?).into_response())
}

/// The time line of changes: one lane per service, windows as bars and
/// deploys as ticks, over the span the listed changes cover (drawn as SVG
/// on the server).
fn timeline_svg(changes: &[Change], now: Timestamp) -> Value {
    let Some(first) = changes.iter().map(|c| c.starts_at).min() else { return Value::Null };
    let start = first.min(now - SignedDuration::from_hours(1));
    let end = changes.iter().filter_map(|c| c.ends_at).max().unwrap_or(now).max(now);
    let span = (end.as_millisecond() - start.as_millisecond()).max(1) as f64;
    let mut lanes: Vec<String> =
        changes.iter().map(|c| c.service.clone().unwrap_or_else(|| "(no service)".into())).collect();
    lanes.sort();
    lanes.dedup();
    let (left, width, lane_h) = (140.0, 760.0, 26.0);
    let x = |t: Timestamp| left + (t.as_millisecond() - start.as_millisecond()) as f64 / span * width;
    let items: Vec<Value> = changes
        .iter()
        .map(|c| {
            let lane = lanes.iter().position(|l| Some(l) == c.service.as_ref()).unwrap_or(lanes.len() - 1);
            let x0 = x(c.starts_at);
            let w = c.ends_at.map(|e| (x(e) - x0).max(3.0));
            json!({
                "id": c.id, "x": x0.round(), "y": 24.0 + lane as f64 * lane_h, "w": w.map(f64::round),
                "suppress": c.suppress, "active": c.suppresses(now), "summary": c.summary,
            })
        })
        .collect();
    let lanes: Vec<Value> =
        lanes.iter().enumerate().map(|(i, l)| json!({ "name": l, "y": 24.0 + i as f64 * lane_h })).collect();
    json!({
        "height": 40.0 + lanes.len() as f64 * lane_h, "now_x": x(now).round(), "items": items, "lanes": lanes,
        "start": start, "end": end,
    })
}

/// `GET /changes`: `service`, `cursor`.
pub async fn changes(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let pairs = view::query_pairs(raw.as_deref())?;
    let service = param(&pairs, "service").map(str::to_owned);
    let mut rows = state.store.list_changes(service.clone(), cursor(&pairs)?, PAGE + 1).await?;
    let next = next_link(&mut rows, &pairs, |c| c.id);
    let now = crate::clock::now();
    let list: Vec<Value> = rows
        .iter()
        .map(|c| {
            let mut v = serde_json::to_value(c).unwrap_or_default();
            v["active"] = c.suppresses(now).into();
            v["href"] = c.link.as_deref().and_then(view::web_link).into();
            v
        })
        .collect();
    let ctx = json!({ "changes": list, "service": service, "next": next, "timeline": timeline_svg(&rows, now) });
    Ok(Html(console.render("changes.html", view::page(&console, &viewer, "changes", ctx))?).into_response())
}

/// `GET /notifications`: `state` (`failed` and `pending` by default; `sent`, `all`), `notifier`.
pub async fn notifications(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let pairs = view::query_pairs(raw.as_deref())?;
    let st = param(&pairs, "state").unwrap_or("open").to_owned();
    let notifier = param(&pairs, "notifier").map(str::to_owned);
    let before = cursor(&pairs)?;
    use NotificationState::{Failed, Pending};
    let mut rows = match st.as_str() {
        // Failed first: they need a person; then what still waits.
        "open" => {
            let mut failed =
                state.store.list_notifications(Some(Failed), notifier.clone(), None, before, PAGE + 1).await?;
            let pending =
                state.store.list_notifications(Some(Pending), notifier.clone(), None, before, PAGE + 1).await?;
            failed.extend(pending);
            failed.truncate(PAGE);
            failed
        }
        "all" => state.store.list_notifications(None, notifier.clone(), None, before, PAGE + 1).await?,
        s => match NotificationState::parse(s) {
            Some(one) => state.store.list_notifications(Some(one), notifier.clone(), None, before, PAGE + 1).await?,
            None => {
                return Err(WebError::bad_request(format!("state: unknown state {s:?}: pending, sent, failed, all")));
            }
        },
    };
    let next = if st == "open" { None } else { next_link(&mut rows, &pairs, |n| n.id) };
    let ctx = json!({ "notifications": rows, "state": st, "notifier": notifier, "next": next });
    Ok(Html(console.render("notifications.html", view::page(&console, &viewer, "notifications", ctx))?).into_response())
}

/// `POST /notifications/{id}/retry`.
pub async fn retry(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    Path(raw): Path<String>,
    form: Form,
) -> PageResult {
    form.viewer.require("POST", "/api/v1/notifications/{id}/retry")?;
    let id: i64 = raw.parse().map_err(|_| WebError::not_found(format!("no notification {raw:?}")))?;
    state.store.from(form.viewer.source).retry_notification(id, form.viewer.actor()?, crate::clock::now()).await?;
    console.sessions.set_flash(&form.viewer.key, format!("Notification #{id} will be sent again now"));
    let mut resp = Redirect::to(&format!("{}/notifications", console.base)).into_response();
    *resp.status_mut() = StatusCode::SEE_OTHER;
    Ok(resp)
}

/// `GET /audit` (admins): `actor`, `action`, `target`, `cursor`.
pub async fn audit(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> PageResult {
    viewer.require("GET", "/api/v1/audit")?;
    let pairs = view::query_pairs(raw.as_deref())?;
    let q = AuditQuery {
        actor: param(&pairs, "actor").map(str::to_owned),
        action: param(&pairs, "action").map(str::to_owned),
        target: param(&pairs, "target").map(str::to_owned),
        before: cursor(&pairs)?,
        limit: PAGE + 1,
        ..Default::default()
    };
    let filters = json!({ "actor": q.actor, "action": q.action, "target": q.target });
    let mut rows = state.store.list_audit(q).await?;
    let next = next_link(&mut rows, &pairs, |e| e.id);
    let entries: Vec<Value> = rows
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap_or_default();
            let compact = |x: &Value| if x.is_null() { String::new() } else { x.to_string() };
            v["before_text"] = compact(&e.before).into();
            v["after_text"] = compact(&e.after).into();
            v["detail_text"] = compact(&e.detail).into();
            v
        })
        .collect();
    let ctx = json!({ "entries": entries, "filters": filters, "next": next });
    Ok(Html(console.render("audit.html", view::page(&console, &viewer, "audit", ctx))?).into_response())
}
