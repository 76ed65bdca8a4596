//! Gauges of stored state, read at scrape time.
use std::collections::HashMap;
use std::path::Path;

use jiff::Timestamp;
use rusqlite::{Connection, params};

use super::{StoreError, ms};
use crate::metrics::{COMPLIANCE_WINDOW_DAYS, metrics};
use crate::model::incident::IncidentState;
use crate::model::problem::ProblemState;
use crate::sla::clock::ClockState;

pub(super) fn update(c: &Connection, db: &Path, now: Timestamp) -> Result<(), StoreError> {
    let m = metrics();
    m.incidents_open.reset();
    let mut stmt = c.prepare_cached(&format!(
        "SELECT state, priority, COALESCE(service, ''), count(*) FROM incidents WHERE {} GROUP BY 1, 2, 3",
        IncidentState::open_sql("state")
    ))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get(3)?)))?;
    // Services past the label budget are summed under `other`.
    let mut open: HashMap<(String, String, String), i64> = HashMap::new();
    for row in rows {
        let (state, priority, service, n): (String, String, String, i64) = row?;
        let service = m.services.admit("incidents_open", &service).into_owned();
        *open.entry((state, priority, service)).or_default() += n;
    }
    for ((state, priority, service), n) in open {
        m.incidents_open.with_label_values(&[state.as_str(), priority.as_str(), service.as_str()]).set(n);
    }

    m.sla_clocks_running.reset();
    // Every kind and state exists at zero, so a dashboard shows 0, not "No data".
    for kind in ["respond", "resolve"] {
        for state in ["running", "paused"] {
            m.sla_clocks_running.with_label_values(&[kind, state]).set(0);
        }
    }
    let mut stmt = c.prepare_cached(
        // Clocks that have not stopped, counting or not (a breached clock
        // keeps counting until its incident is answered).
        "SELECT kind, CASE WHEN running_since IS NULL THEN 'paused' ELSE 'running' END, count(*) FROM sla_clocks
         WHERE stopped_at IS NULL GROUP BY 1, 2",
    )?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?)))? {
        let (kind, state, n): (String, String, i64) = row?;
        m.sla_clocks_running.with_label_values(&[kind.as_str(), state.as_str()]).set(n);
    }

    m.sla_compliance.reset();
    let since = ms(now) - COMPLIANCE_WINDOW_DAYS * 86_400_000;
    let mut stmt = c.prepare_cached(&format!(
        "SELECT s.kind, i.priority, COALESCE(i.service, ''), sum({}), sum({} OR {})
             FROM sla_clocks s JOIN incidents i ON i.id = s.incident_id
             WHERE i.created_at >= ?1 GROUP BY 1, 2, 3",
        ClockState::Met.sql("s"),
        ClockState::Breached.sql("s"),
        ClockState::ResolvedUnacknowledged.sql("s"),
    ))?;
    let mut decided: HashMap<(String, String, String), (i64, i64)> = HashMap::new();
    for row in stmt.query_map(params![since], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get(3)?, r.get(4)?))
    })? {
        let (kind, priority, service, met, breached): (String, String, String, i64, i64) = row?;
        let service = m.services.admit("sla_compliance", &service).into_owned();
        let sums = decided.entry((kind, priority, service)).or_default();
        *sums = (sums.0 + met, sums.1 + breached);
    }
    for ((kind, priority, service), (met, breached)) in decided {
        if met + breached > 0 {
            m.sla_compliance
                .with_label_values(&[kind.as_str(), priority.as_str(), service.as_str()])
                .set(met as f64 / (met + breached) as f64);
        }
    }

    m.problems_open.reset();
    for state in ProblemState::ALL.iter().filter(|s| **s != ProblemState::Closed).map(|s| s.as_str()) {
        m.problems_open.with_label_values(&[state]).set(0);
    }
    let mut stmt = c.prepare_cached(&format!(
        "SELECT state, count(*) FROM problems WHERE state != '{}' GROUP BY 1",
        ProblemState::Closed.as_str()
    ))?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))? {
        let (state, n): (String, i64) = row?;
        m.problems_open.with_label_values(&[state.as_str()]).set(n);
    }

    let (depth, oldest) = super::outbox::depth(c, now)?;
    m.outbox_depth.set(depth as i64);
    m.outbox_oldest.set(oldest.unwrap_or(0.0));

    for (file, path) in [("db", db.to_path_buf()), ("wal", db.with_extension("db-wal"))] {
        let size = std::fs::metadata(&path).map(|md| md.len() as i64).unwrap_or(0);
        m.database_size.with_label_values(&[file]).set(size);
    }
    Ok(())
}
