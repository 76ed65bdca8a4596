//! `/oncall`: who is on call in each schedule now and next, the shifts of
//! the coming two weeks, the overrides not ended, and the forms that add
//! and delete overrides. Times are shown in each schedule's own time zone,
//! where its handoffs happen. The page reads through the API's functions
//! (`api::oncall::board`, `shifts_of`) and writes through the store's
//! override operations with the API's check, so it cannot disagree with
//! what escalation pages.
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::session::Form;
use super::view::{self, param};
use super::{Console, PageResult, Viewer};
use crate::api::AppState;
use crate::model::oncall::{NewOverride, ScheduleOverride};
use crate::oncall::board::Stretch;

/// How far ahead the page lists shifts.
const AHEAD: SignedDuration = SignedDuration::from_hours(14 * 24);
const OVERRIDES_ROUTE: &str = "/api/v1/schedules/{name}/overrides";
const OVERRIDE_ROUTE: &str = "/api/v1/schedules/{name}/overrides/{id}";
/// As the API allows.
const MAX_REASON: usize = 500;

/// An instant as a schedule's people read it: `Tue 3 Mar 09:00`, in the
/// schedule's zone (which the page names once per schedule).
fn local(t: Timestamp, tz: &TimeZone) -> Value {
    let z = t.to_zoned(tz.clone());
    json!({
        "text": z.strftime("%a %-d %b %H:%M").to_string(),
        "day": z.strftime("%a %-d %b").to_string(),
        "time": z.strftime("%H:%M").to_string(),
        "zone": z.strftime("%Z").to_string(),
        "iso": t,
    })
}

/// What put someone on call, as words and, for an override, a link to it
/// in the list below.
fn source(s: &str) -> Value {
    match s.split_once(':') {
        Some(("layer", name)) => json!({ "kind": "layer", "text": format!("layer {name}"), "href": null }),
        Some(("override", id)) => {
            json!({ "kind": "override", "text": format!("override #{id}"), "href": format!("#override-{id}") })
        }
        _ => json!({ "kind": "other", "text": s, "href": null }),
    }
}

fn stretch(s: &Stretch, tz: &TimeZone, now: Timestamp) -> Value {
    json!({
        "person": s.person,
        "since": local(s.start, tz),
        "until": s.end.map(|e| local(e, tz)),
        // The gateway's clock, not the browser's: what is left of the shift.
        "left": s.end.map(|e| view::human_seconds(e.duration_since(now).as_secs_f64())),
        "starts_in": (s.start > now).then(|| view::human_seconds(s.start.duration_since(now).as_secs_f64())),
        "source": source(&s.source),
    })
}

fn override_view(o: &ScheduleOverride, tz: &TimeZone, now: Timestamp) -> Value {
    json!({
        "id": o.id, "person": o.person, "start": local(o.start, tz), "end": local(o.end, tz),
        "reason": o.reason, "by": o.created_by, "active": o.start <= now,
    })
}

/// The form's fields as the browser sent them (or as the query carries
/// them back after a refused submit), so nothing typed is lost.
fn prefill(pairs: &[(String, String)]) -> Value {
    let p = |k: &str| param(pairs, k).unwrap_or_default();
    json!({ "schedule": p("schedule"), "person": p("person"), "start": p("start"), "end": p("end"), "reason": p("reason") })
}

/// `GET /oncall` (`schedule`, `person`, `start`, `end`, `reason` prefill
/// the override form).
pub async fn page(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let pairs = view::query_pairs(raw.as_deref())?;
    let now = crate::clock::now();
    let until = now.saturating_add(AHEAD).unwrap_or(now);
    let rules = state.rules();
    let board = crate::api::oncall::board(&state, None, now).await?;
    let mut overrides: BTreeMap<String, Vec<ScheduleOverride>> = BTreeMap::new();
    for o in state.store.overrides(None, now, Timestamp::MAX).await? {
        overrides.entry(o.schedule.clone()).or_default().push(o);
    }
    let mut schedules = Vec::new();
    for b in &board {
        let tz = rules.schedules.get(&b.schedule).map_or(TimeZone::UTC, |s| s.timezone.clone());
        let shifts: Vec<Value> = crate::api::oncall::shifts_of(&state, &b.schedule, now, until)
            .await?
            .iter()
            .map(|s| {
                json!({
                    "person": s.person, "start": local(s.start, &tz), "end": local(s.end, &tz),
                    "sources": s.sources.iter().map(|x| source(x)).collect::<Vec<_>>(),
                    "current": s.start <= now && now < s.end,
                })
            })
            .collect();
        let mine = overrides.get(&b.schedule).map(Vec::as_slice).unwrap_or_default();
        schedules.push(json!({
            "name": b.schedule,
            "timezone": b.timezone,
            "now": b.now.as_ref().map(|s| stretch(s, &tz, now)),
            "next": b.next.as_ref().map(|s| stretch(s, &tz, now)),
            "shifts": shifts,
            "overrides": mine.iter().map(|o| override_view(o, &tz, now)).collect::<Vec<_>>(),
        }));
    }
    let people: Vec<&str> = state.config.people.iter().map(|p| p.name.as_str()).collect();
    let form = prefill(&pairs);
    let ctx = json!({
        "schedules": schedules,
        "people": people,
        "form": form,
        "open_form": pairs.iter().any(|(_, v)| !v.trim().is_empty()),
        "days": AHEAD.as_hours() / 24,
        "can_override": viewer.may("POST", OVERRIDES_ROUTE),
        "can_delete": viewer.may("DELETE", OVERRIDE_ROUTE),
    });
    let html = console.render("oncall.html", view::page(&console, &viewer, "oncall", ctx))?;
    Ok(Html(html).into_response())
}

/// A time from the form: RFC 3339, or a date and time (as a
/// `datetime-local` field sends it) in the schedule's zone.
fn instant(field: &str, text: &str, tz: &TimeZone) -> Result<Timestamp, String> {
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    let civil: jiff::civil::DateTime =
        text.parse().map_err(|_| format!("{field}: expected a date and time, got {text:?}"))?;
    civil.to_zoned(tz.clone()).map(|z| z.timestamp()).map_err(|e| format!("{field}: {e}"))
}

/// The override the form asks for, checked as the API checks it; else
/// every problem, each naming its field (times that cannot be read are
/// reported alone: the check needs them). A blank start means now.
fn asked(state: &AppState, form: &Form, now: Timestamp) -> Result<NewOverride, Vec<String>> {
    let rules = state.rules();
    let schedule = form.text("schedule").unwrap_or_default();
    let person = form.text("person").unwrap_or_default();
    let tz = rules.schedules.get(&schedule).map_or(TimeZone::UTC, |s| s.timezone.clone());
    let mut problems = Vec::new();
    let start = match form.text("start") {
        None => Some(now),
        Some(t) => instant("start", &t, &tz).map_err(|e| problems.push(e)).ok(),
    };
    let end = match form.text("end") {
        None => {
            problems.push("end: say until when".to_owned());
            None
        }
        Some(t) => instant("end", &t, &tz).map_err(|e| problems.push(e)).ok(),
    };
    let reason = form.text("reason");
    if reason.as_ref().is_some_and(|r| r.chars().count() > MAX_REASON) {
        problems.push(format!("reason: at most {MAX_REASON} characters"));
    }
    let (Some(start), Some(end)) = (start, end) else { return Err(problems) };
    let exists = rules.schedules.contains_key(&schedule);
    let known = state.config.people.iter().any(|p| p.name == person);
    let new = NewOverride { schedule, person, start, end, reason };
    match NewOverride::check(exists, known, new, now) {
        Ok(new) if problems.is_empty() => Ok(new),
        Ok(_) => Err(problems),
        Err(more) => Err(problems.into_iter().chain(more).collect()),
    }
}

fn see_other(to: &str) -> Response {
    let mut resp = Redirect::to(to).into_response();
    *resp.status_mut() = StatusCode::SEE_OTHER;
    resp
}

/// `POST /oncall/overrides`: `schedule`, `person`, `start` (blank: now),
/// `end`, `reason`. Refused, it goes back to the form, open and filled in
/// as sent, with the reasons.
pub async fn create_override(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    form: Form,
) -> PageResult {
    form.viewer.require("POST", OVERRIDES_ROUTE)?;
    let now = crate::clock::now();
    let made = match asked(&state, &form, now) {
        Ok(new) => state
            .store
            .from(form.viewer.source)
            .create_override(new, form.viewer.actor()?, now)
            .await
            .map_err(|e| vec![super::WebError::from(e).0.error]),
        Err(problems) => Err(problems),
    };
    match made {
        Ok(o) => {
            let tz = state.rules().schedules.get(&o.schedule).map_or(TimeZone::UTC, |s| s.timezone.clone());
            let (start, end) = (local(o.start, &tz), local(o.end, &tz));
            console.sessions.set_flash(
                &form.viewer.key,
                format!(
                    "Override #{}: {} on call in {} from {} to {} ({})",
                    o.id,
                    o.person,
                    o.schedule,
                    start["text"].as_str().unwrap_or_default(),
                    end["text"].as_str().unwrap_or_default(),
                    tz.iana_name().unwrap_or("UTC"),
                ),
            );
            // The top of the page, where the message is: not the schedule's
            // section, which would scroll the message out of sight.
            Ok(see_other(&format!("{}/oncall", console.base)))
        }
        Err(problems) => {
            console
                .sessions
                .set_error(&form.viewer.key, format!("The override was not added: {}", problems.join("; ")));
            let kept: Vec<(&str, &str)> = ["schedule", "person", "start", "end", "reason"]
                .into_iter()
                .filter_map(|k| form.get(k).map(|v| (k, v)))
                .collect();
            let query = serde_urlencoded::to_string(kept).unwrap_or_default();
            // Not scrolled to the form: the message above it stays in sight.
            Ok(see_other(&format!("{}/oncall?{query}", console.base)))
        }
    }
}

/// `POST /oncall/overrides/{id}/delete`: `schedule`. The schedule's
/// layers decide again; a refusal is said on the page.
pub async fn delete_override(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<Console>>,
    Path(raw): Path<String>,
    form: Form,
) -> PageResult {
    form.viewer.require("DELETE", OVERRIDE_ROUTE)?;
    let schedule = form.text("schedule").unwrap_or_default();
    let done = match raw.parse::<i64>() {
        Ok(id) => state
            .store
            .from(form.viewer.source)
            .delete_override(schedule.clone(), id, form.viewer.actor()?, crate::clock::now())
            .await
            .map(|()| id)
            .map_err(|e| super::WebError::from(e).0.error),
        Err(_) => Err(format!("no override {raw:?}")),
    };
    match done {
        Ok(id) => console
            .sessions
            .set_flash(&form.viewer.key, format!("Override #{id} of {schedule} deleted; its layers decide again")),
        Err(why) => console.sessions.set_error(&form.viewer.key, format!("The override was not deleted: {why}")),
    }
    Ok(see_other(&format!("{}/oncall", console.base)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn form_times_are_read_in_the_schedules_zone() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(instant("start", "2026-03-02T10:00", &berlin), Ok(t("2026-03-02T09:00:00Z")));
        assert_eq!(instant("start", "2026-07-02T10:00", &berlin), Ok(t("2026-07-02T08:00:00Z")), "summer time");
        assert_eq!(instant("start", "2026-03-02T10:00:00Z", &berlin), Ok(t("2026-03-02T10:00:00Z")), "RFC 3339 as is");
        let bad = instant("end", "tomorrow", &berlin).unwrap_err();
        assert!(bad.starts_with("end: expected a date and time"), "{bad}");
    }

    #[test]
    fn times_and_sources_read_as_people_say_them() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let v = local(t("2026-03-03T08:00:00Z"), &berlin);
        assert_eq!((v["text"].as_str(), v["zone"].as_str()), (Some("Tue 3 Mar 09:00"), Some("CET")));
        assert_eq!(source("layer:daily")["text"], "layer daily");
        assert_eq!(source("override:12")["href"], "#override-12");
    }
}
