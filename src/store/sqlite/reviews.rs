//! Post-incident reviews in the store: one row per incident, its written
//! parts as one JSON document. What a review may become is decided in
//! `model::review`; this loads, applies and saves.
use super::sql::{Connection, OptionalExtension, params};
use jiff::Timestamp;

use super::state::{WriterState, entry};
use super::{StoreError, ms, ts};
use crate::engine::timeline;
use crate::model::review::{self, Review, ReviewEdit, ReviewState, ReviewText};

fn invalid(e: review::ReviewError) -> StoreError {
    match e {
        review::ReviewError::NoSummary => StoreError::Invalid(e.to_string()),
        _ => StoreError::Conflict(e.to_string()),
    }
}

pub(super) fn get(c: &Connection, incident_id: i64) -> Result<Option<Review>, StoreError> {
    let row: Option<(String, String, String, i64, i64, Option<i64>)> = c
        .prepare_cached(
            "SELECT state, text, created_by, created_at, updated_at, published_at FROM reviews WHERE incident_id = ?1",
        )?
        .query_row([incident_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        .optional()?;
    let Some((state, text, created_by, created_at, updated_at, published_at)) = row else { return Ok(None) };
    Ok(Some(Review {
        incident_id,
        state: ReviewState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("review state {state:?}")))?,
        text: serde_json::from_str::<ReviewText>(&text).map_err(|e| StoreError::Corrupt(format!("review: {e}")))?,
        created_by,
        created_at: ts(created_at)?,
        updated_at: ts(updated_at)?,
        published_at: published_at.map(ts).transpose()?,
    }))
}

fn save(tx: &Connection, r: &Review) -> Result<(), StoreError> {
    let text = serde_json::to_string(&r.text).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    tx.prepare_cached(
        "INSERT INTO reviews (incident_id, state, text, created_by, created_at, updated_at, published_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (incident_id) DO UPDATE SET state = ?2, text = ?3, updated_at = ?6, published_at = ?7",
    )?
    .execute(params![
        r.incident_id,
        r.state.as_str(),
        text,
        r.created_by,
        ms(r.created_at),
        ms(r.updated_at),
        r.published_at.map(ms)
    ])?;
    Ok(())
}

impl WriterState {
    /// Start the review of a resolved incident, its timeline drafted from the incident's.
    pub(super) fn create_review(
        &mut self,
        tx: &Connection,
        incident_id: i64,
        actor: &str,
        now: Timestamp,
    ) -> Result<Review, StoreError> {
        let incident = super::rows::incident(tx, incident_id)?
            .ok_or_else(|| StoreError::NotFound(format!("no incident {incident_id}")))?;
        if get(tx, incident_id)?.is_some() {
            return Err(StoreError::Conflict(format!("incident {incident_id} has its review; PATCH it")));
        }
        let timeline = super::rows::timeline(tx, incident_id)?;
        let r = review::draft(&incident, &timeline, actor, now).map_err(invalid)?;
        save(tx, &r)?;
        entry(tx, incident_id, actor, timeline::review_started(now))?;
        Ok(r)
    }

    pub(super) fn edit_review(
        &mut self,
        tx: &Connection,
        incident_id: i64,
        edit: &ReviewEdit,
        actor: &str,
        now: Timestamp,
    ) -> Result<Review, StoreError> {
        let before = get(tx, incident_id)?
            .ok_or_else(|| StoreError::NotFound(format!("incident {incident_id} has no review; POST one")))?;
        let was = before.state;
        let r = review::edit(before, edit.clone(), now).map_err(invalid)?;
        save(tx, &r)?;
        if r.state != was {
            entry(tx, incident_id, actor, timeline::review_moved(was, r.state, now))?;
        }
        Ok(r)
    }
}

impl WriterState {
    /// The problem behind a reviewed incident: link it to `problem` (which
    /// takes the review's root cause if it has none) or open one from the
    /// review; `workaround` goes to it. Returns the problem's id.
    pub(super) fn review_problem(
        &mut self,
        tx: &Connection,
        incident_id: i64,
        problem: Option<i64>,
        workaround: Option<String>,
        actor: &str,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        let review = get(tx, incident_id)?
            .ok_or_else(|| StoreError::NotFound(format!("incident {incident_id} has no review; POST one")))?;
        let incident = super::rows::incident(tx, incident_id)?
            .ok_or_else(|| StoreError::NotFound(format!("no incident {incident_id}")))?;
        match problem {
            Some(pid) => {
                let existing =
                    super::problems::get(tx, pid)?.ok_or_else(|| StoreError::NotFound(format!("no problem {pid}")))?;
                let edit = crate::engine::problems::from_review(&review, &incident.title, Some(&existing), workaround);
                self.link_incidents(tx, pid, &[incident_id], actor, now)?;
                self.update_problem(tx, pid, &edit, actor, now)?;
                Ok(pid)
            }
            None => {
                let edit = crate::engine::problems::from_review(&review, &incident.title, None, workaround);
                let new = crate::store::NewProblem {
                    title: edit.title.unwrap_or_else(|| incident.title.clone()),
                    key: None,
                    root_cause: edit.root_cause,
                    workaround: edit.workaround,
                    incidents: vec![incident_id],
                };
                self.create_problem(tx, &new, actor, now)
            }
        }
    }
}
