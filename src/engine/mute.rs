//! When muted alerts route again: silences and maintenance windows that
//! ended, and which window a service is in.
use jiff::Timestamp;

use crate::engine::silence::{Silence, SilenceState};
use crate::model::MuteReason;
use crate::model::change::Change;

/// The maintenance window (a suppressing change's id) `service` is in at `now`.
pub fn maintenance_window(windows: &[Change], service: &str, now: Timestamp) -> Option<i64> {
    windows.iter().find(|c| c.service.as_deref() == Some(service) && c.suppresses(now)).map(|c| c.id)
}

/// The windows over by `now`: what they muted routes again.
pub fn ended_windows(windows: &[Change], now: Timestamp) -> Vec<i64> {
    windows.iter().filter(|c| c.ends_at.is_none_or(|e| e <= now)).map(|c| c.id).collect()
}

/// The silences over by `now`: what they muted routes again.
pub fn ended_silences(silences: &[Silence], now: Timestamp) -> Vec<i64> {
    silences.iter().filter(|s| s.state(now) == SilenceState::Expired).map(|s| s.id).collect()
}

/// Whether what `reason` muted stays muted at `now`. Inhibition is
/// decided alert by alert, when its source resolves.
pub fn still_muted(reason: MuteReason, silences: &[Silence], windows: &[Change], now: Timestamp) -> bool {
    match reason {
        MuteReason::Silence(id) => silences.iter().any(|s| s.id == id && s.state(now) != SilenceState::Expired),
        MuteReason::Maintenance(id) => windows.iter().any(|c| c.id == id && c.suppresses(now)),
        MuteReason::Inhibited => true,
    }
}

/// Whether a firing alert is routed (muted, grouped, opened) now. A
/// sender's re-send of an alert already in open incidents is not: its
/// routing was decided when it joined (Prometheus re-sends every firing
/// alert every minute), and a silence made since mutes its notifications
/// through the incident, not by taking it out.
pub fn routes(newly_fired: bool, in_open_incidents: bool) -> bool {
    newly_fired || !in_open_incidents
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn window(id: i64, service: &str, from: &str, to: &str) -> Change {
        Change {
            id,
            service: Some(service.into()),
            summary: "deploy".into(),
            starts_at: t(from),
            ends_at: Some(t(to)),
            suppress: true,
            link: None,
            labels: Default::default(),
            source: "api".into(),
            created_by: "ops".into(),
            created_at: t(from),
        }
    }

    fn silence(id: i64, from: &str, to: &str) -> Silence {
        Silence {
            id,
            matchers: Vec::new(),
            starts_at: t(from),
            ends_at: t(to),
            created_by: "ops".into(),
            comment: String::new(),
            created_at: t(from),
        }
    }

    #[test]
    fn a_service_is_in_maintenance_from_start_to_end_only() {
        let w = [window(3, "pay", "2026-11-26T10:00:00Z", "2026-11-26T11:00:00Z")];
        assert_eq!(maintenance_window(&w, "pay", t("2026-11-26T09:59:59Z")), None);
        assert_eq!(maintenance_window(&w, "pay", t("2026-11-26T10:00:00Z")), Some(3));
        assert_eq!(maintenance_window(&w, "web", t("2026-11-26T10:30:00Z")), None);
        assert_eq!(maintenance_window(&w, "pay", t("2026-11-26T11:00:00Z")), None);
        assert!(ended_windows(&w, t("2026-11-26T10:59:59Z")).is_empty());
        assert_eq!(ended_windows(&w, t("2026-11-26T11:00:00Z")), [3]);
    }

    #[test]
    fn what_a_silence_muted_stays_muted_until_it_ends() {
        let s = [silence(5, "2026-11-26T10:00:00Z", "2026-11-26T11:00:00Z")];
        let (before, at_end) = (t("2026-11-26T10:59:59Z"), t("2026-11-26T11:00:00Z"));
        assert!(still_muted(MuteReason::Silence(5), &s, &[], before));
        assert!(!still_muted(MuteReason::Silence(5), &s, &[], at_end));
        assert!(!still_muted(MuteReason::Silence(6), &s, &[], before), "a silence gone is over");
        assert!(still_muted(MuteReason::Inhibited, &[], &[], at_end));
        assert!(ended_silences(&s, before).is_empty());
        assert_eq!(ended_silences(&s, at_end), [5]);
    }

    #[test]
    fn re_sends_of_alerts_in_open_incidents_are_not_routed_again() {
        assert!(!routes(false, true));
        assert!(routes(true, true), "a re-fired alert is news");
        assert!(routes(false, false), "an alert in no open incident is routed");
    }
}
