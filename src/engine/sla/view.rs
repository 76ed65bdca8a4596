//! An incident's SLA clocks as the API and the console show them, computed
//! at the time of the request.
use jiff::Timestamp;

use super::{ClockSlot, human_ms};
use crate::rules::RuleSet;
use crate::sla::clock::{ClockKind, ClockState, Warned};

/// One clock as the API shows it, computed at the time of the request.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ClockView {
    pub state: ClockState,
    /// As a Prometheus duration, e.g. `15m`; null while the incident's
    /// priority makes no such promise (the time used still counts).
    pub target: Option<String>,
    pub target_seconds: Option<f64>,
    /// Working time used (paused time and time outside the calendar's
    /// hours do not count).
    pub elapsed_seconds: f64,
    /// Negative once breached; null without a target.
    pub remaining_seconds: Option<f64>,
    pub warned_at: Vec<Warned>,
    pub breached_at: Option<Timestamp>,
    pub stopped_at: Option<Timestamp>,
    /// The deadline: when the clock breaches if it keeps running, in the
    /// calendar's working time; null when paused, stopped, breached or
    /// without a target.
    #[serde(rename = "breachAt")]
    pub breach_at: Option<Timestamp>,
    /// When the next warning or the breach falls due if the clock keeps running.
    #[serde(rename = "nextMilestoneAt")]
    pub next_milestone_at: Option<Timestamp>,
    /// The same as `nextMilestoneAt` (kept for existing scripts).
    pub due_at: Option<Timestamp>,
    /// The same as `breachAt` (kept for existing scripts).
    pub breach_due_at: Option<Timestamp>,
}

/// An incident's SLA: its policy and clocks.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct SlaView {
    pub policy: String,
    pub calendar: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub respond: Option<ClockView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolve: Option<ClockView>,
}

/// An incident's SLA as the API shows it at `now`; `None` without clocks.
pub fn view(rows: &[ClockSlot], rules: &RuleSet, now: Timestamp) -> Option<SlaView> {
    let first = rows.first()?;
    let mut view = SlaView {
        policy: first.clock.policy.clone(),
        calendar: first.clock.calendar.clone(),
        respond: None,
        resolve: None,
    };
    for slot in rows {
        let c = &slot.clock;
        let cal = rules.calendar(&c.calendar);
        let (breach_at, next_milestone_at) = (c.breach_at(&cal), c.next_milestone_at(&cal));
        let clock = ClockView {
            state: c.state(),
            target: c.target_ms.map(human_ms),
            target_seconds: c.target_ms.map(|t| t as f64 / 1000.0),
            elapsed_seconds: c.elapsed_ms(&cal, now) as f64 / 1000.0,
            remaining_seconds: c.remaining_ms(&cal, now).map(|r| r as f64 / 1000.0),
            warned_at: c.warned.clone(),
            breached_at: c.breached_at,
            stopped_at: c.stopped_at,
            breach_at,
            next_milestone_at,
            due_at: next_milestone_at,
            breach_due_at: breach_at,
        };
        match c.kind {
            ClockKind::Respond => view.respond = Some(clock),
            ClockKind::Resolve => view.resolve = Some(clock),
        }
    }
    Some(view)
}
