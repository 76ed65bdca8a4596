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

/// Where a clock stands. A breach is a fact whatever happens after it; a
/// respond clock that stopped because the incident was resolved before
/// anyone acknowledged it kept no promise: it is its own outcome, not met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClockState {
    Running,
    Paused,
    Met,
    Breached,
    ResolvedUnacknowledged,
}

impl ClockState {
    pub const ALL: [ClockState; 5] = [
        ClockState::Running,
        ClockState::Paused,
        ClockState::Met,
        ClockState::Breached,
        ClockState::ResolvedUnacknowledged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClockState::Running => "running",
            ClockState::Paused => "paused",
            ClockState::Met => "met",
            ClockState::Breached => "breached",
            ClockState::ResolvedUnacknowledged => "resolved_unacknowledged",
        }
    }

    pub fn parse(s: &str) -> Option<ClockState> {
        ClockState::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The state as an SQL predicate over a clock row's columns (`breached_at`,
    /// `stopped_at`, `running_since`, `unanswered`) under the table alias
    /// `t`: the one encoding every query uses, the same as [`SlaClock::state`].
    pub fn sql(self, t: &str) -> String {
        match self {
            ClockState::Breached => format!("{t}.breached_at IS NOT NULL"),
            ClockState::Met => {
                format!("({t}.breached_at IS NULL AND {t}.stopped_at IS NOT NULL AND {t}.unanswered = 0)")
            }
            ClockState::ResolvedUnacknowledged => {
                format!("({t}.breached_at IS NULL AND {t}.stopped_at IS NOT NULL AND {t}.unanswered = 1)")
            }
            ClockState::Running => {
                format!("({t}.breached_at IS NULL AND {t}.stopped_at IS NULL AND {t}.running_since IS NOT NULL)")
            }
            ClockState::Paused => {
                format!("({t}.breached_at IS NULL AND {t}.stopped_at IS NULL AND {t}.running_since IS NULL)")
            }
        }
    }

    /// A settled clock that did not keep its promise (breached, or stopped
    /// by a resolution nobody acknowledged), as an SQL predicate.
    pub fn not_met_sql(t: &str) -> String {
        format!("({} OR {})", ClockState::Breached.sql(t), ClockState::ResolvedUnacknowledged.sql(t))
    }

    /// A clock not stopped that counts time now (running, or breached and
    /// still running until its incident is answered), as an SQL predicate;
    /// [`ClockState::unstopped_sql`] for the clocks it is taken among.
    pub fn counting_sql(t: &str) -> String {
        format!("{t}.running_since IS NOT NULL")
    }

    pub fn unstopped_sql(t: &str) -> String {
        format!("{t}.stopped_at IS NULL")
    }

    /// "At risk" as an SQL predicate over a clock row under alias `t`:
    /// running or paused, past a warning, not breached.
    pub fn at_risk_sql(t: &str) -> String {
        format!("({} OR {}) AND {t}.warned != '[]'", ClockState::Running.sql(t), ClockState::Paused.sql(t))
    }

    /// Settled: the clock will not move again (unless a resolve clock's incident reopens).
    pub fn is_settled(self) -> bool {
        matches!(self, ClockState::Met | ClockState::Breached | ClockState::ResolvedUnacknowledged)
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
    /// Working milliseconds allowed; `None` while the incident's priority
    /// makes no such promise (the time used still counts, so a promise that
    /// returns with the priority takes it into account).
    pub target_ms: Option<i64>,
    /// Warning thresholds in percent of the target, ascending, each below 100.
    pub warn_at: Vec<u8>,
    /// Working milliseconds used up to `running_since`, or in all when the
    /// clock does not run.
    pub used_ms: i64,
    pub running_since: Option<Timestamp>,
    pub stopped_at: Option<Timestamp>,
    /// A respond clock stopped by the incident's resolution before anyone
    /// acknowledged it.
    pub unanswered: bool,
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
            target_ms: Some(target_ms),
            warn_at: warn_at.to_vec(),
            used_ms: 0,
            running_since: running.then_some(now),
            stopped_at: None,
            unanswered: false,
            warned: Vec::new(),
            breached_at: None,
        }
    }

    pub fn state(&self) -> ClockState {
        if self.breached_at.is_some() {
            ClockState::Breached
        } else if self.stopped_at.is_some() && self.unanswered {
            ClockState::ResolvedUnacknowledged
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

    /// Working time left by `now`; negative once breached; `None` without a target.
    pub fn remaining_ms(&self, cal: &Calendar, now: Timestamp) -> Option<i64> {
        Some(self.target_ms? - self.elapsed_ms(cal, now))
    }

    /// The next milestone not yet passed and the working time at which it is.
    fn next_milestone(&self) -> Option<(Milestone, i64)> {
        let target = self.target_ms?;
        if self.breached_at.is_some() {
            return None;
        }
        let warning = self
            .warn_at
            .iter()
            .find(|p| !self.warned.iter().any(|w| w.percent == **p))
            .map(|p| (Milestone::Warning(*p), target * i64::from(*p) / 100));
        warning.or(Some((Milestone::Breach, target)))
    }

    /// When the next milestone (a warning or the breach) will be passed if
    /// the clock keeps running; `None` when it is paused, stopped, without a
    /// target or past every milestone.
    pub fn next_milestone_at(&self, cal: &Calendar) -> Option<Timestamp> {
        if self.stopped_at.is_some() {
            return None;
        }
        let since = self.running_since?;
        let (_, at_ms) = self.next_milestone()?;
        Some(cal.add_working(since, at_ms - self.used_ms))
    }

    /// When the clock breaches if it keeps running; `None` when it is
    /// paused, stopped or already breached.
    pub fn breach_at(&self, cal: &Calendar) -> Option<Timestamp> {
        if self.stopped_at.is_some() || self.breached_at.is_some() {
            return None;
        }
        let since = self.running_since?;
        Some(cal.add_working(since, self.target_ms? - self.used_ms))
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
                self.unanswered = self.kind == ClockKind::Respond && state != IncidentState::Acknowledged;
            }
        } else if self.kind == ClockKind::Resolve || self.stopped_at.is_none() {
            self.stopped_at = None;
            self.unanswered = false;
            let paused = pause_in.contains(&state);
            match (paused, self.running_since) {
                (true, Some(_)) => self.running_since = None,
                (false, None) => self.running_since = Some(now),
                _ => {}
            }
        }
        passed
    }

    /// A new target (the incident's priority changed), or none (the new
    /// priority makes no such promise). Time used stays, so a promise cannot
    /// be dodged by passing through a priority without one. Warnings are
    /// about the target in force: those the new target has not reached are
    /// given again when it reaches them, and the milestones it puts behind
    /// the clock are passed now. A breach stays a fact.
    pub fn retarget(&mut self, target_ms: Option<i64>, cal: &Calendar, now: Timestamp) -> Vec<Passed> {
        let mut passed = self.advance(cal, now);
        self.checkpoint(cal, now);
        self.target_ms = target_ms;
        if self.stopped_at.is_some() {
            return passed;
        }
        if let Some(target) = target_ms {
            let used = self.used_ms;
            self.warned.retain(|w| target * i64::from(w.percent) / 100 <= used);
        }
        passed.extend(self.advance(cal, now));
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
        assert_eq!(c.next_milestone_at(&cal), Some(t("2026-11-24T10:10:00Z")));
        assert_eq!(c.breach_at(&cal), Some(t("2026-11-24T10:20:00Z")), "the breach, past the warnings");
        assert!(c.advance(&cal, t("2026-11-24T10:09:59.999Z")).is_empty());
        let p = c.advance(&cal, t("2026-11-24T10:10:00Z"));
        assert_eq!(p, vec![Passed { milestone: Milestone::Warning(50), at: t("2026-11-24T10:10:00Z") }]);
        assert!(c.advance(&cal, t("2026-11-24T10:10:00Z")).is_empty(), "fires once");
        assert_eq!(c.next_milestone_at(&cal), Some(t("2026-11-24T10:15:00Z")));
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
        assert_eq!(c.next_milestone_at(&cal), None);
        assert_eq!(c.breach_at(&cal), None, "already breached");
        assert!(c.advance(&cal, t("2026-11-25T12:00:00Z")).is_empty());
    }

    #[test]
    fn pause_stops_the_time_and_the_deadline_moves() {
        let cal = Calendar::always();
        let start = t("2026-11-24T10:00:00Z");
        let mut c = clock(20, start);
        c.follow(IncidentState::OnHold, &[IncidentState::OnHold], &cal, t("2026-11-24T10:04:00Z"));
        assert_eq!(c.state(), ClockState::Paused);
        assert_eq!(c.next_milestone_at(&cal), None);
        assert_eq!(c.breach_at(&cal), None, "no deadline while paused");
        assert_eq!(c.elapsed_ms(&cal, t("2026-11-24T11:00:00Z")), 4 * MIN);
        assert!(c.advance(&cal, t("2026-11-24T11:00:00Z")).is_empty(), "no breach while paused");
        c.follow(IncidentState::Triggered, &[IncidentState::OnHold], &cal, t("2026-11-24T11:00:00Z"));
        assert_eq!(c.state(), ClockState::Running);
        // 4 minutes used: the 50 % warning (10 min) is 6 minutes away.
        assert_eq!(c.next_milestone_at(&cal), Some(t("2026-11-24T11:06:00Z")));
        assert_eq!(c.breach_at(&cal), Some(t("2026-11-24T11:16:00Z")));
        assert_eq!(c.remaining_ms(&cal, t("2026-11-24T11:06:00Z")), Some(10 * MIN));
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
        assert_eq!(resolve.next_milestone_at(&cal), Some(t("2026-11-24T12:30:00Z")));
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
        let p = c.retarget(Some(30 * MIN), &cal, now);
        assert_eq!(p, vec![Passed { milestone: Milestone::Warning(50), at: now }]);
        assert_eq!(c.next_milestone_at(&cal), Some(t("2026-11-24T10:22:30Z")));
        // A longer target after a breach: the breach stays a fact.
        let p = c.retarget(Some(10 * MIN), &cal, now);
        assert_eq!(p.iter().map(|p| p.milestone).collect::<Vec<_>>(), [Milestone::Warning(75), Milestone::Breach]);
        c.retarget(Some(120 * MIN), &cal, now);
        assert_eq!(c.state(), ClockState::Breached);
    }

    #[test]
    fn retarget_while_paused_passes_milestones_now() {
        let cal = Calendar::always();
        let mut c = clock(60, t("2026-11-24T10:00:00Z"));
        let p = c.follow(IncidentState::OnHold, &[IncidentState::OnHold], &cal, t("2026-11-24T10:40:00Z"));
        assert_eq!(p, vec![Passed { milestone: Milestone::Warning(50), at: t("2026-11-24T10:30:00Z") }]);
        let now = t("2026-11-24T11:00:00Z");
        let p = c.retarget(Some(30 * MIN), &cal, now);
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
            (ClockState::ResolvedUnacknowledged, "resolved_unacknowledged"),
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), name);
            assert_eq!(s.as_str(), name);
        }
    }

    #[test]
    fn a_priority_without_a_target_does_not_reset_the_time_used() {
        // P1 (15 min) with 10 used → P4 (no respond target) for 3 min → P1.
        let cal = Calendar::always();
        let mut c = clock(15, t("2026-11-24T10:00:00Z"));
        c.warn_at = vec![50];
        let p = c.retarget(None, &cal, t("2026-11-24T10:10:00Z"));
        assert_eq!(p, vec![Passed { milestone: Milestone::Warning(50), at: t("2026-11-24T10:07:30Z") }]);
        assert_eq!(c.state(), ClockState::Running, "the clock stays, and shows, while no target applies");
        assert_eq!(c.next_milestone_at(&cal), None);
        assert_eq!(c.breach_at(&cal), None);
        assert_eq!(c.remaining_ms(&cal, t("2026-11-24T10:12:00Z")), None);
        assert!(c.advance(&cal, t("2026-11-24T11:00:00Z")).is_empty(), "no milestones without a target");
        assert_eq!(c.elapsed_ms(&cal, t("2026-11-24T10:13:00Z")), 13 * MIN, "time still counts");
        let back = t("2026-11-24T10:13:00Z");
        assert!(c.retarget(Some(15 * MIN), &cal, back).is_empty(), "13 of 15 minutes: the 50 % was given at P1");
        assert_eq!(c.breach_at(&cal), Some(t("2026-11-24T10:15:00Z")), "2 minutes left, not 15");
        assert_eq!(c.warned.len(), 1, "the 50 % warning, reached under the target in force again, stays");
    }

    #[test]
    fn a_longer_target_gives_its_own_warnings() {
        // 50 % of 30 min warned at 15 min; at 20 min, moved to 4 h.
        let cal = Calendar::always();
        let mut c = clock(30, t("2026-11-24T10:00:00Z"));
        let p = c.advance(&cal, t("2026-11-24T10:20:00Z"));
        assert_eq!(p, vec![Passed { milestone: Milestone::Warning(50), at: t("2026-11-24T10:15:00Z") }]);
        assert!(c.retarget(Some(240 * MIN), &cal, t("2026-11-24T10:20:00Z")).is_empty());
        assert!(c.warned.is_empty(), "50 % of 4 h is not reached: that warning is still to come");
        assert_eq!(c.next_milestone_at(&cal), Some(t("2026-11-24T12:00:00Z")), "50 % of 4 h, not 75 %");
        assert_eq!(c.breach_at(&cal), Some(t("2026-11-24T14:00:00Z")));
        let p = c.advance(&cal, t("2026-11-24T12:00:00Z"));
        assert_eq!(p, vec![Passed { milestone: Milestone::Warning(50), at: t("2026-11-24T12:00:00Z") }]);
    }

    #[test]
    fn resolved_before_anyone_acknowledged_is_not_met() {
        let cal = Calendar::always();
        let start = t("2026-11-24T10:00:00Z");
        let mut unanswered = clock(20, start);
        unanswered.follow(IncidentState::Resolved, &[], &cal, t("2026-11-24T10:05:00Z"));
        assert_eq!(unanswered.state(), ClockState::ResolvedUnacknowledged);
        assert!(unanswered.state().is_settled());
        let mut answered = clock(20, start);
        answered.follow(IncidentState::Acknowledged, &[], &cal, t("2026-11-24T10:04:00Z"));
        answered.follow(IncidentState::Resolved, &[], &cal, t("2026-11-24T10:05:00Z"));
        assert_eq!(answered.state(), ClockState::Met);
        let mut resolve = SlaClock::start(ClockKind::Resolve, "s", "24x7", 60 * MIN, &[], true, start);
        resolve.follow(IncidentState::Resolved, &[], &cal, t("2026-11-24T10:05:00Z"));
        assert_eq!(resolve.state(), ClockState::Met, "resolving keeps the resolve promise");
        // A breach before the resolution stays the outcome.
        let mut late = clock(20, start);
        late.follow(IncidentState::Resolved, &[], &cal, t("2026-11-24T10:30:00Z"));
        assert_eq!(late.state(), ClockState::Breached);
    }

    #[test]
    fn every_state_has_one_sql_predicate_that_names_it_alone() {
        // The predicates partition the rows: evaluate them on the states' columns.
        let cal = Calendar::always();
        let start = t("2026-11-24T10:00:00Z");
        let running = clock(20, start);
        let mut paused = clock(20, start);
        paused.follow(IncidentState::OnHold, &[IncidentState::OnHold], &cal, start);
        let mut met = clock(20, start);
        met.follow(IncidentState::Acknowledged, &[], &cal, start);
        let mut unanswered = clock(20, start);
        unanswered.follow(IncidentState::Resolved, &[], &cal, start);
        let mut breached = clock(20, start);
        breached.advance(&cal, t("2026-11-24T11:00:00Z"));
        for c in [running, paused, met, unanswered, breached] {
            let holds = |pred: &str| {
                let cond = |col: &str, v: bool| {
                    let null = format!("t.{col} IS NULL");
                    let not_null = format!("t.{col} IS NOT NULL");
                    (pred.contains(&null) && v) || (pred.contains(&not_null) && !v)
                };
                // A predicate fails when any of its column tests fails.
                !(cond("breached_at", c.breached_at.is_some())
                    || cond("stopped_at", c.stopped_at.is_some())
                    || cond("running_since", c.running_since.is_some())
                    || (pred.contains("t.unanswered = 0") && c.unanswered)
                    || (pred.contains("t.unanswered = 1") && !c.unanswered))
            };
            let matching: Vec<ClockState> = ClockState::ALL.into_iter().filter(|s| holds(&s.sql("t"))).collect();
            assert_eq!(matching, vec![c.state()], "{c:?}");
        }
    }
}
