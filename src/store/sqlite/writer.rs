//! The writer thread: the one connection of this gateway that writes.
//!
//! Requests queue on a channel; the writer takes every request waiting (up to
//! a bound), applies each inside its own savepoint so one bad request cannot
//! spoil the others, and commits them in one transaction: one fsync for the
//! whole group. Only then does each caller get its answer. What differs
//! between databases (SQLite's checkpoints and size bound; PostgreSQL's
//! lock that orders gateways and the log of what each changed) is behind
//! [`WriteDb`].
use std::sync::Arc;

use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot};

use super::sql;
use super::state::WriterState;
use super::{SharedRules, StoreError, ms};
use crate::engine::plan::Plans;
use crate::model::AlertUpdate;
use crate::model::Fingerprint;
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
    changes_mutes(op) || matches!(op, Op::Ingest { .. } | Op::Merge { .. } | Op::Tick { .. } | Op::PingHeartbeat { .. })
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
        reply: ReplyTo,
    },
    /// Finish what is queued and close; deliveries cut short are due again at `now`.
    Close { now: Timestamp, done: oneshot::Sender<()> },
}

/// An op's result, and with it the op once applied (a large request's
/// parts): the caller's task frees its alerts, not the writer thread every
/// request waits for.
pub(super) type Answered = (Result<Reply, StoreError>, Vec<Op>);

/// Where a caller waits for its op's result.
pub(super) struct ReplyTo(pub oneshot::Sender<Answered>);

impl ReplyTo {
    fn send(self, result: Result<Reply, StoreError>) {
        let _ = self.0.send((result, Vec::new()));
    }

    /// Answer, handing back the applied ops.
    fn send_with(self, result: Result<Reply, StoreError>, spent: Vec<Op>) {
        let _ = self.0.send((result, spent));
    }
}

/// Where the result of an op goes.
enum Answer {
    Caller(ReplyTo),
    /// A part of the large request at the front of the queue.
    Part,
}

/// A large ingest request not yet wholly applied.
struct Partial {
    updates: Vec<AlertUpdate>,
    encoded: Vec<Option<(String, String)>>,
    plans: Plans,
    now: Timestamp,
    sender: Option<String>,
    source: Option<Arc<str>>,
    reply: ReplyTo,
    outcome: IngestOutcome,
    /// The parts applied so far, handed back with the answer.
    spent: Vec<Op>,
}

impl Partial {
    /// The next part's op; the rest stays.
    fn next_part(&mut self) -> Op {
        let n = self.updates.len().min(PART_ALERTS);
        Op::Ingest {
            updates: self.updates.drain(..n).collect(),
            encoded: self.encoded.drain(..n).collect(),
            plans: self.plans.take_front(n),
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
    /// Bumped after each commit that changed rows (the console's live views).
    pub feed: super::ChangeFeed,
}

/// What one committed batch changed of the state writers keep in memory,
/// for the other gateways sharing the database.
#[derive(Debug, Default)]
pub(super) struct Changed {
    pub timers: bool,
    /// Silences, maintenance windows or on-call overrides.
    pub mutes: bool,
    /// Alerts that fired or resolved while inhibit rules are in force.
    pub inhibit: Vec<Fingerprint>,
    /// A notification was queued.
    pub outbox: bool,
    /// The batch's time.
    pub at: Timestamp,
    /// Something a live view shows changed (as far as the ops' answers tell).
    pub shown: bool,
}

impl Changed {
    pub fn is_empty(&self) -> bool {
        !self.timers && !self.mutes && self.inhibit.is_empty()
    }
}

/// The database under the writer: its transactions, and what a database
/// keeps beside the bookkeeping.
pub(super) trait WriteDb {
    fn conn(&self) -> sql::Connection<'_>;
    /// Open a batch's transaction and bring `state` up to what is stored
    /// (other gateways may have written). `ingest_only`: the batch holds
    /// ingests alone, which a shared database may try beside other
    /// gateways' batches (the connection's `resends_only` then tells).
    fn begin(&mut self, state: &mut WriterState, now: Timestamp, ingest_only: bool) -> Result<(), StoreError>;
    fn savepoint(&mut self) -> Result<(), StoreError>;
    fn release(&mut self) -> Result<(), StoreError>;
    /// Undo what was done since the savepoint; an error when the whole
    /// transaction went with it (disk full, a lost connection).
    fn rollback_to(&mut self) -> Result<(), StoreError>;
    fn commit(&mut self, changed: &Changed) -> Result<(), StoreError>;
    fn rollback(&mut self);
    /// Roll back a batch tried beside other gateways' that needs the
    /// write lock alone, before it is applied again at once. What it did
    /// to the state in memory stands: it caught up with what is stored,
    /// and filed alerts sent again as firing, which the next try files
    /// again (or finds otherwise and files anew).
    fn abandon(&mut self) {
        self.rollback();
    }
    /// The writer's state may be wrong after a rolled-back request: read it
    /// again from what is stored (now, or before the next batch).
    fn restore(&mut self, state: &mut WriterState, now: Timestamp);
    /// Whether the last batch changed rows a live view shows.
    fn shown_changed(&self) -> bool;
    /// Whether the database reached its size bound (only what stops
    /// re-sending is then written).
    fn full(&self) -> bool {
        false
    }
    /// Close, handing back this writer's notification leases at `now`.
    fn close(self, now: Option<Timestamp>);
}

pub(super) fn run<D: WriteDb>(
    mut db: D,
    mut writer_state: WriterState,
    mut rx: mpsc::Receiver<Request>,
    shared: Shared,
) {
    let Shared { rules, next_timer, outbox_wakeup, feed } = shared;
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
                    Op::Ingest { updates, encoded, plans, now, sender } if updates.len() > PART_ALERTS => {
                        let (outcome, spent) = (IngestOutcome::default(), Vec::new());
                        partials.push_back(Partial {
                            updates,
                            encoded,
                            plans,
                            now,
                            sender,
                            source,
                            reply,
                            outcome,
                            spent,
                        });
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
        let mut part_result = None;
        if db.full() {
            part_result = refuse_growth(&mut batch);
        }
        if !batch.is_empty() {
            // Reloaded rules take effect at the time of the batch that first sees them.
            let current = rules.read().expect("rules lock").clone();
            // A batch without a time (lease renewals only) leaves them for the next.
            let new_rules =
                (!Arc::ptr_eq(&current, &writer_state.rules) && batch_time(&batch).is_some()).then_some(current);
            let result = commit_batch(&mut db, &mut writer_state, &batch, new_rules);
            // Live views learn of a commit before its callers are answered,
            // so a page read after a 2xx shows the change. A sender's
            // re-sends of alerts already in open incidents, or a tick that
            // found nothing due, change nothing a view shows and wake no view.
            if result.committed && db.shown_changed() {
                feed.bump();
            }
            part_result = part_result.or(answer(&mut batch, result));
        }
        if let (Some(mut p), Some((result, spent))) = (part, part_result) {
            p.spent.push(spent);
            match result {
                Ok(Reply::Ingest(o)) => {
                    p.outcome.add(&o);
                    if p.updates.is_empty() {
                        p.reply.send_with(Ok(Reply::Ingest(p.outcome)), p.spent);
                    } else {
                        partials.push_back(p);
                    }
                }
                Ok(_) => unreachable!("an ingest part answers with an outcome"),
                Err(e) => p.reply.send_with(Err(e), p.spent),
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
            reply.send(Err(StoreError::Closed));
        }
    }
    // Deliveries cut short by the shutdown are due again at once for the
    // next run (or another gateway), not after their lease.
    db.close(close.as_ref().map(|(now, _)| *now));
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
fn refuse_growth(batch: &mut Vec<Pending>) -> Option<(Result<Reply, StoreError>, Op)> {
    let full = || StoreError::DiskFull("the database and its WAL reached store.max_size".into());
    let mut kept = Vec::with_capacity(batch.len());
    let mut part = None;
    for (op, source, to) in batch.drain(..) {
        match (&op, to) {
            (Op::ClaimNotifications { .. } | Op::RecordDeliveries { .. } | Op::RenewLeases { .. }, to) => {
                kept.push((op, source, to))
            }
            (_, Answer::Caller(reply)) => reply.send_with(Err(full()), vec![op]),
            (_, Answer::Part) => part = Some((Err(full()), op)),
        }
    }
    *batch = kept;
    part
}

/// Whether an op changes the silences, maintenance windows or overrides
/// every writer keeps in memory.
fn changes_mutes(op: &Op) -> bool {
    matches!(
        op,
        Op::CreateSilence { .. }
            | Op::UpdateSilence { .. }
            | Op::ExpireSilence { .. }
            | Op::RecordChange { .. }
            | Op::CreateOverride { .. }
            | Op::DeleteOverride { .. }
    )
}

/// Whether an applied op changed what a live view shows: a sender's
/// re-sends, a tick that found nothing due and the outbox's bookkeeping
/// do not (as SQLite's update hook tells of the tables they write).
fn shows(op: &Op, reply: &Reply, counted_facts: bool) -> bool {
    match (op, reply) {
        _ if counted_facts => true,
        (Op::Ingest { .. }, Reply::Ingest(o)) => o.created + o.resolved + o.refired > 0,
        (Op::Tick { .. }, Reply::Tick(swept)) => swept.expired > 0,
        (
            Op::ClaimNotifications { .. }
            | Op::RenewLeases { .. }
            | Op::RecordDeliveries { .. }
            | Op::PingHeartbeat { .. }
            | Op::Audit { .. },
            _,
        ) => false,
        _ => true,
    }
}

/// A batch applied: each request's result, and whether it was committed.
struct Outcome {
    results: Vec<Result<Reply, StoreError>>,
    committed: bool,
}

/// Apply a batch (and rules reloaded since the last) in one transaction
/// and commit it. A batch of ingests alone may first be tried beside other
/// gateways' batches (see `shared.rs`); when it meets more than alerts
/// sent again, it is applied again holding the write lock alone.
fn commit_batch<D: WriteDb>(
    db: &mut D,
    writer_state: &mut WriterState,
    batch: &[Pending],
    new_rules: Option<Arc<crate::rules::RuleSet>>,
) -> Outcome {
    let started = std::time::Instant::now();
    let ingest_only = new_rules.is_none() && batch.iter().all(|(op, ..)| matches!(op, Op::Ingest { .. }));
    let mut attempt = Attempt::default();
    let mut outcome = apply_batch(db, writer_state, batch, new_rules.clone(), ingest_only, &mut attempt);
    if let Err(StoreError::NeedsWriteLock) = outcome {
        db.abandon();
        crate::metrics::metrics().batches_beside_others.with_label_values(&["retried_alone"]).inc();
        attempt = Attempt::default();
        outcome = apply_batch(db, writer_state, batch, new_rules, false, &mut attempt);
    }
    let Attempt { results, facts, state_touched_by_failure, rules_before } = attempt;
    if outcome.is_err() {
        db.rollback();
        if let Some(rules) = rules_before {
            writer_state.rules = rules;
        }
    }
    if state_touched_by_failure || outcome.is_err() {
        // A rolled-back request may have touched the in-memory state.
        let now = batch_time(batch).unwrap_or(writer_state.loaded_at);
        db.restore(writer_state, now);
    }
    let m = crate::metrics::metrics();
    m.commit_duration.observe(started.elapsed().as_secs_f64());
    m.commit_batch_size.observe(batch.len() as f64);
    match outcome {
        Ok(()) => {
            for fact in &facts {
                fact.count();
            }
            Outcome { results, committed: true }
        }
        Err(e) => {
            m.commits_failed.inc();
            tracing::error!(error = %e, requests = batch.len(), "commit failed; nothing of this batch is stored");
            Outcome { results: batch.iter().map(|_| Err(e.duplicate())).collect(), committed: false }
        }
    }
}

/// What applying a batch gathered besides its outcome.
#[derive(Default)]
struct Attempt {
    results: Vec<Result<Reply, StoreError>>,
    facts: Vec<crate::metrics::Fact>,
    state_touched_by_failure: bool,
    /// The rules before the batch swapped in reloaded ones: a batch that
    /// fails has them swapped in again by the next.
    rules_before: Option<Arc<crate::rules::RuleSet>>,
}

/// Apply a batch in one transaction and commit it; `ingest_only` lets the
/// database try it beside other gateways' batches, which ends in
/// [`StoreError::NeedsWriteLock`] at anything but alerts sent again (or
/// any error: the batch is then applied again alone, where each request's
/// savepoint keeps one request's failure from the others).
fn apply_batch<D: WriteDb>(
    db: &mut D,
    writer_state: &mut WriterState,
    batch: &[Pending],
    new_rules: Option<Arc<crate::rules::RuleSet>>,
    ingest_only: bool,
    attempt: &mut Attempt,
) -> Result<(), StoreError> {
    let now = batch_time(batch).unwrap_or(writer_state.loaded_at);
    let Attempt { results, facts, state_touched_by_failure, rules_before } = attempt;
    results.reserve(batch.len());
    let mut changed = Changed::default();
    writer_state.inhibit_touched.clear();
    writer_state.timers.take_changed();
    db.begin(writer_state, now, ingest_only)?;
    let beside_others = db.conn().resends_only();
    if let Some(rules) = new_rules {
        *rules_before = Some(writer_state.rules.clone());
        db.savepoint()?;
        match writer_state.set_rules(&db.conn(), rules, now) {
            Ok(()) => {
                db.release()?;
                writer_state.commit_staged();
                facts.append(&mut writer_state.facts);
            }
            Err(e) => {
                tracing::error!(error = %e, "applying reloaded rules failed");
                writer_state.discard_staged();
                writer_state.facts.clear();
                *state_touched_by_failure = true;
                db.rollback_to()?;
            }
        }
    }
    if beside_others {
        // Whatever fails here (a row another batch holds past the wait,
        // a lost connection) is met again alone, request by request.
        let ops: Vec<&Op> = batch.iter().map(|(op, ..)| op).collect();
        let outcomes = super::apply::ingest_resends(&db.conn(), writer_state, &ops);
        for (op, outcome) in ops.iter().zip(outcomes.map_err(|_| StoreError::NeedsWriteLock)?) {
            let reply = Reply::Ingest(outcome);
            changed.shown |= shows(op, &reply, !writer_state.facts.is_empty());
            results.push(Ok(reply));
        }
        facts.append(&mut writer_state.facts);
    } else {
        for (op, source, _) in batch.iter() {
            db.savepoint()?;
            match super::apply::apply_audited(&db.conn(), writer_state, op, source.as_deref()) {
                Ok(reply) => {
                    db.release()?;
                    writer_state.commit_staged();
                    changed.shown |= shows(op, &reply, !writer_state.facts.is_empty());
                    facts.append(&mut writer_state.facts);
                    changed.mutes |= changes_mutes(op);
                    results.push(Ok(reply));
                }
                Err(e) => {
                    writer_state.discard_staged();
                    writer_state.facts.clear();
                    *state_touched_by_failure |= touches_writer_state(op);
                    // Some errors (disk full, I/O) roll back the whole
                    // transaction; a later savepoint would then commit on
                    // its own. The whole batch fails instead.
                    if db.rollback_to().is_err() {
                        return Err(e);
                    }
                    results.push(Err(e));
                }
            }
        }
    }
    changed.timers = writer_state.timers.take_changed();
    changed.inhibit = std::mem::take(&mut writer_state.inhibit_touched);
    changed.shown |= changed.timers || changed.mutes || !changed.inhibit.is_empty();
    changed.outbox = writer_state.outbox_dirty.get();
    changed.at = now;
    db.commit(&changed)
}

/// Answer each caller of a batch; the result of the batch's
/// [`Answer::Part`], if it has one, is returned instead.
fn answer(batch: &mut Vec<Pending>, outcome: Outcome) -> Option<(Result<Reply, StoreError>, Op)> {
    let mut part = None;
    for ((op, _, to), result) in batch.drain(..).zip(outcome.results) {
        match to {
            Answer::Caller(reply) => reply.send_with(result, vec![op]),
            Answer::Part => part = Some((result, op)),
        }
    }
    part
}
