//! The store: the only owner of the SQLite file.
//!
//! One writer thread holds the write connection and commits concurrent
//! requests together (group commit, see `writer`); a small pool of read-only
//! connections serves queries. SQLite runs in WAL mode with
//! `synchronous=FULL` by default, so an answered write survives a crash or a
//! power cut. Everything else calls the typed methods of [`Store`].
mod audit;
mod changes;
mod feed;
mod gauges;
mod incidents;
mod ops;
mod outbox;
mod problems;
mod reader;
mod reports;
mod schema;
mod sender_ack;
pub mod settings;
mod silences;
mod sla;
mod state;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::engine::silence::Silence;
use crate::model::change::{Change, NewChange};
use crate::model::incident::{Incident, IncidentAction, IncidentState, Priority, TimelineEvent};
use crate::model::notification::NotificationState;
use crate::model::problem::Problem;
use crate::model::{AlertRecord, AlertStatus, AlertUpdate, Fingerprint, Observation};
use crate::rules::RuleSet;
use crate::rules::matcher::Matcher;
use settings::{IntegrityCheck, StoreConfig, Synchronous};

pub use crate::engine::silence::SilenceSpec;
pub use audit::{AuditEntry, AuditQuery};
pub use feed::{ChangeFeed, FeedState};
pub use outbox::{DeliveryRecord, NotificationView};
pub use problems::{LinkedIncident, NewProblem, ProblemDetail, ProblemQuery, ProblemUpdate};
pub use reports::{RecurringProblem, ReportGroup, ReportRow, SlaReport};
pub use schema::VERSION as SCHEMA_VERSION;
pub use sla::{ClockView, EscalationView, SlaView};
pub use state::SYSTEM as SYSTEM_ACTOR;

/// The rules in force, swapped whole on reload; the writer picks up a new
/// set at its next batch.
pub type SharedRules = Arc<RwLock<Arc<RuleSet>>>;

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "alertgate.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    #[error("the disk is full: {0}")]
    DiskFull(String),
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error(
        "another alertgate is serving the data directory {0} (it holds the lock on its alertgate.lock); \
         stop it first, or give this one its own --data-dir"
    )]
    Locked(PathBuf),
    #[error("database schema version {found} is newer than this build supports ({supported}); upgrade alertgate")]
    TooNew { found: usize, supported: usize },
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    /// The transaction holding this request could not be committed.
    #[error("commit failed: {0}")]
    CommitFailed(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The request asks for something the data does not allow (a 400).
    #[error("{0}")]
    Invalid(String),
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    /// The same error for every request of a failed batch.
    fn duplicate(&self) -> StoreError {
        match self {
            StoreError::DiskFull(m) => StoreError::DiskFull(m.clone()),
            StoreError::Closed => StoreError::Closed,
            StoreError::NotFound(m) => StoreError::NotFound(m.clone()),
            StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
            StoreError::Invalid(m) => StoreError::Invalid(m.clone()),
            StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
            other => StoreError::CommitFailed(other.to_string()),
        }
    }

    fn classify(e: rusqlite::Error) -> StoreError {
        if let rusqlite::Error::SqliteFailure(f, msg) = &e
            && f.code == rusqlite::ErrorCode::DiskFull
        {
            return StoreError::DiskFull(msg.clone().unwrap_or_else(|| "database or disk is full".into()));
        }
        StoreError::Sqlite(e)
    }

    /// What a client is told; no SQLite internals.
    pub fn public_message(&self) -> &'static str {
        match self {
            StoreError::DiskFull(_) => "storage is full: the request was not applied; retry later",
            StoreError::Closed => "the gateway is shutting down: the request was not applied; retry",
            StoreError::CommitFailed(_) => "storage commit failed: the request was not applied; retry later",
            StoreError::NotFound(_) => "not found",
            StoreError::Conflict(_) => "conflict",
            StoreError::Invalid(_) => "invalid request",
            _ if self.is_unavailable() => "storage is busy: the request was not applied; retry",
            _ => "internal storage error; see the gateway's log",
        }
    }

    /// True when the request may succeed if tried again later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::DiskFull(_) | StoreError::Closed | StoreError::CommitFailed(_))
            || matches!(self, StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
                if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
    }
}

/// What one ingest request did, by observation.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct IngestOutcome {
    pub created: u64,
    pub repeated: u64,
    pub resolved: u64,
    pub refired: u64,
    pub stale: u64,
    /// Acknowledge/resolve events for fingerprints never seen.
    pub unknown: u64,
}

impl IngestOutcome {
    fn count(&mut self, o: Observation) {
        match o {
            Observation::Created => self.created += 1,
            Observation::Repeated => self.repeated += 1,
            Observation::Resolved => self.resolved += 1,
            Observation::Refired => self.refired += 1,
            Observation::Stale => self.stale += 1,
        }
    }

    fn count_known(&mut self, known: bool, o: Observation) {
        if known { self.count(o) } else { self.unknown += 1 }
    }

    /// Add the outcome of another part of the same request.
    pub fn add(&mut self, o: &IngestOutcome) {
        self.created += o.created;
        self.repeated += o.repeated;
        self.resolved += o.resolved;
        self.refired += o.refired;
        self.stale += o.stale;
        self.unknown += o.unknown;
    }

    pub fn total(&self) -> u64 {
        self.created + self.repeated + self.resolved + self.refired + self.stale + self.unknown
    }
}

/// Filters for listing alerts.
#[derive(Debug, Default, Clone)]
pub struct AlertQuery {
    pub status: Option<AlertStatus>,
    pub source: Option<String>,
    pub fingerprint: Option<Fingerprint>,
    /// Only alerts a silence or an inhibition keeps from incidents (true),
    /// or only the others (false).
    pub muted: Option<bool>,
    pub matchers: Vec<Matcher>,
    /// Continue below this row id (from a previous page's cursor).
    pub before: Option<i64>,
    pub limit: usize,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertPage {
    pub alerts: Vec<AlertRecord>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Filters for listing incidents.
#[derive(Debug, Default, Clone)]
pub struct IncidentQuery {
    pub states: Vec<IncidentState>,
    pub priorities: Vec<Priority>,
    pub service: Option<String>,
    pub assignee: Option<String>,
    pub rule: Option<String>,
    /// Created at or after.
    pub since: Option<Timestamp>,
    /// Created before.
    pub until: Option<Timestamp>,
    /// Incidents with a clock in this SLA condition.
    pub sla: Option<SlaFilter>,
    /// Titles containing this text (case-insensitive for ASCII).
    pub title: Option<String>,
    pub sort: IncidentSort,
    /// Where the previous page ended: its last row's sort key and id
    /// (`next_cursor` of that page). Pages do not shift when incidents open
    /// meanwhile.
    pub cursor: Option<IncidentCursor>,
    pub limit: usize,
}

/// A position in an incident listing: the sort key and id of the last row
/// seen. Written as `ID` (creation order), `P2:ID` (priority) or
/// `MILLIS:ID` (update time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncidentCursor {
    pub key: i64,
    pub id: i64,
}

impl IncidentCursor {
    pub fn parse(s: &str) -> Option<Self> {
        match s.split_once(':') {
            None => Some(IncidentCursor { key: 0, id: s.parse().ok()? }),
            Some((k, id)) => {
                let key = match Priority::parse(k) {
                    Some(p) => p as i64,
                    None => k.parse().ok()?,
                };
                Some(IncidentCursor { key, id: id.parse().ok()? })
            }
        }
    }
}

/// `?sla=`: incidents with at least one clock in a state, or at risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaFilter {
    State(crate::sla::clock::ClockState),
    /// Running or paused, past a warning, not breached.
    AtRisk,
}

impl SlaFilter {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "at_risk" => Some(SlaFilter::AtRisk),
            _ => crate::sla::clock::ClockState::parse(s).map(SlaFilter::State),
        }
    }

    fn condition(self) -> String {
        use crate::sla::clock::ClockState;
        match self {
            SlaFilter::State(state) => state.sql("s"),
            SlaFilter::AtRisk => {
                format!("({} OR {}) AND s.warned != '[]'", ClockState::Running.sql("s"), ClockState::Paused.sql("s"))
            }
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum IncidentSort {
    /// Newest first.
    #[default]
    CreatedDesc,
    CreatedAsc,
    /// Most urgent first, newest first within a priority.
    Priority,
    /// Most recently changed first.
    UpdatedDesc,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncidentPage {
    pub incidents: Vec<Incident>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// An incident with its SLA, escalation, problems, suspected changes, and
/// a page of its alerts and timeline.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: Incident,
    /// Absent when no SLA policy applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sla: Option<SlaView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation: Option<EscalationView>,
    /// The workaround of the known error this incident is linked to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workaround: Option<String>,
    pub problems: Vec<Problem>,
    /// Changes of its service it started during or soon after.
    pub suspected_changes: Vec<Change>,
    pub alerts: Vec<IncidentAlert>,
    /// Pass as `alerts_cursor` for the next alerts; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts_next_cursor: Option<String>,
    pub timeline: Vec<TimelineEvent>,
    /// Pass as `timeline_cursor` for the next entries; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline_next_cursor: Option<String>,
}

/// Which part of an incident's alerts and timeline a detail shows: an
/// incident of many alerts is answered in pages, not in one huge document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetailPage {
    pub alerts_limit: usize,
    /// After this (joined at, alert row id), in joining order.
    pub alerts_after: Option<(i64, i64)>,
    pub timeline_limit: usize,
    /// After this entry id, in the chosen order.
    pub timeline_after: Option<i64>,
    pub timeline_newest_first: bool,
}

impl DetailPage {
    pub const MAX_ALERTS: usize = 1000;
    pub const MAX_TIMELINE: usize = 5000;
}

impl Default for DetailPage {
    fn default() -> Self {
        DetailPage {
            alerts_limit: 500,
            alerts_after: None,
            timeline_limit: 1000,
            timeline_after: None,
            timeline_newest_first: false,
        }
    }
}

/// An alert of an incident, with whether it still fires there.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncidentAlert {
    #[serde(flatten)]
    pub alert: AlertRecord,
    pub joined_at: Timestamp,
    /// False once the alert resolved (the alert's own `status` may have
    /// moved on since, if it fired again into another incident).
    pub firing: bool,
}

/// Alerts past which a batch's encoding runs on a blocking thread.
const LARGE_BATCH: usize = 500;

/// A cheap, cloneable handle on the store.
#[derive(Clone)]
pub struct Store {
    writer: mpsc::Sender<ops::Request>,
    /// For what reads compute at request time (SLA clocks need calendars).
    rules: SharedRules,
    /// The writer's earliest timer in epoch milliseconds (`i64::MAX`: none).
    next_timer: Arc<AtomicI64>,
    /// Woken after each commit that queued a notification.
    outbox_wakeup: Arc<tokio::sync::Notify>,
    /// Bumped after each commit that changed rows (live views).
    feed: ChangeFeed,
    /// The caller's address, recorded in the audit log (see [`Store::from`]).
    source: Option<Arc<str>>,
    readers: Arc<ReadPool>,
    path: Arc<PathBuf>,
    /// Held while the store is open: one gateway per data directory.
    _lock: Arc<std::fs::File>,
}

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

struct ReadPool {
    conns: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl Store {
    /// Open (creating if needed) the database under `data_dir`, apply
    /// migrations and start the writer thread.
    pub fn open(
        data_dir: &Path,
        cfg: StoreConfig,
        rules: SharedRules,
        subscriptions: crate::model::notification::Subscriptions,
    ) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| StoreError::DataDir { path: data_dir.to_path_buf(), source })?;
        let lock = lock_data_dir(data_dir)?;
        let path = data_dir.join(DB_FILE);
        let mut conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(
            None,
            "synchronous",
            match cfg.synchronous {
                Synchronous::Full => "FULL",
                Synchronous::Normal => "NORMAL",
            },
        )?;
        conn.pragma_update(None, "busy_timeout", 5000)?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "cache_size", -16_000)?; // KiB; larger caches cost more at each commit than they save
        check_integrity(&conn, cfg.integrity_check)?;
        schema::migrate(&mut conn)?;
        // The lock says no other process delivers from this database, so
        // the leases a previous run left (a crash, a kill -9) are ours to
        // hand back: pending pages go out now, not when the leases expire.
        let released = outbox::release_all(&conn, crate::clock::now())?;
        if released > 0 {
            tracing::info!(notifications = released, "released notification leases left by the previous run");
        }
        // `max_size` holds the database and its WAL: the WAL gets a share
        // (checkpointed and truncated back to it), the database the rest.
        let size_limit = cfg.max_size.map(|max| SizeLimit::new(max as u64, &path));
        if let Some(limit) = &size_limit {
            let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            let pages = ((limit.max - limit.wal_share) as i64 / page).max(1);
            conn.pragma_update(None, "journal_size_limit", limit.wal_share as i64)?;
            // Never below what the file already holds, or nothing could be written at all.
            let _: i64 = conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| r.get(0))?;
        }
        // Checkpoints run on their own thread (see `checkpointer`), so the
        // writer never stalls copying the WAL into a large database.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let checkpoints = Connection::open(&path)?;
        checkpoints.pragma_update(None, "busy_timeout", 5000)?;

        let mut readers = Vec::with_capacity(cfg.read_connections);
        for _ in 0..cfg.read_connections {
            let r = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
            )?;
            r.pragma_update(None, "busy_timeout", 5000)?;
            r.pragma_update(None, "cache_size", -4_000)?;
            readers.push(r);
        }

        // Load the writer's in-memory state here, so a store that cannot
        // start fails `open` instead of every write later.
        let current = rules.read().expect("rules lock").clone();
        let writer_state = state::WriterState::load(&conn, current, subscriptions, crate::clock::now())?;
        let (stop_checkpoints, stopped) = std::sync::mpsc::channel::<()>();
        let wal_share = size_limit.as_ref().map_or(WAL_RESTART_BYTES, |l| l.wal_share);
        let checkpointer = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || checkpointer(checkpoints, stopped, wal_share))
            .map_err(|e| StoreError::Corrupt(format!("cannot start the checkpoint thread: {e}")))?;
        let (tx, rx) = mpsc::channel(4096);
        let writer_rules = rules.clone();
        let next_timer = Arc::new(AtomicI64::new(writer_state.timers.next_due().map_or(i64::MAX, ms)));
        let writer_next_timer = next_timer.clone();
        let outbox_wakeup = Arc::new(tokio::sync::Notify::new());
        let writer_wakeup = outbox_wakeup.clone();
        let feed = ChangeFeed::default();
        let writer_feed = feed.clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                // The last checkpoint at close must not race the background one.
                let stop = move || {
                    let _ = stop_checkpoints.send(());
                    let _ = checkpointer.join();
                };
                let shared = writer::Shared {
                    rules: writer_rules,
                    next_timer: writer_next_timer,
                    outbox_wakeup: writer_wakeup,
                    size_limit,
                    feed: writer_feed,
                };
                writer::run(conn, writer_state, rx, shared, stop)
            })
            .map_err(|e| StoreError::Corrupt(format!("cannot start the writer thread: {e}")))?;
        Ok(Store {
            writer: tx,
            rules,
            next_timer,
            outbox_wakeup,
            feed,
            source: None,
            readers: Arc::new(ReadPool {
                permits: Arc::new(Semaphore::new(readers.len())),
                conns: Mutex::new(readers),
            }),
            path: Arc::new(path),
            _lock: Arc::new(lock),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The "something changed" feed of live views.
    pub fn feed(&self) -> &ChangeFeed {
        &self.feed
    }

    /// The same store, recording `source` as the caller's address of the
    /// mutations made through it.
    pub fn from(&self, source: Option<std::net::IpAddr>) -> Store {
        let mut s = self.clone();
        s.source = source.map(|ip| Arc::from(ip.to_string()));
        s
    }

    async fn write(&self, op: ops::Op) -> Result<ops::Reply, StoreError> {
        let (reply, rx) = oneshot::channel();
        let source = self.source.as_deref().map(str::to_owned);
        self.writer
            .send(ops::Request::Write { op: Box::new(op), source, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Deduplicate and durably commit a request's alerts. Returns once they
    /// are on disk; nothing of the request is stored on error.
    pub async fn ingest(&self, updates: Vec<AlertUpdate>, now: Timestamp) -> Result<IngestOutcome, StoreError> {
        self.ingest_from(updates, now, None).await
    }

    /// [`Store::ingest`] for a named sender (its token's name), which a
    /// PagerDuty `acknowledge` names as who acknowledged the incident.
    pub async fn ingest_from(
        &self,
        updates: Vec<AlertUpdate>,
        now: Timestamp,
        sender: Option<String>,
    ) -> Result<IngestOutcome, StoreError> {
        let encode = |updates: &[AlertUpdate]| -> Vec<Option<(String, String)>> {
            updates
                .iter()
                .map(|u| match u {
                    AlertUpdate::Observe(a) => Some((
                        serde_json::to_string(&a.labels).unwrap_or_else(|_| "{}".into()),
                        serde_json::to_string(&a.annotations).unwrap_or_else(|_| "{}".into()),
                    )),
                    _ => None,
                })
                .collect()
        };
        // A large batch is encoded off the async workers, which other
        // senders' requests need meanwhile.
        let (updates, encoded) = if updates.len() > LARGE_BATCH {
            tokio::task::spawn_blocking(move || {
                let encoded = encode(&updates);
                (updates, encoded)
            })
            .await
            .map_err(|e| StoreError::Corrupt(format!("encoding task failed: {e}")))?
        } else {
            let encoded = encode(&updates);
            (updates, encoded)
        };
        match self.write(ops::Op::Ingest { updates, encoded, now, sender }).await? {
            ops::Reply::Ingest(o) => Ok(o),
            _ => unreachable!("ingest answers with an outcome"),
        }
    }

    /// Resolve firing alerts whose sender stopped repeating them and run
    /// the correlation timers; returns how many alerts expired.
    pub async fn tick(&self, now: Timestamp) -> Result<usize, StoreError> {
        match self.write(ops::Op::Tick { now }).await? {
            ops::Reply::Tick(n) => Ok(n),
            _ => unreachable!("tick answers with a count"),
        }
    }

    /// When the earliest SLA milestone or escalation step falls due, so the
    /// caller can tick then rather than on its next regular round.
    pub fn next_timer(&self) -> Option<Timestamp> {
        match self.next_timer.load(Ordering::Relaxed) {
            i64::MAX => None,
            v => Timestamp::from_millisecond(v).ok(),
        }
    }

    pub fn outbox_wakeup(&self) -> Arc<tokio::sync::Notify> {
        self.outbox_wakeup.clone()
    }

    /// When the earliest pending notification is due.
    pub async fn next_notification_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.read(|c| {
            let due: Option<i64> = c.query_row(
                &format!(
                    "SELECT min(next_attempt_at) FROM notifications WHERE {}",
                    NotificationState::Pending.sql("state")
                ),
                [],
                |r| r.get(0),
            )?;
            due.map(ts).transpose()
        })
        .await
    }

    pub async fn claim_notifications(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<crate::model::notification::OutboxItem>, StoreError> {
        match self.write(ops::Op::ClaimNotifications { now, lease_until, limit }).await? {
            ops::Reply::Claimed(items) => Ok(items),
            _ => unreachable!("a claim answers with rows"),
        }
    }

    /// Keep the rows of deliveries still in progress leased until `lease_until`.
    pub async fn renew_leases(&self, ids: Vec<i64>, lease_until: Timestamp) -> Result<(), StoreError> {
        self.done(ops::Op::RenewLeases { ids, lease_until }).await
    }

    pub async fn record_deliveries(
        &self,
        results: Vec<(i64, DeliveryRecord)>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.done(ops::Op::RecordDeliveries { results, now }).await
    }

    /// Send a failed (dead-letter) notification again now.
    pub async fn retry_notification(&self, id: i64, actor: String, now: Timestamp) -> Result<(), StoreError> {
        self.done(ops::Op::RetryNotification { id, actor, now }).await
    }

    /// Record a mutation made outside the store (a rule reload) in the audit log.
    pub async fn audit(&self, action: &str, actor: String, detail: serde_json::Value) -> Result<(), StoreError> {
        self.done(ops::Op::Audit { action: action.to_owned(), actor, detail }).await
    }

    pub async fn list_audit(&self, q: AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(move |c| audit::list(c, &q)).await
    }

    pub async fn list_notifications(
        &self,
        state: Option<NotificationState>,
        notifier: Option<String>,
        incident: Option<i64>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<NotificationView>, StoreError> {
        self.read(move |c| outbox::list(c, state, notifier.as_deref(), incident, before, limit)).await
    }

    /// Set the gauges of stored state (open incidents, clocks, compliance,
    /// problems, outbox, database size) for a scrape.
    pub async fn update_gauges(&self, now: Timestamp) -> Result<(), StoreError> {
        let path = self.path.clone();
        self.read(move |c| gauges::update(c, &path, now)).await
    }

    /// The SLA report of incidents created in `[from, to)`.
    pub async fn sla_report(
        &self,
        from: Timestamp,
        to: Timestamp,
        group: ReportGroup,
    ) -> Result<SlaReport, StoreError> {
        self.read(move |c| reports::sla(c, from, to, group)).await
    }

    /// Pending notifications and the age of the oldest, in seconds.
    pub async fn outbox_depth(&self, now: Timestamp) -> Result<(u64, Option<f64>), StoreError> {
        self.read(move |c| outbox::depth(c, now)).await
    }

    async fn done(&self, op: ops::Op) -> Result<(), StoreError> {
        self.write(op).await.map(|_| ())
    }

    pub async fn act(
        &self,
        id: i64,
        action: IncidentAction,
        actor: String,
        comment: Option<String>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.done(ops::Op::Act { id, action, actor, comment, now }).await
    }

    pub async fn assign(
        &self,
        id: i64,
        assignee: Option<String>,
        actor: String,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.done(ops::Op::Assign { id, assignee, actor, now }).await
    }

    pub async fn note(&self, id: i64, text: String, actor: String, now: Timestamp) -> Result<(), StoreError> {
        self.done(ops::Op::Note { id, text, actor, now }).await
    }

    pub async fn set_priority(
        &self,
        id: i64,
        priority: Priority,
        actor: String,
        comment: Option<String>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.done(ops::Op::SetPriority { id, priority, actor, comment, now }).await
    }

    pub async fn create_silence(
        &self,
        matchers: Vec<Matcher>,
        starts_at: Timestamp,
        ends_at: Timestamp,
        created_by: String,
        comment: String,
        now: Timestamp,
    ) -> Result<Silence, StoreError> {
        let spec = SilenceSpec { matchers, starts_at, ends_at, created_by, comment };
        match self.write(ops::Op::CreateSilence { spec, now }).await? {
            ops::Reply::Silence(s) => Ok(s),
            _ => unreachable!("creating a silence answers with it"),
        }
    }

    pub async fn expire_silence(&self, id: i64, actor: String, now: Timestamp) -> Result<(), StoreError> {
        self.done(ops::Op::ExpireSilence { id, actor, now }).await
    }

    pub async fn list_incidents(&self, q: IncidentQuery) -> Result<IncidentPage, StoreError> {
        self.read(move |c| reader::list_incidents(c, &q)).await
    }

    /// A page of incidents and how many match the filters in all.
    pub async fn list_incidents_counted(&self, q: IncidentQuery) -> Result<(IncidentPage, u64), StoreError> {
        self.read(move |c| Ok((reader::list_incidents(c, &q)?, reader::count_incidents(c, &q)?))).await
    }

    /// The SLA clocks of these incidents, computed now (those without a
    /// policy are left out).
    pub async fn sla_views(
        &self,
        ids: Vec<i64>,
        now: Timestamp,
    ) -> Result<std::collections::HashMap<i64, SlaView>, StoreError> {
        let rules = self.rules.read().expect("rules lock").clone();
        self.read(move |c| {
            let mut out = std::collections::HashMap::with_capacity(ids.len());
            for id in ids {
                if let Some(v) = sla::sla_view(c, id, &rules, now)? {
                    out.insert(id, v);
                }
            }
            Ok(out)
        })
        .await
    }

    /// An incident with its SLA clocks, problems, suspected changes,
    /// alerts and timeline.
    pub async fn get_incident(&self, id: i64, now: Timestamp) -> Result<Option<IncidentDetail>, StoreError> {
        self.get_incident_page(id, DetailPage::default(), now).await
    }

    /// As [`Store::get_incident`], with a chosen page of alerts and timeline.
    pub async fn get_incident_page(
        &self,
        id: i64,
        page: DetailPage,
        now: Timestamp,
    ) -> Result<Option<IncidentDetail>, StoreError> {
        let rules = self.rules.read().expect("rules lock").clone();
        self.read(move |c| reader::get_incident(c, id, &rules, page, now)).await
    }

    /// Record a change or deploy (a maintenance window when it suppresses).
    pub async fn record_change(&self, change: NewChange, now: Timestamp) -> Result<Change, StoreError> {
        match self.write(ops::Op::RecordChange { change, now }).await? {
            ops::Reply::Change(c) => Ok(c),
            _ => unreachable!("recording a change answers with it"),
        }
    }

    pub async fn list_changes(
        &self,
        service: Option<String>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
        self.read(move |c| changes::list(c, service.as_deref(), before, limit)).await
    }

    pub async fn create_problem(&self, problem: NewProblem, actor: String, now: Timestamp) -> Result<i64, StoreError> {
        match self.write(ops::Op::CreateProblem { problem, actor, now }).await? {
            ops::Reply::Id(id) => Ok(id),
            _ => unreachable!("creating a problem answers with its id"),
        }
    }

    pub async fn update_problem(
        &self,
        id: i64,
        update: ProblemUpdate,
        actor: String,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.done(ops::Op::UpdateProblem { id, update, actor, now }).await
    }

    pub async fn link_incidents(
        &self,
        problem: i64,
        incidents: Vec<i64>,
        actor: String,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.done(ops::Op::LinkIncidents { problem, incidents, actor, now }).await
    }

    pub async fn list_problems(&self, q: ProblemQuery) -> Result<Vec<Problem>, StoreError> {
        self.read(move |c| problems::list(c, &q)).await
    }

    pub async fn get_problem(&self, id: i64) -> Result<Option<ProblemDetail>, StoreError> {
        self.read(move |c| problems::detail(c, id)).await
    }

    pub async fn list_silences(&self, include_expired: bool, now: Timestamp) -> Result<Vec<Silence>, StoreError> {
        self.read(move |c| reader::silences(c, (!include_expired).then_some(now), Some(10_000))).await
    }

    /// Finish every queued write, checkpoint and close the database.
    pub async fn close(&self) {
        let (done, rx) = oneshot::channel();
        if self.writer.send(ops::Request::Close { done }).await.is_ok() {
            let _ = rx.await;
        }
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        // The permit moves into the blocking task: if the caller goes away
        // the connection is still in use until the task gives it back.
        let permit = self.readers.permits.clone().acquire_owned().await.map_err(|_| StoreError::Closed)?;
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = pool.conns.lock().expect("reader pool lock").pop().ok_or(StoreError::Closed)?;
            let result = f(&conn);
            pool.conns.lock().expect("reader pool lock").push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("reader task failed: {e}")))?
    }

    /// True when the database answers a query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        if self.writer.is_closed() {
            return Err(StoreError::Closed);
        }
        self.read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).map(|_| ())?)).await
    }

    pub async fn list_alerts(&self, q: AlertQuery) -> Result<AlertPage, StoreError> {
        self.read(move |c| reader::list_alerts(c, &q)).await
    }

    /// Every firing alert, without raw payloads.
    pub async fn firing_alerts(&self) -> Result<Vec<AlertRecord>, StoreError> {
        self.read(reader::firing_alerts).await
    }

    pub async fn get_alert(&self, fp: Fingerprint) -> Result<Option<AlertRecord>, StoreError> {
        self.read(move |c| reader::get_alert(c, &fp)).await
    }

    /// How many alerts are stored, by status.
    pub async fn count_alerts(&self) -> Result<(u64, u64), StoreError> {
        self.read(|c| {
            let firing = c.query_row("SELECT count(*) FROM alerts WHERE status = 'firing'", [], |r| r.get(0))?;
            let resolved = c.query_row("SELECT count(*) FROM alerts WHERE status = 'resolved'", [], |r| r.get(0))?;
            Ok((firing, resolved))
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
    let problems: Vec<String> =
        conn.prepare(pragma)?.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<_, _>>()?;
    if problems.len() == 1 && problems[0] == "ok" {
        tracing::info!(check = pragma, ms = started.elapsed().as_millis() as u64, "database integrity ok");
        return Ok(());
    }
    Err(StoreError::Corrupt(format!(
        "the database fails {pragma}: {}; restore a backup (alertgate backup) or repair it with sqlite3 .recover",
        problems.join("; ")
    )))
}

/// Copy the database at `db` to `to` while the gateway may be running: one
/// read transaction sees a consistent state (WAL readers do not block the
/// writer), copied with SQLite's backup API, then checked.
pub fn backup(db: &Path, to: &Path) -> Result<u64, StoreError> {
    if to.exists() {
        return Err(StoreError::Conflict(format!("{} exists; choose a new file", to.display())));
    }
    let src = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    src.pragma_update(None, "busy_timeout", 5000)?;
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

/// WAL size past which a checkpoint waits for the writer to pause, so the
/// WAL cannot grow without bound under a constant write load.
const WAL_RESTART_BYTES: u64 = 64 << 20;

/// `store.max_size` over the database file and its WAL together.
pub(crate) struct SizeLimit {
    pub max: u64,
    /// What the WAL may take before the checkpointer truncates it.
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
/// passive checkpoint never blocks the writer or readers.
fn checkpointer(conn: Connection, stop: std::sync::mpsc::Receiver<()>, wal_share: u64) {
    let wal = conn.path().map(|p| PathBuf::from(format!("{p}-wal")));
    loop {
        match stop.recv_timeout(std::time::Duration::from_secs(1)) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let size = wal.as_ref().and_then(|p| std::fs::metadata(p).ok()).map_or(0, |m| m.len());
        // Past its share the WAL is copied back and truncated, so the files
        // stay within `store.max_size`.
        let mode = if size > wal_share { "TRUNCATE" } else { "PASSIVE" };
        if let Err(e) = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(())) {
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

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::classify(e)
    }
}
