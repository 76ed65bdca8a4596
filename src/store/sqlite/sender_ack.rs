//! A sender's acknowledge (PagerDuty `acknowledge`) applied to the
//! incidents of the alert it names: see [`crate::engine::ack`].
use super::sql::{Connection, params};
use jiff::Timestamp;

use super::StoreError;
use super::state::WriterState;
use crate::model::incident::{IncidentAction, IncidentState};

impl WriterState {
    /// The alert `alert_id` was acknowledged by `sender`: each triggered
    /// incident it fires in whose firing alerts are now all acknowledged is
    /// acknowledged, under the sender's name.
    pub(super) fn on_sender_acknowledged(
        &mut self,
        tx: &Connection,
        alert_id: i64,
        sender: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let incidents: Vec<(i64, String, i64, i64)> = tx
            .prepare_cached(
                "SELECT i.id, i.state,
                    (SELECT count(*) FROM incident_alerts f WHERE f.incident_id = i.id AND f.firing = 1),
                    (SELECT count(*) FROM incident_alerts f JOIN alerts a ON a.id = f.alert_id
                     WHERE f.incident_id = i.id AND f.firing = 1 AND a.acknowledged_at IS NOT NULL)
                 FROM incident_alerts ia JOIN incidents i ON i.id = ia.incident_id
                 WHERE ia.alert_id = ?1 AND ia.firing = 1",
            )?
            .query_map(params![alert_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        let (actor, why) = crate::engine::ack::acknowledgement(sender);
        for (id, state, firing, acked) in incidents {
            let state =
                IncidentState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("incident state {state:?}")))?;
            if crate::engine::ack::acknowledges(state, firing as u64, acked as u64) {
                self.act(tx, id, IncidentAction::Acknowledge, &actor, Some(&why), now)?;
            }
        }
        Ok(())
    }
}
