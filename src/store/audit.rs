//! The audit log: every mutation through the API, with who (the token's
//! name), when, from where, and the target's state before and after;
//! written in the transaction of the mutation itself.
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::{Value, json};

use super::ops::{Op, Reply};
use super::{StoreError, ms, ts};

/// What an op does to what, for the audit log.
pub(super) struct Audited<'a> {
    pub action: String,
    pub kind: &'static str,
    pub id: Option<i64>,
    pub actor: &'a str,
    pub detail: Value,
}

/// The audit view of an op; `None` for what is not a person's mutation
/// (ingest, timers, the outbox worker).
pub(super) fn audited(op: &Op) -> Option<Audited<'_>> {
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
        Op::CreateProblem { actor, .. } => a("problem.create".into(), "problem", None, actor, Value::Null),
        Op::UpdateProblem { id, actor, .. } => a("problem.update".into(), "problem", Some(*id), actor, Value::Null),
        Op::LinkIncidents { problem, incidents, actor, .. } => {
            a("problem.link".into(), "problem", Some(*problem), actor, json!({ "incidents": incidents }))
        }
        Op::RetryNotification { id, actor, .. } => {
            a("notification.retry".into(), "notification", Some(*id), actor, Value::Null)
        }
        Op::Audit { action, actor, detail, .. } => a(action.clone(), "gateway", None, actor, detail.clone()),
        _ => None,
    }
}

/// The id of what a create op made.
pub(super) fn created_id(reply: &Reply) -> Option<i64> {
    match reply {
        Reply::Silence(s) => Some(s.id),
        Reply::Change(c) => Some(c.id),
        Reply::Id(id) => Some(*id),
        _ => None,
    }
}

/// The audited fields of a target as they are now.
pub(super) fn snapshot(tx: &Connection, kind: &str, id: i64) -> Result<Value, StoreError> {
    let sql = match kind {
        "incident" => {
            "SELECT json_object('state', state, 'priority', priority, 'assignee', assignee, 'title', title)
             FROM incidents WHERE id = ?1"
        }
        "silence" => {
            "SELECT json_object('matchers', json(matchers), 'startsAt', starts_at, 'endsAt', ends_at) FROM silences WHERE id = ?1"
        }
        "problem" => {
            "SELECT json_object('title', title, 'state', state, 'rootCause', root_cause, 'workaround', workaround,
                'incidents', (SELECT count(*) FROM problem_incidents WHERE problem_id = problems.id))
             FROM problems WHERE id = ?1"
        }
        "change" => {
            "SELECT json_object('service', service, 'summary', summary, 'startsAt', starts_at, 'endsAt', ends_at,
                'suppress', suppress) FROM changes WHERE id = ?1"
        }
        "notification" => {
            "SELECT json_object('state', state, 'attempts', attempts, 'notifier', notifier) FROM notifications WHERE id = ?1"
        }
        _ => return Ok(Value::Null),
    };
    let text: Option<String> = tx.prepare_cached(sql)?.query_row([id], |r| r.get(0)).optional()?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn record(
    tx: &Connection,
    at: Timestamp,
    a: &Audited<'_>,
    id: Option<i64>,
    source: Option<&str>,
    before: &Value,
    after: &Value,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO audit_log (at, actor, source, action, target_kind, target_id, before, after, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        ms(at),
        a.actor,
        source,
        a.action,
        a.kind,
        id,
        before.to_string(),
        after.to_string(),
        a.detail.to_string()
    ])?;
    Ok(())
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

pub(super) fn list(c: &Connection, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
    let (kind, id) = match q.target.as_deref().and_then(|t| t.split_once(':')) {
        Some((k, i)) => (Some(k.to_owned()), i.parse::<i64>().ok()),
        None => (None, None),
    };
    let rows = c
        .prepare_cached(
            "SELECT id, at, actor, source, action, target_kind, target_id, before, after, detail FROM audit_log
             WHERE (?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR action = ?2) AND (?3 IS NULL OR target_kind = ?3)
               AND (?4 IS NULL OR target_id = ?4) AND (?5 IS NULL OR at >= ?5) AND (?6 IS NULL OR id < ?6)
             ORDER BY id DESC LIMIT ?7",
        )?
        .query_map(params![q.actor, q.action, kind, id, q.since.map(ms), q.before, q.limit as i64], |r| {
            Ok((
                (r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get::<_, Option<String>>(3)?),
                (r.get::<_, String>(4)?, r.get::<_, String>(5)?, r.get::<_, Option<i64>>(6)?),
                (r.get::<_, String>(7)?, r.get::<_, String>(8)?, r.get::<_, String>(9)?),
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let json = |s: &str| serde_json::from_str(s).unwrap_or(Value::Null);
    rows.into_iter()
        .map(|((id, at, actor, source), (action, kind, target_id), (before, after, detail))| {
            Ok(AuditEntry {
                id,
                at: ts(at)?,
                actor,
                source,
                action,
                target: target_id.map(|t| format!("{kind}:{t}")),
                before: json(&before),
                after: json(&after),
                detail: json(&detail),
            })
        })
        .collect()
}
