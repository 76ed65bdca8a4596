//! `/alerts` (what fires, grouped by a label) and `/silences` (active and
//! pending ones, one form to add one, expire).
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::session::Form;
use super::view::{self, param};
use super::{Console, PageResult, Viewer, WebError};
use crate::api::AppState;
use crate::engine::silence::{Silence, silenced_by};
use crate::model::MuteReason;
use crate::model::{AlertRecord, AlertStatus, LabelSet};
use crate::rules::matcher::{Matcher, parse_matchers};
use crate::store::{AlertQuery, IncidentAlert};

/// Alerts shown on one page of `/alerts`.
const PAGE: usize = 500;
/// Firing alerts a silence preview counts at most.
const PREVIEW_MAX: usize = 10_000;
const SILENCE_ROUTE: &str = "/api/v1/silences";

/// Annotations whose value is a link people follow, and what to call it.
const LINKS: &[(&str, &str)] = &[
    ("runbook_url", "Runbook"),
    ("runbook", "Runbook"),
    ("dashboard_url", "Dashboard"),
    ("dashboard", "Dashboard"),
    ("grafana_dashboard_url", "Dashboard"),
    ("panel_url", "Panel"),
    ("silence_url", "Grafana silence"),
    ("client_url", "Source"),
];

/// `name="value"` with the value quoted as Alertmanager reads it.
fn equal_matcher(name: &str, value: &str) -> String {
    let v = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    format!("{name}=\"{v}\"")
}

/// The `/silences` link that opens the form with these labels as matchers.
fn silence_link(labels: &LabelSet) -> String {
    let pairs: Vec<(&str, String)> = labels.iter().map(|(k, v)| ("matcher", equal_matcher(k, v))).collect();
    format!("/silences?{}", serde_urlencoded::to_string(pairs).unwrap_or_default())
}

/// What mutes an alert, as words and a link.
fn muted(reason: MuteReason) -> Value {
    match reason {
        MuteReason::Silence(id) => {
            json!({ "text": format!("silenced by silence #{id}"), "href": format!("/silences#silence-{id}") })
        }
        MuteReason::Maintenance(id) => {
            json!({ "text": format!("in maintenance window (change #{id})"), "href": format!("/changes#change-{id}") })
        }
        MuteReason::Inhibited => json!({ "text": "muted: inhibited", "href": null }),
    }
}

fn record_view(a: &AlertRecord, silences: &[Silence], now: jiff::Timestamp) -> Value {
    let mut links = Vec::new();
    let mut annotations = Vec::new();
    for (k, v) in &a.annotations {
        let href = view::web_link(v);
        if let (Some(h), Some((_, label))) = (&href, LINKS.iter().find(|(name, _)| name == k)) {
            links.push(json!({ "label": label, "href": h }));
        }
        annotations.push(json!({ "name": k, "value": v, "href": href }));
    }
    if let Some(h) = a.generator_url.as_deref().and_then(view::web_link) {
        links.push(json!({ "label": "Generator", "href": h }));
    }
    // A silence made after the alert fired mutes it from its next firing
    // episode on; it is shown as silenced now, as Alertmanager shows it.
    let muted = match (&a.muted_by, a.status) {
        (Some(r), _) => muted(*r),
        (None, AlertStatus::Firing) => {
            silenced_by(silences, &a.labels, now).map_or(Value::Null, |s| muted(MuteReason::Silence(s.id)))
        }
        _ => Value::Null,
    };
    json!({
        "fingerprint": a.fingerprint.as_str(),
        "status": a.status.as_str(),
        "name": a.labels.get("alertname").cloned().unwrap_or_else(|| a.fingerprint.as_str().to_owned()),
        "labels": a.labels.iter().map(|(k, v)| json!({ "name": k, "value": v })).collect::<Vec<_>>(),
        "annotations": annotations,
        "links": links,
        "summary": a.annotations.get("summary").or_else(|| a.annotations.get("description")),
        "starts_at": a.starts_at, "last_seen": a.last_seen, "occurrences": a.occurrences,
        "muted": muted,
        "silence_href": silence_link(&a.labels),
    })
}

/// An incident's alert for its page.
pub fn alert_view(a: &IncidentAlert) -> Value {
    let mut v = record_view(&a.alert, &[], crate::clock::now());
    v["firing"] = a.firing.into();
    v["joined_at"] = json!(a.joined_at);
    v
}

/// `GET /alerts`: `filter` (Alertmanager matchers), `group` (a label,
/// default `alertname`), `state` (`firing` default, `resolved`, `all`), `cursor`.
pub async fn list(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let pairs = view::query_pairs(raw.as_deref())?;
    let filter = param(&pairs, "filter").unwrap_or_default().trim().to_owned();
    let group = param(&pairs, "group").unwrap_or("alertname").trim().to_owned();
    let status_text = param(&pairs, "state").unwrap_or("firing").to_owned();
    let mut q = AlertQuery { limit: PAGE, ..Default::default() };
    let mut error = None;
    if !filter.is_empty() {
        match parse_matchers(&filter) {
            Ok(m) => q.matchers = m,
            Err(e) => error = Some(e.to_string()),
        }
    }
    q.status = match status_text.as_str() {
        "all" => None,
        s => Some(
            AlertStatus::parse(s)
                .ok_or_else(|| WebError::bad_request(format!("state: expected firing, resolved or all, got {s:?}")))?,
        ),
    };
    q.before = param(&pairs, "cursor").and_then(|c| c.parse().ok());
    let page = if error.is_none() { Some(state.store.list_alerts(q).await?) } else { None };
    let silences = state.store.list_silences(false, crate::clock::now()).await?;
    let now = crate::clock::now();
    let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut count = 0;
    let mut muted_count = 0;
    let mut names = std::collections::BTreeSet::new();
    for a in page.as_ref().map(|p| p.alerts.as_slice()).unwrap_or_default() {
        names.extend(a.labels.keys().cloned());
        let v = record_view(a, &silences, now);
        muted_count += usize::from(!v["muted"].is_null());
        count += 1;
        groups.entry(a.labels.get(&group).cloned().unwrap_or_default()).or_default().push(v);
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(value, alerts)| {
            let silence = if value.is_empty() {
                None
            } else {
                Some(silence_link(&LabelSet::from([(group.clone(), value.clone())])))
            };
            json!({ "value": value, "count": alerts.len(), "alerts": alerts, "silence_href": silence })
        })
        .collect();
    let next = page.as_ref().and_then(|p| p.next_cursor.clone()).map(|c| {
        let kept: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| k != "cursor").collect();
        let mut q = serde_urlencoded::to_string(kept).unwrap_or_default();
        if !q.is_empty() {
            q.push('&');
        }
        format!("?{q}cursor={c}")
    });
    let ctx = json!({
        "filter": filter, "group": group, "state": status_text, "error": error, "groups": groups,
        "count": count, "muted_count": muted_count, "labels": names, "next": next,
    });
    let html = console.render("alerts.html", view::page(&console, &viewer, "alerts", ctx))?;
    Ok(Html(html).into_response())
}

/// Matchers from the form's text: one per line (or `{a="1", b=~"x"}`).
fn matchers_from(text: &str) -> Result<Vec<Matcher>, String> {
    let mut all = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        all.extend(parse_matchers(line).map_err(|e| e.to_string())?);
    }
    if all.is_empty() {
        return Err("a silence needs at least one matcher".into());
    }
    // As the API and Alertmanager refuse: such a silence would mute everything.
    if all.iter().all(|m| m.matches(&LabelSet::new())) {
        return Err("these matchers match every alert; name at least one label value".into());
    }
    Ok(all)
}

/// Firing alerts the matchers select now, up to [`PREVIEW_MAX`].
async fn firing_matches(state: &AppState, matchers: Vec<Matcher>) -> Result<(usize, bool), WebError> {
    let mut n = 0;
    let mut before = None;
    loop {
        let q = AlertQuery {
            status: Some(AlertStatus::Firing),
            matchers: matchers.clone(),
            before,
            limit: 1000,
            ..Default::default()
        };
        let page = state.store.list_alerts(q).await?;
        n += page.alerts.len();
        match page.next_cursor.and_then(|c| c.parse().ok()) {
            Some(c) if n < PREVIEW_MAX => before = Some(c),
            Some(_) => return Ok((n, true)),
            None => return Ok((n, false)),
        }
    }
}

/// `GET /silences/preview?matchers=TEXT`: how many firing alerts the
/// matchers would silence now (`{"count", "more", "error"}`).
pub async fn preview(
    State(state): State<AppState>,
    _viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, WebError> {
    let pairs = view::query_pairs(raw.as_deref())?;
    Ok(Json(match matchers_from(param(&pairs, "matchers").unwrap_or_default()) {
        Ok(m) => {
            let (count, more) = firing_matches(&state, m).await?;
            json!({ "count": count, "more": more, "error": null })
        }
        Err(e) => json!({ "count": null, "more": false, "error": e }),
    }))
}

/// `GET /silences`: active and pending silences, and the form (prefilled
/// by `matcher` parameters, e.g. from an alert's Silence link).
pub async fn silences(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let pairs = view::query_pairs(raw.as_deref())?;
    let prefill: Vec<&str> = pairs.iter().filter(|(k, _)| k == "matcher").map(|(_, v)| v.as_str()).collect();
    let text = prefill.join("\n");
    let preview = if text.is_empty() {
        Value::Null
    } else {
        match matchers_from(&text) {
            Ok(m) => {
                let (count, more) = firing_matches(&state, m).await?;
                json!({ "count": count, "more": more })
            }
            Err(e) => json!({ "error": e }),
        }
    };
    let now = crate::clock::now();
    let list: Vec<Value> = state
        .store
        .list_silences(false, crate::clock::now())
        .await?
        .iter()
        .map(|s| {
            let mut v = serde_json::to_value(s).unwrap_or_default();
            v["state"] = json!(s.state(now));
            v
        })
        .collect();
    let ctx = json!({ "silences": list, "matchers": text, "preview": preview, "open_form": !text.is_empty() });
    let html = console.render("silences.html", view::page(&console, &viewer, "silences", ctx))?;
    Ok(Html(html).into_response())
}

/// The end of a new silence: `ends_at` (UTC, as a `datetime-local` field
/// sends it, or RFC 3339), else `now + duration` (default 2h).
fn silence_end(form: &Form, now: jiff::Timestamp) -> Result<jiff::Timestamp, WebError> {
    if let Some(end) = form.text("ends_at") {
        if let Ok(t) = end.parse::<jiff::Timestamp>() {
            return Ok(t);
        }
        let civil: jiff::civil::DateTime = end
            .parse()
            .map_err(|_| WebError::bad_request(format!("ends_at: expected a date and time, got {end:?}")))?;
        return civil
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp())
            .map_err(|e| WebError::bad_request(format!("ends_at: {e}")));
    }
    let text = form.text("duration").unwrap_or_else(|| "2h".into());
    let d: crate::model::Duration = text
        .parse()
        .map_err(|e: crate::model::duration::DurationError| WebError::bad_request(format!("duration: {e}")))?;
    if d.signed().is_zero() || d.signed().is_negative() {
        return Err(WebError::bad_request("duration: must be positive"));
    }
    now.checked_add(d.signed()).map_err(|e| WebError::bad_request(format!("duration: {e}")))
}

/// `POST /silences`: `matchers` (one per line), `duration` or `ends_at`, `comment`.
pub async fn create_silence(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    form: Form,
) -> PageResult {
    form.viewer.require("POST", SILENCE_ROUTE)?;
    let matchers = matchers_from(form.get("matchers").unwrap_or_default())
        .map_err(|e| WebError::bad_request(format!("matchers: {e}")))?;
    let now = crate::clock::now();
    let ends = silence_end(&form, now)?;
    if ends <= now {
        return Err(WebError::bad_request("the silence must end in the future"));
    }
    let comment = form.text("comment").unwrap_or_default();
    let (count, _) = firing_matches(&state, matchers.clone()).await?;
    let s = state
        .store
        .from(form.viewer.source)
        .create_silence(matchers, now, ends, form.viewer.actor()?, comment, crate::clock::now())
        .await?;
    console.sessions.set_flash(
        &form.viewer.key,
        format!("Silence #{} created; it matches {count} firing alert{}", s.id, if count == 1 { "" } else { "s" }),
    );
    let mut resp = Redirect::to(&format!("{}/silences#silence-{}", console.base, s.id)).into_response();
    *resp.status_mut() = StatusCode::SEE_OTHER;
    Ok(resp)
}

/// `POST /silences/{id}/expire`.
pub async fn expire_silence(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    Path(raw): Path<String>,
    form: Form,
) -> PageResult {
    form.viewer.require("DELETE", "/api/v1/silences/{id}")?;
    let id: i64 = raw.parse().map_err(|_| WebError::not_found(format!("no silence {raw:?}")))?;
    state.store.from(form.viewer.source).expire_silence(id, form.viewer.actor()?, crate::clock::now()).await?;
    console.sessions.set_flash(&form.viewer.key, format!("Silence #{id} expired"));
    let mut resp = Redirect::to(&format!("{}/silences", console.base)).into_response();
    *resp.status_mut() = StatusCode::SEE_OTHER;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silence_link_quotes_label_values() {
        let labels = LabelSet::from([("alertname".to_owned(), "Disk \"full\"".to_owned())]);
        let link = silence_link(&labels);
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(link.trim_start_matches("/silences?")).unwrap();
        assert_eq!(pairs, vec![("matcher".to_owned(), r#"alertname="Disk \"full\"""#.to_owned())]);
        let back = matchers_from(&pairs[0].1).unwrap();
        assert!(back[0].matches(&labels), "the prefilled matcher selects the alert it came from");
    }

    #[test]
    fn silence_matchers_are_checked_as_the_api_checks_them() {
        assert!(matchers_from("").is_err());
        assert!(matchers_from("job=~\".*\"").unwrap_err().contains("every alert"));
        assert!(matchers_from("alertname=\"X\"\n{job=~\"a|b\", env!=\"dev\"}").unwrap().len() == 3);
        assert!(matchers_from("alertname=").is_err());
    }
}
