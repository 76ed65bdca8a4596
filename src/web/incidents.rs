//! `/incidents` and `/incidents/{id}`: the list on-call engineers work
//! from, one incident with everything about it, and what they do to them.
use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect};
use serde_json::{Value, json};

use super::session::Form;
use super::view::{self, param};
use super::{Console, PageResult, Viewer, WebError, live};
use crate::api::AppState;
use crate::model::incident::{IncidentAction, IncidentState, Priority, transition};
use crate::store::{ClockView, IncidentCursor, IncidentQuery, IncidentSort, SlaFilter, SlaView};

const PAGE: usize = 50;
const ACT_ROUTE: &str = "/api/v1/incidents/{id}/{action}";

/// The list's filters, as in the URL (so a view can be bookmarked).
#[derive(Debug, Default, serde::Serialize)]
struct Filters {
    state: String,
    priority: String,
    service: String,
    assignee: String,
    q: String,
    sla: String,
    mine: bool,
}

fn parse_filters(pairs: &[(String, String)], viewer: &Viewer) -> Result<(Filters, IncidentQuery), WebError> {
    let mut q = IncidentQuery { limit: PAGE, sort: IncidentSort::Priority, ..Default::default() };
    let f = Filters {
        state: param(pairs, "state").unwrap_or("open").to_owned(),
        priority: param(pairs, "priority").unwrap_or_default().to_owned(),
        service: param(pairs, "service").unwrap_or_default().trim().to_owned(),
        assignee: param(pairs, "assignee").unwrap_or_default().trim().to_owned(),
        q: param(pairs, "q").unwrap_or_default().trim().to_owned(),
        sla: param(pairs, "sla").unwrap_or_default().to_owned(),
        mine: param(pairs, "mine").is_some(),
    };
    q.states = match f.state.as_str() {
        "open" => vec![IncidentState::Triggered, IncidentState::Acknowledged, IncidentState::OnHold],
        "all" => vec![],
        s => vec![IncidentState::parse(s).ok_or_else(|| WebError::bad_request(format!("state: unknown state {s:?}")))?],
    };
    if !f.priority.is_empty() {
        q.priorities = vec![
            Priority::parse(&f.priority)
                .ok_or_else(|| WebError::bad_request(format!("priority: expected P1 to P5, got {:?}", f.priority)))?,
        ];
    }
    if !f.sla.is_empty() {
        q.sla =
            Some(SlaFilter::parse(&f.sla).ok_or_else(|| WebError::bad_request(format!("sla: unknown {:?}", f.sla)))?);
    }
    q.service = Some(f.service.clone()).filter(|s| !s.is_empty());
    q.assignee = if f.mine { Some(viewer.name.clone()) } else { Some(f.assignee.clone()).filter(|s| !s.is_empty()) };
    q.title = Some(f.q.clone()).filter(|s| !s.is_empty());
    if let Some(c) = param(pairs, "cursor") {
        q.cursor =
            Some(IncidentCursor::parse(c).ok_or_else(|| WebError::bad_request("cursor: not from a previous page"))?);
    }
    Ok((f, q))
}

/// A clock as a cell: what is left, and how urgent it looks. A running
/// clock shows its breach instant, which the page's script turns into a
/// countdown: the text does not change as time passes, so a live part
/// changes only when the data does.
fn clock(c: &ClockView) -> Value {
    use crate::sla::clock::ClockState as S;
    let due = || c.breach_at.map(|t| format!("breach at {}", t.strftime("%b %d %H:%M UTC"))).unwrap_or_default();
    let (class, text) = match (c.state, c.remaining_seconds) {
        (S::Breached, _) => ("breached", "breached".to_owned()),
        (S::Met, _) => ("met", "met".to_owned()),
        (S::ResolvedUnacknowledged, _) => ("breached", "resolved unacknowledged".to_owned()),
        (S::Paused, Some(left)) => ("paused", format!("paused, {} left", view::human_seconds(left))),
        // The incident's priority makes no such promise now; its time still counts.
        (S::Paused | S::Running, None) => ("paused", "no target at this priority".to_owned()),
        (S::Running, _) if !c.warned_at.is_empty() => ("warn", due()),
        (S::Running, _) => ("ok", due()),
    };
    let used = match c.target_seconds {
        Some(target) if target > 0.0 => (c.elapsed_seconds / target * 100.0).clamp(0.0, 100.0),
        Some(_) => 100.0,
        None => 0.0,
    };
    json!({
        "state": c.state.as_str(), "class": class, "text": text, "target": c.target.as_deref().unwrap_or("none"),
        "elapsed": c.elapsed_seconds, "remaining": c.remaining_seconds, "used_percent": used.round() as i64,
        "deadline": c.breach_at, "breached_at": c.breached_at, "stopped_at": c.stopped_at,
        "warned_at": c.warned_at,
    })
}

fn clocks(sla: Option<&SlaView>) -> Value {
    let Some(s) = sla else { return Value::Null };
    json!({
        "policy": s.policy, "calendar": s.calendar,
        "respond": s.respond.as_ref().map(clock), "resolve": s.resolve.as_ref().map(clock),
    })
}

fn pairs_to_query(pairs: &[(String, String)], drop: &[&str]) -> String {
    let kept: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| !drop.contains(&k.as_str())).collect();
    serde_urlencoded::to_string(kept).unwrap_or_default()
}

async fn list_context(state: &AppState, viewer: &Viewer, pairs: &[(String, String)]) -> Result<Value, WebError> {
    let (filters, q) = parse_filters(pairs, viewer)?;
    let (page, total) = state.store.list_incidents_counted(q).await?;
    let ids: Vec<i64> = page.incidents.iter().map(|i| i.id).collect();
    let slas: HashMap<i64, SlaView> = state.store.sla_views(ids, crate::clock::now()).await?;
    let rows: Vec<Value> = page
        .incidents
        .iter()
        .map(|i| {
            let mut v = serde_json::to_value(i).unwrap_or_default();
            v["sla"] = clocks(slas.get(&i.id));
            v
        })
        .collect();
    let here = pairs_to_query(pairs, &["cursor", "partial"]);
    let next = page.next_cursor.as_ref().map(|c| {
        let sep = if here.is_empty() { "" } else { "&" };
        format!("?{here}{sep}{}", serde_urlencoded::to_string([("cursor", c)]).unwrap_or_default())
    });
    Ok(json!({
        "incidents": rows, "total": total, "next": next, "filters": filters, "query": here,
        "paged": param(pairs, "cursor").is_some(),
    }))
}

/// `GET /incidents`: the list (or, with `partial=1`, its live part).
pub async fn list(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    viewer: Viewer,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let pairs = view::query_pairs(raw.as_deref())?;
    if param(&pairs, "partial").is_some() {
        let part = list_part(&state, &console, &viewer, &pairs).await?;
        return Ok(live::respond(part, headers.get(header::IF_NONE_MATCH)));
    }
    let version = live::version(&state);
    let mut ctx = list_context(&state, &viewer, &pairs).await?;
    ctx["version"] = version.into();
    let html = console.render("incidents.html", view::page(&console, &viewer, "incidents", ctx))?;
    Ok(Html(html).into_response())
}

/// The list's live part, through the cache shared by every tab of the view.
pub async fn list_part(
    state: &AppState,
    console: &Console,
    viewer: &Viewer,
    pairs: &[(String, String)],
) -> Result<live::Part, WebError> {
    let key = format!("/incidents?{}", pairs_to_query(pairs, &["partial"]));
    live::cached(state, console, viewer, &key, || async {
        let mut c = list_context(state, viewer, pairs).await?;
        merge(&mut c, page_base(console, viewer));
        console.render("incidents_live.html", c)
    })
    .await
}

/// An incident page's live part, through the cache.
pub async fn detail_part(
    state: &AppState,
    console: &Console,
    viewer: &Viewer,
    id: i64,
) -> Result<live::Part, WebError> {
    live::cached(state, console, viewer, &format!("/incidents/{id}"), || async {
        let mut c = detail_context(state, viewer, id).await?;
        merge(&mut c, page_base(console, viewer));
        console.render("incident_live.html", c)
    })
    .await
}

/// What a live part needs of the page around it (no session data: the
/// part is shared by every tab of the same view and role).
fn page_base(console: &Console, viewer: &Viewer) -> Value {
    json!({
        "base": console.base,
        "can": {
            "respond": viewer.may("POST", ACT_ROUTE),
            "silence": viewer.may("POST", "/api/v1/silences"),
        },
    })
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(i), Value::Object(f)) = (into.as_object_mut(), from) {
        i.extend(f);
    }
}

/// Whom escalation paged, from the `escalated` timeline entries, oldest
/// first: each person with the target that reached them (a schedule names
/// who was on call in it at the step's instant), and each schedule that had
/// nobody on call then.
fn paged(timeline: &[crate::model::incident::TimelineEvent]) -> Vec<Value> {
    let mut out = Vec::new();
    for e in timeline.iter().filter(|e| e.kind == "escalated") {
        let d = &e.data;
        let step = json!({
            "at": e.at, "policy": d["policy"], "step": d["step"], "round": d["round"],
            // A step that fell due while the gateway was down is recorded, not sent.
            "notified": d["notified"].as_bool().unwrap_or(true),
        });
        for p in d["paged"].as_array().into_iter().flatten() {
            let via = p["via"].as_str().unwrap_or_default();
            out.push(json!({
                "person": p["person"], "via": via, "schedule": via.strip_prefix("schedule:"), "step": step,
            }));
        }
        for s in d["nobodyOnCall"].as_array().into_iter().flatten() {
            out.push(json!({ "person": null, "schedule": s, "step": step }));
        }
    }
    out
}

fn incident_id(raw: &str) -> Result<i64, WebError> {
    raw.parse().map_err(|_| WebError::not_found(format!("no incident {raw:?}")))
}

async fn detail_context(state: &AppState, viewer: &Viewer, id: i64) -> Result<Value, WebError> {
    let d = state
        .store
        .get_incident(id, crate::clock::now())
        .await?
        .ok_or_else(|| WebError::not_found(format!("no incident {id}")))?;
    let actions: Vec<Value> = IncidentAction::ALL
        .iter()
        .filter(|a| transition(d.incident.state, **a).is_ok())
        .map(|a| {
            let label = match a {
                IncidentAction::Acknowledge => "Acknowledge",
                IncidentAction::Hold => "Hold",
                IncidentAction::Resolve => "Resolve",
                IncidentAction::Reopen => "Reopen",
                IncidentAction::Close => "Close",
            };
            json!({ "action": a.as_str(), "label": label })
        })
        .collect();
    let sla = clocks(d.sla.as_ref());
    let paged = paged(&d.timeline);
    let alerts: Vec<Value> = d.alerts.iter().map(super::alerts::alert_view).collect();
    let mut timeline = serde_json::to_value(&d.timeline).unwrap_or_default();
    if let Some(t) = timeline.as_array_mut() {
        t.reverse();
    }
    let mut v = serde_json::to_value(&d).unwrap_or_default();
    v["alerts"] = alerts.into();
    v["timeline"] = timeline;
    v["sla"] = sla;
    v["paged"] = paged.into();
    Ok(json!({
        "incident": v,
        "actions": if viewer.may("POST", ACT_ROUTE) { actions } else { vec![] },
        "priorities": Priority::ALL.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
    }))
}

/// `GET /incidents/{id}` (or, with `partial=1`, its live part).
pub async fn show(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    viewer: Viewer,
    Path(raw): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> PageResult {
    let id = incident_id(&raw)?;
    let pairs = view::query_pairs(query.as_deref())?;
    if param(&pairs, "partial").is_some() {
        let part = detail_part(&state, &console, &viewer, id).await?;
        return Ok(live::respond(part, headers.get(header::IF_NONE_MATCH)));
    }
    let version = live::version(&state);
    let mut ctx = detail_context(&state, &viewer, id).await?;
    ctx["version"] = version.into();
    let html = console.render("incident.html", view::page(&console, &viewer, "incidents", ctx))?;
    Ok(Html(html).into_response())
}

fn back(console: &Console, form: &Form, default: String) -> axum::response::Response {
    let to = form
        .get("back")
        .filter(|b| b.starts_with('/') && !b.starts_with("//") && !b.contains('\\'))
        .map(|b| format!("{}{b}", console.base))
        .unwrap_or(default);
    let mut resp = Redirect::to(&to).into_response();
    *resp.status_mut() = StatusCode::SEE_OTHER;
    resp
}

fn parse_action(s: Option<&str>) -> Result<IncidentAction, WebError> {
    let s = s.unwrap_or_default();
    IncidentAction::parse(s).ok_or_else(|| {
        WebError::bad_request(format!("unknown action {s:?}: acknowledge, resolve, reopen, hold or close"))
    })
}

fn done_word(a: IncidentAction) -> &'static str {
    match a {
        IncidentAction::Acknowledge => "Acknowledged",
        IncidentAction::Hold => "Put on hold",
        IncidentAction::Resolve => "Resolved",
        IncidentAction::Reopen => "Reopened",
        IncidentAction::Close => "Closed",
    }
}

/// `POST /incidents/{id}/act`: `action` and an optional `comment`.
pub async fn act(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    Path(raw): Path<String>,
    form: Form,
) -> PageResult {
    let id = incident_id(&raw)?;
    form.viewer.require("POST", ACT_ROUTE)?;
    let action = parse_action(form.get("action"))?;
    let store = state.store.from(form.viewer.source);
    store.act(id, action, form.viewer.actor()?, form.text("comment"), crate::clock::now()).await?;
    console.sessions.set_flash(&form.viewer.key, format!("{} incident #{id}", done_word(action)));
    Ok(back(&console, &form, format!("{}/incidents/{id}", console.base)))
}

/// `POST /incidents/bulk`: one action on every checked incident (`id`,
/// repeated); each succeeds or fails on its own, and the message says which.
pub async fn bulk(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    form: Form,
) -> PageResult {
    form.viewer.require("POST", ACT_ROUTE)?;
    let action = parse_action(form.get("action"))?;
    let ids: Vec<i64> = form.all("id").filter_map(|v| v.parse().ok()).collect();
    if ids.is_empty() {
        return Err(WebError::bad_request("select at least one incident"));
    }
    let store = state.store.from(form.viewer.source);
    let actor = form.viewer.actor()?;
    let comment = form.text("comment");
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for id in ids {
        match store.act(id, action, actor.clone(), comment.clone(), crate::clock::now()).await {
            Ok(()) => done.push(format!("#{id}")),
            Err(e) => failed.push(format!("#{id}: {}", WebError::from(e).0.error)),
        }
    }
    let mut msg = format!("{} {} incident{}", done_word(action), done.len(), if done.len() == 1 { "" } else { "s" });
    if !done.is_empty() {
        msg.push_str(&format!(" ({})", done.join(", ")));
    }
    if !failed.is_empty() {
        msg.push_str(&format!("; not done: {}", failed.join("; ")));
    }
    console.sessions.set_flash(&form.viewer.key, msg);
    Ok(back(&console, &form, format!("{}/incidents", console.base)))
}

/// `POST /incidents/{id}/assign`: `assignee` (blank unassigns), or `me`.
pub async fn assign(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    Path(raw): Path<String>,
    form: Form,
) -> PageResult {
    let id = incident_id(&raw)?;
    form.viewer.require("POST", "/api/v1/incidents/{id}/assign")?;
    let assignee = if form.get("me").is_some() { Some(form.viewer.name.clone()) } else { form.text("assignee") };
    let msg = match &assignee {
        Some(a) => format!("Assigned incident #{id} to {a}"),
        None => format!("Unassigned incident #{id}"),
    };
    state.store.from(form.viewer.source).assign(id, assignee, form.viewer.actor()?, crate::clock::now()).await?;
    console.sessions.set_flash(&form.viewer.key, msg);
    Ok(back(&console, &form, format!("{}/incidents/{id}", console.base)))
}

/// `POST /incidents/{id}/priority`: `priority` and `comment`.
pub async fn priority(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    Path(raw): Path<String>,
    form: Form,
) -> PageResult {
    let id = incident_id(&raw)?;
    form.viewer.require("PATCH", "/api/v1/incidents/{id}/priority")?;
    let text = form.get("priority").unwrap_or_default();
    let p = Priority::parse(text)
        .ok_or_else(|| WebError::bad_request(format!("priority: expected P1 to P5, got {text:?}")))?;
    state
        .store
        .from(form.viewer.source)
        .set_priority(id, p, form.viewer.actor()?, form.text("comment"), crate::clock::now())
        .await?;
    console.sessions.set_flash(&form.viewer.key, format!("Incident #{id} is now {p}"));
    Ok(back(&console, &form, format!("{}/incidents/{id}", console.base)))
}

/// `POST /incidents/{id}/note`: `text`.
/// `POST /incidents`: a person reports an incident (the service desk).
pub async fn report(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    form: Form,
) -> PageResult {
    form.viewer.require("POST", "/api/v1/incidents")?;
    let title = form.text("title").ok_or_else(|| WebError::bad_request("title: say what is wrong"))?;
    if title.chars().count() > 500 {
        return Err(WebError::bad_request("title: at most 500 characters"));
    }
    let level = |name: &str| -> Result<Option<String>, WebError> {
        match form.text(name) {
            Some(v) if ["high", "medium", "low"].contains(&v.as_str()) => Ok(Some(v)),
            Some(v) => Err(WebError::bad_request(format!("{name}: high, medium or low, not {v:?}"))),
            None => Ok(None),
        }
    };
    let report = crate::model::incident::NewReport {
        title,
        description: form.text("description"),
        service: form.text("service"),
        impact: level("impact")?
            .and_then(|v| crate::model::incident::Impact::parse(&v))
            .unwrap_or(crate::model::incident::Impact::Medium),
        urgency: level("urgency")?
            .and_then(|v| crate::model::incident::Urgency::parse(&v))
            .unwrap_or(crate::model::incident::Urgency::Medium),
        reporter: form.text("reporter"),
        labels: Default::default(),
        assignee: None,
    };
    let id =
        state.store.from(form.viewer.source).report_incident(report, form.viewer.actor()?, crate::clock::now()).await?;
    console.sessions.set_flash(&form.viewer.key, format!("Incident #{id} reported"));
    let mut resp = Redirect::to(&format!("{}/incidents/{id}", console.base)).into_response();
    *resp.status_mut() = StatusCode::SEE_OTHER;
    Ok(resp)
}

pub async fn note(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    Path(raw): Path<String>,
    form: Form,
) -> PageResult {
    let id = incident_id(&raw)?;
    form.viewer.require("POST", "/api/v1/incidents/{id}/notes")?;
    let text = form.text("text").ok_or_else(|| WebError::bad_request("text: a note needs text"))?;
    state.store.from(form.viewer.source).note(id, text, form.viewer.actor()?, crate::clock::now()).await?;
    console.sessions.set_flash(&form.viewer.key, format!("Note added to incident #{id}"));
    Ok(back(&console, &form, format!("{}/incidents/{id}", console.base)))
}
