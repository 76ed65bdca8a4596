use super::*;
use crate::model::incident::{Impact, IncidentSource, IncidentState, Priority, Urgency};

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn incident(state: IncidentState) -> Incident {
    Incident {
        id: 7,
        title: "Checkout fails".into(),
        service: Some("payments".into()),
        rule: "pay".into(),
        group_key: "pay{}".into(),
        impact: Impact::High,
        urgency: Urgency::High,
        priority: Priority::P1,
        state,
        assignee: None,
        alert_count: 1,
        firing_count: 0,
        flap_count: 0,
        labels: Default::default(),
        created_at: t("2026-11-26T10:00:00Z"),
        updated_at: t("2026-11-26T11:00:00Z"),
        acknowledged_at: None,
        resolved_at: Some(t("2026-11-26T11:00:00Z")),
        closed_at: None,
        auto_resolve_at: None,
        source: IncidentSource::Alert,
        description: None,
        reporter: None,
        merged_into: None,
    }
}

fn event(at: &str, kind: &str, message: &str) -> TimelineEvent {
    TimelineEvent {
        at: t(at),
        recorded_at: None,
        actor: "alertgate".into(),
        kind: kind.into(),
        message: message.into(),
        data: serde_json::Value::Null,
    }
}

#[test]
fn reviews_move_draft_review_published_and_back_to_draft_only_from_review() {
    use ReviewState::*;
    assert_eq!(transition(Draft, InReview), Ok(InReview));
    assert_eq!(transition(InReview, Published), Ok(Published));
    assert_eq!(transition(InReview, Draft), Ok(Draft));
    for (from, to) in [(Draft, Published), (Published, Draft), (Published, InReview)] {
        assert_eq!(transition(from, to), Err(ReviewError::Transition { from, to }), "{from} -> {to}");
    }
}

#[test]
fn the_draft_timeline_is_the_incidents_own_in_order() {
    let tl = [
        event("2026-11-26T10:05:00Z", "acknowledged", "triggered → acknowledged"),
        event("2026-11-26T10:00:00Z", "created", "opened by rule pay with priority P1"),
        event("2026-11-26T10:00:00Z", "sla_clock", "bookkeeping"),
        event("2026-11-26T10:20:00Z", "note", "rolled back the deploy"),
    ];
    let r = draft(&incident(IncidentState::Resolved), &tl, "alice", t("2026-11-27T09:00:00Z")).unwrap();
    let kinds: Vec<&str> = r.text.timeline.iter().map(|e| e.kind.as_deref().unwrap()).collect();
    assert_eq!(kinds, ["created", "acknowledged", "note"]);
    assert_eq!(r.text.timeline[2].text, "rolled back the deploy (alertgate)");
    assert_eq!(r.state, ReviewState::Draft);
    let open = draft(&incident(IncidentState::Acknowledged), &tl, "alice", t("2026-11-27T09:00:00Z"));
    assert_eq!(open, Err(ReviewError::NotResolved { id: 7, state: IncidentState::Acknowledged }));
}

#[test]
fn a_review_is_published_with_a_summary_and_then_changes_no_more() {
    let now = t("2026-11-27T09:00:00Z");
    let r = draft(&incident(IncidentState::Resolved), &[], "alice", now).unwrap();
    let to = |state| ReviewEdit { state: Some(state), ..Default::default() };
    let r = edit(r, to(ReviewState::InReview), now).unwrap();
    assert_eq!(edit(r.clone(), to(ReviewState::Published), now), Err(ReviewError::NoSummary));
    let r = edit(r, ReviewEdit { summary: Some("A bad deploy".into()), ..Default::default() }, now).unwrap();
    let later = t("2026-11-28T09:00:00Z");
    let r = edit(r, to(ReviewState::Published), later).unwrap();
    assert_eq!(r.published_at, Some(later));
    let again = ReviewEdit { summary: Some("rewritten".into()), ..Default::default() };
    assert_eq!(edit(r, again, later), Err(ReviewError::Published));
}

#[test]
fn markdown_has_every_section_and_a_timeline_table() {
    let now = t("2026-11-27T09:00:00Z");
    let tl = [event("2026-11-26T10:00:00Z", "note", "a | pipe\nand a newline")];
    let mut r = draft(&incident(IncidentState::Resolved), &tl, "alice", now).unwrap();
    r.text.summary = Some("A bad deploy".into());
    r.text.lessons.went_well = vec!["paged in a minute".into()];
    let md = markdown(&incident(IncidentState::Resolved), &r);
    assert!(md.starts_with("# Post-incident review: Checkout fails\n"), "{md}");
    for heading in ["## Summary", "## Root cause", "## Trigger", "## Detection", "## Resolution", "## Timeline"] {
        assert!(md.contains(heading), "{heading} in {md}");
    }
    assert!(md.contains("A bad deploy") && md.contains("- paged in a minute"), "{md}");
    assert!(md.contains("| 2026-11-26T10:00:00Z | a \\| pipe and a newline (alertgate) |"), "{md}");
}
