//! How the store is run: durability, readers, size bound, start-up check.
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    pub synchronous: Synchronous,
    pub read_connections: usize,
    /// The database may not grow past this many bytes: writes beyond it
    /// fail cleanly (503) instead of filling the disk.
    pub max_size: Option<usize>,
    pub integrity_check: IntegrityCheck,
}

/// What `serve` checks of the database before it opens for business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum IntegrityCheck {
    /// `PRAGMA quick_check`: structure and indexes' order, in linear time.
    Quick,
    /// `PRAGMA integrity_check`: everything, slower on a large database.
    Full,
    Off,
}

/// SQLite's `synchronous` setting for the WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync on every commit: a 2xx survives power loss.
    Full,
    /// fsync at checkpoints only: a 2xx survives a process crash, not power loss.
    Normal,
}
