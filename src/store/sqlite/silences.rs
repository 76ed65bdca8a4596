//! Silences in the store: create, change, expire, and the reads the
//! Alertmanager API needs. One table serves `/api/v1/silences` and
//! Alertmanager's `/api/v2/silences` alike.
use super::sql::{Connection, params};
use jiff::Timestamp;

use super::state::WriterState;
use super::{StoreError, ms};
use crate::engine::silence::{Silence, SilenceSpec, SilenceState, SilenceUpdate, plan_update};

pub(super) fn insert(
    tx: &Connection,
    writer_state: &mut WriterState,
    s: &SilenceSpec,
    now: Timestamp,
) -> Result<Silence, StoreError> {
    let texts: Vec<String> = s.matchers.iter().map(|m| m.to_string()).collect();
    tx.prepare_cached(
        "INSERT INTO silences (matchers, starts_at, ends_at, created_by, comment, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        serde_json::to_string(&texts).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        ms(s.starts_at),
        ms(s.ends_at),
        s.created_by,
        s.comment,
        ms(now)
    ])?;
    let silence = Silence {
        id: tx.last_insert_rowid()?,
        matchers: s.matchers.clone(),
        starts_at: s.starts_at,
        ends_at: s.ends_at,
        created_by: s.created_by.clone(),
        comment: s.comment.clone(),
        created_at: now,
    };
    writer_state.silences.push(silence.clone());
    tracing::info!(silence = silence.id, created_by = %s.created_by, "silence created");
    Ok(silence)
}

fn silence(tx: &Connection, id: i64) -> Result<Silence, StoreError> {
    super::reader::silences_where(tx, "id = ?1", id)?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::NotFound(format!("no silence {id}")))
}

pub(super) fn expire(
    tx: &Connection,
    writer_state: &mut WriterState,
    id: i64,
    now: Timestamp,
) -> Result<(), StoreError> {
    let silence = silence(tx, id)?;
    if let Some((starts_at, ends_at)) = crate::engine::silence::expire(&silence, now) {
        tx.prepare_cached("UPDATE silences SET starts_at = ?2, ends_at = ?3 WHERE id = ?1")?.execute(params![
            id,
            ms(starts_at),
            ms(ends_at)
        ])?;
    }
    // The alerts it muted are routed again at once, not at their
    // sender's next re-send (hours away for an Alertmanager group).
    writer_state.silences.retain(|s| s.id != id);
    writer_state.recheck_muted(tx, crate::model::MuteReason::Silence(id), now)?;
    Ok(())
}

pub(super) fn update(
    tx: &Connection,
    writer_state: &mut WriterState,
    id: i64,
    spec: &SilenceSpec,
    now: Timestamp,
) -> Result<Silence, StoreError> {
    let old = silence(tx, id)?;
    match plan_update(&old, &spec.matchers, spec.starts_at, spec.ends_at, now) {
        SilenceUpdate::InPlace => {
            tx.prepare_cached(
                "UPDATE silences SET starts_at = ?2, ends_at = ?3, created_by = ?4, comment = ?5 WHERE id = ?1",
            )?
            .execute(params![id, ms(spec.starts_at), ms(spec.ends_at), spec.created_by, spec.comment])?;
            let silence = Silence {
                starts_at: spec.starts_at,
                ends_at: spec.ends_at,
                created_by: spec.created_by.clone(),
                comment: spec.comment.clone(),
                ..old
            };
            writer_state.silences.retain(|s| s.id != id);
            if silence.state(now) == SilenceState::Expired {
                // Changed to end now: what it muted is routed again.
                writer_state.recheck_muted(tx, crate::model::MuteReason::Silence(id), now)?;
            } else {
                writer_state.silences.push(silence.clone());
            }
            tracing::info!(silence = id, "silence changed");
            Ok(silence)
        }
        SilenceUpdate::Replace { expire_old, starts_at } => {
            if expire_old {
                expire(tx, writer_state, id, now)?;
            }
            let silence = insert(tx, writer_state, &SilenceSpec { starts_at, ..spec.clone() }, now)?;
            tracing::info!(silence = silence.id, replaces = id, "silence replaced");
            Ok(silence)
        }
    }
}
