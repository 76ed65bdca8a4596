//! PostgreSQL under the writer: several gateways share one database.
//!
//! Every write batch of every gateway runs in one transaction that first
//! takes the same transaction-scoped advisory lock, so batches are applied
//! one after another, exactly as one gateway would apply them: one alert
//! per fingerprint, one incident per group, one notification per event and
//! notifier. Before applying its batch a gateway catches up with what the
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
use super::{ChangeFeed, StoreError, ms, outbox};

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
        None => unreachable(e),
        Some(db) => {
            let code = db.code().code();
            let passing = ["08", "40", "53", "57"].iter().any(|class| code.starts_with(class));
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
    /// The row this batch logged, once its commit succeeds.
    logged: Option<i64>,
    /// Whether the last committed batch changed what live views show.
    shown: bool,
    /// When this gateway last handed back the leases of gateways gone.
    dead_leases_checked: Option<std::time::Instant>,
}

impl SharedDb {
    pub fn new(config: postgres::Config, session: PgSession, gateway: Arc<str>) -> SharedDb {
        SharedDb {
            config,
            session: Some(session),
            gateway,
            seen: None,
            logged: None,
            shown: false,
            dead_leases_checked: None,
        }
    }

    fn session(&mut self) -> Result<&PgSession, StoreError> {
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

    fn run(&mut self, sql: &str) -> Result<(), StoreError> {
        let r = self.session()?.batch_execute(sql).map_err(StoreError::from);
        r.map_err(|e| self.failed(e))
    }

    /// Load the writer's state at start, in a transaction holding the lock.
    pub fn load(
        &mut self,
        rules: Arc<crate::rules::RuleSet>,
        audience: crate::model::notification::Audience,
        now: Timestamp,
    ) -> Result<WriterState, StoreError> {
        self.run("BEGIN")?;
        let gateway = self.gateway.clone();
        let loaded = (|| {
            let c = self.session()?.connection();
            c.query_row("SELECT pg_advisory_xact_lock(?1)", [WRITE_LOCK], |_| Ok(()))?;
            let released = release_dead_leases(&c, &gateway, now)?;
            if released > 0 {
                tracing::info!(notifications = released, "took over the leases of a gateway that is gone");
            }
            let mut state = WriterState::load(&c, rules, audience, now)?;
            state.lease_owner = Some(gateway);
            let seen = last_logged(&c)?;
            Ok::<_, StoreError>((state, seen))
        })();
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
    fn catch_up(&mut self, state: &mut WriterState, now: Timestamp) -> Result<(), StoreError> {
        let session = self.session.as_ref().ok_or(StoreError::Closed)?;
        let c = session.connection();
        let Some(seen) = self.seen else {
            state.reload(&c, now)?;
            self.seen = Some(last_logged(&c)?);
            return Ok(());
        };
        let rows: Vec<(i64, bool, bool, String)> = c
            .prepare_cached("SELECT seq, timers, mutes, inhibit FROM writer_log WHERE seq > ?1 ORDER BY seq")?
            .query_map([seen], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        let Some(last) = rows.last().map(|r| r.0) else { return Ok(()) };
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
            for fp in inhibit {
                let fp = crate::model::Fingerprint::parse(&fp).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                state.refresh_inhibit(&c, &fp)?;
            }
        }
        self.seen = Some(last);
        Ok(())
    }
}

/// Hand back, due at `now`, the notification leases of gateways that no
/// longer hold their presence lock (dead, or cut off from the database):
/// their pages go out now, not when the leases end.
fn release_dead_leases(c: &sql::Connection<'_>, me: &str, now: Timestamp) -> Result<usize, StoreError> {
    Ok(c.execute(
        "UPDATE notifications SET next_attempt_at = ?1, leased_until = NULL, leased_by = NULL
         WHERE state = 'pending' AND leased_by IS NOT NULL AND leased_by <> ?2
           AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted
                           AND l.objsubid = 2 AND l.classid::bigint = ?3
                           AND l.objid::bigint = (hashtext(notifications.leased_by)::bigint & 4294967295))",
        params![ms(now), me, i64::from(PRESENCE)],
    )?)
}

/// Take this gateway's presence lock on `client` (see [`PRESENCE`]).
pub(super) fn announce(client: &mut postgres::Client, gateway: &str) -> Result<(), postgres::Error> {
    client.execute("SELECT pg_advisory_lock($1, hashtext($2))", &[&PRESENCE, &gateway]).map(|_| ())
}

/// The latest row of `writer_log` (0: none yet).
fn last_logged(c: &sql::Connection<'_>) -> Result<i64, StoreError> {
    Ok(c.query_row("SELECT coalesce(max(seq), 0) FROM writer_log", params![], |r| r.get(0))?)
}

impl WriteDb for SharedDb {
    fn conn(&self) -> sql::Connection<'_> {
        self.session.as_ref().expect("a batch runs on a connected session").connection()
    }

    fn begin(&mut self, state: &mut WriterState, now: Timestamp) -> Result<(), StoreError> {
        self.logged = None;
        self.shown = false;
        self.run("BEGIN")?;
        let locked = (|| {
            self.session()?.connection().query_row("SELECT pg_advisory_xact_lock(?1)", [WRITE_LOCK], |_| Ok(()))?;
            self.catch_up(state, now)?;
            if self.dead_leases_checked.is_none_or(|at| at.elapsed() >= DEAD_LEASES_EVERY) {
                self.dead_leases_checked = Some(std::time::Instant::now());
                let gateway = self.gateway.clone();
                let released = release_dead_leases(&self.session()?.connection(), &gateway, now)?;
                if released > 0 {
                    tracing::info!(notifications = released, "took over the leases of a gateway that is gone");
                    state.outbox_dirty.set(true);
                }
            }
            Ok(())
        })();
        locked.map_err(|e| self.failed(e))
    }

    fn savepoint(&mut self) -> Result<(), StoreError> {
        self.run("SAVEPOINT request")
    }

    fn release(&mut self) -> Result<(), StoreError> {
        self.run("RELEASE SAVEPOINT request")
    }

    fn rollback_to(&mut self) -> Result<(), StoreError> {
        self.run("ROLLBACK TO SAVEPOINT request; RELEASE SAVEPOINT request")
    }

    fn commit(&mut self, changed: &Changed) -> Result<(), StoreError> {
        let gateway = self.gateway.clone();
        let logged = (|| {
            let c = self.session()?.connection();
            let mut logged = None;
            if !changed.is_empty() {
                let inhibit: Vec<&str> = changed.inhibit.iter().map(|f| f.as_str()).collect();
                let seq: i64 = c.query_row(
                    "INSERT INTO writer_log (seq, gateway, at, timers, mutes, inhibit)
                     VALUES ((SELECT coalesce(max(seq), 0) + 1 FROM writer_log), ?1, ?2, ?3, ?4, ?5) RETURNING seq",
                    params![
                        &*gateway,
                        ms(changed.at.unwrap_or_default()),
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
        Ok(())
    }

    fn rollback(&mut self) {
        if let Some(s) = &self.session
            && !s.is_closed()
            && let Err(e) = s.batch_execute("ROLLBACK")
        {
            tracing::warn!(error = %e, "rolling back a batch failed");
            self.session = None;
        }
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
        match self.session().and_then(|s| outbox::release_all(&s.connection(), now, Some(&owner))) {
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
            None => match config.connect(postgres::NoTls) {
                Ok(mut c) => match announce(&mut c, &gateway) {
                    Ok(()) => c,
                    Err(_) => continue,
                },
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                }
            },
        };
        if client.batch_execute(&format!("LISTEN {CHANNEL}")).is_err() {
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
