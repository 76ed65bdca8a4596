//! The service desk's decisions: linking alerts to an incident by hand,
//! and merging two incidents that turn out to be one.
use jiff::Timestamp;
use serde_json::json;

use crate::engine::sla::Entry;
use crate::model::incident::IncidentState;
use crate::sla::clock::ClockKind;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeskError {
    #[error("incident {0} is {1}: alerts are linked to open incidents only")]
    LinkToClosed(i64, IncidentState),
    #[error("an incident cannot be merged into itself")]
    MergeIntoItself,
    #[error("incident {0} is closed: there is nothing left to merge")]
    MergeClosed(i64),
    #[error("incident {0} is {1}: incidents are merged into open incidents only")]
    MergeIntoNotOpen(i64, IncidentState),
}

/// Alerts are linked by hand to an incident still open.
pub fn may_link_alerts(id: i64, state: IncidentState) -> Result<(), DeskError> {
    if state.is_open() { Ok(()) } else { Err(DeskError::LinkToClosed(id, state)) }
}

/// The timeline entry of an alert a person linked.
pub fn alert_linked(fingerprint: &crate::model::Fingerprint, labels: &crate::model::LabelSet, now: Timestamp) -> Entry {
    Entry {
        at: now,
        kind: "alert_linked",
        message: format!("alert {} linked", crate::engine::timeline::describe(fingerprint, labels)),
        data: json!({ "fingerprint": fingerprint }),
    }
}

/// One side of a merge as the store knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeSide {
    pub id: i64,
    pub state: IncidentState,
    pub created_at: Timestamp,
}

/// What merging `source` into `target` does.
#[derive(Debug, Clone, PartialEq)]
pub struct MergePlan {
    /// The kinds of SLA clock the target takes over from the source (its
    /// own of that kind goes); the source's others go.
    pub take_clocks: Vec<ClockKind>,
    /// The target's entry, then the source's.
    pub target_entry: Entry,
    pub source_entry: Entry,
}

/// Merge `source` into `target`: its alerts, timeline and links move to
/// the target, and it closes pointing there. The merged incident keeps the
/// SLA clocks of whichever began first, so a merge neither resets a
/// promise nor dodges one. `source_clocks` are the kinds the source has.
pub fn merge(
    source: MergeSide,
    target: MergeSide,
    source_clocks: &[ClockKind],
    actor_comment: Option<&str>,
    now: Timestamp,
) -> Result<MergePlan, DeskError> {
    if source.id == target.id {
        return Err(DeskError::MergeIntoItself);
    }
    if source.state == IncidentState::Closed {
        return Err(DeskError::MergeClosed(source.id));
    }
    if !target.state.is_open() {
        return Err(DeskError::MergeIntoNotOpen(target.id, target.state));
    }
    let take_clocks = if source.created_at < target.created_at { source_clocks.to_vec() } else { Vec::new() };
    let comment = |m: String| crate::engine::lifecycle::with_comment(m, actor_comment);
    Ok(MergePlan {
        target_entry: Entry {
            at: now,
            kind: "merged",
            message: comment(format!("incident {} merged into this one", source.id)),
            data: json!({ "from": source.id, "clocksTaken": take_clocks }),
        },
        source_entry: Entry {
            at: now,
            kind: "merged_into",
            message: comment(format!("merged into incident {}", target.id)),
            data: json!({ "into": target.id, "from": source.state }),
        },
        take_clocks,
    })
}

/// A source entry as the target's timeline shows it after a merge.
pub fn moved_entry(source_id: i64, message: &str) -> String {
    format!("[incident {source_id}] {message}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::incident::IncidentState::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn side(id: i64, state: IncidentState, created: &str) -> MergeSide {
        MergeSide { id, state, created_at: t(created) }
    }

    #[test]
    fn the_merged_incident_keeps_the_clocks_that_began_first() {
        let now = t("2026-11-26T10:30:00Z");
        let reported = side(1, Triggered, "2026-11-26T10:00:00Z");
        let alert_born = side(2, Acknowledged, "2026-11-26T10:20:00Z");
        let kinds = [ClockKind::Respond, ClockKind::Resolve];
        let p = merge(reported, alert_born, &kinds, None, now).unwrap();
        assert_eq!(p.take_clocks, kinds, "the report came first: its promise stands");
        assert_eq!(p.target_entry.message, "incident 1 merged into this one");
        assert_eq!(p.source_entry.message, "merged into incident 2");
        let p = merge(alert_born, reported, &kinds, Some("same outage"), now).unwrap();
        assert!(p.take_clocks.is_empty(), "the target came first: it keeps its own");
        assert_eq!(p.source_entry.message, "merged into incident 1: same outage");
    }

    #[test]
    fn merges_and_links_are_refused_where_they_make_no_sense() {
        let now = t("2026-11-26T10:30:00Z");
        let open = side(1, Triggered, "2026-11-26T10:00:00Z");
        let cases = [
            (open, open, DeskError::MergeIntoItself),
            (side(3, Closed, "2026-11-26T09:00:00Z"), open, DeskError::MergeClosed(3)),
            (open, side(4, Resolved, "2026-11-26T09:00:00Z"), DeskError::MergeIntoNotOpen(4, Resolved)),
        ];
        for (source, target, want) in cases {
            assert_eq!(merge(source, target, &[], None, now), Err(want));
        }
        assert!(
            merge(side(5, Resolved, "2026-11-26T09:00:00Z"), open, &[], None, now).is_ok(),
            "a resolved one merges"
        );
        assert_eq!(may_link_alerts(7, Resolved), Err(DeskError::LinkToClosed(7, Resolved)));
        assert!(may_link_alerts(7, OnHold).is_ok());
    }
}
