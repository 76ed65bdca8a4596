//! The audit log's rows: snapshots of a target before and after, and the
//! listing (what is audited is decided in `store::audit`).
use super::sql::{Connection, OptionalExtension, params};
use jiff::Timestamp;
use serde_json::Value;

use super::{StoreError, ms, ts};
use crate::model::notification::NotificationState;
use crate::store::audit::{self, AuditEntry, AuditQuery, Audited, Target};

/// The audited fields of a target as they are now (`Null` when there is none).
pub(super) fn snapshot(tx: &Connection, kind: &str, id: i64) -> Result<Value, StoreError> {
    let shown = match kind {
        "incident" => super::rows::incident(tx, id)?.map(|i| audit::snapshot(Target::Incident(&i))),
        "silence" => {
            super::reader::silences_where(tx, "id = ?1", id)?.first().map(|s| audit::snapshot(Target::Silence(s)))
        }
        "problem" => super::problems::get(tx, id)?.map(|p| audit::snapshot(Target::Problem(&p))),
        "change" => super::changes::get(tx, id)?.map(|c| audit::snapshot(Target::Change(&c))),
        "review" => super::reviews::get(tx, id)?.map(|r| audit::snapshot(Target::Review(&r))),
        "action_item" => super::action_items::get(tx, id)?.map(|a| audit::snapshot(Target::ActionItem(&a))),
        "override" => super::oncall::override_by_id(tx, id)?.map(|o| audit::snapshot(Target::Override(&o))),
        "calendar_feed" => super::oncall::feed_by_id(tx, id)?.map(|f| audit::snapshot(Target::CalendarFeed(&f))),
        "notification" => {
            let row: Option<(String, u32, String)> = tx
                .prepare_cached("SELECT state, attempts, notifier FROM notifications WHERE id = ?1")?
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            match row {
                Some((state, attempts, notifier)) => {
                    let state = NotificationState::parse(&state)
                        .ok_or_else(|| StoreError::Corrupt(format!("notification state {state:?}")))?;
                    Some(audit::snapshot(Target::Notification { state, attempts, notifier: &notifier }))
                }
                None => None,
            }
        }
        _ => None,
    };
    Ok(shown.unwrap_or(Value::Null))
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
             WHERE (CAST(?1 AS TEXT) IS NULL OR actor = ?1) AND (CAST(?2 AS TEXT) IS NULL OR action = ?2) AND (CAST(?3 AS TEXT) IS NULL OR target_kind = ?3)
               AND (CAST(?4 AS BIGINT) IS NULL OR target_id = ?4) AND (CAST(?5 AS BIGINT) IS NULL OR at >= ?5) AND (CAST(?6 AS BIGINT) IS NULL OR id < ?6)
             ORDER BY id DESC LIMIT ?7",
        )?
        .query_map(params![q.actor, q.action, kind, id, q.since.map(ms), q.before, q.limit as i64], |r| {
            Ok((
                (r.get::<i64>(0)?, r.get::<i64>(1)?, r.get::<String>(2)?, r.get::<Option<String>>(3)?),
                (r.get::<String>(4)?, r.get::<String>(5)?, r.get::<Option<i64>>(6)?),
                (r.get::<String>(7)?, r.get::<String>(8)?, r.get::<String>(9)?),
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
