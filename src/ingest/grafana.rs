//! Grafana unified alerting's webhook contact point.
//!
//! The payload is Alertmanager's webhook plus Grafana's fields; per alert,
//! the dashboard, panel and silence links and the value string become
//! annotations (`dashboard_url`, `panel_url`, `silence_url`, `value_string`)
//! unless the alert already has one of that name. Everything else, such as
//! the `values` map, stays in the raw payload.
use serde::Deserialize;
use serde_json::value::RawValue;

use super::alertmanager::{WebhookAlert, convert};
use super::{Errors, IngestContext, IngestError, from_json_object};
use crate::model::{AlertUpdate, Source};

/// Grafana's webhook payload: Alertmanager's plus Grafana's fields.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = GrafanaWebhook)]
pub(crate) struct Webhook {
    #[schema(value_type = Vec<GrafanaAlert>)]
    alerts: Vec<Box<RawValue>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GrafanaAlert {
    #[serde(flatten)]
    common: WebhookAlert,
    #[serde(rename = "dashboardURL")]
    dashboard_url: Option<String>,
    #[serde(rename = "panelURL")]
    panel_url: Option<String>,
    #[serde(rename = "silenceURL")]
    silence_url: Option<String>,
    value_string: Option<String>,
}

pub fn parse(body: &str, ctx: &IngestContext) -> Result<Vec<AlertUpdate>, IngestError> {
    let hook: Webhook = from_json_object(body, "")?;
    let mut errors = Errors::default();
    let mut updates = Vec::with_capacity(hook.alerts.len());
    for (i, raw) in hook.alerts.into_iter().enumerate() {
        let path = format!("alerts[{i}]");
        let g: GrafanaAlert = match from_json_object(raw.get(), &path) {
            Ok(g) => g,
            Err(e) => {
                errors.extend(e);
                continue;
            }
        };
        let mut a = g.common;
        for (name, value) in [
            ("dashboard_url", g.dashboard_url),
            ("panel_url", g.panel_url),
            ("silence_url", g.silence_url),
            ("value_string", g.value_string),
        ] {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                a.annotations.entry(name.to_owned()).or_insert(v);
            }
        }
        if let Some(alert) = convert(a, raw, Source::Grafana, &path, ctx, &mut errors) {
            updates.push(AlertUpdate::Observe(alert));
        }
    }
    errors.finish(updates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::test_support::{ctx, fixture};

    #[test]
    fn parses_grafanas_documented_payload() {
        let updates = parse(&fixture("grafana_webhook.json"), &ctx()).unwrap();
        assert!(!updates.is_empty());
        for u in updates {
            let AlertUpdate::Observe(a) = u else { panic!("{u:?}") };
            assert_eq!(a.source, Source::Grafana);
            assert!(!a.labels.is_empty());
            assert!(a.raw.get().contains("values") || a.raw.get().contains("valueString"));
        }
    }

    #[test]
    fn grafana_links_become_annotations() {
        let body = r#"{"alerts":[{"status":"firing","labels":{"alertname":"CPU"},
            "annotations":{"summary":"hot"},"dashboardURL":"http://g/d/1","panelURL":"",
            "silenceURL":"http://g/s","valueString":"[ var='A' value=97 ]","values":{"A":97}}]}"#;
        let updates = parse(body, &ctx()).unwrap();
        let AlertUpdate::Observe(a) = &updates[0] else { panic!() };
        assert_eq!(a.annotations["dashboard_url"], "http://g/d/1");
        assert_eq!(a.annotations["silence_url"], "http://g/s");
        assert_eq!(a.annotations["value_string"], "[ var='A' value=97 ]");
        assert!(!a.annotations.contains_key("panel_url"));
        assert_eq!(a.annotations["summary"], "hot");
    }
}
