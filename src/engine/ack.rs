//! Acknowledgements by senders, as PagerDuty treats them: an incident whose
//! firing alerts have all been acknowledged by the tools that sent them is
//! acknowledged; someone is on it, in the sender's own tool.

/// Whether a sender's acknowledge acknowledges the incident: it is still
/// `triggered` (an acknowledged or held incident is left as people set it)
/// and every alert firing in it is acknowledged.
pub fn acknowledges(state: crate::model::incident::IncidentState, firing: u64, acknowledged: u64) -> bool {
    state == crate::model::incident::IncidentState::Triggered && firing > 0 && acknowledged >= firing
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::incident::IncidentState::*;

    #[test]
    fn only_a_triggered_incident_with_every_firing_alert_acknowledged() {
        assert!(acknowledges(Triggered, 2, 2));
        assert!(!acknowledges(Triggered, 2, 1), "one alert is not acknowledged yet");
        assert!(!acknowledges(Triggered, 0, 0), "nothing fires");
        for state in [Acknowledged, OnHold, Resolved, Closed] {
            assert!(!acknowledges(state, 1, 1), "{state:?} is left as it is");
        }
    }
}
