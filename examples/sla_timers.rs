//! SLA timer benchmark: does a large number of running SLA clocks slow
//! ingest, and how late does each clock's breach fire?
//!
//! 1. Starts alertgate (release build given by `--bin`) with rules that open
//!    one incident per alert: `background` alerts under a rule without an SLA
//!    policy, `timed` alerts under a rule whose policy has a respond target.
//! 2. Opens `--background` incidents and measures re-sending their alerts
//!    (the common ingest path) with no clock running.
//! 3. Opens `--clocks` incidents with running clocks, then measures the same
//!    re-sends again while those clocks run.
//! 4. Waits past every deadline and reads from the database, for each
//!    breach, how long after its deadline it was recorded.
//!
//! ```text
//! cargo build --release
//! cargo run --release --example sla_timers -- --bin target/release/alertgate --clocks 100000
//! ```
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// The alertgate binary to run.
    #[arg(long, default_value = "target/release/alertgate")]
    bin: PathBuf,
    /// Incidents with a running SLA clock.
    #[arg(long, default_value_t = 100_000)]
    clocks: usize,
    /// Incidents without a clock whose alerts are re-sent to measure ingest.
    #[arg(long, default_value_t = 20_000)]
    background: usize,
    /// Alerts per request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Re-send rounds per measurement.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// The respond target; it must exceed the time it takes to open the
    /// clocks and measure ingest, so they all still run while measured.
    #[arg(long, default_value = "150s")]
    target: String,
}

struct Gateway {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(args: &Args) -> Result<Gateway> {
    let dir = std::env::temp_dir().join(format!("alertgate-sla-bench-{}", std::process::id()));
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules)?;
    std::fs::write(
        rules.join("bench.yaml"),
        format!(
            "incident_rules:
  - name: timed
    matchers: ['kind=\"timed\"']
    group_by: ['...']
    impact: high
    urgency: high
    sla_policy: bench
  - name: background
    group_by: ['...']
    impact: low
    urgency: low
sla_policies:
  - name: bench
    matchers: ['rule=\"timed\"']
    targets: {{P1: {{respond: {}}}}}
    warn_at: []
",
            args.target
        ),
    )?;
    let mut child = Command::new(&args.bin)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--rules")
        .arg(&rules)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("ALERTGATE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", args.bin.display()))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let addr = line.trim().strip_prefix("alertgate listening on ").context("no listening line")?.to_owned();
    Ok(Gateway { child, url: format!("http://{addr}"), dir })
}

fn batch_body(kind: &str, from: usize, to: usize) -> String {
    let alerts: Vec<String> = (from..to)
        .map(|i| format!(r#"{{"labels":{{"alertname":"Bench","kind":"{kind}","instance":"host-{i}"}}}}"#))
        .collect();
    format!("[{}]", alerts.join(","))
}

async fn send_all(client: &reqwest::Client, url: &str, kind: &str, n: usize, batch: usize) -> Result<Vec<Duration>> {
    let mut latencies = Vec::new();
    let mut from = 0;
    while from < n {
        let to = (from + batch).min(n);
        let body = batch_body(kind, from, to);
        let t = Instant::now();
        let resp = client
            .post(format!("{url}/api/v2/alerts"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("ingest answered {}: {}", resp.status(), resp.text().await.unwrap_or_default());
        }
        latencies.push(t.elapsed());
        from = to;
    }
    Ok(latencies)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Alerts/s and p50/p99 request latency (ms) of re-sending the background alerts.
async fn measure(client: &reqwest::Client, args: &Args, url: &str) -> Result<(f64, f64, f64)> {
    let t = Instant::now();
    let mut lat = Vec::new();
    for _ in 0..args.rounds {
        lat.extend(send_all(client, url, "background", args.background, args.batch).await?);
    }
    let rate = (args.background * args.rounds) as f64 / t.elapsed().as_secs_f64();
    let mut ms: Vec<f64> = lat.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    Ok((rate, percentile(&ms, 0.5), percentile(&ms, 0.99)))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let g = start(&args)?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;

    send_all(&client, &g.url, "background", args.background, args.batch).await?;
    let before = measure(&client, &args, &g.url).await?;

    let t = Instant::now();
    send_all(&client, &g.url, "timed", args.clocks, args.batch).await?;
    let opened = t.elapsed();
    let during = measure(&client, &args, &g.url).await?;
    let measured_by = t.elapsed();

    let db = g.dir.join("data").join("alertgate.db");
    let conn = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let running: i64 = conn.query_row(
        "SELECT count(*) FROM sla_clocks WHERE breached_at IS NULL AND running_since IS NOT NULL",
        [],
        |r| r.get(0),
    )?;
    let last_due: i64 = conn.query_row("SELECT coalesce(max(due_at), 0) FROM sla_clocks", [], |r| r.get(0))?;
    println!(
        "opened {} clocks in {:.1} s; {running} running when ingest was measured",
        args.clocks,
        opened.as_secs_f64()
    );
    if measured_by.as_secs_f64() > parse_secs(&args.target) {
        println!("warning: measuring took longer than the target; some clocks had fired (raise --target)");
    }

    // Wait until every breach is recorded.
    let wait_until = Instant::now() + Duration::from_secs(600);
    loop {
        let breached: i64 =
            conn.query_row("SELECT count(*) FROM sla_clocks WHERE breached_at IS NOT NULL", [], |r| r.get(0))?;
        if breached as usize >= args.clocks {
            break;
        }
        if Instant::now() > wait_until {
            bail!("only {breached} of {} clocks breached in time (last due at {last_due})", args.clocks);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut late: Vec<f64> = conn
        .prepare("SELECT recorded_at - at FROM incident_events WHERE kind = 'sla_breached'")?
        .query_map([], |r| r.get::<_, i64>(0))?
        .map(|r| r.map(|v| v as f64))
        .collect::<Result<_, _>>()?;
    late.sort_by(f64::total_cmp);
    let over_1s = late.iter().filter(|v| **v > 1000.0).count();

    println!();
    println!(
        "ingest of re-sent alerts ({} alerts x {} rounds, {} per request):",
        args.background, args.rounds, args.batch
    );
    println!("  {:<28} {:>12} {:>10} {:>10}", "", "alerts/s", "p50 ms", "p99 ms");
    println!("  {:<28} {:>12.0} {:>10.1} {:>10.1}", "no clock running", before.0, before.1, before.2);
    println!("  {:<28} {:>12.0} {:>10.1} {:>10.1}", format!("{running} clocks running"), during.0, during.1, during.2);
    println!("  ratio: {:.2}", during.0 / before.0);
    println!();
    println!("breach lateness (recorded - deadline) over {} breaches:", late.len());
    for (name, q) in [("min", 0.0), ("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999), ("max", 1.0)] {
        println!("  {name:<6} {:>8.0} ms", percentile(&late, q));
    }
    println!("  later than 1 s: {over_1s}");
    Ok(())
}

fn parse_secs(s: &str) -> f64 {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: f64 = n.parse().unwrap_or(0.0);
    match unit {
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => n,
    }
}
