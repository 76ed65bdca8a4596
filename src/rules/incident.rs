//! Incident rules, the priority matrix and inhibit rules: the rule-file
//! sections the correlation engine runs on, as written (`Raw*`) and as
//! compiled (checked, typed values).
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

use super::matcher::Matcher;
use super::target::Target;
use super::template::TemplateBuilder;
use crate::model::incident::{Impact, Priority, PriorityMatrix, Urgency};
use crate::model::{Duration, LabelSet};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIncidentRule {
    name: String,
    #[serde(default)]
    matchers: Vec<String>,
    #[serde(default)]
    group_by: Vec<String>,
    group_window: Option<String>,
    title: Option<String>,
    service: Option<String>,
    impact: Option<String>,
    urgency: Option<String>,
    urgency_from: Option<RawUrgencyFrom>,
    min_alerts: Option<u32>,
    min_duration: Option<String>,
    auto_resolve_after: Option<String>,
    flap_window: Option<String>,
    assign_to: Option<String>,
    /// `required`: its incidents close only with a published review.
    review: Option<String>,
    sla_policy: Option<String>,
    escalation: Option<String>,
    #[serde(default)]
    notify: Vec<String>,
    #[serde(default, rename = "continue")]
    continue_matching: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUrgencyFrom {
    label: String,
    #[serde(default)]
    map: BTreeMap<String, String>,
    default: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInhibitRule {
    #[serde(default)]
    source_matchers: Vec<String>,
    #[serde(default)]
    target_matchers: Vec<String>,
    #[serde(default)]
    equal: Vec<String>,
}

/// Which labels make an alert's group key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    Labels(Vec<String>),
    /// `['...']`: the full label set.
    All,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrgencySpec {
    Fixed(Urgency),
    FromLabel { label: String, map: BTreeMap<String, Urgency>, default: Urgency },
}

impl UrgencySpec {
    pub fn urgency(&self, labels: &LabelSet) -> Urgency {
        match self {
            UrgencySpec::Fixed(u) => *u,
            UrgencySpec::FromLabel { label, map, default } => {
                labels.get(label).and_then(|v| map.get(v)).copied().unwrap_or(*default)
            }
        }
    }
}

/// A checked incident rule.
#[derive(Debug, Clone)]
pub struct IncidentRule {
    pub name: String,
    pub matchers: Vec<Matcher>,
    pub group_by: GroupBy,
    pub group_window: Duration,
    /// Template names in the rule set's [`super::template::Templates`].
    pub title_template: String,
    pub service_template: Option<String>,
    pub impact: Impact,
    pub urgency: UrgencySpec,
    pub min_alerts: u32,
    pub min_duration: Duration,
    /// `None` means `never`.
    pub auto_resolve_after: Option<Duration>,
    pub flap_window: Duration,
    /// As written: an assignment group, `schedule:NAME` or `person:NAME`.
    pub assign_to: Option<String>,
    /// `assign_to` when it names a schedule (the incident goes to whoever
    /// is on call when it opens) or a person; `None` for a group. Never a
    /// [`Target::Notifier`].
    pub assign_to_target: Option<Target>,
    /// Overrides the first matching SLA policy (checked to exist).
    pub sla_policy: Option<String>,
    /// The escalation policy its incidents follow (checked to exist).
    pub escalation: Option<String>,
    /// Notifiers told of its incidents' events.
    pub notify: Vec<String>,
    pub continue_matching: bool,
    /// Its incidents close only once their post-incident review is published.
    pub review_required: bool,
}

impl IncidentRule {
    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.matchers.iter().all(|m| m.matches(labels))
    }

    /// The group key: the rule's name and the grouping labels' values, so
    /// equal keys of different rules never collide.
    pub fn group_key(&self, labels: &LabelSet) -> String {
        let mut key = String::with_capacity(64);
        key.push_str(&self.name);
        key.push('{');
        let mut push = |k: &str, v: &str| {
            if !key.ends_with('{') {
                key.push(',');
            }
            // Written in place: a key is made for every alert a request carries.
            if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                key.push_str(k);
            } else {
                let _ = write!(key, "{k:?}");
            }
            key.push('=');
            let _ = write!(key, "{v:?}");
        };
        match &self.group_by {
            GroupBy::All => labels.iter().for_each(|(k, v)| push(k, v)),
            GroupBy::Labels(names) => {
                for n in names {
                    push(n, labels.get(n).map(String::as_str).unwrap_or(""));
                }
            }
        }
        key.push('}');
        key
    }

    pub fn priority(&self, matrix: &PriorityMatrix, labels: &LabelSet) -> (Impact, Urgency, Priority) {
        let urgency = self.urgency.urgency(labels);
        (self.impact, urgency, matrix.priority(self.impact, urgency))
    }
}

/// A checked inhibit rule.
#[derive(Debug, Clone)]
pub struct InhibitRule {
    pub source_matchers: Vec<Matcher>,
    pub target_matchers: Vec<Matcher>,
    pub equal: Vec<String>,
}

impl InhibitRule {
    /// True when `source` (a firing alert) mutes `target`. An alert never
    /// inhibits itself.
    pub fn mutes(&self, source: &LabelSet, target: &LabelSet) -> bool {
        source != target
            && self.target_matchers.iter().all(|m| m.matches(target))
            && self.source_matchers.iter().all(|m| m.matches(source))
            && self.equal.iter().all(|n| source.get(n) == target.get(n))
    }
}

fn matchers(raw: &[String], what: &str, problems: &mut Vec<String>) -> Vec<Matcher> {
    let mut out = Vec::new();
    for (i, m) in raw.iter().enumerate() {
        match super::matcher::parse_matchers(m) {
            Ok(ms) => out.extend(ms),
            Err(e) => problems.push(format!("{what}[{i}]: {e}")),
        }
    }
    out
}

fn duration(raw: &Option<String>, what: &str, default: Duration, problems: &mut Vec<String>) -> Duration {
    match raw.as_deref() {
        None => default,
        Some(s) => s.parse().unwrap_or_else(|e| {
            problems.push(format!("{what}: {e}"));
            default
        }),
    }
}

fn level<T>(raw: &str, what: &str, parse: fn(&str) -> Option<T>, problems: &mut Vec<String>) -> Option<T> {
    let v = parse(raw);
    if v.is_none() {
        problems.push(format!("{what}: {raw:?} is not one of high, medium, low"));
    }
    v
}

/// `...` groups by every label, so it stands alone.
fn group_by(labels: &[String], p: &mut Vec<String>) -> GroupBy {
    if !labels.iter().any(|g| g == "...") {
        return GroupBy::Labels(labels.to_vec());
    }
    if labels.len() > 1 {
        p.push("group_by: '...' groups by all labels and cannot be combined with others".into());
    }
    GroupBy::All
}

/// `never` keeps an incident open; else how long every alert stays
/// resolved before the incident resolves (at once by default).
fn auto_resolve_after(raw: Option<&str>, p: &mut Vec<String>) -> Option<Duration> {
    match raw {
        Some("never") => None,
        other => Some(duration(&other.map(str::to_owned), "auto_resolve_after", Duration::ZERO, p)),
    }
}

fn impact(raw: Option<&str>, p: &mut Vec<String>) -> Impact {
    raw.and_then(|s| level(s, "impact", Impact::parse, p)).unwrap_or(Impact::Medium)
}

/// A fixed urgency, or one read from a label of the alert.
fn urgency(fixed: Option<&str>, from_label: Option<RawUrgencyFrom>, p: &mut Vec<String>) -> UrgencySpec {
    match (fixed, from_label) {
        (Some(_), Some(_)) => {
            p.push("give either urgency or urgency_from, not both".into());
            UrgencySpec::Fixed(Urgency::Medium)
        }
        (Some(u), None) => UrgencySpec::Fixed(level(u, "urgency", Urgency::parse, p).unwrap_or(Urgency::Medium)),
        (None, None) => UrgencySpec::Fixed(Urgency::Medium),
        (None, Some(f)) => urgency_from_label(f, p),
    }
}

fn urgency_from_label(f: RawUrgencyFrom, p: &mut Vec<String>) -> UrgencySpec {
    let mut map = BTreeMap::new();
    for (value, u) in &f.map {
        if let Some(u) = level(u, &format!("urgency_from.map.{value}"), Urgency::parse, p) {
            map.insert(value.clone(), u);
        }
    }
    let default = match &f.default {
        None => Urgency::Low,
        Some(d) => level(d, "urgency_from.default", Urgency::parse, p).unwrap_or(Urgency::Low),
    };
    if f.label.is_empty() {
        p.push("urgency_from.label must name a label".into());
    }
    UrgencySpec::FromLabel { label: f.label, map, default }
}

/// Add the rule's title template (the alert name unless given) and
/// return its name in `templates`.
fn title_template(title: Option<String>, index: usize, templates: &mut TemplateBuilder, p: &mut Vec<String>) -> String {
    let name = format!("incident_rules[{index}].title");
    let title = title.unwrap_or_else(|| "{{ labels.alertname }}".to_owned());
    if let Err(e) = templates.add(name.clone(), title) {
        p.push(format!("title: {e}"));
    }
    name
}

/// Add the rule's service template, if it has one, and return its name in
/// `templates`.
fn service_template(
    service: Option<String>,
    index: usize,
    templates: &mut TemplateBuilder,
    p: &mut Vec<String>,
) -> Option<String> {
    service.map(|s| {
        let name = format!("incident_rules[{index}].service");
        if let Err(e) = templates.add(name.clone(), s) {
            p.push(format!("service: {e}"));
        }
        name
    })
}

/// A schedule or person `assign_to` names; a plain name is an assignment
/// group, as before schedules existed.
fn assign_target(text: &str, p: &mut Vec<String>) -> Option<Target> {
    match Target::parse(text) {
        Ok(Target::Notifier(_)) => None,
        Ok(t) => Some(t),
        Err(e) => {
            p.push(format!("assign_to: {e}"));
            None
        }
    }
}

impl RawIncidentRule {
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// Compile, reporting every problem of the rule.
    pub(super) fn compile(self, index: usize, templates: &mut TemplateBuilder) -> Result<IncidentRule, Vec<String>> {
        let mut p = Vec::new();
        if self.name.trim().is_empty() {
            p.push("name must not be empty".into());
        }
        let ms = matchers(&self.matchers, "matchers", &mut p);
        let group_by = group_by(&self.group_by, &mut p);
        let group_window = duration(&self.group_window, "group_window", Duration::from_secs(4 * 3600), &mut p);
        let min_duration = duration(&self.min_duration, "min_duration", Duration::ZERO, &mut p);
        let flap_window = duration(&self.flap_window, "flap_window", Duration::from_secs(600), &mut p);
        let auto_resolve_after = auto_resolve_after(self.auto_resolve_after.as_deref(), &mut p);
        let impact = impact(self.impact.as_deref(), &mut p);
        let urgency = urgency(self.urgency.as_deref(), self.urgency_from, &mut p);
        if self.min_alerts == Some(0) {
            p.push("min_alerts must be at least 1".into());
        }
        let title_template = title_template(self.title, index, templates, &mut p);
        let service_template = service_template(self.service, index, templates, &mut p);
        let assign_to = self.assign_to.filter(|a| !a.is_empty());
        let assign_to_target = assign_to.as_deref().and_then(|a| assign_target(a, &mut p));
        let review_required = match self.review.as_deref() {
            None | Some("optional") => false,
            Some("required") => true,
            Some(other) => {
                p.push(format!("review: expected required or optional, got {other:?}"));
                false
            }
        };
        if !p.is_empty() {
            return Err(p);
        }
        Ok(IncidentRule {
            name: self.name,
            matchers: ms,
            group_by,
            group_window,
            title_template,
            service_template,
            impact,
            urgency,
            min_alerts: self.min_alerts.unwrap_or(1),
            min_duration,
            auto_resolve_after,
            flap_window,
            assign_to,
            assign_to_target,
            sla_policy: self.sla_policy,
            escalation: self.escalation,
            notify: self.notify,
            continue_matching: self.continue_matching,
            review_required,
        })
    }
}

impl RawInhibitRule {
    pub(super) fn compile(self) -> Result<InhibitRule, Vec<String>> {
        let mut p = Vec::new();
        let source_matchers = matchers(&self.source_matchers, "source_matchers", &mut p);
        let target_matchers = matchers(&self.target_matchers, "target_matchers", &mut p);
        if source_matchers.is_empty() || target_matchers.is_empty() {
            p.push("give both source_matchers and target_matchers: an empty list would match every alert".into());
        }
        if p.is_empty() { Ok(InhibitRule { source_matchers, target_matchers, equal: self.equal }) } else { Err(p) }
    }
}

/// `impact -> urgency -> priority`; cells not given keep the default.
pub(super) fn compile_matrix(raw: &BTreeMap<String, BTreeMap<String, String>>) -> Result<PriorityMatrix, Vec<String>> {
    let mut m = PriorityMatrix::default();
    let mut p = Vec::new();
    for (impact, row) in raw {
        let Some(i) = Impact::parse(impact) else {
            p.push(format!("priority_matrix: unknown impact {impact:?} (high, medium, low)"));
            continue;
        };
        for (urgency, prio) in row {
            let Some(u) = Urgency::parse(urgency) else {
                p.push(format!("priority_matrix.{impact}: unknown urgency {urgency:?} (high, medium, low)"));
                continue;
            };
            match Priority::parse(prio) {
                Some(pr) => m.set(i, u, pr),
                None => p.push(format!("priority_matrix.{impact}.{urgency}: undefined priority {prio:?} (P1 to P5)")),
            }
        }
    }
    if p.is_empty() { Ok(m) } else { Err(p) }
}
