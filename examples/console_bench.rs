//! The console under load: `/incidents` with many open incidents, and what
//! open console tabs (Server-Sent Events) cost ingest.
//!
//! 1. Starts the gateway (no tokens, the shipped rules, its own temporary
//!    data directory) and opens `--incidents` incidents (one per alertname).
//! 2. Times `--requests` sequential `GET /incidents` (the full page: the
//!    first 50 by priority, the count of all, their SLA clocks), the live
//!    part a tab fetches (`?partial=1`), and a title search.
//! 3. Measures ingest (re-sends of the stored alerts, batches of 100 over 8
//!    connections) for `--duration` seconds with no tab open, then with
//!    `--tabs` tabs open, each holding `GET /events` and fetching its live
//!    part on every event as the browser does, then without again.
//! 4. Times how long an idle tab waits for the event after a new incident.
//!
//! ```text
//! cargo build --release --examples
//! target/release/examples/console_bench --bin target/release/alertgate
//! ```
//! Every address is on 127.0.0.1.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::{Value, json};
use spawned::{Gateway, cpu_seconds};

#[path = "support/spawned.rs"]
mod spawned;

#[derive(Parser, Debug)]
struct Args {
    /// The alertgate binary.
    #[arg(long, default_value = "target/release/alertgate")]
    bin: String,
    #[arg(long, default_value_t = 10_000)]
    incidents: usize,
    #[arg(long, default_value_t = 300)]
    requests: usize,
    #[arg(long, default_value_t = 200)]
    tabs: usize,
    /// Seconds per ingest phase.
    #[arg(long, default_value_t = 15)]
    duration: u64,
}

fn start(bin: &str) -> Result<Gateway> {
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    spawned::start(bin, |_| Ok(vec!["--rules".into(), rules.into()]))
}

fn alert(i: usize) -> Value {
    let severity = ["critical", "warning", "info"][i % 3];
    json!({
        "labels": {"alertname": format!("Bench{i}"), "service": format!("svc{}", i % 20), "severity": severity},
        "annotations": {"summary": format!("bench alert {i}")},
    })
}

async fn post(http: &reqwest::Client, base: &str, alerts: &[Value]) -> Result<()> {
    let r = http
        .post(format!("{base}/api/v2/alerts"))
        .header("content-type", "application/json")
        .body(Value::Array(alerts.to_vec()).to_string())
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("ingest answered {}", r.status());
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

async fn time_page(http: &reqwest::Client, url: &str, cookie: &str, n: usize) -> Result<String> {
    let mut took = Vec::with_capacity(n);
    let mut bytes = 0;
    for _ in 0..n {
        let t = Instant::now();
        let r = http.get(url).header("cookie", cookie).send().await?;
        if !r.status().is_success() {
            bail!("{url}: {}", r.status());
        }
        bytes = r.bytes().await?.len();
        took.push(t.elapsed());
    }
    took.sort();
    Ok(format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} KiB)",
        percentile(&took, 0.5).as_secs_f64() * 1e3,
        percentile(&took, 0.99).as_secs_f64() * 1e3,
        took.last().unwrap().as_secs_f64() * 1e3,
        bytes / 1024
    ))
}

/// One ingest phase: alerts/s, and the gateway's CPU time per alert (µs).
/// `fresh`: every alert is new (an alert storm: each opens an incident, and
/// the list every tab shows changes all the time); else re-sends.
async fn phase(g: &Gateway, stored: usize, secs: u64, fresh: Option<&Arc<AtomicU64>>) -> Result<(f64, f64)> {
    let cpu = cpu_seconds(g.child.id());
    let rate = ingest_rate(&g.base, stored, secs, fresh.cloned()).await?;
    let used = cpu_seconds(g.child.id()) - cpu;
    Ok((rate, used * 1e6 / (rate * secs as f64)))
}

/// Alerts/s over `secs` of re-sends of the stored alerts.
async fn ingest_rate(base: &str, stored: usize, secs: u64, fresh: Option<Arc<AtomicU64>>) -> Result<f64> {
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (stop, sent, base, fresh) = (stop.clone(), sent.clone(), base.to_owned(), fresh.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut next = w * 100;
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<Value> = match &fresh {
                    Some(n) => {
                        let from = n.fetch_add(100, Ordering::Relaxed) as usize;
                        (from..from + 100).map(alert).collect()
                    }
                    None => (next..next + 100).map(|i| alert(i % stored)).collect(),
                };
                next = (next + 800) % stored;
                if post(&http, &base, &batch).await.is_ok() {
                    sent.fetch_add(100, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    Ok(sent.load(Ordering::Relaxed) as f64 / secs as f64)
}

/// A console tab: holds `/events` open and fetches its live part on every
/// event. Counts the events; records when the last one came.
async fn tab(base: String, cookie: String, events: Arc<AtomicU64>, last: Arc<std::sync::Mutex<Option<Instant>>>) {
    let http = reqwest::Client::new();
    let Ok(mut r) = http.get(format!("{base}/events?view=%2Fincidents")).header("cookie", &cookie).send().await else {
        return;
    };
    let mut buf = String::new();
    let mut etag: Option<String> = None;
    while let Ok(Some(chunk)) = r.chunk().await {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            if event.contains("event: part") {
                // The changed part came with the event: nothing to fetch.
                *last.lock().unwrap() = Some(Instant::now());
                events.fetch_add(1, Ordering::Relaxed);
            } else if event.contains("event: change") {
                *last.lock().unwrap() = Some(Instant::now());
                events.fetch_add(1, Ordering::Relaxed);
                let wanted: u64 = event
                    .lines()
                    .find_map(|l| l.strip_prefix("data:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                // As the page's script does: only a changed view comes with
                // a body, and a view older than the event is asked again.
                for _ in 0..2 {
                    let mut req = http.get(format!("{base}/incidents?partial=1")).header("cookie", &cookie);
                    if let Some(e) = &etag {
                        req = req.header("if-none-match", e);
                    }
                    let Ok(resp) = req.send().await else { break };
                    if let Some(e) = resp.headers().get("etag").and_then(|v| v.to_str().ok()) {
                        etag = Some(e.to_owned());
                    }
                    let got: u64 = resp
                        .headers()
                        .get("x-alertgate-view-version")
                        .and_then(|v| v.to_str().ok()?.parse().ok())
                        .unwrap_or(0);
                    let _ = resp.bytes().await;
                    if got >= wanted {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(700)).await;
                }
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let g = start(&args.bin)?;
    let http = reqwest::Client::new();
    let t = Instant::now();
    for chunk in (0..args.incidents).collect::<Vec<_>>().chunks(500) {
        let batch: Vec<Value> = chunk.iter().map(|i| alert(*i)).collect();
        post(&http, &g.base, &batch).await?;
    }
    println!("opened {} incidents in {:.1} s", args.incidents, t.elapsed().as_secs_f64());

    // The console is open without tokens; a first visit gets its session cookie.
    let r = http.get(format!("{}/incidents", g.base)).send().await?;
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("no session cookie")?
        .to_owned();
    let body = r.text().await?;
    if !body.contains(&format!("({}) Incidents", args.incidents)) {
        bail!("the page does not count {} incidents", args.incidents);
    }
    for (what, path) in [
        ("/incidents (full page)", "/incidents"),
        ("/incidents?partial=1 (a tab's live part)", "/incidents?partial=1"),
        ("/incidents?q=Bench99 (title search)", "/incidents?q=Bench99"),
        ("/incidents?priority=P2&service=svc3", "/incidents?priority=P2&service=svc3"),
        ("/incidents?state=all&cursor (page 2)", "/incidents?state=all&cursor=P3:5000"),
    ] {
        println!("{what}: {}", time_page(&http, &format!("{}{path}", g.base), &cookie, args.requests).await?);
    }

    let (before, cpu_before) = phase(&g, args.incidents, args.duration, None).await?;
    println!("ingest, no tab open: {before:.0} alerts/s, {cpu_before:.1} µs gateway CPU per alert");
    let events = Arc::new(AtomicU64::new(0));
    let lasts: Vec<_> = (0..args.tabs).map(|_| Arc::new(std::sync::Mutex::new(None))).collect();
    let tabs: Vec<_> = lasts
        .iter()
        .map(|last| tokio::spawn(tab(g.base.clone(), cookie.clone(), events.clone(), last.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let n0 = events.load(Ordering::Relaxed);
    let (during, cpu_during) = phase(&g, args.incidents, args.duration, None).await?;
    let n = events.load(Ordering::Relaxed) - n0;
    println!(
        "ingest, {} tabs open: {during:.0} alerts/s, {cpu_during:.1} µs gateway CPU per alert (tabs included); {n} events sent to the tabs",
        args.tabs,
    );

    // An idle moment, then one new incident: how long until every tab hears of it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for l in &lasts {
        *l.lock().unwrap() = None;
    }
    let posted = Instant::now();
    post(&http, &g.base, &[alert(args.incidents + 1)]).await?;
    let deadline = posted + Duration::from_secs(10);
    let mut waits: Vec<Duration> = loop {
        let got: Vec<Duration> =
            lasts.iter().filter_map(|l| l.lock().unwrap().map(|at| at.duration_since(posted))).collect();
        if got.len() == args.tabs || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    waits.sort();
    if waits.is_empty() {
        bail!("no tab heard of the new incident");
    }
    println!(
        "a new incident reached {}/{} idle tabs: p50 {:.0} ms, max {:.0} ms after it was posted",
        waits.len(),
        args.tabs,
        percentile(&waits, 0.5).as_secs_f64() * 1e3,
        waits.last().unwrap().as_secs_f64() * 1e3
    );
    for t in tabs {
        t.abort();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (after, cpu_after) = phase(&g, args.incidents, args.duration, None).await?;
    let (rate, cpu) = ((before + after) / 2.0, (cpu_before + cpu_after) / 2.0);
    println!("ingest, tabs closed again: {after:.0} alerts/s, {cpu_after:.1} µs gateway CPU per alert");
    println!(
        "with {} tabs open: ingest {:+.1} %, gateway CPU per alert {:+.1} %, against the mean of the runs without",
        args.tabs,
        (during / rate - 1.0) * 100.0,
        (cpu_during / cpu - 1.0) * 100.0
    );

    // An alert storm: every batch opens 100 incidents, so the list changes
    // all the time and every open tab refreshes once a second. Short phases:
    // the table grows as they run.
    let storm_secs = (args.duration / 3).max(3);
    let next_new = Arc::new(AtomicU64::new(args.incidents as u64 + 10));
    let (storm, cpu_storm) = phase(&g, args.incidents, storm_secs, Some(&next_new)).await?;
    println!("alert storm (new incidents), no tab open: {storm:.0} alerts/s, {cpu_storm:.1} µs gateway CPU per alert");
    let tabs: Vec<_> = lasts
        .iter()
        .map(|last| tokio::spawn(tab(g.base.clone(), cookie.clone(), events.clone(), last.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let n0 = events.load(Ordering::Relaxed);
    let (storm_tabs, cpu_storm_tabs) = phase(&g, args.incidents, storm_secs, Some(&next_new)).await?;
    let n = events.load(Ordering::Relaxed) - n0;
    println!(
        "alert storm, {} tabs open: {storm_tabs:.0} alerts/s, {cpu_storm_tabs:.1} µs gateway CPU per alert; {n} events sent to the tabs",
        args.tabs,
    );
    for t in tabs {
        t.abort();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Again without: the table grew during both storms, so the tabs' phase
    // is compared with the mean of the one before and the one after.
    let (storm_after, cpu_storm_after) = phase(&g, args.incidents, storm_secs, Some(&next_new)).await?;
    let (rate, cpu) = ((storm + storm_after) / 2.0, (cpu_storm + cpu_storm_after) / 2.0);
    println!(
        "alert storm, tabs closed again: {storm_after:.0} alerts/s, {cpu_storm_after:.1} µs gateway CPU per alert; \
         with the tabs: ingest {:+.1} %, CPU per alert {:+.1} %, against the mean of the storms without",
        (storm_tabs / rate - 1.0) * 100.0,
        (cpu_storm_tabs / cpu - 1.0) * 100.0
    );
    Ok(())
}
