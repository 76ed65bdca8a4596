//! Problem decisions: when recurring incidents become a problem, what a
//! link says, and what an edit of a problem may do. The store loads the
//! key's history, applies the decision, and keeps the records.
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::model::problem::{Problem, ProblemState, ProblemTransitionError, transition};
use crate::rules::policy::ProblemRule;

/// What is known of a problem key when one of its incidents opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHistory {
    /// The newest open or known-error problem of the key.
    pub active: Option<i64>,
    /// Incidents of the key within the rule's window (this one included),
    /// oldest first, each with whether an earlier problem of the key took it.
    pub in_window: Vec<(i64, bool)>,
}

impl KeyHistory {
    /// The incidents that count towards the threshold: those of an
    /// earlier, resolved problem of the key do not count again; they
    /// recur only with new ones.
    pub fn recurring(&self) -> Vec<i64> {
        self.in_window.iter().filter(|(_, taken)| !taken).map(|(id, _)| *id).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recurrence {
    /// Link the incident to this active problem.
    Link(i64),
    /// The key recurred often enough: open a problem with these incidents.
    Open { title: String, message: String, incidents: Vec<i64> },
    /// Not (yet) a problem.
    Nothing,
}

/// Since when incidents count towards `rule`'s threshold at `now`.
pub fn window_start(rule: &ProblemRule, now: Timestamp) -> Timestamp {
    now.checked_sub(rule.window.signed()).unwrap_or(Timestamp::MIN)
}

/// An incident titled `title` opened under `key` of `rule`.
pub fn on_incident(rule: &ProblemRule, key: &str, title: &str, history: &KeyHistory) -> Recurrence {
    if let Some(id) = history.active {
        return Recurrence::Link(id);
    }
    let recurring = history.recurring();
    if recurring.len() < rule.min_incidents as usize {
        return Recurrence::Nothing;
    }
    Recurrence::Open {
        title: format!("Recurring: {title}"),
        message: format!(
            "opened by problem rule {}: {} incidents of {key} within {}",
            rule.name,
            recurring.len(),
            rule.window
        ),
        incidents: recurring,
    }
}

/// What an incident's timeline says when it is linked to a problem: a
/// known error carries its workaround to the responder.
/// Incidents may be linked to a problem until it is closed.
pub fn may_link(problem_id: i64, state: ProblemState) -> Result<(), LinkError> {
    match state {
        ProblemState::Closed => Err(LinkError::Closed(problem_id)),
        _ => Ok(()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("problem {0} is closed")]
    Closed(i64),
}

/// The incident's timeline entry of its link to a problem.
pub fn linked_entry(
    problem_id: i64,
    title: &str,
    state: ProblemState,
    workaround: Option<&str>,
    now: Timestamp,
) -> crate::engine::sla::Entry {
    crate::engine::sla::Entry {
        at: now,
        kind: "problem_linked",
        message: link_message(problem_id, title, state, workaround),
        data: json!({ "problem": problem_id, "state": state.as_str(), "workaround": workaround }),
    }
}

pub fn link_message(problem_id: i64, title: &str, state: ProblemState, workaround: Option<&str>) -> String {
    match (state, workaround) {
        (ProblemState::KnownError, Some(w)) => format!("known error {problem_id} ({title}); workaround: {w}"),
        _ => format!("linked to problem {problem_id} ({title})"),
    }
}

/// A person's edit of a problem.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProblemEdit {
    pub title: Option<String>,
    pub root_cause: Option<String>,
    pub workaround: Option<String>,
    pub state: Option<ProblemState>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error(transparent)]
    Transition(#[from] ProblemTransitionError),
    #[error("workaround: a known error needs a workaround")]
    KnownErrorWithoutWorkaround,
}

/// What an edit changes: the new state, the fields that change (before and
/// after, for the timeline), its message, and whether it makes a known error.
#[derive(Debug, Clone, PartialEq)]
pub struct EditOutcome {
    /// The problem's fields after the edit (a field left out keeps its value).
    pub title: String,
    pub root_cause: Option<String>,
    pub workaround: Option<String>,
    pub state: ProblemState,
    /// Which time the new state sets.
    pub stamp: ProblemStamp,
    pub changed: Map<String, Value>,
    pub message: String,
    pub became_known_error: bool,
}

/// The time a problem's new state sets: resolved and closed are dated;
/// reopening clears the resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemStamp {
    Nothing,
    Resolved,
    Closed,
    Reopened,
}

/// A problem's timeline entry: an incident linked to it.
pub fn incident_linked(incident_id: i64, now: Timestamp) -> crate::engine::sla::Entry {
    crate::engine::sla::Entry {
        at: now,
        kind: "incident_linked",
        message: format!("incident {incident_id} linked"),
        data: json!({ "incident": incident_id }),
    }
}

/// What a post-incident review gives the problem behind its incident: a
/// new problem takes the review's summary (or the incident's title) as its
/// title and its root cause; a linked one takes the root cause only where
/// it has none yet (what people wrote on the problem stands). A workaround
/// given goes to either.
pub fn from_review(
    review: &crate::model::review::Review,
    incident_title: &str,
    existing: Option<&Problem>,
    workaround: Option<String>,
) -> ProblemEdit {
    let root_cause = review.text.root_cause.clone();
    match existing {
        None => ProblemEdit {
            title: Some(review.text.summary.clone().unwrap_or_else(|| incident_title.to_owned())),
            root_cause,
            workaround,
            state: None,
        },
        Some(p) => ProblemEdit {
            title: None,
            root_cause: if p.root_cause.is_none() { root_cause } else { None },
            workaround,
            state: None,
        },
    }
}

/// A problem's timeline entry of a person's edit.
pub fn updated(outcome: &EditOutcome, now: Timestamp) -> crate::engine::sla::Entry {
    crate::engine::sla::Entry {
        at: now,
        kind: "updated",
        message: outcome.message.clone(),
        data: Value::Object(outcome.changed.clone()),
    }
}

/// A problem's first timeline entry when a rule opens it.
pub fn opened_by_rule(rule: &ProblemRule, key: &str, message: &str, now: Timestamp) -> crate::engine::sla::Entry {
    crate::engine::sla::Entry {
        at: now,
        kind: "opened",
        message: message.to_owned(),
        data: json!({ "rule": rule.name, "key": key }),
    }
}

/// A problem's first timeline entry when a person opens it.
pub fn opened_by_hand(key: Option<&str>, now: Timestamp) -> crate::engine::sla::Entry {
    crate::engine::sla::Entry { at: now, kind: "opened", message: "opened by hand".into(), data: json!({ "key": key }) }
}

/// Decide an edit of `before`; `None` when it changes nothing.
pub fn edit(before: &Problem, e: &ProblemEdit) -> Result<Option<EditOutcome>, EditError> {
    let state = match e.state {
        Some(to) if to != before.state => transition(before.state, to)?,
        _ => before.state,
    };
    if state == ProblemState::KnownError && e.workaround.is_none() && before.workaround.is_none() {
        return Err(EditError::KnownErrorWithoutWorkaround);
    }
    let mut changed = Map::new();
    let mut record = |field: &str, old: Option<&String>, new: Option<&String>| {
        if new.is_some() && new != old {
            changed.insert(field.to_owned(), json!({ "before": old, "after": new }));
        }
    };
    record("title", Some(&before.title), e.title.as_ref());
    record("rootCause", before.root_cause.as_ref(), e.root_cause.as_ref());
    record("workaround", before.workaround.as_ref(), e.workaround.as_ref());
    if state != before.state {
        changed.insert("state".into(), json!({ "before": before.state, "after": state }));
    }
    if changed.is_empty() {
        return Ok(None);
    }
    let names: Vec<&str> = changed.keys().map(String::as_str).collect();
    let message = if state != before.state {
        format!("{} → {state}; changed {}", before.state, names.join(", "))
    } else {
        format!("changed {}", names.join(", "))
    };
    let became_known_error = state == ProblemState::KnownError && before.state != ProblemState::KnownError;
    let stamp = match state {
        _ if state == before.state => ProblemStamp::Nothing,
        ProblemState::Resolved => ProblemStamp::Resolved,
        ProblemState::Closed => ProblemStamp::Closed,
        ProblemState::Open => ProblemStamp::Reopened,
        ProblemState::KnownError => ProblemStamp::Nothing,
    };
    Ok(Some(EditOutcome {
        title: e.title.clone().unwrap_or_else(|| before.title.clone()),
        root_cause: e.root_cause.clone().or_else(|| before.root_cause.clone()),
        workaround: e.workaround.clone().or_else(|| before.workaround.clone()),
        state,
        stamp,
        changed,
        message,
        became_known_error,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_review_gives_a_new_problem_its_summary_and_root_cause_and_a_linked_one_only_what_it_lacks() {
        use crate::model::review::{Review, ReviewState, ReviewText};
        let at: Timestamp = "2026-11-26T10:00:00Z".parse().unwrap();
        let review = Review {
            incident_id: 7,
            state: ReviewState::Published,
            text: ReviewText {
                summary: Some("Card declines".into()),
                root_cause: Some("a config default".into()),
                ..Default::default()
            },
            created_by: "alice".into(),
            created_at: at,
            updated_at: at,
            published_at: Some(at),
        };
        let new = from_review(&review, "Checkout fails", None, Some("restart".into()));
        assert_eq!(new.title.as_deref(), Some("Card declines"));
        assert_eq!(new.root_cause.as_deref(), Some("a config default"));
        assert_eq!(new.workaround.as_deref(), Some("restart"));
        let mut p = Problem {
            id: 3,
            title: "t".into(),
            key: None,
            rule: None,
            state: ProblemState::Open,
            root_cause: None,
            workaround: None,
            incident_count: 1,
            first_occurrence: None,
            last_occurrence: None,
            created_by: "x".into(),
            created_at: at,
            updated_at: at,
            resolved_at: None,
            closed_at: None,
        };
        assert_eq!(from_review(&review, "x", Some(&p), None).root_cause.as_deref(), Some("a config default"));
        p.root_cause = Some("written on the problem".into());
        let linked = from_review(&review, "x", Some(&p), None);
        assert_eq!((linked.title, linked.root_cause), (None, None), "what people wrote stands");
    }

    #[test]
    fn incidents_an_earlier_problem_took_do_not_count_again() {
        let h = KeyHistory { active: None, in_window: vec![(1, true), (2, false), (3, true), (4, false)] };
        assert_eq!(h.recurring(), [2, 4]);
    }

    #[test]
    fn only_a_closed_problem_refuses_links() {
        for state in [ProblemState::Open, ProblemState::KnownError, ProblemState::Resolved] {
            assert_eq!(may_link(7, state), Ok(()));
        }
        assert_eq!(may_link(7, ProblemState::Closed).unwrap_err().to_string(), "problem 7 is closed");
    }

    #[test]
    fn a_known_errors_link_tells_the_workaround() {
        let e = linked_entry(3, "disk", ProblemState::KnownError, Some("rotate logs"), Timestamp::UNIX_EPOCH);
        assert_eq!(e.message, "known error 3 (disk); workaround: rotate logs");
        assert_eq!(e.data["state"], "known_error");
        let e = linked_entry(3, "disk", ProblemState::Open, None, Timestamp::UNIX_EPOCH);
        assert_eq!(e.message, "linked to problem 3 (disk)");
    }

    fn rule(min_incidents: u32) -> ProblemRule {
        ProblemRule {
            name: "recurring".into(),
            matchers: Vec::new(),
            group_by: vec!["service".into()],
            min_incidents,
            window: "7d".parse().unwrap(),
        }
    }

    fn problem(state: ProblemState, workaround: Option<&str>) -> Problem {
        Problem {
            id: 4,
            title: "Recurring: disk full".into(),
            key: Some("k".into()),
            rule: Some("recurring".into()),
            state,
            root_cause: None,
            workaround: workaround.map(str::to_owned),
            incident_count: 3,
            first_occurrence: None,
            last_occurrence: None,
            created_by: "alertgate".into(),
            created_at: Timestamp::UNIX_EPOCH,
            updated_at: Timestamp::UNIX_EPOCH,
            resolved_at: None,
            closed_at: None,
        }
    }

    #[test]
    fn recurring_incidents_become_a_problem_at_the_threshold() {
        let key = "recurring{service=\"db\"}";
        let history =
            |active: Option<i64>, n: i64| KeyHistory { active, in_window: (1..=n).map(|i| (i, false)).collect() };
        assert_eq!(on_incident(&rule(3), key, "disk full", &history(None, 2)), Recurrence::Nothing);
        assert_eq!(
            on_incident(&rule(3), key, "disk full", &history(None, 3)),
            Recurrence::Open {
                title: "Recurring: disk full".into(),
                message: "opened by problem rule recurring: 3 incidents of recurring{service=\"db\"} within 7d".into(),
                incidents: vec![1, 2, 3],
            }
        );
        assert_eq!(on_incident(&rule(3), key, "disk full", &history(Some(9), 1)), Recurrence::Link(9), "an active one");
        let now: Timestamp = "2026-11-24T10:00:00Z".parse().unwrap();
        assert_eq!(window_start(&rule(3), now), "2026-11-17T10:00:00Z".parse().unwrap());
    }

    #[test]
    fn a_known_error_link_carries_its_workaround() {
        assert_eq!(
            link_message(4, "disk", ProblemState::KnownError, Some("rotate logs")),
            "known error 4 (disk); workaround: rotate logs"
        );
        assert_eq!(link_message(4, "disk", ProblemState::Open, Some("rotate logs")), "linked to problem 4 (disk)");
        assert_eq!(link_message(4, "disk", ProblemState::KnownError, None), "linked to problem 4 (disk)");
    }

    #[test]
    fn edits_follow_the_transitions_and_a_known_error_needs_a_workaround() {
        let open = problem(ProblemState::Open, None);
        let to = |s| ProblemEdit { state: Some(s), ..Default::default() };
        assert_eq!(edit(&open, &to(ProblemState::KnownError)), Err(EditError::KnownErrorWithoutWorkaround));
        let with = ProblemEdit { workaround: Some("rotate logs".into()), ..to(ProblemState::KnownError) };
        let out = edit(&open, &with).unwrap().unwrap();
        assert_eq!(out.state, ProblemState::KnownError);
        assert!(out.became_known_error);
        assert_eq!(out.message, "open → known_error; changed state, workaround");
        assert!(matches!(edit(&open, &to(ProblemState::Closed)), Err(EditError::Transition(_))));
        assert_eq!(edit(&open, &ProblemEdit::default()), Ok(None), "nothing changes");
        let same_title = ProblemEdit { title: Some(open.title.clone()), ..Default::default() };
        assert_eq!(edit(&open, &same_title), Ok(None));
        let known = problem(ProblemState::KnownError, Some("rotate logs"));
        let out = edit(&known, &ProblemEdit { root_cause: Some("logrotate off".into()), ..Default::default() });
        let out = out.unwrap().unwrap();
        assert!(!out.became_known_error, "already one");
        assert_eq!(out.message, "changed rootCause");
    }
}
