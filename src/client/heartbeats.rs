//! Client commands for heartbeats: list them, ping one.
// Every line printed goes through the writer that survives a closed pipe.
use crate::output::outln as println;
use clap::Subcommand;
use serde_json::Value;

use super::{ClientArgs, encode_segment, get_json, print_table, rows, send, text};

#[derive(Subcommand)]
pub enum HeartbeatsCommand {
    /// List the heartbeats of the rules with their state (the default).
    List,
    /// Ping a heartbeat, as a cron job would (needs the ingest role).
    Ping { name: String },
}

fn print_heartbeats(args: &ClientArgs, list: &Value) -> anyhow::Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(list)?);
        return Ok(());
    }
    let rows = rows(list, |h| {
        vec![
            text(&h["name"]),
            text(&h["state"]),
            text(&h["lastPing"]),
            text(&h["deadline"]),
            text(&h["interval"]),
            text(&h["grace"]),
            h["matchers"].as_array().map(|m| m.iter().map(text).collect::<Vec<_>>().join(",")).unwrap_or_default(),
        ]
    });
    print_table(&["NAME", "STATE", "LAST PING", "DEADLINE", "INTERVAL", "GRACE", "MATCHERS"], &rows);
    Ok(())
}

pub async fn heartbeats(args: &ClientArgs, cmd: Option<HeartbeatsCommand>) -> anyhow::Result<()> {
    match cmd.unwrap_or(HeartbeatsCommand::List) {
        HeartbeatsCommand::List => {
            let page = get_json(args, "/api/v1/heartbeats", &[]).await?;
            print_heartbeats(args, &page["heartbeats"])
        }
        HeartbeatsCommand::Ping { name } => {
            let path = format!("/api/v1/heartbeats/{}", encode_segment(&name));
            let h = send(args, reqwest::Method::POST, &path, &[], None).await?;
            print_heartbeats(args, &Value::Array(vec![h]))
        }
    }
}
