//! Alertmanager's webhook receiver payload, version 4.
//!
//! Alertmanager sends whole groups: group fields plus `alerts[]`, each with
//! its own fingerprint, status and times. Firing alerts carry Go's zero time
//! as `endsAt`; they stay firing until Alertmanager sends them resolved.
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Errors, IngestContext, IngestError, check_labels, fingerprint, from_json_object, parse_time};
use crate::model::{Alert, AlertStatus, AlertUpdate, Annotations, LabelSet, Source};

/// Alertmanager's webhook payload (version 4); group fields other than
/// `alerts` are kept with each alert's raw payload only.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = AlertmanagerWebhook)]
pub(crate) struct Webhook {
    /// `4` when given.
    version: Option<String>,
    #[schema(value_type = Vec<WebhookAlert>)]
    alerts: Vec<Box<RawValue>>,
}

/// The per-alert fields Alertmanager and Grafana share.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebhookAlert {
    #[schema(value_type = crate::model::AlertStatus)]
    pub status: String,
    /// At least one; names non-empty, without control characters.
    pub labels: LabelSet,
    #[serde(default)]
    pub annotations: Annotations,
    /// RFC 3339; Go's zero time or empty means "not given".
    #[schema(format = DateTime)]
    pub starts_at: Option<String>,
    /// RFC 3339; Go's zero time (as firing alerts carry) or empty means "not given".
    #[schema(format = DateTime)]
    pub ends_at: Option<String>,
    #[serde(rename = "generatorURL")]
    pub generator_url: Option<String>,
    /// Alertmanager's; the label hash when absent.
    pub fingerprint: Option<String>,
}

pub fn parse(body: &str, ctx: &IngestContext) -> Result<Vec<AlertUpdate>, IngestError> {
    let hook: Webhook = from_json_object(body, "")?;
    let mut errors = Errors::default();
    if let Some(v) = hook.version.as_deref()
        && v != "4"
    {
        errors.push("version", format!("unsupported webhook version {v:?}, expected \"4\""));
    }
    let mut updates = Vec::with_capacity(hook.alerts.len());
    for (i, raw) in hook.alerts.into_iter().enumerate() {
        let path = format!("alerts[{i}]");
        match from_json_object::<WebhookAlert>(raw.get(), &path) {
            Ok(a) => {
                if let Some(alert) = convert(a, raw, Source::Alertmanager, &path, ctx, &mut errors) {
                    updates.push(AlertUpdate::Observe(alert));
                }
            }
            Err(e) => errors.extend(e),
        }
    }
    errors.finish(updates)
}

/// Turn one webhook alert into an [`Alert`], recording what is wrong with it.
pub(crate) fn convert(
    a: WebhookAlert,
    raw: Box<RawValue>,
    source: Source,
    path: &str,
    ctx: &IngestContext,
    errors: &mut Errors,
) -> Option<Alert> {
    let before = errors.0.len();
    let status = AlertStatus::parse(&a.status);
    if status.is_none() {
        errors.push(format!("{path}.status"), format!("expected \"firing\" or \"resolved\", got {:?}", a.status));
    }
    check_labels(&a.labels, format_args!("{path}.labels"), errors);
    let starts_at = time_field(a.starts_at.as_deref(), format_args!("{path}.startsAt"), errors);
    let ends_at = time_field(a.ends_at.as_deref(), format_args!("{path}.endsAt"), errors);
    let fp = fingerprint(a.fingerprint.as_deref(), &a.labels, &format!("{path}.fingerprint"), errors);
    if errors.0.len() > before {
        return None;
    }
    let status = status?;
    let starts_at = starts_at.unwrap_or(ctx.now);
    let ends_at = match status {
        AlertStatus::Firing => None,
        AlertStatus::Resolved => Some(ends_at.unwrap_or(ctx.now)),
    };
    if let Some(end) = ends_at
        && end < starts_at
    {
        errors.push(format!("{path}.endsAt"), "endsAt is before startsAt");
        return None;
    }
    Some(Alert {
        fingerprint: fp,
        source,
        labels: a.labels,
        annotations: a.annotations,
        status,
        starts_at,
        ends_at,
        expires_at: None,
        generator_url: a.generator_url.filter(|u| !u.is_empty()),
        raw,
    })
}

pub(crate) fn time_field(
    value: Option<&str>,
    path: impl std::fmt::Display,
    errors: &mut Errors,
) -> Option<jiff::Timestamp> {
    match value.map(parse_time).transpose() {
        Ok(t) => t.flatten(),
        Err(msg) => {
            errors.push(path.to_string(), msg);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::test_support::{ctx, fixture};
    use crate::model::Fingerprint;

    fn observed(u: &AlertUpdate) -> &Alert {
        match u {
            AlertUpdate::Observe(a) => a,
            other => panic!("expected an observation, got {other:?}"),
        }
    }

    #[test]
    fn parses_real_firing_and_resolved_webhooks() {
        let firing = parse(&fixture("alertmanager_webhook_firing.json"), &ctx()).unwrap();
        assert_eq!(firing.len(), 2);
        for u in &firing {
            let a = observed(u);
            assert_eq!(a.status, AlertStatus::Firing);
            assert_eq!(a.ends_at, None);
            assert_eq!(a.labels["alertname"], "HighLatency");
            // Our label hash equals the fingerprint Alertmanager computed.
            assert_eq!(a.fingerprint, Fingerprint::of_labels(&a.labels));
            assert!(a.raw.get().contains("\"fingerprint\""));
        }
        let resolved = parse(&fixture("alertmanager_webhook_resolved.json"), &ctx()).unwrap();
        assert_eq!(resolved.len(), 2);
        for (f, r) in firing.iter().zip(&resolved) {
            let (f, r) = (observed(f), observed(r));
            assert_eq!(r.status, AlertStatus::Resolved);
            assert_eq!(f.fingerprint, r.fingerprint);
            assert!(r.ends_at.unwrap() >= r.starts_at);
        }
    }

    #[test]
    fn reports_every_bad_alert_with_its_path() {
        let body = r#"{"version":"4","alerts":[
            {"status":"firing","labels":{"a":"1"},"startsAt":"2026-01-01T00:00:00Z"},
            {"status":"burning","labels":{}},
            {"status":"resolved","labels":{"a":"2"},"startsAt":"2026-01-02T00:00:00Z","endsAt":"2026-01-01T00:00:00Z"},
            {"status":"firing","labels":{"a":"3"},"startsAt":"soon"}
        ]}"#;
        let e = parse(body, &ctx()).unwrap_err();
        let paths: Vec<_> = e.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["alerts[1].status", "alerts[1].labels", "alerts[2].endsAt", "alerts[3].startsAt"]);
    }

    #[test]
    fn wrong_types_and_versions_are_refused() {
        let e = parse(r#"{"alerts":[{"status":"firing","labels":{"a":1}}]}"#, &ctx()).unwrap_err();
        assert_eq!(e.errors[0].path, "alerts[0].labels.a");
        let e = parse(r#"{"version":"3","alerts":[]}"#, &ctx()).unwrap_err();
        assert_eq!(e.errors[0].path, "version");
        let e = parse(r#"{"version":"4"}"#, &ctx()).unwrap_err();
        assert!(e.errors[0].message.contains("missing field `alerts`"), "{e}");
    }
}
