//! Notifications: email and webhook notifiers fed by the durable outbox.
//!
//! The store writes one outbox row per notifier and event in the same
//! transaction as the state change that caused it. The worker (`worker`)
//! claims due rows with a lease, hands each notifier its own queue (a slow
//! or dead receiver delays only itself), renders the notifier's templates,
//! delivers, and records the outcome: sent, retried later with exponential
//! backoff and jitter, or dead-lettered (a permanent refusal, or too old).
//! Per-notifier rate limits coalesce a storm into one digest instead of
//! dropping anything.
pub mod config;
pub mod email;
pub mod template;
pub mod webhook;
pub mod worker;

use std::sync::Arc;

use serde_json::{Value, json};

pub use crate::model::notification::{OutboxItem, Subscriptions};
pub use config::{Notifier, NotifierKind, OutboxSettings, RawNotifier, RawOutbox, Secret};

/// The notifiers of the config, by name.
#[derive(Debug, Clone, Default)]
pub struct Notifiers {
    pub list: Vec<Arc<Notifier>>,
}

impl Notifiers {
    pub fn get(&self, name: &str) -> Option<&Arc<Notifier>> {
        self.list.iter().find(|n| n.name == name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.list.iter().map(|n| n.name.as_str()).collect()
    }

    /// Which events each notifier takes, for the store's fan-out.
    pub fn subscriptions(&self) -> Subscriptions {
        Subscriptions::new(self.list.iter().map(|n| (n.name.clone(), n.events.clone())).collect())
    }
}

/// Human words for an event, for subjects and chat lines.
pub fn event_title(event: &str) -> &'static str {
    match event {
        "incident.triggered" => "Incident triggered",
        "incident.acknowledged" => "Incident acknowledged",
        "incident.resolved" => "Incident resolved",
        "incident.reopened" => "Incident reopened",
        "incident.escalated" => "Incident escalated",
        "sla.warning" => "SLA warning",
        "sla.breached" => "SLA breached",
        "problem.opened" => "Problem opened",
        "problem.known_error" => "Known error",
        "action_item.overdue" => "Action item overdue",
        "oncall.handoff" => "On-call handoff",
        "test" => "Test notification",
        _ => "Notification",
    }
}

/// What one message carries: one event, or a digest of several.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub items: Vec<OutboxItem>,
}

impl Delivery {
    pub fn is_digest(&self) -> bool {
        self.items.len() > 1
    }

    /// Stable across retries: the row's key, or the covered rows' range.
    pub fn idempotency_key(&self) -> String {
        match self.items.as_slice() {
            [one] => one.idempotency_key.clone(),
            many => {
                let first = many.first().map_or(0, |i| i.id);
                let last = many.last().map_or(0, |i| i.id);
                format!("digest-{}-{first}-{last}", many.len())
            }
        }
    }

    /// The person a page goes to (every item of a digest has the same; see
    /// the worker), if it is a page to a person.
    pub fn recipient(&self) -> Option<crate::model::person::Recipient> {
        recipient_of(self.items.first()?)
    }

    /// The incident every item is about, if there is one.
    pub fn incident_id(&self) -> Option<i64> {
        let first = self.items.first()?.incident_id?;
        self.items.iter().all(|i| i.incident_id == Some(first)).then_some(first)
    }

    /// The template context of a notifier's message, with links to the
    /// incidents' console pages when `web.external_url` is set.
    pub fn context_for(&self, n: &Notifier) -> Value {
        with_links(self.context(&n.name), n.external_url.as_deref())
    }

    /// The template context (see `template`).
    pub fn context(&self, notifier: &str) -> Value {
        let events: Vec<Value> = self
            .items
            .iter()
            .map(|i| {
                json!({
                    "event": i.event,
                    "event_title": event_title(&i.event),
                    "incident": i.payload.get("incident").cloned().unwrap_or(Value::Null),
                    "problem": i.payload.get("problem").cloned().unwrap_or(Value::Null),
                    "data": i.payload.get("data").cloned().unwrap_or(Value::Null),
                })
            })
            .collect();
        let mut ctx = events.first().cloned().unwrap_or_else(|| json!({}));
        ctx["version"] = template::WEBHOOK_SCHEMA_VERSION.into();
        ctx["notifier"] = notifier.into();
        ctx["idempotency_key"] = self.idempotency_key().into();
        ctx["digest"] = if self.is_digest() { json!({ "count": self.items.len() }) } else { Value::Null };
        if self.is_digest() {
            // A digest's subject speaks of one incident only when all are.
            if self.incident_id().is_none() {
                ctx["incident"] = Value::Null;
            }
            ctx["event"] = "digest".into();
            ctx["event_title"] = "Digest".into();
        }
        ctx["events"] = Value::Array(events);
        ctx["recipient"] = self.items.first().and_then(|i| i.payload.get("recipient")).cloned().unwrap_or(Value::Null);
        ctx
    }
}

/// The person an outbox row pages, as its payload says.
pub fn recipient_of(item: &OutboxItem) -> Option<crate::model::person::Recipient> {
    serde_json::from_value(item.payload.get("recipient")?.clone()).ok()
}

/// Give each incident of a context its console page as `url`
/// (`{external_url}/incidents/{id}`).
pub fn with_links(mut ctx: Value, external_url: Option<&str>) -> Value {
    let Some(base) = external_url else { return ctx };
    let link = |incident: &mut Value| {
        if let Some(id) = incident.get("id").and_then(Value::as_i64) {
            incident["url"] = format!("{}/incidents/{id}", base.trim_end_matches('/')).into();
        }
    };
    if let Some(i) = ctx.get_mut("incident") {
        link(i);
    }
    if let Some(events) = ctx.get_mut("events").and_then(Value::as_array_mut) {
        for e in events {
            if let Some(i) = e.get_mut("incident") {
                link(i);
            }
        }
    }
    ctx
}

/// How a delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// Worth trying again (timeouts, 5xx, 408, 429, transient SMTP errors).
    Transient(String),
    /// Retrying cannot help (4xx other than 408/429, permanent SMTP errors,
    /// a template that fails on this event).
    Permanent(String),
}

/// A test notification for `alertgate notify test`: a sample incident, so
/// every template field renders.
pub fn test_delivery(notifier: &str) -> Delivery {
    let sample = template::sample_event();
    let now = crate::clock::now();
    Delivery {
        items: vec![OutboxItem {
            id: 0,
            event: "test".into(),
            incident_id: None,
            problem_id: None,
            notifier: notifier.to_owned(),
            idempotency_key: format!("test-{}-{}", notifier, now.as_millisecond()),
            payload: json!({
                "incident": sample["incident"],
                "data": { "message": "This is a test notification from alertgate; the incident is a sample." },
            }),
            attempts: 0,
            age_from: now,
        }],
    }
}

/// Deliver one message through a notifier.
pub async fn deliver(n: &Notifier, d: &Delivery, http: &reqwest::Client) -> Outcome {
    match &n.kind {
        NotifierKind::Webhook(w) => webhook::send(n, w, d, http).await,
        NotifierKind::Email(e) => email::send(n, e, d).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: i64, incident: Option<i64>) -> OutboxItem {
        OutboxItem {
            id,
            event: "incident.triggered".into(),
            incident_id: incident,
            problem_id: None,
            notifier: "n".into(),
            idempotency_key: format!("incident-{id}-event-1-n"),
            payload: json!({ "incident": { "id": incident, "title": "t" }, "data": {} }),
            attempts: 0,
            age_from: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_digest_has_a_stable_key_and_counts_its_events() {
        let one = Delivery { items: vec![item(7, Some(1))] };
        assert_eq!(one.idempotency_key(), "incident-7-event-1-n");
        assert!(one.context("n")["digest"].is_null());
        let many = Delivery { items: vec![item(7, Some(1)), item(9, Some(2))] };
        assert_eq!(many.idempotency_key(), "digest-2-7-9");
        let ctx = many.context("n");
        assert_eq!(ctx["digest"]["count"], 2);
        assert_eq!(ctx["events"].as_array().unwrap().len(), 2);
        assert!(ctx["incident"].is_null(), "two incidents: no single one");
        assert_eq!(many.incident_id(), None);
    }

    #[test]
    fn incidents_link_to_their_console_page() {
        let d = Delivery { items: vec![item(7, Some(12))] };
        let ctx = with_links(d.context("n"), Some("https://alertgate.example.org/ag/"));
        assert_eq!(ctx["incident"]["url"], "https://alertgate.example.org/ag/incidents/12");
        assert_eq!(ctx["events"][0]["incident"]["url"], "https://alertgate.example.org/ag/incidents/12");
        let plain = with_links(d.context("n"), None);
        assert!(plain["incident"].get("url").is_none(), "no external URL, no link");
        let problem_only = with_links(json!({ "incident": null, "events": [{ "incident": null }] }), Some("http://x"));
        assert!(problem_only["incident"].is_null());
    }
}
