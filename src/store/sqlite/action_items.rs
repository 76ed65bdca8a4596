//! Action items in the store. What they may become, and when one is
//! overdue, is decided in `model::action_item`; this loads and saves.
use super::sql::{Connection, OptionalExtension, Row, params};
use jiff::Timestamp;

use super::state::{WriterState, entry};
use super::{StoreError, ms, ts};
use crate::engine::timeline;
use crate::model::action_item::{self, ActionItem, ActionItemEdit, ActionItemState, ActionOf, NewActionItem};

const COLUMNS: &str = "a.id, a.title, a.owner, a.due, a.state, a.incident_id, a.problem_id, i.service, a.created_by,
    a.created_at, a.updated_at, a.settled_at, a.overdue_notified_at";
const FROM: &str = "action_items a LEFT JOIN incidents i ON i.id = a.incident_id";

fn from_row(r: &Row<'_>) -> super::sql::Result<Result<ActionItem, StoreError>> {
    let (id, title, owner, due, state): (i64, String, String, i64, String) =
        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
    let (incident, problem, service, created_by) = (r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?);
    let (created, updated, settled, told): (i64, i64, Option<i64>, Option<i64>) =
        (r.get(9)?, r.get(10)?, r.get(11)?, r.get(12)?);
    Ok((|| {
        Ok(ActionItem {
            id,
            title,
            owner,
            due: ts(due)?,
            state: ActionItemState::parse(&state)
                .ok_or_else(|| StoreError::Corrupt(format!("action item state {state:?}")))?,
            incident,
            problem,
            service,
            created_by,
            created_at: ts(created)?,
            updated_at: ts(updated)?,
            settled_at: settled.map(ts).transpose()?,
            overdue_notified_at: told.map(ts).transpose()?,
        })
    })())
}

pub(super) fn get(c: &Connection, id: i64) -> Result<Option<ActionItem>, StoreError> {
    c.prepare_cached(&format!("SELECT {COLUMNS} FROM {FROM} WHERE a.id = ?1"))?
        .query_row([id], from_row)
        .optional()?
        .transpose()
}

/// Filters for listing action items.
#[derive(Debug, Clone, Default)]
pub struct ActionItemQuery {
    pub owner: Option<String>,
    pub state: Option<ActionItemState>,
    /// Only those open past their due date at this instant.
    pub overdue_at: Option<Timestamp>,
    pub incident: Option<i64>,
    pub limit: usize,
}

pub(super) fn list(c: &Connection, q: &ActionItemQuery) -> Result<Vec<ActionItem>, StoreError> {
    let overdue = q.overdue_at.map(ms);
    let rows: Vec<Result<ActionItem, StoreError>> = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM {FROM} WHERE (CAST(?1 AS TEXT) IS NULL OR a.owner = ?1) AND (CAST(?2 AS TEXT) IS NULL OR a.state = ?2)
               AND (CAST(?3 AS BIGINT) IS NULL OR (a.state = '{}' AND a.due <= ?3)) AND (CAST(?4 AS BIGINT) IS NULL OR a.incident_id = ?4)
             ORDER BY a.due, a.id LIMIT ?5",
            ActionItemState::Open.as_str()
        ))?
        .query_map(
            params![q.owner, q.state.map(ActionItemState::as_str), overdue, q.incident, q.limit as i64],
            from_row,
        )?
        .collect::<Result<_, _>>()?;
    rows.into_iter().collect()
}

fn save(tx: &Connection, a: &ActionItem) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE action_items SET title = ?2, owner = ?3, due = ?4, state = ?5, updated_at = ?6, settled_at = ?7,
            overdue_notified_at = ?8 WHERE id = ?1",
    )?
    .execute(params![
        a.id,
        a.title,
        a.owner,
        ms(a.due),
        a.state.as_str(),
        ms(a.updated_at),
        a.settled_at.map(ms),
        a.overdue_notified_at.map(ms)
    ])?;
    Ok(())
}

impl WriterState {
    pub(super) fn create_action_item(
        &mut self,
        tx: &Connection,
        new: &NewActionItem,
        actor: &str,
        now: Timestamp,
    ) -> Result<ActionItem, StoreError> {
        let (incident, problem) = match new.of {
            ActionOf::Incident(id) => {
                super::state::current_state(tx, id)?;
                (Some(id), None)
            }
            ActionOf::Problem(id) => {
                super::problems::get(tx, id)?.ok_or_else(|| StoreError::NotFound(format!("no problem {id}")))?;
                (None, Some(id))
            }
        };
        tx.prepare_cached(
            "INSERT INTO action_items (title, owner, due, state, incident_id, problem_id, created_by, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
        )?
        .execute(params![
            new.title,
            new.owner,
            ms(new.due),
            ActionItemState::Open.as_str(),
            incident,
            problem,
            actor,
            ms(now)
        ])?;
        get(tx, tx.last_insert_rowid()?)?.ok_or_else(|| StoreError::Corrupt("an action item just written".into()))
    }

    pub(super) fn edit_action_item(
        &mut self,
        tx: &Connection,
        id: i64,
        edit: &ActionItemEdit,
        due: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<ActionItem, StoreError> {
        let before = get(tx, id)?.ok_or_else(|| StoreError::NotFound(format!("no action item {id}")))?;
        let after = action_item::edit(before, edit, due, now);
        save(tx, &after)?;
        Ok(after)
    }

    /// Tell the owners of action items that passed their due date, once
    /// each: through the notifiers of the incident's rule (or the problem's
    /// incidents' rules).
    pub(super) fn overdue_action_items(&mut self, tx: &Connection, now: Timestamp) -> Result<(), StoreError> {
        // Narrowed to the news by SQL (a partial index), decided by the model.
        let news: Vec<Result<ActionItem, StoreError>> = tx
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM {FROM} WHERE a.state = '{}' AND a.overdue_notified_at IS NULL AND a.due <= ?1
                 ORDER BY a.due LIMIT 1000",
                ActionItemState::Open.as_str()
            ))?
            .query_map([ms(now)], from_row)?
            .collect::<Result<_, _>>()?;
        for mut item in news.into_iter().collect::<Result<Vec<_>, _>>()?.into_iter().filter(|i| i.overdue_news(now)) {
            let e = timeline::action_item_overdue(item.id, &item.title, &item.owner, item.due, now);
            let data = serde_json::json!({ "actionItem": item, "message": e.message });
            if let Some(incident) = item.incident {
                let entry_id = entry(tx, incident, super::state::SYSTEM, e)?;
                self.notify_incident(tx, incident, "action_item.overdue", entry_id, data, None, now)?;
            } else if let Some(problem) = item.problem {
                self.notify_problem_entry(tx, problem, "action_item.overdue", e, now)?;
            }
            item.overdue_notified_at = Some(now);
            save(tx, &item)?;
        }
        Ok(())
    }
}
