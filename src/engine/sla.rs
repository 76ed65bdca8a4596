//! An incident's SLA and escalation decisions: which policy it is under,
//! its clocks following its state and priority, the milestones and
//! escalation steps to record and to notify. The caller loads the clocks,
//! passes `now`, and applies the effects in order in one transaction.
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::engine::escalation::Escalation;
use crate::model::incident::{IncidentState, Priority};
use crate::model::{Duration, LabelSet};
use crate::rules::policy::{EscalationPolicy, SlaPolicy};
use crate::sla::calendar::Calendar;
use crate::sla::clock::{ClockKind, Milestone, Passed, SlaClock};

/// A clock with its row id (`None` until it is first saved) and the pause
/// states it was started with.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockSlot {
    pub id: Option<i64>,
    pub clock: SlaClock,
    pub pause_in: Vec<IncidentState>,
}

/// A line in the incident's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub at: Timestamp,
    pub kind: &'static str,
    pub message: String,
    pub data: Value,
}

/// What an SLA decision asks the store to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum SlaEffect {
    /// The incident is under this policy.
    Policy(String),
    /// Save the clock (insert it when it has no id yet) and schedule its next milestone.
    Save(ClockSlot),
    Record(Entry),
    /// A milestone was passed (counted in the metrics).
    Milestone {
        kind: ClockKind,
        milestone: Milestone,
    },
    /// Notify of the entry recorded last: the rule's notifiers (those that
    /// subscribe to `event`), or whom an escalation step reaches.
    Notify {
        event: &'static str,
        data: Value,
        targets: Option<crate::engine::paging::Reach>,
    },
}

/// Calendars by name (an unknown one counts 24x7).
pub type Calendars<'a> = &'a dyn Fn(&str) -> Arc<Calendar>;

/// The policy a new incident is under: the one its rule names, else the
/// first whose matchers match its fields.
pub fn choose_policy<'p>(policies: &'p [SlaPolicy], named: Option<&str>, fields: &LabelSet) -> Option<&'p SlaPolicy> {
    match named {
        Some(name) => policies.iter().find(|p| p.name == name),
        None => policies.iter().find(|p| p.matches(fields)),
    }
}

fn target_of(policy: &SlaPolicy, priority: Priority, kind: ClockKind) -> Option<Duration> {
    let targets = policy.targets(priority);
    match kind {
        ClockKind::Respond => targets.respond,
        ClockKind::Resolve => targets.resolve,
    }
}

fn new_clock(policy: &SlaPolicy, kind: ClockKind, target: Duration, state: IncidentState, now: Timestamp) -> ClockSlot {
    let running = !policy.pause_in.contains(&state);
    let clock =
        SlaClock::start(kind, &policy.name, &policy.calendar, target.as_millis(), &policy.warn_at, running, now);
    ClockSlot { id: None, clock, pause_in: policy.pause_in.clone() }
}

/// `7m30s` for a millisecond count: whole seconds from a minute up.
pub fn human_ms(ms: i64) -> String {
    let rounded = if ms >= 60_000 { ms / 1000 * 1000 } else { ms };
    Duration::from_millis(rounded.max(0)).to_string()
}

/// As [`human_ms`]; `none` without a count.
fn human(ms: Option<i64>) -> String {
    ms.map_or_else(|| "none".into(), human_ms)
}

fn entry(at: Timestamp, kind: &'static str, message: String, data: Value) -> SlaEffect {
    SlaEffect::Record(Entry { at, kind, message, data })
}

/// A new incident's clocks under `policy`.
pub fn start(policy: &SlaPolicy, priority: Priority, now: Timestamp) -> Vec<SlaEffect> {
    let mut effects = vec![SlaEffect::Policy(policy.name.clone())];
    let mut described = Vec::new();
    for kind in ClockKind::ALL {
        if let Some(target) = target_of(policy, priority, kind) {
            effects.push(SlaEffect::Save(new_clock(policy, kind, target, IncidentState::Triggered, now)));
            described.push(format!("{kind} within {target}"));
        }
    }
    if !described.is_empty() {
        effects.push(entry(
            now,
            "sla_started",
            format!("SLA policy {} ({} calendar): {}", policy.name, policy.calendar, described.join(", ")),
            json!({ "policy": policy.name, "calendar": policy.calendar, "priority": priority }),
        ));
    }
    effects
}

/// The incident moved to `state`: every clock follows.
pub fn follow(slots: Vec<ClockSlot>, state: IncidentState, calendars: Calendars<'_>, now: Timestamp) -> Vec<SlaEffect> {
    let mut effects = Vec::new();
    for mut slot in slots {
        let cal = calendars(&slot.clock.calendar);
        let before = slot.clock.state();
        let passed = slot.clock.follow(state, &slot.pause_in, &cal, now);
        effects.extend(milestones(&slot.clock, &passed));
        let after = slot.clock.state();
        if before != after {
            let c = &slot.clock;
            let elapsed = c.elapsed_ms(&cal, now);
            effects.push(entry(
                now,
                "sla_clock",
                format!(
                    "{} clock {} → {} ({} of {} used)",
                    c.kind,
                    before.as_str(),
                    after.as_str(),
                    human(Some(elapsed)),
                    human(c.target_ms)
                ),
                json!({ "clock": c.kind, "from": before, "to": after, "elapsedMs": elapsed }),
            ));
        }
        effects.push(SlaEffect::Save(slot));
    }
    effects
}

/// The incident's priority changed: its clocks take the new priority's
/// targets under their policy. A priority without a target suspends the
/// promise but not the time it measures; a promise the old priority did not
/// make starts now, if the incident has not kept it already. Without its
/// policy (a reload removed it) the clocks keep their targets.
pub fn retarget(
    slots: Vec<ClockSlot>,
    policy: Option<&SlaPolicy>,
    priority: Priority,
    state: IncidentState,
    acknowledged: bool,
    calendars: Calendars<'_>,
    now: Timestamp,
) -> Vec<SlaEffect> {
    let Some(policy) = policy else { return Vec::new() };
    let mut effects = Vec::new();
    for kind in ClockKind::ALL {
        let target = target_of(policy, priority, kind);
        match slots.iter().find(|s| s.clock.kind == kind) {
            // A settled clock's result stands; a new priority does not rewrite it.
            Some(slot) if slot.clock.stopped_at.is_some() => {}
            Some(slot) if slot.clock.target_ms == target.map(|t| t.as_millis()) => {}
            Some(slot) => {
                let mut slot = slot.clone();
                let cal = calendars(&slot.clock.calendar);
                let old = slot.clock.target_ms;
                let passed = slot.clock.retarget(target.map(|t| t.as_millis()), &cal, now);
                let message = match (old, target) {
                    (_, None) => format!(
                        "{kind} target {} suspended: priority {priority} has no {kind} target (the time used still counts)",
                        human(old)
                    ),
                    (None, Some(t)) => format!("{kind} target {t} again (priority {priority})"),
                    (Some(_), Some(t)) => format!("{kind} target {} → {t} (priority {priority})", human(old)),
                };
                effects.push(entry(
                    now,
                    "sla_retargeted",
                    message,
                    json!({ "clock": kind, "beforeMs": old, "afterMs": target.map(|t| t.as_millis()), "priority": priority }),
                ));
                effects.extend(milestones(&slot.clock, &passed));
                effects.push(SlaEffect::Save(slot));
            }
            None => {
                let open = match kind {
                    ClockKind::Respond => !acknowledged && state.is_open(),
                    ClockKind::Resolve => state.is_open(),
                };
                if let (Some(target), true) = (target, open) {
                    effects.push(SlaEffect::Save(new_clock(policy, kind, target, state, now)));
                    effects.push(entry(
                        now,
                        "sla_retargeted",
                        format!("{kind} clock started: within {target} (priority {priority})"),
                        json!({ "clock": kind, "afterMs": target.as_millis(), "priority": priority }),
                    ));
                }
            }
        }
    }
    effects
}

/// A clock's timer is due.
pub fn fire(mut slot: ClockSlot, cal: &Calendar, now: Timestamp) -> Vec<SlaEffect> {
    let passed = slot.clock.advance(cal, now);
    let mut effects = milestones(&slot.clock, &passed);
    effects.push(SlaEffect::Save(slot));
    effects
}

/// Milestones into the timeline, each at its instant; only the latest (a
/// breach supersedes the warnings before it) is notified.
fn milestones(c: &SlaClock, passed: &[Passed]) -> Vec<SlaEffect> {
    let mut effects = Vec::new();
    let target = c.target_ms.unwrap_or_default();
    for p in passed {
        effects.push(SlaEffect::Milestone { kind: c.kind, milestone: p.milestone });
        let (kind, message) = match p.milestone {
            Milestone::Warning(pct) => (
                "sla_warning",
                format!(
                    "{} SLA at {pct}% ({} of {} used)",
                    c.kind,
                    human(Some(target * i64::from(pct) / 100)),
                    human(Some(target))
                ),
            ),
            Milestone::Breach => {
                ("sla_breached", format!("{} SLA breached: target {} passed", c.kind, human(Some(target))))
            }
        };
        let data = json!({ "clock": c.kind, "milestone": p.milestone, "targetMs": target, "policy": c.policy });
        effects.push(entry(p.at, kind, message, data));
    }
    if let (Some(last), Some(SlaEffect::Record(e))) = (passed.last(), effects.last()) {
        let event = match last.milestone {
            Milestone::Warning(_) => "sla.warning",
            Milestone::Breach => "sla.breached",
        };
        effects.push(SlaEffect::Notify { event, data: e.data.clone(), targets: None });
    }
    effects
}

/// Steps that fell due longer ago than this (the gateway was down) are
/// recorded but not paged, but for the latest: a returning gateway must not
/// page a whole policy at once.
const MISSED_STEP: SignedDuration = SignedDuration::from_secs(60);

/// Notify every escalation step due by `now`. A policy gone from the rules
/// ends the escalation where it stands.
/// An incident's escalation begins at `now`; a policy a reload removed
/// begins nothing.
pub fn start_escalation(policy: Option<&EscalationPolicy>, now: Timestamp) -> Option<Escalation> {
    policy.map(|p| Escalation::start(p, now))
}

/// Schedules page whoever is on call at the step's instant (`book`).
pub fn escalate(
    esc: &mut Escalation,
    policy: Option<&EscalationPolicy>,
    book: &crate::engine::paging::OnCallBook<'_>,
    now: Timestamp,
) -> Vec<SlaEffect> {
    let fired = match policy {
        Some(policy) => esc.fire_due(policy, now),
        None => {
            esc.stop();
            Vec::new()
        }
    };
    let last = fired.len().saturating_sub(1);
    let mut effects = Vec::new();
    for (i, step) in fired.into_iter().enumerate() {
        let missed = i < last && now.duration_since(step.at) > MISSED_STEP;
        // A step paged late (the gateway was down) pages whoever is on
        // call now, not whoever was when it fell due.
        let reach = book.reach(&step.notify, if missed { step.at } else { now.max(step.at) });
        let message = format!(
            "escalation {} step {} (round {}): {} {}",
            esc.policy,
            step.step + 1,
            step.round + 1,
            if missed { "missed while the gateway was down, not notified:" } else { "notified" },
            reach.said.join(", ")
        );
        let notify: Vec<String> = step.notify.iter().map(ToString::to_string).collect();
        let mut data = json!({ "policy": esc.policy, "step": step.step + 1, "round": step.round + 1,
                               "notify": notify, "notified": !missed });
        if !reach.people.is_empty() || !reach.uncovered.is_empty() {
            let paged = reach.data();
            data["paged"] = paged["paged"].clone();
            data["nobodyOnCall"] = paged["nobodyOnCall"].clone();
        }
        effects.push(entry(step.at, "escalated", message, data.clone()));
        if !missed {
            effects.push(SlaEffect::Notify { event: "incident.escalated", data, targets: Some(reach) });
        }
    }
    effects
}

/// Someone answered (or the incident resolved): no further steps.
pub fn stop_escalation(esc: &mut Escalation, why: &str, now: Timestamp) -> Vec<SlaEffect> {
    if esc.due_at.is_none() {
        return Vec::new();
    }
    esc.stop();
    vec![entry(
        now,
        "escalation_stopped",
        format!("escalation {} stopped: {why}", esc.policy),
        json!({ "policy": esc.policy, "reason": why }),
    )]
}

#[cfg(test)]
mod tests;
mod view;

pub use crate::engine::escalation::EscalationView;
pub use view::{ClockView, SlaView, view};
