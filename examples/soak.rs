//! Fairness and soak runs of a real alertgate: one sender abuses its limits
//! while well-behaved senders measure their latency; in the soak, a slow
//! webhook receiver and restarts (SIGTERM and kill -9, alternating) join in,
//! and at the end every acknowledged alert is looked for.
//!
//! ```text
//! cargo build --release --examples
//! target/release/examples/soak --bin target/release/alertgate --mode fairness --duration 30
//! target/release/examples/soak --bin target/release/alertgate --mode soak --duration 300
//! ```
//!
//! Only loopback addresses are contacted.
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const GOOD: &str = "good-sender-token-0123456789";
const ABUSER: &str = "abusive-sender-token-0123456789";
const ADMIN: &str = "admin-token-0123456789abcdef";

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// One sender posts maximum-size requests as fast as its limits let it;
    /// another sends small batches and measures its latency.
    Fairness,
    /// Fairness, plus strangers, a slow webhook receiver and restarts; ends
    /// by counting lost acknowledged alerts.
    Soak,
}

#[derive(Parser, Debug)]
#[command(name = "soak", about = "Fairness and soak runs against a real alertgate (loopback only)")]
struct Args {
    /// The alertgate binary to run.
    #[arg(long)]
    bin: PathBuf,
    #[arg(long, value_enum, default_value_t = Mode::Fairness)]
    mode: Mode,
    /// Seconds to run.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Alerts per request of the abusive sender (the gateway's default cap).
    #[arg(long, default_value_t = 10_000)]
    abusive_batch: usize,
    /// Concurrent connections of the abusive sender.
    #[arg(long, default_value_t = 2)]
    abusive_connections: usize,
    /// Well-behaved senders, each sending one batch of 10 alerts every 100 ms.
    #[arg(long, default_value_t = 2)]
    senders: usize,
    /// Seconds between restarts in the soak.
    #[arg(long, default_value_t = 30.0)]
    restart_every: f64,
    /// Rules directory.
    #[arg(long, default_value = "./rules")]
    rules: PathBuf,
}

fn sha(t: &str) -> String {
    hex::encode(Sha256::digest(t.as_bytes()))
}

/// The gateway under test: one data directory, restarted in place.
struct Gateway {
    bin: PathBuf,
    dir: PathBuf,
    rules: PathBuf,
    child: Option<Child>,
    url: Arc<Mutex<String>>,
    peak_rss_kib: u64,
}

impl Gateway {
    fn config(receiver: Option<&str>) -> String {
        let mut c = format!(
            "auth:\n  tokens:\n    - {{name: good, role: ingest, token_sha256: \"{}\"}}\n    - {{name: abuser, role: ingest, token_sha256: \"{}\"}}\n    - {{name: root, role: admin, token_sha256: \"{}\"}}\nlimits:\n  ingest: {{per_second: 20, burst: 40, alerts_per_second: 50000, alerts_burst: 100000}}\n",
            sha(GOOD),
            sha(ABUSER),
            sha(ADMIN)
        );
        if let Some(url) = receiver {
            c.push_str(&format!(
                "notifiers:\n  - {{name: pager, type: webhook, url: \"{url}\", timeout: 5s}}\noutbox: {{initial_backoff: 1s, max_backoff: 5s, max_age: 1h}}\n"
            ));
        }
        c
    }

    fn start(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("alertgate.log"))?;
        let mut child = Command::new(&self.bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(self.dir.join("data"))
            .arg("--rules")
            .arg(&self.rules)
            .arg("--config")
            .arg(self.dir.join("alertgate.yml"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let line = lines.next().context("alertgate exited at start")??;
        std::thread::spawn(move || for _ in lines {});
        let addr = line.strip_prefix("alertgate listening on ").context("no listening line")?.to_owned();
        *self.url.lock().unwrap() = format!("http://{addr}");
        self.child = Some(child);
        Ok(())
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn note_rss(&mut self) {
        if let Some(pid) = self.pid()
            && let Some(kib) = status_kib(pid, "VmHWM:")
        {
            self.peak_rss_kib = self.peak_rss_kib.max(kib);
        }
    }

    /// Stop it: SIGTERM (and wait) or kill -9.
    fn stop(&mut self, hard: bool) {
        self.note_rss();
        let Some(mut child) = self.child.take() else { return };
        if hard {
            let _ = child.kill();
        } else {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        }
        let _ = child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop(true);
    }
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
}

fn alerts(tag: &str, seq: u64, n: usize) -> (Vec<String>, String) {
    let mut keys = Vec::with_capacity(n);
    let list: Vec<Value> = (0..n)
        .map(|i| {
            let key = format!("{tag}-{seq}-{i}");
            keys.push(key.clone());
            json!({"labels": {"alertname": "Soak", "sender": tag, "key": key, "service": format!("svc-{}", i % 20)}})
        })
        .collect();
    (keys, Value::Array(list).to_string())
}

#[derive(Default)]
struct SenderStats {
    latencies_ms: Mutex<Vec<f64>>,
    acked: Mutex<BTreeSet<String>>,
    refused: AtomicU64,
    failed: AtomicU64,
}

/// Post `body` as `token`; Ok(status) or Err on a transport error.
async fn post(client: &reqwest::Client, url: &str, token: &str, body: String) -> Result<u16> {
    let resp = client
        .post(format!("{url}/api/v2/alerts"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    Ok(resp.status().as_u16())
}

async fn well_behaved(tag: String, url: Arc<Mutex<String>>, stop: Arc<AtomicBool>, stats: Arc<SenderStats>) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut seq = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        seq += 1;
        let (keys, body) = alerts(&tag, seq, 10);
        let target = url.lock().unwrap().clone();
        let started = Instant::now();
        match post(&client, &target, GOOD, body).await {
            Ok(200) => {
                stats.latencies_ms.lock().unwrap().push(started.elapsed().as_secs_f64() * 1000.0);
                stats.acked.lock().unwrap().extend(keys);
            }
            Ok(_) => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
            }
            // A restart in progress: the sender retries with its next batch.
            Err(_) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn abusive(url: Arc<Mutex<String>>, stop: Arc<AtomicBool>, batch: usize, stats: Arc<SenderStats>) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let (keys, body) = alerts("abuser", seq, batch);
        let target = url.lock().unwrap().clone();
        match post(&client, &target, ABUSER, body).await {
            Ok(200) => stats.acked.lock().unwrap().extend(keys),
            Ok(429) => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(_) => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Strangers: PagerDuty bodies of 4 MiB without credentials, and idle connections.
async fn strangers(url: Arc<Mutex<String>>, stop: Arc<AtomicBool>) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let body = format!("{{\"payload\":{{\"summary\":\"{}\"}}}}", "x".repeat(4 << 20));
    while !stop.load(Ordering::Relaxed) {
        let target = url.lock().unwrap().clone();
        let _ = client
            .post(format!("{target}/v2/enqueue"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        let addr = target.trim_start_matches("http://").to_owned();
        let _idle: Vec<_> = (0..50).filter_map(|_| std::net::TcpStream::connect(&addr).ok()).collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A webhook receiver that answers slowly, and every fifth request 503.
async fn slow_receiver(received: Arc<AtomicU64>) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            n += 1;
            let received = received.clone();
            let fail = n.is_multiple_of(5);
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = vec![0u8; 1 << 16];
                let mut got = Vec::new();
                loop {
                    let Ok(k) = sock.read(&mut buf).await else { return };
                    if k == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..k]);
                    let text = String::from_utf8_lossy(&got);
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let len: usize = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
                            })
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        if got.len() >= head_end + 4 + len {
                            break;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(1500)).await;
                let status = if fail { "503 Service Unavailable" } else { "200 OK" };
                if !fail {
                    received.fetch_add(1, Ordering::Relaxed);
                }
                let _ = sock
                    .write_all(
                        format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes(),
                    )
                    .await;
            });
        }
    });
    Ok(format!("http://{addr}/hook"))
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

/// Every alert key the gateway stores, through the paged API.
async fn stored_keys(url: &str) -> Result<BTreeSet<String>> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let mut keys = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut u = format!("{url}/api/v1/alerts?limit=1000");
        if let Some(c) = &cursor {
            u.push_str(&format!("&cursor={c}"));
        }
        let page: Value = client.get(&u).bearer_auth(ADMIN).send().await?.json().await?;
        for a in page["alerts"].as_array().context("alerts")? {
            if let Some(k) = a["labels"]["key"].as_str() {
                keys.insert(k.to_owned());
            }
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok(keys),
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("alertgate-soak-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("data"))?;
    let received = Arc::new(AtomicU64::new(0));
    let receiver = match args.mode {
        Mode::Soak => Some(slow_receiver(received.clone()).await?),
        Mode::Fairness => None,
    };
    std::fs::write(dir.join("alertgate.yml"), Gateway::config(receiver.as_deref()))?;
    let rules = if receiver.is_some() {
        let r = dir.join("rules");
        std::fs::create_dir_all(&r)?;
        std::fs::write(
            r.join("soak.yaml"),
            "incident_rules:\n  - name: by-service\n    matchers: []\n    group_by: [sender, service]\n    title: \"{{ labels.sender }} {{ labels.service }}\"\n    notify: [pager]\n",
        )?;
        r
    } else {
        args.rules.clone()
    };
    let mut g = Gateway {
        bin: args.bin.clone(),
        dir: dir.clone(),
        rules,
        child: None,
        url: Arc::new(Mutex::new(String::new())),
        peak_rss_kib: 0,
    };
    g.start()?;
    let stop = Arc::new(AtomicBool::new(false));
    let good = Arc::new(SenderStats::default());
    let bad = Arc::new(SenderStats::default());
    let mut tasks = Vec::new();
    for i in 0..args.senders {
        tasks.push(tokio::spawn(well_behaved(format!("good{i}"), g.url.clone(), stop.clone(), good.clone())));
    }
    for _ in 0..args.abusive_connections {
        tasks.push(tokio::spawn(abusive(g.url.clone(), stop.clone(), args.abusive_batch, bad.clone())));
    }
    if args.mode == Mode::Soak {
        tasks.push(tokio::spawn(strangers(g.url.clone(), stop.clone())));
    }
    let started = Instant::now();
    let mut restarts: u32 = 0;
    let mut next_restart = Duration::from_secs_f64(args.restart_every);
    while started.elapsed() < Duration::from_secs_f64(args.duration) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        g.note_rss();
        if args.mode == Mode::Soak && started.elapsed() >= next_restart {
            restarts += 1;
            let hard = restarts.is_multiple_of(2);
            eprintln!("[soak] restart {restarts} ({})", if hard { "kill -9" } else { "SIGTERM" });
            g.stop(hard);
            g.start()?;
            next_restart += Duration::from_secs_f64(args.restart_every);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    g.note_rss();
    let url = g.url.lock().unwrap().clone();
    let stored = stored_keys(&url).await?;
    let acked: BTreeSet<String> =
        good.acked.lock().unwrap().iter().chain(bad.acked.lock().unwrap().iter()).cloned().collect();
    let lost = acked.difference(&stored).count();
    let mut lat = good.latencies_ms.lock().unwrap().clone();
    lat.sort_by(f64::total_cmp);
    let secs = started.elapsed().as_secs_f64();
    println!("mode: {:?}, {secs:.0} s, {restarts} restarts", args.mode);
    println!(
        "well-behaved senders: {} requests acknowledged, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} refused, {} transport errors",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN),
        good.refused.load(Ordering::Relaxed),
        good.failed.load(Ordering::Relaxed)
    );
    let abusive_acked = bad.acked.lock().unwrap().len();
    println!(
        "abusive sender ({} alerts per request): {} alerts acknowledged ({:.0}/s), {} refused, {} transport errors",
        args.abusive_batch,
        abusive_acked,
        abusive_acked as f64 / secs,
        bad.refused.load(Ordering::Relaxed),
        bad.failed.load(Ordering::Relaxed)
    );
    if receiver.is_some() {
        println!("slow receiver: {} notifications accepted", received.load(Ordering::Relaxed));
    }
    println!("acknowledged alerts: {}, stored: {}, lost = {lost}", acked.len(), stored.len());
    println!("peak RSS: {:.1} MiB", g.peak_rss_kib as f64 / 1024.0);
    drop(g);
    let _ = std::fs::remove_dir_all(&dir);
    if lost > 0 {
        bail!("{lost} acknowledged alerts are missing");
    }
    std::io::stdout().flush()?;
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !Path::new(&args.bin).exists() {
        bail!("no binary at {}", args.bin.display());
    }
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(run(args))
}
