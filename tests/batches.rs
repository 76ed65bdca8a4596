//! A batch of alerts is taken exactly as its alerts one by one would be:
//! two gateways on the same controlled clock, one sent whole batches, the
//! other each alert in a request of its own, end with the same alerts,
//! incidents and timelines. The batches mix what the gateway takes in bulk
//! (alerts sent again, new alerts joining an open incident) with what it
//! takes one by one (incidents opening, pending groups, inhibition, alerts
//! resolving and firing again, an alert sent twice in one batch).
mod common;

use common::{Gateway, Options, get, post, t0};
use jiff::SignedDuration;
use serde_json::{Value, json};

const RULES: &str = r#"
incident_rules:
  - name: disk
    matchers: ['alertname="Disk"']
    group_by: [alertname]
    title: "disk"
    continue: true
  - name: disk-by-team
    matchers: ['alertname="Disk"']
    group_by: [alertname]
    title: "disk by team"
  - name: node
    matchers: ['alertname=~"Node.*"']
    group_by: [alertname]
    group_window: 4h
    title: "{{ labels.alertname }}"
    flap_window: 10m
  - name: held
    matchers: ['alertname="Held"']
    group_by: [alertname]
    min_alerts: 3
    title: "held"
  - name: catch-all
    matchers: []
    group_by: [alertname, service]
    title: "{{ labels.alertname }}"
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [alertname]
"#;

fn alert(name: &str, instance: &str, severity: &str, resolved_at: Option<jiff::Timestamp>) -> Value {
    let mut a = json!({
        "labels": {"alertname": name, "instance": instance, "severity": severity},
        "annotations": {"summary": format!("{name} on {instance}")},
        "startsAt": t0().to_string(),
        "generatorURL": format!("http://prometheus.local/graph?{name}"),
    });
    if let Some(at) = resolved_at {
        a["endsAt"] = json!(at.to_string());
    }
    a
}

fn firing(name: &str, instance: &str) -> Value {
    alert(name, instance, "warning", None)
}

/// The batches, each sent at its own time (minutes after t0).
fn batches() -> Vec<(i64, Vec<Value>)> {
    let resolved = |name: &str, instance: &str, minute: i64| {
        alert(name, instance, "warning", Some(t0() + SignedDuration::from_mins(minute)))
    };
    vec![
        (0, vec![firing("NodeDown", "a"), firing("NodeDown", "b"), firing("Other", "x"), firing("NodeDown", "a")]),
        (
            1,
            vec![
                firing("NodeDown", "a"),
                firing("NodeDown", "c"),
                firing("NodeDown", "b"),
                firing("Held", "h1"),
                firing("Other", "y"),
                firing("NodeDown", "c"),
                firing("Held", "h2"),
                firing("NodeDown", "d"),
            ],
        ),
        (
            2,
            vec![
                firing("NodeDown", "a"),
                resolved("NodeDown", "b", 2),
                firing("Held", "h3"),
                firing("NodeDown", "e"),
                firing("Held", "h1"),
                alert("NodeDisk", "a", "critical", None),
                firing("NodeDisk", "b"),
                firing("Other", "x"),
            ],
        ),
        (
            3,
            vec![
                firing("NodeDown", "b"),
                firing("NodeDown", "a"),
                firing("NodeDisk", "b"),
                alert("NodeDisk", "a", "critical", Some(t0() + SignedDuration::from_mins(3))),
                firing("NodeDisk", "c"),
                firing("NodeDown", "f"),
                firing("Held", "h4"),
            ],
        ),
        (4, vec![firing("NodeDown", "a"), firing("NodeDisk", "b"), firing("NodeDisk", "c"), firing("NodeDown", "g")]),
    ]
}

async fn listing(g: &Gateway, path: &str, key: &str) -> Vec<Value> {
    let (status, body) = get(&g.url(path)).await;
    assert_eq!(status, 200, "{path}: {body}");
    body[key].as_array().unwrap_or_else(|| panic!("{path}: {body}")).clone()
}

/// Everything the gateway stored that a batch can change: every alert,
/// and every incident with its alerts and timeline.
async fn stored(g: &Gateway) -> (Vec<Value>, Vec<Value>) {
    let alerts = listing(g, "/api/v1/alerts?limit=500", "alerts").await;
    let mut incidents = Vec::new();
    for i in listing(g, "/api/v1/incidents?limit=500", "incidents").await {
        let (status, detail) = get(&g.url(&format!("/api/v1/incidents/{}", i["id"]))).await;
        assert_eq!(status, 200, "{detail}");
        incidents.push(detail);
    }
    (alerts, incidents)
}

#[tokio::test]
async fn a_batch_is_taken_as_its_alerts_one_by_one() {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("rules.yaml"), RULES).unwrap();
    let start = |_| {
        Gateway::start_with(Options {
            rules_dir: Some(rules.path().to_path_buf()),
            test_clock: Some(t0()),
            ..Default::default()
        })
    };
    let (whole, single) = (start(()), start(()));
    for (minute, batch) in batches() {
        let at = t0() + SignedDuration::from_mins(minute);
        whole.advance_to(at).await;
        single.advance_to(at).await;
        let (status, body) = post(&whole.url("/api/v2/alerts"), &Value::from(batch.clone()).to_string()).await;
        assert_eq!(status, 200, "{body}");
        for a in batch {
            let (status, body) = post(&single.url("/api/v2/alerts"), &json!([a]).to_string()).await;
            assert_eq!(status, 200, "{body}");
        }
    }
    // A disk alert opens an incident under each of its two rules; one is
    // merged into the other, so a new disk alert's two routes lead to one
    // incident, which it joins once.
    for g in [&whole, &single] {
        g.advance(SignedDuration::from_mins(1)).await;
        assert_eq!(post(&g.url("/api/v2/alerts"), &json!([firing("Disk", "d1")]).to_string()).await.0, 200);
        let disk = listing(g, "/api/v1/incidents?limit=500", "incidents").await;
        let id_of = |title: &str| disk.iter().find(|i| i["title"] == title).map(|i| i["id"].clone()).unwrap();
        let merge = json!({"into": id_of("disk by team"), "comment": "one disk", "actor": "ops"});
        let (status, body) =
            post(&g.url(&format!("/api/v1/incidents/{}/merge", id_of("disk"))), &merge.to_string()).await;
        assert_eq!(status, 200, "{body}");
    }
    let disks = [firing("Disk", "d2"), firing("NodeDown", "a"), firing("Disk", "d3")];
    assert_eq!(post(&whole.url("/api/v2/alerts"), &Value::from(disks.to_vec()).to_string()).await.0, 200);
    for a in disks {
        assert_eq!(post(&single.url("/api/v2/alerts"), &json!([a]).to_string()).await.0, 200);
    }
    let (alerts, incidents) = stored(&whole).await;
    let (alerts_single, incidents_single) = stored(&single).await;

    // What the batches hold shows in what was stored, so the comparison
    // below compares something.
    assert_eq!(alerts.len(), 19, "{alerts:#?}");
    let occurrences = |fp_labels: (&str, &str)| {
        alerts
            .iter()
            .find(|a| a["labels"]["alertname"] == fp_labels.0 && a["labels"]["instance"] == fp_labels.1)
            .map(|a| a["occurrences"].clone())
    };
    assert_eq!(occurrences(("NodeDown", "a")), Some(json!(7)), "sent twice in the first batch, then each minute");
    let node_down = incidents.iter().find(|i| i["title"] == "NodeDown").expect("a NodeDown incident");
    assert!(node_down["alerts"].as_array().is_some_and(|a| a.len() == 7), "{node_down:#}");
    assert!(incidents.iter().any(|i| i["title"] == "held"), "three held alerts opened theirs: {incidents:#?}");
    let by_team = incidents.iter().find(|i| i["title"] == "disk by team").expect("the disk incident merged into");
    assert!(by_team["alerts"].as_array().is_some_and(|a| a.len() == 3), "each disk alert once: {by_team:#}");
    let inhibited = alerts.iter().find(|a| a["labels"]["alertname"] == "NodeDisk" && a["labels"]["instance"] == "b");
    assert!(inhibited.is_some_and(|a| a["mutedBy"].is_null()), "its inhibitor resolved: {inhibited:#?}");

    assert_eq!(alerts, alerts_single, "alerts, batched (left) and one by one (right)");
    assert_eq!(incidents.len(), incidents_single.len(), "{incidents:#?}\n{incidents_single:#?}");
    for (batched, single) in incidents.iter().zip(&incidents_single) {
        assert_eq!(batched, single, "incident {}, batched (left) and one by one (right)", batched["id"]);
    }
}
