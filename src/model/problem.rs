//! Problems: the cause behind recurring incidents (ITIL problem
//! management), with the lifecycle `open -> known_error -> resolved ->
//! closed` and its one transition function.
use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProblemState {
    /// Recurring incidents, cause not yet known.
    Open,
    /// The cause is known and a workaround documented; new incidents of its
    /// key link to it at once and carry the workaround.
    KnownError,
    /// The cause is removed.
    Resolved,
    Closed,
}

impl ProblemState {
    /// The state a problem opens in.
    pub const INITIAL: ProblemState = ProblemState::Open;

    pub const ALL: [ProblemState; 4] =
        [ProblemState::Open, ProblemState::KnownError, ProblemState::Resolved, ProblemState::Closed];

    pub fn as_str(self) -> &'static str {
        match self {
            ProblemState::Open => "open",
            ProblemState::KnownError => "known_error",
            ProblemState::Resolved => "resolved",
            ProblemState::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Active problems absorb new incidents of their key.
    pub const ACTIVE: [ProblemState; 2] = [ProblemState::Open, ProblemState::KnownError];

    /// `column IN (...)` of the active states: the SQL form of [`Self::is_active`].
    pub fn active_sql(column: &str) -> String {
        crate::model::sql_in(column, Self::ACTIVE.iter().map(|s| s.as_str()))
    }

    pub fn is_active(self) -> bool {
        Self::ACTIVE.contains(&self)
    }
}

impl fmt::Display for ProblemState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a problem cannot go from {from} to {to}{}", hint(*.from, *.to))]
pub struct ProblemTransitionError {
    pub from: ProblemState,
    pub to: ProblemState,
}

fn hint(from: ProblemState, to: ProblemState) -> &'static str {
    use ProblemState as S;
    match (from, to) {
        (S::Closed, _) => " (closed problems are final)",
        (_, S::Closed) => " (resolve it first)",
        _ => "",
    }
}

/// The one transition function. A problem may skip `known_error` (the
/// cause was found and fixed at once) and may be reopened after it was
/// resolved (the incidents came back).
pub fn transition(from: ProblemState, to: ProblemState) -> Result<ProblemState, ProblemTransitionError> {
    use ProblemState as S;
    match (from, to) {
        (S::Open, S::KnownError)
        | (S::Open | S::KnownError, S::Resolved)
        | (S::KnownError | S::Resolved, S::Open)
        | (S::Resolved, S::Closed) => Ok(to),
        _ => Err(ProblemTransitionError { from, to }),
    }
}

/// A problem as stored and shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    pub id: i64,
    pub title: String,
    /// Incidents whose problem key equals this link to it.
    pub key: Option<String>,
    /// The problem rule that opened it; `None` when opened by hand.
    pub rule: Option<String>,
    pub state: ProblemState,
    pub root_cause: Option<String>,
    pub workaround: Option<String>,
    pub incident_count: u64,
    pub first_occurrence: Option<jiff::Timestamp>,
    pub last_occurrence: Option<jiff::Timestamp>,
    pub created_by: String,
    pub created_at: jiff::Timestamp,
    pub updated_at: jiff::Timestamp,
    pub resolved_at: Option<jiff::Timestamp>,
    pub closed_at: Option<jiff::Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProblemState as S;

    #[test]
    fn every_transition() {
        let allowed = [
            (S::Open, S::KnownError),
            (S::Open, S::Resolved),
            (S::KnownError, S::Resolved),
            (S::KnownError, S::Open),
            (S::Resolved, S::Open),
            (S::Resolved, S::Closed),
        ];
        for from in S::ALL {
            for to in S::ALL {
                let ok = allowed.contains(&(from, to));
                assert_eq!(transition(from, to).is_ok(), ok, "{from} -> {to}");
            }
        }
        let e = transition(S::Open, S::Closed).unwrap_err();
        assert_eq!(e.to_string(), "a problem cannot go from open to closed (resolve it first)");
    }

    #[test]
    fn names_round_trip() {
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
