//! What the rules say of an alert by its labels alone: the incident rules
//! it routes to with its group key under each, the heartbeats it pings,
//! and its part in inhibit rules. None of it needs the store, so ingest
//! works it out on the request's task before the hand-off, and the writer
//! thread, which every request waits for, only looks it up. A plan holds
//! for the rule set it was made with; the writer makes its own when the
//! rules were reloaded in between, and for alerts it reads back (expiry,
//! muted alerts routed again).
use std::sync::Arc;

use super::inhibit::{self, EqualKey};
use crate::model::{Alert, Fingerprint, LabelSet};
use crate::rules::RuleSet;
use crate::rules::incident::IncidentRule;

/// One alert's plan under one rule set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelPlan {
    /// The incident rules it routes to (by index into the rule set's
    /// `incident_rules`, in routing order), each with its group key.
    pub routes: Vec<(usize, String)>,
    /// Names of the heartbeats it pings (a firing alert not raised by a heartbeat).
    pub pings: Vec<String>,
    /// The inhibit rules it is a source of (by index), with its `equal` values.
    pub sources: Vec<(usize, EqualKey)>,
    /// The inhibit rules it is a target of (by index), with its `equal` values.
    pub targets: Vec<(usize, EqualKey)>,
    /// Its fingerprint is the hash of its labels (worked out only for a
    /// source, the one case where it matters: see [`inhibit::InhibitIndex::file`]).
    pub label_hashed: bool,
}

impl LabelPlan {
    /// The plan of an alert with these labels (pinging nothing).
    pub fn of_labels(rules: &RuleSet, fp: &Fingerprint, labels: &LabelSet) -> LabelPlan {
        let routes =
            rules.route_indexes(labels).into_iter().map(|i| (i, rules.incident_rules[i].group_key(labels))).collect();
        let (sources, label_hashed) = inhibit::source_places(&rules.inhibit_rules, fp, labels);
        LabelPlan {
            routes,
            pings: Vec::new(),
            sources,
            targets: inhibit::targets_of(&rules.inhibit_rules, labels),
            label_hashed,
        }
    }

    /// The plan of an observed alert: that of its labels, and the
    /// heartbeats it pings.
    pub fn of_alert(rules: &RuleSet, alert: &Alert) -> LabelPlan {
        let mut plan = LabelPlan::of_labels(rules, &alert.fingerprint, &alert.labels);
        plan.pings = super::heartbeat::pinged_by(rules, alert).map(|hb| hb.name.clone()).collect();
        plan
    }

    /// The rules it routes to, with their group keys, in `rules` (the set
    /// the plan was made with).
    pub fn routes<'r>(&self, rules: &'r RuleSet) -> impl Iterator<Item = (&'r IncidentRule, &str)> {
        self.routes.iter().map(|(i, key)| (&rules.incident_rules[*i], key.as_str()))
    }
}

/// The plans of a request's updates (`None` for one that observes no
/// alert), made with `rules`.
#[derive(Debug, Clone)]
pub struct Plans {
    rules: Option<Arc<RuleSet>>,
    plans: Vec<Option<LabelPlan>>,
}

impl Plans {
    /// Plan each observed alert of `alerts` under `rules`.
    pub fn make<'a>(rules: Arc<RuleSet>, alerts: impl IntoIterator<Item = Option<&'a Alert>>) -> Plans {
        let plans = alerts.into_iter().map(|a| a.map(|a| LabelPlan::of_alert(&rules, a))).collect();
        Plans { rules: Some(rules), plans }
    }

    /// No plans: the writer makes each itself.
    pub fn none() -> Plans {
        Plans { rules: None, plans: Vec::new() }
    }

    /// The plans of the first `n` updates, taken from these.
    pub fn take_front(&mut self, n: usize) -> Plans {
        let n = n.min(self.plans.len());
        Plans { rules: self.rules.clone(), plans: self.plans.drain(..n).collect() }
    }

    /// The plan of update `i`, if these plans were made with `rules` (the
    /// very set, not an equal one: a plan indexes into it).
    pub fn get(&self, rules: &Arc<RuleSet>, i: usize) -> Option<&LabelPlan> {
        let made_with = self.rules.as_ref()?;
        if Arc::ptr_eq(made_with, rules) { self.plans.get(i)?.as_ref() } else { None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AlertStatus, Source};

    const RULES: &str = r#"
incident_rules:
  - {name: disk, matchers: ['alertname="DiskFull"'], group_by: [instance], continue: true}
  - {name: team, matchers: ['team="db"'], group_by: [alertname]}
  - {name: never, matchers: ['team="web"']}
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [cluster]
"#;

    fn rules() -> Arc<RuleSet> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r.yaml"), RULES).unwrap();
        Arc::new(RuleSet::load_dir(dir.path()).unwrap_or_else(|e| panic!("{e:?}")))
    }

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_plan_holds_what_routing_and_inhibition_would_work_out() {
        let rules = rules();
        let critical =
            labels(&[("alertname", "DiskFull"), ("team", "db"), ("severity", "critical"), ("cluster", "eu")]);
        let fp = Fingerprint::of_labels(&critical);
        let plan = LabelPlan::of_labels(&rules, &fp, &critical);
        let routed: Vec<(&str, String)> =
            rules.route(&critical).iter().map(|r| (r.name.as_str(), r.group_key(&critical))).collect();
        let planned: Vec<(&str, String)> = plan.routes(&rules).map(|(r, k)| (r.name.as_str(), k.to_owned())).collect();
        assert_eq!(planned, routed);
        assert_eq!(planned.iter().map(|(n, _)| *n).collect::<Vec<_>>(), ["disk", "team"]);
        assert_eq!(plan.sources, [(0, vec![Some("eu".to_owned())])]);
        assert!(plan.targets.is_empty() && plan.label_hashed);
        // A sender's key is no label hash; a warning is a target, no source.
        let keyed = Fingerprint::parse("dedup-key-1").unwrap();
        assert!(!LabelPlan::of_labels(&rules, &keyed, &critical).label_hashed);
        let warning = labels(&[("severity", "warning"), ("cluster", "eu")]);
        let plan = LabelPlan::of_labels(&rules, &Fingerprint::of_labels(&warning), &warning);
        assert!(plan.routes.is_empty() && plan.sources.is_empty() && !plan.label_hashed);
        assert_eq!(plan.targets, [(0, vec![Some("eu".to_owned())])]);
    }

    #[test]
    fn plans_hold_for_the_very_rule_set_they_were_made_with() {
        let rules = rules();
        let alert = |name: &str| {
            let labels = labels(&[("alertname", name), ("team", "db")]);
            Alert {
                fingerprint: Fingerprint::of_labels(&labels),
                source: Source::Prometheus,
                labels,
                annotations: Default::default(),
                status: AlertStatus::Firing,
                starts_at: jiff::Timestamp::UNIX_EPOCH,
                ends_at: None,
                expires_at: None,
                generator_url: None,
                raw: serde_json::value::RawValue::from_string("{}".into()).unwrap(),
            }
        };
        let (a, b) = (alert("A"), alert("B"));
        let mut plans = Plans::make(rules.clone(), [Some(&a), None, Some(&b)]);
        let first = plans.take_front(2);
        assert_eq!(first.get(&rules, 0).unwrap().routes[0].1, rules.incident_rules[1].group_key(&a.labels));
        assert_eq!(first.get(&rules, 1), None, "an update that observes no alert");
        assert_eq!(plans.get(&rules, 0).unwrap().routes[0].1, rules.incident_rules[1].group_key(&b.labels));
        // An equal set loaded again (a reload) is another set: the writer plans again.
        let reloaded = Arc::new((*rules).clone());
        assert_eq!(plans.get(&reloaded, 0), None);
        assert_eq!(Plans::none().get(&rules, 0), None);
    }
}
