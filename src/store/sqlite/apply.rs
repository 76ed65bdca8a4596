//! Applying one op inside the writer's transaction: the audit record
//! around a person's mutation, and the ingest of alerts (observe, expire,
//! a sender's acknowledge and resolve), on the bookkeeping connection.
use std::borrow::Cow;

use jiff::Timestamp;

use super::bulk::{Bulk, Item};
use super::sql::{Connection, OptionalExtension, params};
use super::state::{AlertRef, StoredAlert, WriterState, alert_state};
use super::{StoreError, ms, ts};
use super::{expiry, outbox};
use crate::engine::AlertRouting;
use crate::engine::plan::{LabelPlan, Plans};
use crate::model::alert::{
    Episode, ExpiryCheck, acknowledged_by_sender, check_expiry, episode, expired, expiry_check_by, observe,
    resolved_by_sender,
};
use crate::model::{Alert, AlertState, AlertStatus, AlertUpdate, Observation};
use crate::store::IngestOutcome;
use crate::store::ops::{Op, Reply, Swept};

/// Apply an op; a person's mutation is written to the audit log with its
/// target's state before and after, in the same savepoint.
pub(super) fn apply_audited(
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
        Op::Ingest { updates, encoded, plans, now, sender } => {
            Ok(Reply::Ingest(ingest(tx, writer_state, updates, encoded, plans, *now, sender.as_deref())?))
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
            Ok(Reply::Claimed(outbox::claim(tx, *now, *lease_until, *limit, writer_state.lease_owner.as_deref())?))
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

/// A batch of alert updates from one sender; the firing alerts among them
/// ping the heartbeats they match, in the same transaction. `plans` made
/// with other rules than the writer's are made again here.
pub(super) fn ingest(
    tx: &Connection,
    writer_state: &mut WriterState,
    updates: &[AlertUpdate],
    encoded: &[Option<(String, String)>],
    plans: &Plans,
    now: Timestamp,
    sender: Option<&str>,
) -> Result<IngestOutcome, StoreError> {
    let mut outcome = IngestOutcome::default();
    let rules = writer_state.rules.clone();
    let plans = writer_plans(&rules, updates, plans);
    let items: Vec<Item<'_>> = items(updates, encoded, &plans).collect();
    let mut pinged = std::collections::BTreeMap::new();
    let mut bulk = Bulk::new(tx);
    for (i, &Item { update: u, encoded: enc, plan }) in items.iter().enumerate() {
        for name in plan.map(|p| p.pings.as_slice()).unwrap_or_default() {
            pinged.extend(rules.heartbeats.get_key_value(name));
        }
        if let Some(obs) = bulk.take(tx, writer_state, &items[i..], now)? {
            outcome.count(obs);
            continue;
        }
        bulk.give_way(tx, now)?;
        match u {
            AlertUpdate::Observe(alert) => {
                let (labels, annotations) = enc.map(|(l, a)| (l.as_str(), a.as_str())).unwrap_or_default();
                let (id, obs) = observe_alert(tx, alert, labels, annotations, now)?;
                outcome.count(obs);
                let a = AlertRef {
                    id,
                    fingerprint: &alert.fingerprint,
                    labels: &alert.labels,
                    annotations: &alert.annotations,
                    plan,
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
    bulk.finish(tx, now)?;
    writer_state.ping_heartbeats(tx, pinged.into_values(), now)?;
    Ok(outcome)
}

/// The ingests of a batch tried beside other gateways' batches, as one:
/// every alert must be one sent again that stays in the incidents that
/// hold it (see `shared.rs`), read for the whole batch at once and written
/// at once. Anything else (a new alert, one that resolved, one that pings
/// a heartbeat) is [`StoreError::NeedsWriteLock`].
pub(super) fn ingest_resends(
    tx: &Connection,
    writer_state: &mut WriterState,
    ops: &[&Op],
) -> Result<Vec<IngestOutcome>, StoreError> {
    let rules = writer_state.rules.clone();
    let mut requests = Vec::with_capacity(ops.len());
    for op in ops {
        let Op::Ingest { updates, encoded, plans, now, .. } = op else { return Err(StoreError::NeedsWriteLock) };
        requests.push((updates, encoded, writer_plans(&rules, updates, plans), *now));
    }
    let mut all = Vec::new();
    let mut ends = Vec::with_capacity(requests.len());
    for (updates, encoded, plans, now) in &requests {
        all.extend(items(updates, encoded, plans));
        ends.push((all.len(), *now));
    }
    let mut bulk = Bulk::new(tx);
    let mut outcomes = Vec::with_capacity(requests.len());
    let mut start = 0;
    for (end, now) in ends {
        let mut outcome = IngestOutcome::default();
        for i in start..end {
            if all[i].plan.is_some_and(|p| !p.pings.is_empty()) {
                return Err(StoreError::NeedsWriteLock);
            }
            let obs = bulk.take(tx, writer_state, &all[i..], now)?.ok_or(StoreError::NeedsWriteLock)?;
            outcome.count(obs);
        }
        outcomes.push(outcome);
        start = end;
    }
    let last = requests.last().map_or(writer_state.loaded_at, |r| r.3);
    bulk.finish(tx, last)?;
    Ok(outcomes)
}

/// Each observed alert's plan under the writer's rules: the one it came
/// with, or one made again (the rules were reloaded since).
fn writer_plans<'p>(
    rules: &std::sync::Arc<crate::rules::RuleSet>,
    updates: &'p [AlertUpdate],
    plans: &'p Plans,
) -> Vec<Option<Cow<'p, LabelPlan>>> {
    updates
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let alert = u.observed()?;
            Some(match plans.get(rules, i) {
                Some(plan) => Cow::Borrowed(plan),
                None => Cow::Owned(LabelPlan::of_alert(rules, alert)),
            })
        })
        .collect()
}

fn items<'b>(
    updates: &'b [AlertUpdate],
    encoded: &'b [Option<(String, String)>],
    plans: &'b [Option<Cow<'b, LabelPlan>>],
) -> impl Iterator<Item = Item<'b>> {
    updates.iter().zip(encoded).zip(plans).map(|((update, encoded), plan)| Item {
        update,
        encoded: encoded.as_ref(),
        plan: plan.as_deref(),
    })
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
    let Some((obs, episode)) = resolved_by_sender(stored.as_ref().map(|s| &s.state), now) else {
        return Ok(None);
    };
    let id = stored.expect("a decision about a stored alert").id;
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

/// The expiry checks due, earliest first, with what the sweep decides by:
/// at most [`crate::store::EXPIRED_PER_TICK`] (a literal limit: a bound one
/// makes SQLite prepare the statement again on every run).
pub(super) static DUE_EXPIRIES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT a.id, a.fingerprint, a.status, a.starts_at, a.expires_at
         FROM expiry_checks c JOIN alerts a ON a.id = c.alert_id
         WHERE c.check_at <= ?1 ORDER BY c.check_at LIMIT {}",
        crate::store::EXPIRED_PER_TICK
    )
});

/// Firing alerts past their `expires_at` (`endsAt`, or `resolve_timeout`
/// without a re-send) resolve, a round's worth of due checks at most; a
/// check whose alert was re-sent since moves to its new expiry.
pub(super) fn expire_alerts(
    tx: &Connection,
    writer_state: &mut WriterState,
    now: Timestamp,
) -> Result<Swept, StoreError> {
    let due: Vec<(i64, String, String, i64, Option<i64>)> = tx
        .prepare_cached(&DUE_EXPIRIES)?
        .query_map(params![ms(now)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
        .collect::<Result<_, _>>()?;
    let mut swept = Swept { expired: 0, more_due: due.len() >= crate::store::EXPIRED_PER_TICK };
    for (id, fp, status, starts_at, expires_at) in &due {
        let stored = alert_state(status, *starts_at, None, false)?;
        match check_expiry(stored.status, expires_at.map(ts).transpose()?, now) {
            ExpiryCheck::Expire(at) => {
                let e = expired(&stored, at);
                let (labels, annotations): (String, String) = tx
                    .prepare_cached(
                        "UPDATE alerts SET status = ?2, ends_at = ?3, expired = 1, expires_at = NULL WHERE id = ?1
                         RETURNING labels, annotations",
                    )?
                    .query_row(params![id, AlertStatus::Resolved.as_str(), e.ends_at.map(ms)], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?;
                expiry::drop_check(tx, *id)?;
                resolve_stored(tx, writer_state, *id, fp, &labels, &annotations, now)?;
                swept.expired += 1;
            }
            ExpiryCheck::Later(at) => expiry::check_later(tx, *id, at)?,
            ExpiryCheck::Drop => expiry::drop_check(tx, *id)?,
        }
    }
    Ok(swept)
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
    let obs = observe(stored.as_ref().map(|s| &s.state), a);
    let row = AlertRow { a, labels, annotations, source: a.source.to_string(), raw: a.raw.get(), now };
    let id = match (obs, &stored) {
        (Observation::Created, _) => row.insert(tx)?,
        (Observation::Stale, Some(s)) => {
            tx.prepare_cached("UPDATE alerts SET last_seen = ?2, occurrences = occurrences + 1 WHERE id = ?1")?
                .execute(params![s.id, ms(now)])?;
            return Ok((s.id, obs));
        }
        (Observation::Repeated, Some(s)) if a.status == AlertStatus::Firing => {
            row.repeat_firing(tx, s.id, &episode(&s.state, a, Observation::Repeated, now))?;
            s.id
        }
        (obs, Some(s)) => {
            row.new_episode(tx, s.id, &episode(&s.state, a, obs, now))?;
            s.id
        }
        (_, None) => unreachable!("only Created is decided without a stored alert"),
    };
    if let Some(at) = expiry_check_by(stored.and_then(|s| s.expires_at), a.expires_at) {
        expiry::check_by(tx, &[(id, at)])?;
    }
    Ok((id, obs))
}

/// A stored alert, as the decisions about an observation of it read it.
struct Stored {
    id: i64,
    state: AlertState,
    expires_at: Option<Timestamp>,
}

/// `stored_alert`'s row: id, status, starts_at, ends_at, expired, expires_at.
type StoredRow = (i64, String, i64, Option<i64>, bool, Option<i64>);

/// The stored alert of a fingerprint.
fn stored_alert(tx: &Connection, fingerprint: &str) -> Result<Option<Stored>, StoreError> {
    let row: Option<StoredRow> = tx
        .prepare_cached(
            "SELECT id, status, starts_at, ends_at, expired, expires_at FROM alerts WHERE fingerprint = ?1",
        )?
        .query_row([fingerprint], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        .optional()?;
    let Some((id, status, starts, ends, expired, expires_at)) = row else { return Ok(None) };
    let state = alert_state(&status, starts, ends, expired)?;
    Ok(Some(Stored { id, state, expires_at: expires_at.map(ts).transpose()? }))
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
        Ok(tx.insert(
            "INSERT INTO alerts (fingerprint, source, status, labels, annotations, starts_at, ends_at,
                expires_at, generator_url, first_seen, last_seen, occurrences, raw)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, 1, ?11)",
            params![
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
            ],
        )?)
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
