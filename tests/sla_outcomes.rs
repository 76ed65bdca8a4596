//! What an incident's SLA says at once, without waiting for time to pass:
//! the deadline and the next milestone as instants, a promise kept to
//! responding only by someone, and a longer target's own warnings.
mod common;

use common::{Gateway, Options, get, post, t0, wait_for};
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
    // Alerts sent once stay firing for the hours these timelines span.
    let g = Gateway::start_with(Options {
        config: Some("resolve_timeout: 1d\n".into()),
        rules_dir: Some(rules.path().to_path_buf()),
        test_clock: Some(t0()),
        ..Default::default()
    });
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
        json!([{"labels": {"alertname": alertname}, "endsAt": g.now().to_string()}])
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
    assert_eq!(created, t0());
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
    // The report covers the incidents created up to now.
    g.advance(mins(1)).await;
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
    // t0+20m: the 50 % warning of the 30 minutes was given at t0+15m.
    g.advance(mins(20)).await;
    let url = g.url(&format!("/api/v1/incidents/{}", inc["id"]));
    let inc = get(&url).await.1;
    assert_eq!(inc["sla"]["respond"]["warned_at"][0]["at"], (t0() + mins(15)).to_string(), "{inc:#}");
    // Lowered to P3 (4 h): its own 50 % is at t0+2h, not skipped for the old one.
    let resp = common::client()
        .patch(format!("{url}/priority"))
        .header("content-type", "application/json")
        .body(json!({"actor": "alice", "priority": "P3"}).to_string())
        .send()
        .await
        .expect("patch");
    assert_eq!(resp.status().as_u16(), 200);
    let inc: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    let respond = &inc["sla"]["respond"];
    assert_eq!(respond["target"], "4h", "{respond:#}");
    assert_eq!(ts(&respond["breachAt"]), t0() + mins(240), "{respond:#}");
    assert_eq!(ts(&respond["nextMilestoneAt"]), t0() + mins(120), "50 % of 4 h: {respond:#}");
    g.advance_to(t0() + mins(120)).await;
    let inc = get(&url).await.1;
    let warnings: Vec<&Value> =
        inc["timeline"].as_array().unwrap().iter().filter(|e| e["kind"] == "sla_warning").collect();
    assert_eq!(warnings.len(), 2, "50 % of 30 m, then 50 % of 4 h: {warnings:#?}");
    assert!(warnings.iter().any(|w| w["at"] == (t0() + mins(120)).to_string()), "{warnings:#?}");
}
