//! The audit log: every mutation through the API, with who (the token's
//! name), when, from where, and the target's state before and after;
//! written in the transaction of the mutation itself. What is audited of
//! each op is decided here; a backend stores it.
use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};

use super::ops::{Op, Reply};

/// What an op does to what, for the audit log.
pub struct Audited<'a> {
    pub action: String,
    pub kind: &'static str,
    pub id: Option<i64>,
    pub actor: &'a str,
    pub detail: Value,
}

/// The audit view of an op; `None` for what is not a person's mutation
/// (ingest, timers, the outbox worker).
pub fn audited(op: &Op) -> Option<Audited<'_>> {
    let a = |action: String, kind, id, actor, detail| Some(Audited { action, kind, id, actor, detail });
    match op {
        Op::Act { id, action, actor, comment, .. } => {
            a(format!("incident.{action}"), "incident", Some(*id), actor, json!({ "comment": comment }))
        }
        Op::Assign { id, actor, .. } => a("incident.assign".into(), "incident", Some(*id), actor, Value::Null),
        Op::Note { id, actor, text, .. } => {
            a("incident.note".into(), "incident", Some(*id), actor, json!({ "text": text }))
        }
        Op::SetPriority { id, actor, comment, .. } => {
            a("incident.priority".into(), "incident", Some(*id), actor, json!({ "comment": comment }))
        }
        Op::CreateSilence { spec, .. } => {
            a("silence.create".into(), "silence", None, &spec.created_by, json!({ "comment": spec.comment }))
        }
        Op::UpdateSilence { id, spec, .. } => {
            a("silence.update".into(), "silence", Some(*id), &spec.created_by, json!({ "comment": spec.comment }))
        }
        Op::ExpireSilence { id, actor, .. } => a("silence.expire".into(), "silence", Some(*id), actor, Value::Null),
        Op::RecordChange { change, .. } => a("change.create".into(), "change", None, &change.created_by, Value::Null),
        Op::ReportIncident { actor, report, .. } => a(
            "incident.report".into(),
            "incident",
            None,
            actor,
            json!({ "reporter": report.reporter, "title": report.title }),
        ),
        Op::LinkAlerts { id, fingerprints, actor, .. } => {
            a("incident.link_alerts".into(), "incident", Some(*id), actor, json!({ "fingerprints": fingerprints }))
        }
        Op::Merge { id, into, actor, comment, .. } => {
            a("incident.merge".into(), "incident", Some(*id), actor, json!({ "into": into, "comment": comment }))
        }
        Op::ReviewProblem { problem, actor, incident, .. } => {
            a("review.problem".into(), "problem", *problem, actor, json!({ "incident": incident }))
        }
        Op::CreateActionItem { actor, item, .. } => a(
            "action_item.create".into(),
            "action_item",
            None,
            actor,
            json!({ "title": item.title, "owner": item.owner }),
        ),
        Op::EditActionItem { id, actor, edit, .. } => {
            a("action_item.update".into(), "action_item", Some(*id), actor, json!({ "state": edit.state }))
        }
        Op::CreateReview { incident, actor, .. } => {
            a("review.create".into(), "review", Some(*incident), actor, Value::Null)
        }
        Op::EditReview { incident, actor, edit, .. } => {
            a("review.update".into(), "review", Some(*incident), actor, json!({ "state": edit.state }))
        }
        Op::CreateProblem { actor, .. } => a("problem.create".into(), "problem", None, actor, Value::Null),
        Op::UpdateProblem { id, actor, .. } => a("problem.update".into(), "problem", Some(*id), actor, Value::Null),
        Op::LinkIncidents { problem, incidents, actor, .. } => {
            a("problem.link".into(), "problem", Some(*problem), actor, json!({ "incidents": incidents }))
        }
        Op::RetryNotification { id, actor, .. } => {
            a("notification.retry".into(), "notification", Some(*id), actor, Value::Null)
        }
        Op::CreateOverride { new, actor, .. } => a(
            "schedule.override.create".into(),
            "override",
            None,
            actor,
            json!({ "schedule": new.schedule, "person": new.person, "reason": new.reason }),
        ),
        Op::DeleteOverride { schedule, id, actor, .. } => {
            a("schedule.override.delete".into(), "override", Some(*id), actor, json!({ "schedule": schedule }))
        }
        Op::CreateCalendarFeed { of, actor, .. } => {
            a("calendar_feed.create".into(), "calendar_feed", None, actor, json!({ "of": of }))
        }
        Op::RevokeCalendarFeed { id, actor, .. } => {
            a("calendar_feed.revoke".into(), "calendar_feed", Some(*id), actor, Value::Null)
        }
        Op::Audit { action, actor, detail, .. } => a(action.clone(), "gateway", None, actor, detail.clone()),
        _ => None,
    }
}

/// What an audited target is, as a backend loads it.
pub enum Target<'a> {
    Incident(&'a crate::model::incident::Incident),
    Silence(&'a crate::engine::silence::Silence),
    Problem(&'a crate::model::problem::Problem),
    Change(&'a crate::model::change::Change),
    Notification { state: crate::model::notification::NotificationState, attempts: u32, notifier: &'a str },
    Review(&'a crate::model::review::Review),
    ActionItem(&'a crate::model::action_item::ActionItem),
    Override(&'a crate::model::oncall::ScheduleOverride),
    CalendarFeed(&'a crate::model::oncall::CalendarFeed),
}

/// The audited fields of a target, as the log's `before` and `after` show them.
pub fn snapshot(target: Target<'_>) -> Value {
    match target {
        Target::Incident(i) => json!({
            "state": i.state.as_str(), "priority": i.priority.as_str(), "assignee": i.assignee, "title": i.title,
        }),
        Target::Silence(s) => json!({
            "matchers": s.matchers.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
            "startsAt": s.starts_at, "endsAt": s.ends_at,
        }),
        Target::Problem(p) => json!({
            "title": p.title, "state": p.state.as_str(), "rootCause": p.root_cause, "workaround": p.workaround,
            "incidents": p.incident_count,
        }),
        Target::Change(c) => json!({
            "service": c.service, "summary": c.summary, "startsAt": c.starts_at, "endsAt": c.ends_at,
            "suppress": c.suppress,
        }),
        Target::Review(r) => json!({ "state": r.state.as_str(), "summary": r.text.summary }),
        Target::ActionItem(a) => json!({
            "title": a.title, "owner": a.owner, "due": a.due, "state": a.state.as_str(),
        }),
        Target::Override(o) => json!({
            "schedule": o.schedule, "person": o.person, "start": o.start, "end": o.end, "reason": o.reason,
        }),
        Target::CalendarFeed(f) => json!({ "of": f.of, "revokedAt": f.revoked_at }),
        Target::Notification { state, attempts, notifier } => {
            json!({ "state": state.as_str(), "attempts": attempts, "notifier": notifier })
        }
    }
}

/// The id of what a create op made.
pub fn created_id(reply: &Reply) -> Option<i64> {
    match reply {
        Reply::Silence(s) => Some(s.id),
        Reply::Change(c) => Some(c.id),
        Reply::Id(id) => Some(*id),
        Reply::ActionItem(a) => Some(a.id),
        Reply::Override(o) => Some(o.id),
        Reply::CalendarFeed(f) => Some(f.id),
        _ => None,
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: i64,
    pub at: Timestamp,
    pub actor: String,
    /// The caller's address.
    pub source: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub before: Value,
    pub after: Value,
    pub detail: Value,
}

/// Filters for reading the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    /// `incident:7`, `silence:3`, ...
    pub target: Option<String>,
    pub since: Option<Timestamp>,
    pub before: Option<i64>,
    pub limit: usize,
}
