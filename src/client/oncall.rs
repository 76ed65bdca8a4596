//! Client commands for on call: who is on call, a schedule's shifts, its
//! overrides, and calendar feeds.
// Every line printed goes through the writer that survives a closed pipe.
use crate::output::outln as println;
use clap::Subcommand;
use jiff::tz::TimeZone;
use serde_json::{Value, json};

use super::when::{Bound, parse_time};
use super::{ClientArgs, encode_segment, get_json, print_table, rows, send, text};

#[derive(Subcommand)]
pub enum SchedulesCommand {
    /// List the schedules of the rules (the default).
    List,
    /// The final shifts of a schedule, overrides applied.
    Shifts {
        name: String,
        /// Start: RFC 3339, a local time or a date (default now).
        #[arg(long)]
        from: Option<String>,
        /// End (default 14 days after the start).
        #[arg(long)]
        to: Option<String>,
    },
    /// List a schedule's overrides not ended.
    Overrides { name: String },
    /// Put PERSON on call in a schedule from --start to --end (a swap, or cover).
    Override {
        name: String,
        #[arg(long)]
        person: String,
        #[arg(long)]
        start: String,
        #[arg(long)]
        end: String,
        #[arg(long)]
        reason: Option<String>,
        /// Who (default: $ALERTGATE_ACTOR, else $USER).
        #[arg(long, env = "ALERTGATE_ACTOR")]
        actor: Option<String>,
    },
    /// Delete an override by id.
    DeleteOverride { name: String, id: i64 },
    /// Make a calendar feed of a schedule's shifts; prints its URL (shown once).
    Feed {
        name: String,
        /// Who (default: $ALERTGATE_ACTOR, else $USER).
        #[arg(long, env = "ALERTGATE_ACTOR")]
        actor: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum FeedsCommand {
    /// List calendar feeds (the default).
    List,
    /// Make a feed of a person's shifts in every schedule; prints its URL.
    Person {
        name: String,
        /// Who (default: $ALERTGATE_ACTOR, else $USER).
        #[arg(long, env = "ALERTGATE_ACTOR")]
        actor: Option<String>,
    },
    /// Revoke a feed by id: its URL stops working.
    Revoke { id: i64 },
}

fn json_out(args: &ClientArgs, v: &Value) -> anyhow::Result<bool> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(v)?);
    }
    Ok(args.json)
}

fn time(key: &str, text: &str, bound: Bound) -> anyhow::Result<String> {
    let tz = TimeZone::system();
    Ok(parse_time(text, bound, &tz).map_err(|e| anyhow::anyhow!("--{key}: {e}"))?.to_string())
}

fn stretch(v: &Value) -> String {
    if v.is_null() {
        return "nobody".into();
    }
    format!("{} ({})", text(&v["person"]), text(&v["source"]))
}

/// `alertgate oncall [SCHEDULE]`: who is on call now, until when, who next.
pub async fn oncall(args: &ClientArgs, schedule: Option<String>) -> anyhow::Result<()> {
    let query: Vec<(&str, String)> = schedule.into_iter().map(|s| ("schedule", s)).collect();
    let board = get_json(args, "/api/v1/oncall", &query).await?;
    if json_out(args, &board)? {
        return Ok(());
    }
    let rows = rows(&board["schedules"], |s| {
        vec![
            text(&s["schedule"]),
            stretch(&s["now"]),
            text(&s["now"]["end"]),
            stretch(&s["next"]),
            text(&s["next"]["end"]),
        ]
    });
    print_table(&["SCHEDULE", "ON CALL", "UNTIL", "NEXT", "NEXT UNTIL"], &rows);
    Ok(())
}

fn print_feed(args: &ClientArgs, feed: &Value) -> anyhow::Result<()> {
    if !json_out(args, feed)? {
        println!("feed {} (keep this URL secret; it is not shown again):", text(&feed["id"]));
        println!("{}", text(&feed["url"]));
    }
    Ok(())
}

pub async fn schedules(args: &ClientArgs, cmd: Option<SchedulesCommand>) -> anyhow::Result<()> {
    match cmd.unwrap_or(SchedulesCommand::List) {
        SchedulesCommand::List => {
            let list = get_json(args, "/api/v1/schedules", &[]).await?;
            if !json_out(args, &list)? {
                let rows = rows(&list["schedules"], |s| {
                    let layers = s["layers"].as_array().map(|l| l.iter().map(|l| text(&l["name"])).collect::<Vec<_>>());
                    vec![text(&s["name"]), text(&s["timezone"]), layers.unwrap_or_default().join(", ")]
                });
                print_table(&["NAME", "TIME ZONE", "LAYERS"], &rows);
            }
        }
        SchedulesCommand::Shifts { name, from, to } => {
            let mut query = Vec::new();
            if let Some(f) = from {
                query.push(("from", time("from", &f, Bound::Start)?));
            }
            if let Some(t) = to {
                query.push(("to", time("to", &t, Bound::End)?));
            }
            let path = format!("/api/v1/schedules/{}/shifts", encode_segment(&name));
            let list = get_json(args, &path, &query).await?;
            if !json_out(args, &list)? {
                let rows = rows(&list["shifts"], |s| {
                    let sources = s["sources"].as_array().map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "));
                    vec![text(&s["start"]), text(&s["end"]), text(&s["person"]), sources.unwrap_or_default()]
                });
                print_table(&["START", "END", "PERSON", "FROM"], &rows);
            }
        }
        SchedulesCommand::Overrides { name } => {
            let path = format!("/api/v1/schedules/{}/overrides", encode_segment(&name));
            let list = get_json(args, &path, &[]).await?;
            print_overrides(args, &list["overrides"])?;
        }
        SchedulesCommand::Override { name, person, start, end, reason, actor } => {
            let body = json!({
                "actor": super::actor(actor),
                "person": person,
                "start": time("start", &start, Bound::Start)?,
                "end": time("end", &end, Bound::Start)?,
                "reason": reason,
            });
            let path = format!("/api/v1/schedules/{}/overrides", encode_segment(&name));
            let made = send(args, reqwest::Method::POST, &path, &[], Some(body)).await?;
            print_overrides(args, &Value::Array(vec![made]))?;
        }
        SchedulesCommand::DeleteOverride { name, id } => {
            let path = format!("/api/v1/schedules/{}/overrides/{id}", encode_segment(&name));
            send(args, reqwest::Method::DELETE, &path, &[], None).await?;
            println!("override {id} of {name} deleted");
        }
        SchedulesCommand::Feed { name, actor } => {
            let body = json!({ "schedule": name, "actor": super::actor(actor) });
            let feed = send(args, reqwest::Method::POST, "/api/v1/calendar-feeds", &[], Some(body)).await?;
            print_feed(args, &feed)?;
        }
    }
    Ok(())
}

fn print_overrides(args: &ClientArgs, list: &Value) -> anyhow::Result<()> {
    if json_out(args, list)? {
        return Ok(());
    }
    let rows = rows(list, |o| {
        vec![
            text(&o["id"]),
            text(&o["person"]),
            text(&o["start"]),
            text(&o["end"]),
            text(&o["createdBy"]),
            text(&o["reason"]),
        ]
    });
    print_table(&["ID", "PERSON", "START", "END", "BY", "REASON"], &rows);
    Ok(())
}

pub async fn feeds(args: &ClientArgs, cmd: Option<FeedsCommand>) -> anyhow::Result<()> {
    match cmd.unwrap_or(FeedsCommand::List) {
        FeedsCommand::List => {
            let list = get_json(args, "/api/v1/calendar-feeds", &[]).await?;
            if !json_out(args, &list)? {
                let rows = rows(&list["calendarFeeds"], |f| {
                    let of = match (&f["of"]["schedule"], &f["of"]["person"]) {
                        (Value::String(s), _) => format!("schedule:{s}"),
                        (_, Value::String(p)) => format!("person:{p}"),
                        _ => String::new(),
                    };
                    vec![text(&f["id"]), of, text(&f["createdBy"]), text(&f["createdAt"]), text(&f["revokedAt"])]
                });
                print_table(&["ID", "OF", "BY", "CREATED", "REVOKED"], &rows);
            }
        }
        FeedsCommand::Person { name, actor } => {
            let body = json!({ "person": name, "actor": super::actor(actor) });
            let feed = send(args, reqwest::Method::POST, "/api/v1/calendar-feeds", &[], Some(body)).await?;
            print_feed(args, &feed)?;
        }
        FeedsCommand::Revoke { id } => {
            send(args, reqwest::Method::DELETE, &format!("/api/v1/calendar-feeds/{id}"), &[], None).await?;
            println!("calendar feed {id} revoked");
        }
    }
    Ok(())
}
