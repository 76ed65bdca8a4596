//! PostgreSQL under the writer: several gateways share one database.
//!
//! Every write batch of every gateway runs in one transaction that first
//! takes the same transaction-scoped advisory lock, so batches are applied
//! one after another, exactly as one gateway would apply them: one alert
//! per fingerprint, one incident per group, one notification per event and
//! notifier.
//!
//! The most common batch, alerts sent again that stay in the incidents
//! that hold them (Prometheus re-sends every firing alert every minute),
//! changes nothing but those alerts' rows, and is decided from those rows
//! and from incidents and memory only batches holding the lock alone
//! change. Such a batch is tried holding the lock shared, beside other
//! gateways' batches of the same kind: the database works on several at
//! once. Each alert is written only if its row is still the version its
//! decision read (`xmin`), so two batches that meet at an alert do not
//! both pass; the one that finds a row changed, or meets anything but an
//! alert sent again, is rolled back and applied again holding the lock
//! alone ([`StoreError::NeedsWriteLock`]). Batches that do commit beside
//! each other touched disjoint rows, so the outcome is that of applying
//! them one after another.
//!
//! Before applying its batch a gateway catches up with what the
//! others committed since its last one (the state it keeps in memory:
//! timers, silences, maintenance windows, overrides, inhibition sources),
//! from `writer_log`, a row per batch that changed any of it. Commits are
//! announced with NOTIFY, so live views and delivery workers of the other
//! gateways wake at once.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jiff::Timestamp;

use super::sql::{self, PgSession, params};
use super::state::WriterState;
use super::writer::{Changed, WriteDb};
use super::{ChangeFeed, StoreError, ms, outbox, schema};
use crate::model::notification::NotificationState;

/// The advisory lock every write batch takes: "alertgw".
const WRITE_LOCK: i64 = 0x0061_6c65_7274_6777;
/// The channel commits are announced on.
pub(super) const CHANNEL: &str = "alertgate_commits";
/// How many rows of `writer_log` are kept: a gateway further behind than
/// that reads its whole state again.
const LOG_KEPT: i64 = 10_000;
/// The first key of each gateway's presence lock (`algt`); the second is
/// the hash of its name. A gateway holds its lock on its listening
/// connection for as long as it lives: PostgreSQL drops it with the
/// connection when the process dies, however it dies.
const PRESENCE: i32 = 0x616c_6774;
/// How often a gateway looks for leases of gateways that are gone.
const DEAD_LEASES_EVERY: Duration = Duration::from_secs(2);
/// A gateway that sees more inhibition changes than this in one catch-up
/// rebuilds its index instead of reading each alert.
const INHIBIT_REREAD_MAX: usize = 5_000;
/// At most how many batches in a row hold the lock alone after one tried
/// beside others had to be applied again: a stream of new alerts is not
/// tried (and rolled back) batch after batch.
const ALONE_AFTER_RETRY_MAX: u32 = 64;
/// The few statements of a batch beside others (the catch-up, the read
/// and the update of alerts sent again, their expiry checks) run on plans
/// kept from their first run instead of planned anew each time (a fifth of
/// the database's CPU per alert). Kept plans are what the sessions'
/// `plan_cache_mode = force_custom_plan` avoids: one made while a table
/// was small walks all of it later. Here no plan walks a table an index
/// serves: sequential scans, bitmap scans and hash and merge joins are
/// priced out, leaving index lookups in nested loops, whatever the tables'
/// sizes when the plan was made.
pub(super) const BESIDE_OTHERS_PLANS: &str = "SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off; \
     SET LOCAL enable_bitmapscan = off; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off";
/// How long a batch beside others waits for an alert's row that another
/// holds before it is applied again alone (where it waits its turn).
const ROW_WAIT: &str = "100ms";

/// Connect, with the timeouts a gateway needs to notice a lost database.
pub(super) fn connect(config: &postgres::Config) -> Result<PgSession, StoreError> {
    let client = config.connect(postgres::NoTls).map_err(|e| unreachable(&e))?;
    Ok(PgSession::new(client))
}

/// The connection settings of `url`, with a connect timeout and keepalives;
/// errors never show the URL's password.
pub fn parse_url(url: &str) -> Result<postgres::Config, StoreError> {
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e| StoreError::Database(format!("the database URL {} does not parse: {e}", super::redacted(url))))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    config.keepalives(true).keepalives_idle(Duration::from_secs(10));
    if config.get_application_name().is_none() {
        config.application_name("alertgate");
    }
    // A gateway frozen or cut off mid-batch must not hold the write lock
    // (and so every gateway) for long: the server ends a transaction idle
    // for 30 s, notices a dead client within half a minute, and a batch
    // waits at most 30 s for the lock (then its callers get a 503).
    // Statements are planned at each run with the tables as they are: a
    // session lives for days, and a plan cached while a table was empty
    // (the server's default keeps it) can walk every row of it later.
    // No JIT: planned at each run, a statement over a large request's
    // thousand alerts passed the server's JIT threshold and compiled
    // itself anew each time (20 ms of a 25 ms read).
    let server_side = "-c idle_in_transaction_session_timeout=30s -c lock_timeout=30s \
                       -c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3 \
                       -c plan_cache_mode=force_custom_plan -c jit=off";
    let options = match config.get_options() {
        Some(own) => format!("{own} {server_side}"),
        None => server_side.to_owned(),
    };
    config.options(&options);
    Ok(config)
}

/// A database that cannot be reached: the request may succeed later (503).
pub(super) fn unreachable(e: &postgres::Error) -> StoreError {
    StoreError::Busy(format!("the database is unreachable: {e}"))
}

/// What a PostgreSQL error means for the request: a lost connection, a
/// server shutting down or out of resources, a serialization failure or a
/// deadlock may pass (503); anything else is the database's answer.
pub(super) fn classify(e: &postgres::Error) -> StoreError {
    match e.as_db_error() {
        // The connection, not the request: it may pass. Anything else the
        // client refused (a value it cannot send) is a bug, not a wait.
        None if e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()) => {
            unreachable(e)
        }
        None => StoreError::Database(e.to_string()),
        Some(db) => {
            let code = db.code().code();
            let passing = ["08", "40", "53", "55", "57"].iter().any(|class| code.starts_with(class));
            let text = format!("{} ({code})", db.message());
            if passing { StoreError::Busy(text) } else { StoreError::Database(text) }
        }
    }
}

/// The writer's side of a shared database.
pub(super) struct SharedDb {
    config: postgres::Config,
    session: Option<PgSession>,
    /// This gateway's name in `writer_log` and on notification leases.
    gateway: Arc<str>,
    /// The last `writer_log` row this gateway's memory reflects; `None`:
    /// read everything again before the next batch.
    seen: Option<i64>,
    /// Whether the last committed batch changed what live views show.
    shown: bool,
    /// When this gateway last looked for the leases of gateways gone.
    dead_leases_checked: Option<std::time::Instant>,
    /// A request's savepoint succeeded and is released with the next
    /// statement sent (see `release`).
    release_pending: bool,
    /// Lease holders found without their presence lock at the last look:
    /// a holder is taken for gone only when absent at two looks in a row,
    /// so a gateway whose listening connection blinked keeps its leases.
    absent: std::collections::BTreeSet<String>,
    /// Batches still to hold the lock alone after a retry, and how many
    /// the next retry sets (doubling, halved by each batch that commits
    /// beside others).
    alone_for: u32,
    alone_after_retry: u32,
}

impl SharedDb {
    pub fn new(config: postgres::Config, session: PgSession, gateway: Arc<str>) -> SharedDb {
        SharedDb {
            config,
            session: Some(session),
            gateway,
            seen: None,
            shown: false,
            dead_leases_checked: None,
            release_pending: false,
            absent: std::collections::BTreeSet::new(),
            alone_for: 0,
            alone_after_retry: 0,
        }
    }

    /// The connection a batch runs on: never made anew inside a batch (a
    /// new connection is outside its transaction).
    fn live(&self) -> Result<&PgSession, StoreError> {
        match &self.session {
            Some(s) if !s.is_closed() => Ok(s),
            _ => Err(StoreError::Busy("the database connection was lost".into())),
        }
    }

    /// The connection, made anew if it was lost (only between batches).
    fn connected(&mut self) -> Result<&PgSession, StoreError> {
        if self.session.as_ref().is_none_or(PgSession::is_closed) {
            self.session = None;
            self.seen = None;
            let session = connect(&self.config)?;
            tracing::info!("connected to the database again");
            self.session = Some(session);
        }
        Ok(self.session.as_ref().expect("connected above"))
    }

    /// A failed statement: a lost connection is dropped, to be made anew.
    fn failed(&mut self, e: StoreError) -> StoreError {
        if self.session.as_ref().is_some_and(PgSession::is_closed) {
            tracing::warn!(error = %e, "lost the database connection");
            self.session = None;
            self.seen = None;
        }
        e
    }

    /// Whether the open batch holds the lock shared.
    fn beside_others(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.resends_only.get())
    }

    /// Roll back the open transaction; false when the connection is gone
    /// (dropped, to be made anew).
    fn roll_back_transaction(&mut self) -> bool {
        self.end_beside_others();
        if let Some(s) = &self.session
            && !s.is_closed()
            && let Err(e) = s.batch_execute("ROLLBACK")
        {
            tracing::warn!(error = %e, "rolling back a batch failed");
            self.session = None;
        }
        self.session.as_ref().is_some_and(|s| !s.is_closed())
    }

    fn end_beside_others(&self) {
        if let Some(s) = &self.session {
            s.resends_only.set(false);
        }
    }

    fn run(&mut self, sql: &str) -> Result<(), StoreError> {
        let r = self.live()?.batch_execute(sql).map_err(StoreError::from);
        r.map_err(|e| self.failed(e))
    }

    /// Open a batch's transaction holding the write lock every gateway's
    /// batches take, connecting first if need be, in one round trip. READ
    /// COMMITTED whatever the server's default: each statement after the
    /// lock sees what the lock's previous holder committed. A gateway still
    /// running when a newer one migrated the schema writes no more (its
    /// callers get a 503, and retry at an upgraded gateway): it would
    /// write rows the new schema keeps otherwise (migration 16: alerts
    /// without the expiry checks that end them).
    /// `beside_others`: the lock is taken shared (see the module).
    fn open_locked_transaction(&mut self, beside_others: bool) -> Result<(), StoreError> {
        self.connected()?;
        self.release_pending = false;
        let lock = match beside_others {
            true => format!(
                "pg_advisory_xact_lock_shared({WRITE_LOCK}); SET LOCAL lock_timeout = '{ROW_WAIT}'; {BESIDE_OTHERS_PLANS}"
            ),
            false => format!("pg_advisory_xact_lock({WRITE_LOCK})"),
        };
        let sql = format!(
            "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT {lock};
             SELECT max(version) FROM schema_version"
        );
        let session = self.live()?;
        session.resends_only.set(beside_others);
        let version = session.batch_last_value(&sql).map_err(StoreError::from);
        let opened = version.map_err(|e| self.failed(e)).and_then(|v| match v {
            Some(v) => {
                schema::refuse_newer(v.parse().map_err(|e| StoreError::Corrupt(format!("schema version {v:?}: {e}")))?)
            }
            None => Ok(()),
        });
        if opened.is_err() {
            // The lock timed out, or the schema moved on, in an open
            // transaction: end it.
            self.rollback();
        }
        opened
    }

    /// Hand back the leases of holders absent at this look and the last.
    fn release_dead_leases(&mut self, now: Timestamp) -> Result<usize, StoreError> {
        let c = self.live()?.connection();
        let absent: std::collections::BTreeSet<String> = c
            .prepare_cached(&format!(
                "SELECT DISTINCT leased_by FROM notifications
                 WHERE {} AND leased_until IS NOT NULL AND leased_by IS NOT NULL AND leased_by <> ?1
                   AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted
                                   AND l.objsubid = 2 AND l.classid::bigint = ?2
                                   AND l.objid::bigint = (hashtext(notifications.leased_by)::bigint & 4294967295))",
                NotificationState::Pending.sql("state")
            ))?
            .query_map(params![&*self.gateway, i64::from(PRESENCE)], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let gone: Vec<String> = absent.intersection(&self.absent).cloned().collect();
        let mut released = 0;
        for holder in &gone {
            released += outbox::release_all(&c, now, Some(holder))?;
        }
        self.absent = absent;
        Ok(released)
    }

    /// Load the writer's state at start, in a transaction holding the lock.
    pub fn load(
        &mut self,
        rules: Arc<crate::rules::RuleSet>,
        audience: crate::model::notification::Audience,
        now: Timestamp,
    ) -> Result<WriterState, StoreError> {
        self.open_locked_transaction(false)?;
        let gateway = self.gateway.clone();
        let loaded = (|| {
            let c = self.live()?.connection();
            let mut state = WriterState::load(&c, rules, audience, now)?;
            state.lease_owner = Some(gateway);
            let seen = last_logged(&c)?;
            Ok::<_, StoreError>((state, seen))
        })();
        // The first look for gateways gone: their leases go at the next.
        let loaded = loaded.and_then(|l| {
            self.release_dead_leases(now)?;
            self.dead_leases_checked = Some(std::time::Instant::now());
            Ok(l)
        });
        match loaded {
            Ok((state, seen)) => {
                self.run("COMMIT")?;
                self.seen = Some(seen);
                Ok(state)
            }
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    /// Bring `state` up to what the other gateways committed.
    /// Beside others only a memory already up to date goes on: catching up
    /// may write (a reload of on-call timers stores the handoffs of new
    /// schedules), which needs the lock alone, and what an abandoned batch
    /// wrote is rolled back while its catch-up position would stay.
    fn catch_up(&mut self, state: &mut WriterState, now: Timestamp) -> Result<(), StoreError> {
        let c = self.live()?.connection();
        let beside_others = c.resends_only();
        let Some(seen) = self.seen else {
            if beside_others {
                return Err(StoreError::NeedsWriteLock);
            }
            state.reload(&c, now)?;
            self.seen = Some(last_logged(&c)?);
            return Ok(());
        };
        let rows: Vec<(i64, bool, bool, String)> = c
            .prepare_cached("SELECT seq, timers, mutes, inhibit FROM writer_log WHERE seq > ?1 ORDER BY seq")?
            .query_map([seen], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        let Some(last) = rows.last().map(|r| r.0) else { return Ok(()) };
        if beside_others {
            return Err(StoreError::NeedsWriteLock);
        }
        if rows[0].0 != seen + 1 {
            // Pruned past what this gateway saw: read everything again.
            state.reload(&c, now)?;
            self.seen = Some(last);
            return Ok(());
        }
        let (mut timers, mut mutes, mut inhibit) = (false, false, Vec::new());
        for (_, t, m, fps) in rows {
            timers |= t;
            mutes |= m;
            let fps: Vec<String> = serde_json::from_str(&fps).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            inhibit.extend(fps);
        }
        if mutes {
            state.reload_mutes(&c, now)?;
        }
        if timers {
            state.reload_timers(&c, now)?;
        }
        inhibit.sort_unstable();
        inhibit.dedup();
        if inhibit.len() > INHIBIT_REREAD_MAX {
            state.reload(&c, now)?;
        } else {
            state.refresh_inhibit(&c, &inhibit)?;
        }
        self.seen = Some(last);
        Ok(())
    }
}

/// Take this gateway's presence lock on `client` (see [`PRESENCE`]).
/// Waits (trying every second) while the server still holds the lock for
/// a connection of this gateway that it has not yet seen die.
pub(super) fn announce(client: &mut postgres::Client, gateway: &str) -> Result<(), postgres::Error> {
    loop {
        let row = client.query_one("SELECT pg_try_advisory_lock($1, hashtext($2))", &[&PRESENCE, &gateway])?;
        if row.get::<_, bool>(0) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The latest row of `writer_log` (0: none yet).
fn last_logged(c: &sql::Connection<'_>) -> Result<i64, StoreError> {
    Ok(c.query_row("SELECT coalesce(max(seq), 0) FROM writer_log", params![], |r| r.get(0))?)
}

impl WriteDb for SharedDb {
    fn conn(&self) -> sql::Connection<'_> {
        self.session.as_ref().expect("a batch runs on a connected session").connection()
    }

    fn begin(&mut self, state: &mut WriterState, now: Timestamp, ingest_only: bool) -> Result<(), StoreError> {
        self.shown = false;
        let leases_due = self.dead_leases_checked.is_none_or(|at| at.elapsed() >= DEAD_LEASES_EVERY);
        let beside_others = ingest_only && !leases_due && self.seen.is_some() && self.alone_for == 0;
        self.alone_for = self.alone_for.saturating_sub(u32::from(!beside_others));
        self.open_locked_transaction(beside_others)?;
        let locked = (|| {
            self.catch_up(state, now)?;
            if leases_due {
                self.dead_leases_checked = Some(std::time::Instant::now());
                let released = self.release_dead_leases(now)?;
                if released > 0 {
                    tracing::info!(notifications = released, "took over the leases of a gateway that is gone");
                    state.outbox_dirty.set(true);
                }
            }
            Ok(())
        })();
        locked.map_err(|e| self.failed(e))
    }

    /// None beside others: any failure there applies the batch again alone.
    fn savepoint(&mut self) -> Result<(), StoreError> {
        if self.beside_others() {
            return Ok(());
        }
        if std::mem::take(&mut self.release_pending) {
            self.run("RELEASE SAVEPOINT request; SAVEPOINT request")
        } else {
            self.run("SAVEPOINT request")
        }
    }

    /// Sent with the next savepoint (or made moot by the commit): a round
    /// trip less per request.
    fn release(&mut self) -> Result<(), StoreError> {
        self.release_pending = !self.beside_others();
        Ok(())
    }

    fn rollback_to(&mut self) -> Result<(), StoreError> {
        if self.beside_others() {
            return Err(StoreError::NeedsWriteLock);
        }
        self.run("ROLLBACK TO SAVEPOINT request; RELEASE SAVEPOINT request")
    }

    fn commit(&mut self, changed: &Changed) -> Result<(), StoreError> {
        let beside_others = self.beside_others();
        if beside_others && !changed.is_empty() {
            // What the other gateways must hear of goes in order, alone.
            return Err(StoreError::NeedsWriteLock);
        }
        let gateway = self.gateway.clone();
        let logged = (|| {
            let c = self.live()?.connection();
            let mut logged = None;
            if !changed.is_empty() {
                let inhibit: Vec<&str> = changed.inhibit.iter().map(|f| f.as_str()).collect();
                let seq: i64 = c.query_row(
                    "INSERT INTO writer_log (seq, gateway, at, timers, mutes, inhibit)
                     VALUES ((SELECT coalesce(max(seq), 0) + 1 FROM writer_log), ?1, ?2, ?3, ?4, ?5) RETURNING seq",
                    params![
                        &*gateway,
                        ms(changed.at),
                        changed.timers,
                        changed.mutes,
                        serde_json::to_string(&inhibit).unwrap_or_default()
                    ],
                    |r| r.get(0),
                )?;
                if seq % 1_000 == 0 {
                    c.execute("DELETE FROM writer_log WHERE seq <= ?1", [seq - LOG_KEPT])?;
                }
                logged = Some(seq);
            }
            // Delivered at commit, to every gateway listening (this one
            // ignores its own): its delivery worker, its live views.
            let what = match (changed.outbox, changed.shown) {
                (true, _) => Some("outbox"),
                (false, true) => Some("views"),
                (false, false) => None,
            };
            if let Some(what) = what {
                c.query_row("SELECT pg_notify(?1, ?2)", params![CHANNEL, format!("{gateway} {what}")], |_| Ok(()))?;
            }
            Ok::<_, StoreError>(logged)
        })();
        let logged = logged.map_err(|e| self.failed(e))?;
        self.run("COMMIT")?;
        if let Some(seq) = logged {
            self.seen = Some(seq);
        }
        self.shown = changed.shown;
        self.end_beside_others();
        if beside_others {
            self.alone_after_retry /= 2;
            crate::metrics::metrics().batches_beside_others.with_label_values(&["committed"]).inc();
        }
        Ok(())
    }

    fn abandon(&mut self) {
        if !self.roll_back_transaction() {
            self.seen = None;
        }
        self.alone_after_retry = (self.alone_after_retry * 2).clamp(1, ALONE_AFTER_RETRY_MAX);
        // The retry itself, then that many more.
        self.alone_for = self.alone_after_retry + 1;
    }

    fn rollback(&mut self) {
        self.roll_back_transaction();
        // Whatever this batch changed in memory is read again.
        self.seen = None;
    }

    fn restore(&mut self, _: &mut WriterState, _: Timestamp) {
        // Read again before the next batch, under the lock.
        self.seen = None;
    }

    fn shown_changed(&self) -> bool {
        self.shown
    }

    fn close(mut self, now: Option<Timestamp>) {
        let Some(now) = now else { return };
        let owner = self.gateway.clone();
        match self.connected().and_then(|s| outbox::release_all(&s.connection(), now, Some(&owner))) {
            Ok(0) => {}
            Ok(n) => tracing::info!(notifications = n, "released the leases of unfinished deliveries"),
            Err(e) => tracing::warn!(error = %e, "releasing notification leases failed"),
        }
        if let Some(session) = self.session.take() {
            drop(session);
            tracing::info!("database closed cleanly");
        }
    }
}

/// Listen for the other gateways' commits: wake this gateway's live views
/// and delivery worker. Reconnects while the database is away; after each
/// (re)connection everything is woken once, for what was missed.
pub(super) fn listen(
    config: postgres::Config,
    mut first: Option<postgres::Client>,
    gateway: Arc<str>,
    feed: ChangeFeed,
    outbox_wakeup: Arc<tokio::sync::Notify>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        // The first connection holds the presence lock already.
        let mut client = match first.take() {
            Some(c) => c,
            None => {
                let announced =
                    config.connect(postgres::NoTls).and_then(|mut c| announce(&mut c, &gateway).map(|()| c));
                match announced {
                    Ok(c) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(500));
                        continue;
                    }
                }
            }
        };
        if client.batch_execute(&format!("LISTEN {CHANNEL}")).is_err() {
            std::thread::sleep(Duration::from_millis(500));
            continue;
        }
        feed.bump();
        outbox_wakeup.notify_one();
        while !stop.load(Ordering::Relaxed) && !client.is_closed() {
            let mut notes = client.notifications();
            let mut waiting = notes.timeout_iter(Duration::from_millis(250));
            match postgres::fallible_iterator::FallibleIterator::next(&mut waiting) {
                Ok(Some(note)) => {
                    let (from, what) = note.payload().split_once(' ').unwrap_or((note.payload(), ""));
                    if from != &*gateway {
                        feed.bump();
                        if what == "outbox" {
                            outbox_wakeup.notify_one();
                        }
                    }
                }
                Ok(None) => {}
                Err(_) => break,
            }
        }
    }
}
