//! Several gateways on one PostgreSQL database: whichever gateway takes a
//! request, the team sees what one gateway would have produced, and a
//! gateway that dies leaves its work to the others.
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::pg::Database;
use common::{Gateway, Options, client, get, metric, post, t0, wait_for};
use jiff::SignedDuration;
use serde_json::{Value, json};

const RULES: &str = r#"
sla_policies:
  - name: tiered
    warn_at: [50]
    targets:
      P1: {respond: 30m}
incident_rules:
  - name: load
    matchers: ['alertname=~"Load.*"']
    group_by: [alertname]
    title: "{{ labels.alertname }}"
    impact: low
    urgency: low
  - name: pages
    matchers: []
    group_by: [alertname]
    title: "{{ labels.alertname }}"
    impact: high
    urgency: high
    notify: [hook]
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [alertname, cluster]
"#;

/// A webhook receiver that records every delivery it answered 200, and
/// can be told to hold requests unanswered (a receiver that hangs).
#[derive(Clone, Default)]
struct Receiver {
    answered: Arc<Mutex<Vec<(String, Value)>>>,
    seen: Arc<Mutex<usize>>,
    hang: Arc<std::sync::atomic::AtomicBool>,
}

impl Receiver {
    async fn start(&self) -> String {
        let me = self.clone();
        let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let me = me.clone();
            async move {
                *me.seen.lock().unwrap() += 1;
                if me.hang.load(std::sync::atomic::Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_secs(600)).await;
                }
                let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                me.answered.lock().unwrap().push((key, body));
                axum::http::StatusCode::OK
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/hook")
    }

    /// Deliveries answered, by idempotency key.
    fn by_key(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for (key, _) in self.answered.lock().unwrap().iter() {
            *out.entry(key.clone()).or_insert(0) += 1;
        }
        out
    }

    fn events(&self) -> Vec<String> {
        self.answered.lock().unwrap().iter().map(|(_, b)| b["event"].as_str().unwrap_or("").to_owned()).collect()
    }
}

struct Cluster {
    db: Database,
    gateways: Vec<Gateway>,
    _rules: tempfile::TempDir,
}

fn cluster(n: usize, hook: &str, clock: Option<jiff::Timestamp>) -> Cluster {
    let db = Database::create();
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("rules.yaml"), RULES).unwrap();
    let config = format!(
        "resolve_timeout: 1d\nnotifiers:\n  - {{name: hook, type: webhook, url: \"{hook}\"}}\n\
         outbox: {{initial_backoff: 1s, max_backoff: 2s, max_age: 1d}}\n"
    );
    let gateways = (0..n)
        .map(|_| {
            Gateway::start_with(Options {
                config: Some(config.clone()),
                rules_dir: Some(rules.path().to_path_buf()),
                test_clock: clock,
                database_url: Some(db.url.clone()),
                ..Default::default()
            })
        })
        .collect();
    Cluster { db, gateways, _rules: rules }
}

fn alert(name: &str, instance: &str) -> Value {
    json!({"labels": {"alertname": name, "instance": instance}, "annotations": {"summary": "cluster test"}})
}

/// POST alerts to `url` as Prometheus does; the status, or `None` when
/// no answer came within `timeout` (the gateway was killed, say).
async fn send(url: &str, alerts: &[Value], timeout: Duration) -> Option<u16> {
    let sent = client()
        .post(url)
        .header("content-type", "application/json")
        .body(Value::Array(alerts.to_vec()).to_string())
        .timeout(timeout)
        .send()
        .await;
    sent.ok().map(|r| r.status().as_u16())
}

async fn push(g: &Gateway, alerts: &[Value]) -> u16 {
    post(&g.url("/api/v2/alerts"), &Value::Array(alerts.to_vec()).to_string()).await.0
}

async fn incidents(g: &Gateway) -> Vec<Value> {
    let (status, body) = get(&g.url("/api/v1/incidents?limit=500")).await;
    assert_eq!(status, 200, "{body}");
    body["incidents"].as_array().unwrap().clone()
}

/// Every alert stored, by fingerprint, read from the database itself.
fn stored_fingerprints(db: &Database) -> BTreeSet<String> {
    db.column("SELECT fingerprint FROM alerts").into_iter().flatten().collect()
}

/// The alertnames of every alert stored, read from the database itself.
fn stored_alertnames(db: &Database) -> BTreeSet<String> {
    alertnames_at(&db.url)
}

fn alertnames_at(url: &str) -> BTreeSet<String> {
    common::pg::column_at(url, "SELECT labels FROM alerts")
        .into_iter()
        .flatten()
        .map(|l| serde_json::from_str::<Value>(&l).unwrap()["alertname"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_silence_made_on_one_gateway_mutes_an_alert_arriving_at_the_other_at_once() {
    let hook = Receiver::default().start().await;
    let c = cluster(2, &hook, None);
    let (a, b) = (&c.gateways[0], &c.gateways[1]);
    let now = common::wall_clock();
    let (status, body) = post(
        &a.url("/api/v2/silences"),
        &json!({
            "matchers": [{"name": "alertname", "value": "DiskFull", "isRegex": false, "isEqual": true}],
            "startsAt": now.to_string(), "endsAt": (now + SignedDuration::from_hours(1)).to_string(),
            "createdBy": "ops", "comment": "replacing the disk"
        })
        .to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The very next request, at the other gateway: no waiting.
    assert_eq!(push(b, &[alert("DiskFull", "db1"), alert("CpuHot", "db1")]).await, 200);
    let (status, alerts) = get(&b.url("/api/v1/alerts")).await;
    assert_eq!(status, 200, "{alerts}");
    let muted: BTreeMap<String, Value> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["labels"]["alertname"].as_str().unwrap().to_owned(), a["mutedBy"].clone()))
        .collect();
    assert!(muted["DiskFull"].is_object() || muted["DiskFull"].is_string(), "silenced: {alerts:#}");
    assert!(muted["CpuHot"].is_null(), "not silenced: {alerts:#}");
    let titles: Vec<String> =
        incidents(a).await.iter().map(|i| i["title"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(titles, ["CpuHot"], "the silenced alert opened nothing, seen from either gateway");
}

/// A gateway still running when a newer one migrated the schema writes no
/// more (it would store rows the newer schema keeps otherwise): its
/// senders get 503s, to retry at an upgraded gateway, its log names the
/// schema, and what it stored before stays.
#[tokio::test]
async fn a_gateway_older_than_the_schema_answers_503_and_writes_nothing() {
    let hook = Receiver::default().start().await;
    let c = cluster(1, &hook, None);
    let g = &c.gateways[0];
    assert_eq!(push(g, &[alert("Before", "db1")]).await, 200);
    let version: u32 = c.db.column("SELECT max(version) FROM schema_version")[0].as_deref().unwrap().parse().unwrap();
    c.db.column("UPDATE schema_version SET version = version + 1");
    let (status, body) = post(&g.url("/api/v2/alerts"), &Value::Array(vec![alert("After", "db1")]).to_string()).await;
    assert_eq!(status, 503, "{body}");
    let log = g.stderr();
    let newer = format!("schema version {} is newer than this build supports ({version})", version + 1);
    assert!(log.contains(&newer), "{log}");
    assert_eq!(stored_alertnames(&c.db), BTreeSet::from(["Before".to_owned()]));
}

/// The cluster's inhibition: a critical alert mutes the warning of the
/// same alertname and cluster.
fn severe(instance: &str, severity: &str, resolved: bool) -> Value {
    let mut a =
        json!({"labels": {"alertname": "DiskFull", "cluster": "c1", "instance": instance, "severity": severity}});
    if resolved {
        a["endsAt"] = json!(common::wall_clock().to_string());
    }
    a
}

async fn muted_by(g: &Gateway, instance: &str) -> Value {
    let (status, alerts) = get(&g.url("/api/v1/alerts")).await;
    assert_eq!(status, 200, "{alerts}");
    let found = alerts["alerts"].as_array().unwrap().iter().find(|a| a["labels"]["instance"] == instance).cloned();
    found.unwrap_or_else(|| panic!("no alert of {instance}: {alerts:#}"))["mutedBy"].clone()
}

#[tokio::test]
async fn an_inhibiting_alert_at_one_gateway_mutes_and_releases_at_the_other_at_once() {
    let hook = Receiver::default().start().await;
    let c = cluster(2, &hook, None);
    let (a, b) = (&c.gateways[0], &c.gateways[1]);
    assert_eq!(push(a, &[severe("db1", "critical", false)]).await, 200);
    // The very next request at the other gateway knows the source.
    assert_eq!(push(b, &[severe("db2", "warning", false)]).await, 200);
    assert_eq!(muted_by(b, "db2").await, "inhibited");
    // The source resolves at the first gateway: the other's next new
    // warning opens its incident.
    assert_eq!(push(a, &[severe("db1", "critical", true)]).await, 200);
    assert_eq!(push(b, &[severe("db3", "warning", false)]).await, 200);
    assert!(muted_by(b, "db3").await.is_null(), "the inhibiting alert resolved");
    assert!(muted_by(b, "db2").await.is_null(), "released when its source resolved");
    let open: Vec<Value> = incidents(b).await.into_iter().filter(|i| i["state"] != "resolved").collect();
    assert_eq!(open.len(), 1, "one incident for the warnings: {open:#?}");
    assert_eq!(open[0]["alertCount"], 2, "{open:#?}");
}

#[tokio::test]
async fn concurrent_senders_at_two_gateways_get_exact_counts_and_one_incident_per_group() {
    let hook = Receiver::default();
    let url = hook.start().await;
    let c = cluster(2, &url, None);
    // 8 senders, 4 at each gateway, each sending the same 40 groups of 5
    // alerts (200 fingerprints) five times, interleaved.
    let mut tasks = Vec::new();
    for sender in 0..8 {
        let g_url = c.gateways[sender % 2].url("/api/v2/alerts");
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for round in 0..5 {
                for group in 0..40 {
                    let batch: Vec<Value> = (0..5)
                        .map(|i| alert(&format!("Load{}", (group + round + sender) % 40), &format!("host{i}")))
                        .collect();
                    statuses.push(send(&g_url, &batch, Duration::from_secs(30)).await.expect("an answer"));
                }
            }
            statuses
        }));
    }
    let mut statuses = BTreeMap::new();
    for t in tasks {
        for s in t.await.unwrap() {
            *statuses.entry(s).or_insert(0) += 1;
        }
    }
    assert_eq!(statuses, BTreeMap::from([(200, 8 * 5 * 40)]), "every request accepted, none refused by a deadlock");
    assert_eq!(stored_fingerprints(&c.db).len(), 200, "each alert stored once");
    let occurrences: Vec<Option<String>> = c.db.column("SELECT sum(occurrences)::text FROM alerts");
    assert_eq!(occurrences, [Some((8 * 5 * 40 * 5).to_string())], "every copy counted");
    let mut beside_others = 0.0;
    for g in &c.gateways {
        let list = incidents(g).await;
        let titles: BTreeSet<String> = list.iter().map(|i| i["title"].as_str().unwrap().to_owned()).collect();
        assert_eq!((list.len(), titles.len()), (40, 40), "one incident per group, seen from {}", g.addr);
        assert!(list.iter().all(|i| i["alertCount"] == 5), "{list:#?}");
        // A counter is not exposed before it first counts.
        beside_others +=
            metric(g, r#"alertgate_store_batches_beside_others_total{outcome="committed"}"#).await.unwrap_or(0.0);
    }
    // The counts above held with re-sends applied beside each other.
    assert!(beside_others > 0.0, "no batch of re-sends ran beside the other gateway's");
}

#[tokio::test]
async fn a_batch_tried_beside_others_that_meets_a_new_alert_is_applied_again_alone() {
    let hook = Receiver::default();
    let url = hook.start().await;
    let c = cluster(1, &url, None);
    let g = &c.gateways[0];
    assert_eq!(push(g, &[alert("LoadSteady", "a")]).await, 200);
    // Each request holds an alert sent again and a new one: tried beside
    // other gateways' batches (the lock shared), it meets the new alert,
    // is rolled back and applied again holding the lock alone. (A batch
    // that looks for dead gateways' leases holds it alone from the start,
    // every 2 s: hence several requests.)
    let mut sent = 1;
    let retried = r#"alertgate_store_batches_beside_others_total{outcome="retried_alone"}"#;
    loop {
        sent += 1;
        assert_eq!(push(g, &[alert("LoadSteady", "a"), alert("LoadNew", &format!("h{sent}"))]).await, 200);
        if metric(g, retried).await.is_some_and(|n| n > 0.0) {
            break;
        }
        assert!(sent < 50, "no batch was tried beside others and applied again alone");
    }
    let occurrences = c.db.column("SELECT occurrences::text FROM alerts WHERE labels LIKE '%LoadSteady%'");
    assert_eq!(occurrences, [Some(sent.to_string())], "every copy counted once, none by the try rolled back");
    let news = stored_alertnames(&c.db);
    assert!(news.contains("LoadNew") && news.contains("LoadSteady"), "{news:?}");
    let stored_new = c.db.column("SELECT count(*)::text FROM alerts WHERE labels LIKE '%LoadNew%'");
    assert_eq!(stored_new, [Some((sent - 1).to_string())], "each new alert stored once");
    let list = incidents(g).await;
    let load_new = list.iter().find(|i| i["title"] == "LoadNew").expect("the new alerts' incident");
    assert_eq!(load_new["alertCount"], sent - 1, "{load_new:#}");
}

/// The pid in a gateway's name (`HOST-PID-RANDOM`).
fn pid_of(gateway_name: &str) -> Option<u32> {
    gateway_name.rsplit('-').nth(1)?.parse().ok()
}

#[tokio::test]
async fn a_gateway_killed_under_load_loses_nothing_and_the_survivor_pages_and_breaches_once() {
    let hook = Receiver::default();
    let url = hook.start().await;
    let mut c = cluster(2, &url, Some(t0()));
    let mut accepted: BTreeSet<String> = BTreeSet::new();
    for cycle in 0..3 {
        // Load at both gateways; the first is killed while it runs.
        let mut tasks = Vec::new();
        for sender in 0..4 {
            let g_url = c.gateways[sender % 2].url("/api/v2/alerts");
            tasks.push(tokio::spawn(async move {
                let mut ok = Vec::new();
                for n in 0..60 {
                    let name = format!("Load{cycle}x{sender}x{n}");
                    if send(&g_url, &[alert(&name, "h")], Duration::from_secs(10)).await == Some(200) {
                        ok.push(name);
                    }
                }
                ok
            }));
        }
        // Kill once this cycle's load is under way (some of it stored).
        let this_cycle = format!("SELECT count(*)::text FROM alerts WHERE labels LIKE '%Load{cycle}x%'");
        wait_for(Duration::from_secs(30), "load under way", || async {
            let n: u32 = c.db.column(&this_cycle)[0].as_deref().unwrap_or("0").parse().unwrap();
            (n > 20).then_some(())
        })
        .await;
        c.gateways[0].kill9();
        for t in tasks {
            accepted.extend(t.await.unwrap());
        }
        c.gateways[0].restart();
    }
    let stored = stored_alertnames(&c.db);
    let lost: Vec<&String> = accepted.difference(&stored).collect();
    assert!(lost.is_empty(), "answered 200 but not stored: {lost:?}");
    assert!(accepted.len() > 3 * 60, "most of the load was accepted: {}", accepted.len());

    // A page whose delivery hangs: the gateway holding its lease dies.
    hook.hang.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(push(&c.gateways[0], &[alert("PaymentsDown", "pay1")]).await, 200);
    wait_for(Duration::from_secs(30), "a delivery attempt", || async {
        (*hook.seen.lock().unwrap() > 0).then_some(())
    })
    .await;
    let holder = c.db.column("SELECT leased_by FROM notifications WHERE leased_by IS NOT NULL");
    let holder = holder.first().cloned().flatten().expect("a leased notification");
    let dead = c
        .gateways
        .iter()
        .position(|g| Some(g.child.id()) == pid_of(&holder))
        .unwrap_or_else(|| panic!("{holder} is none of the gateways"));
    c.gateways[dead].kill9();
    hook.hang.store(false, std::sync::atomic::Ordering::SeqCst);
    let survivor = &c.gateways[1 - dead];
    // The dead gateway's presence lock went with its connection: the
    // survivor hands its lease back (at the latest the lease, 30 s, runs
    // out). Time passes on the survivor's clock: the P1's respond target
    // (30 min) passes its warning (15 min) and its breach. Each step waits
    // for what it sends, as a delivery takes real time and the clock would
    // not jump.
    for (to, event) in [(15, "sla.warning"), (30, "sla.breached")] {
        survivor.advance_to(t0() + SignedDuration::from_mins(to)).await;
        wait_for(Duration::from_secs(30), event, || async {
            let events = hook.events();
            (events.iter().any(|e| e == "incident.triggered") && events.iter().any(|e| e == event)).then_some(())
        })
        .await;
        // ...and for its outcome to be recorded: the lease holds until then.
        wait_for(Duration::from_secs(30), "the deliveries recorded", || async {
            let (_, body) = get(&survivor.url("/api/v1/notifications?state=pending")).await;
            body["notifications"].as_array().is_some_and(Vec::is_empty).then_some(())
        })
        .await;
    }
    let want = ["incident.triggered", "sla.breached", "sla.warning"];
    let list = incidents(survivor).await;
    let page = list.iter().find(|i| i["title"] == "PaymentsDown").expect("the page's incident");
    let (status, detail) = get(&survivor.url(&format!("/api/v1/incidents/{}", page["id"]))).await;
    assert_eq!(status, 200, "{detail}");
    let breaches = detail["timeline"].as_array().unwrap().iter().filter(|e| e["kind"] == "sla_breached").count();
    assert_eq!(breaches, 1, "{detail:#}");
    let sent = hook.by_key();
    let log: Vec<(String, Value)> =
        hook.answered.lock().unwrap().iter().map(|(k, b)| (k.clone(), b["event"].clone())).collect();
    assert!(sent.values().all(|n| *n == 1), "each delivery once: {log:#?}");
    let mut events = hook.events();
    events.sort();
    assert_eq!(events, want, "{sent:#?}");
}

/// A TCP proxy in front of the PostgreSQL server that can be cut: every
/// connection through it closed, new ones refused, as when the server is
/// restarted or the network between gateway and database fails.
#[derive(Clone)]
struct Proxy {
    port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    /// Bumped by every cut: connections of an older generation close.
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy {
            port: listener.local_addr().unwrap().port(),
            up: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            generation: Arc::new(tokio::sync::watch::Sender::new(0)),
        };
        let me = proxy.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                if !me.up.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let target = target.clone();
                let mut cut = me.generation.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        proxy
    }

    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

// The proxy runs on the test's runtime while the gateway starts (which
// blocks the test's own thread): a second worker serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_database_is_away_ingest_answers_503_and_recovers_by_itself() {
    let db = Database::create();
    let url: reqwest::Url = db.url.parse().unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let proxy = Proxy::start(target).await;
    let mut through = url.clone();
    through.set_host(Some("127.0.0.1")).unwrap();
    through.set_port(Some(proxy.port)).unwrap();
    let g = Gateway::start_with(Options { database_url: Some(through.to_string()), ..Default::default() });
    outage_under_load(&g, &db.url, || proxy.cut(), || proxy.restore()).await;
}

/// The server itself stopped (fast shutdown: every session ended) and
/// started again, a server of the test's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_restarted_under_load_gives_503s_then_full_recovery() {
    let server = common::pg::PrivateServer::start();
    let g = Gateway::start_with(Options { database_url: Some(server.url.clone()), ..Default::default() });
    outage_under_load(&g, &server.url, || server.stop(), || server.start_again()).await;
}

/// A sender keeps sending, one new alert per request, while `cut` takes
/// the database away and `restore` brings it back: only 200s and 503s,
/// `/readyz` failing meanwhile and passing after, every alert answered
/// 200 stored, and the gateway taking alerts again by itself.
async fn outage_under_load(g: &Gateway, db_url: &str, cut: impl FnOnce(), restore: impl FnOnce()) {
    let sending = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sender = {
        let (url, sending) = (g.url("/api/v2/alerts"), sending.clone());
        tokio::spawn(async move {
            let mut answers: Vec<(String, u16)> = Vec::new();
            let mut n = 0;
            while sending.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let name = format!("Outage{n}");
                let status = send(&url, &[alert(&name, "h")], Duration::from_secs(20)).await.unwrap_or(0);
                answers.push((name, status));
            }
            answers
        })
    };
    let ready = || async { get(&g.url("/readyz")).await.0 };
    wait_for(Duration::from_secs(30), "alerts accepted before the outage", || async {
        let count = common::pg::column_at(db_url, "SELECT count(*)::text FROM alerts");
        (count[0].as_deref().unwrap_or("0").parse::<u32>().unwrap() > 20).then_some(())
    })
    .await;
    cut();
    wait_for(Duration::from_secs(30), "/readyz failing while the database is away", || async {
        (ready().await == 503).then_some(())
    })
    .await;
    let (status, body) = post(&g.url("/api/v2/alerts"), &json!([alert("DuringOutage", "h")]).to_string()).await;
    assert_eq!(status, 503, "senders are told to retry: {body}");
    restore();
    wait_for(Duration::from_secs(30), "/readyz passing again", || async { (ready().await == 200).then_some(()) }).await;
    let (status, body) = post(&g.url("/api/v2/alerts"), &json!([alert("AfterOutage", "h")]).to_string()).await;
    assert_eq!(status, 200, "{body}");
    sending.store(false, std::sync::atomic::Ordering::SeqCst);
    let answers = sender.await.unwrap();

    let stored = alertnames_at(db_url);
    let accepted: Vec<&String> = answers.iter().filter(|(_, s)| *s == 200).map(|(n, _)| n).collect();
    let lost: Vec<&&String> = accepted.iter().filter(|n| !stored.contains(n.as_str())).collect();
    assert!(lost.is_empty(), "answered 200 but not stored: {lost:?}");
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for (_, s) in &answers {
        *statuses.entry(*s).or_insert(0) += 1;
    }
    assert!(statuses.keys().all(|s| [200, 503].contains(s)), "only 200 or 503, never a 500: {statuses:?}");
    assert!(statuses.get(&503).is_some_and(|n| *n > 0), "the outage was seen: {statuses:?}");
    assert!(stored.contains("AfterOutage") && !stored.contains("DuringOutage"), "{stored:?}");
}

/// Two real Alertmanagers (as an HA pair without gossip would) each send
/// every group to both gateways: four copies of every alert arrive.
#[tokio::test]
async fn two_alertmanagers_delivering_to_both_gateways_make_one_incident_per_group_and_page_once() {
    let hook = Receiver::default();
    let url = hook.start().await;
    let c = cluster(2, &url, None);
    let webhooks: String = c
        .gateways
        .iter()
        .map(|g| format!("      - url: {}\n        send_resolved: true\n", g.url("/api/v1/ingest/alertmanager")))
        .collect();
    let config = format!(
        "route:\n  receiver: gateways\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  \
         repeat_interval: 1h\nreceivers:\n  - name: gateways\n    webhook_configs:\n{webhooks}"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut ams = Vec::new();
    for i in 0..2 {
        ams.push(common::start_alertmanager(dir.path(), &format!("am{i}"), &config).await);
    }
    // The same four alerts in two groups to both Alertmanagers, as the
    // Prometheus servers of an HA pair send them.
    let now = common::wall_clock();
    let alerts: Vec<Value> = [("DiskFull", "db1"), ("DiskFull", "db2"), ("ApiDown", "api1"), ("ApiDown", "api2")]
        .iter()
        .map(|(name, instance)| {
            json!({"labels": {"alertname": name, "instance": instance},
                   "startsAt": (now - SignedDuration::from_mins(1)).to_string(),
                   "endsAt": (now + SignedDuration::from_hours(1)).to_string()})
        })
        .collect();
    for (_, addr) in &ams {
        let (status, body) =
            post(&format!("http://{addr}/api/v2/alerts"), &Value::Array(alerts.clone()).to_string()).await;
        assert_eq!(status, 200, "{body}");
    }
    // Every copy arrives: 2 Alertmanagers x 2 gateways of each alert.
    let db = &c.db;
    wait_for(Duration::from_secs(60), "four copies of every alert", || async {
        let copies = db.column("SELECT min(occurrences)::text FROM alerts");
        let stored = db.column("SELECT count(*)::text FROM alerts");
        (stored[0].as_deref() == Some("4") && copies[0].as_deref().is_some_and(|n| n.parse::<u32>().unwrap() >= 4))
            .then_some(())
    })
    .await;
    // One incident per group, whichever gateway is asked.
    for g in &c.gateways {
        let list = incidents(g).await;
        let mut titles: Vec<&str> = list.iter().map(|i| i["title"].as_str().unwrap()).collect();
        titles.sort();
        assert_eq!(titles, ["ApiDown", "DiskFull"], "{list:#?}");
        assert!(list.iter().all(|i| i["alertCount"] == 2 && i["firingCount"] == 2), "{list:#?}");
    }
    // Each page once: the outbox drained, and the receiver saw each
    // notification's key once.
    wait_for(Duration::from_secs(60), "both pages delivered and recorded", || async {
        let pending = db.column("SELECT count(*)::text FROM notifications WHERE state <> 'sent'");
        (hook.events().len() >= 2 && pending[0].as_deref() == Some("0")).then_some(())
    })
    .await;
    let sent = hook.by_key();
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert!(sent.values().all(|n| *n == 1), "{sent:#?}");
    assert_eq!(hook.events(), ["incident.triggered", "incident.triggered"]);
    assert_eq!(db.column("SELECT count(*)::text FROM notifications"), [Some("2".to_owned())]);
}
