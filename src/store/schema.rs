//! Versioned schema migrations, applied in order at start.
//!
//! `PRAGMA user_version` records how many have run. A migration is never
//! edited once released; changes go in a new one.
use rusqlite::Connection;

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: alerts, one row per fingerprint.
    r#"
    CREATE TABLE alerts (
        id              INTEGER PRIMARY KEY,
        fingerprint     TEXT    NOT NULL UNIQUE,
        source          TEXT    NOT NULL,
        status          TEXT    NOT NULL CHECK (status IN ('firing', 'resolved')),
        labels          TEXT    NOT NULL,
        annotations     TEXT    NOT NULL,
        starts_at       INTEGER NOT NULL,
        ends_at         INTEGER,
        expires_at      INTEGER,
        expired         INTEGER NOT NULL DEFAULT 0,
        generator_url   TEXT,
        first_seen      INTEGER NOT NULL,
        last_seen       INTEGER NOT NULL,
        occurrences     INTEGER NOT NULL,
        acknowledged_at INTEGER,
        raw             TEXT    NOT NULL
    );
    CREATE INDEX alerts_expiry ON alerts (expires_at) WHERE status = 'firing' AND expires_at IS NOT NULL;
    CREATE INDEX alerts_status ON alerts (status, id);
    CREATE INDEX alerts_source ON alerts (source, id);
    "#,
];

/// The schema version this build writes.
pub const VERSION: usize = MIGRATIONS.len();

pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: usize =
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if current > VERSION {
        return Err(StoreError::TooNew {
            found: current,
            supported: VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied schema migration");
    }
    Ok(())
}
