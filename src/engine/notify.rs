//! Who is told of an event and what they are told: the outbox rows an
//! incident or problem event becomes. A backend loads the facts and
//! inserts the rows; the recipients, keys and payloads are decided here.
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::engine::paging::{Paged, Reach};
use crate::engine::sla::{Calendars, ClockSlot};
use crate::model::AlertRecord;
use crate::model::incident::Incident;
use crate::model::notification::{EVENTS, Subscriptions};
use crate::model::person::{Directory, Recipient};
use crate::model::problem::Problem;
use crate::rules::incident::IncidentRule;

/// Alerts a notification lists; the incident's page has them all.
pub const SNAPSHOT_ALERTS: usize = 20;

/// One row to queue: a notifier and the key that makes its delivery
/// idempotent, the same however often it is retried; for a page to a
/// person, whom it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub notifier: String,
    pub idempotency_key: String,
    pub recipient: Option<Recipient>,
}

/// The fact an event tells, as named in idempotency keys.
pub fn incident_origin(incident_id: i64, entry_id: i64) -> String {
    format!("incident-{incident_id}-event-{entry_id}")
}

pub fn problem_origin(problem_id: i64, entry_id: i64) -> String {
    format!("problem-{problem_id}-event-{entry_id}")
}

/// Where `event` goes. Whom an escalation step reaches (`targets`) is
/// told whatever their notifiers subscribe to: its notifiers, and each
/// person through every way the directory gives to reach them; otherwise
/// the notifiers of `rules` (the incident's rule, or the rules of a
/// problem's incidents), each only of the events it subscribes to. Each
/// notifier, and each person on each notifier, once.
pub fn deliveries(
    event: &str,
    origin: &str,
    targets: Option<&Reach>,
    rules: &[&IncidentRule],
    subscriptions: &Subscriptions,
    directory: &Directory,
) -> Vec<Delivery> {
    debug_assert!(EVENTS.contains(&event), "unknown event {event}");
    let (names, filtered): (Vec<&String>, bool) = match targets {
        Some(t) => (t.notifiers.iter().collect(), false),
        None => (rules.iter().flat_map(|r| r.notify.iter()).collect(), true),
    };
    let mut out: Vec<Delivery> = Vec::new();
    for notifier in names {
        if out.iter().any(|d| &d.notifier == notifier) || (filtered && !subscriptions.allows(notifier, event)) {
            continue;
        }
        out.push(Delivery {
            notifier: notifier.clone(),
            idempotency_key: format!("{origin}-{notifier}"),
            recipient: None,
        });
    }
    let people = targets.map_or(&[][..], |t| t.people.as_slice());
    out.extend(to_people(event, origin, people, directory));
    out
}

/// A page to each of `people`, through every way the directory gives to
/// reach them. A notifier's `events:` choose what its own recipients (a
/// team list, a channel) hear; a page addressed to a person goes through
/// it whatever they say, as a step naming the notifier does.
pub fn to_people(event: &str, origin: &str, people: &[Paged], directory: &Directory) -> Vec<Delivery> {
    debug_assert!(EVENTS.contains(&event), "unknown event {event}");
    let mut out = Vec::new();
    for p in people {
        for (notifier, recipient) in directory.routes(&p.person, &p.via) {
            // `+` never appears in a person's name: no key of a notifier alone can equal it.
            let idempotency_key = format!("{origin}-{notifier}+{}", p.person);
            out.push(Delivery { notifier, idempotency_key, recipient: Some(recipient) });
        }
    }
    out
}

/// The rules whose notifiers hear of a problem: those of the incidents
/// linked to it (`linked_rules` are their names).
pub fn problem_rules<'r>(rules: &'r [IncidentRule], linked_rules: &[String]) -> Vec<&'r IncidentRule> {
    rules.iter().filter(|r| linked_rules.contains(&r.name)).collect()
}

/// The facts about an incident a notification carries, as of the event.
pub struct IncidentFacts<'a> {
    pub incident: &'a Incident,
    /// Its first alerts (at most [`SNAPSHOT_ALERTS`]), each with whether it
    /// still fires in this incident.
    pub alerts: &'a [(AlertRecord, bool)],
    /// The known errors it is linked to.
    pub known_errors: &'a [Problem],
    pub clocks: &'a [ClockSlot],
}

/// The known error an incident shows: the newest it is linked to.
pub fn known_error(problems: &[Problem]) -> Option<&Problem> {
    problems.iter().filter(|p| p.state == crate::model::problem::ProblemState::KnownError).max_by_key(|p| p.id)
}

/// What a notification says about an incident: templates render from
/// this, not from the incident as it is at delivery.
/// `data` is what the event adds (e.g. an SLA milestone's clock).
pub fn incident_payload(
    event: &str,
    facts: &IncidentFacts<'_>,
    data: Value,
    calendars: Calendars<'_>,
    now: Timestamp,
) -> Value {
    let i = facts.incident;
    let mut snapshot = json!({
        "id": i.id,
        "title": i.title,
        "service": i.service,
        "rule": i.rule,
        "priority": i.priority.as_str(),
        "impact": i.impact.as_str(),
        "urgency": i.urgency.as_str(),
        "state": i.state.as_str(),
        "assignee": i.assignee,
        "labels": i.labels,
        "alertCount": i.alert_count,
        "firingCount": i.firing_count,
        "createdAt": i.created_at.to_string(),
    });
    if let Some(p) = known_error(facts.known_errors) {
        snapshot["knownError"] = json!({ "problemId": p.id, "title": p.title, "workaround": p.workaround });
    }
    // What a responder needs of each alert: labels, annotations (summary,
    // runbook and dashboard links), source.
    let alerts: Vec<Value> = facts
        .alerts
        .iter()
        .take(SNAPSHOT_ALERTS)
        .map(|(a, firing_here)| {
            let status = if *firing_here { a.status.as_str() } else { crate::model::AlertStatus::Resolved.as_str() };
            json!({
                "fingerprint": a.fingerprint,
                "status": status,
                "labels": a.labels,
                "annotations": a.annotations,
                "generatorURL": a.generator_url,
                "startsAt": a.starts_at.to_string(),
            })
        })
        .collect();
    snapshot["alerts"] = Value::Array(alerts);
    let sla = clocks_payload(facts.clocks, calendars, now);
    if !sla.is_empty() {
        snapshot["sla"] = Value::Object(sla);
    }
    json!({ "event": event, "incident": snapshot, "data": data })
}

fn clocks_payload(clocks: &[ClockSlot], calendars: Calendars<'_>, now: Timestamp) -> Map<String, Value> {
    let mut sla = Map::new();
    for slot in clocks {
        let c = &slot.clock;
        let cal = calendars(&c.calendar);
        let breach_at = c.breach_at(&cal);
        let next = c.next_milestone_at(&cal);
        sla.insert(
            c.kind.as_str().to_owned(),
            json!({
                "state": c.state(),
                "target": c.target_ms.map(|t| crate::model::Duration::from_millis(t).to_string()),
                "breachAt": breach_at.map(|t| t.to_string()),
                "nextMilestoneAt": next.map(|t| t.to_string()),
                "dueAt": next.map(|t| t.to_string()),
                "breachedAt": c.breached_at.map(|t| t.to_string()),
                "remainingSeconds": c.remaining_ms(&cal, now).map(|r| r / 1000),
            }),
        );
    }
    sla
}

/// What a notification says about a problem.
pub fn problem_payload(event: &str, problem: &Problem) -> Value {
    json!({ "event": event, "problem": problem })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use super::*;

    /// Notifiers that take only the events named; the others take all.
    fn only(pairs: &[(&str, &[&str])]) -> Subscriptions {
        Subscriptions::new(HashMap::from_iter(
            pairs
                .iter()
                .map(|(n, events)| ((*n).to_owned(), events.iter().map(|e| (*e).to_owned()).collect::<BTreeSet<_>>())),
        ))
    }

    fn rule(name: &str, notify: &[&str]) -> IncidentRule {
        let dir = tempfile::tempdir().unwrap();
        let list = notify.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ");
        let yaml = format!("incident_rules:\n  - name: {name}\n    matchers: ['a=\"1\"']\n    notify: [{list}]\n");
        std::fs::write(dir.path().join("r.yaml"), yaml).unwrap();
        crate::rules::RuleSet::load_dir(dir.path()).unwrap().incident_rules.remove(0)
    }

    fn names(d: &[Delivery]) -> Vec<&str> {
        d.iter().map(|d| d.notifier.as_str()).collect()
    }

    #[test]
    fn a_rules_notifiers_are_told_once_each_of_what_they_subscribe_to() {
        let (a, b) = (rule("a", &["ops", "chat"]), rule("b", &["ops", "pager"]));
        let subs = only(&[("pager", &["incident.escalated"])]);
        let d = deliveries("incident.triggered", "incident-1-event-2", None, &[&a, &b], &subs, &Directory::default());
        assert_eq!(names(&d), ["ops", "chat"], "pager takes escalations only; ops once");
        assert_eq!(d[0].idempotency_key, "incident-1-event-2-ops");
    }

    #[test]
    fn an_escalation_steps_targets_are_told_whatever_they_subscribe_to() {
        let subs = only(&[("pager", &["incident.resolved"]), ("mail", &["incident.escalated"])]);
        let person = |name: &str| crate::model::person::Person {
            name: name.into(),
            email: Some(format!("{name}@example.org")),
            timezone: None,
            webhook: Some(crate::model::person::PersonWebhook { notifier: "chat".into(), handle: format!("@{name}") }),
        };
        let directory = Directory { people: vec![person("alice")], email_notifier: Some("mail".into()) };
        let targets = Reach {
            notifiers: vec!["pager".to_owned()],
            people: vec![Paged { person: "alice".into(), via: "schedule:primary".into() }],
            ..Reach::default()
        };
        let d = deliveries("incident.escalated", "o", Some(&targets), &[&rule("a", &["ops"])], &subs, &directory);
        assert_eq!(names(&d), ["pager", "mail", "chat"]);
        assert_eq!(d[1].idempotency_key, "o-mail+alice");
        let to = d[1].recipient.as_ref().unwrap();
        assert_eq!((to.email.as_deref(), to.via.as_str()), (Some("alice@example.org"), "schedule:primary"));
        assert_eq!(d[2].recipient.as_ref().unwrap().handle.as_deref(), Some("@alice"));
        // A notifier's `events:` are about its own recipients: a person's page goes through it anyway.
        let subs = only(&[("mail", &["incident.resolved"])]);
        let d = deliveries("incident.escalated", "o", Some(&targets), &[], &subs, &directory);
        assert_eq!(names(&d), ["pager", "mail", "chat"]);
    }

    #[test]
    fn no_rule_and_no_targets_tells_no_one() {
        assert!(deliveries("incident.triggered", "o", None, &[], &only(&[]), &Directory::default()).is_empty());
    }
}
