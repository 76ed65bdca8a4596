//! Queries on a read-only connection.
use super::sql::{Connection, OptionalExtension, Value, params, params_from_iter};

use super::rows::{COLUMNS, INCIDENT_COLUMNS, incident, row_to_alert, row_to_incident};
use super::{StoreError, ms, ts};
use crate::engine::silence::Silence;
use crate::engine::similar::{self, SimilarIncident};
use crate::model::incident::{Incident, Priority};
use crate::model::review::ReviewState;
use crate::model::{AlertRecord, AlertStatus, Fingerprint};
use crate::store::query::{
    AlertPage, AlertQuery, DetailPage, IncidentAlert, IncidentDetail, IncidentPage, IncidentQuery, IncidentSort,
    SlaFilter,
};

/// Rows fetched per round while label matchers filter in memory.
const CHUNK: usize = 500;
/// Most rows one page may scan, so a matcher that rarely matches cannot tie
/// up a reader; the cursor lets the client go on.
const MAX_SCAN: usize = 100_000;

/// How many alerts are stored: (firing, resolved).
pub(super) fn count_alerts(c: &Connection) -> Result<(u64, u64), StoreError> {
    let count = |status: AlertStatus| -> Result<u64, StoreError> {
        Ok(c.prepare_cached("SELECT count(*) FROM alerts WHERE status = ?1")?
            .query_row([status.as_str()], |r| r.get(0))?)
    };
    Ok((count(AlertStatus::Firing)?, count(AlertStatus::Resolved)?))
}

pub(super) fn list_alerts(c: &Connection, q: &AlertQuery) -> Result<AlertPage, StoreError> {
    let mut sql = format!("SELECT {COLUMNS} FROM alerts WHERE id < ?1");
    let mut args: Vec<Value> = vec![Value::Integer(q.before.unwrap_or(i64::MAX))];
    if let Some(s) = q.status {
        args.push(Value::Text(s.as_str().into()));
        sql.push_str(&format!(" AND status = ?{}", args.len()));
    }
    if let Some(s) = &q.source {
        args.push(Value::Text(s.clone()));
        sql.push_str(&format!(" AND source = ?{}", args.len()));
    }
    if let Some(f) = &q.fingerprint {
        args.push(Value::Text(f.as_str().into()));
        sql.push_str(&format!(" AND fingerprint = ?{}", args.len()));
    }
    match q.muted {
        Some(true) => sql.push_str(" AND muted_by IS NOT NULL"),
        Some(false) => sql.push_str(" AND muted_by IS NULL"),
        None => {}
    }
    let chunk = if q.matchers.is_empty() { q.limit + 1 } else { CHUNK };
    sql.push_str(&format!(" ORDER BY id DESC LIMIT {chunk}"));
    let mut stmt = c.prepare_cached(&sql)?;

    let mut alerts = Vec::new();
    let mut scanned = 0;
    let mut cursor = q.before.unwrap_or(i64::MAX);
    loop {
        args[0] = Value::Integer(cursor);
        let rows: Vec<(i64, AlertRecord)> =
            stmt.query_map(params_from_iter(&args), row_to_alert)?.collect::<Result<_, _>>()?;
        let exhausted = rows.len() < chunk;
        for (id, alert) in rows {
            scanned += 1;
            if alerts.len() == q.limit {
                // One more match exists past the page: there is a next page.
                return Ok(AlertPage { alerts, next_cursor: Some(cursor.to_string()) });
            }
            cursor = id;
            if q.matchers.iter().all(|m| m.matches(&alert.labels)) {
                alerts.push(alert);
            }
        }
        if exhausted {
            return Ok(AlertPage { alerts, next_cursor: None });
        }
        if scanned >= MAX_SCAN {
            return Ok(AlertPage { alerts, next_cursor: Some(cursor.to_string()) });
        }
    }
}

/// Every firing alert, oldest first, without its raw payload (`null`):
/// what Alertmanager's API lists.
pub(super) fn firing_alerts(c: &Connection) -> Result<Vec<AlertRecord>, StoreError> {
    let columns = COLUMNS.replace("raw,", "'null',");
    let sql = format!("SELECT {columns} FROM alerts WHERE {} ORDER BY id", AlertStatus::Firing.sql("status"));
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![], row_to_alert)?;
    Ok(rows.map(|r| r.map(|(_, a)| a)).collect::<Result<_, _>>()?)
}

pub(super) fn get_alert(c: &Connection, fp: &Fingerprint) -> Result<Option<AlertRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM alerts WHERE fingerprint = ?1");
    Ok(c.prepare_cached(&sql)?.query_row([fp.as_str()], row_to_alert).optional()?.map(|(_, a)| a))
}

/// The `WHERE` conditions of an incident query (without its cursor) and
/// their arguments.
fn incident_filter(q: &IncidentQuery) -> (String, Vec<Value>) {
    let mut sql = String::from("1 = 1");
    let mut args: Vec<Value> = Vec::new();
    let any_of = |sql: &mut String, column: &str, values: Vec<String>, args: &mut Vec<Value>| {
        if values.is_empty() {
            return;
        }
        let mut marks = Vec::new();
        for v in values {
            args.push(Value::Text(v));
            marks.push(format!("?{}", args.len()));
        }
        sql.push_str(&format!(" AND {column} IN ({})", marks.join(", ")));
    };
    any_of(&mut sql, "state", q.states.iter().map(|s| s.as_str().to_owned()).collect(), &mut args);
    any_of(&mut sql, "priority", q.priorities.iter().map(|p| p.as_str().to_owned()).collect(), &mut args);
    for (column, value) in [("service", &q.service), ("assignee", &q.assignee), ("rule", &q.rule)] {
        if let Some(v) = value {
            args.push(Value::Text(v.clone()));
            sql.push_str(&format!(" AND {column} = ?{}", args.len()));
        }
    }
    if let Some(t) = q.since {
        args.push(Value::Integer(ms(t)));
        sql.push_str(&format!(" AND created_at >= ?{}", args.len()));
    }
    if let Some(t) = q.until {
        args.push(Value::Integer(ms(t)));
        sql.push_str(&format!(" AND created_at < ?{}", args.len()));
    }
    if let Some(f) = q.sla {
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM sla_clocks s WHERE s.incident_id = incidents.id AND {})",
            sla_condition(f)
        ));
    }
    if let Some(text) = q.title.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        // A substring, case-insensitive for ASCII; `%` and `_` match themselves.
        let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        args.push(Value::Text(format!("%{escaped}%")));
        sql.push_str(&format!(" AND lower(title) LIKE lower(?{}) ESCAPE '\\'", args.len()));
    }
    (sql, args)
}

/// How many incidents match the query's filters (its cursor and limit aside).
pub(super) fn count_incidents(c: &Connection, q: &IncidentQuery) -> Result<u64, StoreError> {
    let (filter, args) = incident_filter(q);
    let n: i64 = c
        .prepare_cached(&format!("SELECT count(*) FROM incidents WHERE {filter}"))?
        .query_row(params_from_iter(&args), |r| r.get(0))?;
    Ok(n as u64)
}

pub(super) fn list_incidents(c: &Connection, q: &IncidentQuery) -> Result<IncidentPage, StoreError> {
    let (filter, mut args) = incident_filter(q);
    let mut sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE {filter}");
    if let Some(cur) = q.cursor {
        // Keyset paging: continue after the last row of the previous page.
        // Every number is a parameter the statement uses (PostgreSQL
        // cannot type one it does not).
        let (k, i) = (args.len() + 1, args.len() + 2);
        let id_only = args.len() + 1;
        match q.sort {
            IncidentSort::CreatedDesc => sql.push_str(&format!(" AND id < ?{id_only}")),
            IncidentSort::CreatedAsc => sql.push_str(&format!(" AND id > ?{id_only}")),
            IncidentSort::Priority => {
                sql.push_str(&format!(" AND (priority > ?{k} OR (priority = ?{k} AND id < ?{i}))"))
            }
            IncidentSort::UpdatedDesc => {
                sql.push_str(&format!(" AND (updated_at < ?{k} OR (updated_at = ?{k} AND id < ?{i}))"))
            }
        }
        match q.sort {
            IncidentSort::Priority => args
                .push(Value::Text(Priority::ALL.get(cur.key as usize).map(|p| p.as_str()).unwrap_or("P5").to_owned())),
            IncidentSort::UpdatedDesc => args.push(Value::Integer(cur.key)),
            IncidentSort::CreatedDesc | IncidentSort::CreatedAsc => {}
        }
        args.push(Value::Integer(cur.id));
    }
    sql.push_str(match q.sort {
        IncidentSort::CreatedDesc => " ORDER BY id DESC",
        IncidentSort::CreatedAsc => " ORDER BY id ASC",
        IncidentSort::Priority => " ORDER BY priority ASC, id DESC",
        IncidentSort::UpdatedDesc => " ORDER BY updated_at DESC, id DESC",
    });
    sql.push_str(&format!(" LIMIT {}", q.limit + 1));
    let mut incidents: Vec<Incident> =
        c.prepare(&sql)?.query_map(params_from_iter(&args), row_to_incident)?.collect::<Result<_, _>>()?;
    let more = incidents.len() > q.limit;
    incidents.truncate(q.limit);
    let next_cursor = incidents.last().filter(|_| more).map(|last| match q.sort {
        IncidentSort::CreatedDesc | IncidentSort::CreatedAsc => last.id.to_string(),
        IncidentSort::Priority => format!("{}:{}", last.priority, last.id),
        IncidentSort::UpdatedDesc => format!("{}:{}", last.updated_at.as_millisecond(), last.id),
    });
    Ok(IncidentPage { incidents, next_cursor })
}

pub(super) fn get_incident(
    c: &Connection,
    id: i64,
    rules: &crate::rules::RuleSet,
    page: DetailPage,
    now: jiff::Timestamp,
) -> Result<Option<IncidentDetail>, StoreError> {
    let Some(incident) = incident(c, id)? else {
        return Ok(None);
    };
    let alert_columns: String = COLUMNS.split(',').map(|c| format!("a.{}", c.trim())).collect::<Vec<_>>().join(", ");
    let (after_joined, after_alert) = page.alerts_after.unwrap_or((i64::MIN, i64::MIN));
    let mut alerts = c
        .prepare_cached(&format!(
            "SELECT {alert_columns}, ia.joined_at, ia.firing, a.id FROM incident_alerts ia JOIN alerts a ON a.id = ia.alert_id
             WHERE ia.incident_id = ?1 AND (ia.joined_at, a.id) > (?2, ?3) ORDER BY ia.joined_at, a.id LIMIT ?4"
        ))?
        .query_map(params![id, after_joined, after_alert, page.alerts_limit as i64 + 1], |r| {
            let (_, alert) = row_to_alert(r)?;
            let joined: i64 = r.get(16)?;
            let firing: bool = r.get(17)?;
            let row_id: i64 = r.get(18)?;
            Ok((alert, joined, firing, row_id))
        })?
        .map(|row| {
            let (alert, joined, firing, row_id) = row?;
            Ok((IncidentAlert { alert, joined_at: ts(joined)?, firing }, (joined, row_id)))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let alerts_next_cursor = (alerts.len() > page.alerts_limit).then(|| {
        let (joined, row_id) = alerts[page.alerts_limit - 1].1;
        format!("{joined}:{row_id}")
    });
    alerts.truncate(page.alerts_limit);
    let alerts = alerts.into_iter().map(|(a, _)| a).collect();
    let timeline_sql = if page.timeline_newest_first {
        "SELECT at, actor, kind, message, data, recorded_at, id FROM incident_events
         WHERE incident_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3"
    } else {
        "SELECT at, actor, kind, message, data, recorded_at, id FROM incident_events
         WHERE incident_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
    };
    let after = page.timeline_after.unwrap_or(if page.timeline_newest_first { i64::MAX } else { i64::MIN });
    let mut timeline_rows = c
        .prepare_cached(timeline_sql)?
        .query_map(params![id, after, page.timeline_limit as i64 + 1], |r| {
            Ok((
                r.get::<i64>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
                r.get::<String>(3)?,
                r.get::<Option<String>>(4)?,
                r.get::<Option<i64>>(5)?,
                r.get::<i64>(6)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let timeline_next_cursor =
        (timeline_rows.len() > page.timeline_limit).then(|| timeline_rows[page.timeline_limit - 1].6.to_string());
    timeline_rows.truncate(page.timeline_limit);
    let timeline = timeline_rows
        .into_iter()
        .map(|(at, actor, kind, message, data, recorded, _)| {
            super::rows::timeline_event((at, actor, kind, message, data, recorded))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let problems = super::problems::of_incident(c, id)?;
    let workaround = crate::engine::notify::known_error(&problems).and_then(|p| p.workaround.clone());
    let similar_incidents = similar(c, &incident)?;
    Ok(Some(IncidentDetail {
        incident,
        similar_incidents,
        sla: super::sla::sla_view(c, id, rules, now)?,
        escalation: super::sla::escalation_view(c, id)?,
        workaround,
        problems,
        suspected_changes: super::changes::of_incident(c, id)?,
        alerts,
        alerts_next_cursor,
        timeline,
        timeline_next_cursor,
    }))
}

/// Silences, newest first; with `not_ended_at`, only those still pending or
/// active at that time.
pub(super) fn silences(
    c: &Connection,
    not_ended_at: Option<jiff::Timestamp>,
    limit: Option<usize>,
) -> Result<Vec<Silence>, StoreError> {
    let condition = format!(
        "{} ORDER BY id DESC LIMIT {}",
        crate::engine::silence::SilenceState::not_expired_sql("ends_at", "?1"),
        limit.unwrap_or(usize::MAX >> 1)
    );
    silences_where(c, &condition, not_ended_at.map(ms).unwrap_or(i64::MIN))
}

/// The silences a condition on one parameter selects.
pub(super) fn silences_where(c: &Connection, condition: &str, arg: i64) -> Result<Vec<Silence>, StoreError> {
    let sql = format!(
        "SELECT id, matchers, starts_at, ends_at, created_by, comment, created_at FROM silences WHERE {condition}"
    );
    let rows: Vec<(i64, String, i64, i64, String, String, i64)> = c
        .prepare_cached(&sql)?
        .query_map([arg], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(id, matchers, starts, ends, created_by, comment, created)| {
            let texts: Vec<String> = serde_json::from_str(&matchers).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let matchers = texts
                .iter()
                .map(|t| t.parse().map_err(|e: crate::rules::matcher::MatcherError| StoreError::Corrupt(e.to_string())))
                .collect::<Result<_, _>>()?;
            Ok(Silence {
                id,
                matchers,
                starts_at: ts(starts)?,
                ends_at: ts(ends)?,
                created_by,
                comment,
                created_at: ts(created)?,
            })
        })
        .collect()
}

/// The SQL condition on a clock row `s` of an `?sla=` filter.
fn sla_condition(f: SlaFilter) -> String {
    use crate::sla::clock::ClockState;
    match f {
        SlaFilter::State(state) => state.sql("s"),
        SlaFilter::AtRisk => ClockState::at_risk_sql("s"),
    }
}

/// Candidates read for likeness: the latest of the same rule or service,
/// and the latest of any (labels may make those alike).
const SIMILAR_CANDIDATES: i64 = 200;

/// The earlier incidents most like `this` (see `engine::similar`), with
/// how each was resolved.
fn similar(c: &Connection, this: &Incident) -> Result<Vec<SimilarIncident>, StoreError> {
    let mut candidates: Vec<Incident> = Vec::new();
    let likeness: [(&str, Option<&str>); 3] = [
        ("rule = ?3", Some(&this.rule)),
        ("service = ?3", this.service.as_deref()),
        ("CAST(?3 AS TEXT) IS NULL", None),
    ];
    for (condition, value) in likeness {
        let rows = c
            .prepare_cached(&format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id < ?1 AND merged_into IS NULL AND {condition}
                 ORDER BY id DESC LIMIT ?2"
            ))?
            .query_map(params![this.id, SIMILAR_CANDIDATES, value], row_to_incident)?
            .collect::<Result<Vec<_>, _>>()?;
        candidates.extend(rows.into_iter().filter(|r| candidates.iter().all(|k| k.id != r.id)).collect::<Vec<_>>());
    }
    similar::rank(this, &candidates)
        .into_iter()
        .map(|(past, likeness)| {
            let resolving_note: Option<String> = c
                .prepare_cached(
                    "SELECT message FROM incident_events WHERE incident_id = ?1 AND kind = 'note'
                     AND (CAST(?2 AS BIGINT) IS NULL OR at <= ?2) ORDER BY id DESC LIMIT 1",
                )?
                .query_row(params![past.id, past.resolved_at.map(ms)], |r| r.get(0))
                .optional()?;
            let review_summary = super::reviews::get(c, past.id)?
                .filter(|r| r.state == ReviewState::Published)
                .and_then(|r| r.text.summary);
            let problems = super::problems::of_incident(c, past.id)?;
            let workaround = crate::engine::notify::known_error(&problems).and_then(|p| p.workaround.clone());
            Ok(SimilarIncident {
                id: past.id,
                title: past.title.clone(),
                likeness,
                created_at: past.created_at,
                resolved_at: past.resolved_at,
                resolving_note,
                review_summary,
                workaround,
            })
        })
        .collect()
}
