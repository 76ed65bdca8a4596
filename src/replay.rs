//! `alertgate replay FILE`: what the rules would do with each alert of a
//! payload, without storing anything — like `amtool config routes test`.
//! Inhibition is evaluated among the file's own firing alerts; silences are
//! those of a running gateway when `--url` is given.
// Every line printed goes through the writer that survives a closed pipe.
use crate::output::outln as println;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::config::{Config, Overrides};
use crate::engine::inhibit::InhibitIndex;
use crate::engine::silence::Silence;
use crate::ingest::{self, IngestContext};
use crate::model::{Alert, AlertStatus, AlertUpdate};
use crate::rules::RuleSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Auto,
    Alertmanager,
    Prometheus,
    Grafana,
    Pagerduty,
}

#[derive(Args)]
pub struct ReplayArgs {
    /// A payload as a sender would post it (Alertmanager webhook, Prometheus
    /// /api/v2/alerts array, Grafana webhook, PagerDuty event).
    file: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    format: Format,
    /// Directory of rule files.
    #[arg(long, env = "ALERTGATE_RULES", default_value = "rules")]
    rules: PathBuf,
    /// A running gateway whose active silences to apply.
    #[arg(long)]
    url: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ReplayArgs) -> ExitCode {
    match replay(&args) {
        Ok(rows) => {
            print(&args, &rows);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("alertgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn detect(body: &str) -> Format {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Array(_)) => Format::Prometheus,
        Ok(Value::Object(o)) if o.contains_key("event_action") => Format::Pagerduty,
        Ok(Value::Object(o)) if o.contains_key("orgId") || o.contains_key("title") => Format::Grafana,
        _ => Format::Alertmanager,
    }
}

fn replay(args: &ReplayArgs) -> anyhow::Result<Vec<Value>> {
    let body =
        std::fs::read_to_string(&args.file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?;
    let rules = RuleSet::load_dir(&args.rules)
        .map_err(|errors| anyhow::anyhow!("{}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")))?;
    let defaults = Config::load(&Overrides::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let ctx = IngestContext { now: crate::clock::now(), resolve_timeout: defaults.resolve_timeout.signed() };
    let format = if args.format == Format::Auto { detect(&body) } else { args.format };
    let updates = match format {
        Format::Alertmanager | Format::Auto => ingest::alertmanager::parse(&body, &ctx),
        Format::Prometheus => ingest::prometheus::parse(&body, &ctx),
        Format::Grafana => ingest::grafana::parse(&body, &ctx),
        Format::Pagerduty => ingest::pagerduty::parse(&body, &ctx).map(|e| vec![e.update]),
    }
    .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let alerts: Vec<Alert> = updates
        .into_iter()
        .filter_map(|u| match u {
            AlertUpdate::Observe(a) => Some(a),
            _ => None,
        })
        .collect();
    let silences = match &args.url {
        Some(url) => fetch_silences(url)?,
        None => Vec::new(),
    };
    let mut inhibit = InhibitIndex::new(&rules.inhibit_rules);
    for a in alerts.iter().filter(|a| a.status == AlertStatus::Firing) {
        inhibit.update(&rules.inhibit_rules, &a.fingerprint, &a.labels, true);
    }
    let mut rows = Vec::new();
    for a in &alerts {
        let muted = match crate::engine::silence::silenced_by(&silences, &a.labels, ctx.now) {
            Some(s) => Some(crate::model::MuteReason::Silence(s.id)),
            None if a.status == AlertStatus::Firing
                && inhibit.inhibits(&rules.inhibit_rules, &a.fingerprint, &a.labels) =>
            {
                Some(crate::model::MuteReason::Inhibited)
            }
            None => None,
        };
        for rule in crate::engine::route(&rules, &a.labels) {
            let (impact, urgency, priority) = rule.priority(&rules.priority_matrix, &a.labels);
            let title = rules.templates.render(&rule.title_template, &a.labels, &a.annotations).unwrap_or_default();
            rows.push(serde_json::json!({
                "fingerprint": a.fingerprint,
                "alertname": a.labels.get("alertname"),
                "status": a.status,
                "rule": rule.name,
                "groupKey": rule.group_key(&a.labels),
                "impact": impact,
                "urgency": urgency,
                "priority": priority,
                "title": title,
                "mutedBy": muted,
                "minAlerts": rule.min_alerts,
                "minDuration": rule.min_duration.to_string(),
            }));
        }
    }
    Ok(rows)
}

fn fetch_silences(url: &str) -> anyhow::Result<Vec<Silence>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let body: Value = runtime.block_on(async {
        let base = crate::client::base_url(url);
        let client = reqwest::Client::builder().timeout(crate::client::TIMEOUT).build()?;
        let mut req = client.get(format!("{base}/api/v1/silences"));
        if let Ok(t) = std::env::var("ALERTGATE_TOKEN") {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| crate::client::unreachable(&base, &e))?;
        crate::client::check_alertgate(&base, &resp)?;
        let status = resp.status();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        if !status.is_success() {
            anyhow::bail!("{status}: {}", body["error"].as_str().unwrap_or("no error message"));
        }
        anyhow::Ok(body)
    })?;
    let mut out = Vec::new();
    for s in body["silences"].as_array().cloned().unwrap_or_default() {
        let matchers = s["matchers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|m| m.as_str()?.parse().ok())
            .collect();
        let time = |k: &str| s[k].as_str().and_then(|t| t.parse().ok());
        if let (Some(starts_at), Some(ends_at)) = (time("startsAt"), time("endsAt")) {
            out.push(Silence {
                id: s["id"].as_i64().unwrap_or_default(),
                matchers,
                starts_at,
                ends_at,
                created_by: s["createdBy"].as_str().unwrap_or_default().to_owned(),
                comment: s["comment"].as_str().unwrap_or_default().to_owned(),
                created_at: time("createdAt").unwrap_or(starts_at),
            });
        }
    }
    Ok(out)
}

fn print(args: &ReplayArgs, rows: &[Value]) {
    if args.json {
        println!("{}", serde_json::to_string_pretty(rows).unwrap_or_default());
        return;
    }
    let t = crate::client::text;
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                t(&r["fingerprint"]),
                t(&r["alertname"]),
                t(&r["status"]),
                t(&r["rule"]),
                t(&r["groupKey"]),
                t(&r["priority"]),
                t(&r["mutedBy"]),
                t(&r["title"]),
            ]
        })
        .collect();
    crate::client::print_table(
        &["FINGERPRINT", "ALERTNAME", "STATUS", "RULE", "GROUP KEY", "PRIO", "MUTED", "TITLE"],
        &table,
    );
}
