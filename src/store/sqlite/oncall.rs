//! On-call rows: schedule overrides (kept in the writer's memory while
//! not ended, for paging), each schedule's handoff bookkeeping with its
//! timer, and calendar feed keys. `engine::paging` and `engine::handoff`
//! decide; this stores and loads.
use super::sql::{Connection, OptionalExtension, params};
use jiff::Timestamp;
use serde_json::json;

use super::state::WriterState;
use super::{StoreError, ms, ts};
use crate::engine::handoff;
use crate::engine::notify;
use crate::engine::paging::{OnCallBook, Overrides};
use crate::model::oncall::{CalendarFeed, FeedOf, NewOverride, ScheduleOverride};
use crate::sla::timers::TimerKey;

const OVERRIDE_COLUMNS: &str = "id, schedule, person, starts_at, ends_at, reason, created_by, created_at";

fn override_row(r: &super::sql::Row<'_>) -> super::sql::Result<Result<ScheduleOverride, StoreError>> {
    let (start, end, created): (i64, i64, i64) = (r.get(3)?, r.get(4)?, r.get(7)?);
    let (id, schedule, person, reason, created_by) = (r.get(0)?, r.get(1)?, r.get(2)?, r.get(5)?, r.get(6)?);
    Ok((|| {
        Ok(ScheduleOverride {
            id,
            schedule,
            person,
            start: ts(start)?,
            end: ts(end)?,
            reason,
            created_by,
            created_at: ts(created)?,
        })
    })())
}

/// The overrides of `schedule` (every schedule when `None`) not deleted
/// and overlapping `[from, to)`, oldest first.
pub(super) fn overrides(
    c: &Connection,
    schedule: Option<&str>,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<ScheduleOverride>, StoreError> {
    let rows: Vec<_> = c
        .prepare_cached(&format!(
            "SELECT {OVERRIDE_COLUMNS} FROM schedule_overrides
             WHERE deleted_at IS NULL AND (CAST(?1 AS TEXT) IS NULL OR schedule = ?1) AND ends_at > ?2 AND starts_at < ?3
             ORDER BY id"
        ))?
        .query_map(params![schedule, ms(from), ms(to)], override_row)?
        .collect::<Result<_, _>>()?;
    rows.into_iter().collect()
}

pub(super) fn override_by_id(c: &Connection, id: i64) -> Result<Option<ScheduleOverride>, StoreError> {
    c.prepare_cached(&format!(
        "SELECT {OVERRIDE_COLUMNS} FROM schedule_overrides WHERE id = ?1 AND deleted_at IS NULL"
    ))?
    .query_row([id], override_row)
    .optional()?
    .transpose()
}

/// Every override not ended by `now`, by schedule: what paging needs.
fn live_overrides(c: &Connection, now: Timestamp) -> Result<Overrides, StoreError> {
    let mut out = Overrides::new();
    for o in overrides(c, None, now, Timestamp::MAX)? {
        out.entry(o.schedule.clone()).or_default().push(crate::oncall::Override::from(&o));
    }
    Ok(out)
}

const FEED_COLUMNS: &str = "id, schedule, person, created_by, created_at, revoked_at";

fn feed_row(r: &super::sql::Row<'_>) -> super::sql::Result<Result<CalendarFeed, StoreError>> {
    let (id, schedule, person): (i64, Option<String>, Option<String>) = (r.get(0)?, r.get(1)?, r.get(2)?);
    let (created_by, created, revoked): (String, i64, Option<i64>) = (r.get(3)?, r.get(4)?, r.get(5)?);
    Ok((|| {
        let of = match (schedule, person) {
            (Some(s), None) => FeedOf::Schedule(s),
            (None, Some(p)) => FeedOf::Person(p),
            _ => return Err(StoreError::Corrupt(format!("calendar feed {id}: neither a schedule nor a person"))),
        };
        Ok(CalendarFeed { id, of, created_by, created_at: ts(created)?, revoked_at: revoked.map(ts).transpose()? })
    })())
}

pub(super) fn feeds(c: &Connection) -> Result<Vec<CalendarFeed>, StoreError> {
    let rows: Vec<_> = c
        .prepare_cached(&format!("SELECT {FEED_COLUMNS} FROM calendar_feeds ORDER BY id"))?
        .query_map(params![], feed_row)?
        .collect::<Result<_, _>>()?;
    rows.into_iter().collect()
}

pub(super) fn feed_by_id(c: &Connection, id: i64) -> Result<Option<CalendarFeed>, StoreError> {
    c.prepare_cached(&format!("SELECT {FEED_COLUMNS} FROM calendar_feeds WHERE id = ?1"))?
        .query_row([id], feed_row)
        .optional()?
        .transpose()
}

/// The live (not revoked) feed a key opens.
pub(super) fn feed_by_key(c: &Connection, key_hash: &str) -> Result<Option<CalendarFeed>, StoreError> {
    c.prepare_cached(&format!("SELECT {FEED_COLUMNS} FROM calendar_feeds WHERE key_hash = ?1 AND revoked_at IS NULL"))?
        .query_row([key_hash], feed_row)
        .optional()?
        .transpose()
}

pub(super) fn create_feed(
    tx: &Connection,
    of: &FeedOf,
    key_hash: &str,
    actor: &str,
    now: Timestamp,
) -> Result<CalendarFeed, StoreError> {
    let (schedule, person) = match of {
        FeedOf::Schedule(s) => (Some(s), None),
        FeedOf::Person(p) => (None, Some(p)),
    };
    tx.prepare_cached(
        "INSERT INTO calendar_feeds (schedule, person, key_hash, created_by, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![schedule, person, key_hash, actor, ms(now)])?;
    Ok(CalendarFeed {
        id: tx.last_insert_rowid()?,
        of: of.clone(),
        created_by: actor.to_owned(),
        created_at: now,
        revoked_at: None,
    })
}

pub(super) fn revoke_feed(tx: &Connection, id: i64, actor: &str, now: Timestamp) -> Result<(), StoreError> {
    let n = tx
        .prepare_cached(
            "UPDATE calendar_feeds SET revoked_at = ?2, revoked_by = ?3 WHERE id = ?1 AND revoked_at IS NULL",
        )?
        .execute(params![id, ms(now), actor])?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("no live calendar feed {id}")));
    }
    Ok(())
}

impl WriterState {
    /// Who is on call and how people are reached, as the writer knows it.
    pub(super) fn book(&self) -> OnCallBook<'_> {
        OnCallBook { schedules: &self.rules.schedules, overrides: &self.overrides, directory: &self.audience.directory }
    }

    /// Load the live overrides and give every schedule of the rules its
    /// handoff row and timer (at load, and after a reload).
    /// Read the overrides not ended into memory. One naming someone no
    /// longer in the config pages no one: the layers decide instead (the
    /// override stays listed, to be deleted).
    pub(super) fn reload_overrides(&mut self, conn: &Connection, now: Timestamp) -> Result<(), StoreError> {
        self.overrides = live_overrides(conn, now)?;
        let directory = &self.audience.directory;
        for (schedule, list) in &mut self.overrides {
            list.retain(|o| {
                let known = directory.person(&o.person).is_some();
                if !known {
                    tracing::warn!(%schedule, person = %o.person, "an override names someone not in the config's people; the schedule's layers decide instead");
                }
                known
            });
        }
        Ok(())
    }

    pub(super) fn load_oncall(&mut self, conn: &Connection, now: Timestamp) -> Result<(), StoreError> {
        self.reload_overrides(conn, now)?;
        let rules = self.rules.clone();
        // A schedule gone from the rules forgets whom it told: back, it starts afresh.
        let stored: Vec<String> = conn
            .prepare_cached("SELECT schedule FROM oncall_handoffs")?
            .query_map(params![], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for gone in stored.iter().filter(|s| !rules.schedules.contains_key(*s)) {
            conn.prepare_cached("DELETE FROM oncall_handoffs WHERE schedule = ?1")?.execute([gone])?;
        }
        // A schedule new to the database starts with whoever is on call now,
        // told nothing: its first handoff is the first one to come.
        for name in rules.schedules.keys() {
            let person = self.book().on_call(name, now).map(|o| o.person);
            conn.prepare_cached(
                "INSERT INTO oncall_handoffs (schedule, announced_through, announced_person) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            )?
            .execute(params![name, ms(now), person])?;
        }
        let rows: Vec<(i64, String, i64)> = conn
            .prepare_cached("SELECT id, schedule, announced_through FROM oncall_handoffs")?
            .query_map(params![], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        for (id, name, through) in rows {
            // Due at once when the person told last may no longer be on call
            // (a handoff missed while down, an override changed meanwhile).
            let due = rules.schedules.contains_key(&name).then_some(ts(through)?.min(now));
            self.timers.set(TimerKey::Handoff(id), due);
        }
        Ok(())
    }

    pub(super) fn create_override(
        &mut self,
        tx: &Connection,
        new: &NewOverride,
        actor: &str,
        now: Timestamp,
    ) -> Result<ScheduleOverride, StoreError> {
        tx.prepare_cached(
            "INSERT INTO schedule_overrides (schedule, person, starts_at, ends_at, reason, created_by, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![new.schedule, new.person, ms(new.start), ms(new.end), new.reason, actor, ms(now)])?;
        let id = tx.last_insert_rowid()?;
        let stored = override_by_id(tx, id)?.ok_or_else(|| StoreError::Corrupt(format!("override {id} vanished")))?;
        self.overrides.entry(new.schedule.clone()).or_default().push(crate::oncall::Override::from(&stored));
        self.reschedule_handoff(tx, &new.schedule, now)?;
        tracing::info!(schedule = %new.schedule, person = %new.person, start = %new.start, end = %new.end, actor, "override created");
        Ok(stored)
    }

    pub(super) fn delete_override(
        &mut self,
        tx: &Connection,
        schedule: &str,
        id: i64,
        actor: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let n = tx
            .prepare_cached(
                "UPDATE schedule_overrides SET deleted_at = ?3, deleted_by = ?4
                 WHERE id = ?1 AND schedule = ?2 AND deleted_at IS NULL",
            )?
            .execute(params![id, schedule, ms(now), actor])?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("no override {id} of schedule {schedule:?}")));
        }
        self.reload_overrides(tx, now)?;
        self.reschedule_handoff(tx, schedule, now)
    }

    /// An override changed who is on call ahead: the handoff timer follows.
    fn reschedule_handoff(&mut self, tx: &Connection, schedule: &str, now: Timestamp) -> Result<(), StoreError> {
        let row: Option<(i64, i64)> = tx
            .prepare_cached("SELECT id, announced_through FROM oncall_handoffs WHERE schedule = ?1")?
            .query_row([schedule], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((id, _)) = row else { return Ok(()) };
        // Checked at once: the override may have changed who is on call now.
        self.schedule(TimerKey::Handoff(id), Some(now));
        Ok(())
    }

    /// A schedule's handoff timer fired: tell the incoming and outgoing
    /// person of the latest handoff, and wait for the next.
    pub(super) fn fire_handoff(&mut self, tx: &Connection, id: i64, now: Timestamp) -> Result<(), StoreError> {
        let row: Option<(String, i64, Option<String>)> = tx
            .prepare_cached("SELECT schedule, announced_through, announced_person FROM oncall_handoffs WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((name, through, person)) = row else { return Ok(()) };
        let rules = self.rules.clone();
        let Some(schedule) = rules.schedules.get(&name) else { return Ok(()) };
        // Ended overrides leave the writer's memory here, where it looks anyway.
        if let Some(list) = self.overrides.get_mut(&name) {
            list.retain(|o| o.end > now);
        }
        let announced = handoff::Announced { through: ts(through)?, person };
        let plan = handoff::due(schedule, self.book().overrides_of(&name), &announced, now);
        for h in &plan.passed {
            tracing::info!(schedule = %name, at = %h.at, outgoing = ?h.outgoing, incoming = ?h.incoming, "on-call handoff");
            self.facts.push(crate::metrics::Fact::Handoff { schedule: name.clone() });
        }
        if let Some(h) = &plan.tell {
            let a = &self.audience;
            let deliveries = notify::to_people("oncall.handoff", &h.origin(), &h.told(), &a.directory);
            if !deliveries.is_empty() {
                let payload = json!({ "event": "oncall.handoff", "data": h.data() });
                self.outbox_dirty.set(true);
                super::outbox::enqueue(tx, "oncall.handoff", (None, None), &deliveries, &payload, now)?;
            }
        }
        tx.prepare_cached("UPDATE oncall_handoffs SET announced_through = ?2, announced_person = ?3 WHERE id = ?1")?
            .execute(params![id, ms(plan.announced.through), plan.announced.person])?;
        self.schedule(TimerKey::Handoff(id), plan.next);
        Ok(())
    }
}
