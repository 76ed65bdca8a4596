//! Faults around the gateway: a full disk (`store.max_size`), a damaged
//! database file, an online backup under load, an SMTP server that drops
//! the connection mid-message, rule reloads under load, and `kill -9` in the
//! middle of a reload. Each runs the real binary on its own data directory.
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alertgate::model::Fingerprint;
use common::{BIN, Gateway, Options, all_alerts, get, post, run_to_exit, wait_for};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);

/// One incident per alertname, titled by it.
const RULES: &str = r#"incident_rules:
  - name: by-name
    matchers: []
    group_by: [alertname]
    title: "{{ labels.alertname }}"
"#;

fn rules_dir(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), text).unwrap();
    dir
}

/// A batch of distinct alerts: (fingerprint, labels) and the Prometheus push body.
fn batch(tag: &str, n: usize, pad: usize) -> (Vec<String>, String) {
    let mut fps = Vec::with_capacity(n);
    let mut items = Vec::with_capacity(n);
    for i in 0..n {
        let labels: BTreeMap<String, String> = [
            ("alertname".to_string(), "FaultTest".to_string()),
            ("seq".to_string(), format!("{tag}-{i}")),
            ("instance".to_string(), format!("host-{}", i % 7)),
        ]
        .into();
        fps.push(Fingerprint::of_labels(&labels).as_str().to_string());
        items.push(json!({
            "labels": labels,
            "annotations": {"summary": format!("{tag}-{i}"), "padding": "x".repeat(pad)},
        }));
    }
    (fps, Value::Array(items).to_string())
}

async fn stored_fingerprints(g: &Gateway) -> BTreeSet<String> {
    all_alerts(g, "").await.into_iter().map(|a| a["fingerprint"].as_str().unwrap().to_string()).collect()
}

// ---- load: concurrent senders -------------------------------------------------

#[derive(Debug)]
enum Outcome {
    Acked,
    Refused(u16, String),
    NoAnswer(String),
}

#[derive(Debug)]
struct Sent {
    fps: Vec<String>,
    outcome: Outcome,
    /// When the answer (or the failure) came.
    at: Instant,
}

/// Post batches of `n` alerts until `stop` is set or the gateway stops
/// answering; every request and its outcome.
async fn sender(addr: String, tag: String, n: usize, stop: Arc<AtomicBool>) -> Vec<Sent> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut sent = Vec::new();
    for req in 0..100_000 {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let (fps, body) = batch(&format!("{tag}-r{req}"), n, 64);
        let result = client
            .post(format!("http://{addr}/api/v2/alerts"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let outcome = match result {
            Ok(r) if r.status().is_success() => Outcome::Acked,
            Ok(r) => {
                let status = r.status().as_u16();
                Outcome::Refused(status, r.text().await.unwrap_or_default())
            }
            Err(e) => Outcome::NoAnswer(e.to_string()),
        };
        let done = matches!(outcome, Outcome::NoAnswer(_));
        sent.push(Sent { fps, outcome, at: Instant::now() });
        if done {
            break;
        }
    }
    sent
}

/// Every request is wholly in `stored` or wholly out; with `acked_until`,
/// every request acknowledged before then is in.
fn check_all_or_nothing(sent: &[Sent], stored: &BTreeSet<String>, acked_until: Option<Instant>, what: &str) {
    for s in sent {
        let present = s.fps.iter().filter(|f| stored.contains(*f)).count();
        if matches!(s.outcome, Outcome::Acked) && acked_until.is_none_or(|t| s.at < t) {
            assert_eq!(present, s.fps.len(), "{what}: an acknowledged request lost {} alerts", s.fps.len() - present);
        } else {
            let outcome = match &s.outcome {
                Outcome::Acked => "acknowledged after the cut".to_string(),
                Outcome::Refused(status, body) => format!("refused {status} {body}"),
                Outcome::NoAnswer(e) => format!("unanswered: {e}"),
            };
            assert!(
                present == 0 || present == s.fps.len(),
                "{what}: a torn request ({outcome}): {present} of {}",
                s.fps.len()
            );
        }
    }
}

// ---- 1. a full disk -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_refuses_whole_requests_with_503_and_recovers() {
    let rules = rules_dir(RULES);
    let mut g = Gateway::start_with(Options {
        database_url: Some(String::new()), // SQLite's own files are what this tests
        config: Some("store: {max_size: 2MiB}\n".into()),
        rules_dir: Some(rules.path().to_path_buf()),
        ..Default::default()
    });
    let mut acked: BTreeSet<String> = BTreeSet::new();
    let mut refused: Vec<(Vec<String>, String)> = Vec::new();
    for b in 0..500 {
        let (fps, body) = batch(&format!("fill{b}"), 50, 512);
        let (status, answer) = post(&g.url("/api/v2/alerts"), &body).await;
        match status {
            200 => acked.extend(fps),
            503 => {
                let error = answer["error"].as_str().unwrap_or_default();
                assert!(error.contains("storage is full"), "the 503 says why: {answer}");
                assert!(error.contains("retry later"), "the 503 says what to do: {answer}");
                refused.push((fps, body));
                if refused.len() == 2 {
                    break;
                }
            }
            other => panic!("batch {b}: {other} {answer}"),
        }
    }
    assert_eq!(refused.len(), 2, "the store never filled up ({} alerts stored)", acked.len());
    assert!(acked.len() >= 500, "a 2 MiB store holds more than {} such alerts", acked.len());
    // The limit holds the database and its WAL together (one batch of slack).
    let size = |name: &str| std::fs::metadata(g.dir.join("data").join(name)).map_or(0, |m| m.len());
    let total = size("alertgate.db") + size("alertgate.db-wal");
    assert!(total <= (2 << 20) + (256 << 10), "database and WAL take {total} bytes under a 2 MiB limit");
    eprintln!("store full after {} alerts", acked.len());

    // Reads still work, and show exactly what was acknowledged: nothing of a
    // refused request.
    let (status, body) = get(&g.url("/healthz")).await;
    assert_eq!(status, 200, "{body}");
    let stored = stored_fingerprints(&g).await;
    assert_eq!(stored.len(), acked.len(), "stored alerts = acknowledged alerts");
    assert!(stored == acked, "every acknowledged alert is listed, and nothing else");
    for (fps, _) in &refused {
        for fp in fps.iter().step_by(7) {
            let (status, body) = get(&g.url(&format!("/api/v1/alerts/{fp}"))).await;
            assert_eq!(status, 404, "an alert of a refused request: {body}");
        }
    }
    for fp in acked.iter().step_by(97) {
        let (status, body) = get(&g.url(&format!("/api/v1/alerts/{fp}"))).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = get(&g.url("/api/v1/incidents")).await;
    assert_eq!(status, 200, "{body}");

    // More room and a restart on the same data directory: ingest works again.
    let _ = g.terminate();
    std::fs::write(g.dir.join("alertgate.yml"), "store: {max_size: 64MiB}\n").unwrap();
    g.restart();
    let (fps, body) = &refused[0];
    let (status, answer) = post(&g.url("/api/v2/alerts"), body).await;
    assert_eq!(status, 200, "the refused batch, once there is room: {answer}");
    assert_eq!(answer["outcome"]["created"], 50, "{answer}");
    let stored = stored_fingerprints(&g).await;
    assert!(acked.is_subset(&stored), "everything acknowledged before is still there");
    assert!(fps.iter().all(|f| stored.contains(f)), "and the batch is now");
    let (fps2, body2) = batch("after", 50, 512);
    let (status, answer) = post(&g.url("/api/v2/alerts"), &body2).await;
    assert_eq!(status, 200, "{answer}");
    let stored = stored_fingerprints(&g).await;
    assert_eq!(stored.len(), acked.len() + 100, "the earlier alerts and both new batches");
    assert!(fps2.iter().all(|f| stored.contains(f)));

    // The database passes SQLite's full integrity check: `serve` runs it
    // before serving and would refuse a damaged file.
    g.args.extend(["--integrity-check".to_string(), "full".to_string()]);
    g.restart();
    let log = g.stderr();
    assert!(
        log.contains("database integrity ok") && log.contains("integrity_check"),
        "the full check ran and passed: {log}"
    );
    assert_eq!(stored_fingerprints(&g).await.len(), acked.len() + 100);
}

/// Under a load that never lets the writer pause, the WAL is still copied
/// back and restarted: its file stays near its share of `store.max_size`
/// (a quarter, here 8 MiB) while far more than that passes through it.
/// Before, a checkpoint that waited for the writer to pause seldom found
/// it paused, and the WAL grew without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_within_its_share_under_a_load_that_never_pauses() {
    const SHARE: u64 = 8 << 20;
    let rules = rules_dir(RULES);
    let g = Gateway::start_with(Options {
        database_url: Some(String::new()), // SQLite's own files are what this tests
        config: Some("store: {max_size: 32MiB}\n".into()),
        rules_dir: Some(rules.path().to_path_buf()),
        ..Default::default()
    });
    let data = g.dir.join("data");
    let size = move |name: &str| std::fs::metadata(data.join(name)).map_or(0, |m| m.len());
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> =
        (0..4).map(|i| tokio::spawn(sender(g.addr.to_string(), format!("s{i}"), 100, stop.clone()))).collect();
    let mut largest_wal = 0;
    let mut sent = 0;
    // Until more than twice the share has been written to the database
    // (every page of it through the WAL).
    while size("alertgate.db") < 2 * SHARE {
        largest_wal = largest_wal.max(size("alertgate.db-wal"));
        assert!(senders.iter().any(|s| !s.is_finished()), "the senders stopped");
        tokio::time::sleep(Duration::from_millis(5)).await;
        sent += 1;
        assert!(sent < 60_000, "the database never grew past {} bytes", 2 * SHARE);
    }
    stop.store(true, Ordering::SeqCst);
    let mut acked = BTreeSet::new();
    for s in senders {
        for r in s.await.unwrap() {
            match r.outcome {
                Outcome::Acked => acked.extend(r.fps),
                other => panic!("every request is answered 200 under this load: {other:?}"),
            }
        }
    }
    largest_wal = largest_wal.max(size("alertgate.db-wal"));
    // Slack for the batches committed while a truncation could not run
    // (the background checkpoint under way, a reader on older frames).
    assert!(largest_wal <= 2 * SHARE, "the WAL grew to {largest_wal} bytes (share {SHARE})");
    assert_eq!(stored_fingerprints(&g).await, acked, "every acknowledged alert is stored");
}

// ---- 2. a damaged database file ----------------------------------------------------

/// Start `serve` and wait for it to exit; fails if it starts serving.
fn serve_expecting_refusal(args: &[String]) -> (Option<i32>, String, String) {
    let mut child: Child = Command::new(BIN)
        .args(args)
        .env_remove("ALERTGATE_LISTEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start alertgate");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("alertgate serve is still running after 60 s on a damaged database: {}", out.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code(), out.join().unwrap(), err.join().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_database_is_refused_before_serving() {
    let rules = rules_dir(RULES);
    let mut g = Gateway::start_with(Options {
        database_url: Some(String::new()), // SQLite's own files are what this tests
        rules_dir: Some(rules.path().to_path_buf()),
        ..Default::default()
    });
    for b in 0..40 {
        let (_, body) = batch(&format!("bulk{b}"), 50, 1024);
        let (status, answer) = post(&g.url("/api/v2/alerts"), &body).await;
        assert_eq!(status, 200, "{answer}");
    }
    let status = g.terminate();
    assert!(status.success(), "a clean stop: {status}");
    let data = g.dir.join("data");
    let db = data.join("alertgate.db");
    let size = std::fs::metadata(&db).unwrap().len();
    assert!(size > 3 << 20, "a few MB of data: {size} bytes");

    // 64 KiB of garbage over the middle of the file, page-aligned.
    let at = (size / 2) & !4095;
    let mut f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let garbage: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    f.write_all(&garbage).unwrap();
    f.sync_all().unwrap();
    drop(f);

    let args = |check: Option<&str>| {
        let mut a: Vec<String> = [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data.display().to_string(),
            "--rules",
            &rules.path().display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(c) = check {
            a.extend(["--integrity-check".to_string(), c.to_string()]);
        }
        a
    };
    for (check, pragma) in [(Some("full"), "integrity_check"), (None, "quick_check")] {
        let (code, stdout, stderr) = serve_expecting_refusal(&args(check));
        let what = format!("--integrity-check {}", check.unwrap_or("(default quick)"));
        assert!(code.is_some_and(|c| c != 0), "{what}: exits non-zero, got {code:?}: {stderr}");
        assert!(!stdout.contains("listening"), "{what}: never serves: {stdout}");
        assert!(stderr.contains(pragma), "{what}: the error names the check ({pragma}): {stderr}");
        assert_eq!(std::fs::metadata(&db).unwrap().len(), size, "{what}: the damaged file is left as it was");
    }
}

// ---- 3. an online backup under load ------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_is_consistent_and_complete() {
    let rules = rules_dir(RULES);
    let g = Gateway::start_with(Options {
        database_url: Some(String::new()), // SQLite's own files are what this tests
        rules_dir: Some(rules.path().to_path_buf()),
        ..Default::default()
    });
    let mut before: BTreeSet<String> = BTreeSet::new();
    for b in 0..10 {
        let (fps, body) = batch(&format!("pre{b}"), 50, 256);
        let (status, answer) = post(&g.url("/api/v2/alerts"), &body).await;
        assert_eq!(status, 200, "{answer}");
        before.extend(fps);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> =
        (0..4).map(|t| tokio::spawn(sender(g.addr.clone(), format!("load{t}"), 20, stop.clone()))).collect();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("copy.db");
    let data = g.dir.join("data");
    let backup_started = Instant::now();
    let (f, d) = (file.clone(), data.clone());
    let (status, stdout, stderr) = tokio::task::spawn_blocking(move || {
        run_to_exit(
            Command::new(BIN).args(["backup", &f.display().to_string(), "--data-dir", &d.display().to_string()]),
            Duration::from_secs(60),
        )
    })
    .await
    .unwrap();
    let backup_took = backup_started.elapsed();
    tokio::time::sleep(Duration::from_millis(2000u64.saturating_sub(600 + backup_took.as_millis() as u64))).await;
    stop.store(true, Ordering::SeqCst);
    let mut sent = Vec::new();
    for t in tasks {
        sent.extend(t.await.unwrap());
    }
    assert!(status.success(), "backup exits 0: {status} {stderr}");
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(stdout.contains(&format!("{size} bytes")), "it says how much it copied: {stdout:?}");
    let refused: Vec<_> = sent.iter().filter(|s| !matches!(s.outcome, Outcome::Acked)).collect();
    assert!(refused.is_empty(), "the load was served during the backup: {refused:?}");
    let acked_before_backup: BTreeSet<String> =
        sent.iter().filter(|s| s.at < backup_started).flat_map(|s| s.fps.iter().cloned()).collect();
    let during = sent.iter().filter(|s| s.at >= backup_started).count();
    eprintln!(
        "backup of {size} bytes in {backup_took:?}; {} load requests acknowledged before it, {during} after it began",
        sent.len() - during
    );
    assert!(!acked_before_backup.is_empty(), "the load ran before the backup began");

    // The copy is a sound database by itself ...
    {
        let conn = rusqlite::Connection::open_with_flags(&file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok", "integrity_check of the copy");
    }
    // ... that a fresh gateway serves, with everything acknowledged before
    // the backup began, and whole requests only.
    let mut fresh = Gateway::start_with(Options {
        database_url: Some(String::new()), // SQLite's own files are what this tests
        rules_dir: Some(rules.path().to_path_buf()),
        ..Default::default()
    });
    fresh.kill9();
    let fresh_data = fresh.dir.join("data");
    for name in ["alertgate.db", "alertgate.db-wal", "alertgate.db-shm"] {
        let _ = std::fs::remove_file(fresh_data.join(name));
    }
    std::fs::copy(&file, fresh_data.join("alertgate.db")).unwrap();
    fresh.args.extend(["--integrity-check".to_string(), "full".to_string()]);
    fresh.restart();
    let (status, body) = get(&fresh.url("/readyz")).await;
    assert_eq!(status, 200, "{body}");
    let in_copy = stored_fingerprints(&fresh).await;
    let missing = before.iter().chain(&acked_before_backup).filter(|f| !in_copy.contains(*f)).count();
    assert_eq!(missing, 0, "alerts acknowledged before the backup began, missing from the copy");
    check_all_or_nothing(&sent, &in_copy, Some(backup_started), "the copy");
    let known: BTreeSet<&String> = before.iter().chain(sent.iter().flat_map(|s| s.fps.iter())).collect();
    assert!(in_copy.iter().all(|f| known.contains(f)), "the copy holds only alerts that were sent");
    let (status, answer) = post(&fresh.url("/api/v2/alerts"), &batch("on-the-copy", 5, 0).1).await;
    assert_eq!(status, 200, "the restored gateway takes alerts: {answer}");

    // A backup never overwrites a file.
    let before_bytes = std::fs::read(&file).unwrap();
    let (status, _, stderr) = run_to_exit(
        Command::new(BIN).args(["backup", &file.display().to_string(), "--data-dir", &data.display().to_string()]),
        Duration::from_secs(60),
    );
    assert!(!status.success(), "backup to an existing file fails: {stderr}");
    assert!(stderr.contains("exists"), "and says why: {stderr}");
    assert!(std::fs::read(&file).unwrap() == before_bytes, "the existing file is untouched");
}

// ---- 4. an SMTP server that drops the connection mid-message ------------------------

/// An SMTP server (Python standard library only) that answers EHLO, MAIL,
/// RCPT and DATA, then resets the connection partway through the message
/// for the first DROPS messages; later messages are accepted and saved.
const FLAKY_SMTP: &str = r#"
import os, socket, struct, sys, threading
outdir, drops = sys.argv[1], int(sys.argv[2])
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(16)
print(srv.getsockname()[1], flush=True)
lock = threading.Lock()
count = {"conn": 0, "data": 0}

def log(msg):
    with lock, open(os.path.join(outdir, "smtp.log"), "a") as f:
        f.write(msg + "\n")

def handle(conn, n):
    f = conn.makefile("rb")
    send = lambda line: conn.sendall(line.encode() + b"\r\n")
    send("220 flaky.test ESMTP")
    while True:
        raw = f.readline()
        if not raw:
            return
        cmd = raw.decode("latin-1").strip()
        verb = cmd.split(" ", 1)[0].upper()
        log(f"{n} < {cmd[:80]}")
        if verb == "EHLO":
            send("250-flaky.test")
            send("250-8BITMIME")
            send("250 SIZE 10485760")
        elif verb == "HELO":
            send("250 flaky.test")
        elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
            send("250 OK")
        elif verb == "DATA":
            with lock:
                count["data"] += 1
                k = count["data"]
            send("354 End data with <CR><LF>.<CR><LF>")
            if k <= drops:
                got = f.read(300)
                log(f"{n} DROP after {len(got)} bytes of message {k}")
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                f.close()
                conn.close()
                return
            lines = []
            while True:
                line = f.readline()
                if not line:
                    log(f"{n} EOF inside message {k}")
                    return
                if line in (b".\r\n", b".\n"):
                    break
                lines.append(line[1:] if line.startswith(b"..") else line)
            with open(os.path.join(outdir, f"msg-{k}.eml"), "wb") as out:
                out.write(b"".join(lines))
            log(f"{n} SAVED message {k}")
            send("250 OK queued")
        elif verb == "QUIT":
            send("221 bye")
            f.close()
            conn.close()
            return
        else:
            send("502 not implemented")

while True:
    conn, _ = srv.accept()
    with lock:
        count["conn"] += 1
        n = count["conn"]
    threading.Thread(target=handle, args=(conn, n), daemon=True).start()
"#;

struct FlakySmtp {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl FlakySmtp {
    fn start(drops: usize) -> FlakySmtp {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("flaky_smtp.py");
        std::fs::write(&script, FLAKY_SMTP).unwrap();
        let mut child = Command::new("/usr/bin/python3")
            .args([script.display().to_string(), dir.path().display().to_string(), drops.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run /usr/bin/python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| panic!("the SMTP script printed no port: {line:?}"));
        FlakySmtp { child, port, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("smtp.log")).unwrap_or_default()
    }

    fn messages(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect()
    }
}

impl Drop for FlakySmtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn notifications(g: &Gateway) -> Vec<Value> {
    let (status, body) = get(&g.url("/api/v1/notifications?notifier=oncall-email&limit=500")).await;
    assert_eq!(status, 200, "{body}");
    body["notifications"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_connection_dropped_mid_message_is_retried_until_sent() {
    const DROPS: usize = 2;
    let smtp = FlakySmtp::start(DROPS);
    let rules = rules_dir(&format!("{RULES}    notify: [oncall-email]\n"));
    let config = format!(
        r#"notifiers:
  - name: oncall-email
    type: email
    smtp: {{host: 127.0.0.1, port: {}, tls: none}}
    from: "alertgate <alertgate@example.org>"
    to: [oncall@example.org]
    events: [incident.triggered]
    timeout: 5s
outbox: {{initial_backoff: 1m, max_backoff: 2m}}
"#,
        smtp.port
    );
    // On a controlled clock: each retry is made when the test moves time to it.
    let g = Gateway::start_with(Options {
        config: Some(config),
        rules_dir: Some(rules.path().to_path_buf()),
        test_clock: Some(common::t0()),
        ..Default::default()
    });
    let (status, answer) =
        post(&g.url("/api/v2/alerts"), &json!([{"labels": {"alertname": "MailDrop", "instance": "db-1"}}]).to_string())
            .await;
    assert_eq!(status, 200, "{answer}");

    let mut errors_seen: BTreeSet<String> = BTreeSet::new();
    let mut attempts_seen = 0;
    let row = loop {
        let attempts_before = attempts_seen;
        let row = wait_for(WAIT, "the outcome of the next attempt", || async {
            let rows = notifications(&g).await;
            assert!(rows.len() <= 1, "one notification: {rows:#?}");
            let row = rows.into_iter().next()?;
            assert_ne!(row["state"], "failed", "a dropped connection is transient, not a dead letter: {row:#}");
            let done = row["state"] == "sent"
                || (row["state"] == "pending"
                    && row["attempts"].as_u64()? > attempts_before
                    && row["lastError"].is_string());
            done.then_some(row)
        })
        .await;
        if row["state"] == "sent" {
            break row;
        }
        attempts_seen = row["attempts"].as_u64().unwrap();
        errors_seen.insert(row["lastError"].as_str().unwrap().to_string());
        let due: jiff::Timestamp = row["nextAttemptAt"].as_str().expect("a retry time").parse().unwrap();
        g.advance_to(due).await;
    };
    let errors = errors_seen;
    assert!(!errors.is_empty(), "a lastError was recorded while pending; smtp log:\n{}", smtp.log());
    let attempts = row["attempts"].as_u64().unwrap();
    assert!(attempts >= 2, "{row:#}");
    assert_eq!(attempts, DROPS as u64 + 1, "one attempt per connection: {row:#}\n{}", smtp.log());
    assert!(row["lastError"].is_null(), "a sent row keeps no error: {row:#}");
    let log = smtp.log();
    assert_eq!(log.matches(" DROP after ").count(), DROPS, "{log}");
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "one complete message: {log}");
    assert!(messages[0].contains("MailDrop"), "the message is about the incident: {}", messages[0]);
    eprintln!("lastError while pending: {errors:?}");
}

// ---- 5. and 6. rule reloads under load, and kill -9 during them ---------------------

const RULES_A: &str = r#"incident_rules:
  - name: version-a
    matchers: []
    group_by: [alertname]
    title: "A {{ labels.alertname }}"
    impact: low
"#;

const RULES_B: &str = r#"incident_rules:
  - name: version-b
    matchers: ['alertname=~".+"']
    group_by: [alertname, instance]
    title: "B {{ labels.alertname }} on {{ labels.instance }}"
    impact: high
    urgency: high
  - name: catch-all
    matchers: []
    group_by: ['...']
    title: "{{ labels.alertname }}"
"#;

/// Rewrite the rules file (atomically: the loader must never see half a
/// file) and reload, alternating the two versions, until `stop`.
async fn reloader(addr: String, dir: PathBuf, stop: Arc<AtomicBool>, answers: Arc<Mutex<Vec<(u16, String)>>>) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut i = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let text = if i.is_multiple_of(2) { RULES_B } else { RULES_A };
        let tmp = dir.join("rules.next");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.join("rules.yaml")).unwrap();
        match client.post(format!("http://{addr}/-/reload")).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                answers.lock().unwrap().push((status, text));
            }
            Err(_) => break,
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// GET /readyz until `stop`; every answer's status (none when unreachable).
async fn ready_watch(addr: String, stop: Arc<AtomicBool>) -> Vec<Option<u16>> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut seen = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let status = client.get(format!("http://{addr}/readyz")).send().await.ok().map(|r| r.status().as_u16());
        seen.push(status);
        if status.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_reloaded_under_load_lose_nothing_and_stay_ready() {
    let rules = rules_dir(RULES_A);
    let g = Gateway::start_with(Options { rules_dir: Some(rules.path().to_path_buf()), ..Default::default() });
    let stop = Arc::new(AtomicBool::new(false));
    let reloads: Arc<Mutex<Vec<(u16, String)>>> = Arc::default();
    let senders: Vec<_> =
        (0..4).map(|t| tokio::spawn(sender(g.addr.clone(), format!("reload{t}"), 20, stop.clone()))).collect();
    let reload = tokio::spawn(reloader(g.addr.clone(), rules.path().to_path_buf(), stop.clone(), reloads.clone()));
    let ready = tokio::spawn(ready_watch(g.addr.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    let mut sent = Vec::new();
    for s in senders {
        sent.extend(s.await.unwrap());
    }
    reload.await.unwrap();
    let ready = ready.await.unwrap();

    let refused: Vec<_> = sent.iter().filter(|s| !matches!(s.outcome, Outcome::Acked)).collect();
    assert!(refused.is_empty(), "every ingest request answered 2xx during reloads: {refused:?}");
    let reloads = reloads.lock().unwrap().clone();
    assert!(reloads.len() >= 10, "the rules were reloaded many times: {}", reloads.len());
    let bad: Vec<_> = reloads.iter().filter(|(s, _)| *s != 200).collect();
    assert!(bad.is_empty(), "every reload answered 200: {bad:?}");
    assert!(ready.len() >= 10 && ready.iter().all(|s| *s == Some(200)), "/readyz stayed 200: {ready:?}");
    let stored = stored_fingerprints(&g).await;
    check_all_or_nothing(&sent, &stored, None, "after the reloads");
    let total: usize = sent.iter().map(|s| s.fps.len()).sum();
    assert_eq!(stored.len(), total, "every alert is stored, once");
    eprintln!("{} ingest requests ({total} alerts) and {} reloads in 3 s", sent.len(), reloads.len());

    // Both rule versions took effect.
    let (status, body) = get(&g.url("/api/v1/incidents?limit=500")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&g.url("/readyz")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_reload_under_load_loses_no_acknowledged_alert() {
    let rules = rules_dir(RULES_A);
    let mut g = Gateway::start_with(Options { rules_dir: Some(rules.path().to_path_buf()), ..Default::default() });
    let stop = Arc::new(AtomicBool::new(false));
    let reloads: Arc<Mutex<Vec<(u16, String)>>> = Arc::default();
    let senders: Vec<_> =
        (0..4).map(|t| tokio::spawn(sender(g.addr.clone(), format!("kill{t}"), 20, stop.clone()))).collect();
    let reload = tokio::spawn(reloader(g.addr.clone(), rules.path().to_path_buf(), stop.clone(), reloads.clone()));
    // Kill once load and reloads are both well under way.
    let r = reloads.clone();
    wait_for(WAIT, "reloads under way", || {
        let n = r.lock().unwrap().len();
        async move { (n >= 10).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::block_in_place(|| g.kill9());
    let mut sent = Vec::new();
    for s in senders {
        sent.extend(s.await.unwrap());
    }
    stop.store(true, Ordering::SeqCst);
    reload.await.unwrap();
    let reloads = reloads.lock().unwrap().clone();
    let bad: Vec<_> = reloads.iter().filter(|(s, _)| *s != 200).collect();
    assert!(bad.is_empty(), "every answered reload was 200: {bad:?}");
    let refused: Vec<_> = sent.iter().filter(|s| matches!(s.outcome, Outcome::Refused(..))).collect();
    assert!(refused.is_empty(), "no request was refused before the kill: {refused:?}");
    let acked = sent.iter().filter(|s| matches!(s.outcome, Outcome::Acked)).count();
    assert!(acked > 0, "requests were acknowledged before the kill");

    tokio::task::block_in_place(|| g.restart());
    let (status, body) = get(&g.url("/readyz")).await;
    assert_eq!(status, 200, "ready after kill -9 and restart: {body}");
    let stored = stored_fingerprints(&g).await;
    check_all_or_nothing(&sent, &stored, None, "after kill -9 during reloads");
    eprintln!(
        "{acked} acknowledged requests, {} without an answer, {} reloads before the kill",
        sent.len() - acked,
        reloads.len()
    );
    let (status, answer) = post(&g.url("/api/v2/alerts"), &batch("after-kill", 5, 0).1).await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = post(&g.url("/-/reload"), "").await;
    assert_eq!(status, 200, "the rules file left by the kill is whole: {answer}");
}

// ---- one gateway per data directory -------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gateway_on_the_same_data_directory_is_refused() {
    let rules = rules_dir(RULES);
    let mut g = Gateway::start_with(Options {
        database_url: Some(String::new()), // SQLite's own files are what this tests
        rules_dir: Some(rules.path().to_path_buf()),
        ..Default::default()
    });
    let (code, out, err) = serve_expecting_refusal(&g.args);
    assert_eq!(code, Some(1), "stdout: {out}\nstderr: {err}");
    assert!(err.contains("another alertgate is serving the data directory"), "{err}");
    assert!(!out.contains("listening"), "{out}");
    // The first one is untouched and still serves.
    let (status, _) = post(&g.url("/api/v2/alerts"), &batch("lock", 1, 0).1).await;
    assert_eq!(status, 200);
    // A killed gateway leaves no stale lock behind.
    g.restart();
    let (status, _) = post(&g.url("/api/v2/alerts"), &batch("lock2", 1, 0).1).await;
    assert_eq!(status, 200);
}

// ---- rule files caught mid-write -----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_rule_set_is_refused_by_check_serve_and_reload() {
    let rules = rules_dir(RULES);
    let empty = tempfile::tempdir().unwrap();
    let truncated = rules_dir("");
    let check = |dir: &std::path::Path, config: Option<&std::path::Path>| {
        let mut cmd = Command::new(BIN);
        cmd.args(["check", "--rules", &dir.display().to_string()]);
        if let Some(c) = config {
            cmd.args(["--config", &c.display().to_string()]);
        }
        run_to_exit(&mut cmd, Duration::from_secs(30))
    };
    let (status, out, _) = check(empty.path(), None);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("no incident rules") && out.contains("allow_empty: true"), "{out}");
    let (status, out, _) = check(truncated.path(), None);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("rules.yaml: the file is empty"), "{out}");
    let cfg = tempfile::tempdir().unwrap();
    let allow = cfg.path().join("alertgate.yml");
    std::fs::write(&allow, "allow_empty: true\n").unwrap();
    let (status, out, _) = check(truncated.path(), Some(&allow));
    assert_eq!(status.code(), Some(0), "allowed by the config: {out}");

    // serve refuses to start without incident rules.
    let data = tempfile::tempdir().unwrap();
    let args: Vec<String> = ["serve", "--listen", "127.0.0.1:0", "--data-dir"]
        .iter()
        .map(|s| s.to_string())
        .chain([data.path().display().to_string(), "--rules".into(), truncated.path().display().to_string()])
        .collect();
    let (code, _, err) = serve_expecting_refusal(&args);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("the file is empty"), "{err}");

    // A reload that finds the file truncated keeps the old rules.
    let g = Gateway::start_with(Options { rules_dir: Some(rules.path().to_path_buf()), ..Default::default() });
    std::fs::write(rules.path().join("rules.yaml"), "").unwrap();
    let (status, body) = post(&g.url("/-/reload"), "").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"]["errors"].to_string().contains("the file is empty"), "{body}");
    let (status, body) = post(&g.url("/api/v2/alerts"), &batch("after-truncate", 1, 0).1).await;
    assert_eq!(status, 200, "{body}");
    let incidents = wait_for(WAIT, "an incident from the old rules", || async {
        let (_, page) = get(&g.url("/api/v1/incidents")).await;
        page["incidents"].as_array().filter(|l| !l.is_empty()).cloned()
    })
    .await;
    assert_eq!(incidents[0]["rule"], "by-name");
}
