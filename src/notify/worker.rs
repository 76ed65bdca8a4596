//! The outbox worker: claims due rows from the store, feeds each notifier
//! its own queue, and records how each delivery ended.
use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use jiff::{SignedDuration, Timestamp};
use tokio::sync::mpsc;

use super::{Delivery, Notifier, Notifiers, OutboxItem, OutboxSettings, Outcome, deliver};
use crate::store::{DeliveryRecord, Store, StoreError};

/// How long a claimed row is ours; past it, a worker that died mid-delivery
/// leaves it due again (at-least-once). Short, because it is renewed while
/// a delivery is in progress (`RENEW`), and released at shutdown and start.
pub const LEASE: SignedDuration = SignedDuration::from_secs(30);
/// How often the leases of deliveries still in progress are extended.
const RENEW: StdDuration = StdDuration::from_secs(10);
/// How long a shutdown waits for deliveries in progress to be recorded.
const DRAIN: StdDuration = StdDuration::from_secs(5);
/// Rows claimed per round.
const CLAIM: usize = 200;
/// Rows queued for a notifier and not yet delivered past which it counts
/// as busy; while every notifier is busy the worker claims no more. Rows
/// wait as well in the table as in memory, and claiming a storm's
/// thousands at once only leased rows no notifier was ready for (and
/// renewed their leases: the drain after a storm took 47 s instead of 3).
/// One busy notifier holds back no other: rows are claimed while any has
/// room (and then for the busy ones too, as they come due).
const BUSY: usize = 4 * CLAIM;
/// How often the worker looks for rows due by time (retries), besides
/// being woken by every commit that queues one.
const POLL: StdDuration = StdDuration::from_millis(500);

/// When a failed delivery is tried again: exponential from
/// `initial_backoff`, capped at `max_backoff`, with ±25 % jitter so a
/// recovering receiver is not hit by every retry at once.
pub fn backoff(s: &OutboxSettings, attempts: u32, seed: u64) -> SignedDuration {
    let base = s.initial_backoff.as_millis().max(1);
    let max = s.max_backoff.as_millis().max(base);
    let exp = base.saturating_mul(1i64 << attempts.min(30)).min(max);
    // A cheap, well-spread hash; this needs no cryptographic randomness.
    let mut x = seed.wrapping_add(u64::from(attempts)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 31;
    let jitter = (x % 501) as i64 - 250; // -250..=250 thousandths of a half
    let ms = exp + exp * jitter / 1000;
    SignedDuration::from_millis(ms.clamp(1, max + max / 4))
}

/// What a delivery's outcome means for each row it carried.
pub fn records(
    s: &OutboxSettings,
    items: &[OutboxItem],
    outcome: &Outcome,
    digest: Option<&str>,
    now: Timestamp,
) -> Vec<(i64, DeliveryRecord)> {
    items
        .iter()
        .map(|i| {
            let r = match outcome {
                Outcome::Sent => DeliveryRecord::Sent { covered_by: digest.map(str::to_owned) },
                Outcome::Permanent(e) => DeliveryRecord::Dead { error: e.clone() },
                Outcome::Transient(e) => {
                    let next = now.checked_add(backoff(s, i.attempts, i.id as u64)).unwrap_or(Timestamp::MAX);
                    let give_up = i.age_from.checked_add(s.max_age.signed()).unwrap_or(Timestamp::MAX);
                    if next > give_up {
                        DeliveryRecord::Dead {
                            error: format!("gave up after {} attempts over {}: {e}", i.attempts + 1, s.max_age),
                        }
                    } else {
                        DeliveryRecord::Retry { at: next, error: e.clone() }
                    }
                }
            };
            (i.id, r)
        })
        .collect()
}

/// Run until the store closes or `stop` turns true; then wait a little for
/// deliveries in progress, so few are sent twice after a restart.
pub async fn run(
    store: Store,
    notifiers: Notifiers,
    settings: OutboxSettings,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let http = match reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client; notifications are not delivered");
            return;
        }
    };
    let in_flight: Arc<Mutex<InFlight>> = Arc::default();
    let (recorder_tx, records) = mpsc::unbounded_channel();
    tokio::spawn(recorder(store.clone(), records, in_flight.clone()));
    let mut queues: HashMap<String, mpsc::UnboundedSender<OutboxItem>> = HashMap::new();
    for n in &notifiers.list {
        let (tx, rx) = mpsc::unbounded_channel();
        queues.insert(n.name.clone(), tx);
        let recorder = Recorder(recorder_tx.clone());
        tokio::spawn(notifier_task(n.clone(), rx, recorder, http.clone(), settings, in_flight.clone()));
    }
    drop(recorder_tx);
    let wake = store.outbox_wakeup();
    let room = in_flight.lock().expect("in-flight lock").room.clone();
    // On a controlled clock, retries fall due when a test moves time.
    let mut clock_moves = crate::clock::moves();
    let mut renew = tokio::time::interval(RENEW);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = room.notified() => {}
            _ = clock_moves.next() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = renew.tick() => {
                renew_leases(&store, &in_flight).await;
                continue;
            }
            // The only change ever sent is the stop (a dropped sender stops too).
            _ = stop.changed() => break,
        }
        loop {
            let now = crate::clock::now();
            match store.next_notification_due().await {
                Ok(Some(due)) if due <= now => {}
                Ok(_) => break,
                Err(StoreError::Closed) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the outbox failed");
                    break;
                }
            }
            if in_flight.lock().expect("in-flight lock").all_busy(&notifiers) {
                break; // woken when a notifier has room again
            }
            let lease_until = now.checked_add(LEASE).unwrap_or(Timestamp::MAX);
            let items = match store.claim_notifications(now, lease_until, CLAIM).await {
                Ok(items) => items,
                Err(StoreError::Closed) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming notifications failed");
                    break;
                }
            };
            if items.is_empty() {
                break;
            }
            let mut dead = Vec::new();
            for item in items {
                if !in_flight.lock().expect("in-flight lock").ids.insert(item.id) {
                    continue; // still queued from an earlier claim
                }
                match queues.get(&item.notifier) {
                    Some(q) => {
                        let name = item.notifier.clone();
                        *in_flight.lock().expect("in-flight lock").queued.entry(name.clone()).or_default() += 1;
                        if let Err(lost) = q.send(item) {
                            // The notifier's task is gone: due again after a pause, not stuck.
                            let id = lost.0.id;
                            in_flight.lock().expect("in-flight lock").delivered(&name, &[id]);
                            let at = now.checked_add(SignedDuration::from_secs(60)).unwrap_or(Timestamp::MAX);
                            let error = "the notifier's delivery task stopped".to_owned();
                            dead.push((id, DeliveryRecord::Retry { at, error }));
                        }
                    }
                    None => {
                        in_flight.lock().expect("in-flight lock").ids.remove(&item.id);
                        let error = format!("no notifier named {:?} in the config", item.notifier);
                        dead.push((item.id, DeliveryRecord::Dead { error }));
                    }
                }
            }
            if !dead.is_empty() && store.record_deliveries(dead, crate::clock::now()).await.is_err() {
                return;
            }
        }
    }
    drain(&in_flight).await;
}

/// Rows claimed and not yet delivered, and rows delivered whose outcome
/// is not recorded yet (their leases are renewed until it is).
#[derive(Debug, Default)]
struct InFlight {
    ids: HashSet<i64>,
    recording: HashSet<i64>,
    /// Rows queued for each notifier, by name.
    queued: HashMap<String, usize>,
    /// Woken when a busy notifier has room again.
    room: Arc<tokio::sync::Notify>,
}

impl InFlight {
    /// Nothing being delivered, nothing left to record.
    fn is_idle(&self) -> bool {
        self.ids.is_empty() && self.recording.is_empty()
    }

    /// Every notifier has [`BUSY`] rows or more queued.
    fn all_busy(&self, notifiers: &Notifiers) -> bool {
        let busy = |n: &Arc<Notifier>| self.queued.get(&n.name).is_some_and(|q| *q >= BUSY);
        !notifiers.list.is_empty() && notifiers.list.iter().all(busy)
    }

    /// `notifier`'s rows `ids` are out of flight (delivered, or lost).
    fn delivered(&mut self, notifier: &str, ids: &[i64]) {
        for id in ids {
            self.ids.remove(id);
        }
        if let Some(q) = self.queued.get_mut(notifier) {
            let before = *q;
            *q = q.saturating_sub(ids.len());
            if before >= BUSY && *q < BUSY {
                self.room.notify_one();
            }
        }
    }
}

/// Extend the leases of everything claimed and not yet recorded.
async fn renew_leases(store: &Store, in_flight: &Mutex<InFlight>) {
    let ids: Vec<i64> = {
        let f = in_flight.lock().expect("in-flight lock");
        f.ids.iter().chain(&f.recording).copied().collect()
    };
    if ids.is_empty() {
        return;
    }
    let until = crate::clock::now().checked_add(LEASE).unwrap_or(Timestamp::MAX);
    if let Err(e) = store.renew_leases(ids, until).await {
        tracing::warn!(error = %e, "renewing notification leases failed; they may be delivered twice");
    }
}

/// Wait until no delivery is in progress, or `DRAIN` has passed; what is
/// still unfinished then is released by the store as it closes.
async fn drain(in_flight: &Mutex<InFlight>) {
    let deadline = tokio::time::Instant::now() + DRAIN;
    while tokio::time::Instant::now() < deadline {
        if in_flight.lock().expect("in-flight lock").is_idle() {
            return;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
}

/// Where a notifier hands the outcomes of its deliveries.
struct Recorder(mpsc::UnboundedSender<Vec<(i64, DeliveryRecord)>>);

/// Record delivery outcomes as they come, all that are waiting in one
/// write. A notifier goes on to its next delivery without waiting for the
/// commit: under an alert storm each commit waits behind the senders'
/// requests, and waiting for one per delivery held a notifier to a few
/// deliveries a second (examples/outbox_bench.rs). Until its outcome is
/// recorded a row's lease is renewed, so nobody claims it meanwhile.
async fn recorder(
    store: Store,
    mut records: mpsc::UnboundedReceiver<Vec<(i64, DeliveryRecord)>>,
    in_flight: Arc<Mutex<InFlight>>,
) {
    while let Some(first) = records.recv().await {
        let mut recs = first;
        while let Ok(more) = records.try_recv() {
            recs.extend(more);
        }
        let ids: Vec<i64> = recs.iter().map(|(id, _)| *id).collect();
        if let Err(e) = store.record_deliveries(recs, crate::clock::now()).await {
            // No longer renewed, the leases run out and the rows are
            // delivered again: at least once.
            tracing::warn!(error = %e, "recording deliveries failed");
        }
        let mut f = in_flight.lock().expect("in-flight lock");
        for id in ids {
            f.recording.remove(&id);
        }
    }
}

async fn notifier_task(
    n: Arc<Notifier>,
    mut rx: mpsc::UnboundedReceiver<OutboxItem>,
    recorder: Recorder,
    http: reqwest::Client,
    settings: OutboxSettings,
    in_flight: Arc<Mutex<InFlight>>,
) {
    let limiter: Option<Limiter> =
        n.per_minute.and_then(NonZeroU32::new).map(|p| RateLimiter::direct_with_clock(Quota::per_minute(p), PaceClock));
    let mut clock_moves = crate::clock::moves();
    while let Some(first) = rx.recv().await {
        let mut queue = vec![first];
        while let Ok(more) = rx.try_recv() {
            queue.push(more);
        }
        let mut overflow = Vec::new();
        for item in queue {
            // Once one waits, the rest wait too: order is kept.
            let allowed = overflow.is_empty() && limiter.as_ref().is_none_or(|l| l.check().is_ok());
            if allowed {
                send(&n, vec![item], &recorder, &http, &settings, &in_flight).await;
            } else {
                overflow.push(item);
            }
        }
        // Over the limit: wait for the next permit, take everything that
        // arrived meanwhile too, and send it as digests of bounded size.
        while !overflow.is_empty() {
            if let Some(l) = &limiter {
                until_ready(l, &mut clock_moves).await;
            }
            while let Ok(more) = rx.try_recv() {
                overflow.push(more);
            }
            // A digest goes to one recipient: the notifier's own, or one person.
            let person = |i: &OutboxItem| i.payload.get("recipient").and_then(|r| r.get("person")).cloned();
            let first = person(&overflow[0]);
            let (mut digest, rest): (Vec<_>, Vec<_>) = overflow.drain(..).partition(|i| person(i) == first);
            overflow = digest.split_off(digest.len().min(MAX_DIGEST));
            overflow.extend(rest);
            tracing::info!(notifier = %n.name, events = digest.len(), "rate limit reached; sending a digest");
            send(&n, digest, &recorder, &http, &settings, &in_flight).await;
        }
    }
}

/// A notifier's rate limit.
type Limiter = RateLimiter<NotKeyed, InMemoryState, PaceClock, NoOpMiddleware<Nanos>>;

/// The rate limits' clock: monotonic real time, or the controlled clock
/// when the gateway runs on one (`--test-clock`), so that a test moves
/// through a limit's minute instead of waiting it out.
#[derive(Debug, Clone, Copy)]
struct PaceClock;

impl governor::clock::Clock for PaceClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        if crate::clock::is_controlled() {
            let ms = crate::clock::now().as_millisecond().max(0) as u64;
            return Nanos::from(StdDuration::from_millis(ms));
        }
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        Nanos::from(START.get_or_init(std::time::Instant::now).elapsed())
    }
}

/// Wait until the limit grants the next message: its time comes, or the
/// controlled clock moves past it.
async fn until_ready(limiter: &Limiter, clock_moves: &mut crate::clock::Moves) {
    use governor::clock::Clock;
    while let Err(not_until) = limiter.check() {
        tokio::select! {
            _ = tokio::time::sleep(not_until.wait_time_from(PaceClock.now())) => {}
            _ = clock_moves.next() => {}
        }
    }
}

/// Most events one digest carries: a storm becomes several digests rather
/// than one body too large for the receiver.
const MAX_DIGEST: usize = 50;

async fn send(
    n: &Notifier,
    items: Vec<OutboxItem>,
    recorder: &Recorder,
    http: &reqwest::Client,
    settings: &OutboxSettings,
    in_flight: &Mutex<InFlight>,
) {
    let delivery = Delivery { items };
    let outcome = deliver(n, &delivery, http).await;
    let digest = delivery.is_digest().then(|| delivery.idempotency_key());
    // A receiver that refuses a digest (too large, say) may take its events
    // one by one: they are retried, not dead-lettered together.
    let outcome = match outcome {
        Outcome::Permanent(e) if delivery.is_digest() => Outcome::Transient(format!("the digest was refused: {e}")),
        other => other,
    };
    match &outcome {
        Outcome::Sent => {
            tracing::info!(notifier = %n.name, key = %delivery.idempotency_key(), events = delivery.items.len(), "notification sent")
        }
        Outcome::Transient(e) | Outcome::Permanent(e) => {
            tracing::warn!(notifier = %n.name, key = %delivery.idempotency_key(), error = %e, "notification failed")
        }
    }
    let recs = records(settings, &delivery.items, &outcome, digest.as_deref(), crate::clock::now());
    let m = crate::metrics::metrics();
    for (_, r) in &recs {
        let label = match r {
            DeliveryRecord::Sent { .. } => "sent",
            DeliveryRecord::Retry { .. } => "retried",
            DeliveryRecord::Dead { .. } => "dead",
        };
        m.notifications.with_label_values(&[n.name.as_str(), label]).inc();
    }
    // Out of flight before the outcome is recorded: once it is, a retry
    // may be claimed at once, and a claim of a row still in flight is
    // skipped (its lease would then hold the retry back). Until the record
    // lands the row's lease is renewed, so nobody claims it meanwhile.
    {
        let mut f = in_flight.lock().expect("in-flight lock");
        let ids: Vec<i64> = delivery.items.iter().map(|i| i.id).collect();
        f.delivered(&n.name, &ids);
        f.recording.extend(ids);
    }
    if let Err(unsent) = recorder.0.send(recs) {
        // The recorder is gone (shutting down): the leases run out and the
        // rows are delivered again, at least once.
        let mut f = in_flight.lock().expect("in-flight lock");
        for (id, _) in unsent.0 {
            f.recording.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Duration;

    fn settings() -> OutboxSettings {
        OutboxSettings {
            max_age: Duration::from_secs(3600),
            initial_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(600),
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let s = settings();
        let secs = |a: u32, seed: u64| backoff(&s, a, seed).as_secs_f64();
        for seed in 0..50 {
            assert!((7.5..=12.5).contains(&secs(0, seed)), "{}", secs(0, seed));
            assert!((15.0..=25.0).contains(&secs(1, seed)));
            assert!((450.0..=750.0).contains(&secs(20, seed)), "capped near max_backoff");
        }
        let spread: HashSet<i64> = (0..50).map(|seed| backoff(&s, 3, seed).as_millis() as i64).collect();
        assert!(spread.len() > 10, "jitter spreads retries");
    }

    fn item(id: i64, attempts: u32, age_from: Timestamp) -> OutboxItem {
        OutboxItem {
            id,
            event: "incident.triggered".into(),
            incident_id: Some(1),
            problem_id: None,
            notifier: "n".into(),
            idempotency_key: format!("k{id}"),
            payload: serde_json::json!({}),
            attempts,
            age_from,
        }
    }

    #[test]
    fn outcomes_become_records() {
        let s = settings();
        let now: Timestamp = "2026-11-24T10:00:00Z".parse().unwrap();
        let fresh = item(1, 0, now);
        let old = item(2, 9, "2026-11-24T09:00:30Z".parse().unwrap());
        let r = records(&s, &[fresh.clone(), old], &Outcome::Transient("503".into()), None, now);
        assert!(matches!(&r[0].1, DeliveryRecord::Retry { at, .. } if *at > now));
        assert!(matches!(&r[1].1, DeliveryRecord::Dead { error } if error.contains("gave up after 10 attempts")));
        let r = records(&s, std::slice::from_ref(&fresh), &Outcome::Permanent("404".into()), None, now);
        assert_eq!(r[0].1, DeliveryRecord::Dead { error: "404".into() });
        let r = records(&s, &[fresh], &Outcome::Sent, Some("digest-2-1-2"), now);
        assert_eq!(r[0].1, DeliveryRecord::Sent { covered_by: Some("digest-2-1-2".into()) });
    }
}
