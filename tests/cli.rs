//! The command line: `--version`, `check`, and the `alerts` client commands
//! against a running gateway.
mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::{BIN, Gateway, all_alerts, fixture, post, repo_path, run_to_exit};
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

/// Run the binary to exit (at most 60 s) with no `ALERTGATE_*` variable
/// inherited, plus `env`.
fn alertgate(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ALERTGATE_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied()).args(args);
    let (status, stdout, stderr) = run_to_exit(&mut cmd, Duration::from_secs(60));
    Run { code: status.code(), stdout, stderr }
}

/// The same, off the async runtime.
async fn alertgate_async(args: &[&str], env: &[(&str, &str)]) -> Run {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        alertgate(&args, &env)
    })
    .await
    .unwrap()
}

/// A table printed by `alerts list`: the header and, per row, fingerprint → status.
struct Table {
    header: String,
    rows: BTreeMap<String, String>,
    row_count: usize,
    more: Option<String>,
}

fn table(stdout: &str) -> Table {
    let mut lines = stdout.lines();
    let header = lines.next().expect("a header line").to_string();
    let mut rows = BTreeMap::new();
    let mut row_count = 0;
    let mut more = None;
    for line in lines {
        if let Some(c) = line.strip_prefix("(more: --cursor ") {
            more = Some(c.trim_end_matches(')').to_string());
            continue;
        }
        let mut cells = line.split_whitespace();
        let fp = cells.next().expect("fingerprint cell").to_string();
        let status = cells.next().expect("status cell").to_string();
        rows.insert(fp, status);
        row_count += 1;
    }
    Table { header, rows, row_count, more }
}

#[test]
fn version_is_the_crate_version() {
    let run = alertgate(&["--version"], &[]);
    assert!(run.ok(), "{run}");
    assert_eq!(run.stdout.trim(), format!("alertgate {}", env!("CARGO_PKG_VERSION")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_list_and_show_against_a_running_gateway() {
    let g = Gateway::start();
    // 2 firing alerts from Alertmanager, 3 firing and 2 resolved from Prometheus.
    let (status, body) =
        post(&g.url("/api/v1/ingest/alertmanager"), &fixture("alertmanager_webhook_firing.json")).await;
    assert_eq!(status, 200, "{body}");
    let mut push: Vec<Value> =
        (0..3).map(|i| json!({"labels": {"alertname": "CliFiring", "n": i.to_string(), "team": "ops"}})).collect();
    push.extend((0..2).map(|i| {
        json!({"labels": {"alertname": "CliResolved", "n": i.to_string()},
               "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2026-01-01T00:10:00Z"})
    }));
    let (status, body) = post(&g.url("/api/v2/alerts"), &Value::Array(push).to_string()).await;
    assert_eq!(status, 200, "{body}");
    let stored: BTreeMap<String, String> = all_alerts(&g, "")
        .await
        .iter()
        .map(|a| (a["fingerprint"].as_str().unwrap().to_string(), a["status"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(stored.len(), 7);
    let url = format!("http://{}", g.addr);

    // The table: a header and one row per alert.
    let run = alertgate_async(&["alerts", "list", "--url", &url], &[]).await;
    assert!(run.ok(), "{run}");
    let t = table(&run.stdout);
    assert!(t.header.contains("FINGERPRINT"), "{run}");
    assert!(t.header.contains("STATUS"), "{run}");
    assert_eq!(t.row_count, 7, "{run}");
    assert_eq!(t.rows, stored, "{run}");
    assert!(t.more.is_none(), "{run}");
    assert!(run.stdout.contains("team=ops"), "other labels shown: {run}");

    // --json: the API's answer.
    let run = alertgate_async(&["alerts", "list", "--url", &url, "--json"], &[]).await;
    assert!(run.ok(), "{run}");
    let page: Value = serde_json::from_str(&run.stdout).expect("JSON output");
    assert_eq!(page["alerts"].as_array().unwrap().len(), 7, "{run}");

    // Filters.
    let run = alertgate_async(&["alerts", "list", "--url", &url, "--state", "resolved"], &[]).await;
    assert!(run.ok(), "{run}");
    let t = table(&run.stdout);
    assert_eq!(t.row_count, 2, "{run}");
    assert!(t.rows.values().all(|s| s == "resolved"), "{run}");
    let run = alertgate_async(&["alerts", "list", "--url", &url, "--state", "resolved", "--json"], &[]).await;
    let page: Value = serde_json::from_str(&run.stdout).expect("JSON output");
    let alerts = page["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2, "{run}");
    assert!(alerts.iter().all(|a| a["status"] == "resolved"));
    let run = alertgate_async(&["alerts", "list", "--url", &url, "-f", r#"alertname="CliFiring""#], &[]).await;
    assert!(run.ok(), "{run}");
    assert_eq!(table(&run.stdout).row_count, 3, "{run}");
    let run = alertgate_async(&["alerts", "list", "--url", &url, "--source", "alertmanager"], &[]).await;
    assert!(run.ok(), "{run}");
    assert_eq!(table(&run.stdout).row_count, 2, "{run}");
    let run = alertgate_async(&["alerts", "list", "--url", &url, "--state", "burning"], &[]).await;
    assert!(!run.ok(), "{run}");
    assert!(run.stderr.contains("400"), "{run}");

    // Paging: --limit and the cursor it prints.
    let mut seen = BTreeMap::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let mut args = vec!["alerts", "list", "--url", &url, "--limit", "3"];
        if let Some(c) = &cursor {
            args.extend(["--cursor", c.as_str()]);
        }
        let run = alertgate_async(&args, &[]).await;
        assert!(run.ok(), "{run}");
        let t = table(&run.stdout);
        assert!(t.row_count <= 3, "{run}");
        seen.extend(t.rows);
        match t.more {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, stored);

    // The URL from the environment.
    let run = alertgate_async(&["alerts", "list"], &[("ALERTGATE_URL", &url)]).await;
    assert!(run.ok(), "{run}");
    assert_eq!(table(&run.stdout).row_count, 7, "{run}");

    // show: one alert as JSON, raw payload included.
    let fp = "6b094fb1f4f1ca1e";
    let run = alertgate_async(&["alerts", "show", fp, "--url", &url], &[]).await;
    assert!(run.ok(), "{run}");
    let a: Value = serde_json::from_str(&run.stdout).expect("JSON output");
    assert_eq!(a["fingerprint"], fp);
    assert_eq!(a["status"], "firing");
    assert_eq!(a["labels"]["alertname"], "HighLatency");
    assert_eq!(a["raw"]["fingerprint"], fp);
    let run = alertgate_async(&["alerts", "show", "0000000000000000", "--url", &url], &[]).await;
    assert!(!run.ok(), "{run}");
    assert!(run.stderr.contains("404"), "{run}");
    assert!(run.stderr.contains("0000000000000000"), "{run}");
}

#[test]
fn an_unreachable_gateway_is_a_clear_error() {
    // A port that was just free: nothing listens on it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    for args in [vec!["alerts", "list", "--url", &url], vec!["alerts", "show", "abc", "--url", &url]] {
        let run = alertgate(&args, &[]);
        assert!(!run.ok(), "{run}");
        assert_ne!(run.code, None, "exited, not killed: {run}");
        assert!(run.stderr.contains("cannot reach"), "{run}");
        assert!(run.stderr.contains(&url), "{run}");
        assert!(run.stderr.contains("connection refused"), "the cause is named: {run}");
        assert_eq!(run.stderr.lines().count(), 1, "said once: {run}");
        assert!(run.stdout.is_empty(), "{run}");
    }
}

#[test]
fn check_accepts_the_shipped_rules() {
    let rules = repo_path("rules").display().to_string();
    let run = alertgate(&["check", "--rules", &rules], &[]);
    assert!(run.ok(), "{run}");
    assert!(run.stdout.starts_with("ok"), "{run}");
    // With the example config too, and the token files it reads.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertgate.yml");
    std::fs::copy(repo_path("examples/alertgate.yml"), &config).unwrap();
    std::fs::create_dir(dir.path().join("tokens")).unwrap();
    for role in ["ingest", "viewer", "admin"] {
        std::fs::write(dir.path().join("tokens").join(role), format!("{role}-token-0123456789abcdef\n")).unwrap();
    }
    let config = config.display().to_string();
    let run = alertgate(&["check", "--rules", &rules, "--config", &config], &[]);
    assert!(run.ok(), "{run}");
    assert!(run.stdout.starts_with("ok"), "{run}");
}

#[test]
fn check_names_file_and_line_of_every_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("a.yaml"), "incident_rules: []\n").unwrap();
    std::fs::write(dir.join("b.yaml"), "incident_rules: []\ninhibit_rulez: []\n").unwrap();
    std::fs::write(dir.join("c.yml"), "# wrong type\nincident_rules:\n  - name: x\ninhibit_rules: 5\n").unwrap();
    let run = alertgate(&["check", "--rules", &dir.display().to_string()], &[]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(!run.stdout.starts_with("ok"), "{run}");
    for (file, at) in [("b.yaml", "2:1"), ("c.yml", "4:16")] {
        let at = format!("{}:{at}: ", dir.join(file).display());
        assert!(run.stdout.lines().any(|l| l.starts_with(&at)), "no line starting with {at:?}: {run}");
    }
    assert!(run.stdout.contains("inhibit_rulez"), "{run}");
    assert!(!run.stdout.contains("a.yaml"), "{run}");

    // A bad config file is reported too, with its key.
    let cfg = dir.join("alertgate.yml");
    std::fs::write(&cfg, "listen: 127.0.0.1:9797\nmax_bodyy: 1MiB\n").unwrap();
    let rules = repo_path("rules").display().to_string();
    let run = alertgate(&["check", "--rules", &rules, "--config", &cfg.display().to_string()], &[]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stdout.contains("max_bodyy"), "{run}");
    assert!(run.stdout.contains("alertgate.yml:2:1: "), "{run}");
}

#[test]
fn check_lists_every_problem_of_a_file_at_its_key_or_value() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("rules.yaml"),
        "incident_rules:
  - name: one
    matchers: ['job=\"api\"', 'severity=~\"(\"']
    group_windw: 4h
    impact: huge
  - name: two
    title: '{{ labels.alertname | shout }}'
    min_alerts: many
  - name: three
    notify: [pager, chatops]
",
    )
    .unwrap();
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("alertgate.yml");
    std::fs::write(
        &cfg,
        "listen: nowhere
max_bodyy: 1MiB
notifiers:
  - name: pager
    type: email
    smtp: {host: smtp.example.org, password_env: ALERTGATE_TEST_NO_SUCH_VARIABLE}
    from: a@example.org
    to: [b@example.org]
store: {read_connections: 0}
",
    )
    .unwrap();
    let run = alertgate(&["check", "--rules", &dir.display().to_string(), "--config", &cfg.display().to_string()], &[]);
    assert_eq!(run.code, Some(1), "{run}");
    let rules = dir.join("rules.yaml").display().to_string();
    let config = cfg.display().to_string();
    let want = [
        (format!("{rules}:3:29: rule one: matchers[1]:"), "invalid regex"),
        (format!("{rules}:4:5: rule one:"), "unknown field `group_windw`"),
        (format!("{rules}:5:13: rule one: impact:"), "huge"),
        (format!("{rules}:7:12: rule two: title:"), "unknown filter"),
        (format!("{rules}:8:17: rule two:"), "expected a non-negative number"),
        (format!("{rules}:10:21: rule three: notify:"), "no notifier \"chatops\""),
        (format!("{config}:1:9: listen:"), "nowhere"),
        (format!("{config}:2:1: "), "unknown field `max_bodyy`"),
        (format!("{config}:6:"), "ALERTGATE_TEST_NO_SUCH_VARIABLE"),
        (format!("{config}:9:"), "read_connections"),
    ];
    for (prefix, part) in &want {
        assert!(
            run.stdout.lines().any(|l| l.starts_with(prefix.as_str()) && l.contains(part)),
            "no line starting {prefix:?} with {part:?}:\n{run}"
        );
    }
    // The broken notifier is one problem: rules naming it are not reported again.
    assert!(!run.stdout.contains("no notifier \"pager\""), "{run}");
    assert_eq!(run.stdout.lines().count(), want.len(), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_commands_against_a_running_gateway() {
    let g = Gateway::start();
    let (status, _) = post(&g.url("/api/v1/ingest/alertmanager"), &fixture("alertmanager_webhook_firing.json")).await;
    assert_eq!(status, 200);
    let url = format!("http://{}", g.addr);
    let env = [("ALERTGATE_URL", url.as_str()), ("ALERTGATE_ACTOR", "carol")];

    let run = alertgate_async(&["incidents", "list"], &env).await;
    assert!(run.ok(), "{run}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("ID") && lines[0].contains("PRIO") && lines[0].contains("TITLE"), "{run}");
    assert_eq!(lines.len(), 2, "one incident: {run}");
    let id = lines[1].split_whitespace().next().unwrap().to_string();
    assert!(lines[1].contains("triggered") && lines[1].contains("2/2"), "{run}");

    let run = alertgate_async(&["incidents", "ack", &id, "-m", "on it"], &env).await;
    assert!(run.ok(), "{run}");
    assert!(run.stdout.contains("acknowledged"), "{run}");
    let run = alertgate_async(&["incidents", "note", &id, "restarted the pod"], &env).await;
    assert!(run.ok(), "{run}");
    let run = alertgate_async(&["incidents", "close", &id], &env).await;
    assert!(!run.ok(), "closing an acknowledged incident is refused: {run}");
    assert!(run.stderr.contains("409") && run.stderr.contains("acknowledged"), "{run}");
    let run = alertgate_async(&["incidents", "resolve", &id, "-m", "fixed"], &env).await;
    assert!(run.ok(), "{run}");

    let run = alertgate_async(&["incidents", "show", &id, "--json"], &env).await;
    assert!(run.ok(), "{run}");
    let d: Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(d["state"], "resolved");
    let kinds: Vec<(&str, &str)> = d["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert!(kinds.contains(&("acknowledged", "carol")), "{kinds:?}");
    assert!(kinds.contains(&("note", "carol")), "{kinds:?}");
    assert!(kinds.contains(&("resolved", "carol")), "{kinds:?}");

    let run = alertgate_async(&["incidents", "show", &id], &env).await;
    assert!(run.ok(), "{run}");
    assert!(run.stdout.contains("timeline:") && run.stdout.contains("restarted the pod"), "{run}");
    let run = alertgate_async(&["incidents", "list", "--state", "triggered"], &env).await;
    assert_eq!(run.stdout.lines().count(), 1, "only the header: {run}");
}

#[test]
fn replay_shows_rule_key_priority_and_muting() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("r.yaml"),
        r#"
incident_rules:
  - name: latency
    matchers: ['alertname="HighLatency"']
    group_by: [alertname, job]
    title: "{{ labels.alertname }} in {{ labels.job }}"
    impact: high
    urgency_from: {label: severity, map: {critical: high}}
  - name: rest
    matchers: []
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [alertname]
"#,
    )
    .unwrap();
    let payload = dir.path().join("payload.json");
    let body = json!([
        {"labels": {"alertname": "HighLatency", "job": "api", "severity": "critical"}},
        {"labels": {"alertname": "HighLatency", "job": "web", "severity": "warning"}},
        {"labels": {"alertname": "DiskFull", "severity": "warning"}}
    ]);
    std::fs::write(&payload, body.to_string()).unwrap();
    let rules = dir.path().display().to_string();
    let run = alertgate(&["replay", payload.to_str().unwrap(), "--rules", &rules, "--json"], &[]);
    assert!(run.ok(), "{run}");
    let rows: Vec<Value> = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(rows.len(), 3, "{run}");
    assert_eq!(rows[0]["rule"], "latency");
    assert_eq!(rows[0]["priority"], "P1");
    assert_eq!(rows[0]["title"], "HighLatency in api");
    assert_eq!(rows[0]["groupKey"], r#"latency{alertname="HighLatency",job="api"}"#);
    assert_eq!(rows[0]["mutedBy"], Value::Null);
    assert_eq!(rows[1]["mutedBy"], "inhibited", "the critical alert inhibits the warning of the same alertname");
    assert_eq!(rows[2]["rule"], "rest");
    assert_eq!(rows[2]["mutedBy"], Value::Null);
    // The table form, from Alertmanager's webhook format (detected).
    let run = alertgate(
        &["replay", repo_path("tests/fixtures/alertmanager_webhook_firing.json").to_str().unwrap(), "--rules", &rules],
        &[],
    );
    assert!(run.ok(), "{run}");
    assert!(run.stdout.lines().next().unwrap().contains("GROUP KEY"), "{run}");
    assert_eq!(run.stdout.lines().filter(|l| l.contains("latency")).count(), 2, "{run}");
    // A file that is no payload is a clear error.
    std::fs::write(&payload, "{\"alerts\": 5}").unwrap();
    let run = alertgate(&["replay", payload.to_str().unwrap(), "--rules", &rules], &[]);
    assert!(!run.ok());
    assert!(run.stderr.contains("payload.json"), "{run}");
}

// ---- polish: pipes, wrong servers, URLs, logs, fatal errors, listen, dates ----

/// Run the binary with stdout a pipe whose reader is already gone (what
/// `| head -1` leaves once it has its line): the first write fails.
fn alertgate_into_closed_pipe(args: &[String], env: &[(&str, &str)]) -> Run {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ALERTGATE_") {
            cmd.env_remove(key);
        }
    }
    let mut child = cmd
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn alertgate");
    let mut err = child.stderr.take().unwrap();
    let drain = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).ok();
        s
    });
    let status = common::wait_exit(&mut child, Duration::from_secs(60));
    Run { code: status.code(), stdout: String::new(), stderr: drain.join().unwrap() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_ends_every_command_quietly() {
    // Embedded: `backup` copies the SQLite file, whatever backend the suite runs on.
    let g = Gateway::start_with(common::Options::embedded());
    let (status, body) =
        post(&g.url("/api/v1/ingest/alertmanager"), &fixture("alertmanager_webhook_firing.json")).await;
    assert_eq!(status, 200, "{body}");
    // Enough alerts that `--json` writes far more than a pipe holds.
    let many: Vec<Value> =
        (0..1000).map(|i| json!({"labels": {"alertname": "PipeTest", "n": i.to_string()}})).collect();
    let (status, body) = post(&g.url("/api/v2/alerts"), &Value::Array(many).to_string()).await;
    assert_eq!(status, 200, "{body}");
    let url = format!("http://{}", g.addr);
    let rules = repo_path("rules").display().to_string();
    let fixture_file = repo_path("tests/fixtures/alertmanager_webhook_firing.json").display().to_string();
    let backup = tempfile::tempdir().unwrap();
    let backup_file = backup.path().join("copy.db").display().to_string();
    let data_dir = g.dir.join("data").display().to_string();
    let commands: Vec<Vec<&str>> = vec![
        vec!["alerts", "list"],
        vec!["alerts", "list", "--json", "--limit", "1000"],
        vec!["alerts", "show", "6b094fb1f4f1ca1e"],
        vec!["incidents", "list"],
        vec!["incidents", "list", "--json"],
        vec!["incidents", "show", "1"],
        vec!["incidents", "note", "1", "a note"],
        vec!["incidents", "ack", "1", "-m", "looking"],
        vec!["changes", "add", "--service", "payments", "--summary", "deploy"],
        vec!["changes", "list"],
        vec!["problems", "list"],
        vec!["report", "sla"],
        vec!["report", "sla", "--csv"],
        vec!["check", "--rules", &rules],
        vec!["replay", &fixture_file, "--rules", &rules],
        vec!["backup", &backup_file, "--data-dir", &data_dir],
        vec!["--version"],
        vec!["--help"],
        vec!["incidents", "--help"],
    ];
    for args in commands {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let url = url.clone();
        let run = tokio::task::spawn_blocking(move || {
            alertgate_into_closed_pipe(&args, &[("ALERTGATE_URL", url.as_str()), ("ALERTGATE_ACTOR", "pipe")])
        })
        .await
        .unwrap();
        assert_eq!(run.code, Some(0), "{run}");
        assert!(run.stderr.is_empty(), "nothing on stderr, no panic: {run}");
    }

    // As people type it: the pipeline succeeds (pipefail) and head has its line.
    let script = format!("set -o pipefail; {BIN} alerts list --json --limit 1000 --url {url} | head -1");
    let (status, stdout, stderr) = tokio::task::spawn_blocking(move || {
        run_to_exit(Command::new("bash").args(["-c", &script]), Duration::from_secs(60))
    })
    .await
    .unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(stdout, "{\n");
    assert!(stderr.is_empty(), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_not_alertgate_is_named_as_such() {
    // A real Alertmanager: it answers GET /api/v1/alerts (an empty list).
    let dir = tempfile::tempdir().unwrap();
    let (_am, addr) =
        common::start_alertmanager(dir.path(), "alertmanager", "route: {receiver: none}\nreceivers: [{name: none}]\n")
            .await;
    let (status, body) = common::get(&format!("http://{addr}/api/v1/alerts")).await;
    assert_eq!(status, 200, "Alertmanager answers the path alertgate's client asks: {body}");

    for args in [
        vec!["alerts", "list", "--url", &addr],
        vec!["incidents", "list", "--url", &addr],
        vec!["report", "sla", "--csv", "--url", &addr],
    ] {
        let run = alertgate_async(&args, &[]).await;
        assert_eq!(run.code, Some(1), "{run}");
        assert!(run.stdout.is_empty(), "no empty table: {run}");
        assert!(run.stderr.contains(&format!("http://{addr} is not an alertgate gateway")), "{run}");
        assert!(run.stderr.contains("X-Alertgate-Version") || run.stderr.contains("x-alertgate-version"), "{run}");
    }

    // alertgate itself says who it is on every answer, errors included.
    let g = Gateway::start();
    for path in ["/api/v1/alerts", "/no/such/path", "/healthz", "/metrics"] {
        let resp = common::client().get(g.url(path)).send().await.unwrap();
        let version = resp.headers().get("x-alertgate-version").map(|v| v.to_str().unwrap().to_string());
        assert_eq!(version.as_deref(), Some(env!("CARGO_PKG_VERSION")), "{path}: {}", resp.status());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_without_a_scheme_is_http() {
    let g = Gateway::start();
    let (status, _) = post(&g.url("/api/v1/ingest/alertmanager"), &fixture("alertmanager_webhook_firing.json")).await;
    assert_eq!(status, 200);
    let bare = g.addr.clone();
    let run = alertgate_async(&["alerts", "list", "--url", &bare], &[]).await;
    assert!(run.ok(), "{run}");
    assert_eq!(table(&run.stdout).row_count, 2, "{run}");
    let run = alertgate_async(&["incidents", "list"], &[("ALERTGATE_URL", &format!("{bare}/"))]).await;
    assert!(run.ok(), "{run}");
    assert_eq!(run.stdout.lines().count(), 2, "{run}");
}

/// Start `serve` with `args` (no config unless given) and return its exit
/// status and stderr once it exits.
fn serve_to_exit(args: &[&str]) -> Run {
    let data = tempfile::tempdir().unwrap();
    let mut all = vec!["serve", "--data-dir"];
    let data_dir = data.path().display().to_string();
    all.push(&data_dir);
    let rules = repo_path("rules").display().to_string();
    all.extend(["--rules", &rules]);
    all.extend(args);
    alertgate(&all, &[("ALERTGATE_LOG", "info")])
}

#[test]
fn a_fatal_error_is_said_once_in_the_log_format_asked_for() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();

    let run = serve_to_exit(&["--listen", &addr]);
    assert_eq!(run.code, Some(1), "{run}");
    assert_eq!(run.stderr.matches("cannot listen on").count(), 1, "{run}");
    assert!(run.stderr.contains(&addr), "{run}");
    assert!(!run.stderr.contains('\u{1b}'), "no colour codes in a log that is not a terminal: {run}");

    // JSON: every line is JSON, the error one of them, once.
    let run = serve_to_exit(&["--listen", &addr, "--log-format", "json"]);
    assert_eq!(run.code, Some(1), "{run}");
    let lines: Vec<Value> = run
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\n{run}")))
        .collect();
    let errors: Vec<&Value> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
    assert_eq!(errors.len(), 1, "{run}");
    assert!(errors[0]["fields"]["error"].as_str().unwrap().contains("cannot listen on"), "{run}");
    assert_eq!(run.stderr.matches("cannot listen on").count(), 1, "{run}");

    // An invalid configuration, the same.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("alertgate.yml");
    std::fs::write(&cfg, "max_body: 10\n").unwrap();
    let cfg = cfg.display().to_string();
    let run = serve_to_exit(&["--config", &cfg]);
    assert_eq!(run.code, Some(2), "{run}");
    assert_eq!(run.stderr.matches("max_body").count(), 1, "{run}");
    let run = serve_to_exit(&["--config", &cfg, "--log-format", "json"]);
    assert_eq!(run.code, Some(2), "{run}");
    let line: Value = serde_json::from_str(run.stderr.trim()).unwrap_or_else(|e| panic!("one JSON line ({e}): {run}"));
    assert_eq!(line["level"], "ERROR", "{run}");
    assert!(line["fields"]["error"].as_str().unwrap().contains("max_body"), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_plain_text_with_values_or_json_lines() {
    let change = json!({"service": "payments", "summary": "deploy v2", "actor": "ci"}).to_string();

    // Text to a file: no colour codes, values as values.
    let g = Gateway::start();
    let (status, body) = post(&g.url("/api/v1/changes"), &change).await;
    assert_eq!(status, 201, "{body}");
    let log = common::wait_for(Duration::from_secs(10), "the change's log line", || async {
        let log = g.stderr();
        log.contains("change recorded").then_some(log)
    })
    .await;
    assert!(!log.contains('\u{1b}'), "colour codes in a log file:\n{log:?}");
    let line = log.lines().find(|l| l.contains("change recorded")).unwrap();
    assert!(line.contains("service=payments"), "{line}");
    assert!(!line.contains("Some("), "a Rust debug form: {line}");

    // JSON: every line parses, the field is the value.
    let g = Gateway::start_with(common::Options {
        extra: vec!["--log-format".into(), "json".into()],
        ..Default::default()
    });
    let (status, body) = post(&g.url("/api/v1/changes"), &change).await;
    assert_eq!(status, 201, "{body}");
    let log = common::wait_for(Duration::from_secs(10), "the change's log line", || async {
        let log = g.stderr();
        log.contains("change recorded").then_some(log)
    })
    .await;
    let lines: Vec<Value> =
        log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}"))).collect();
    let change_line = lines.iter().find(|l| l["fields"]["message"] == "change recorded").expect("the change line");
    assert_eq!(change_line["fields"]["service"], "payments", "{change_line}");
}

#[test]
fn listen_takes_a_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let rules = repo_path("rules").display().to_string();
    let cfg = dir.path().join("alertgate.yml");
    std::fs::write(&cfg, format!("listen: localhost:0\ndata_dir: data\nrules_dir: {rules}\n")).unwrap();
    let data = dir.path().join("flag-data").display().to_string();
    for args in [
        vec!["serve".to_string(), "--config".into(), cfg.display().to_string()],
        vec![
            "serve".into(),
            "--listen".into(),
            "localhost:0".into(),
            "--data-dir".into(),
            data,
            "--rules".into(),
            rules,
        ],
    ] {
        let mut child = Command::new(BIN)
            .args(&args)
            .env_remove("ALERTGATE_LISTEN")
            .env_remove("ALERTGATE_CONFIG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let addr = common::listening_addr(&mut child);
        let _ = child.kill();
        let _ = child.wait();
        let addr: std::net::SocketAddr = addr.expect("it started").parse().unwrap();
        assert!(addr.ip().is_loopback(), "{args:?}: {addr}");
        assert!(addr.is_ipv4(), "localhost is 127.0.0.1 first, as clients try: {args:?}: {addr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_sla_takes_dates() {
    let g = Gateway::start();
    let url = format!("http://{}", g.addr);
    for (tz, from, to) in [
        ("UTC", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"),
        ("Europe/Berlin", "2026-10-31T23:00:00Z", "2026-11-30T23:00:00Z"),
    ] {
        let run = alertgate_async(
            &["report", "sla", "--from", "2026-11-01", "--to", "2026-11-30", "--json"],
            &[("ALERTGATE_URL", &url), ("TZ", tz)],
        )
        .await;
        assert!(run.ok(), "{run}");
        let r: Value = serde_json::from_str(&run.stdout).expect("JSON");
        let at = |k: &str| r[k].as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
        assert_eq!(at("from"), from.parse::<jiff::Timestamp>().unwrap(), "{tz}: {run}");
        assert_eq!(at("to"), to.parse::<jiff::Timestamp>().unwrap(), "{tz}: the whole last day: {run}");
    }
    let run = alertgate_async(&["report", "sla", "--from", "2026-11-26"], &[("ALERTGATE_URL", &url)]).await;
    assert!(run.ok(), "a date alone, to now: {run}");
    assert!(run.stdout.starts_with("SLA report 2026-11-2"), "{run}");
    let run = alertgate_async(&["report", "sla", "--from", "26.11.2026"], &[("ALERTGATE_URL", &url)]).await;
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("--from") && run.stderr.contains("26.11.2026"), "{run}");
}
