//! Similar past incidents, so a responder starts from what worked last
//! time. An earlier incident is similar when it shares the group key of
//! the same rule (the same alerts, again), or the rule and the service, or
//! most of its labels; closer kinds of likeness rank first, the most
//! recent first within a kind.
use std::collections::BTreeSet;

use jiff::Timestamp;
use serde::Serialize;

use crate::model::LabelSet;
use crate::model::incident::Incident;

/// Most similar incidents a detail lists.
pub const MOST_SIMILAR: usize = 5;

/// Least share of labels (of the union) two incidents must have in
/// common to be similar by labels alone.
pub const LABEL_OVERLAP: f64 = 0.5;

/// Labels that say nothing about likeness: every report has them.
const IGNORED_LABELS: [&str; 1] = ["source"];

/// Why a past incident is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Likeness {
    SameGroup,
    SameRuleAndService,
    Labels,
}

/// A past incident as a detail lists it, with how it was resolved.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SimilarIncident {
    pub id: i64,
    pub title: String,
    pub likeness: Likeness,
    pub created_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    /// The last note written before it resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolving_note: Option<String>,
    /// Its published review's summary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review_summary: Option<String>,
    /// The workaround of the known error it was linked to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workaround: Option<String>,
}

/// How `past` is like `this`, if it is.
pub fn likeness(this: &Incident, past: &Incident) -> Option<Likeness> {
    if past.id == this.id || past.created_at > this.created_at || past.merged_into.is_some() {
        return None;
    }
    if past.rule == this.rule && past.group_key == this.group_key {
        return Some(Likeness::SameGroup);
    }
    if past.rule == this.rule && past.service.is_some() && past.service == this.service {
        return Some(Likeness::SameRuleAndService);
    }
    (overlap(&this.labels, &past.labels) >= LABEL_OVERLAP).then_some(Likeness::Labels)
}

/// The share of label pairs two sets have in common, of all they have.
fn overlap(a: &LabelSet, b: &LabelSet) -> f64 {
    let pairs = |l: &LabelSet| -> BTreeSet<(String, String)> {
        l.iter().filter(|(k, _)| !IGNORED_LABELS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    let (a, b) = (pairs(a), pairs(b));
    let union = a.union(&b).count();
    if union == 0 { 0.0 } else { a.intersection(&b).count() as f64 / union as f64 }
}

/// The past incidents most like `this`, closest first, at most [`MOST_SIMILAR`].
pub fn rank<'p>(this: &Incident, candidates: &'p [Incident]) -> Vec<(&'p Incident, Likeness)> {
    let mut found: Vec<(&Incident, Likeness)> =
        candidates.iter().filter_map(|p| likeness(this, p).map(|l| (p, l))).collect();
    found.sort_by(|(a, la), (b, lb)| la.cmp(lb).then(b.created_at.cmp(&a.created_at)).then(b.id.cmp(&a.id)));
    found.truncate(MOST_SIMILAR);
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::incident::{Impact, IncidentSource, IncidentState, Priority, Urgency};

    fn t(min: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + min * 60).unwrap()
    }

    fn incident(id: i64, rule: &str, key: &str, service: Option<&str>, labels: &[(&str, &str)], at: i64) -> Incident {
        Incident {
            id,
            title: format!("incident {id}"),
            service: service.map(str::to_owned),
            rule: rule.into(),
            group_key: key.into(),
            impact: Impact::Medium,
            urgency: Urgency::Medium,
            priority: Priority::P3,
            state: IncidentState::Resolved,
            assignee: None,
            alert_count: 1,
            firing_count: 0,
            flap_count: 0,
            labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            created_at: t(at),
            updated_at: t(at),
            acknowledged_at: None,
            resolved_at: Some(t(at + 10)),
            closed_at: None,
            auto_resolve_at: None,
            source: IncidentSource::Alert,
            description: None,
            reporter: None,
            merged_into: None,
        }
    }

    #[test]
    fn the_same_alerts_again_rank_before_the_same_service_before_shared_labels() {
        let l = [("alertname", "DiskFull"), ("instance", "db1"), ("job", "node")];
        let this = incident(10, "node", "node{alertname=DiskFull}", Some("db"), &l, 100);
        let past = [
            incident(1, "node", "node{alertname=DiskFull}", Some("db"), &l, 10),
            incident(2, "node", "node{alertname=DiskFull}", Some("db"), &l, 50),
            incident(3, "node", "node{alertname=CpuHigh}", Some("db"), &[("alertname", "CpuHigh")], 60),
            incident(4, "other", "k", None, &[("alertname", "DiskFull"), ("instance", "db1"), ("job", "x")], 70),
            incident(5, "other", "k", None, &[("alertname", "Unrelated"), ("team", "web")], 80),
            incident(11, "node", "node{alertname=DiskFull}", Some("db"), &l, 120),
        ];
        let got: Vec<(i64, Likeness)> = rank(&this, &past).into_iter().map(|(p, l)| (p.id, l)).collect();
        assert_eq!(
            got,
            [
                (2, Likeness::SameGroup),
                (1, Likeness::SameGroup),
                (3, Likeness::SameRuleAndService),
                (4, Likeness::Labels)
            ],
            "5 shares nothing; 11 came after"
        );
    }

    #[test]
    fn an_unrelated_incident_has_no_similar_ones_and_at_most_five_are_listed() {
        let this = incident(10, "web", "web{}", Some("web"), &[("alertname", "Latency")], 100);
        let others = [incident(1, "db", "db{}", Some("db"), &[("alertname", "DiskFull")], 10)];
        assert!(rank(&this, &others).is_empty());
        let many: Vec<Incident> = (1..=8).map(|i| incident(i, "web", "web{}", Some("web"), &[], i)).collect();
        assert_eq!(rank(&this, &many).len(), MOST_SIMILAR);
        assert_eq!(rank(&this, &many)[0].0.id, 8, "the most recent first");
    }

    #[test]
    fn reports_are_not_alike_only_for_being_reports() {
        let a = incident(1, "reported", "reported:1", None, &[("source", "reported")], 10);
        let b = incident(2, "reported", "reported:2", None, &[("source", "reported")], 20);
        assert_eq!(likeness(&b, &a), None);
    }
}
