//! The Alertmanager v2 push API (`POST /api/v2/alerts`), as Prometheus uses it.
//!
//! Prometheus re-sends every firing alert each minute or so with `endsAt` a
//! few evaluation intervals ahead; if the re-sends stop, the alert resolves
//! at that `endsAt`. A resolved alert comes with `endsAt` in the past. An
//! alert without `endsAt` resolves after the configured resolve timeout, as
//! in Alertmanager.
use serde::Deserialize;
use serde_json::value::RawValue;

use super::alertmanager::time_field;
use super::{Errors, IngestContext, IngestError, check_labels, from_json, from_json_object};
use crate::model::{Alert, AlertStatus, AlertUpdate, Annotations, Fingerprint, LabelSet, Source};

/// Alertmanager's `postableAlert`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PostableAlert {
    /// At least one; names non-empty, without control characters.
    labels: LabelSet,
    #[serde(default)]
    annotations: Annotations,
    /// RFC 3339; the time received when absent.
    #[schema(format = DateTime)]
    starts_at: Option<String>,
    /// RFC 3339: firing until then unless re-sent, resolved when past.
    #[schema(format = DateTime)]
    ends_at: Option<String>,
    #[serde(rename = "generatorURL")]
    generator_url: Option<String>,
}

pub fn parse(body: &str, ctx: &IngestContext) -> Result<Vec<AlertUpdate>, IngestError> {
    let raws: Vec<Box<RawValue>> = from_json(body, "")?;
    let mut errors = Errors::default();
    let mut updates = Vec::with_capacity(raws.len());
    for (i, raw) in raws.into_iter().enumerate() {
        // Paths are formatted only for an error.
        let a: PostableAlert = match from_json_object(raw.get(), format_args!("[{i}]")) {
            Ok(a) => a,
            Err(e) => {
                errors.extend(e);
                continue;
            }
        };
        let before = errors.0.len();
        check_labels(&a.labels, format_args!("[{i}].labels"), &mut errors);
        let starts_at = time_field(a.starts_at.as_deref(), format_args!("[{i}].startsAt"), &mut errors);
        let ends_at = time_field(a.ends_at.as_deref(), format_args!("[{i}].endsAt"), &mut errors);
        if let (Some(s), Some(e)) = (starts_at, ends_at)
            && e < s
        {
            errors.push(format!("[{i}].endsAt"), "endsAt is before startsAt");
        }
        if errors.0.len() > before {
            continue;
        }
        let starts_at = starts_at.unwrap_or(ctx.now);
        let (status, ends_at, expires_at) = match ends_at {
            Some(end) if end <= ctx.now => (AlertStatus::Resolved, Some(end), None),
            Some(end) => (AlertStatus::Firing, None, Some(end)),
            None => (AlertStatus::Firing, None, Some(ctx.now.saturating_add(ctx.resolve_timeout).unwrap_or(ctx.now))),
        };
        updates.push(AlertUpdate::Observe(Alert {
            fingerprint: Fingerprint::of_labels(&a.labels),
            source: Source::Prometheus,
            labels: a.labels,
            annotations: a.annotations,
            status,
            starts_at,
            ends_at,
            expires_at,
            generator_url: a.generator_url.filter(|u| !u.is_empty()),
            raw,
        }));
    }
    errors.finish(updates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::test_support::{ctx, fixture};

    fn alerts(body: &str) -> Vec<Alert> {
        parse(body, &ctx())
            .unwrap()
            .into_iter()
            .map(|u| match u {
                AlertUpdate::Observe(a) => a,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn parses_what_real_prometheus_pushes() {
        let body = fixture("prometheus_v2_alerts.json");
        let parsed = alerts(&body);
        assert!(!parsed.is_empty());
        for a in &parsed {
            assert_eq!(a.source, Source::Prometheus);
            assert!(a.labels.contains_key("alertname"));
            assert!(a.generator_url.is_some());
        }
    }

    #[test]
    fn status_follows_ends_at() {
        // ctx().now is 2026-11-24T12:00:00Z
        let parsed = alerts(
            r#"[
            {"labels":{"a":"future"},"startsAt":"2026-11-24T11:00:00Z","endsAt":"2026-11-24T12:04:00Z"},
            {"labels":{"a":"past"},"startsAt":"2026-11-24T11:00:00Z","endsAt":"2026-11-24T11:59:00Z"},
            {"labels":{"a":"none"}}
        ]"#,
        );
        assert_eq!(parsed[0].status, AlertStatus::Firing);
        assert_eq!(parsed[0].expires_at.unwrap().to_string(), "2026-11-24T12:04:00Z");
        assert_eq!(parsed[1].status, AlertStatus::Resolved);
        assert_eq!(parsed[1].ends_at.unwrap().to_string(), "2026-11-24T11:59:00Z");
        assert_eq!(parsed[2].status, AlertStatus::Firing);
        assert_eq!(parsed[2].starts_at, ctx().now);
        assert_eq!(parsed[2].expires_at.unwrap().to_string(), "2026-11-24T12:05:00Z");
    }

    #[test]
    fn refuses_non_arrays_and_empty_labels() {
        let e = parse(r#"{"labels":{}}"#, &ctx()).unwrap_err();
        assert!(e.errors[0].message.contains("expected a sequence"), "{e}");
        let e = parse(r#"[{"labels":{}},{"annotations":{}}]"#, &ctx()).unwrap_err();
        assert_eq!(e.errors[0].path, "[0].labels");
        assert_eq!(e.errors[1].path, "[1]");
        assert!(e.errors[1].message.contains("missing field `labels`"));
    }
}
