//! The command line against a running gateway: `silence add|query|expire`
//! in amtool's syntax, `incidents assign` and `incidents priority`, the
//! MUTED column and `--muted`/`--active` of `alerts list`, and `incidents
//! list` showing open incidents unless told `--state all`.
mod common;

use std::process::Command;
use std::time::Duration;

use common::{BIN, Gateway, get, post, run_to_exit};
use serde_json::{Value, json};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {:?}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Run the binary against `g` as `alice`, off the async runtime, with no
/// other `ALERTGATE_*` variable inherited.
async fn cli(g: &Gateway, args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let url = format!("http://{}", g.addr);
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(BIN);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ALERTGATE_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("ALERTGATE_URL", url).env("ALERTGATE_ACTOR", "alice").args(&args);
        let (status, stdout, stderr) = run_to_exit(&mut cmd, Duration::from_secs(60));
        Run { code: status.code(), stdout, stderr }
    })
    .await
    .unwrap()
}

/// The data rows of a table (without its header), split on whitespace.
fn table_rows(stdout: &str) -> Vec<Vec<String>> {
    stdout.lines().skip(1).map(|l| l.split_whitespace().map(str::to_owned).collect()).collect()
}

async fn silences(g: &Gateway, query: &str) -> Vec<Value> {
    let (status, body) = get(&g.url(&format!("/api/v1/silences{query}"))).await;
    assert_eq!(status, 200, "{body}");
    body["silences"].as_array().unwrap().clone()
}

async fn push(g: &Gateway, alerts: Value) {
    let (status, body) = post(&g.url("/api/v2/alerts"), &alerts.to_string()).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_from_the_command_line() {
    let g = Gateway::start();

    // add: amtool's matcher syntax, --duration, the actor as author.
    let run = cli(
        &g,
        &["silence", "add", "alertname=Mem", "severity=~\"crit.*\"", "--duration", "2h", "--comment", "db maintenance"],
    )
    .await;
    assert!(run.ok(), "{run}");
    let mem_id: i64 = run.stdout.trim().parse().unwrap_or_else(|_| panic!("an id: {run}"));
    let list = silences(&g, "").await;
    assert_eq!(list.len(), 1);
    let s = &list[0];
    assert_eq!(s["id"], mem_id);
    assert_eq!(s["matchers"], json!(["alertname=\"Mem\"", "severity=~\"crit.*\""]));
    assert_eq!((s["createdBy"].as_str(), s["comment"].as_str()), (Some("alice"), Some("db maintenance")));
    let starts: jiff::Timestamp = s["startsAt"].as_str().unwrap().parse().unwrap();
    let ends: jiff::Timestamp = s["endsAt"].as_str().unwrap().parse().unwrap();
    let length = ends.duration_since(starts).as_secs_f64();
    assert!((7199.0..=7201.0).contains(&length), "two hours: {length} s");

    // --end and --author; a bare first word is the alertname.
    let end = (common::wall_clock() + jiff::SignedDuration::from_hours(5)).round(jiff::Unit::Second).unwrap();
    let run =
        cli(&g, &["silence", "add", "Net", "job=edge", "--end", &end.to_string(), "--author", "bob", "-c", "cable"])
            .await;
    assert!(run.ok(), "{run}");
    let net_id: i64 = run.stdout.trim().parse().unwrap();
    let net = silences(&g, "").await.into_iter().find(|s| s["id"] == net_id).unwrap();
    assert_eq!(net["matchers"], json!(["alertname=\"Net\"", "job=\"edge\""]));
    assert_eq!(net["createdBy"], "bob");
    assert_eq!(net["endsAt"].as_str().unwrap().parse::<jiff::Timestamp>().unwrap(), end);

    // A silenced alert is muted when it fires: the MUTED column, --muted, --active.
    push(
        &g,
        json!([
            {"labels": {"alertname": "Mem", "severity": "critical", "instance": "db-1"}},
            {"labels": {"alertname": "Cpu", "severity": "warning", "instance": "db-1"}},
        ]),
    )
    .await;
    let run = cli(&g, &["alerts", "list"]).await;
    assert!(run.ok(), "{run}");
    assert!(run.stdout.lines().next().unwrap().contains("MUTED"), "{run}");
    let mem_row = run.stdout.lines().find(|l| l.contains("Mem")).unwrap();
    assert!(mem_row.contains(&format!("silence:{mem_id}")), "{run}");
    let cpu_row = run.stdout.lines().find(|l| l.contains("Cpu")).unwrap();
    assert!(!cpu_row.contains("silence:"), "{run}");
    let run = cli(&g, &["alerts", "list", "--muted"]).await;
    assert!(run.ok(), "{run}");
    let rows = table_rows(&run.stdout);
    assert_eq!(rows.len(), 1, "{run}");
    assert!(rows[0].contains(&"Mem".to_string()), "{run}");
    let run = cli(&g, &["alerts", "list", "--active"]).await;
    assert!(run.ok(), "{run}");
    let rows = table_rows(&run.stdout);
    assert_eq!(rows.len(), 1, "{run}");
    assert!(rows[0].contains(&"Cpu".to_string()), "{run}");
    let run = cli(&g, &["alerts", "list", "--muted", "--active"]).await;
    assert!(!run.ok(), "--muted and --active exclude each other: {run}");

    // query: a table; with matchers, those having an equal matcher; --json.
    let run = cli(&g, &["silence", "query"]).await;
    assert!(run.ok(), "{run}");
    assert!(run.stdout.lines().next().unwrap().starts_with("ID"), "{run}");
    let ids: Vec<String> = table_rows(&run.stdout).into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(ids, [net_id.to_string(), mem_id.to_string()], "{run}");
    let run = cli(&g, &["silence", "query", "Mem"]).await;
    assert!(run.ok(), "{run}");
    let ids: Vec<String> = table_rows(&run.stdout).into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(ids, [mem_id.to_string()], "{run}");
    let run = cli(&g, &["silence", "query", "severity=~crit.*", "--json"]).await;
    assert!(run.ok(), "{run}");
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["silences"].as_array().unwrap().len(), 1, "{run}");
    assert_eq!(v["silences"][0]["id"], mem_id);

    // expire: alertgate's number and Alertmanager's UUID alike.
    let uuid = format!("00000000-0000-4000-8000-{net_id:012x}");
    let run = cli(&g, &["silence", "expire", &mem_id.to_string(), &uuid]).await;
    assert!(run.ok(), "{run}");
    assert!(silences(&g, "").await.is_empty(), "both expired");
    let run = cli(&g, &["silence", "query"]).await;
    assert_eq!(table_rows(&run.stdout).len(), 0, "{run}");
    let run = cli(&g, &["silence", "query", "--expired"]).await;
    assert!(run.ok(), "{run}");
    let rows = table_rows(&run.stdout);
    assert_eq!(rows.len(), 2, "{run}");
    assert!(rows.iter().all(|r| r[1] == "expired"), "{run}");
    // The alert it muted opens its incident now.
    let (_, incidents) = get(&g.url("/api/v1/incidents?state=open")).await;
    let titles: Vec<&str> =
        incidents["incidents"].as_array().unwrap().iter().filter_map(|i| i["title"].as_str()).collect();
    assert!(titles.iter().any(|t| t.contains("Mem")), "{titles:?}");

    // Mistakes are named; nothing is stored.
    for (args, want) in [
        (vec!["silence", "add", "job=\"x"], "unterminated"),
        (vec!["silence", "add", "job=~.*", "-d", "1h"], "match every alert"),
        (vec!["silence", "add", "job=x", "-d", "soon"], "--duration"),
        (vec!["silence", "add", "job=x", "-d", "1h", "--end", "2030-01-01T00:00:00Z"], "cannot be used with"),
        (vec!["silence", "expire", "999"], "404"),
        (vec!["silence", "expire", "not-an-id"], "not a silence id"),
    ] {
        let run = cli(&g, &args).await;
        assert!(!run.ok(), "{args:?}: {run}");
        assert!(run.stderr.contains(want), "{args:?} should say {want:?}: {run}");
    }
    assert_eq!(silences(&g, "?expired=true").await.len(), 2, "nothing stored by the mistakes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assign_priority_and_open_incidents_from_the_command_line() {
    let g = Gateway::start();
    push(
        &g,
        json!([
            {"labels": {"alertname": "Disk", "severity": "critical", "instance": "db-1"}},
            {"labels": {"alertname": "Cpu", "severity": "warning", "instance": "db-2"}},
        ]),
    )
    .await;
    let run = cli(&g, &["incidents", "list"]).await;
    assert!(run.ok(), "{run}");
    let rows = table_rows(&run.stdout);
    assert_eq!(rows.len(), 2, "{run}");
    let id_of = |title: &str| rows.iter().find(|r| r.last().is_some_and(|t| t == title)).unwrap()[0].clone();
    let (disk, cpu) = (id_of("Disk"), id_of("Cpu"));

    let run = cli(&g, &["incidents", "assign", &disk, "bob"]).await;
    assert!(run.ok(), "{run}");
    assert!(run.stdout.contains("assignee bob"), "{run}");
    let run = cli(&g, &["incidents", "priority", &disk, "p1", "-m", "customer facing"]).await;
    assert!(run.ok(), "{run}");
    assert!(run.stdout.contains("[P1]"), "{run}");
    let run = cli(&g, &["incidents", "assign", &disk, "--unassign"]).await;
    assert!(run.ok(), "{run}");
    assert!(run.stdout.contains("assignee -"), "{run}");
    let run = cli(&g, &["incidents", "assign", &disk]).await;
    assert!(!run.ok(), "an assignee or --unassign: {run}");
    let run = cli(&g, &["incidents", "priority", &disk, "P9"]).await;
    assert!(!run.ok() && run.stderr.contains("P1 to P5"), "{run}");

    let (_, d) = get(&g.url(&format!("/api/v1/incidents/{disk}"))).await;
    assert_eq!((d["priority"].as_str(), d["assignee"].as_str()), (Some("P1"), None));
    let events: Vec<(String, String, Value)> = d["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap().to_owned(), e["actor"].as_str().unwrap().to_owned(), e["data"].clone()))
        .collect();
    let assigned: Vec<&Value> = events.iter().filter(|e| e.0 == "assigned" && e.1 == "alice").map(|e| &e.2).collect();
    assert_eq!(assigned, [&json!({"before": null, "after": "bob"}), &json!({"before": "bob", "after": null})]);
    let prio = events.iter().find(|e| e.0 == "priority_changed").unwrap();
    assert_eq!(
        (prio.1.as_str(), &prio.2["comment"], &prio.2["after"]),
        ("alice", &json!("customer facing"), &json!("P1"))
    );

    // `incidents list` shows what is not resolved or closed; --state all everything.
    let run = cli(&g, &["incidents", "resolve", &cpu, "-m", "fixed"]).await;
    assert!(run.ok(), "{run}");
    let run = cli(&g, &["incidents", "list"]).await;
    let ids: Vec<String> = table_rows(&run.stdout).into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(ids, [disk.as_str()], "{run}");
    let run = cli(&g, &["incidents", "list", "--state", "open"]).await;
    assert_eq!(table_rows(&run.stdout).len(), 1, "{run}");
    let run = cli(&g, &["incidents", "list", "--state", "all"]).await;
    assert_eq!(table_rows(&run.stdout).len(), 2, "{run}");
    let run = cli(&g, &["incidents", "list", "--state", "resolved"]).await;
    let ids: Vec<String> = table_rows(&run.stdout).into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(ids, [cpu.as_str()], "{run}");
    // The API takes `open` too, alone or with other states.
    let (status, page) = get(&g.url("/api/v1/incidents?state=open")).await;
    assert_eq!(status, 200);
    assert_eq!(page["incidents"].as_array().unwrap().len(), 1);
    let (_, page) = get(&g.url("/api/v1/incidents?state=open,resolved")).await;
    assert_eq!(page["incidents"].as_array().unwrap().len(), 2);
    let (status, page) = get(&g.url("/api/v1/incidents?state=opened")).await;
    assert_eq!(status, 400, "{page}");
    assert!(page["error"].as_str().unwrap().contains("open"), "{page}");
}
