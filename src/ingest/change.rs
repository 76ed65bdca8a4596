//! Changes and deploys as senders submit them: alertgate's own JSON
//! (`POST /api/v1/changes`) and PagerDuty change events
//! (`POST /v2/change/enqueue`).
//!
//! PagerDuty change events map as follows (PagerDuty routes by the routing
//! key's service; alertgate has no such key-to-service table, so the
//! service is named in the event):
//!
//! | PagerDuty field                   | alertgate change                      |
//! |-----------------------------------|---------------------------------------|
//! | `payload.custom_details.service`, else `payload.source` | `service`   |
//! | `payload.summary`                 | `summary` (required, ≤ 1024 chars)    |
//! | `payload.timestamp`               | `start` (else the time received)      |
//! | `links[0].href`                   | `link`                                |
//! | other string `custom_details`     | `labels`                              |
//!
//! The `routing_key` is required, as by PagerDuty, and never stored.
use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

use super::alertmanager::time_field;
use super::{Errors, IngestError, from_json_object};
use crate::model::LabelSet;
use crate::model::change::NewChange;

const MAX_SUMMARY: usize = 1024;
const MAX_FIELD: usize = 2048;

/// A change as `POST /api/v1/changes` takes it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewChange)]
pub(crate) struct ApiChange {
    /// Required with `suppress`.
    service: Option<String>,
    /// Required, at most 1024 characters.
    summary: String,
    /// RFC 3339; now when absent.
    #[schema(format = DateTime)]
    start: Option<String>,
    /// RFC 3339; absent for a point in time; required with `suppress`.
    #[schema(format = DateTime)]
    end: Option<String>,
    link: Option<String>,
    #[serde(default)]
    labels: LabelSet,
    /// A maintenance window: mutes the service's alerts from start to end.
    #[serde(default)]
    suppress: bool,
    /// Who made the change (without tokens); the token's name otherwise.
    actor: Option<String>,
}

/// `POST /api/v1/changes`: `service`, `summary`, `start` (default now),
/// `end` (absent for a point in time), `link`, `labels`, `suppress`, `actor`.
pub fn parse_api(body: &str, now: Timestamp) -> Result<NewChange, IngestError> {
    let c: ApiChange = from_json_object(body, "")?;
    let mut errors = Errors::default();
    let start = time_field(c.start.as_deref(), "start", &mut errors).unwrap_or(now);
    let end = time_field(c.end.as_deref(), "end", &mut errors);
    if end.is_some_and(|e| e < start) {
        errors.push("end", "the end comes before the start");
    }
    let service = c.service.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    if c.suppress {
        if service.is_none() {
            errors.push("service", "a suppressing change (maintenance window) needs the service it mutes");
        }
        if end.is_none() {
            errors.push("end", "a suppressing change (maintenance window) needs an end");
        }
    }
    check_text(&c.summary, "summary", MAX_SUMMARY, true, &mut errors);
    if let Some(l) = &c.link {
        check_text(l, "link", MAX_FIELD, false, &mut errors);
    }
    super::check_labels_optional(&c.labels, "labels", &mut errors);
    // Empty when not given: the API names the caller then.
    let actor = c.actor.map(|a| a.trim().to_owned()).unwrap_or_default();
    check_text(&actor, "actor", 200, false, &mut errors);
    errors.finish(NewChange {
        service,
        summary: c.summary.trim().to_owned(),
        starts_at: start,
        ends_at: end,
        link: c.link,
        labels: c.labels,
        source: "api".into(),
        suppress: c.suppress,
        created_by: actor,
    })
}

fn check_text(v: &str, path: &str, max: usize, required: bool, errors: &mut Errors) {
    if required && v.trim().is_empty() {
        errors.push(path, format!("{path} is required"));
    }
    if v.chars().count() > max {
        errors.push(path, format!("longer than {max} characters"));
    }
    if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        errors.push(path, "contains a control character");
    }
}

/// A PagerDuty change event.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = PagerDutyChangeEvent)]
pub(crate) struct PdChange {
    /// An ingest token (required).
    routing_key: Option<String>,
    /// Required.
    payload: Option<PdPayload>,
    #[serde(default)]
    links: Vec<PdLink>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = PagerDutyChangePayload)]
pub(crate) struct PdPayload {
    /// Required, at most 1024 characters.
    summary: Option<String>,
    source: Option<String>,
    #[schema(format = DateTime)]
    timestamp: Option<String>,
    /// `service` names the change's service; other strings become labels.
    #[serde(default)]
    custom_details: Option<BTreeMap<String, Value>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = PagerDutyLink)]
pub(crate) struct PdLink {
    href: String,
}

/// `POST /v2/change/enqueue`, PagerDuty's change event.
pub fn parse_pagerduty(body: &str, now: Timestamp) -> Result<NewChange, IngestError> {
    let c: PdChange = from_json_object(body, "")?;
    let mut errors = Errors::default();
    if c.routing_key.as_deref().is_none_or(str::is_empty) {
        errors.push("routing_key", "routing_key is required");
    }
    let Some(p) = c.payload else {
        errors.push("payload", "payload is required");
        return Err(errors.finish(()).unwrap_err());
    };
    let summary = p.summary.unwrap_or_default();
    check_text(&summary, "payload.summary", MAX_SUMMARY, true, &mut errors);
    let start = time_field(p.timestamp.as_deref(), "payload.timestamp", &mut errors).unwrap_or(now);
    let details = p.custom_details.unwrap_or_default();
    let service = details
        .get("service")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or(p.source)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let labels: LabelSet = details
        .iter()
        .filter(|(k, _)| k.as_str() != "service" && !k.is_empty() && !k.chars().any(char::is_control))
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
        .collect();
    let link = c.links.into_iter().next().map(|l| l.href);
    if let Some(l) = &link {
        check_text(l, "links[0].href", MAX_FIELD, false, &mut errors);
    }
    errors.finish(NewChange {
        service,
        summary: summary.trim().to_owned(),
        starts_at: start,
        ends_at: None,
        link,
        labels,
        source: "pagerduty".into(),
        suppress: false,
        created_by: "pagerduty".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-11-24T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn api_change_with_defaults() {
        let c = parse_api(r#"{"service":"payments","summary":"deploy v1.2.3","labels":{"version":"1.2.3"}}"#, now())
            .unwrap();
        assert_eq!(c.service.as_deref(), Some("payments"));
        assert_eq!(c.starts_at, now());
        assert_eq!(c.ends_at, None);
        assert_eq!(c.labels.get("version").map(String::as_str), Some("1.2.3"));
        assert_eq!(c.created_by, "", "the API names the caller");
        assert!(!c.suppress);
    }

    #[test]
    fn api_change_mistakes_are_all_named() {
        let e = parse_api(
            r#"{"summary":"","start":"2026-11-24T12:00:00Z","end":"2026-11-24T11:00:00Z","suppress":true}"#,
            now(),
        )
        .unwrap_err();
        let text = e.to_string();
        for want in ["end: the end comes before", "service: a suppressing change", "summary: summary is required"] {
            assert!(text.contains(want), "{want:?} not in {text}");
        }
        let e = parse_api(r#"{"summary":"x","servce":"typo"}"#, now()).unwrap_err();
        assert!(e.to_string().contains("servce"), "{e}");
        let e = parse_api(r#"{"summary":"x","suppress":"yes"}"#, now()).unwrap_err();
        assert!(e.to_string().contains("suppress"), "{e}");
    }

    #[test]
    fn pagerduty_change_event() {
        let body = r#"{
          "routing_key": "samplekeyhere",
          "payload": {
            "summary": "Build Success: Increase snapshot create timeout to 30 seconds",
            "timestamp": "2020-07-17T08:42:58.315+0000",
            "source": "acme-build-pipeline-tool-default-i-9999",
            "custom_details": {"build_state": "passed", "build_number": "2", "run_time": "1236s", "service": "snapshots"}
          },
          "links": [{"href": "https://acme.pagerduty.dev/build/2", "text": "View more details in Acme!"}]
        }"#;
        let c = parse_pagerduty(body, now()).unwrap();
        assert_eq!(c.service.as_deref(), Some("snapshots"));
        assert_eq!(c.starts_at, "2020-07-17T08:42:58.315Z".parse::<Timestamp>().unwrap());
        assert_eq!(c.link.as_deref(), Some("https://acme.pagerduty.dev/build/2"));
        assert_eq!(c.labels.get("build_state").map(String::as_str), Some("passed"));
        assert!(!c.labels.contains_key("service"));
        assert_eq!(c.source, "pagerduty");
    }

    #[test]
    fn pagerduty_change_needs_key_and_summary() {
        let e = parse_pagerduty(r#"{"payload":{"source":"ci"}}"#, now()).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("routing_key is required") && text.contains("payload.summary"), "{text}");
        let c = parse_pagerduty(r#"{"routing_key":"k","payload":{"summary":"s","source":"web"}}"#, now()).unwrap();
        assert_eq!(c.service.as_deref(), Some("web"), "the source names the service when no detail does");
    }
}
