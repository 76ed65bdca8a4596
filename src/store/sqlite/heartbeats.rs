//! The writer's heartbeat bookkeeping: pings (by HTTP, or by alerts that
//! match), the timer at each deadline, and the alert a miss raises and a
//! ping resolves. `engine::heartbeat` decides; this loads the row, applies
//! the plan in the writer's transaction and keeps the timer.
use std::collections::BTreeMap;

use super::sql::{Connection, OptionalExtension, params};
use jiff::Timestamp;

use super::state::WriterState;
use super::{StoreError, ms, ts};
use crate::engine::heartbeat::{self, Plan, Stored};
use crate::engine::plan::Plans;
use crate::model::AlertUpdate;
use crate::rules::heartbeat::Heartbeat;
use crate::sla::timers::TimerKey;

/// A heartbeat's row.
struct Row {
    id: i64,
    name: String,
    stored: Stored,
}

const COLUMNS: &str = "id, name, last_ping, missed_at";

fn row(r: &super::sql::Row<'_>) -> super::sql::Result<(i64, String, i64, Option<i64>)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn to_row((id, name, last_ping, missed): (i64, String, i64, Option<i64>)) -> Result<Row, StoreError> {
    Ok(Row { id, name, stored: Stored { last_ping: ts(last_ping)?, missed: missed.map(ts).transpose()? } })
}

fn one(tx: &Connection, filter: &str, key: impl super::sql::ToSql) -> Result<Option<Row>, StoreError> {
    tx.prepare_cached(&format!("SELECT {COLUMNS} FROM heartbeats WHERE {filter}"))?
        .query_row([key], row)
        .optional()?
        .map(to_row)
        .transpose()
}

fn all(conn: &Connection) -> Result<Vec<Row>, StoreError> {
    let rows: Vec<_> = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM heartbeats"))?
        .query_map(params![], row)?
        .collect::<Result<_, _>>()?;
    rows.into_iter().map(to_row).collect()
}

/// What is stored of every heartbeat that has pinged, by name (also of
/// heartbeats the rules no longer have).
pub(super) fn stored(conn: &Connection) -> Result<BTreeMap<String, Stored>, StoreError> {
    Ok(all(conn)?.into_iter().map(|r| (r.name, r.stored)).collect())
}

fn upsert(tx: &Connection, name: &str, s: Stored) -> Result<i64, StoreError> {
    Ok(tx
        .prepare_cached(
            "INSERT INTO heartbeats (name, last_ping, missed_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET last_ping = excluded.last_ping, missed_at = excluded.missed_at
             RETURNING id",
        )?
        .query_row(params![name, ms(s.last_ping), s.missed.map(ms)], |r| r.get(0))?)
}

impl WriterState {
    /// A ping by HTTP; `NotFound` for a name the rules do not have.
    pub fn ping_heartbeat(&mut self, tx: &Connection, name: &str, now: Timestamp) -> Result<(), StoreError> {
        let rules = self.rules.clone();
        let hb = rules
            .heartbeats
            .get(name)
            .ok_or_else(|| StoreError::NotFound(format!("no heartbeat named {name:?} in the rules")))?;
        self.ping(tx, hb, now)
    }

    /// The heartbeats an ingested batch's alerts pinged, once each.
    pub fn ping_heartbeats<'h>(
        &mut self,
        tx: &Connection,
        pinged: impl IntoIterator<Item = &'h Heartbeat>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        for hb in pinged {
            self.ping(tx, hb, now)?;
        }
        Ok(())
    }

    fn ping(&mut self, tx: &Connection, hb: &Heartbeat, now: Timestamp) -> Result<(), StoreError> {
        let row = one(tx, "name = ?1", &hb.name)?;
        let before = row.as_ref().map(|r| r.stored);
        let plan = heartbeat::ping(hb, before, now);
        self.apply_heartbeat(tx, Some(hb), &hb.name, row.map(|r| r.id), before, plan, now)
    }

    /// A heartbeat's timer fired.
    pub(super) fn fire_heartbeat(&mut self, tx: &Connection, id: i64, now: Timestamp) -> Result<(), StoreError> {
        let Some(row) = one(tx, "id = ?1", id)? else { return Ok(()) };
        let rules = self.rules.clone();
        let hb = rules.heartbeats.get(&row.name);
        let plan = heartbeat::check(hb, row.stored, now);
        self.apply_heartbeat(tx, hb, &row.name, Some(row.id), Some(row.stored), plan, now)
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_heartbeat(
        &mut self,
        tx: &Connection,
        hb: Option<&Heartbeat>,
        name: &str,
        id: Option<i64>,
        before: Option<Stored>,
        plan: Plan,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        if let (Some(deadline), Some(hb)) = (plan.raise_at, hb) {
            let last_ping = before.map(|s| s.last_ping);
            let alert = heartbeat::missing_alert(hb, last_ping, deadline);
            let encode = |v: &std::collections::BTreeMap<String, String>| {
                serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
            };
            let encoded = Some((encode(&alert.labels)?, encode(&alert.annotations)?));
            tracing::warn!(heartbeat = name, %deadline, last_ping = ?last_ping, "heartbeat missed its deadline");
            // Observed at the deadline: its incident, clocks and timeline
            // date from then; entries written later than that (a restart)
            // say when they were written, as late SLA milestones do.
            let before: i64 =
                tx.query_row("SELECT coalesce(max(id), 0) FROM incident_events", params![], |r| r.get(0))?;
            super::apply::ingest(tx, self, &[AlertUpdate::Observe(alert)], &[encoded], &Plans::none(), deadline, None)?;
            if deadline < now {
                tx.prepare_cached("UPDATE incident_events SET recorded_at = ?2 WHERE id > ?1")?
                    .execute(params![before, ms(now)])?;
            }
        }
        if plan.clear {
            super::apply::resolve_by_sender(tx, self, heartbeat::fingerprint(name).as_str(), now)?;
            tracing::info!(heartbeat = name, "heartbeat pinged again; its alert is resolved");
        }
        let id = match plan.store {
            Some(s) => Some(upsert(tx, name, s)?),
            None => id,
        };
        if let Some(id) = id {
            self.schedule(TimerKey::Heartbeat(id), plan.next);
        }
        Ok(())
    }

    /// Set the timer of every stored heartbeat for the rules in force at
    /// `now` (at load, and after a reload): a deadline that passed while
    /// the gateway was down is due at once, and raises its alert dated then.
    pub(super) fn set_heartbeat_timers(&mut self, conn: &Connection, now: Timestamp) -> Result<(), StoreError> {
        let rules = self.rules.clone();
        for row in all(conn)? {
            let due = heartbeat::due(rules.heartbeats.get(&row.name), row.stored, now);
            self.timers.set(TimerKey::Heartbeat(row.id), due);
        }
        Ok(())
    }
}
