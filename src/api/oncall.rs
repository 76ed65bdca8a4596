//! Who is on call: `GET /api/v1/oncall`, `GET /api/v1/schedules`, the
//! final shifts of a window, overrides (`POST/GET
//! /api/v1/schedules/{name}/overrides`, `DELETE .../overrides/{id}`),
//! `GET /api/v1/people`, and calendar feeds: keys made and revoked under
//! `/api/v1/calendar-feeds`, the feeds themselves at
//! `.../calendar.ics?key=KEY` (calendar apps send no headers, so the key
//! in the URL is the credential).
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::Caller;
use super::body::JsonText;
use super::error::{ApiError, ErrorBody};
use super::{AppState, Id, PathText};
use crate::model::oncall::{CalendarFeed, FeedOf, NewOverride, ScheduleOverride};
use crate::oncall::board::{ScheduleNow, ShiftView, WithOverrides};
use crate::oncall::{Override, Schedule};

/// The longest window of shifts one request computes.
const MAX_WINDOW: SignedDuration = SignedDuration::from_hours(400 * 24);
/// A calendar feed shows this much of the past and of the future.
const FEED_PAST: SignedDuration = SignedDuration::from_hours(30 * 24);
const FEED_AHEAD: SignedDuration = SignedDuration::from_hours(365 * 24);

fn schedule<'r>(rules: &'r crate::rules::RuleSet, name: &str) -> Result<&'r Schedule, ApiError> {
    rules.schedules.get(name).ok_or_else(|| {
        let known: Vec<&String> = rules.schedules.keys().collect();
        ApiError::not_found(format!("no schedule named {name:?} in the rules")).with_detail(json!({ "known": known }))
    })
}

/// A schedule's stored overrides as the on-call computation takes them.
struct Stored(Vec<ScheduleOverride>);

impl Stored {
    fn used(state: &AppState, all: Vec<ScheduleOverride>) -> Stored {
        let known = |o: &ScheduleOverride| state.config.people.iter().any(|p| p.name == o.person);
        Stored(all.into_iter().filter(known).collect())
    }

    fn of(&self, schedule: &str) -> (Vec<Override>, Vec<i64>) {
        self.0.iter().filter(|o| o.schedule == schedule).map(|o| (Override::from(o), o.id)).unzip()
    }
}

/// The overrides that decide who is on call: those naming someone of the
/// config (as the gateway pages; others are listed, not used).
async fn stored(state: &AppState, schedule: Option<&str>, from: Timestamp, to: Timestamp) -> Result<Stored, ApiError> {
    Ok(Stored::used(state, state.store.overrides(schedule.map(str::to_owned), from, to).await?))
}

/// Who is on call now and next in each schedule of the rules (or those named).
pub async fn board(state: &AppState, only: Option<&str>, at: Timestamp) -> Result<Vec<ScheduleNow>, ApiError> {
    // Overrides ahead matter too: the next shift may be one.
    let overrides = stored(state, only, at, Timestamp::MAX).await?;
    Ok(board_of(state, &overrides, only, at))
}

fn board_of(state: &AppState, overrides: &Stored, only: Option<&str>, at: Timestamp) -> Vec<ScheduleNow> {
    let rules = state.rules();
    let mut out = Vec::new();
    for s in rules.schedules.values().filter(|s| only.is_none_or(|o| o == s.name)) {
        let (o, ids) = overrides.of(&s.name);
        out.push(WithOverrides { schedule: s, overrides: &o, ids: &ids }.now(at));
    }
    out
}

/// What the on-call gauges show of each schedule at `at`: its name, whether
/// someone is on call, until when, and how many overrides are in force.
pub async fn coverage(
    state: &AppState,
    at: Timestamp,
) -> Result<Vec<(String, bool, Option<Timestamp>, usize)>, ApiError> {
    let all = state.store.overrides(None, at, Timestamp::MAX).await?;
    let in_force = |schedule: &str| all.iter().filter(|o| o.schedule == schedule && o.start <= at).count();
    let board = board_of(state, &Stored::used(state, all.clone()), None, at);
    Ok(board
        .into_iter()
        .map(|s| {
            let live = in_force(&s.schedule);
            (s.schedule, s.now.is_some(), s.now.and_then(|n| n.end), live)
        })
        .collect())
}

/// The final shifts of `name` in `[from, to)`.
pub async fn shifts_of(
    state: &AppState,
    name: &str,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<ShiftView>, ApiError> {
    let rules = state.rules();
    let s = schedule(&rules, name)?;
    let (o, ids) = stored(state, Some(name), from, to).await?.of(name);
    Ok(WithOverrides { schedule: s, overrides: &o, ids: &ids }.shifts(from, to))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OnCallBoard {
    at: Timestamp,
    schedules: Vec<ScheduleNow>,
}

fn time(key: &str, value: &str) -> Result<Timestamp, ApiError> {
    value.parse().map_err(|_| ApiError::bad_request(format!("{key}: expected an RFC 3339 time, got {value:?}")))
}

/// Who is on call in each schedule now (or `at`), until when, and who next.
#[utoipa::path(get, path = "/api/v1/oncall", tag = "oncall",
    params(
        ("schedule" = Option<String>, Query, description = "Only this schedule"),
        ("at" = Option<String>, Query, format = DateTime, description = "RFC 3339; default now"),
    ),
    responses(
        (status = 200, description = "Each schedule of the rules, by name", body = OnCallBoard),
        (status = 400, description = "A bad parameter", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
    ))]
pub async fn oncall(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Json<OnCallBoard>, ApiError> {
    let (mut only, mut at) = (None, crate::clock::now());
    for (key, value) in super::query_pairs(query.as_deref())? {
        match key.as_str() {
            "schedule" => only = Some(value),
            "at" => at = time(&key, &value)?,
            _ => return Err(ApiError::bad_request(format!("unknown query parameter {key:?}; known: schedule, at"))),
        }
    }
    if let Some(name) = &only {
        schedule(&state.rules(), name)?;
    }
    Ok(Json(OnCallBoard { at, schedules: board(&state, only.as_deref(), at).await? }))
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSummary {
    name: String,
    timezone: String,
    /// Lowest first: a later layer wins where it has someone on call.
    layers: Vec<LayerSummary>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LayerSummary {
    name: String,
    people: Vec<String>,
    restricted: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ScheduleList {
    schedules: Vec<ScheduleSummary>,
}

/// The schedules of the rules, by name.
#[utoipa::path(get, path = "/api/v1/schedules", tag = "oncall",
    responses((status = 200, description = "The schedules of the rules", body = ScheduleList)))]
pub async fn schedules(State(state): State<AppState>) -> Json<ScheduleList> {
    let rules = state.rules();
    let schedules = rules
        .schedules
        .values()
        .map(|s| ScheduleSummary {
            name: s.name.clone(),
            timezone: s.timezone.iana_name().unwrap_or("UTC").to_owned(),
            layers: s
                .layers
                .iter()
                .map(|l| LayerSummary {
                    name: l.name.clone(),
                    people: l.rotation.people.clone(),
                    restricted: l.restrict.is_some(),
                })
                .collect(),
        })
        .collect();
    Json(ScheduleList { schedules })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ShiftList {
    schedule: String,
    from: Timestamp,
    to: Timestamp,
    shifts: Vec<ShiftView>,
}

/// A window from the query (`from`, `to`; default now and 14 days on).
fn window(query: Option<&str>) -> Result<(Timestamp, Timestamp), ApiError> {
    let (mut from, mut to) = (None, None);
    for (key, value) in super::query_pairs(query)? {
        match key.as_str() {
            "from" => from = Some(time(&key, &value)?),
            "to" => to = Some(time(&key, &value)?),
            _ => return Err(ApiError::bad_request(format!("unknown query parameter {key:?}; known: from, to"))),
        }
    }
    let from = from.unwrap_or_else(crate::clock::now);
    let to = to.unwrap_or_else(|| from.saturating_add(SignedDuration::from_hours(14 * 24)).unwrap_or(from));
    if from >= to {
        return Err(ApiError::bad_request("from: must be before to"));
    }
    if to.duration_since(from) > MAX_WINDOW {
        return Err(ApiError::bad_request("to: a window spans at most 400 days"));
    }
    Ok((from, to))
}

/// The final shifts of a schedule in a window, overrides applied; the
/// first and last are cut at the window's edges.
#[utoipa::path(get, path = "/api/v1/schedules/{name}/shifts", tag = "oncall",
    params(
        ("name" = String, Path),
        ("from" = Option<String>, Query, format = DateTime, description = "RFC 3339; default now"),
        ("to" = Option<String>, Query, format = DateTime, description = "RFC 3339; default 14 days after `from`; at most 400 days after"),
    ),
    responses(
        (status = 200, description = "The shifts, in order", body = ShiftList),
        (status = 400, description = "A bad window", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
    ))]
pub async fn shifts(
    State(state): State<AppState>,
    PathText(name): PathText,
    RawQuery(query): RawQuery,
) -> Result<Json<ShiftList>, ApiError> {
    let (from, to) = window(query.as_deref())?;
    let shifts = shifts_of(&state, &name, from, to).await?;
    Ok(Json(ShiftList { schedule: name, from, to, shifts }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct OverrideBody {
    /// A person of the config's `people`.
    person: String,
    /// RFC 3339.
    start: String,
    /// RFC 3339, after `start` and after now; at most 366 days after `start`.
    end: String,
    #[schema(max_length = 500)]
    reason: Option<String>,
    #[schema(max_length = 200)]
    actor: Option<String>,
}

/// Put someone on call in a schedule from `start` to `end`, over its
/// layers (a swap, or cover); a later override wins where two overlap.
#[utoipa::path(post, path = "/api/v1/schedules/{name}/overrides", tag = "oncall",
    params(("name" = String, Path)),
    request_body = OverrideBody,
    responses(
        (status = 201, description = "The override", body = ScheduleOverride),
        (status = 400, description = "A bad body; `detail.errors` lists every problem", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
    ))]
pub async fn create_override(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathText(name): PathText,
    JsonText(body): JsonText,
) -> Result<(StatusCode, Json<ScheduleOverride>), ApiError> {
    schedule(&state.rules(), &name)?;
    let b: OverrideBody = crate::ingest::from_json_object(&body, "")?;
    let (start, end) = (time("start", b.start.trim())?, time("end", b.end.trim())?);
    let reason = b.reason.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
    if reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(ApiError::bad_request("reason: at most 500 characters"));
    }
    let person = b.person.trim().to_owned();
    let known = state.config.people.iter().any(|p| p.name == person);
    let now = crate::clock::now();
    let new = NewOverride::check(true, known, NewOverride { schedule: name, person, start, end, reason }, now)
        .map_err(|errors| ApiError::bad_request(errors.join("; ")).with_detail(json!({ "errors": errors })))?;
    let actor = caller.actor(b.actor)?;
    let made = state.store.from(caller.source).create_override(new, actor, now).await?;
    Ok((StatusCode::CREATED, Json(made)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OverrideList {
    overrides: Vec<ScheduleOverride>,
}

/// A schedule's overrides not ended (or overlapping `from`..`to`), oldest first.
#[utoipa::path(get, path = "/api/v1/schedules/{name}/overrides", tag = "oncall",
    params(
        ("name" = String, Path),
        ("from" = Option<String>, Query, format = DateTime, description = "RFC 3339; default now"),
        ("to" = Option<String>, Query, format = DateTime, description = "RFC 3339; default: no end"),
    ),
    responses(
        (status = 200, description = "The overrides", body = OverrideList),
        (status = 400, description = "A bad parameter", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
    ))]
pub async fn list_overrides(
    State(state): State<AppState>,
    PathText(name): PathText,
    RawQuery(query): RawQuery,
) -> Result<Json<OverrideList>, ApiError> {
    schedule(&state.rules(), &name)?;
    let (mut from, mut to) = (crate::clock::now(), Timestamp::MAX);
    for (key, value) in super::query_pairs(query.as_deref())? {
        match key.as_str() {
            "from" => from = time(&key, &value)?,
            "to" => to = time(&key, &value)?,
            _ => return Err(ApiError::bad_request(format!("unknown query parameter {key:?}; known: from, to"))),
        }
    }
    Ok(Json(OverrideList { overrides: state.store.overrides(Some(name), from, to).await? }))
}

/// The `{name}` and `{id}` of `/api/v1/schedules/{name}/overrides/{id}`.
pub struct OverridePath {
    schedule: String,
    id: i64,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for OverridePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, s: &S) -> Result<Self, Self::Rejection> {
        let Id(id) = Id::from_request_parts(parts, s).await?;
        let params = super::path_params(parts).await?;
        let schedule = params.into_iter().find(|(k, _)| k == "name").map(|(_, v)| v).unwrap_or_default();
        Ok(OverridePath { schedule, id })
    }
}

/// Delete an override: the schedule's layers decide again (kept in the
/// audit log).
#[utoipa::path(delete, path = "/api/v1/schedules/{name}/overrides/{id}", tag = "oncall",
    params(("name" = String, Path), ("id" = i64, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 404, description = "No such override of this schedule", body = ErrorBody),
    ))]
pub async fn delete_override(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    OverridePath { schedule, id }: OverridePath,
) -> Result<StatusCode, ApiError> {
    state.store.from(caller.source).delete_override(schedule, id, caller.name(), crate::clock::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonView {
    name: String,
    email: Option<String>,
    timezone: Option<String>,
    /// `{notifier, handle}` when reached through a webhook.
    webhook: Option<serde_json::Value>,
    /// The schedules whose layers name them.
    schedules: Vec<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PersonList {
    people: Vec<PersonView>,
}

/// The people of the config and the schedules they are in.
#[utoipa::path(get, path = "/api/v1/people", tag = "oncall",
    responses((status = 200, description = "The config's people", body = PersonList)))]
pub async fn people(State(state): State<AppState>) -> Json<PersonList> {
    let rules = state.rules();
    let people = state
        .config
        .people
        .iter()
        .map(|p| PersonView {
            name: p.name.clone(),
            email: p.email.clone(),
            timezone: p.timezone.as_ref().and_then(|t| t.iana_name()).map(str::to_owned),
            webhook: p.webhook.as_ref().map(|w| json!({ "notifier": w.notifier, "handle": w.handle })),
            schedules: rules
                .schedules
                .values()
                .filter(|s| s.layers.iter().any(|l| l.rotation.people.contains(&p.name)))
                .map(|s| s.name.clone())
                .collect(),
        })
        .collect();
    Json(PersonList { people })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct FeedBody {
    /// A schedule of the rules; or `person`.
    schedule: Option<String>,
    /// A person of the config.
    person: Option<String>,
    #[schema(max_length = 200)]
    actor: Option<String>,
}

/// A new feed: its key is shown here only.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewFeed {
    #[serde(flatten)]
    feed: CalendarFeed,
    /// The feed's URL with its key, to subscribe to in a calendar app.
    url: String,
    key: String,
}

/// Make a calendar feed of a schedule's or a person's shifts; the answer
/// holds its URL with the key (stored only as a hash: not shown again).
#[utoipa::path(post, path = "/api/v1/calendar-feeds", tag = "oncall",
    request_body = FeedBody,
    responses(
        (status = 201, description = "The feed, its key and URL", body = NewFeed),
        (status = 400, description = "A bad body", body = ErrorBody),
        (status = 404, description = "No such schedule or person", body = ErrorBody),
    ))]
pub async fn create_feed(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonText(body): JsonText,
) -> Result<(StatusCode, Json<NewFeed>), ApiError> {
    let b: FeedBody = crate::ingest::from_json_object(&body, "")?;
    let of = match (b.schedule, b.person) {
        (Some(s), None) => {
            schedule(&state.rules(), &s)?;
            FeedOf::Schedule(s)
        }
        (None, Some(p)) => {
            if !state.config.people.iter().any(|x| x.name == p) {
                return Err(ApiError::not_found(format!("no person {p:?} in the config's people")));
            }
            FeedOf::Person(p)
        }
        _ => return Err(ApiError::bad_request("schedule, person: give exactly one")),
    };
    let key = crate::model::oncall::new_feed_key();
    let hash = crate::model::oncall::feed_key_hash(&key);
    let actor = caller.actor(b.actor)?;
    let feed = state.store.from(caller.source).create_calendar_feed(of, hash, actor, crate::clock::now()).await?;
    let base = state.config.web.external_url.clone().unwrap_or_default();
    let url = format!("{base}{}?key={key}", feed.of.path());
    Ok((StatusCode::CREATED, Json(NewFeed { feed, url, key })))
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedList {
    calendar_feeds: Vec<CalendarFeed>,
}

/// Every calendar feed, revoked ones too (never their keys).
#[utoipa::path(get, path = "/api/v1/calendar-feeds", tag = "oncall",
    responses((status = 200, description = "The feeds", body = FeedList)))]
pub async fn list_feeds(State(state): State<AppState>) -> Result<Json<FeedList>, ApiError> {
    Ok(Json(FeedList { calendar_feeds: state.store.calendar_feeds().await? }))
}

/// Revoke a feed: its URL answers 404 from now on.
#[utoipa::path(delete, path = "/api/v1/calendar-feeds/{id}", tag = "oncall",
    params(("id" = i64, Path)),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 404, description = "No live feed of this id", body = ErrorBody),
    ))]
pub async fn revoke_feed(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
) -> Result<StatusCode, ApiError> {
    state.store.from(caller.source).revoke_calendar_feed(id, caller.name(), crate::clock::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The feed the query's key opens, if it is a live key of `of`; anything
/// else is the same 404, so a feed cannot be probed for.
async fn feed_for(state: &AppState, of: &FeedOf, query: Option<&str>) -> Result<(), ApiError> {
    let refused = || ApiError::not_found("no such calendar feed, or its key was revoked");
    let key = super::query_pairs(query)?.into_iter().find(|(k, _)| k == "key").map(|(_, v)| v).ok_or_else(refused)?;
    let feed = state.store.calendar_feed_by_key(crate::model::oncall::feed_key_hash(&key)).await?;
    if feed.is_some_and(|f| f.of == *of) { Ok(()) } else { Err(refused()) }
}

fn ics(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/calendar; charset=utf-8"), (header::CACHE_CONTROL, "private, max-age=300")], body)
        .into_response()
}

/// A schedule's shifts as an iCalendar feed (30 days back, a year ahead).
#[utoipa::path(get, path = "/api/v1/schedules/{name}/calendar.ics", tag = "oncall",
    params(("name" = String, Path), ("key" = String, Query, description = "The feed's key")),
    responses(
        (status = 200, description = "The feed", body = String, content_type = "text/calendar"),
        (status = 404, description = "No such feed, or a revoked or wrong key", body = ErrorBody),
    ))]
pub async fn schedule_calendar(
    State(state): State<AppState>,
    PathText(name): PathText,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let of = FeedOf::Schedule(name);
    feed_for(&state, &of, query.as_deref()).await?;
    calendar(&state, &of).await
}

/// A person's shifts in every schedule as an iCalendar feed.
#[utoipa::path(get, path = "/api/v1/people/{name}/calendar.ics", tag = "oncall",
    params(("name" = String, Path), ("key" = String, Query, description = "The feed's key")),
    responses(
        (status = 200, description = "The feed", body = String, content_type = "text/calendar"),
        (status = 404, description = "No such feed, or a revoked or wrong key", body = ErrorBody),
    ))]
pub async fn person_calendar(
    State(state): State<AppState>,
    PathText(name): PathText,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let of = FeedOf::Person(name);
    feed_for(&state, &of, query.as_deref()).await?;
    calendar(&state, &of).await
}

/// The iCalendar feed of a schedule's shifts, or of a person's in every
/// schedule: 30 days back to a year ahead, each shift whole.
async fn calendar(state: &AppState, of: &FeedOf) -> Result<Response, ApiError> {
    let now = crate::clock::now();
    let (from, to) = (now.saturating_sub(FEED_PAST).unwrap_or(now), now.saturating_add(FEED_AHEAD).unwrap_or(now));
    let rules = state.rules();
    let (name, only) = match of {
        FeedOf::Schedule(s) => (s, Some(schedule(&rules, s)?.name.as_str())),
        FeedOf::Person(p) => (p, None),
    };
    let overrides = stored(state, only, from, to).await?;
    let mut shifts = Vec::new();
    for s in rules.schedules.values().filter(|s| only.is_none_or(|o| o == s.name)) {
        let (o, ids) = overrides.of(&s.name);
        let theirs = WithOverrides { schedule: s, overrides: &o, ids: &ids }.whole_shifts(from, to);
        let mine = |x: &ShiftView| matches!(of, FeedOf::Schedule(_)) || x.person == *name;
        shifts.extend(theirs.into_iter().filter(mine).map(|x| (s.name.as_str(), x)));
    }
    shifts.sort_by_key(|(_, x)| x.start);
    let title = format!("On call: {name}");
    let feed = crate::oncall::ical::Feed { name: &title, description: None };
    let events: Vec<_> = shifts
        .iter()
        .map(|(s, x)| crate::oncall::ical::FeedShift { schedule: s, person: &x.person, start: x.start, end: x.end })
        .collect();
    Ok(ics(crate::oncall::ical::render(&feed, &events, now)))
}
