//! Client commands for problems and changes.
// Every line printed goes through the writer that survives a closed pipe.
use crate::output::{out as print, outln as println};
use clap::Subcommand;
use serde_json::{Value, json};

use super::when::{Bound, parse_time};
use super::{ClientArgs, actor, get_json, print_table, rows, send, text};

#[derive(Subcommand)]
pub enum ProblemsCommand {
    /// List problems, newest first.
    List {
        /// open, known_error, resolved, closed (comma-separated).
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show a problem with its incidents and history.
    Show { id: i64 },
}

#[derive(Subcommand)]
pub enum ReportCommand {
    /// SLA compliance, MTTA and MTTR of the incidents created in a range.
    Sla {
        /// A date (2026-11-26: from its start, in the local time zone), a
        /// local time (2026-11-26T09:00) or RFC 3339 (default: 30 days before --to).
        #[arg(long)]
        from: Option<String>,
        /// A date (2026-11-30: to its end, in the local time zone), a local
        /// time or RFC 3339 (default: now).
        #[arg(long)]
        to: Option<String>,
        /// service, priority or rule.
        #[arg(long, default_value = "service")]
        group_by: String,
        /// Print CSV instead of a table.
        #[arg(long)]
        csv: bool,
    },
}

#[derive(Subcommand)]
pub enum ChangesCommand {
    /// Record a change or deploy.
    Add {
        /// The service changed; incidents of it list the change as a suspected cause.
        #[arg(long)]
        service: String,
        #[arg(long)]
        summary: String,
        /// RFC 3339 (default: now).
        #[arg(long)]
        start: Option<String>,
        /// RFC 3339; absent for a point in time such as a deploy.
        #[arg(long)]
        end: Option<String>,
        #[arg(long)]
        link: Option<String>,
        /// NAME=VALUE (repeatable).
        #[arg(long = "label", short = 'l')]
        labels: Vec<String>,
        /// A maintenance window: alerts of the service open no incident until --end.
        #[arg(long)]
        suppress: bool,
        /// Who (default: $ALERTGATE_ACTOR, else $USER).
        #[arg(long, env = "ALERTGATE_ACTOR")]
        actor: Option<String>,
    },
    /// List changes, newest first.
    List {
        #[arg(long)]
        service: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

pub async fn problems(args: &ClientArgs, cmd: ProblemsCommand) -> anyhow::Result<()> {
    match cmd {
        ProblemsCommand::List { state, limit, cursor } => {
            let mut q: Vec<(&str, String)> = vec![("limit", limit.to_string())];
            q.extend(state.map(|v| ("state", v)));
            q.extend(cursor.map(|v| ("cursor", v)));
            let page = get_json(args, "/api/v1/problems", &q).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&page)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = rows(&page["problems"], |p| {
                vec![
                    text(&p["id"]),
                    text(&p["state"]),
                    text(&p["incidentCount"]),
                    text(&p["lastOccurrence"]),
                    text(&p["title"]),
                ]
            });
            print_table(&["ID", "STATE", "INCIDENTS", "LAST", "TITLE"], &rows);
            if let Some(next) = page["nextCursor"].as_str() {
                println!("(more: --cursor {next})");
            }
        }
        ProblemsCommand::Show { id } => {
            let d = get_json(args, &format!("/api/v1/problems/{id}"), &[]).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&d)?);
                return Ok(());
            }
            println!("problem #{} [{}] {}", text(&d["id"]), text(&d["state"]), text(&d["title"]));
            println!("  key {}  rule {}  opened by {}", text(&d["key"]), text(&d["rule"]), text(&d["createdBy"]));
            println!("  first {}  last {}", text(&d["firstOccurrence"]), text(&d["lastOccurrence"]));
            println!("  root cause: {}", text(&d["rootCause"]));
            println!("  workaround: {}", text(&d["workaround"]));
            println!("\nincidents:");
            let rows: Vec<Vec<String>> = rows(&d["incidents"], |i| {
                vec![text(&i["id"]), text(&i["priority"]), text(&i["state"]), text(&i["createdAt"]), text(&i["title"])]
            });
            print_table(&["ID", "PRIO", "STATE", "CREATED", "TITLE"], &rows);
            print_timeline(&d["timeline"]);
        }
    }
    Ok(())
}

pub async fn changes(args: &ClientArgs, cmd: ChangesCommand) -> anyhow::Result<()> {
    match cmd {
        ChangesCommand::Add { service, summary, start, end, link, labels, suppress, actor: who } => {
            let mut label_map = serde_json::Map::new();
            for l in labels {
                let Some((k, v)) = l.split_once('=') else {
                    anyhow::bail!("--label {l:?}: expected NAME=VALUE");
                };
                label_map.insert(k.trim().to_owned(), Value::String(v.to_owned()));
            }
            let body = json!({
                "service": service, "summary": summary, "start": start, "end": end, "link": link,
                "labels": label_map, "suppress": suppress, "actor": actor(who),
            });
            let c = send(args, reqwest::Method::POST, "/api/v1/changes", &[], Some(body)).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&c)?);
            } else {
                println!("change #{} recorded for {}", text(&c["id"]), text(&c["service"]));
            }
        }
        ChangesCommand::List { service, limit } => {
            let mut q: Vec<(&str, String)> = vec![("limit", limit.to_string())];
            q.extend(service.map(|v| ("service", v)));
            let page = get_json(args, "/api/v1/changes", &q).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&page)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = rows(&page["changes"], |c| {
                vec![
                    text(&c["id"]),
                    text(&c["service"]),
                    text(&c["startsAt"]),
                    text(&c["endsAt"]),
                    if c["suppress"].as_bool() == Some(true) { "yes".into() } else { "".into() },
                    text(&c["summary"]),
                ]
            });
            print_table(&["ID", "SERVICE", "START", "END", "SUPPRESS", "SUMMARY"], &rows);
        }
    }
    Ok(())
}

pub async fn report(args: &ClientArgs, cmd: ReportCommand) -> anyhow::Result<()> {
    let ReportCommand::Sla { from, to, group_by, csv } = cmd;
    let mut q: Vec<(&str, String)> = vec![("group_by", group_by)];
    let tz = jiff::tz::TimeZone::system();
    for (key, given, bound) in [("from", from, Bound::Start), ("to", to, Bound::End)] {
        if let Some(text) = given {
            let at = parse_time(&text, bound, &tz).map_err(|e| anyhow::anyhow!("--{key}: {e}"))?;
            q.push((key, at.to_string()));
        }
    }
    if csv {
        print!("{}", super::get_text(args, "/api/v1/reports/sla", &q, "text/csv").await?);
        return Ok(());
    }
    let r = get_json(args, "/api/v1/reports/sla", &q).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!("SLA report {} to {}, by {}", text(&r["from"]), text(&r["to"]), text(&r["groupBy"]));
    let row = |g: &Value| {
        vec![
            text(&g["key"]),
            text(&g["incidents"]),
            seconds(&g["mttaSeconds"]),
            seconds(&g["mttrSeconds"]),
            percent(&g["respondCompliancePercent"]),
            percent(&g["resolveCompliancePercent"]),
            format!("{}/{}", text(&g["respondBreaches"]), text(&g["resolveBreaches"])),
        ]
    };
    let mut rows: Vec<Vec<String>> = rows(&r["groups"], row);
    rows.push(row(&r["total"]));
    print_table(&["GROUP", "INCIDENTS", "MTTA", "MTTR", "RESPOND OK", "RESOLVE OK", "BREACHES R/R"], &rows);
    let problems = r["topProblems"].as_array().cloned().unwrap_or_default();
    if !problems.is_empty() {
        println!("\ntop recurring problems:");
        let rows: Vec<Vec<String>> = problems
            .iter()
            .map(|p| vec![text(&p["id"]), text(&p["state"]), text(&p["incidents"]), text(&p["title"])])
            .collect();
        print_table(&["ID", "STATE", "INCIDENTS", "TITLE"], &rows);
    }
    Ok(())
}

fn percent(v: &Value) -> String {
    v.as_f64().map(|p| format!("{p:.1}%")).unwrap_or_else(|| "-".into())
}

pub(super) fn print_timeline(timeline: &Value) {
    println!("\ntimeline:");
    let events: Vec<Vec<String>> =
        rows(timeline, |e| vec![text(&e["at"]), text(&e["actor"]), text(&e["kind"]), text(&e["message"])]);
    print_table(&["AT", "ACTOR", "EVENT", "MESSAGE"], &events);
}

/// The SLA clocks, escalation, known error and suspected changes of an
/// incident, for `incidents show`.
pub(super) fn print_itsm(d: &Value) {
    let sla = &d["sla"];
    if sla.is_object() {
        println!("\nSLA {} ({} calendar):", text(&sla["policy"]), text(&sla["calendar"]));
        let rows: Vec<Vec<String>> = ["respond", "resolve"]
            .iter()
            .filter(|k| sla[**k].is_object())
            .map(|k| {
                let c = &sla[*k];
                let warned: Vec<String> = c["warned_at"]
                    .as_array()
                    .map(|ws| ws.iter().map(|w| format!("{}%", text(&w["percent"]))).collect())
                    .unwrap_or_default();
                vec![
                    k.to_string(),
                    text(&c["state"]),
                    text(&c["target"]),
                    seconds(&c["elapsed_seconds"]),
                    seconds(&c["remaining_seconds"]),
                    if warned.is_empty() { "-".into() } else { warned.join(",") },
                    text(&c["breached_at"]),
                    text(&c["due_at"]),
                ]
            })
            .collect();
        print_table(&["CLOCK", "STATE", "TARGET", "ELAPSED", "REMAINING", "WARNED", "BREACHED", "NEXT"], &rows);
    } else {
        println!("\nSLA: no policy applies");
    }
    let e = &d["escalation"];
    if e.is_object() {
        match e["nextAt"].as_str() {
            Some(at) => println!(
                "escalation {}: round {}, step {} due {at}",
                text(&e["policy"]),
                text(&e["round"]),
                text(&e["nextStep"])
            ),
            None => println!("escalation {}: stopped or done", text(&e["policy"])),
        }
    }
    if let Some(w) = d["workaround"].as_str() {
        println!("known error workaround: {w}");
    }
    for p in d["problems"].as_array().cloned().unwrap_or_default() {
        println!("problem #{} [{}] {}", text(&p["id"]), text(&p["state"]), text(&p["title"]));
    }
    for c in d["suspectedChanges"].as_array().cloned().unwrap_or_default() {
        println!(
            "suspected change #{} {} at {}: {}",
            text(&c["id"]),
            text(&c["service"]),
            text(&c["startsAt"]),
            text(&c["summary"])
        );
    }
}

/// `90.5` seconds as `1m30s`; negative as `-1m30s`.
fn seconds(v: &Value) -> String {
    let Some(s) = v.as_f64() else { return "-".into() };
    let ms = (s * 1000.0).round() as i64;
    let d = crate::model::Duration::from_millis(ms.abs() / 1000 * 1000);
    if ms < 0 { format!("-{d}") } else { d.to_string() }
}
