//! SLA clocks and escalations inside the writer's transaction: starting
//! them when an incident opens, following its state, firing their timers.
//! The decisions are `sla::clock` and `sla::escalation`; this module loads
//! and saves their rows and records what they decide in the timeline and the
//! outbox.
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use super::incidents::{Engine, SYSTEM, event};
use super::{StoreError, ms, outbox, ts};
use crate::model::Duration;
use crate::model::incident::{IncidentState, Priority};
use crate::sla::calendar::Calendar;
use crate::sla::clock::{ClockKind, Milestone, Passed, SlaClock, Warned};
use crate::sla::escalation::Escalation;
use crate::sla::timers::TimerKey;

/// A clock with its row id and the pause states it was started with.
pub(super) struct ClockRow {
    pub id: i64,
    pub incident_id: i64,
    pub clock: SlaClock,
    pub pause_in: Vec<IncidentState>,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

const CLOCK_COLUMNS: &str = "id, incident_id, kind, policy, calendar, target_ms, warn_at, pause_in, used_ms,
    running_since, stopped_at, warned, breached_at";

fn clock_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<ClockRow, StoreError>> {
    let kind: String = r.get(2)?;
    let warn_at: String = r.get(6)?;
    let pause_in: String = r.get(7)?;
    let warned: String = r.get(11)?;
    let running_since: Option<i64> = r.get(9)?;
    let stopped_at: Option<i64> = r.get(10)?;
    let breached_at: Option<i64> = r.get(12)?;
    let (id, incident_id, policy, calendar, target_ms, used_ms) =
        (r.get(0)?, r.get(1)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(8)?);
    Ok((|| {
        let pause_in: Vec<String> = serde_json::from_str(&pause_in).map_err(|e| corrupt("clock pause_in", e))?;
        Ok(ClockRow {
            id,
            incident_id,
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
                warned: serde_json::from_str::<Vec<Warned>>(&warned).map_err(|e| corrupt("clock warned", e))?,
                breached_at: breached_at.map(ts).transpose()?,
            },
        })
    })())
}

pub(super) fn clocks_of(tx: &Connection, incident_id: i64) -> Result<Vec<ClockRow>, StoreError> {
    let rows: Vec<Result<ClockRow, StoreError>> = tx
        .prepare_cached(&format!("SELECT {CLOCK_COLUMNS} FROM sla_clocks WHERE incident_id = ?1 ORDER BY kind"))?
        .query_map([incident_id], clock_from_row)?
        .collect::<Result<_, _>>()?;
    rows.into_iter().collect()
}

fn clock_by_id(tx: &Connection, id: i64) -> Result<Option<ClockRow>, StoreError> {
    tx.prepare_cached(&format!("SELECT {CLOCK_COLUMNS} FROM sla_clocks WHERE id = ?1"))?
        .query_row([id], clock_from_row)
        .optional()?
        .transpose()
}

fn json_text<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| corrupt("encoding", e))
}

/// `7m30s` for a millisecond count.
fn human(ms_count: i64) -> String {
    let rounded = if ms_count >= 60_000 { ms_count / 1000 * 1000 } else { ms_count };
    Duration::from_millis(rounded.max(0)).to_string()
}

impl Engine {
    /// The calendar of a clock (see [`crate::rules::RuleSet::calendar`]).
    pub(super) fn calendar(&self, name: &str) -> std::sync::Arc<Calendar> {
        if !self.rules.calendars.contains_key(name) {
            tracing::warn!(calendar = name, "an SLA clock's calendar is no longer defined; counting 24x7");
        }
        self.rules.calendar(name)
    }

    fn save_clock(&mut self, tx: &Connection, row: &ClockRow) -> Result<(), StoreError> {
        let cal = self.calendar(&row.clock.calendar);
        let due = row.clock.due_at(&cal);
        let c = &row.clock;
        tx.prepare_cached(
            "UPDATE sla_clocks SET target_ms = ?2, used_ms = ?3, running_since = ?4, stopped_at = ?5, warned = ?6,
                breached_at = ?7, due_at = ?8 WHERE id = ?1",
        )?
        .execute(params![
            row.id,
            c.target_ms,
            c.used_ms,
            c.running_since.map(ms),
            c.stopped_at.map(ms),
            json_text(&c.warned)?,
            c.breached_at.map(ms),
            due.map(ms),
        ])?;
        self.schedule(TimerKey::Clock(row.id), due);
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
        let policy = match policy_override {
            Some(name) => rules.sla_policies.iter().find(|p| p.name == name),
            None => rules.sla_policies.iter().find(|p| p.matches(fields)),
        };
        let Some(policy) = policy else { return Ok(()) };
        tx.prepare_cached("UPDATE incidents SET sla_policy = ?2 WHERE id = ?1")?
            .execute(params![incident_id, policy.name])?;
        let targets = policy.targets(priority);
        let mut described = Vec::new();
        for kind in ClockKind::ALL {
            let target = match kind {
                ClockKind::Respond => targets.respond,
                ClockKind::Resolve => targets.resolve,
            };
            if let Some(target) = target {
                self.insert_clock(tx, incident_id, kind, policy, target, IncidentState::Triggered, now)?;
                described.push(format!("{kind} within {target}"));
            }
        }
        if !described.is_empty() {
            event(
                tx,
                incident_id,
                now,
                SYSTEM,
                "sla_started",
                &format!("SLA policy {} ({} calendar): {}", policy.name, policy.calendar, described.join(", ")),
                json!({ "policy": policy.name, "calendar": policy.calendar, "priority": priority }),
            )?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn insert_clock(
        &mut self,
        tx: &Connection,
        incident_id: i64,
        kind: ClockKind,
        policy: &crate::rules::policy::SlaPolicy,
        target: Duration,
        state: IncidentState,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let running = !policy.pause_in.contains(&state);
        let clock =
            SlaClock::start(kind, &policy.name, &policy.calendar, target.as_millis(), &policy.warn_at, running, now);
        let pause_in: Vec<&str> = policy.pause_in.iter().map(|s| s.as_str()).collect();
        tx.prepare_cached(
            "INSERT INTO sla_clocks (incident_id, kind, policy, calendar, target_ms, warn_at, pause_in, used_ms,
                running_since, warned)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, '[]')",
        )?
        .execute(params![
            incident_id,
            kind.as_str(),
            policy.name,
            policy.calendar,
            clock.target_ms,
            json_text(&clock.warn_at)?,
            json_text(&pause_in)?,
            clock.running_since.map(ms),
        ])?;
        let row = ClockRow { id: tx.last_insert_rowid(), incident_id, clock, pause_in: policy.pause_in.clone() };
        self.save_clock(tx, &row)
    }

    /// The incident moved to `state`: every clock follows.
    pub(super) fn clocks_follow(
        &mut self,
        tx: &Connection,
        incident_id: i64,
        state: IncidentState,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        for mut row in clocks_of(tx, incident_id)? {
            let cal = self.calendar(&row.clock.calendar);
            let before = row.clock.state();
            let passed = row.clock.follow(state, &row.pause_in, &cal, now);
            self.record_passed(tx, &row, &passed, now)?;
            let after = row.clock.state();
            if before != after {
                let elapsed = row.clock.elapsed_ms(&cal, now);
                event(
                    tx,
                    incident_id,
                    now,
                    SYSTEM,
                    "sla_clock",
                    &format!(
                        "{} clock {} → {} ({} of {} used)",
                        row.clock.kind,
                        before.as_str(),
                        after.as_str(),
                        human(elapsed),
                        human(row.clock.target_ms)
                    ),
                    json!({ "clock": row.clock.kind, "from": before, "to": after, "elapsedMs": elapsed }),
                )?;
            }
            self.save_clock(tx, &row)?;
        }
        Ok(())
    }

    /// The incident's priority changed: its clocks take the targets of the
    /// new priority under their policy; a clock the old priority lacked starts.
    pub(super) fn retarget_clocks(
        &mut self,
        tx: &Connection,
        incident_id: i64,
        priority: Priority,
        state: IncidentState,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let rules = self.rules.clone();
        let rows = clocks_of(tx, incident_id)?;
        let policy_name: Option<String> = tx
            .prepare_cached("SELECT sla_policy FROM incidents WHERE id = ?1")?
            .query_row([incident_id], |r| r.get(0))?;
        let Some(policy_name) = policy_name else { return Ok(()) };
        let Some(policy) = rules.sla_policies.iter().find(|p| p.name == policy_name) else {
            tracing::warn!(incident = incident_id, policy = %policy_name, "SLA policy gone; targets kept");
            return Ok(());
        };
        let targets = policy.targets(priority);
        let acknowledged: bool = tx
            .prepare_cached("SELECT acknowledged_at IS NOT NULL FROM incidents WHERE id = ?1")?
            .query_row([incident_id], |r| r.get(0))?;
        for kind in ClockKind::ALL {
            let target = match kind {
                ClockKind::Respond => targets.respond,
                ClockKind::Resolve => targets.resolve,
            };
            let Some(target) = target else {
                // The new priority makes no such promise: a running clock goes
                // (a settled one, met or breached, stays as the record).
                if let Some(row) = rows.iter().find(|r| r.clock.kind == kind && r.clock.stopped_at.is_none())
                    && row.clock.breached_at.is_none()
                {
                    tx.prepare_cached("DELETE FROM sla_clocks WHERE id = ?1")?.execute([row.id])?;
                    self.schedule(TimerKey::Clock(row.id), None);
                    event(
                        tx,
                        incident_id,
                        now,
                        SYSTEM,
                        "sla_retargeted",
                        &format!("{kind} clock dropped: priority {priority} has no {kind} target"),
                        json!({ "clock": kind, "beforeMs": row.clock.target_ms, "afterMs": null, "priority": priority }),
                    )?;
                }
                continue;
            };
            match rows.iter().find(|r| r.clock.kind == kind) {
                // A stopped clock's result is settled; a new priority does not rewrite it.
                Some(row) if row.clock.target_ms == target.as_millis() || row.clock.stopped_at.is_some() => {}
                Some(row) => {
                    let mut row =
                        ClockRow { id: row.id, incident_id, clock: row.clock.clone(), pause_in: row.pause_in.clone() };
                    let cal = self.calendar(&row.clock.calendar);
                    let old = row.clock.target_ms;
                    let passed = row.clock.retarget(target.as_millis(), &cal, now);
                    event(
                        tx,
                        incident_id,
                        now,
                        SYSTEM,
                        "sla_retargeted",
                        &format!("{kind} target {} → {target} (priority {priority})", human(old)),
                        json!({ "clock": kind, "beforeMs": old, "afterMs": target.as_millis(), "priority": priority }),
                    )?;
                    self.record_passed(tx, &row, &passed, now)?;
                    self.save_clock(tx, &row)?;
                }
                // A promise the old priority did not make starts now, if it is still open.
                None if (kind == ClockKind::Respond && !acknowledged && state.is_open())
                    || (kind == ClockKind::Resolve && state.is_open()) =>
                {
                    self.insert_clock(tx, incident_id, kind, policy, target, state, now)?;
                    event(
                        tx,
                        incident_id,
                        now,
                        SYSTEM,
                        "sla_retargeted",
                        &format!("{kind} clock started: within {target} (priority {priority})"),
                        json!({ "clock": kind, "afterMs": target.as_millis(), "priority": priority }),
                    )?;
                }
                None => {}
            }
        }
        Ok(())
    }

    /// A clock's timer is due.
    pub(super) fn fire_clock(&mut self, tx: &Connection, clock_id: i64, now: Timestamp) -> Result<(), StoreError> {
        let Some(mut row) = clock_by_id(tx, clock_id)? else { return Ok(()) };
        let cal = self.calendar(&row.clock.calendar);
        let passed = row.clock.advance(&cal, now);
        self.record_passed(tx, &row, &passed, now)?;
        self.save_clock(tx, &row)
    }

    /// Milestones into the timeline, each at its instant; the latest one
    /// (a breach supersedes the warnings before it) into the outbox.
    fn record_passed(
        &mut self,
        tx: &Connection,
        row: &ClockRow,
        passed: &[Passed],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let c = &row.clock;
        let mut last = None;
        if !passed.is_empty() {
            let (priority, service): (String, Option<String>) = tx
                .prepare_cached("SELECT priority, service FROM incidents WHERE id = ?1")?
                .query_row([row.incident_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let service = service.unwrap_or_default();
            for p in passed {
                let (priority, service, kind) = (priority.clone(), service.clone(), c.kind.as_str());
                self.facts.push(match p.milestone {
                    Milestone::Warning(_) => crate::metrics::Fact::SlaWarning { kind, priority, service },
                    Milestone::Breach => crate::metrics::Fact::SlaBreach { kind, priority, service },
                });
            }
        }
        for p in passed {
            let (kind, message) = match p.milestone {
                Milestone::Warning(pct) => (
                    "sla_warning",
                    format!(
                        "{} SLA at {pct}% ({} of {} used)",
                        c.kind,
                        human(c.target_ms * i64::from(pct) / 100),
                        human(c.target_ms)
                    ),
                ),
                Milestone::Breach => {
                    ("sla_breached", format!("{} SLA breached: target {} passed", c.kind, human(c.target_ms)))
                }
            };
            tracing::info!(incident = row.incident_id, clock = %c.kind, milestone = kind, at = %p.at, "SLA milestone");
            let data =
                json!({ "clock": c.kind, "milestone": p.milestone, "targetMs": c.target_ms, "policy": c.policy });
            let id = event(tx, row.incident_id, p.at, SYSTEM, kind, &message, data.clone())?;
            last = Some((id, p, data));
        }
        if let Some((event_id, p, data)) = last {
            let name = match p.milestone {
                Milestone::Warning(_) => "sla.warning",
                Milestone::Breach => "sla.breached",
            };
            self.notify_incident(tx, row.incident_id, name, event_id, data, None, now)?;
        }
        Ok(())
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
        targets: Option<&[String]>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let rule_targets;
        let explicit = targets.is_some();
        let targets = match targets {
            Some(t) => t,
            None => {
                let rule: String = tx
                    .prepare_cached("SELECT rule FROM incidents WHERE id = ?1")?
                    .query_row([incident_id], |r| r.get(0))?;
                rule_targets = self.rules.incident_rules.iter().find(|r| r.name == rule).map(|r| r.notify.clone());
                match &rule_targets {
                    Some(t) if !t.is_empty() => t,
                    _ => return Ok(()),
                }
            }
        };
        let mut payload = json!({ "event": name, "incident": outbox::incident_snapshot(tx, incident_id)? });
        payload["data"] = data;
        let origin = format!("incident-{incident_id}-event-{event_id}");
        // Named targets (an escalation step) are told whatever they subscribe to or not;
        // a rule's notifiers only the events they subscribe to.
        let filter = if explicit { None } else { Some(&self.subscriptions) };
        self.outbox_dirty.set(true);
        outbox::enqueue(tx, filter, name, Some(incident_id), None, &origin, targets, &payload, now)
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
        let Some(policy) = rules.escalation_policies.get(policy_name) else { return Ok(()) };
        let esc = Escalation::start(policy, now);
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
        let fired = match rules.escalation_policies.get(&esc.policy) {
            Some(policy) => esc.fire_due(policy, now),
            None => {
                tracing::warn!(incident = incident_id, policy = %esc.policy, "escalation policy gone; escalation ends");
                esc.stop();
                Vec::new()
            }
        };
        let last = fired.len().saturating_sub(1);
        for (i, step) in fired.into_iter().enumerate() {
            // Steps that fell due long ago (the gateway was down) are recorded
            // but not all paged at once: only the latest is notified.
            let stale = i < last && now.duration_since(step.at) > jiff::SignedDuration::from_secs(60);
            let message = format!(
                "escalation {} step {} (round {}): {} {}",
                esc.policy,
                step.step + 1,
                step.round + 1,
                if stale { "missed while the gateway was down, not notified:" } else { "notified" },
                step.notify.join(", ")
            );
            let data = json!({ "policy": esc.policy, "step": step.step + 1, "round": step.round + 1,
                               "notify": step.notify, "notified": !stale });
            let event_id = event(tx, incident_id, step.at, SYSTEM, "escalated", &message, data.clone())?;
            tracing::info!(incident = incident_id, policy = %esc.policy, step = step.step + 1, stale, "escalated");
            if !stale {
                self.notify_incident(tx, incident_id, "incident.escalated", event_id, data, Some(&step.notify), now)?;
            }
        }
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
        if esc.due_at.is_none() {
            return Ok(());
        }
        esc.stop();
        event(
            tx,
            incident_id,
            now,
            SYSTEM,
            "escalation_stopped",
            &format!("escalation {} stopped: {why}", esc.policy),
            json!({ "policy": esc.policy, "reason": why }),
        )?;
        self.save_escalation(tx, incident_id, &esc)
    }
}

/// One clock as the API shows it, computed at the time of the request.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ClockView {
    pub state: crate::sla::clock::ClockState,
    /// As a Prometheus duration, e.g. `15m`.
    pub target: String,
    pub target_seconds: f64,
    /// Working time used (paused time and time outside the calendar's
    /// hours do not count).
    pub elapsed_seconds: f64,
    /// Negative once breached.
    pub remaining_seconds: f64,
    pub warned_at: Vec<Warned>,
    pub breached_at: Option<Timestamp>,
    pub stopped_at: Option<Timestamp>,
    /// When the next warning or the breach falls due if the clock keeps running.
    pub due_at: Option<Timestamp>,
    /// When the breach falls due if the clock keeps running (in the
    /// calendar's working time); null when paused, stopped or breached.
    pub breach_due_at: Option<Timestamp>,
}

/// An incident's SLA: its policy and clocks.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct SlaView {
    pub policy: String,
    pub calendar: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub respond: Option<ClockView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolve: Option<ClockView>,
}

/// Where an incident stands in its escalation policy.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EscalationView {
    pub policy: String,
    /// 1-based, as the timeline says it.
    pub round: u32,
    /// The next step to notify, 1-based.
    pub next_step: usize,
    /// `None` once stopped or every step and repeat is done.
    pub next_at: Option<Timestamp>,
}

pub(super) fn sla_view(
    c: &Connection,
    incident_id: i64,
    rules: &crate::rules::RuleSet,
    now: Timestamp,
) -> Result<Option<SlaView>, StoreError> {
    let rows = clocks_of(c, incident_id)?;
    let Some(first) = rows.first() else { return Ok(None) };
    let mut view = SlaView {
        policy: first.clock.policy.clone(),
        calendar: first.clock.calendar.clone(),
        respond: None,
        resolve: None,
    };
    for row in rows {
        let c = &row.clock;
        let cal = rules.calendar(&c.calendar);
        let clock = ClockView {
            state: c.state(),
            target: human(c.target_ms),
            target_seconds: c.target_ms as f64 / 1000.0,
            elapsed_seconds: c.elapsed_ms(&cal, now) as f64 / 1000.0,
            remaining_seconds: c.remaining_ms(&cal, now) as f64 / 1000.0,
            warned_at: c.warned.clone(),
            breached_at: c.breached_at,
            stopped_at: c.stopped_at,
            due_at: c.due_at(&cal),
            breach_due_at: c.breach_due_at(&cal),
        };
        match c.kind {
            ClockKind::Respond => view.respond = Some(clock),
            ClockKind::Resolve => view.resolve = Some(clock),
        }
    }
    Ok(Some(view))
}

pub(super) fn escalation_view(c: &Connection, incident_id: i64) -> Result<Option<EscalationView>, StoreError> {
    Ok(Engine::escalation_of(c, incident_id)?.map(|e| EscalationView {
        policy: e.policy,
        round: e.round + 1,
        next_step: e.step + 1,
        next_at: e.due_at,
    }))
}
