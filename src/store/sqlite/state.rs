//! What the writer's bookkeeping shares: its in-memory state, the alert a
//! decision is about, and the incident timeline every part writes to.
use std::sync::Arc;

use super::sql::{Connection, OptionalExtension, params};
use jiff::Timestamp;

use super::{StoreError, ms, ts};
use crate::engine::IncidentView;
use crate::engine::inhibit::InhibitIndex;
use crate::engine::plan::LabelPlan;
use crate::engine::silence::Silence;
use crate::model::change::Change;
use crate::model::incident::IncidentState;
use crate::model::{AlertState, AlertStatus, Annotations, Fingerprint, LabelSet};
use crate::rules::RuleSet;
use crate::sla::timers::{TimerKey, Timers};

pub use crate::store::SYSTEM_ACTOR as SYSTEM;

/// What the writer keeps in memory between batches.
pub(super) struct WriterState {
    pub rules: Arc<RuleSet>,
    pub inhibit: InhibitIndex,
    pub silences: Vec<Silence>,
    /// Suppressing changes not yet ended.
    pub maintenance: Vec<Change>,
    /// Every pending SLA milestone and escalation step.
    pub timers: Timers,
    /// Which events each notifier takes, and the people pages go to.
    pub audience: crate::model::notification::Audience,
    /// Stored on-call overrides not yet ended, by schedule.
    pub overrides: crate::engine::paging::Overrides,
    /// Set when a request queued a notification, so the worker is woken
    /// once the batch commits.
    pub outbox_dirty: std::cell::Cell<bool>,
    /// Facts for the metrics, counted once their transaction commits.
    pub facts: Vec<crate::metrics::Fact>,
    /// Whether alerts muted by a silence or maintenance window that ended
    /// while the gateway was down have been routed again since the load.
    pub ended_mutes_released: bool,
    /// Timer changes of the request being applied: kept only if its
    /// savepoint commits, so a rolled-back request leaves no timer behind.
    pub staged: Vec<(TimerKey, Option<Timestamp>)>,
    /// The time of the request it was loaded at.
    pub loaded_at: Timestamp,
    /// Alerts that became or stopped being inhibition sources, for the
    /// other gateways sharing the database (see `postgres::catch_up`).
    pub inhibit_touched: Vec<Fingerprint>,
    /// Who holds the leases of the notifications this writer claims:
    /// `None` on SQLite (one gateway per database), the gateway's id on
    /// PostgreSQL, so a gateway that stops hands back only its own.
    pub lease_owner: Option<Arc<str>>,
}

/// The alert a decision is about.
pub(super) struct AlertRef<'a> {
    pub id: i64,
    pub fingerprint: &'a Fingerprint,
    pub labels: &'a LabelSet,
    pub annotations: &'a Annotations,
    /// What the rules in force say of its labels, when worked out before
    /// (an ingested alert's); else the writer works it out.
    pub plan: Option<&'a LabelPlan>,
}

impl<'a> AlertRef<'a> {
    /// Its plan under `rules`, which must be the writer's rules (a plan
    /// indexes into the set it was made with; an ingested alert's was
    /// checked to be made with them): the one it came with, or one worked
    /// out now.
    pub fn plan(&self, rules: &RuleSet) -> std::borrow::Cow<'a, LabelPlan> {
        match self.plan {
            Some(plan) => std::borrow::Cow::Borrowed(plan),
            None => std::borrow::Cow::Owned(LabelPlan::of_labels(rules, self.fingerprint, self.labels)),
        }
    }
}

/// An alert read back from its row, owning what an [`AlertRef`] borrows.
pub(super) struct StoredAlert {
    pub id: i64,
    pub fingerprint: Fingerprint,
    pub labels: LabelSet,
    pub annotations: Annotations,
}

impl StoredAlert {
    pub fn from_row(id: i64, fingerprint: &str, labels: &str, annotations: &str) -> Result<Self, StoreError> {
        let corrupt = |e: String| StoreError::Corrupt(format!("alert {id}: {e}"));
        Ok(StoredAlert {
            id,
            fingerprint: Fingerprint::parse(fingerprint).map_err(|e| corrupt(e.to_string()))?,
            labels: serde_json::from_str(labels).map_err(|e| corrupt(e.to_string()))?,
            annotations: serde_json::from_str(annotations).map_err(|e| corrupt(e.to_string()))?,
        })
    }

    pub fn as_ref(&self) -> AlertRef<'_> {
        AlertRef {
            id: self.id,
            fingerprint: &self.fingerprint,
            labels: &self.labels,
            annotations: &self.annotations,
            plan: None,
        }
    }
}

/// An alert's state from its columns (status, starts_at, ends_at, expired).
pub(super) fn alert_state(
    status: &str,
    starts: i64,
    ends: Option<i64>,
    expired: bool,
) -> Result<AlertState, StoreError> {
    Ok(AlertState {
        status: AlertStatus::parse(status).ok_or_else(|| StoreError::Corrupt(format!("alert status {status:?}")))?,
        starts_at: ts(starts)?,
        ends_at: ends.map(ts).transpose()?,
        expired,
    })
}

/// What a decision needs of an incident, from its columns.
pub(super) fn view(id: i64, state: &str, created: i64, resolved: Option<i64>) -> Result<IncidentView, StoreError> {
    Ok(IncidentView {
        id,
        state: IncidentState::parse(state).ok_or_else(|| StoreError::Corrupt(format!("incident state {state:?}")))?,
        created_at: ts(created)?,
        resolved_at: resolved.map(ts).transpose()?,
    })
}

/// Append to an incident's timeline what happens now; returns the entry's id.
pub(super) fn event(
    tx: &Connection,
    id: i64,
    now: Timestamp,
    actor: &str,
    kind: &str,
    message: &str,
    data: serde_json::Value,
) -> Result<i64, StoreError> {
    record_event(tx, id, (now, now), actor, kind, message, data)
}

/// Append an entry the engine worded to an incident's timeline; returns its id.
pub(super) fn entry(tx: &Connection, id: i64, actor: &str, e: crate::engine::sla::Entry) -> Result<i64, StoreError> {
    event(tx, id, e.at, actor, e.kind, &e.message, e.data)
}

/// Append to an incident's timeline what happened at `at`, recorded at
/// `recorded_at` (a milestone found late, after a restart, is dated when
/// it fell due); returns the entry's id.
pub(super) fn record_event(
    tx: &Connection,
    id: i64,
    (at, recorded_at): (Timestamp, Timestamp),
    actor: &str,
    kind: &str,
    message: &str,
    data: serde_json::Value,
) -> Result<i64, StoreError> {
    Ok(tx.insert(
        "INSERT INTO incident_events (incident_id, at, actor, kind, message, data, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![id, ms(at), actor, kind, message, data.to_string(), ms(recorded_at)],
    )?)
}

pub(super) fn current_state(tx: &Connection, id: i64) -> Result<IncidentState, StoreError> {
    let state: String = tx
        .prepare_cached("SELECT state FROM incidents WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("no incident {id}")))?;
    IncidentState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("incident state {state:?}")))
}
