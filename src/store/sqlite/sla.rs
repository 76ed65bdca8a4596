//! SLA clocks and escalations inside the writer's transaction: loading
//! them, applying what `engine::sla` decides (clock rows, timeline entries,
//! notifications, timers), and the views the API shows.
use super::sql::{Connection, OptionalExtension, params};
use jiff::Timestamp;

use super::state::{SYSTEM, WriterState, record_event};
use super::{StoreError, ms, outbox, ts};
use crate::engine::escalation::Escalation;
use crate::engine::notify;
use crate::engine::sla::{self as decide, ClockSlot, SlaEffect};
use crate::model::incident::{IncidentState, Priority};
use crate::rules::incident::IncidentRule;
use crate::sla::calendar::Calendar;
use crate::sla::clock::{ClockKind, Milestone, SlaClock, Warned};
use crate::sla::timers::TimerKey;
use crate::store::{EscalationView, SlaView};

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

const CLOCK_COLUMNS: &str = "id, incident_id, kind, policy, calendar, target_ms, warn_at, pause_in, used_ms,
    running_since, stopped_at, warned, breached_at, unanswered";

/// A clock row: its incident and the clock.
fn clock_from_row(r: &super::sql::Row<'_>) -> super::sql::Result<Result<(i64, ClockSlot), StoreError>> {
    let kind: String = r.get(2)?;
    let warn_at: String = r.get(6)?;
    let pause_in: String = r.get(7)?;
    let warned: String = r.get(11)?;
    let running_since: Option<i64> = r.get(9)?;
    let stopped_at: Option<i64> = r.get(10)?;
    let breached_at: Option<i64> = r.get(12)?;
    let (id, incident_id, policy, calendar, target_ms, used_ms, unanswered) =
        (r.get(0)?, r.get(1)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(8)?, r.get(13)?);
    Ok((|| {
        let pause_in: Vec<String> = serde_json::from_str(&pause_in).map_err(|e| corrupt("clock pause_in", e))?;
        let slot = ClockSlot {
            id: Some(id),
            pause_in: pause_in.iter().filter_map(|s| IncidentState::parse(s)).collect(),
            clock: SlaClock {
                kind: ClockKind::parse(&kind).ok_or_else(|| corrupt("clock kind", &kind))?,
                policy,
                calendar,
                target_ms,
                warn_at: serde_json::from_str(&warn_at).map_err(|e| corrupt("clock warn_at", e))?,
                used_ms,
                running_since: running_since.map(ts).transpose()?,
                stopped_at: stopped_at.map(ts).transpose()?,
                unanswered,
                warned: serde_json::from_str::<Vec<Warned>>(&warned).map_err(|e| corrupt("clock warned", e))?,
                breached_at: breached_at.map(ts).transpose()?,
            },
        };
        Ok((incident_id, slot))
    })())
}

pub(super) fn clocks_of(tx: &Connection, incident_id: i64) -> Result<Vec<ClockSlot>, StoreError> {
    let rows: Vec<Result<(i64, ClockSlot), StoreError>> = tx
        .prepare_cached(&format!("SELECT {CLOCK_COLUMNS} FROM sla_clocks WHERE incident_id = ?1 ORDER BY kind"))?
        .query_map([incident_id], clock_from_row)?
        .collect::<Result<_, _>>()?;
    rows.into_iter().map(|r| r.map(|(_, slot)| slot)).collect()
}

fn clock_by_id(tx: &Connection, id: i64) -> Result<Option<(i64, ClockSlot)>, StoreError> {
    tx.prepare_cached(&format!("SELECT {CLOCK_COLUMNS} FROM sla_clocks WHERE id = ?1"))?
        .query_row([id], clock_from_row)
        .optional()?
        .transpose()
}

fn json_text<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| corrupt("encoding", e))
}

impl WriterState {
    /// The calendar of a clock (see [`crate::rules::RuleSet::calendar`]).
    pub(super) fn calendar(&self, name: &str) -> std::sync::Arc<Calendar> {
        if !self.rules.calendars.contains_key(name) {
            tracing::warn!(calendar = name, "an SLA clock's calendar is no longer defined; counting 24x7");
        }
        self.rules.calendar(name)
    }

    /// Insert or update a clock's row and schedule its next milestone.
    fn save_clock(&mut self, tx: &Connection, incident_id: i64, slot: &ClockSlot) -> Result<(), StoreError> {
        let c = &slot.clock;
        let due = c.next_milestone_at(&self.calendar(&c.calendar));
        let id = match slot.id {
            Some(id) => id,
            None => {
                let pause_in: Vec<&str> = slot.pause_in.iter().map(|s| s.as_str()).collect();
                tx.insert(
                    "INSERT INTO sla_clocks (incident_id, kind, policy, calendar, warn_at, pause_in, used_ms, warned)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, '[]')",
                    params![
                        incident_id,
                        c.kind.as_str(),
                        c.policy,
                        c.calendar,
                        json_text(&c.warn_at)?,
                        json_text(&pause_in)?
                    ],
                )?
            }
        };
        tx.prepare_cached(
            "UPDATE sla_clocks SET target_ms = ?2, used_ms = ?3, running_since = ?4, stopped_at = ?5, warned = ?6,
                breached_at = ?7, due_at = ?8, unanswered = ?9 WHERE id = ?1",
        )?
        .execute(params![
            id,
            c.target_ms,
            c.used_ms,
            c.running_since.map(ms),
            c.stopped_at.map(ms),
            json_text(&c.warned)?,
            c.breached_at.map(ms),
            due.map(ms),
            c.unanswered,
        ])?;
        self.schedule(TimerKey::Clock(id), due);
        Ok(())
    }

    /// Carry out what the SLA decisions asked, in order.
    fn apply_sla(
        &mut self,
        tx: &Connection,
        incident_id: i64,
        effects: Vec<SlaEffect>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut recorded = None;
        let mut labels: Option<(String, String)> = None;
        for effect in effects {
            match effect {
                SlaEffect::Policy(name) => {
                    tx.prepare_cached("UPDATE incidents SET sla_policy = ?2 WHERE id = ?1")?
                        .execute(params![incident_id, name])?;
                }
                SlaEffect::Save(slot) => self.save_clock(tx, incident_id, &slot)?,
                SlaEffect::Record(e) => {
                    recorded = Some(record_event(tx, incident_id, (e.at, now), SYSTEM, e.kind, &e.message, e.data)?);
                }
                SlaEffect::Milestone { kind, milestone } => {
                    if labels.is_none() {
                        let (priority, service): (String, Option<String>) = tx
                            .prepare_cached("SELECT priority, service FROM incidents WHERE id = ?1")?
                            .query_row([incident_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
                        labels = Some((priority, service.unwrap_or_default()));
                    }
                    let (priority, service) = labels.clone().unwrap_or_default();
                    let kind = kind.as_str();
                    tracing::info!(incident = incident_id, clock = kind, ?milestone, "SLA milestone");
                    self.facts.push(match milestone {
                        Milestone::Warning(_) => crate::metrics::Fact::SlaWarning { kind, priority, service },
                        Milestone::Breach => crate::metrics::Fact::SlaBreach { kind, priority, service },
                    });
                }
                SlaEffect::Notify { event, data, targets } => {
                    let Some(entry) = recorded else {
                        return Err(StoreError::Corrupt(format!("{event}: a notification without its entry")));
                    };
                    self.notify_incident(tx, incident_id, event, entry, data, targets.as_ref(), now)?;
                }
            }
        }
        Ok(())
    }

    /// Start the clocks of a new incident under its rule's SLA policy, or
    /// the first policy whose matchers match its fields.
    pub(super) fn start_clocks(
        &mut self,
        tx: &Connection,
        incident_id: i64,
        policy_override: Option<&str>,
        fields: &crate::model::LabelSet,
        priority: Priority,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let rules = self.rules.clone();
        let Some(policy) = decide::choose_policy(&rules.sla_policies, policy_override, fields) else { return Ok(()) };
        let effects = decide::start(policy, priority, now);
        self.apply_sla(tx, incident_id, effects, now)
    }

    /// The incident moved to `state`: every clock follows.
    pub(super) fn clocks_follow(
        &mut self,
        tx: &Connection,
        incident_id: i64,
        state: IncidentState,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let slots = clocks_of(tx, incident_id)?;
        let effects = decide::follow(slots, state, &|name| self.calendar(name), now);
        self.apply_sla(tx, incident_id, effects, now)
    }

    /// The incident's priority changed: its clocks take the new priority's targets.
    pub(super) fn retarget_clocks(
        &mut self,
        tx: &Connection,
        incident_id: i64,
        priority: Priority,
        state: IncidentState,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let rules = self.rules.clone();
        let (policy_name, acknowledged): (Option<String>, bool) = tx
            .prepare_cached("SELECT sla_policy, acknowledged_at IS NOT NULL FROM incidents WHERE id = ?1")?
            .query_row([incident_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let Some(policy_name) = policy_name else { return Ok(()) };
        let policy = rules.sla_policies.iter().find(|p| p.name == policy_name);
        if policy.is_none() {
            tracing::warn!(incident = incident_id, policy = %policy_name, "SLA policy gone; targets kept");
        }
        let slots = clocks_of(tx, incident_id)?;
        let effects = decide::retarget(slots, policy, priority, state, acknowledged, &|name| self.calendar(name), now);
        self.apply_sla(tx, incident_id, effects, now)
    }

    /// A clock's timer is due.
    pub(super) fn fire_clock(&mut self, tx: &Connection, clock_id: i64, now: Timestamp) -> Result<(), StoreError> {
        let Some((incident_id, slot)) = clock_by_id(tx, clock_id)? else { return Ok(()) };
        let cal = self.calendar(&slot.clock.calendar);
        let effects = decide::fire(slot, &cal, now);
        self.apply_sla(tx, incident_id, effects, now)
    }

    /// Queue an incident event for its rule's notifiers (or `targets`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn notify_incident(
        &self,
        tx: &Connection,
        incident_id: i64,
        name: &str,
        event_id: i64,
        data: serde_json::Value,
        targets: Option<&crate::engine::paging::Reach>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let incident = super::rows::incident(tx, incident_id)?
            .ok_or_else(|| StoreError::NotFound(format!("no incident {incident_id}")))?;
        let rule: Vec<&IncidentRule> = self.rules.incident_rules.iter().filter(|r| r.name == incident.rule).collect();
        let origin = notify::incident_origin(incident_id, event_id);
        let deliveries =
            notify::deliveries(name, &origin, targets, &rule, &self.audience.subscriptions, &self.audience.directory);
        if deliveries.is_empty() {
            return Ok(());
        }
        let alerts = super::rows::first_alerts(tx, incident_id, notify::SNAPSHOT_ALERTS)?;
        let facts = notify::IncidentFacts {
            incident: &incident,
            alerts: &alerts,
            known_errors: &super::problems::of_incident(tx, incident_id)?,
            clocks: &clocks_of(tx, incident_id)?,
        };
        let payload = notify::incident_payload(name, &facts, data, &|name| self.rules.calendar(name), now);
        self.outbox_dirty.set(true);
        outbox::enqueue(tx, name, (Some(incident_id), None), &deliveries, &payload, now)
    }

    // Escalation.

    pub(super) fn start_escalation(
        &mut self,
        tx: &Connection,
        incident_id: i64,
        policy_name: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let rules = self.rules.clone();
        let Some(esc) = decide::start_escalation(rules.escalation_policies.get(policy_name), now) else {
            return Ok(());
        };
        tx.prepare_cached(
            "INSERT INTO escalations (incident_id, policy, round, step, round_started, due_at) VALUES (?1, ?2, 0, 0, ?3, ?4)
             ON CONFLICT (incident_id) DO UPDATE SET policy = ?2, round = 0, step = 0, round_started = ?3, due_at = ?4",
        )?
        .execute(params![incident_id, esc.policy, ms(esc.round_started), esc.due_at.map(ms)])?;
        self.fire_escalation(tx, incident_id, now)
    }

    fn escalation_of(tx: &Connection, incident_id: i64) -> Result<Option<Escalation>, StoreError> {
        let row: Option<(String, u32, i64, i64, Option<i64>)> = tx
            .prepare_cached(
                "SELECT policy, round, step, round_started, due_at FROM escalations WHERE incident_id = ?1",
            )?
            .query_row([incident_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .optional()?;
        row.map(|(policy, round, step, started, due)| {
            Ok(Escalation {
                policy,
                round,
                step: step as usize,
                round_started: ts(started)?,
                due_at: due.map(ts).transpose()?,
            })
        })
        .transpose()
    }

    /// Notify every escalation step due by `now`.
    pub(super) fn fire_escalation(
        &mut self,
        tx: &Connection,
        incident_id: i64,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let rules = self.rules.clone();
        let Some(mut esc) = Self::escalation_of(tx, incident_id)? else { return Ok(()) };
        let policy = rules.escalation_policies.get(&esc.policy);
        if policy.is_none() {
            tracing::warn!(incident = incident_id, policy = %esc.policy, "escalation policy gone; escalation ends");
        }
        let book = self.book();
        let effects = decide::escalate(&mut esc, policy, &book, now);
        self.apply_sla(tx, incident_id, effects, now)?;
        self.save_escalation(tx, incident_id, &esc)
    }

    fn save_escalation(&mut self, tx: &Connection, incident_id: i64, esc: &Escalation) -> Result<(), StoreError> {
        tx.prepare_cached(
            "UPDATE escalations SET round = ?2, step = ?3, round_started = ?4, due_at = ?5 WHERE incident_id = ?1",
        )?
        .execute(params![
            incident_id,
            esc.round,
            esc.step as i64,
            ms(esc.round_started),
            esc.due_at.map(ms)
        ])?;
        self.schedule(TimerKey::Escalation(incident_id), esc.due_at);
        Ok(())
    }

    /// Someone answered (or the incident resolved): no further steps.
    pub(super) fn stop_escalation(
        &mut self,
        tx: &Connection,
        incident_id: i64,
        why: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let Some(mut esc) = Self::escalation_of(tx, incident_id)? else { return Ok(()) };
        let effects = decide::stop_escalation(&mut esc, why, now);
        if effects.is_empty() {
            return Ok(());
        }
        self.apply_sla(tx, incident_id, effects, now)?;
        self.save_escalation(tx, incident_id, &esc)
    }
}

pub(super) fn sla_view(
    c: &Connection,
    incident_id: i64,
    rules: &crate::rules::RuleSet,
    now: Timestamp,
) -> Result<Option<SlaView>, StoreError> {
    Ok(decide::view(&clocks_of(c, incident_id)?, rules, now))
}

pub(super) fn escalation_view(c: &Connection, incident_id: i64) -> Result<Option<EscalationView>, StoreError> {
    Ok(WriterState::escalation_of(c, incident_id)?.map(|e| e.view()))
}
