//! Senders as PagerDuty treats them, against the real binary:
//! - a token's static labels (`auth.tokens[].labels`) go onto every alert
//!   it sends, on every ingest route, and win over the alert's own;
//! - an incident whose firing alerts have all been acknowledged by their
//!   senders (PagerDuty `acknowledge` events) is acknowledged, under the
//!   sender's token name in the timeline; one with an alert no sender
//!   acknowledged stays triggered.
mod common;

use common::{Gateway, Options, fixture};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The payments integration's routing key (and token).
const PAYMENTS: &str = "pd-payments-0123456789abcdef";
/// A token with no labels.
const PLAIN: &str = "plain-sender-0123456789abcdef";
const ADMIN: &str = "root-token-0123456789abcdef";

const RULES: &str = r#"
incident_rules:
  - name: payments
    matchers: ['service="payments"']
    group_by: [service]
    service: "{{ labels.service }}"
    title: "payments: {{ labels.alertname }}"
  - name: rest
    matchers: []
    group_by: [alertname]
sla_policies:
  - name: standard
    matchers: []
    targets:
      P1: {respond: 15m}
      P2: {respond: 15m}
      P3: {respond: 15m}
      P4: {respond: 15m}
      P5: {respond: 15m}
"#;

fn sha(t: &str) -> String {
    hex::encode(Sha256::digest(t.as_bytes()))
}

fn start() -> (Gateway, tempfile::TempDir) {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("rules.yaml"), RULES).unwrap();
    let config = format!(
        "auth:
  tokens:
    - {{name: pd-payments, role: ingest, token_sha256: \"{}\", labels: {{service: payments, team: pay}}}}
    - {{name: plain, role: ingest, token_sha256: \"{}\"}}
    - {{name: root, role: admin, token_sha256: \"{}\"}}
generic:
  kuma:
    labels: {{alertname: /name}}
    status: {{field: /status, firing: [\"down\"], resolved: [\"up\"]}}
",
        sha(PAYMENTS),
        sha(PLAIN),
        sha(ADMIN)
    );
    let g = Gateway::start_with(Options {
        config: Some(config),
        rules_dir: Some(rules.path().to_path_buf()),
        ..Default::default()
    });
    (g, rules)
}

async fn send(url: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let mut req = common::client().post(url).header("content-type", "application/json").body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn read(g: &Gateway, path: &str) -> Value {
    let resp = common::client().get(g.url(path)).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// A PagerDuty event with the payments routing key.
fn pd(action: &str, dedup_key: &str, summary: &str) -> String {
    let mut e = json!({"routing_key": PAYMENTS, "event_action": action, "dedup_key": dedup_key});
    if action == "trigger" {
        e["payload"] = json!({"summary": summary, "source": "pay-1", "severity": "critical", "group": "checkout"});
    }
    e.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tokens_labels_go_onto_every_alert_it_sends() {
    let (g, _rules) = start();
    // One alert through each ingest route, all with the payments token.
    let v2 = json!([{"labels": {"alertname": "Push", "service": "checkout", "team": "other"}}]);
    let sent = [
        ("/api/v2/alerts", v2.to_string()),
        ("/api/v1/ingest/alertmanager", fixture("alertmanager_webhook_firing.json")),
        ("/api/v1/ingest/grafana", fixture("grafana_webhook.json")),
        ("/api/v1/ingest/generic/kuma", json!({"name": "Kuma", "status": "down"}).to_string()),
    ];
    for (path, body) in &sent {
        let (status, answer) = send(&g.url(path), Some(PAYMENTS), body).await;
        assert_eq!(status, 200, "{path}: {answer}");
    }
    // PagerDuty: the routing key is the token, no header.
    let (status, answer) = send(&g.url("/v2/enqueue"), None, &pd("trigger", "", "Card payments failing")).await;
    assert_eq!(status, 202, "{answer}");
    let pd_key = answer["dedup_key"].as_str().unwrap().to_string();
    // The same alert from a token without labels keeps its own.
    let plain = json!([{"labels": {"alertname": "Push", "service": "checkout", "team": "other"}}]);
    let (status, _) = send(&g.url("/api/v2/alerts"), Some(PLAIN), &plain.to_string()).await;
    assert_eq!(status, 200);

    let alerts = read(&g, "/api/v1/alerts?limit=1000").await["alerts"].as_array().unwrap().clone();
    let from_payments: Vec<&Value> = alerts.iter().filter(|a| a["labels"]["service"] == "payments").collect();
    let sources: std::collections::BTreeSet<&str> =
        from_payments.iter().map(|a| a["source"].as_str().unwrap()).collect();
    assert_eq!(
        sources,
        ["alertmanager", "generic:kuma", "grafana", "pagerduty", "prometheus"].into(),
        "every route: {alerts:#?}"
    );
    assert!(from_payments.iter().all(|a| a["labels"]["team"] == "pay"), "{from_payments:#?}");
    let push = from_payments.iter().find(|a| a["labels"]["alertname"] == "Push").unwrap();
    assert_eq!(
        push["labels"],
        json!({"alertname": "Push", "service": "payments", "team": "pay"}),
        "the token's labels win"
    );
    assert_eq!(push["raw"]["labels"]["service"], "checkout", "the sender's payload is kept as sent");
    let own = alerts.iter().find(|a| a["labels"]["alertname"] == "Push" && a["labels"]["service"] == "checkout");
    assert!(own.is_some(), "the plain token's alert keeps its labels and is another alert: {alerts:#?}");
    assert_ne!(own.unwrap()["fingerprint"], push["fingerprint"]);

    // PagerDuty's answer gives the key the alert is stored under, and the
    // alerts open payments incidents (service from the label).
    let by_key = read(&g, &format!("/api/v1/alerts/{pd_key}")).await;
    assert_eq!(by_key["labels"]["service"], "payments");
    let (status, _) = send(&g.url("/v2/enqueue"), None, &pd("resolve", &pd_key, "")).await;
    assert_eq!(status, 202);
    assert_eq!(read(&g, &format!("/api/v1/alerts/{pd_key}")).await["status"], "resolved", "its key resolves it");
    let incidents =
        read(&g, "/api/v1/incidents?rule=payments&state=all").await["incidents"].as_array().unwrap().clone();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    assert_eq!(incidents[0]["service"], "payments");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_acknowledged_by_all_its_senders_is_acknowledged() {
    let (g, _rules) = start();
    for (key, summary) in [("pay-k1", "Card payments failing"), ("pay-k2", "Refunds failing")] {
        let (status, answer) = send(&g.url("/v2/enqueue"), None, &pd("trigger", key, summary)).await;
        assert_eq!(status, 202, "{answer}");
    }
    let incidents = read(&g, "/api/v1/incidents?rule=payments").await["incidents"].as_array().unwrap().clone();
    assert_eq!(incidents.len(), 1, "both alerts in one payments incident: {incidents:#?}");
    let id = incidents[0]["id"].as_i64().unwrap();
    assert_eq!(incidents[0]["firingCount"], 2);

    // One of two acknowledged: someone looks at one alert, not the incident.
    let (status, _) = send(&g.url("/v2/enqueue"), None, &pd("acknowledge", "pay-k1", "")).await;
    assert_eq!(status, 202);
    let d = read(&g, &format!("/api/v1/incidents/{id}")).await;
    assert_eq!(d["state"], "triggered");
    assert!(d["alerts"].as_array().unwrap().iter().any(|a| a["acknowledgedAt"].is_string()));

    // Both: the incident is acknowledged, by the sender, and its respond clock is met.
    let (status, _) = send(&g.url("/v2/enqueue"), None, &pd("acknowledge", "pay-k2", "")).await;
    assert_eq!(status, 202);
    let d = read(&g, &format!("/api/v1/incidents/{id}")).await;
    assert_eq!(d["state"], "acknowledged", "{d:#}");
    let ack = d["timeline"].as_array().unwrap().iter().find(|e| e["kind"] == "acknowledged").unwrap().clone();
    assert_eq!(ack["actor"], "pd-payments", "the sender's token is named: {ack}");
    assert!(ack["message"].as_str().unwrap().contains("acknowledged by its sender (pd-payments)"), "{ack}");
    assert_eq!(d["sla"]["respond"]["state"], "met", "{d:#}");
    // A repeated acknowledge changes nothing more.
    let (status, _) = send(&g.url("/v2/enqueue"), None, &pd("acknowledge", "pay-k2", "")).await;
    assert_eq!(status, 202);
    let again = read(&g, &format!("/api/v1/incidents/{id}")).await;
    let acks = |d: &Value| d["timeline"].as_array().unwrap().iter().filter(|e| e["kind"] == "acknowledged").count();
    assert_eq!(acks(&again), 1);

    // An incident with an alert no sender can acknowledge stays triggered.
    let prom = json!([{"labels": {"alertname": "Latency", "service": "ledger"}}]);
    let (status, _) = send(&g.url("/api/v2/alerts"), Some(PLAIN), &prom.to_string()).await;
    assert_eq!(status, 200);
    let ledger = json!({"routing_key": PLAIN, "event_action": "trigger", "dedup_key": "ledger-1",
                        "payload": {"summary": "Latency", "source": "ledger-1", "severity": "error"}});
    let (status, answer) = send(&g.url("/v2/enqueue"), None, &ledger.to_string()).await;
    assert_eq!(status, 202, "{answer}");
    let rest = read(&g, "/api/v1/incidents?rule=rest").await["incidents"].as_array().unwrap().clone();
    let latency = rest.iter().find(|i| i["title"] == "Latency").unwrap_or_else(|| panic!("{rest:#?}"));
    assert_eq!(latency["firingCount"], 2, "{latency}");
    let ack = json!({"routing_key": PLAIN, "event_action": "acknowledge", "dedup_key": "ledger-1"});
    let (status, _) = send(&g.url("/v2/enqueue"), None, &ack.to_string()).await;
    assert_eq!(status, 202);
    let d = read(&g, &format!("/api/v1/incidents/{}", latency["id"])).await;
    assert_eq!(d["state"], "triggered", "Prometheus' alert is not acknowledged: {d:#}");
}
