//! What callers ask the store and what it answers: filters, pages and
//! details, the same whichever backend answers them.
use jiff::Timestamp;
use serde::Serialize;

use crate::engine::sla::{EscalationView, SlaView};
use crate::model::change::Change;
use crate::model::incident::{Incident, IncidentState, Priority, TimelineEvent};
use crate::model::notification::NotificationState;
use crate::model::problem::{Problem, ProblemState};
use crate::model::{AlertRecord, AlertStatus, Fingerprint, Observation};
use crate::rules::matcher::Matcher;

/// What one ingest request did, by observation.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct IngestOutcome {
    pub created: u64,
    pub repeated: u64,
    pub resolved: u64,
    pub refired: u64,
    pub stale: u64,
    /// Acknowledge/resolve events for fingerprints never seen.
    pub unknown: u64,
}

impl IngestOutcome {
    pub fn count(&mut self, o: Observation) {
        match o {
            Observation::Created => self.created += 1,
            Observation::Repeated => self.repeated += 1,
            Observation::Resolved => self.resolved += 1,
            Observation::Refired => self.refired += 1,
            Observation::Stale => self.stale += 1,
        }
    }

    pub fn count_known(&mut self, known: bool, o: Observation) {
        if known { self.count(o) } else { self.unknown += 1 }
    }

    /// Add the outcome of another part of the same request.
    pub fn add(&mut self, o: &IngestOutcome) {
        self.created += o.created;
        self.repeated += o.repeated;
        self.resolved += o.resolved;
        self.refired += o.refired;
        self.stale += o.stale;
        self.unknown += o.unknown;
    }

    pub fn total(&self) -> u64 {
        self.created + self.repeated + self.resolved + self.refired + self.stale + self.unknown
    }
}

/// Filters for listing alerts.
#[derive(Debug, Default, Clone)]
pub struct AlertQuery {
    pub status: Option<AlertStatus>,
    pub source: Option<String>,
    pub fingerprint: Option<Fingerprint>,
    /// Only alerts a silence or an inhibition keeps from incidents (true),
    /// or only the others (false).
    pub muted: Option<bool>,
    pub matchers: Vec<Matcher>,
    /// Continue below this row id (from a previous page's cursor).
    pub before: Option<i64>,
    pub limit: usize,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertPage {
    pub alerts: Vec<AlertRecord>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Filters for listing incidents.
#[derive(Debug, Default, Clone)]
pub struct IncidentQuery {
    pub states: Vec<IncidentState>,
    pub priorities: Vec<Priority>,
    pub service: Option<String>,
    pub assignee: Option<String>,
    pub rule: Option<String>,
    /// Created at or after.
    pub since: Option<Timestamp>,
    /// Created before.
    pub until: Option<Timestamp>,
    /// Incidents with a clock in this SLA condition.
    pub sla: Option<SlaFilter>,
    /// Titles containing this text (case-insensitive for ASCII).
    pub title: Option<String>,
    pub sort: IncidentSort,
    /// Where the previous page ended: its last row's sort key and id
    /// (`next_cursor` of that page). Pages do not shift when incidents open
    /// meanwhile.
    pub cursor: Option<IncidentCursor>,
    pub limit: usize,
}

/// A position in an incident listing: the sort key and id of the last row
/// seen. Written as `ID` (creation order), `P2:ID` (priority) or
/// `MILLIS:ID` (update time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncidentCursor {
    pub key: i64,
    pub id: i64,
}

impl IncidentCursor {
    pub fn parse(s: &str) -> Option<Self> {
        match s.split_once(':') {
            None => Some(IncidentCursor { key: 0, id: s.parse().ok()? }),
            Some((k, id)) => {
                let key = match Priority::parse(k) {
                    Some(p) => p as i64,
                    None => k.parse().ok()?,
                };
                Some(IncidentCursor { key, id: id.parse().ok()? })
            }
        }
    }
}

/// `?sla=`: incidents with at least one clock in a state, or at risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaFilter {
    State(crate::sla::clock::ClockState),
    /// Running or paused, past a warning, not breached.
    AtRisk,
}

impl SlaFilter {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "at_risk" => Some(SlaFilter::AtRisk),
            _ => crate::sla::clock::ClockState::parse(s).map(SlaFilter::State),
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum IncidentSort {
    /// Newest first.
    #[default]
    CreatedDesc,
    CreatedAsc,
    /// Most urgent first, newest first within a priority.
    Priority,
    /// Most recently changed first.
    UpdatedDesc,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncidentPage {
    pub incidents: Vec<Incident>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// An incident with its SLA, escalation, problems, suspected changes, and
/// a page of its alerts and timeline.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: Incident,
    /// Absent when no SLA policy applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sla: Option<SlaView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation: Option<EscalationView>,
    /// The workaround of the known error this incident is linked to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workaround: Option<String>,
    pub problems: Vec<Problem>,
    /// Changes of its service it started during or soon after.
    pub suspected_changes: Vec<Change>,
    pub alerts: Vec<IncidentAlert>,
    /// Pass as `alerts_cursor` for the next alerts; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts_next_cursor: Option<String>,
    pub timeline: Vec<TimelineEvent>,
    /// Pass as `timeline_cursor` for the next entries; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline_next_cursor: Option<String>,
    /// Up to five earlier incidents like it, with how each was resolved
    /// (see [`crate::engine::similar`]).
    pub similar_incidents: Vec<crate::engine::similar::SimilarIncident>,
}

/// Which part of an incident's alerts and timeline a detail shows: an
/// incident of many alerts is answered in pages, not in one huge document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetailPage {
    pub alerts_limit: usize,
    /// After this (joined at, alert row id), in joining order.
    pub alerts_after: Option<(i64, i64)>,
    pub timeline_limit: usize,
    /// After this entry id, in the chosen order.
    pub timeline_after: Option<i64>,
    pub timeline_newest_first: bool,
}

impl DetailPage {
    pub const MAX_ALERTS: usize = 1000;
    pub const MAX_TIMELINE: usize = 5000;
}

impl Default for DetailPage {
    fn default() -> Self {
        DetailPage {
            alerts_limit: 500,
            alerts_after: None,
            timeline_limit: 1000,
            timeline_after: None,
            timeline_newest_first: false,
        }
    }
}

/// An alert of an incident, with whether it still fires there.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncidentAlert {
    #[serde(flatten)]
    pub alert: AlertRecord,
    pub joined_at: Timestamp,
    /// False once the alert resolved (the alert's own `status` may have
    /// moved on since, if it fired again into another incident).
    pub firing: bool,
}

/// How a delivery of a row ended, as the worker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryRecord {
    /// Delivered; `covered_by` names the digest that carried it.
    Sent {
        covered_by: Option<String>,
    },
    Retry {
        at: Timestamp,
        error: String,
    },
    /// Dead letter: refused for good, or too old.
    Dead {
        error: String,
    },
}

/// Filters for listing notifications, newest first.
#[derive(Debug, Clone, Default)]
pub struct NotificationQuery {
    pub state: Option<NotificationState>,
    pub notifier: Option<String>,
    pub incident: Option<i64>,
    /// Continue below this row id.
    pub before: Option<i64>,
    pub limit: usize,
}

/// A notification as the API lists it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    pub id: i64,
    pub event: String,
    pub incident_id: Option<i64>,
    pub problem_id: Option<i64>,
    pub notifier: String,
    pub idempotency_key: String,
    pub state: String,
    pub attempts: u32,
    pub created_at: Timestamp,
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub sent_at: Option<Timestamp>,
    /// The digest that carried it, when rate limiting coalesced it.
    pub covered_by: Option<String>,
}

/// Filters for listing problems.
#[derive(Debug, Default, Clone)]
pub struct ProblemQuery {
    pub states: Vec<ProblemState>,
    pub before: Option<i64>,
    pub limit: usize,
}

/// An incident as a problem lists it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkedIncident {
    pub id: i64,
    pub title: String,
    pub state: String,
    pub priority: String,
    pub service: Option<String>,
    pub created_at: Timestamp,
    pub linked_at: Timestamp,
    pub linked_by: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProblemDetail {
    #[serde(flatten)]
    pub problem: Problem,
    pub incidents: Vec<LinkedIncident>,
    pub timeline: Vec<TimelineEvent>,
}

/// A problem as submitted by hand.
#[derive(Debug, Clone, Default)]
pub struct NewProblem {
    pub title: String,
    pub key: Option<String>,
    pub root_cause: Option<String>,
    pub workaround: Option<String>,
    pub incidents: Vec<i64>,
}

/// A person's edit of a problem (see [`crate::engine::problems::edit`]).
pub type ProblemUpdate = crate::engine::problems::ProblemEdit;
