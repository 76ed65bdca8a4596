//! Notifiers as the config file declares them, checked into typed values at
//! load: secrets read from their files or environment variables (and never
//! shown by `Debug`), templates compiled, events known.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

use super::template::{NotifierTemplates, TemplateKind};
use crate::model::Duration;

pub use crate::model::notification::EVENTS;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotifier {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    events: Option<Vec<String>>,
    rate_limit: Option<RawRateLimit>,
    timeout: Option<Duration>,
    #[serde(default)]
    templates: BTreeMap<String, String>,
    // email
    smtp: Option<RawSmtp>,
    from: Option<String>,
    to: Option<Vec<String>>,
    // webhook
    url: Option<String>,
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    secret: Option<String>,
    secret_env: Option<String>,
    secret_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: String,
    port: Option<u16>,
    tls: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<String>,
    password_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    per_minute: u32,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawOutbox {
    max_age: Option<Duration>,
    initial_backoff: Option<Duration>,
    max_backoff: Option<Duration>,
}

/// A secret's text. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Secret(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP (a relay on loopback or a trusted network).
    None,
    /// Plain connection upgraded with STARTTLS, required (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub credentials: Option<(String, Secret)>,
    pub from: lettre::message::Mailbox,
    pub to: Vec<lettre::message::Mailbox>,
}

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub url: reqwest::Url,
    pub method: reqwest::Method,
    pub headers: Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
    /// Signs each body with HMAC-SHA256 when set.
    pub secret: Option<Secret>,
}

#[derive(Debug, Clone)]
pub enum NotifierKind {
    Email(EmailSettings),
    Webhook(WebhookSettings),
}

#[derive(Debug, Clone)]
pub struct Notifier {
    pub name: String,
    pub kind: NotifierKind,
    pub events: BTreeSet<String>,
    /// Deliveries per minute; past it, events coalesce into a digest.
    pub per_minute: Option<u32>,
    pub timeout: Duration,
    pub templates: NotifierTemplates,
    /// `web.external_url`: the base of the links to incident pages.
    pub external_url: Option<String>,
}

impl Notifier {
    pub fn subscribes(&self, event: &str) -> bool {
        self.events.contains(event)
    }

    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            NotifierKind::Email(_) => "email",
            NotifierKind::Webhook(_) => "webhook",
        }
    }
}

/// Retry policy of the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxSettings {
    /// A notification not delivered within this time of its event (or of
    /// a manual retry) goes to the dead letters.
    pub max_age: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        OutboxSettings {
            max_age: Duration::from_secs(24 * 3600),
            initial_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(600),
        }
    }
}

impl RawOutbox {
    pub fn compile(self, problems: &mut Vec<String>) -> OutboxSettings {
        let d = OutboxSettings::default();
        let s = OutboxSettings {
            max_age: self.max_age.unwrap_or(d.max_age),
            initial_backoff: self.initial_backoff.unwrap_or(d.initial_backoff),
            max_backoff: self.max_backoff.unwrap_or(d.max_backoff),
        };
        if s.initial_backoff == Duration::ZERO || s.max_backoff < s.initial_backoff {
            problems.push("outbox: initial_backoff must be above 0 and at most max_backoff".into());
        }
        if s.max_age == Duration::ZERO {
            problems.push("outbox.max_age: must be above 0".into());
        }
        s
    }
}

/// Read a secret given inline, by environment variable or by file (one of them).
pub(crate) fn secret(
    inline: Option<String>,
    env: Option<String>,
    file: Option<String>,
    base: &Path,
    what: &str,
    p: &mut Vec<String>,
) -> Option<Secret> {
    let given = [inline.is_some(), env.is_some(), file.is_some()].iter().filter(|g| **g).count();
    if given > 1 {
        p.push(format!("{what}: give one of {what}, {what}_env and {what}_file"));
        return None;
    }
    if let Some(s) = inline {
        return Some(Secret(s));
    }
    if let Some(var) = env {
        return match std::env::var(&var) {
            Ok(v) if !v.is_empty() => Some(Secret(v)),
            _ => {
                p.push(format!("{what}_env: environment variable {var} is not set"));
                None
            }
        };
    }
    if let Some(f) = file {
        let path = base.join(&f);
        return match std::fs::read_to_string(&path) {
            // A trailing newline in a secret file is an editor's, not the secret's.
            Ok(v) => Some(Secret(v.trim_end_matches(['\n', '\r']).to_owned())),
            Err(e) => {
                p.push(format!("{what}_file: cannot read {}: {e}", path.display()));
                None
            }
        };
    }
    None
}

fn mailbox(s: &str, what: &str, p: &mut Vec<String>) -> Option<lettre::message::Mailbox> {
    s.parse().map_err(|e| p.push(format!("{what}: {s:?} is not an email address: {e}"))).ok()
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// The events a notifier subscribes to: every event unless listed.
fn compile_events(listed: Option<Vec<String>>, p: &mut Vec<String>) -> BTreeSet<String> {
    let Some(list) = listed else {
        return EVENTS.iter().map(|e| (*e).to_owned()).collect();
    };
    list.into_iter()
        .filter(|e| {
            let known = EVENTS.contains(&e.as_str());
            if !known {
                p.push(format!("events: unknown event {e:?} (known: {})", EVENTS.join(", ")));
            }
            known
        })
        .collect()
}

/// Settings given that belong to another type of notifier, each a problem.
fn refuse_foreign_settings(kind: &str, given: &[(&str, bool)], p: &mut Vec<String>) {
    for (field, _) in given.iter().filter(|(_, given)| *given) {
        p.push(format!("{field}: not a setting of {kind} notifiers"));
    }
}

fn smtp_tls(tls: Option<&str>, p: &mut Vec<String>) -> SmtpTls {
    match tls.unwrap_or("starttls") {
        "none" => SmtpTls::None,
        "starttls" => SmtpTls::StartTls,
        "tls" => SmtpTls::Tls,
        other => {
            p.push(format!("smtp.tls: {other:?} is not one of none, starttls, tls"));
            SmtpTls::StartTls
        }
    }
}

/// The well-known port of each way of securing SMTP.
fn smtp_default_port(tls: SmtpTls) -> u16 {
    match tls {
        SmtpTls::None => 25,
        SmtpTls::StartTls => 587,
        SmtpTls::Tls => 465,
    }
}

fn smtp_credentials(
    username: Option<String>,
    password: Option<Secret>,
    p: &mut Vec<String>,
) -> Option<(String, Secret)> {
    match (username, password) {
        (Some(u), Some(pw)) => Some((u, pw)),
        (None, None) => None,
        _ => {
            p.push("smtp: give both username and a password, or neither".into());
            None
        }
    }
}

fn webhook_url(url: Option<&str>, p: &mut Vec<String>) -> Option<reqwest::Url> {
    match url.map(reqwest::Url::parse) {
        None => {
            p.push("url: required for webhook notifiers".into());
            None
        }
        Some(Err(e)) => {
            p.push(format!("url: {e}"));
            None
        }
        Some(Ok(u)) if !matches!(u.scheme(), "http" | "https") => {
            p.push(format!("url: {u} is not http or https"));
            None
        }
        Some(Ok(u)) => Some(u),
    }
}

fn webhook_method(method: Option<&str>, p: &mut Vec<String>) -> reqwest::Method {
    match method.unwrap_or("POST").to_ascii_uppercase().as_str() {
        "POST" => reqwest::Method::POST,
        "PUT" => reqwest::Method::PUT,
        "PATCH" => reqwest::Method::PATCH,
        other => {
            p.push(format!("method: {other:?} is not one of POST, PUT, PATCH"));
            reqwest::Method::POST
        }
    }
}

/// Header values are marked sensitive: they often carry tokens, and must
/// not show in logs.
fn webhook_headers(
    headers: &BTreeMap<String, String>,
    p: &mut Vec<String>,
) -> Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)> {
    let mut compiled = Vec::new();
    for (k, v) in headers {
        match (reqwest::header::HeaderName::try_from(k.as_str()), reqwest::header::HeaderValue::try_from(v)) {
            (Ok(name), Ok(mut value)) => {
                value.set_sensitive(true);
                compiled.push((name, value));
            }
            _ => p.push(format!("headers.{k}: not a valid HTTP header")),
        }
    }
    compiled
}

impl RawNotifier {
    /// Check and compile; `base` is the config file's directory, against
    /// which secret and template files resolve.
    pub fn compile(mut self, base: &Path) -> Result<Notifier, Vec<String>> {
        let mut p = Vec::new();
        if !is_valid_name(&self.name) {
            p.push("name: use letters, digits, '-', '_' and '.'".to_owned());
        }
        let events = compile_events(self.events.take(), &mut p);
        let per_minute = self.rate_limit.as_ref().map(|r| r.per_minute);
        if per_minute == Some(0) {
            p.push("rate_limit.per_minute: must be at least 1".into());
        }
        let timeout = self.timeout.unwrap_or(Duration::from_secs(10));
        if timeout == Duration::ZERO {
            p.push("timeout: must be above 0".into());
        }
        let kind = match std::mem::take(&mut self.kind).as_str() {
            "email" => self.compile_email(base, &mut p),
            "webhook" => self.compile_webhook(base, &mut p),
            other => {
                p.push(format!("type: {other:?} is not one of email, webhook"));
                None
            }
        };
        let templates = self.compile_templates(kind.as_ref(), base, &mut p);
        match kind {
            Some(kind) if p.is_empty() => {
                Ok(Notifier { name: self.name, kind, events, per_minute, timeout, templates, external_url: None })
            }
            _ => Err(p),
        }
    }

    fn compile_email(&mut self, base: &Path, p: &mut Vec<String>) -> Option<NotifierKind> {
        let webhook_secret = self.secret.is_some() || self.secret_env.is_some() || self.secret_file.is_some();
        let foreign = [
            ("url", self.url.is_some()),
            ("method", self.method.is_some()),
            ("headers", !self.headers.is_empty()),
            ("secret", webhook_secret),
        ];
        refuse_foreign_settings("email", &foreign, p);
        let from = match &self.from {
            Some(f) => mailbox(f, "from", p),
            None => {
                p.push("from: required for email notifiers".into());
                None
            }
        };
        let to: Vec<_> = self.to.take().unwrap_or_default().iter().filter_map(|t| mailbox(t, "to", p)).collect();
        if to.is_empty() {
            p.push("to: name at least one recipient".into());
        }
        let Some(smtp) = self.smtp.take() else {
            p.push("smtp: required for email notifiers".into());
            return None;
        };
        let tls = smtp_tls(smtp.tls.as_deref(), p);
        let port = smtp.port.unwrap_or(smtp_default_port(tls));
        let password = secret(smtp.password, smtp.password_env, smtp.password_file, base, "smtp.password", p);
        let credentials = smtp_credentials(smtp.username, password, p);
        if smtp.host.is_empty() {
            p.push("smtp.host: required".into());
        }
        from.map(|from| NotifierKind::Email(EmailSettings { host: smtp.host, port, tls, credentials, from, to }))
    }

    fn compile_webhook(&mut self, base: &Path, p: &mut Vec<String>) -> Option<NotifierKind> {
        let foreign = [("smtp", self.smtp.is_some()), ("from", self.from.is_some()), ("to", self.to.is_some())];
        refuse_foreign_settings("webhook", &foreign, p);
        let url = webhook_url(self.url.as_deref(), p);
        let method = webhook_method(self.method.as_deref(), p);
        let headers = webhook_headers(&self.headers, p);
        let secret = secret(self.secret.take(), self.secret_env.take(), self.secret_file.take(), base, "secret", p);
        url.map(|url| NotifierKind::Webhook(WebhookSettings { url, method, headers, secret }))
    }

    /// A notifier with a template at fault still gets the defaults, so the
    /// rest of its problems show in the same run.
    fn compile_templates(&self, kind: Option<&NotifierKind>, base: &Path, p: &mut Vec<String>) -> NotifierTemplates {
        let template_kind = match kind {
            Some(NotifierKind::Webhook(_)) => TemplateKind::Webhook,
            _ => TemplateKind::Email,
        };
        NotifierTemplates::load(template_kind, &self.templates, base).unwrap_or_else(|errs| {
            p.extend(errs);
            NotifierTemplates::defaults(template_kind)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(yaml: &str) -> Result<Notifier, Vec<String>> {
        crate::yaml::from_str::<RawNotifier>(yaml).unwrap().compile(Path::new("."))
    }

    #[test]
    fn an_email_notifier_with_defaults() {
        let n = compile(
            "name: oncall-email\ntype: email\nsmtp: {host: 127.0.0.1, tls: none}\nfrom: \"alertgate <ag@example.org>\"\nto: [oncall@example.org]\n",
        )
        .unwrap();
        let NotifierKind::Email(e) = &n.kind else { panic!() };
        assert_eq!(e.port, 25);
        assert_eq!(e.tls, SmtpTls::None);
        assert_eq!(n.events.len(), EVENTS.len(), "every event by default");
        assert_eq!(n.timeout, Duration::from_secs(10));
    }

    #[test]
    fn a_webhook_notifier_reads_its_secret_and_hides_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hmac"), "s3cret\n").unwrap();
        let n = crate::yaml::from_str::<RawNotifier>(
            "name: chatops\ntype: webhook\nurl: http://127.0.0.1:1/hook\nsecret_file: hmac\ntimeout: 5s\nrate_limit: {per_minute: 30}\nevents: [incident.triggered]\nheaders: {X-Team: sre}\n",
        )
        .unwrap()
        .compile(dir.path())
        .unwrap();
        let NotifierKind::Webhook(w) = &n.kind else { panic!() };
        assert_eq!(w.secret.as_ref().map(Secret::expose), Some("s3cret"), "relative to the config, newline trimmed");
        assert!(!format!("{n:?}").contains("s3cret"), "Debug shows no secret");
        assert_eq!(n.per_minute, Some(30));
        assert!(n.subscribes("incident.triggered") && !n.subscribes("sla.breached"));
        let errs =
            compile("name: c\ntype: webhook\nurl: http://127.0.0.1:1/\nsecret_env: ALERTGATE_TEST_UNSET_VARIABLE\n")
                .unwrap_err();
        assert!(errs[0].contains("ALERTGATE_TEST_UNSET_VARIABLE is not set"), "{errs:?}");
    }

    #[test]
    fn every_mistake_is_named() {
        let errs = compile(
            "name: bad name\ntype: webhook\nurl: ftp://x\nmethod: GET\nsmtp: {host: x}\nevents: [incident.exploded]\nrate_limit: {per_minute: 0}\nsecret: a\nsecret_file: b\n",
        )
        .unwrap_err();
        for want in ["name:", "url:", "method:", "smtp: not a setting", "incident.exploded", "per_minute", "secret:"] {
            assert!(errs.iter().any(|e| e.contains(want)), "{want:?} not in {errs:#?}");
        }
        let errs = compile("name: m\ntype: email\nto: [not-an-address]\n").unwrap_err();
        for want in ["from: required", "to:", "smtp: required"] {
            assert!(errs.iter().any(|e| e.contains(want)), "{want:?} not in {errs:#?}");
        }
        assert!(compile("name: x\ntype: pager\n").unwrap_err()[0].contains("email, webhook"));
    }
}
