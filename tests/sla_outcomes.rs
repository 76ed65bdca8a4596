//! What an incident's SLA says at once, without waiting for time to pass:
//! the deadline and the next milestone as instants, a promise kept to
//! responding only by someone, and a longer target's own warnings.
mod common;

use common::{Gateway, Options, get, post, wait_for};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use std::time::Duration;

const RULES: &str = r#"
sla_policies:
  - name: tiered
    warn_at: [50]
    targets:
      P1: {respond: 30m, resolve: 4h}
      P3: {respond: 4h}
incident_rules:
  - name: pay
    matchers: []
    group_by: [alertname]
    impact: high
    urgency: high
"#;

fn start() -> (Gateway, tempfile::TempDir) {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("rules.yaml"), RULES).unwrap();
    let g = Gateway::start_with(Options { rules_dir: Some(rules.path().to_path_buf()), ..Default::default() });
    (g, rules)
}

fn ts(v: &Value) -> Timestamp {
    v.as_str().unwrap_or_else(|| panic!("not a time: {v}")).parse().unwrap()
}

fn mins(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

async fn send(g: &Gateway, alertname: &str, status: &str) {
    let alert = if status == "resolved" {
        json!([{"labels": {"alertname": alertname}, "endsAt": Timestamp::now().to_string()}])
    } else {
        json!([{"labels": {"alertname": alertname}}])
    };
    let (code, body) = post(&g.url("/api/v2/alerts"), &alert.to_string()).await;
    assert_eq!(code, 200, "{body}");
}

async fn incident_of(g: &Gateway, alertname: &str) -> Value {
    let url = g.url("/api/v1/incidents?state=all");
    let id = wait_for(Duration::from_secs(15), "the incident", || async {
        let (_, list) = get(&url).await;
        list["incidents"]
            .as_array()?
            .iter()
            .find(|i| i["title"].as_str().is_some_and(|t| t.contains(alertname)))
            .map(|i| i["id"].clone())
    })
    .await;
    get(&g.url(&format!("/api/v1/incidents/{id}"))).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_clock_shows_its_deadline_and_its_next_milestone() {
    let (g, _rules) = start();
    send(&g, "Deadline", "firing").await;
    let inc = incident_of(&g, "Deadline").await;
    let created = ts(&inc["createdAt"]);
    let respond = &inc["sla"]["respond"];
    assert_eq!(respond["state"], "running", "{inc:#}");
    // 24x7: the deadline is 30 minutes on, the 50 % warning 15.
    assert_eq!(ts(&respond["breachAt"]), created + mins(30), "{respond:#}");
    assert_eq!(ts(&respond["nextMilestoneAt"]), created + mins(15), "{respond:#}");
    assert_eq!(ts(&inc["sla"]["resolve"]["breachAt"]), created + mins(240));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolved_before_anyone_acknowledged_is_not_a_kept_promise() {
    let (g, _rules) = start();
    send(&g, "Unanswered", "firing").await;
    send(&g, "Answered", "firing").await;
    let answered = incident_of(&g, "Answered").await;
    let url = g.url(&format!("/api/v1/incidents/{}/acknowledge", answered["id"]));
    let (code, body) = post(&url, &json!({"actor": "alice"}).to_string()).await;
    assert_eq!(code, 200, "{body}");
    // Both alerts clear; both incidents resolve by themselves.
    send(&g, "Unanswered", "resolved").await;
    send(&g, "Answered", "resolved").await;
    for (name, outcome) in [("Unanswered", "resolved_unacknowledged"), ("Answered", "met")] {
        let inc = wait_for(Duration::from_secs(15), "the incident to resolve", || async {
            let inc = incident_of(&g, name).await;
            (inc["state"] == "resolved").then_some(inc)
        })
        .await;
        assert_eq!(inc["sla"]["respond"]["state"], outcome, "{name}: {inc:#}");
        assert_eq!(inc["sla"]["resolve"]["state"], "met", "{name}: resolving keeps the resolve promise");
    }
    let (code, report) = get(&g.url("/api/v1/reports/sla?group_by=priority")).await;
    assert_eq!(code, 200, "{report}");
    let total = &report["total"];
    assert_eq!(total["resolvedUnacknowledged"], 1, "{report:#}");
    assert_eq!(total["respondCompliancePercent"], 50.0, "one met, one unanswered: {report:#}");
    assert_eq!(total["respondBreaches"], 0, "{report:#}");
    let (code, filtered) = get(&g.url("/api/v1/incidents?state=all&sla=resolved_unacknowledged")).await;
    assert_eq!(code, 200, "{filtered}");
    let titles: Vec<&str> =
        filtered["incidents"].as_array().unwrap().iter().filter_map(|i| i["title"].as_str()).collect();
    assert!(titles.len() == 1 && titles[0].contains("Unanswered"), "{titles:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_longer_target_moves_the_deadline_and_its_warnings() {
    let (g, _rules) = start();
    send(&g, "Lowered", "firing").await;
    let inc = incident_of(&g, "Lowered").await;
    let created = ts(&inc["createdAt"]);
    let url = g.url(&format!("/api/v1/incidents/{}/priority", inc["id"]));
    let resp = common::client()
        .patch(&url)
        .header("content-type", "application/json")
        .body(json!({"actor": "alice", "priority": "P3"}).to_string())
        .send()
        .await
        .expect("patch");
    assert_eq!(resp.status().as_u16(), 200);
    let inc: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    let respond = &inc["sla"]["respond"];
    assert_eq!(respond["target"], "4h", "{respond:#}");
    assert_eq!(ts(&respond["breachAt"]), created + mins(240), "{respond:#}");
    assert_eq!(ts(&respond["nextMilestoneAt"]), created + mins(120), "50 % of 4 h: {respond:#}");
}
