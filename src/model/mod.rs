//! The domain types and the pure decisions on them: no I/O here.
pub mod action_item;
pub mod alert;
pub mod change;
pub mod duration;
pub mod fingerprint;
pub mod heartbeat;
pub mod incident;
pub mod mute;
pub mod notification;
pub mod oncall;
pub mod person;
pub mod problem;
pub mod review;

pub use alert::{Alert, AlertRecord, AlertState, AlertStatus, AlertUpdate, Annotations, LabelSet, Observation, Source};
pub use duration::Duration;
pub use fingerprint::Fingerprint;
pub use mute::MuteReason;

/// `column IN ('a', 'b')` for state names (fixed identifiers, never user input).
pub fn sql_in<'a>(column: &str, names: impl Iterator<Item = &'a str>) -> String {
    let list: Vec<String> = names.map(|n| format!("'{n}'")).collect();
    format!("{column} IN ({})", list.join(", "))
}
