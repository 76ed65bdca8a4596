//! The correlation engine: pure decisions on model types, no I/O.
//!
//! For each alert that arrives or changes, the store gathers what is known
//! about its group (the incident it belongs to, the latest incident of its
//! key, the pending group) and asks the engine what to do; the store then
//! applies the answer in the same transaction as the alert itself, so the
//! grouping state is as durable as the alert and a restart or a reload
//! changes nothing about which incident an alert joins.
pub mod ack;
pub mod desk;
pub mod escalation;
pub mod handoff;
pub mod heartbeat;
pub mod inhibit;
pub mod lifecycle;
pub mod mute;
pub mod notify;
pub mod opening;
pub mod paging;
pub mod pending;
pub mod plan;
pub mod problems;
pub mod report;
pub mod silence;
pub mod similar;
pub mod sla;
pub mod timeline;

use jiff::Timestamp;

use crate::model::incident::IncidentState;
use crate::model::{AlertStatus, MuteReason, Observation};
use crate::rules::RuleSet;
use crate::rules::incident::IncidentRule;

/// The rules an alert's labels route to: the first match, and any further
/// matches while the matched rules say `continue: true`.
pub fn route<'r>(rules: &'r RuleSet, labels: &crate::model::LabelSet) -> Vec<&'r IncidentRule> {
    rules.route(labels)
}

/// Where a firing alert goes: muted (and why), or to these routes
/// (incident rules, with what the caller keeps beside each).
#[derive(Debug)]
pub enum Routing<R> {
    Muted(MuteReason),
    Route(Vec<R>),
}

/// Route a firing alert whose labels route to `routes`. `muted` is what
/// silences and inhibit rules say; `maintenance` names the maintenance
/// window (a change id) a route's service is in. Routes in maintenance are
/// skipped; an alert all of whose routes are in maintenance is muted by
/// the first window.
pub fn route_firing<R>(
    routes: Vec<R>,
    muted: Option<MuteReason>,
    maintenance: impl Fn(&R) -> Option<i64>,
) -> Routing<R> {
    if let Some(reason) = muted {
        return Routing::Muted(reason);
    }
    let windows: Vec<Option<i64>> = routes.iter().map(&maintenance).collect();
    match windows.iter().flatten().next() {
        Some(id) if windows.iter().all(Option::is_some) => Routing::Muted(MuteReason::Maintenance(*id)),
        _ => Routing::Route(routes.into_iter().zip(&windows).filter(|(_, w)| w.is_none()).map(|(r, _)| r).collect()),
    }
}

/// What silences and inhibit rules say of a firing alert: a silence wins.
pub fn mute_reason(silenced_by: Option<i64>, inhibited: bool) -> Option<MuteReason> {
    match silenced_by {
        Some(id) => Some(MuteReason::Silence(id)),
        None if inhibited => Some(MuteReason::Inhibited),
        None => None,
    }
}

/// An incident as the engine needs to see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncidentView {
    pub id: i64,
    pub state: IncidentState,
    pub created_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
}

/// A group of alerts that does not qualify for an incident yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingView {
    pub first_fired_at: Timestamp,
    /// Firing alerts in the group, this one included if it is in it.
    pub firing: u32,
    pub contains_alert: bool,
}

/// What the store knows about one alert's group under one rule.
#[derive(Debug, Clone, Copy, Default)]
pub struct GroupView {
    /// The latest incident of this rule this alert belongs to.
    pub own_incident: Option<IncidentView>,
    /// The latest incident of the group key, whichever alerts it has.
    pub latest_for_key: Option<IncidentView>,
    pub pending: Option<PendingView>,
}

/// What to do with a firing alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FiringDecision {
    /// It already belongs to this open incident.
    AlreadyIn(i64),
    /// A repeat of an alert whose incident was resolved while it kept
    /// firing: the sender's periodic re-send is not news.
    Ignore,
    /// Link it to this open incident of its key.
    Join(i64),
    /// It re-fired within the flap window: reopen its resolved incident.
    Reopen(i64),
    /// Hold it in the pending group; the group does not qualify yet.
    Hold,
    /// Open a new incident with the pending group's alerts and this one.
    Open,
}

/// Decide for a firing alert under one rule. `newly_fired` is true when
/// the alert was just created or went from resolved to firing, false for a
/// repeat of an alert that was firing already.
pub fn firing(rule: &IncidentRule, group: &GroupView, newly_fired: bool, now: Timestamp) -> FiringDecision {
    if let Some(id) = already_in(group.own_incident) {
        return FiringDecision::AlreadyIn(id);
    }
    if let Some(own) = group.own_incident {
        if !newly_fired {
            return FiringDecision::Ignore;
        }
        // A resolved incident does not absorb new alerts (unlike Keep
        // #2481) unless this very alert re-fires within the flap window.
        if own.state == IncidentState::Resolved
            && let Some(resolved) = own.resolved_at
            && now.duration_since(resolved) <= rule.flap_window.signed()
        {
            return FiringDecision::Reopen(own.id);
        }
    }
    if let Some(latest) = group.latest_for_key
        && latest.state.is_open()
        && now.duration_since(latest.created_at) <= rule.group_window.signed()
    {
        return FiringDecision::Join(latest.id);
    }
    let (first_fired_at, firing) = match group.pending {
        Some(p) => (p.first_fired_at, if p.contains_alert { p.firing } else { p.firing + 1 }),
        None => (now, 1),
    };
    if qualifies(rule, first_fired_at, firing, now) { FiringDecision::Open } else { FiringDecision::Hold }
}

/// When a pending group whose oldest held alert fired at `first_fired_at`
/// qualifies by time alone; `None` when the rule waits for no duration.
pub fn pending_due(rule: &IncidentRule, first_fired_at: Timestamp) -> Option<Timestamp> {
    (rule.min_duration.as_millis() > 0)
        .then(|| first_fired_at.checked_add(rule.min_duration.signed()).unwrap_or(Timestamp::MAX))
}

/// The open incident of the rule an alert already belongs to: it stays
/// there (marked firing again), whatever else its group holds. Known from
/// the alert's own incident alone, so the store asks it before loading the
/// rest of the group.
pub fn already_in(own_incident: Option<IncidentView>) -> Option<i64> {
    own_incident.filter(|own| own.state.is_open()).map(|own| own.id)
}

/// What reopening a flapping incident does, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum FlapStep {
    Reopen,
    /// Count the flap on the incident (and in the metrics).
    CountFlap,
    Record(crate::engine::sla::Entry),
    /// The alert fires in it again.
    MarkFiring,
}

/// The alert `fingerprint` fired again within `rule`'s flap window: its
/// resolved incident reopens.
pub fn flap_reopen(rule: &IncidentRule, fingerprint: &crate::model::Fingerprint, now: Timestamp) -> Vec<FlapStep> {
    vec![
        FlapStep::Reopen,
        FlapStep::CountFlap,
        FlapStep::Record(crate::engine::timeline::flapping(fingerprint, rule.flap_window, now)),
        FlapStep::MarkFiring,
    ]
}

/// A pending group opens its incident once it has `min_alerts` firing
/// alerts, or once its first alert has fired for `min_duration`.
pub fn qualifies(rule: &IncidentRule, first_fired_at: Timestamp, firing: u32, now: Timestamp) -> bool {
    if firing >= rule.min_alerts && rule.min_duration.as_millis() == 0 {
        return true;
    }
    let persisted = rule.min_duration.as_millis() > 0
        && now.duration_since(first_fired_at) >= rule.min_duration.signed()
        && firing > 0;
    let enough = rule.min_alerts > 1 && firing >= rule.min_alerts;
    persisted || enough
}

/// When an incident whose alerts are all resolved resolves itself; `None`
/// when the rule says `never`.
pub fn auto_resolve_at(rule: Option<&IncidentRule>, all_resolved_at: Timestamp) -> Option<Timestamp> {
    let after = match rule {
        Some(r) => r.auto_resolve_after?,
        None => crate::model::Duration::ZERO,
    };
    all_resolved_at.checked_add(after.signed()).ok()
}

/// What a stored alert's change means for incidents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertRouting {
    /// It stopped firing: its incidents may resolve, its pending groups shrink.
    Resolved,
    /// It fires: route it (`newly` when it was created or fired again,
    /// not for a sender's periodic re-send).
    Firing {
        newly: bool,
    },
    Nothing,
}

/// What an observation of an alert with `status` means for incidents.
pub fn on_observation(obs: Observation, status: AlertStatus) -> AlertRouting {
    match (obs, status) {
        (Observation::Stale, _) => AlertRouting::Nothing,
        (Observation::Resolved, _) => AlertRouting::Resolved,
        (Observation::Created | Observation::Refired, AlertStatus::Firing) => AlertRouting::Firing { newly: true },
        (Observation::Repeated, AlertStatus::Firing) => AlertRouting::Firing { newly: false },
        (_, AlertStatus::Resolved) => AlertRouting::Nothing,
    }
}

/// Is the alert's status one that can open or join incidents?
pub fn is_firing(status: AlertStatus) -> bool {
    status == AlertStatus::Firing
}

#[cfg(test)]
mod tests;
