//! The `heartbeats:` section of rule files: expected pings, by HTTP or by
//! any alert matching a heartbeat's matchers (kube-prometheus' always-firing
//! `Watchdog`), as written (`RawHeartbeat`) and compiled.
use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Deserialize;

use super::matcher::Matcher;
use crate::model::heartbeat::{HeartbeatState, HeartbeatTiming};
use crate::model::{Duration, LabelSet};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHeartbeat {
    name: String,
    interval: String,
    grace: Option<String>,
    #[serde(default)]
    matchers: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// A checked heartbeat.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub name: String,
    /// Expected at least this often.
    pub interval: Duration,
    /// How much later a ping may come before the incident opens.
    pub grace: Duration,
    /// An ingested alert matching all of these is a ping; none: pinged by
    /// HTTP only.
    pub matchers: Vec<Matcher>,
    /// The labels of the incident a silence opens.
    pub labels: LabelSet,
}

impl Heartbeat {
    pub fn timing(&self) -> HeartbeatTiming {
        HeartbeatTiming { interval: self.interval, grace: self.grace }
    }

    /// Whether an alert with these labels pings this heartbeat.
    pub fn is_pinged_by(&self, labels: &LabelSet) -> bool {
        !self.matchers.is_empty() && self.matchers.iter().all(|m| m.matches(labels))
    }

    pub fn state(&self, last_ping: Option<Timestamp>, now: Timestamp) -> HeartbeatState {
        self.timing().state(last_ping, now)
    }
}

/// The shortest interval or grace (but for no grace at all).
const SHORTEST: Duration = Duration::from_secs_const(1);

fn label_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl RawHeartbeat {
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn compile(self) -> Result<Heartbeat, Vec<String>> {
        let mut p = Vec::new();
        if !crate::oncall::valid_name(&self.name) {
            p.push(format!("name: {:?}: {}", self.name, crate::oncall::NAME_RULE));
        }
        let duration = |text: &str, what: &str, p: &mut Vec<String>| {
            text.parse::<Duration>().map_err(|e| p.push(format!("{what}: {e}"))).ok()
        };
        let interval = duration(&self.interval, "interval", &mut p);
        if interval.is_some_and(|d| d < SHORTEST) {
            p.push(format!("interval: at least {SHORTEST}"));
        }
        // One missed ping is forgiven unless the rule says otherwise.
        let grace = match &self.grace {
            Some(text) => {
                let grace = duration(text, "grace", &mut p);
                if grace.is_some_and(|d| d != Duration::ZERO && d < SHORTEST) {
                    p.push(format!("grace: 0s or at least {SHORTEST}"));
                }
                grace
            }
            None => interval,
        };
        let mut matchers = Vec::new();
        for (i, m) in self.matchers.iter().enumerate() {
            match super::matcher::parse_matchers(m) {
                Ok(ms) => matchers.extend(ms),
                Err(e) => p.push(format!("matchers[{i}]: {e}")),
            }
        }
        if !matchers.is_empty() && matchers.iter().all(|m| m.matches(&LabelSet::new())) {
            p.push("matchers: these match an alert without labels, so nearly every alert would ping the heartbeat; add an equality matcher such as alertname=\"Watchdog\"".into());
        }
        for (name, value) in &self.labels {
            if !label_name(name) {
                p.push(format!("labels: {name:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"));
            } else if value.is_empty() {
                p.push(format!("labels.{name}: give a value (an empty label is no label)"));
            }
        }
        match (interval, grace) {
            (Some(interval), Some(grace)) if p.is_empty() => {
                Ok(Heartbeat { name: self.name, interval, grace, matchers, labels: self.labels })
            }
            _ => Err(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(yaml: &str) -> Result<Heartbeat, Vec<String>> {
        crate::yaml::from_str::<RawHeartbeat>(yaml).unwrap().compile()
    }

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_issue_example_compiles() {
        let h = compile(
            "name: prometheus-prod
interval: 1m
grace: 2m
matchers: ['alertname=\"Watchdog\"', 'prometheus=\"monitoring/k8s\"']
labels: {service: monitoring, severity: critical}
",
        )
        .unwrap();
        assert_eq!((h.interval, h.grace), (Duration::from_secs(60), Duration::from_secs(120)));
        assert_eq!(h.labels, labels(&[("service", "monitoring"), ("severity", "critical")]));
        let watchdog = labels(&[("alertname", "Watchdog"), ("prometheus", "monitoring/k8s"), ("severity", "none")]);
        assert!(h.is_pinged_by(&watchdog));
        assert!(!h.is_pinged_by(&labels(&[("alertname", "Watchdog"), ("prometheus", "monitoring/dev")])));
        let t0: Timestamp = "2026-06-01T12:00:00Z".parse().unwrap();
        let later = t0.checked_add(jiff::SignedDuration::from_secs(90)).unwrap();
        assert_eq!(h.state(Some(t0), later), HeartbeatState::Late);
    }

    #[test]
    fn seconds_are_valid_and_grace_defaults_to_the_interval() {
        let h = compile("name: cron.nightly\ninterval: 1s\n").unwrap();
        assert_eq!((h.interval, h.grace), (Duration::from_secs(1), Duration::from_secs(1)));
        assert!(h.matchers.is_empty() && !h.is_pinged_by(&LabelSet::new()), "HTTP pings only");
        assert_eq!(compile("name: x\ninterval: 1s\ngrace: 0s\n").unwrap().grace, Duration::ZERO);
    }

    #[test]
    fn mistakes() {
        let cases: &[(&str, &[&str])] = &[
            ("name: 'a b'\ninterval: 1m\n", &["name: \"a b\": names may use letters, digits, '-', '_' and '.'"]),
            ("name: x\ninterval: 500ms\ngrace: 100ms\n", &["interval: at least 1s", "grace: 0s or at least 1s"]),
            ("name: x\ninterval: soon\n", &["interval: invalid duration \"soon\""]),
            ("name: x\ninterval: 1m\nmatchers: ['job=~\"(\"']\n", &["matchers[0]: "]),
            ("name: x\ninterval: 1m\nmatchers: ['team=\"\"']\n", &["matchers: these match an alert without labels"]),
            (
                "name: x\ninterval: 1m\nlabels: {bad-name: x, service: ''}\n",
                &["labels: \"bad-name\" is not a label name", "labels.service: give a value"],
            ),
        ];
        for (yaml, want) in cases {
            let errs = compile(yaml).unwrap_err();
            assert_eq!(errs.len(), want.len(), "{yaml}: {errs:#?}");
            for (e, w) in errs.iter().zip(want.iter()) {
                assert!(e.starts_with(w), "{yaml}: {e:?} should start with {w:?}");
            }
        }
        assert!(crate::yaml::from_str::<RawHeartbeat>("name: x\ninterval: 1m\ntimeout: 2m\n").is_err());
    }
}
