//! The service desk in the store: incidents people report, alerts linked
//! to an incident by hand, and merges. What they are is decided in
//! `engine::opening` and `engine::merge`; this applies it.
use super::sql::{Connection, OptionalExtension, params};
use jiff::Timestamp;
use serde_json::json;

use super::state::{WriterState, entry};
use super::{StoreError, ms};
use crate::engine::opening::{self, OpeningStep};
use crate::engine::{desk, timeline};
use crate::model::incident::{IncidentSource, IncidentState, NewReport};
use crate::model::{AlertStatus, LabelSet};
use crate::sla::clock::ClockKind;
use crate::sla::timers::TimerKey;

impl WriterState {
    /// Open the incident a person reports, through the same priority
    /// matrix, SLA policy, escalation and notifications as an alert-born one.
    pub(super) fn report_incident(
        &mut self,
        tx: &Connection,
        report: &NewReport,
        actor: &str,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        let rules = self.rules.clone();
        let reported = opening::report(&rules, report, &self.book(), now);
        let o = &reported.opening;
        let reporter = report.reporter.as_deref().unwrap_or(actor);
        let labels = serde_json::to_string(&reported.labels).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        tx.prepare_cached(
            "INSERT INTO incidents (rule, group_key, title, service, impact, urgency, priority, state, assignee,
                labels, alert_count, firing_count, created_at, updated_at, source, description, reporter)
             VALUES (?1, '', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, 0, ?10, ?10, ?11, ?12, ?13)",
        )?
        .execute(params![
            reported.rule_name(),
            o.title,
            o.service,
            o.impact.as_str(),
            o.urgency.as_str(),
            o.priority.as_str(),
            IncidentState::INITIAL.as_str(),
            o.assignee,
            labels,
            ms(now),
            IncidentSource::Reported.as_str(),
            report.description,
            reporter,
        ])?;
        let id = tx.last_insert_rowid()?;
        // Its own group: alerts are linked to it by hand, never by key.
        tx.prepare_cached("UPDATE incidents SET group_key = ?2 WHERE id = ?1")?
            .execute(params![id, format!("{}:{id}", opening::REPORTED_RULE)])?;
        tracing::info!(incident = id, rule = %reported.rule_name(), priority = %o.priority, reporter, "incident reported");
        self.facts.push(crate::metrics::Fact::IncidentCreated {
            rule: reported.rule_name().to_owned(),
            priority: o.priority.as_str(),
            service: o.service.clone().unwrap_or_default(),
        });
        let mut created = None;
        for e in reported.entries(reporter, now) {
            let recorded = entry(tx, id, actor, e)?;
            created.get_or_insert(recorded);
        }
        let created = created.expect("a report has a created entry");
        let fields = reported.fields();
        let policy = reported.rule.and_then(|r| r.sla_policy.as_deref());
        for step in reported.steps() {
            match step {
                OpeningStep::StartClocks => self.start_clocks(tx, id, policy, &fields, o.priority, now)?,
                OpeningStep::LinkProblems => self.link_problems(tx, id, &o.title, &fields, now)?,
                OpeningStep::CorrelateChanges => self.correlate_changes(tx, id, o.service.as_deref(), now)?,
                OpeningStep::NotifyTriggered => {
                    self.notify_incident(tx, id, "incident.triggered", created, json!({}), None, now)?
                }
                OpeningStep::StartEscalation(policy) => self.start_escalation(tx, id, &policy, now)?,
                OpeningStep::JoinHeldAlerts => {}
            }
        }
        Ok(id)
    }
}

impl WriterState {
    /// Link alerts to an open incident by hand (the responder knows better
    /// than the rules); alerts already in it stay as they are.
    pub(super) fn link_alerts(
        &mut self,
        tx: &Connection,
        id: i64,
        fingerprints: &[crate::model::Fingerprint],
        actor: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let incident =
            super::rows::incident(tx, id)?.ok_or_else(|| StoreError::NotFound(format!("no incident {id}")))?;
        desk::may_link_alerts(id, incident.state).map_err(|e| StoreError::Conflict(e.to_string()))?;
        for fp in fingerprints {
            let (alert_id, status, labels): (i64, String, String) = tx
                .prepare_cached("SELECT id, status, labels FROM alerts WHERE fingerprint = ?1")?
                .query_row([fp.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?
                .ok_or_else(|| StoreError::Invalid(format!("fingerprints: no alert {fp}")))?;
            let firing = AlertStatus::parse(&status) == Some(AlertStatus::Firing);
            let linked = tx
                .prepare_cached(
                    "INSERT INTO incident_alerts (incident_id, alert_id, rule, firing, joined_at)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                )?
                .execute(params![id, alert_id, incident.rule, firing, ms(now)])?;
            if linked == 0 {
                continue;
            }
            let labels: LabelSet = serde_json::from_str(&labels).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            self.take_labels(tx, id, &labels, now)?;
            // It is in an incident now: its rule's pending group lets it go.
            self.leave_pending(tx, alert_id)?;
            entry(tx, id, actor, desk::alert_linked(fp, &labels, now))?;
        }
        recount(tx, id)
    }

    /// The incident's labels become those it shares with a joining alert.
    fn take_labels(&self, tx: &Connection, id: i64, joining: &LabelSet, now: Timestamp) -> Result<(), StoreError> {
        let text: String =
            tx.prepare_cached("SELECT labels FROM incidents WHERE id = ?1")?.query_row([id], |r| r.get(0))?;
        let current: LabelSet = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let common = serde_json::to_string(&timeline::common_labels(current, joining))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        tx.prepare_cached("UPDATE incidents SET labels = ?2, updated_at = ?3 WHERE id = ?1")?.execute(params![
            id,
            common,
            ms(now)
        ])?;
        Ok(())
    }

    /// Merge incident `source` into `target` (see [`desk::merge`]).
    pub(super) fn merge(
        &mut self,
        tx: &Connection,
        source: i64,
        target: i64,
        comment: Option<&str>,
        actor: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let side = |id: i64| -> Result<desk::MergeSide, StoreError> {
            let i = super::rows::incident(tx, id)?.ok_or_else(|| StoreError::NotFound(format!("no incident {id}")))?;
            Ok(desk::MergeSide { id, state: i.state, created_at: i.created_at })
        };
        let (from, into) = (side(source)?, side(target)?);
        let source_clocks = super::sla::clocks_of(tx, source)?;
        let kinds: Vec<ClockKind> = source_clocks.iter().map(|s| s.clock.kind).collect();
        let plan = desk::merge(from, into, &kinds, comment, now).map_err(|e| StoreError::Conflict(e.to_string()))?;
        self.move_alerts(tx, source, target, now)?;
        self.move_clocks(tx, source, target, &plan.take_clocks, now)?;
        self.stop_escalation_row(tx, source)?;
        tx.execute("UPDATE action_items SET incident_id = ?2 WHERE incident_id = ?1", params![source, target])?;
        // Its review goes along unless the target has its own.
        tx.execute(
            "UPDATE reviews SET incident_id = ?2
             WHERE incident_id = ?1 AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.incident_id = ?2)",
            params![source, target],
        )?;
        // Links move unless the target has the same link already.
        for (table, other) in [("problem_incidents", "problem_id"), ("incident_changes", "change_id")] {
            tx.execute(
                &format!(
                    "UPDATE {table} SET incident_id = ?2 WHERE incident_id = ?1
                     AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.incident_id = ?2 AND t.{other} = {table}.{other})"
                ),
                params![source, target],
            )?;
            tx.execute(&format!("DELETE FROM {table} WHERE incident_id = ?1"), [source])?;
        }
        copy_timeline(tx, source, target)?;
        entry(tx, target, actor, plan.target_entry)?;
        entry(tx, source, actor, plan.source_entry)?;
        tx.prepare_cached(
            "UPDATE incidents SET state = ?2, closed_at = ?3, resolved_at = COALESCE(resolved_at, ?3),
                auto_resolve_at = NULL, updated_at = ?3, merged_into = ?4 WHERE id = ?1",
        )?
        .execute(params![source, IncidentState::Closed.as_str(), ms(now), target])?;
        // The clocks it took follow the target's state (a paused target pauses them).
        self.clocks_follow(tx, target, into.state, now)?;
        tracing::info!(incident = source, into = target, actor, "incident merged");
        Ok(())
    }

    fn move_alerts(&mut self, tx: &Connection, source: i64, target: i64, now: Timestamp) -> Result<(), StoreError> {
        let moving: Vec<String> = tx
            .prepare_cached(
                "SELECT a.labels FROM incident_alerts ia JOIN alerts a ON a.id = ia.alert_id
                 WHERE ia.incident_id = ?1 AND NOT EXISTS
                    (SELECT 1 FROM incident_alerts t WHERE t.incident_id = ?2 AND t.alert_id = ia.alert_id)",
            )?
            .query_map(params![source, target], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for labels in moving {
            let labels: LabelSet = serde_json::from_str(&labels).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            self.take_labels(tx, target, &labels, now)?;
        }
        tx.prepare_cached(
            "INSERT INTO incident_alerts (incident_id, alert_id, rule, firing, joined_at)
             SELECT ?2, alert_id, rule, firing, joined_at FROM incident_alerts WHERE incident_id = ?1
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![source, target])?;
        tx.prepare_cached("DELETE FROM incident_alerts WHERE incident_id = ?1")?.execute([source])?;
        recount(tx, source)?;
        recount(tx, target)
    }

    /// The target takes the source's clocks of `take` (its own of those
    /// kinds go); the source's other clocks go.
    fn move_clocks(
        &mut self,
        tx: &Connection,
        source: i64,
        target: i64,
        take: &[ClockKind],
        _now: Timestamp,
    ) -> Result<(), StoreError> {
        for slot in super::sla::clocks_of(tx, target)? {
            if take.contains(&slot.clock.kind) {
                self.drop_clock(tx, target, slot.clock.kind)?;
            }
        }
        for slot in super::sla::clocks_of(tx, source)? {
            if take.contains(&slot.clock.kind) {
                tx.prepare_cached("UPDATE sla_clocks SET incident_id = ?2 WHERE incident_id = ?1 AND kind = ?3")?
                    .execute(params![source, target, slot.clock.kind.as_str()])?;
            } else {
                self.drop_clock(tx, source, slot.clock.kind)?;
            }
        }
        Ok(())
    }

    fn drop_clock(&mut self, tx: &Connection, incident: i64, kind: ClockKind) -> Result<(), StoreError> {
        let id: Option<i64> = tx
            .prepare_cached("DELETE FROM sla_clocks WHERE incident_id = ?1 AND kind = ?2 RETURNING id")?
            .query_row(params![incident, kind.as_str()], |r| r.get(0))
            .optional()?;
        if let Some(id) = id {
            self.schedule(TimerKey::Clock(id), None);
        }
        Ok(())
    }

    fn stop_escalation_row(&mut self, tx: &Connection, incident: i64) -> Result<(), StoreError> {
        tx.prepare_cached("DELETE FROM escalations WHERE incident_id = ?1")?.execute([incident])?;
        self.schedule(TimerKey::Escalation(incident), None);
        Ok(())
    }
}

/// The incident's alert counts, from its alerts.
fn recount(tx: &Connection, id: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE incidents SET alert_count = (SELECT count(*) FROM incident_alerts WHERE incident_id = ?1),
            firing_count = (SELECT count(*) FROM incident_alerts WHERE incident_id = ?1 AND firing = 1)
         WHERE id = ?1",
    )?
    .execute([id])?;
    let firing: i64 =
        tx.prepare_cached("SELECT firing_count FROM incidents WHERE id = ?1")?.query_row([id], |r| r.get(0))?;
    if opening::alert_firing_cancels_auto_resolve(firing > 0) {
        tx.prepare_cached("UPDATE incidents SET auto_resolve_at = NULL WHERE id = ?1")?.execute([id])?;
    }
    Ok(())
}

/// The source's timeline, in order, appended to the target's, each entry
/// naming where it came from; the source keeps its own.
fn copy_timeline(tx: &Connection, source: i64, target: i64) -> Result<(), StoreError> {
    type Entry = (i64, String, String, String, String, i64);
    let entries: Vec<Entry> = tx
        .prepare_cached(
            "SELECT at, actor, kind, message, data, recorded_at FROM incident_events WHERE incident_id = ?1 ORDER BY id",
        )?
        .query_map([source], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))?
        .collect::<Result<_, _>>()?;
    let prefix = desk::moved_entry(source, "");
    let mut insert = tx.prepare_cached(
        "INSERT INTO incident_events (incident_id, at, actor, kind, message, data, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (at, actor, kind, message, data, recorded_at) in entries {
        let mut data = match serde_json::from_str::<serde_json::Value>(&data) {
            Ok(serde_json::Value::Object(o)) => o,
            _ => serde_json::Map::new(),
        };
        data.insert("mergedFrom".into(), source.into());
        let data = serde_json::Value::Object(data).to_string();
        insert.execute(params![target, at, actor, kind, format!("{prefix}{message}"), data, recorded_at])?;
    }
    Ok(())
}
