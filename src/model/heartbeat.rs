//! Heartbeats: an expected ping (an HTTP call, or an alert such as the
//! always-firing `Watchdog`) whose silence means the monitoring itself has
//! stopped. The state of one heartbeat is a pure function of its last ping,
//! its timing and now.
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::Duration;

/// Where a heartbeat stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HeartbeatState {
    /// No ping yet: nothing is expected of a heartbeat before its first.
    Never,
    /// Pinged within the interval.
    Up,
    /// Past the interval, within the grace period.
    Late,
    /// Silent past interval and grace: its incident opens.
    Down,
}

impl HeartbeatState {
    pub const ALL: [HeartbeatState; 4] =
        [HeartbeatState::Never, HeartbeatState::Up, HeartbeatState::Late, HeartbeatState::Down];

    pub fn as_str(self) -> &'static str {
        match self {
            HeartbeatState::Never => "never",
            HeartbeatState::Up => "up",
            HeartbeatState::Late => "late",
            HeartbeatState::Down => "down",
        }
    }
}

impl fmt::Display for HeartbeatState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How often a heartbeat is expected, and how much later it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatTiming {
    pub interval: Duration,
    pub grace: Duration,
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d.signed()).unwrap_or(Timestamp::MAX)
}

impl HeartbeatTiming {
    /// When a heartbeat last pinged at `last_ping` is late: the interval is
    /// over, so a ping exactly `interval` after the last is still on time.
    pub fn late_at(self, last_ping: Timestamp) -> Timestamp {
        plus(last_ping, self.interval)
    }

    /// When it is down and its incident opens: `interval + grace` after the
    /// last ping. Half-open like every deadline here: down from this
    /// instant on, so a timer set for it finds it down.
    pub fn deadline(self, last_ping: Timestamp) -> Timestamp {
        plus(self.late_at(last_ping), self.grace)
    }

    /// The state at `now`. A ping stamped after `now` (a sender's clock
    /// ahead of ours) counts as just received.
    pub fn state(self, last_ping: Option<Timestamp>, now: Timestamp) -> HeartbeatState {
        let Some(last) = last_ping else { return HeartbeatState::Never };
        if now >= self.deadline(last) {
            HeartbeatState::Down
        } else if now >= self.late_at(last) {
            HeartbeatState::Late
        } else {
            HeartbeatState::Up
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_over_time() {
        let t0: Timestamp = "2026-06-01T12:00:00Z".parse().unwrap();
        let at = |s: i64| t0.checked_add(jiff::SignedDuration::from_secs(s)).unwrap();
        let minute_and_two = HeartbeatTiming { interval: Duration::from_secs(60), grace: Duration::from_secs(120) };
        let no_grace = HeartbeatTiming { interval: Duration::from_secs(1), grace: Duration::ZERO };
        let rows: &[(HeartbeatTiming, Option<i64>, i64, HeartbeatState)] = &[
            (minute_and_two, None, 0, HeartbeatState::Never),
            (minute_and_two, None, 1_000_000, HeartbeatState::Never),
            (minute_and_two, Some(0), 0, HeartbeatState::Up),
            (minute_and_two, Some(0), 59, HeartbeatState::Up),
            (minute_and_two, Some(0), 60, HeartbeatState::Late),
            (minute_and_two, Some(0), 179, HeartbeatState::Late),
            (minute_and_two, Some(0), 180, HeartbeatState::Down),
            (minute_and_two, Some(0), 86_400, HeartbeatState::Down),
            (minute_and_two, Some(30), 0, HeartbeatState::Up),
            (no_grace, Some(0), 0, HeartbeatState::Up),
            (no_grace, Some(0), 1, HeartbeatState::Down),
        ];
        for (timing, last, now, want) in rows {
            assert_eq!(timing.state(last.map(at), at(*now)), *want, "{timing:?} last {last:?} now +{now}s");
        }
        assert_eq!(minute_and_two.late_at(t0), at(60));
        assert_eq!(minute_and_two.deadline(t0), at(180));
        assert_eq!(minute_and_two.deadline(Timestamp::MAX), Timestamp::MAX);
        assert_eq!(HeartbeatState::Late.to_string(), "late");
    }
}
