//! Changes: recording them, linking incidents that start during or soon
//! after a change of their service, and maintenance windows.
use super::sql::{Connection, OptionalExtension, params};
use jiff::Timestamp;

use super::state::{SYSTEM, WriterState, entry};
use super::{StoreError, ms, ts};
use crate::model::MuteReason;
use crate::model::change::{Change, MOST_SUSPECTED_OF, MOST_SUSPECTS, NewChange};

const COLUMNS: &str =
    "id, service, summary, starts_at, ends_at, link, labels, source, suppress, created_by, created_at";

fn from_row(r: &super::sql::Row<'_>) -> super::sql::Result<Result<Change, StoreError>> {
    let id: i64 = r.get(0)?;
    let starts: i64 = r.get(3)?;
    let ends: Option<i64> = r.get(4)?;
    let labels: String = r.get(6)?;
    let created: i64 = r.get(10)?;
    let (service, summary, link, source, suppress, created_by) =
        (r.get(1)?, r.get(2)?, r.get(5)?, r.get(7)?, r.get(8)?, r.get(9)?);
    Ok((|| {
        Ok(Change {
            id,
            service,
            summary,
            starts_at: ts(starts)?,
            ends_at: ends.map(ts).transpose()?,
            link,
            labels: serde_json::from_str(&labels).map_err(|e| StoreError::Corrupt(format!("change {id}: {e}")))?,
            source,
            suppress,
            created_by,
            created_at: ts(created)?,
        })
    })())
}

/// Changes, most recently recorded first; of one service when given.
pub(super) fn list(
    c: &Connection,
    service: Option<&str>,
    before: Option<i64>,
    limit: usize,
) -> Result<Vec<Change>, StoreError> {
    let rows: Vec<Result<Change, StoreError>> = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM changes WHERE (CAST(?1 AS TEXT) IS NULL OR service = ?1) AND (CAST(?2 AS BIGINT) IS NULL OR id < ?2)
             ORDER BY id DESC LIMIT ?3"
        ))?
        .query_map(params![service, before, limit as i64], from_row)?
        .collect::<Result<_, _>>()?;
    rows.into_iter().collect()
}

/// The changes an incident lists as suspected causes.
pub(super) fn of_incident(c: &Connection, incident_id: i64) -> Result<Vec<Change>, StoreError> {
    let rows: Vec<Result<Change, StoreError>> = c
        .prepare_cached(&format!(
            "SELECT {} FROM incident_changes ic JOIN changes c ON c.id = ic.change_id WHERE ic.incident_id = ?1
             ORDER BY c.starts_at DESC",
            COLUMNS.split(", ").map(|col| format!("c.{col}")).collect::<Vec<_>>().join(", ")
        ))?
        .query_map([incident_id], from_row)?
        .collect::<Result<_, _>>()?;
    rows.into_iter().collect()
}

/// One change by id.
pub(super) fn get(c: &Connection, id: i64) -> Result<Option<Change>, StoreError> {
    c.prepare_cached(&format!("SELECT {COLUMNS} FROM changes WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?
        .transpose()
}

/// Suppressing changes that have not ended by `now`.
pub(super) fn maintenance(c: &Connection, now: Timestamp) -> Result<Vec<Change>, StoreError> {
    let rows: Vec<Result<Change, StoreError>> = c
        .prepare_cached(&format!("SELECT {COLUMNS} FROM changes WHERE suppress = 1 AND ends_at > ?1"))?
        .query_map([ms(now)], from_row)?
        .collect::<Result<_, _>>()?;
    rows.into_iter().collect()
}

impl WriterState {
    pub(super) fn record_change(
        &mut self,
        tx: &Connection,
        c: &NewChange,
        now: Timestamp,
    ) -> Result<Change, StoreError> {
        let labels = serde_json::to_string(&c.labels).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        tx.prepare_cached(
            "INSERT INTO changes (service, summary, starts_at, ends_at, link, labels, source, suppress, created_by, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            c.service,
            c.summary,
            ms(c.starts_at),
            c.ends_at.map(ms),
            c.link,
            labels,
            c.source,
            c.suppress,
            c.created_by,
            ms(now)
        ])?;
        let change = Change {
            id: tx.last_insert_rowid()?,
            service: c.service.clone(),
            summary: c.summary.clone(),
            starts_at: c.starts_at,
            ends_at: c.ends_at,
            link: c.link.clone(),
            labels: c.labels.clone(),
            source: c.source.clone(),
            suppress: c.suppress,
            created_by: c.created_by.clone(),
            created_at: now,
        };
        if change.is_upcoming_window(now) {
            self.maintenance.push(change.clone());
        }
        self.correlate_incidents(tx, &change, now)?;
        tracing::info!(
            change = change.id,
            service = change.service.as_deref().map(tracing::field::display),
            suppress = change.suppress,
            "change recorded"
        );
        Ok(change)
    }

    /// Link a new incident to the changes of its service that it may
    /// follow from (see [`Change::may_have_caused`]).
    pub(super) fn correlate_changes(
        &self,
        tx: &Connection,
        incident_id: i64,
        service: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let Some(service) = service else { return Ok(()) };
        let window = self.rules.change_window;
        // The SQL only narrows; the decision is the model's.
        let candidates: Vec<Result<Change, StoreError>> = tx
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM changes WHERE service = ?1 AND starts_at <= ?2
                 AND COALESCE(ends_at, starts_at) >= ?2 - ?3 ORDER BY starts_at DESC LIMIT ?4"
            ))?
            .query_map(params![service, ms(now), window.as_millis(), MOST_SUSPECTS as i64], from_row)?
            .collect::<Result<_, _>>()?;
        for change in candidates {
            let change = change?;
            if change.may_have_caused(now, window) {
                suspect(tx, incident_id, &change, false, now)?;
            }
        }
        Ok(())
    }

    /// A change recorded after the fact: the incidents of its service that
    /// opened in its window (before it was recorded) list it too.
    fn correlate_incidents(&self, tx: &Connection, change: &Change, now: Timestamp) -> Result<(), StoreError> {
        let Some(service) = change.service.as_deref() else { return Ok(()) };
        let window = self.rules.change_window;
        let opened: Vec<(i64, i64)> = tx
            .prepare_cached(
                "SELECT id, created_at FROM incidents WHERE service = ?1 AND created_at >= ?2 AND created_at <= ?3
                 ORDER BY created_at DESC LIMIT ?4",
            )?
            .query_map(
                params![service, ms(change.starts_at), ms(change.suspect_until(window)), MOST_SUSPECTED_OF as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .collect::<Result<_, _>>()?;
        for (incident_id, created_at) in opened {
            if change.may_have_caused(super::ts(created_at)?, window) {
                suspect(tx, incident_id, change, true, now)?;
            }
        }
        Ok(())
    }

    /// The maintenance window (a suppressing change) of `service` at `now`.
    pub(super) fn maintenance_of(&self, service: &str, now: Timestamp) -> Option<i64> {
        crate::engine::mute::maintenance_window(&self.maintenance, service, now)
    }

    /// Maintenance windows that ended: what they muted is routed again.
    pub(super) fn end_maintenance(&mut self, tx: &Connection, now: Timestamp) -> Result<(), StoreError> {
        let ended = crate::engine::mute::ended_windows(&self.maintenance, now);
        if ended.is_empty() {
            return Ok(());
        }
        self.maintenance.retain(|c| !ended.contains(&c.id));
        for id in ended {
            self.recheck_muted(tx, MuteReason::Maintenance(id), now)?;
        }
        Ok(())
    }
}

/// Link `change` to an incident as a suspected cause, once.
fn suspect(tx: &Connection, incident_id: i64, change: &Change, late: bool, now: Timestamp) -> Result<(), StoreError> {
    let linked = tx
        .prepare_cached("INSERT INTO incident_changes (incident_id, change_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING")?
        .execute(params![incident_id, change.id])?;
    if linked == 0 {
        return Ok(());
    }
    entry(tx, incident_id, SYSTEM, crate::engine::timeline::change_suspected(change, late, now))?;
    Ok(())
}
