//! Why a firing alert opens no incident.
use std::fmt;

use serde::{Serialize, Serializer};

/// One encoding, stored in `alerts.muted_by` and shown as `mutedBy`:
/// `silence:ID`, `change:ID` (a maintenance window) or `inhibited`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MuteReason {
    Silence(i64),
    Maintenance(i64),
    Inhibited,
}

impl MuteReason {
    pub fn parse(s: &str) -> Option<MuteReason> {
        match s.split_once(':') {
            Some(("silence", id)) => id.parse().ok().map(MuteReason::Silence),
            Some(("change", id)) => id.parse().ok().map(MuteReason::Maintenance),
            None if s == "inhibited" => Some(MuteReason::Inhibited),
            _ => None,
        }
    }

    /// The SQL condition that `column` holds a reason that ends with time
    /// (a silence's or a maintenance window's), as [`MuteReason`]'s
    /// `Display` writes them.
    pub fn ends_in_time_sql(column: &str) -> String {
        format!("({column} LIKE 'silence:%' OR {column} LIKE 'change:%')")
    }

    /// The `reason` label of `alertgate_alerts_muted_total`.
    pub fn metric_label(self) -> &'static str {
        match self {
            MuteReason::Silence(_) => "silenced",
            MuteReason::Maintenance(_) => "maintenance",
            MuteReason::Inhibited => "inhibited",
        }
    }
}

impl fmt::Display for MuteReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MuteReason::Silence(id) => write!(f, "silence:{id}"),
            MuteReason::Maintenance(id) => write!(f, "change:{id}"),
            MuteReason::Inhibited => f.write_str("inhibited"),
        }
    }
}

impl Serialize for MuteReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_round_trips_through_its_one_encoding() {
        for (reason, text, label) in [
            (MuteReason::Silence(12), "silence:12", "silenced"),
            (MuteReason::Maintenance(3), "change:3", "maintenance"),
            (MuteReason::Inhibited, "inhibited", "inhibited"),
        ] {
            assert_eq!(reason.to_string(), text);
            assert_eq!(MuteReason::parse(text), Some(reason));
            assert_eq!(reason.metric_label(), label);
            assert_eq!(serde_json::to_value(reason).unwrap(), text);
        }
        for bad in ["silence:", "silence:x", "change", "muted", ""] {
            assert_eq!(MuteReason::parse(bad), None, "{bad:?}");
        }
    }
}
