//! The mutations a backend applies, as data: each is one durable write,
//! and what it answers.
use std::sync::Arc;

use jiff::Timestamp;

use super::StoreError;
use super::query::{DeliveryRecord, IngestOutcome, NewProblem, ProblemUpdate};
use crate::engine::plan::Plans;
use crate::engine::silence::SilenceSpec;
use crate::model::AlertUpdate;
use crate::model::change::{Change, NewChange};
use crate::model::incident::{IncidentAction, NewReport, Priority};
use crate::rules::RuleSet;

#[derive(Debug)]
pub enum Op {
    Ingest {
        updates: Vec<AlertUpdate>,
        /// Labels and annotations of each observed alert as JSON, encoded
        /// by the caller so the writer thread spends no time on it.
        encoded: Vec<Option<(String, String)>>,
        /// What the rules say of each observed alert's labels, worked out
        /// by the caller too (see [`crate::engine::plan`]).
        plans: Plans,
        now: Timestamp,
        /// Who sent them (a token's name), for what a sender's acknowledge does.
        sender: Option<String>,
    },
    /// Expire alerts past their end, and run the writer's timers.
    Tick {
        now: Timestamp,
    },
    /// A heartbeat's ping by HTTP (`NotFound` when the rules have no
    /// heartbeat of this name).
    PingHeartbeat {
        name: String,
        now: Timestamp,
    },
    Act {
        id: i64,
        action: IncidentAction,
        actor: String,
        comment: Option<String>,
        now: Timestamp,
    },
    Assign {
        id: i64,
        assignee: Option<String>,
        actor: String,
        now: Timestamp,
    },
    Note {
        id: i64,
        text: String,
        actor: String,
        now: Timestamp,
    },
    SetPriority {
        id: i64,
        priority: Priority,
        actor: String,
        comment: Option<String>,
        now: Timestamp,
    },
    CreateSilence {
        spec: SilenceSpec,
        now: Timestamp,
    },
    /// Post a silence under an existing id (Alertmanager's update).
    UpdateSilence {
        id: i64,
        spec: SilenceSpec,
        now: Timestamp,
    },
    ExpireSilence {
        id: i64,
        actor: String,
        now: Timestamp,
    },
    RecordChange {
        change: NewChange,
        now: Timestamp,
    },
    /// A person reports an incident (the service desk).
    ReportIncident {
        report: NewReport,
        actor: String,
        now: Timestamp,
    },
    /// Link alerts to an incident by hand.
    LinkAlerts {
        id: i64,
        fingerprints: Vec<crate::model::Fingerprint>,
        actor: String,
        now: Timestamp,
    },
    /// Merge incident `id` into `into`.
    Merge {
        id: i64,
        into: i64,
        comment: Option<String>,
        actor: String,
        now: Timestamp,
    },
    /// Link a reviewed incident to a problem (`problem`), or open one from
    /// its review; `workaround` goes to the problem.
    ReviewProblem {
        incident: i64,
        problem: Option<i64>,
        workaround: Option<String>,
        actor: String,
        now: Timestamp,
    },
    CreateActionItem {
        item: crate::model::action_item::NewActionItem,
        actor: String,
        now: Timestamp,
    },
    EditActionItem {
        id: i64,
        edit: crate::model::action_item::ActionItemEdit,
        /// The edit's due date, parsed.
        due: Option<Timestamp>,
        actor: String,
        now: Timestamp,
    },
    /// Start the post-incident review of a resolved incident.
    CreateReview {
        incident: i64,
        actor: String,
        now: Timestamp,
    },
    EditReview {
        incident: i64,
        edit: crate::model::review::ReviewEdit,
        actor: String,
        now: Timestamp,
    },
    CreateProblem {
        problem: NewProblem,
        actor: String,
        now: Timestamp,
    },
    UpdateProblem {
        id: i64,
        update: ProblemUpdate,
        actor: String,
        now: Timestamp,
    },
    LinkIncidents {
        problem: i64,
        incidents: Vec<i64>,
        actor: String,
        now: Timestamp,
    },
    CreateOverride {
        new: crate::model::oncall::NewOverride,
        actor: String,
        now: Timestamp,
    },
    DeleteOverride {
        schedule: String,
        id: i64,
        actor: String,
        now: Timestamp,
    },
    /// A calendar feed whose key hashes to `key_hash`.
    CreateCalendarFeed {
        of: crate::model::oncall::FeedOf,
        key_hash: String,
        actor: String,
        now: Timestamp,
    },
    RevokeCalendarFeed {
        id: i64,
        actor: String,
        now: Timestamp,
    },
    ClaimNotifications {
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    },
    RecordDeliveries {
        results: Vec<(i64, DeliveryRecord)>,
        now: Timestamp,
    },
    RenewLeases {
        ids: Vec<i64>,
        lease_until: Timestamp,
    },
    RetryNotification {
        id: i64,
        actor: String,
        now: Timestamp,
    },
    /// A mutation outside the store (a rule reload), for the audit log only.
    Audit {
        action: String,
        actor: String,
        detail: serde_json::Value,
        now: Timestamp,
    },
}

/// What a round of the timers did: how many alerts expired, and whether
/// the round took as many expiry checks as it may (more may be due).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Swept {
    pub expired: usize,
    pub more_due: bool,
}

#[derive(Debug)]
pub enum Reply {
    Ingest(IngestOutcome),
    Tick(Swept),
    Done,
    Silence(crate::engine::silence::Silence),
    Change(Change),
    Id(i64),
    Claimed(Vec<crate::model::notification::OutboxItem>),
    Review(Box<crate::model::review::Review>),
    ActionItem(Box<crate::model::action_item::ActionItem>),
    Override(Box<crate::model::oncall::ScheduleOverride>),
    CalendarFeed(Box<crate::model::oncall::CalendarFeed>),
}

impl Op {
    /// The time the op happens at, which its records carry.
    pub fn now(&self) -> Option<Timestamp> {
        match self {
            Op::Ingest { now, .. }
            | Op::Tick { now }
            | Op::PingHeartbeat { now, .. }
            | Op::Act { now, .. }
            | Op::Assign { now, .. }
            | Op::Note { now, .. }
            | Op::SetPriority { now, .. }
            | Op::CreateSilence { now, .. }
            | Op::UpdateSilence { now, .. }
            | Op::ExpireSilence { now, .. }
            | Op::RecordChange { now, .. }
            | Op::ReportIncident { now, .. }
            | Op::CreateReview { now, .. }
            | Op::CreateActionItem { now, .. }
            | Op::ReviewProblem { now, .. }
            | Op::EditActionItem { now, .. }
            | Op::EditReview { now, .. }
            | Op::LinkAlerts { now, .. }
            | Op::Merge { now, .. }
            | Op::CreateProblem { now, .. }
            | Op::UpdateProblem { now, .. }
            | Op::LinkIncidents { now, .. }
            | Op::CreateOverride { now, .. }
            | Op::DeleteOverride { now, .. }
            | Op::CreateCalendarFeed { now, .. }
            | Op::RevokeCalendarFeed { now, .. }
            | Op::ClaimNotifications { now, .. }
            | Op::RecordDeliveries { now, .. }
            | Op::RetryNotification { now, .. }
            | Op::Audit { now, .. } => Some(*now),
            Op::RenewLeases { .. } => None,
        }
    }
}

/// Alerts past which a batch's encoding runs on a blocking thread.
const LARGE_BATCH: usize = 500;

/// The ingest op of a request's alerts, with their labels and annotations
/// encoded and their plans under `rules` (the rules in force) made here,
/// on the caller's task, so the writer spends no time on them.
pub async fn ingest(
    updates: Vec<AlertUpdate>,
    now: Timestamp,
    sender: Option<String>,
    rules: Arc<RuleSet>,
) -> Result<Op, StoreError> {
    let prepare = move |updates: Vec<AlertUpdate>| {
        let encoded = updates
            .iter()
            .map(|u| match u {
                AlertUpdate::Observe(a) => Some((
                    serde_json::to_string(&a.labels).unwrap_or_else(|_| "{}".into()),
                    serde_json::to_string(&a.annotations).unwrap_or_else(|_| "{}".into()),
                )),
                _ => None,
            })
            .collect();
        let plans = Plans::make(rules, updates.iter().map(AlertUpdate::observed));
        (updates, encoded, plans)
    };
    // A large batch is prepared off the async workers, which other
    // senders' requests need meanwhile.
    let (updates, encoded, plans) = if updates.len() > LARGE_BATCH {
        tokio::task::spawn_blocking(move || prepare(updates))
            .await
            .map_err(|e| StoreError::Corrupt(format!("encoding task failed: {e}")))?
    } else {
        prepare(updates)
    };
    Ok(Op::Ingest { updates, encoded, plans, now, sender })
}
