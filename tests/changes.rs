//! Changes recorded after the fact: a deploy logged once the dust settled
//! is still listed as a suspected cause of the incidents in its window.
mod common;

use common::{Gateway, Options, get, post, t0, wait_for};
use jiff::SignedDuration;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

const RULES: &str = r#"
change_correlation: {window: 1h}
incident_rules:
  - name: svc
    matchers: []
    group_by: [alertname, service]
    service: "{{ labels.service }}"
"#;

fn ago(g: &Gateway, secs: i64) -> String {
    (g.now() - SignedDuration::from_secs(secs)).to_string()
}

async fn new_change(g: &Gateway, body: Value) -> i64 {
    let (status, c) = post(&g.url("/api/v1/changes"), &body.to_string()).await;
    assert_eq!(status, 201, "{body}: {c}");
    c["id"].as_i64().unwrap()
}

async fn open(g: &Gateway, alertname: &str, service: &str) -> i64 {
    let alert = json!([{"labels": {"alertname": alertname, "service": service}}]);
    let (status, body) = post(&g.url("/api/v2/alerts"), &alert.to_string()).await;
    assert_eq!(status, 200, "{body}");
    wait_for(Duration::from_secs(15), "the incident", || async {
        let (_, list) = get(&g.url("/api/v1/incidents")).await;
        list["incidents"].as_array()?.iter().find(|i| i["labels"]["alertname"] == alertname)?["id"].as_i64()
    })
    .await
}

async fn suspects(g: &Gateway, id: i64) -> (BTreeSet<i64>, Value) {
    let (status, inc) = get(&g.url(&format!("/api/v1/incidents/{id}"))).await;
    assert_eq!(status, 200, "{inc}");
    let ids = inc["suspectedChanges"].as_array().expect("suspectedChanges").iter().filter_map(|c| c["id"].as_i64());
    (ids.collect(), inc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_recorded_after_the_fact_is_suspected_by_the_incidents_in_its_window() {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("rules.yaml"), RULES).unwrap();
    let g = Gateway::start_with(Options {
        rules_dir: Some(rules.path().to_path_buf()),
        test_clock: Some(t0()),
        ..Default::default()
    });

    // Incidents open first; the deploy that caused them is logged afterwards.
    let payments = open(&g, "PaymentErrors", "payments").await;
    let search = open(&g, "SearchSlow", "search").await;
    let deploy = new_change(
        &g,
        json!({"service": "payments", "summary": "deploy payments v2", "start": ago(&g, 120), "actor": "ci-bot"}),
    )
    .await;
    let next_deploy =
        new_change(&g, json!({"service": "payments", "summary": "next deploy", "start": ago(&g, -60)})).await;
    let old = new_change(&g, json!({"service": "payments", "summary": "old deploy", "start": ago(&g, 7300)})).await;

    let (ids, inc) = suspects(&g, payments).await;
    assert_eq!(ids, BTreeSet::from([deploy]), "only the deploy whose window holds the incident: {inc:#}");
    assert!(!ids.contains(&next_deploy) && !ids.contains(&old));
    let said: Vec<&str> = inc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "change_suspected")
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].contains("deploy payments v2") && said[0].contains("recorded after the incident opened"),
        "{said:?}"
    );
    let (ids, _) = suspects(&g, search).await;
    assert!(ids.is_empty(), "another service's incident: {ids:?}");

    // Ten minutes on, an incident opening finds both deploys, each once: the
    // second has begun by then.
    g.advance(SignedDuration::from_mins(10)).await;
    let later = open(&g, "PaymentLatency", "payments").await;
    let (ids, _) = suspects(&g, later).await;
    assert_eq!(ids, BTreeSet::from([deploy, next_deploy]));
}
