//! The store: persistence behind one interface.
//!
//! [`Backend`] is what a database must do for the gateway: apply a
//! mutation ([`Op`]) durably and answer queries. The embedded default is
//! SQLite ([`sqlite`]): one writer thread with group commit, a pool of
//! readers. Decisions are not made here: a backend loads the rows a
//! decision needs, calls `engine`, and applies the effects in one
//! transaction. Everything else calls the typed methods of [`Store`], a
//! cheap handle over a backend.
pub mod audit;
mod feed;
pub mod ops;
pub mod query;
pub mod settings;
pub mod sqlite;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use jiff::Timestamp;

use crate::engine::silence::{Silence, SilenceIds};
use crate::model::change::{Change, NewChange};
use crate::model::incident::{IncidentAction, Priority};
use crate::model::notification::{NotificationState, OutboxItem};
use crate::model::problem::Problem;
use crate::model::{AlertRecord, AlertUpdate, Fingerprint};
use crate::rules::RuleSet;
use crate::rules::matcher::Matcher;
use ops::{Op, Reply};

pub use crate::engine::heartbeat::Stored as HeartbeatStored;
pub use crate::engine::report::{GroupSums, RecurringProblem, ReportGroup, ReportRow, SlaReport};
pub use crate::engine::silence::SilenceSpec;
pub use crate::engine::sla::{ClockView, EscalationView, SlaView};
pub use audit::{AuditEntry, AuditQuery};
pub use feed::{ChangeFeed, FeedState};
pub use query::{
    AlertPage, AlertQuery, DeliveryRecord, DetailPage, IncidentAlert, IncidentCursor, IncidentDetail, IncidentPage,
    IncidentQuery, IncidentSort, IngestOutcome, LinkedIncident, NewProblem, NotificationQuery, NotificationView,
    ProblemDetail, ProblemQuery, ProblemUpdate, SlaFilter,
};
pub use sqlite::{
    ActionItemQuery, Copied, DB_FILE, LOCK_FILE, SCHEMA_VERSION, backup, copy_to_postgres, migrate_postgres, redacted,
};

/// Who the gateway records as the actor of what it does by itself.
pub const SYSTEM_ACTOR: &str = "alertgate";

/// Expiry checks taken in one write (alerts resolved by expiry, or checks
/// moved to a re-sent alert's new expiry): with ten million stored, the
/// preloaded ones expiring at 14,000 a second held the writer 0.1-0.5 s
/// in a single round, and every sender waited for it.
pub const EXPIRED_PER_TICK: usize = 1_000;

/// Rounds of expiry one tick runs at most.
const MAX_EXPIRY_ROUNDS: usize = 1_000;

/// The rules in force, swapped whole on reload; a backend picks up a new
/// set at its next write.
pub type SharedRules = Arc<RwLock<Arc<RuleSet>>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a statement.
    #[error("database error: {0}")]
    Database(String),
    /// The database is busy or locked; the request may succeed if tried again.
    #[error("the database is busy: {0}")]
    Busy(String),
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
    /// A batch tried beside other gateways' met more than alerts sent
    /// again: the writer applies it again holding the write lock alone.
    /// Never answered to a caller.
    #[error("the batch needs the write lock alone")]
    NeedsWriteLock,
}

impl StoreError {
    /// The same error for every request of a failed batch.
    pub fn duplicate(&self) -> StoreError {
        match self {
            StoreError::DiskFull(m) => StoreError::DiskFull(m.clone()),
            StoreError::Busy(m) => StoreError::Busy(m.clone()),
            StoreError::Closed => StoreError::Closed,
            StoreError::NotFound(m) => StoreError::NotFound(m.clone()),
            StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
            StoreError::Invalid(m) => StoreError::Invalid(m.clone()),
            StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
            other => StoreError::CommitFailed(other.to_string()),
        }
    }

    /// What a client is told; no database internals.
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
        matches!(
            self,
            StoreError::DiskFull(_)
                | StoreError::Closed
                | StoreError::CommitFailed(_)
                | StoreError::Busy(_)
                | StoreError::NeedsWriteLock
        )
    }
}

/// What a database does for the gateway. A write returns once its effects
/// are durably committed; on error nothing of it is stored. Reads see
/// committed data only. A backend loads the rows a decision needs, asks
/// `engine` (or `model`) what to do, and applies the answer in the write's
/// transaction; it decides nothing itself, so a second backend repeats no
/// rule. The wake-ups (`next_timer`, `outbox_wakeup`, `feed`) tell this
/// process of its own commits; a backend shared by several gateways must
/// also carry the others' (for PostgreSQL: LISTEN/NOTIFY).
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Where the data lives, for the log (never with credentials).
    fn describe(&self) -> String;
    /// The rules in force, for what a request works out before its write.
    fn rules(&self) -> Arc<RuleSet>;
    /// Apply one mutation; `source` is the caller's address for the audit log.
    async fn write(&self, op: Op, source: Option<Arc<str>>) -> Result<Reply, StoreError>;
    /// Finish queued writes and close; the notification leases this
    /// gateway holds are released at `now`, due again at once.
    async fn close(&self, now: Timestamp);
    /// True when the database answers a query.
    async fn ping(&self) -> Result<(), StoreError>;

    /// When the earliest SLA milestone, escalation step or correlation
    /// timer falls due, so the caller can tick then.
    fn next_timer(&self) -> Option<Timestamp>;
    /// Woken after each commit that queued a notification.
    fn outbox_wakeup(&self) -> Arc<tokio::sync::Notify>;
    /// Bumped after each commit that changed what live views show.
    fn feed(&self) -> &ChangeFeed;
    /// How this database's silences are named in Alertmanager's API.
    fn silence_ids(&self) -> SilenceIds;

    async fn list_alerts(&self, q: AlertQuery) -> Result<AlertPage, StoreError>;
    /// Every firing alert, without raw payloads.
    async fn firing_alerts(&self) -> Result<Vec<AlertRecord>, StoreError>;
    async fn get_alert(&self, fp: Fingerprint) -> Result<Option<AlertRecord>, StoreError>;
    /// How many alerts are stored: (firing, resolved).
    async fn count_alerts(&self) -> Result<(u64, u64), StoreError>;

    /// A page of incidents, and with `count` how many match in all.
    async fn list_incidents(&self, q: IncidentQuery, count: bool) -> Result<(IncidentPage, Option<u64>), StoreError>;
    /// The SLA clocks of these incidents at `now` (those without a policy are left out).
    async fn sla_views(&self, ids: Vec<i64>, now: Timestamp) -> Result<HashMap<i64, SlaView>, StoreError>;
    async fn get_incident(
        &self,
        id: i64,
        page: DetailPage,
        now: Timestamp,
    ) -> Result<Option<IncidentDetail>, StoreError>;

    /// Silences; with `active_at`, only those not ended by then.
    async fn list_silences(
        &self,
        active_at: Option<Timestamp>,
        limit: Option<usize>,
    ) -> Result<Vec<Silence>, StoreError>;
    async fn get_silence(&self, id: i64) -> Result<Option<Silence>, StoreError>;

    async fn list_changes(
        &self,
        service: Option<String>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError>;
    async fn list_problems(&self, q: ProblemQuery) -> Result<Vec<Problem>, StoreError>;
    async fn get_problem(&self, id: i64) -> Result<Option<ProblemDetail>, StoreError>;
    async fn list_action_items(
        &self,
        q: ActionItemQuery,
    ) -> Result<Vec<crate::model::action_item::ActionItem>, StoreError>;
    /// An incident's post-incident review, if it has one.
    async fn get_review(&self, incident_id: i64) -> Result<Option<crate::model::review::Review>, StoreError>;

    /// When the earliest pending notification is due.
    async fn next_notification_due(&self) -> Result<Option<Timestamp>, StoreError>;
    async fn list_notifications(&self, q: NotificationQuery) -> Result<Vec<NotificationView>, StoreError>;
    /// Pending notifications and the age of the oldest, in seconds.
    async fn outbox_depth(&self, now: Timestamp) -> Result<(u64, Option<f64>), StoreError>;

    async fn list_audit(&self, q: AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;
    /// The SLA report of incidents created in `[from, to)`.
    async fn sla_report(&self, from: Timestamp, to: Timestamp, group: ReportGroup) -> Result<SlaReport, StoreError>;
    /// What is stored of each heartbeat that has pinged, by name.
    async fn heartbeats(&self) -> Result<BTreeMap<String, HeartbeatStored>, StoreError>;
    /// Overrides not deleted that overlap `[from, to)`, of one schedule or
    /// all, oldest first.
    async fn overrides(
        &self,
        schedule: Option<String>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<crate::model::oncall::ScheduleOverride>, StoreError>;
    async fn calendar_feeds(&self) -> Result<Vec<crate::model::oncall::CalendarFeed>, StoreError>;
    /// The live feed whose key hashes to `key_hash`.
    async fn calendar_feed_by_key(
        &self,
        key_hash: String,
    ) -> Result<Option<crate::model::oncall::CalendarFeed>, StoreError>;
    /// The counts of stored state the gauges show (open incidents, clocks,
    /// compliance, problems, outbox, database size).
    async fn stored_facts(&self, now: Timestamp) -> Result<crate::metrics::stored::StoredFacts, StoreError>;
}

/// A cheap, cloneable handle on the store.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    /// The caller's address, recorded in the audit log (see [`Store::from`]).
    source: Option<Arc<str>>,
}

impl Store {
    pub fn new(backend: Arc<dyn Backend>) -> Store {
        Store { backend, source: None }
    }

    /// Open (creating if needed) the embedded SQLite database under
    /// `data_dir`, apply migrations and start its writer.
    pub fn open(
        data_dir: &Path,
        cfg: settings::StoreConfig,
        rules: SharedRules,
        audience: crate::model::notification::Audience,
        now: Timestamp,
    ) -> Result<Store, StoreError> {
        Ok(Store::new(Arc::new(sqlite::SqlStore::open(data_dir, cfg, rules, audience, now)?)))
    }

    /// Open a PostgreSQL database shared with any other gateway on it.
    pub fn open_postgres(
        url: &str,
        cfg: settings::StoreConfig,
        rules: SharedRules,
        audience: crate::model::notification::Audience,
        now: Timestamp,
    ) -> Result<Store, StoreError> {
        Ok(Store::new(Arc::new(sqlite::SqlStore::open_postgres(url, cfg, rules, audience, now)?)))
    }

    /// Where the data lives, for the log.
    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// The "something changed" feed of live views.
    pub fn feed(&self) -> &ChangeFeed {
        self.backend.feed()
    }

    /// How this database's silences are named in Alertmanager's API.
    pub fn silence_ids(&self) -> SilenceIds {
        self.backend.silence_ids()
    }

    /// The same store, recording `source` as the caller's address of the
    /// mutations made through it.
    pub fn from(&self, source: Option<std::net::IpAddr>) -> Store {
        Store { backend: self.backend.clone(), source: source.map(|ip| Arc::from(ip.to_string())) }
    }

    async fn write(&self, op: Op) -> Result<Reply, StoreError> {
        self.backend.write(op, self.source.clone()).await
    }

    async fn done(&self, op: Op) -> Result<(), StoreError> {
        self.write(op).await.map(|_| ())
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
        let op = ops::ingest(updates, now, sender, self.backend.rules()).await?;
        match self.write(op).await? {
            Reply::Ingest(o) => Ok(o),
            _ => unreachable!("ingest answers with an outcome"),
        }
    }

    /// Resolve firing alerts whose sender stopped repeating them and run
    /// the correlation timers; returns how many alerts expired. Expiry
    /// checks run in rounds of [`EXPIRED_PER_TICK`], each its own write, so
    /// senders' requests are answered between them; the timers run in the
    /// last round, once the alerts due have expired.
    pub async fn tick(&self, now: Timestamp) -> Result<usize, StoreError> {
        let mut expired = 0;
        // Bounded, in case senders re-fire alerts as fast as they expire;
        // the next tick goes on.
        for _ in 0..MAX_EXPIRY_ROUNDS {
            match self.write(Op::Tick { now }).await? {
                Reply::Tick(swept) if !swept.more_due => return Ok(expired + swept.expired),
                Reply::Tick(swept) => expired += swept.expired,
                _ => unreachable!("tick answers with a count"),
            }
        }
        Ok(expired)
    }

    /// When the earliest SLA milestone or escalation step falls due, so the
    /// caller can tick then rather than on its next regular round.
    pub fn next_timer(&self) -> Option<Timestamp> {
        self.backend.next_timer()
    }

    pub fn outbox_wakeup(&self) -> Arc<tokio::sync::Notify> {
        self.backend.outbox_wakeup()
    }

    /// When the earliest pending notification is due.
    pub async fn next_notification_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.backend.next_notification_due().await
    }

    pub async fn claim_notifications(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        match self.write(Op::ClaimNotifications { now, lease_until, limit }).await? {
            Reply::Claimed(items) => Ok(items),
            _ => unreachable!("a claim answers with rows"),
        }
    }

    /// Keep the rows of deliveries still in progress leased until `lease_until`.
    pub async fn renew_leases(&self, ids: Vec<i64>, lease_until: Timestamp) -> Result<(), StoreError> {
        self.done(Op::RenewLeases { ids, lease_until }).await
    }

    pub async fn record_deliveries(
        &self,
        results: Vec<(i64, DeliveryRecord)>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.done(Op::RecordDeliveries { results, now }).await
    }

    /// Send a failed (dead-letter) notification again now.
    pub async fn retry_notification(&self, id: i64, actor: String, now: Timestamp) -> Result<(), StoreError> {
        self.done(Op::RetryNotification { id, actor, now }).await
    }

    /// Record a mutation made outside the store (a rule reload) in the audit log.
    pub async fn audit(
        &self,
        action: &str,
        actor: String,
        detail: serde_json::Value,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.done(Op::Audit { action: action.to_owned(), actor, detail, now }).await
    }

    pub async fn list_audit(&self, q: AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        self.backend.list_audit(q).await
    }

    pub async fn list_notifications(
        &self,
        state: Option<NotificationState>,
        notifier: Option<String>,
        incident: Option<i64>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<NotificationView>, StoreError> {
        self.backend.list_notifications(NotificationQuery { state, notifier, incident, before, limit }).await
    }

    /// A heartbeat's ping by HTTP, durably committed; `NotFound` when the
    /// rules have no heartbeat of this name.
    pub async fn ping_heartbeat(&self, name: String, now: Timestamp) -> Result<(), StoreError> {
        self.done(Op::PingHeartbeat { name, now }).await
    }

    /// What is stored of each heartbeat that has pinged (its last ping), by
    /// name; a heartbeat of the rules missing here never pinged.
    pub async fn heartbeats(&self) -> Result<BTreeMap<String, HeartbeatStored>, StoreError> {
        self.backend.heartbeats().await
    }

    pub async fn overrides(
        &self,
        schedule: Option<String>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<crate::model::oncall::ScheduleOverride>, StoreError> {
        self.backend.overrides(schedule, from, to).await
    }

    pub async fn create_override(
        &self,
        new: crate::model::oncall::NewOverride,
        actor: String,
        now: Timestamp,
    ) -> Result<crate::model::oncall::ScheduleOverride, StoreError> {
        match self.write(Op::CreateOverride { new, actor, now }).await? {
            Reply::Override(o) => Ok(*o),
            _ => unreachable!("creating an override answers with it"),
        }
    }

    pub async fn delete_override(
        &self,
        schedule: String,
        id: i64,
        actor: String,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.done(Op::DeleteOverride { schedule, id, actor, now }).await
    }

    pub async fn calendar_feeds(&self) -> Result<Vec<crate::model::oncall::CalendarFeed>, StoreError> {
        self.backend.calendar_feeds().await
    }

    pub async fn calendar_feed_by_key(
        &self,
        key_hash: String,
    ) -> Result<Option<crate::model::oncall::CalendarFeed>, StoreError> {
        self.backend.calendar_feed_by_key(key_hash).await
    }

    pub async fn create_calendar_feed(
        &self,
        of: crate::model::oncall::FeedOf,
        key_hash: String,
        actor: String,
        now: Timestamp,
    ) -> Result<crate::model::oncall::CalendarFeed, StoreError> {
        match self.write(Op::CreateCalendarFeed { of, key_hash, actor, now }).await? {
            Reply::CalendarFeed(f) => Ok(*f),
            _ => unreachable!("creating a calendar feed answers with it"),
        }
    }

    pub async fn revoke_calendar_feed(&self, id: i64, actor: String, now: Timestamp) -> Result<(), StoreError> {
        self.done(Op::RevokeCalendarFeed { id, actor, now }).await
    }

    /// Set the gauges of stored state for a scrape.
    pub async fn update_gauges(&self, now: Timestamp, rules: &RuleSet) -> Result<(), StoreError> {
        let facts = self.backend.stored_facts(now).await?;
        let overdue = crate::engine::lifecycle::overdue_reviews(&facts.unreviewed, rules, now);
        crate::metrics::stored::set(&facts, &overdue);
        Ok(())
    }

    /// The SLA report of incidents created in `[from, to)`.
    pub async fn sla_report(
        &self,
        from: Timestamp,
        to: Timestamp,
        group: ReportGroup,
    ) -> Result<SlaReport, StoreError> {
        self.backend.sla_report(from, to, group).await
    }

    /// Pending notifications and the age of the oldest, in seconds.
    pub async fn outbox_depth(&self, now: Timestamp) -> Result<(u64, Option<f64>), StoreError> {
        self.backend.outbox_depth(now).await
    }

    pub async fn act(
        &self,
        id: i64,
        action: IncidentAction,
        actor: String,
        comment: Option<String>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.done(Op::Act { id, action, actor, comment, now }).await
    }

    pub async fn assign(
        &self,
        id: i64,
        assignee: Option<String>,
        actor: String,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.done(Op::Assign { id, assignee, actor, now }).await
    }

    pub async fn note(&self, id: i64, text: String, actor: String, now: Timestamp) -> Result<(), StoreError> {
        self.done(Op::Note { id, text, actor, now }).await
    }

    pub async fn set_priority(
        &self,
        id: i64,
        priority: Priority,
        actor: String,
        comment: Option<String>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.done(Op::SetPriority { id, priority, actor, comment, now }).await
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
        match self.write(Op::CreateSilence { spec, now }).await? {
            Reply::Silence(s) => Ok(s),
            _ => unreachable!("creating a silence answers with it"),
        }
    }

    /// Post a silence under the id of an existing one, as Alertmanager's
    /// API does: changed in place, or replaced by a new silence (see
    /// [`crate::engine::silence::plan_update`]). Returns the silence now in force.
    pub async fn update_silence(&self, id: i64, spec: SilenceSpec, now: Timestamp) -> Result<Silence, StoreError> {
        match self.write(Op::UpdateSilence { id, spec, now }).await? {
            Reply::Silence(s) => Ok(s),
            _ => unreachable!("changing a silence answers with it"),
        }
    }

    pub async fn expire_silence(&self, id: i64, actor: String, now: Timestamp) -> Result<(), StoreError> {
        self.done(Op::ExpireSilence { id, actor, now }).await
    }

    /// One silence by id, whatever its state.
    pub async fn get_silence(&self, id: i64) -> Result<Option<Silence>, StoreError> {
        self.backend.get_silence(id).await
    }

    /// Silences not ended by `t` (pending, active, and those expired since).
    pub async fn silences_ended_after(&self, t: Timestamp) -> Result<Vec<Silence>, StoreError> {
        self.backend.list_silences(Some(t), None).await
    }

    pub async fn list_silences(&self, include_expired: bool, now: Timestamp) -> Result<Vec<Silence>, StoreError> {
        self.backend.list_silences((!include_expired).then_some(now), Some(10_000)).await
    }

    pub async fn list_incidents(&self, q: IncidentQuery) -> Result<IncidentPage, StoreError> {
        Ok(self.backend.list_incidents(q, false).await?.0)
    }

    /// A page of incidents and how many match the filters in all.
    pub async fn list_incidents_counted(&self, q: IncidentQuery) -> Result<(IncidentPage, u64), StoreError> {
        let (page, total) = self.backend.list_incidents(q, true).await?;
        Ok((page, total.unwrap_or_default()))
    }

    /// The SLA clocks of these incidents, computed now (those without a
    /// policy are left out).
    pub async fn sla_views(&self, ids: Vec<i64>, now: Timestamp) -> Result<HashMap<i64, SlaView>, StoreError> {
        self.backend.sla_views(ids, now).await
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
        self.backend.get_incident(id, page, now).await
    }

    /// Record a change or deploy (a maintenance window when it suppresses).
    pub async fn record_change(&self, change: NewChange, now: Timestamp) -> Result<Change, StoreError> {
        match self.write(Op::RecordChange { change, now }).await? {
            Reply::Change(c) => Ok(c),
            _ => unreachable!("recording a change answers with it"),
        }
    }

    pub async fn list_changes(
        &self,
        service: Option<String>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Change>, StoreError> {
        self.backend.list_changes(service, before, limit).await
    }

    /// Open an incident a person reports; its id.
    pub async fn report_incident(
        &self,
        report: crate::model::incident::NewReport,
        actor: String,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        match self.write(Op::ReportIncident { report, actor, now }).await? {
            Reply::Id(id) => Ok(id),
            _ => unreachable!("reporting an incident answers with its id"),
        }
    }

    /// Link alerts to an open incident by hand.
    pub async fn link_alerts(
        &self,
        id: i64,
        fingerprints: Vec<Fingerprint>,
        actor: String,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.done(Op::LinkAlerts { id, fingerprints, actor, now }).await
    }

    /// Merge incident `id` into `into`: its alerts, timeline and links move,
    /// and it closes pointing there.
    pub async fn merge(
        &self,
        id: i64,
        into: i64,
        comment: Option<String>,
        actor: String,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.done(Op::Merge { id, into, comment, actor, now }).await
    }

    pub async fn create_problem(&self, problem: NewProblem, actor: String, now: Timestamp) -> Result<i64, StoreError> {
        match self.write(Op::CreateProblem { problem, actor, now }).await? {
            Reply::Id(id) => Ok(id),
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
        self.done(Op::UpdateProblem { id, update, actor, now }).await
    }

    pub async fn link_incidents(
        &self,
        problem: i64,
        incidents: Vec<i64>,
        actor: String,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.done(Op::LinkIncidents { problem, incidents, actor, now }).await
    }

    pub async fn list_problems(&self, q: ProblemQuery) -> Result<Vec<Problem>, StoreError> {
        self.backend.list_problems(q).await
    }

    /// Start the post-incident review of a resolved incident.
    pub async fn create_review(
        &self,
        incident: i64,
        actor: String,
        now: Timestamp,
    ) -> Result<crate::model::review::Review, StoreError> {
        match self.write(Op::CreateReview { incident, actor, now }).await? {
            Reply::Review(r) => Ok(*r),
            _ => unreachable!("starting a review answers with it"),
        }
    }

    /// Edit a review (its text, its state).
    pub async fn edit_review(
        &self,
        incident: i64,
        edit: crate::model::review::ReviewEdit,
        actor: String,
        now: Timestamp,
    ) -> Result<crate::model::review::Review, StoreError> {
        match self.write(Op::EditReview { incident, edit, actor, now }).await? {
            Reply::Review(r) => Ok(*r),
            _ => unreachable!("editing a review answers with it"),
        }
    }

    /// Link a reviewed incident to `problem`, or open one from its review;
    /// the problem's id.
    pub async fn review_problem(
        &self,
        incident: i64,
        problem: Option<i64>,
        workaround: Option<String>,
        actor: String,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        match self.write(Op::ReviewProblem { incident, problem, workaround, actor, now }).await? {
            Reply::Id(id) => Ok(id),
            _ => unreachable!("a review's problem answers with its id"),
        }
    }

    pub async fn create_action_item(
        &self,
        item: crate::model::action_item::NewActionItem,
        actor: String,
        now: Timestamp,
    ) -> Result<crate::model::action_item::ActionItem, StoreError> {
        match self.write(Op::CreateActionItem { item, actor, now }).await? {
            Reply::ActionItem(a) => Ok(*a),
            _ => unreachable!("creating an action item answers with it"),
        }
    }

    pub async fn edit_action_item(
        &self,
        id: i64,
        edit: crate::model::action_item::ActionItemEdit,
        due: Option<Timestamp>,
        actor: String,
        now: Timestamp,
    ) -> Result<crate::model::action_item::ActionItem, StoreError> {
        match self.write(Op::EditActionItem { id, edit, due, actor, now }).await? {
            Reply::ActionItem(a) => Ok(*a),
            _ => unreachable!("editing an action item answers with it"),
        }
    }

    pub async fn list_action_items(
        &self,
        q: ActionItemQuery,
    ) -> Result<Vec<crate::model::action_item::ActionItem>, StoreError> {
        self.backend.list_action_items(q).await
    }

    pub async fn get_review(&self, incident: i64) -> Result<Option<crate::model::review::Review>, StoreError> {
        self.backend.get_review(incident).await
    }

    pub async fn get_problem(&self, id: i64) -> Result<Option<ProblemDetail>, StoreError> {
        self.backend.get_problem(id).await
    }

    /// Finish every queued write and close the database; deliveries cut
    /// short are due again at `now`.
    pub async fn close(&self, now: Timestamp) {
        self.backend.close(now).await
    }

    /// True when the database answers a query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.backend.ping().await
    }

    pub async fn list_alerts(&self, q: AlertQuery) -> Result<AlertPage, StoreError> {
        self.backend.list_alerts(q).await
    }

    /// Every firing alert, without raw payloads.
    pub async fn firing_alerts(&self) -> Result<Vec<AlertRecord>, StoreError> {
        self.backend.firing_alerts().await
    }

    pub async fn get_alert(&self, fp: Fingerprint) -> Result<Option<AlertRecord>, StoreError> {
        self.backend.get_alert(fp).await
    }

    /// How many alerts are stored, by status.
    pub async fn count_alerts(&self) -> Result<(u64, u64), StoreError> {
        self.backend.count_alerts().await
    }
}
