//! Inhibition, as in Alertmanager: a firing source alert mutes target alerts
//! that carry the same values of the `equal` labels.
//!
//! The index keeps, per inhibit rule, the firing source alerts by their
//! `equal` label values, so checking a target costs one lookup per rule
//! however many alerts are open. The writer maintains it as alerts change
//! and rebuilds it at start and on rule reload.
use std::collections::{HashMap, HashSet};

use crate::model::{Fingerprint, LabelSet};
use crate::rules::incident::InhibitRule;

#[derive(Debug, Default)]
pub struct InhibitIndex {
    /// One map per inhibit rule: equal-label values -> firing sources.
    sources: Vec<HashMap<Vec<Option<String>>, HashSet<Fingerprint>>>,
}

fn key(rule: &InhibitRule, labels: &LabelSet) -> Vec<Option<String>> {
    rule.equal.iter().map(|n| labels.get(n).cloned()).collect()
}

impl InhibitIndex {
    pub fn new(rules: &[InhibitRule]) -> Self {
        InhibitIndex { sources: rules.iter().map(|_| HashMap::new()).collect() }
    }

    /// Record an alert's current status.
    pub fn update(&mut self, rules: &[InhibitRule], fp: &Fingerprint, labels: &LabelSet, firing: bool) {
        for (rule, map) in rules.iter().zip(self.sources.iter_mut()) {
            if !rule.source_matchers.iter().all(|m| m.matches(labels)) {
                continue;
            }
            let k = key(rule, labels);
            if firing {
                map.entry(k).or_default().insert(fp.clone());
            } else if let Some(set) = map.get_mut(&k) {
                set.remove(fp);
                if set.is_empty() {
                    map.remove(&k);
                }
            }
        }
    }

    /// True when a firing source alert (other than the target itself) mutes `labels`.
    pub fn inhibits(&self, rules: &[InhibitRule], fp: &Fingerprint, labels: &LabelSet) -> bool {
        rules.iter().zip(self.sources.iter()).any(|(rule, map)| {
            rule.target_matchers.iter().all(|m| m.matches(labels))
                && map.get(&key(rule, labels)).is_some_and(|set| set.iter().any(|s| s != fp))
        })
    }

    pub fn sources(&self) -> usize {
        self.sources.iter().map(|m| m.values().map(HashSet::len).sum::<usize>()).sum()
    }
}
