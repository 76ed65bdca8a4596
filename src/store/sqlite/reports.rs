//! The SLA report's sums, by SQL (see `engine::report` for what they mean).
use super::sql::{Connection, count_where, params};
use jiff::Timestamp;

use super::{StoreError, ms};
use crate::engine::report::{GroupSums, RecurringProblem, ReportGroup, SlaReport};
use crate::sla::clock::{ClockKind, ClockState};

fn column(group: ReportGroup) -> &'static str {
    match group {
        ReportGroup::Service => "COALESCE(i.service, '')",
        ReportGroup::Priority => "i.priority",
        ReportGroup::Rule => "i.rule",
    }
}

/// Incidents created in `[from, to)`.
/// `review_due` is how long after its incident's resolution a review is on
/// time (`reviews.due_within`); `overdue_at` when open action items count
/// as overdue.
pub(super) fn sla(
    c: &Connection,
    (from, to): (Timestamp, Timestamp),
    group: ReportGroup,
    review_due: jiff::SignedDuration,
    overdue_at: Timestamp,
) -> Result<SlaReport, StoreError> {
    let col = column(group);
    let mut rows: std::collections::BTreeMap<String, GroupSums> = Default::default();
    let published = crate::model::review::ReviewState::Published.as_str();
    let mut stmt = c.prepare(&format!(
        "SELECT {col}, {}, {}, {}
         FROM incidents i LEFT JOIN reviews r ON r.incident_id = i.id
         WHERE i.created_at >= ?1 AND i.created_at < ?2 AND i.merged_into IS NULL GROUP BY 1",
        count_where(&format!("i.source = '{}'", crate::model::incident::IncidentSource::Reported.as_str())),
        count_where(&format!("r.state = '{published}'")),
        count_where(&format!("r.state = '{published}' AND r.published_at <= i.resolved_at + ?3")),
    ))?;
    for row in stmt.query_map(params![ms(from), ms(to), review_due.as_millis() as i64], |r| {
        Ok((r.get::<String>(0)?, r.get::<i64>(1)?, r.get::<Option<i64>>(2)?, r.get::<Option<i64>>(3)?))
    })? {
        let (key, reported, published, on_time) = row?;
        let e = rows.entry(key).or_default();
        e.reported = reported as u64;
        e.reviews_published = published.unwrap_or(0) as u64;
        e.reviews_on_time = on_time.unwrap_or(0) as u64;
    }
    let open = crate::model::action_item::ActionItemState::Open.as_str();
    let mut stmt = c.prepare(&format!(
        "SELECT {col}, {}, {}
         FROM incidents i JOIN action_items a ON a.incident_id = i.id
         WHERE i.created_at >= ?1 AND i.created_at < ?2 AND i.merged_into IS NULL GROUP BY 1",
        count_where(&format!("a.state = '{}'", crate::model::action_item::ActionItemState::Done.as_str())),
        count_where(&format!("a.state = '{open}' AND a.due <= ?3")),
    ))?;
    for row in stmt.query_map(params![ms(from), ms(to), ms(overdue_at)], |r| {
        Ok((r.get::<String>(0)?, r.get::<i64>(1)?, r.get::<i64>(2)?))
    })? {
        let (key, done, overdue) = row?;
        let e = rows.entry(key).or_default();
        e.action_items_done = done as u64;
        e.action_items_overdue = overdue as u64;
    }
    let mut stmt = c.prepare(&format!(
        "SELECT {col}, count(*), count(i.acknowledged_at), CAST(COALESCE(sum(i.acknowledged_at - i.created_at), 0) AS BIGINT),
                count(i.resolved_at), CAST(COALESCE(sum(i.resolved_at - i.created_at), 0) AS BIGINT)
         FROM incidents i WHERE i.created_at >= ?1 AND i.created_at < ?2 AND i.merged_into IS NULL GROUP BY 1"
    ))?;
    for row in stmt.query_map(params![ms(from), ms(to)], |r| {
        Ok((
            r.get::<String>(0)?,
            r.get::<i64>(1)?,
            r.get::<i64>(2)?,
            r.get::<i64>(3)?,
            r.get::<i64>(4)?,
            r.get::<i64>(5)?,
        ))
    })? {
        let (key, n, acked, ack_sum, resolved, resolve_sum) = row?;
        let e = rows.entry(key).or_default();
        e.incidents = n as u64;
        e.acknowledged = acked as u64;
        e.ack_ms_sum = ack_sum;
        e.resolved = resolved as u64;
        e.resolve_ms_sum = resolve_sum;
    }
    let mut stmt = c.prepare(&format!(
        "SELECT {col}, s.kind, {}, {}, {}
         FROM incidents i JOIN sla_clocks s ON s.incident_id = i.id
         WHERE i.created_at >= ?1 AND i.created_at < ?2 AND i.merged_into IS NULL GROUP BY 1, 2",
        count_where(&ClockState::Met.sql("s")),
        count_where(&ClockState::Breached.sql("s")),
        count_where(&ClockState::ResolvedUnacknowledged.sql("s")),
    ))?;
    for row in stmt.query_map(params![ms(from), ms(to)], |r| {
        Ok((r.get::<String>(0)?, r.get::<String>(1)?, r.get::<i64>(2)?, r.get::<i64>(3)?, r.get::<i64>(4)?))
    })? {
        let (key, kind, met, breached, unanswered) = row?;
        let e = rows.entry(key).or_default();
        if ClockKind::parse(&kind) == Some(ClockKind::Respond) {
            e.respond_met = met as u64;
            e.respond_breaches = breached as u64;
            e.resolved_unacknowledged = unanswered as u64;
        } else {
            e.resolve_met = met as u64;
            e.resolve_breaches = breached as u64;
        }
    }
    let top_problems = c
        .prepare(
            "SELECT p.id, p.title, p.state, count(*) FROM problem_incidents pi
             JOIN problems p ON p.id = pi.problem_id JOIN incidents i ON i.id = pi.incident_id
             WHERE i.created_at >= ?1 AND i.created_at < ?2 AND i.merged_into IS NULL GROUP BY p.id ORDER BY 4 DESC, p.id LIMIT 10",
        )?
        .query_map(params![ms(from), ms(to)], |r| {
            Ok(RecurringProblem {
                id: r.get(0)?,
                title: r.get(1)?,
                state: r.get(2)?,
                incidents: r.get::<i64>(3)? as u64,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(SlaReport::assemble((from, to), group, rows.into_iter().collect(), top_problems))
}
