//! Any JSON, mapped to alerts by a named mapping from the config file.
//!
//! ```yaml
//! generic:
//!   uptime-kuma:
//!     alerts: /items               # JSON pointer to one alert object or an array; default: the body
//!     labels: {alertname: /monitor/name, instance: /monitor/hostname}
//!     labels_from: /tags           # an object whose members all become labels
//!     static_labels: {tool: uptime-kuma}
//!     annotations: {summary: /msg}
//!     annotations_from: /details
//!     status: {field: /heartbeat/status, firing: ["0", "down"], resolved: ["1", "up"]}
//!     fingerprint: /monitor/id     # else the label hash
//!     starts_at: /heartbeat/time   # RFC 3339, a date and time without offset (UTC), or Unix seconds / milliseconds
//!     ends_at: /heartbeat/end
//!     generator_url: /monitor/url
//! ```
//! Pointers are RFC 6901 JSON pointers relative to each alert object. A
//! mapped field that is missing or null is left out; numbers and booleans
//! become their JSON text.
use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{Errors, IngestContext, IngestError, check_labels, fingerprint, from_json, parse_time, truncate_ms};
use crate::model::{Alert, AlertStatus, AlertUpdate, Annotations, LabelSet, Source};

/// A mapping as written in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingSpec {
    #[serde(default)]
    pub alerts: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub labels_from: Option<String>,
    #[serde(default)]
    pub static_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub annotations_from: Option<String>,
    pub status: Option<StatusSpec>,
    pub fingerprint: Option<String>,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub generator_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusSpec {
    pub field: String,
    #[serde(default)]
    pub firing: Vec<String>,
    pub resolved: Vec<String>,
}

/// A checked mapping, ready to apply.
#[derive(Debug, Clone)]
pub struct Mapping {
    name: String,
    spec: MappingSpec,
}

impl Mapping {
    /// Check every pointer and the status values; report all problems.
    pub fn compile(name: &str, spec: MappingSpec) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut pointer = |what: String, p: &str| {
            if !(p.is_empty() || p.starts_with('/')) {
                problems.push(format!("{what}: {p:?} is not a JSON pointer (it must start with '/')"));
            }
        };
        pointer("alerts".into(), &spec.alerts);
        for (k, p) in &spec.labels {
            pointer(format!("labels.{k}"), p);
        }
        for (k, p) in &spec.annotations {
            pointer(format!("annotations.{k}"), p);
        }
        for (what, p) in [
            ("labels_from", &spec.labels_from),
            ("annotations_from", &spec.annotations_from),
            ("fingerprint", &spec.fingerprint),
            ("starts_at", &spec.starts_at),
            ("ends_at", &spec.ends_at),
            ("generator_url", &spec.generator_url),
        ] {
            if let Some(p) = p {
                pointer(what.into(), p);
            }
        }
        if let Some(s) = &spec.status {
            pointer("status.field".into(), &s.field);
            if s.resolved.is_empty() {
                problems.push("status.resolved: list at least one value that means resolved".into());
            }
            if let Some(v) = s.firing.iter().find(|v| s.resolved.contains(v)) {
                problems.push(format!("status: {v:?} is listed as both firing and resolved"));
            }
        }
        if spec.labels.is_empty()
            && spec.labels_from.is_none()
            && spec.static_labels.is_empty()
            && spec.fingerprint.is_none()
        {
            problems.push("give labels, labels_from, static_labels or fingerprint: alerts need an identity".into());
        }
        if problems.is_empty() { Ok(Mapping { name: name.to_owned(), spec }) } else { Err(problems) }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn parse(&self, body: &str, ctx: &IngestContext) -> Result<Vec<AlertUpdate>, IngestError> {
        let doc: Value = from_json(body, "")?;
        let mut errors = Errors::default();
        let root = if self.spec.alerts.is_empty() { Some(&doc) } else { doc.pointer(&self.spec.alerts) };
        let items: Vec<(String, &Value)> = match root {
            Some(Value::Array(items)) => {
                items.iter().enumerate().map(|(i, v)| (format!("{}/{i}", self.spec.alerts), v)).collect()
            }
            Some(v @ Value::Object(_)) => vec![(self.spec.alerts.clone(), v)],
            _ => {
                errors.push(self.spec.alerts.clone(), "expected an alert object or an array of them here");
                vec![]
            }
        };
        let mut updates = Vec::with_capacity(items.len());
        for (path, item) in items {
            if let Some(a) = self.alert(item, &path, ctx, &mut errors) {
                updates.push(AlertUpdate::Observe(a));
            }
        }
        errors.finish(updates)
    }

    fn alert(&self, item: &Value, path: &str, ctx: &IngestContext, errors: &mut Errors) -> Option<Alert> {
        let before = errors.0.len();
        let s = &self.spec;
        let mut labels: LabelSet = s.static_labels.clone();
        if let Some(p) = &s.labels_from {
            collect_object(item, p, path, &mut labels, errors);
        }
        for (name, p) in &s.labels {
            if let Some(v) = text_at(item, p) {
                labels.insert(name.clone(), v);
            }
        }
        let mut annotations = Annotations::new();
        if let Some(p) = &s.annotations_from {
            collect_object(item, p, path, &mut annotations, errors);
        }
        for (name, p) in &s.annotations {
            if let Some(v) = text_at(item, p) {
                annotations.insert(name.clone(), v);
            }
        }
        let status = match &s.status {
            None => AlertStatus::Firing,
            Some(st) => match text_at(item, &st.field) {
                Some(v) if st.resolved.contains(&v) => AlertStatus::Resolved,
                Some(v) if st.firing.is_empty() || st.firing.contains(&v) => AlertStatus::Firing,
                None if st.firing.is_empty() => AlertStatus::Firing,
                other => {
                    errors.push(
                        format!("{path}{}", st.field),
                        format!(
                            "status value {other:?} is neither firing {:?} nor resolved {:?}",
                            st.firing, st.resolved
                        ),
                    );
                    AlertStatus::Firing
                }
            },
        };
        let fp_text = s.fingerprint.as_deref().and_then(|p| text_at(item, p));
        if fp_text.is_none() {
            check_labels(&labels, format_args!("{path} (mapped labels)"), errors);
        }
        let fp = fingerprint(fp_text.as_deref(), &labels, &format!("{path} (fingerprint)"), errors);
        let starts_at = s.starts_at.as_deref().and_then(|p| time_at(item, p, path, errors));
        let ends_at = s.ends_at.as_deref().and_then(|p| time_at(item, p, path, errors));
        if errors.0.len() > before {
            return None;
        }
        let starts_at = starts_at.unwrap_or(ctx.now);
        let ends_at = match status {
            AlertStatus::Firing => None,
            AlertStatus::Resolved => Some(ends_at.unwrap_or(ctx.now).max(starts_at)),
        };
        Some(Alert {
            fingerprint: fp,
            source: Source::Generic(self.name.clone()),
            labels,
            annotations,
            status,
            starts_at,
            ends_at,
            expires_at: None,
            generator_url: s.generator_url.as_deref().and_then(|p| text_at(item, p)),
            raw: RawValue::from_string(item.to_string()).ok()?,
        })
    }
}

fn text_at(item: &Value, pointer: &str) -> Option<String> {
    match item.pointer(pointer)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn collect_object(item: &Value, pointer: &str, path: &str, into: &mut BTreeMap<String, String>, errors: &mut Errors) {
    match item.pointer(pointer) {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => continue,
                    other => other.to_string(),
                };
                into.insert(k.clone(), text);
            }
        }
        Some(_) => errors.push(format!("{path}{pointer}"), "expected an object"),
    }
}

fn time_at(item: &Value, pointer: &str, path: &str, errors: &mut Errors) -> Option<Timestamp> {
    let result = match item.pointer(pointer)? {
        Value::String(s) => parse_time(s).or_else(|e| civil_utc(s).ok_or(e)),
        Value::Number(n) => {
            let secs = n.as_f64().unwrap_or(f64::NAN);
            // Numbers past 1e11 are taken as milliseconds: seconds that
            // large are thousands of years away.
            let ms = if secs.abs() > 1e11 { secs } else { secs * 1000.0 };
            if ms.is_finite() {
                Timestamp::from_millisecond(ms as i64).map(|t| Some(truncate_ms(t))).map_err(|e| e.to_string())
            } else {
                Err(format!("{n} is not a time"))
            }
        }
        Value::Null => Ok(None),
        other => Err(format!("expected a time, got {other}")),
    };
    result.unwrap_or_else(|msg| {
        errors.push(format!("{path}{pointer}"), msg);
        None
    })
}

/// `2024-09-24 23:51:35.527`: a date and time without an offset, as some
/// tools (Uptime Kuma) send, is taken as UTC.
fn civil_utc(s: &str) -> Option<Option<Timestamp>> {
    let dt: jiff::civil::DateTime = s.trim().parse().ok()?;
    let t = dt.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    Some(Some(truncate_ms(t)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::test_support::ctx;

    #[test]
    fn times_without_an_offset_are_utc() {
        assert_eq!(civil_utc("2024-09-24 23:51:35.527"), Some(Some("2024-09-24T23:51:35.527Z".parse().unwrap())));
        assert_eq!(civil_utc("yesterday"), None);
    }

    fn mapping(yaml: &str) -> Mapping {
        let spec: MappingSpec = crate::yaml::from_str(yaml).unwrap();
        Mapping::compile("kuma", spec).unwrap()
    }

    fn observe(u: AlertUpdate) -> Alert {
        match u {
            AlertUpdate::Observe(a) => a,
            other => panic!("{other:?}"),
        }
    }

    const KUMA: &str = r#"
alerts: /items
labels: {alertname: /monitor/name, instance: /monitor/url}
labels_from: /tags
static_labels: {tool: kuma}
annotations: {summary: /msg}
status: {field: /status, firing: ["0"], resolved: ["1"]}
fingerprint: /monitor/id
starts_at: /time
"#;

    #[test]
    fn maps_fields_to_an_alert() {
        let m = mapping(KUMA);
        let body = r#"{"items":[
            {"monitor":{"id":42,"name":"web","url":"http://x"},"tags":{"team":"a","prio":1},
             "msg":"down","status":0,"time":1764000000},
            {"monitor":{"id":43,"name":"api"},"status":1,"time":"2026-11-24T10:00:00Z"}]}"#;
        let alerts: Vec<_> = m.parse(body, &ctx()).unwrap().into_iter().map(observe).collect();
        assert_eq!(alerts.len(), 2);
        let a = &alerts[0];
        assert_eq!(a.fingerprint.as_str(), "42");
        assert_eq!(a.source.to_string(), "generic:kuma");
        assert_eq!(a.labels["alertname"], "web");
        assert_eq!(a.labels["team"], "a");
        assert_eq!(a.labels["prio"], "1");
        assert_eq!(a.labels["tool"], "kuma");
        assert_eq!(a.annotations["summary"], "down");
        assert_eq!(a.status, AlertStatus::Firing);
        assert_eq!(a.starts_at.as_second(), 1764000000);
        assert_eq!(alerts[1].status, AlertStatus::Resolved);
        assert!(!alerts[1].labels.contains_key("instance"));
    }

    #[test]
    fn unknown_status_values_and_bad_shapes_are_refused() {
        let m = mapping(KUMA);
        let e = m.parse(r#"{"items":[{"monitor":{"id":1},"status":7}]}"#, &ctx()).unwrap_err();
        assert_eq!(e.errors[0].path, "/items/0/status");
        let e = m.parse(r#"{"items":"nope"}"#, &ctx()).unwrap_err();
        assert_eq!(e.errors[0].path, "/items");
        let e = m.parse("{not json", &ctx()).unwrap_err();
        assert!(e.errors[0].message.contains("line 1"), "{e}");
    }

    #[test]
    fn compile_reports_every_problem() {
        let spec: MappingSpec =
            crate::yaml::from_str("labels: {a: 'monitor'}\nstatus: {field: x, firing: [a], resolved: [a]}\n").unwrap();
        let problems = Mapping::compile("m", spec).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        let bad: Result<MappingSpec, _> = crate::yaml::from_str("labelz: {}\n");
        assert!(bad.is_err());
    }
}
