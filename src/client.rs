//! The client side of the command line: talks to a running gateway.
// Every line printed goes through the writer that survives a closed pipe.
use crate::output::outln as println;
mod gateway;
mod heartbeats;
mod itsm;
mod oncall;
mod silences;
mod when;

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

#[derive(Args)]
pub struct ClientArgs {
    /// The gateway's base URL.
    #[arg(long, global = true, env = "ALERTGATE_URL", default_value = "http://127.0.0.1:9797")]
    url: String,
    /// Print the JSON answer instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// API token (sent as `Authorization: Bearer`); better given as ALERTGATE_TOKEN.
    #[arg(long, global = true, env = "ALERTGATE_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Subcommand)]
pub enum AlertsCommand {
    /// List alerts, newest first.
    List {
        /// firing or resolved.
        #[arg(long)]
        state: Option<String>,
        /// alertmanager, prometheus, grafana, pagerduty, generic:NAME, or heartbeat (missed heartbeats).
        #[arg(long)]
        source: Option<String>,
        /// Label matcher, e.g. 'severity="critical"' (repeatable).
        #[arg(long = "filter", short = 'f')]
        filters: Vec<String>,
        /// Only alerts kept from incidents by a silence, an inhibition or a
        /// maintenance window.
        #[arg(long, conflicts_with = "active")]
        muted: bool,
        /// Only firing alerts that nothing mutes.
        #[arg(long, conflicts_with = "state")]
        active: bool,
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

#[derive(Subcommand)]
pub enum IncidentsCommand {
    /// List incidents, newest first.
    List {
        /// open (not resolved or closed), all, or triggered, acknowledged,
        /// on_hold, resolved, closed (comma-separated).
        #[arg(long, default_value = "open")]
        state: String,
        /// P1 to P5 (comma-separated).
        #[arg(long)]
        priority: Option<String>,
        #[arg(long)]
        service: Option<String>,
        #[arg(long)]
        assignee: Option<String>,
        /// breached, at_risk, running, paused or met: incidents with such an SLA clock.
        #[arg(long)]
        sla: Option<String>,
        /// -created_at, created_at, priority, -updated_at.
        #[arg(long)]
        sort: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show an incident with its SLA clocks, alerts and timeline.
    Show { id: i64 },
    /// Acknowledge: someone is on it.
    Ack(ActionArgs),
    /// Resolve: the problem is gone.
    Resolve(ActionArgs),
    /// Reopen a resolved incident.
    Reopen(ActionArgs),
    /// Put on hold (waiting on someone else).
    Hold(ActionArgs),
    /// Close a resolved incident for good.
    Close(ActionArgs),
    /// Assign to a person or group (`--unassign` to clear).
    Assign {
        id: i64,
        #[arg(required_unless_present = "unassign")]
        assignee: Option<String>,
        #[arg(long, conflicts_with = "assignee")]
        unassign: bool,
        /// Who (default: $ALERTGATE_ACTOR, else $USER).
        #[arg(long, env = "ALERTGATE_ACTOR")]
        actor: Option<String>,
    },
    /// Set the priority (P1 to P5); the SLA clocks take its targets.
    Priority {
        id: i64,
        priority: String,
        /// Why, for the timeline.
        #[arg(long, short = 'm')]
        comment: Option<String>,
        /// Who (default: $ALERTGATE_ACTOR, else $USER).
        #[arg(long, env = "ALERTGATE_ACTOR")]
        actor: Option<String>,
    },
    /// Report an incident no alert caught (the service desk).
    Open {
        #[arg(long)]
        title: String,
        #[arg(long)]
        service: Option<String>,
        /// high, medium (default) or low.
        #[arg(long)]
        impact: Option<String>,
        /// high, medium (default) or low.
        #[arg(long)]
        urgency: Option<String>,
        #[arg(long, short = 'd')]
        description: Option<String>,
        /// Who reported it (default: the actor).
        #[arg(long)]
        reporter: Option<String>,
        /// A label incident rules may match, NAME=VALUE (repeatable).
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        #[arg(long)]
        assignee: Option<String>,
        /// Who (default: $ALERTGATE_ACTOR, else $USER).
        #[arg(long, env = "ALERTGATE_ACTOR")]
        actor: Option<String>,
    },
    /// Link stored alerts to an open incident by hand.
    Link {
        id: i64,
        /// Fingerprints of the alerts.
        #[arg(required = true)]
        fingerprints: Vec<String>,
        /// Who (default: $ALERTGATE_ACTOR, else $USER).
        #[arg(long, env = "ALERTGATE_ACTOR")]
        actor: Option<String>,
    },
    /// Merge an incident into another (its alerts, timeline and links move; it closes).
    Merge {
        id: i64,
        #[arg(long)]
        into: i64,
        #[arg(long, short = 'm')]
        comment: Option<String>,
        /// Who (default: $ALERTGATE_ACTOR, else $USER).
        #[arg(long, env = "ALERTGATE_ACTOR")]
        actor: Option<String>,
    },
    /// Add a note to the timeline.
    Note {
        id: i64,
        text: String,
        /// Who (default: $ALERTGATE_ACTOR, else $USER).
        #[arg(long, env = "ALERTGATE_ACTOR")]
        actor: Option<String>,
    },
}

#[derive(Args)]
pub struct ActionArgs {
    id: i64,
    /// Why, for the timeline.
    #[arg(long, short = 'm')]
    comment: Option<String>,
    /// Who (default: $ALERTGATE_ACTOR, else $USER).
    #[arg(long, env = "ALERTGATE_ACTOR")]
    actor: Option<String>,
}

fn actor(given: Option<String>) -> String {
    given.or_else(|| std::env::var("USER").ok()).filter(|a| !a.trim().is_empty()).unwrap_or_else(|| "cli".to_owned())
}

fn block_on(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("alertgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("alertgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn run_alerts(args: &ClientArgs, cmd: AlertsCommand) -> ExitCode {
    block_on(alerts(args, cmd))
}

pub fn run_incidents(args: &ClientArgs, cmd: IncidentsCommand) -> ExitCode {
    block_on(incidents(args, cmd))
}

pub use gateway::{TIMEOUT, base_url, check_alertgate, unreachable};
pub use heartbeats::HeartbeatsCommand;
pub use itsm::{ChangesCommand, ProblemsCommand, ReportCommand};
pub use silences::SilenceCommand;

pub fn run_silence(args: &ClientArgs, cmd: SilenceCommand) -> ExitCode {
    block_on(silences::silence(args, cmd))
}

pub fn run_heartbeats(args: &ClientArgs, cmd: Option<HeartbeatsCommand>) -> ExitCode {
    block_on(heartbeats::heartbeats(args, cmd))
}

pub use oncall::{FeedsCommand, SchedulesCommand};

pub fn run_oncall(args: &ClientArgs, schedule: Option<String>) -> ExitCode {
    block_on(oncall::oncall(args, schedule))
}

pub fn run_schedules(args: &ClientArgs, cmd: Option<SchedulesCommand>) -> ExitCode {
    block_on(oncall::schedules(args, cmd))
}

pub fn run_feeds(args: &ClientArgs, cmd: Option<FeedsCommand>) -> ExitCode {
    block_on(oncall::feeds(args, cmd))
}

/// Post-incident reviews.
#[derive(clap::Subcommand)]
pub enum ReviewsCommand {
    /// Print an incident's review as Markdown (the Google SRE book's postmortem order).
    Export { incident: i64 },
}

pub fn run_reviews(args: &ClientArgs, cmd: ReviewsCommand) -> ExitCode {
    block_on(async move {
        let ReviewsCommand::Export { incident } = cmd;
        let text = get_text(args, &format!("/api/v1/incidents/{incident}/review.md"), &[], "text/markdown").await?;
        crate::output::write_stdout(format_args!("{text}"), false);
        Ok(())
    })
}

pub fn run_report(args: &ClientArgs, cmd: ReportCommand) -> ExitCode {
    block_on(itsm::report(args, cmd))
}

pub fn run_problems(args: &ClientArgs, cmd: ProblemsCommand) -> ExitCode {
    block_on(itsm::problems(args, cmd))
}

pub fn run_changes(args: &ClientArgs, cmd: ChangesCommand) -> ExitCode {
    block_on(itsm::changes(args, cmd))
}

/// A non-JSON answer (CSV), as text.
async fn get_text(args: &ClientArgs, path: &str, query: &[(&str, String)], accept: &str) -> anyhow::Result<String> {
    let client = reqwest::Client::builder().timeout(gateway::TIMEOUT).build()?;
    let base = gateway::base_url(&args.url);
    let url = format!("{base}{path}");
    let mut req = client.get(&url).query(query).header(reqwest::header::ACCEPT, accept);
    if let Some(t) = &args.token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.map_err(|e| gateway::unreachable(&base, &e))?;
    gateway::check_alertgate(&base, &resp)?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        let msg = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| "no error message".into());
        anyhow::bail!("{status}: {msg}");
    }
    Ok(body)
}

async fn get_json(args: &ClientArgs, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
    send(args, reqwest::Method::GET, path, query, None).await
}

async fn send(
    args: &ClientArgs,
    method: reqwest::Method,
    path: &str,
    query: &[(&str, String)],
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let client = reqwest::Client::builder().timeout(gateway::TIMEOUT).build()?;
    let base = gateway::base_url(&args.url);
    let url = format!("{base}{path}");
    let mut req = client.request(method, &url).query(query);
    if let Some(t) = &args.token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.map_err(|e| gateway::unreachable(&base, &e))?;
    gateway::check_alertgate(&base, &resp)?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let msg = body.get("error").and_then(Value::as_str).unwrap_or("no error message");
        anyhow::bail!("{status}: {msg}");
    }
    Ok(body)
}

async fn alerts(args: &ClientArgs, cmd: AlertsCommand) -> anyhow::Result<()> {
    match cmd {
        AlertsCommand::List { state, source, filters, muted, active, limit, cursor } => {
            let mut q: Vec<(&str, String)> = vec![("limit", limit.to_string())];
            q.extend(state.map(|s| ("state", s)));
            if muted {
                q.push(("muted", "true".into()));
            }
            if active {
                q.extend([("state", "firing".into()), ("muted", "false".into())]);
            }
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
                        text(&a["mutedBy"]),
                        other.join(","),
                    ]
                })
                .collect();
            print_table(&["FINGERPRINT", "STATUS", "SOURCE", "ALERTNAME", "STARTS", "COUNT", "MUTED", "LABELS"], &rows);
            if let Some(next) = page["nextCursor"].as_str() {
                println!("(more: --cursor {next})");
            }
        }
        AlertsCommand::Show { fingerprint } => {
            let a = get_json(args, &format!("/api/v1/alerts/{}", encode_segment(&fingerprint)), &[]).await?;
            println!("{}", serde_json::to_string_pretty(&a)?);
        }
    }
    Ok(())
}

/// The table rows of a JSON array (none when it is not one).
pub(crate) fn rows(list: &Value, row: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    list.as_array().map(|items| items.iter().map(row).collect()).unwrap_or_default()
}

/// A JSON value as a table cell: strings bare, null as `-`.
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(crate) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

async fn incidents(args: &ClientArgs, cmd: IncidentsCommand) -> anyhow::Result<()> {
    let (id, action, a) = match cmd {
        IncidentsCommand::List { state, priority, service, assignee, sla, sort, limit, cursor } => {
            let mut q: Vec<(&str, String)> = vec![("limit", limit.to_string())];
            if state != "all" {
                q.push(("state", state));
            }
            q.extend(priority.map(|v| ("priority", v)));
            q.extend(service.map(|v| ("service", v)));
            q.extend(assignee.map(|v| ("assignee", v)));
            q.extend(sla.map(|v| ("sla", v)));
            q.extend(sort.map(|v| ("sort", v)));
            q.extend(cursor.map(|v| ("cursor", v)));
            let page = get_json(args, "/api/v1/incidents", &q).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&page)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = rows(&page["incidents"], |i| {
                vec![
                    text(&i["id"]),
                    text(&i["priority"]),
                    text(&i["state"]),
                    text(&i["service"]),
                    format!("{}/{}", text(&i["firingCount"]), text(&i["alertCount"])),
                    text(&i["assignee"]),
                    text(&i["createdAt"]),
                    text(&i["title"]),
                ]
            });
            print_table(&["ID", "PRIO", "STATE", "SERVICE", "FIRING", "ASSIGNEE", "CREATED", "TITLE"], &rows);
            if let Some(next) = page["nextCursor"].as_str() {
                println!("(more: --cursor {next})");
            }
            return Ok(());
        }
        IncidentsCommand::Show { id } => {
            let d = get_json(args, &format!("/api/v1/incidents/{id}"), &[]).await?;
            print_incident(args, &d)?;
            return Ok(());
        }
        IncidentsCommand::Assign { id, assignee, unassign, actor: who } => {
            let assignee = if unassign { None } else { assignee };
            let body = serde_json::json!({ "actor": actor(who), "assignee": assignee });
            let d =
                send(args, reqwest::Method::POST, &format!("/api/v1/incidents/{id}/assign"), &[], Some(body)).await?;
            print_incident(args, &d)?;
            return Ok(());
        }
        IncidentsCommand::Priority { id, priority, comment, actor: who } => {
            let body =
                serde_json::json!({ "actor": actor(who), "priority": priority.to_uppercase(), "comment": comment });
            let d = send(args, reqwest::Method::PATCH, &format!("/api/v1/incidents/{id}/priority"), &[], Some(body))
                .await?;
            print_incident(args, &d)?;
            return Ok(());
        }
        IncidentsCommand::Open {
            title,
            service,
            impact,
            urgency,
            description,
            reporter,
            labels,
            assignee,
            actor: who,
        } => {
            let labels: serde_json::Map<String, serde_json::Value> =
                labels.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
            let body = serde_json::json!({
                "actor": actor(who), "title": title, "service": service, "impact": impact, "urgency": urgency,
                "description": description, "reporter": reporter, "labels": labels, "assignee": assignee,
            });
            let d = send(args, reqwest::Method::POST, "/api/v1/incidents", &[], Some(body)).await?;
            print_incident(args, &d)?;
            return Ok(());
        }
        IncidentsCommand::Link { id, fingerprints, actor: who } => {
            let body = serde_json::json!({ "actor": actor(who), "fingerprints": fingerprints });
            let d =
                send(args, reqwest::Method::POST, &format!("/api/v1/incidents/{id}/alerts"), &[], Some(body)).await?;
            print_incident(args, &d)?;
            return Ok(());
        }
        IncidentsCommand::Merge { id, into, comment, actor: who } => {
            let body = serde_json::json!({ "actor": actor(who), "into": into, "comment": comment });
            let d =
                send(args, reqwest::Method::POST, &format!("/api/v1/incidents/{id}/merge"), &[], Some(body)).await?;
            print_incident(args, &d)?;
            return Ok(());
        }
        IncidentsCommand::Note { id, text, actor: who } => {
            let body = serde_json::json!({ "actor": actor(who), "text": text });
            let d =
                send(args, reqwest::Method::POST, &format!("/api/v1/incidents/{id}/notes"), &[], Some(body)).await?;
            print_incident(args, &d)?;
            return Ok(());
        }
        IncidentsCommand::Ack(a) => (a.id, "acknowledge", a),
        IncidentsCommand::Resolve(a) => (a.id, "resolve", a),
        IncidentsCommand::Reopen(a) => (a.id, "reopen", a),
        IncidentsCommand::Hold(a) => (a.id, "hold", a),
        IncidentsCommand::Close(a) => (a.id, "close", a),
    };
    let body = serde_json::json!({ "actor": actor(a.actor), "comment": a.comment });
    let d = send(args, reqwest::Method::POST, &format!("/api/v1/incidents/{id}/{action}"), &[], Some(body)).await?;
    print_incident(args, &d)
}

fn print_incident(args: &ClientArgs, d: &Value) -> anyhow::Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(d)?);
        return Ok(());
    }
    println!("#{} [{}] {} — {}", text(&d["id"]), text(&d["priority"]), text(&d["title"]), text(&d["state"]));
    println!(
        "  service {}  rule {}  impact {}  urgency {}  assignee {}",
        text(&d["service"]),
        text(&d["rule"]),
        text(&d["impact"]),
        text(&d["urgency"]),
        text(&d["assignee"])
    );
    println!(
        "  created {}  acknowledged {}  resolved {}",
        text(&d["createdAt"]),
        text(&d["acknowledgedAt"]),
        text(&d["resolvedAt"])
    );
    println!("\nalerts:");
    let alerts: Vec<Vec<String>> = rows(&d["alerts"], |a| {
        vec![
            text(&a["fingerprint"]),
            text(&a["status"]),
            text(&a["labels"]["alertname"]),
            text(&a["startsAt"]),
            text(&a["annotations"]["summary"]),
        ]
    });
    print_table(&["FINGERPRINT", "STATUS", "ALERTNAME", "STARTS", "SUMMARY"], &alerts);
    itsm::print_itsm(d);
    itsm::print_timeline(&d["timeline"]);
    Ok(())
}

/// Percent-encode a path segment (PagerDuty dedup keys may hold `/`, `?`, `#`).
fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `NAME=VALUE` of `--label`.
fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}
