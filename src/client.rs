//! The client side of the command line: talks to a running gateway.
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::Value;

#[derive(Args)]
pub struct ClientArgs {
    /// The gateway's base URL.
    #[arg(
        long,
        global = true,
        env = "ALERTGATE_URL",
        default_value = "http://127.0.0.1:9797"
    )]
    url: String,
    /// Print the JSON answer instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
pub enum AlertsCommand {
    /// List alerts, newest first.
    List {
        /// firing or resolved.
        #[arg(long)]
        state: Option<String>,
        /// alertmanager, prometheus, grafana, pagerduty or generic:NAME.
        #[arg(long)]
        source: Option<String>,
        /// Label matcher, e.g. 'severity="critical"' (repeatable).
        #[arg(long = "filter", short = 'f')]
        filters: Vec<String>,
        /// Page size (1-1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Continue from a previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one alert with its raw payload.
    Show { fingerprint: String },
}

pub fn run_alerts(args: &ClientArgs, cmd: AlertsCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("alertgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(alerts(args, cmd)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("alertgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn get_json(
    args: &ClientArgs,
    path: &str,
    query: &[(&str, String)],
) -> anyhow::Result<Value> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let url = format!("{}{}", args.url.trim_end_matches('/'), path);
    let resp = client
        .get(&url)
        .query(query)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the gateway at {}: {e}", args.url))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let msg = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no error message");
        anyhow::bail!("{status}: {msg}");
    }
    Ok(body)
}

async fn alerts(args: &ClientArgs, cmd: AlertsCommand) -> anyhow::Result<()> {
    match cmd {
        AlertsCommand::List {
            state,
            source,
            filters,
            limit,
            cursor,
        } => {
            let mut q: Vec<(&str, String)> = vec![("limit", limit.to_string())];
            q.extend(state.map(|s| ("state", s)));
            q.extend(source.map(|s| ("source", s)));
            q.extend(cursor.map(|s| ("cursor", s)));
            q.extend(filters.into_iter().map(|f| ("filter", f)));
            let page = get_json(args, "/api/v1/alerts", &q).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&page)?);
                return Ok(());
            }
            let alerts = page["alerts"].as_array().cloned().unwrap_or_default();
            let rows: Vec<Vec<String>> = alerts
                .iter()
                .map(|a| {
                    let labels = a["labels"].as_object().cloned().unwrap_or_default();
                    let other: Vec<String> = labels
                        .iter()
                        .filter(|(k, _)| *k != "alertname")
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect();
                    vec![
                        text(&a["fingerprint"]),
                        text(&a["status"]),
                        text(&a["source"]),
                        text(&labels.get("alertname").cloned().unwrap_or(Value::Null)),
                        text(&a["startsAt"]),
                        text(&a["occurrences"]),
                        other.join(","),
                    ]
                })
                .collect();
            print_table(
                &[
                    "FINGERPRINT",
                    "STATUS",
                    "SOURCE",
                    "ALERTNAME",
                    "STARTS",
                    "COUNT",
                    "LABELS",
                ],
                &rows,
            );
            if let Some(next) = page["nextCursor"].as_str() {
                println!("(more: --cursor {next})");
            }
        }
        AlertsCommand::Show { fingerprint } => {
            let a = get_json(args, &format!("/api/v1/alerts/{fingerprint}"), &[]).await?;
            println!("{}", serde_json::to_string_pretty(&a)?);
        }
    }
    Ok(())
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
