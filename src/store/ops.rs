//! What the store's handle asks of its writer, and what it answers.
use jiff::Timestamp;
use tokio::sync::oneshot;

use super::outbox::DeliveryRecord;
use super::problems::{NewProblem, ProblemUpdate};
use super::{IngestOutcome, StoreError};
use crate::engine::silence::SilenceSpec;
use crate::model::AlertUpdate;
use crate::model::change::{Change, NewChange};
use crate::model::incident::{IncidentAction, Priority};

pub(super) enum Op {
    Ingest {
        updates: Vec<AlertUpdate>,
        /// Labels and annotations of each observed alert as JSON, encoded
        /// by the caller so the writer thread spends no time on it.
        encoded: Vec<Option<(String, String)>>,
        now: Timestamp,
        /// Who sent them (a token's name), for what a sender's acknowledge does.
        sender: Option<String>,
    },
    /// Expire alerts past their end, and run the writer's timers.
    Tick {
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
    },
}

pub(super) enum Reply {
    Ingest(IngestOutcome),
    Tick(usize),
    Done,
    Silence(crate::engine::silence::Silence),
    Change(Change),
    Id(i64),
    Claimed(Vec<crate::model::notification::OutboxItem>),
}

pub(super) enum Request {
    Write {
        op: Box<Op>,
        /// The caller's address, for the audit log.
        source: Option<String>,
        reply: oneshot::Sender<Result<Reply, StoreError>>,
    },
    Close {
        done: oneshot::Sender<()>,
    },
}

impl Op {
    /// Whether applying this op can change the writer's in-memory state
    /// (inhibit index, silences), which a rollback must then restore.
    pub fn touches_writer_state(&self) -> bool {
        matches!(
            self,
            Op::Ingest { .. }
                | Op::Tick { .. }
                | Op::CreateSilence { .. }
                | Op::UpdateSilence { .. }
                | Op::ExpireSilence { .. }
                | Op::RecordChange { .. }
        )
    }

    pub fn weight(&self) -> usize {
        match self {
            Op::Ingest { updates, .. } => updates.len().max(1),
            _ => 1,
        }
    }
}
