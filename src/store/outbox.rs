//! The notification outbox: a row per notifier and event, written in the
//! transaction of the state change that caused it, so a notification is
//! neither lost (the change committed) nor sent for a change that never
//! happened (it rolled back). The delivery worker reads the rows.
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use super::{StoreError, ms};

/// The events notifiers subscribe to.
pub const EVENTS: &[&str] = &[
    "incident.triggered",
    "incident.acknowledged",
    "incident.resolved",
    "incident.reopened",
    "incident.escalated",
    "sla.warning",
    "sla.breached",
    "problem.opened",
    "problem.known_error",
];

/// Queue `event` for each notifier in `targets` (duplicates dropped).
/// `origin` names the fact that caused it (a timeline entry), so the
/// idempotency key stays the same however often delivery is retried.
#[allow(clippy::too_many_arguments)]
pub(super) fn enqueue(
    tx: &Connection,
    event: &str,
    incident_id: Option<i64>,
    problem_id: Option<i64>,
    origin: &str,
    targets: &[String],
    payload: &Value,
    now: Timestamp,
) -> Result<(), StoreError> {
    debug_assert!(EVENTS.contains(&event), "unknown event {event}");
    let mut seen: Vec<&str> = Vec::new();
    for notifier in targets {
        if seen.contains(&notifier.as_str()) {
            continue;
        }
        seen.push(notifier);
        let key = format!("{origin}-{notifier}");
        tx.prepare_cached(
            "INSERT OR IGNORE INTO notifications
                (event, incident_id, problem_id, notifier, idempotency_key, payload, state, created_at, next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?7)",
        )?
        .execute(params![event, incident_id, problem_id, notifier, key, payload.to_string(), ms(now)])?;
    }
    Ok(())
}

/// What a notification says about an incident, as of the event: templates
/// render from this, not from the incident as it is at delivery.
pub(super) fn incident_snapshot(tx: &Connection, id: i64) -> Result<Value, StoreError> {
    let row = tx
        .prepare_cached(
            "SELECT title, service, rule, priority, impact, urgency, state, assignee, labels, alert_count,
                    firing_count, created_at FROM incidents WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok(json!({
                "id": id,
                "title": r.get::<_, String>(0)?,
                "service": r.get::<_, Option<String>>(1)?,
                "rule": r.get::<_, String>(2)?,
                "priority": r.get::<_, String>(3)?,
                "impact": r.get::<_, String>(4)?,
                "urgency": r.get::<_, String>(5)?,
                "state": r.get::<_, String>(6)?,
                "assignee": r.get::<_, Option<String>>(7)?,
                "labels": serde_json::from_str::<Value>(&r.get::<_, String>(8)?).unwrap_or(Value::Null),
                "alertCount": r.get::<_, i64>(9)?,
                "firingCount": r.get::<_, i64>(10)?,
                "createdAt": super::ts(r.get(11)?).map(|t| t.to_string()).unwrap_or_default(),
            }))
        })
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("no incident {id}")))?;
    let mut row = row;
    let known_error: Option<(i64, String, Option<String>)> = tx
        .prepare_cached(
            "SELECT p.id, p.title, p.workaround FROM problem_incidents pi JOIN problems p ON p.id = pi.problem_id
             WHERE pi.incident_id = ?1 AND p.state = 'known_error' ORDER BY p.id DESC LIMIT 1",
        )?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    if let Some((pid, title, workaround)) = known_error {
        row["knownError"] = json!({ "problemId": pid, "title": title, "workaround": workaround });
    }
    Ok(row)
}
