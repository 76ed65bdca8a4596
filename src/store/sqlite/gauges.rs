//! The counts of stored state the gauges show, read at scrape time.
use std::path::Path;

use super::sql::{Connection, params};
use jiff::Timestamp;

use super::{StoreError, ms};
use crate::metrics::COMPLIANCE_WINDOW_DAYS;
use crate::metrics::stored::StoredFacts;
use crate::model::incident::{IncidentState, Priority};
use crate::model::problem::ProblemState;
use crate::sla::clock::{ClockKind, ClockState};

fn parsed<T>(what: &str, text: &str, parse: impl Fn(&str) -> Option<T>) -> Result<T, StoreError> {
    parse(text).ok_or_else(|| StoreError::Corrupt(format!("{what} {text:?}")))
}

pub(super) fn read(c: &Connection, db: Option<&Path>, now: Timestamp) -> Result<StoredFacts, StoreError> {
    let mut facts = StoredFacts::default();
    let mut stmt = c.prepare_cached(&format!(
        "SELECT state, priority, COALESCE(service, ''), count(*) FROM incidents WHERE {} GROUP BY 1, 2, 3",
        IncidentState::open_sql("state")
    ))?;
    for row in stmt.query_map(params![], |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?, r.get(2)?, r.get(3)?)))? {
        let (state, priority, service, n): (String, String, String, i64) = row?;
        let state = parsed("incident state", &state, IncidentState::parse)?;
        facts.open_incidents.push((state, parsed("priority", &priority, Priority::parse)?, service, n as u64));
    }

    // Not stopped, counting now or not (a breached clock counts on until
    // its incident is answered).
    let mut stmt = c.prepare_cached(&format!(
        "SELECT s.kind, {}, count(*) FROM sla_clocks s WHERE {} GROUP BY 1, 2",
        ClockState::counting_sql("s"),
        ClockState::unstopped_sql("s")
    ))?;
    for row in stmt.query_map(params![], |r| Ok((r.get::<String>(0)?, r.get::<bool>(1)?, r.get(2)?)))? {
        let (kind, counting, n): (String, bool, i64) = row?;
        facts.clocks_counting.push((parsed("clock kind", &kind, ClockKind::parse)?, counting, n as u64));
    }

    let since = ms(now) - COMPLIANCE_WINDOW_DAYS * 86_400_000;
    let mut stmt = c.prepare_cached(&format!(
        "SELECT s.kind, i.priority, COALESCE(i.service, ''),
                {}, {}
             FROM sla_clocks s JOIN incidents i ON i.id = s.incident_id
             WHERE i.created_at >= ?1 GROUP BY 1, 2, 3",
        super::sql::count_where(&ClockState::Met.sql("s")),
        super::sql::count_where(&ClockState::not_met_sql("s")),
    ))?;
    for row in stmt.query_map(params![since], |r| {
        Ok((r.get::<String>(0)?, r.get::<String>(1)?, r.get::<String>(2)?, r.get(3)?, r.get(4)?))
    })? {
        let (kind, priority, service, met, not_met): (String, String, String, i64, i64) = row?;
        let kind = parsed("clock kind", &kind, ClockKind::parse)?;
        let priority = parsed("priority", &priority, Priority::parse)?;
        facts.settled_clocks.push((kind, priority, service, met as u64, not_met as u64));
    }

    let mut stmt = c.prepare_cached("SELECT state, count(*) FROM problems GROUP BY 1")?;
    for row in stmt.query_map(params![], |r| Ok((r.get::<String>(0)?, r.get(1)?)))? {
        let (state, n): (String, i64) = row?;
        facts.problems.push((parsed("problem state", &state, ProblemState::parse)?, n as u64));
    }

    let since = ms(now) - crate::metrics::stored::UNREVIEWED_WINDOW_DAYS * 86_400_000;
    let mut stmt = c.prepare_cached(&format!(
        "SELECT i.rule, i.priority, COALESCE(i.service, ''), i.resolved_at FROM incidents i
         WHERE i.resolved_at >= ?1 AND i.merged_into IS NULL
           AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.incident_id = i.id AND r.state = '{}')",
        crate::model::review::ReviewState::Published.as_str()
    ))?;
    for row in stmt.query_map(params![since], |r| {
        Ok((r.get::<String>(0)?, r.get::<String>(1)?, r.get::<String>(2)?, r.get::<i64>(3)?))
    })? {
        let (rule, priority, service, resolved) = row?;
        facts.unreviewed.push((rule, parsed("priority", &priority, Priority::parse)?, service, super::ts(resolved)?));
    }

    // Overdue as `ActionItem::is_overdue` says: open, and due by now.
    let mut stmt = c.prepare_cached(&format!(
        "SELECT COALESCE(i.service, ''), count(*), {} FROM action_items a
         LEFT JOIN incidents i ON i.id = a.incident_id WHERE a.state = '{}' GROUP BY 1",
        super::sql::count_where("a.due <= ?1"),
        crate::model::action_item::ActionItemState::Open.as_str()
    ))?;
    for row in stmt.query_map(params![ms(now)], |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?, r.get::<i64>(2)?)))? {
        let (service, open, overdue) = row?;
        facts.action_items.push((service, open as u64, overdue as u64));
    }

    facts.outbox = super::outbox::depth(c, now)?;
    match db {
        Some(db) => {
            for (file, path) in [("db", db.to_path_buf()), ("wal", db.with_extension("db-wal"))] {
                facts.database_bytes.push((file, std::fs::metadata(&path).map_or(0, |md| md.len())));
            }
        }
        None => {
            let size: i64 = c.query_row("SELECT pg_database_size(current_database())", params![], |r| r.get(0))?;
            facts.database_bytes.push(("db", size.max(0) as u64));
        }
    }
    Ok(facts)
}
