//! The audit log's rows: snapshots of a target before and after, and the
//! listing (what is audited is decided in `store::audit`).
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::{StoreError, ms, ts};
use crate::store::audit::{AuditEntry, AuditQuery, Audited};

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
