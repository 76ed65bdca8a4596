//! alertgate load generator.
//!
//! Posts batches of alerts at an alertgate server (or, for comparison, at a
//! Prometheus Alertmanager) over HTTP/1.1 keep-alive connections and reports
//! accepted alerts/s, request latency, server CPU per alert and peak RSS.
//!
//! ```text
//! cargo run --release --example loadgen -- --spawn-alertgate target/release/alertgate \
//!     --duration 10 --compare-alertmanager
//! cargo run --release --example loadgen -- --target http://127.0.0.1:8080 --pid 1234 \
//!     --format alertmanager --preload 1000000 --json
//! ```
//!
//! Only loopback targets (127.0.0.0/8, localhost, [::1]) are accepted.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, ValueEnum};
use serde::Serialize;

const AM_BINARY: &str = "/usr/bin/prometheus-alertmanager";
const GENERATOR_URL: &str = "http://127.0.0.1:9090/graph";
const EXTERNAL_URL: &str = "http://127.0.0.1:9093";
/// A worker gives up after this many consecutive transport errors (server gone).
const MAX_CONSECUTIVE_ERRORS: u32 = 50;

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum FormatArg {
    /// Alertmanager webhook v4 payload to /api/v1/ingest/alertmanager.
    Alertmanager,
    /// Prometheus push payload (JSON array) to /api/v2/alerts.
    V2,
    /// Both, as two measured phases one after the other.
    Both,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Scenario {
    /// Requests cycle in order through the whole fingerprint range.
    Distinct,
    /// Heavy duplicates: --fingerprints defaults to 100.
    Duplicate,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Format {
    Alertmanager,
    V2,
}

impl Format {
    fn path(self) -> &'static str {
        match self {
            Format::Alertmanager => "/api/v1/ingest/alertmanager",
            Format::V2 => "/api/v2/alerts",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Format::Alertmanager => "alertmanager",
            Format::V2 => "v2",
        }
    }
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "loadgen",
    about = "Load generator for alertgate (and Prometheus Alertmanager for comparison)",
    after_help = "Exactly one of --target or --spawn-alertgate is required. \
                  Only loopback addresses are ever contacted."
)]
struct Args {
    /// Base URL of an already-running alertgate (loopback only), e.g. http://127.0.0.1:8080.
    #[arg(long, conflicts_with = "spawn_alertgate")]
    target: Option<String>,

    /// PID of the server behind --target, to measure its CPU time and peak RSS.
    #[arg(long, requires = "target")]
    pid: Option<u32>,

    /// Start this alertgate binary (`BIN serve --listen 127.0.0.1:0 ...`) and load it.
    #[arg(long, value_name = "BIN")]
    spawn_alertgate: Option<PathBuf>,

    /// Rules directory passed to the spawned alertgate.
    #[arg(long, default_value = "./rules")]
    rules: PathBuf,

    /// Instead of --rules, generate N incident rules for the spawned
    /// alertgate: N-1 that never match (equality and regex matchers, as
    /// many a large shop has) and a last catch-all grouping by alertname and
    /// instance, so every alert is checked against all N. 0 writes an empty
    /// rule set (no correlation), the baseline.
    #[arg(long, value_name = "N")]
    generate_rules: Option<usize>,

    /// Spawn this many gateways (they must share a database: give
    /// --postgres) and spread the connections over them, round robin.
    #[arg(long, default_value_t = 1, requires = "spawn_alertgate")]
    gateways: usize,

    /// Run the spawned gateways on a fresh PostgreSQL database made on this
    /// server (and dropped after), e.g. postgres://postgres@127.0.0.1/postgres;
    /// the database server's CPU time is measured too.
    #[arg(long, value_name = "URL", requires = "spawn_alertgate")]
    postgres: Option<String>,

    /// Extra argument for the spawned alertgate (repeatable), e.g. --alertgate-arg=--foo.
    #[arg(long = "alertgate-arg", value_name = "ARG", allow_hyphen_values = true)]
    alertgate_args: Vec<String>,

    /// Keep the spawned servers' temp directories (data, logs) instead of removing them.
    #[arg(long)]
    keep_data: bool,

    /// Also start /usr/bin/prometheus-alertmanager and run the same v2 load against it.
    #[arg(long)]
    compare_alertmanager: bool,

    /// Payload format / endpoint.
    #[arg(long, value_enum, default_value_t = FormatArg::V2)]
    format: FormatArg,

    /// Traffic shape.
    #[arg(long, value_enum, default_value_t = Scenario::Distinct)]
    scenario: Scenario,

    /// Concurrent workers, each with its own keep-alive connection.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,

    /// Alerts per request.
    #[arg(long, default_value_t = 100)]
    batch: usize,

    /// Distinct alerts (label sets) cycled through [default: 10000, or 100 with --scenario duplicate].
    #[arg(long)]
    fingerprints: Option<u64>,

    /// Measured phase length in seconds [default: 10 unless --requests is given].
    #[arg(long)]
    duration: Option<f64>,

    /// Total requests in the measured phase (stops at whichever of --duration/--requests comes first).
    #[arg(long)]
    requests: Option<u64>,

    /// Hard cap in seconds on a measured phase run with only --requests.
    #[arg(long, default_value_t = 600.0)]
    max_time: f64,

    /// Before measuring, post this many distinct alerts (disjoint fingerprints) as fast as possible.
    #[arg(long, default_value_t = 0)]
    preload: u64,

    /// Before measuring, post every alert of the measured set once, unmeasured,
    /// so the measured phase sees them all open (the steady state of a
    /// Prometheus that re-sends its firing alerts every minute).
    #[arg(long)]
    warmup: bool,

    /// Alerts per request during preload.
    #[arg(long, default_value_t = 1000)]
    preload_batch: usize,

    /// Hard cap in seconds on the preload phase.
    #[arg(long, default_value_t = 1800.0)]
    preload_timeout: f64,

    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 30.0)]
    request_timeout: f64,

    /// Seconds to wait for a server to become ready.
    #[arg(long, default_value_t = 60.0)]
    ready_timeout: f64,

    /// Readiness path polled on --target.
    #[arg(long, default_value = "/healthz")]
    ready_path: String,

    /// Load-generator runtime threads (1 = single-threaded; the tool shares the cores with the server).
    #[arg(long, default_value_t = 1)]
    threads: usize,

    /// Print one JSON object with all figures instead of the readable report.
    #[arg(long)]
    json: bool,
}

// ---------------------------------------------------------------------------
// Alert generation
// ---------------------------------------------------------------------------

/// Prometheus `model.LabelSet.Fingerprint`: FNV-1a 64 over sorted
/// (name, 0xff, value, 0xff) bytes.
fn fingerprint(labels: &[(&str, &str)]) -> u64 {
    const OFFSET: u64 = 14695981039346656037;
    const PRIME: u64 = 1099511628211;
    let mut sorted: Vec<&(&str, &str)> = labels.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = OFFSET;
    let mut add = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for (name, value) in sorted {
        add(name.as_bytes());
        add(&[0xff]);
        add(value.as_bytes());
        add(&[0xff]);
    }
    h
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("string serialization cannot fail")
}

fn json_obj(pairs: &[(&str, &str)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&json_str(k));
        out.push(':');
        out.push_str(&json_str(v));
    }
    out.push('}');
    out
}

/// JSON for one alert with fingerprint index `k`. For `v2` the fragment ends
/// right after `"endsAt":"` so that a fresh endsAt can be appended.
fn alert_fragment(format: Format, k: u64, starts_at: &str) -> String {
    let alertname = format!("LoadTest{}", k % 50);
    let instance = format!("host-{k}:9100");
    let severity = if k.is_multiple_of(5) { "critical" } else { "warning" };
    let labels =
        [("alertname", alertname.as_str()), ("instance", instance.as_str()), ("job", "node"), ("severity", severity)];
    let summary = format!("Load test alert {k}");
    let annotations =
        [("summary", summary.as_str()), ("description", "Synthetic alert generated by alertgate loadgen")];
    let labels_json = json_obj(&labels);
    let ann_json = json_obj(&annotations);
    match format {
        Format::Alertmanager => format!(
            "{{\"status\":\"firing\",\"labels\":{labels_json},\"annotations\":{ann_json},\
             \"startsAt\":\"{starts_at}\",\"endsAt\":\"0001-01-01T00:00:00Z\",\
             \"generatorURL\":\"{GENERATOR_URL}\",\"fingerprint\":\"{:016x}\"}}",
            fingerprint(&labels)
        ),
        Format::V2 => format!(
            "{{\"labels\":{labels_json},\"annotations\":{ann_json},\"startsAt\":\"{starts_at}\",\
             \"generatorURL\":\"{GENERATOR_URL}\",\"endsAt\":\""
        ),
    }
}

/// Builds request bodies cheaply from (optionally pre-generated) fragments.
struct BodyGen {
    format: Format,
    /// Pre-generated fragments for `base..base+count`; `None` = generate on the fly.
    fragments: Option<Vec<String>>,
    base: u64,
    count: u64,
    batch: usize,
    /// Cycle modulo `count` (measured phase) or stop at `count` (preload).
    wrap: bool,
    starts_at: String,
    am_header: String,
    avg_len: usize,
}

impl BodyGen {
    fn new(format: Format, base: u64, count: u64, batch: usize, wrap: bool, pregen: bool) -> Self {
        let starts_at =
            jiff::Timestamp::from_second(wall_clock().as_second()).expect("current time is in range").to_string();
        let fragments =
            pregen.then(|| (0..count).map(|i| alert_fragment(format, base + i, &starts_at)).collect::<Vec<_>>());
        let avg_len = alert_fragment(format, base, &starts_at).len() + 32;
        let am_header = format!(
            "{{\"version\":\"4\",\"groupKey\":{},\"status\":\"firing\",\"receiver\":\"alertgate\",\
             \"groupLabels\":{{}},\"commonLabels\":{{}},\"commonAnnotations\":{{}},\
             \"externalURL\":\"{EXTERNAL_URL}\",\"truncatedAlerts\":0,\"alerts\":[",
            json_str("{}:{job=\"node\"}")
        );
        BodyGen { format, fragments, base, count, batch, wrap, starts_at, am_header, avg_len }
    }

    /// Number of requests needed to send every alert once (preload).
    fn requests_for_all(&self) -> u64 {
        self.count.div_ceil(self.batch as u64)
    }

    /// Body for request number `idx`; returns (body, alerts in it).
    fn build(&self, idx: u64, ends_at: &str) -> (Vec<u8>, u64) {
        let (start, n) = if self.wrap {
            ((idx * self.batch as u64) % self.count, self.batch as u64)
        } else {
            let start = idx * self.batch as u64;
            (start, (self.count.saturating_sub(start)).min(self.batch as u64))
        };
        let mut out = String::with_capacity(self.avg_len * n as usize + self.am_header.len() + 8);
        match self.format {
            Format::Alertmanager => out.push_str(&self.am_header),
            Format::V2 => out.push('['),
        }
        let mut tmp;
        for j in 0..n {
            let i = if self.wrap { (start + j) % self.count } else { start + j };
            if j > 0 {
                out.push(',');
            }
            let frag: &str = match &self.fragments {
                Some(f) => &f[i as usize],
                None => {
                    tmp = alert_fragment(self.format, self.base + i, &self.starts_at);
                    &tmp
                }
            };
            out.push_str(frag);
            if self.format == Format::V2 {
                out.push_str(ends_at);
                out.push_str("\"}");
            }
        }
        match self.format {
            Format::Alertmanager => out.push_str("]}"),
            Format::V2 => out.push(']'),
        }
        (out.into_bytes(), n)
    }
}

/// The wall clock: the alerts this tool sends carry real times, like a
/// Prometheus's (`clippy.toml` disallows reading it elsewhere).
#[allow(clippy::disallowed_methods)]
fn wall_clock() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

fn ends_at_now() -> String {
    let now = wall_clock();
    let ends = jiff::Timestamp::from_second(now.as_second() + 240).expect("time in range");
    ends.to_string()
}

// ---------------------------------------------------------------------------
// /proc helpers
// ---------------------------------------------------------------------------

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|v| *v > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime in clock ticks for `pid` ("self" for this process).
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime = field 14, stime = field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The CPU ticks of these processes together (None if any is gone or none given).
fn pids_cpu_ticks(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| cpu_ticks(&p.to_string())).sum()
}

/// A per-process value added up over processes.
fn pids_sum(pids: &[u32], f: impl Fn(u32) -> Option<f64>) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| f(*p)).sum()
}

/// The CPU ticks of every process named `postgres` (the server and its
/// backends, as far as they live through the phase).
fn postgres_cpu_ticks() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres"))
        .filter_map(|pid| cpu_ticks(&pid.to_string()))
        .sum()
}

/// A `VmXXX:  1234 kB` value from /proc/PID/status, in MiB.
fn proc_status_mib(pid: u32, key: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: f64 = line[key.len()..].trim_start_matches(':').split_whitespace().next()?.parse().ok()?;
    Some(kb / 1024.0)
}

// ---------------------------------------------------------------------------
// Load engine
// ---------------------------------------------------------------------------

#[derive(Serialize, Clone, Default)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

#[derive(Serialize, Clone)]
struct PhaseResult {
    server: String,
    phase: String,
    format: Format,
    url: String,
    concurrency: usize,
    batch: usize,
    fingerprints: u64,
    elapsed_s: f64,
    requests_ok: u64,
    requests_non_2xx: u64,
    requests_error: u64,
    alerts_sent: u64,
    alerts_accepted: u64,
    alerts_per_s: f64,
    requests_per_s: f64,
    status_counts: BTreeMap<String, u64>,
    first_non_2xx: Option<String>,
    first_error: Option<String>,
    latency_ms: Latency,
    server_cpu_s: Option<f64>,
    /// CPU time of the PostgreSQL server's processes, when the gateways use one.
    database_cpu_s: Option<f64>,
    cpu_us_per_alert: Option<f64>,
    cpu_s_per_1000_alerts: Option<f64>,
    peak_rss_mib: Option<f64>,
    rss_mib: Option<f64>,
    loadgen_cpu_s: Option<f64>,
}

#[derive(Default)]
struct WorkerStats {
    lat_us: Vec<u32>,
    ok: u64,
    non2xx: u64,
    errors: u64,
    alerts_sent: u64,
    alerts_ok: u64,
    status: BTreeMap<u16, u64>,
    first_non2xx: Option<String>,
    first_error: Option<String>,
}

struct Phase {
    server: String,
    phase: String,
    /// The servers' base URLs: connection i goes to the (i mod n)th.
    base_urls: Vec<String>,
    /// The servers' processes, whose CPU time and memory are added up.
    pids: Vec<u32>,
    /// Also measure the PostgreSQL server's processes.
    database_cpu: bool,
    bodies: Arc<BodyGen>,
    concurrency: usize,
    max_requests: u64,
    time_limit: Duration,
    request_timeout: Duration,
    clk_tck: f64,
}

fn build_client(timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .pool_max_idle_per_host(1)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .timeout(timeout)
        .build()
        .context("building HTTP client")
}

async fn worker(
    client: reqwest::Client,
    url: Arc<str>,
    bodies: Arc<BodyGen>,
    next: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    max_requests: u64,
    deadline: Instant,
) -> WorkerStats {
    let mut st = WorkerStats::default();
    let mut ends_at = ends_at_now();
    let mut ends_at_made = Instant::now();
    let mut consecutive_errors = 0u32;
    loop {
        if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
            break;
        }
        let idx = next.fetch_add(1, Ordering::Relaxed);
        if idx >= max_requests {
            break;
        }
        if bodies.format == Format::V2 && ends_at_made.elapsed() >= Duration::from_secs(1) {
            ends_at = ends_at_now();
            ends_at_made = Instant::now();
        }
        let (body, n) = bodies.build(idx, &ends_at);
        st.alerts_sent += n;
        let t0 = Instant::now();
        let res = client.post(&*url).header("content-type", "application/json").body(body).send().await;
        match res {
            Ok(resp) => {
                let status = resp.status();
                let body = resp.bytes().await;
                let us = t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                match body {
                    Ok(body) => {
                        consecutive_errors = 0;
                        st.lat_us.push(us);
                        *st.status.entry(status.as_u16()).or_default() += 1;
                        if status.is_success() {
                            st.ok += 1;
                            st.alerts_ok += n;
                        } else {
                            st.non2xx += 1;
                            if st.first_non2xx.is_none() {
                                let text = String::from_utf8_lossy(&body);
                                let text: String = text.trim().chars().take(300).collect();
                                st.first_non2xx = Some(format!("{status}: {text}"));
                            }
                        }
                    }
                    Err(e) => {
                        st.errors += 1;
                        consecutive_errors += 1;
                        if st.first_error.is_none() {
                            st.first_error = Some(format!("reading body: {}", error_chain(&e)));
                        }
                    }
                }
            }
            Err(e) => {
                st.errors += 1;
                consecutive_errors += 1;
                if st.first_error.is_none() {
                    st.first_error = Some(error_chain(&e));
                }
            }
        }
        if consecutive_errors >= MAX_CONSECUTIVE_ERRORS {
            stop.store(true, Ordering::Relaxed);
            if st.first_error.is_none() {
                st.first_error = Some("too many consecutive errors".into());
            }
            break;
        }
    }
    st
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

async fn run_phase(p: Phase) -> Result<PhaseResult> {
    let urls: Vec<Arc<str>> = p.base_urls.iter().map(|b| Arc::from(format!("{b}{}", p.bodies.format.path()))).collect();
    let url = urls[0].clone();
    eprintln!(
        "[loadgen] {} {}: {} format={} concurrency={} batch={} fingerprints={}",
        p.server,
        p.phase,
        url,
        p.bodies.format.name(),
        p.concurrency,
        p.bodies.batch,
        p.bodies.count
    );
    let clients = (0..p.concurrency).map(|_| build_client(p.request_timeout)).collect::<Result<Vec<_>>>()?;
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    let cpu0 = pids_cpu_ticks(&p.pids);
    let db0 = p.database_cpu.then(postgres_cpu_ticks);
    let self0 = cpu_ticks("self");
    let start = Instant::now();
    let deadline = start + p.time_limit;
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let url = urls[i % urls.len()].clone();
            tokio::spawn(worker(c, url, p.bodies.clone(), next.clone(), stop.clone(), p.max_requests, deadline))
        })
        .collect();
    let mut all = WorkerStats::default();
    for h in handles {
        let s = h.await.context("worker panicked")?;
        all.lat_us.extend_from_slice(&s.lat_us);
        all.ok += s.ok;
        all.non2xx += s.non2xx;
        all.errors += s.errors;
        all.alerts_sent += s.alerts_sent;
        all.alerts_ok += s.alerts_ok;
        for (k, v) in s.status {
            *all.status.entry(k).or_default() += v;
        }
        all.first_non2xx = all.first_non2xx.or(s.first_non2xx);
        all.first_error = all.first_error.or(s.first_error);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu1 = pids_cpu_ticks(&p.pids);
    let db1 = p.database_cpu.then(postgres_cpu_ticks);
    let self1 = cpu_ticks("self");

    all.lat_us.sort_unstable();
    let lat = &all.lat_us;
    let latency = Latency {
        p50: percentile(lat, 0.50),
        p90: percentile(lat, 0.90),
        p99: percentile(lat, 0.99),
        max: lat.last().map(|&v| f64::from(v) / 1000.0).unwrap_or(0.0),
        mean: if lat.is_empty() {
            0.0
        } else {
            lat.iter().map(|&v| f64::from(v)).sum::<f64>() / lat.len() as f64 / 1000.0
        },
    };
    let server_cpu_s = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / p.clk_tck),
        _ => None,
    };
    let per_alert = |cpu: f64| (all.alerts_ok > 0).then(|| cpu / all.alerts_ok as f64);
    let res = PhaseResult {
        server: p.server.clone(),
        phase: p.phase.clone(),
        format: p.bodies.format,
        url: url.to_string(),
        concurrency: p.concurrency,
        batch: p.bodies.batch,
        fingerprints: p.bodies.count,
        elapsed_s: elapsed,
        requests_ok: all.ok,
        requests_non_2xx: all.non2xx,
        requests_error: all.errors,
        alerts_sent: all.alerts_sent,
        alerts_accepted: all.alerts_ok,
        alerts_per_s: all.alerts_ok as f64 / elapsed,
        requests_per_s: all.ok as f64 / elapsed,
        status_counts: all.status.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        first_non_2xx: all.first_non2xx,
        first_error: all.first_error,
        latency_ms: latency,
        server_cpu_s,
        database_cpu_s: match (db0, db1) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / p.clk_tck),
            _ => None,
        },
        cpu_us_per_alert: server_cpu_s.and_then(per_alert).map(|v| v * 1e6),
        cpu_s_per_1000_alerts: server_cpu_s.and_then(per_alert).map(|v| v * 1000.0),
        peak_rss_mib: pids_sum(&p.pids, |pid| proc_status_mib(pid, "VmHWM")),
        rss_mib: pids_sum(&p.pids, |pid| proc_status_mib(pid, "VmRSS")),
        loadgen_cpu_s: match (self0, self1) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / p.clk_tck),
            _ => None,
        },
    };
    eprintln!(
        "[loadgen] {} {} done: {:.0} alerts/s accepted, {} ok / {} non-2xx / {} errors in {:.2}s",
        res.server,
        res.phase,
        res.alerts_per_s,
        res.requests_ok,
        res.requests_non_2xx,
        res.requests_error,
        res.elapsed_s
    );
    Ok(res)
}

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------

fn check_loopback_url(url: &str) -> Result<String> {
    let url = url.trim_end_matches('/').to_string();
    let rest = url.strip_prefix("http://").ok_or_else(|| anyhow!("--target must be an http:// URL, got {url}"))?;
    let hostport = rest.split('/').next().unwrap_or("");
    if rest.len() != hostport.len() {
        bail!("--target must be a base URL without a path, got {url}");
    }
    let host = if let Some(h) = hostport.strip_prefix('[') {
        h.split(']').next().unwrap_or("")
    } else {
        hostport.rsplit_once(':').map(|(h, _)| h).unwrap_or(hostport)
    };
    let loopback =
        host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false);
    if !loopback {
        bail!("refusing non-loopback target {url}: only 127.0.0.0/8, localhost and [::1] are allowed");
    }
    Ok(url)
}

fn unique_temp_dir(prefix: &str) -> Result<PathBuf> {
    let nanos = wall_clock().as_nanosecond();
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(20);
    lines[from..].join("\n")
}

/// A server process we started; terminated (and its temp dir removed) on drop.
struct Spawned {
    name: &'static str,
    child: Child,
    dir: PathBuf,
    log: PathBuf,
    keep: bool,
    done: bool,
}

impl Spawned {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn shutdown(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        if let Ok(None) = self.child.try_wait() {
            // Ask politely first (SIGTERM to this exact PID), then SIGKILL.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if self.keep {
            eprintln!("[loadgen] kept {} data and log in {}", self.name, self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Write a rule set of `n` incident rules under `dir` (see --generate-rules).
fn generate_rules(dir: &Path, n: usize) -> Result<PathBuf> {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules)?;
    let mut yaml = String::from("incident_rules:\n");
    for i in 0..n.saturating_sub(1) {
        let matcher = match i % 3 {
            0 => format!("'alertname=\"Generated{i}\"'"),
            1 => format!("'job=~\"svc-{i}-.*\"', 'severity=\"critical\"'"),
            _ => format!("'namespace=\"team-{i}\"', 'alertname=~\"Kube.*\"'"),
        };
        yaml.push_str(&format!(
            "  - name: generated-{i}\n    matchers: [{matcher}]\n    group_by: [alertname, namespace]\n    title: \"{{{{ labels.alertname }}}}\"\n"
        ));
    }
    if n > 0 {
        yaml.push_str(
            "  - name: catch-all\n    matchers: []\n    group_by: [alertname, instance]\n    title: \"{{ labels.alertname }} on {{ labels.instance }}\"\n    urgency_from: {label: severity, map: {critical: high, warning: medium}}\n",
        );
    } else {
        // No rules at all: the gateway refuses that unless told it is meant.
        yaml = String::from("incident_rules: []\n");
        std::fs::write(dir.join("alertgate.yml"), "allow_empty: true\n")?;
    }
    std::fs::write(rules.join("generated.yaml"), yaml)?;
    Ok(rules)
}

/// A database of its own on the PostgreSQL server, dropped on drop.
struct FreshDatabase {
    server: String,
    name: String,
    url: String,
}

impl FreshDatabase {
    /// The synchronous client runs a runtime of its own: on a thread of its own.
    fn create(server: &str) -> Result<FreshDatabase> {
        let server = server.to_owned();
        std::thread::spawn(move || FreshDatabase::create_here(&server))
            .join()
            .map_err(|_| anyhow!("making the database panicked"))?
    }

    fn create_here(server: &str) -> Result<FreshDatabase> {
        let config: postgres::Config = server.parse().context("--postgres is not a PostgreSQL URL")?;
        let loopback = config.get_hosts().iter().all(|h| match h {
            postgres::config::Host::Tcp(h) => {
                h == "localhost" || h.parse::<IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
            }
            postgres::config::Host::Unix(_) => true,
        });
        if !loopback {
            bail!("refusing non-loopback --postgres {server}: only 127.0.0.0/8, localhost and [::1] are allowed");
        }
        let url = server.to_owned();
        let name = format!("alertgate_loadgen_{}", std::process::id());
        let mut admin = postgres::Client::connect(&url, postgres::NoTls).context("connecting to --postgres")?;
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
        admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
        let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
        eprintln!("[loadgen] made database {name}");
        Ok(FreshDatabase { server: url.clone(), url: format!("{base}/{name}"), name })
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(mut admin) = postgres::Client::connect(&server, postgres::NoTls) {
                let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        })
        .join();
    }
}

fn spawn_alertgate(args: &Args, bin: &Path, extra: &[String]) -> Result<(Spawned, String)> {
    let dir = unique_temp_dir("alertgate-loadgen")?;
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let log = dir.join("alertgate.log");
    let logf = std::fs::File::create(&log)?;
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(&data)
        .arg("--rules")
        .arg(match args.generate_rules {
            Some(n) => generate_rules(&dir, n)?,
            None => args.rules.clone(),
        })
        .args(if args.generate_rules == Some(0) {
            vec!["--config".into(), dir.join("alertgate.yml").display().to_string()]
        } else {
            vec![]
        })
        .args(&args.alertgate_args)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(logf.try_clone()?));
    eprintln!("[loadgen] starting {:?}", cmd);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e).with_context(|| format!("starting {}", bin.display()));
        }
    };
    let stdout = child.stdout.take().expect("piped stdout");
    let spawned = Spawned { name: "alertgate", child, dir, log: log.clone(), keep: args.keep_data, done: false };
    // Read stdout on a thread: the first "listening on" line goes to the
    // channel, everything (including it) is appended to the log file.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut logf = logf;
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(logf, "{line}");
            if line.contains("listening on")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(line);
            }
        }
    });
    let line = match rx.recv_timeout(Duration::from_secs_f64(args.ready_timeout)) {
        Ok(l) => l,
        Err(_) => bail!(
            "alertgate did not print its listening line within {}s; log tail ({}):\n{}",
            args.ready_timeout,
            log.display(),
            log_tail(&log)
        ),
    };
    let addr_text = line.split("listening on").nth(1).map(str::trim).unwrap_or_default();
    let addr: SocketAddr = addr_text.parse().with_context(|| format!("parsing address from {line:?}"))?;
    if !addr.ip().is_loopback() {
        bail!("alertgate bound to a non-loopback address: {addr}");
    }
    let url = format!("http://127.0.0.1:{}", addr.port());
    Ok((spawned, url))
}

fn spawn_alertmanager(args: &Args) -> Result<(Spawned, String)> {
    if !Path::new(AM_BINARY).exists() {
        bail!("{AM_BINARY} not found (apt-get install prometheus-alertmanager)");
    }
    let dir = unique_temp_dir("alertmanager-loadgen")?;
    let storage = dir.join("data");
    std::fs::create_dir_all(&storage)?;
    let config = dir.join("alertmanager.yml");
    std::fs::write(&config, "route:\n  receiver: \"null\"\nreceivers:\n  - name: \"null\"\n")?;
    let log = dir.join("alertmanager.log");
    let logf = std::fs::File::create(&log)?;
    let port = free_port()?;
    let mut cmd = Command::new(AM_BINARY);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .arg(format!("--storage.path={}", storage.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::from(logf.try_clone()?))
        .stderr(Stdio::from(logf));
    eprintln!("[loadgen] starting {:?}", cmd);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e).with_context(|| format!("starting {AM_BINARY}"));
        }
    };
    let spawned = Spawned { name: "alertmanager", child, dir, log, keep: args.keep_data, done: false };
    Ok((spawned, format!("http://127.0.0.1:{port}")))
}

/// Poll `GET url` until 200, bounded by `timeout`.
async fn wait_ready(url: &str, timeout: Duration, mut proc: Option<&mut Spawned>) -> Result<()> {
    let client = build_client(Duration::from_secs(2))?;
    let start = Instant::now();
    let mut last = String::from("no attempt");
    while start.elapsed() < timeout {
        if let Some(p) = proc.as_deref_mut()
            && let Ok(Some(status)) = p.child.try_wait()
        {
            bail!(
                "{} exited ({status}) before becoming ready; log tail ({}):\n{}",
                p.name,
                p.log.display(),
                log_tail(&p.log)
            );
        }
        match client.get(url).send().await {
            Ok(r) if r.status().as_u16() == 200 => {
                eprintln!("[loadgen] {url} ready after {:.2}s", start.elapsed().as_secs_f64());
                return Ok(());
            }
            Ok(r) => last = format!("status {}", r.status()),
            Err(e) => last = error_chain(&e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tail = proc.map(|p| format!("; log tail ({}):\n{}", p.log.display(), log_tail(&p.log))).unwrap_or_default();
    bail!("{url} not ready within {:.0}s (last: {last}){tail}", timeout.as_secs_f64())
}

// ---------------------------------------------------------------------------
// Orchestration
// ---------------------------------------------------------------------------

#[derive(Serialize)]
struct ServerReport {
    server: String,
    url: String,
    pid: Option<u32>,
    spawned: bool,
    preload: Option<PhaseResult>,
    runs: Vec<PhaseResult>,
}

#[derive(Serialize)]
struct Comparison {
    format: Format,
    alertgate_alerts_per_s: f64,
    alertmanager_alerts_per_s: f64,
    alerts_per_s_ratio: Option<f64>,
    alertgate_cpu_us_per_alert: Option<f64>,
    alertmanager_cpu_us_per_alert: Option<f64>,
    cpu_per_alert_ratio: Option<f64>,
    alertgate_peak_rss_mib: Option<f64>,
    alertmanager_peak_rss_mib: Option<f64>,
}

#[derive(Serialize)]
struct Report {
    scenario: Scenario,
    format: FormatArg,
    concurrency: usize,
    batch: usize,
    fingerprints: u64,
    duration_s: Option<f64>,
    requests: Option<u64>,
    preload: u64,
    preload_batch: usize,
    loadgen_threads: usize,
    clk_tck: f64,
    servers: Vec<ServerReport>,
    comparison: Option<Comparison>,
}

struct Plan {
    fingerprints: u64,
    max_requests: u64,
    time_limit: Duration,
    clk_tck: f64,
}

/// Preload (if asked) then one measured phase per format, against one server.
async fn load_server(
    args: &Args,
    plan: &Plan,
    name: &str,
    urls: &[String],
    pids: &[u32],
    formats: &[Format],
) -> Result<(Option<PhaseResult>, Vec<PhaseResult>)> {
    let database_cpu = name == "alertgate" && args.postgres.is_some();
    let request_timeout = Duration::from_secs_f64(args.request_timeout);
    // Send every alert of `bodies` once, as fast as possible, unmeasured.
    let send_all_once = |phase: &str, bodies: BodyGen| {
        let max_requests = bodies.requests_for_all();
        run_phase(Phase {
            server: name.to_string(),
            phase: phase.into(),
            base_urls: urls.to_vec(),
            pids: pids.to_vec(),
            database_cpu,
            bodies: Arc::new(bodies),
            concurrency: args.concurrency,
            max_requests,
            time_limit: Duration::from_secs_f64(args.preload_timeout),
            request_timeout,
            clk_tck: plan.clk_tck,
        })
    };
    let preload = if args.preload > 0 {
        // Disjoint fingerprint indices: plan.fingerprints.. upwards.
        let bodies = BodyGen::new(formats[0], plan.fingerprints, args.preload, args.preload_batch, false, false);
        Some(send_all_once("preload", bodies).await?)
    } else {
        None
    };
    if args.warmup {
        let bodies = BodyGen::new(formats[0], 0, plan.fingerprints, args.batch, false, false);
        let warm = send_all_once("warmup", bodies).await?;
        eprintln!("[loadgen] {name} warmup: {} alerts sent once", warm.alerts_accepted);
    }
    let mut runs = Vec::new();
    for &format in formats {
        let bodies = BodyGen::new(format, 0, plan.fingerprints, args.batch, true, true);
        runs.push(
            run_phase(Phase {
                server: name.to_string(),
                phase: "measure".into(),
                base_urls: urls.to_vec(),
                pids: pids.to_vec(),
                database_cpu,
                bodies: Arc::new(bodies),
                concurrency: args.concurrency,
                max_requests: plan.max_requests,
                time_limit: plan.time_limit,
                request_timeout,
                clk_tck: plan.clk_tck,
            })
            .await?,
        );
    }
    Ok((preload, runs))
}

async fn run(args: Args) -> Result<Report> {
    if args.concurrency == 0 || args.batch == 0 || args.preload_batch == 0 {
        bail!("--concurrency, --batch and --preload-batch must be positive");
    }
    let fingerprints = args.fingerprints.unwrap_or(match args.scenario {
        Scenario::Distinct => 10_000,
        Scenario::Duplicate => 100,
    });
    if fingerprints == 0 {
        bail!("--fingerprints must be positive");
    }
    let duration = match (args.duration, args.requests) {
        (Some(d), _) => Some(d),
        (None, None) => Some(10.0),
        (None, Some(_)) => None,
    };
    if let Some(d) = duration
        && !(d > 0.0 && d.is_finite())
    {
        bail!("--duration must be positive");
    }
    let plan = Plan {
        fingerprints,
        max_requests: args.requests.unwrap_or(u64::MAX),
        time_limit: Duration::from_secs_f64(duration.unwrap_or(args.max_time).min(args.max_time)),
        clk_tck: clk_tck(),
    };
    let mut formats = match args.format {
        FormatArg::Alertmanager => vec![Format::Alertmanager],
        FormatArg::V2 => vec![Format::V2],
        FormatArg::Both => vec![Format::Alertmanager, Format::V2],
    };
    if args.compare_alertmanager && !formats.contains(&Format::V2) {
        formats.push(Format::V2);
    }
    let ready_timeout = Duration::from_secs_f64(args.ready_timeout);

    let mut servers = Vec::new();
    if let Some(bin) = &args.spawn_alertgate {
        if args.gateways == 0 || (args.gateways > 1 && args.postgres.is_none()) {
            bail!("--gateways N needs N >= 1, and more than one needs --postgres (a shared database)");
        }
        let database = args.postgres.as_deref().map(FreshDatabase::create).transpose()?;
        let mut procs = Vec::new();
        let mut urls = Vec::new();
        for _ in 0..args.gateways {
            let extra: Vec<String> =
                database.iter().flat_map(|d| ["--database-url".to_owned(), d.url.clone()]).collect();
            let (mut proc, url) = spawn_alertgate(&args, bin, &extra)?;
            wait_ready(&format!("{url}/healthz"), ready_timeout, Some(&mut proc)).await?;
            procs.push(proc);
            urls.push(url);
        }
        let pids: Vec<u32> = procs.iter().map(|p| p.pid()).collect();
        let (preload, runs) = load_server(&args, &plan, "alertgate", &urls, &pids, &formats).await?;
        for mut proc in procs {
            proc.shutdown();
        }
        drop(database);
        let url = urls.join(" ");
        servers.push(ServerReport {
            server: "alertgate".into(),
            url,
            pid: Some(pids[0]),
            spawned: true,
            preload,
            runs,
        });
    } else if let Some(target) = &args.target {
        let url = check_loopback_url(target)?;
        wait_ready(&format!("{url}{}", args.ready_path), ready_timeout, None).await?;
        let pids: Vec<u32> = args.pid.into_iter().collect();
        let (preload, runs) =
            load_server(&args, &plan, "alertgate", std::slice::from_ref(&url), &pids, &formats).await?;
        servers.push(ServerReport { server: "alertgate".into(), url, pid: args.pid, spawned: false, preload, runs });
    } else {
        bail!("one of --target URL or --spawn-alertgate BIN is required");
    }

    let mut comparison = None;
    if args.compare_alertmanager {
        let (mut proc, url) = spawn_alertmanager(&args)?;
        wait_ready(&format!("{url}/-/ready"), ready_timeout, Some(&mut proc)).await?;
        let pid = proc.pid();
        let (preload, runs) =
            load_server(&args, &plan, "alertmanager", std::slice::from_ref(&url), &[pid], &[Format::V2]).await?;
        proc.shutdown();
        drop(proc);
        let ag = servers[0].runs.iter().find(|r| r.format == Format::V2);
        let am = runs.first();
        if let (Some(ag), Some(am)) = (ag, am) {
            let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                _ => None,
            };
            comparison = Some(Comparison {
                format: Format::V2,
                alertgate_alerts_per_s: ag.alerts_per_s,
                alertmanager_alerts_per_s: am.alerts_per_s,
                alerts_per_s_ratio: ratio(Some(ag.alerts_per_s), Some(am.alerts_per_s)),
                alertgate_cpu_us_per_alert: ag.cpu_us_per_alert,
                alertmanager_cpu_us_per_alert: am.cpu_us_per_alert,
                cpu_per_alert_ratio: ratio(ag.cpu_us_per_alert, am.cpu_us_per_alert),
                alertgate_peak_rss_mib: ag.peak_rss_mib,
                alertmanager_peak_rss_mib: am.peak_rss_mib,
            });
        }
        servers.push(ServerReport { server: "alertmanager".into(), url, pid: Some(pid), spawned: true, preload, runs });
    }

    Ok(Report {
        scenario: args.scenario,
        format: args.format,
        concurrency: args.concurrency,
        batch: args.batch,
        fingerprints,
        duration_s: duration,
        requests: args.requests,
        preload: args.preload,
        preload_batch: args.preload_batch,
        loadgen_threads: args.threads,
        clk_tck: plan.clk_tck,
        servers,
        comparison,
    })
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map(|v| format!("{v:.prec$}")).unwrap_or_else(|| "n/a".into())
}

fn print_phase(r: &PhaseResult) {
    println!(
        "  [{} / {}] {}  (concurrency {}, batch {}, fingerprints {})",
        r.phase,
        r.format.name(),
        r.url,
        r.concurrency,
        r.batch,
        r.fingerprints
    );
    println!(
        "    accepted        {:>12.0} alerts/s   ({:.0} req/s, {} alerts in {:.2}s)",
        r.alerts_per_s, r.requests_per_s, r.alerts_accepted, r.elapsed_s
    );
    println!(
        "    requests        {} ok, {} non-2xx, {} errors   status {:?}",
        r.requests_ok, r.requests_non_2xx, r.requests_error, r.status_counts
    );
    if let Some(s) = &r.first_non_2xx {
        println!("    first non-2xx   {s}");
    }
    if let Some(s) = &r.first_error {
        println!("    first error     {s}");
    }
    let l = &r.latency_ms;
    println!(
        "    latency ms      p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  mean {:.2}",
        l.p50, l.p90, l.p99, l.max, l.mean
    );
    println!(
        "    server CPU      {} s  ->  {} us/alert, {} CPU-s per 1000 alerts",
        opt(r.server_cpu_s, 2),
        opt(r.cpu_us_per_alert, 2),
        opt(r.cpu_s_per_1000_alerts, 4)
    );
    if let Some(db) = r.database_cpu_s {
        let per_alert = (r.alerts_accepted > 0).then(|| db / r.alerts_accepted as f64 * 1e6);
        println!(
            "    database CPU    {db:.2} s  ->  {} us/alert (PostgreSQL's processes; cores used: gateways {}, database {})",
            opt(per_alert, 2),
            opt(r.server_cpu_s.map(|c| c / r.elapsed_s), 2),
            format_args!("{:.2}", db / r.elapsed_s)
        );
    }
    println!("    server memory   peak RSS (VmHWM) {} MiB, RSS now {} MiB", opt(r.peak_rss_mib, 1), opt(r.rss_mib, 1));
    println!("    loadgen CPU     {} s", opt(r.loadgen_cpu_s, 2));
}

fn print_report(rep: &Report) {
    println!("alertgate loadgen report");
    println!(
        "  scenario {:?}, concurrency {}, batch {}, fingerprints {}, duration {}, requests {}, preload {}",
        rep.scenario,
        rep.concurrency,
        rep.batch,
        rep.fingerprints,
        rep.duration_s.map(|d| format!("{d}s")).unwrap_or_else(|| "-".into()),
        rep.requests.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
        rep.preload
    );
    for s in &rep.servers {
        println!();
        println!(
            "== {} at {} (pid {}, {})",
            s.server,
            s.url,
            s.pid.map(|p| p.to_string()).unwrap_or_else(|| "unknown".into()),
            if s.spawned { "spawned" } else { "external" }
        );
        if let Some(p) = &s.preload {
            print_phase(p);
        }
        for r in &s.runs {
            print_phase(r);
        }
    }
    if let Some(c) = &rep.comparison {
        let ag = rep.servers[0].runs.iter().find(|r| r.format == Format::V2);
        let am = rep.servers.get(1).and_then(|s| s.runs.first());
        if let (Some(ag), Some(am)) = (ag, am) {
            println!();
            println!("== comparison (v2 load, same parameters)");
            println!("  {:<24} {:>14} {:>14} {:>12}", "", "alertgate", "alertmanager", "ag/am");
            let row = |name: &str, a: Option<f64>, b: Option<f64>, prec: usize| {
                let r = match (a, b) {
                    (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
                    _ => "n/a".into(),
                };
                println!("  {:<24} {:>14} {:>14} {:>12}", name, opt(a, prec), opt(b, prec), r);
            };
            row("accepted alerts/s", Some(ag.alerts_per_s), Some(am.alerts_per_s), 0);
            row("CPU us/alert", ag.cpu_us_per_alert, am.cpu_us_per_alert, 2);
            row("CPU s/1000 alerts", ag.cpu_s_per_1000_alerts, am.cpu_s_per_1000_alerts, 4);
            row("latency p50 ms", Some(ag.latency_ms.p50), Some(am.latency_ms.p50), 2);
            row("latency p99 ms", Some(ag.latency_ms.p99), Some(am.latency_ms.p99), 2);
            row("latency max ms", Some(ag.latency_ms.max), Some(am.latency_ms.max), 2);
            row("peak RSS MiB", ag.peak_rss_mib, am.peak_rss_mib, 1);
            row(
                "non-2xx + errors",
                Some((ag.requests_non_2xx + ag.requests_error) as f64),
                Some((am.requests_non_2xx + am.requests_error) as f64),
                0,
            );
            let _ = c;
        }
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match real_main(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main(args: Args) -> Result<()> {
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()?
    };
    let json = args.json;
    let report = rt.block_on(async move {
        tokio::select! {
            r = run(args) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_matches_prometheus() {
        // model.LabelSet{"alertname": "Test"}.Fingerprint() hashes
        // "alertname\xffTest\xff" with FNV-1a 64.
        let fp = fingerprint(&[("alertname", "Test")]);
        let mut h: u64 = 14695981039346656037;
        for &b in b"alertname\xffTest\xff" {
            h ^= u64::from(b);
            h = h.wrapping_mul(1099511628211);
        }
        assert_eq!(fp, h);
        // Values reported by prometheus-alertmanager 0.25 for the loadgen's label sets.
        for (k, want) in [(0u64, "5de6b68f8eac45cb"), (7, "ee975e7ebdd04622")] {
            let frag = alert_fragment(Format::Alertmanager, k, "2030-01-01T00:00:00Z");
            let v: serde_json::Value = serde_json::from_str(&frag).unwrap();
            assert_eq!(v["fingerprint"], want, "k={k}");
        }
        // Order independent.
        assert_eq!(fingerprint(&[("b", "2"), ("a", "1")]), fingerprint(&[("a", "1"), ("b", "2")]));
    }

    #[test]
    fn bodies_are_valid_json() {
        for format in [Format::Alertmanager, Format::V2] {
            let g = BodyGen::new(format, 0, 7, 5, true, true);
            let (body, n) = g.build(3, "2030-01-01T00:00:00Z");
            assert_eq!(n, 5);
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let alerts = match format {
                Format::Alertmanager => v["alerts"].as_array().unwrap().clone(),
                Format::V2 => v.as_array().unwrap().clone(),
            };
            assert_eq!(alerts.len(), 5);
            let p = BodyGen::new(format, 100, 7, 5, false, false);
            assert_eq!(p.requests_for_all(), 2);
            let (body, n) = p.build(1, "2030-01-01T00:00:00Z");
            assert_eq!(n, 2);
            serde_json::from_slice::<serde_json::Value>(&body).unwrap();
        }
    }
}
