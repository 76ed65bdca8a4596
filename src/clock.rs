//! The one place that reads the wall clock (`clippy.toml` disallows it
//! elsewhere).
//!
//! Everything else takes `now` as an argument, so decisions can be tested at
//! any instant without sleeping. Domain time (SLA clocks, escalation, alert
//! expiry, pending groups, silences, maintenance windows, outbox backoff and
//! leases, console sessions) comes from [`now`]; real time (timeouts,
//! durations in metrics, polling intervals) stays on `std`/`tokio` time.
//! Notifier rate limits pace by monotonic real time, or by this clock when
//! it is controlled (`notify::worker`).
//!
//! A gateway started with the hidden flag `serve --test-clock START` runs on
//! a controlled clock instead: time stands still at START and moves only when
//! a test says so (`POST /-/clock`), never backwards. See the README's
//! "Development" section.
use std::sync::OnceLock;

use jiff::Timestamp;
use tokio::sync::watch;

/// The controlled clock, when the process runs on one. Set once, at start.
static CONTROLLED: OnceLock<Controlled> = OnceLock::new();

/// The current time, truncated to milliseconds (the store's resolution), so
/// a value read back from the store compares equal to the one written.
pub fn now() -> Timestamp {
    match CONTROLLED.get() {
        Some(c) => c.now(),
        None => wall(),
    }
}

#[allow(clippy::disallowed_methods)] // the one read of the wall clock
fn wall() -> Timestamp {
    truncated(Timestamp::now())
}

fn truncated(t: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(t.as_millisecond()).expect("a truncated instant is in range")
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    #[error("the clock never goes backwards: it is {now}, {to} is earlier")]
    Backwards { now: Timestamp, to: Timestamp },
    #[error("the gateway runs on the wall clock (start it with --test-clock to control time)")]
    NotControlled,
    #[error("the clock is already controlled")]
    AlreadyControlled,
}

/// Put this process on a controlled clock standing at `start`.
pub fn control(start: Timestamp) -> Result<(), ClockError> {
    CONTROLLED.set(Controlled::new(start)).map_err(|_| ClockError::AlreadyControlled)
}

/// Whether this process runs on a controlled clock.
pub fn is_controlled() -> bool {
    CONTROLLED.get().is_some()
}

/// Move the controlled clock to `to` (truncated to the millisecond); the
/// instant it stands at afterwards.
pub fn set(to: Timestamp) -> Result<Timestamp, ClockError> {
    CONTROLLED.get().ok_or(ClockError::NotControlled)?.set(to)
}

/// Wakes its holder each time the controlled clock moves, so work that waits
/// for domain time (outbox retries) need not wait for its next poll.
pub struct Moves(Option<watch::Receiver<Timestamp>>);

/// The moves of the controlled clock from now on; never any on the wall clock.
pub fn moves() -> Moves {
    Moves(CONTROLLED.get().map(|c| c.time.subscribe()))
}

impl Moves {
    /// Resolves at the next move of the clock (at once if it moved since
    /// the last call); on the wall clock, never.
    pub async fn next(&mut self) {
        let moved = match &mut self.0 {
            Some(rx) => rx.changed().await.is_ok(),
            None => false,
        };
        if !moved {
            std::future::pending::<()>().await;
        }
    }
}

/// A clock that stands still until set, and only moves forward.
struct Controlled {
    time: watch::Sender<Timestamp>,
}

impl Controlled {
    fn new(start: Timestamp) -> Controlled {
        Controlled { time: watch::Sender::new(truncated(start)) }
    }

    fn now(&self) -> Timestamp {
        *self.time.borrow()
    }

    fn set(&self, to: Timestamp) -> Result<Timestamp, ClockError> {
        let to = truncated(to);
        let mut result = Ok(to);
        self.time.send_if_modified(|now| {
            if to < *now {
                result = Err(ClockError::Backwards { now: *now, to });
            }
            let moved = to > *now;
            if moved {
                *now = to;
            }
            moved
        });
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_controlled_clock_stands_still_and_moves_only_forward() {
        let c = Controlled::new(at("2026-03-02T09:00:00.123456Z"));
        assert_eq!(c.now(), at("2026-03-02T09:00:00.123Z"), "milliseconds, as the store keeps them");
        assert_eq!(c.now(), c.now());
        assert_eq!(c.set(at("2026-03-02T09:07:30Z")), Ok(at("2026-03-02T09:07:30Z")));
        assert_eq!(c.now(), at("2026-03-02T09:07:30Z"));
        assert_eq!(c.set(at("2026-03-02T09:07:30Z")), Ok(at("2026-03-02T09:07:30Z")), "standing still is fine");
        assert_eq!(
            c.set(at("2026-03-02T09:00:00Z")),
            Err(ClockError::Backwards { now: at("2026-03-02T09:07:30Z"), to: at("2026-03-02T09:00:00Z") })
        );
        assert_eq!(c.now(), at("2026-03-02T09:07:30Z"), "a refused move changes nothing");
    }

    #[tokio::test]
    async fn a_move_wakes_whoever_waits_for_one() {
        let c = Controlled::new(at("2026-03-02T09:00:00Z"));
        let mut moves = Moves(Some(c.time.subscribe()));
        c.set(at("2026-03-02T09:00:00Z")).unwrap();
        let waited = tokio::time::timeout(std::time::Duration::from_millis(20), moves.next()).await;
        assert!(waited.is_err(), "no move, no wake-up");
        c.set(at("2026-03-02T09:15:00Z")).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), moves.next()).await.expect("woken by the move");
    }

    #[tokio::test]
    async fn the_wall_clock_never_wakes_anyone() {
        let mut moves = Moves(None);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(20), moves.next()).await;
        assert!(waited.is_err());
    }
}
