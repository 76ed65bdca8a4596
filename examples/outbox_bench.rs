//! What delivering notifications costs ingest. One gateway, a webhook
//! receiver on 127.0.0.1 that answers 200 (at once, or after
//! `--receiver-ms`), and rules of two
//! incident rules: `quiet` and `paged` (`notify: [pager]`), each alert its
//! own incident, under an SLA policy. Each round:
//!
//! 1. re-sends of stored quiet alerts (the common ingest path), the outbox idle;
//! 2. a quiet storm (every alert a new incident), then a paged storm (every
//!    incident notifies): what writing a notification with its incident
//!    costs, and how many are delivered while the storm goes on;
//! 3. the re-sends again while the outbox delivers the paged storm's
//!    notifications, then once more after it has drained (every one
//!    arrived): what delivering costs ingest, against the idle runs' mean.
//!
//! ```text
//! cargo build --release --bin alertgate --example outbox_bench
//! target/release/examples/outbox_bench --bin target/release/alertgate --duration 8
//! ```
//! Every address is on 127.0.0.1.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
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
    /// Seconds per storm.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Rounds (see the module).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Milliseconds the receiver takes per notification (a real receiver's
    /// round trip; a notifier delivers one at a time).
    #[arg(long, default_value_t = 0)]
    receiver_ms: u64,
    /// Seconds to wait for the outbox to drain.
    #[arg(long, default_value_t = 600)]
    drain_timeout: u64,
}

const RULES: &str = r#"
incident_rules:
  - name: paged
    matchers: ['kind="paged"']
    group_by: [alertname]
    title: "{{ labels.alertname }}"
    notify: [pager]
  - name: quiet
    matchers: []
    group_by: [alertname]
    title: "{{ labels.alertname }}"
sla_policies:
  - name: standard
    matchers: []
    calendar: 24x7
    targets:
      P1: {respond: 15m, resolve: 4h}
      P2: {respond: 30m, resolve: 8h}
      P3: {respond: 4h, resolve: 3d}
      P4: {respond: 1d, resolve: 7d}
      P5: {respond: 3d, resolve: 30d}
"#;

fn start(bin: &str, hook: &str) -> Result<Gateway> {
    let config = format!("notifiers:\n  - {{name: pager, type: webhook, url: \"{hook}\", timeout: 5s}}\n");
    spawned::start(bin, |dir| {
        std::fs::create_dir(dir.join("rules"))?;
        std::fs::write(dir.join("rules/bench.yaml"), RULES)?;
        std::fs::write(dir.join("alertgate.yml"), config)?;
        Ok(vec!["--config".into(), dir.join("alertgate.yml").into(), "--rules".into(), dir.join("rules").into()])
    })
}

/// A receiver that takes every notification after `delay`; counts them.
async fn receiver(received: Arc<AtomicU64>, delay: Duration) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |_body: axum::body::Bytes| {
            let received = received.clone();
            async move {
                tokio::time::sleep(delay).await;
                received.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/hook"))
}

fn alert(i: u64, kind: &str) -> Value {
    let severity = ["critical", "warning"][i as usize % 2];
    json!({
        "labels": {"alertname": format!("Storm{i}"), "kind": kind, "severity": severity},
        "annotations": {"summary": format!("storm alert {i}")},
    })
}

/// What a phase sends: new alerts of a kind (a storm), or the first `n`
/// quiet alerts again (re-sends, the common ingest path).
#[derive(Clone, Copy)]
enum Load {
    Storm(&'static str),
    Resend(u64),
}

/// Alerts of `load` for `secs`: alerts/s, µs gateway CPU per alert, and
/// how many alerts went in.
async fn storm(g: &Gateway, next: &Arc<AtomicU64>, load: Load, secs: u64) -> Result<(f64, f64, u64)> {
    let cpu = cpu_seconds(g.child.id());
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let resent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (stop, sent, next, base) = (stop.clone(), sent.clone(), next.clone(), g.base.clone());
        let resent = resent.clone();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<Value> = match load {
                    Load::Storm(kind) => {
                        let from = next.fetch_add(100, Ordering::Relaxed);
                        (from..from + 100).map(|i| alert(i, kind)).collect()
                    }
                    Load::Resend(n) => {
                        let from = resent.fetch_add(100, Ordering::Relaxed);
                        (from..from + 100).map(|i| alert(i % n, "quiet")).collect()
                    }
                };
                let r = http
                    .post(format!("{base}/api/v2/alerts"))
                    .header("content-type", "application/json")
                    .body(Value::Array(batch).to_string())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        sent.fetch_add(100, Ordering::Relaxed);
                    }
                    Ok(r) => bail!("ingest answered {}", r.status()),
                    Err(e) => bail!("ingest failed: {e}"),
                }
            }
            Ok(())
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    let n = sent.load(Ordering::Relaxed);
    let rate = n as f64 / secs as f64;
    Ok((rate, (cpu_seconds(g.child.id()) - cpu) * 1e6 / n as f64, n))
}

/// Wait until `expected` notifications arrived; how long it took.
async fn drained(received: &AtomicU64, expected: u64, timeout: u64) -> Result<Duration> {
    let t = Instant::now();
    while received.load(Ordering::Relaxed) < expected {
        if t.elapsed() > Duration::from_secs(timeout) {
            bail!("{} of {expected} notifications arrived", received.load(Ordering::Relaxed));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(t.elapsed())
}

fn change(x: f64, base: f64) -> f64 {
    (x / base - 1.0) * 100.0
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let received = Arc::new(AtomicU64::new(0));
    let hook = receiver(received.clone(), Duration::from_millis(args.receiver_ms)).await?;
    let g = start(&args.bin, &hook)?;
    let next = Arc::new(AtomicU64::new(0));
    // Quiet alerts to send again: the first of them, stored in their incidents.
    let (_, _, quiet) = storm(&g, &next, Load::Storm("quiet"), args.duration / 2 + 1).await?;
    let resend = Load::Resend(quiet.min(20_000));
    let (mut expected, mut storms, mut draining) = (0u64, Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        let (idle, cpu_idle, _) = storm(&g, &next, resend, args.duration).await?;
        println!("round {round}: re-sends, the outbox idle: {idle:.0} alerts/s, {cpu_idle:.1} µs CPU/alert");
        let (quiet, cpu_quiet, _) = storm(&g, &next, Load::Storm("quiet"), args.duration).await?;
        println!(
            "round {round}: quiet storm (new incidents, no notifier): {quiet:.0} alerts/s, {cpu_quiet:.1} µs CPU/alert"
        );
        let before = received.load(Ordering::Relaxed);
        let (paged, cpu_paged, n) = storm(&g, &next, Load::Storm("paged"), args.duration).await?;
        let during_storm = received.load(Ordering::Relaxed) - before;
        expected += n;
        println!(
            "round {round}: paged storm (every incident notifies): {paged:.0} alerts/s, {cpu_paged:.1} µs CPU/alert \
             ({:+.1} %, {:+.1} % against the quiet storm); {n} notifications, {during_storm} delivered during it",
            change(paged, quiet),
            change(cpu_paged, cpu_quiet)
        );
        storms.push(change(paged, quiet));
        let before = received.load(Ordering::Relaxed);
        let (busy, cpu_busy, _) = storm(&g, &next, resend, args.duration).await?;
        let during = received.load(Ordering::Relaxed) - before;
        let rest = drained(&received, expected, args.drain_timeout).await?;
        println!(
            "round {round}: re-sends while the outbox delivers the storm's notifications: {busy:.0} alerts/s, \
             {cpu_busy:.1} µs CPU/alert; {during} delivered meanwhile, the rest {:.1} s after",
            rest.as_secs_f64()
        );
        let (idle_after, cpu_after, _) = storm(&g, &next, resend, args.duration).await?;
        let (rate, cpu) = ((idle + idle_after) / 2.0, (cpu_idle + cpu_after) / 2.0);
        println!(
            "round {round}: re-sends, the outbox idle again: {idle_after:.0} alerts/s, {cpu_after:.1} µs CPU/alert; \
             while delivering: ingest {:+.1} %, CPU per alert {:+.1} % against the idle runs' mean",
            change(busy, rate),
            change(cpu_busy, cpu)
        );
        draining.push(change(busy, rate));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "over {} rounds: re-sends while delivering {:+.1} % on average; a paged storm against a quiet one {:+.1} %",
        args.rounds,
        mean(&draining),
        mean(&storms)
    );
    if received.load(Ordering::Relaxed) != expected {
        bail!("{} notifications arrived for {expected} paged incidents", received.load(Ordering::Relaxed));
    }
    Ok(())
}
