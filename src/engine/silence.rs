//! Silences: time-bounded suppression by label matchers, as in Alertmanager.
use jiff::Timestamp;
use serde::Serialize;

use crate::model::LabelSet;
use crate::rules::matcher::Matcher;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    pub id: i64,
    #[serde(serialize_with = "matcher_strings")]
    pub matchers: Vec<Matcher>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub created_by: String,
    pub comment: String,
    pub created_at: Timestamp,
}

fn matcher_strings<S: serde::Serializer>(ms: &[Matcher], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(ms.iter().map(|m| m.to_string()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

impl Silence {
    pub fn state(&self, now: Timestamp) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now < self.ends_at {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    pub fn mutes(&self, labels: &LabelSet, now: Timestamp) -> bool {
        self.state(now) == SilenceState::Active && self.matchers.iter().all(|m| m.matches(labels))
    }
}

/// The first active silence that mutes these labels.
pub fn silenced_by<'s>(silences: &'s [Silence], labels: &LabelSet, now: Timestamp) -> Option<&'s Silence> {
    silences.iter().find(|s| s.mutes(labels, now))
}
