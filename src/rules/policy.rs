//! The ITSM sections of rule files: SLA policies, escalation policies,
//! problem rules and change correlation, as written (`Raw*`) and compiled.
//! Names that refer across sections and files (a policy's calendar, an
//! incident rule's SLA policy or escalation) are checked once every file is
//! read, in [`super::RuleSet::load_dir`].
use std::collections::BTreeMap;

use serde::Deserialize;

use super::matcher::Matcher;
use super::target::Target;
use crate::model::incident::{IncidentState, Priority};
use crate::model::{Duration, LabelSet};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSlaPolicy {
    name: String,
    #[serde(default)]
    matchers: Vec<String>,
    calendar: Option<String>,
    #[serde(default)]
    targets: BTreeMap<String, RawTargets>,
    warn_at: Option<Vec<String>>,
    pause_in: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTargets {
    respond: Option<String>,
    resolve: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEscalationPolicy {
    name: String,
    #[serde(default)]
    steps: Vec<RawStep>,
    #[serde(default)]
    repeat: u32,
    repeat_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    after: String,
    #[serde(default)]
    notify: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProblemRule {
    name: String,
    #[serde(default)]
    matchers: Vec<String>,
    #[serde(default)]
    group_by: Vec<String>,
    min_incidents: Option<u32>,
    window: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReviews {
    #[serde(default)]
    required_for: Vec<String>,
    due_within: Option<String>,
}

/// Which incidents need a published post-incident review before they
/// close, and how soon after their resolution it is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewPolicy {
    pub required_for: Vec<crate::model::incident::Priority>,
    pub due_within: Duration,
}

impl Default for ReviewPolicy {
    fn default() -> Self {
        ReviewPolicy { required_for: Vec::new(), due_within: Duration::from_secs(5 * 86_400) }
    }
}

impl RawReviews {
    pub(super) fn compile(self) -> Result<ReviewPolicy, Vec<String>> {
        let mut p = Vec::new();
        let mut required_for = Vec::new();
        for (i, raw) in self.required_for.iter().enumerate() {
            match crate::model::incident::Priority::parse(raw) {
                Some(pr) => required_for.push(pr),
                None => p.push(format!("required_for[{i}]: expected P1 to P5, got {raw:?}")),
            }
        }
        let due_within = match &self.due_within {
            Some(d) => duration(d, "reviews.due_within", &mut p).unwrap_or_default(),
            None => ReviewPolicy::default().due_within,
        };
        if p.is_empty() { Ok(ReviewPolicy { required_for, due_within }) } else { Err(p) }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChangeCorrelation {
    window: Option<String>,
}

/// The targets of one priority; a missing one runs no clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Targets {
    pub respond: Option<Duration>,
    pub resolve: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct SlaPolicy {
    pub name: String,
    /// Over the incident's fields (see [`incident_fields`]).
    pub matchers: Vec<Matcher>,
    pub calendar: String,
    pub targets: BTreeMap<Priority, Targets>,
    /// Percent of the target, ascending, each in 1..=99.
    pub warn_at: Vec<u8>,
    pub pause_in: Vec<IncidentState>,
}

impl SlaPolicy {
    pub fn matches(&self, fields: &LabelSet) -> bool {
        self.matchers.iter().all(|m| m.matches(fields))
    }

    pub fn targets(&self, p: Priority) -> Targets {
        self.targets.get(&p).copied().unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationStep {
    /// Since the round began (the incident triggered, for the first round).
    pub after: Duration,
    /// Notifiers, schedules (whoever is on call) and people.
    pub notify: Vec<Target>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationPolicy {
    pub name: String,
    /// At least one, `after` never decreasing.
    pub steps: Vec<EscalationStep>,
    /// Further rounds after the first.
    pub repeat: u32,
    /// From the last step of a round to the start of the next.
    pub repeat_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct ProblemRule {
    pub name: String,
    pub matchers: Vec<Matcher>,
    pub group_by: Vec<String>,
    pub min_incidents: u32,
    pub window: Duration,
}

impl ProblemRule {
    pub fn matches(&self, fields: &LabelSet) -> bool {
        self.matchers.iter().all(|m| m.matches(fields))
    }

    /// Incidents with equal keys belong to one problem: the rule's name and
    /// the grouping fields' values. `None` when a grouping field is missing
    /// or empty: incidents that merely lack a label (every alert without a
    /// `service`) share nothing, and must not make a "recurring" problem.
    pub fn key(&self, fields: &LabelSet) -> Option<String> {
        let mut parts = Vec::with_capacity(self.group_by.len());
        for f in &self.group_by {
            let value = fields.get(f).filter(|v| !v.is_empty())?;
            parts.push(format!("{f}={value:?}"));
        }
        Some(format!("{}{{{}}}", self.name, parts.join(",")))
    }
}

/// What SLA policy matchers, problem rule matchers and `group_by` see of an
/// incident: its common labels, overlaid by its own fields (`rule`,
/// `service`, `priority`, `impact`, `urgency`, `title`).
pub fn incident_fields(labels: &LabelSet, fields: &[(&str, &str)]) -> LabelSet {
    let mut out = labels.clone();
    for (k, v) in fields {
        out.insert((*k).to_owned(), (*v).to_owned());
    }
    out
}

fn matchers(raw: &[String], problems: &mut Vec<String>) -> Vec<Matcher> {
    let mut out = Vec::new();
    for (i, m) in raw.iter().enumerate() {
        match super::matcher::parse_matchers(m) {
            Ok(ms) => out.extend(ms),
            Err(e) => problems.push(format!("matchers[{i}]: {e}")),
        }
    }
    out
}

fn duration(raw: &str, what: &str, problems: &mut Vec<String>) -> Option<Duration> {
    raw.parse().map_err(|e| problems.push(format!("{what}: {e}"))).ok()
}

fn name_problem(name: &str, problems: &mut Vec<String>) {
    if name.trim().is_empty() {
        problems.push("name must not be empty".into());
    }
}

/// `"50%"` (or `"50"`) to 50; warnings are below the breach at 100 %.
fn percent(raw: &str, problems: &mut Vec<String>) -> Option<u8> {
    let n = raw.trim().trim_end_matches('%').trim();
    match n.parse::<u8>() {
        Ok(p) if (1..=99).contains(&p) => Some(p),
        _ => {
            problems.push(format!("warn_at: {raw:?} is not a percentage from 1% to 99% (100% is the breach)"));
            None
        }
    }
}

impl RawSlaPolicy {
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn compile(self) -> Result<SlaPolicy, Vec<String>> {
        let mut p = Vec::new();
        name_problem(&self.name, &mut p);
        let ms = matchers(&self.matchers, &mut p);
        let mut targets = BTreeMap::new();
        for (prio, raw) in &self.targets {
            let Some(priority) = Priority::parse(prio) else {
                p.push(format!("targets: undefined priority {prio:?} (P1 to P5)"));
                continue;
            };
            let respond = raw.respond.as_deref().and_then(|d| duration(d, &format!("targets.{prio}.respond"), &mut p));
            let resolve = raw.resolve.as_deref().and_then(|d| duration(d, &format!("targets.{prio}.resolve"), &mut p));
            for (what, d) in [("respond", respond), ("resolve", resolve)] {
                if d == Some(Duration::ZERO) {
                    p.push(format!("targets.{prio}.{what}: a target must be longer than 0"));
                }
            }
            targets.insert(priority, Targets { respond, resolve });
        }
        if targets.is_empty() {
            p.push("targets: give at least one priority's respond or resolve target".into());
        }
        let mut warn_at: Vec<u8> = match &self.warn_at {
            None => vec![50, 75],
            Some(list) => list.iter().filter_map(|w| percent(w, &mut p)).collect(),
        };
        warn_at.sort_unstable();
        warn_at.dedup();
        let mut pause_in = Vec::new();
        for s in self.pause_in.unwrap_or_else(|| vec!["on_hold".into()]) {
            match IncidentState::parse(&s) {
                Some(state) if state.is_open() => pause_in.push(state),
                Some(_) => p.push(format!("pause_in: {s:?} is not an open state (triggered, acknowledged, on_hold)")),
                None => p.push(format!("pause_in: unknown incident state {s:?} (triggered, acknowledged, on_hold)")),
            }
        }
        if !p.is_empty() {
            return Err(p);
        }
        Ok(SlaPolicy {
            name: self.name,
            matchers: ms,
            calendar: self.calendar.unwrap_or_else(|| crate::sla::calendar::Calendar::ALWAYS.to_owned()),
            targets,
            warn_at,
            pause_in,
        })
    }
}

impl RawEscalationPolicy {
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn compile(self) -> Result<EscalationPolicy, Vec<String>> {
        let mut p = Vec::new();
        name_problem(&self.name, &mut p);
        if self.steps.is_empty() {
            p.push("steps: give at least one step".into());
        }
        let mut steps = Vec::new();
        for (i, s) in self.steps.into_iter().enumerate() {
            let after = duration(&s.after, &format!("steps[{i}].after"), &mut p).unwrap_or_default();
            if s.notify.is_empty() {
                p.push(format!("steps[{i}].notify: name at least one notifier, schedule:NAME or person:NAME"));
            }
            let mut notify = Vec::new();
            for (j, text) in s.notify.iter().enumerate() {
                match Target::parse(text) {
                    Ok(t) => notify.push(t),
                    Err(e) => p.push(format!("steps[{i}].notify[{j}]: {e}")),
                }
            }
            if let Some(prev) = steps.last().map(|s: &EscalationStep| s.after)
                && after < prev
            {
                p.push(format!("steps[{i}].after: {after} comes before the previous step's {prev}"));
            }
            steps.push(EscalationStep { after, notify });
        }
        let last = steps.last().map(|s| s.after).unwrap_or_default();
        let repeat_interval = match &self.repeat_interval {
            Some(d) => duration(d, "repeat_interval", &mut p).unwrap_or_default(),
            None if last > Duration::ZERO => last,
            None => Duration::from_secs(30 * 60),
        };
        if self.repeat > 0 && repeat_interval == Duration::ZERO && last == Duration::ZERO {
            p.push("repeat_interval: must be longer than 0 when every step is at 0".into());
        }
        if !p.is_empty() {
            return Err(p);
        }
        Ok(EscalationPolicy { name: self.name, steps, repeat: self.repeat, repeat_interval })
    }
}

impl RawProblemRule {
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn compile(self) -> Result<ProblemRule, Vec<String>> {
        let mut p = Vec::new();
        name_problem(&self.name, &mut p);
        let ms = matchers(&self.matchers, &mut p);
        if self.min_incidents == Some(0) {
            p.push("min_incidents must be at least 1".into());
        }
        let window = match &self.window {
            Some(w) => duration(w, "window", &mut p).unwrap_or_default(),
            None => Duration::from_secs(7 * 86_400),
        };
        if window == Duration::ZERO {
            p.push("window must be longer than 0".into());
        }
        if !p.is_empty() {
            return Err(p);
        }
        Ok(ProblemRule {
            name: self.name,
            matchers: ms,
            group_by: self.group_by,
            min_incidents: self.min_incidents.unwrap_or(3),
            window,
        })
    }
}

impl RawChangeCorrelation {
    pub(super) fn compile(self) -> Result<Duration, Vec<String>> {
        let mut p = Vec::new();
        let window = match &self.window {
            Some(w) => duration(w, "change_correlation.window", &mut p).unwrap_or_default(),
            None => DEFAULT_CHANGE_WINDOW,
        };
        if p.is_empty() { Ok(window) } else { Err(p) }
    }
}

/// How long after a change ends an incident of its service still lists it
/// as a suspected cause.
pub const DEFAULT_CHANGE_WINDOW: Duration = Duration::from_mins(60);

#[cfg(test)]
mod tests {
    use super::*;

    fn sla(yaml: &str) -> Result<SlaPolicy, Vec<String>> {
        crate::yaml::from_str::<RawSlaPolicy>(yaml).unwrap().compile()
    }

    #[test]
    fn sla_policy_defaults_and_targets() {
        let p = sla("name: std\ntargets: {P1: {respond: 15m, resolve: 4h}, P3: {resolve: 3d}}\n").unwrap();
        assert_eq!(p.calendar, "24x7");
        assert_eq!(p.warn_at, [50, 75]);
        assert_eq!(p.pause_in, [IncidentState::OnHold]);
        assert_eq!(p.targets(Priority::P1).respond, Some(Duration::from_secs(900)));
        assert_eq!(p.targets(Priority::P3).respond, None);
        assert_eq!(p.targets(Priority::P5), Targets::default());
    }

    #[test]
    fn sla_policy_mistakes() {
        let errs = sla(
            "name: x\ntargets: {P0: {respond: 1m}, P2: {respond: 5 min, resolve: 0s}}\nwarn_at: ['100%', '50%']\npause_in: [resolved, waiting]\n",
        )
        .unwrap_err();
        let want =
            ["P0", "targets.P2.respond", "targets.P2.resolve: a target must be longer", "100%", "resolved", "waiting"];
        for w in want {
            assert!(errs.iter().any(|e| e.contains(w)), "no error with {w:?} in {errs:#?}");
        }
        assert_eq!(errs.len(), want.len(), "{errs:#?}");
    }

    #[test]
    fn escalation_policy_checks_steps() {
        let compile = |y: &str| crate::yaml::from_str::<RawEscalationPolicy>(y).unwrap().compile();
        let p =
            compile("name: p\nsteps: [{after: 0m, notify: [a]}, {after: 15m, notify: [b, c]}]\nrepeat: 2\n").unwrap();
        assert_eq!(p.repeat_interval, Duration::from_secs(900));
        let errs = compile("name: p\nsteps: [{after: 15m, notify: [a]}, {after: 5m, notify: []}]\n").unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].contains("steps[1].notify"));
        assert!(errs[1].contains("comes before"));
        assert!(compile("name: p\n").unwrap_err()[0].contains("at least one step"));
    }

    #[test]
    fn escalation_targets_are_typed() {
        let compile = |y: &str| crate::yaml::from_str::<RawEscalationPolicy>(y).unwrap().compile();
        let p = compile(
            "name: payments\nsteps:\n  - {after: 0m, notify: [schedule:payments-primary]}\n  - {after: 15m, notify: [person:carol, chatops]}\n",
        )
        .unwrap();
        assert_eq!(p.steps[0].notify, [Target::Schedule("payments-primary".into())]);
        assert_eq!(p.steps[1].notify, [Target::Person("carol".into()), Target::Notifier("chatops".into())]);
        let errs = compile("name: p\nsteps: [{after: 0m, notify: [chatops, 'schedule:', 'person: ']}]\n").unwrap_err();
        assert_eq!(
            errs,
            [
                "steps[0].notify[1]: \"schedule:\": give a name after the colon",
                "steps[0].notify[2]: \"person:\": give a name after the colon",
            ]
        );
    }

    #[test]
    fn problem_keys_group_by_fields() {
        let r = crate::yaml::from_str::<RawProblemRule>("name: recurring\ngroup_by: [rule, service]\n")
            .unwrap()
            .compile()
            .unwrap();
        assert_eq!(r.min_incidents, 3);
        let f = incident_fields(&LabelSet::new(), &[("rule", "node"), ("service", "db")]);
        assert_eq!(r.key(&f).unwrap(), r#"recurring{rule="node",service="db"}"#);
        // A missing or empty grouping value makes no key, so no problem.
        let g = incident_fields(&LabelSet::new(), &[("rule", "node")]);
        assert_eq!(r.key(&g), None);
        let h = incident_fields(&LabelSet::new(), &[("rule", "node"), ("service", "")]);
        assert_eq!(r.key(&h), None);
        // No grouping fields: every matching incident shares one key.
        let all = crate::yaml::from_str::<RawProblemRule>("name: all\ngroup_by: []\n").unwrap().compile().unwrap();
        assert_eq!(all.key(&g).unwrap(), "all{}");
    }
}
