//! A lifecycle action on an incident, by a person or by the gateway: the
//! one transition function decides the new state; this decides what else
//! follows (timestamps, the timeline, SLA clocks, escalation, notifications,
//! measurements).
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::model::incident::{IncidentAction, IncidentState, TransitionError, transition};

/// What the action needs to know of the incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleView {
    pub state: IncidentState,
    pub created_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    /// The escalation policy of the incident's rule, if it has one.
    pub escalation: Option<String>,
    /// A post-incident review is required and not yet published.
    pub review_pending: bool,
}

/// Why an action may not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActError {
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(
        "this incident needs a published post-incident review before it closes (review: required); \
         publish it first: PATCH /api/v1/incidents/{{id}}/review {{\"state\": \"published\"}}"
    )]
    ReviewPending,
}

/// The services of the incidents whose required review is overdue at
/// `now`: resolved more than `reviews.due_within` ago, still unpublished.
/// `unreviewed` is (rule, priority, service, resolved at).
pub fn overdue_reviews(
    unreviewed: &[(String, crate::model::incident::Priority, String, Timestamp)],
    rules: &crate::rules::RuleSet,
    now: Timestamp,
) -> Vec<String> {
    let due = rules.reviews.due_within.signed();
    unreviewed
        .iter()
        .filter(|(rule, priority, _, _)| {
            review_required(rules.incident_rules.iter().find(|r| &r.name == rule), *priority, &rules.reviews)
        })
        .filter(|(_, _, _, resolved)| resolved.checked_add(due).is_ok_and(|d| d <= now))
        .map(|(_, _, service, _)| service.clone())
        .collect()
}

/// Whether an incident needs a published review before it closes: its
/// rule says `review: required`, or its priority is one the rules' `reviews`
/// section names.
pub fn review_required(
    rule: Option<&crate::rules::incident::IncidentRule>,
    priority: crate::model::incident::Priority,
    policy: &crate::rules::policy::ReviewPolicy,
) -> bool {
    rule.is_some_and(|r| r.review_required) || policy.required_for.contains(&priority)
}

/// Which instant the new state stamps on the incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// `acknowledged_at`, unless an earlier acknowledgement set it.
    FirstAcknowledged,
    /// `resolved_at` (and no automatic resolution is pending any more).
    Resolved,
    /// `resolved_at` and `closed_at` cleared.
    Reopened,
    Closed,
    Nothing,
}

/// A measurement for the metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measure {
    /// From creation to the first acknowledgement.
    Acknowledged {
        seconds: f64,
    },
    /// From creation to this resolution.
    Resolved {
        seconds: f64,
    },
    Reopened,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LifecycleEffect {
    SetState {
        to: IncidentState,
        stamp: Stamp,
    },
    /// A timeline entry at `now` under the actor's name, kind = the new state.
    Record {
        kind: &'static str,
        message: String,
        data: Value,
    },
    Measure(Measure),
    /// The SLA clocks follow the new state.
    ClocksFollow(IncidentState),
    StopEscalation {
        why: String,
    },
    StartEscalation {
        policy: String,
    },
    /// Notify the incident's notifiers of the entry recorded.
    Notify {
        event: &'static str,
        data: Value,
    },
}

/// `message: comment`, or the message alone.
pub fn with_comment(mut message: String, comment: Option<&str>) -> String {
    if let Some(c) = comment.filter(|c| !c.is_empty()) {
        message.push_str(": ");
        message.push_str(c);
    }
    message
}

/// What `action` by `actor` does to the incident at `now`, or why it may not.
pub fn act(
    view: &LifecycleView,
    action: IncidentAction,
    actor: &str,
    comment: Option<&str>,
    now: Timestamp,
) -> Result<Vec<LifecycleEffect>, ActError> {
    use IncidentAction as A;
    let from = view.state;
    let to = transition(from, action)?;
    if action == A::Close && view.review_pending {
        return Err(ActError::ReviewPending);
    }
    let seconds = (now.as_millisecond() - view.created_at.as_millisecond()).max(0) as f64 / 1000.0;
    let mut effects = Vec::new();
    match action {
        A::Acknowledge if view.acknowledged_at.is_none() => {
            effects.push(LifecycleEffect::Measure(Measure::Acknowledged { seconds }))
        }
        A::Resolve => effects.push(LifecycleEffect::Measure(Measure::Resolved { seconds })),
        A::Reopen => effects.push(LifecycleEffect::Measure(Measure::Reopened)),
        _ => {}
    }
    let stamp = match action {
        A::Acknowledge => Stamp::FirstAcknowledged,
        A::Resolve => Stamp::Resolved,
        A::Reopen => Stamp::Reopened,
        A::Close => Stamp::Closed,
        A::Hold => Stamp::Nothing,
    };
    effects.push(LifecycleEffect::SetState { to, stamp });
    let data = json!({ "from": from, "to": to, "action": action, "comment": comment, "actor": actor });
    effects.push(LifecycleEffect::Record {
        kind: to.as_str(),
        message: with_comment(format!("{from} → {to}"), comment),
        data: data.clone(),
    });
    effects.push(LifecycleEffect::ClocksFollow(to));
    effects.push(match action {
        A::Acknowledge => LifecycleEffect::StopEscalation { why: format!("acknowledged by {actor}") },
        A::Hold => LifecycleEffect::StopEscalation { why: format!("put on hold by {actor}") },
        A::Resolve | A::Close => LifecycleEffect::StopEscalation { why: "resolved".into() },
        A::Reopen => match &view.escalation {
            Some(policy) => LifecycleEffect::StartEscalation { policy: policy.clone() },
            None => return Ok(with_notice(effects, action, data)),
        },
    });
    Ok(with_notice(effects, action, data))
}

fn with_notice(mut effects: Vec<LifecycleEffect>, action: IncidentAction, data: Value) -> Vec<LifecycleEffect> {
    let event = match action {
        IncidentAction::Acknowledge => "incident.acknowledged",
        IncidentAction::Resolve => "incident.resolved",
        IncidentAction::Reopen => "incident.reopened",
        IncidentAction::Hold | IncidentAction::Close => return effects,
    };
    effects.push(LifecycleEffect::Notify { event, data });
    effects
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        format!("2026-11-24T{s}Z").parse().unwrap()
    }

    #[test]
    fn an_incident_whose_review_is_required_closes_only_once_it_is_published() {
        let resolved = LifecycleView { review_pending: true, ..view(IncidentState::Resolved, true) };
        assert_eq!(act(&resolved, IncidentAction::Close, "alice", None, t("11:00:00")), Err(ActError::ReviewPending));
        assert!(act(&resolved, IncidentAction::Reopen, "alice", None, t("11:00:00")).is_ok(), "only closing waits");
        let published = LifecycleView { review_pending: false, ..resolved };
        assert!(act(&published, IncidentAction::Close, "alice", None, t("11:00:00")).is_ok());
    }

    fn view(state: IncidentState, acknowledged: bool) -> LifecycleView {
        LifecycleView {
            state,
            created_at: t("10:00:00"),
            acknowledged_at: acknowledged.then(|| t("10:01:00")),
            escalation: Some("pager".into()),
            review_pending: false,
        }
    }

    fn names(effects: &[LifecycleEffect]) -> Vec<String> {
        effects
            .iter()
            .map(|e| match e {
                LifecycleEffect::SetState { to, stamp } => format!("state {to} {stamp:?}"),
                LifecycleEffect::Record { kind, message, .. } => format!("record {kind}: {message}"),
                LifecycleEffect::Measure(m) => format!("measure {m:?}"),
                LifecycleEffect::ClocksFollow(s) => format!("clocks {s}"),
                LifecycleEffect::StopEscalation { why } => format!("stop escalation: {why}"),
                LifecycleEffect::StartEscalation { policy } => format!("start escalation {policy}"),
                LifecycleEffect::Notify { event, .. } => format!("notify {event}"),
            })
            .collect()
    }

    #[test]
    fn each_action_and_what_follows_it() {
        use IncidentAction as A;
        use IncidentState as S;
        let cases: &[(S, bool, A, &[&str])] = &[
            (
                S::Triggered,
                false,
                A::Acknowledge,
                &[
                    "measure Acknowledged { seconds: 300.0 }",
                    "state acknowledged FirstAcknowledged",
                    "record acknowledged: triggered → acknowledged: on it",
                    "clocks acknowledged",
                    "stop escalation: acknowledged by alice",
                    "notify incident.acknowledged",
                ],
            ),
            (
                // Acknowledged before (then reopened): the time to acknowledge is not measured twice.
                S::Triggered,
                true,
                A::Acknowledge,
                &[
                    "state acknowledged FirstAcknowledged",
                    "record acknowledged: triggered → acknowledged: on it",
                    "clocks acknowledged",
                    "stop escalation: acknowledged by alice",
                    "notify incident.acknowledged",
                ],
            ),
            (
                S::Acknowledged,
                true,
                A::Hold,
                &[
                    "state on_hold Nothing",
                    "record on_hold: acknowledged → on_hold: on it",
                    "clocks on_hold",
                    "stop escalation: put on hold by alice",
                ],
            ),
            (
                S::Acknowledged,
                true,
                A::Resolve,
                &[
                    "measure Resolved { seconds: 300.0 }",
                    "state resolved Resolved",
                    "record resolved: acknowledged → resolved: on it",
                    "clocks resolved",
                    "stop escalation: resolved",
                    "notify incident.resolved",
                ],
            ),
            (
                S::Resolved,
                true,
                A::Reopen,
                &[
                    "measure Reopened",
                    "state triggered Reopened",
                    "record triggered: resolved → triggered: on it",
                    "clocks triggered",
                    "start escalation pager",
                    "notify incident.reopened",
                ],
            ),
            (
                S::Resolved,
                true,
                A::Close,
                &[
                    "state closed Closed",
                    "record closed: resolved → closed: on it",
                    "clocks closed",
                    "stop escalation: resolved",
                ],
            ),
        ];
        for (state, acked, action, want) in cases {
            let effects = act(&view(*state, *acked), *action, "alice", Some("on it"), t("10:05:00")).unwrap();
            assert_eq!(names(&effects), *want, "{state} {action:?}");
        }
    }

    #[test]
    fn a_wrong_transition_is_refused_with_nothing_to_do() {
        let err = act(&view(IncidentState::Closed, true), IncidentAction::Acknowledge, "alice", None, t("10:05:00"));
        assert!(err.is_err());
    }

    #[test]
    fn a_reopened_incident_without_a_policy_starts_no_escalation() {
        let mut v = view(IncidentState::Resolved, true);
        v.escalation = None;
        let effects = act(&v, IncidentAction::Reopen, "alertgate", None, t("10:05:00")).unwrap();
        assert!(!names(&effects).iter().any(|n| n.contains("escalation")), "{effects:#?}");
        assert_eq!(names(&effects).last().map(String::as_str), Some("notify incident.reopened"));
    }
}
