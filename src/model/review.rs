//! Post-incident reviews: what happened, why, and what the team learnt,
//! with a timeline drafted from the incident's own. A review moves
//! `draft -> in_review -> published` (and back to draft from review); a
//! published review is the record and changes no more.
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::incident::{Incident, TimelineEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    Draft,
    InReview,
    Published,
}

impl ReviewState {
    pub const ALL: [ReviewState; 3] = [ReviewState::Draft, ReviewState::InReview, ReviewState::Published];

    pub fn as_str(self) -> &'static str {
        match self {
            ReviewState::Draft => "draft",
            ReviewState::InReview => "in_review",
            ReviewState::Published => "published",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for ReviewState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    #[error("review is {from}: it cannot move to {to} (draft -> in_review -> published, or back to draft from review)")]
    Transition { from: ReviewState, to: ReviewState },
    #[error("the review is published: it changes no more")]
    Published,
    #[error("incident {id} is {state}: a review is written once it is resolved")]
    NotResolved { id: i64, state: crate::model::incident::IncidentState },
    #[error("summary: a review is published with a summary")]
    NoSummary,
}

/// The one transition function of a review's life.
pub fn transition(from: ReviewState, to: ReviewState) -> Result<ReviewState, ReviewError> {
    use ReviewState as S;
    match (from, to) {
        (S::Draft, S::InReview) | (S::InReview, S::Published) | (S::InReview, S::Draft) => Ok(to),
        _ if from == to => Ok(to),
        _ => Err(ReviewError::Transition { from, to }),
    }
}

/// What went well, what went wrong, where the team got lucky.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Lessons {
    #[serde(default)]
    pub went_well: Vec<String>,
    #[serde(default)]
    pub went_wrong: Vec<String>,
    #[serde(default)]
    pub got_lucky: Vec<String>,
}

/// One line of a review's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReviewEntry {
    pub at: Timestamp,
    pub text: String,
    /// The incident timeline's entry kind it was drafted from; absent for
    /// lines people added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// The written parts of a review.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReviewText {
    pub summary: Option<String>,
    pub impact: Option<String>,
    pub root_cause: Option<String>,
    pub trigger: Option<String>,
    pub detection: Option<String>,
    pub resolution: Option<String>,
    pub lessons: Lessons,
    pub timeline: Vec<ReviewEntry>,
}

/// A review as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    pub incident_id: i64,
    pub state: ReviewState,
    #[serde(flatten)]
    pub text: ReviewText,
    pub created_by: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub published_at: Option<Timestamp>,
}

/// A person's edit: fields given replace the review's; `state` moves it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReviewEdit {
    pub summary: Option<String>,
    pub impact: Option<String>,
    pub root_cause: Option<String>,
    pub trigger: Option<String>,
    pub detection: Option<String>,
    pub resolution: Option<String>,
    pub lessons: Option<Lessons>,
    pub timeline: Option<Vec<ReviewEntry>>,
    #[schema(value_type = Option<ReviewState>)]
    pub state: Option<ReviewState>,
    #[schema(max_length = 200)]
    pub actor: Option<String>,
}

/// The kinds of incident timeline entries a draft leaves out: bookkeeping
/// a reader of the review does not need.
const NOT_IN_DRAFT: [&str; 1] = ["sla_clock"];

/// The review a resolved incident starts with: its timeline drafted from
/// the incident's own, in order.
pub fn draft(
    incident: &Incident,
    timeline: &[TimelineEvent],
    actor: &str,
    now: Timestamp,
) -> Result<Review, ReviewError> {
    use crate::model::incident::IncidentState::{Closed, Resolved};
    if !matches!(incident.state, Resolved | Closed) {
        return Err(ReviewError::NotResolved { id: incident.id, state: incident.state });
    }
    let mut entries: Vec<&TimelineEvent> =
        timeline.iter().filter(|e| !NOT_IN_DRAFT.contains(&e.kind.as_str())).collect();
    entries.sort_by_key(|e| e.at);
    let timeline = entries
        .into_iter()
        .map(|e| ReviewEntry { at: e.at, text: format!("{} ({})", e.message, e.actor), kind: Some(e.kind.clone()) })
        .collect();
    Ok(Review {
        incident_id: incident.id,
        state: ReviewState::Draft,
        text: ReviewText { timeline, ..Default::default() },
        created_by: actor.to_owned(),
        created_at: now,
        updated_at: now,
        published_at: None,
    })
}

/// `review` after `edit` at `now`.
pub fn edit(mut review: Review, edit: ReviewEdit, now: Timestamp) -> Result<Review, ReviewError> {
    if review.state == ReviewState::Published {
        return Err(ReviewError::Published);
    }
    let t = &mut review.text;
    let set = |field: &mut Option<String>, v: Option<String>| {
        if let Some(v) = v {
            *field = Some(v).filter(|v| !v.trim().is_empty());
        }
    };
    set(&mut t.summary, edit.summary);
    set(&mut t.impact, edit.impact);
    set(&mut t.root_cause, edit.root_cause);
    set(&mut t.trigger, edit.trigger);
    set(&mut t.detection, edit.detection);
    set(&mut t.resolution, edit.resolution);
    if let Some(l) = edit.lessons {
        t.lessons = l;
    }
    if let Some(mut tl) = edit.timeline {
        tl.sort_by_key(|e| e.at);
        t.timeline = tl;
    }
    if let Some(to) = edit.state {
        review.state = transition(review.state, to)?;
        if review.state == ReviewState::Published {
            if review.text.summary.is_none() {
                return Err(ReviewError::NoSummary);
            }
            review.published_at = Some(now);
        }
    }
    review.updated_at = now;
    Ok(review)
}

/// The review as Markdown, in the Google SRE book's postmortem order.
pub fn markdown(incident: &Incident, r: &Review) -> String {
    let mut out = format!("# Post-incident review: {}\n\n", incident.title);
    out.push_str(&format!(
        "Incident {} · priority {} · service {} · {} · review {}{}\n\n",
        incident.id,
        incident.priority,
        incident.service.as_deref().unwrap_or("—"),
        incident.created_at,
        r.state,
        r.published_at.map(|t| format!(" {t}")).unwrap_or_default()
    ));
    let t = &r.text;
    for (title, body) in [
        ("Summary", &t.summary),
        ("Impact", &t.impact),
        ("Root cause", &t.root_cause),
        ("Trigger", &t.trigger),
        ("Detection", &t.detection),
        ("Resolution", &t.resolution),
    ] {
        out.push_str(&format!("## {title}\n\n{}\n\n", body.as_deref().unwrap_or("_(not written)_")));
    }
    out.push_str("## Lessons learned\n\n");
    for (title, items) in [
        ("What went well", &t.lessons.went_well),
        ("What went wrong", &t.lessons.went_wrong),
        ("Where we got lucky", &t.lessons.got_lucky),
    ] {
        out.push_str(&format!("### {title}\n\n"));
        if items.is_empty() {
            out.push_str("_(none)_\n\n");
        } else {
            items.iter().for_each(|i| out.push_str(&format!("- {}\n", one_line(i))));
            out.push('\n');
        }
    }
    out.push_str("## Timeline\n\n| Time (UTC) | What happened |\n|---|---|\n");
    for e in &t.timeline {
        out.push_str(&format!("| {} | {} |\n", e.at, one_line(&e.text).replace('|', "\\|")));
    }
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;
