//! The command line: `serve`, `check`, and the client commands that talk to
//! a running gateway. This is the binary's edge: errors become messages and
//! exit codes here.
// Every line printed goes through the writer that survives a closed pipe.
use crate::output::outln as println;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, LogFormat, Overrides};

#[derive(Parser)]
#[command(
    name = "alertgate",
    version,
    about = "Alert-to-incident gateway for Prometheus, Alertmanager, Grafana and PagerDuty senders"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(ServeArgs),
    /// Check the config file and the rule files, as `serve` would load them.
    Check(CheckArgs),
    /// Alerts stored by a running gateway.
    Alerts {
        #[command(subcommand)]
        command: crate::client::AlertsCommand,
        #[command(flatten)]
        client: crate::client::ClientArgs,
    },
    /// Post-incident reviews of a running gateway.
    Reviews {
        #[command(subcommand)]
        command: crate::client::ReviewsCommand,
        #[command(flatten)]
        client: crate::client::ClientArgs,
    },
    /// Incidents of a running gateway: list, show, ack, resolve, note, ...
    Incidents {
        #[command(subcommand)]
        command: crate::client::IncidentsCommand,
        #[command(flatten)]
        client: crate::client::ClientArgs,
    },
    /// Silences of a running gateway, in amtool's syntax: add, query, expire.
    Silence {
        #[command(subcommand)]
        command: crate::client::SilenceCommand,
        #[command(flatten)]
        client: crate::client::ClientArgs,
    },
    /// Problems of a running gateway: list, show.
    Problems {
        #[command(subcommand)]
        command: crate::client::ProblemsCommand,
        #[command(flatten)]
        client: crate::client::ClientArgs,
    },
    /// Changes and deploys: add, list.
    Changes {
        #[command(subcommand)]
        command: crate::client::ChangesCommand,
        #[command(flatten)]
        client: crate::client::ClientArgs,
    },
    /// Heartbeats of a running gateway: list them (the default), or `ping NAME`.
    #[command(visible_alias = "heartbeat")]
    Heartbeats {
        #[command(subcommand)]
        command: Option<crate::client::HeartbeatsCommand>,
        #[command(flatten)]
        client: crate::client::ClientArgs,
    },
    /// Who is on call now in each schedule (or SCHEDULE), until when, and who next.
    Oncall {
        schedule: Option<String>,
        #[command(flatten)]
        client: crate::client::ClientArgs,
    },
    /// Schedules: list, `shifts NAME --from --to`, `overrides NAME`,
    /// `override NAME --person --start --end`, `delete-override NAME ID`, `feed NAME`.
    #[command(visible_alias = "schedule")]
    Schedules {
        #[command(subcommand)]
        command: Option<crate::client::SchedulesCommand>,
        #[command(flatten)]
        client: crate::client::ClientArgs,
    },
    /// Calendar feeds: list, `person NAME` (a person's feed), `revoke ID`.
    CalendarFeeds {
        #[command(subcommand)]
        command: Option<crate::client::FeedsCommand>,
        #[command(flatten)]
        client: crate::client::ClientArgs,
    },
    /// Reports of a running gateway: `report sla --from --to`.
    Report {
        #[command(subcommand)]
        command: crate::client::ReportCommand,
        #[command(flatten)]
        client: crate::client::ClientArgs,
    },
    /// Copy the database to FILE, consistently, while the gateway runs.
    Backup {
        /// The new file (must not exist).
        file: PathBuf,
        /// The gateway's data directory.
        #[arg(long, env = "ALERTGATE_DATA_DIR", value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Config file naming the data directory.
        #[arg(long, env = "ALERTGATE_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Apply the schema migrations to a PostgreSQL database (each once,
    /// under a lock: safe while gateways start); refuses a newer schema.
    Migrate {
        /// postgres://USER:PASSWORD@HOST:PORT/DATABASE
        #[arg(long, env = "ALERTGATE_DATABASE_URL", value_name = "URL", hide_env_values = true)]
        database_url: String,
    },
    /// The database: `store copy` moves an embedded (SQLite) database into
    /// PostgreSQL.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Notifiers: `notify test NAME` sends a test notification through one.
    Notify {
        #[command(subcommand)]
        command: NotifyCommand,
    },
    /// Show what the rules would do with the alerts of a payload file (like
    /// `amtool config routes test`): rule, group key, priority, muting.
    Replay(crate::replay::ReplayArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "ALERTGATE_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    /// Directory for the SQLite database.
    #[arg(long, env = "ALERTGATE_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Keep the data in this PostgreSQL database, shared with any other
    /// gateway on it, instead of SQLite (overrides `store.url`).
    #[arg(long, env = "ALERTGATE_DATABASE_URL", value_name = "URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Directory of rule files (*.yaml).
    #[arg(long, env = "ALERTGATE_RULES", value_name = "DIR")]
    rules: Option<PathBuf>,
    /// YAML config file (optional; flags and ALERTGATE_* variables override it).
    #[arg(long, env = "ALERTGATE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Largest accepted request body, e.g. 4MiB.
    #[arg(long, env = "ALERTGATE_MAX_BODY", value_name = "SIZE")]
    max_body: Option<String>,
    /// Log format.
    #[arg(long, env = "ALERTGATE_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// How the database is checked before serving (default quick).
    #[arg(long, value_enum)]
    integrity_check: Option<crate::config::IntegrityCheck>,
    /// Serve a non-loopback address although no API token is configured.
    #[arg(long)]
    allow_unauthenticated: bool,
    /// For tests: run on a controlled clock standing at START (RFC 3339)
    /// that moves only through `POST /-/clock` (see `clock`). Hidden: no
    /// production gateway wants it.
    #[arg(long, hide = true, value_name = "START")]
    test_clock: Option<jiff::Timestamp>,
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy an embedded database (a consistent snapshot: the gateway may
    /// keep running) into a new, empty PostgreSQL database, with every
    /// table's row count checked.
    Copy {
        /// The SQLite database: sqlite:PATH, or a path (a data directory or
        /// its alertgate.db).
        #[arg(long, value_name = "SOURCE")]
        from: String,
        /// postgres://USER:PASSWORD@HOST:PORT/DATABASE
        #[arg(long, env = "ALERTGATE_DATABASE_URL", value_name = "URL", hide_env_values = true)]
        to: String,
    },
}

#[derive(Subcommand)]
enum NotifyCommand {
    /// Send a test notification through the notifier NAME of the config
    /// file and report the outcome.
    Test {
        name: String,
        /// YAML config file that defines the notifier.
        #[arg(long, env = "ALERTGATE_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

#[derive(Args)]
struct CheckArgs {
    /// Directory of rule files.
    #[arg(long, env = "ALERTGATE_RULES", value_name = "DIR")]
    rules: Option<PathBuf>,
    /// YAML config file.
    #[arg(long, env = "ALERTGATE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Check(args) => check(args),
        Command::Alerts { command, client } => crate::client::run_alerts(&client, command),
        Command::Incidents { command, client } => crate::client::run_incidents(&client, command),
        Command::Reviews { command, client } => crate::client::run_reviews(&client, command),
        Command::Silence { command, client } => crate::client::run_silence(&client, command),
        Command::Problems { command, client } => crate::client::run_problems(&client, command),
        Command::Changes { command, client } => crate::client::run_changes(&client, command),
        Command::Report { command, client } => crate::client::run_report(&client, command),
        Command::Heartbeats { command, client } => crate::client::run_heartbeats(&client, command),
        Command::Oncall { schedule, client } => crate::client::run_oncall(&client, schedule),
        Command::Schedules { command, client } => crate::client::run_schedules(&client, command),
        Command::CalendarFeeds { command, client } => crate::client::run_feeds(&client, command),
        Command::Replay(args) => crate::replay::run(args),
        Command::Backup { file, data_dir, config } => backup(&file, data_dir, config),
        Command::Migrate { database_url } => migrate(&database_url),
        Command::Store { command: StoreCommand::Copy { from, to } } => store_copy(&from, &to),
        Command::Notify { command: NotifyCommand::Test { name, config } } => notify_test(&name, config),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let overrides = Overrides {
        config_file: args.config,
        listen: args.listen,
        data_dir: args.data_dir,
        rules_dir: args.rules,
        max_body: args.max_body,
        log_format: args.log_format,
        integrity_check: args.integrity_check,
        allow_unauthenticated: args.allow_unauthenticated,
        database_url: args.database_url,
    };
    let requested_format = overrides.log_format;
    let config = match Config::load(&overrides) {
        Ok(c) => c,
        Err(e) => {
            let format = requested_format.unwrap_or(LogFormat::Text);
            init_tracing(format);
            fatal(format, &format!("invalid configuration:\n{e}"));
            return ExitCode::from(2);
        }
    };
    let format = config.log_format;
    init_tracing(format);
    if let Some(start) = args.test_clock {
        if let Err(e) = crate::clock::control(start) {
            fatal(format, &e.to_string());
            return ExitCode::FAILURE;
        }
        tracing::warn!(%start, "running on a controlled clock: time moves only through POST /-/clock (for tests)");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            fatal(format, &format!("cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::server::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            fatal(format, &e.to_string());
            ExitCode::FAILURE
        }
    }
}

/// A fatal error of `serve`, said once: as plain text for a person, or as
/// one log line when the log is JSON, so that stderr stays machine-readable.
fn fatal(format: LogFormat, message: &str) {
    match format {
        LogFormat::Text => eprintln!("alertgate: {message}"),
        LogFormat::Json => tracing::error!(error = %message, "alertgate stopped"),
    }
}

fn check(args: CheckArgs) -> ExitCode {
    let overrides = Overrides { config_file: args.config, rules_dir: args.rules, ..Default::default() };
    let mut failed = false;
    let config = match Config::load(&overrides) {
        Ok(c) => Some(c),
        Err(e) => {
            for line in e.to_string().lines() {
                println!("{line}");
            }
            failed = true;
            None
        }
    };
    let rules_dir =
        config.as_ref().map(|c| c.rules_dir.clone()).or(overrides.rules_dir).unwrap_or_else(|| "rules".into());
    let allow_empty = config.as_ref().is_some_and(|c| c.allow_empty);
    let loaded = match (&config, &overrides.config_file) {
        (Some(c), _) => crate::config::load_rules(&rules_dir, &c.notifiers, &c.people, allow_empty),
        // A broken config: its notifiers still count as defined, so a rule
        // naming one is not reported again.
        (None, file) => {
            let declared = file.as_deref().map(Config::declared_notifiers).unwrap_or_default();
            let names: Vec<&str> = declared.iter().map(String::as_str).collect();
            let opts = crate::rules::LoadOptions { notifiers: Some(&names), allow_empty };
            crate::rules::RuleSet::load(&rules_dir, &opts)
        }
    };
    match loaded {
        Ok(set) => {
            if !failed {
                println!(
                    "ok: {} rule file(s), {} incident rule(s), {} inhibit rule(s), {} SLA policies, {} escalation policies, {} problem rule(s), {} schedule(s), {} heartbeat(s)",
                    set.files.len(),
                    set.incident_rules.len(),
                    set.inhibit_rules.len(),
                    set.sla_policies.len(),
                    set.escalation_policies.len(),
                    set.problem_rules.len(),
                    set.schedules.len(),
                    set.heartbeats.len()
                );
            }
        }
        Err(errors) => {
            for e in errors {
                println!("{e}");
            }
            failed = true;
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn migrate(url: &str) -> ExitCode {
    match crate::store::migrate_postgres(url) {
        Ok(applied) => {
            println!(
                "{}: schema version {} ({applied} migration(s) applied)",
                crate::store::redacted(url),
                crate::store::SCHEMA_VERSION
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("alertgate: migrate failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn store_copy(from: &str, to: &str) -> ExitCode {
    let path = PathBuf::from(from.strip_prefix("sqlite:").unwrap_or(from));
    let db = if path.is_dir() { path.join(crate::store::DB_FILE) } else { path };
    match crate::store::copy_to_postgres(&db, to) {
        Ok(copied) => {
            let rows: u64 = copied.values().sum();
            for (table, n) in &copied {
                println!("{table:<20} {n:>10}");
            }
            println!(
                "copied {rows} rows of {} tables from {} to {} (every count checked)",
                copied.len(),
                db.display(),
                crate::store::redacted(to)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("alertgate: store copy failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn backup(file: &std::path::Path, data_dir: Option<PathBuf>, config: Option<PathBuf>) -> ExitCode {
    let config = match Config::load(&Overrides { config_file: config, data_dir, ..Default::default() }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("alertgate: invalid configuration:\n{e}");
            return ExitCode::from(2);
        }
    };
    let db = config.data_dir.join(crate::store::DB_FILE);
    if !db.exists() {
        eprintln!("alertgate: no database at {}", db.display());
        return ExitCode::FAILURE;
    }
    let started = std::time::Instant::now();
    match crate::store::backup(&db, file) {
        Ok(bytes) => {
            println!(
                "backed up {} to {} ({bytes} bytes, {:.1} s); the copy passes quick_check",
                db.display(),
                file.display(),
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("alertgate: backup failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn notify_test(name: &str, config: Option<PathBuf>) -> ExitCode {
    let config = match Config::load(&Overrides { config_file: config, ..Default::default() }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("alertgate: invalid configuration:\n{e}");
            return ExitCode::from(2);
        }
    };
    let Some(n) = config.notifiers.get(name).cloned() else {
        let known = config.notifiers.names();
        eprintln!(
            "alertgate: no notifier named {name:?} in the config (known: {})",
            if known.is_empty() { "none".to_owned() } else { known.join(", ") }
        );
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("alertgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let delivery = crate::notify::test_delivery(&n.name);
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap_or_default();
    match runtime.block_on(crate::notify::deliver(&n, &delivery, &http)) {
        crate::notify::Outcome::Sent => {
            println!("sent: a test notification through {} notifier {name}", n.kind_name());
            ExitCode::SUCCESS
        }
        crate::notify::Outcome::Transient(e) => {
            println!("failed (would be retried): {e}");
            ExitCode::FAILURE
        }
        crate::notify::Outcome::Permanent(e) => {
            println!("failed (would not be retried): {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("ALERTGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal: a log file or journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
