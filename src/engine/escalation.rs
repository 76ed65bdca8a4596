//! Escalation: while an incident stays unacknowledged, each step of its
//! policy notifies its targets `after` the round began; after the last step
//! the policy may begin again (`repeat`), `repeat_interval` later.
use jiff::{SignedDuration, Timestamp};

use crate::rules::policy::EscalationPolicy;
use crate::rules::target::Target;

/// Where an incident is in its escalation policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    pub policy: String,
    /// 0 for the first pass through the steps.
    pub round: u32,
    /// The next step to notify.
    pub step: usize,
    pub round_started: Timestamp,
    /// When the next step is due; `None` once stopped or exhausted.
    pub due_at: Option<Timestamp>,
}

/// A step that fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFired {
    pub round: u32,
    pub step: usize,
    pub notify: Vec<Target>,
    pub at: Timestamp,
}

/// Where an incident stands in its escalation policy.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EscalationView {
    pub policy: String,
    /// 1-based, as the timeline says it.
    pub round: u32,
    /// The next step to notify, 1-based.
    pub next_step: usize,
    /// `None` once stopped or every step and repeat is done.
    pub next_at: Option<Timestamp>,
}

fn plus(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

impl Escalation {
    pub fn start(policy: &EscalationPolicy, now: Timestamp) -> Escalation {
        let due = policy.steps.first().map(|s| plus(now, s.after.signed()));
        Escalation { policy: policy.name.clone(), round: 0, step: 0, round_started: now, due_at: due }
    }

    /// Notify every step due by `now`, in order, and schedule the next.
    /// A policy shortened by a reload ends the escalation where it stands.
    pub fn fire_due(&mut self, policy: &EscalationPolicy, now: Timestamp) -> Vec<StepFired> {
        let mut fired = Vec::new();
        while let Some(due) = self.due_at {
            if due > now {
                break;
            }
            let Some(step) = policy.steps.get(self.step) else {
                self.due_at = None;
                break;
            };
            fired.push(StepFired { round: self.round, step: self.step, notify: step.notify.clone(), at: due });
            self.step += 1;
            if let Some(next) = policy.steps.get(self.step) {
                self.due_at = Some(plus(self.round_started, next.after.signed()));
            } else if self.round < policy.repeat {
                self.round += 1;
                self.step = 0;
                self.round_started = plus(due, policy.repeat_interval.signed());
                self.due_at = Some(plus(self.round_started, policy.steps[0].after.signed()));
            } else {
                self.due_at = None;
            }
        }
        fired
    }

    pub fn stop(&mut self) {
        self.due_at = None;
    }

    /// As the API shows it: rounds and steps counted from 1.
    pub fn view(&self) -> EscalationView {
        EscalationView {
            policy: self.policy.clone(),
            round: self.round + 1,
            next_step: self.step + 1,
            next_at: self.due_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Duration;
    use crate::rules::policy::EscalationStep;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn policy(repeat: u32) -> EscalationPolicy {
        EscalationPolicy {
            name: "payments".into(),
            steps: vec![
                EscalationStep { after: Duration::ZERO, notify: vec![Target::Notifier("payments-oncall".into())] },
                EscalationStep {
                    after: Duration::from_secs(900),
                    notify: vec![Target::Notifier("payments-lead".into()), Target::Notifier("chatops".into())],
                },
            ],
            repeat,
            repeat_interval: Duration::from_secs(900),
        }
    }

    #[test]
    fn steps_fire_at_their_offsets_and_repeat() {
        let p = policy(1);
        let start = t("2026-11-24T10:00:00Z");
        let mut e = Escalation::start(&p, start);
        let first = e.fire_due(&p, start);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].notify, [Target::Notifier("payments-oncall".into())]);
        assert_eq!(e.due_at, Some(t("2026-11-24T10:15:00Z")));
        assert!(e.fire_due(&p, t("2026-11-24T10:14:59Z")).is_empty());
        let second = e.fire_due(&p, t("2026-11-24T10:15:00Z"));
        assert_eq!(second[0].notify, p.steps[1].notify);
        // Round 2 begins repeat_interval after the last step.
        assert_eq!(e.due_at, Some(t("2026-11-24T10:30:00Z")));
        let rest = e.fire_due(&p, t("2026-11-24T12:00:00Z"));
        assert_eq!(rest.iter().map(|s| (s.round, s.step)).collect::<Vec<_>>(), [(1, 0), (1, 1)]);
        assert_eq!(rest[1].at, t("2026-11-24T10:45:00Z"), "each step at its own instant");
        assert_eq!(e.due_at, None, "exhausted after one repeat");
    }

    #[test]
    fn stop_ends_it() {
        let p = policy(3);
        let start = t("2026-11-24T10:00:00Z");
        let mut e = Escalation::start(&p, start);
        e.fire_due(&p, start);
        e.stop();
        assert!(e.fire_due(&p, t("2026-11-25T10:00:00Z")).is_empty());
    }

    #[test]
    fn a_shortened_policy_ends_the_escalation() {
        let p = policy(0);
        let start = t("2026-11-24T10:00:00Z");
        let mut e = Escalation::start(&p, start);
        e.fire_due(&p, start);
        let mut shorter = p.clone();
        shorter.steps.truncate(1);
        assert!(e.fire_due(&shorter, t("2026-11-24T11:00:00Z")).is_empty());
        assert_eq!(e.due_at, None);
    }
}
