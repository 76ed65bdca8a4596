//! The deployment files under `deploy/` and `examples/` stay true to the
//! gateway: Prometheus' own tools accept the Prometheus and Alertmanager
//! files, the dashboard and the rules query only metrics the gateway
//! defines and actually exposes, the configs and rules pass `alertgate
//! check`, the compose and Kubernetes files refer to things that exist, and
//! every example payload is accepted by its endpoint.
//!
//! Fast and local: the only network is loopback to gateways started here.
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Gateway, Options, get, post, repo_path, wait_for};
use jiff::{SignedDuration, Timestamp};
use regex::Regex;
use serde_json::{Value, json};

const PROMTOOL: &str = "/usr/bin/promtool";
const AMTOOL: &str = "/usr/bin/amtool";

// ---- helpers ----------------------------------------------------------------

/// A Debian tool the test needs; fails (never skips) when it is missing.
fn tool(bin: &str, env: &str, package: &str) -> String {
    let bin = std::env::var(env).unwrap_or_else(|_| bin.to_string());
    assert!(Path::new(&bin).exists(), "{bin} is missing: install Debian's `{package}` package to run this test");
    bin
}

fn promtool() -> String {
    tool(PROMTOOL, "ALERTGATE_TEST_PROMTOOL", "prometheus")
}

/// Run to completion; the output, with stdout and stderr in the message
/// when `ok` is not met.
fn run(cmd: &mut Command, stdin: Option<&str>) -> Output {
    let mut child = cmd
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout:\n{}\n--- stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a YAML file, as JSON values.
fn yaml_docs(path: &Path) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A YAML file of exactly one document.
fn yaml(rel: &str) -> Value {
    let mut docs = yaml_docs(&repo_path(rel));
    assert_eq!(docs.len(), 1, "{rel}: expected one YAML document");
    docs.remove(0)
}

fn json_file(rel: &str) -> Value {
    serde_json::from_str(&read(&repo_path(rel))).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Files under `dir` (recursively) whose name ends with one of `exts`.
fn files_under(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if exts.iter().any(|x| p.extension().is_some_and(|e| e == *x)) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str().unwrap_or_else(|| panic!("{what}: expected a string, got {v}"))
}

fn arr<'a>(v: &'a Value, what: &str) -> &'a Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("{what}: expected a list, got {v}"))
}

// ---- metric names -------------------------------------------------------------

/// The metric names the gateway defines: the `alertgate_*` string literals
/// of src/metrics/mod.rs.
fn defined_metrics() -> BTreeSet<String> {
    let src = read(&repo_path("src/metrics/mod.rs"));
    let names: BTreeSet<String> =
        Regex::new(r#""(alertgate_[a-z_]+)""#).unwrap().captures_iter(&src).map(|c| c[1].to_string()).collect();
    assert!(names.len() >= 20, "too few metric names found in src/metrics/mod.rs: {names:?}");
    names
}

/// The `alertgate_*` metric names an expression selects (recording rules'
/// `alertgate:*` names are not matched: the character before `alertgate_`
/// may not be part of a name).
fn metrics_in(expr: &str) -> BTreeSet<String> {
    Regex::new(r"(?:^|[^A-Za-z0-9_:])(alertgate_[a-z_]+)")
        .unwrap()
        .captures_iter(expr)
        .map(|c| c[1].to_string())
        .collect()
}

/// The recording rule names (`alertgate:...`) an expression uses.
fn recorded_in(expr: &str) -> BTreeSet<String> {
    Regex::new(r"(?:^|[^A-Za-z0-9_:])(alertgate:[A-Za-z0-9_:]+)")
        .unwrap()
        .captures_iter(expr)
        .map(|c| c[1].to_string())
        .collect()
}

/// The defined metric a name in an expression belongs to: itself, or the
/// histogram of a `_bucket`, `_sum` or `_count` series.
fn defined_base(name: &str, defined: &BTreeSet<String>) -> Option<String> {
    if defined.contains(name) {
        return Some(name.to_string());
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .filter_map(|s| name.strip_suffix(s))
        .find(|base| defined.contains(*base))
        .map(str::to_string)
}

/// Every `alertgate_*` name in `exprs` that the gateway does not define, with
/// where it was used.
fn undefined(exprs: &[(String, String)], defined: &BTreeSet<String>) -> Vec<String> {
    let mut bad = Vec::new();
    for (where_, expr) in exprs {
        for name in metrics_in(expr) {
            if defined_base(&name, defined).is_none() {
                bad.push(format!("{where_}: {name} (in {expr})"));
            }
        }
    }
    bad
}

// ---- the dashboard and the rules -----------------------------------------------

const DASHBOARD: &str = "deploy/grafana/dashboards/alertgate.json";
const RULES: &str = "deploy/prometheus/alertgate.rules.yml";

/// Every panel, those nested in rows included.
fn panels(dash: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = arr(&dash["panels"], "panels").iter().collect();
    while let Some(p) = stack.pop() {
        if let Some(inner) = p["panels"].as_array() {
            stack.extend(inner);
        }
        out.push(p);
    }
    out
}

/// (where, expression) of every panel target and query variable.
fn dashboard_exprs(dash: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(dash) {
        if let Some(targets) = p["targets"].as_array() {
            for t in targets {
                let expr = str_of(&t["expr"], &format!("panel {:?} target expr", p["title"]));
                out.push((format!("panel {}", p["title"]), expr.to_string()));
            }
        }
    }
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] == "query" {
            let q = v["query"]["query"].as_str().or(v["query"].as_str()).expect("a variable query");
            out.push((format!("variable {}", v["name"]), q.to_string()));
        }
    }
    out
}

/// (where, expression) of every rule, and the names of the recording rules.
fn rule_exprs() -> (Vec<(String, String)>, BTreeSet<String>) {
    let rules = yaml(RULES);
    let mut exprs = Vec::new();
    let mut recorded = BTreeSet::new();
    for g in arr(&rules["groups"], "groups") {
        for r in arr(&g["rules"], "rules") {
            let name = r["record"].as_str().or(r["alert"].as_str()).expect("record or alert");
            if r["record"].is_string() {
                assert!(name.contains(':'), "recording rule {name} should be named level:metric:operations");
                recorded.insert(name.to_string());
            }
            exprs.push((format!("rule {name}"), str_of(&r["expr"], name).to_string()));
        }
    }
    (exprs, recorded)
}

#[test]
fn promtool_accepts_the_rules_and_their_unit_tests_pass() {
    let promtool = promtool();
    let out = run(Command::new(&promtool).args(["check", "rules", RULES]).current_dir(repo_path("")), None);
    assert_success("promtool check rules", &out);
    let out = run(
        Command::new(&promtool)
            .args(["test", "rules", "deploy/prometheus/alertgate.rules.test.yml"])
            .current_dir(repo_path("")),
        None,
    );
    assert_success("promtool test rules", &out);
}

/// The `credentials_file` values of a Prometheus config, everywhere.
fn credentials_files(v: &Value) -> Vec<String> {
    match v {
        Value::Object(m) => m
            .iter()
            .flat_map(|(k, v)| match (k.as_str(), v) {
                ("credentials_file", Value::String(f)) => vec![f.clone()],
                _ => credentials_files(v),
            })
            .collect(),
        Value::Array(a) => a.iter().flat_map(credentials_files).collect(),
        _ => Vec::new(),
    }
}

/// `promtool check config` on `config` copied into a directory of its own
/// with the rule file beside it (as the recipe and compose install them)
/// and, for each `credentials_file`, a token file; run from elsewhere.
fn promtool_check_config(config: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let prom = yaml(config);
    std::fs::copy(repo_path(config), dir.path().join("prometheus.yml")).unwrap();
    std::fs::copy(repo_path(RULES), dir.path().join("alertgate.rules.yml")).unwrap();
    for f in credentials_files(&prom) {
        assert!(!f.starts_with('/'), "{config}: credentials_file {f} should be relative to the config file");
        std::fs::write(dir.path().join(&f), "test-token-0123456789abcdef\n").unwrap();
    }
    let elsewhere = tempfile::tempdir().unwrap();
    let out = run(
        Command::new(promtool())
            .arg("check")
            .arg("config")
            .arg(dir.path().join("prometheus.yml"))
            .current_dir(elsewhere.path()),
        None,
    );
    assert_success(&format!("promtool check config {config}"), &out);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("1 rule files found"), "{config}: the rule file was not loaded:\n{text}");
    prom
}

/// The scrape job `alertgate` (the alerting rules expect that name) and the
/// alertmanager entry that is alertgate (the v2 push API), both at `target`.
fn alertgate_job_and_alertmanager<'a>(prom: &'a Value, target: &str) -> (&'a Value, &'a Value) {
    let job = arr(&prom["scrape_configs"], "scrape_configs")
        .iter()
        .find(|j| j["job_name"] == "alertgate")
        .expect("a scrape job named alertgate");
    assert!(arr(&job["static_configs"][0]["targets"], "targets").iter().any(|t| t == target), "{job}");
    let am = arr(&prom["alerting"]["alertmanagers"], "alertmanagers")
        .iter()
        .find(|a| a["static_configs"][0]["targets"].as_array().unwrap().iter().any(|t| t == target))
        .unwrap_or_else(|| panic!("alertgate ({target}) is not an alertmanager"));
    assert_eq!(am["api_version"], "v2", "{am}");
    (job, am)
}

#[test]
fn promtool_accepts_the_prometheus_configs_and_the_recipes_authenticates() {
    // The recipe's config: to the gateway on this host, with a viewer token
    // for the scrape and an ingest token for pushing alerts.
    let prom = promtool_check_config("deploy/prometheus/prometheus.yml");
    let (job, am) = alertgate_job_and_alertmanager(&prom, "127.0.0.1:9797");
    assert!(job["authorization"]["credentials_file"].is_string(), "the scrape sends no token: {job}");
    assert!(am["authorization"]["credentials_file"].is_string(), "the alert push sends no token: {am}");
    // Compose's: to the service `alertgate`, which runs without tokens there.
    let prom = promtool_check_config("deploy/compose/prometheus.yml");
    alertgate_job_and_alertmanager(&prom, "alertgate:9797");
}

#[test]
fn amtool_accepts_the_compose_alertmanager_config() {
    let amtool = tool(AMTOOL, "ALERTGATE_TEST_AMTOOL", "prometheus-alertmanager");
    let out = run(
        Command::new(amtool).args(["check-config", "deploy/compose/alertmanager.yml"]).current_dir(repo_path("")),
        None,
    );
    assert_success("amtool check-config", &out);
}

#[test]
fn dashboard_queries_only_metrics_the_gateway_defines() {
    let dash = json_file(DASHBOARD);
    assert_eq!(dash["uid"], "alertgate");
    let schema = dash["schemaVersion"].as_u64().expect("schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");

    // Every panel queries through the DS_PROMETHEUS variable, which picks
    // the default Prometheus data source (uid "prometheus" when provisioned).
    let vars = arr(&dash["templating"]["list"], "templating.list");
    assert!(
        vars.iter().any(|v| v["name"] == "DS_PROMETHEUS" && v["type"] == "datasource" && v["query"] == "prometheus")
    );
    let mut ids = BTreeSet::new();
    for p in panels(&dash) {
        assert!(ids.insert(p["id"].as_u64().expect("panel id")), "duplicate panel id {}", p["id"]);
        let g = &p["gridPos"];
        assert!(g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24, "panel {} too wide", p["title"]);
        if p["type"] == "row" {
            continue;
        }
        let targets = arr(&p["targets"], "targets");
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for ds in std::iter::once(&p["datasource"]).chain(targets.iter().map(|t| &t["datasource"])) {
            assert!(ds["uid"] == "${DS_PROMETHEUS}" || ds["uid"] == "prometheus", "panel {}: {ds}", p["title"]);
        }
    }

    let exprs = dashboard_exprs(&dash);
    let defined = defined_metrics();
    let bad = undefined(&exprs, &defined);
    assert!(bad.is_empty(), "metrics the gateway does not define:\n{}", bad.join("\n"));
    let (_, recorded) = rule_exprs();
    for (where_, expr) in &exprs {
        for r in recorded_in(expr) {
            assert!(recorded.contains(&r), "{where_}: {r} is not recorded by {RULES}");
        }
    }

    // The panels the dashboard is for.
    let all: String = exprs.iter().map(|(_, e)| format!("{e}\n")).collect();
    for want in [
        "alertgate_sla_compliance_ratio",
        "histogram_quantile(0.9, sum by (le, priority) (rate(alertgate_time_to_acknowledge_seconds_bucket",
        "rate(alertgate_time_to_acknowledge_seconds_sum",
        "rate(alertgate_time_to_acknowledge_seconds_count",
        "histogram_quantile(0.9, sum by (le, priority) (rate(alertgate_time_to_resolve_seconds_bucket",
        "rate(alertgate_time_to_resolve_seconds_sum",
        "increase(alertgate_sla_breaches_total",
        "sum by (priority) (alertgate_incidents_open",
        "rate(alertgate_alerts_received_total",
        "rate(alertgate_ingest_rejected_total",
        "histogram_quantile(0.99, sum by (le, endpoint) (rate(alertgate_http_request_duration_seconds_bucket",
        "alertgate_notifications_total",
        "alertgate_outbox_pending",
        "alertgate_outbox_oldest_pending_seconds",
        "histogram_quantile(0.99, sum by (le) (rate(alertgate_store_commit_duration_seconds_bucket",
        "alertgate_store_commit_batch_requests",
        "alertgate_database_size_bytes",
    ] {
        assert!(all.contains(want), "no panel queries {want}");
    }

    // And the panels' queries are PromQL (the variable's `label_values` is
    // Grafana's): promtool checks them as recording rules, with Grafana's
    // variables replaced by what they stand for.
    let tmp = tempfile::tempdir().unwrap();
    let mut text = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in exprs.iter().filter(|(w, _)| w.starts_with("panel ")).enumerate() {
        let e = expr.replace("$__rate_interval", "2m").replace("$__range", "1d").replace("$service", ".*");
        text.push_str(&format!("      - record: dashboard:expr{i}\n        expr: {}\n", Value::String(e)));
    }
    let file = tmp.path().join("dashboard.rules.yml");
    std::fs::write(&file, &text).unwrap();
    let out = run(Command::new(promtool()).arg("check").arg("rules").arg(&file), None);
    assert_success(&format!("promtool check rules on the dashboard's queries:\n{text}"), &out);
}

#[test]
fn rules_use_only_defined_metrics_and_alert_on_the_gateway_itself() {
    let (exprs, recorded) = rule_exprs();
    let bad = undefined(&exprs, &defined_metrics());
    assert!(bad.is_empty(), "metrics the gateway does not define:\n{}", bad.join("\n"));
    for (where_, expr) in &exprs {
        for r in recorded_in(expr) {
            assert!(recorded.contains(&r), "{where_}: {r} is not recorded");
        }
    }
    for want in ["alertgate:sla_breaches:increase1h", "alertgate:mtta_seconds:p90_1d", "alertgate:mttr_seconds:p90_1d"]
    {
        assert!(recorded.contains(want), "{want} not recorded: {recorded:?}");
    }

    let rules = yaml(RULES);
    let alerts: BTreeMap<String, Value> = arr(&rules["groups"], "groups")
        .iter()
        .flat_map(|g| arr(&g["rules"], "rules").iter())
        .filter_map(|r| r["alert"].as_str().map(|a| (a.to_string(), r.clone())))
        .collect();
    for want in [
        "AlertgateDown",
        "AlertgateOutboxBacklog",
        "AlertgateNotificationFailures",
        "AlertgateCommitFailures",
        "AlertgateDeadMansSwitch",
    ] {
        assert!(alerts.contains_key(want), "no alert {want}: {:?}", alerts.keys());
    }
    assert_eq!(alerts["AlertgateDeadMansSwitch"]["expr"], "vector(1)");
    assert!(str_of(&alerts["AlertgateDown"]["expr"], "expr").contains(r#"up{job="alertgate"} == 0"#));
    for (name, r) in &alerts {
        assert!(r["labels"]["severity"].is_string(), "{name}: no severity label");
        for a in ["summary", "description", "runbook_url"] {
            assert!(r["annotations"][a].is_string(), "{name}: no {a} annotation");
        }
        // Each runbook is a section of deploy/README.md.
        let url = str_of(&r["annotations"]["runbook_url"], "runbook_url");
        let anchor = url.strip_prefix("deploy/README.md#").unwrap_or_else(|| panic!("{name}: runbook_url {url}"));
        let readme = read(&repo_path("deploy/README.md"));
        assert!(
            readme.lines().any(|l| l.trim_start_matches('#').trim().to_lowercase() == anchor && l.starts_with('#')),
            "{name}: no runbook section #{anchor} in deploy/README.md"
        );
    }
}

// ---- the real gateway's /metrics --------------------------------------------------

/// Rules that make every fact happen quickly: any alert opens a P1
/// incident with a 1 s respond target, notified to a webhook that refuses.
const TRAFFIC_RULES: &str = r#"
incident_rules:
  - name: deploy-test
    matchers: []
    group_by: [alertname]
    title: "{{ labels.alertname }}"
    service: "{{ labels.service }}"
    impact: high
    urgency: high
    auto_resolve_after: 0s
    flap_window: 10m
    notify: [hook]
sla_policies:
  - name: fast
    matchers: []
    calendar: 24x7
    targets:
      P1: {respond: 1s, resolve: 2s}
    warn_at: [50%]
# Never pinged: its state series is exposed all the same.
heartbeats:
  - name: deploy-test
    interval: 1h
# Someone always on call: the coverage series is exposed.
schedules:
  - name: deploy-test
    layers:
      - name: always
        rotation: {people: [alice], shift: 1w}
"#;

fn v2_alert(name: &str, starts_at: Timestamp, ends_at: Timestamp) -> Value {
    json!({
        "labels": {"alertname": name, "service": "payments", "severity": "critical"},
        "annotations": {"summary": format!("{name} fires")},
        "startsAt": starts_at.to_string(),
        "endsAt": ends_at.to_string(),
        "generatorURL": "http://prometheus.invalid/graph",
    })
}

async fn incidents_by_title(g: &Gateway) -> BTreeMap<String, Value> {
    let (status, body) = get(&g.url("/api/v1/incidents?limit=500")).await;
    assert_eq!(status, 200, "{body}");
    arr(&body["incidents"], "incidents").iter().map(|i| (i["title"].as_str().unwrap().to_string(), i.clone())).collect()
}

async fn act(g: &Gateway, id: &Value, action: &str) {
    let (status, body) =
        post(&g.url(&format!("/api/v1/incidents/{id}/{action}")), &json!({"actor": "deploy-test"}).to_string()).await;
    assert_eq!(status, 200, "{action} {id}: {body}");
}

/// The names with samples in a text exposition.
fn exposed(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_gateway_exposes_every_metric_the_dashboard_and_rules_use_and_promtool_accepts_the_exposition() {
    // A port nothing listens on: every delivery fails and is retried.
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("rules.yaml"), TRAFFIC_RULES).unwrap();
    let g = Gateway::start_with(Options {
        config: Some(format!(
            "notifiers:\n  - name: hook\n    type: webhook\n    url: http://{refused}/hook\n\
             people:\n  - {{name: alice, webhook: {{notifier: hook, handle: '@alice'}}}}\n"
        )),
        rules_dir: Some(rules.path().to_path_buf()),
        ..Default::default()
    });

    // Silenced alerts count as muted.
    let now = common::wall_clock();
    let hour = SignedDuration::from_hours(1);
    let (status, body) = post(
        &g.url("/api/v1/silences"),
        &json!({"matchers": ["alertname=\"DeploySilenced\""], "endsAt": (now + hour).to_string(),
                "createdBy": "deploy-test", "comment": "muted"})
        .to_string(),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let started = now - SignedDuration::from_mins(1);
    let names = ["DeployAck", "DeployReopen", "DeployFlap", "DeploySilenced"];
    let firing = Value::Array(names.iter().map(|n| v2_alert(n, started, now + hour)).collect());
    for _ in 0..2 {
        // The second time, every alert is a repeat.
        let (status, body) = post(&g.url("/api/v2/alerts"), &firing.to_string()).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _) = post(&g.url("/api/v1/ingest/alertmanager"), "{\"alerts\": 1}").await;
    assert_eq!(status, 400, "an invalid payload is rejected");
    let (status, body) =
        post(&g.url("/api/v1/problems"), &json!({"actor": "deploy-test", "title": "a problem"}).to_string()).await;
    assert_eq!(status, 201, "{body}");

    let incidents = wait_for(Duration::from_secs(30), "three incidents", || async {
        let by_title = incidents_by_title(&g).await;
        (by_title.len() == 3).then_some(by_title)
    })
    .await;
    act(&g, &incidents["DeployAck"]["id"], "acknowledge").await;
    act(&g, &incidents["DeployReopen"]["id"], "resolve").await;
    act(&g, &incidents["DeployReopen"]["id"], "reopen").await;

    // DeployFlap resolves, its incident with it, and fires again: flapping.
    let resolved = json!([v2_alert("DeployFlap", started, common::wall_clock() - SignedDuration::from_secs(1))]);
    let (status, body) = post(&g.url("/api/v2/alerts"), &resolved.to_string()).await;
    assert_eq!(status, 200, "{body}");
    wait_for(Duration::from_secs(30), "DeployFlap's incident resolved", || async {
        (incidents_by_title(&g).await["DeployFlap"]["state"] == "resolved").then_some(())
    })
    .await;
    let again = json!([v2_alert("DeployFlap", common::wall_clock(), common::wall_clock() + hour)]);
    let (status, body) = post(&g.url("/api/v2/alerts"), &again.to_string()).await;
    assert_eq!(status, 200, "{body}");

    // Every series the dashboard and the rules select shows up.
    let dash = json_file(DASHBOARD);
    let (rule_exprs, _) = rule_exprs();
    let wanted: BTreeSet<String> =
        dashboard_exprs(&dash).iter().chain(rule_exprs.iter()).flat_map(|(_, e)| metrics_in(e)).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let text = loop {
        let resp = common::client().get(g.url("/metrics")).send().await.expect("scrape");
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        let have = exposed(&text);
        let missing: Vec<&String> = wanted.iter().filter(|w| !have.contains(*w)).collect();
        if missing.is_empty() {
            break text;
        }
        if std::time::Instant::now() > deadline {
            panic!("never exposed: {missing:?}\n{text}\n=== alertgate stderr:\n{}", g.stderr());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let out = run(Command::new(promtool()).args(["check", "metrics"]), Some(&text));
    assert_success(&format!("promtool check metrics on\n{text}"), &out);
}

// ---- files parse, configs check ---------------------------------------------------

#[test]
fn every_yaml_and_json_file_under_deploy_and_examples_parses() {
    let mut n = 0;
    for dir in ["deploy", "examples"] {
        for f in files_under(&repo_path(dir), &["yml", "yaml"]) {
            let docs = yaml_docs(&f);
            assert!(!docs.is_empty() && docs.iter().all(|d| !d.is_null()), "{}: empty", f.display());
            n += 1;
        }
        for f in files_under(&repo_path(dir), &["json"]) {
            serde_json::from_str::<Value>(&read(&f)).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            n += 1;
        }
    }
    assert!(n >= 25, "only {n} files found");
}

/// Top-level keys of alertgate's rule files.
const RULE_KEYS: &[&str] = &[
    "incident_rules",
    "inhibit_rules",
    "priority_matrix",
    "calendars",
    "sla_policies",
    "escalation_policies",
    "problem_rules",
    "change_correlation",
];
/// Keys only other tools' files have at the top (Prometheus, its rule
/// tests, Alertmanager, Kubernetes, kustomize, compose, Grafana).
const FOREIGN_KEYS: &[&str] = &[
    "scrape_configs",
    "alerting",
    "groups",
    "tests",
    "route",
    "receivers",
    "apiVersion",
    "kind",
    "services",
    "resources",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum YamlKind {
    AlertgateConfig,
    AlertgateRules,
    Foreign,
}

/// What a YAML file is, by its top-level keys. Anything that is not another
/// tool's file is alertgate's, so a file with a misspelt key is checked
/// (and fails) rather than skipped.
fn yaml_kind(path: &Path) -> YamlKind {
    let docs = yaml_docs(path);
    let keys: Vec<&String> = docs.iter().filter_map(Value::as_object).flat_map(|o| o.keys()).collect();
    if keys.iter().any(|k| FOREIGN_KEYS.contains(&k.as_str())) {
        YamlKind::Foreign
    } else if keys.iter().any(|k| RULE_KEYS.contains(&k.as_str())) {
        YamlKind::AlertgateRules
    } else {
        YamlKind::AlertgateConfig
    }
}

/// Every string value of a key whose name ends with `suffix` (`_env`, `_file`).
fn values_of_keys_ending(v: &Value, suffix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match v {
                    Value::String(s) if k.ends_with(suffix) => out.push(s.clone()),
                    _ => values_of_keys_ending(v, suffix, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| values_of_keys_ending(v, suffix, out)),
        _ => {}
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let p = entry.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// `alertgate check` on a config (none: the rules alone) and a rules
/// directory. The config's directory is copied, so that the secret files it
/// names (`token_file`, `password_file`, ...) can be made beside it (an
/// absolute path is rewritten into the copy), and each `*_env` variable it
/// names is set to a fresh token.
fn alertgate_check(config: Option<&Path>, rules: &Path) -> Output {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(common::BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ALERTGATE_") {
            cmd.env_remove(key);
        }
    }
    cmd.arg("check").arg("--rules").arg(rules);
    if let Some(config) = config {
        let dir = tmp.path().join("config");
        copy_dir(config.parent().unwrap(), &dir);
        let copy = dir.join(config.file_name().unwrap());
        let parsed = yaml_docs(config).remove(0);
        let mut text = read(config);
        let (mut files, mut vars) = (Vec::new(), Vec::new());
        values_of_keys_ending(&parsed, "_file", &mut files);
        values_of_keys_ending(&parsed, "_env", &mut vars);
        for (i, f) in files.iter().enumerate() {
            let at = if f.starts_with('/') {
                let moved = tmp.path().join(format!("secret-{i}"));
                text = text.replace(f.as_str(), &moved.display().to_string());
                moved
            } else {
                dir.join(f)
            };
            std::fs::create_dir_all(at.parent().unwrap()).unwrap();
            // A database URL must be one; other secrets are any text.
            let secret = match f.contains("url") {
                true => format!("postgres://check:secret-{i}@db.invalid/alertgate\n"),
                false => format!("check-secret-{i}-0123456789abcdef\n"),
            };
            std::fs::write(&at, secret).unwrap();
        }
        std::fs::write(&copy, text).unwrap();
        for (i, var) in vars.iter().enumerate() {
            match var.contains("URL") {
                true => cmd.env(var, format!("postgres://check:env-{i}@db.invalid/alertgate")),
                false => cmd.env(var, format!("check-env-{i}-0123456789abcdef")),
            };
        }
        cmd.arg("--config").arg(&copy);
    }
    run(&mut cmd, None)
}

#[test]
fn every_config_and_rules_directory_in_the_repository_passes_alertgate_check() {
    let mut configs = Vec::new();
    let mut rule_dirs = BTreeSet::new();
    for dir in ["examples", "deploy", "rules", "tests/fixtures"] {
        for f in files_under(&repo_path(dir), &["yml", "yaml"]) {
            match yaml_kind(&f) {
                YamlKind::AlertgateConfig => configs.push(f),
                YamlKind::AlertgateRules => {
                    rule_dirs.insert(f.parent().unwrap().to_path_buf());
                }
                YamlKind::Foreign => {}
            }
        }
    }
    let rel = |p: &Path| p.strip_prefix(repo_path("")).unwrap_or(p).display().to_string();
    let names: Vec<String> = configs.iter().map(|c| rel(c)).collect();
    for want in [
        "examples/alertgate.yml",
        "deploy/container/alertgate.yml",
        "deploy/compose/alertgate.yml",
        "deploy/kubernetes/alertgate.yml",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} was not found as an alertgate config: {names:?}");
    }
    assert!(rule_dirs.len() >= 4, "rule directories: {rule_dirs:?}");

    // Each config with the rules it is deployed with: the `rules/` beside
    // it, else the shipped rules/ (the image and the systemd recipe copy
    // those); then every rules directory no config uses, alone.
    let mut checked = BTreeSet::new();
    let mut failures = Vec::new();
    let mut passed = 0;
    for config in &configs {
        let beside = config.parent().unwrap().join("rules");
        let rules = if rule_dirs.contains(&beside) { beside } else { repo_path("rules") };
        let out = alertgate_check(Some(config), &rules);
        if out.status.success() {
            passed += 1;
        } else {
            failures.push(format!("{} with {}:\n{}", rel(config), rel(&rules), String::from_utf8_lossy(&out.stdout)));
        }
        checked.insert(rules.canonicalize().unwrap());
    }
    for dir in &rule_dirs {
        if checked.contains(&dir.canonicalize().unwrap()) {
            continue;
        }
        let out = alertgate_check(None, dir);
        if out.status.success() {
            passed += 1;
        } else {
            failures.push(format!("{}:\n{}", rel(dir), String::from_utf8_lossy(&out.stdout)));
        }
    }
    assert!(failures.is_empty(), "alertgate check failed:\n{}", failures.join("\n"));
    eprintln!("alertgate check passed {passed} times: configs {names:?}, rule directories {rule_dirs:?}");
}

/// Host of a URL or of a `host:port` target.
fn host_of(s: &str) -> String {
    let rest = s.split_once("://").map_or(s, |(_, r)| r);
    rest.split(['/', ':']).next().unwrap().to_string()
}

#[test]
fn compose_refers_to_files_and_services_that_exist() {
    let compose = yaml("deploy/docker-compose.yml");
    let deploy = repo_path("deploy");
    let services = compose["services"].as_object().expect("services");
    for want in ["alertgate", "prometheus", "alertmanager", "grafana", "mailpit"] {
        assert!(services.contains_key(want), "no service {want}");
    }
    // Bind mounts and the build.
    let mut mounts = BTreeMap::new();
    for (name, s) in services {
        for v in s["volumes"].as_array().into_iter().flatten() {
            let v = str_of(v, "volume");
            let mut parts = v.split(':');
            let (src, dst) = (parts.next().unwrap(), parts.next().unwrap_or_default());
            if src.starts_with('.') {
                assert!(deploy.join(src).exists(), "{name}: {src} does not exist (relative to deploy/)");
                mounts.insert((name.clone(), dst.to_string()), deploy.join(src));
            } else {
                assert!(compose["volumes"].get(src).is_some(), "{name}: volume {src} is not declared");
            }
        }
    }
    let build = &services["alertgate"]["build"];
    let context = deploy.join(str_of(&build["context"], "build.context"));
    let dockerfile = context.join(str_of(&build["dockerfile"], "build.dockerfile"));
    assert_eq!(dockerfile.canonicalize().unwrap(), repo_path("deploy/Dockerfile").canonicalize().unwrap());
    // Every COPY source (not from a stage) exists in the build context.
    for line in read(&dockerfile).lines().filter(|l| l.starts_with("COPY ") && !l.contains("--from")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        for src in &words[1..words.len() - 1] {
            assert!(context.join(src).exists(), "Dockerfile: {line}: {src} is not in the build context");
        }
    }
    assert!(read(&dockerfile).contains("cargo build --release --locked"));

    // The host names the configs use are compose services.
    let mut hosts: Vec<(String, String)> = Vec::new();
    let prom = yaml("deploy/compose/prometheus.yml");
    for sc in arr(&prom["scrape_configs"], "scrape_configs") {
        for t in sc["static_configs"][0]["targets"].as_array().unwrap() {
            hosts.push(("prometheus.yml scrape".into(), host_of(str_of(t, "target"))));
        }
    }
    for am in arr(&prom["alerting"]["alertmanagers"], "alertmanagers") {
        for t in am["static_configs"][0]["targets"].as_array().unwrap() {
            hosts.push(("prometheus.yml alertmanagers".into(), host_of(str_of(t, "target"))));
        }
    }
    let am = yaml("deploy/compose/alertmanager.yml");
    for r in arr(&am["receivers"], "receivers") {
        for w in r["webhook_configs"].as_array().into_iter().flatten() {
            hosts.push(("alertmanager.yml webhook".into(), host_of(str_of(&w["url"], "url"))));
        }
    }
    hosts.push(("alertmanager.yml smtp".into(), host_of(str_of(&am["global"]["smtp_smarthost"], "smarthost"))));
    let ag = yaml("deploy/compose/alertgate.yml");
    for n in arr(&ag["notifiers"], "notifiers") {
        let host = n["smtp"]["host"].as_str().map(str::to_string).unwrap_or_else(|| host_of(str_of(&n["url"], "url")));
        hosts.push((format!("alertgate.yml notifier {}", n["name"]), host));
    }
    let ds = yaml("deploy/grafana/provisioning/datasources/prometheus.yaml");
    hosts.push(("grafana datasource".into(), host_of(str_of(&ds["datasources"][0]["url"], "url"))));
    let cp = yaml("examples/grafana-contact-point.yaml");
    hosts.push((
        "grafana contact point".into(),
        host_of(str_of(&cp["contactPoints"][0]["receivers"][0]["settings"]["url"], "url")),
    ));
    for (what, host) in &hosts {
        assert!(host == "localhost" || services.contains_key(host), "{what}: {host} is not a compose service");
    }

    // Grafana loads the dashboards from where compose mounts them, and the
    // contact point from its alerting provisioning directory.
    let provider = yaml("deploy/grafana/provisioning/dashboards/alertgate.yaml");
    let path = str_of(&provider["providers"][0]["options"]["path"], "path");
    assert_eq!(mounts.get(&("grafana".to_string(), path.to_string())), Some(&deploy.join("./grafana/dashboards")));
    assert!(mounts.keys().any(|(s, d)| s == "grafana" && d.starts_with("/etc/grafana/provisioning/alerting/")));
    assert_eq!(ds["datasources"][0]["uid"], "prometheus");
}

#[test]
fn grafana_contact_point_posts_to_the_grafana_endpoint() {
    let cp = yaml("examples/grafana-contact-point.yaml");
    assert_eq!(cp["apiVersion"], 1);
    let r = &cp["contactPoints"][0]["receivers"][0];
    assert_eq!(r["type"], "webhook");
    let url = str_of(&r["settings"]["url"], "url");
    assert!(url.ends_with("/api/v1/ingest/grafana"), "{url}");
    assert_eq!(cp["policies"][0]["receiver"], cp["contactPoints"][0]["name"]);
}

/// The objects of the kustomization's resources, by kind.
fn kube_objects() -> BTreeMap<String, Value> {
    let dir = repo_path("deploy/kubernetes");
    let k = yaml("deploy/kubernetes/kustomization.yaml");
    let mut out = BTreeMap::new();
    for r in arr(&k["resources"], "resources") {
        let path = dir.join(str_of(r, "resource"));
        for doc in yaml_docs(&path) {
            let kind = str_of(&doc["kind"], "kind").to_string();
            assert!(out.insert(kind.clone(), doc).is_none(), "two {kind} objects");
        }
    }
    out
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector.as_object().expect("selector").iter().all(|(k, v)| labels[k] == *v)
}

#[test]
fn kubernetes_manifests_fit_together() {
    let dir = repo_path("deploy/kubernetes");
    let k = yaml("deploy/kubernetes/kustomization.yaml");
    let objects = kube_objects();
    for kind in ["Deployment", "Service", "PersistentVolumeClaim", "ServiceMonitor"] {
        assert!(objects.contains_key(kind), "no {kind}: {:?}", objects.keys());
    }
    // The generated ConfigMaps, by name: their files.
    let generated: BTreeMap<&str, Vec<PathBuf>> = arr(&k["configMapGenerator"], "configMapGenerator")
        .iter()
        .map(|g| {
            let files = arr(&g["files"], "files").iter().map(|f| dir.join(str_of(f, "file"))).collect::<Vec<_>>();
            for f in &files {
                assert!(f.exists(), "{} does not exist", f.display());
            }
            (str_of(&g["name"], "name"), files)
        })
        .collect();

    let d = &objects["Deployment"];
    assert_eq!(d["spec"]["replicas"], 1, "SQLite has one writer");
    assert_eq!(d["spec"]["strategy"]["type"], "Recreate");
    let pod = &d["spec"]["template"];
    assert!(labels_match(&d["spec"]["selector"]["matchLabels"], &pod["metadata"]["labels"]));
    let spec = &pod["spec"];
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    let c = &spec["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert!(c["resources"]["requests"].is_object() && c["resources"]["limits"]["memory"].is_string());
    assert!(k["images"].as_array().unwrap().iter().any(|i| i["name"] == c["image"]), "image not set in kustomization");

    // Volumes: where each is mounted, and what it holds.
    let mounts: BTreeMap<&str, &str> = arr(&c["volumeMounts"], "volumeMounts")
        .iter()
        .map(|m| (str_of(&m["name"], "name"), str_of(&m["mountPath"], "mountPath")))
        .collect();
    let mut mounted_files: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut mounted_dirs: BTreeMap<&str, &str> = BTreeMap::new();
    for v in arr(&spec["volumes"], "volumes") {
        let name = str_of(&v["name"], "volume name");
        let at = mounts.get(name).unwrap_or_else(|| panic!("volume {name} is not mounted"));
        if let Some(cm) = v["configMap"]["name"].as_str() {
            let files = generated.get(cm).unwrap_or_else(|| panic!("ConfigMap {cm} is not generated"));
            for f in files {
                mounted_files.insert(format!("{at}/{}", f.file_name().unwrap().to_string_lossy()), f.clone());
            }
            mounted_dirs.insert(at, cm);
        } else if let Some(claim) = v["persistentVolumeClaim"]["claimName"].as_str() {
            assert_eq!(objects["PersistentVolumeClaim"]["metadata"]["name"], claim);
            mounted_dirs.insert(at, "pvc");
        }
    }
    let args: Vec<&str> = arr(&c["args"], "args").iter().map(|a| str_of(a, "arg")).collect();
    let config_at = args.iter().position(|a| *a == "--config").map(|i| args[i + 1]).expect("--config");
    let config_file = mounted_files.get(config_at).unwrap_or_else(|| panic!("{config_at} is not a mounted file"));
    let config: Value = serde_saphyr::from_str(&read(config_file)).unwrap();
    let rules_dir = str_of(&config["rules_dir"], "rules_dir");
    assert!(
        generated.contains_key(mounted_dirs.get(rules_dir).copied().unwrap_or("-")),
        "{rules_dir} is not the rules ConfigMap"
    );
    assert_eq!(
        mounted_dirs.get(str_of(&config["data_dir"], "data_dir")).copied(),
        Some("pvc"),
        "data_dir is not the PVC"
    );
    let port: u64 = str_of(&config["listen"], "listen").rsplit(':').next().unwrap().parse().unwrap();

    // Service -> pod port; ServiceMonitor -> Service.
    let ports = arr(&c["ports"], "ports");
    assert!(ports.iter().any(|p| p["containerPort"] == port && p["name"] == "http"), "container port {port}");
    let svc = &objects["Service"];
    assert!(labels_match(&svc["spec"]["selector"], &pod["metadata"]["labels"]));
    let sp = &svc["spec"]["ports"][0];
    assert!(ports.iter().any(|p| p["name"] == sp["targetPort"] || p["containerPort"] == sp["targetPort"]));
    let sm = &objects["ServiceMonitor"];
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert!(labels_match(&sm["spec"]["selector"]["matchLabels"], &svc["metadata"]["labels"]));
    assert_eq!(sm["spec"]["endpoints"][0]["port"], sp["name"]);
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
}

// ---- example payloads ---------------------------------------------------------------

/// (file, endpoint path) from the curl lines of examples/payloads/README.md.
fn payload_requests() -> Vec<(String, String)> {
    let readme = read(&repo_path("examples/payloads/README.md"));
    let re = Regex::new(r"^curl .*--data @examples/payloads/(\S+\.json) http://127\.0\.0\.1:9797(/\S+)$").unwrap();
    readme.lines().filter_map(|l| re.captures(l)).map(|c| (c[1].to_string(), c[2].to_string())).collect()
}

#[tokio::test]
async fn every_example_payload_is_accepted_by_its_endpoint() {
    let requests = payload_requests();
    let listed: BTreeSet<String> = requests.iter().map(|(f, _)| f.clone()).collect();
    let files: BTreeSet<String> = files_under(&repo_path("examples/payloads"), &["json"])
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listed, files, "every payload file has exactly one curl line in examples/payloads/README.md");
    assert_eq!(listed.len(), requests.len(), "a payload file has two curl lines");

    let g = Gateway::start();
    for (file, path) in &requests {
        let body = read(&repo_path(&format!("examples/payloads/{file}")));
        let (status, answer) = post(&g.url(path), &body).await;
        assert!((200..300).contains(&status), "{file} -> {path}: {status} {answer}");
    }
    let (status, body) = get(&g.url("/api/v1/changes")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(arr(&body["changes"], "changes").len(), 1, "{body}");
}
