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

/// The values of a rule's `equal` labels: sources and targets with equal
/// keys meet.
pub type EqualKey = Vec<Option<String>>;

/// The rules an alert with these labels is a source of (by index), with
/// its `equal` values under each: where [`InhibitIndex::file`] files it.
pub fn sources_of(rules: &[InhibitRule], labels: &LabelSet) -> Vec<(usize, EqualKey)> {
    let matching = |rule: &InhibitRule| rule.source_matchers.iter().all(|m| m.matches(labels));
    rules.iter().enumerate().filter(|(_, r)| matching(r)).map(|(i, r)| (i, key(r, labels))).collect()
}

/// Where an alert is a source (see [`sources_of`]), and whether, being
/// one, its fingerprint is the hash of its labels: what
/// [`InhibitIndex::file`] takes.
pub fn source_places(rules: &[InhibitRule], fp: &Fingerprint, labels: &LabelSet) -> (Vec<(usize, EqualKey)>, bool) {
    let places = sources_of(rules, labels);
    let label_hashed = !places.is_empty() && *fp == Fingerprint::of_labels(labels);
    (places, label_hashed)
}

/// The rules an alert with these labels is a target of (by index), with
/// its `equal` values under each: where [`InhibitIndex::inhibited`] looks.
pub fn targets_of(rules: &[InhibitRule], labels: &LabelSet) -> Vec<(usize, EqualKey)> {
    let matching = |rule: &InhibitRule| rule.target_matchers.iter().all(|m| m.matches(labels));
    rules.iter().enumerate().filter(|(_, r)| matching(r)).map(|(i, r)| (i, key(r, labels))).collect()
}

#[derive(Debug, Default)]
pub struct InhibitIndex {
    /// One map per inhibit rule: equal-label values -> firing sources.
    sources: Vec<HashMap<EqualKey, HashSet<Fingerprint>>>,
    /// Where each source is filed, so it can be removed even when its
    /// labels changed under the same fingerprint (a PagerDuty dedup key).
    filed: HashMap<Fingerprint, Vec<(usize, EqualKey)>>,
}

fn key(rule: &InhibitRule, labels: &LabelSet) -> EqualKey {
    rule.equal.iter().map(|n| labels.get(n).cloned()).collect()
}

impl InhibitIndex {
    pub fn new(rules: &[InhibitRule]) -> Self {
        InhibitIndex { sources: rules.iter().map(|_| HashMap::new()).collect(), filed: HashMap::new() }
    }

    /// Whether an alert with these labels is, or was, an inhibition
    /// source: what [`InhibitIndex::update`] files or unfiles (an alert
    /// whose fingerprint is its label hash was one exactly when it is one;
    /// another is in `filed` if it was). Other gateways sharing the
    /// database are told of these alerts only.
    pub fn concerns(&self, rules: &[InhibitRule], fp: &Fingerprint, labels: &LabelSet) -> bool {
        self.concerned(&sources_of(rules, labels), fp)
    }

    /// [`InhibitIndex::concerns`] for an alert that is a source at `places`.
    pub fn concerned(&self, places: &[(usize, EqualKey)], fp: &Fingerprint) -> bool {
        !places.is_empty() || self.filed.contains_key(fp)
    }

    /// Record an alert's current labels and status. Returns true when some
    /// group of equal labels lost its last firing source, so the alerts it
    /// muted may open incidents now.
    pub fn update(&mut self, rules: &[InhibitRule], fp: &Fingerprint, labels: &LabelSet, firing: bool) -> bool {
        let (places, label_hashed) = source_places(rules, fp, labels);
        self.file(places, label_hashed, fp, firing)
    }

    /// [`InhibitIndex::update`] for an alert that is a source at `places`
    /// (see [`sources_of`]); `label_hashed` when, being a source, its
    /// fingerprint is the hash of its labels.
    pub fn file(
        &mut self,
        mut places: Vec<(usize, EqualKey)>,
        label_hashed: bool,
        fp: &Fingerprint,
        firing: bool,
    ) -> bool {
        // Most alerts are no source and never were: nothing to file or unfile.
        if places.is_empty() && !self.filed.contains_key(fp) {
            return false;
        }
        // An alert whose fingerprint is its label hash cannot change labels,
        // so where it is filed follows from its labels; only alerts with a
        // sender's fingerprint need a record of where they were filed.
        // (That record would otherwise cost memory for every source alert.)
        if label_hashed {
            let mut changed_emptied = false;
            for (i, k) in places {
                let map = &mut self.sources[i];
                if firing {
                    map.entry(k).or_default().insert(fp.clone());
                } else if let Some(set) = map.get_mut(&k)
                    && set.remove(fp)
                    && set.is_empty()
                {
                    map.remove(&k);
                    changed_emptied = true;
                }
            }
            return changed_emptied;
        }
        if !firing {
            places.clear();
        }
        let before = self.filed.get(fp);
        if before.map(Vec::as_slice).unwrap_or_default() == places.as_slice() {
            return false;
        }
        let mut emptied = false;
        if let Some(old) = self.filed.remove(fp) {
            for (i, k) in old {
                if let Some(set) = self.sources[i].get_mut(&k) {
                    set.remove(fp);
                    if set.is_empty() {
                        self.sources[i].remove(&k);
                        emptied |= !places.contains(&(i, k));
                    }
                }
            }
        }
        if !places.is_empty() {
            for (i, k) in &places {
                self.sources[*i].entry(k.clone()).or_default().insert(fp.clone());
            }
            self.filed.insert(fp.clone(), places);
        }
        emptied
    }

    /// True when a firing source alert (other than the target itself) mutes `labels`.
    pub fn inhibits(&self, rules: &[InhibitRule], fp: &Fingerprint, labels: &LabelSet) -> bool {
        self.inhibited(&targets_of(rules, labels), fp)
    }

    /// [`InhibitIndex::inhibits`] for an alert that is a target at `places`
    /// (see [`targets_of`]).
    pub fn inhibited(&self, places: &[(usize, EqualKey)], fp: &Fingerprint) -> bool {
        places.iter().any(|(i, k)| {
            self.sources.get(*i).and_then(|map| map.get(k)).is_some_and(|set| set.iter().any(|s| s != fp))
        })
    }

    pub fn sources(&self) -> usize {
        self.sources.iter().map(|m| m.values().map(HashSet::len).sum::<usize>()).sum()
    }
}

/// For each alert of `firing`, the other firing alerts that inhibit it
/// now (Alertmanager's `inhibitedBy`), by index into `firing`; the same
/// rule as [`InhibitIndex::inhibits`], computed over a list at once.
pub fn inhibitors(rules: &[InhibitRule], firing: &[&LabelSet]) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); firing.len()];
    for rule in rules {
        let mut sources: HashMap<EqualKey, Vec<usize>> = HashMap::new();
        for (i, labels) in firing.iter().enumerate() {
            if rule.source_matchers.iter().all(|m| m.matches(labels)) {
                sources.entry(key(rule, labels)).or_default().push(i);
            }
        }
        if sources.is_empty() {
            continue;
        }
        for (i, labels) in firing.iter().enumerate() {
            if rule.target_matchers.iter().all(|m| m.matches(labels))
                && let Some(found) = sources.get(&key(rule, labels))
            {
                out[i].extend(found.iter().copied().filter(|s| *s != i));
            }
        }
    }
    for list in &mut out {
        list.sort_unstable();
        list.dedup();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::matcher::parse_matchers;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn inhibitors_are_the_firing_sources_with_equal_labels() {
        let rules = vec![InhibitRule {
            source_matchers: parse_matchers("severity=\"critical\"").unwrap(),
            target_matchers: parse_matchers("severity=\"warning\"").unwrap(),
            equal: vec!["cluster".into()],
        }];
        let crit_a = labels(&[("severity", "critical"), ("cluster", "a")]);
        let warn_a = labels(&[("severity", "warning"), ("cluster", "a")]);
        let warn_b = labels(&[("severity", "warning"), ("cluster", "b")]);
        let crit_a2 = labels(&[("severity", "critical"), ("cluster", "a"), ("x", "2")]);
        let got = inhibitors(&rules, &[&crit_a, &warn_a, &warn_b, &crit_a2]);
        assert_eq!(got, vec![vec![], vec![0, 3], vec![], vec![]]);
        // The index the writer keeps agrees.
        let mut index = InhibitIndex::new(&rules);
        for l in [&crit_a, &crit_a2] {
            index.update(&rules, &Fingerprint::of_labels(l), l, true);
        }
        assert!(index.inhibits(&rules, &Fingerprint::of_labels(&warn_a), &warn_a));
        assert!(!index.inhibits(&rules, &Fingerprint::of_labels(&warn_b), &warn_b));
    }

    #[test]
    fn only_sources_and_former_sources_concern_inhibition() {
        let rules = vec![InhibitRule {
            source_matchers: parse_matchers("severity=\"critical\"").unwrap(),
            target_matchers: parse_matchers("severity=\"warning\"").unwrap(),
            equal: vec!["cluster".into()],
        }];
        let mut index = InhibitIndex::new(&rules);
        let crit = labels(&[("severity", "critical"), ("cluster", "a")]);
        let warn = labels(&[("severity", "warning"), ("cluster", "a")]);
        assert!(index.concerns(&rules, &Fingerprint::of_labels(&crit), &crit));
        assert!(!index.concerns(&rules, &Fingerprint::of_labels(&warn), &warn));
        // A sender's key whose alert was critical and now is a warning: it
        // leaves the sources, which other gateways must hear of.
        let key = Fingerprint::parse("pagerduty-dedup-key").unwrap();
        index.update(&rules, &key, &crit, true);
        assert!(index.concerns(&rules, &key, &warn));
        index.update(&rules, &key, &warn, true);
        assert!(!index.concerns(&rules, &key, &warn));
    }
}
