//! Action items: what a review or a problem says must be done, with an
//! owner and a due date, tracked to done.
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionItemState {
    Open,
    Done,
    WontDo,
}

impl ActionItemState {
    pub const ALL: [ActionItemState; 3] = [ActionItemState::Open, ActionItemState::Done, ActionItemState::WontDo];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionItemState::Open => "open",
            ActionItemState::Done => "done",
            ActionItemState::WontDo => "wont_do",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for ActionItemState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an action item belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ActionOf {
    Incident(i64),
    Problem(i64),
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionItem {
    pub id: i64,
    pub title: String,
    pub owner: String,
    pub due: Timestamp,
    pub state: ActionItemState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<i64>,
    /// The service of its incident, for the metrics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub created_by: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// When it was done or dropped.
    pub settled_at: Option<Timestamp>,
    /// When its owner was told it is overdue (once).
    pub overdue_notified_at: Option<Timestamp>,
}

impl ActionItem {
    /// Open past its due date.
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        self.state == ActionItemState::Open && self.due <= now
    }

    /// Overdue and nobody told yet: its `action_item.overdue` is due.
    pub fn overdue_news(&self, now: Timestamp) -> bool {
        self.is_overdue(now) && self.overdue_notified_at.is_none()
    }
}

/// An action item as submitted.
#[derive(Debug, Clone, PartialEq)]
pub struct NewActionItem {
    pub title: String,
    pub owner: String,
    pub due: Timestamp,
    pub of: ActionOf,
}

/// A person's edit: fields given replace the item's.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionItemEdit {
    pub title: Option<String>,
    pub owner: Option<String>,
    /// RFC 3339, or a date (`YYYY-MM-DD`, the end of that day in UTC).
    pub due: Option<String>,
    #[schema(value_type = Option<ActionItemState>)]
    pub state: Option<ActionItemState>,
    #[schema(max_length = 200)]
    pub actor: Option<String>,
}

/// A due date as people write it: an instant, or a date meaning the end of
/// that day (UTC).
pub fn parse_due(s: &str) -> Result<Timestamp, String> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    let date: jiff::civil::Date =
        s.parse().map_err(|_| format!("expected an RFC 3339 time or a date (YYYY-MM-DD), got {s:?}"))?;
    date.at(23, 59, 59, 0).to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp()).map_err(|e| format!("{s:?}: {e}"))
}

/// `item` after `edit` at `now`; reopening a settled item clears when it
/// settled and when its owner was told it is overdue.
pub fn edit(mut item: ActionItem, edit: &ActionItemEdit, due: Option<Timestamp>, now: Timestamp) -> ActionItem {
    if let Some(t) = edit.title.as_ref().filter(|t| !t.trim().is_empty()) {
        item.title = t.trim().to_owned();
    }
    if let Some(o) = edit.owner.as_ref().filter(|o| !o.trim().is_empty()) {
        item.owner = o.trim().to_owned();
    }
    if let Some(d) = due {
        if d != item.due {
            item.overdue_notified_at = None;
        }
        item.due = d;
    }
    if let Some(state) = edit.state.filter(|s| *s != item.state) {
        item.state = state;
        item.settled_at = (state != ActionItemState::Open).then_some(now);
        if state == ActionItemState::Open {
            item.overdue_notified_at = None;
        }
    }
    item.updated_at = now;
    item
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn item() -> ActionItem {
        ActionItem {
            id: 1,
            title: "Alert on WAL size".into(),
            owner: "alice".into(),
            due: t("2026-12-01T23:59:59Z"),
            state: ActionItemState::Open,
            incident: Some(7),
            problem: None,
            service: Some("db".into()),
            created_by: "bob".into(),
            created_at: t("2026-11-26T10:00:00Z"),
            updated_at: t("2026-11-26T10:00:00Z"),
            settled_at: None,
            overdue_notified_at: None,
        }
    }

    #[test]
    fn a_date_is_due_at_the_end_of_that_day() {
        assert_eq!(parse_due("2026-12-01"), Ok(t("2026-12-01T23:59:59Z")));
        assert_eq!(parse_due("2026-12-01T12:00:00Z"), Ok(t("2026-12-01T12:00:00Z")));
        assert!(parse_due("next week").is_err());
    }

    #[test]
    fn an_open_item_past_its_date_is_overdue_and_news_once() {
        let i = item();
        assert!(!i.is_overdue(t("2026-12-01T23:59:58Z")));
        assert!(i.overdue_news(t("2026-12-01T23:59:59Z")));
        let told = ActionItem { overdue_notified_at: Some(t("2026-12-02T00:00:00Z")), ..i.clone() };
        assert!(told.is_overdue(t("2026-12-03T00:00:00Z")) && !told.overdue_news(t("2026-12-03T00:00:00Z")));
        let done = ActionItem { state: ActionItemState::Done, ..i };
        assert!(!done.is_overdue(t("2026-12-03T00:00:00Z")));
    }

    #[test]
    fn done_settles_and_reopening_or_a_new_date_makes_it_news_again() {
        let now = t("2026-12-05T00:00:00Z");
        let told = ActionItem { overdue_notified_at: Some(t("2026-12-02T00:00:00Z")), ..item() };
        let done =
            edit(told.clone(), &ActionItemEdit { state: Some(ActionItemState::Done), ..Default::default() }, None, now);
        assert_eq!(done.settled_at, Some(now));
        let reopened =
            edit(done, &ActionItemEdit { state: Some(ActionItemState::Open), ..Default::default() }, None, now);
        assert_eq!((reopened.settled_at, reopened.overdue_notified_at), (None, None));
        let moved = edit(told, &ActionItemEdit::default(), Some(t("2026-12-10T00:00:00Z")), now);
        assert_eq!(moved.overdue_notified_at, None);
    }
}
