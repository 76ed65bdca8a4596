//! The process lifecycle: graceful shutdown under load, refusing to start on
//! bad rules or config, and configuration through the environment.
mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{BIN, Gateway, all_alerts, get, listening_addr, post, repo_path, run_to_exit, wait_exit, wait_for};
use serde_json::{Value, json};

const SENDERS: usize = 8;
const BATCH: usize = 20;
const ACKED_BEFORE_SIGNAL: usize = 30;
const MAX_REQUESTS_PER_SENDER: usize = 5_000;

/// A command for the binary with no `ALERTGATE_*` variable inherited.
fn alertgate() -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ALERTGATE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("ALERTGATE_LOG", "info");
    cmd
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status().expect("kill");
    assert!(status.success(), "kill -{sig} {pid}");
}

/// A server started directly (not through the harness); killed on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    /// Spawn and wait for the "listening" line.
    fn spawn(cmd: &mut Command) -> Server {
        let mut child =
            cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn alertgate");
        let Some(addr) = listening_addr(&mut child) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("alertgate printed no listening line");
        };
        Server { child, addr }
    }

    /// SIGTERM, then the exit status.
    fn stop(&mut self) -> ExitStatus {
        signal(self.child.id(), "TERM");
        wait_exit(&mut self.child, Duration::from_secs(30))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Default)]
struct Counters {
    acked: AtomicUsize,
    in_flight: AtomicUsize,
}

/// One request's alerts (their `seq` labels) and whether it was answered 2xx.
struct Sent {
    seqs: Vec<String>,
    acked: bool,
}

/// Post batches until the gateway stops answering 2xx.
async fn sender(addr: String, id: usize, counters: Arc<Counters>) -> Vec<Sent> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut sent = Vec::new();
    for req in 0..MAX_REQUESTS_PER_SENDER {
        let seqs: Vec<String> = (0..BATCH).map(|i| format!("s{id}-r{req}-a{i}")).collect();
        let (path, body) = if req.is_multiple_of(2) {
            let alerts: Vec<Value> = seqs.iter().map(|s| json!({"labels": {"alertname": "Drain", "seq": s}})).collect();
            ("/api/v2/alerts", Value::Array(alerts))
        } else {
            let alerts: Vec<Value> = seqs
                .iter()
                .map(|s| {
                    json!({"status": "firing", "labels": {"alertname": "Drain", "seq": s},
                       "annotations": {}, "startsAt": "2026-01-01T00:00:00Z",
                       "endsAt": "0001-01-01T00:00:00Z"})
                })
                .collect();
            ("/api/v1/ingest/alertmanager", json!({"version": "4", "status": "firing", "alerts": alerts}))
        };
        counters.in_flight.fetch_add(1, Ordering::SeqCst);
        let acked = client
            .post(format!("http://{addr}{path}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        counters.in_flight.fetch_sub(1, Ordering::SeqCst);
        if acked {
            counters.acked.fetch_add(1, Ordering::SeqCst);
        }
        sent.push(Sent { seqs, acked });
        if !acked {
            break;
        }
    }
    sent
}

fn wal_len(data: &Path) -> Option<u64> {
    std::fs::metadata(data.join("alertgate.db-wal")).ok().map(|m| m.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_requests_and_closes_the_database() {
    let mut g = Gateway::start();
    let counters = Arc::new(Counters::default());
    let senders: Vec<_> = (0..SENDERS).map(|id| tokio::spawn(sender(g.addr.clone(), id, counters.clone()))).collect();
    let c = counters.clone();
    wait_for(Duration::from_secs(120), "requests to be acknowledged under load", || {
        let c = c.clone();
        async move {
            // Every sender has a request out: some are mid-commit.
            (c.acked.load(Ordering::SeqCst) >= ACKED_BEFORE_SIGNAL && c.in_flight.load(Ordering::SeqCst) == SENDERS)
                .then_some(())
        }
    })
    .await;
    let in_flight = counters.in_flight.load(Ordering::SeqCst);
    let acked_before_signal = counters.acked.load(Ordering::SeqCst);
    let status = tokio::task::block_in_place(|| {
        signal(g.child.id(), "TERM");
        wait_exit(&mut g.child, Duration::from_secs(60))
    });
    let mut sent = Vec::new();
    for s in senders {
        sent.extend(s.await.expect("sender task"));
    }
    let stderr = g.stderr();
    assert!(status.success(), "exit status {status:?}\n{stderr}");
    assert!(stderr.contains("database closed cleanly"), "no clean close in the log:\n{stderr}");
    let acked = sent.iter().filter(|s| s.acked).count();
    eprintln!(
        "{} requests, {acked} answered 2xx, {in_flight} in flight at SIGTERM, \
         {} answered 2xx from the signal on",
        sent.len(),
        acked - acked_before_signal
    );
    // Requests being served when the signal came are finished, not dropped.
    assert!(acked > acked_before_signal, "none of the {in_flight} requests in flight at SIGTERM was answered");

    // Start again on the same data directory: every 2xx is there.
    tokio::task::block_in_place(|| g.restart());
    let (status, body) = get(&g.url("/readyz")).await;
    assert_eq!(status, 200, "{body}");
    let stored: HashSet<String> = all_alerts(&g, "&filter=alertname%3D%22Drain%22")
        .await
        .iter()
        .map(|a| a["labels"]["seq"].as_str().unwrap().to_string())
        .collect();
    for s in &sent {
        let present = s.seqs.iter().filter(|q| stored.contains(*q)).count();
        if s.acked {
            assert_eq!(present, s.seqs.len(), "an answered request lost alerts");
        } else {
            // Not guaranteed either way, but never half a request.
            assert!(present == 0 || present == s.seqs.len(), "torn request");
        }
    }
    let (status, _) = post(&g.url("/api/v2/alerts"), r#"[{"labels":{"alertname":"AfterRestart"}}]"#).await;
    assert_eq!(status, 200);
}

/// Start the gateway, and send SIGTERM the moment its "listening" line is
/// read. The shell's builtin `kill` leaves no time for the handlers to be
/// installed lazily.
const SIGTERM_AT_ONCE: &str = r#"
bin=$1; dir=$2; rules=$3
for i in 1 2 3; do
  mkfifo "$dir/out$i"
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$dir/data$i" --rules "$rules" >"$dir/out$i" 2>"$dir/err$i" &
  pid=$!
  exec 3<"$dir/out$i"
  read -r line <&3
  kill -TERM "$pid"
  wait "$pid"
  echo "$i $? $line"
  exec 3<&-
done
"#;

#[test]
fn sigterm_right_after_the_listening_line_is_graceful() {
    let tmp = tempfile::tempdir().unwrap();
    let (status, stdout, stderr) = run_to_exit(
        Command::new("sh")
            .env("ALERTGATE_LOG", "info")
            .env_remove("ALERTGATE_LISTEN")
            .args(["-c", SIGTERM_AT_ONCE, "sh", BIN])
            .arg(tmp.path())
            .arg(repo_path("rules")),
        Duration::from_secs(60),
    );
    assert!(status.success(), "{stdout}\n{stderr}");
    let runs: Vec<&str> = stdout.lines().collect();
    assert_eq!(runs.len(), 3, "{stdout}\n{stderr}");
    for run in runs {
        let mut parts = run.splitn(3, ' ');
        let (i, code, line) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap_or(""));
        let log = std::fs::read_to_string(tmp.path().join(format!("err{i}"))).unwrap();
        assert!(line.starts_with("alertgate listening on "), "{run}\n{log}");
        // 143 is 128 + SIGTERM: killed by the signal's default action.
        assert_eq!(code, "0", "run {i}: exit code {code}, not a clean shutdown\n{log}");
        assert!(log.contains("database closed cleanly"), "run {i}:\n{log}");
    }
}

#[tokio::test]
async fn sigint_also_shuts_down_cleanly() {
    let mut g = Gateway::start();
    let (status, _) = post(&g.url("/api/v2/alerts"), r#"[{"labels":{"alertname":"BeforeSigint"}}]"#).await;
    assert_eq!(status, 200);
    // Nothing else runs on this runtime: blocking here is fine.
    signal(g.child.id(), "INT");
    let status = wait_exit(&mut g.child, Duration::from_secs(30));
    assert!(status.success(), "{status:?}\n{}", g.stderr());
    assert!(g.stderr().contains("database closed cleanly"));
    // The database alone, read directly, holds the alert.
    let query = "SELECT count(*) FROM alerts WHERE labels LIKE '%BeforeSigint%'";
    let n: i64 = match &g.database {
        Some(db) => db.column(query)[0].as_deref().unwrap().parse().unwrap(),
        None => {
            let conn = rusqlite::Connection::open(g.dir.join("data/alertgate.db")).unwrap();
            conn.query_row(query, [], |r| r.get(0)).unwrap()
        }
    };
    assert_eq!(n, 1);
}

#[tokio::test]
async fn a_clean_shutdown_leaves_the_wal_checkpointed() {
    // SQLite's write-ahead log, whatever backend the suite runs on.
    let mut g = Gateway::start_with(common::Options::embedded());
    let alerts: Vec<Value> =
        (0..200).map(|i| json!({"labels": {"alertname": "Checkpoint", "n": i.to_string()}})).collect();
    let (status, _) = post(&g.url("/api/v2/alerts"), &Value::Array(alerts).to_string()).await;
    assert_eq!(status, 200);
    let data = g.dir.join("data");
    assert!(wal_len(&data).unwrap_or(0) > 0, "writes go to the WAL first");
    // Nothing else runs on this runtime: blocking here is fine.
    signal(g.child.id(), "TERM");
    let status = wait_exit(&mut g.child, Duration::from_secs(30));
    assert!(status.success(), "{status:?}\n{}", g.stderr());
    assert!(g.stderr().contains("database closed cleanly"), "{}", g.stderr());
    let wal = wal_len(&data);
    assert_eq!(wal.unwrap_or(0), 0, "after a clean shutdown the WAL is empty or absent, found {wal:?} bytes");
    // The main file alone holds everything.
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(data.join("alertgate.db"), copy.path().join("alertgate.db")).unwrap();
    let conn = rusqlite::Connection::open(copy.path().join("alertgate.db")).unwrap();
    let n: i64 = conn.query_row("SELECT count(*) FROM alerts", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 200);
}

#[test]
fn refuses_to_start_with_a_broken_rules_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("good.yaml"), "incident_rules: []\n").unwrap();
    std::fs::write(rules.join("broken.yaml"), "incident_rules: []\ninhibit_rulez: []\n").unwrap();
    let (status, stdout, stderr) = run_to_exit(
        alertgate().args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &tmp.path().join("data").display().to_string(),
            "--rules",
            &rules.display().to_string(),
        ]),
        Duration::from_secs(30),
    );
    assert!(!status.success(), "started anyway: {stdout}");
    assert!(!stdout.contains("listening"), "{stdout}");
    let at = format!("{}:2", rules.join("broken.yaml").display());
    assert!(stderr.contains(&at), "stderr does not name {at}:\n{stderr}");
    assert!(stderr.contains("inhibit_rulez"), "{stderr}");
    assert!(!stderr.contains("good.yaml"), "{stderr}");
}

#[test]
fn refuses_to_start_with_an_unknown_config_key() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("alertgate.yml");
    std::fs::write(&cfg, "listen: 127.0.0.1:0\nresolve_timout: 5m\n").unwrap();
    let (status, stdout, stderr) = run_to_exit(
        alertgate().args([
            "serve",
            "--config",
            &cfg.display().to_string(),
            "--data-dir",
            &tmp.path().join("data").display().to_string(),
            "--rules",
            &repo_path("rules").display().to_string(),
        ]),
        Duration::from_secs(30),
    );
    assert_eq!(status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("resolve_timout"), "{stderr}");
    assert!(stderr.contains("alertgate.yml:2"), "{stderr}");
    assert!(!tmp.path().join("data").exists(), "no database for a bad config");
}

#[test]
fn an_invalid_listen_address_from_the_environment_is_exit_code_2() {
    let tmp = tempfile::tempdir().unwrap();
    let (status, _, stderr) = run_to_exit(
        alertgate()
            .env("ALERTGATE_LISTEN", "nowhere")
            .args(["serve", "--data-dir"])
            .arg(tmp.path().join("data"))
            .arg("--rules")
            .arg(repo_path("rules")),
        Duration::from_secs(30),
    );
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("listen"), "{stderr}");
    assert!(stderr.contains("nowhere"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_from_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("envdata");
    let mut server = tokio::task::block_in_place(|| {
        Server::spawn(
            alertgate()
                .env("ALERTGATE_LISTEN", "127.0.0.1:0")
                .env("ALERTGATE_DATA_DIR", &data)
                .env("ALERTGATE_RULES", repo_path("rules"))
                .env("ALERTGATE_MAX_BODY", "2KiB")
                .arg("serve"),
        )
    });
    let addr: std::net::SocketAddr = server.addr.parse().expect("an address");
    assert!(addr.ip().is_loopback());
    assert_ne!(addr.port(), 0);
    let base = format!("http://{}", server.addr);
    let (status, body) = get(&format!("{base}/readyz")).await;
    assert_eq!(status, 200, "{body}");
    assert!(data.join("alertgate.db").exists(), "data dir from the env");
    let big = json!([{"labels": {"alertname": "Big", "pad": "x".repeat(4096)}}]);
    let (status, _) = post(&format!("{base}/api/v2/alerts"), &big.to_string()).await;
    assert_eq!(status, 413, "max body from the env");
    let status = tokio::task::block_in_place(|| server.stop());
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_beats_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = tokio::task::block_in_place(|| {
        Server::spawn(
            alertgate()
                .env("ALERTGATE_LISTEN", "not-an-address")
                .env("ALERTGATE_DATA_DIR", tmp.path().join("from-env"))
                .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
                .arg(tmp.path().join("from-flag"))
                .arg("--rules")
                .arg(repo_path("rules")),
        )
    });
    let (status, _) = get(&format!("http://{}/healthz", server.addr)).await;
    assert_eq!(status, 200);
    assert!(tmp.path().join("from-flag/alertgate.db").exists());
    assert!(!tmp.path().join("from-env").exists());
    let status = tokio::task::block_in_place(|| server.stop());
    assert!(status.success(), "{status:?}");
}
