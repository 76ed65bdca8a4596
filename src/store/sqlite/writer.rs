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

use super::outbox;
use super::state::{AlertRef, StoredAlert, WriterState};
use super::{SharedRules, StoreError, ms, ts};
use crate::engine::AlertRouting;
use crate::model::alert::{Episode, acknowledged_by_sender, episode, expired, observe, resolved_by_sender};
use crate::model::{Alert, AlertState, AlertStatus, AlertUpdate, Observation};
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
            && let Err(e) = writer_state.set_rules(&conn, current, now)
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
        Some((now, _)) => outbox::release_all(&conn, *now),
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
            let r = apply_audited(&sp, writer_state, op, source.as_deref());
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
        match WriterState::load(conn, writer_state.rules.clone(), writer_state.audience.clone(), now) {
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

/// Apply an op; a person's mutation is written to the audit log with its
/// target's state before and after, in the same savepoint.
fn apply_audited(
    tx: &Connection,
    writer_state: &mut WriterState,
    op: &Op,
    source: Option<&str>,
) -> Result<Reply, StoreError> {
    let (Some(a), Some(now)) = (crate::store::audit::audited(op), op.now()) else {
        return apply(tx, writer_state, op);
    };
    let before = match a.id {
        Some(id) => super::audit::snapshot(tx, a.kind, id)?,
        None => serde_json::Value::Null,
    };
    let reply = apply(tx, writer_state, op)?;
    let id = a.id.or_else(|| crate::store::audit::created_id(&reply));
    let after = match id {
        Some(id) => super::audit::snapshot(tx, a.kind, id)?,
        None => serde_json::Value::Null,
    };
    super::audit::record(tx, now, &a, id, source, &before, &after)?;
    Ok(reply)
}

fn apply(tx: &Connection, writer_state: &mut WriterState, op: &Op) -> Result<Reply, StoreError> {
    match op {
        Op::Ingest { updates, encoded, now, sender } => {
            Ok(Reply::Ingest(ingest(tx, writer_state, updates, encoded, *now, sender.as_deref())?))
        }
        Op::Tick { now } => Ok(Reply::Tick(writer_state.tick(tx, *now)?)),
        Op::PingHeartbeat { name, now } => {
            writer_state.ping_heartbeat(tx, name, *now)?;
            Ok(Reply::Done)
        }
        Op::Act { id, action, actor, comment, now } => {
            writer_state.act(tx, *id, *action, actor, comment.as_deref(), *now)?;
            Ok(Reply::Done)
        }
        Op::Assign { id, assignee, actor, now } => {
            WriterState::assign(tx, *id, assignee.as_deref(), actor, *now)?;
            Ok(Reply::Done)
        }
        Op::Note { id, text, actor, now } => {
            WriterState::note(tx, *id, text, actor, *now)?;
            Ok(Reply::Done)
        }
        Op::SetPriority { id, priority, actor, comment, now } => {
            writer_state.set_priority(tx, *id, *priority, actor, comment.as_deref(), *now)?;
            Ok(Reply::Done)
        }
        Op::CreateSilence { spec, now } => Ok(Reply::Silence(super::silences::insert(tx, writer_state, spec, *now)?)),
        Op::UpdateSilence { id, spec, now } => {
            Ok(Reply::Silence(super::silences::update(tx, writer_state, *id, spec, *now)?))
        }
        Op::ExpireSilence { id, now, .. } => {
            super::silences::expire(tx, writer_state, *id, *now)?;
            Ok(Reply::Done)
        }
        Op::RecordChange { change, now } => Ok(Reply::Change(writer_state.record_change(tx, change, *now)?)),
        Op::LinkAlerts { id, fingerprints, actor, now } => {
            writer_state.link_alerts(tx, *id, fingerprints, actor, *now)?;
            Ok(Reply::Done)
        }
        Op::Merge { id, into, comment, actor, now } => {
            writer_state.merge(tx, *id, *into, comment.as_deref(), actor, *now)?;
            Ok(Reply::Done)
        }
        Op::ReviewProblem { incident, problem, workaround, actor, now } => {
            Ok(Reply::Id(writer_state.review_problem(tx, *incident, *problem, workaround.clone(), actor, *now)?))
        }
        Op::CreateActionItem { item, actor, now } => {
            Ok(Reply::ActionItem(Box::new(writer_state.create_action_item(tx, item, actor, *now)?)))
        }
        Op::EditActionItem { id, edit, due, now, .. } => {
            Ok(Reply::ActionItem(Box::new(writer_state.edit_action_item(tx, *id, edit, *due, *now)?)))
        }
        Op::CreateOverride { new, actor, now } => {
            Ok(Reply::Override(Box::new(writer_state.create_override(tx, new, actor, *now)?)))
        }
        Op::DeleteOverride { schedule, id, actor, now } => {
            writer_state.delete_override(tx, schedule, *id, actor, *now)?;
            Ok(Reply::Done)
        }
        Op::CreateCalendarFeed { of, key_hash, actor, now } => {
            Ok(Reply::CalendarFeed(Box::new(super::oncall::create_feed(tx, of, key_hash, actor, *now)?)))
        }
        Op::RevokeCalendarFeed { id, actor, now } => {
            super::oncall::revoke_feed(tx, *id, actor, *now)?;
            Ok(Reply::Done)
        }
        Op::CreateReview { incident, actor, now } => {
            Ok(Reply::Review(Box::new(writer_state.create_review(tx, *incident, actor, *now)?)))
        }
        Op::EditReview { incident, edit, actor, now } => {
            Ok(Reply::Review(Box::new(writer_state.edit_review(tx, *incident, edit, actor, *now)?)))
        }
        Op::ReportIncident { report, actor, now } => {
            Ok(Reply::Id(writer_state.report_incident(tx, report, actor, *now)?))
        }
        Op::CreateProblem { problem, actor, now } => {
            Ok(Reply::Id(writer_state.create_problem(tx, problem, actor, *now)?))
        }
        Op::UpdateProblem { id, update, actor, now } => {
            writer_state.update_problem(tx, *id, update, actor, *now)?;
            Ok(Reply::Done)
        }
        Op::LinkIncidents { problem, incidents, actor, now } => {
            writer_state.link_incidents(tx, *problem, incidents, actor, *now)?;
            Ok(Reply::Done)
        }
        Op::Audit { .. } => Ok(Reply::Done),
        Op::ClaimNotifications { now, lease_until, limit } => {
            Ok(Reply::Claimed(outbox::claim(tx, *now, *lease_until, *limit)?))
        }
        Op::RenewLeases { ids, lease_until } => {
            outbox::renew(tx, ids, *lease_until)?;
            Ok(Reply::Done)
        }
        Op::RecordDeliveries { results, now } => {
            outbox::record(tx, results, *now)?;
            Ok(Reply::Done)
        }
        Op::RetryNotification { id, now, .. } => {
            outbox::retry(tx, *id, *now)?;
            writer_state.outbox_dirty.set(true);
            Ok(Reply::Done)
        }
    }
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

/// A batch of alert updates from one sender; the firing alerts among them
/// ping the heartbeats they match, in the same transaction.
pub(super) fn ingest(
    tx: &Connection,
    writer_state: &mut WriterState,
    updates: &[AlertUpdate],
    encoded: &[Option<(String, String)>],
    now: Timestamp,
    sender: Option<&str>,
) -> Result<IngestOutcome, StoreError> {
    let mut outcome = IngestOutcome::default();
    let rules = writer_state.rules.clone();
    let mut pinged = std::collections::BTreeMap::new();
    for (u, enc) in updates.iter().zip(encoded) {
        match u {
            AlertUpdate::Observe(alert) => {
                pinged.extend(crate::engine::heartbeat::pinged_by(&rules, alert).map(|hb| (&hb.name, hb)));
                let (labels, annotations) = enc.as_ref().map(|(l, a)| (l.as_str(), a.as_str())).unwrap_or_default();
                let (id, obs) = observe_alert(tx, alert, labels, annotations, now)?;
                outcome.count(obs);
                let a = AlertRef {
                    id,
                    fingerprint: &alert.fingerprint,
                    labels: &alert.labels,
                    annotations: &alert.annotations,
                };
                match crate::engine::on_observation(obs, alert.status) {
                    AlertRouting::Resolved => writer_state.on_resolved(tx, &a, now)?,
                    AlertRouting::Firing { newly } => writer_state.on_firing(tx, &a, newly, now)?,
                    AlertRouting::Nothing => {}
                }
            }
            AlertUpdate::Acknowledge { fingerprint } => match acknowledge_by_sender(tx, fingerprint.as_str(), now)? {
                Some((id, obs)) => {
                    outcome.count(obs);
                    writer_state.on_sender_acknowledged(tx, id, sender, now)?;
                }
                None => outcome.count_known(false, Observation::Repeated),
            },
            AlertUpdate::Resolve { fingerprint } => {
                let known = resolve_by_sender(tx, writer_state, fingerprint.as_str(), now)?;
                match known {
                    Some(obs) => outcome.count(obs),
                    None => outcome.count_known(false, Observation::Repeated),
                }
            }
        }
    }
    writer_state.ping_heartbeats(tx, pinged.into_values(), now)?;
    Ok(outcome)
}

/// A sender acknowledged an alert (PagerDuty `acknowledge`): its id and
/// what it was to the alert, if the key is known.
fn acknowledge_by_sender(
    tx: &Connection,
    fingerprint: &str,
    now: Timestamp,
) -> Result<Option<(i64, Observation)>, StoreError> {
    let stored: Option<(i64, Option<i64>)> = tx
        .prepare_cached("SELECT id, acknowledged_at FROM alerts WHERE fingerprint = ?1")?
        .query_row([fingerprint], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((id, acked)) = stored else { return Ok(None) };
    let (obs, acknowledged_at) = acknowledged_by_sender(acked.map(ts).transpose()?, now);
    tx.prepare_cached(
        "UPDATE alerts SET acknowledged_at = ?2, last_seen = ?3, occurrences = occurrences + 1 WHERE id = ?1",
    )?
    .execute(params![id, ms(acknowledged_at), ms(now)])?;
    Ok(Some((id, obs)))
}

/// A sender resolved an alert by its key (PagerDuty `resolve`, or a
/// heartbeat's ping its alert): what it was to the alert, or `None` for a
/// key never seen.
pub(super) fn resolve_by_sender(
    tx: &Connection,
    writer_state: &mut WriterState,
    fingerprint: &str,
    now: Timestamp,
) -> Result<Option<Observation>, StoreError> {
    let stored = stored_alert(tx, fingerprint)?;
    let Some((obs, episode)) = resolved_by_sender(stored.as_ref().map(|(_, state)| state), now) else {
        return Ok(None);
    };
    let (id, _) = stored.expect("a decision about a stored alert");
    match episode {
        Some(e) => {
            let (labels, annotations): (String, String) = tx
                .prepare_cached(
                    "UPDATE alerts SET status = ?2, ends_at = ?3, expires_at = NULL, expired = 0, last_seen = ?4,
                        occurrences = occurrences + 1 WHERE id = ?1 RETURNING labels, annotations",
                )?
                .query_row(params![id, AlertStatus::Resolved.as_str(), e.ends_at.map(ms), ms(now)], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            resolve_stored(tx, writer_state, id, fingerprint, &labels, &annotations, now)?;
        }
        None => {
            tx.prepare_cached("UPDATE alerts SET last_seen = ?2, occurrences = occurrences + 1 WHERE id = ?1")?
                .execute(params![id, ms(now)])?;
        }
    }
    Ok(Some(obs))
}

/// Firing alerts past their `expires_at` (`endsAt`, or `resolve_timeout`
/// without a re-send) resolve; how many did.
pub(super) fn expire_alerts(
    tx: &Connection,
    writer_state: &mut WriterState,
    now: Timestamp,
) -> Result<usize, StoreError> {
    let due: Vec<(i64, String, i64, i64)> = tx
        .prepare_cached(&format!(
            "SELECT id, fingerprint, starts_at, expires_at FROM alerts
             WHERE {} AND expires_at IS NOT NULL AND expires_at <= ?1",
            AlertStatus::Firing.sql("status")
        ))?
        .query_map(params![ms(now)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    for (id, fp, starts_at, expires_at) in &due {
        let stored =
            AlertState { status: AlertStatus::Firing, starts_at: ts(*starts_at)?, ends_at: None, expired: false };
        let e = expired(&stored, ts(*expires_at)?);
        let (labels, annotations): (String, String) = tx
            .prepare_cached(
                "UPDATE alerts SET status = ?2, ends_at = ?3, expired = 1, expires_at = NULL WHERE id = ?1
                 RETURNING labels, annotations",
            )?
            .query_row(params![id, AlertStatus::Resolved.as_str(), e.ends_at.map(ms)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        resolve_stored(tx, writer_state, *id, fp, &labels, &annotations, now)?;
    }
    Ok(due.len())
}

fn resolve_stored(
    tx: &Connection,
    writer_state: &mut WriterState,
    id: i64,
    fingerprint: &str,
    labels: &str,
    annotations: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let alert = StoredAlert::from_row(id, fingerprint, labels, annotations)?;
    writer_state.on_resolved(tx, &alert.as_ref(), now)
}

fn observe_alert(
    tx: &Connection,
    a: &Alert,
    labels: &str,
    annotations: &str,
    now: Timestamp,
) -> Result<(i64, Observation), StoreError> {
    let stored = stored_alert(tx, a.fingerprint.as_str())?;
    let obs = observe(stored.as_ref().map(|(_, state)| state), a);
    let row = AlertRow { a, labels, annotations, source: a.source.to_string(), raw: a.raw.get(), now };
    let id = match (obs, stored) {
        (Observation::Created, _) => row.insert(tx)?,
        (Observation::Stale, Some((id, _))) => {
            tx.prepare_cached("UPDATE alerts SET last_seen = ?2, occurrences = occurrences + 1 WHERE id = ?1")?
                .execute(params![id, ms(now)])?;
            id
        }
        (Observation::Repeated, Some((id, state))) if a.status == AlertStatus::Firing => {
            row.repeat_firing(tx, id, &episode(&state, a, Observation::Repeated, now))?;
            id
        }
        (obs, Some((id, state))) => {
            row.new_episode(tx, id, &episode(&state, a, obs, now))?;
            id
        }
        (_, None) => unreachable!("only Created is decided without a stored alert"),
    };
    Ok((id, obs))
}

/// The stored alert of a fingerprint: its id and state.
fn stored_alert(tx: &Connection, fingerprint: &str) -> Result<Option<(i64, AlertState)>, StoreError> {
    let row: Option<(i64, String, i64, Option<i64>, bool)> = tx
        .prepare_cached("SELECT id, status, starts_at, ends_at, expired FROM alerts WHERE fingerprint = ?1")?
        .query_row([fingerprint], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .optional()?;
    let Some((id, status, starts, ends, expired)) = row else { return Ok(None) };
    let state = AlertState {
        status: AlertStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("alert status {status:?}")))?,
        starts_at: ts(starts)?,
        ends_at: ends.map(ts).transpose()?,
        expired,
    };
    Ok(Some((id, state)))
}

/// An observed alert as its row is written.
struct AlertRow<'a> {
    a: &'a Alert,
    labels: &'a str,
    annotations: &'a str,
    source: String,
    raw: &'a str,
    now: Timestamp,
}

impl AlertRow<'_> {
    fn insert(&self, tx: &Connection) -> Result<i64, StoreError> {
        let a = self.a;
        tx.prepare_cached(
            "INSERT INTO alerts (fingerprint, source, status, labels, annotations, starts_at, ends_at,
                expires_at, generator_url, first_seen, last_seen, occurrences, raw)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, 1, ?11)",
        )?
        .execute(params![
            a.fingerprint.as_str(),
            self.source,
            a.status.as_str(),
            self.labels,
            self.annotations,
            ms(a.starts_at),
            a.ends_at.map(ms),
            a.expires_at.map(ms),
            a.generator_url,
            ms(self.now),
            self.raw,
        ])?;
        Ok(tx.last_insert_rowid())
    }

    /// The hot path: a sender re-sends a firing alert. Only columns that
    /// can change are written, so the status and source indexes are left
    /// alone; the source stays that of the first delivery.
    fn repeat_firing(&self, tx: &Connection, id: i64, e: &Episode) -> Result<(), StoreError> {
        let a = self.a;
        tx.prepare_cached(
            "UPDATE alerts SET labels = ?2, annotations = ?3, starts_at = ?4, expires_at = ?5,
                generator_url = COALESCE(?6, generator_url), last_seen = ?7, occurrences = occurrences + 1, raw = ?8
             WHERE id = ?1",
        )?
        .execute(params![
            id,
            self.labels,
            self.annotations,
            ms(e.starts_at),
            a.expires_at.map(ms),
            a.generator_url,
            ms(self.now),
            self.raw,
        ])?;
        Ok(())
    }

    /// A change of status, or a resolved alert sent again.
    fn new_episode(&self, tx: &Connection, id: i64, e: &Episode) -> Result<(), StoreError> {
        let a = self.a;
        tx.prepare_cached(
            "UPDATE alerts SET source = ?2, status = ?3, labels = ?4, annotations = ?5, starts_at = ?6,
                ends_at = ?7, expires_at = ?8, expired = 0, generator_url = COALESCE(?9, generator_url),
                last_seen = ?10, occurrences = occurrences + 1, raw = ?11,
                acknowledged_at = CASE WHEN ?12 THEN NULL ELSE acknowledged_at END
             WHERE id = ?1",
        )?
        .execute(params![
            id,
            self.source,
            a.status.as_str(),
            self.labels,
            self.annotations,
            ms(e.starts_at),
            e.ends_at.map(ms),
            a.expires_at.map(ms),
            a.generator_url,
            ms(self.now),
            self.raw,
            e.clears_acknowledgement,
        ])?;
        Ok(())
    }
}
