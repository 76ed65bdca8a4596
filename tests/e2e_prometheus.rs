//! End to end with Debian's real `prometheus`: Prometheus lists alertgate as
//! its alertmanager (`api_version: v2`) and scrapes its `/metrics`. An
//! always-firing rule becomes a P1 incident in alertgate; Prometheus then
//! sees the open incident in `alertgate_incidents_open` and, since nobody
//! acknowledges within the 3 s respond target, the breach in
//! `alertgate_sla_breaches_total`. The same Prometheus loads the shipped
//! rules of deploy/prometheus/alertgate.rules.yml: they evaluate without
//! error against the live gateway, its heartbeat fires and reaches
//! alertgate, and AlertgateDown stays quiet.
//!
//! Everything listens on 127.0.0.1 with ephemeral ports; every process is
//! killed on drop, also when the test panics.
mod common;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Gateway, Options, Proc, get, repo_path};
use serde_json::Value;

const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";
/// Upper bound for any wait on Prometheus or alertgate.
const WAIT: Duration = Duration::from_secs(60);

/// alertgate's rules: the test's alert is a P1 (impact and urgency high)
/// with a 3 s respond target, and its incident stays open.
const RULES: &str = r#"
incident_rules:
  - name: e2e-prometheus
    matchers: ['alertname="E2EAlwaysFiring"']
    group_by: [alertname]
    title: "{{ labels.alertname }}"
    service: e2e
    impact: high
    urgency: high
    auto_resolve_after: never
sla_policies:
  - name: e2e
    matchers: []
    calendar: 24x7
    targets:
      P1: {respond: 3s}
"#;

/// Prometheus' rule file for the test.
const PROMETHEUS_RULES: &str = r#"
groups:
  - name: e2e
    rules:
      - alert: E2EAlwaysFiring
        expr: vector(1)
        labels:
          severity: critical
        annotations:
          summary: "Always firing (value {{ $value }})"
"#;

/// A running Prometheus with its own TSDB directory and log. Killed on drop
/// (the process goes before its directory: fields drop in order).
struct Prometheus {
    _proc: Proc,
    addr: String,
    log: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Prometheus {
    /// Start Prometheus on a free loopback port with `config` (rule files
    /// given relative to it are written next to it) and wait until it is
    /// ready. If another process takes the port between probing and binding,
    /// Prometheus exits and is started again on another port.
    async fn start(config: &str, rule_files: &[(&str, &str)]) -> Prometheus {
        let bin = std::env::var("ALERTGATE_TEST_PROMETHEUS").unwrap_or_else(|_| PROMETHEUS_BIN.to_string());
        assert!(Path::new(&bin).exists(), "{bin} is missing: install Debian's `prometheus` package to run this test");
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = tmp.path().join("prometheus.yml");
        std::fs::write(&cfg, config).unwrap();
        for (name, text) in rule_files {
            std::fs::write(tmp.path().join(name), text).unwrap();
        }
        let dir = tmp.path().to_path_buf();
        let (proc, addr, log) = common::start_peer(&bin, &dir, "prometheus", WAIT, |addr, attempt| {
            vec![
                format!("--config.file={}", cfg.display()),
                format!("--storage.tsdb.path={}", dir.join(format!("data-{attempt}")).display()),
                format!("--web.listen-address={addr}"),
                // Re-send firing alerts every second (default 1m), so the
                // first delivery does not wait for the next minute.
                "--rules.alert.resend-delay=1s".into(),
            ]
        })
        .await;
        Prometheus { _proc: proc, addr, log, _tmp: tmp }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An instant query: the result vector.
    async fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let resp = common::client()
            .get(self.url("/api/v1/query"))
            .query(&[("query", promql)])
            .send()
            .await
            .map_err(|e| format!("query {promql}: {e}"))?;
        let body: Value = resp.json().await.map_err(|e| format!("query {promql}: {e}"))?;
        if body["status"] != "success" {
            return Err(format!("query {promql}: {body}"));
        }
        Ok(body["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// The rule groups as `GET /api/v1/rules` reports them.
    async fn rule_groups(&self) -> Vec<Value> {
        let (status, body) = get(&self.url("/api/v1/rules")).await;
        assert_eq!(status, 200, "{body}");
        body["data"]["groups"].as_array().cloned().unwrap_or_default()
    }
}

/// Prometheus: evaluate and scrape every second, push alerts to alertgate
/// as an Alertmanager v2, scrape its /metrics as job "alertgate" (the name
/// the shipped rules expect).
fn prometheus_config(g: &Gateway, rule_files: &[&str]) -> String {
    let files: String = rule_files.iter().map(|f| format!("  - {f}\n")).collect();
    let addr = &g.addr;
    format!(
        "global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
{files}alerting:
  alertmanagers:
    - api_version: v2
      static_configs:
        - targets: ['{addr}']
scrape_configs:
  - job_name: alertgate
    metrics_path: /metrics
    static_configs:
      - targets: ['{addr}']
"
    )
}

/// Tail of a log, so a failure message stays readable.
fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Poll `check` until it returns Ok; after `WAIT`, panic with the last
/// state it saw and the logs of both processes.
async fn wait_until<T, F, Fut>(g: &Gateway, p: &Prometheus, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        let last = match check().await {
            Ok(v) => return v,
            Err(state) => state,
        };
        if Instant::now() > deadline {
            panic!(
                "timed out after {WAIT:?} waiting for {what}; last state: {last}\n\
                 === alertgate stderr:\n{}\n=== Prometheus ({}) log:\n{}",
                tail(&g.stderr(), 16_000),
                p.addr,
                tail(&p.log(), 16_000)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The value of a query's sample.
fn value(sample: &Value) -> f64 {
    sample["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

/// A query's samples whose labels include `labels`, once one has a value of
/// at least `min`.
async fn sample_at_least(
    p: &Prometheus,
    promql: &str,
    labels: &[(&str, &str)],
    min: f64,
) -> Result<Vec<Value>, String> {
    let result = p.query(promql).await?;
    let fits = |s: &&Value| labels.iter().all(|(k, v)| s["metric"][*k] == *v) && value(s) >= min;
    if result.iter().any(|s| fits(&s)) { Ok(result) } else { Err(format!("{promql} = {}", Value::Array(result))) }
}

#[tokio::test]
async fn prometheus_pushes_to_alertgate_and_sees_its_incident_and_sla_breach() {
    let started = Instant::now();
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("rules.yaml"), RULES).unwrap();
    let g = Gateway::start_with(Options { rules_dir: Some(rules.path().to_path_buf()), ..Default::default() });
    let shipped = repo_path("deploy/prometheus/alertgate.rules.yml");
    let p = Prometheus::start(
        &prometheus_config(&g, &["e2e.rules.yml", &shipped.display().to_string()]),
        &[("e2e.rules.yml", PROMETHEUS_RULES)],
    )
    .await;

    // The alert arrives over the v2 push API and opens a P1 incident.
    let incident = wait_until(&g, &p, "an open P1 incident for E2EAlwaysFiring", || async {
        let (status, body) = get(&g.url("/api/v1/incidents?limit=500")).await;
        if status != 200 {
            return Err(format!("{status} {body}"));
        }
        let list = body["incidents"].as_array().cloned().unwrap_or_default();
        list.iter()
            .find(|i| i["title"] == "E2EAlwaysFiring" && i["state"] == "triggered")
            .cloned()
            .ok_or_else(|| format!("incidents: {}", Value::Array(list)))
    })
    .await;
    assert_eq!(incident["priority"], "P1", "{incident}");
    assert_eq!(incident["rule"], "e2e-prometheus", "{incident}");
    assert_eq!(incident["service"], "e2e", "{incident}");
    let (status, alerts) = get(&g.url("/api/v1/alerts?filter=alertname%3D%22E2EAlwaysFiring%22")).await;
    assert_eq!(status, 200, "{alerts}");
    let alerts = alerts["alerts"].as_array().expect("alerts");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["source"], "prometheus", "{alerts:?}");
    assert_eq!(alerts[0]["status"], "firing", "{alerts:?}");
    assert_eq!(alerts[0]["labels"]["severity"], "critical", "{alerts:?}");

    // Prometheus scrapes the open incident ...
    let open = wait_until(&g, &p, "alertgate_incidents_open{priority=\"P1\"} >= 1 in Prometheus", || {
        sample_at_least(&p, "alertgate_incidents_open", &[("priority", "P1"), ("job", "alertgate")], 1.0)
    })
    .await;
    let s = open.iter().find(|s| s["metric"]["priority"] == "P1").unwrap();
    assert_eq!(s["metric"]["service"], "e2e", "{s}");
    assert_eq!(s["metric"]["state"], "triggered", "{s}");

    // ... and, nobody acknowledging within 3 s, the respond breach.
    let breaches = wait_until(&g, &p, "alertgate_sla_breaches_total{kind=\"respond\"} >= 1 in Prometheus", || {
        sample_at_least(
            &p,
            "alertgate_sla_breaches_total{kind=\"respond\"}",
            &[("priority", "P1"), ("service", "e2e")],
            1.0,
        )
    })
    .await;
    assert!(breaches.iter().all(|s| value(s) == 1.0), "one incident, one breach: {breaches:?}");
    let (status, detail) = get(&g.url(&format!("/api/v1/incidents/{}", incident["id"]))).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["sla"]["respond"]["state"], "breached", "{detail}");

    // The shipped rules run against the live gateway: the alerting group
    // evaluated without error, the heartbeat fires, the gateway is up.
    let alerting = wait_until(&g, &p, "the shipped alerting rules evaluated", || async {
        let groups = p.rule_groups().await;
        for r in groups.iter().flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default()) {
            if r["health"] == "err" {
                return Err(format!("rule {} failed: {}", r["name"], r["lastError"]));
            }
        }
        let group = groups.iter().find(|g| g["name"] == "alertgate.alerts").ok_or("no group alertgate.alerts")?;
        let rules = group["rules"].as_array().cloned().unwrap_or_default();
        let heartbeat = rules.iter().find(|r| r["name"] == "AlertgateDeadMansSwitch");
        if rules.iter().all(|r| r["health"] == "ok") && heartbeat.is_some_and(|r| r["state"] == "firing") {
            Ok(rules)
        } else {
            Err(format!("{}", Value::Array(rules)))
        }
    })
    .await;
    for r in &alerting {
        if r["name"] != "AlertgateDeadMansSwitch" {
            assert_eq!(r["state"], "inactive", "{r}");
        }
    }
    wait_until(&g, &p, "the heartbeat stored in alertgate", || async {
        let (status, body) = get(&g.url("/api/v1/alerts?filter=alertname%3D%22AlertgateDeadMansSwitch%22")).await;
        let n = body["alerts"].as_array().map_or(0, Vec::len);
        if status == 200 && n == 1 { Ok(()) } else { Err(format!("{status} {body}")) }
    })
    .await;
    eprintln!("prometheus e2e took {:?}", started.elapsed());
}
