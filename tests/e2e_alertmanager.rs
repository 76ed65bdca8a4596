//! End to end with Debian's real `prometheus-alertmanager`: alerts posted to
//! Alertmanager reach alertgate through its webhook receiver and are stored
//! once each, even when two receivers of one Alertmanager, and two
//! unclustered Alertmanagers (an HA pair without gossip), all deliver the
//! same group.
//!
//! Everything listens on 127.0.0.1 with ephemeral ports; every process is
//! killed on drop, also when the test panics.
mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Gateway, all_alerts, get, post};
use serde_json::{Value, json};

const ALERTMANAGER_BIN: &str = "/usr/bin/prometheus-alertmanager";
/// Upper bound for any wait on Alertmanager or alertgate.
const WAIT: Duration = Duration::from_secs(60);
/// Alertmanagers in the unclustered "HA pair".
const PEERS: usize = 2;
/// Webhook receivers each Alertmanager routes every group to.
const RECEIVERS: [&str; 2] = ["alertgate-a", "alertgate-b"];
/// Webhook deliveries of each group per notification (firing, then resolved).
const COPIES: u64 = (PEERS * RECEIVERS.len()) as u64;

/// A child process, killed and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running Alertmanager with its own storage directory and log. Killed on
/// drop (the process goes before its directory: fields drop in order).
struct Alertmanager {
    _proc: Proc,
    name: String,
    addr: String,
    log: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Alertmanager {
    /// Start one Alertmanager with `config` on a free loopback port and wait
    /// until it is ready. If another process takes the port between probing
    /// and binding, Alertmanager exits and is started again on another port.
    async fn start(name: &str, config: &str) -> Alertmanager {
        let bin = std::env::var("ALERTGATE_TEST_ALERTMANAGER").unwrap_or_else(|_| ALERTMANAGER_BIN.to_string());
        assert!(
            Path::new(&bin).exists(),
            "{bin} is missing: install Debian's prometheus-alertmanager to run this test"
        );
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = tmp.path().join("am.yml");
        std::fs::write(&cfg, config).unwrap();
        let storage = tmp.path().join("data");
        std::fs::create_dir_all(&storage).unwrap();
        let mut logs = String::new();
        for attempt in 1..=5 {
            let log = tmp.path().join(format!("{name}-{attempt}.log"));
            let addr = format!("127.0.0.1:{}", free_port());
            let child = Command::new(&bin)
                .arg(format!("--config.file={}", cfg.display()))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--cluster.listen-address=")
                .arg(format!("--storage.path={}", storage.display()))
                .arg("--log.level=debug")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
            let mut proc = Proc(child);
            if wait_ready(&mut proc, &addr, &log).await {
                return Alertmanager { _proc: proc, name: name.to_string(), addr, log, _tmp: tmp };
            }
            drop(proc);
            logs.push_str(&format!(
                "--- attempt {attempt} on {addr}:\n{}\n",
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        panic!("Alertmanager {name} exited at start five times:\n{logs}");
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// POST alerts to the v2 API, as Prometheus does.
    async fn push(&self, alerts: &Value) {
        let (status, body) = post(&self.url("/api/v2/alerts"), &alerts.to_string()).await;
        assert_eq!(status, 200, "{} refused the alerts: {body}", self.name);
    }

    /// The alerts Alertmanager holds, by their label set.
    async fn alerts(&self) -> BTreeMap<String, Value> {
        let (status, body) = get(&self.url("/api/v2/alerts")).await;
        assert_eq!(status, 200, "{body}");
        body.as_array().expect("an array of alerts").iter().map(|a| (a["labels"].to_string(), a.clone())).collect()
    }
}

/// True once `GET /-/ready` answers 200; false if the process exits first.
async fn wait_ready(proc: &mut Proc, addr: &str, log: &Path) -> bool {
    let deadline = Instant::now() + WAIT;
    let url = format!("http://{addr}/-/ready");
    while Instant::now() < deadline {
        if let Ok(Some(_)) = proc.0.try_wait() {
            return false;
        }
        if let Ok(r) = common::client().get(&url).timeout(Duration::from_secs(2)).send().await
            && r.status() == 200
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("Alertmanager on {addr} not ready after {WAIT:?}:\n{}", std::fs::read_to_string(log).unwrap_or_default());
}

/// A loopback port free right now. The listener is dropped before the
/// caller binds, so a retry covers the port being taken meanwhile.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().unwrap().port()
}

/// Every group goes to both webhook receivers: two child routes without
/// matchers, both `continue: true`.
fn alertmanager_config(gateway: &Gateway) -> String {
    let url = gateway.url("/api/v1/ingest/alertmanager");
    let receivers: String = RECEIVERS
        .iter()
        .map(|r| format!("  - name: {r}\n    webhook_configs:\n      - url: {url}\n        send_resolved: true\n"))
        .collect();
    let routes: String = RECEIVERS.iter().map(|r| format!("    - receiver: {r}\n      continue: true\n")).collect();
    format!(
        "route:\n  receiver: {first}\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n  routes:\n{routes}receivers:\n{receivers}",
        first = RECEIVERS[0],
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

/// Everything that helps to understand a failure.
fn diagnostics(g: &Gateway, ams: &[Alertmanager]) -> String {
    let mut out = format!("=== alertgate stderr:\n{}\n", tail(&g.stderr(), 16_000));
    for am in ams {
        // At debug level Alertmanager logs every group tick; keep the rest
        // (alerts received, notifications sent or failed, errors).
        let log: String = am.log().lines().filter(|l| !l.contains("msg=flushing")).map(|l| format!("{l}\n")).collect();
        out.push_str(&format!(
            "=== {} ({}) log, without the per-tick \"flushing\" lines:\n{}\n",
            am.name,
            am.addr,
            tail(&log, 16_000)
        ));
    }
    out
}

/// Poll `check` until it returns Some; after `WAIT`, panic with the last
/// state it saw and the logs of every process.
async fn wait_until<T, F, Fut>(g: &Gateway, ams: &[Alertmanager], what: &str, mut check: F) -> T
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
            panic!("timed out after {WAIT:?} waiting for {what}; last state: {last}\n{}", diagnostics(g, ams));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The test's alerts: three in one group, one in another.
fn alerts(starts_at: jiff::Timestamp, ends_at: jiff::Timestamp) -> Value {
    let mut out = Vec::new();
    for i in 1..=3 {
        out.push(json!({
            "labels": {
                "alertname": "E2EHighLatency",
                "instance": format!("10.0.0.{i}:9100"),
                "job": "api",
                "severity": "critical",
            },
            "annotations": {"summary": format!("High latency on 10.0.0.{i}:9100")},
            "startsAt": starts_at.to_string(),
            "endsAt": ends_at.to_string(),
            "generatorURL": "http://prometheus.invalid/graph?g0.expr=latency",
        }));
    }
    out.push(json!({
        "labels": {"alertname": "E2EDiskFull", "instance": "db-1", "mountpoint": "/var/lib/données"},
        "annotations": {"summary": "Disk full on db-1"},
        "startsAt": starts_at.to_string(),
        "endsAt": ends_at.to_string(),
        "generatorURL": "http://prometheus.invalid/graph?g0.expr=disk",
    }));
    Value::Array(out)
}

/// Whole seconds, so the times read back compare exactly.
fn now_s() -> jiff::Timestamp {
    jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).unwrap()
}

/// The stored alerts by label set, or a description of why they are not
/// (yet) what `ok` wants.
async fn stored_when(g: &Gateway, want: usize, ok: impl Fn(&Value) -> bool) -> Result<BTreeMap<String, Value>, String> {
    let stored = all_alerts(g, "").await;
    let summary = || {
        stored
            .iter()
            .map(|a| {
                format!(
                    "{} {} {} x{}",
                    a["labels"]["alertname"], a["labels"]["instance"], a["status"], a["occurrences"]
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if stored.len() != want || !stored.iter().all(&ok) {
        return Err(format!("{} stored: [{}]", stored.len(), summary()));
    }
    Ok(stored.into_iter().map(|a| (a["labels"].to_string(), a)).collect())
}

#[tokio::test]
async fn alerts_through_two_alertmanagers_and_two_receivers_are_stored_once() {
    let started = Instant::now();
    let g = Gateway::start();
    let config = alertmanager_config(&g);
    let mut ams = Vec::new();
    for i in 0..PEERS {
        ams.push(Alertmanager::start(&format!("am{i}"), &config).await);
    }
    let ams = ams;

    // Firing: the same four alerts to both Alertmanagers.
    let starts_at = now_s() - jiff::SignedDuration::from_mins(1);
    let firing = alerts(starts_at, now_s() + jiff::SignedDuration::from_hours(2));
    let posted = firing.as_array().unwrap().clone();
    for am in &ams {
        am.push(&firing).await;
    }

    // Each Alertmanager sends each group to each receiver: at least
    // PEERS × receivers deliveries of every alert, and still one row each.
    let stored = wait_until(&g, &ams, "all alerts firing, delivered by every receiver of every Alertmanager", || {
        stored_when(&g, posted.len(), |a| a["status"] == "firing" && a["occurrences"].as_u64().unwrap_or(0) >= COPIES)
    })
    .await;
    let firing_copies: Vec<u64> = stored.values().map(|a| a["occurrences"].as_u64().unwrap()).collect();

    for want in &posted {
        let key = want["labels"].to_string();
        let a = stored.get(&key).unwrap_or_else(|| panic!("{key} not stored: {stored:?}"));
        assert_eq!(a["source"], "alertmanager", "{a}");
        assert_eq!(a["annotations"], want["annotations"], "{a}");
        assert_eq!(a["generatorURL"], want["generatorURL"], "{a}");
        assert_eq!(a["startsAt"], starts_at.to_string(), "{a}");
        assert!(a["endsAt"].is_null(), "a firing alert has no end: {a}");
        // The webhook alert is kept verbatim; its fingerprint is the stored one.
        assert_eq!(a["raw"]["fingerprint"], a["fingerprint"], "{a}");
    }
    // The fingerprint is Alertmanager's own, as its API reports it, on both
    // peers; and Alertmanager routed every alert to both receivers.
    for am in &ams {
        let held = am.alerts().await;
        assert_eq!(held.len(), posted.len(), "{}: {held:?}", am.name);
        for (key, a) in &stored {
            let h = held.get(key).unwrap_or_else(|| panic!("{} does not hold {key}: {held:?}", am.name));
            assert_eq!(a["fingerprint"], h["fingerprint"], "{}: {h}", am.name);
            assert_eq!(h["status"]["state"], "active", "{}: {h}", am.name);
            let mut receivers: Vec<&str> =
                h["receivers"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
            receivers.sort();
            assert_eq!(receivers, RECEIVERS, "{}: {h}", am.name);
        }
    }

    // Resolved: the same alerts again, ended a second ago, to both.
    let ends_at = now_s() - jiff::SignedDuration::from_secs(1);
    let resolved = alerts(starts_at, ends_at);
    for am in &ams {
        am.push(&resolved).await;
    }
    let stored = wait_until(&g, &ams, "all alerts resolved, delivered by every receiver of every Alertmanager", || {
        stored_when(&g, posted.len(), |a| {
            a["status"] == "resolved" && a["occurrences"].as_u64().unwrap_or(0) >= 2 * COPIES
        })
    })
    .await;
    for a in stored.values() {
        assert_eq!(a["source"], "alertmanager", "{a}");
        assert_eq!(a["startsAt"], starts_at.to_string(), "{a}");
        assert_eq!(a["endsAt"], ends_at.to_string(), "{a}");
        assert_eq!(a["raw"]["status"], "resolved", "{a}");
        assert!(a["firstSeen"].as_str().unwrap() <= a["lastSeen"].as_str().unwrap());
    }
    // Nothing arrives afterwards that makes a second row.
    assert_eq!(all_alerts(&g, "").await.len(), posted.len());
    let resolved_copies: Vec<u64> = stored.values().map(|a| a["occurrences"].as_u64().unwrap()).collect();
    eprintln!(
        "deliveries per alert: firing {firing_copies:?}, after resolve {resolved_copies:?}; took {:?}",
        started.elapsed()
    );
}
