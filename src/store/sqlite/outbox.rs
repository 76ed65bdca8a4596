//! The notification outbox: a row per notifier and event, written in the
//! transaction of the state change that caused it, so a notification is
//! neither lost (the change committed) nor sent for a change that never
//! happened (it rolled back). The delivery worker reads the rows.
use super::sql::{Connection, OptionalExtension, params};
use jiff::Timestamp;
use serde_json::Value;

use super::{StoreError, ms};
use crate::store::query::{DeliveryRecord, NotificationQuery, NotificationView};

use crate::engine::notify::Delivery;
use crate::model::notification::NotificationState;

/// The states of an outbox row, as its SQL spells them.
const PENDING: &str = NotificationState::Pending.as_str();

/// The ids of the first `limit` pending notifications due by `?1`, by due
/// time (the limit written in: a bound `LIMIT` makes SQLite prepare the
/// statement again on every run).
pub(super) fn due_ids(limit: usize) -> String {
    format!(
        "SELECT id FROM notifications WHERE state = '{PENDING}' AND next_attempt_at <= ?1
         ORDER BY next_attempt_at, id LIMIT {limit}"
    )
}

/// When the earliest pending notification is due.
pub(super) static NEXT_DUE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("SELECT min(next_attempt_at) FROM notifications WHERE state = '{PENDING}'"));
const SENT: &str = NotificationState::Sent.as_str();
const FAILED: &str = NotificationState::Failed.as_str();

/// Queue `event` for each delivery the engine chose; a delivery already
/// queued (same idempotency key) is not queued twice.
pub(super) fn enqueue(
    tx: &Connection,
    event: &str,
    (incident_id, problem_id): (Option<i64>, Option<i64>),
    deliveries: &[Delivery],
    payload: &Value,
    now: Timestamp,
) -> Result<(), StoreError> {
    let shared = payload.to_string();
    for d in deliveries {
        // A page to a person carries whom it goes to; the rest share one text.
        let own = d.recipient.as_ref().map(|r| {
            let mut p = payload.clone();
            p["recipient"] = serde_json::to_value(r).unwrap_or_default();
            p.to_string()
        });
        let payload = own.as_deref().unwrap_or(&shared);
        tx.prepare_cached(&format!(
            "INSERT INTO notifications
                (event, incident_id, problem_id, notifier, idempotency_key, payload, state, created_at, next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, '{PENDING}', ?7, ?7) ON CONFLICT DO NOTHING"
        ))?
        .execute(params![event, incident_id, problem_id, d.notifier, d.idempotency_key, payload, ms(now)])?;
    }
    Ok(())
}

const ITEM_COLUMNS: &str = "id, event, incident_id, problem_id, notifier, idempotency_key, payload, attempts,
    COALESCE(retried_at, created_at)";

fn item_from_row(
    r: &super::sql::Row<'_>,
) -> super::sql::Result<Result<crate::model::notification::OutboxItem, StoreError>> {
    let payload: String = r.get(6)?;
    let age_from: i64 = r.get(8)?;
    let (id, event, incident_id, problem_id, notifier, key, attempts) =
        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get::<i64>(7)?);
    Ok((|| {
        Ok(crate::model::notification::OutboxItem {
            id,
            event,
            incident_id,
            problem_id,
            notifier,
            idempotency_key: key,
            payload: serde_json::from_str(&payload)
                .map_err(|e| StoreError::Corrupt(format!("notification {id}: {e}")))?,
            attempts: attempts as u32,
            age_from: super::ts(age_from)?,
        })
    })())
}

/// Take up to `limit` due rows, leasing them until `lease_until`: a worker
/// that dies mid-delivery leaves them due again when the lease ends (or at
/// once, when the next run of the gateway releases the leases it finds).
pub(super) fn claim(
    tx: &Connection,
    now: Timestamp,
    lease_until: Timestamp,
    limit: usize,
    owner: Option<&str>,
) -> Result<Vec<crate::model::notification::OutboxItem>, StoreError> {
    let rows: Vec<Result<crate::model::notification::OutboxItem, StoreError>> = tx
        .prepare_cached(&format!(
            "UPDATE notifications SET next_attempt_at = ?2, leased_until = ?2, leased_by = ?3 WHERE id IN ({})
             RETURNING {ITEM_COLUMNS}",
            due_ids(limit)
        ))?
        .query_map(params![ms(now), ms(lease_until), owner], item_from_row)?
        .collect::<Result<_, _>>()?;
    let mut items: Vec<_> = rows.into_iter().collect::<Result<_, _>>()?;
    // RETURNING gives no order; deliver in the order the events happened.
    items.sort_by_key(|i: &crate::model::notification::OutboxItem| i.id);
    Ok(items)
}

pub(super) fn record(tx: &Connection, results: &[(i64, DeliveryRecord)], now: Timestamp) -> Result<(), StoreError> {
    for (id, r) in results {
        match r {
            DeliveryRecord::Sent { covered_by } => tx
                .prepare_cached(&format!(
                    "UPDATE notifications SET state = '{SENT}', sent_at = ?2, attempts = attempts + 1,
                        next_attempt_at = NULL, leased_until = NULL, covered_by = ?3, last_error = NULL
                     WHERE id = ?1 AND state = '{PENDING}'"
                ))?
                .execute(params![id, ms(now), covered_by])?,
            DeliveryRecord::Retry { at, error } => tx
                .prepare_cached(&format!(
                    "UPDATE notifications SET attempts = attempts + 1, next_attempt_at = ?2, leased_until = NULL,
                        leased_by = NULL, last_error = ?3
                     WHERE id = ?1 AND state = '{PENDING}'"
                ))?
                .execute(params![id, ms(*at), error])?,
            DeliveryRecord::Dead { error } => tx
                .prepare_cached(&format!(
                    "UPDATE notifications SET state = '{FAILED}', attempts = attempts + 1, next_attempt_at = NULL,
                        leased_until = NULL, last_error = ?2 WHERE id = ?1 AND state = '{PENDING}'"
                ))?
                .execute(params![id, error])?,
        };
    }
    Ok(())
}

/// Extend the leases of rows still being delivered (waiting for a slow
/// receiver or a rate limit), so a short lease never expires under them.
pub(super) fn renew(tx: &Connection, ids: &[i64], lease_until: Timestamp) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(&format!(
        "UPDATE notifications SET next_attempt_at = ?2, leased_until = ?2
         WHERE id = ?1 AND state = '{PENDING}' AND leased_until IS NOT NULL"
    ))?;
    for id in ids {
        stmt.execute(params![id, ms(lease_until)])?;
    }
    Ok(())
}

/// Hand back the leases of `owner` (every lease with `None`): the rows are
/// due now. Every lease only when no other process delivers from this
/// database, which the data directory's lock guarantees for the embedded
/// store; on a shared database each gateway hands back its own.
pub(super) fn release_all(tx: &Connection, now: Timestamp, owner: Option<&str>) -> Result<usize, StoreError> {
    Ok(tx
        .prepare_cached(&format!(
            "UPDATE notifications SET next_attempt_at = ?1, leased_until = NULL, leased_by = NULL
             WHERE leased_until IS NOT NULL AND state = '{PENDING}'
               AND (CAST(?2 AS TEXT) IS NULL OR leased_by = ?2)"
        ))?
        .execute(params![ms(now), owner])?)
}

/// A dead letter (or a pending row) goes out again now; its age counts anew.
pub(super) fn retry(tx: &Connection, id: i64, now: Timestamp) -> Result<(), StoreError> {
    let state: String = tx
        .prepare_cached("SELECT state FROM notifications WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("no notification {id}")))?;
    let state =
        NotificationState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("notification state {state:?}")))?;
    state.may_retry(id).map_err(StoreError::Conflict)?;
    tx.prepare_cached(&format!(
        "UPDATE notifications SET state = '{PENDING}', next_attempt_at = ?2, retried_at = ?2, leased_until = NULL
         WHERE id = ?1"
    ))?
    .execute(params![id, ms(now)])?;
    Ok(())
}

pub(super) fn list(c: &Connection, q: &NotificationQuery) -> Result<Vec<NotificationView>, StoreError> {
    let rows = c
        .prepare_cached(
            "SELECT id, event, incident_id, problem_id, notifier, idempotency_key, state, attempts, created_at,
                    next_attempt_at, last_error, sent_at, covered_by
             FROM notifications WHERE (CAST(?1 AS TEXT) IS NULL OR state = ?1) AND (CAST(?2 AS TEXT) IS NULL OR notifier = ?2)
               AND (CAST(?3 AS BIGINT) IS NULL OR incident_id = ?3) AND (CAST(?4 AS BIGINT) IS NULL OR id < ?4)
             ORDER BY id DESC LIMIT ?5",
        )?
        .query_map(
            params![q.state.map(NotificationState::as_str), q.notifier, q.incident, q.before, q.limit as i64],
            |r| {
                Ok((
                    (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?),
                    (r.get::<i64>(7)?, r.get::<i64>(8)?, r.get::<Option<i64>>(9)?, r.get(10)?),
                    (r.get::<Option<i64>>(11)?, r.get(12)?),
                ))
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(
            |(
                (id, event, incident_id, problem_id, notifier, idempotency_key, state),
                (attempts, created, next, err),
                (sent, covered),
            )| {
                Ok(NotificationView {
                    id,
                    event,
                    incident_id,
                    problem_id,
                    notifier,
                    idempotency_key,
                    state,
                    attempts: attempts as u32,
                    created_at: super::ts(created)?,
                    next_attempt_at: next.map(super::ts).transpose()?,
                    last_error: err,
                    sent_at: sent.map(super::ts).transpose()?,
                    covered_by: covered,
                })
            },
        )
        .collect()
}

/// Rows waiting for delivery, and the age of the oldest.
pub(super) fn depth(c: &Connection, now: Timestamp) -> Result<(u64, Option<f64>), StoreError> {
    let (n, oldest): (i64, Option<i64>) = c.query_row(
        &format!("SELECT count(*), min(created_at) FROM notifications WHERE state = '{PENDING}'"),
        params![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((n as u64, oldest.map(|o| (ms(now) - o) as f64 / 1000.0)))
}
