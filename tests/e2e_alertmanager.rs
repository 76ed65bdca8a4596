//! End to end with Debian's real `prometheus-alertmanager`: alerts posted to
//! Alertmanager reach alertgate through its webhook receiver and are stored
//! once each, even when two receivers of one Alertmanager, and two
//! unclustered Alertmanagers (an HA pair without gossip), all deliver the
//! same group. With the rules of `tests/fixtures/rules-e2e`, each group
//! becomes one incident with the priority its severity gives, and the
//! incidents, an acknowledged one too, resolve themselves when Alertmanager
//! sends the alerts resolved.
//!
//! Everything listens on 127.0.0.1 with ephemeral ports; every process is
//! killed on drop, also when the test panics.
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Gateway, Options, Proc, all_alerts, get, post};
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
        let (proc, addr, log) = common::start_peer(&bin, tmp.path(), name, WAIT, |addr, _| {
            vec![
                format!("--config.file={}", cfg.display()),
                format!("--web.listen-address={addr}"),
                "--cluster.listen-address=".into(),
                format!("--storage.path={}", storage.display()),
                "--log.level=debug".into(),
            ]
        })
        .await;
        Alertmanager { _proc: proc, name: name.to_string(), addr, log, _tmp: tmp }
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

/// The test's alerts: three in one group (critical), one in another
/// (warning).
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
        "labels": {
            "alertname": "E2EDiskFull",
            "instance": "db-1",
            "job": "node",
            "mountpoint": "/var/lib/données",
            "severity": "warning",
        },
        "annotations": {"summary": "Disk full on db-1"},
        "startsAt": starts_at.to_string(),
        "endsAt": ends_at.to_string(),
        "generatorURL": "http://prometheus.invalid/graph?g0.expr=disk",
    }));
    Value::Array(out)
}

/// Whole seconds, so the times read back compare exactly.
fn now_s() -> jiff::Timestamp {
    jiff::Timestamp::from_second(common::wall_clock().as_second()).unwrap()
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

/// What one Alertmanager group becomes under `tests/fixtures/rules-e2e`:
/// impact high, urgency from `severity`, priority by the default matrix.
struct WantIncident {
    alertname: &'static str,
    title: &'static str,
    service: &'static str,
    urgency: &'static str,
    priority: &'static str,
}

const WANT_INCIDENTS: [WantIncident; 2] = [
    WantIncident {
        alertname: "E2EHighLatency",
        title: "E2EHighLatency on api",
        service: "api",
        urgency: "high",
        priority: "P1",
    },
    WantIncident {
        alertname: "E2EDiskFull",
        title: "E2EDiskFull on node",
        service: "node",
        urgency: "medium",
        priority: "P2",
    },
];

/// Every incident, in one page.
async fn all_incidents(g: &Gateway) -> Vec<Value> {
    let (status, body) = get(&g.url("/api/v1/incidents?limit=500&sort=created_at")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["nextCursor"].is_null(), "more incidents than one page: {body}");
    body["incidents"].as_array().expect("an array of incidents").clone()
}

/// Exactly one incident per group, each with its alerts and timeline, by
/// alertname; or a description of why they are not (yet) what `ok` wants.
async fn incidents_when(g: &Gateway, ok: impl Fn(&Value) -> bool) -> Result<BTreeMap<String, Value>, String> {
    let list = all_incidents(g).await;
    let summary = || {
        list.iter()
            .map(|i| {
                format!(
                    "#{} rule {} {} {} {} firing {}/{}",
                    i["id"], i["rule"], i["title"], i["state"], i["priority"], i["firingCount"], i["alertCount"]
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if list.len() != WANT_INCIDENTS.len() || !list.iter().all(&ok) {
        return Err(format!("{} incidents: [{}]", list.len(), summary()));
    }
    let mut out = BTreeMap::new();
    for i in &list {
        let (status, detail) = get(&g.url(&format!("/api/v1/incidents/{}", i["id"]))).await;
        assert_eq!(status, 200, "{detail}");
        let name = detail["labels"]["alertname"].as_str().unwrap_or_default().to_string();
        if out.insert(name.clone(), detail).is_some() {
            return Err(format!("two incidents of alertname {name:?}: [{}]", summary()));
        }
    }
    Ok(out)
}

/// The stored alerts of one group (one alertname).
fn group_of<'a>(stored: &'a BTreeMap<String, Value>, alertname: &str) -> Vec<&'a Value> {
    stored.values().filter(|a| a["labels"]["alertname"] == alertname).collect()
}

fn fingerprints<'a>(alerts: impl IntoIterator<Item = &'a Value>) -> BTreeSet<String> {
    alerts.into_iter().map(|a| a["fingerprint"].as_str().expect("a fingerprint").to_string()).collect()
}

fn timeline(incident: &Value) -> &[Value] {
    incident["timeline"].as_array().expect("a timeline")
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["kind"].as_str().unwrap_or("?")).collect()
}

/// The fingerprints timeline entries are about.
fn event_fingerprints(events: &[Value]) -> BTreeSet<String> {
    events.iter().map(|e| e["data"]["fingerprint"].as_str().unwrap_or("none").to_string()).collect()
}

/// An incident whose group fires: the rule's title, service and priority,
/// every alert of the group and only those, the labels they share, and a
/// timeline of its creation and of each alert joining once, however often
/// the alert was delivered.
fn check_triggered(inc: &Value, want: &WantIncident, group: &[&Value]) {
    let n = group.len() as u64;
    let ctx = format!("incident of {}: {inc:#}", want.alertname);
    assert_eq!(inc["rule"], "e2e", "{ctx}");
    assert_eq!(inc["title"], want.title, "{ctx}");
    assert_eq!(inc["service"], want.service, "{ctx}");
    assert_eq!(inc["impact"], "high", "{ctx}");
    assert_eq!(inc["urgency"], want.urgency, "{ctx}");
    assert_eq!(inc["priority"], want.priority, "{ctx}");
    assert_eq!(inc["state"], "triggered", "{ctx}");
    assert_eq!(inc["alertCount"], n, "{ctx}");
    assert_eq!(inc["firingCount"], n, "{ctx}");
    assert_eq!(inc["flapCount"], 0, "{ctx}");
    assert!(inc["assignee"].is_null(), "{ctx}");
    assert!(inc["acknowledgedAt"].is_null(), "{ctx}");
    assert!(inc["resolvedAt"].is_null(), "{ctx}");
    // The labels every alert of the group has, with the same value.
    let mut common = group[0]["labels"].as_object().unwrap().clone();
    common.retain(|k, v| group.iter().all(|a| a["labels"][k] == *v));
    assert_eq!(inc["labels"], Value::Object(common), "{ctx}");

    let alerts = inc["alerts"].as_array().expect("the incident's alerts");
    assert_eq!(fingerprints(alerts), fingerprints(group.iter().copied()), "{ctx}");
    assert!(alerts.iter().all(|a| a["status"] == "firing"), "{ctx}");

    let events = timeline(inc);
    assert_eq!(kinds(events), [vec!["created"], vec!["alert_joined"; group.len()]].concat(), "{ctx}");
    assert!(events.iter().all(|e| e["actor"] == "alertgate"), "{ctx}");
    assert_eq!(events[0]["data"]["priority"], want.priority, "{ctx}");
    assert_eq!(event_fingerprints(&events[1..]), fingerprints(group.iter().copied()), "{ctx}");
}

/// The same incident once Alertmanager sent its alerts resolved: resolved
/// by the gateway itself, nothing firing, the same alerts and priority, and
/// `before` (its timeline up to then) followed by each alert resolving once
/// and the resolution.
fn check_resolved(inc: &Value, want: &WantIncident, group: &[&Value], before: &Value) {
    let n = group.len() as u64;
    let ctx = format!("incident of {}: {inc:#}", want.alertname);
    assert_eq!(inc["id"], before["id"], "{ctx}");
    assert_eq!(inc["state"], "resolved", "{ctx}");
    assert_eq!(inc["priority"], want.priority, "{ctx}");
    assert_eq!(inc["title"], want.title, "{ctx}");
    assert_eq!(inc["alertCount"], n, "{ctx}");
    assert_eq!(inc["firingCount"], 0, "{ctx}");
    assert_eq!(inc["flapCount"], 0, "{ctx}");
    assert_eq!(inc["acknowledgedAt"], before["acknowledgedAt"], "{ctx}");
    assert!(inc["resolvedAt"].is_string(), "{ctx}");
    assert!(inc.get("autoResolveAt").is_none(), "{ctx}");

    let alerts = inc["alerts"].as_array().expect("the incident's alerts");
    assert_eq!(fingerprints(alerts), fingerprints(group.iter().copied()), "{ctx}");
    assert!(alerts.iter().all(|a| a["status"] == "resolved"), "{ctx}");

    let earlier = timeline(before);
    let events = timeline(inc);
    assert!(events.len() > earlier.len(), "{ctx}");
    assert_eq!(&events[..earlier.len()], earlier, "the timeline so far is kept: {ctx}");
    let added = &events[earlier.len()..];
    assert_eq!(kinds(added), [vec!["alert_resolved"; group.len()], vec!["resolved"]].concat(), "{ctx}");
    assert_eq!(event_fingerprints(&added[..group.len()]), fingerprints(group.iter().copied()), "{ctx}");
    let last = added.last().unwrap();
    assert!(added.iter().all(|e| e["actor"] == "alertgate"), "{ctx}");
    assert_eq!(last["data"]["from"], before["state"], "{ctx}");
    assert_eq!(last["data"]["to"], "resolved", "{ctx}");
    assert_eq!(last["data"]["action"], "resolve", "{ctx}");
}

#[tokio::test]
async fn two_alertmanagers_two_receivers_store_each_alert_once_and_open_one_incident_per_group() {
    let started = Instant::now();
    let g = Gateway::start_with(Options {
        rules_dir: Some(common::repo_path("tests/fixtures/rules-e2e")),
        ..Default::default()
    });
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

    // Each group is one incident, however many copies of it arrived.
    let triggered = wait_until(&g, &ams, "one triggered incident per group with all its alerts firing", || {
        incidents_when(&g, |i| i["state"] == "triggered" && i["firingCount"] == i["alertCount"])
    })
    .await;
    for want in &WANT_INCIDENTS {
        let inc = triggered
            .get(want.alertname)
            .unwrap_or_else(|| panic!("no incident of {}: {triggered:#?}", want.alertname));
        check_triggered(inc, want, &group_of(&stored, want.alertname));
    }

    // Someone takes the P1.
    let p1 = &triggered[WANT_INCIDENTS[0].alertname];
    let (status, acked) = post(
        &g.url(&format!("/api/v1/incidents/{}/acknowledge", p1["id"])),
        &json!({"actor": "e2e", "comment": "on it"}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["id"], p1["id"], "{acked}");
    assert_eq!(acked["state"], "acknowledged", "{acked}");
    assert!(acked["acknowledgedAt"].is_string(), "{acked}");
    let events = timeline(&acked);
    assert_eq!(&events[..events.len() - 1], timeline(p1), "{acked}");
    let ack = events.last().unwrap();
    assert_eq!((&ack["actor"], &ack["kind"]), (&json!("e2e"), &json!("acknowledged")), "{acked}");
    assert_eq!(ack["data"]["comment"], "on it", "{acked}");
    let states: BTreeMap<String, Value> = all_incidents(&g)
        .await
        .into_iter()
        .map(|i| (i["title"].as_str().unwrap().to_string(), i["state"].clone()))
        .collect();
    assert_eq!(
        states,
        BTreeMap::from([
            (WANT_INCIDENTS[0].title.to_string(), json!("acknowledged")),
            (WANT_INCIDENTS[1].title.to_string(), json!("triggered")),
        ])
    );
    let before_resolve = [acked, triggered[WANT_INCIDENTS[1].alertname].clone()];

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
        let seen = |k: &str| a[k].as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
        assert!(seen("firstSeen") <= seen("lastSeen"), "{a}");
    }
    // With their last alert, both incidents resolved themselves (the rule
    // says `auto_resolve_after: 0s`), the acknowledged one included.
    let resolved_incidents = wait_until(&g, &ams, "both incidents resolved with nothing firing", || {
        incidents_when(&g, |i| i["state"] == "resolved" && i["firingCount"] == 0)
    })
    .await;
    for (want, before) in WANT_INCIDENTS.iter().zip(&before_resolve) {
        let inc = resolved_incidents
            .get(want.alertname)
            .unwrap_or_else(|| panic!("no incident of {}: {resolved_incidents:#?}", want.alertname));
        check_resolved(inc, want, &group_of(&stored, want.alertname), before);
    }

    // Nothing arrives afterwards that makes a second row or incident.
    assert_eq!(all_alerts(&g, "").await.len(), posted.len());
    assert_eq!(all_incidents(&g).await.len(), WANT_INCIDENTS.len());
    let resolved_copies: Vec<u64> = stored.values().map(|a| a["occurrences"].as_u64().unwrap()).collect();
    eprintln!(
        "deliveries per alert: firing {firing_copies:?}, after resolve {resolved_copies:?}; took {:?}",
        started.elapsed()
    );
}
