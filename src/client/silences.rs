//! `alertgate silence add|query|expire`, in amtool's syntax: matchers such
//! as `alertname=Foo` or `severity=~"crit.*"` (values quoted or bare), a
//! first word without an operator is the alertname.
use clap::Subcommand;
// Every line printed goes through the writer that survives a closed pipe.
use crate::output::outln as println;
use serde_json::{Value, json};

use super::{ClientArgs, actor, get_json, print_table, rows, send, text};
use crate::engine::silence::{SilenceRef, parse_silence_id};

#[derive(Subcommand)]
pub enum SilenceCommand {
    /// Silence the alerts that match every MATCHER; prints the new id.
    Add {
        /// `name=value`, `name!=value`, `name=~regex`, `name!~regex`; a
        /// first word without an operator means `alertname=WORD`.
        #[arg(required = true, value_name = "MATCHER")]
        matchers: Vec<String>,
        /// How long from the start, e.g. 2h, 30m, 1d (default 1h).
        #[arg(long, short = 'd', conflicts_with = "end")]
        duration: Option<String>,
        /// RFC 3339 end instead of --duration.
        #[arg(long, short = 'e')]
        end: Option<String>,
        /// RFC 3339 start (default: now).
        #[arg(long)]
        start: Option<String>,
        /// Why (recorded with the silence).
        #[arg(long, short = 'c', default_value = "")]
        comment: String,
        /// Who (default: the actor: --actor, $ALERTGATE_ACTOR, else $USER).
        #[arg(long, short = 'a')]
        author: Option<String>,
        #[arg(long, env = "ALERTGATE_ACTOR", hide = true)]
        actor: Option<String>,
    },
    /// List pending and active silences (with MATCHERs: those having an
    /// equal matcher, as amtool filters).
    Query {
        #[arg(value_name = "MATCHER")]
        matchers: Vec<String>,
        /// Show expired silences instead.
        #[arg(long)]
        expired: bool,
    },
    /// Expire silences now (ids as alertgate or Alertmanager's API show them).
    Expire {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
}

/// amtool's matcher words: a first word with no operator is an alertname.
pub(crate) fn matcher_args(words: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let text = if i == 0 && !w.contains(['=', '~', '{']) { format!("alertname={w}") } else { w.clone() };
        crate::rules::matcher::parse_matchers(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
        out.push(text);
    }
    Ok(out)
}

/// A silence id from the command line: alertgate's number, or the UUID
/// Alertmanager's API shows, which the gateway checks is one of its own
/// (another gateway's silence of the same number is not this one).
#[derive(Debug, PartialEq, Eq)]
enum SilenceTarget {
    Number(i64),
    Uuid(String),
}

fn silence_target(raw: &str) -> anyhow::Result<SilenceTarget> {
    match parse_silence_id(raw) {
        SilenceRef::Id(id) => Ok(SilenceTarget::Number(id)),
        SilenceRef::Numbered { .. } => Ok(SilenceTarget::Uuid(raw.trim().to_ascii_lowercase())),
        SilenceRef::Unknown => anyhow::bail!("no silence {raw}: not a silence of alertgate"),
        SilenceRef::Malformed => anyhow::bail!("{raw:?} is not a silence id (a number, or a UUID from amtool)"),
    }
}

fn end_time(start: jiff::Timestamp, duration: Option<&str>, end: Option<&str>) -> anyhow::Result<jiff::Timestamp> {
    if let Some(e) = end {
        return e.parse().map_err(|err| anyhow::anyhow!("--end: expected an RFC 3339 time, got {e:?}: {err}"));
    }
    let d: crate::model::Duration = duration
        .unwrap_or("1h")
        .parse()
        .map_err(|err| anyhow::anyhow!("--duration: expected a duration such as 2h or 30m: {err}"))?;
    if d.as_millis() <= 0 {
        anyhow::bail!("--duration must be longer than 0");
    }
    Ok(start + d.signed())
}

pub async fn silence(args: &ClientArgs, cmd: SilenceCommand) -> anyhow::Result<()> {
    match cmd {
        SilenceCommand::Add { matchers, duration, end, start, comment, author, actor: who } => {
            let matchers = matcher_args(&matchers)?;
            let starts_at = match &start {
                Some(s) => s.parse().map_err(|e| anyhow::anyhow!("--start: expected an RFC 3339 time: {e}"))?,
                None => crate::clock::now(),
            };
            let ends_at = end_time(starts_at, duration.as_deref(), end.as_deref())?;
            let body = json!({
                "matchers": matchers,
                "startsAt": starts_at.to_string(),
                "endsAt": ends_at.to_string(),
                "createdBy": author.unwrap_or_else(|| actor(who)),
                "comment": comment,
            });
            let made = send(args, reqwest::Method::POST, "/api/v1/silences", &[], Some(body)).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&made)?);
            } else {
                println!("{}", text(&made["id"]));
            }
        }
        SilenceCommand::Query { matchers, expired } => {
            let mut q: Vec<(&str, String)> = matcher_args(&matchers)?.into_iter().map(|m| ("filter", m)).collect();
            if expired {
                q.push(("expired", "true".into()));
            }
            let list = get_json(args, "/api/v1/silences", &q).await?;
            let wanted = |s: &Value| (s["state"] == "expired") == expired;
            let shown: Vec<Value> =
                list["silences"].as_array().into_iter().flatten().filter(|s| wanted(s)).cloned().collect();
            if args.json {
                println!("{}", serde_json::to_string_pretty(&json!({ "silences": shown }))?);
                return Ok(());
            }
            let table = rows(&Value::Array(shown), |s| {
                let matchers: Vec<String> = rows(&s["matchers"], |m| vec![text(m)]).into_iter().flatten().collect();
                vec![
                    text(&s["id"]),
                    text(&s["state"]),
                    matchers.join(" "),
                    text(&s["startsAt"]),
                    text(&s["endsAt"]),
                    text(&s["createdBy"]),
                    text(&s["comment"]),
                ]
            });
            print_table(&["ID", "STATE", "MATCHERS", "STARTS", "ENDS", "CREATED BY", "COMMENT"], &table);
        }
        SilenceCommand::Expire { ids } => {
            let targets = ids.iter().map(|i| silence_target(i)).collect::<anyhow::Result<Vec<_>>>()?;
            for (raw, target) in ids.iter().zip(targets) {
                let path = match &target {
                    SilenceTarget::Number(id) => format!("/api/v1/silences/{id}"),
                    SilenceTarget::Uuid(uuid) => format!("/api/v2/silence/{uuid}"),
                };
                send(args, reqwest::Method::DELETE, &path, &[], None)
                    .await
                    .map_err(|e| e.context(format!("expiring silence {raw}")))?;
                if !args.json {
                    println!("expired {raw}");
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amtool_matcher_words() {
        let words = |w: &[&str]| matcher_args(&w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(words(&["Foo", "severity=~crit.*"]).unwrap(), ["alertname=Foo", "severity=~crit.*"]);
        assert_eq!(words(&["job=\"a b\""]).unwrap(), ["job=\"a b\""]);
        assert!(words(&["a=\"unterminated"]).is_err());
        assert!(words(&["Foo", "bar"]).is_err(), "only the first word may be a bare alertname");
    }

    #[test]
    fn ends_from_a_duration_or_an_end() {
        let start: jiff::Timestamp = "2026-11-26T10:00:00Z".parse().unwrap();
        assert_eq!(end_time(start, Some("2h"), None).unwrap().to_string(), "2026-11-26T12:00:00Z");
        assert_eq!(end_time(start, None, None).unwrap().to_string(), "2026-11-26T11:00:00Z");
        assert_eq!(end_time(start, None, Some("2026-11-27T00:00:00Z")).unwrap().to_string(), "2026-11-27T00:00:00Z");
        assert!(end_time(start, Some("soon"), None).is_err());
        assert!(end_time(start, Some("0s"), None).is_err());
    }

    #[test]
    fn ids_from_either_api() {
        assert_eq!(silence_target("7").unwrap(), SilenceTarget::Number(7));
        let uuid = "5F0C2A91-0000-4000-8000-00000000000a";
        assert_eq!(
            silence_target(uuid).unwrap(),
            SilenceTarget::Uuid(uuid.to_ascii_lowercase()),
            "the gateway checks it"
        );
        assert!(silence_target("17b6b4f3-0495-49ea-98d1-6f84a5a5f6e6").is_err());
        assert!(silence_target("x").is_err());
    }
}
