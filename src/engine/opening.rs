//! What an incident is when its rule opens it for an alert: title,
//! service, impact, urgency and priority, assignee, the first timeline
//! entries, and the fields SLA policies and problem rules match on; and
//! what becomes of an open incident whose last alert resolved.
use jiff::Timestamp;
use serde_json::json;

use crate::engine::paging::{Assignee, OnCallBook};
use crate::engine::sla::Entry;
use crate::model::incident::{Impact, IncidentSource, NewReport, Priority, Urgency};
use crate::model::{Annotations, Fingerprint, LabelSet};
use crate::rules::RuleSet;
use crate::rules::incident::IncidentRule;
use crate::rules::policy::incident_fields;

#[derive(Debug, Clone, PartialEq)]
pub struct Opening {
    pub title: String,
    pub service: Option<String>,
    pub impact: Impact,
    pub urgency: Urgency,
    pub priority: Priority,
    pub assignee: Option<String>,
    /// What chose the assignee when a schedule did (`schedule:NAME`).
    pub assigned_via: Option<String>,
    /// Why the title template could not be used (the title then falls
    /// back to the alert's name), for the log.
    pub title_error: Option<String>,
}

/// The incident `rule` opens for an alert with these labels. A missed
/// heartbeat's alert names its heartbeat in the title, whatever the rule's
/// template (see [`super::heartbeat::incident_title`]).
pub fn open(
    rules: &RuleSet,
    rule: &IncidentRule,
    fingerprint: &Fingerprint,
    labels: &LabelSet,
    annotations: &Annotations,
    book: &OnCallBook<'_>,
    now: Timestamp,
) -> Opening {
    let (title, title_error) = match super::heartbeat::incident_title(fingerprint, labels, annotations) {
        Some(t) => (t, None),
        None => match rules.templates.render(&rule.title_template, labels, annotations) {
            Ok(t) => (t, None),
            Err(e) => (String::new(), Some(e.to_string())),
        },
    };
    let title =
        if title.is_empty() { labels.get("alertname").cloned().unwrap_or_else(|| rule.name.clone()) } else { title };
    let (impact, urgency, priority) = rule.priority(&rules.priority_matrix, labels);
    let assigned = book.assignee(rule.assign_to.as_deref(), rule.assign_to_target.as_ref(), now);
    Opening {
        title,
        service: service_of(rules, rule, labels, annotations),
        impact,
        urgency,
        priority,
        assignee: assigned.as_ref().map(|a| a.name.clone()),
        assigned_via: assigned.and_then(|a| a.via),
        title_error,
    }
}

/// An incident a person reports: its rule (the first incident rule whose
/// matchers match the report's fields, which may be none), what it is,
/// and the labels its rules and policies match (the report's labels with
/// its `service` and `source="reported"`).
pub struct Reported<'r> {
    pub rule: Option<&'r IncidentRule>,
    pub opening: Opening,
    pub labels: LabelSet,
}

/// The rule name a reported incident no rule matches is filed under.
pub const REPORTED_RULE: &str = "reported";

pub fn report<'r>(rules: &'r RuleSet, r: &NewReport, book: &OnCallBook<'_>, now: Timestamp) -> Reported<'r> {
    let mut labels = r.labels.clone();
    if let Some(service) = &r.service {
        labels.entry("service".into()).or_insert_with(|| service.clone());
    }
    labels.insert("source".into(), IncidentSource::Reported.as_str().into());
    let rule = rules.route(&labels).into_iter().next();
    let assigned = match &r.assignee {
        Some(a) => Some(Assignee { name: a.clone(), via: None }),
        None => rule.and_then(|rule| book.assignee(rule.assign_to.as_deref(), rule.assign_to_target.as_ref(), now)),
    };
    let opening = Opening {
        title: r.title.clone(),
        service: r.service.clone(),
        impact: r.impact,
        urgency: r.urgency,
        priority: rules.priority_matrix.priority(r.impact, r.urgency),
        assignee: assigned.as_ref().map(|a| a.name.clone()),
        assigned_via: assigned.and_then(|a| a.via),
        title_error: None,
    };
    Reported { rule, opening, labels }
}

impl Reported<'_> {
    pub fn rule_name(&self) -> &str {
        self.rule.map_or(REPORTED_RULE, |r| r.name.as_str())
    }

    /// The timeline entries a reported incident starts with; the first is
    /// the one its `incident.triggered` notification tells.
    pub fn entries(&self, reporter: &str, now: Timestamp) -> Vec<Entry> {
        let o = &self.opening;
        let (impact, urgency, priority) = (o.impact, o.urgency, o.priority);
        let mut out = vec![Entry {
            at: now,
            kind: "created",
            message: format!("reported by {reporter} with priority {priority}"),
            data: json!({
                "source": "reported", "reporter": reporter, "rule": self.rule_name(),
                "impact": impact, "urgency": urgency, "priority": priority,
            }),
        }];
        out.extend(o.assigned(now));
        out
    }

    /// What SLA policies and problem rules match: its labels and its own fields.
    pub fn fields(&self) -> LabelSet {
        let o = &self.opening;
        incident_fields(
            &self.labels,
            &[
                ("rule", self.rule_name()),
                ("service", o.service.as_deref().unwrap_or("")),
                ("priority", o.priority.as_str()),
                ("impact", o.impact.as_str()),
                ("urgency", o.urgency.as_str()),
                ("title", &o.title),
            ],
        )
    }

    /// As an alert-born incident's, without alerts to join.
    pub fn steps(&self) -> Vec<OpeningStep> {
        let mut out = vec![
            OpeningStep::StartClocks,
            OpeningStep::CorrelateChanges,
            OpeningStep::LinkProblems,
            OpeningStep::NotifyTriggered,
        ];
        out.extend(self.rule.and_then(|r| r.escalation.clone()).map(OpeningStep::StartEscalation));
        out
    }
}

/// The service `rule` names for an alert; `None` when its template is
/// absent, fails, or renders empty.
pub fn service_of(
    rules: &RuleSet,
    rule: &IncidentRule,
    labels: &LabelSet,
    annotations: &Annotations,
) -> Option<String> {
    rule.service_template
        .as_ref()
        .and_then(|name| rules.templates.render(name, labels, annotations).ok())
        .filter(|s| !s.is_empty())
}

impl Opening {
    /// The entry of its first assignee, if it has one.
    fn assigned(&self, now: Timestamp) -> Option<Entry> {
        let a = self.assignee.as_ref()?;
        let message = match &self.assigned_via {
            Some(via) => format!("assigned to {a}, on call in {via}"),
            None => format!("assigned to {a}"),
        };
        Some(Entry { at: now, kind: "assigned", message, data: json!({ "assignee": a, "via": self.assigned_via }) })
    }

    /// The timeline entries the incident starts with; the first is the
    /// one its `incident.triggered` notification tells.
    pub fn entries(&self, rule: &IncidentRule, key: &str, now: Timestamp) -> Vec<Entry> {
        let (impact, urgency, priority) = (self.impact, self.urgency, self.priority);
        let mut out = vec![Entry {
            at: now,
            kind: "created",
            message: format!("opened by rule {} with priority {priority}", rule.name),
            data: json!({ "rule": rule.name, "group_key": key, "impact": impact, "urgency": urgency, "priority": priority }),
        }];
        out.extend(self.assigned(now));
        out
    }

    /// What SLA policies and problem rules match: the incident's common
    /// labels and its own fields (`rule`, `service`, `priority`, ...).
    pub fn fields(&self, rule: &IncidentRule, common: &LabelSet) -> LabelSet {
        incident_fields(
            common,
            &[
                ("rule", &rule.name),
                ("service", self.service.as_deref().unwrap_or("")),
                ("priority", self.priority.as_str()),
                ("impact", self.impact.as_str()),
                ("urgency", self.urgency.as_str()),
                ("title", &self.title),
            ],
        )
    }
}

/// What the gateway does once an incident is open, in order: the alerts
/// held in its pending group join, then the ITSM layer starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpeningStep {
    JoinHeldAlerts,
    StartClocks,
    CorrelateChanges,
    LinkProblems,
    /// Tell the rule's notifiers, with the first timeline entry.
    NotifyTriggered,
    StartEscalation(String),
}

pub fn steps(rule: &IncidentRule) -> Vec<OpeningStep> {
    let mut out = vec![
        OpeningStep::JoinHeldAlerts,
        OpeningStep::StartClocks,
        OpeningStep::CorrelateChanges,
        OpeningStep::LinkProblems,
        OpeningStep::NotifyTriggered,
    ];
    out.extend(rule.escalation.clone().map(OpeningStep::StartEscalation));
    out
}

/// What happens to an incident when one of its alerts resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastAlertResolved {
    /// Resolve it now (comment: [`super::pending::ALL_ALERTS_RESOLVED`]).
    Resolve,
    /// Resolve it at this instant unless an alert of it fires again
    /// before (a firing alert clears the time).
    ResolveAt(Timestamp),
    /// Nothing: alerts still fire, it is not open, or only a person resolves it.
    Stay,
}

/// An alert joined an incident or fired in it again: whether that calls
/// off a resolution the incident was waiting for (it does: an incident
/// with a firing alert does not resolve by itself).
pub fn alert_firing_cancels_auto_resolve(firing: bool) -> bool {
    firing
}

/// An alert of an incident in `state` resolved, leaving `firing_left` of
/// its alerts firing. `rule` is the incident's rule (`None` when a reload
/// removed it: the incident resolves at once, as it would have by default).
/// A reported incident is resolved by a person, never because an alert
/// linked to it stopped firing.
pub fn alert_resolved(
    rule: Option<&IncidentRule>,
    (state, source): (crate::model::incident::IncidentState, IncidentSource),
    firing_left: u64,
    now: Timestamp,
) -> LastAlertResolved {
    if firing_left > 0 || !state.is_open() || source == IncidentSource::Reported {
        return LastAlertResolved::Stay;
    }
    match super::auto_resolve_at(rule, now) {
        Some(at) if at <= now => LastAlertResolved::Resolve,
        Some(at) => LastAlertResolved::ResolveAt(at),
        None => LastAlertResolved::Stay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No schedules: assignees as the rules write them.
    macro_rules! no_one {
        () => {
            OnCallBook {
                schedules: &Default::default(),
                overrides: &Default::default(),
                directory: &Default::default(),
            }
        };
    }

    fn rules(yaml: &str) -> RuleSet {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r.yaml"), yaml).unwrap();
        RuleSet::load_dir(dir.path()).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    const RULES: &str = r#"
incident_rules:
  - name: db
    matchers: ['alertname=~".+"', 'team!="x"']
    title: "{{ labels.alertname }} on {{ labels.instance }}"
    service: "{{ labels.service }}"
    impact: high
    urgency_from: {label: severity, map: {critical: high}, default: medium}
    assign_to: dba
  - name: bare
    matchers: ['team="x"']
    title: "{{ labels.missing }}"
"#;

    #[test]
    fn an_opening_renders_title_and_service_and_prices_the_alert() {
        let rs = rules(RULES);
        let rule = &rs.incident_rules[0];
        let l = labels(&[("alertname", "DiskFull"), ("instance", "db1"), ("service", "pay"), ("severity", "critical")]);
        let fp = Fingerprint::of_labels(&l);
        let o = open(&rs, rule, &fp, &l, &Default::default(), &no_one!(), Timestamp::UNIX_EPOCH);
        assert_eq!(o.title, "DiskFull on db1");
        assert_eq!(o.service.as_deref(), Some("pay"));
        assert_eq!((o.impact, o.urgency), (Impact::High, Urgency::High));
        assert_eq!(o.priority, rs.priority_matrix.priority(Impact::High, Urgency::High));
        assert_eq!(o.assignee.as_deref(), Some("dba"));
        let now = Timestamp::UNIX_EPOCH;
        let kinds: Vec<&str> = o.entries(rule, "k", now).iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["created", "assigned"]);
        let f = o.fields(rule, &l);
        assert_eq!(f.get("rule").map(String::as_str), Some("db"));
        assert_eq!(f.get("title").map(String::as_str), Some("DiskFull on db1"));
        assert_eq!(f.get("instance").map(String::as_str), Some("db1"));
    }

    #[test]
    fn an_empty_title_falls_back_to_the_alert_name_then_the_rule_name() {
        let rs = rules(RULES);
        let rule = &rs.incident_rules[1];
        let l = labels(&[("team", "x"), ("alertname", "Up")]);
        let o =
            open(&rs, rule, &Fingerprint::of_labels(&l), &l, &Default::default(), &no_one!(), Timestamp::UNIX_EPOCH);
        assert_eq!(o.title, "Up");
        let l = labels(&[("team", "x")]);
        let o =
            open(&rs, rule, &Fingerprint::of_labels(&l), &l, &Default::default(), &no_one!(), Timestamp::UNIX_EPOCH);
        assert_eq!(o.title, "bare");
        assert_eq!(o.service, None);
        assert_eq!(o.entries(rule, "k", Timestamp::UNIX_EPOCH).len(), 1, "no assignee, no assigned entry");
    }

    #[test]
    fn a_report_is_priced_by_the_matrix_and_routed_by_its_service_and_labels() {
        let rs = rules(
            "incident_rules:\n  - {name: pay, matchers: ['service=\"payments\"'], assign_to: payments-team, escalation: p}\n  - {name: desk, matchers: ['source=\"reported\"']}\nescalation_policies:\n  - {name: p, steps: [{after: 0m, notify: [ops]}]}\n",
        );
        let report = |service: Option<&str>, impact, urgency| NewReport {
            title: "Cannot pay".into(),
            description: None,
            service: service.map(str::to_owned),
            impact,
            urgency,
            reporter: Some("jane".into()),
            labels: LabelSet::new(),
            assignee: None,
        };
        let r = super::report(
            &rs,
            &report(Some("payments"), Impact::High, Urgency::High),
            &no_one!(),
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(r.rule_name(), "pay");
        assert_eq!(r.opening.priority, rs.priority_matrix.priority(Impact::High, Urgency::High));
        assert_eq!(r.opening.assignee.as_deref(), Some("payments-team"), "the rule assigns it");
        assert_eq!(r.labels.get("source").map(String::as_str), Some("reported"));
        assert_eq!(r.steps().last(), Some(&OpeningStep::StartEscalation("p".into())));
        assert!(!r.steps().contains(&OpeningStep::JoinHeldAlerts), "no alerts to join");
        assert_eq!(
            r.entries("jane", Timestamp::UNIX_EPOCH)[0].message,
            format!("reported by jane with priority {}", r.opening.priority)
        );
        let other = super::report(&rs, &report(None, Impact::Low, Urgency::Low), &no_one!(), Timestamp::UNIX_EPOCH);
        assert_eq!(other.rule_name(), "desk", "any report matches source=reported");
        assert_eq!(other.fields().get("service").map(String::as_str), Some(""));
        let none = rules("incident_rules:\n  - {name: a, matchers: ['alertname=\"X\"']}\n");
        assert_eq!(
            super::report(&none, &report(None, Impact::Low, Urgency::Low), &no_one!(), Timestamp::UNIX_EPOCH)
                .rule_name(),
            REPORTED_RULE
        );
    }

    #[test]
    fn an_incident_opens_its_itsm_layer_in_order() {
        let rs = rules(
            "incident_rules:\n  - {name: a, matchers: ['a=\"1\"'], escalation: p}\nescalation_policies:\n  - {name: p, steps: [{after: 0m, notify: [ops]}]}\n",
        );
        let steps = steps(&rs.incident_rules[0]);
        assert_eq!(steps.first(), Some(&OpeningStep::JoinHeldAlerts));
        assert_eq!(steps.last(), Some(&OpeningStep::StartEscalation("p".into())));
        let plain = rules("incident_rules:\n  - {name: a, matchers: ['a=\"1\"']}\n");
        assert_eq!(super::steps(&plain.incident_rules[0]).last(), Some(&OpeningStep::NotifyTriggered));
    }

    #[test]
    fn an_alert_resolving_resolves_its_incident_only_when_the_last_one_does() {
        use crate::model::incident::IncidentState::{Acknowledged, Resolved};
        let rs = rules("incident_rules:\n  - {name: now, matchers: ['a=\"1\"']}\n");
        let (rule, now) = (Some(&rs.incident_rules[0]), Timestamp::UNIX_EPOCH);
        assert_eq!(
            alert_resolved(rule, (Acknowledged, IncidentSource::Alert), 1, now),
            LastAlertResolved::Stay,
            "one still fires"
        );
        assert_eq!(
            alert_resolved(rule, (Resolved, IncidentSource::Alert), 0, now),
            LastAlertResolved::Stay,
            "already resolved"
        );
        assert_eq!(alert_resolved(rule, (Acknowledged, IncidentSource::Alert), 0, now), LastAlertResolved::Resolve);
    }

    #[test]
    fn the_last_alert_resolving_resolves_now_later_or_never() {
        let rs = rules(
            r#"
incident_rules:
  - {name: now, matchers: ['a="1"']}
  - {name: later, matchers: ['a="2"'], auto_resolve_after: 5m}
  - {name: never, matchers: ['a="3"'], auto_resolve_after: never}
"#,
        );
        let now: Timestamp = "2026-11-26T10:00:00Z".parse().unwrap();
        let open = crate::model::incident::IncidentState::Triggered;
        assert_eq!(
            alert_resolved(Some(&rs.incident_rules[0]), (open, IncidentSource::Alert), 0, now),
            LastAlertResolved::Resolve
        );
        assert_eq!(
            alert_resolved(Some(&rs.incident_rules[1]), (open, IncidentSource::Alert), 0, now),
            LastAlertResolved::ResolveAt("2026-11-26T10:05:00Z".parse().unwrap())
        );
        assert_eq!(
            alert_resolved(Some(&rs.incident_rules[2]), (open, IncidentSource::Alert), 0, now),
            LastAlertResolved::Stay
        );
        assert_eq!(alert_resolved(None, (open, IncidentSource::Alert), 0, now), LastAlertResolved::Resolve);
        assert_eq!(
            alert_resolved(None, (open, IncidentSource::Reported), 0, now),
            LastAlertResolved::Stay,
            "a person resolves a report"
        );
    }
}
