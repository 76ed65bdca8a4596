//! The embedded default backend: one SQLite file in the data directory.
//!
//! One writer thread holds the write connection and commits concurrent
//! requests together (group commit, see `writer`); a small pool of read-only
//! connections serves queries. SQLite runs in WAL mode with
//! `synchronous=FULL` by default, so an answered write survives a crash or a
//! power cut. The only module with SQL and `rusqlite` in it.
mod action_items;
mod apply;
mod audit;
mod bulk;
mod changes;
mod copy;
mod desk;
mod embedded;
mod expiry;
mod gauges;
mod heartbeats;
mod incidents;
mod oncall;
mod outbox;
mod problems;
mod reader;
mod reports;
mod reviews;
mod rows;
mod schema;
mod sender_ack;
mod shared;
mod silences;
mod sla;
mod sql;
mod state;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::ops::{Op, Reply};
use super::settings::{IntegrityCheck, StoreConfig, Synchronous};
use super::{
    AlertPage, AlertQuery, AuditEntry, AuditQuery, Backend, ChangeFeed, DetailPage, IncidentDetail, IncidentPage,
    IncidentQuery, NotificationQuery, NotificationView, ProblemDetail, ProblemQuery, ReportGroup, SharedRules,
    SlaReport, SlaView, StoreError,
};
use crate::engine::heartbeat::Stored as HeartbeatStored;
use crate::engine::silence::{Silence, SilenceIds};
use crate::metrics::stored::StoredFacts;
use crate::model::change::Change;
use crate::model::problem::Problem;
use crate::model::{AlertRecord, Fingerprint};

pub use action_items::ActionItemQuery;
pub use copy::{Copied, copy_to_postgres};
pub use schema::VERSION as SCHEMA_VERSION;

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "alertgate.db";

/// The lock file inside the data directory.
pub const LOCK_FILE: &str = "alertgate.lock";

/// Take the data directory's lock, or say who holds it. The OS drops the
/// lock when the process ends, however it ends (kill -9 included).
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, StoreError> {
    let path = data_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StoreError::DataDir { path: path.clone(), source })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked(data_dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(source)) => Err(StoreError::DataDir { path, source }),
    }
}

/// Connections for reads, at most `permits` in use at once.
struct ReadPool<C> {
    conns: Mutex<Vec<C>>,
    permits: Arc<Semaphore>,
}

impl<C> ReadPool<C> {
    fn new(conns: Vec<C>, size: usize) -> ReadPool<C> {
        ReadPool { conns: Mutex::new(conns), permits: Arc::new(Semaphore::new(size)) }
    }

    fn take(&self) -> Option<C> {
        self.conns.lock().expect("reader pool lock").pop()
    }

    fn put(&self, c: C) {
        self.conns.lock().expect("reader pool lock").push(c);
    }
}

enum Readers {
    Sqlite(ReadPool<Connection>),
    /// Sessions made as needed, and made anew after a lost connection.
    Postgres(ReadPool<sql::PgSession>, Box<::postgres::Config>),
}

impl Drop for Readers {
    fn drop(&mut self) {
        // A PostgreSQL client owns a runtime, which may not be dropped on
        // a thread that drives async tasks (the store's last handle often is).
        if let Readers::Postgres(pool, _) = self {
            let sessions = std::mem::take(&mut *pool.conns.lock().expect("reader pool lock"));
            if !sessions.is_empty() {
                let _ = std::thread::Builder::new().name("store-readers-close".into()).spawn(move || drop(sessions));
            }
        }
    }
}

impl Readers {
    fn permits(&self) -> Arc<Semaphore> {
        match self {
            Readers::Sqlite(p) => p.permits.clone(),
            Readers::Postgres(p, _) => p.permits.clone(),
        }
    }
}

/// Where the data lives.
enum Location {
    File {
        path: PathBuf,
        /// Held while the store is open: one gateway per data directory.
        _lock: std::fs::File,
    },
    Postgres {
        /// The URL without its password.
        url: String,
        /// Ends the thread that listens for other gateways' commits.
        stop_listening: Arc<std::sync::atomic::AtomicBool>,
    },
}

/// The store over the SQL layer: the writer thread's queue and a read
/// pool, on the embedded SQLite file or on a PostgreSQL database shared
/// by several gateways.
pub struct SqlStore {
    writer: mpsc::Sender<writer::Request>,
    /// For what reads compute at request time (SLA clocks need calendars).
    rules: SharedRules,
    /// The writer's earliest timer in epoch milliseconds (`i64::MAX`: none).
    next_timer: Arc<AtomicI64>,
    outbox_wakeup: Arc<tokio::sync::Notify>,
    feed: ChangeFeed,
    readers: Arc<Readers>,
    location: Arc<Location>,
    silence_ids: SilenceIds,
}

impl Drop for SqlStore {
    fn drop(&mut self) {
        if let Location::Postgres { stop_listening, .. } = &*self.location {
            stop_listening.store(true, Ordering::Relaxed);
        }
    }
}

impl SqlStore {
    /// Open (creating if needed) the database under `data_dir`, apply
    /// migrations and start the writer thread.
    pub fn open(
        data_dir: &Path,
        cfg: StoreConfig,
        rules: SharedRules,
        audience: crate::model::notification::Audience,
        now: Timestamp,
    ) -> Result<SqlStore, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| StoreError::DataDir { path: data_dir.to_path_buf(), source })?;
        let lock = lock_data_dir(data_dir)?;
        let path = data_dir.join(DB_FILE);
        let mut conn = open_writer(&path, &cfg)?;
        // The lock says no other process delivers from this database, so
        // the leases a previous run left (a crash, a kill -9) are ours to
        // hand back: pending pages go out now, not when the leases expire.
        let released = outbox::release_all(&sql::Connection::sqlite(&conn), now, None)?;
        if released > 0 {
            tracing::info!(notifications = released, "released notification leases left by the previous run");
        }
        let silence_ids = SilenceIds::new(schema::realm(&conn)?);
        let size_limit = bound_size(&mut conn, &cfg, &path)?;
        let wal_share = size_limit.as_ref().map_or(WAL_RESTART_BYTES, |l| l.wal_share);
        // The first commit after the writer restarts the WAL trims the file
        // back to the share.
        conn.pragma_update(None, "journal_size_limit", wal_share as i64)?;
        let checkpoints = Connection::open(&path)?;
        checkpoints.busy_timeout(BUSY_TIMEOUT)?;
        let readers = open_readers(&path, cfg.read_connections)?;

        // Load the writer's in-memory state here, so a store that cannot
        // start fails `open` instead of every write later.
        let current = rules.read().expect("rules lock").clone();
        let writer_state = state::WriterState::load(&sql::Connection::sqlite(&conn), current, audience, now)?;
        let wal = embedded::WalBound { path: PathBuf::from(format!("{}-wal", path.display())), share: wal_share };
        let (stop_checkpoints, stopped) = std::sync::mpsc::channel::<()>();
        let checkpoint_wal = wal.clone();
        let checkpointer = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || checkpointer(checkpoints, stopped, &checkpoint_wal))
            .map_err(|e| StoreError::Corrupt(format!("cannot start the checkpoint thread: {e}")))?;
        let stop = move || {
            let _ = stop_checkpoints.send(());
            let _ = checkpointer.join();
        };
        let db = embedded::Embedded::new(conn, size_limit, wal, stop);
        let readers = Readers::Sqlite(ReadPool::new(readers, cfg.read_connections));
        SqlStore::start(db, writer_state, rules, readers, Location::File { path, _lock: lock }, silence_ids)
    }

    /// The store's handle, with its writer thread started on `db`.
    fn start<D: writer::WriteDb + Send + 'static>(
        db: D,
        writer_state: state::WriterState,
        rules: SharedRules,
        readers: Readers,
        location: Location,
        silence_ids: SilenceIds,
    ) -> Result<SqlStore, StoreError> {
        let (tx, rx) = mpsc::channel(4096);
        let shared = writer::Shared {
            rules: rules.clone(),
            next_timer: Arc::new(AtomicI64::new(writer_state.timers.next_due().map_or(i64::MAX, ms))),
            outbox_wakeup: Arc::new(tokio::sync::Notify::new()),
            feed: ChangeFeed::default(),
        };
        let store = SqlStore {
            writer: tx,
            rules,
            next_timer: shared.next_timer.clone(),
            outbox_wakeup: shared.outbox_wakeup.clone(),
            feed: shared.feed.clone(),
            readers: Arc::new(readers),
            location: Arc::new(location),
            silence_ids,
        };
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer::run(db, writer_state, rx, shared))
            .map_err(|e| StoreError::Corrupt(format!("cannot start the writer thread: {e}")))?;
        Ok(store)
    }

    /// Open a PostgreSQL database that other gateways may share: apply
    /// migrations (under an advisory lock), load the writer's state, and
    /// start the writer and the thread that listens for others' commits.
    pub fn open_postgres(
        url: &str,
        cfg: StoreConfig,
        rules: SharedRules,
        audience: crate::model::notification::Audience,
        now: Timestamp,
    ) -> Result<SqlStore, StoreError> {
        let config = shared::parse_url(url)?;
        let session = shared::connect(&config)?;
        schema::migrate_postgres(&session)?;
        let silence_ids = SilenceIds::new(schema::realm_of(&session.connection())?);
        let gateway: Arc<str> = Arc::from(gateway_name());
        // Present before anything is leased: others leave this gateway's leases alone.
        let mut presence = config.connect(::postgres::NoTls).map_err(|e| shared::unreachable(&e))?;
        shared::announce(&mut presence, &gateway).map_err(|e| shared::classify(&e))?;
        let mut db = shared::SharedDb::new(config.clone(), session, gateway.clone());
        let current = rules.read().expect("rules lock").clone();
        let writer_state = db.load(current, audience, now)?;
        let stop_listening = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers = Readers::Postgres(ReadPool::new(Vec::new(), cfg.read_connections), Box::new(config.clone()));
        let location = Location::Postgres { url: redacted(url), stop_listening: stop_listening.clone() };
        let store = SqlStore::start(db, writer_state, rules, readers, location, silence_ids)?;
        let (feed, wakeup, name) = (store.feed.clone(), store.outbox_wakeup.clone(), gateway.clone());
        std::thread::Builder::new()
            .name("store-listen".into())
            .spawn(move || shared::listen(config, Some(presence), name, feed, wakeup, stop_listening))
            .map_err(|e| StoreError::Corrupt(format!("cannot start the listener thread: {e}")))?;
        tracing::info!(gateway = %gateway, "sharing the database with any other gateway on it");
        Ok(store)
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&sql::Connection<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        // The permit moves into the blocking task: if the caller goes away
        // the connection is still in use until the task gives it back.
        let permit = self.readers.permits().acquire_owned().await.map_err(|_| StoreError::Closed)?;
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            match &*readers {
                Readers::Sqlite(pool) => {
                    let conn = pool.take().ok_or(StoreError::Closed)?;
                    let result = f(&sql::Connection::sqlite(&conn));
                    pool.put(conn);
                    result
                }
                Readers::Postgres(pool, config) => {
                    let session = match pool.take() {
                        Some(s) if !s.is_closed() => s,
                        _ => shared::connect(config)?,
                    };
                    let result = f(&session.connection());
                    if !session.is_closed() {
                        pool.put(session);
                    }
                    result
                }
            }
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("reader task failed: {e}")))?
    }

    fn rules(&self) -> Arc<crate::rules::RuleSet> {
        self.rules.read().expect("rules lock").clone()
    }
}

/// The write connection, in WAL mode with the configured durability,
/// checked and migrated.
fn open_writer(path: &Path, cfg: &StoreConfig) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match cfg.synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        },
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "cache_size", -16_000)?; // KiB; larger caches cost more at each commit than they save
    // Not `temp_store = MEMORY`, though each request's SAVEPOINT copies the
    // pages it first changes into a statement journal that spills to a
    // temporary file past 64 KiB (a sixth of the writer's CPU for new
    // alerts): kept in memory, SQLite truncates that journal at the end of
    // every statement by walking it from its start, and with five million
    // alerts stored a request's statements spent 98 % of the writer there.
    check_integrity(&conn, cfg.integrity_check)?;
    schema::migrate(&mut conn)?;
    // Checkpoints run on their own thread (see `checkpointer`), so the
    // writer never stalls copying the WAL into a large database.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(conn)
}

/// `max_size` holds the database and its WAL: the WAL gets a share
/// (checkpointed and truncated back to it), the database the rest.
fn bound_size(conn: &mut Connection, cfg: &StoreConfig, path: &Path) -> Result<Option<SizeLimit>, StoreError> {
    let Some(max) = cfg.max_size else { return Ok(None) };
    let limit = SizeLimit::new(max as u64, path);
    let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let pages = ((limit.max - limit.wal_share) as i64 / page).max(1);
    // Never below what the file already holds, or nothing could be written at all.
    let _: i64 = conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| r.get(0))?;
    Ok(Some(limit))
}

fn open_readers(path: &Path, n: usize) -> Result<Vec<Connection>, StoreError> {
    (0..n)
        .map(|_| {
            let r = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
            )?;
            r.busy_timeout(BUSY_TIMEOUT)?;
            r.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            r.pragma_update(None, "cache_size", -4_000)?;
            Ok(r)
        })
        .collect()
}

#[async_trait::async_trait]
impl Backend for SqlStore {
    fn rules(&self) -> Arc<crate::rules::RuleSet> {
        SqlStore::rules(self)
    }

    fn describe(&self) -> String {
        match &*self.location {
            Location::File { path, .. } => format!("sqlite:{}", path.display()),
            Location::Postgres { url, .. } => url.clone(),
        }
    }

    async fn write(&self, op: Op, source: Option<Arc<str>>) -> Result<Reply, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(writer::Request::Write { op: Box::new(op), source, reply: writer::ReplyTo(reply) })
            .await
            .map_err(|_| StoreError::Closed)?;
        let (result, spent) = rx.await.map_err(|_| StoreError::Closed)?;
        // Freed here, on the caller's task: the writer thread has better to do.
        drop(spent);
        result
    }

    async fn close(&self, now: Timestamp) {
        let (done, rx) = oneshot::channel();
        if self.writer.send(writer::Request::Close { now, done }).await.is_ok() {
            let _ = rx.await;
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if self.writer.is_closed() {
            return Err(StoreError::Closed);
        }
        self.read(|c| Ok(c.query_row("SELECT 1", sql::params![], |r| r.get::<i64>(0)).map(|_| ())?)).await
    }

    fn next_timer(&self) -> Option<Timestamp> {
        match self.next_timer.load(Ordering::Relaxed) {
            i64::MAX => None,
            v => Timestamp::from_millisecond(v).ok(),
        }
    }

    fn outbox_wakeup(&self) -> Arc<tokio::sync::Notify> {
        self.outbox_wakeup.clone()
    }

    fn feed(&self) -> &ChangeFeed {
        &self.feed
    }

    fn silence_ids(&self) -> SilenceIds {
        self.silence_ids
    }

    async fn list_alerts(&self, q: AlertQuery) -> Result<AlertPage, StoreError> {
        self.read(move |c| reader::list_alerts(c, &q)).await
    }

    async fn firing_alerts(&self) -> Result<Vec<AlertRecord>, StoreError> {
        self.read(reader::firing_alerts).await
    }

    async fn get_alert(&self, fp: Fingerprint) -> Result<Option<AlertRecord>, StoreError> {
        self.read(move |c| reader::get_alert(c, &fp)).await
    }

    async fn count_alerts(&self) -> Result<(u64, u64), StoreError> {
        self.read(reader::count_alerts).await
    }

    async fn list_incidents(&self, q: IncidentQuery, count: bool) -> Result<(IncidentPage, Option<u64>), StoreError> {
        self.read(move |c| {
            let total = if count { Some(reader::count_incidents(c, &q)?) } else { None };
            Ok((reader::list_incidents(c, &q)?, total))
        })
        .await
    }

    async fn sla_views(&self, ids: Vec<i64>, now: Timestamp) -> Result<HashMap<i64, SlaView>, StoreError> {
        let rules = self.rules();
        self.read(move |c| {
            let mut out = HashMap::with_capacity(ids.len());
            for id in ids {
                if let Some(v) = sla::sla_view(c, id, &rules, now)? {
                    out.insert(id, v);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn get_incident(
        &self,
        id: i64,
        page: DetailPage,
        now: Timestamp,
    ) -> Result<Option<IncidentDetail>, StoreError> {
        let rules = self.rules();
        self.read(move |c| reader::get_incident(c, id, &rules, page, now)).await
    }

    async fn list_silences(
        &self,
        active_at: Option<Timestamp>,
        limit: Option<usize>,
    ) -> Result<Vec<Silence>, StoreError> {
        self.read(move |c| reader::silences(c, active_at, limit)).await
    }

    async fn get_silence(&self, id: i64) -> Result<Option<Silence>, StoreError> {
        self.read(move |c| Ok(reader::silences_where(c, "id = ?1", id)?.into_iter().next())).await
    }

    async fn list_changes(
        &self,
        service: Option<String>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
        self.read(move |c| changes::list(c, service.as_deref(), before, limit)).await
    }

    async fn list_problems(&self, q: ProblemQuery) -> Result<Vec<Problem>, StoreError> {
        self.read(move |c| problems::list(c, &q)).await
    }

    async fn get_problem(&self, id: i64) -> Result<Option<ProblemDetail>, StoreError> {
        self.read(move |c| problems::detail(c, id)).await
    }

    async fn list_action_items(
        &self,
        q: crate::store::ActionItemQuery,
    ) -> Result<Vec<crate::model::action_item::ActionItem>, StoreError> {
        self.read(move |c| action_items::list(c, &q)).await
    }

    async fn get_review(&self, incident_id: i64) -> Result<Option<crate::model::review::Review>, StoreError> {
        self.read(move |c| reviews::get(c, incident_id)).await
    }

    async fn next_notification_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.read(|c| {
            let due: Option<i64> = c.query_row(&outbox::NEXT_DUE, sql::params![], |r| r.get(0))?;
            due.map(ts).transpose()
        })
        .await
    }

    async fn list_notifications(&self, q: NotificationQuery) -> Result<Vec<NotificationView>, StoreError> {
        self.read(move |c| outbox::list(c, &q)).await
    }

    async fn outbox_depth(&self, now: Timestamp) -> Result<(u64, Option<f64>), StoreError> {
        self.read(move |c| outbox::depth(c, now)).await
    }

    async fn list_audit(&self, q: AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(move |c| audit::list(c, &q)).await
    }

    async fn sla_report(&self, from: Timestamp, to: Timestamp, group: ReportGroup) -> Result<SlaReport, StoreError> {
        let review_due = self.rules().reviews.due_within.signed();
        // Action items count as overdue as of the end of the range.
        self.read(move |c| reports::sla(c, (from, to), group, review_due, to)).await
    }

    async fn heartbeats(&self) -> Result<BTreeMap<String, HeartbeatStored>, StoreError> {
        self.read(heartbeats::stored).await
    }

    async fn overrides(
        &self,
        schedule: Option<String>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<crate::model::oncall::ScheduleOverride>, StoreError> {
        self.read(move |c| oncall::overrides(c, schedule.as_deref(), from, to)).await
    }

    async fn calendar_feeds(&self) -> Result<Vec<crate::model::oncall::CalendarFeed>, StoreError> {
        self.read(oncall::feeds).await
    }

    async fn calendar_feed_by_key(
        &self,
        key_hash: String,
    ) -> Result<Option<crate::model::oncall::CalendarFeed>, StoreError> {
        self.read(move |c| oncall::feed_by_key(c, &key_hash)).await
    }

    async fn stored_facts(&self, now: Timestamp) -> Result<StoredFacts, StoreError> {
        let location = self.location.clone();
        self.read(move |c| {
            let path = match &*location {
                Location::File { path, .. } => Some(path.as_path()),
                Location::Postgres { .. } => None,
            };
            gauges::read(c, path, now)
        })
        .await
    }
}

/// Refuse a damaged database before anything is written to it.
fn check_integrity(conn: &Connection, how: IntegrityCheck) -> Result<(), StoreError> {
    let pragma = match how {
        IntegrityCheck::Off => return Ok(()),
        IntegrityCheck::Quick => "PRAGMA quick_check(20)",
        IntegrityCheck::Full => "PRAGMA integrity_check(20)",
    };
    let started = std::time::Instant::now();
    let run = || -> rusqlite::Result<Vec<String>> {
        conn.prepare(pragma)?.query_map([], |r| r.get::<_, String>(0))?.collect()
    };
    let problems = match run() {
        Ok(problems) => problems,
        // Damage the check cannot step over (a b-tree page of garbage) is
        // its answer too, not an error of its own.
        Err(rusqlite::Error::SqliteFailure(f, msg)) if f.code == rusqlite::ErrorCode::DatabaseCorrupt => {
            vec![msg.unwrap_or_else(|| "database disk image is malformed".into())]
        }
        Err(e) => return Err(e.into()),
    };
    if problems.len() == 1 && problems[0] == "ok" {
        tracing::info!(check = pragma, ms = started.elapsed().as_millis() as u64, "database integrity ok");
        return Ok(());
    }
    Err(StoreError::Corrupt(format!(
        "the database fails {pragma}: {}; restore a backup (alertgate backup) or repair it with sqlite3 .recover",
        problems.join("; ")
    )))
}

/// This gateway's name among those sharing a database: host, process and
/// a random part (a restarted gateway is a new one; its leases expire).
fn gateway_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let mut random = [0u8; 3];
    let _ = getrandom::fill(&mut random);
    let host = if host.is_empty() { "gateway".to_owned() } else { host };
    format!("{host}-{}-{}", std::process::id(), hex::encode(random))
}

/// A database URL with its password hidden, for messages and logs.
pub fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(a database URL that does not parse)".to_owned(),
    }
}

/// Apply the schema migrations a PostgreSQL database at `url` has not had;
/// how many were applied.
pub fn migrate_postgres(url: &str) -> Result<usize, StoreError> {
    let client = postgres::Client::connect(url, postgres::NoTls)
        .map_err(|e| StoreError::Database(format!("cannot connect to {}: {e}", redacted(url))))?;
    schema::migrate_postgres(&sql::PgSession::new(client))
}

/// Copy the database at `db` to `to` while the gateway may be running: one
/// read transaction sees a consistent state (WAL readers do not block the
/// writer), copied with SQLite's backup API, then checked.
pub fn backup(db: &Path, to: &Path) -> Result<u64, StoreError> {
    if to.exists() {
        return Err(StoreError::Conflict(format!("{} exists; choose a new file", to.display())));
    }
    let src = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    src.busy_timeout(BUSY_TIMEOUT)?;
    let mut dst = Connection::open(to)?;
    {
        let b = rusqlite::backup::Backup::new(&src, &mut dst)?;
        // All pages in one step: one snapshot, never restarted by concurrent writes.
        match b.step(-1)? {
            rusqlite::backup::StepResult::Done => {}
            other => return Err(StoreError::CommitFailed(format!("backup did not complete: {other:?}"))),
        }
    }
    let ok: String = dst.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if ok != "ok" {
        return Err(StoreError::Corrupt(format!("the copy fails its check: {ok}")));
    }
    dst.pragma_update(None, "journal_mode", "DELETE")?;
    Ok(std::fs::metadata(to).map(|m| m.len()).unwrap_or(0))
}

/// Prepared statements a connection keeps. Opening an incident alone runs
/// about forty distinct statements (its clocks, problems, changes,
/// notifications, timeline); with rusqlite's default of 16 the cache
/// thrashed and an alert storm re-parsed most statements each time: 96 %
/// of its CPU on the writer, a third of that in SQLite's parser and
/// planner (perf, examples/outbox_bench.rs).
const STATEMENT_CACHE: usize = 256;

/// How long a connection waits for a lock another holds.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// WAL size past which the writer restarts it between batches, so the WAL
/// cannot grow without bound under a constant write load.
const WAL_RESTART_BYTES: u64 = 64 << 20;

/// `store.max_size` over the database file and its WAL together.
pub(crate) struct SizeLimit {
    pub max: u64,
    /// What the WAL may take before the writer restarts it.
    pub wal_share: u64,
    db: PathBuf,
    wal: PathBuf,
}

impl SizeLimit {
    fn new(max: u64, db: &Path) -> SizeLimit {
        SizeLimit {
            max,
            wal_share: (max / 4).clamp(256 << 10, WAL_RESTART_BYTES),
            db: db.to_path_buf(),
            wal: PathBuf::from(format!("{}-wal", db.display())),
        }
    }

    /// True when the files together have reached the limit.
    pub fn reached(&self) -> bool {
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        size(&self.db) + size(&self.wal) >= self.max
    }
}

/// Copy the WAL into the database in the background, once a second: a
/// passive checkpoint never blocks the writer or readers. It never waits
/// for the writer either: one that did (a TRUNCATE past the WAL's share,
/// formerly) almost never found it between batches under a constant load,
/// copied nothing meanwhile, and the WAL grew without bound (6 GB within
/// minutes of new alerts), each read searching it for its pages. Restarting
/// the WAL is the writer's ([`embedded::WalBound`]); past its share this
/// thread leaves the WAL to it, as a checkpoint under way would make the
/// writer's attempt fail.
fn checkpointer(conn: Connection, stop: std::sync::mpsc::Receiver<()>, wal: &embedded::WalBound) {
    loop {
        match stop.recv_timeout(std::time::Duration::from_secs(1)) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        if wal.past_share() {
            continue;
        }
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "background checkpoint failed");
        }
    }
}

pub(crate) fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

pub(crate) fn ts(ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(ms).map_err(|e| StoreError::Corrupt(format!("time {ms}: {e}")))
}

impl From<sql::Error> for StoreError {
    fn from(e: sql::Error) -> Self {
        match e {
            sql::Error::Sqlite(e) => e.into(),
            sql::Error::Postgres(e) => shared::classify(&e),
            e @ sql::Error::NoRows => StoreError::Database(e.to_string()),
            sql::Error::Conversion(m) => StoreError::Corrupt(m),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, msg) => match f.code {
                rusqlite::ErrorCode::DiskFull => {
                    StoreError::DiskFull(msg.clone().unwrap_or_else(|| "database or disk is full".into()))
                }
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                    StoreError::Busy(e.to_string())
                }
                _ => StoreError::Database(e.to_string()),
            },
            _ => StoreError::Database(e.to_string()),
        }
    }
}
