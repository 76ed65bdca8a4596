use jiff::SignedDuration;
use serde_json::Value;

use super::*;
use crate::model::{Fingerprint, Source};
use crate::rules::matcher::parse_matchers;

fn rules(yaml: &str) -> RuleSet {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("r.yaml"), yaml).unwrap();
    RuleSet::load_dir(dir.path()).unwrap_or_else(|e| panic!("{e:?}"))
}

const RULES: &str = r#"
incident_rules:
  - name: team-a
    matchers: ['team="a"']
    group_by: [alertname, cluster]
    continue: true
  - name: critical
    matchers: ['severity="critical"']
    group_by: ['...']
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [alertname]
"#;

const IDS: SilenceIds = SilenceIds::new(0xc0ffee01);

fn now() -> Timestamp {
    "2026-11-26T10:00:00.250Z".parse().unwrap()
}

fn alert(pairs: &[(&str, &str)], muted_by: Option<&str>) -> AlertRecord {
    let labels: LabelSet = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    AlertRecord {
        fingerprint: Fingerprint::of_labels(&labels),
        source: Source::Prometheus,
        status: crate::model::AlertStatus::Firing,
        labels,
        annotations: [("summary".to_string(), "s".to_string())].into(),
        starts_at: now() - SignedDuration::from_mins(5),
        ends_at: None,
        expires_at: Some(now() + SignedDuration::from_mins(5)),
        generator_url: None,
        first_seen: now() - SignedDuration::from_mins(5),
        last_seen: now() - SignedDuration::from_mins(1),
        occurrences: 1,
        acknowledged_at: None,
        muted_by: muted_by.map(|m| crate::model::MuteReason::parse(m).expect("a mute reason")),
        raw: serde_json::value::RawValue::from_string("null".into()).unwrap(),
    }
}

fn silence(id: i64, matchers: &str, starts_min: i64, ends_min: i64) -> Silence {
    Silence {
        id,
        matchers: parse_matchers(matchers).unwrap(),
        starts_at: now() + SignedDuration::from_mins(starts_min),
        ends_at: now() + SignedDuration::from_mins(ends_min),
        created_by: "me".into(),
        comment: "why".into(),
        created_at: now() + SignedDuration::from_mins(starts_min.min(0) - 1),
    }
}

fn all() -> AlertFilter {
    AlertFilter { active: true, silenced: true, inhibited: true, ..Default::default() }
}

#[test]
fn times_are_utc_milliseconds() {
    assert_eq!(time(now()), "2026-11-26T10:00:00.250Z");
    assert_eq!(time("2026-11-26T10:00:00Z".parse().unwrap()), "2026-11-26T10:00:00.000Z");
}

#[test]
fn silence_ids_round_trip() {
    for id in [1, 7, 4096, 1 << 40] {
        let uuid = IDS.format(id);
        assert_eq!(uuid.len(), 36, "{uuid}");
        assert_eq!(IDS.parse(&uuid), SilenceRef::Id(id));
        assert_eq!(IDS.parse(&uuid.to_uppercase()), SilenceRef::Id(id));
    }
    assert_eq!(IDS.format(7), "c0ffee01-0000-4000-8000-000000000007");
    assert_eq!(IDS.parse("42"), SilenceRef::Id(42));
    assert_eq!(IDS.parse("17b6b4f3-0495-49ea-98d1-6f84a5a5f6e6"), SilenceRef::Unknown);
    for bad in ["", "abc", "17b6b4f3-0495-49ea-98d1", "c0ffee01-0000-4000-8000-00000000000g", "99999999999999999999"] {
        assert_eq!(IDS.parse(bad), SilenceRef::Malformed, "{bad:?}");
    }
}

#[test]
fn another_gateways_silence_is_not_taken_for_ours() {
    let other = SilenceIds::new(0x1234);
    assert_eq!(IDS.parse(&other.format(7)), SilenceRef::Unknown);
    assert_eq!(other.parse(&IDS.format(7)), SilenceRef::Unknown);
    // Ids given out before realms existed still name our silences.
    assert_eq!(IDS.parse("00000000-0000-4000-8000-000000000007"), SilenceRef::Id(7));
}

#[test]
fn receivers_are_the_incident_rules_under_a_root() {
    let names: Vec<String> = receivers(&rules(RULES)).into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["unrouted", "team-a", "critical"]);
    let clash = rules("incident_rules:\n  - name: unrouted\n    matchers: []\n");
    let names: Vec<String> = receivers(&clash).into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["unrouted_", "unrouted"]);
}

#[test]
fn alert_status_receivers_and_filters() {
    let r = rules(RULES);
    let crit = alert(&[("alertname", "Disk"), ("severity", "critical"), ("team", "a"), ("cluster", "c1")], None);
    let warn = alert(&[("alertname", "Disk"), ("severity", "warning"), ("team", "a")], Some("inhibited"));
    let other = alert(&[("alertname", "Cpu"), ("severity", "info")], None);
    let held = alert(&[("alertname", "Mem"), ("severity", "info")], Some("change:3"));
    let firing = vec![crit.clone(), warn.clone(), other.clone(), held.clone()];
    let silences = vec![silence(1, "alertname=\"Cpu\"", -10, 60), silence(2, "alertname=\"Cpu\"", 10, 60)];
    let got = alerts(IDS, &r, &firing, &silences, &all(), now());
    assert_eq!(got.len(), 4);
    let by_fp = |a: &AlertRecord| got.iter().find(|g| g.fingerprint == a.fingerprint.as_str()).unwrap();
    let names = |g: &GettableAlert| g.receivers.iter().map(|r| r.name.clone()).collect::<Vec<_>>();

    let c = by_fp(&crit);
    assert_eq!(names(c), ["team-a", "critical"], "continue: true routes to both");
    assert_eq!((c.status.state, c.status.silenced_by.len(), c.status.inhibited_by.len()), ("active", 0, 0));
    assert_eq!(c.ends_at, time(now() + SignedDuration::from_mins(5)));
    assert_eq!(c.updated_at, time(now() - SignedDuration::from_mins(1)));

    let w = by_fp(&warn);
    assert_eq!(w.status.state, "suppressed");
    assert_eq!(w.status.inhibited_by, vec![crit.fingerprint.to_string()]);

    let o = by_fp(&other);
    assert_eq!(names(o), ["unrouted"]);
    assert_eq!(o.status.silenced_by, vec![IDS.format(1)], "the pending silence does not count");

    let h = by_fp(&held);
    assert_eq!((h.status.state, h.status.silenced_by.len()), ("suppressed", 0), "a maintenance window");

    let only_active = AlertFilter { active: true, ..Default::default() };
    let fps: Vec<String> =
        alerts(IDS, &r, &firing, &silences, &only_active, now()).into_iter().map(|a| a.fingerprint).collect();
    assert_eq!(fps, vec![crit.fingerprint.to_string()]);

    let matchers = AlertFilter { matchers: parse_matchers("alertname=~\"D.*\"").unwrap(), ..all() };
    assert_eq!(alerts(IDS, &r, &firing, &silences, &matchers, now()).len(), 2);

    let receiver = AlertFilter { receiver: Some(regex::Regex::new("^(?:crit)$").unwrap()), ..all() };
    assert!(alerts(IDS, &r, &firing, &silences, &receiver, now()).is_empty(), "the regex is anchored");
    let receiver = AlertFilter { receiver: Some(regex::Regex::new("^(?:crit.*)$").unwrap()), ..all() };
    assert_eq!(alerts(IDS, &r, &firing, &silences, &receiver, now()).len(), 1);
}

#[test]
fn groups_follow_each_rules_group_by() {
    let r = rules(RULES);
    let crit = alert(&[("alertname", "Disk"), ("severity", "critical"), ("team", "a"), ("cluster", "c1")], None);
    let warn = alert(&[("alertname", "Disk"), ("severity", "warning"), ("team", "a")], None);
    let other = alert(&[("alertname", "Cpu")], None);
    let got = groups(IDS, &r, &[crit.clone(), warn.clone(), other], &[], &all(), now());
    let summary: Vec<(String, Value, usize)> = got
        .iter()
        .map(|g| (g.receiver.name.clone(), serde_json::to_value(&g.labels).unwrap(), g.alerts.len()))
        .collect();
    let crit_labels = serde_json::to_value(&crit.labels).unwrap();
    assert_eq!(
        summary,
        vec![
            ("unrouted".to_string(), serde_json::json!({}), 1),
            ("team-a".to_string(), serde_json::json!({"alertname": "Disk"}), 1),
            ("team-a".to_string(), serde_json::json!({"alertname": "Disk", "cluster": "c1"}), 1),
            ("critical".to_string(), crit_labels, 1),
        ]
    );
    let disk = got.iter().find(|g| g.receiver.name == "critical").unwrap();
    let names: Vec<&str> = disk.alerts[0].receivers.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["critical", "team-a"], "within groups, receivers by name");
    let team_only = AlertFilter { receiver: Some(regex::Regex::new("^(?:team-a)$").unwrap()), ..all() };
    let only = groups(IDS, &r, &[crit, warn], &[], &team_only, now());
    assert_eq!(only.len(), 2);
    assert!(only.iter().flat_map(|g| &g.alerts).all(|a| a.receivers == [Receiver { name: "team-a".into() }]));
}

#[test]
fn silences_are_filtered_by_equal_matchers_and_sorted_as_alertmanager_does() {
    let list = vec![
        silence(1, "a=\"1\"", -10, 30),
        silence(2, "a=\"1\",b=~\"x.*\"", -10, 20),
        silence(3, "a=\"1\"", 5, 20),
        silence(4, "a=\"1\"", -60, -30),
        silence(5, "a=\"1\"", -60, -5),
        silence(6, "a=\"2\"", -10, 20),
    ];
    let ids = |v: Vec<GettableSilence>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
    let want = |ids: &[i64]| ids.iter().map(|i| IDS.format(*i)).collect::<Vec<_>>();
    assert_eq!(ids(silences(IDS, &list, &[], now())), want(&[2, 6, 1, 3, 5, 4]));
    assert_eq!(ids(silences(IDS, &list, &parse_matchers("a=\"1\"").unwrap(), now())), want(&[2, 1, 3, 5, 4]));
    assert_eq!(ids(silences(IDS, &list, &parse_matchers("b=~\"x.*\"").unwrap(), now())), want(&[2]));
    assert_eq!(
        ids(silences(IDS, &list, &parse_matchers("b=\"x.*\"").unwrap(), now())),
        want(&[]),
        "same operator only"
    );

    let shown = silences(IDS, &list, &[], now());
    let expired = shown.iter().find(|s| s.id == IDS.format(5)).unwrap();
    assert_eq!(expired.updated_at, time(list[4].ends_at), "an ended silence was last changed at its end");
    let active = shown.iter().find(|s| s.id == IDS.format(2)).unwrap();
    assert_eq!(active.updated_at, time(list[1].created_at));
    let json = serde_json::to_value(active).unwrap();
    assert_eq!(json["status"]["state"], "active");
    assert_eq!(
        json["matchers"],
        serde_json::json!([
            {"isEqual": true, "isRegex": false, "name": "a", "value": "1"},
            {"isEqual": true, "isRegex": true, "name": "b", "value": "x.*"}
        ])
    );
}

#[test]
fn posted_matchers_take_alertmanagers_operators() {
    let parse = |v: Value| serde_json::from_value::<AmMatcher>(v).unwrap().to_matcher().unwrap().to_string();
    assert_eq!(parse(serde_json::json!({"name": "a", "value": "1", "isRegex": false})), "a=\"1\"");
    assert_eq!(parse(serde_json::json!({"name": "a", "value": "1", "isRegex": false, "isEqual": false})), "a!=\"1\"");
    assert_eq!(parse(serde_json::json!({"name": "a", "value": "x.*", "isRegex": true})), "a=~\"x.*\"");
    assert_eq!(parse(serde_json::json!({"name": "a", "value": "x", "isRegex": true, "isEqual": false})), "a!~\"x\"");
    let bad = serde_json::from_value::<AmMatcher>(serde_json::json!({"name": "a", "value": "(", "isRegex": true}));
    assert!(bad.unwrap().to_matcher().is_err());
}

#[test]
fn the_config_is_alertmanager_yaml_of_the_rules() {
    let text = config_yaml(&rules(RULES), "5m");
    let v: Value = crate::yaml::from_str(&text).unwrap();
    assert_eq!(v["global"]["resolve_timeout"], "5m");
    assert_eq!(v["route"]["receiver"], "unrouted");
    assert_eq!(v["route"]["routes"][0]["receiver"], "team-a");
    assert_eq!(v["route"]["routes"][0]["matchers"][0], "team=\"a\"");
    assert_eq!(v["route"]["routes"][0]["group_by"], serde_json::json!(["alertname", "cluster"]));
    assert_eq!(v["route"]["routes"][0]["continue"], true);
    assert_eq!(v["route"]["routes"][1]["group_by"], serde_json::json!(["..."]));
    assert_eq!(v["inhibit_rules"][0]["equal"], serde_json::json!(["alertname"]));
    assert_eq!(v["receivers"].as_array().unwrap().len(), 3);
}
