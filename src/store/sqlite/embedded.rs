//! SQLite under the writer: one process owns the file (the data
//! directory's lock), so the writer's memory is never stale; the WAL is
//! checkpointed on a thread of its own, and `store.max_size` bounds the
//! files.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use jiff::Timestamp;
use rusqlite::Connection;

use super::state::WriterState;
use super::writer::{Changed, WriteDb};
use super::{SizeLimit, StoreError, outbox, sql};

/// Tables whose changes no live view shows: the alerts' own bookkeeping
/// (a re-send updates `last_seen` and the delivery count; the expiry
/// sweep moves its checks), the outbox's, the audit log, and heartbeats'
/// pings.
const UNSHOWN_TABLES: [&str; 7] =
    ["alerts", "expiry_checks", "notifications", "audit_log", "pending_alerts", "pending_groups", "heartbeats"];

/// How the writer resets a WAL past its share.
#[derive(Clone, Copy)]
enum WalReset {
    Restart,
    Truncate,
}

/// How far the WAL may grow before the writer resets it.
#[derive(Clone)]
pub(super) struct WalBound {
    pub path: std::path::PathBuf,
    pub share: u64,
}

impl WalBound {
    pub fn past_share(&self) -> bool {
        std::fs::metadata(&self.path).map_or(0, |m| m.len()) > self.share
    }

    /// Past its share, the WAL is copied into the database and restarted:
    /// the next commit writes it from its start again, trimming the file to
    /// the share (`journal_size_limit`), so the file is reused rather than
    /// grown again (truncating it to nothing made commits extend it, and
    /// p99 at a million stored went from 19 to 41 ms). The writer does it
    /// between batches, the one moment nothing writes; the background
    /// checkpoint has copied most of it already. It never waits: while a
    /// reader still reads older frames (a backup holds one for the whole
    /// copy) or the background checkpoint runs, it is tried again after the
    /// next batch, so no sender waits for a reader. `Truncate` is for a
    /// full store, which must shrink the file before anything commits.
    fn checkpoint_if_past_share(&self, conn: &Connection, how: WalReset) {
        if !self.past_share() {
            return;
        }
        let mode = match how {
            WalReset::Restart => "RESTART",
            WalReset::Truncate => "TRUNCATE",
        };
        let reset = conn.busy_timeout(std::time::Duration::ZERO).and_then(|()| {
            conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| r.get::<_, i64>(0)).map(|busy| busy == 0)
        });
        match reset {
            Ok(true) => tracing::debug!(mode, "WAL reset"),
            Ok(false) => tracing::debug!(mode, "WAL still read; resetting it after the next batch"),
            Err(e) => tracing::debug!(mode, error = %e, "WAL busy; resetting it after the next batch"),
        }
        if let Err(e) = conn.busy_timeout(super::BUSY_TIMEOUT) {
            tracing::warn!(error = %e, "resetting the busy timeout failed");
        }
    }
}

pub(super) struct Embedded {
    conn: Connection,
    size_limit: Option<SizeLimit>,
    wal: WalBound,
    /// Set whenever a row of a table that live views show changes.
    shown_changed: Arc<AtomicBool>,
    /// Stops the checkpoint thread and waits for it: the last checkpoint
    /// at close must not race the background one.
    stop_checkpoints: Option<Box<dyn FnOnce() + Send>>,
}

impl Embedded {
    pub fn new(
        conn: Connection,
        size_limit: Option<SizeLimit>,
        wal: WalBound,
        stop_checkpoints: impl FnOnce() + Send + 'static,
    ) -> Embedded {
        let shown_changed = watch_shown_tables(&conn);
        Embedded { conn, size_limit, wal, shown_changed, stop_checkpoints: Some(Box::new(stop_checkpoints)) }
    }

    fn run(&self, sql: &str) -> Result<(), StoreError> {
        self.conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    }
}

impl WriteDb for Embedded {
    fn conn(&self) -> sql::Connection<'_> {
        sql::Connection::sqlite(&self.conn)
    }

    fn begin(&mut self, _: &mut WriterState, _: Timestamp, _: bool) -> Result<(), StoreError> {
        self.shown_changed.store(false, Ordering::Relaxed);
        self.run("BEGIN IMMEDIATE")
    }

    fn savepoint(&mut self) -> Result<(), StoreError> {
        self.run("SAVEPOINT request")
    }

    fn release(&mut self) -> Result<(), StoreError> {
        self.run("RELEASE request")
    }

    fn rollback_to(&mut self) -> Result<(), StoreError> {
        // SQLite may have rolled back the whole transaction already.
        if self.conn.is_autocommit() {
            return Err(StoreError::CommitFailed("the transaction was rolled back".into()));
        }
        self.run("ROLLBACK TO request")?;
        self.run("RELEASE request")
    }

    fn commit(&mut self, _: &Changed) -> Result<(), StoreError> {
        self.run("COMMIT")?;
        self.wal.checkpoint_if_past_share(&self.conn, WalReset::Restart);
        Ok(())
    }

    fn rollback(&mut self) {
        if !self.conn.is_autocommit()
            && let Err(e) = self.run("ROLLBACK")
        {
            tracing::warn!(error = %e, "rolling back a batch failed");
        }
    }

    fn restore(&mut self, state: &mut WriterState, now: Timestamp) {
        if let Err(e) = state.reload(&sql::Connection::sqlite(&self.conn), now) {
            tracing::error!(error = %e, "reloading the writer's state failed");
        }
    }

    fn shown_changed(&self) -> bool {
        self.shown_changed.load(Ordering::Relaxed)
    }

    fn full(&self) -> bool {
        let Some(limit) = &self.size_limit else { return false };
        if limit.reached() {
            // A WAL the last commit could not reset must not keep the store
            // refusing writes while nothing commits: truncated at once.
            self.wal.checkpoint_if_past_share(&self.conn, WalReset::Truncate);
        }
        limit.reached()
    }

    fn close(mut self, now: Option<Timestamp>) {
        if let Some(now) = now {
            match outbox::release_all(&sql::Connection::sqlite(&self.conn), now, None) {
                Ok(0) => {}
                Ok(n) => tracing::info!(notifications = n, "released the leases of unfinished deliveries"),
                Err(e) => tracing::warn!(error = %e, "releasing notification leases failed"),
            }
        }
        if let Some(stop) = self.stop_checkpoints.take() {
            stop();
        }
        if let Err(e) = self.conn.execute_batch("PRAGMA optimize; PRAGMA wal_checkpoint(TRUNCATE);") {
            tracing::warn!(error = %e, "checkpoint at close failed");
        }
        match self.conn.close() {
            Ok(()) => tracing::info!("database closed cleanly"),
            Err((_, e)) => tracing::error!(error = %e, "closing the database failed"),
        }
    }
}

/// A flag the connection sets whenever a row of a table that live views
/// show changes (SQLite's update hook, called for every row written).
fn watch_shown_tables(conn: &Connection) -> Arc<AtomicBool> {
    let changed = Arc::new(AtomicBool::new(false));
    let flag = changed.clone();
    conn.update_hook(Some(move |_: rusqlite::hooks::Action, _: &str, table: &str, _: i64| {
        if !UNSHOWN_TABLES.contains(&table) {
            flag.store(true, Ordering::Relaxed);
        }
    }));
    changed
}
