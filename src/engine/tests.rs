use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::engine::inhibit::InhibitIndex;
use crate::engine::silence::{Silence, silenced_by};
use crate::model::{Fingerprint, LabelSet};
use crate::rules::matcher::parse_matchers;

fn rules(yaml: &str) -> RuleSet {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("r.yaml"), yaml).unwrap();
    RuleSet::load_dir(dir.path()).unwrap_or_else(|e| panic!("{e:?}"))
}

fn labels(pairs: &[(&str, &str)]) -> LabelSet {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

const T0: &str = "2026-11-24T10:00:00Z";

fn at(offset_secs: i64) -> Timestamp {
    T0.parse::<Timestamp>().unwrap() + SignedDuration::from_secs(offset_secs)
}

fn incident(id: i64, state: IncidentState, created: i64, resolved: Option<i64>) -> IncidentView {
    IncidentView { id, state, created_at: at(created), resolved_at: resolved.map(at) }
}

const RULES: &str = "
incident_rules:
  - name: first
    matchers: ['team=\"a\"']
    group_window: 1h
    flap_window: 10m
    continue: true
  - name: second
    matchers: ['severity=\"critical\"']
  - name: third
    matchers: []
  - name: quorum
    matchers: ['never=\"x\"']
    min_alerts: 3
  - name: persistent
    matchers: ['never=\"x\"']
    min_duration: 5m
";

#[test]
fn routing_stops_at_the_first_match_unless_continue() {
    let set = rules(RULES);
    let names = |l: &LabelSet| route(&set, l).iter().map(|r| r.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&labels(&[("team", "a"), ("severity", "critical")])), ["first", "second"]);
    assert_eq!(names(&labels(&[("team", "a")])), ["first", "third"]);
    assert_eq!(names(&labels(&[("severity", "critical")])), ["second"]);
    assert_eq!(names(&labels(&[("x", "y")])), ["third"]);
}

#[test]
fn grouping_window_and_resolved_incidents() {
    let set = rules(RULES);
    let rule = &set.incident_rules[0];
    let none = GroupView::default();
    assert_eq!(firing(rule, &none, true, at(0)), FiringDecision::Open);

    let open = GroupView { latest_for_key: Some(incident(1, IncidentState::Triggered, 0, None)), ..Default::default() };
    assert_eq!(firing(rule, &open, true, at(3599)), FiringDecision::Join(1));
    assert_eq!(firing(rule, &open, true, at(3600)), FiringDecision::Join(1));
    // Past the window a new incident starts.
    assert_eq!(firing(rule, &open, true, at(3601)), FiringDecision::Open);
    // Acknowledged and on-hold incidents still absorb alerts.
    let acked = GroupView { latest_for_key: Some(incident(1, IncidentState::OnHold, 0, None)), ..Default::default() };
    assert_eq!(firing(rule, &acked, true, at(60)), FiringDecision::Join(1));
    // A resolved incident never absorbs a new alert.
    let resolved =
        GroupView { latest_for_key: Some(incident(1, IncidentState::Resolved, 0, Some(60))), ..Default::default() };
    assert_eq!(firing(rule, &resolved, true, at(120)), FiringDecision::Open);
    // An alert already in an open incident stays there.
    let mine =
        GroupView { own_incident: Some(incident(4, IncidentState::Acknowledged, 0, None)), ..Default::default() };
    assert_eq!(firing(rule, &mine, true, at(99_999)), FiringDecision::AlreadyIn(4));
    // A re-send of an alert whose incident someone resolved changes nothing.
    let done =
        GroupView { own_incident: Some(incident(4, IncidentState::Resolved, 0, Some(60))), ..Default::default() };
    assert_eq!(firing(rule, &done, false, at(120)), FiringDecision::Ignore);
}

#[test]
fn flapping_reopens_within_the_window_only() {
    let set = rules(RULES);
    let rule = &set.incident_rules[0];
    let mine =
        GroupView { own_incident: Some(incident(7, IncidentState::Resolved, 0, Some(100))), ..Default::default() };
    assert_eq!(firing(rule, &mine, true, at(100 + 600)), FiringDecision::Reopen(7));
    assert_eq!(firing(rule, &mine, true, at(100 + 601)), FiringDecision::Open);
    let closed =
        GroupView { own_incident: Some(incident(7, IncidentState::Closed, 0, Some(100))), ..Default::default() };
    assert_eq!(firing(rule, &closed, true, at(110)), FiringDecision::Open);
}

#[test]
fn min_alerts_holds_until_enough_fire() {
    let set = rules(RULES);
    let rule = set.incident_rules.iter().find(|r| r.name == "quorum").unwrap();
    assert_eq!(firing(rule, &GroupView::default(), true, at(0)), FiringDecision::Hold);
    let two = GroupView {
        pending: Some(PendingView { first_fired_at: at(0), firing: 2, contains_alert: false }),
        ..Default::default()
    };
    assert_eq!(firing(rule, &two, true, at(10)), FiringDecision::Open);
    // A repeat of an alert already counted does not count twice.
    let two_incl = GroupView {
        pending: Some(PendingView { first_fired_at: at(0), firing: 2, contains_alert: true }),
        ..Default::default()
    };
    assert_eq!(firing(rule, &two_incl, true, at(10)), FiringDecision::Hold);
}

#[test]
fn min_duration_holds_transient_alerts() {
    let set = rules(RULES);
    let rule = set.incident_rules.iter().find(|r| r.name == "persistent").unwrap();
    assert_eq!(firing(rule, &GroupView::default(), true, at(0)), FiringDecision::Hold);
    assert!(!qualifies(rule, at(0), 1, at(299)));
    assert!(qualifies(rule, at(0), 1, at(300)));
    assert!(!qualifies(rule, at(0), 0, at(600)), "a group whose alerts all resolved never opens");
}

#[test]
fn auto_resolve_times() {
    let set = rules(
        "incident_rules:\n  - {name: a, auto_resolve_after: 5m}\n  - {name: b, auto_resolve_after: never}\n  - {name: c}\n",
    );
    assert_eq!(auto_resolve_at(Some(&set.incident_rules[0]), at(0)), Some(at(300)));
    assert_eq!(auto_resolve_at(Some(&set.incident_rules[1]), at(0)), None);
    assert_eq!(auto_resolve_at(Some(&set.incident_rules[2]), at(0)), Some(at(0)));
    assert_eq!(auto_resolve_at(None, at(0)), Some(at(0)), "a rule removed by a reload resolves at once");
}

#[test]
fn inhibition_needs_a_firing_source_with_equal_labels() {
    let set = rules(
        "inhibit_rules:\n  - source_matchers: ['severity=\"critical\"']\n    target_matchers: ['severity=\"warning\"']\n    equal: [alertname, cluster]\n",
    );
    let r = &set.inhibit_rules;
    let mut idx = InhibitIndex::new(r);
    let crit = labels(&[("alertname", "Disk"), ("cluster", "eu"), ("severity", "critical")]);
    let warn_eu = labels(&[("alertname", "Disk"), ("cluster", "eu"), ("severity", "warning")]);
    let warn_us = labels(&[("alertname", "Disk"), ("cluster", "us"), ("severity", "warning")]);
    let (fc, fw) = (Fingerprint::of_labels(&crit), Fingerprint::of_labels(&warn_eu));
    assert!(!idx.inhibits(r, &fw, &warn_eu));
    idx.update(r, &fc, &crit, true);
    assert!(idx.inhibits(r, &fw, &warn_eu));
    assert!(!idx.inhibits(r, &Fingerprint::of_labels(&warn_us), &warn_us), "different cluster");
    assert!(!idx.inhibits(r, &fc, &crit), "a source does not mute itself");
    idx.update(r, &fc, &crit, false);
    assert!(!idx.inhibits(r, &fw, &warn_eu), "a resolved source mutes nothing");
    assert_eq!(idx.sources(), 0);
    // A source whose labels change under the same fingerprint (a PagerDuty
    // dedup key re-triggered as a warning) stops being a source.
    let pd = Fingerprint::parse("pd-dedup-key").unwrap();
    assert!(!idx.update(r, &pd, &crit, true), "adding a source unmutes nothing");
    assert!(idx.inhibits(r, &fw, &warn_eu));
    let other = labels(&[("alertname", "Disk"), ("cluster", "eu"), ("severity", "critical"), ("x", "1")]);
    let fo = Fingerprint::of_labels(&other);
    idx.update(r, &fo, &other, true);
    assert!(!idx.update(r, &fo, &other, false), "another source of the group still fires");
    let downgraded = labels(&[("alertname", "Disk"), ("cluster", "eu"), ("severity", "warning")]);
    assert!(idx.update(r, &pd, &downgraded, true), "the group's last source is gone");
    assert!(!idx.inhibits(r, &fw, &warn_eu));
    assert_eq!(idx.sources(), 0);
}

#[test]
fn silences_mute_only_while_active() {
    let s = Silence {
        id: 1,
        matchers: parse_matchers(r#"alertname="Disk",cluster=~"eu|us""#).unwrap(),
        starts_at: at(0),
        ends_at: at(3600),
        created_by: "alice".into(),
        comment: "maintenance".into(),
        created_at: at(0),
    };
    let l = labels(&[("alertname", "Disk"), ("cluster", "eu")]);
    let silences = [s];
    assert!(silenced_by(&silences, &l, at(-1)).is_none(), "not started");
    assert_eq!(silenced_by(&silences, &l, at(0)).map(|s| s.id), Some(1));
    assert!(silenced_by(&silences, &l, at(3600)).is_none(), "expired");
    assert!(silenced_by(&silences, &labels(&[("alertname", "Disk"), ("cluster", "ap")]), at(10)).is_none());
}

#[test]
fn the_route_index_agrees_with_a_linear_scan() {
    let mut yaml = String::from("incident_rules:\n");
    for i in 0..60 {
        let m = match i % 4 {
            0 => format!("['alertname=\"A{}\"']", i % 7),
            1 => format!("['job=~\"j{}.*\"', 'severity=\"critical\"']", i % 5),
            2 => format!("['team=\"\"', 'alertname!=\"A{}\"']", i % 3),
            _ => "['severity=\"warning\"']".to_string(),
        };
        let cont = if i % 6 == 0 { "true" } else { "false" };
        yaml.push_str(&format!("  - {{name: r{i}, matchers: {m}, continue: {cont}}}\n"));
    }
    let set = rules(&yaml);
    let linear = |l: &LabelSet| {
        let mut out = Vec::new();
        for r in &set.incident_rules {
            if r.matches(l) {
                out.push(r.name.clone());
                if !r.continue_matching {
                    break;
                }
            }
        }
        out
    };
    for a in 0..8 {
        for j in 0..6 {
            for sev in ["critical", "warning", "info"] {
                for team in ["", "x"] {
                    let mut l =
                        labels(&[("alertname", &format!("A{a}")), ("job", &format!("j{j}x")), ("severity", sev)]);
                    if !team.is_empty() {
                        l.insert("team".into(), team.into());
                    }
                    let indexed: Vec<String> = route(&set, &l).iter().map(|r| r.name.clone()).collect();
                    assert_eq!(indexed, linear(&l), "{l:?}");
                }
            }
        }
    }
}

#[test]
fn a_firing_alert_is_muted_or_routed_around_maintenance() {
    let set = rules(RULES);
    let names = |r: &Routing<&IncidentRule>| match r {
        Routing::Muted(reason) => format!("muted {reason}"),
        Routing::Route(rules) => rules.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(","),
    };
    let both = labels(&[("team", "a"), ("severity", "critical")]);
    // (silenced by, inhibited, maintenance of "first", of "second") -> routing
    type Case = (Option<i64>, bool, Option<i64>, Option<i64>, &'static str);
    let cases: &[Case] = &[
        (None, false, None, None, "first,second"),
        (Some(7), true, Some(3), None, "muted silence:7"),
        (None, true, None, None, "muted inhibited"),
        (None, false, Some(3), None, "second"),
        (None, false, Some(3), Some(4), "muted change:3"),
    ];
    for (silence, inhibited, first, second, want) in cases {
        let maintenance = |r: &&IncidentRule| if r.name == "first" { *first } else { *second };
        let routing = route_firing(set.route(&both), mute_reason(*silence, *inhibited), maintenance);
        assert_eq!(names(&routing), *want, "{silence:?} {inhibited} {first:?} {second:?}");
    }
    // No route at all: nothing to mute for maintenance.
    let empty = rules("incident_rules:\n  - {name: only, matchers: ['x=\"y\"']}\n");
    let routing = route_firing(empty.route(&both), None, |_| Some(1));
    assert_eq!(names(&routing), "");
}

#[test]
fn a_pending_group_is_due_its_duration_after_its_oldest_alert() {
    let set = rules(RULES);
    let rule = |name: &str| set.incident_rules.iter().find(|r| r.name == name).unwrap();
    assert_eq!(pending_due(rule("persistent"), at(0)), Some(at(300)));
    assert_eq!(pending_due(rule("persistent"), at(120)), Some(at(420)), "dates from the oldest alert left");
    assert_eq!(pending_due(rule("quorum"), at(0)), None, "waits for alerts, not time");
}
