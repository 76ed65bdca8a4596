//! The writer's incident bookkeeping: applying the engine's decisions and
//! people's actions inside the writer's transaction.
use std::sync::Arc;

use super::sql::{Column, Connection, ForRows, OptionalExtension, params};
use jiff::Timestamp;
use serde_json::json;

use super::state::{AlertRef, SYSTEM, StoredAlert, WriterState, current_state, entry, event, view};
use super::{StoreError, ms, rows, ts};
use crate::engine::inhibit::{self, EqualKey, InhibitIndex};
use crate::engine::lifecycle::{self, LifecycleEffect, LifecycleView, Measure, Stamp};
use crate::engine::mute;
use crate::engine::opening::{self, LastAlertResolved, Opening, OpeningStep};
use crate::engine::pending::{self, AfterLeave, DueGroup, TickStep};
use crate::engine::plan::LabelPlan;
use crate::engine::silence::silenced_by;
use crate::engine::timeline;
use crate::engine::{self, FiringDecision, FlapStep, GroupView, IncidentView, PendingView};
use crate::model::incident::{IncidentAction, IncidentSource, IncidentState, Priority};
use crate::model::{AlertStatus, Fingerprint, LabelSet, MuteReason};
use crate::rules::RuleSet;
use crate::rules::incident::IncidentRule;
use crate::sla::timers::{TimerKey, Timers};
use crate::store::ops::Swept;

/// The firing alerts held in a pending group (rule, key); built once, as
/// routing a new alert asks it.
static HELD_FIRING: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT a.id, a.fingerprint, a.labels FROM pending_alerts p JOIN alerts a ON a.id = p.alert_id
         WHERE p.rule = ?1 AND p.group_key = ?2 AND {}",
        AlertStatus::Firing.sql("a.status")
    )
});

/// How many alerts of a pending group (rule, key) fire, and whether alert ?3 is one.
static HELD_FIRING_COUNT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT count(*), coalesce(sum(CASE WHEN a.id = ?3 THEN 1 ELSE 0 END), 0) > 0 FROM pending_alerts p JOIN alerts a ON a.id = p.alert_id
         WHERE p.rule = ?1 AND p.group_key = ?2 AND {}",
        AlertStatus::Firing.sql("a.status")
    )
});

/// The hot path's statement, built once: the open incidents an alert is in
/// (on PostgreSQL each by its id, see [`rows::incident_is_open`]).
pub(super) static OPEN_INCIDENTS_OF_ALERT: std::sync::LazyLock<ForRows> = std::sync::LazyLock::new(|| ForRows {
    sqlite: format!(
        "SELECT ia.incident_id, ia.firing FROM incident_alerts ia JOIN incidents i ON i.id = ia.incident_id
         WHERE ia.alert_id = ?1 AND {}",
        IncidentState::open_sql("i.state")
    ),
    postgres: format!(
        "SELECT ia.incident_id, ia.firing FROM incident_alerts ia WHERE ia.alert_id = ?1 AND {}",
        rows::incident_is_open("ia.incident_id")
    ),
});

/// Alerts by fingerprint, for their part in inhibitions.
static READ_INHIBIT: std::sync::LazyLock<ForRows> = std::sync::LazyLock::new(|| ForRows {
    sqlite: "SELECT fingerprint, labels, status FROM alerts WHERE fingerprint = ?1".into(),
    postgres: "SELECT fingerprint, labels, status FROM alerts WHERE fingerprint = ANY(?1::text[])".into(),
});

impl WriterState {
    /// Rebuild the in-memory state from the store.
    pub fn load(
        conn: &Connection,
        rules: Arc<RuleSet>,
        audience: crate::model::notification::Audience,
        now: Timestamp,
    ) -> Result<WriterState, StoreError> {
        let mut e = WriterState {
            rules,
            audience,
            overrides: crate::engine::paging::Overrides::new(),
            outbox_dirty: std::cell::Cell::new(false),
            facts: Vec::new(),
            ended_mutes_released: false,
            inhibit: InhibitIndex::default(),
            silences: Vec::new(),
            maintenance: Vec::new(),
            timers: Timers::default(),
            staged: Vec::new(),
            loaded_at: now,
            inhibit_touched: Vec::new(),
            lease_owner: None,
        };
        e.silences = super::reader::silences(conn, Some(now), None)?;
        e.maintenance = super::changes::maintenance(conn, now)?;
        e.rebuild_inhibit(conn)?;
        e.load_timers(conn)?;
        e.set_heartbeat_timers(conn, now)?;
        e.load_oncall(conn, now)?;
        e.timers.take_changed();
        Ok(e)
    }

    /// Read everything again from what is stored, keeping the rules, the
    /// audience and the lease owner.
    pub fn reload(&mut self, conn: &Connection, now: Timestamp) -> Result<(), StoreError> {
        let mut fresh = WriterState::load(conn, self.rules.clone(), self.audience.clone(), now)?;
        fresh.lease_owner = self.lease_owner.take();
        *self = fresh;
        Ok(())
    }

    /// Read again what other gateways may have changed: the timers (SLA
    /// clocks, escalations, heartbeats, handoffs).
    pub fn reload_timers(&mut self, conn: &Connection, now: Timestamp) -> Result<(), StoreError> {
        self.load_timers(conn)?;
        self.set_heartbeat_timers(conn, now)?;
        self.load_oncall(conn, now)?;
        self.timers.take_changed();
        Ok(())
    }

    /// Read again the silences, maintenance windows and on-call overrides.
    pub fn reload_mutes(&mut self, conn: &Connection, now: Timestamp) -> Result<(), StoreError> {
        self.silences = super::reader::silences(conn, Some(now), None)?;
        self.maintenance = super::changes::maintenance(conn, now)?;
        self.reload_overrides(conn, now)
    }

    /// Read again some alerts' part in inhibitions (they fired or resolved
    /// through another gateway), in one statement.
    pub fn refresh_inhibit(&mut self, conn: &Connection, fps: &[String]) -> Result<(), StoreError> {
        let rules = self.rules.clone();
        if rules.inhibit_rules.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::with_capacity(fps.len());
        conn.for_rows(&READ_INHIBIT, &[Column::Text(fps.iter().map(|f| Some(f.as_str())).collect())], |r| {
            rows.push((r.get::<String>(0)?, r.get::<String>(1)?, r.get::<String>(2)?));
            Ok(())
        })?;
        for (fp, labels, status) in rows {
            let fp = Fingerprint::parse(&fp).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let labels: LabelSet = serde_json::from_str(&labels).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let firing = AlertStatus::parse(&status) == Some(AlertStatus::Firing);
            self.inhibit.update(&rules.inhibit_rules, &fp, &labels, firing);
        }
        Ok(())
    }

    /// The timers are the rows with a due time; only those are read.
    fn load_timers(&mut self, conn: &Connection) -> Result<(), StoreError> {
        self.timers = Timers::default();
        for (sql, clock) in [
            ("SELECT id, due_at FROM sla_clocks WHERE due_at IS NOT NULL", true),
            ("SELECT incident_id, due_at FROM escalations WHERE due_at IS NOT NULL", false),
        ] {
            let mut stmt = conn.prepare(sql)?;
            let rows = stmt.query_map(params![], |r| Ok((r.get::<i64>(0)?, r.get::<i64>(1)?)))?;
            for row in rows {
                let (id, due) = row?;
                let key = if clock { TimerKey::Clock(id) } else { TimerKey::Escalation(id) };
                self.timers.set(key, Some(ts(due)?));
            }
        }
        Ok(())
    }

    /// Take reloaded rules in force at `now`.
    pub fn set_rules(&mut self, conn: &Connection, rules: Arc<RuleSet>, now: Timestamp) -> Result<(), StoreError> {
        let calendars_changed = rules.calendars != self.rules.calendars;
        self.rules = rules;
        self.rebuild_inhibit(conn)?;
        self.set_heartbeat_timers(conn, now)?;
        self.load_oncall(conn, now)?;
        if calendars_changed {
            self.reschedule_clocks(conn, now)?;
        }
        Ok(())
    }

    /// Working hours changed: every running clock's next milestone moves.
    /// Runs in the writer's transaction, like an op.
    fn reschedule_clocks(&mut self, conn: &Connection, now: Timestamp) -> Result<(), StoreError> {
        let ids: Vec<i64> = conn
            .prepare("SELECT id FROM sla_clocks WHERE due_at IS NOT NULL")?
            .query_map(params![], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        ids.into_iter().try_for_each(|id| self.fire_clock(conn, id, now))
    }

    /// Schedule (or cancel) a timer once the current request commits.
    pub(super) fn schedule(&mut self, key: TimerKey, due: Option<Timestamp>) {
        self.staged.push((key, due));
    }

    /// The current request committed: its timer changes take effect.
    pub fn commit_staged(&mut self) {
        for (key, due) in self.staged.drain(..) {
            self.timers.set(key, due);
        }
    }

    pub fn discard_staged(&mut self) {
        self.staged.clear();
    }

    fn rebuild_inhibit(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let rules = self.rules.clone();
        self.inhibit = InhibitIndex::new(&rules.inhibit_rules);
        if rules.inhibit_rules.is_empty() {
            return Ok(());
        }
        let mut stmt = conn
            .prepare(&format!("SELECT fingerprint, labels FROM alerts WHERE {}", AlertStatus::Firing.sql("status")))?;
        let rows = stmt.query_map(params![], |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)))?;
        for row in rows {
            let (fp, labels) = row?;
            let labels: LabelSet = serde_json::from_str(&labels).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let fp = Fingerprint::parse(&fp).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            self.inhibit.update(&rules.inhibit_rules, &fp, &labels, true);
        }
        Ok(())
    }

    /// A firing alert: mute it, or route it to its incidents.
    pub fn on_firing(
        &mut self,
        tx: &Connection,
        a: &AlertRef<'_>,
        newly_fired: bool,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let rules = self.rules.clone();
        let plan = a.plan(&rules);
        self.fired(a.fingerprint, &plan, newly_fired);
        if !newly_fired && !mute::routes(newly_fired, self.still_in_open_incidents(tx, a, now)?) {
            return Ok(());
        }
        let muted = self.mute_reason(a.fingerprint, a.labels, &plan.targets, now);
        let in_maintenance = |(rule, _): &(&IncidentRule, &str)| {
            if self.maintenance.is_empty() { None } else { self.in_maintenance(rule, a, now) }
        };
        let routes = match engine::route_firing(plan.routes(&rules).collect(), muted, in_maintenance) {
            engine::Routing::Muted(reason) => return self.mute(tx, a.id, reason),
            engine::Routing::Route(routes) => routes,
        };
        tx.prepare_cached("UPDATE alerts SET muted_by = NULL WHERE id = ?1 AND muted_by IS NOT NULL")?
            .execute([a.id])?;
        for (rule, key) in routes {
            self.route_to(tx, rule, key, a, newly_fired, now)?;
        }
        Ok(())
    }

    /// The hot path: a sender re-sends an alert that already belongs to
    /// open incidents (Prometheus does so every minute for every firing
    /// alert). Its routing was decided when it joined; nothing to redo.
    fn still_in_open_incidents(&self, tx: &Connection, a: &AlertRef<'_>, now: Timestamp) -> Result<bool, StoreError> {
        let open: Vec<(i64, bool)> = tx
            .prepare_cached(OPEN_INCIDENTS_OF_ALERT.on(tx))?
            .query_map([a.id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for &(id, firing) in &open {
            if !firing {
                set_alert_firing(tx, id, a, true, now)?;
            }
        }
        Ok(!open.is_empty())
    }

    /// A muted alert opens nothing: it leaves its pending groups.
    fn mute(&mut self, tx: &Connection, alert_id: i64, reason: MuteReason) -> Result<(), StoreError> {
        let changed = tx
            .prepare_cached("UPDATE alerts SET muted_by = ?2 WHERE id = ?1 AND muted_by IS DISTINCT FROM ?2")?
            .execute(params![alert_id, reason.to_string()])?;
        if changed > 0 {
            self.facts.push(crate::metrics::Fact::Muted { reason: reason.metric_label() });
        }
        self.leave_pending(tx, alert_id)
    }

    /// A firing alert under one of the rules it routes to, in its group `key`.
    fn route_to(
        &mut self,
        tx: &Connection,
        rule: &IncidentRule,
        key: &str,
        a: &AlertRef<'_>,
        newly_fired: bool,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let own = own_incident(tx, a.id, &rule.name)?;
        if let Some(id) = engine::already_in(own.map(|(v, _)| v)) {
            return set_alert_firing(tx, id, a, true, now);
        }
        self.prune_muted_pending(tx, &rule.name, key, now)?;
        let group = GroupView {
            own_incident: own.map(|(v, _)| v),
            latest_for_key: latest_for_key(tx, &rule.name, key)?,
            pending: pending(tx, &rule.name, key, a.id)?,
        };
        match engine::firing(rule, &group, newly_fired, now) {
            FiringDecision::AlreadyIn(_) | FiringDecision::Ignore => {}
            FiringDecision::Join(id) => link_alert(tx, id, rule, a, now)?,
            FiringDecision::Reopen(id) => self.reopen_flapping(tx, id, rule, a, now)?,
            FiringDecision::Hold => hold_pending(tx, rule, key, a, now)?,
            FiringDecision::Open => {
                self.open_incident(tx, rule, key, a, now)?;
            }
        }
        Ok(())
    }

    /// The alert fired again within its rule's flap window: its resolved incident reopens.
    fn reopen_flapping(
        &mut self,
        tx: &Connection,
        id: i64,
        rule: &IncidentRule,
        a: &AlertRef<'_>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        for step in engine::flap_reopen(rule, a.fingerprint, now) {
            match step {
                FlapStep::Reopen => {
                    self.act(tx, id, IncidentAction::Reopen, SYSTEM, None, now)?;
                }
                FlapStep::CountFlap => {
                    tx.prepare_cached("UPDATE incidents SET flap_count = flap_count + 1 WHERE id = ?1")?
                        .execute([id])?;
                    self.facts.push(crate::metrics::Fact::Flapping { rule: rule.name.clone() });
                }
                FlapStep::Record(e) => {
                    entry(tx, id, SYSTEM, e)?;
                }
                FlapStep::MarkFiring => set_alert_firing(tx, id, a, true, now)?,
            }
        }
        Ok(())
    }

    /// The maintenance window (change id) the service of `rule` for this alert is in.
    fn in_maintenance(&self, rule: &IncidentRule, a: &AlertRef<'_>, now: Timestamp) -> Option<i64> {
        self.maintenance_for(rule, a.labels, a.annotations, now)
    }

    /// The maintenance window the service of `rule` for an alert with
    /// these labels and annotations is in.
    pub(super) fn maintenance_for(
        &self,
        rule: &IncidentRule,
        labels: &LabelSet,
        annotations: &crate::model::Annotations,
        now: Timestamp,
    ) -> Option<i64> {
        let service = opening::service_of(&self.rules, rule, labels, annotations)?;
        self.maintenance_of(&service, now)
    }

    /// Open an incident for `first` and every firing alert held in its pending group.
    fn open_incident(
        &mut self,
        tx: &Connection,
        rule: &IncidentRule,
        key: &str,
        first: &AlertRef<'_>,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        let rules = self.rules.clone();
        let opening =
            opening::open(&rules, rule, first.fingerprint, first.labels, first.annotations, &self.book(), now);
        if let Some(e) = &opening.title_error {
            tracing::warn!(rule = %rule.name, error = %e, "title template failed; using the alert name");
        }
        let Opening { title, service, impact, urgency, priority, assignee, .. } = &opening;
        let labels = serde_json::to_string(first.labels).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let id = tx.insert(
            "INSERT INTO incidents (rule, group_key, title, service, impact, urgency, priority, state, assignee,
                labels, alert_count, firing_count, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?11, ?8, ?9, 0, 0, ?10, ?10)",
            params![
                rule.name,
                key,
                title,
                service,
                impact.as_str(),
                urgency.as_str(),
                priority.as_str(),
                assignee,
                labels,
                ms(now),
                IncidentState::INITIAL.as_str(),
            ],
        )?;
        tracing::info!(incident = id, rule = %rule.name, %priority, title = %title, "incident triggered");
        self.facts.push(crate::metrics::Fact::IncidentCreated {
            rule: rule.name.clone(),
            priority: priority.as_str(),
            service: service.clone().unwrap_or_default(),
        });
        let mut created = None;
        for e in opening.entries(rule, key, now) {
            let recorded = entry(tx, id, SYSTEM, e)?;
            created.get_or_insert(recorded);
        }
        let created = created.expect("an opening has a created entry");
        link_alert(tx, id, rule, first, now)?;
        for step in opening::steps(rule) {
            match step {
                OpeningStep::JoinHeldAlerts => join_held(tx, id, rule, key, first, now)?,
                OpeningStep::StartClocks | OpeningStep::LinkProblems => {
                    let fields = opening.fields(rule, &labels_of(tx, id)?);
                    if step == OpeningStep::StartClocks {
                        self.start_clocks(tx, id, rule.sla_policy.as_deref(), &fields, *priority, now)?;
                    } else {
                        self.link_problems(tx, id, title, &fields, now)?;
                    }
                }
                OpeningStep::CorrelateChanges => self.correlate_changes(tx, id, service.as_deref(), now)?,
                OpeningStep::NotifyTriggered => {
                    self.notify_incident(tx, id, "incident.triggered", created, json!({}), None, now)?
                }
                OpeningStep::StartEscalation(policy) => self.start_escalation(tx, id, &policy, now)?,
            }
        }
        Ok(id)
    }
}

/// An alert by row id, for a decision about it.
fn stored_alert(tx: &Connection, id: i64) -> Result<StoredAlert, StoreError> {
    let (fp, labels, annotations): (String, String, String) = tx
        .prepare_cached("SELECT fingerprint, labels, annotations FROM alerts WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    StoredAlert::from_row(id, &fp, &labels, &annotations)
}

/// The incident's labels: those all its alerts share.
fn labels_of(tx: &Connection, id: i64) -> Result<LabelSet, StoreError> {
    let text: String =
        tx.prepare_cached("SELECT labels FROM incidents WHERE id = ?1")?.query_row([id], |r| r.get(0))?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The alerts that waited in the pending group join the incident it opened.
fn join_held(
    tx: &Connection,
    id: i64,
    rule: &IncidentRule,
    key: &str,
    first: &AlertRef<'_>,
    now: Timestamp,
) -> Result<(), StoreError> {
    {
        let held: Vec<(i64, String, String, String)> = tx
            .prepare_cached(&format!(
                "SELECT a.id, a.fingerprint, a.labels, a.annotations FROM pending_alerts p JOIN alerts a ON a.id = p.alert_id
                 WHERE p.rule = ?1 AND p.group_key = ?2 AND {} AND a.id != ?3",
                AlertStatus::Firing.sql("a.status")
            ))?
            .query_map(params![rule.name, key, first.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        for (alert_id, fp, labels, annotations) in held {
            let held = StoredAlert::from_row(alert_id, &fp, &labels, &annotations)?;
            link_alert(tx, id, rule, &held.as_ref(), now)?;
        }
        tx.prepare_cached("DELETE FROM pending_alerts WHERE rule = ?1 AND group_key = ?2")?
            .execute(params![rule.name, key])?;
        tx.prepare_cached("DELETE FROM pending_groups WHERE rule = ?1 AND group_key = ?2")?
            .execute(params![rule.name, key])?;
    }
    Ok(())
}

impl WriterState {
    /// A firing alert's part in inhibitions (see [`WriterState::file_inhibit`]).
    pub(super) fn fired(&mut self, fp: &Fingerprint, plan: &LabelPlan, newly_fired: bool) {
        self.file_inhibit(fp, &plan.sources, plan.label_hashed, true, newly_fired);
    }

    /// File an alert in the inhibition index as firing or not; true when
    /// a group of equal labels lost its last source. Other gateways hear
    /// of an alert that is or was a source when it began firing, resolved,
    /// or is sender-keyed (its labels may change under the same key).
    fn file_inhibit(
        &mut self,
        fp: &Fingerprint,
        sources: &[(usize, EqualKey)],
        label_hashed: bool,
        firing: bool,
        newly_fired: bool,
    ) -> bool {
        if self.inhibit.concerned(sources, fp) && (!firing || newly_fired || !label_hashed) {
            self.inhibit_touched.push(fp.clone());
        }
        self.inhibit.file(sources.to_vec(), label_hashed, fp, firing)
    }

    /// A resolved alert: mark it in its incidents, auto-resolve those left
    /// with no firing alert, and drop it from pending groups.
    pub fn on_resolved(&mut self, tx: &Connection, a: &AlertRef<'_>, now: Timestamp) -> Result<(), StoreError> {
        let rules = self.rules.clone();
        // An alert read back (expiry, a sender's resolve) needs only its
        // part in inhibitions, not its routes.
        let (sources, label_hashed) = match a.plan {
            Some(plan) => (plan.sources.clone(), plan.label_hashed),
            None => inhibit::source_places(&rules.inhibit_rules, a.fingerprint, a.labels),
        };
        let sources_changed = self.file_inhibit(a.fingerprint, &sources, label_hashed, false, false);
        let linked: Vec<i64> = tx
            .prepare_cached("SELECT incident_id FROM incident_alerts WHERE alert_id = ?1 AND firing = 1")?
            .query_map([a.id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for id in linked {
            set_alert_firing(tx, id, a, false, now)?;
            let (state, firing, rule, source): (String, i64, String, String) = tx
                .prepare_cached("SELECT state, firing_count, rule, source FROM incidents WHERE id = ?1")?
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            let state =
                IncidentState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("incident state {state:?}")))?;
            let source = IncidentSource::parse(&source)
                .ok_or_else(|| StoreError::Corrupt(format!("incident source {source:?}")))?;
            let rule = rules.incident_rules.iter().find(|r| r.name == rule);
            match opening::alert_resolved(rule, (state, source), firing as u64, now) {
                LastAlertResolved::Resolve => {
                    self.act(tx, id, IncidentAction::Resolve, SYSTEM, Some(pending::ALL_ALERTS_RESOLVED), now)?;
                }
                LastAlertResolved::ResolveAt(at) => {
                    tx.prepare_cached("UPDATE incidents SET auto_resolve_at = ?2 WHERE id = ?1")?
                        .execute(params![id, ms(at)])?;
                }
                LastAlertResolved::Stay => {}
            }
        }
        self.leave_pending(tx, a.id)?;
        if sources_changed {
            // A source alert resolved: what it inhibited may open incidents now.
            self.recheck_muted(tx, MuteReason::Inhibited, now)?;
        }
        Ok(())
    }

    /// Route again the firing alerts muted by `reason`: their silence or
    /// maintenance window ended, or an inhibiting alert resolved.
    pub fn recheck_muted(&mut self, tx: &Connection, reason: MuteReason, now: Timestamp) -> Result<(), StoreError> {
        let muted: Vec<(i64, String, String, String)> = tx
            .prepare_cached(&format!(
                "SELECT id, fingerprint, labels, annotations FROM alerts WHERE muted_by = ?1 AND {}",
                AlertStatus::Firing.sql("status")
            ))?
            .query_map([reason.to_string()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        for (id, fp, labels, annotations) in muted {
            let alert = StoredAlert::from_row(id, &fp, &labels, &annotations)?;
            self.on_firing(tx, &alert.as_ref(), false, now)?;
        }
        Ok(())
    }

    /// Alerts still muted by a silence or a maintenance window that ended
    /// while the gateway was down (the in-memory lists hold only those not
    /// ended at load) are routed again.
    fn release_ended_mutes(&mut self, tx: &Connection, now: Timestamp) -> Result<(), StoreError> {
        let reasons: Vec<String> = tx
            .prepare_cached(&format!(
                "SELECT DISTINCT muted_by FROM alerts WHERE {} AND {}",
                AlertStatus::Firing.sql("status"),
                MuteReason::ends_in_time_sql("muted_by")
            ))?
            .query_map(params![], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for reason in reasons.iter().filter_map(|r| MuteReason::parse(r)) {
            if !mute::still_muted(reason, &self.silences, &self.maintenance, now) {
                self.recheck_muted(tx, reason, now)?;
            }
        }
        Ok(())
    }

    /// Why an alert opens no incident now, if it is muted; `targets` are
    /// the inhibit rules it is a target of (see [`LabelPlan::targets`]).
    pub(super) fn mute_reason(
        &self,
        fp: &Fingerprint,
        labels: &LabelSet,
        targets: &[(usize, EqualKey)],
        now: Timestamp,
    ) -> Option<MuteReason> {
        let silence = silenced_by(&self.silences, labels, now).map(|s| s.id);
        // Inhibition is looked up only when no silence already mutes.
        engine::mute_reason(silence, silence.is_none() && self.inhibit.inhibited(targets, fp))
    }

    /// Alerts muted since they were held (a silence was created or a source
    /// alert began firing meanwhile) leave their pending group.
    fn prune_muted_pending(
        &mut self,
        tx: &Connection,
        rule: &str,
        key: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let held: Vec<(i64, String, String)> = tx
            .prepare_cached(&HELD_FIRING)?
            .query_map(params![rule, key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        for (id, fp, labels) in held {
            let fp = Fingerprint::parse(&fp).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let labels: LabelSet = serde_json::from_str(&labels).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let targets = inhibit::targets_of(&self.rules.inhibit_rules, &labels);
            if let Some(reason) = self.mute_reason(&fp, &labels, &targets, now) {
                self.mute(tx, id, reason)?;
            }
        }
        Ok(())
    }

    /// One round of the timers, in the engine's order; how many alerts expired.
    pub fn tick(&mut self, tx: &Connection, now: Timestamp) -> Result<Swept, StoreError> {
        let mut swept = Swept::default();
        for step in pending::TICK {
            match step {
                TickStep::ExpireAlerts => {
                    swept = super::apply::expire_alerts(tx, self, now)?;
                    // More are due: the other steps wait for the last round,
                    // so nothing pages for an incident whose alerts ended.
                    if swept.more_due {
                        return Ok(swept);
                    }
                }
                TickStep::DueTimers => {
                    for key in self.timers.take_due(now) {
                        match key {
                            TimerKey::Clock(id) => self.fire_clock(tx, id, now)?,
                            TimerKey::Escalation(id) => self.fire_escalation(tx, id, now)?,
                            TimerKey::Heartbeat(id) => self.fire_heartbeat(tx, id, now)?,
                            TimerKey::Handoff(id) => self.fire_handoff(tx, id, now)?,
                        }
                    }
                }
                TickStep::EndMaintenance => self.end_maintenance(tx, now)?,
                TickStep::ReleaseEndedMutes if !self.ended_mutes_released => {
                    self.release_ended_mutes(tx, now)?;
                    self.ended_mutes_released = true;
                }
                TickStep::ReleaseEndedMutes => {}
                TickStep::EndSilences => {
                    let ended = mute::ended_silences(&self.silences, now);
                    self.silences.retain(|s| !ended.contains(&s.id));
                    for id in ended {
                        self.recheck_muted(tx, MuteReason::Silence(id), now)?;
                    }
                }
                TickStep::DuePendingGroups => self.due_pending_groups(tx, now)?,
                TickStep::DueAutoResolves => self.due_auto_resolves(tx, now)?,
                TickStep::OverdueActionItems => self.overdue_action_items(tx, now)?,
            }
        }
        Ok(swept)
    }

    fn due_pending_groups(&mut self, tx: &Connection, now: Timestamp) -> Result<(), StoreError> {
        let due: Vec<(String, String, i64)> = tx
            .prepare_cached("SELECT rule, group_key, first_fired_at FROM pending_groups WHERE due_at <= ?1")?
            .query_map([ms(now)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let rules = self.rules.clone();
        for (rule_name, key, first) in due {
            self.prune_muted_pending(tx, &rule_name, &key, now)?;
            let firing: Vec<i64> = tx
                .prepare_cached(&format!(
                    "SELECT a.id FROM pending_alerts p JOIN alerts a ON a.id = p.alert_id
                     WHERE p.rule = ?1 AND p.group_key = ?2 AND {} ORDER BY a.id",
                    AlertStatus::Firing.sql("a.status")
                ))?
                .query_map(params![rule_name, key], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let rule = rules.incident_rules.iter().find(|r| r.name == rule_name);
            match (pending::due_group(rule, ts(first)?, &firing, now), rule) {
                (DueGroup::Open { first }, Some(rule)) => {
                    let first = stored_alert(tx, first)?;
                    self.open_incident(tx, rule, &key, &first.as_ref(), now)?;
                }
                (DueGroup::Wait, _) => {}
                _ => {
                    tx.prepare_cached("DELETE FROM pending_alerts WHERE rule = ?1 AND group_key = ?2")?
                        .execute(params![rule_name, key])?;
                    tx.prepare_cached("DELETE FROM pending_groups WHERE rule = ?1 AND group_key = ?2")?
                        .execute(params![rule_name, key])?;
                }
            }
        }
        Ok(())
    }

    fn due_auto_resolves(&mut self, tx: &Connection, now: Timestamp) -> Result<(), StoreError> {
        let resolving: Vec<i64> = tx
            .prepare_cached("SELECT id FROM incidents WHERE auto_resolve_at <= ?1")?
            .query_map([ms(now)], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for id in resolving {
            let firing: i64 =
                tx.prepare_cached("SELECT firing_count FROM incidents WHERE id = ?1")?.query_row([id], |r| r.get(0))?;
            match pending::auto_resolve_due(current_state(tx, id)?, firing as u64) {
                Some((action, why)) => {
                    self.act(tx, id, action, SYSTEM, Some(why), now)?;
                }
                None => {
                    tx.execute("UPDATE incidents SET auto_resolve_at = NULL WHERE id = ?1", [id])?;
                }
            }
        }
        Ok(())
    }
}

impl WriterState {
    /// Take an alert out of every pending group. A group left empty goes; a
    /// group that lost its oldest alert now dates from its oldest remaining
    /// one, so a transient first alert cannot make a later one look persistent.
    pub(super) fn leave_pending(&self, tx: &Connection, alert_id: i64) -> Result<(), StoreError> {
        let groups: Vec<(String, String)> = tx
            .prepare_cached("DELETE FROM pending_alerts WHERE alert_id = ?1 RETURNING rule, group_key")?
            .query_map([alert_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (rule, key) in groups {
            let oldest: Option<i64> = tx
                .prepare_cached("SELECT min(held_at) FROM pending_alerts WHERE rule = ?1 AND group_key = ?2")?
                .query_row(params![rule, key], |r| r.get(0))?;
            let found = self.rules.incident_rules.iter().find(|r| r.name == rule);
            match pending::after_leave(found, oldest.map(ts).transpose()?) {
                AfterLeave::Gone => {
                    tx.prepare_cached("DELETE FROM pending_groups WHERE rule = ?1 AND group_key = ?2")?
                        .execute(params![rule, key])?;
                }
                AfterLeave::Redate { first_fired_at, due_at } => {
                    tx.prepare_cached(
                        "UPDATE pending_groups SET first_fired_at = ?3, due_at = ?4 WHERE rule = ?1 AND group_key = ?2",
                    )?
                    .execute(params![rule, key, ms(first_fired_at), due_at.map(ms)])?;
                }
            }
        }
        Ok(())
    }
}

/// Hold the alert in its group's pending set until the group qualifies.
fn hold_pending(
    tx: &Connection,
    rule: &IncidentRule,
    key: &str,
    a: &AlertRef<'_>,
    now: Timestamp,
) -> Result<(), StoreError> {
    let due = engine::pending_due(rule, now).map(ms);
    tx.prepare_cached(
        "INSERT INTO pending_groups (rule, group_key, first_fired_at, due_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT DO NOTHING",
    )?
    .execute(params![rule.name, key, ms(now), due])?;
    tx.prepare_cached(
        "INSERT INTO pending_alerts (rule, group_key, alert_id, held_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT DO NOTHING",
    )?
    .execute(params![rule.name, key, a.id, ms(now)])?;
    Ok(())
}

/// The latest incident of `rule` the alert belongs to (ordered by the whole
/// `incident_alerts_alert` index, as `latest_for_key` is, for PostgreSQL).
fn own_incident(tx: &Connection, alert_id: i64, rule: &str) -> Result<Option<(IncidentView, bool)>, StoreError> {
    tx.prepare_cached(
        "SELECT i.id, i.state, i.created_at, i.resolved_at, ia.firing FROM incident_alerts ia
         JOIN incidents i ON i.id = ia.incident_id
         WHERE ia.alert_id = ?1 AND ia.rule = ?2 ORDER BY ia.alert_id DESC, ia.rule DESC, ia.incident_id DESC LIMIT 1",
    )?
    .query_row(params![alert_id, rule], |r| {
        Ok((r.get::<i64>(0)?, r.get::<String>(1)?, r.get::<i64>(2)?, r.get::<Option<i64>>(3)?, r.get::<bool>(4)?))
    })
    .optional()?
    .map(|(id, state, created, resolved, firing)| Ok((view(id, &state, created, resolved)?, firing)))
    .transpose()
}

fn latest_for_key(tx: &Connection, rule: &str, key: &str) -> Result<Option<IncidentView>, StoreError> {
    tx.prepare_cached(
        // An incident merged into another stands for it: new alerts of its
        // key go where it went. The order names every column of the
        // (rule, group_key, id) index: ordered by id alone, PostgreSQL's
        // generic plan may walk the primary key backwards through every
        // incident to find a key that has none.
        "SELECT COALESCE(t.id, i.id), COALESCE(t.state, i.state), COALESCE(t.created_at, i.created_at),
                CASE WHEN t.id IS NULL THEN i.resolved_at ELSE t.resolved_at END
         FROM incidents i LEFT JOIN incidents t ON t.id = i.merged_into
         WHERE i.rule = ?1 AND i.group_key = ?2 ORDER BY i.rule DESC, i.group_key DESC, i.id DESC LIMIT 1",
    )?
    .query_row(params![rule, key], |r| {
        Ok((r.get::<i64>(0)?, r.get::<String>(1)?, r.get::<i64>(2)?, r.get::<Option<i64>>(3)?))
    })
    .optional()?
    .map(|(id, state, created, resolved)| view(id, &state, created, resolved))
    .transpose()
}

fn pending(tx: &Connection, rule: &str, key: &str, alert_id: i64) -> Result<Option<PendingView>, StoreError> {
    let Some(first) = tx
        .prepare_cached("SELECT first_fired_at FROM pending_groups WHERE rule = ?1 AND group_key = ?2")?
        .query_row(params![rule, key], |r| r.get::<i64>(0))
        .optional()?
    else {
        return Ok(None);
    };
    let (firing, contains): (i64, bool) = tx
        .prepare_cached(&HELD_FIRING_COUNT)?
        .query_row(params![rule, key, alert_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(Some(PendingView { first_fired_at: ts(first)?, firing: firing as u32, contains_alert: contains }))
}

/// Link an alert to an incident; the incident's labels become those common
/// to all its alerts.
fn link_alert(
    tx: &Connection,
    id: i64,
    rule: &IncidentRule,
    a: &AlertRef<'_>,
    now: Timestamp,
) -> Result<(), StoreError> {
    let inserted = tx
        .prepare_cached(
            "INSERT INTO incident_alerts (incident_id, alert_id, rule, firing, joined_at) VALUES (?1, ?2, ?3, 1, ?4)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![id, a.id, rule.name, ms(now)])?;
    if inserted == 0 {
        return set_alert_firing(tx, id, a, true, now);
    }
    let labels: String =
        tx.prepare_cached("SELECT labels FROM incidents WHERE id = ?1")?.query_row([id], |r| r.get(0))?;
    let current: LabelSet = serde_json::from_str(&labels).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let common = timeline::common_labels(current, a.labels);
    let common = serde_json::to_string(&common).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    tx.prepare_cached(
        "UPDATE incidents SET alert_count = alert_count + 1, firing_count = firing_count + 1, labels = ?2,
            auto_resolve_at = CASE WHEN ?4 THEN NULL ELSE auto_resolve_at END, updated_at = ?3 WHERE id = ?1",
    )?
    .execute(params![id, common, ms(now), opening::alert_firing_cancels_auto_resolve(true)])?;
    tx.prepare_cached("DELETE FROM pending_alerts WHERE alert_id = ?1 AND rule = ?2")?
        .execute(params![a.id, rule.name])?;
    entry(tx, id, SYSTEM, timeline::alert_joined(a.fingerprint, a.labels, now))?;
    Ok(())
}

fn set_alert_firing(
    tx: &Connection,
    id: i64,
    a: &AlertRef<'_>,
    firing: bool,
    now: Timestamp,
) -> Result<(), StoreError> {
    let changed = tx
        .prepare_cached(
            "UPDATE incident_alerts SET firing = ?3 WHERE incident_id = ?1 AND alert_id = ?2 AND firing != ?3",
        )?
        .execute(params![id, a.id, firing])?;
    if changed == 0 {
        return Ok(());
    }
    let delta: i64 = if firing { 1 } else { -1 };
    tx.prepare_cached(
        "UPDATE incidents SET firing_count = firing_count + ?2, updated_at = ?3,
            auto_resolve_at = CASE WHEN ?4 THEN NULL ELSE auto_resolve_at END WHERE id = ?1",
    )?
    .execute(params![id, delta, ms(now), opening::alert_firing_cancels_auto_resolve(firing)])?;
    entry(tx, id, SYSTEM, timeline::alert_firing(a.fingerprint, a.labels, firing, now))?;
    Ok(())
}

impl WriterState {
    /// A lifecycle action by a person or the gateway: `engine::lifecycle`
    /// decides, this applies it.
    pub(super) fn act(
        &mut self,
        tx: &Connection,
        id: i64,
        action: IncidentAction,
        actor: &str,
        comment: Option<&str>,
        now: Timestamp,
    ) -> Result<IncidentState, StoreError> {
        let view = self.lifecycle_view(tx, id)?;
        let effects =
            lifecycle::act(&view, action, actor, comment, now).map_err(|e| StoreError::Conflict(e.to_string()))?;
        let mut to = view.state;
        let mut recorded = None;
        for effect in effects {
            match effect {
                LifecycleEffect::SetState { to: state, stamp } => {
                    to = state;
                    let column = match stamp {
                        Stamp::FirstAcknowledged => ", acknowledged_at = COALESCE(acknowledged_at, ?3)",
                        Stamp::Resolved => ", resolved_at = ?3, auto_resolve_at = NULL",
                        Stamp::Reopened => ", resolved_at = NULL, closed_at = NULL",
                        Stamp::Closed => ", closed_at = ?3",
                        Stamp::Nothing => "",
                    };
                    tx.execute(
                        &format!("UPDATE incidents SET state = ?2, updated_at = ?3{column} WHERE id = ?1"),
                        params![id, state.as_str(), ms(now)],
                    )?;
                    tracing::info!(incident = id, from = %view.state, to = %state, actor, "incident state changed");
                }
                LifecycleEffect::Record { kind, message, data } => {
                    recorded = Some(event(tx, id, now, actor, kind, &message, data)?);
                }
                LifecycleEffect::Measure(m) => self.measure(tx, id, m)?,
                LifecycleEffect::ClocksFollow(state) => self.clocks_follow(tx, id, state, now)?,
                LifecycleEffect::StopEscalation { why } => self.stop_escalation(tx, id, &why, now)?,
                LifecycleEffect::StartEscalation { policy } => self.start_escalation(tx, id, &policy, now)?,
                LifecycleEffect::Notify { event, data } => {
                    let entry = recorded.ok_or_else(|| StoreError::Corrupt(format!("{event} without its entry")))?;
                    self.notify_incident(tx, id, event, entry, data, None, now)?;
                }
            }
        }
        Ok(to)
    }

    fn lifecycle_view(&self, tx: &Connection, id: i64) -> Result<LifecycleView, StoreError> {
        let state = current_state(tx, id)?;
        let (rule, created, acked, priority): (String, i64, Option<i64>, String) = tx
            .prepare_cached("SELECT rule, created_at, acknowledged_at, priority FROM incidents WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        let priority =
            Priority::parse(&priority).ok_or_else(|| StoreError::Corrupt(format!("priority {priority:?}")))?;
        let rule = self.rules.incident_rules.iter().find(|r| r.name == rule);
        let escalation = rule.and_then(|r| r.escalation.clone());
        let review_pending = lifecycle::review_required(rule, priority, &self.rules.reviews)
            && super::reviews::get(tx, id)?.is_none_or(|r| r.state != crate::model::review::ReviewState::Published);
        Ok(LifecycleView {
            state,
            created_at: ts(created)?,
            acknowledged_at: acked.map(ts).transpose()?,
            escalation,
            review_pending,
        })
    }

    /// Reopens, and the time to acknowledge (first acknowledgement) and to
    /// resolve, for the metrics.
    fn measure(&mut self, tx: &Connection, id: i64, m: Measure) -> Result<(), StoreError> {
        use crate::metrics::Fact;
        let (rule, priority, service): (String, String, Option<String>) = tx
            .prepare_cached("SELECT rule, priority, service FROM incidents WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        let service = service.unwrap_or_default();
        self.facts.push(match m {
            Measure::Acknowledged { seconds } => Fact::Acknowledged { priority, service, seconds },
            Measure::Resolved { seconds } => Fact::Resolved { priority, service, seconds },
            Measure::Reopened => Fact::Reopened { rule },
        });
        Ok(())
    }

    pub(super) fn assign(
        tx: &Connection,
        id: i64,
        assignee: Option<&str>,
        actor: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        current_state(tx, id)?;
        let before: Option<String> =
            tx.query_row("SELECT assignee FROM incidents WHERE id = ?1", [id], |r| r.get(0))?;
        tx.execute(
            "UPDATE incidents SET assignee = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, assignee, ms(now)],
        )?;
        entry(tx, id, actor, timeline::assigned(before.as_deref(), assignee, now))?;
        Ok(())
    }

    pub(super) fn note(tx: &Connection, id: i64, text: &str, actor: &str, now: Timestamp) -> Result<(), StoreError> {
        current_state(tx, id)?;
        tx.execute("UPDATE incidents SET updated_at = ?2 WHERE id = ?1", params![id, ms(now)])?;
        entry(tx, id, actor, timeline::note(text, now))?;
        Ok(())
    }

    pub(super) fn set_priority(
        &mut self,
        tx: &Connection,
        id: i64,
        priority: Priority,
        actor: &str,
        comment: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let state = current_state(tx, id)?;
        let before: String = tx.query_row("SELECT priority FROM incidents WHERE id = ?1", [id], |r| r.get(0))?;
        let before = Priority::parse(&before).ok_or_else(|| StoreError::Corrupt(format!("priority {before:?}")))?;
        tx.execute(
            "UPDATE incidents SET priority = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, priority.as_str(), ms(now)],
        )?;
        let (recorded, retarget) = timeline::set_priority(before, priority, comment, now);
        entry(tx, id, actor, recorded)?;
        if retarget {
            self.retarget_clocks(tx, id, priority, state, now)?;
        }
        Ok(())
    }
}
