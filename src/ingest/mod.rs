//! One module per sender format, each turning a request body into
//! [`AlertUpdate`]s. Parsing is pure: it takes `now` and the settings it needs
//! and reports every invalid field of a request at once, so a sender fixing
//! its payload sees all problems in one 400.
pub mod alertmanager;
pub mod change;
pub mod generic;
pub mod grafana;
pub mod pagerduty;
pub mod prometheus;
pub mod scan;

use std::fmt;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{Fingerprint, LabelSet};

/// What every parser needs besides the body.
#[derive(Debug, Clone, Copy)]
pub struct IngestContext {
    pub now: Timestamp,
    /// How long a firing alert without an end time stays firing unless
    /// repeated (Alertmanager's `resolve_timeout`).
    pub resolve_timeout: SignedDuration,
}

/// One invalid field: where it is and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

/// Why a request body was refused; nothing of it is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct IngestError {
    pub errors: Vec<FieldError>,
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            if e.path.is_empty() {
                write!(f, "{}", e.message)?;
            } else {
                write!(f, "{}: {}", e.path, e.message)?;
            }
        }
        Ok(())
    }
}

impl IngestError {
    pub fn single(path: impl Into<String>, message: impl Into<String>) -> Self {
        IngestError { errors: vec![FieldError { path: path.into(), message: message.into() }] }
    }
}

/// Collects field errors while a payload is checked.
#[derive(Debug, Default)]
pub(crate) struct Errors(Vec<FieldError>);

impl Errors {
    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { path: path.into(), message: message.into() });
    }

    pub(crate) fn extend(&mut self, e: IngestError) {
        self.0.extend(e.errors);
    }

    pub(crate) fn finish<T>(self, value: T) -> Result<T, IngestError> {
        if self.0.is_empty() { Ok(value) } else { Err(IngestError { errors: self.0 }) }
    }
}

/// Deserialize JSON, naming the path of the first wrong or missing field.
pub(crate) fn from_json<T: DeserializeOwned>(json: &str, prefix: impl std::fmt::Display) -> Result<T, IngestError> {
    // Parsed plainly first: tracking the path costs every payload, and
    // only one that fails needs it (parsed again, for the message).
    if let Ok(v) = serde_json::from_str(json) {
        return Ok(v);
    }
    let prefix = prefix.to_string();
    let mut de = serde_json::Deserializer::from_str(json);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => match de.end() {
            Ok(()) => Ok(v),
            Err(e) => Err(IngestError::single(prefix, json_message(&e))),
        },
        Err(e) => {
            let inner = e.path().to_string();
            let path = join_path(&prefix, if inner == "." { "" } else { &inner });
            Err(IngestError::single(path, json_message(e.inner())))
        }
    }
}

/// Deserialize a JSON object into the struct `T`. serde also fills a struct
/// from an array of its fields in order (`[null, "alice"]` as `{actor,
/// assignee}`), which no sender means: an array is refused.
pub(crate) fn from_json_object<T: DeserializeOwned>(
    json: &str,
    prefix: impl std::fmt::Display,
) -> Result<T, IngestError> {
    if json.trim_start().starts_with('[') {
        return Err(IngestError::single(prefix.to_string(), "expected a JSON object, got an array"));
    }
    from_json(json, prefix)
}

fn json_message(e: &serde_json::Error) -> String {
    // serde_json appends " at line L column C"; keep it for syntax errors,
    // where the position is the only useful pointer.
    e.to_string()
}

pub(crate) fn join_path(prefix: &str, inner: &str) -> String {
    match (prefix.is_empty(), inner.is_empty()) {
        (true, _) => inner.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) if inner.starts_with('[') => format!("{prefix}{inner}"),
        (false, false) => format!("{prefix}.{inner}"),
    }
}

/// Parse an RFC 3339 time to the store's millisecond resolution. Go's zero
/// time (`0001-01-01T00:00:00Z`), which Alertmanager sends for "no end",
/// means `None`.
pub(crate) fn parse_time(s: &str) -> Result<Option<Timestamp>, String> {
    if s.is_empty() || s.starts_with("0001-01-01T00:00:00") {
        return Ok(None);
    }
    let ts: Timestamp = s.parse().map_err(|e| format!("expected an RFC 3339 time, got {s:?}: {e}"))?;
    Ok(Some(truncate_ms(ts)))
}

pub(crate) fn truncate_ms(ts: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(ts.as_millisecond()).unwrap_or(ts)
}

/// Check label names, allowing an empty set.
pub(crate) fn check_labels_optional(labels: &LabelSet, path: impl std::fmt::Display, errors: &mut Errors) {
    if !labels.is_empty() {
        check_labels(labels, path, errors);
    }
}

/// Check a label set: at least one label, names non-empty and free of
/// control characters. Values are data and may hold anything. `path` is
/// formatted only for an error (every alert of every request is checked).
pub(crate) fn check_labels(labels: &LabelSet, path: impl std::fmt::Display, errors: &mut Errors) {
    if labels.is_empty() {
        errors.push(path.to_string(), "at least one label is required");
    }
    for name in labels.keys() {
        if name.is_empty() {
            errors.push(path.to_string(), "label name is empty");
        } else if name.chars().any(char::is_control) {
            errors.push(format!("{path}.{name:?}"), "label name contains a control character");
        }
    }
}

/// Add the static labels of the sender's token (`auth.tokens[].labels`) to
/// each alert it sends; they win over the alert's own, as a PagerDuty
/// integration's service is the integration's, not the event's. An alert
/// whose fingerprint is the hash of its labels is fingerprinted again, so it
/// is the alert it would be had it carried those labels itself.
pub fn add_sender_labels(updates: &mut [crate::model::AlertUpdate], labels: &LabelSet) {
    if labels.is_empty() {
        return;
    }
    for u in updates {
        if let crate::model::AlertUpdate::Observe(a) = u {
            let hashed = a.fingerprint == Fingerprint::of_labels(&a.labels);
            a.labels.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            if hashed {
                a.fingerprint = Fingerprint::of_labels(&a.labels);
            }
        }
    }
}

/// The sender's fingerprint if it gave a usable one, else the label hash.
pub(crate) fn fingerprint(given: Option<&str>, labels: &LabelSet, path: &str, errors: &mut Errors) -> Fingerprint {
    match given.filter(|s| !s.is_empty()) {
        Some(s) => Fingerprint::parse(s).unwrap_or_else(|e| {
            errors.push(path, e.to_string());
            Fingerprint::of_labels(labels)
        }),
        None => Fingerprint::of_labels(labels),
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub fn ctx() -> IngestContext {
        IngestContext { now: "2026-11-24T12:00:00Z".parse().unwrap(), resolve_timeout: SignedDuration::from_mins(5) }
    }

    pub fn fixture(name: &str) -> String {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
        std::fs::read_to_string(format!("{path}{name}")).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Outer {
        items: Vec<Inner>,
    }
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
    }

    #[test]
    fn json_errors_name_the_field_path() {
        let e = from_json::<Outer>(r#"{"items":[{"n":1},{"n":"x"}]}"#, "").unwrap_err();
        assert_eq!(e.errors[0].path, "items[1].n");
        assert!(e.errors[0].message.contains("expected u32"), "{e}");
        let e = from_json::<Outer>(r#"{"items":[{}]}"#, "body").unwrap_err();
        assert_eq!(e.errors[0].path, "body.items[0]");
        assert!(e.errors[0].message.contains("missing field `n`"), "{e}");
        let e = from_json::<Outer>(r#"{"items":[]} x"#, "").unwrap_err();
        assert!(e.errors[0].message.contains("trailing characters"), "{e}");
    }

    #[test]
    fn a_struct_is_read_from_an_object_only() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Body {
            actor: Option<String>,
            assignee: Option<String>,
        }
        let e = from_json_object::<Body>("  [null, null]", "").unwrap_err();
        assert_eq!(e.errors[0].message, "expected a JSON object, got an array");
        assert!(from_json::<Body>("[null, null]", "").is_ok(), "what serde alone would take");
        assert!(from_json_object::<Body>(r#"{"actor": "a"}"#, "").is_ok());
    }

    #[test]
    fn times_parse_to_milliseconds_and_go_zero_is_none() {
        assert_eq!(parse_time("0001-01-01T00:00:00Z"), Ok(None));
        assert_eq!(parse_time(""), Ok(None));
        let t = parse_time("2026-11-24T10:00:00.123456789+01:00").unwrap().unwrap();
        assert_eq!(t.to_string(), "2026-11-24T09:00:00.123Z");
        assert!(parse_time("yesterday").unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn sender_labels_win_and_label_hash_fingerprints_follow() {
        use crate::model::{Alert, AlertStatus, AlertUpdate, Source};
        let alert = |pairs: &[(&str, &str)], fp: Option<&str>| {
            let labels: LabelSet = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            AlertUpdate::Observe(Alert {
                fingerprint: fp.map_or_else(|| Fingerprint::of_labels(&labels), |f| Fingerprint::parse(f).unwrap()),
                source: Source::PagerDuty,
                labels,
                annotations: Default::default(),
                status: AlertStatus::Firing,
                starts_at: test_support::ctx().now,
                ends_at: None,
                expires_at: None,
                generator_url: None,
                raw: serde_json::value::RawValue::from_string("{}".into()).unwrap(),
            })
        };
        let token: LabelSet =
            [("service".to_string(), "payments".to_string()), ("team".to_string(), "pay".to_string())].into();
        let mut updates = vec![
            alert(&[("alertname", "Down"), ("service", "checkout")], None),
            alert(&[("alertname", "Down")], Some("dedup-7")),
            AlertUpdate::Acknowledge { fingerprint: Fingerprint::parse("dedup-7").unwrap() },
        ];
        add_sender_labels(&mut updates, &token);
        let AlertUpdate::Observe(a) = &updates[0] else { panic!() };
        assert_eq!(a.labels["service"], "payments", "the token's label wins");
        assert_eq!(a.labels["team"], "pay");
        let want: LabelSet = [("alertname", "Down"), ("service", "payments"), ("team", "pay")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(a.fingerprint, Fingerprint::of_labels(&want), "a label hash follows the labels");
        let AlertUpdate::Observe(b) = &updates[1] else { panic!() };
        assert_eq!(b.fingerprint.as_str(), "dedup-7", "a sender's own key stays");
        assert_eq!(b.labels["service"], "payments");
        assert_eq!(updates[2].fingerprint().as_str(), "dedup-7");
    }
}
