//! Pending groups (alerts held until their group qualifies: `min_alerts`,
//! `min_duration`) and incidents waiting to resolve themselves: what their
//! timers decide when they fall due.
use jiff::Timestamp;

use crate::model::incident::{IncidentAction, IncidentState};
use crate::rules::incident::IncidentRule;

/// The comment of a resolution the gateway makes when an incident's
/// alerts have all resolved.
pub const ALL_ALERTS_RESOLVED: &str = "every alert is resolved";

/// One round of the timers, in order. Alerts expire first, so an incident
/// whose last alert expired resolves in the same round; SLA milestones and
/// escalation steps fall due before mutes end, so an alert a window
/// muted until now does not page for the past; ended mutes route their
/// alerts again before pending groups are judged, so those alerts count;
/// auto-resolve comes last, after every alert's state is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickStep {
    ExpireAlerts,
    DueTimers,
    EndMaintenance,
    /// Once after start: mutes whose silence or window ended while the
    /// gateway was down.
    ReleaseEndedMutes,
    EndSilences,
    DuePendingGroups,
    DueAutoResolves,
    /// Action items past their due date: their owners are told, once.
    OverdueActionItems,
}

pub const TICK: [TickStep; 8] = [
    TickStep::ExpireAlerts,
    TickStep::DueTimers,
    TickStep::EndMaintenance,
    TickStep::ReleaseEndedMutes,
    TickStep::EndSilences,
    TickStep::DuePendingGroups,
    TickStep::DueAutoResolves,
    TickStep::OverdueActionItems,
];

/// What a pending group whose timer fell due becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueGroup {
    /// Open its incident, for this alert (its first firing one) first.
    Open { first: i64 },
    /// It does not qualify yet.
    Wait,
    /// Its rule is gone (a reload) or none of its alerts fires: drop it.
    Drop,
}

/// `firing` are the group's firing alerts' row ids, oldest first.
pub fn due_group(rule: Option<&IncidentRule>, first_fired_at: Timestamp, firing: &[i64], now: Timestamp) -> DueGroup {
    match (rule, firing.first()) {
        (Some(rule), Some(&first)) if super::qualifies(rule, first_fired_at, firing.len() as u32, now) => {
            DueGroup::Open { first }
        }
        (Some(_), Some(_)) => DueGroup::Wait,
        _ => DueGroup::Drop,
    }
}

/// A group after one of its alerts left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterLeave {
    /// No alert is left: the group goes.
    Gone,
    /// It dates from its oldest remaining alert, so a transient first
    /// alert cannot make a later one look persistent; due then.
    Redate { first_fired_at: Timestamp, due_at: Option<Timestamp> },
}

/// `oldest` is when its oldest remaining alert was held. A group whose
/// rule is gone (a reload) is due at once, so the next tick clears it.
pub fn after_leave(rule: Option<&IncidentRule>, oldest: Option<Timestamp>) -> AfterLeave {
    match (oldest, rule) {
        (None, _) => AfterLeave::Gone,
        (Some(t), Some(rule)) => AfterLeave::Redate { first_fired_at: t, due_at: super::pending_due(rule, t) },
        (Some(t), None) => AfterLeave::Redate { first_fired_at: t, due_at: Some(t) },
    }
}

/// An incident whose auto-resolve time came: resolve it if it is still
/// open; otherwise only forget the time.
/// An incident with a firing alert (one linked or merged into it since)
/// does not resolve by itself.
pub fn auto_resolve_due(state: IncidentState, firing: u64) -> Option<(IncidentAction, &'static str)> {
    (state.is_open() && firing == 0).then_some((IncidentAction::Resolve, ALL_ALERTS_RESOLVED))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> crate::rules::RuleSet {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "incident_rules:
  - {name: slow, matchers: ['a=\"1\"'], min_duration: 5m}
  - {name: many, matchers: ['a=\"2\"'], min_alerts: 3}
";
        std::fs::write(dir.path().join("r.yaml"), yaml).unwrap();
        crate::rules::RuleSet::load_dir(dir.path()).unwrap()
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_due_group_opens_waits_or_goes() {
        let rs = rules();
        let (slow, many) = (&rs.incident_rules[0], &rs.incident_rules[1]);
        let first = t("2026-11-26T10:00:00Z");
        let cases = [
            (Some(slow), &[4, 9][..], "2026-11-26T10:05:00Z", DueGroup::Open { first: 4 }),
            (Some(slow), &[4][..], "2026-11-26T10:04:59Z", DueGroup::Wait),
            (Some(many), &[4, 5][..], "2026-11-26T11:00:00Z", DueGroup::Wait),
            (Some(many), &[4, 5, 6][..], "2026-11-26T10:00:00Z", DueGroup::Open { first: 4 }),
            (Some(slow), &[][..], "2026-11-26T10:05:00Z", DueGroup::Drop),
            (None, &[4][..], "2026-11-26T10:05:00Z", DueGroup::Drop),
        ];
        for (rule, firing, now, want) in cases {
            assert_eq!(due_group(rule, first, firing, t(now)), want, "{:?} {firing:?} {now}", rule.map(|r| &r.name));
        }
    }

    #[test]
    fn a_group_that_lost_an_alert_dates_from_its_oldest_remaining_one() {
        let rs = rules();
        let oldest = t("2026-11-26T10:02:00Z");
        assert_eq!(after_leave(Some(&rs.incident_rules[0]), None), AfterLeave::Gone);
        assert_eq!(
            after_leave(Some(&rs.incident_rules[0]), Some(oldest)),
            AfterLeave::Redate { first_fired_at: oldest, due_at: Some(t("2026-11-26T10:07:00Z")) }
        );
        assert_eq!(
            after_leave(Some(&rs.incident_rules[1]), Some(oldest)),
            AfterLeave::Redate { first_fired_at: oldest, due_at: None },
            "a count-only rule has no timer"
        );
        assert_eq!(
            after_leave(None, Some(oldest)),
            AfterLeave::Redate { first_fired_at: oldest, due_at: Some(oldest) }
        );
    }

    #[test]
    fn only_an_open_incident_resolves_itself() {
        assert_eq!(
            auto_resolve_due(IncidentState::Acknowledged, 0),
            Some((IncidentAction::Resolve, ALL_ALERTS_RESOLVED))
        );
        assert_eq!(auto_resolve_due(IncidentState::Acknowledged, 1), None, "an alert fires in it again");
        assert_eq!(auto_resolve_due(IncidentState::Resolved, 0), None);
        assert_eq!(auto_resolve_due(IncidentState::Closed, 0), None);
    }
}
