//! The PostgreSQL store's tools, against the local PostgreSQL server
//! (`ALERTGATE_TEST_POSTGRES`, default the local server as user postgres),
//! each test in a database of its own: `alertgate migrate` applies the
//! schema once, also from several processes at once, and never shows a
//! password; `alertgate store copy` moves an embedded database's history
//! into PostgreSQL; the URL may come from a file.
mod common;

use std::process::Command;
use std::time::Duration;

use common::pg::Database;
use common::{BIN, Gateway, Options, get, post, run_to_exit};
use serde_json::{Value, json};

/// The first column of the first row of `sql`, as a number.
fn query_one(db: &Database, sql: &str) -> i64 {
    db.column(sql)[0].as_deref().unwrap_or("0").parse().unwrap()
}

fn migrate(url: &str) -> (bool, String, String) {
    let (status, out, err) =
        run_to_exit(Command::new(BIN).args(["migrate", "--database-url", url]), Duration::from_secs(60));
    (status.success(), out, err)
}

#[test]
fn migrate_applies_the_schema_once() {
    let db = Database::create();
    let (ok, out, err) = migrate(&db.url);
    assert!(ok, "{err}");
    let version = alertgate::store::SCHEMA_VERSION;
    assert!(out.contains(&format!("schema version {version} ({version} migration(s) applied)")), "{out}");
    let (ok, out, err) = migrate(&db.url);
    assert!(ok, "{err}");
    assert!(out.contains("(0 migration(s) applied)"), "{out}");
    assert_eq!(query_one(&db, "SELECT max(version) FROM schema_version"), version as i64);
    assert_eq!(query_one(&db, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'incidents'"), 1);
}

#[test]
fn gateways_migrating_at_once_apply_each_migration_once() {
    let db = Database::create();
    let runs: Vec<_> = (0..3)
        .map(|_| {
            Command::new(BIN)
                .args(["migrate", "--database-url", &db.url])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut applied = 0;
    for run in runs {
        let out = run.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        let n: usize = stdout.split('(').nth(1).and_then(|s| s.split(' ').next()).unwrap().parse().unwrap();
        applied += n;
    }
    assert_eq!(applied, alertgate::store::SCHEMA_VERSION, "each migration exactly once across the three");
    assert_eq!(query_one(&db, "SELECT count(*) FROM schema_version"), 1);
}

#[test]
fn a_database_url_never_shows_its_password() {
    // Nothing listens on port 1: the connection is refused.
    let (ok, out, err) = migrate("postgres://alertgate:s3cret-pw@127.0.0.1:1/alertgate");
    assert!(!ok, "{out}");
    assert!(err.contains("cannot connect to postgres://alertgate:***@127.0.0.1:1/alertgate"), "{err}");
    assert!(!err.contains("s3cret-pw") && !out.contains("s3cret-pw"), "{err}");
}

async fn ingest(g: &Gateway, alerts: Value) {
    let (status, body) = post(&g.url("/api/v2/alerts"), &alerts.to_string()).await;
    assert_eq!(status, 200, "{body}");
}

async fn listed(g: &Gateway, path: &str, key: &str) -> Vec<Value> {
    let (status, body) = get(&g.url(path)).await;
    assert_eq!(status, 200, "{body}");
    let list = if key.is_empty() { &body } else { &body[key] };
    list.as_array().unwrap_or_else(|| panic!("{path}: {body}")).clone()
}

/// An incident as both databases must show it (the timeline by kind).
fn summary(i: &Value) -> Value {
    json!({"id": i["id"], "title": i["title"], "state": i["state"], "priority": i["priority"],
           "alertCount": i["alertCount"], "assignee": i["assignee"]})
}

#[tokio::test]
async fn store_copy_moves_an_embedded_history_into_postgresql() {
    // History on SQLite (an empty URL: embedded, whatever the suite runs
    // on): incidents, an acknowledgement, a silence.
    let embedded = Gateway::start_with(Options { database_url: Some(String::new()), ..Default::default() });
    let data_dir = embedded.dir.join("data");
    ingest(
        &embedded,
        json!([{"labels": {"alertname": "DiskFull", "instance": "db1"}},
                             {"labels": {"alertname": "CpuHot", "instance": "web1"}}]),
    )
    .await;
    let first = listed(&embedded, "/api/v1/incidents", "incidents").await;
    let id = first.iter().find(|i| i["title"].as_str().unwrap().starts_with("DiskFull")).unwrap()["id"].clone();
    let (status, body) = post(
        &embedded.url(&format!("/api/v1/incidents/{id}/acknowledge")),
        &json!({"actor": "carol", "comment": "on it"}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let now = common::wall_clock();
    let (status, silence) = post(
        &embedded.url("/api/v2/silences"),
        &json!({"matchers": [{"name": "alertname", "value": "Noise", "isRegex": false, "isEqual": true}],
                "startsAt": now.to_string(), "endsAt": (now + jiff::SignedDuration::from_hours(2)).to_string(),
                "createdBy": "carol", "comment": "known noise"})
        .to_string(),
    )
    .await;
    assert_eq!(status, 200, "{silence}");
    // An incident merged into a later one: the copy writes the earlier first.
    ingest(&embedded, json!([{"labels": {"alertname": "CpuHotAgain", "instance": "web1"}}])).await;
    let all = listed(&embedded, "/api/v1/incidents", "incidents").await;
    let id_of = |name: &str| {
        let titled = |t: &str| t == name || t.starts_with(&format!("{name} "));
        all.iter().find(|i| titled(i["title"].as_str().unwrap())).unwrap_or_else(|| panic!("{name}: {all:#?}"))["id"]
            .clone()
    };
    let (earlier, later) = (id_of("CpuHot"), id_of("CpuHotAgain"));
    assert!(earlier.as_i64() < later.as_i64(), "{all:#?}");
    let (status, body) = post(
        &embedded.url(&format!("/api/v1/incidents/{earlier}/merge")),
        &json!({"into": later, "comment": "same host", "actor": "carol"}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let before = listed(&embedded, "/api/v1/incidents", "incidents").await;
    let silences_before = listed(&embedded, "/api/v2/silences", "").await;
    let (_, detail_before) = get(&embedded.url(&format!("/api/v1/incidents/{id}"))).await;
    // The copy is taken from a snapshot, with the gateway still running.
    let db = Database::create();
    let (status, out, err) = run_to_exit(
        Command::new(BIN).args(["store", "copy", "--from", &format!("sqlite:{}", data_dir.display()), "--to", &db.url]),
        Duration::from_secs(120),
    );
    assert!(status.success(), "{out}{err}");
    assert!(out.contains("every count checked"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("incidents") && l.trim_end().ends_with(" 3")), "{out}");
    // A second copy into the same database is refused: it holds data now.
    let (status, out, err) = run_to_exit(
        Command::new(BIN).args(["store", "copy", "--from", &data_dir.display().to_string(), "--to", &db.url]),
        Duration::from_secs(120),
    );
    assert!(!status.success(), "{out}");
    assert!(err.contains("already holds data"), "{err}");
    drop(embedded);

    let moved = Gateway::start_with(Options { database_url: Some(db.url.clone()), ..Default::default() });
    let after = listed(&moved, "/api/v1/incidents", "incidents").await;
    assert_eq!(after.iter().map(summary).collect::<Vec<_>>(), before.iter().map(summary).collect::<Vec<_>>());
    let (_, detail_after) = get(&moved.url(&format!("/api/v1/incidents/{id}"))).await;
    assert_eq!(detail_after["timeline"], detail_before["timeline"], "the timeline moves whole");
    let (_, merged) = get(&moved.url(&format!("/api/v1/incidents/{earlier}"))).await;
    assert_eq!(merged["mergedInto"], later, "{merged:#}");
    // Silences keep their ids in Alertmanager's API (amtool finds them).
    assert_eq!(listed(&moved, "/api/v2/silences", "").await, silences_before);
    // New rows continue after the copied ones.
    ingest(&moved, json!([{"labels": {"alertname": "NewAfterMove", "instance": "x"}}])).await;
    let newest = listed(&moved, "/api/v1/incidents", "incidents").await;
    let max_before = before.iter().map(|i| i["id"].as_i64().unwrap()).max().unwrap();
    assert_eq!(newest[0]["title"].as_str().map(|t| t.starts_with("NewAfterMove")), Some(true), "{newest:#?}");
    assert_eq!(newest[0]["id"].as_i64(), Some(max_before + 1));
}

#[tokio::test]
async fn the_database_url_may_come_from_a_file_and_is_never_logged() {
    let db = Database::create();
    // Trust authentication takes any password: this one must never show.
    let with_password = db.url.replacen("postgres://postgres@", "postgres://postgres:pw-never-shown@", 1);
    assert_ne!(with_password, db.url, "the test server's URL names the user postgres");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("db-url"), format!("{with_password}\n")).unwrap();
    let g = Gateway::start_with(Options {
        config: Some(format!("store: {{url_file: {}}}\n", dir.path().join("db-url").display())),
        database_url: Some(String::new()),
        ..Default::default()
    });
    ingest(&g, json!([{"labels": {"alertname": "FromFile", "instance": "x"}}])).await;
    assert_eq!(query_one(&db, "SELECT count(*) FROM alerts"), 1, "stored in the file's database");
    let log = g.stderr();
    assert!(log.contains("database open") && log.contains("postgres://postgres:***@"), "{log}");
    assert!(!log.contains("pw-never-shown"), "{log}");
    // A URL of another database is refused at start, named, password hidden.
    let (status, out, err) = run_to_exit(
        Command::new(BIN).args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "mysql://root:pw-never-shown@db/x",
        ]),
        Duration::from_secs(30),
    );
    assert!(!status.success(), "{out}");
    assert!(err.contains("--database-url: mysql://root:***@db/x is not a PostgreSQL URL"), "{err}");
    assert!(!err.contains("pw-never-shown"), "{err}");
}
