//! Queries on a read-only connection.
use rusqlite::{Connection, OptionalExtension, Row, params_from_iter, types::Value};
use serde_json::value::RawValue;

use super::{AlertPage, AlertQuery, StoreError, ts};
use crate::model::{AlertRecord, AlertStatus, Fingerprint, Source};

const COLUMNS: &str =
    "id, fingerprint, source, status, labels, annotations, starts_at, ends_at, expires_at,
    generator_url, first_seen, last_seen, occurrences, acknowledged_at, raw";

/// Rows fetched per round while label matchers filter in memory.
const CHUNK: usize = 500;
/// Most rows one page may scan, so a matcher that rarely matches cannot tie
/// up a reader; the cursor lets the client go on.
const MAX_SCAN: usize = 100_000;

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
    let chunk = if q.matchers.is_empty() {
        q.limit + 1
    } else {
        CHUNK
    };
    sql.push_str(&format!(" ORDER BY id DESC LIMIT {chunk}"));
    let mut stmt = c.prepare_cached(&sql)?;

    let mut alerts = Vec::new();
    let mut scanned = 0;
    let mut cursor = q.before.unwrap_or(i64::MAX);
    loop {
        args[0] = Value::Integer(cursor);
        let rows: Vec<(i64, AlertRecord)> = stmt
            .query_map(params_from_iter(args.iter()), row_to_alert)?
            .collect::<Result<_, _>>()?;
        let exhausted = rows.len() < chunk;
        for (id, alert) in rows {
            scanned += 1;
            if alerts.len() == q.limit {
                // One more match exists past the page: there is a next page.
                return Ok(AlertPage {
                    alerts,
                    next_cursor: Some(cursor.to_string()),
                });
            }
            cursor = id;
            if q.matchers.iter().all(|m| m.matches(&alert.labels)) {
                alerts.push(alert);
            }
        }
        if exhausted {
            return Ok(AlertPage {
                alerts,
                next_cursor: None,
            });
        }
        if scanned >= MAX_SCAN {
            return Ok(AlertPage {
                alerts,
                next_cursor: Some(cursor.to_string()),
            });
        }
    }
}

pub(super) fn get_alert(
    c: &Connection,
    fp: &Fingerprint,
) -> Result<Option<AlertRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM alerts WHERE fingerprint = ?1");
    Ok(c.prepare_cached(&sql)?
        .query_row([fp.as_str()], row_to_alert)
        .optional()?
        .map(|(_, a)| a))
}

fn row_to_alert(r: &Row<'_>) -> rusqlite::Result<(i64, AlertRecord)> {
    let bad = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    let time = |i: usize| -> rusqlite::Result<jiff::Timestamp> {
        ts(r.get(i)?).map_err(|e| bad(i, e.to_string()))
    };
    let opt_time = |i: usize| -> rusqlite::Result<Option<jiff::Timestamp>> {
        r.get::<_, Option<i64>>(i)?
            .map(ts)
            .transpose()
            .map_err(|e| bad(i, e.to_string()))
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
            source: Source::parse(&source)
                .ok_or_else(|| bad(2, format!("unknown source {source:?}")))?,
            status: AlertStatus::parse(&status)
                .ok_or_else(|| bad(3, format!("unknown status {status:?}")))?,
            labels: serde_json::from_str(&labels).map_err(|e| bad(4, e.to_string()))?,
            annotations: serde_json::from_str(&annotations).map_err(|e| bad(5, e.to_string()))?,
            starts_at: time(6)?,
            ends_at: opt_time(7)?,
            expires_at: opt_time(8)?,
            generator_url: r.get(9)?,
            first_seen: time(10)?,
            last_seen: time(11)?,
            occurrences: r.get::<_, i64>(12)? as u64,
            acknowledged_at: opt_time(13)?,
            raw: RawValue::from_string(raw).map_err(|e| bad(14, e.to_string()))?,
        },
    ))
}
