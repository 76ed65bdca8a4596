//! The PagerDuty Events API v2 (`POST /v2/enqueue`).
//!
//! Field mapping for `trigger` events:
//!
//! | PagerDuty                    | alertgate                                  |
//! |------------------------------|--------------------------------------------|
//! | `dedup_key`                  | fingerprint (else the label hash)          |
//! | `payload.class`, else `payload.summary` | label `alertname`               |
//! | `payload.severity`           | label `severity`                           |
//! | `payload.source`             | label `instance`                           |
//! | `payload.component`, `payload.group` | labels `component`, `group`        |
//! | `payload.summary`            | annotation `summary`                       |
//! | `payload.custom_details`     | one annotation per member (non-strings as JSON); a non-object as `details` |
//! | `client`, `client_url`       | annotations `client`, `client_url`; `client_url` is also the generator URL |
//! | `payload.timestamp`          | startsAt (else the time received)          |
//!
//! `acknowledge` and `resolve` need only `dedup_key`. The `routing_key` is a
//! credential and is never stored as a label or annotation.
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::alertmanager::time_field;
use super::{Errors, IngestContext, IngestError, check_labels, fingerprint, from_json_object};
use crate::model::{Alert, AlertStatus, AlertUpdate, Annotations, Fingerprint, LabelSet, Source};

const SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];
const MAX_SUMMARY: usize = 1024;

/// A PagerDuty Events API v2 event.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = PagerDutyEvent)]
pub(crate) struct Event {
    /// An ingest token (required).
    routing_key: Option<String>,
    /// `trigger`, `acknowledge` or `resolve` (required).
    #[schema(value_type = Option<EventAction>)]
    event_action: Option<String>,
    dedup_key: Option<String>,
    payload: Option<Payload>,
    client: Option<String>,
    client_url: Option<String>,
}

#[derive(utoipa::ToSchema)]
#[schema(as = PagerDutyEventAction, rename_all = "lowercase")]
#[allow(dead_code)] // the schema of `event_action`, which is parsed by hand
pub(crate) enum EventAction {
    Trigger,
    Acknowledge,
    Resolve,
}

/// What a `trigger` event is about (required for it).
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = PagerDutyPayload)]
pub(crate) struct Payload {
    /// Required, at most 1024 characters.
    summary: Option<String>,
    /// Required.
    source: Option<String>,
    /// Required: `critical`, `error`, `warning` or `info`.
    severity: Option<String>,
    #[schema(format = DateTime)]
    timestamp: Option<String>,
    component: Option<String>,
    group: Option<String>,
    class: Option<String>,
    custom_details: Option<Value>,
}

/// A parsed event and the dedup key to answer with.
#[derive(Debug)]
pub struct Enqueued {
    pub update: AlertUpdate,
    pub dedup_key: Fingerprint,
}

pub fn parse(body: &str, ctx: &IngestContext) -> Result<Enqueued, IngestError> {
    let event: Event = from_json_object(body, "")?;
    let mut errors = Errors::default();
    if event.routing_key.as_deref().is_none_or(str::is_empty) {
        errors.push("routing_key", "routing_key is required");
    }
    let action = event.event_action.as_deref().unwrap_or_default();
    match action {
        "trigger" => {
            let alert = trigger(event, body, ctx, &mut errors);
            errors.finish(())?;
            let alert = alert.ok_or_else(|| IngestError::single("", "the event could not be read"))?;
            Ok(Enqueued { dedup_key: alert.fingerprint.clone(), update: AlertUpdate::Observe(alert) })
        }
        "acknowledge" | "resolve" => {
            let key = match event.dedup_key.as_deref().filter(|k| !k.is_empty()) {
                None => {
                    errors.push("dedup_key", format!("dedup_key is required for {action}"));
                    None
                }
                Some(k) => Fingerprint::parse(k).map_err(|e| errors.push("dedup_key", e.to_string())).ok(),
            };
            errors.finish(())?;
            let fingerprint = key.expect("no errors means a key");
            let update = if action == "resolve" {
                AlertUpdate::Resolve { fingerprint: fingerprint.clone() }
            } else {
                AlertUpdate::Acknowledge { fingerprint: fingerprint.clone() }
            };
            Ok(Enqueued { update, dedup_key: fingerprint })
        }
        "" => {
            errors.push("event_action", "event_action is required");
            Err(errors.finish(()).unwrap_err())
        }
        other => {
            errors.push(
                "event_action",
                format!("unknown event_action {other:?}: expected trigger, acknowledge or resolve"),
            );
            Err(errors.finish(()).unwrap_err())
        }
    }
}

fn trigger(event: Event, body: &str, ctx: &IngestContext, errors: &mut Errors) -> Option<Alert> {
    let Some(p) = event.payload else {
        errors.push("payload", "payload is required for trigger");
        return None;
    };
    let summary = non_empty(p.summary);
    match &summary {
        None => errors.push("payload.summary", "payload.summary is required"),
        Some(s) if s.chars().count() > MAX_SUMMARY => {
            errors.push("payload.summary", format!("longer than {MAX_SUMMARY} characters"))
        }
        Some(_) => {}
    }
    let source = non_empty(p.source);
    if source.is_none() {
        errors.push("payload.source", "payload.source is required");
    }
    let severity = non_empty(p.severity);
    match severity.as_deref() {
        None => errors.push("payload.severity", "payload.severity is required"),
        Some(s) if !SEVERITIES.contains(&s) => errors
            .push("payload.severity", format!("unknown severity {s:?}: expected critical, error, warning or info")),
        Some(_) => {}
    }
    let starts_at = time_field(p.timestamp.as_deref(), "payload.timestamp", errors);

    let mut labels = LabelSet::new();
    let alertname = non_empty(p.class.clone()).or_else(|| summary.clone());
    for (name, value) in [
        ("alertname", alertname),
        ("severity", severity),
        ("instance", source),
        ("component", non_empty(p.component)),
        ("group", non_empty(p.group)),
        ("class", non_empty(p.class)),
    ] {
        if let Some(v) = value {
            labels.insert(name.to_owned(), v);
        }
    }
    check_labels(&labels, "payload", errors);

    let mut annotations = Annotations::new();
    match p.custom_details {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                let text = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                annotations.insert(k, text);
            }
        }
        Some(Value::String(s)) => {
            annotations.insert("details".to_owned(), s);
        }
        Some(other) => {
            annotations.insert("details".to_owned(), other.to_string());
        }
    }
    if let Some(s) = summary {
        annotations.insert("summary".to_owned(), s);
    }
    let client_url = non_empty(event.client_url);
    if let Some(c) = non_empty(event.client) {
        annotations.insert("client".to_owned(), c);
    }
    if let Some(u) = &client_url {
        annotations.insert("client_url".to_owned(), u.clone());
    }
    let fp = fingerprint(event.dedup_key.as_deref(), &labels, "dedup_key", errors);
    // The routing key is a credential: the stored event keeps everything else.
    // Fields the typed parse skipped may still hold JSON that serde_json's
    // `Value` refuses (a number beyond f64, a lone surrogate): name them.
    let mut event_json: serde_json::Map<String, Value> = match serde_json::from_str(body) {
        Ok(m) => m,
        Err(e) => {
            errors.push("", format!("the event holds a value that cannot be stored: {e}"));
            return None;
        }
    };
    event_json.remove("routing_key");
    let raw = match RawValue::from_string(Value::Object(event_json).to_string()) {
        Ok(r) => r,
        Err(e) => {
            errors.push("", format!("the event cannot be stored: {e}"));
            return None;
        }
    };
    Some(Alert {
        fingerprint: fp,
        source: Source::PagerDuty,
        labels,
        annotations,
        status: AlertStatus::Firing,
        starts_at: starts_at.unwrap_or(ctx.now),
        ends_at: None,
        expires_at: None,
        generator_url: client_url,
        raw,
    })
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::test_support::{ctx, fixture};

    #[test]
    fn trigger_maps_fields_to_labels_and_annotations() {
        let e = parse(&fixture("pagerduty_trigger.json"), &ctx()).unwrap();
        let AlertUpdate::Observe(a) = &e.update else { panic!("{e:?}") };
        assert_eq!(a.source, Source::PagerDuty);
        assert_eq!(a.fingerprint, e.dedup_key);
        assert!(a.labels.contains_key("alertname"));
        assert!(a.labels.contains_key("severity"));
        assert!(a.labels.contains_key("instance"));
        assert!(a.annotations.contains_key("summary"));
        assert!(!a.raw.get().is_empty());
        let raw: Value = serde_json::from_str(a.raw.get()).unwrap();
        assert_eq!(raw["event_action"], "trigger");
        assert!(raw.get("routing_key").is_none(), "the credential is not stored");
    }

    #[test]
    fn acknowledge_and_resolve_need_only_the_key() {
        let ack = parse(&fixture("pagerduty_acknowledge.json"), &ctx()).unwrap();
        assert!(matches!(ack.update, AlertUpdate::Acknowledge { .. }));
        let res = parse(&fixture("pagerduty_resolve.json"), &ctx()).unwrap();
        assert!(matches!(res.update, AlertUpdate::Resolve { .. }));
        assert_eq!(ack.dedup_key, res.dedup_key);
    }

    #[test]
    fn without_dedup_key_the_label_hash_is_stable() {
        let body = r#"{"routing_key":"k","event_action":"trigger",
            "payload":{"summary":"disk full","source":"db1","severity":"error"}}"#;
        let a = parse(body, &ctx()).unwrap();
        let b = parse(body, &ctx()).unwrap();
        assert_eq!(a.dedup_key, b.dedup_key);
        assert_eq!(a.dedup_key.as_str().len(), 16);
    }

    #[test]
    fn invalid_events_name_every_problem() {
        let e = parse(r#"{"routing_key":"k","event_action":"explode"}"#, &ctx()).unwrap_err();
        assert_eq!(e.errors[0].path, "event_action");
        assert!(e.errors[0].message.contains("explode"));
        let e = parse(r#"{"event_action":"trigger","payload":{"summary":"","severity":"fatal"}}"#, &ctx()).unwrap_err();
        let paths: Vec<_> = e.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["routing_key", "payload.summary", "payload.source", "payload.severity"]);
        let e = parse(r#"{"routing_key":"k","event_action":"resolve"}"#, &ctx()).unwrap_err();
        assert_eq!(e.errors[0].path, "dedup_key");
        let e = parse(r#"{"routing_key":"k","event_action":"trigger","payload":[]}"#, &ctx()).unwrap_err();
        assert_eq!(e.errors[0].path, "payload");
    }
}
