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
    // 2: incidents, their alerts and timeline, pending groups, silences.
    r#"
    ALTER TABLE alerts ADD COLUMN muted_by TEXT;
    CREATE TABLE incidents (
        id              INTEGER PRIMARY KEY,
        rule            TEXT    NOT NULL,
        group_key       TEXT    NOT NULL,
        title           TEXT    NOT NULL,
        service         TEXT,
        impact          TEXT    NOT NULL,
        urgency         TEXT    NOT NULL,
        priority        TEXT    NOT NULL,
        state           TEXT    NOT NULL,
        assignee        TEXT,
        labels          TEXT    NOT NULL,
        alert_count     INTEGER NOT NULL,
        firing_count    INTEGER NOT NULL,
        flap_count      INTEGER NOT NULL DEFAULT 0,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        acknowledged_at INTEGER,
        resolved_at     INTEGER,
        closed_at       INTEGER,
        auto_resolve_at INTEGER
    );
    CREATE INDEX incidents_key ON incidents (rule, group_key, id);
    CREATE INDEX incidents_state ON incidents (state, id);
    CREATE INDEX incidents_auto_resolve ON incidents (auto_resolve_at) WHERE auto_resolve_at IS NOT NULL;
    CREATE TABLE incident_alerts (
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        alert_id    INTEGER NOT NULL REFERENCES alerts (id),
        rule        TEXT    NOT NULL,
        firing      INTEGER NOT NULL,
        joined_at   INTEGER NOT NULL,
        PRIMARY KEY (incident_id, alert_id)
    ) WITHOUT ROWID;
    CREATE INDEX incident_alerts_alert ON incident_alerts (alert_id, rule, incident_id);
    CREATE TABLE incident_events (
        id          INTEGER PRIMARY KEY,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        at          INTEGER NOT NULL,
        actor       TEXT    NOT NULL,
        kind        TEXT    NOT NULL,
        message     TEXT    NOT NULL,
        data        TEXT
    );
    CREATE INDEX incident_events_incident ON incident_events (incident_id, id);
    CREATE TABLE pending_groups (
        rule           TEXT    NOT NULL,
        group_key      TEXT    NOT NULL,
        first_fired_at INTEGER NOT NULL,
        due_at         INTEGER,
        PRIMARY KEY (rule, group_key)
    ) WITHOUT ROWID;
    CREATE INDEX pending_groups_due ON pending_groups (due_at) WHERE due_at IS NOT NULL;
    CREATE TABLE pending_alerts (
        rule      TEXT    NOT NULL,
        group_key TEXT    NOT NULL,
        alert_id  INTEGER NOT NULL REFERENCES alerts (id),
        PRIMARY KEY (rule, group_key, alert_id)
    ) WITHOUT ROWID;
    CREATE INDEX pending_alerts_alert ON pending_alerts (alert_id);
    CREATE TABLE silences (
        id         INTEGER PRIMARY KEY,
        matchers   TEXT    NOT NULL,
        starts_at  INTEGER NOT NULL,
        ends_at    INTEGER NOT NULL,
        created_by TEXT    NOT NULL,
        comment    TEXT    NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX silences_ends ON silences (ends_at);
    "#,
    // 3: find muted alerts when their silence ends or their inhibitor
    // resolves; when each alert joined its pending group.
    r#"
    CREATE INDEX alerts_muted ON alerts (muted_by) WHERE muted_by IS NOT NULL;
    ALTER TABLE pending_alerts ADD COLUMN held_at INTEGER NOT NULL DEFAULT 0;
    UPDATE pending_alerts SET held_at = (
        SELECT g.first_fired_at FROM pending_groups g WHERE g.rule = pending_alerts.rule AND g.group_key = pending_alerts.group_key
    );
    "#,
    // 4: SLA clocks, escalations, problems, changes and the notification
    // outbox. Rows of `sla_clocks` and `escalations` with a `due_at` are the
    // timers the writer keeps in memory, rebuilt from these at start.
    r#"
    ALTER TABLE incident_events ADD COLUMN recorded_at INTEGER;
    ALTER TABLE incidents ADD COLUMN sla_policy TEXT;
    CREATE INDEX incidents_created ON incidents (created_at);
    CREATE TABLE sla_clocks (
        id            INTEGER PRIMARY KEY,
        incident_id   INTEGER NOT NULL REFERENCES incidents (id),
        kind          TEXT    NOT NULL CHECK (kind IN ('respond', 'resolve')),
        policy        TEXT    NOT NULL,
        calendar      TEXT    NOT NULL,
        target_ms     INTEGER NOT NULL,
        warn_at       TEXT    NOT NULL,
        pause_in      TEXT    NOT NULL,
        used_ms       INTEGER NOT NULL,
        running_since INTEGER,
        stopped_at    INTEGER,
        warned        TEXT    NOT NULL,
        breached_at   INTEGER,
        due_at        INTEGER,
        UNIQUE (incident_id, kind)
    );
    CREATE INDEX sla_clocks_due ON sla_clocks (due_at) WHERE due_at IS NOT NULL;
    CREATE INDEX sla_clocks_breached ON sla_clocks (breached_at) WHERE breached_at IS NOT NULL;
    CREATE TABLE escalations (
        incident_id   INTEGER PRIMARY KEY REFERENCES incidents (id),
        policy        TEXT    NOT NULL,
        round         INTEGER NOT NULL,
        step          INTEGER NOT NULL,
        round_started INTEGER NOT NULL,
        due_at        INTEGER
    );
    CREATE INDEX escalations_due ON escalations (due_at) WHERE due_at IS NOT NULL;
    CREATE TABLE problems (
        id          INTEGER PRIMARY KEY,
        title       TEXT    NOT NULL,
        key         TEXT,
        rule        TEXT,
        state       TEXT    NOT NULL,
        root_cause  TEXT,
        workaround  TEXT,
        created_by  TEXT    NOT NULL,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        resolved_at INTEGER,
        closed_at   INTEGER
    );
    CREATE INDEX problems_key ON problems (key, id) WHERE key IS NOT NULL;
    CREATE INDEX problems_state ON problems (state, id);
    CREATE TABLE problem_incidents (
        problem_id  INTEGER NOT NULL REFERENCES problems (id),
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        linked_at   INTEGER NOT NULL,
        linked_by   TEXT    NOT NULL,
        PRIMARY KEY (problem_id, incident_id)
    ) WITHOUT ROWID;
    CREATE INDEX problem_incidents_incident ON problem_incidents (incident_id);
    CREATE TABLE problem_events (
        id         INTEGER PRIMARY KEY,
        problem_id INTEGER NOT NULL REFERENCES problems (id),
        at         INTEGER NOT NULL,
        actor      TEXT    NOT NULL,
        kind       TEXT    NOT NULL,
        message    TEXT    NOT NULL,
        data       TEXT
    );
    CREATE INDEX problem_events_problem ON problem_events (problem_id, id);
    CREATE TABLE incident_problem_keys (
        key         TEXT    NOT NULL,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (key, created_at, incident_id)
    ) WITHOUT ROWID;
    CREATE TABLE changes (
        id         INTEGER PRIMARY KEY,
        service    TEXT,
        summary    TEXT    NOT NULL,
        starts_at  INTEGER NOT NULL,
        ends_at    INTEGER,
        link       TEXT,
        labels     TEXT    NOT NULL,
        source     TEXT    NOT NULL,
        suppress   INTEGER NOT NULL DEFAULT 0,
        created_by TEXT    NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX changes_service ON changes (service, starts_at);
    CREATE INDEX changes_suppress ON changes (ends_at) WHERE suppress = 1;
    CREATE TABLE incident_changes (
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        change_id   INTEGER NOT NULL REFERENCES changes (id),
        PRIMARY KEY (incident_id, change_id)
    ) WITHOUT ROWID;
    CREATE TABLE notifications (
        id              INTEGER PRIMARY KEY,
        event           TEXT    NOT NULL,
        incident_id     INTEGER REFERENCES incidents (id),
        problem_id      INTEGER REFERENCES problems (id),
        notifier        TEXT    NOT NULL,
        idempotency_key TEXT    NOT NULL UNIQUE,
        payload         TEXT    NOT NULL,
        state           TEXT    NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        created_at      INTEGER NOT NULL,
        next_attempt_at INTEGER,
        last_error      TEXT,
        sent_at         INTEGER,
        retried_at      INTEGER,
        covered_by      TEXT
    );
    CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE state = 'pending';
    CREATE TABLE audit_log (
        id          INTEGER PRIMARY KEY,
        at          INTEGER NOT NULL,
        actor       TEXT    NOT NULL,
        source      TEXT,
        action      TEXT    NOT NULL,
        target_kind TEXT    NOT NULL,
        target_id   INTEGER,
        before      TEXT    NOT NULL,
        after       TEXT    NOT NULL,
        detail      TEXT    NOT NULL
    );
    CREATE INDEX audit_log_actor ON audit_log (actor, id);
    CREATE INDEX audit_log_target ON audit_log (target_kind, target_id, id);
    CREATE INDEX notifications_state ON notifications (state, id);
    "#,
    // 5: a claimed notification says so, so that a restart can hand its
    // lease back at once instead of waiting for it to run out.
    r#"
    ALTER TABLE notifications ADD COLUMN leased_until INTEGER;
    CREATE INDEX notifications_leased ON notifications (leased_until) WHERE leased_until IS NOT NULL;
    "#,
    // 6: a clock may have no target (its incident's priority makes no such
    // promise, the time used still counts), and a respond clock stopped by
    // a resolution nobody acknowledged says so (`resolved_unacknowledged`).
    r#"
    CREATE TABLE sla_clocks_v6 (
        id            INTEGER PRIMARY KEY,
        incident_id   INTEGER NOT NULL REFERENCES incidents (id),
        kind          TEXT    NOT NULL CHECK (kind IN ('respond', 'resolve')),
        policy        TEXT    NOT NULL,
        calendar      TEXT    NOT NULL,
        target_ms     INTEGER,
        warn_at       TEXT    NOT NULL,
        pause_in      TEXT    NOT NULL,
        used_ms       INTEGER NOT NULL,
        running_since INTEGER,
        stopped_at    INTEGER,
        warned        TEXT    NOT NULL,
        breached_at   INTEGER,
        due_at        INTEGER,
        unanswered    INTEGER NOT NULL DEFAULT 0 CHECK (unanswered IN (0, 1)),
        UNIQUE (incident_id, kind)
    );
    INSERT INTO sla_clocks_v6 (id, incident_id, kind, policy, calendar, target_ms, warn_at, pause_in, used_ms,
        running_since, stopped_at, warned, breached_at, due_at)
    SELECT id, incident_id, kind, policy, calendar, target_ms, warn_at, pause_in, used_ms,
        running_since, stopped_at, warned, breached_at, due_at FROM sla_clocks;
    DROP TABLE sla_clocks;
    ALTER TABLE sla_clocks_v6 RENAME TO sla_clocks;
    CREATE INDEX sla_clocks_due ON sla_clocks (due_at) WHERE due_at IS NOT NULL;
    CREATE INDEX sla_clocks_breached ON sla_clocks (breached_at) WHERE breached_at IS NOT NULL;
    "#,
    // 7: facts about the database itself. `realm` names this database's
    // silences in Alertmanager's API (never 0: that names ids given out before).
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO meta (key, value) VALUES ('realm', (abs(random()) % 4294967295) + 1);
    "#,
    // 8: heartbeats that have pinged: the last ping, and the deadline whose
    // miss raised the heartbeat's alert while that alert fires. A heartbeat
    // without a row never pinged.
    r#"
    CREATE TABLE heartbeats (
        id        INTEGER PRIMARY KEY,
        name      TEXT    NOT NULL UNIQUE,
        last_ping INTEGER NOT NULL,
        missed_at INTEGER
    );
    "#,
    // 9: the service desk: incidents people report, and merges.
    r#"
    ALTER TABLE incidents ADD COLUMN source TEXT NOT NULL DEFAULT 'alert' CHECK (source IN ('alert', 'reported'));
    ALTER TABLE incidents ADD COLUMN description TEXT;
    ALTER TABLE incidents ADD COLUMN reporter TEXT;
    ALTER TABLE incidents ADD COLUMN merged_into INTEGER REFERENCES incidents (id);
    "#,
    // 10: post-incident reviews, one per incident; `text` is its written
    // parts and timeline as JSON (model::review::ReviewText).
    r#"
    CREATE TABLE reviews (
        incident_id  INTEGER PRIMARY KEY REFERENCES incidents (id),
        state        TEXT    NOT NULL CHECK (state IN ('draft', 'in_review', 'published')),
        text         TEXT    NOT NULL,
        created_by   TEXT    NOT NULL,
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL,
        published_at INTEGER
    );
    "#,
    // 11: action items of reviews (their incidents) and problems.
    r#"
    CREATE TABLE action_items (
        id                  INTEGER PRIMARY KEY,
        title               TEXT    NOT NULL,
        owner               TEXT    NOT NULL,
        due                 INTEGER NOT NULL,
        state               TEXT    NOT NULL CHECK (state IN ('open', 'done', 'wont_do')),
        incident_id         INTEGER REFERENCES incidents (id),
        problem_id          INTEGER REFERENCES problems (id),
        created_by          TEXT    NOT NULL,
        created_at          INTEGER NOT NULL,
        updated_at          INTEGER NOT NULL,
        settled_at          INTEGER,
        overdue_notified_at INTEGER,
        CHECK ((incident_id IS NULL) != (problem_id IS NULL))
    );
    CREATE INDEX action_items_news ON action_items (due) WHERE state = 'open' AND overdue_notified_at IS NULL;
    CREATE INDEX action_items_incident ON action_items (incident_id);
    -- Similar incidents read the latest of a rule and of a service.
    CREATE INDEX incidents_rule ON incidents (rule, id);
    CREATE INDEX incidents_service ON incidents (service, id);
    "#,
    // 12: on call: overrides of schedules (deleted ones kept for the
    // record), how far each schedule's handoffs have been announced, and
    // the hashed keys of calendar feeds.
    r#"
    CREATE TABLE schedule_overrides (
        id         INTEGER PRIMARY KEY,
        schedule   TEXT    NOT NULL,
        person     TEXT    NOT NULL,
        starts_at  INTEGER NOT NULL,
        ends_at    INTEGER NOT NULL,
        reason     TEXT,
        created_by TEXT    NOT NULL,
        created_at INTEGER NOT NULL,
        deleted_by TEXT,
        deleted_at INTEGER,
        CHECK (ends_at > starts_at)
    );
    CREATE INDEX schedule_overrides_live ON schedule_overrides (schedule, ends_at) WHERE deleted_at IS NULL;
    CREATE TABLE oncall_handoffs (
        id                INTEGER PRIMARY KEY,
        schedule          TEXT    NOT NULL UNIQUE,
        announced_through INTEGER NOT NULL,
        -- Who was told last that they are on call; NULL: nobody is.
        announced_person  TEXT
    );
    CREATE TABLE calendar_feeds (
        id         INTEGER PRIMARY KEY,
        schedule   TEXT,
        person     TEXT,
        key_hash   TEXT    NOT NULL UNIQUE,
        created_by TEXT    NOT NULL,
        created_at INTEGER NOT NULL,
        revoked_by TEXT,
        revoked_at INTEGER,
        CHECK ((schedule IS NULL) != (person IS NULL))
    );
    "#,
    // 13: several gateways on one database (PostgreSQL). Who holds a
    // notification's lease, so a gateway that stops hands back only its
    // own; and what each committed write batch changed of the state every
    // gateway keeps in memory (timers, silences and the like, inhibition
    // sources), so the others catch up before their next write. `seq`
    // grows by one per logged batch; old rows are pruned.
    r#"
    ALTER TABLE notifications ADD COLUMN leased_by TEXT;
    CREATE TABLE writer_log (
        seq     INTEGER NOT NULL PRIMARY KEY,
        gateway TEXT    NOT NULL,
        at      INTEGER NOT NULL,
        timers  INTEGER NOT NULL CHECK (timers IN (0, 1)),
        mutes   INTEGER NOT NULL CHECK (mutes IN (0, 1)),
        inhibit TEXT    NOT NULL
    );
    "#,
    // 14: the expiry index keyed on the expiry alone. Only a firing alert
    // has one, and a query naming `status = 'firing'` let SQLite's planner
    // prefer `alerts_status` and walk every firing alert once a second
    // (0.55 s with a million stored).
    r#"
    UPDATE alerts SET expires_at = NULL WHERE status <> 'firing' AND expires_at IS NOT NULL;
    DROP INDEX alerts_expiry;
    CREATE INDEX alerts_expiry ON alerts (expires_at) WHERE expires_at IS NOT NULL;
    "#,
    // 15: the outbox's due index keyed on (state, due time). Partial on
    // `state = 'pending'`, it lost to `notifications_state (state, id)` in
    // SQLite's planner, and every claim and the worker's next-due lookup
    // read and sorted all pending rows: a storm's backlog of thousands of
    // notifications, for each claim of 200.
    r#"
    DROP INDEX notifications_due;
    CREATE INDEX notifications_due ON notifications (state, next_attempt_at);
    "#,
    // 16: the expiry sweep's checks out of the alerts row. A re-send moves
    // `expires_at` later every time; with it indexed, every re-send wrote
    // an entry into every index of `alerts` (on PostgreSQL no update could
    // be HOT, and dead entries piled up faster than vacuum cleared them).
    // A check is due no later than its alert's expiry and moves only when
    // the expiry comes earlier or is new, or when the sweep finds the
    // alert re-sent since (model::alert::expiry_check_by, check_expiry).
    // On PostgreSQL, room on each page of `alerts` for a re-send's new
    // version of the row, so that it stays on its page (HOT). No foreign
    // key on `alert_id` (alerts are never deleted): PostgreSQL checks one
    // with a query per inserted row, planned anew each time in the
    // gateway's sessions (`plan_cache_mode`), ~30 µs per new alert.
    r#"
    CREATE TABLE expiry_checks (
        alert_id INTEGER NOT NULL PRIMARY KEY,
        check_at INTEGER NOT NULL
    );
    INSERT INTO expiry_checks (alert_id, check_at) SELECT id, expires_at FROM alerts WHERE expires_at IS NOT NULL;
    CREATE INDEX expiry_checks_due ON expiry_checks (check_at);
    DROP INDEX alerts_expiry;
    -- postgres: ALTER TABLE alerts SET (fillfactor = 70);
    "#,
];

/// This database's realm (see migration 7).
pub fn realm(conn: &Connection) -> Result<u32, StoreError> {
    let text: String = conn.query_row("SELECT value FROM meta WHERE key = 'realm'", [], |r| r.get(0))?;
    text.parse().map_err(|e| StoreError::Corrupt(format!("realm {text:?}: {e}")))
}

/// This database's realm, through the SQL layer (any engine).
pub fn realm_of(conn: &super::sql::Connection<'_>) -> Result<u32, StoreError> {
    let text: String =
        conn.query_row("SELECT value FROM meta WHERE key = 'realm'", super::sql::params![], |r| r.get(0))?;
    text.parse().map_err(|e| StoreError::Corrupt(format!("realm {text:?}: {e}")))
}

/// The schema version this build writes.
pub const VERSION: usize = MIGRATIONS.len();

/// A database at schema version `found` is one this build may write:
/// refused once a newer build has migrated it.
pub fn refuse_newer(found: usize) -> Result<(), StoreError> {
    if found > VERSION {
        return Err(StoreError::TooNew { found, supported: VERSION });
    }
    Ok(())
}

pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    refuse_newer(current)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied schema migration");
    }
    Ok(())
}

/// The migrations as PostgreSQL takes them: the same tables, indexes and
/// constraints, with its names for the types (every integer is 64 bits,
/// ids are identity columns) and its way to draw the realm.
pub fn postgres_migrations() -> Vec<String> {
    MIGRATIONS
        .iter()
        .map(|sql| {
            sql.replace("INTEGER PRIMARY KEY", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
                .replace("INTEGER", "BIGINT")
                .replace(" REAL", " DOUBLE PRECISION")
                .replace(" BLOB", " BYTEA")
                .replace(") WITHOUT ROWID;", ");")
                .replace("(abs(random()) % 4294967295) + 1", "(floor(random() * 4294967294) + 1)::bigint::text")
                .replace("-- postgres: ", "")
        })
        .collect()
}

/// Apply the migrations a PostgreSQL database has not had, each in its own
/// transaction, under an advisory lock, so that gateways starting at once
/// apply each migration once; refuse a schema newer than this build knows.
pub fn migrate_postgres(session: &super::sql::PgSession) -> Result<usize, StoreError> {
    const LOCK: i64 = 0x616c_6572_7467_6174; // "alertgat"
    let c = session.connection();
    c.query_row("SELECT pg_advisory_lock(?1)", [LOCK], |_| Ok(()))?;
    let applied = apply_postgres(session);
    let unlocked = c.query_row("SELECT pg_advisory_unlock(?1)", [LOCK], |_| Ok(()));
    let applied = applied?;
    unlocked?;
    Ok(applied)
}

/// The migrations not yet applied, the lock held.
fn apply_postgres(session: &super::sql::PgSession) -> Result<usize, StoreError> {
    let c = session.connection();
    session.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
    let mut applied = 0;
    for (i, sql) in postgres_migrations().iter().enumerate() {
        let tx = c.unchecked_transaction()?;
        let current: i64 = tx.connection().query_row(
            "SELECT coalesce(max(version), 0) FROM schema_version",
            super::sql::params![],
            |r| r.get(0),
        )?;
        let current = usize::try_from(current).unwrap_or(usize::MAX);
        refuse_newer(current)?;
        if current > i {
            continue;
        }
        session.batch_execute(sql)?;
        tx.connection().execute("DELETE FROM schema_version", super::sql::params![])?;
        tx.connection().execute("INSERT INTO schema_version (version) VALUES (?1)", [(i + 1) as i64])?;
        tx.commit()?;
        applied += 1;
        tracing::info!(version = i + 1, "applied schema migration");
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The timer tick looks for expired alerts once a second: with a
    /// million firing, walking them all took 0.55 s of every second.
    #[test]
    fn the_expiry_lookup_searches_the_expiry_index_not_every_firing_alert() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", *super::super::apply::DUE_EXPIRIES))
            .unwrap()
            .query_map(["1"], |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            plan,
            [
                "SEARCH c USING COVERING INDEX expiry_checks_due (check_at<?)",
                "SEARCH a USING INTEGER PRIMARY KEY (rowid=?)"
            ]
        );
    }

    /// Migration 16 gives every alert with an expiry its check, due then,
    /// and nothing else one.
    #[test]
    fn the_expiries_of_stored_alerts_become_their_checks() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..15] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 15).unwrap();
        for (fp, status, expires_at) in [("a", "firing", Some(5_000)), ("b", "firing", None), ("c", "resolved", None)] {
            conn.execute(
                "INSERT INTO alerts (fingerprint, source, status, labels, annotations, starts_at, expires_at, first_seen,
                    last_seen, occurrences, raw) VALUES (?1, 'prometheus', ?2, '{}', '{}', 1, ?3, 1, 1, 1, '{}')",
                rusqlite::params![fp, status, expires_at],
            )
            .unwrap();
        }
        migrate(&mut conn).unwrap();
        let checks: Vec<(String, i64)> = conn
            .prepare("SELECT a.fingerprint, c.check_at FROM expiry_checks c JOIN alerts a ON a.id = c.alert_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(checks, [("a".to_owned(), 5_000)]);
    }

    /// A re-sent alert's open incidents are looked up for every alert;
    /// an `IN (...)` list there built a temporary table each time.
    #[test]
    fn the_open_incidents_of_an_alert_are_found_without_a_temporary_table() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let sql = super::super::incidents::OPEN_INCIDENTS_OF_ALERT.sqlite.as_str();
        let opcodes: Vec<String> = conn
            .prepare(&format!("EXPLAIN {sql}"))
            .unwrap()
            .query_map([1], |r| r.get(1))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(opcodes.iter().any(|o| o == "SeekRowid"), "{opcodes:?}");
        assert!(!opcodes.iter().any(|o| o == "OpenEphemeral"), "{opcodes:?}");
    }

    #[test]
    fn every_migration_applies_to_postgresql_once_and_a_newer_schema_is_refused() {
        let (_db, session) = crate::store::sqlite::sql::tests::PgDatabase::create();
        assert_eq!(migrate_postgres(&session).unwrap(), VERSION);
        assert_eq!(migrate_postgres(&session).unwrap(), 0, "nothing left to apply");
        let c = session.connection();
        let realm: String = c
            .query_row("SELECT value FROM meta WHERE key = 'realm'", crate::store::sqlite::sql::params![], |r| r.get(0))
            .unwrap();
        let realm: u64 = realm.parse().unwrap();
        assert!((1..=u64::from(u32::MAX)).contains(&realm), "{realm}");
        // Room on each page of alerts for a re-send's new row version (HOT).
        let options: String = c
            .query_row(
                "SELECT reloptions::text FROM pg_class WHERE relname = 'alerts'",
                crate::store::sqlite::sql::params![],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(options, "{fillfactor=70}");
        // The tables take what the SQLite store writes: an alert, its id back.
        let id: i64 = c
            .query_row(
                "INSERT INTO alerts (fingerprint, source, status, labels, annotations, starts_at, first_seen, last_seen,
                    occurrences, raw) VALUES (?1, 'prometheus', 'firing', '{}', '{}', 1, 1, 1, 1, '{}') RETURNING id",
                ["0123456789abcdef"],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(id, 1);
        c.execute("UPDATE schema_version SET version = ?1", [(VERSION + 1) as i64]).unwrap();
        match migrate_postgres(&session) {
            Err(StoreError::TooNew { found, supported }) => assert_eq!((found, supported), (VERSION + 1, VERSION)),
            other => panic!("a newer schema must be refused: {other:?}"),
        }
    }

    /// SQLite prepares a statement whose `LIMIT` is a bound parameter
    /// again each time it runs; the writer's statements that run per alert,
    /// notification or tick write their limits in, and are prepared once.
    #[test]
    fn the_writers_limited_statements_are_prepared_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let reprepared = |sql: &str, params: &[&dyn rusqlite::ToSql]| {
            let mut st = conn.prepare(sql).unwrap();
            for _ in 0..3 {
                st.query_map(params, |_| Ok(())).unwrap().for_each(drop);
            }
            st.get_status(rusqlite::StatementStatus::RePrepare)
        };
        let bound = "SELECT id FROM alerts WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2";
        assert_eq!(reprepared(bound, &[&1, &10]), 3, "SQLite's behaviour this guards against");
        assert_eq!(reprepared(&super::super::apply::DUE_EXPIRIES, &[&1]), 0);
        let first = super::super::rows::first_alerts_sql(crate::engine::notify::SNAPSHOT_ALERTS);
        assert_eq!(reprepared(&first, &[&1]), 0);
    }

    /// The outbox worker looks up the next due notification and claims
    /// due ones all the time; both must seek, not read every pending row
    /// (a storm leaves thousands).
    #[test]
    fn the_outbox_finds_due_notifications_by_seeking_its_due_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let plan = |sql: &str| -> Vec<String> {
            let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let n = st.parameter_count();
            st.query_map(rusqlite::params_from_iter(std::iter::repeat_n(1, n)), |r| r.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(
            plan(&super::super::outbox::NEXT_DUE),
            ["SEARCH notifications USING COVERING INDEX notifications_due (state=?)"]
        );
        assert_eq!(
            plan(&super::super::outbox::due_ids(200)),
            ["SEARCH notifications USING COVERING INDEX notifications_due (state=? AND next_attempt_at<?)"]
        );
    }
}
