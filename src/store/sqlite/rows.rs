//! Rows of alerts and incidents as model values, for readers and writers alike.
use super::sql::{Connection, OptionalExtension, Row, params};
use serde_json::value::RawValue;

use super::{StoreError, ts};
use crate::model::incident::{Impact, Incident, IncidentSource, IncidentState, Priority, TimelineEvent, Urgency};
use crate::model::{AlertRecord, AlertStatus, Fingerprint, Source};

pub(super) const COLUMNS: &str = "id, fingerprint, source, status, labels, annotations, starts_at, ends_at, expires_at,
    generator_url, first_seen, last_seen, occurrences, acknowledged_at, raw, muted_by";

pub(super) fn row_to_alert(r: &Row<'_>) -> super::sql::Result<(i64, AlertRecord)> {
    let bad = |i: usize, e: String| super::sql::Error::Conversion(format!("column {i}: {e}"));
    let time = |i: usize| -> super::sql::Result<jiff::Timestamp> { ts(r.get(i)?).map_err(|e| bad(i, e.to_string())) };
    let opt_time = |i: usize| -> super::sql::Result<Option<jiff::Timestamp>> {
        r.get::<Option<i64>>(i)?.map(ts).transpose().map_err(|e| bad(i, e.to_string()))
    };
    let fingerprint: String = r.get(1)?;
    let source: String = r.get(2)?;
    let status: String = r.get(3)?;
    let labels: String = r.get(4)?;
    let annotations: String = r.get(5)?;
    let raw: String = r.get(14)?;
    Ok((
        r.get(0)?,
        AlertRecord {
            fingerprint: Fingerprint::parse(&fingerprint).map_err(|e| bad(1, e.to_string()))?,
            source: Source::parse(&source).ok_or_else(|| bad(2, format!("unknown source {source:?}")))?,
            status: AlertStatus::parse(&status).ok_or_else(|| bad(3, format!("unknown status {status:?}")))?,
            labels: serde_json::from_str(&labels).map_err(|e| bad(4, e.to_string()))?,
            annotations: serde_json::from_str(&annotations).map_err(|e| bad(5, e.to_string()))?,
            starts_at: time(6)?,
            ends_at: opt_time(7)?,
            expires_at: opt_time(8)?,
            generator_url: r.get(9)?,
            first_seen: time(10)?,
            last_seen: time(11)?,
            occurrences: r.get::<i64>(12)? as u64,
            acknowledged_at: opt_time(13)?,
            raw: RawValue::from_string(raw).map_err(|e| bad(14, e.to_string()))?,
            muted_by: r.get::<Option<String>>(15)?.and_then(|m| crate::model::MuteReason::parse(&m)),
        },
    ))
}

pub(super) const INCIDENT_COLUMNS: &str =
    "id, title, service, rule, group_key, impact, urgency, priority, state, assignee,
    alert_count, firing_count, flap_count, labels, created_at, updated_at, acknowledged_at, resolved_at, closed_at,
    auto_resolve_at, source, description, reporter, merged_into";

pub(super) fn row_to_incident(r: &Row<'_>) -> super::sql::Result<Incident> {
    let bad = |i: usize, e: String| super::sql::Error::Conversion(format!("column {i}: {e}"));
    let time = |i: usize| -> super::sql::Result<jiff::Timestamp> { ts(r.get(i)?).map_err(|e| bad(i, e.to_string())) };
    let opt_time = |i: usize| -> super::sql::Result<Option<jiff::Timestamp>> {
        r.get::<Option<i64>>(i)?.map(ts).transpose().map_err(|e| bad(i, e.to_string()))
    };
    let text = |i: usize| -> super::sql::Result<String> { r.get(i) };
    let labels = text(13)?;
    Ok(Incident {
        id: r.get(0)?,
        title: text(1)?,
        service: r.get(2)?,
        rule: text(3)?,
        group_key: text(4)?,
        impact: Impact::parse(&text(5)?).ok_or_else(|| bad(5, "impact".into()))?,
        urgency: Urgency::parse(&text(6)?).ok_or_else(|| bad(6, "urgency".into()))?,
        priority: Priority::parse(&text(7)?).ok_or_else(|| bad(7, "priority".into()))?,
        state: IncidentState::parse(&text(8)?).ok_or_else(|| bad(8, "state".into()))?,
        assignee: r.get(9)?,
        alert_count: r.get::<i64>(10)? as u64,
        firing_count: r.get::<i64>(11)? as u64,
        flap_count: r.get::<i64>(12)? as u64,
        labels: serde_json::from_str(&labels).map_err(|e| bad(13, e.to_string()))?,
        created_at: time(14)?,
        updated_at: time(15)?,
        acknowledged_at: opt_time(16)?,
        resolved_at: opt_time(17)?,
        closed_at: opt_time(18)?,
        auto_resolve_at: opt_time(19)?,
        source: IncidentSource::parse(&text(20)?).ok_or_else(|| bad(20, "source".into()))?,
        description: r.get(21)?,
        reporter: r.get(22)?,
        merged_into: r.get(23)?,
    })
}

/// One incident row.
pub(super) fn incident(c: &Connection, id: i64) -> Result<Option<Incident>, StoreError> {
    Ok(c.prepare_cached(&format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1"))?
        .query_row([id], row_to_incident)
        .optional()?)
}

/// An incident's first `limit` alerts in joining order, each with whether
/// it still fires there. The limit is written into the statement: SQLite
/// prepares a statement whose `LIMIT` is a bound parameter again on every
/// run (each notification of an alert storm ran this one).
pub(super) fn first_alerts(c: &Connection, id: i64, limit: usize) -> Result<Vec<(AlertRecord, bool)>, StoreError> {
    Ok(c.prepare_cached(&first_alerts_sql(limit))?
        .query_map(params![id], |r| Ok((row_to_alert(r)?.1, r.get::<bool>(16)?)))?
        .collect::<Result<_, _>>()?)
}

pub(super) fn first_alerts_sql(limit: usize) -> String {
    let alert_columns: String = COLUMNS.split(',').map(|c| format!("a.{}", c.trim())).collect::<Vec<_>>().join(", ");
    format!(
        "SELECT {alert_columns}, ia.firing FROM incident_alerts ia JOIN alerts a ON a.id = ia.alert_id
         WHERE ia.incident_id = ?1 ORDER BY ia.joined_at, a.id LIMIT {limit}"
    )
}

pub(super) type EventRow = (i64, String, String, String, Option<String>, Option<i64>);

pub(super) fn timeline_event(
    (at, actor, kind, message, data, recorded): EventRow,
) -> Result<TimelineEvent, StoreError> {
    let at = ts(at)?;
    let recorded = recorded.map(ts).transpose()?;
    Ok(TimelineEvent {
        at,
        recorded_at: recorded.and_then(|r| crate::model::incident::shown_recorded_at(at, r)),
        actor,
        kind,
        message,
        data: data.and_then(|d| serde_json::from_str(&d).ok()).unwrap_or(serde_json::Value::Null),
    })
}

/// An incident's whole timeline, in the order it was written.
pub(super) fn timeline(c: &Connection, id: i64) -> Result<Vec<TimelineEvent>, StoreError> {
    let rows: Vec<EventRow> = c
        .prepare_cached(
            "SELECT at, actor, kind, message, data, recorded_at FROM incident_events WHERE incident_id = ?1 ORDER BY id",
        )?
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))?
        .collect::<Result<_, _>>()?;
    rows.into_iter().map(timeline_event).collect()
}

/// Whether the incident `incident_id` (a link's column) is open, looked up
/// by its id. For PostgreSQL: joined to the links by state instead, its
/// planner (misjudging how many incidents are open, and with dead index
/// entries of updated incidents to step over) walked every open incident
/// for each alert, ten times slower.
pub(super) fn incident_is_open(incident_id: &str) -> String {
    format!("(SELECT {} FROM incidents i WHERE i.id = {incident_id})", IncidentState::open_sql("i.state"))
}
