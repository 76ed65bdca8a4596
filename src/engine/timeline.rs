//! The timeline entries of what happens to an incident's alerts and of a
//! person's edits, worded once here for every backend.
use jiff::Timestamp;
use serde_json::json;

use crate::engine::lifecycle::with_comment;
use crate::engine::sla::Entry;
use crate::model::change::Change;
use crate::model::incident::Priority;
use crate::model::review::ReviewState;
use crate::model::{Duration, Fingerprint, LabelSet};

/// An alert as the timeline names it: `AlertName (fingerprint)`.
pub fn describe(fingerprint: &Fingerprint, labels: &LabelSet) -> String {
    match labels.get("alertname") {
        Some(name) => format!("{name} ({fingerprint})"),
        None => fingerprint.to_string(),
    }
}

pub fn alert_joined(fingerprint: &Fingerprint, labels: &LabelSet, now: Timestamp) -> Entry {
    Entry {
        at: now,
        kind: "alert_joined",
        message: format!("alert {} joined", describe(fingerprint, labels)),
        data: json!({ "fingerprint": fingerprint }),
    }
}

/// An alert of the incident fired again, or resolved.
pub fn alert_firing(fingerprint: &Fingerprint, labels: &LabelSet, firing: bool, now: Timestamp) -> Entry {
    let (kind, verb) = if firing { ("alert_refired", "fired again") } else { ("alert_resolved", "resolved") };
    Entry {
        at: now,
        kind,
        message: format!("alert {} {verb}", describe(fingerprint, labels)),
        data: json!({ "fingerprint": fingerprint }),
    }
}

pub fn flapping(fingerprint: &Fingerprint, flap_window: Duration, now: Timestamp) -> Entry {
    Entry {
        at: now,
        kind: "flapping",
        message: format!("alert {fingerprint} fired again within the flap window ({flap_window})"),
        data: json!({ "fingerprint": fingerprint }),
    }
}

pub fn assigned(before: Option<&str>, after: Option<&str>, now: Timestamp) -> Entry {
    let message = match after {
        Some(a) => format!("assigned to {a}"),
        None => "unassigned".to_owned(),
    };
    Entry { at: now, kind: "assigned", message, data: json!({ "before": before, "after": after }) }
}

pub fn note(text: &str, now: Timestamp) -> Entry {
    Entry { at: now, kind: "note", message: text.to_owned(), data: json!({}) }
}

/// A person set the priority: the timeline records it (to the same
/// priority too, for its comment); the clocks take the new priority's
/// targets only when it differs (the second value).
pub fn set_priority(before: Priority, after: Priority, comment: Option<&str>, now: Timestamp) -> (Entry, bool) {
    (priority_changed(before.as_str(), after, comment, now), before != after)
}

pub fn priority_changed(before: &str, after: Priority, comment: Option<&str>, now: Timestamp) -> Entry {
    Entry {
        at: now,
        kind: "priority_changed",
        message: with_comment(format!("priority {before} → {after}"), comment),
        data: json!({ "before": before, "after": after, "comment": comment }),
    }
}

/// A change linked to an incident as a suspected cause; `late` when the
/// change was recorded after the incident opened.
pub fn change_suspected(change: &Change, late: bool, now: Timestamp) -> Entry {
    let service = change.service.as_deref().unwrap_or_default();
    let note = if late { " (recorded after the incident opened)" } else { "" };
    Entry {
        at: now,
        kind: "change_suspected",
        message: format!("suspected cause: change {} of {service}: {}{note}", change.id, change.summary),
        data: json!({ "change": change.id }),
    }
}

/// The incident's entry of its post-incident review's start.
pub fn review_started(now: Timestamp) -> Entry {
    Entry { at: now, kind: "review", message: "post-incident review started".into(), data: json!({ "state": "draft" }) }
}

/// The incident's entry of its review moving on (to review, published, back to draft).
pub fn review_moved(from: ReviewState, to: ReviewState, now: Timestamp) -> Entry {
    Entry {
        at: now,
        kind: "review",
        message: format!("post-incident review {from} → {to}"),
        data: json!({ "from": from, "to": to }),
    }
}

/// The entry of an action item that passed its due date.
pub fn action_item_overdue(id: i64, title: &str, owner: &str, due: Timestamp, now: Timestamp) -> Entry {
    Entry {
        at: now,
        kind: "action_item_overdue",
        message: format!("action item {id} ({title}) of {owner} is overdue: due {due}"),
        data: json!({ "actionItem": id, "owner": owner, "due": due }),
    }
}

/// The labels an incident keeps once `joining` joins it: those all its
/// alerts share.
pub fn common_labels(mut incident: LabelSet, joining: &LabelSet) -> LabelSet {
    incident.retain(|k, v| joining.get(k) == Some(v));
    incident
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn entries_name_the_alert_and_the_change() {
        let fp = Fingerprint::parse("00000000000000ab").unwrap();
        let now = Timestamp::UNIX_EPOCH;
        let named = labels(&[("alertname", "DiskFull")]);
        assert_eq!(alert_joined(&fp, &named, now).message, "alert DiskFull (00000000000000ab) joined");
        assert_eq!(alert_firing(&fp, &LabelSet::new(), false, now).message, "alert 00000000000000ab resolved");
        assert_eq!(alert_firing(&fp, &named, true, now).kind, "alert_refired");
        assert_eq!(assigned(Some("a"), None, now).message, "unassigned");
        assert_eq!(assigned(None, Some("bob"), now).data["after"], "bob");
        assert_eq!(priority_changed("P3", Priority::P1, Some("customers"), now).message, "priority P3 → P1: customers");
        assert_eq!(priority_changed("P3", Priority::P1, Some(""), now).message, "priority P3 → P1");
    }

    #[test]
    fn only_a_different_priority_retargets_the_clocks() {
        let now = Timestamp::UNIX_EPOCH;
        assert!(set_priority(Priority::P3, Priority::P1, None, now).1);
        let (e, retarget) = set_priority(Priority::P2, Priority::P2, Some("confirmed"), now);
        assert!(!retarget);
        assert_eq!(e.message, "priority P2 → P2: confirmed");
    }

    #[test]
    fn an_incident_keeps_the_labels_its_alerts_share() {
        let incident = labels(&[("alertname", "Up"), ("job", "api"), ("instance", "a")]);
        let joining = labels(&[("alertname", "Up"), ("job", "api"), ("instance", "b")]);
        assert_eq!(common_labels(incident, &joining), labels(&[("alertname", "Up"), ("job", "api")]));
    }
}
