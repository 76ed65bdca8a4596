//! Heartbeats end to end: pings by HTTP and by matching alerts keep a
//! heartbeat up; its silence past `interval + grace` opens one incident
//! through the normal rules, dated at the deadline, also when the deadline
//! passed while the gateway was down; pings resolve it. Read as timelines
//! on a controlled clock, and once on the wall clock against a real
//! Prometheus whose `Watchdog` rule pings until Prometheus stops.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BIN, Gateway, Options, get, metric, post, run_to_exit, t0, wait_for};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// `nightly-backup` is pinged by cron over HTTP: due 90 s after a ping.
/// `prometheus-prod` is pinged by the Watchdog of one Prometheus: due 3 m
/// after. The Watchdog itself opens no incident; everything else does.
const RULES: &str = r#"
heartbeats:
  - name: nightly-backup
    interval: 1m
    grace: 30s
    labels: {service: backup, severity: critical}
  - name: prometheus-prod
    interval: 1m
    grace: 2m
    matchers: ['alertname="Watchdog"', 'prometheus="monitoring/k8s"']
    labels: {service: monitoring, severity: critical}
incident_rules:
  - name: watchdog
    matchers: ['alertname="Watchdog"']
    min_duration: 1y
  - name: everything
    matchers: []
    group_by: [alertname, heartbeat]
    title: "{{ labels.alertname }}"
"#;

fn rules_dir(rules: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), rules).unwrap();
    dir
}

fn start(rules: &Path) -> Gateway {
    Gateway::start_with(Options { rules_dir: Some(rules.to_path_buf()), test_clock: Some(t0()), ..Default::default() })
}

fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

fn ts(v: &Value) -> Timestamp {
    v.as_str().unwrap_or_else(|| panic!("not a time: {v}")).parse().unwrap()
}

async fn ping(g: &Gateway, name: &str) -> Value {
    // As cron does it: a POST without a body.
    let resp = common::client().post(g.url(&format!("/api/v1/heartbeats/{name}"))).send().await.expect("ping");
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "ping {name}: {body}");
    body
}

async fn heartbeat(g: &Gateway, name: &str) -> Value {
    let (status, list) = get(&g.url("/api/v1/heartbeats")).await;
    assert_eq!(status, 200, "{list}");
    let found = list["heartbeats"].as_array().unwrap().iter().find(|h| h["name"] == name).cloned();
    found.unwrap_or_else(|| panic!("no heartbeat {name} in {list}"))
}

async fn state_of(g: &Gateway, name: &str) -> String {
    heartbeat(g, name).await["state"].as_str().unwrap().to_owned()
}

/// Every incident, whatever its state.
async fn incidents(g: &Gateway) -> Vec<Value> {
    let (status, list) = get(&g.url("/api/v1/incidents?state=all")).await;
    assert_eq!(status, 200, "{list}");
    list["incidents"].as_array().unwrap().clone()
}

async fn incident(g: &Gateway, id: &Value) -> Value {
    let (status, inc) = get(&g.url(&format!("/api/v1/incidents/{id}"))).await;
    assert_eq!(status, 200, "{inc}");
    inc
}

/// The incidents of heartbeat `name` (their title names it).
async fn incidents_of(g: &Gateway, name: &str) -> Vec<Value> {
    let prefix = format!("Heartbeat {name} missed");
    incidents(g).await.into_iter().filter(|i| i["title"].as_str().is_some_and(|t| t.starts_with(&prefix))).collect()
}

/// A Watchdog as Prometheus pushes it (Alertmanager's API v2).
async fn watchdog(g: &Gateway, prometheus: &str) {
    let alert = json!([{"labels": {"alertname": "Watchdog", "prometheus": prometheus, "severity": "none"}}]);
    let (status, body) = post(&g.url("/api/v2/alerts"), &alert.to_string()).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_heartbeat_opens_one_incident_at_its_deadline_and_pings_resolve_it() {
    let rules = rules_dir(RULES);
    let g = start(rules.path());

    // t0: never pinged, so nothing is expected of it, for as long as it takes.
    let hb = heartbeat(&g, "nightly-backup").await;
    assert_eq!(hb["state"], "never", "{hb}");
    assert!(hb["lastPing"].is_null() && hb["deadline"].is_null(), "{hb}");
    assert_eq!((&hb["interval"], &hb["grace"]), (&json!("1m"), &json!("30s")));
    assert_eq!(
        hb["labels"],
        json!({"alertname": "HeartbeatMissing", "heartbeat": "nightly-backup", "service": "backup", "severity": "critical"})
    );
    g.advance(secs(3600)).await;
    assert_eq!(state_of(&g, "nightly-backup").await, "never");
    assert!(incidents(&g).await.is_empty(), "a heartbeat that never pinged opens nothing");
    let (status, body) = post(&g.url("/api/v1/heartbeats/no-such-thing"), "").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["detail"]["known"], json!(["nightly-backup", "prometheus-prod"]), "{body}");

    // t1: the first ping; t1+50s another: up, due 90 s after the last.
    let t1 = g.now();
    let hb = ping(&g, "nightly-backup").await;
    assert_eq!(hb["state"], "up", "{hb}");
    assert_eq!(ts(&hb["lastPing"]), t1);
    g.advance(secs(50)).await;
    let last = g.now();
    let hb = ping(&g, "nightly-backup").await;
    assert_eq!((ts(&hb["lateAt"]), ts(&hb["deadline"])), (last + secs(60), last + secs(90)), "{hb}");
    let deadline = last + secs(90);
    let (status, alone) = get(&g.url("/api/v1/heartbeats/nightly-backup")).await;
    assert_eq!((status, &alone), (200, &hb), "GET /api/v1/heartbeats/{{name}} is what the ping answered");
    let (status, body) = get(&g.url("/api/v1/heartbeats/nope")).await;
    assert_eq!(status, 404, "{body}");

    // Up until the interval is over, late until the grace is, and nothing opens before the deadline.
    g.advance_to(last + secs(59)).await;
    assert_eq!(state_of(&g, "nightly-backup").await, "up");
    g.advance_to(last + secs(60)).await;
    assert_eq!(state_of(&g, "nightly-backup").await, "late");
    assert_eq!(metric(&g, r#"alertgate_heartbeat_state{heartbeat="nightly-backup",state="late"}"#).await, Some(1.0));
    g.advance_to(deadline - secs(1)).await;
    assert_eq!(state_of(&g, "nightly-backup").await, "late");
    assert!(incidents(&g).await.is_empty(), "nothing before the deadline");

    // At the deadline: down, and one incident, dated then, naming the heartbeat and its last ping.
    g.advance_to(deadline).await;
    assert_eq!(state_of(&g, "nightly-backup").await, "down");
    let opened = incidents_of(&g, "nightly-backup").await;
    assert_eq!(opened.len(), 1, "{opened:#?}");
    let inc = incident(&g, &opened[0]["id"]).await;
    assert_eq!(inc["title"], format!("Heartbeat nightly-backup missed: last seen {last}"), "{inc:#}");
    assert_eq!(ts(&inc["createdAt"]), deadline);
    assert_eq!((&inc["state"], &inc["rule"]), (&json!("triggered"), &json!("everything")));
    let alerts = inc["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{inc:#}");
    assert_eq!((&alerts[0]["source"], &alerts[0]["status"]), (&json!("heartbeat"), &json!("firing")));
    assert_eq!(alerts[0]["labels"]["heartbeat"], "nightly-backup");
    assert_eq!(alerts[0]["labels"]["service"], "backup");
    assert_eq!(alerts[0]["fingerprint"], heartbeat(&g, "nightly-backup").await["alertFingerprint"]);
    assert_eq!(ts(&alerts[0]["startsAt"]), deadline);
    let down = r#"alertgate_heartbeat_state{heartbeat="nightly-backup",state="down"}"#;
    assert_eq!(metric(&g, down).await, Some(1.0));
    let last_ping = metric(&g, r#"alertgate_heartbeat_last_ping_timestamp_seconds{heartbeat="nightly-backup"}"#).await;
    assert_eq!(last_ping, Some(last.as_second() as f64));
    assert_eq!(metric(&g, r#"alertgate_heartbeat_state{heartbeat="prometheus-prod",state="never"}"#).await, Some(1.0));

    // Silent for an hour more: still that one incident.
    g.advance(secs(3600)).await;
    assert_eq!(incidents(&g).await.len(), 1);

    // A ping: up again, and the incident resolves by itself.
    let back = g.now();
    let hb = ping(&g, "nightly-backup").await;
    assert_eq!(hb["state"], "up", "{hb}");
    let inc = incident(&g, &opened[0]["id"]).await;
    assert_eq!(inc["state"], "resolved", "{inc:#}");
    assert_eq!(ts(&inc["resolvedAt"]), back);
    assert_eq!(inc["alerts"][0]["status"], "resolved");
    assert_eq!(metric(&g, down).await, Some(0.0));
    assert_eq!(metric(&g, r#"alertgate_heartbeat_state{heartbeat="nightly-backup",state="up"}"#).await, Some(1.0));

    // The CLI lists them and pings one.
    let cli = |args: &[&str]| {
        let (status, out, err) = run_to_exit(
            Command::new(BIN).args(args).args(["--url", &g.url("")]).env_remove("ALERTGATE_TOKEN"),
            Duration::from_secs(30),
        );
        assert!(status.success(), "alertgate {args:?}: {err}");
        out
    };
    let out = tokio::task::block_in_place(|| cli(&["heartbeats"]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("NAME") && lines[0].contains("STATE"), "{out}");
    assert!(lines.iter().any(|l| l.starts_with("nightly-backup") && l.contains(" up ")), "{out}");
    assert!(lines.iter().any(|l| l.starts_with("prometheus-prod") && l.contains(" never ")), "{out}");
    g.advance(secs(70)).await;
    assert_eq!(state_of(&g, "nightly-backup").await, "late");
    let out = tokio::task::block_in_place(|| cli(&["heartbeat", "ping", "nightly-backup"]));
    assert!(out.lines().nth(1).is_some_and(|l| l.starts_with("nightly-backup") && l.contains(" up ")), "{out}");
    assert_eq!(state_of(&g, "nightly-backup").await, "up");
    assert_eq!(incidents(&g).await.len(), 1, "a ping while late opens nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_passed_while_the_gateway_was_down_opens_the_incident_at_start_dated_then() {
    let rules = rules_dir(RULES);
    let mut g = start(rules.path());
    ping(&g, "nightly-backup").await;
    let deadline = t0() + secs(90);

    // Stopped while up (t0+30s); back at t0+10m, long past the deadline.
    g.advance(secs(30)).await;
    assert_eq!(state_of(&g, "nightly-backup").await, "up");
    assert!(tokio::task::block_in_place(|| g.terminate()).success(), "a clean stop");
    let restarted = t0() + secs(600);
    tokio::task::block_in_place(|| g.respawn_at(restarted));

    // The restarted gateway opens it by itself, dated at the deadline; its
    // entries say they were written at the restart.
    let inc = wait_for(WAIT, "the incident of the missed heartbeat", || async {
        incidents_of(&g, "nightly-backup").await.into_iter().next()
    })
    .await;
    let inc = incident(&g, &inc["id"]).await;
    assert_eq!(ts(&inc["createdAt"]), deadline, "{inc:#}");
    assert_eq!(inc["title"], format!("Heartbeat nightly-backup missed: last seen {}", t0()));
    let created = inc["timeline"].as_array().unwrap().iter().find(|e| e["kind"] == "created").cloned().unwrap();
    assert_eq!((ts(&created["at"]), ts(&created["recordedAt"])), (deadline, restarted), "{created}");
    assert_eq!(state_of(&g, "nightly-backup").await, "down");

    // Once, however many rounds and restarts follow.
    g.advance(secs(60)).await;
    tokio::task::block_in_place(|| g.restart());
    g.advance(secs(60)).await;
    assert_eq!(incidents(&g).await.len(), 1, "{:#?}", incidents(&g).await);

    // The ping resolves it; the state survived the restarts.
    ping(&g, "nightly-backup").await;
    let inc = incident(&g, &inc["id"]).await;
    assert_eq!(inc["state"], "resolved", "{inc:#}");
    tokio::task::block_in_place(|| g.restart());
    let hb = heartbeat(&g, "nightly-backup").await;
    assert_eq!((&hb["state"], ts(&hb["lastPing"])), (&json!("up"), g.now()), "{hb}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_alerts_ping_the_heartbeat_they_match() {
    let rules = rules_dir(RULES);
    let g = start(rules.path());

    // Another Prometheus' Watchdog is not this heartbeat's ping.
    watchdog(&g, "monitoring/dev").await;
    assert_eq!(state_of(&g, "prometheus-prod").await, "never");

    // The Watchdog of monitoring/k8s, re-sent every minute, keeps it up for an hour.
    for _ in 0..60 {
        watchdog(&g, "monitoring/k8s").await;
        let hb = heartbeat(&g, "prometheus-prod").await;
        assert_eq!((&hb["state"], ts(&hb["lastPing"])), (&json!("up"), g.now()), "{hb}");
        g.advance(secs(60)).await;
    }
    assert!(incidents(&g).await.is_empty(), "neither the Watchdog nor the heartbeat opened one");

    // A resolved Watchdog is no sign of life.
    let last = g.now() - secs(60);
    let resolved = json!([{"labels": {"alertname": "Watchdog", "prometheus": "monitoring/k8s", "severity": "none"},
                           "endsAt": g.now().to_string()}]);
    let (status, body) = post(&g.url("/api/v2/alerts"), &resolved.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ts(&heartbeat(&g, "prometheus-prod").await["lastPing"]), last);

    // Silent: down 3 minutes after the last, and its incident opens then.
    g.advance_to(last + secs(179)).await;
    assert!(incidents(&g).await.is_empty());
    g.advance_to(last + secs(180)).await;
    let opened = incidents_of(&g, "prometheus-prod").await;
    assert_eq!(opened.len(), 1, "{:#?}", incidents(&g).await);
    assert_eq!(ts(&opened[0]["createdAt"]), last + secs(180));
    assert_eq!(opened[0]["state"], "triggered");

    // The Watchdog is back: resolved.
    watchdog(&g, "monitoring/k8s").await;
    let inc = incident(&g, &opened[0]["id"]).await;
    assert_eq!(inc["state"], "resolved", "{inc:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_moves_deadlines_and_a_heartbeat_gone_resolves_its_alert() {
    let rules = rules_dir(RULES);
    let g = start(rules.path());
    ping(&g, "nightly-backup").await;
    watchdog(&g, "monitoring/k8s").await;
    let reload = |text: String| {
        std::fs::write(rules.path().join("rules.yaml"), text).unwrap();
        async {
            let (status, body) = post(&g.url("/-/reload"), "").await;
            assert_eq!(status, 200, "{body}");
        }
    };

    // t0+10m: both down, two incidents.
    g.advance(secs(600)).await;
    assert_eq!(incidents(&g).await.iter().filter(|i| i["state"] == "triggered").count(), 2);

    // nightly-backup now expected hourly: not down after all, its incident resolves;
    // prometheus-prod is gone from the rules: its incident resolves too.
    let hourly = RULES.replace("interval: 1m\n    grace: 30s", "interval: 1h\n    grace: 30s");
    let (start, end) = (hourly.find("  - name: prometheus-prod").unwrap(), hourly.find("incident_rules:").unwrap());
    reload(format!("{}{}", &hourly[..start], &hourly[end..])).await;
    g.advance(secs(1)).await;
    assert_eq!(state_of(&g, "nightly-backup").await, "up");
    let states: Vec<Value> = incidents(&g).await.iter().map(|i| i["state"].clone()).collect();
    assert_eq!(states, [json!("resolved"), json!("resolved")]);
    let (status, list) = get(&g.url("/api/v1/heartbeats")).await;
    assert_eq!((status, list["heartbeats"].as_array().unwrap().len()), (200, 1), "{list}");

    // Its new deadline is an hour and 30 s after its ping.
    let hb = heartbeat(&g, "nightly-backup").await;
    assert_eq!(ts(&hb["deadline"]), t0() + secs(3630), "{hb}");
    g.advance_to(t0() + secs(3629)).await;
    assert_eq!(incidents(&g).await.iter().filter(|i| i["state"] == "triggered").count(), 0);
    g.advance_to(t0() + secs(3630)).await;
    let open: Vec<Value> = incidents(&g).await.into_iter().filter(|i| i["state"] == "triggered").collect();
    assert_eq!(open.len(), 1, "{open:#?}");
    assert_eq!(ts(&open[0]["createdAt"]), t0() + secs(3630));
}

// ---- On the wall clock, with a real Prometheus. ----

const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";

/// Due 4 s after a Watchdog: Prometheus sends it every second or so.
const WALL_RULES: &str = r#"
heartbeats:
  - name: prometheus-e2e
    interval: 2s
    grace: 2s
    matchers: ['alertname="Watchdog"']
    labels: {service: monitoring, severity: critical}
incident_rules:
  - name: watchdog
    matchers: ['alertname="Watchdog"']
    min_duration: 1y
  - name: everything
    matchers: []
    group_by: [alertname, heartbeat]
"#;

const WATCHDOG_RULE: &str = r#"
groups:
  - name: heartbeat
    rules:
      - alert: Watchdog
        expr: vector(1)
        labels:
          severity: none
        annotations:
          summary: "Always firing, so that its absence says the alerting pipeline is broken"
"#;

async fn start_prometheus(g: &Gateway, dir: &Path) -> (common::Proc, PathBuf) {
    let bin = std::env::var("ALERTGATE_TEST_PROMETHEUS").unwrap_or_else(|_| PROMETHEUS_BIN.to_string());
    assert!(Path::new(&bin).exists(), "{bin} is missing: install Debian's `prometheus` package to run this test");
    std::fs::write(dir.join("watchdog.rules.yml"), WATCHDOG_RULE).unwrap();
    let config = format!(
        "global:
  evaluation_interval: 1s
rule_files:
  - watchdog.rules.yml
alerting:
  alertmanagers:
    - api_version: v2
      static_configs:
        - targets: ['{}']
",
        g.addr
    );
    let cfg = dir.join("prometheus.yml");
    std::fs::write(&cfg, config).unwrap();
    let data = dir.to_path_buf();
    let (proc, _addr, log) = common::start_peer(&bin, dir, "prometheus", WAIT, |addr, attempt| {
        vec![
            format!("--config.file={}", cfg.display()),
            format!("--storage.tsdb.path={}", data.join(format!("data-{attempt}")).display()),
            format!("--web.listen-address={addr}"),
            // Re-send firing alerts every second (default 1m).
            "--rules.alert.resend-delay=1s".into(),
        ]
    })
    .await;
    (proc, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_watchdog_keeps_it_up_and_its_stop_opens_the_incident() {
    let rules = rules_dir(WALL_RULES);
    let g = Gateway::start_with(Options { rules_dir: Some(rules.path().to_path_buf()), ..Default::default() });
    let tmp = tempfile::tempdir().unwrap();
    let (prometheus, log) = start_prometheus(&g, tmp.path()).await;
    let logs = || {
        format!(
            "=== alertgate:\n{}\n=== prometheus:\n{}",
            g.stderr(),
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    };

    // The first Watchdog arrives ...
    let first = wait_for(WAIT, "the first Watchdog", || async {
        let hb = heartbeat(&g, "prometheus-e2e").await;
        (hb["state"] == "up").then(|| ts(&hb["lastPing"]))
    })
    .await;
    // ... and the next keep it up for three deadlines' worth (12 s).
    let until = first + secs(12);
    let mut pings = std::collections::BTreeSet::new();
    while common::wall_clock() < until {
        let hb = heartbeat(&g, "prometheus-e2e").await;
        assert!(hb["state"] == "up" || hb["state"] == "late", "{hb}\n{}", logs());
        pings.insert(hb["lastPing"].as_str().unwrap().to_owned());
        assert!(incidents(&g).await.is_empty(), "{:#?}\n{}", incidents(&g).await, logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(pings.len() >= 4, "Prometheus keeps sending the Watchdog: {pings:?}");

    // Prometheus stops: the incident opens at the last Watchdog's deadline.
    drop(prometheus);
    let stopped = common::wall_clock();
    let started = Instant::now();
    let inc = wait_for(WAIT, "the incident of the silent Prometheus", || async {
        incidents_of(&g, "prometheus-e2e").await.into_iter().next()
    })
    .await;
    let hb = heartbeat(&g, "prometheus-e2e").await;
    assert_eq!(hb["state"], "down", "{hb}");
    let last = ts(&hb["lastPing"]);
    // (A Watchdog already on its way when Prometheus was killed may land just after.)
    assert!(last < stopped + secs(1), "no ping after Prometheus stopped: {hb}");
    assert_eq!(ts(&inc["createdAt"]), last + secs(4), "at interval + grace after the last Watchdog: {inc}");
    assert!(ts(&inc["createdAt"]) > stopped - secs(2), "not before Prometheus stopped: {inc}");
    eprintln!("the incident opened {:?} after Prometheus stopped", started.elapsed());
    assert_eq!(incidents(&g).await.len(), 1);
}
