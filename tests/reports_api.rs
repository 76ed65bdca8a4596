//! SLA reports and the SLA metrics, through HTTP and the command line,
//! against the real binary: incidents acknowledged in time, breached, and
//! resolved, grouped by service and by priority; JSON and CSV. The gateway
//! runs on a controlled clock, so the figures are exact.
mod common;

use std::process::Command;
use std::time::Duration;

use common::{BIN, Gateway, Options, client, get, post, run_to_exit, t0, wait_for};
use jiff::SignedDuration;
use serde_json::Value;

const RULES: &str = r#"
incident_rules:
  - name: by-service
    group_by: [alertname]
    service: "{{ labels.service }}"
    impact: high
    urgency_from: {label: severity, map: {critical: high}, default: low}
sla_policies:
  - name: fast
    targets:
      P1: {respond: 15m}
      P3: {resolve: 1h}
    warn_at: []
"#;

async fn open(g: &Gateway, alertname: &str, service: &str, severity: &str) -> i64 {
    let body = format!(r#"[{{"labels":{{"alertname":"{alertname}","service":"{service}","severity":"{severity}"}}}}]"#);
    let (status, resp) = post(&g.url("/api/v2/alerts"), &body).await;
    assert_eq!(status, 200, "{resp}");
    wait_for(Duration::from_secs(10), "the incident", || async {
        let (_, page) = get(&g.url("/api/v1/incidents?limit=500")).await;
        page["incidents"].as_array()?.iter().find(|i| i["title"] == alertname).and_then(|i| i["id"].as_i64())
    })
    .await
}

async fn act(g: &Gateway, id: i64, action: &str) {
    let (status, resp) = post(&g.url(&format!("/api/v1/incidents/{id}/{action}")), r#"{"actor":"alice"}"#).await;
    assert_eq!(status, 200, "{action} {id}: {resp}");
}

fn group<'a>(report: &'a Value, key: &str) -> &'a Value {
    report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == key)
        .unwrap_or_else(|| panic!("no {key}: {report}"))
}

#[tokio::test]
async fn the_sla_report_counts_met_and_breached_clocks_per_group() {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("r.yaml"), RULES).unwrap();
    let g = Gateway::start_with(Options {
        // Alerts keep firing through the test's half hour without re-sends.
        config: Some("resolve_timeout: 1d\n".into()),
        rules_dir: Some(rules.path().to_path_buf()),
        test_clock: Some(t0()),
        ..Default::default()
    });
    let mins = SignedDuration::from_mins;

    // payments: one acknowledged in time (opened at t0, acknowledged at
    // t0+5m), one breached before anyone answered (opened at t0+5m,
    // breached at t0+20m, then acknowledged and resolved).
    let quick = open(&g, "PayQuick", "payments", "critical").await;
    g.advance(mins(5)).await;
    act(&g, quick, "acknowledge").await;
    let slow = open(&g, "PaySlow", "payments", "critical").await;
    g.advance(mins(15)).await;
    let (_, d) = get(&g.url(&format!("/api/v1/incidents/{slow}"))).await;
    assert_eq!(d["sla"]["respond"]["state"], "breached", "{d:#}");
    act(&g, slow, "acknowledge").await;
    act(&g, slow, "resolve").await;
    // web: a P3 incident opened at t0+20m, resolved at t0+30m, well within its target.
    let web = open(&g, "WebSlow", "web", "warning").await;
    g.advance(mins(10)).await;
    act(&g, web, "resolve").await;

    let (status, r) = get(&g.url("/api/v1/reports/sla?group_by=service")).await;
    assert_eq!(status, 200, "{r}");
    let pay = group(&r, "payments");
    assert_eq!(pay["incidents"], 2);
    assert_eq!(pay["acknowledged"], 2);
    assert_eq!(pay["resolved"], 1);
    assert_eq!(pay["respondCompliancePercent"], 50.0, "{pay}");
    assert_eq!(pay["respondBreaches"], 1);
    assert_eq!(pay["mttaSeconds"], 600.0, "5 and 15 minutes: {pay}");
    assert_eq!(pay["mttrSeconds"], 900.0, "resolved after its breach: {pay}");
    assert!(pay["resolveCompliancePercent"].is_null(), "P1 has no resolve target: {pay}");
    let webg = group(&r, "web");
    assert_eq!(webg["incidents"], 1);
    assert_eq!(webg["resolveCompliancePercent"], 100.0, "{webg}");
    assert_eq!(webg["mttrSeconds"], 600.0, "{webg}");
    assert!(webg["mttaSeconds"].is_null(), "never acknowledged: {webg}");
    assert_eq!(r["total"]["incidents"], 3);
    assert_eq!(r["total"]["respondBreaches"], 1);

    let (_, by_priority) = get(&g.url("/api/v1/reports/sla?group_by=priority")).await;
    assert_eq!(group(&by_priority, "P1")["incidents"], 2);
    assert_eq!(group(&by_priority, "P3")["incidents"], 1);

    // A range that ends before the incidents holds none.
    let (_, empty) = get(&g.url("/api/v1/reports/sla?from=2020-01-01T00:00:00Z&to=2020-02-01T00:00:00Z")).await;
    assert_eq!(empty["total"]["incidents"], 0, "{empty}");
    assert!(empty["groups"].as_array().unwrap().is_empty());

    // CSV on request.
    let resp =
        client().get(g.url("/api/v1/reports/sla?group_by=service")).header("accept", "text/csv").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = resp.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("service,incidents,acknowledged,resolved,mtta_seconds"), "{csv}");
    let pay_line = lines.iter().find(|l| l.starts_with("payments,")).unwrap_or_else(|| panic!("{csv}"));
    let cells: Vec<&str> = pay_line.split(',').collect();
    assert_eq!(cells[1], "2");
    assert_eq!(cells[6], "50.0", "respond compliance: {pay_line}");
    assert!(lines.last().unwrap().starts_with("total,3,"), "{csv}");

    // Mistakes are 400s that say what is wrong.
    let (status, e) = get(&g.url("/api/v1/reports/sla?group_by=team")).await;
    assert_eq!(status, 400);
    assert!(e["error"].as_str().unwrap().contains("service, priority, rule"), "{e}");
    let (status, _) = get(&g.url("/api/v1/reports/sla?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z")).await;
    assert_eq!(status, 400);

    // The command line prints the same figures.
    let (code, out, err) = run_to_exit(
        Command::new(BIN).args(["report", "sla", "--url", &g.url(""), "--group-by", "service"]),
        Duration::from_secs(30),
    );
    assert!(code.success(), "{out}{err}");
    let pay_row = out.lines().find(|l| l.starts_with("payments")).unwrap_or_else(|| panic!("{out}"));
    assert!(pay_row.contains("50.0%"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("total")), "{out}");
    let (code, out, _) =
        run_to_exit(Command::new(BIN).args(["report", "sla", "--url", &g.url(""), "--csv"]), Duration::from_secs(30));
    assert!(code.success());
    assert!(out.starts_with("service,incidents,"), "{out}");

    // The SLA metrics agree.
    let text = client().get(g.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let sample = |prefix: &str| -> Option<f64> {
        text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    assert_eq!(
        sample(r#"alertgate_sla_breaches_total{kind="respond",priority="P1",service="payments"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(r#"alertgate_time_to_acknowledge_seconds_count{priority="P1",service="payments"}"#), Some(2.0));
    assert_eq!(sample(r#"alertgate_time_to_resolve_seconds_count{priority="P3",service="web"}"#), Some(1.0));
    assert_eq!(
        sample(r#"alertgate_sla_compliance_ratio{kind="respond",priority="P1",service="payments"}"#),
        Some(0.5),
        "{text}"
    );
    assert_eq!(
        sample(r#"alertgate_incidents_created_total{priority="P1",rule="by-service",service="payments"}"#),
        Some(2.0)
    );
}
