//! The writer thread: the one connection that writes.
//!
//! Requests queue on a channel; the writer takes every request waiting (up to
//! a bound), applies each inside its own savepoint so one bad request cannot
//! spoil the others, and commits them in one transaction: one fsync for the
//! whole group. Only then does each caller get its answer.
use std::sync::Arc;

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use super::incidents::{AlertRef, Engine, StoredAlert};
use super::outbox::{self, DeliveryRecord};
use super::problems::{NewProblem, ProblemUpdate};
use super::{IngestOutcome, SharedRules, StoreError, ms, ts};
use crate::engine::silence::Silence;
use crate::model::alert::observe;
use crate::model::change::{Change, NewChange};
use crate::model::incident::{IncidentAction, Priority};
use crate::model::{Alert, AlertState, AlertStatus, AlertUpdate, Observation};
use crate::rules::matcher::Matcher;

/// Most requests, and most alerts, one transaction takes.
const MAX_BATCH_REQUESTS: usize = 512;
const MAX_BATCH_ALERTS: usize = 20_000;

pub(super) enum Op {
    Ingest {
        updates: Vec<AlertUpdate>,
        /// Labels and annotations of each observed alert as JSON, encoded
        /// by the caller so the writer thread spends no time on it.
        encoded: Vec<Option<(String, String)>>,
        now: Timestamp,
    },
    /// Expire alerts past their end, and run the engine's timers.
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
        matchers: Vec<Matcher>,
        starts_at: Timestamp,
        ends_at: Timestamp,
        created_by: String,
        comment: String,
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
    Silence(Silence),
    Change(Change),
    Id(i64),
    Claimed(Vec<crate::notify::OutboxItem>),
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
    fn touches_engine(&self) -> bool {
        matches!(
            self,
            Op::Ingest { .. }
                | Op::Tick { .. }
                | Op::CreateSilence { .. }
                | Op::ExpireSilence { .. }
                | Op::RecordChange { .. }
        )
    }

    fn weight(&self) -> usize {
        match self {
            Op::Ingest { updates, .. } => updates.len().max(1),
            _ => 1,
        }
    }
}

// The writer's channels to the rest of the gateway are its arguments; a
// struct to carry them would only rename them.
#[allow(clippy::too_many_arguments)]
pub(super) fn run(
    mut conn: Connection,
    mut engine: Engine,
    mut rx: mpsc::Receiver<Request>,
    rules: SharedRules,
    next_timer: Arc<std::sync::atomic::AtomicI64>,
    outbox_wakeup: Arc<tokio::sync::Notify>,
    feed: super::ChangeFeed,
    stop_checkpoints: impl FnOnce(),
) {
    let mut batch = Vec::new();
    let mut close: Option<oneshot::Sender<()>> = None;
    while close.is_none() {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        let mut weight = 0;
        let mut next = Some(first);
        while let Some(req) = next.take() {
            match req {
                Request::Write { op, source, reply } => {
                    weight += op.weight();
                    batch.push((*op, source, reply));
                }
                Request::Close { done } => close = Some(done),
            }
            if close.is_none() && batch.len() < MAX_BATCH_REQUESTS && weight < MAX_BATCH_ALERTS {
                next = rx.try_recv().ok();
            }
        }
        let current = rules.read().expect("rules lock").clone();
        if !Arc::ptr_eq(&current, &engine.rules)
            && let Err(e) = engine.set_rules(&conn, current)
        {
            tracing::error!(error = %e, "applying reloaded rules failed");
        }
        if !batch.is_empty() {
            let changes_before = conn.total_changes();
            commit_batch(&mut conn, &mut engine, &mut batch);
            // A tick that found nothing due changes no row and wakes no view.
            if conn.total_changes() != changes_before {
                feed.bump();
            }
        }
        next_timer.store(engine.timers.next_due().map_or(i64::MAX, ms), std::sync::atomic::Ordering::Relaxed);
        if engine.outbox_dirty.take() {
            outbox_wakeup.notify_one();
        }
    }
    // Answer what is still queued: the store is closing.
    feed.close();
    rx.close();
    while let Ok(req) = rx.try_recv() {
        if let Request::Write { reply, .. } = req {
            let _ = reply.send(Err(StoreError::Closed));
        }
    }
    stop_checkpoints();
    if let Err(e) = conn.execute_batch("PRAGMA optimize; PRAGMA wal_checkpoint(TRUNCATE);") {
        tracing::warn!(error = %e, "checkpoint at close failed");
    }
    match conn.close() {
        Ok(()) => tracing::info!("database closed cleanly"),
        Err((_, e)) => tracing::error!(error = %e, "closing the database failed"),
    }
    if let Some(done) = close {
        let _ = done.send(());
    }
}

type Pending = (Op, Option<String>, oneshot::Sender<Result<Reply, StoreError>>);

fn commit_batch(conn: &mut Connection, engine: &mut Engine, batch: &mut Vec<Pending>) {
    let started = std::time::Instant::now();
    let mut results: Vec<Result<Reply, StoreError>> = Vec::with_capacity(batch.len());
    let mut facts = Vec::new();
    let mut engine_touched_by_failure = false;
    let outcome = (|| -> Result<(), StoreError> {
        let mut tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for (op, source, _) in batch.iter() {
            let sp = tx.savepoint()?;
            let r = apply_audited(&sp, engine, op, source.as_deref());
            match r {
                Ok(reply) => {
                    sp.commit()?;
                    engine.commit_staged();
                    facts.append(&mut engine.facts);
                    results.push(Ok(reply));
                }
                Err(e) => {
                    engine.discard_staged();
                    engine.facts.clear();
                    engine_touched_by_failure |= op.touches_engine();
                    drop(sp); // rolls back this request only
                    // Some errors (disk full, I/O) make SQLite roll back the
                    // whole transaction; a later savepoint would then commit
                    // on its own. The whole batch fails instead.
                    if tx.is_autocommit() {
                        return Err(e);
                    }
                    results.push(Err(e));
                }
            }
        }
        tx.commit()?;
        Ok(())
    })();
    if engine_touched_by_failure || outcome.is_err() {
        // A rolled-back request may have touched the in-memory state.
        match Engine::load(conn, engine.rules.clone(), engine.subscriptions.clone(), crate::clock::now()) {
            Ok(fresh) => *engine = fresh,
            Err(e) => tracing::error!(error = %e, "reloading the engine state failed"),
        }
    }
    let m = crate::metrics::metrics();
    m.commit_duration.observe(started.elapsed().as_secs_f64());
    m.commit_batch_size.observe(batch.len() as f64);
    match outcome {
        Ok(()) => {
            for fact in &facts {
                fact.count();
            }
            for ((_, _, reply), result) in batch.drain(..).zip(results) {
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            m.commits_failed.inc();
            tracing::error!(error = %e, requests = batch.len(), "commit failed; nothing of this batch is stored");
            for (_, _, reply) in batch.drain(..) {
                let _ = reply.send(Err(e.duplicate()));
            }
        }
    }
}

/// Apply an op; a person's mutation is written to the audit log with its
/// target's state before and after, in the same savepoint.
fn apply_audited(tx: &Connection, engine: &mut Engine, op: &Op, source: Option<&str>) -> Result<Reply, StoreError> {
    let Some(a) = super::audit::audited(op) else { return apply(tx, engine, op) };
    let before = match a.id {
        Some(id) => super::audit::snapshot(tx, a.kind, id)?,
        None => serde_json::Value::Null,
    };
    let reply = apply(tx, engine, op)?;
    let id = a.id.or_else(|| super::audit::created_id(&reply));
    let after = match id {
        Some(id) => super::audit::snapshot(tx, a.kind, id)?,
        None => serde_json::Value::Null,
    };
    super::audit::record(tx, crate::clock::now(), &a, id, source, &before, &after)?;
    Ok(reply)
}

fn apply(tx: &Connection, engine: &mut Engine, op: &Op) -> Result<Reply, StoreError> {
    match op {
        Op::Ingest { updates, encoded, now } => {
            let mut outcome = IngestOutcome::default();
            for (u, enc) in updates.iter().zip(encoded) {
                match u {
                    AlertUpdate::Observe(alert) => {
                        let (labels, annotations) =
                            enc.as_ref().map(|(l, a)| (l.as_str(), a.as_str())).unwrap_or_default();
                        let (id, obs) = observe_alert(tx, alert, labels, annotations, *now)?;
                        outcome.count(obs);
                        let a = AlertRef {
                            id,
                            fingerprint: &alert.fingerprint,
                            labels: &alert.labels,
                            annotations: &alert.annotations,
                        };
                        match (obs, alert.status) {
                            (Observation::Stale, _) => {}
                            (Observation::Resolved, _) => engine.on_resolved(tx, &a, *now)?,
                            (Observation::Created | Observation::Refired, AlertStatus::Firing) => {
                                engine.on_firing(tx, &a, true, *now)?
                            }
                            (Observation::Repeated, AlertStatus::Firing) => engine.on_firing(tx, &a, false, *now)?,
                            (_, AlertStatus::Resolved) => {}
                        }
                    }
                    AlertUpdate::Acknowledge { fingerprint } => {
                        let n = tx
                            .prepare_cached(
                                "UPDATE alerts SET acknowledged_at = COALESCE(acknowledged_at, ?2),
                                 last_seen = ?2, occurrences = occurrences + 1
                                 WHERE fingerprint = ?1",
                            )?
                            .execute(params![fingerprint.as_str(), ms(*now)])?;
                        outcome.count_known(n > 0, Observation::Repeated);
                    }
                    AlertUpdate::Resolve { fingerprint } => {
                        let resolved: Vec<(i64, String, String)> = tx
                            .prepare_cached(
                                "UPDATE alerts SET status = 'resolved', ends_at = ?2, expires_at = NULL,
                                 expired = 0, last_seen = ?2, occurrences = occurrences + 1
                                 WHERE fingerprint = ?1 AND status = 'firing' RETURNING id, labels, annotations",
                            )?
                            .query_map(params![fingerprint.as_str(), ms(*now)], |r| {
                                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                            })?
                            .collect::<Result<_, _>>()?;
                        if let Some((id, labels, annotations)) = resolved.into_iter().next() {
                            outcome.count(Observation::Resolved);
                            resolve_stored(tx, engine, id, fingerprint.as_str(), &labels, &annotations, *now)?;
                        } else {
                            // Already resolved, or never seen: PagerDuty
                            // accepts both without effect; so do we, but a
                            // known key still records that it was repeated.
                            let m = tx
                                .prepare_cached(
                                    "UPDATE alerts SET last_seen = ?2, occurrences = occurrences + 1
                                     WHERE fingerprint = ?1",
                                )?
                                .execute(params![fingerprint.as_str(), ms(*now)])?;
                            outcome.count_known(m > 0, Observation::Repeated);
                        }
                    }
                }
            }
            Ok(Reply::Ingest(outcome))
        }
        Op::Tick { now } => {
            let expired: Vec<(i64, String, String, String)> = tx
                .prepare_cached(
                    "UPDATE alerts SET status = 'resolved', ends_at = expires_at, expired = 1, expires_at = NULL
                     WHERE status = 'firing' AND expires_at IS NOT NULL AND expires_at <= ?1
                     RETURNING id, fingerprint, labels, annotations",
                )?
                .query_map(params![ms(*now)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<Result<_, _>>()?;
            for (id, fp, labels, annotations) in &expired {
                resolve_stored(tx, engine, *id, fp, labels, annotations, *now)?;
            }
            engine.tick(tx, *now)?;
            Ok(Reply::Tick(expired.len()))
        }
        Op::Act { id, action, actor, comment, now } => {
            engine.act(tx, *id, *action, actor, comment.as_deref(), *now)?;
            Ok(Reply::Done)
        }
        Op::Assign { id, assignee, actor, now } => {
            Engine::assign(tx, *id, assignee.as_deref(), actor, *now)?;
            Ok(Reply::Done)
        }
        Op::Note { id, text, actor, now } => {
            Engine::note(tx, *id, text, actor, *now)?;
            Ok(Reply::Done)
        }
        Op::SetPriority { id, priority, actor, comment, now } => {
            engine.set_priority(tx, *id, *priority, actor, comment.as_deref(), *now)?;
            Ok(Reply::Done)
        }
        Op::CreateSilence { matchers, starts_at, ends_at, created_by, comment, now } => {
            let texts: Vec<String> = matchers.iter().map(|m| m.to_string()).collect();
            tx.prepare_cached(
                "INSERT INTO silences (matchers, starts_at, ends_at, created_by, comment, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                serde_json::to_string(&texts).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                ms(*starts_at),
                ms(*ends_at),
                created_by,
                comment,
                ms(*now)
            ])?;
            let silence = Silence {
                id: tx.last_insert_rowid(),
                matchers: matchers.clone(),
                starts_at: *starts_at,
                ends_at: *ends_at,
                created_by: created_by.clone(),
                comment: comment.clone(),
                created_at: *now,
            };
            engine.silences.push(silence.clone());
            tracing::info!(silence = silence.id, created_by = %created_by, "silence created");
            Ok(Reply::Silence(silence))
        }
        Op::ExpireSilence { id, now, .. } => {
            let n = tx
                .prepare_cached(
                    "UPDATE silences SET ends_at = ?2, starts_at = MIN(starts_at, ?2) WHERE id = ?1 AND ends_at > ?2",
                )?
                .execute(params![id, ms(*now)])?;
            if n == 0 {
                let exists: bool =
                    tx.query_row("SELECT count(*) > 0 FROM silences WHERE id = ?1", [id], |r| r.get(0))?;
                if !exists {
                    return Err(StoreError::NotFound(format!("no silence {id}")));
                }
            }
            // The alerts it muted are routed again at once, not at their
            // sender's next re-send (hours away for an Alertmanager group).
            engine.silences.retain(|s| s.id != *id);
            engine.recheck_muted(tx, &format!("silence:{id}"), *now)?;
            Ok(Reply::Done)
        }
        Op::RecordChange { change, now } => Ok(Reply::Change(engine.record_change(tx, change, *now)?)),
        Op::CreateProblem { problem, actor, now } => Ok(Reply::Id(engine.create_problem(tx, problem, actor, *now)?)),
        Op::UpdateProblem { id, update, actor, now } => {
            engine.update_problem(tx, *id, update, actor, *now)?;
            Ok(Reply::Done)
        }
        Op::LinkIncidents { problem, incidents, actor, now } => {
            engine.link_incidents(tx, *problem, incidents, actor, *now)?;
            Ok(Reply::Done)
        }
        Op::Audit { .. } => Ok(Reply::Done),
        Op::ClaimNotifications { now, lease_until, limit } => {
            Ok(Reply::Claimed(outbox::claim(tx, *now, *lease_until, *limit)?))
        }
        Op::RecordDeliveries { results, now } => {
            outbox::record(tx, results, *now)?;
            Ok(Reply::Done)
        }
        Op::RetryNotification { id, now, .. } => {
            outbox::retry(tx, *id, *now)?;
            engine.outbox_dirty.set(true);
            Ok(Reply::Done)
        }
    }
}

fn resolve_stored(
    tx: &Connection,
    engine: &mut Engine,
    id: i64,
    fingerprint: &str,
    labels: &str,
    annotations: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let alert = StoredAlert::from_row(id, fingerprint, labels, annotations)?;
    engine.on_resolved(tx, &alert.as_ref(), now)
}

fn observe_alert(
    tx: &Connection,
    a: &Alert,
    labels: &str,
    annotations: &str,
    now: Timestamp,
) -> Result<(i64, Observation), StoreError> {
    let stored = tx
        .prepare_cached("SELECT id, status, starts_at, ends_at, expired FROM alerts WHERE fingerprint = ?1")?
        .query_row([a.fingerprint.as_str()], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, bool>(4)?,
            ))
        })
        .optional()?;
    let state = match &stored {
        None => None,
        Some((_, status, starts, ends, expired)) => Some(AlertState {
            status: AlertStatus::parse(status)
                .ok_or_else(|| StoreError::Corrupt(format!("alert status {status:?}")))?,
            starts_at: ts(*starts)?,
            ends_at: ends.map(ts).transpose()?,
            expired: *expired,
        }),
    };
    let obs = observe(state.as_ref(), a);
    let source = a.source.to_string();
    let raw = a.raw.get();
    let id = match (obs, stored) {
        (Observation::Created, _) => {
            tx.prepare_cached(
                "INSERT INTO alerts (fingerprint, source, status, labels, annotations, starts_at, ends_at,
                    expires_at, generator_url, first_seen, last_seen, occurrences, raw)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, 1, ?11)",
            )?
            .execute(params![
                a.fingerprint.as_str(),
                source,
                a.status.as_str(),
                labels,
                annotations,
                ms(a.starts_at),
                a.ends_at.map(ms),
                a.expires_at.map(ms),
                a.generator_url,
                ms(now),
                raw,
            ])?;
            tx.last_insert_rowid()
        }
        (Observation::Stale, Some((id, ..))) => {
            tx.prepare_cached("UPDATE alerts SET last_seen = ?2, occurrences = occurrences + 1 WHERE id = ?1")?
                .execute(params![id, ms(now)])?;
            id
        }
        (Observation::Repeated, Some((id, _, stored_starts, ..))) if a.status == AlertStatus::Firing => {
            // The hot path: a sender re-sends a firing alert. Only columns
            // that can change are written, so the status and source indexes
            // are left alone; the source stays that of the first delivery.
            tx.prepare_cached(
                "UPDATE alerts SET labels = ?2, annotations = ?3, starts_at = ?4, expires_at = ?5,
                    generator_url = COALESCE(?6, generator_url), last_seen = ?7, occurrences = occurrences + 1, raw = ?8
                 WHERE id = ?1",
            )?
            .execute(params![
                id,
                labels,
                annotations,
                stored_starts.min(ms(a.starts_at)),
                a.expires_at.map(ms),
                a.generator_url,
                ms(now),
                raw,
            ])?;
            id
        }
        (obs, Some((id, _, stored_starts, ..))) => {
            // A new episode starts afresh; a repeat keeps the earliest start.
            let starts_at = match obs {
                Observation::Refired => ms(a.starts_at),
                _ => stored_starts.min(ms(a.starts_at)),
            };
            tx.prepare_cached(
                "UPDATE alerts SET source = ?2, status = ?3, labels = ?4, annotations = ?5, starts_at = ?6,
                    ends_at = CASE WHEN ?3 = 'resolved' THEN COALESCE(ends_at, ?7) ELSE NULL END,
                    expires_at = ?8, expired = 0, generator_url = COALESCE(?9, generator_url),
                    last_seen = ?10, occurrences = occurrences + 1, raw = ?11,
                    acknowledged_at = CASE WHEN ?12 THEN NULL ELSE acknowledged_at END
                 WHERE id = ?1",
            )?
            .execute(params![
                id,
                source,
                a.status.as_str(),
                labels,
                annotations,
                starts_at,
                a.ends_at.map(ms),
                a.expires_at.map(ms),
                a.generator_url,
                ms(now),
                raw,
                obs == Observation::Refired,
            ])?;
            if obs == Observation::Resolved {
                tx.prepare_cached("UPDATE alerts SET ends_at = ?2 WHERE id = ?1")?
                    .execute(params![id, a.ends_at.map(ms).unwrap_or(ms(now))])?;
            }
            id
        }
        (_, None) => unreachable!("only Created is decided without a stored alert"),
    };
    Ok((id, obs))
}
