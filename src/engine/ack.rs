//! Acknowledgements by senders, as PagerDuty treats them: an incident whose
//! firing alerts have all been acknowledged by the tools that sent them is
//! acknowledged; someone is on it, in the sender's own tool.

/// Whether a sender's acknowledge acknowledges the incident: it is still
/// `triggered` (an acknowledged or held incident is left as people set it)
/// and every alert firing in it is acknowledged.
pub fn acknowledges(state: crate::model::incident::IncidentState, firing: u64, acknowledged: u64) -> bool {
    state == crate::model::incident::IncidentState::Triggered && firing > 0 && acknowledged >= firing
}

/// Who a sender's acknowledgement is recorded as, and why: the sender's
/// token name (a sender without one is "a sender").
pub fn acknowledgement(sender: Option<&str>) -> (String, String) {
    let sender = sender.unwrap_or("a sender");
    (sender.to_owned(), format!("every firing alert was acknowledged by its sender ({sender})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::incident::IncidentState::*;

    #[test]
    fn a_senders_acknowledgement_names_it() {
        assert_eq!(
            acknowledgement(Some("pd-payments")).1,
            "every firing alert was acknowledged by its sender (pd-payments)"
        );
        assert_eq!(acknowledgement(None).0, "a sender");
    }

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
