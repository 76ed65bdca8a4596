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

impl Change {
    /// When it stops counting as a suspected cause.
    pub fn suspect_until(&self, window: crate::model::Duration) -> Timestamp {
        let end = self.ends_at.unwrap_or(self.starts_at);
        end.checked_add(window.signed()).unwrap_or(Timestamp::MAX)
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
