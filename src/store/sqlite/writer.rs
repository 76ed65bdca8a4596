//! The writer thread: the one connection that writes.
//!
//! Requests queue on a channel; the writer takes every request waiting (up to
//! a bound), applies each inside its own savepoint so one bad request cannot
//! spoil the others, and commits them in one transaction: one fsync for the
//! whole group. Only then does each caller get its answer.
use std::sync::Arc;

use jiff::Timestamp;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::outbox;
use super::state::WriterState;
use super::{SharedRules, StoreError, ms};
use crate::model::AlertUpdate;
use crate::store::IngestOutcome;
use crate::store::ops::{Op, Reply};

/// Most requests, and most alerts, one transaction takes.
const MAX_BATCH_REQUESTS: usize = 512;
const MAX_BATCH_ALERTS: usize = 20_000;

/// Most alerts of one request applied in one transaction. A larger
/// request is applied in parts, one per transaction, between other
/// requests: one sender's large batch cannot hold the writer (and every
/// other sender) for the whole of its work. It is answered once its last
/// part is committed; if a part fails, the parts before it stay (a retry
/// of the whole request is idempotent: alerts deduplicate).
const PART_ALERTS: usize = 1_000;

/// Whether applying this op can change the writer's in-memory state
/// (inhibit index, silences), which a rollback must then restore.
fn touches_writer_state(op: &Op) -> bool {
    matches!(
        op,
        Op::Ingest { .. }
            | Op::Merge { .. }
            | Op::Tick { .. }
            | Op::PingHeartbeat { .. }
            | Op::CreateSilence { .. }
            | Op::UpdateSilence { .. }
            | Op::ExpireSilence { .. }
            | Op::RecordChange { .. }
            | Op::CreateOverride { .. }
            | Op::DeleteOverride { .. }
    )
}

/// What an op counts towards a batch's bound.
fn weight_of(op: &Op) -> usize {
    match op {
        Op::Ingest { updates, .. } => updates.len().max(1),
        _ => 1,
    }
}

/// What the store's handle asks of its writer.
pub(super) enum Request {
    Write {
        op: Box<Op>,
        /// The caller's address, for the audit log.
        source: Option<Arc<str>>,
        reply: oneshot::Sender<Result<Reply, StoreError>>,
    },
    /// Finish what is queued and close; deliveries cut short are due again at `now`.
    Close { now: Timestamp, done: oneshot::Sender<()> },
}

/// Where the result of an op goes.
enum Answer {
    Caller(oneshot::Sender<Result<Reply, StoreError>>),
    /// A part of the large request at the front of the queue.
    Part,
}

/// A large ingest request not yet wholly applied.
struct Partial {
    updates: Vec<AlertUpdate>,
    encoded: Vec<Option<(String, String)>>,
    now: Timestamp,
    sender: Option<String>,
    source: Option<Arc<str>>,
    reply: oneshot::Sender<Result<Reply, StoreError>>,
    outcome: IngestOutcome,
}

impl Partial {
    /// The next part's op; the rest stays.
    fn next_part(&mut self) -> Op {
        let n = self.updates.len().min(PART_ALERTS);
        Op::Ingest {
            updates: self.updates.drain(..n).collect(),
            encoded: self.encoded.drain(..n).collect(),
            now: self.now,
            sender: self.sender.clone(),
        }
    }
}

/// What the writer shares with the store's handle.
pub(super) struct Shared {
    pub rules: SharedRules,
    /// The earliest timer, for the tick loop.
    pub next_timer: Arc<std::sync::atomic::AtomicI64>,
    /// Woken after each commit that queued a notification.
    pub outbox_wakeup: Arc<tokio::sync::Notify>,
    pub size_limit: Option<super::SizeLimit>,
    /// Bumped after each commit that changed rows (the console's live views).
    pub feed: super::ChangeFeed,
}

pub(super) fn run(
    mut conn: Connection,
    mut writer_state: WriterState,
    mut rx: mpsc::Receiver<Request>,
    shared: Shared,
    stop_checkpoints: impl FnOnce(),
) {
    let Shared { rules, next_timer, outbox_wakeup, size_limit, feed } = shared;
    let shown_changed = watch_shown_tables(&conn);
    let mut batch: Vec<Pending> = Vec::new();
    let mut partials: std::collections::VecDeque<Partial> = std::collections::VecDeque::new();
    let mut close: Option<(Timestamp, oneshot::Sender<()>)> = None;
    // Requests already queued when a close arrives are answered; large
    // requests under way are finished first.
    while close.is_none() || !partials.is_empty() {
        let mut next = match (close.is_some(), partials.is_empty()) {
            (true, _) => None,
            (false, true) => match rx.blocking_recv() {
                Some(r) => Some(r),
                None => break,
            },
            (false, false) => rx.try_recv().ok(),
        };
        let mut weight = 0;
        while let Some(req) = next.take() {
            match req {
                Request::Write { op, source, reply } => match *op {
                    Op::Ingest { updates, encoded, now, sender } if updates.len() > PART_ALERTS => {
                        let outcome = IngestOutcome::default();
                        partials.push_back(Partial { updates, encoded, now, sender, source, reply, outcome });
                    }
                    op => {
                        weight += weight_of(&op);
                        batch.push((op, source, Answer::Caller(reply)));
                    }
                },
                Request::Close { now, done } => close = Some((now, done)),
            }
            if close.is_none() && batch.len() < MAX_BATCH_REQUESTS && weight < MAX_BATCH_ALERTS {
                next = rx.try_recv().ok();
            }
        }
        // One part of the oldest large request rides along with the others.
        let mut part = partials.pop_front();
        if let Some(p) = &mut part {
            batch.push((p.next_part(), p.source.clone(), Answer::Part));
        }
        // Reloaded rules take effect at the time of the batch that first sees them.
        let current = rules.read().expect("rules lock").clone();
        if !Arc::ptr_eq(&current, &writer_state.rules)
            && let Some(now) = batch_time(&batch)
            && let Err(e) = writer_state.set_rules(&super::sql::Connection::sqlite(&conn), current, now)
        {
            tracing::error!(error = %e, "applying reloaded rules failed");
        }
        let mut part_result = None;
        if size_limit.as_ref().is_some_and(super::SizeLimit::reached) {
            part_result = refuse_growth(&mut batch);
        }
        if !batch.is_empty() {
            shown_changed.store(false, std::sync::atomic::Ordering::Relaxed);
            // Live views learn of a commit before its callers are answered,
            // so a page read after a 2xx shows the change. A sender's
            // re-sends of alerts already in open incidents, or a tick that
            // found nothing due, change nothing a view shows and wake no view.
            let wake_views = || {
                if shown_changed.load(std::sync::atomic::Ordering::Relaxed) {
                    feed.bump();
                }
            };
            part_result = part_result.or(commit_batch(&mut conn, &mut writer_state, &mut batch, wake_views));
        }
        if let (Some(mut p), Some(result)) = (part, part_result) {
            match result {
                Ok(Reply::Ingest(o)) => {
                    p.outcome.add(&o);
                    if p.updates.is_empty() {
                        let _ = p.reply.send(Ok(Reply::Ingest(p.outcome)));
                    } else {
                        partials.push_back(p);
                    }
                }
                Ok(_) => unreachable!("an ingest part answers with an outcome"),
                Err(e) => {
                    let _ = p.reply.send(Err(e));
                }
            }
        }
        next_timer.store(writer_state.timers.next_due().map_or(i64::MAX, ms), std::sync::atomic::Ordering::Relaxed);
        if writer_state.outbox_dirty.take() {
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
    // Deliveries cut short by the shutdown are due again at once for the
    // next run, not after their lease.
    let released = match &close {
        Some((now, _)) => outbox::release_all(&super::sql::Connection::sqlite(&conn), *now),
        None => Ok(0),
    };
    match released {
        Ok(0) => {}
        Ok(n) => tracing::info!(notifications = n, "released the leases of unfinished deliveries"),
        Err(e) => tracing::warn!(error = %e, "releasing notification leases failed"),
    }
    stop_checkpoints();
    if let Err(e) = conn.execute_batch("PRAGMA optimize; PRAGMA wal_checkpoint(TRUNCATE);") {
        tracing::warn!(error = %e, "checkpoint at close failed");
    }
    match conn.close() {
        Ok(()) => tracing::info!("database closed cleanly"),
        Err((_, e)) => tracing::error!(error = %e, "closing the database failed"),
    }
    if let Some((_, done)) = close {
        let _ = done.send(());
    }
}

type Pending = (Op, Option<Arc<str>>, Answer);

/// The latest time among a batch's ops.
fn batch_time(batch: &[Pending]) -> Option<Timestamp> {
    batch.iter().filter_map(|(op, ..)| op.now()).max()
}

/// At `store.max_size` (database and WAL together), requests that would
/// store more are refused before they start; the outbox's bookkeeping
/// (small, and needed to stop re-sending) goes on. A refused part of a
/// large request is returned, to fail its request.
fn refuse_growth(batch: &mut Vec<Pending>) -> Option<Result<Reply, StoreError>> {
    let full = || StoreError::DiskFull("the database and its WAL reached store.max_size".into());
    let mut kept = Vec::with_capacity(batch.len());
    let mut part = None;
    for (op, source, to) in batch.drain(..) {
        match (&op, to) {
            (Op::ClaimNotifications { .. } | Op::RecordDeliveries { .. } | Op::RenewLeases { .. }, to) => {
                kept.push((op, source, to))
            }
            (_, Answer::Caller(reply)) => {
                let _ = reply.send(Err(full()));
            }
            (_, Answer::Part) => part = Some(Err(full())),
        }
    }
    *batch = kept;
    part
}

/// Apply and commit a batch, tell `committed`, then answer each caller; the result of the
/// batch's [`Answer::Part`], if it has one, is returned instead.
fn commit_batch(
    conn: &mut Connection,
    writer_state: &mut WriterState,
    batch: &mut Vec<Pending>,
    committed: impl FnOnce(),
) -> Option<Result<Reply, StoreError>> {
    let started = std::time::Instant::now();
    let mut results: Vec<Result<Reply, StoreError>> = Vec::with_capacity(batch.len());
    let mut facts = Vec::new();
    let mut engine_touched_by_failure = false;
    let outcome = (|| -> Result<(), StoreError> {
        let mut tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for (op, source, _) in batch.iter() {
            let sp = tx.savepoint()?;
            let r =
                super::apply::apply_audited(&super::sql::Connection::sqlite(&sp), writer_state, op, source.as_deref());
            match r {
                Ok(reply) => {
                    sp.commit()?;
                    writer_state.commit_staged();
                    facts.append(&mut writer_state.facts);
                    results.push(Ok(reply));
                }
                Err(e) => {
                    writer_state.discard_staged();
                    writer_state.facts.clear();
                    engine_touched_by_failure |= touches_writer_state(op);
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
        let now = batch_time(batch).unwrap_or(writer_state.loaded_at);
        match WriterState::load(
            &super::sql::Connection::sqlite(conn),
            writer_state.rules.clone(),
            writer_state.audience.clone(),
            now,
        ) {
            Ok(fresh) => *writer_state = fresh,
            Err(e) => tracing::error!(error = %e, "reloading the writer's state failed"),
        }
    }
    let m = crate::metrics::metrics();
    m.commit_duration.observe(started.elapsed().as_secs_f64());
    m.commit_batch_size.observe(batch.len() as f64);
    let mut part = None;
    let mut answer = |to: Answer, result: Result<Reply, StoreError>| match to {
        Answer::Caller(reply) => {
            let _ = reply.send(result);
        }
        Answer::Part => part = Some(result),
    };
    match outcome {
        Ok(()) => {
            committed();
            for fact in &facts {
                fact.count();
            }
            for ((_, _, to), result) in batch.drain(..).zip(results) {
                answer(to, result);
            }
        }
        Err(e) => {
            m.commits_failed.inc();
            tracing::error!(error = %e, requests = batch.len(), "commit failed; nothing of this batch is stored");
            for (_, _, to) in batch.drain(..) {
                answer(to, Err(e.duplicate()));
            }
        }
    }
    part
}

/// Tables whose changes no live view shows: the alerts' own bookkeeping
/// (a re-send updates `last_seen` and the delivery count), the outbox's,
/// the audit log, and heartbeats' pings.
const UNSHOWN_TABLES: [&str; 6] =
    ["alerts", "notifications", "audit_log", "pending_alerts", "pending_groups", "heartbeats"];

/// A flag the connection sets whenever a row of a table that live views
/// show changes (SQLite's update hook, called for every row written).
fn watch_shown_tables(conn: &Connection) -> Arc<std::sync::atomic::AtomicBool> {
    let changed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = changed.clone();
    conn.update_hook(Some(move |_: rusqlite::hooks::Action, _: &str, table: &str, _: i64| {
        if !UNSHOWN_TABLES.contains(&table) {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }));
    changed
}
