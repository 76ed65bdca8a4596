//! Gauges of stored state, set at scrape time from the counts a backend
//! reads ([`StoredFacts`]): what they mean (which states count as open,
//! the compliance ratio, zero series for dashboards) is decided here.
use std::collections::HashMap;

use crate::model::incident::{IncidentState, Priority};
use crate::model::problem::ProblemState;
use crate::sla::clock::ClockKind;

/// Counts of stored state, as of one read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredFacts {
    /// Open incidents by state, priority and service (`""` for none).
    pub open_incidents: Vec<(IncidentState, Priority, String, u64)>,
    /// Clocks not stopped, by kind and whether they count now (a breached
    /// clock keeps counting until its incident is answered).
    pub clocks_counting: Vec<(ClockKind, bool, u64)>,
    /// Settled clocks of incidents created in the last
    /// [`super::COMPLIANCE_WINDOW_DAYS`] days, by kind, priority and
    /// service: (met, not met).
    pub settled_clocks: Vec<(ClockKind, Priority, String, u64, u64)>,
    pub problems: Vec<(ProblemState, u64)>,
    /// Pending notifications and the age of the oldest, in seconds.
    pub outbox: (u64, Option<f64>),
    /// Bytes of the database's files, by file (`db`, `wal`).
    pub database_bytes: Vec<(&'static str, u64)>,
    /// Incidents resolved in the last [`UNREVIEWED_WINDOW_DAYS`] days
    /// without a published review: (rule, priority, service, resolved at).
    pub unreviewed: Vec<(String, Priority, String, jiff::Timestamp)>,
    /// Open action items by service: (service, open, of them overdue).
    pub action_items: Vec<(String, u64, u64)>,
}

/// How far back the overdue-review gauge looks.
pub const UNREVIEWED_WINDOW_DAYS: i64 = 90;

/// Set the stored-state gauges from `facts`; `overdue_reviews` are the
/// services of incidents whose required review is overdue.
pub fn set(facts: &StoredFacts, overdue_reviews: &[String]) {
    let m = super::metrics();
    m.incidents_open.reset();
    // Services past the label budget are summed under `other`.
    let mut open: HashMap<(IncidentState, Priority, String), u64> = HashMap::new();
    for (state, priority, service, n) in &facts.open_incidents {
        let service = m.services.admit("incidents_open", service).into_owned();
        *open.entry((*state, *priority, service)).or_default() += n;
    }
    for ((state, priority, service), n) in open {
        m.incidents_open.with_label_values(&[state.as_str(), priority.as_str(), service.as_str()]).set(n as i64);
    }

    m.sla_clocks_running.reset();
    // Every kind and state exists at zero, so a dashboard shows 0, not "No data".
    for kind in ClockKind::ALL {
        for state in ["running", "paused"] {
            m.sla_clocks_running.with_label_values(&[kind.as_str(), state]).set(0);
        }
    }
    for (kind, counting, n) in &facts.clocks_counting {
        let state = if *counting { "running" } else { "paused" };
        m.sla_clocks_running.with_label_values(&[kind.as_str(), state]).set(*n as i64);
    }

    m.sla_compliance.reset();
    let mut settled: HashMap<(ClockKind, Priority, String), (u64, u64)> = HashMap::new();
    for (kind, priority, service, met, not_met) in &facts.settled_clocks {
        let service = m.services.admit("sla_compliance", service).into_owned();
        let sums = settled.entry((*kind, *priority, service)).or_default();
        *sums = (sums.0 + met, sums.1 + not_met);
    }
    for ((kind, priority, service), (met, not_met)) in settled {
        if let Some(ratio) = compliance(met, not_met) {
            m.sla_compliance.with_label_values(&[kind.as_str(), priority.as_str(), service.as_str()]).set(ratio);
        }
    }

    m.problems_open.reset();
    for state in ProblemState::ALL.iter().filter(|s| **s != ProblemState::Closed) {
        m.problems_open.with_label_values(&[state.as_str()]).set(0);
    }
    for (state, n) in facts.problems.iter().filter(|(s, _)| *s != ProblemState::Closed) {
        m.problems_open.with_label_values(&[state.as_str()]).set(*n as i64);
    }

    m.reviews_overdue.reset();
    let mut overdue: HashMap<String, i64> = HashMap::new();
    for service in overdue_reviews {
        *overdue.entry(m.services.admit("reviews_overdue", service).into_owned()).or_default() += 1;
    }
    for (service, n) in overdue {
        m.reviews_overdue.with_label_values(&[service.as_str()]).set(n);
    }

    m.action_items.reset();
    let mut items: HashMap<String, (u64, u64)> = HashMap::new();
    for (service, open, overdue) in &facts.action_items {
        let sums = items.entry(m.services.admit("action_items", service).into_owned()).or_default();
        *sums = (sums.0 + open, sums.1 + overdue);
    }
    for (service, (open, overdue)) in items {
        m.action_items.with_label_values(&[service.as_str(), "open"]).set(open as i64);
        m.action_items.with_label_values(&[service.as_str(), "overdue"]).set(overdue as i64);
    }

    m.outbox_depth.set(facts.outbox.0 as i64);
    m.outbox_oldest.set(facts.outbox.1.unwrap_or(0.0));
    for (file, bytes) in &facts.database_bytes {
        m.database_size.with_label_values(&[file]).set(*bytes as i64);
    }
}

/// Met among settled clocks, as a ratio; `None` when none is settled.
pub fn compliance(met: u64, not_met: u64) -> Option<f64> {
    (met + not_met > 0).then(|| met as f64 / (met + not_met) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compliance_is_met_over_settled() {
        assert_eq!(compliance(3, 1), Some(0.75));
        assert_eq!(compliance(0, 0), None, "nothing settled: no series");
    }
}
