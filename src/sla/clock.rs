//! SLA clocks: how much of a target an incident has used, in the working
//! time of a calendar, and which milestones (warnings, the breach) it has
//! passed.
//!
//! A clock keeps the working time it has used up to `running_since` (or in
//! all, when it does not run) rather than a start instant: pauses and
//! retargets then need no history, and a restart continues from the stored
//! row. Every operation first records the milestones passed up to `now`, at
//! the instant each was passed, so a deadline that went by while the gateway
//! was down is recorded at the deadline, once.
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::calendar::Calendar;
use crate::model::incident::IncidentState;

/// Which promise a clock measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockKind {
    /// Time to acknowledge.
    Respond,
    /// Time to resolve.
    Resolve,
}

impl ClockKind {
    pub const ALL: [ClockKind; 2] = [ClockKind::Respond, ClockKind::Resolve];

    pub fn as_str(self) -> &'static str {
        match self {
            ClockKind::Respond => "respond",
            ClockKind::Resolve => "resolve",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "respond" => Some(ClockKind::Respond),
            "resolve" => Some(ClockKind::Resolve),
            _ => None,
        }
    }

    /// Incident states in which the promise is kept: the clock stops.
    fn stops_in(self, state: IncidentState) -> bool {
        use IncidentState as S;
        match self {
            // Resolving without acknowledging still answers the incident.
            ClockKind::Respond => matches!(state, S::Acknowledged | S::Resolved | S::Closed),
            ClockKind::Resolve => matches!(state, S::Resolved | S::Closed),
        }
    }
}

impl std::fmt::Display for ClockKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClockState {
    Running,
    Paused,
    Met,
    Breached,
}

impl ClockState {
    pub fn as_str(self) -> &'static str {
        match self {
            ClockState::Running => "running",
            ClockState::Paused => "paused",
            ClockState::Met => "met",
            ClockState::Breached => "breached",
        }
    }
}

/// A point on a clock that is announced when passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "milestone", content = "percent")]
pub enum Milestone {
    /// This percentage of the target is used.
    Warning(u8),
    Breach,
}

/// A warning that was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Warned {
    pub percent: u8,
    pub at: Timestamp,
}

/// One milestone passed, at the instant it was passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passed {
    pub milestone: Milestone,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaClock {
    pub kind: ClockKind,
    pub policy: String,
    pub calendar: String,
    /// Working milliseconds allowed.
    pub target_ms: i64,
    /// Warning thresholds in percent of the target, ascending, each below 100.
    pub warn_at: Vec<u8>,
    /// Working milliseconds used up to `running_since`, or in all when the
    /// clock does not run.
    pub used_ms: i64,
    pub running_since: Option<Timestamp>,
    pub stopped_at: Option<Timestamp>,
    pub warned: Vec<Warned>,
    pub breached_at: Option<Timestamp>,
}

impl SlaClock {
    /// A clock started at `now`, running unless the incident's state pauses it.
    pub fn start(
        kind: ClockKind,
        policy: &str,
        calendar: &str,
        target_ms: i64,
        warn_at: &[u8],
        running: bool,
        now: Timestamp,
    ) -> SlaClock {
        SlaClock {
            kind,
            policy: policy.to_owned(),
            calendar: calendar.to_owned(),
            target_ms,
            warn_at: warn_at.to_vec(),
            used_ms: 0,
            running_since: running.then_some(now),
            stopped_at: None,
            warned: Vec::new(),
            breached_at: None,
        }
    }

    pub fn state(&self) -> ClockState {
        if self.breached_at.is_some() {
            ClockState::Breached
        } else if self.stopped_at.is_some() {
            ClockState::Met
        } else if self.running_since.is_some() {
            ClockState::Running
        } else {
            ClockState::Paused
        }
    }

    /// Working time used by `now`.
    pub fn elapsed_ms(&self, cal: &Calendar, now: Timestamp) -> i64 {
        self.used_ms + self.running_since.map_or(0, |since| cal.working_ms(since, now))
    }

    /// Working time left by `now`; negative once breached.
    pub fn remaining_ms(&self, cal: &Calendar, now: Timestamp) -> i64 {
        self.target_ms - self.elapsed_ms(cal, now)
    }

    /// The next milestone not yet passed and the working time at which it is.
    fn next_milestone(&self) -> Option<(Milestone, i64)> {
        if self.breached_at.is_some() {
            return None;
        }
        let warning = self
            .warn_at
            .iter()
            .find(|p| !self.warned.iter().any(|w| w.percent == **p))
            .map(|p| (Milestone::Warning(*p), self.target_ms * i64::from(*p) / 100));
        warning.or(Some((Milestone::Breach, self.target_ms)))
    }

    /// When the next milestone will be passed if the clock keeps running;
    /// `None` when it is paused, stopped or past every milestone.
    pub fn due_at(&self, cal: &Calendar) -> Option<Timestamp> {
        if self.stopped_at.is_some() {
            return None;
        }
        let since = self.running_since?;
        let (_, at_ms) = self.next_milestone()?;
        Some(cal.add_working(since, at_ms - self.used_ms))
    }

    /// When the clock breaches if it keeps running; `None` when it is
    /// paused, stopped or already breached.
    pub fn breach_due_at(&self, cal: &Calendar) -> Option<Timestamp> {
        if self.stopped_at.is_some() || self.breached_at.is_some() {
            return None;
        }
        let since = self.running_since?;
        Some(cal.add_working(since, self.target_ms - self.used_ms))
    }

    /// Record every milestone passed by `now`, each at its own instant.
    pub fn advance(&mut self, cal: &Calendar, now: Timestamp) -> Vec<Passed> {
        let mut passed = Vec::new();
        if self.stopped_at.is_some() {
            return passed;
        }
        while let Some((milestone, at_ms)) = self.next_milestone() {
            let at = match self.running_since {
                Some(since) => {
                    let at = cal.add_working(since, at_ms - self.used_ms);
                    if at > now {
                        break;
                    }
                    at
                }
                // Paused past a milestone: only a retarget does that, now.
                None if at_ms <= self.used_ms => now,
                None => break,
            };
            match milestone {
                Milestone::Warning(percent) => self.warned.push(Warned { percent, at }),
                Milestone::Breach => self.breached_at = Some(at),
            }
            passed.push(Passed { milestone, at });
        }
        passed
    }

    /// Fold the running time into `used_ms` as of `now`.
    fn checkpoint(&mut self, cal: &Calendar, now: Timestamp) {
        if let Some(since) = self.running_since {
            self.used_ms += cal.working_ms(since, now);
            self.running_since = Some(now);
        }
    }

    /// Follow the incident into `state`: stop when the promise is kept,
    /// pause in the policy's pause states, run otherwise. A reopened
    /// incident's resolve clock runs again from where it stopped.
    pub fn follow(
        &mut self,
        state: IncidentState,
        pause_in: &[IncidentState],
        cal: &Calendar,
        now: Timestamp,
    ) -> Vec<Passed> {
        let passed = self.advance(cal, now);
        self.checkpoint(cal, now);
        if self.kind.stops_in(state) {
            if self.stopped_at.is_none() {
                self.stopped_at = Some(now);
                self.running_since = None;
            }
        } else if self.kind == ClockKind::Resolve || self.stopped_at.is_none() {
            self.stopped_at = None;
            let paused = pause_in.contains(&state);
            match (paused, self.running_since) {
                (true, Some(_)) => self.running_since = None,
                (false, None) => self.running_since = Some(now),
                _ => {}
            }
        }
        passed
    }

    /// A new target (the incident's priority changed). Time used stays; the
    /// milestones the new target puts behind the clock are passed now.
    pub fn retarget(&mut self, target_ms: i64, cal: &Calendar, now: Timestamp) -> Vec<Passed> {
        let mut passed = self.advance(cal, now);
        self.checkpoint(cal, now);
        self.target_ms = target_ms;
        if self.stopped_at.is_none() {
            passed.extend(self.advance(cal, now));
        }
        passed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const MIN: i64 = 60_000;

    fn clock(target_min: i64, now: Timestamp) -> SlaClock {
        SlaClock::start(ClockKind::Respond, "standard", "24x7", target_min * MIN, &[50, 75], true, now)
    }

    #[test]
    fn warnings_then_breach_each_once_at_their_instant() {
        let cal = Calendar::always();
        let start = t("2026-11-24T10:00:00Z");
        let mut c = clock(20, start);
        assert_eq!(c.due_at(&cal), Some(t("2026-11-24T10:10:00Z")));
        assert_eq!(c.breach_due_at(&cal), Some(t("2026-11-24T10:20:00Z")), "the breach, past the warnings");
        assert!(c.advance(&cal, t("2026-11-24T10:09:59.999Z")).is_empty());
        let p = c.advance(&cal, t("2026-11-24T10:10:00Z"));
        assert_eq!(p, vec![Passed { milestone: Milestone::Warning(50), at: t("2026-11-24T10:10:00Z") }]);
        assert!(c.advance(&cal, t("2026-11-24T10:10:00Z")).is_empty(), "fires once");
        assert_eq!(c.due_at(&cal), Some(t("2026-11-24T10:15:00Z")));
        // Long after: the rest are recorded at their own instants.
        let p = c.advance(&cal, t("2026-11-24T12:00:00Z"));
        assert_eq!(
            p,
            vec![
                Passed { milestone: Milestone::Warning(75), at: t("2026-11-24T10:15:00Z") },
                Passed { milestone: Milestone::Breach, at: t("2026-11-24T10:20:00Z") },
            ]
        );
        assert_eq!(c.state(), ClockState::Breached);
        assert_eq!(c.due_at(&cal), None);
        assert_eq!(c.breach_due_at(&cal), None, "already breached");
        assert!(c.advance(&cal, t("2026-11-25T12:00:00Z")).is_empty());
    }

    #[test]
    fn pause_stops_the_time_and_the_deadline_moves() {
        let cal = Calendar::always();
        let start = t("2026-11-24T10:00:00Z");
        let mut c = clock(20, start);
        c.follow(IncidentState::OnHold, &[IncidentState::OnHold], &cal, t("2026-11-24T10:04:00Z"));
        assert_eq!(c.state(), ClockState::Paused);
        assert_eq!(c.due_at(&cal), None);
        assert_eq!(c.breach_due_at(&cal), None, "no deadline while paused");
        assert_eq!(c.elapsed_ms(&cal, t("2026-11-24T11:00:00Z")), 4 * MIN);
        assert!(c.advance(&cal, t("2026-11-24T11:00:00Z")).is_empty(), "no breach while paused");
        c.follow(IncidentState::Triggered, &[IncidentState::OnHold], &cal, t("2026-11-24T11:00:00Z"));
        assert_eq!(c.state(), ClockState::Running);
        // 4 minutes used: the 50 % warning (10 min) is 6 minutes away.
        assert_eq!(c.due_at(&cal), Some(t("2026-11-24T11:06:00Z")));
        assert_eq!(c.breach_due_at(&cal), Some(t("2026-11-24T11:16:00Z")));
        assert_eq!(c.remaining_ms(&cal, t("2026-11-24T11:06:00Z")), 10 * MIN);
    }

    #[test]
    fn a_state_not_in_pause_in_keeps_it_running() {
        let cal = Calendar::always();
        let mut c = clock(20, t("2026-11-24T10:00:00Z"));
        c.follow(IncidentState::OnHold, &[], &cal, t("2026-11-24T10:04:00Z"));
        assert_eq!(c.state(), ClockState::Running);
    }

    #[test]
    fn acknowledge_meets_respond_but_not_resolve() {
        let cal = Calendar::always();
        let start = t("2026-11-24T10:00:00Z");
        let mut respond = clock(20, start);
        let mut resolve = SlaClock::start(ClockKind::Resolve, "s", "24x7", 60 * MIN, &[], true, start);
        let ack = t("2026-11-24T10:05:00Z");
        respond.follow(IncidentState::Acknowledged, &[], &cal, ack);
        resolve.follow(IncidentState::Acknowledged, &[], &cal, ack);
        assert_eq!(respond.state(), ClockState::Met);
        assert_eq!(respond.stopped_at, Some(ack));
        assert_eq!(respond.elapsed_ms(&cal, t("2026-11-25T00:00:00Z")), 5 * MIN);
        assert_eq!(resolve.state(), ClockState::Running);
        // Resolve, reopen: the resolve clock continues from where it stopped.
        resolve.follow(IncidentState::Resolved, &[], &cal, t("2026-11-24T10:30:00Z"));
        assert_eq!(resolve.state(), ClockState::Met);
        resolve.follow(IncidentState::Triggered, &[], &cal, t("2026-11-24T12:00:00Z"));
        assert_eq!(resolve.state(), ClockState::Running);
        assert_eq!(resolve.due_at(&cal), Some(t("2026-11-24T12:30:00Z")));
        // The respond clock, once met, stays met.
        respond.follow(IncidentState::Triggered, &[], &cal, t("2026-11-24T12:00:00Z"));
        assert_eq!(respond.state(), ClockState::Met);
    }

    #[test]
    fn a_breach_not_yet_recorded_is_recorded_when_the_clock_stops() {
        let cal = Calendar::always();
        let mut c = clock(20, t("2026-11-24T10:00:00Z"));
        let p = c.follow(IncidentState::Acknowledged, &[], &cal, t("2026-11-24T10:20:00.500Z"));
        assert_eq!(p.last().map(|p| p.milestone), Some(Milestone::Breach));
        assert_eq!(c.breached_at, Some(t("2026-11-24T10:20:00Z")));
        assert_eq!(c.state(), ClockState::Breached);
    }

    #[test]
    fn retarget_keeps_time_and_passes_what_it_puts_behind() {
        let cal = Calendar::always();
        let mut c = clock(60, t("2026-11-24T10:00:00Z"));
        // 20 of 60 minutes used; the new target of 30 minutes puts 50 % behind.
        let now = t("2026-11-24T10:20:00Z");
        let p = c.retarget(30 * MIN, &cal, now);
        assert_eq!(p, vec![Passed { milestone: Milestone::Warning(50), at: now }]);
        assert_eq!(c.due_at(&cal), Some(t("2026-11-24T10:22:30Z")));
        // A longer target after a breach: the breach stays a fact.
        let p = c.retarget(10 * MIN, &cal, now);
        assert_eq!(p.iter().map(|p| p.milestone).collect::<Vec<_>>(), [Milestone::Warning(75), Milestone::Breach]);
        c.retarget(120 * MIN, &cal, now);
        assert_eq!(c.state(), ClockState::Breached);
    }

    #[test]
    fn retarget_while_paused_passes_milestones_now() {
        let cal = Calendar::always();
        let mut c = clock(60, t("2026-11-24T10:00:00Z"));
        let p = c.follow(IncidentState::OnHold, &[IncidentState::OnHold], &cal, t("2026-11-24T10:40:00Z"));
        assert_eq!(p, vec![Passed { milestone: Milestone::Warning(50), at: t("2026-11-24T10:30:00Z") }]);
        let now = t("2026-11-24T11:00:00Z");
        let p = c.retarget(30 * MIN, &cal, now);
        assert_eq!(p.iter().map(|p| p.milestone).collect::<Vec<_>>(), [Milestone::Warning(75), Milestone::Breach]);
        assert!(p.iter().all(|p| p.at == now));
        assert_eq!(c.state(), ClockState::Breached);
    }

    #[test]
    fn states_serialize_as_the_api_names_them() {
        for (s, name) in [
            (ClockState::Running, "running"),
            (ClockState::Paused, "paused"),
            (ClockState::Met, "met"),
            (ClockState::Breached, "breached"),
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), name);
            assert_eq!(s.as_str(), name);
        }
    }
}
