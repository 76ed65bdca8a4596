//! Incidents: ITIL impact, urgency and priority, and the lifecycle state
//! machine with its one transition function.
use std::fmt;

use serde::{Deserialize, Serialize};

/// How widely an incident hurts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Impact {
    High,
    Medium,
    Low,
}

/// How fast it must be dealt with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Urgency {
    High,
    Medium,
    Low,
}

/// P1 (most urgent) to P5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Priority {
    P1,
    P2,
    P3,
    P4,
    P5,
}

macro_rules! names {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            pub const ALL: &'static [$t] = &[$(<$t>::$v),*];
            pub fn as_str(self) -> &'static str {
                match self { $(<$t>::$v => $s),* }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(<$t>::$v),)* _ => None }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names!(Impact { High => "high", Medium => "medium", Low => "low" });
names!(Urgency { High => "high", Medium => "medium", Low => "low" });
names!(Priority { P1 => "P1", P2 => "P2", P3 => "P3", P4 => "P4", P5 => "P5" });

/// Impact x urgency -> priority, as in ITIL. The default is the classic
/// matrix; rule files may replace it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityMatrix([[Priority; 3]; 3]);

impl Default for PriorityMatrix {
    fn default() -> Self {
        use Priority::*;
        PriorityMatrix([[P1, P2, P3], [P2, P3, P4], [P3, P4, P5]])
    }
}

impl PriorityMatrix {
    pub fn set(&mut self, impact: Impact, urgency: Urgency, p: Priority) {
        self.0[impact as usize][urgency as usize] = p;
    }

    pub fn priority(&self, impact: Impact, urgency: Urgency) -> Priority {
        self.0[impact as usize][urgency as usize]
    }
}

/// The lifecycle: `triggered -> acknowledged -> resolved -> closed`, with
/// `on_hold` (waiting on someone else) and reopen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    Triggered,
    Acknowledged,
    OnHold,
    Resolved,
    Closed,
}

names!(IncidentState {
    Triggered => "triggered",
    Acknowledged => "acknowledged",
    OnHold => "on_hold",
    Resolved => "resolved",
    Closed => "closed",
});

impl IncidentState {
    /// The state an incident opens in.
    pub const INITIAL: IncidentState = IncidentState::Triggered;

    /// Open incidents absorb new alerts of their key.
    pub const OPEN: [IncidentState; 3] = [IncidentState::Triggered, IncidentState::Acknowledged, IncidentState::OnHold];

    pub fn is_open(self) -> bool {
        Self::OPEN.contains(&self)
    }

    /// The SQL form of [`Self::is_open`]: equalities joined by `OR`, not
    /// `IN (...)`, for which SQLite builds a temporary table on every
    /// execution when it filters rows rather than searching an index
    /// (an eighth of a re-sent alert's instructions). Either form can
    /// search an index on `column`.
    pub fn open_sql(column: &str) -> String {
        let terms: Vec<String> = Self::OPEN.iter().map(|s| format!("{column} = '{}'", s.as_str())).collect();
        format!("({})", terms.join(" OR "))
    }
}

/// What a person (or the gateway) does to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentAction {
    Acknowledge,
    Hold,
    Resolve,
    Reopen,
    Close,
}

names!(IncidentAction {
    Acknowledge => "acknowledge",
    Hold => "hold",
    Resolve => "resolve",
    Reopen => "reopen",
    Close => "close",
});

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} an incident that is {state}{}", hint(*.action, *.state))]
pub struct TransitionError {
    pub state: IncidentState,
    pub action: IncidentAction,
}

fn hint(action: IncidentAction, state: IncidentState) -> &'static str {
    use IncidentAction as A;
    use IncidentState as S;
    match (action, state) {
        (A::Close, S::Triggered | S::Acknowledged | S::OnHold) => " (resolve it first)",
        (A::Reopen, S::Closed) => " (closed incidents are final; a new alert opens a new incident)",
        (A::Reopen, _) => " (only resolved incidents can be reopened)",
        _ => "",
    }
}

/// The one transition function of the incident lifecycle.
pub fn transition(state: IncidentState, action: IncidentAction) -> Result<IncidentState, TransitionError> {
    use IncidentAction as A;
    use IncidentState as S;
    let next = match (state, action) {
        (S::Triggered | S::OnHold, A::Acknowledge) => S::Acknowledged,
        (S::Triggered | S::Acknowledged, A::Hold) => S::OnHold,
        (S::Triggered | S::Acknowledged | S::OnHold, A::Resolve) => S::Resolved,
        (S::Resolved, A::Reopen) => S::Triggered,
        (S::Resolved, A::Close) => S::Closed,
        _ => return Err(TransitionError { state, action }),
    };
    Ok(next)
}

/// An incident as stored and shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Incident {
    pub id: i64,
    pub title: String,
    pub service: Option<String>,
    pub rule: String,
    pub group_key: String,
    pub impact: Impact,
    pub urgency: Urgency,
    pub priority: Priority,
    pub state: IncidentState,
    pub assignee: Option<String>,
    pub alert_count: u64,
    pub firing_count: u64,
    pub flap_count: u64,
    /// Labels common to all its alerts.
    pub labels: crate::model::LabelSet,
    pub created_at: jiff::Timestamp,
    pub updated_at: jiff::Timestamp,
    pub acknowledged_at: Option<jiff::Timestamp>,
    pub resolved_at: Option<jiff::Timestamp>,
    pub closed_at: Option<jiff::Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_resolve_at: Option<jiff::Timestamp>,
    /// How it came to be: from alerts, or reported by a person.
    pub source: IncidentSource,
    /// What the reporter wrote (reported incidents).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who reported it (reported incidents).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reporter: Option<String>,
    /// The incident this one was merged into (it closed then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<i64>,
}

/// How an incident came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IncidentSource {
    /// Opened by an incident rule for firing alerts.
    Alert,
    /// Reported by a person (the service desk).
    Reported,
}

impl IncidentSource {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentSource::Alert => "alert",
            IncidentSource::Reported => "reported",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "alert" => Some(IncidentSource::Alert),
            "reported" => Some(IncidentSource::Reported),
            _ => None,
        }
    }
}

/// An incident a person reports: no alert behind it (yet).
#[derive(Debug, Clone, PartialEq)]
pub struct NewReport {
    pub title: String,
    pub description: Option<String>,
    pub service: Option<String>,
    pub impact: Impact,
    pub urgency: Urgency,
    /// Who reported it (a customer, a colleague); the actor when absent.
    pub reporter: Option<String>,
    /// Labels incident rules and SLA policies may match on.
    pub labels: crate::model::LabelSet,
    pub assignee: Option<String>,
}

/// When a timeline entry was written down, shown only where it says
/// something: a fact recorded late (a second or more after it happened).
pub fn shown_recorded_at(at: jiff::Timestamp, recorded_at: jiff::Timestamp) -> Option<jiff::Timestamp> {
    (recorded_at.duration_since(at).abs() >= jiff::SignedDuration::from_secs(1)).then_some(recorded_at)
}

/// One timeline entry: who did what, when.
/// One entry of an incident's or a problem's timeline.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TimelineEvent {
    /// When it happened: an SLA deadline that passed while the gateway was
    /// down is dated at the deadline.
    pub at: jiff::Timestamp,
    /// When the gateway wrote it down, where that differs from `at`.
    #[serde(rename = "recordedAt", skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<jiff::Timestamp>,
    pub actor: String,
    pub kind: String,
    pub message: String,
    /// What the entry is about, by kind (e.g. the before and after of a change).
    pub data: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_record_shows_when_it_was_written() {
        let at: jiff::Timestamp = "2026-11-26T10:00:00Z".parse().unwrap();
        let late: jiff::Timestamp = "2026-11-26T10:00:01Z".parse().unwrap();
        assert_eq!(shown_recorded_at(at, late), Some(late));
        assert_eq!(shown_recorded_at(at, "2026-11-26T10:00:00.999Z".parse().unwrap()), None);
    }
    use IncidentAction as A;
    use IncidentState as S;

    #[test]
    fn every_transition() {
        let allowed = [
            (S::Triggered, A::Acknowledge, S::Acknowledged),
            (S::Triggered, A::Hold, S::OnHold),
            (S::Triggered, A::Resolve, S::Resolved),
            (S::Acknowledged, A::Hold, S::OnHold),
            (S::Acknowledged, A::Resolve, S::Resolved),
            (S::OnHold, A::Acknowledge, S::Acknowledged),
            (S::OnHold, A::Resolve, S::Resolved),
            (S::Resolved, A::Reopen, S::Triggered),
            (S::Resolved, A::Close, S::Closed),
        ];
        let states = [S::Triggered, S::Acknowledged, S::OnHold, S::Resolved, S::Closed];
        let actions = [A::Acknowledge, A::Hold, A::Resolve, A::Reopen, A::Close];
        for s in states {
            for a in actions {
                let want = allowed.iter().find(|(fs, fa, _)| *fs == s && *fa == a).map(|t| t.2);
                match (transition(s, a), want) {
                    (Ok(got), Some(w)) => assert_eq!(got, w, "{s} {a}"),
                    (Err(e), None) => assert!(e.to_string().contains(s.as_str()), "{e}"),
                    (got, want) => panic!("{s} + {a}: got {got:?}, want {want:?}"),
                }
            }
        }
    }

    #[test]
    fn errors_name_the_state_and_a_way_out() {
        let e = transition(S::Acknowledged, A::Close).unwrap_err();
        assert_eq!(e.to_string(), "cannot close an incident that is acknowledged (resolve it first)");
        let e = transition(S::Closed, A::Reopen).unwrap_err();
        assert!(e.to_string().contains("closed incidents are final"));
    }

    #[test]
    fn default_matrix_is_itil() {
        let m = PriorityMatrix::default();
        assert_eq!(m.priority(Impact::High, Urgency::High), Priority::P1);
        assert_eq!(m.priority(Impact::High, Urgency::Low), Priority::P3);
        assert_eq!(m.priority(Impact::Medium, Urgency::Medium), Priority::P3);
        assert_eq!(m.priority(Impact::Low, Urgency::Low), Priority::P5);
        let mut m = m;
        m.set(Impact::Low, Urgency::Low, Priority::P4);
        assert_eq!(m.priority(Impact::Low, Urgency::Low), Priority::P4);
    }

    #[test]
    fn names_round_trip() {
        for s in IncidentState::ALL {
            assert_eq!(IncidentState::parse(s.as_str()), Some(*s));
        }
        for p in Priority::ALL {
            assert_eq!(Priority::parse(p.as_str()), Some(*p));
        }
    }
}
