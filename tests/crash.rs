//! Durability: post under concurrent load, `kill -9`, restart, and every alert
//! whose request was answered 2xx is there. Three kill cycles on one data
//! directory, so a torn write from one crash would show in the next.
mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alertgate::model::Fingerprint;
use common::{Gateway, all_alerts, get, post, wait_for};
use jiff::Timestamp;
use serde_json::{Value, json};

/// Concurrent senders.
const TASKS: usize = 8;
/// Alerts per request.
const BATCH: usize = 50;
/// Kill, restart, check: this many times on the same data directory.
const CYCLES: usize = 3;
/// Requests answered 2xx in a cycle before the kill.
const ACKED_BEFORE_KILL: usize = 100;
/// Bound on one sender's requests in a cycle; only reached if the kill never comes.
const MAX_REQUESTS_PER_TASK: usize = 5_000;

#[derive(Clone, Debug)]
struct SentAlert {
    fp: String,
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// New alerts, as Alertmanager's webhook or Prometheus's push.
    Create,
    /// Resolve alerts created (and acknowledged) in an earlier cycle.
    Resolve,
}

#[derive(Debug)]
enum Outcome {
    Acked,
    Refused(u16, String),
    NoAnswer(String),
}

#[derive(Debug)]
struct Sent {
    kind: Kind,
    endpoint: &'static str,
    alerts: Vec<SentAlert>,
    outcome: Outcome,
}

#[derive(Default)]
struct Counters {
    acked: AtomicUsize,
    in_flight: AtomicUsize,
}

fn labels_for(cycle: usize, task: usize, req: usize, i: usize) -> BTreeMap<String, String> {
    [
        ("alertname", "CrashTest".to_string()),
        ("cycle", cycle.to_string()),
        ("task", task.to_string()),
        ("seq", format!("c{cycle}-t{task}-r{req}-a{i}")),
        ("severity", if i.is_multiple_of(7) { "critical" } else { "warning" }.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    Fingerprint::of_labels(labels).as_str().to_string()
}

fn webhook(status: &str, alerts: &[SentAlert], starts: Timestamp, ends: Option<Timestamp>) -> Value {
    let items: Vec<Value> = alerts
        .iter()
        .map(|a| {
            json!({
                "status": status,
                "labels": a.labels,
                "annotations": {"summary": format!("crash test {}", a.labels["seq"])},
                "startsAt": starts.to_string(),
                "endsAt": ends.map(|t| t.to_string()).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
                "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=up",
                "fingerprint": a.fp,
            })
        })
        .collect();
    json!({
        "version": "4",
        "receiver": "alertgate",
        "status": status,
        "groupKey": "{}:{alertname=\"CrashTest\"}",
        "truncatedAlerts": 0,
        "groupLabels": {"alertname": "CrashTest"},
        "commonLabels": {"alertname": "CrashTest"},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": items,
    })
}

fn prometheus_push(alerts: &[SentAlert], starts: Timestamp) -> Value {
    Value::Array(
        alerts
            .iter()
            .map(|a| {
                json!({
                    "labels": a.labels,
                    "annotations": {"summary": format!("crash test {}", a.labels["seq"])},
                    "startsAt": starts.to_string(),
                    "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=up",
                })
            })
            .collect(),
    )
}

/// One sender: posts batches until the gateway stops answering. Returns every
/// request it made and the resolve candidates it did not use.
async fn sender(
    addr: String,
    starts: Timestamp,
    cycle: usize,
    task: usize,
    mut to_resolve: Vec<SentAlert>,
    counters: Arc<Counters>,
) -> (Vec<Sent>, Vec<SentAlert>) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut sent = Vec::new();
    for req in 0..MAX_REQUESTS_PER_TASK {
        let (kind, endpoint, alerts, body) = if req % 3 == 2 && to_resolve.len() >= BATCH {
            let alerts: Vec<SentAlert> = to_resolve.drain(..BATCH).collect();
            let body = webhook("resolved", &alerts, starts, Some(common::wall_clock()));
            (Kind::Resolve, "/api/v1/ingest/alertmanager", alerts, body)
        } else {
            let alerts: Vec<SentAlert> = (0..BATCH)
                .map(|i| {
                    let labels = labels_for(cycle, task, req, i);
                    SentAlert { fp: fingerprint(&labels), labels }
                })
                .collect();
            if (req + task).is_multiple_of(2) {
                let body = webhook("firing", &alerts, starts, None);
                (Kind::Create, "/api/v1/ingest/alertmanager", alerts, body)
            } else {
                let body = prometheus_push(&alerts, starts);
                (Kind::Create, "/api/v2/alerts", alerts, body)
            }
        };
        counters.in_flight.fetch_add(1, Ordering::SeqCst);
        let result = client
            .post(format!("http://{addr}{endpoint}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await;
        let outcome = match result {
            Ok(resp) if resp.status().is_success() => Outcome::Acked,
            Ok(resp) => {
                let status = resp.status().as_u16();
                Outcome::Refused(status, resp.text().await.unwrap_or_default())
            }
            Err(e) => Outcome::NoAnswer(e.to_string()),
        };
        counters.in_flight.fetch_sub(1, Ordering::SeqCst);
        if matches!(outcome, Outcome::Acked) {
            counters.acked.fetch_add(1, Ordering::SeqCst);
        }
        let stop = matches!(outcome, Outcome::NoAnswer(_));
        sent.push(Sent { kind, endpoint, alerts, outcome });
        if stop {
            break;
        }
    }
    (sent, to_resolve)
}

/// Copy the database of the dead process (file and WAL) and inspect the copy
/// directly, so the gateway still recovers the untouched crash image.
fn inspect_crash_image(data: &Path) -> HashMap<String, String> {
    let copy = tempfile::tempdir().unwrap();
    for name in ["alertgate.db", "alertgate.db-wal"] {
        let from = data.join(name);
        if from.exists() {
            std::fs::copy(&from, copy.path().join(name)).unwrap();
        }
    }
    let conn = rusqlite::Connection::open(copy.path().join("alertgate.db")).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok", "integrity_check of the crash image");
    let mut stmt = conn.prepare("SELECT fingerprint, status FROM alerts").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<Result<_, _>>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_alert_survives_kill_9() {
    // SQLite's crash image is inspected; PostgreSQL's kill -9 timeline is
    // tests/cluster.rs.
    let mut g = Gateway::start_with(common::Options::embedded());
    let data = g.dir.join("data");
    let starts = common::wall_clock();
    let mut all_sent: Vec<Sent> = Vec::new();
    // Acknowledged creates not yet sent for resolving, per sender.
    let mut resolvable: Vec<Vec<SentAlert>> = vec![Vec::new(); TASKS];

    for cycle in 1..=CYCLES {
        let counters = Arc::new(Counters::default());
        let handles: Vec<_> = (0..TASKS)
            .map(|task| {
                tokio::spawn(sender(
                    g.addr.clone(),
                    starts,
                    cycle,
                    task,
                    std::mem::take(&mut resolvable[task]),
                    counters.clone(),
                ))
            })
            .collect();
        let c = counters.clone();
        wait_for(Duration::from_secs(120), "requests to be acknowledged under load", || {
            let c = c.clone();
            async move {
                (c.acked.load(Ordering::SeqCst) >= ACKED_BEFORE_KILL && c.in_flight.load(Ordering::SeqCst) > 0)
                    .then_some(())
            }
        })
        .await;
        let in_flight = counters.in_flight.load(Ordering::SeqCst);
        tokio::task::block_in_place(|| g.kill9());

        let mut cycle_sent = Vec::new();
        for (task, h) in handles.into_iter().enumerate() {
            let (sent, left) = h.await.expect("sender task");
            for s in &sent {
                if s.kind == Kind::Create && matches!(s.outcome, Outcome::Acked) {
                    resolvable[task].extend(s.alerts.iter().cloned());
                }
            }
            resolvable[task].splice(0..0, left);
            cycle_sent.extend(sent);
        }
        let refused: Vec<_> = cycle_sent
            .iter()
            .filter_map(|s| match &s.outcome {
                Outcome::Refused(code, body) => Some(format!("{} {code} {body}", s.endpoint)),
                _ => None,
            })
            .collect();
        assert!(refused.is_empty(), "refused under load: {refused:#?}");
        let acked = cycle_sent.iter().filter(|s| matches!(s.outcome, Outcome::Acked)).count();
        let no_answer: Vec<&str> = cycle_sent
            .iter()
            .filter_map(|s| match &s.outcome {
                Outcome::NoAnswer(e) => Some(e.as_str()),
                _ => None,
            })
            .collect();
        eprintln!(
            "cycle {cycle}: {} requests, {acked} acknowledged, {in_flight} in flight at the kill, \
             {} without an answer (e.g. {:?})",
            cycle_sent.len(),
            no_answer.len(),
            no_answer.first()
        );
        all_sent.extend(cycle_sent);

        // The crash image, read directly with SQLite.
        let image = inspect_crash_image(&data);
        let committed_unanswered = check_against(&all_sent, &image, "crash image");
        eprintln!("after cycle {cycle}: {committed_unanswered} unanswered requests so far were committed anyway");

        // The gateway recovers the same state and serves again.
        tokio::task::block_in_place(|| g.restart());
        let (status, body) = get(&g.url("/readyz")).await;
        assert_eq!(status, 200, "readyz after kill -9: {body}");
        assert_eq!(body["database"], "ok");
        let listed: HashMap<String, String> = all_alerts(&g, "")
            .await
            .into_iter()
            .map(|a| {
                let fp = a["fingerprint"].as_str().unwrap().to_string();
                let labels: BTreeMap<String, String> = serde_json::from_value(a["labels"].clone()).unwrap();
                assert_eq!(fingerprint(&labels), fp, "stored labels match: {a}");
                (fp, a["status"].as_str().unwrap().to_string())
            })
            .collect();
        check_against(&all_sent, &listed, "after restart");
        assert_eq!(listed, image, "the restarted gateway shows exactly the crash image");
        // Acknowledged alerts one by one, through the fingerprint endpoint.
        for s in all_sent.iter().filter(|s| matches!(s.outcome, Outcome::Acked)).step_by(7) {
            for a in [&s.alerts[0], &s.alerts[BATCH - 1]] {
                let (status, body) = get(&g.url(&format!("/api/v1/alerts/{}", a.fp))).await;
                assert_eq!(status, 200, "{} {body}", a.fp);
                assert_eq!(body["labels"]["seq"], a.labels["seq"].as_str());
                if s.kind == Kind::Resolve {
                    assert_eq!(body["status"], "resolved", "{body}");
                }
            }
        }

        // Ingest works again.
        let labels = json!({"alertname": "AfterCrash", "cycle": cycle.to_string()});
        let (status, body) = post(&g.url("/api/v2/alerts"), &json!([{ "labels": labels }]).to_string()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["outcome"]["created"], 1, "{body}");
        let fp = fingerprint(&serde_json::from_value(labels).unwrap());
        let (status, body) = get(&g.url(&format!("/api/v1/alerts/{fp}"))).await;
        assert_eq!(status, 200, "{body}");
    }

    // After the final kill, the database file itself is sound.
    tokio::task::block_in_place(|| g.kill9());
    let conn = rusqlite::Connection::open(data.join("alertgate.db")).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    let stored: i64 =
        conn.query_row("SELECT count(*) FROM alerts WHERE labels LIKE '%CrashTest%'", [], |r| r.get(0)).unwrap();
    let acked: HashSet<&str> = all_sent
        .iter()
        .filter(|s| s.kind == Kind::Create && matches!(s.outcome, Outcome::Acked))
        .flat_map(|s| s.alerts.iter().map(|a| a.fp.as_str()))
        .collect();
    assert!(stored as usize >= acked.len(), "{stored} < {}", acked.len());
}

/// `stored` maps fingerprint to status. Every acknowledged alert is there
/// (resolved when its resolve was acknowledged), each request is all or
/// nothing, and nothing is there that was never sent.
/// Returns how many unanswered requests were applied anyway.
fn check_against(sent: &[Sent], stored: &HashMap<String, String>, what: &str) -> usize {
    let mut known = HashSet::new();
    let mut applied_unanswered = 0;
    for s in sent {
        let applied = |a: &&SentAlert| match s.kind {
            Kind::Create => stored.contains_key(&a.fp),
            Kind::Resolve => stored.get(&a.fp).map(String::as_str) == Some("resolved"),
        };
        let present = s.alerts.iter().filter(applied).count();
        let acked = matches!(s.outcome, Outcome::Acked);
        if acked {
            let missing: Vec<&str> =
                s.alerts.iter().filter(|a| !applied(a)).map(|a| a.labels["seq"].as_str()).collect();
            assert_eq!(
                present,
                s.alerts.len(),
                "{what}: an acknowledged {:?} request to {} lost {} of {} alerts, e.g. {:?}",
                s.kind,
                s.endpoint,
                s.alerts.len() - present,
                s.alerts.len(),
                &missing[..missing.len().min(3)]
            );
        } else {
            assert!(
                present == 0 || present == s.alerts.len(),
                "{what}: a torn {:?} request to {}: {present} of {} alerts applied",
                s.kind,
                s.endpoint,
                s.alerts.len()
            );
            if present > 0 {
                applied_unanswered += 1;
            }
        }
        known.extend(s.alerts.iter().map(|a| a.fp.as_str()));
    }
    let unknown = stored.keys().filter(|fp| !known.contains(fp.as_str())).count();
    // The only other alerts are the one-per-cycle probes posted after each restart.
    assert!(unknown <= CYCLES, "{what}: {unknown} alerts never sent");
    applied_unanswered
}
