//! Changes and deploys: recorded so that incidents starting during or soon
//! after a change of their service list it as a suspected cause; a change
//! with `suppress` is a maintenance window for its service.
use jiff::Timestamp;
use serde::Serialize;

use crate::model::LabelSet;

/// A recorded change or deploy.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub id: i64,
    pub service: Option<String>,
    pub summary: String,
    pub starts_at: Timestamp,
    /// `None` for a point in time (a deploy).
    pub ends_at: Option<Timestamp>,
    pub link: Option<String>,
    pub labels: LabelSet,
    /// `api` or `pagerduty`.
    pub source: String,
    pub suppress: bool,
    pub created_by: String,
    pub created_at: Timestamp,
}

/// Most changes an incident lists as suspected causes: the latest ones of
/// its service (a deploy pipeline that records a change per commit would
/// otherwise bury the responder).
pub const MOST_SUSPECTS: usize = 20;

/// Most incidents a change recorded after the fact is linked to: the
/// latest ones of its window.
pub const MOST_SUSPECTED_OF: usize = 200;

impl Change {
    /// A maintenance window in force or still to come at `now` (what the
    /// writer keeps in memory).
    pub fn is_upcoming_window(&self, now: Timestamp) -> bool {
        self.suppress && self.ends_at.is_some_and(|e| e > now)
    }

    /// When it stops counting as a suspected cause.
    pub fn suspect_until(&self, window: crate::model::Duration) -> Timestamp {
        let end = self.ends_at.unwrap_or(self.starts_at);
        end.checked_add(window.signed()).unwrap_or(Timestamp::MAX)
    }

    /// Whether an incident of its service that opened at `opened_at` may
    /// follow from it: opened once it had begun, and no later than `window`
    /// after it ended.
    pub fn may_have_caused(&self, opened_at: Timestamp, window: crate::model::Duration) -> bool {
        self.starts_at <= opened_at && opened_at <= self.suspect_until(window)
    }

    /// Whether it mutes alerts of its service at `now`.
    pub fn suppresses(&self, now: Timestamp) -> bool {
        self.suppress && self.starts_at <= now && self.ends_at.is_some_and(|e| now < e)
    }
}

/// A change as submitted, before it has an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChange {
    pub service: Option<String>,
    pub summary: String,
    pub starts_at: Timestamp,
    pub ends_at: Option<Timestamp>,
    pub link: Option<String>,
    pub labels: LabelSet,
    pub source: String,
    pub suppress: bool,
    pub created_by: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        format!("2026-11-24T{s}Z").parse().unwrap()
    }

    fn change(starts: &str, ends: Option<&str>) -> Change {
        Change {
            id: 1,
            service: Some("payments".into()),
            summary: "deploy".into(),
            starts_at: t(starts),
            ends_at: ends.map(t),
            link: None,
            labels: LabelSet::new(),
            source: "api".into(),
            suppress: false,
            created_by: "ci".into(),
            created_at: t("23:00:00"),
        }
    }

    #[test]
    fn an_incident_is_suspected_to_follow_from_a_change_in_its_window() {
        let window: crate::model::Duration = "30m".parse().unwrap();
        let deploy = change("10:00:00", None);
        let migration = change("10:00:00", Some("11:00:00"));
        for (c, opened, want) in [
            (&deploy, "09:59:59", false),
            (&deploy, "10:00:00", true),
            (&deploy, "10:30:00", true),
            (&deploy, "10:30:01", false),
            (&migration, "10:45:00", true),
            (&migration, "11:30:00", true),
            (&migration, "11:30:01", false),
        ] {
            assert_eq!(c.may_have_caused(t(opened), window), want, "{:?} opened {opened}", c.ends_at);
        }
        // Recorded long after (created_at 23:00): the window is the change's, not the record's.
        assert!(deploy.may_have_caused(t("10:10:00"), window));
    }
}
