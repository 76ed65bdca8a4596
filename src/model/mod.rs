//! The domain types and the pure decisions on them: no I/O here.
pub mod alert;
pub mod change;
pub mod duration;
pub mod fingerprint;
pub mod incident;
pub mod mute;
pub mod problem;

pub use alert::{Alert, AlertRecord, AlertState, AlertStatus, AlertUpdate, Annotations, LabelSet, Observation, Source};
pub use duration::Duration;
pub use fingerprint::Fingerprint;
pub use mute::MuteReason;
