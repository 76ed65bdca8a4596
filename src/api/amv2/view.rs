//! alertgate's alerts, rules and silences in the shapes of Alertmanager
//! 0.25's API v2 (`api/v2/openapi.yaml`). Pure: every function takes what
//! it shows and `now`.
//!
//! The mapping:
//! - a **receiver** per incident rule, plus one root receiver (`unrouted`)
//!   for alerts no rule matches, as Alertmanager's root route catches what
//!   no child route takes;
//! - an alert's **receivers** are the rules it routes to now;
//! - its **status** is computed now, as Alertmanager does: `silencedBy` every
//!   active silence matching its labels, `inhibitedBy` every firing alert
//!   inhibiting it; an alert held by a maintenance window (a suppressing
//!   change) is `suppressed` with both lists empty;
//! - an **alert group** is a rule's group key: the rule's `group_by` labels
//!   the alert has (all its labels for `['...']`);
//! - **silence ids** are UUID-shaped strings that carry the numeric id.
use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::engine::silence::{Silence, SilenceState};
pub use crate::engine::silence::{SilenceIds, SilenceRef};
use crate::model::{AlertRecord, LabelSet};
use crate::rules::RuleSet;
use crate::rules::incident::GroupBy;
use crate::rules::matcher::{MatchOp, Matcher};

/// The root receiver's name, unless a rule is called so.
const ROOT_RECEIVER: &str = "unrouted";

/// How long an ended silence is still listed: Alertmanager's default
/// `--data.retention`.
pub const EXPIRED_SILENCE_RETENTION: jiff::SignedDuration = jiff::SignedDuration::from_hours(120);

/// Go's zero time, which Alertmanager's clients read as "not set".
const ZERO_TIME: &str = "0001-01-01T00:00:00.000Z";

/// A time as Alertmanager writes it: UTC, milliseconds.
pub fn time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[schema(as = am::Receiver)]
pub struct Receiver {
    pub name: String,
}

/// The receivers: the root one, then one per incident rule.
pub fn receivers(rules: &RuleSet) -> Vec<Receiver> {
    let mut names = vec![root_receiver(rules)];
    for r in &rules.incident_rules {
        if !names.contains(&r.name) {
            names.push(r.name.clone());
        }
    }
    names.into_iter().map(|name| Receiver { name }).collect()
}

fn root_receiver(rules: &RuleSet) -> String {
    let mut name = ROOT_RECEIVER.to_owned();
    while rules.incident_rules.iter().any(|r| r.name == name) {
        name.push('_');
    }
    name
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = am::AlertStatus)]
pub struct AlertStatus {
    /// `active` or `suppressed` (alertgate has no unprocessed alerts).
    #[schema(value_type = AlertState)]
    pub state: &'static str,
    pub silenced_by: Vec<String>,
    pub inhibited_by: Vec<String>,
}

/// `alertStatus.state`.
#[derive(utoipa::ToSchema)]
#[schema(as = am::AlertState, rename_all = "lowercase")]
#[allow(dead_code)] // the schema of `AlertStatus::state`
pub enum AlertState {
    Unprocessed,
    Active,
    Suppressed,
}

/// `gettableAlert`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = am::GettableAlert)]
pub struct GettableAlert {
    pub annotations: LabelSet,
    #[schema(format = DateTime)]
    pub ends_at: String,
    pub fingerprint: String,
    pub receivers: Vec<Receiver>,
    #[schema(format = DateTime)]
    pub starts_at: String,
    pub status: AlertStatus,
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
    pub labels: LabelSet,
}

/// `alertGroup`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = am::AlertGroup)]
pub struct AlertGroup {
    pub alerts: Vec<GettableAlert>,
    pub labels: LabelSet,
    pub receiver: Receiver,
}

/// The `active`, `silenced`, `inhibited` and `filter` parameters of
/// `GET /api/v2/alerts` and `/alerts/groups`; `receiver` is a regex
/// anchored at both ends.
#[derive(Debug, Default)]
pub struct AlertFilter {
    pub active: bool,
    pub silenced: bool,
    pub inhibited: bool,
    pub matchers: Vec<Matcher>,
    pub receiver: Option<regex::Regex>,
}

impl AlertFilter {
    fn keeps(&self, a: &GettableAlert, maintenance: bool) -> bool {
        if !self.active && a.status.state == "active" {
            return false;
        }
        if !self.silenced && (!a.status.silenced_by.is_empty() || maintenance) {
            return false;
        }
        if !self.inhibited && !a.status.inhibited_by.is_empty() {
            return false;
        }
        self.matchers.iter().all(|m| m.matches(&a.labels))
    }

    fn keeps_receiver(&self, name: &str) -> bool {
        self.receiver.as_ref().is_none_or(|r| r.is_match(name))
    }
}

/// An alert with the rules it routes to (each with its group labels).
struct Routed {
    alert: GettableAlert,
    maintenance: bool,
    groups: Vec<LabelSet>,
}

/// Every firing alert as Alertmanager shows it, with its status now.
fn route_all(
    ids: SilenceIds,
    rules: &RuleSet,
    firing: &[AlertRecord],
    silences: &[Silence],
    now: Timestamp,
) -> Vec<Routed> {
    let labels: Vec<&LabelSet> = firing.iter().map(|a| &a.labels).collect();
    let inhibitors = crate::engine::inhibit::inhibitors(&rules.inhibit_rules, &labels);
    let root = root_receiver(rules);
    firing
        .iter()
        .zip(inhibitors)
        .map(|(a, by)| {
            let silenced_by: Vec<String> =
                silences.iter().filter(|s| s.mutes(&a.labels, now)).map(|s| ids.format(s.id)).collect();
            let mut inhibited_by: Vec<String> = by.iter().map(|i| firing[*i].fingerprint.to_string()).collect();
            inhibited_by.sort();
            let maintenance = matches!(a.muted_by, Some(crate::model::MuteReason::Maintenance(_)));
            let suppressed = maintenance || !silenced_by.is_empty() || !inhibited_by.is_empty();
            let routes = rules.route(&a.labels);
            let (receivers, groups): (Vec<Receiver>, Vec<LabelSet>) = if routes.is_empty() {
                (vec![Receiver { name: root.clone() }], vec![LabelSet::new()])
            } else {
                routes.iter().map(|r| (Receiver { name: r.name.clone() }, group_labels(&r.group_by, &a.labels))).unzip()
            };
            let alert = GettableAlert {
                annotations: a.annotations.clone(),
                ends_at: a.expires_at.or(a.ends_at).map_or_else(|| ZERO_TIME.to_owned(), time),
                fingerprint: a.fingerprint.to_string(),
                receivers,
                starts_at: time(a.starts_at),
                status: AlertStatus {
                    state: if suppressed { "suppressed" } else { "active" },
                    silenced_by,
                    inhibited_by,
                },
                updated_at: time(a.last_seen),
                generator_url: a.generator_url.clone().filter(|u| !u.is_empty()),
                labels: a.labels.clone(),
            };
            Routed { alert, maintenance, groups }
        })
        .collect()
}

/// The labels that name an alert's group under a rule: the `group_by`
/// labels it has, as Alertmanager leaves out those an alert lacks.
fn group_labels(group_by: &GroupBy, labels: &LabelSet) -> LabelSet {
    match group_by {
        GroupBy::All => labels.clone(),
        GroupBy::Labels(names) => names.iter().filter_map(|n| labels.get(n).map(|v| (n.clone(), v.clone()))).collect(),
    }
}

/// `GET /api/v2/alerts`: sorted by fingerprint, as Alertmanager sorts them.
pub fn alerts(
    ids: SilenceIds,
    rules: &RuleSet,
    firing: &[AlertRecord],
    silences: &[Silence],
    filter: &AlertFilter,
    now: Timestamp,
) -> Vec<GettableAlert> {
    let mut out: Vec<GettableAlert> = route_all(ids, rules, firing, silences, now)
        .into_iter()
        .filter(|r| filter.keeps(&r.alert, r.maintenance))
        .filter(|r| r.alert.receivers.iter().any(|rc| filter.keeps_receiver(&rc.name)))
        .map(|r| r.alert)
        .collect();
    out.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
    out
}

/// `GET /api/v2/alerts/groups`: one group per receiver and group labels,
/// ordered by labels, then receiver. Within groups each alert lists the
/// receivers the `receiver` filter keeps, by name (where `/alerts` lists
/// all, in route order), as Alertmanager does.
pub fn groups(
    ids: SilenceIds,
    rules: &RuleSet,
    firing: &[AlertRecord],
    silences: &[Silence],
    filter: &AlertFilter,
    now: Timestamp,
) -> Vec<AlertGroup> {
    let mut by_key: BTreeMap<(LabelSet, String), Vec<GettableAlert>> = BTreeMap::new();
    for r in route_all(ids, rules, firing, silences, now) {
        if !filter.keeps(&r.alert, r.maintenance) {
            continue;
        }
        let mut alert = r.alert.clone();
        alert.receivers.retain(|rc| filter.keeps_receiver(&rc.name));
        alert.receivers.sort();
        for (receiver, labels) in r.alert.receivers.iter().zip(&r.groups) {
            if filter.keeps_receiver(&receiver.name) {
                by_key.entry((labels.clone(), receiver.name.clone())).or_default().push(alert.clone());
            }
        }
    }
    by_key
        .into_iter()
        .map(|((labels, receiver), mut alerts)| {
            alerts.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
            AlertGroup { alerts, labels, receiver: Receiver { name: receiver } }
        })
        .collect()
}

/// `matcher` of a silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = am::Matcher)]
pub struct AmMatcher {
    pub is_equal: Option<bool>,
    pub is_regex: bool,
    pub name: String,
    pub value: String,
}

impl AmMatcher {
    fn of(m: &Matcher) -> AmMatcher {
        let (is_equal, is_regex) = match m.op {
            MatchOp::Equal => (true, false),
            MatchOp::NotEqual => (false, false),
            MatchOp::Regex => (true, true),
            MatchOp::NotRegex => (false, true),
        };
        AmMatcher { is_equal: Some(is_equal), is_regex, name: m.name.clone(), value: m.value.clone() }
    }

    /// `isEqual` is true when left out, as in Alertmanager's spec.
    pub fn to_matcher(&self) -> Result<Matcher, String> {
        let op = match (self.is_equal.unwrap_or(true), self.is_regex) {
            (true, false) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (false, true) => MatchOp::NotRegex,
        };
        Matcher::new(&self.name, op, &self.value).map_err(|e| format!("matcher {:?}: {e}", self.name))
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = am::SilenceStatus)]
pub struct SilenceStatus {
    pub state: SilenceState,
}

/// `gettableSilence`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = am::GettableSilence)]
pub struct GettableSilence {
    pub id: String,
    pub status: SilenceStatus,
    #[schema(format = DateTime)]
    pub updated_at: String,
    pub comment: String,
    pub created_by: String,
    #[schema(format = DateTime)]
    pub ends_at: String,
    pub matchers: Vec<AmMatcher>,
    #[schema(format = DateTime)]
    pub starts_at: String,
}

/// A silence as Alertmanager shows it. `updatedAt` is its creation, or
/// its end once it has ended (expiring early sets the end to that moment).
pub fn silence(ids: SilenceIds, s: &Silence, now: Timestamp) -> GettableSilence {
    let state = s.state(now);
    let updated = if state == SilenceState::Expired { s.created_at.max(s.ends_at) } else { s.created_at };
    GettableSilence {
        id: ids.format(s.id),
        status: SilenceStatus { state },
        updated_at: time(updated),
        comment: s.comment.clone(),
        created_by: s.created_by.clone(),
        ends_at: time(s.ends_at),
        matchers: s.matchers.iter().map(AmMatcher::of).collect(),
        starts_at: time(s.starts_at),
    }
}

/// `GET /api/v2/silences`: those that have a matcher equal to each filter
/// matcher (same name, operator and value), active first (ending soonest
/// first), then pending (starting soonest first), then expired (most
/// recently ended first), as Alertmanager orders them.
pub fn silences(ids: SilenceIds, all: &[Silence], filter: &[Matcher], now: Timestamp) -> Vec<GettableSilence> {
    let mut kept: Vec<&Silence> =
        all.iter().filter(|s| filter.iter().all(|f| s.matchers.iter().any(|m| m.same_as(f)))).collect();
    let rank = |s: &Silence| match s.state(now) {
        SilenceState::Active => (0, s.ends_at.as_millisecond()),
        SilenceState::Pending => (1, s.starts_at.as_millisecond()),
        SilenceState::Expired => (2, -s.ends_at.as_millisecond()),
    };
    kept.sort_by_key(|s| (rank(s), s.id));
    kept.into_iter().map(|s| silence(ids, s, now)).collect()
}

/// The rules as an Alertmanager configuration, for `config.original`:
/// a route per incident rule under a root route with no matchers,
/// receivers without integrations (alertgate notifies through its own
/// notifiers), and the inhibit rules.
pub fn config_yaml(rules: &RuleSet, resolve_timeout: &str) -> String {
    #[derive(Serialize)]
    struct Config {
        global: Global,
        route: Route,
        inhibit_rules: Vec<Inhibit>,
        receivers: Vec<Receiver>,
        templates: Vec<String>,
    }
    #[derive(Serialize)]
    struct Global {
        resolve_timeout: String,
    }
    #[derive(Serialize)]
    struct Route {
        receiver: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        group_by: Vec<String>,
        #[serde(rename = "continue")]
        continue_matching: bool,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        matchers: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        routes: Vec<Route>,
    }
    #[derive(Serialize)]
    struct Inhibit {
        source_matchers: Vec<String>,
        target_matchers: Vec<String>,
        equal: Vec<String>,
    }
    let strings = |ms: &[Matcher]| ms.iter().map(|m| m.to_string()).collect::<Vec<_>>();
    let config = Config {
        global: Global { resolve_timeout: resolve_timeout.to_owned() },
        route: Route {
            receiver: root_receiver(rules),
            group_by: Vec::new(),
            continue_matching: false,
            matchers: Vec::new(),
            routes: rules
                .incident_rules
                .iter()
                .map(|r| Route {
                    receiver: r.name.clone(),
                    group_by: match &r.group_by {
                        GroupBy::All => vec!["...".to_owned()],
                        GroupBy::Labels(names) => names.clone(),
                    },
                    continue_matching: r.continue_matching,
                    matchers: strings(&r.matchers),
                    routes: Vec::new(),
                })
                .collect(),
        },
        inhibit_rules: rules
            .inhibit_rules
            .iter()
            .map(|r| Inhibit {
                source_matchers: strings(&r.source_matchers),
                target_matchers: strings(&r.target_matchers),
                equal: r.equal.clone(),
            })
            .collect(),
        receivers: receivers(rules),
        templates: Vec::new(),
    };
    let body = crate::yaml::to_string(&config).unwrap_or_default();
    format!("# alertgate's incident rules as an Alertmanager configuration (read-only)\n{body}")
}

#[cfg(test)]
mod tests;
