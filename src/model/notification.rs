//! Notifications as the outbox keeps them: the events notifiers can take,
//! who takes which, a row as the worker sees it, and a row's state.
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::Value;

/// Every event a notifier can subscribe to.
pub const EVENTS: &[&str] = &[
    "incident.triggered",
    "incident.acknowledged",
    "incident.resolved",
    "incident.reopened",
    "incident.escalated",
    "sla.warning",
    "sla.breached",
    "problem.opened",
    "problem.known_error",
    "action_item.overdue",
    "oncall.handoff",
];

/// Notifier name → the events it takes. A name not listed (a notifier
/// removed from the config) takes everything, so its rows show up as
/// failed with a reason rather than vanish.
#[derive(Debug, Clone, Default)]
pub struct Subscriptions(Arc<HashMap<String, BTreeSet<String>>>);

impl Subscriptions {
    pub fn new(by_notifier: HashMap<String, BTreeSet<String>>) -> Subscriptions {
        Subscriptions(Arc::new(by_notifier))
    }

    pub fn allows(&self, notifier: &str, event: &str) -> bool {
        self.0.get(notifier).is_none_or(|events| events.contains(event))
    }
}

/// Whom notifications reach: the events each notifier takes, and the
/// people pages go to.
#[derive(Debug, Clone, Default)]
pub struct Audience {
    pub subscriptions: Subscriptions,
    pub directory: Arc<crate::model::person::Directory>,
}

/// One outbox row as the worker sees it.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub id: i64,
    pub event: String,
    pub incident_id: Option<i64>,
    pub problem_id: Option<i64>,
    pub notifier: String,
    pub idempotency_key: String,
    /// The snapshot written with the event: `incident`, `problem`, `data`.
    pub payload: Value,
    pub attempts: u32,
    /// Where its age counts from (its event, or its last manual retry).
    pub age_from: jiff::Timestamp,
}

/// Where an outbox row stands: waiting for (another) attempt, delivered,
/// or given up on (a dead letter, which a person may retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationState {
    Pending,
    Sent,
    Failed,
}

impl NotificationState {
    pub const ALL: [NotificationState; 3] =
        [NotificationState::Pending, NotificationState::Sent, NotificationState::Failed];

    pub const fn as_str(self) -> &'static str {
        match self {
            NotificationState::Pending => "pending",
            NotificationState::Sent => "sent",
            NotificationState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<NotificationState> {
        Self::ALL.into_iter().find(|n| n.as_str() == s)
    }

    /// A person may send a notification again only while it is failed
    /// (dead-lettered) or still pending.
    pub fn may_retry(self, id: i64) -> Result<(), String> {
        match self {
            NotificationState::Failed | NotificationState::Pending => Ok(()),
            other => Err(format!("notification {id} is {}; only failed or pending ones are retried", other.as_str())),
        }
    }

    /// `column = 'state'`, for the outbox's SQL.
    pub fn sql(self, column: &str) -> String {
        format!("{column} = '{}'", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_form_their_predicate() {
        for s in NotificationState::ALL {
            assert_eq!(NotificationState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(NotificationState::Pending.sql("n.state"), "n.state = 'pending'");
        assert_eq!(NotificationState::parse("dead"), None);
    }

    #[test]
    fn a_notifier_not_listed_takes_every_event() {
        let subs =
            Subscriptions::new(HashMap::from([("mail".to_string(), BTreeSet::from(["sla.breached".to_string()]))]));
        assert!(subs.allows("mail", "sla.breached"));
        assert!(!subs.allows("mail", "incident.triggered"));
        assert!(subs.allows("gone", "incident.triggered"));
    }
}
