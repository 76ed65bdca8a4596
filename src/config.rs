//! The gateway's configuration: a YAML file (optional), `ALERTGATE_*`
//! environment variables and flags, checked into typed values at load.
//! Precedence: flag, then environment variable, then file, then default.
//! Every problem in the file is reported at once.
mod people;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ingest::generic::{Mapping, MappingSpec};
use crate::model::Duration;
use crate::model::person::Person;
pub use people::{check_people, reachable};

/// The default listen address: loopback, clear of Prometheus (9090),
/// Alertmanager (9093/9094), Grafana (3000) and the common exporters.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9797";
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub rules_dir: PathBuf,
    /// Largest accepted request body, in bytes.
    pub max_body: usize,
    /// How long an alert pushed without `endsAt` stays firing unless repeated.
    pub resolve_timeout: Duration,
    pub store: StoreConfig,
    /// `store.url` (or `--database-url`): a PostgreSQL database shared by
    /// several gateways; `None`, the embedded SQLite file in `data_dir`.
    pub database_url: Option<crate::notify::config::Secret>,
    pub log_format: LogFormat,
    pub generic: BTreeMap<String, Mapping>,
    pub notifiers: crate::notify::Notifiers,
    /// Whom schedules and escalation steps page (`people:`).
    pub people: Vec<Person>,
    pub outbox: crate::notify::OutboxSettings,
    pub auth: std::sync::Arc<crate::auth::Auth>,
    pub tls: Option<TlsFiles>,
    pub limits: Limits,
    pub metrics: MetricsConfig,
    /// Serve a non-loopback address without tokens (`--allow-unauthenticated`).
    pub allow_unauthenticated: bool,
    /// Run with no incident rules (`allow_empty: true`).
    pub allow_empty: bool,
    pub web: WebConfig,
}

/// The console (`web:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfig {
    /// The URL people reach the gateway at, without a trailing slash (as
    /// Alertmanager's `--web.external-url`): the base of the links in
    /// notifications and of the console's own links.
    pub external_url: Option<String>,
    /// How long a console sign-in lasts.
    pub session_ttl: Duration,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig { external_url: None, session_ttl: Duration::from_secs(12 * 3600) }
    }
}

impl WebConfig {
    /// The path part of the external URL (`/alertgate` for
    /// `https://example.org/alertgate`), or empty: the console's links start
    /// with it, for a reverse proxy that serves the gateway under a path.
    pub fn path_prefix(&self) -> String {
        self.external_url
            .as_deref()
            .and_then(|u| reqwest::Url::parse(u).ok())
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWeb {
    external_url: Option<String>,
    session_ttl: Option<Duration>,
}

/// An absolute http(s) URL without query or fragment, trailing slash removed.
fn external_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text.trim()).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{text:?}: expected an http:// or https:// URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?}: no query or fragment, please"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// The certificate chain and key of the HTTPS listener (PEM), read again on SIGHUP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// A token bucket: `per_second` requests sustained, `burst` at once; for
/// ingest also `alerts_per_second` (and `alerts_burst`) counted in alerts,
/// so one large request costs what its alerts cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub per_second: u32,
    pub burst: Option<u32>,
    pub alerts_per_second: Option<u32>,
    pub alerts_burst: Option<u32>,
}

pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs_const(10);
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 64 << 20;
pub const DEFAULT_MAX_ALERTS_PER_REQUEST: usize = 10_000;

/// Rates per caller, and the bounds that keep one caller from starving the
/// others or exhausting the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub ingest: Option<Rate>,
    pub api: Option<Rate>,
    /// Connections open at once (never more than the open-file limit allows).
    pub max_connections: usize,
    /// A request head must arrive in full within this (also the idle time
    /// of a kept-alive connection).
    pub header_timeout: Duration,
    /// Bytes of request bodies held in memory at once, over all requests.
    pub max_buffered_bytes: usize,
    /// Alerts one ingest request may carry.
    pub max_alerts_per_request: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            ingest: None,
            api: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            max_alerts_per_request: DEFAULT_MAX_ALERTS_PER_REQUEST,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    ingest: Option<Rate>,
    api: Option<Rate>,
    max_connections: Option<usize>,
    header_timeout: Option<Duration>,
    max_buffered_bytes: Option<ByteSize>,
    max_alerts_per_request: Option<usize>,
}

impl FileLimits {
    fn compile(self, at: &str, problems: &mut Vec<String>) -> Limits {
        for (what, rate) in [("limits.ingest", self.ingest), ("limits.api", self.api)] {
            let Some(r) = rate else { continue };
            if r.per_second == 0 || r.burst == Some(0) {
                problems.push(format!("{at}{what}: per_second and burst must be at least 1"));
            }
            if r.alerts_per_second == Some(0) || r.alerts_burst == Some(0) {
                problems.push(format!("{at}{what}: alerts_per_second and alerts_burst must be at least 1"));
            }
            if r.alerts_burst.is_some() && r.alerts_per_second.is_none() {
                problems.push(format!("{at}{what}: alerts_burst needs alerts_per_second"));
            }
        }
        if self.api.is_some_and(|r| r.alerts_per_second.is_some()) {
            problems.push(format!("{at}limits.api: alerts_per_second applies to limits.ingest only"));
        }
        let d = Limits::default();
        let limits = Limits {
            ingest: self.ingest,
            api: self.api,
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            header_timeout: self.header_timeout.unwrap_or(d.header_timeout),
            max_buffered_bytes: self.max_buffered_bytes.map_or(d.max_buffered_bytes, |b| b.0),
            max_alerts_per_request: self.max_alerts_per_request.unwrap_or(d.max_alerts_per_request),
        };
        if limits.max_connections < 16 {
            problems.push(format!("{at}limits.max_connections: at least 16"));
        }
        if limits.header_timeout < Duration::from_secs(1) {
            problems.push(format!("{at}limits.header_timeout: at least 1s"));
        }
        if limits.max_alerts_per_request == 0 {
            problems.push(format!("{at}limits.max_alerts_per_request: at least 1"));
        }
        limits
    }
}

/// Bounds on what `/metrics` exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Distinct `service` values each metric shows; the rest are `other`.
    #[serde(default = "default_max_label_values")]
    pub max_label_values: usize,
}

fn default_max_label_values() -> usize {
    crate::metrics::DEFAULT_MAX_LABEL_VALUES
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { max_label_values: default_max_label_values() }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    cert_file: PathBuf,
    key_file: PathBuf,
}

pub use crate::store::settings::{IntegrityCheck, StoreConfig, Synchronous};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The file as written; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    rules_dir: Option<PathBuf>,
    max_body: Option<ByteSize>,
    resolve_timeout: Option<Duration>,
    log_format: Option<LogFormat>,
    #[serde(default)]
    store: FileStore,
    #[serde(default)]
    generic: BTreeMap<String, MappingSpec>,
    #[serde(default)]
    notifiers: Vec<crate::notify::RawNotifier>,
    #[serde(default)]
    people: Vec<people::RawPerson>,
    #[serde(default)]
    outbox: crate::notify::RawOutbox,
    #[serde(default)]
    auth: crate::auth::RawAuth,
    tls: Option<FileTls>,
    #[serde(default)]
    limits: FileLimits,
    #[serde(default)]
    metrics: MetricsConfig,
    /// Accept a rules directory without incident rules, or with empty files.
    #[serde(default)]
    allow_empty: bool,
    #[serde(default)]
    web: FileWeb,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStore {
    /// postgres://USER@HOST/DATABASE; or by environment variable or file.
    url: Option<String>,
    url_env: Option<String>,
    url_file: Option<String>,
    synchronous: Option<Synchronous>,
    read_connections: Option<usize>,
    max_size: Option<ByteSize>,
    integrity_check: Option<IntegrityCheck>,
}

/// What the command line (and its environment variables) says.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub rules_dir: Option<PathBuf>,
    pub max_body: Option<String>,
    pub log_format: Option<LogFormat>,
    pub integrity_check: Option<IntegrityCheck>,
    pub allow_unauthenticated: bool,
    /// `--database-url` / `ALERTGATE_DATABASE_URL`, over `store.url`.
    pub database_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

/// The file's tree and what it says; every problem of reading it goes to
/// `problems` (the value is what is left once the entries at fault are
/// dropped, so the checks that follow report their own problems too).
fn read_file(path: &Path, problems: &mut Vec<String>) -> Result<(FileConfig, crate::yaml::Node), ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    let at = |e: &crate::yaml::YamlError| format!("{}{}: {}", path.display(), e.location(), e.message);
    let doc = crate::yaml::parse(&text).map_err(|errs| ConfigError::Invalid(errs.iter().map(at).collect()))?;
    let (file, errors) = crate::yaml::from_node_all::<FileConfig>(&doc);
    problems.extend(errors.iter().map(at));
    match file {
        Some(f) => Ok((f, doc)),
        None => Err(ConfigError::Invalid(std::mem::take(problems))),
    }
}

/// `FILE: path: message` becomes `FILE:LINE:COLUMN: path: message` where
/// the path is found in the file.
fn locate_problems(problems: Vec<String>, file_name: &str, doc: Option<&crate::yaml::Node>) -> Vec<String> {
    let Some(doc) = doc else { return problems };
    problems
        .into_iter()
        .map(|p| {
            let Some(rest) = p.strip_prefix(file_name).filter(|_| !file_name.is_empty()) else { return p };
            let path = rest.split([':', ' ']).next().unwrap_or("");
            match doc.find(path).filter(|_| !path.is_empty()) {
                Some(node) => {
                    let file = file_name.trim_end_matches(": ");
                    format!("{file}:{}:{}: {rest}", node.at.line, node.at.column)
                }
                None => p,
            }
        })
        .collect()
}

impl Config {
    /// The notifier names a config file declares, even where a notifier is
    /// broken: `check` then reports the broken notifier once, not again in
    /// every rule that names it.
    pub fn declared_notifiers(path: &Path) -> Vec<String> {
        let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
        let Ok(doc) = crate::yaml::parse(&text) else { return Vec::new() };
        match doc.get("notifiers").map(|n| &n.kind) {
            Some(crate::yaml::tree::Kind::Seq(items)) => {
                items.iter().filter_map(|n| n.get("name")?.as_str().map(str::to_owned)).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Build the configuration from the optional file and the overrides.
    pub fn load(o: &Overrides) -> Result<Config, ConfigError> {
        let (mut check, file, doc) = Check::read(o.config_file.as_deref())?;
        let listen = check.listen(o.listen.clone().or(file.listen));
        let max_body = check.max_body(o.max_body.as_deref(), file.max_body);
        let database_url = check.database_url(o.database_url.clone(), &file.store);
        let store = check.store(file.store, o.integrity_check);
        let generic = check.generic_mappings(file.generic);
        let web = check.web(&file.web);
        let notifiers = check.notifiers(file.notifiers, &web);
        let people = check.people(file.people, &notifiers);
        let auth = check.auth(file.auth);
        let tls = check.tls(file.tls);
        let limits = file.limits.compile(&check.file_name, &mut check.problems);
        let metrics = check.metrics(file.metrics);
        let outbox = check.outbox(file.outbox);
        if !check.problems.is_empty() {
            return Err(ConfigError::Invalid(locate_problems(check.problems, &check.file_name, doc.as_ref())));
        }
        let from_file = |p: Option<PathBuf>| p.map(|p| check.base.join(p));
        Ok(Config {
            listen,
            data_dir: o.data_dir.clone().or(from_file(file.data_dir)).unwrap_or_else(|| "data".into()),
            rules_dir: o.rules_dir.clone().or(from_file(file.rules_dir)).unwrap_or_else(|| "rules".into()),
            max_body,
            resolve_timeout: file.resolve_timeout.unwrap_or(Duration::from_secs(300)),
            store,
            database_url,
            log_format: o.log_format.or(file.log_format).unwrap_or(LogFormat::Text),
            generic,
            notifiers,
            people,
            outbox,
            auth: std::sync::Arc::new(auth),
            tls,
            limits,
            metrics,
            allow_unauthenticated: o.allow_unauthenticated,
            allow_empty: file.allow_empty,
            web,
        })
    }
}

/// Checking the config file and the overrides: where the file is, and
/// every problem found so far (all are reported at once).
struct Check {
    /// `PATH: `, the start of each problem in the file; empty without a file.
    file_name: String,
    /// Paths in the file are relative to the file, as in Prometheus.
    base: PathBuf,
    problems: Vec<String>,
}

impl Check {
    /// Read the config file, if one is given; without one, every setting
    /// takes its default.
    fn read(path: Option<&Path>) -> Result<(Check, FileConfig, Option<crate::yaml::Node>), ConfigError> {
        let mut problems = Vec::new();
        let Some(path) = path else {
            let check = Check { file_name: String::new(), base: PathBuf::new(), problems };
            return Ok((check, FileConfig::default(), None));
        };
        let (file, doc) = read_file(path, &mut problems)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok((Check { file_name: format!("{}: ", path.display()), base, problems }, file, Some(doc)))
    }

    /// A problem in the file, `message` starting with the path at fault.
    fn problem(&mut self, message: String) {
        self.problems.push(format!("{}{message}", self.file_name));
    }

    /// Problems another part of the config found, under `prefix` in the file.
    fn problems_under(&mut self, prefix: &str, problems: Vec<String>) {
        let file_name = &self.file_name;
        self.problems.extend(problems.into_iter().map(|e| format!("{file_name}{prefix}{e}")));
    }

    fn listen(&mut self, given: Option<String>) -> SocketAddr {
        let text = given.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        resolve_listen(&text).unwrap_or_else(|| {
            self.problem(format!("listen: {text:?} is not an address like 127.0.0.1:9797 or localhost:9797"));
            DEFAULT_LISTEN.parse().expect("default address parses")
        })
    }

    /// The flag's value wins over the file's; a bad flag is named as such.
    fn max_body(&mut self, flag: Option<&str>, in_file: Option<ByteSize>) -> usize {
        let max_body = match flag {
            Some(text) => text.parse::<ByteSize>().map(|b| b.0).unwrap_or_else(|e| {
                self.problems.push(format!("--max-body: {e}"));
                DEFAULT_MAX_BODY
            }),
            None => in_file.map(|b| b.0).unwrap_or(DEFAULT_MAX_BODY),
        };
        if max_body < 1024 {
            self.problem(format!("max_body: {max_body} bytes is too small (at least 1KiB)"));
        }
        max_body
    }

    /// The flag's URL, or the file's (inline, by variable or by file);
    /// only PostgreSQL URLs are taken.
    fn database_url(&mut self, flag: Option<String>, store: &FileStore) -> Option<crate::notify::config::Secret> {
        let (url, from_flag) = match flag.filter(|u| !u.is_empty()) {
            Some(u) => (crate::notify::config::Secret::new(u), true),
            None => {
                let mut problems = Vec::new();
                let url = crate::notify::config::secret(
                    store.url.clone(),
                    store.url_env.clone(),
                    store.url_file.clone(),
                    &self.base,
                    "url",
                    &mut problems,
                );
                self.problems_under("store.", problems);
                (url?, false)
            }
        };
        let shown = crate::store::redacted(url.expose());
        let scheme = url.expose().split_once("://").map(|(s, _)| s);
        let problem = if !matches!(scheme, Some("postgres" | "postgresql")) {
            format!(
                "{shown} is not a PostgreSQL URL (postgres://USER@HOST:PORT/DATABASE); \
                 without one the gateway keeps its data in SQLite under data_dir"
            )
        } else if let Err(e) = url.expose().parse::<postgres::Config>() {
            format!("{shown} does not parse: {e}")
        } else {
            return Some(url);
        };
        match from_flag {
            true => self.problems.push(format!("--database-url: {problem}")),
            false => self.problem(format!("store.url: {problem}")),
        }
        None
    }

    fn store(&mut self, store: FileStore, integrity_check: Option<IntegrityCheck>) -> StoreConfig {
        let max_size = store.max_size.map(|b| b.0);
        if max_size.is_some_and(|m| m < 1 << 20) {
            self.problem("store.max_size: at least 1MiB".into());
        }
        let read_connections = store.read_connections.unwrap_or(4);
        if !(1..=64).contains(&read_connections) {
            self.problem("store.read_connections: must be 1 to 64".into());
        }
        StoreConfig {
            synchronous: store.synchronous.unwrap_or(Synchronous::Full),
            read_connections,
            max_size,
            integrity_check: integrity_check.or(store.integrity_check).unwrap_or(IntegrityCheck::Quick),
        }
    }

    fn generic_mappings(&mut self, specs: BTreeMap<String, MappingSpec>) -> BTreeMap<String, Mapping> {
        let mut generic = BTreeMap::new();
        for (name, spec) in specs {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                self.problem(format!("generic.{name}: mapping names may use letters, digits, '-', '_' and '.'"));
                continue;
            }
            match Mapping::compile(&name, spec) {
                Ok(m) => {
                    generic.insert(name, m);
                }
                Err(errs) => self.problems_under(&format!("generic.{name}."), errs),
            }
        }
        generic
    }

    fn web(&mut self, file: &FileWeb) -> WebConfig {
        let mut web = WebConfig::default();
        if let Some(u) = &file.external_url {
            match external_url(u) {
                Ok(u) => web.external_url = Some(u),
                Err(e) => self.problem(format!("web.external_url: {e}")),
            }
        }
        if let Some(ttl) = file.session_ttl {
            if ttl.signed().as_secs() < 60 {
                self.problem("web.session_ttl: at least 1m".into());
            }
            web.session_ttl = ttl;
        }
        web
    }

    /// Each notifier links to incident pages under the console's external URL.
    fn notifiers(&mut self, raw: Vec<crate::notify::RawNotifier>, web: &WebConfig) -> crate::notify::Notifiers {
        let mut notifiers = crate::notify::Notifiers::default();
        for (i, raw) in raw.into_iter().enumerate() {
            match raw.compile(&self.base) {
                Ok(mut n) => {
                    n.external_url = web.external_url.clone();
                    if notifiers.get(&n.name).is_some() {
                        self.problem(format!("notifiers[{i}]: duplicate notifier name {:?}", n.name));
                    }
                    notifiers.list.push(std::sync::Arc::new(n));
                }
                Err(errs) => self.problems_under(&format!("notifiers[{i}]."), errs),
            }
        }
        notifiers
    }

    /// Each person must be reachable through a notifier above.
    fn people(&mut self, raw: Vec<people::RawPerson>, notifiers: &crate::notify::Notifiers) -> Vec<Person> {
        let mut problems = Vec::new();
        let people = people::compile(raw, notifiers, &mut problems);
        self.problems_under("", problems);
        people
    }

    fn auth(&mut self, raw: crate::auth::RawAuth) -> crate::auth::Auth {
        raw.compile(&self.base).unwrap_or_else(|errs| {
            self.problems_under("", errs);
            crate::auth::Auth::default()
        })
    }

    /// The certificate and key are read now, so a wrong path fails the
    /// load instead of the first HTTPS handshake.
    fn tls(&mut self, file: Option<FileTls>) -> Option<TlsFiles> {
        let tls =
            file.map(|t| TlsFiles { cert_file: self.base.join(t.cert_file), key_file: self.base.join(t.key_file) });
        if let Some(t) = &tls {
            for (what, path) in [("tls.cert_file", &t.cert_file), ("tls.key_file", &t.key_file)] {
                match std::fs::read(path) {
                    Ok(b) if !b.is_empty() => {}
                    Ok(_) => self.problem(format!("{what}: {} is empty", path.display())),
                    Err(e) => self.problem(format!("{what}: cannot read {}: {e}", path.display())),
                }
            }
        }
        tls
    }

    fn metrics(&mut self, metrics: MetricsConfig) -> MetricsConfig {
        if metrics.max_label_values == 0 {
            self.problem("metrics.max_label_values: at least 1".into());
        }
        metrics
    }

    fn outbox(&mut self, raw: crate::notify::RawOutbox) -> crate::notify::OutboxSettings {
        let mut problems = Vec::new();
        let outbox = raw.compile(&mut problems);
        self.problems_under("", problems);
        outbox
    }
}

impl Config {
    /// Load the rules directory and check that every notifier and person
    /// the rules name is configured.
    pub fn load_rules(&self) -> Result<crate::rules::RuleSet, Vec<crate::rules::RuleError>> {
        load_rules(&self.rules_dir, &self.notifiers, &self.people, self.allow_empty)
    }

    /// Whom notifications reach: the notifiers' subscriptions, and the
    /// people with the email notifier that carries their mail (the first
    /// of the config).
    pub fn audience(&self) -> crate::model::notification::Audience {
        let email_notifier = self
            .notifiers
            .list
            .iter()
            .find(|n| matches!(n.kind, crate::notify::NotifierKind::Email(_)))
            .map(|n| n.name.clone());
        crate::model::notification::Audience {
            subscriptions: self.notifiers.subscriptions(),
            directory: std::sync::Arc::new(crate::model::person::Directory {
                people: self.people.clone(),
                email_notifier,
            }),
        }
    }
}

/// The rules as this config runs them: the notifiers they name must be
/// configured; once the files themselves are valid, the people they name
/// must be defined and reachable ([`check_people`]).
pub fn load_rules(
    dir: &Path,
    notifiers: &crate::notify::Notifiers,
    people: &[Person],
    allow_empty: bool,
) -> Result<crate::rules::RuleSet, Vec<crate::rules::RuleError>> {
    let names = notifiers.names();
    let set = crate::rules::RuleSet::load(dir, &crate::rules::LoadOptions { notifiers: Some(&names), allow_empty })?;
    let problems = check_people(&set, people, notifiers);
    if problems.is_empty() { Ok(set) } else { Err(problems) }
}

/// The address to bind: `127.0.0.1:9797`, `[::1]:9797`, or a host name
/// and port (`localhost:9797`), resolved now; of a name's addresses the
/// first IPv4 one, which is what `http://localhost:9797` reaches first.
fn resolve_listen(text: &str) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse() {
        return Some(addr);
    }
    let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(text).ok()?.collect();
    addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).copied()
}

/// A size in bytes: `4194304`, `512KiB`, `4MiB`, `4MB`.
#[derive(Debug, Clone, Copy)]
struct ByteSize(usize);

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: usize = num.parse().map_err(|_| format!("{s:?} is not a size like 4MiB"))?;
        let mult: usize = match unit.trim() {
            "" | "B" => 1,
            "KiB" | "K" | "k" => 1 << 10,
            "MiB" | "M" => 1 << 20,
            "GiB" | "G" => 1 << 30,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            other => {
                return Err(format!("{s:?}: unknown unit {other:?} (use B, KiB, MiB, GiB)"));
            }
        };
        n.checked_mul(mult).map(ByteSize).ok_or_else(|| format!("{s:?} is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(usize),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("alertgate.yml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn runs_without_a_file() {
        let c = Config::load(&Overrides::default()).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.data_dir, PathBuf::from("data"));
        assert_eq!(c.rules_dir, PathBuf::from("rules"));
        assert_eq!(c.max_body, DEFAULT_MAX_BODY);
        assert_eq!(c.store.synchronous, Synchronous::Full);
    }

    #[test]
    fn flags_beat_the_file_and_file_paths_are_relative_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let p =
            write(dir.path(), "listen: 127.0.0.1:1234\ndata_dir: d\nmax_body: 1MiB\nstore: {synchronous: normal}\n");
        let mut o = Overrides { config_file: Some(p), ..Default::default() };
        let c = Config::load(&o).unwrap();
        assert_eq!(c.listen.port(), 1234);
        assert_eq!(c.data_dir, dir.path().join("d"));
        assert_eq!(c.max_body, 1 << 20);
        assert_eq!(c.store.synchronous, Synchronous::Normal);
        o.listen = Some("127.0.0.1:4321".into());
        o.data_dir = Some("elsewhere".into());
        let c = Config::load(&o).unwrap();
        assert_eq!(c.listen.port(), 4321);
        assert_eq!(c.data_dir, PathBuf::from("elsewhere"));
    }

    #[test]
    fn reports_every_problem_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "listen: nowhere\nmax_body: 10\nstore: {read_connections: 0}\ngeneric:\n  x: {labels: {a: nope}}\n",
        );
        let err = Config::load(&Overrides { config_file: Some(p), ..Default::default() }).unwrap_err();
        let ConfigError::Invalid(problems) = err else { panic!() };
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems[0].contains("listen"));
        assert!(problems[3].contains("generic.x.labels.a"));
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "listen: 127.0.0.1:1\nlisten_adress: x\n");
        let err = Config::load(&Overrides { config_file: Some(p), ..Default::default() }).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("alertgate.yml:2"), "{msg}");
        assert!(msg.contains("listen_adress"), "{msg}");
    }

    #[test]
    fn listen_takes_a_host_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "listen: localhost:9797\n");
        let c = Config::load(&Overrides { config_file: Some(p), ..Default::default() }).unwrap();
        assert!(c.listen.ip().is_loopback(), "{}", c.listen);
        assert_eq!(c.listen.port(), 9797);
        assert_eq!(resolve_listen("[::1]:9797").unwrap().to_string(), "[::1]:9797");
        assert!(resolve_listen("localhost").is_none(), "a port is needed");
    }

    #[test]
    fn web_external_url_is_checked_and_reaches_the_notifiers() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "web: {external_url: \"https://alertgate.example.org/ag/\", session_ttl: 1h}\nnotifiers:\n  - {name: hook, type: webhook, url: \"http://127.0.0.1:1/\"}\n",
        );
        let c = Config::load(&Overrides { config_file: Some(p), ..Default::default() }).unwrap();
        assert_eq!(c.web.external_url.as_deref(), Some("https://alertgate.example.org/ag"));
        assert_eq!(c.web.path_prefix(), "/ag");
        assert_eq!(c.web.session_ttl, Duration::from_secs(3600));
        assert_eq!(c.notifiers.list[0].external_url.as_deref(), Some("https://alertgate.example.org/ag"));
        assert_eq!(Config::load(&Overrides::default()).unwrap().web.path_prefix(), "");
        for bad in ["ftp://x", "alertgate.example.org", "https://x/?a=1"] {
            let p = write(dir.path(), &format!("web: {{external_url: \"{bad}\"}}\n"));
            let err = Config::load(&Overrides { config_file: Some(p), ..Default::default() }).unwrap_err();
            assert!(err.to_string().contains("web.external_url"), "{bad}: {err}");
        }
    }

    #[test]
    fn byte_sizes() {
        assert_eq!("4MiB".parse::<ByteSize>().unwrap().0, 4 << 20);
        assert_eq!("1000".parse::<ByteSize>().unwrap().0, 1000);
        assert_eq!("2MB".parse::<ByteSize>().unwrap().0, 2_000_000);
        assert!("4 parsecs".parse::<ByteSize>().is_err());
    }
}
