//! Moving up: copy an embedded database into an empty PostgreSQL one, so a
//! team that started on SQLite keeps its history when it runs several
//! gateways. The source is read from a consistent snapshot (a backup copy,
//! so a running gateway may go on writing), brought to this build's schema,
//! and copied table by table, parents before children, in one PostgreSQL
//! transaction; every table's row count is compared before it commits.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rusqlite::Connection;

use super::sql::{self, PgSession, Value};
use super::{StoreError, schema, shared};

/// Rows sent per INSERT statement.
const ROWS_PER_INSERT: usize = 200;

/// Tables the copy leaves alone: PostgreSQL's own bookkeeping and the
/// shared writers' log (which starts afresh).
const NOT_COPIED: [&str; 2] = ["schema_version", "writer_log"];

/// How many rows of each table were copied.
pub type Copied = BTreeMap<String, u64>;

pub fn copy_to_postgres(db: &Path, url: &str) -> Result<Copied, StoreError> {
    if !db.exists() {
        return Err(StoreError::NotFound(format!("no SQLite database at {}", db.display())));
    }
    let snapshot = Snapshot(std::env::temp_dir().join(format!("alertgate-copy-{}.db", std::process::id())));
    let _ = std::fs::remove_file(&snapshot.0);
    super::backup(db, &snapshot.0)?;
    let mut source = Connection::open(&snapshot.0)?;
    schema::migrate(&mut source)?;

    let config = shared::parse_url(url)?;
    let session = shared::connect(&config)?;
    schema::migrate_postgres(&session)?;
    let encoding: String = session.connection().query_row("SHOW server_encoding", sql::params![], |r| r.get(0))?;
    if encoding != "UTF8" {
        return Err(StoreError::Invalid(format!(
            "the PostgreSQL database's encoding is {encoding}: make it with ENCODING 'UTF8'"
        )));
    }
    let tables = tables_in_order(&source)?;
    refuse_non_empty(&session, &tables)?;
    session.batch_execute("BEGIN")?;
    let copied = (|| {
        let mut copied = Copied::new();
        // The realm names silences in Alertmanager's API: it moves along,
        // so amtool keeps finding the silences it made.
        session.connection().execute("DELETE FROM meta", sql::params![])?;
        for table in &tables {
            let n = copy_table(&source, &session, table)?;
            if table == "incidents" {
                link_merges(&source, &session)?;
            }
            let there: i64 =
                session
                    .connection()
                    .query_row(&format!("SELECT count(*) FROM {table}"), sql::params![], |r| r.get(0))?;
            if there != n as i64 {
                return Err(StoreError::Corrupt(format!("{table}: {n} rows read, {there} in PostgreSQL")));
            }
            copied.insert(table.clone(), n);
        }
        restart_identities(&session)?;
        Ok(copied)
    })();
    match copied {
        Ok(copied) => {
            session.batch_execute("COMMIT")?;
            Ok(copied)
        }
        Err(e) => {
            let _ = session.batch_execute("ROLLBACK");
            Err(e)
        }
    }
}

/// The snapshot copied from, removed when done.
struct Snapshot(std::path::PathBuf);

impl Drop for Snapshot {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The tables to copy, each after the tables it references.
fn tables_in_order(c: &Connection) -> Result<Vec<String>, StoreError> {
    let names: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for name in names.iter().filter(|n| !NOT_COPIED.contains(&n.as_str())) {
        let refs: BTreeSet<String> = c
            .prepare(&format!("SELECT \"table\" FROM pragma_foreign_key_list('{name}')"))?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        parents.insert(name.clone(), refs.into_iter().filter(|p| p != name).collect());
    }
    let mut ordered = Vec::new();
    while !parents.is_empty() {
        let ready: Vec<String> = parents
            .iter()
            .filter(|(_, ps)| ps.iter().all(|p| !parents.contains_key(p)))
            .map(|(n, _)| n.clone())
            .collect();
        if ready.is_empty() {
            return Err(StoreError::Corrupt(format!("tables reference each other in a cycle: {parents:?}")));
        }
        for n in ready {
            parents.remove(&n);
            ordered.push(n);
        }
    }
    Ok(ordered)
}

/// A copy goes into a database that holds no data yet.
fn refuse_non_empty(session: &PgSession, tables: &[String]) -> Result<(), StoreError> {
    let c = session.connection();
    let mut holding = Vec::new();
    for table in tables.iter().filter(|t| *t != "meta") {
        let n: i64 = c.query_row(&format!("SELECT count(*) FROM {table}"), sql::params![], |r| r.get(0))?;
        if n > 0 {
            holding.push(format!("{table} ({n} rows)"));
        }
    }
    if holding.is_empty() {
        return Ok(());
    }
    Err(StoreError::Conflict(format!(
        "the PostgreSQL database already holds data: {}; copy into a new, empty database",
        holding.join(", ")
    )))
}

fn copy_table(source: &Connection, session: &PgSession, table: &str) -> Result<u64, StoreError> {
    let columns: Vec<String> = source
        .prepare(&format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"))?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let list = columns.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
    let mut read = source.prepare(&format!("SELECT {list} FROM {table}"))?;
    let mut rows = read.query([])?;
    let mut pending: Vec<Value> = Vec::new();
    let mut copied = 0u64;
    let width = columns.len();
    let flush = |values: &mut Vec<Value>| -> Result<(), StoreError> {
        if values.is_empty() {
            return Ok(());
        }
        let n = values.len() / width;
        let tuples: Vec<String> = (0..n)
            .map(|r| format!("({})", (1..=width).map(|c| format!("?{}", r * width + c)).collect::<Vec<_>>().join(", ")))
            .collect();
        session
            .connection()
            .prepare(&format!("INSERT INTO {table} ({list}) VALUES {}", tuples.join(", ")))?
            .execute(sql::params_from_iter(values))?;
        values.clear();
        Ok(())
    };
    let deferred = (table == "incidents").then(|| columns.iter().position(|c| c == "merged_into")).flatten();
    while let Some(row) = rows.next()? {
        for i in 0..width {
            if Some(i) == deferred {
                pending.push(Value::Null);
                continue;
            }
            pending.push(match row.get_ref(i)? {
                rusqlite::types::ValueRef::Null => Value::Null,
                rusqlite::types::ValueRef::Integer(v) => Value::Integer(v),
                rusqlite::types::ValueRef::Real(v) => Value::Real(v),
                rusqlite::types::ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                rusqlite::types::ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            });
        }
        copied += 1;
        if pending.len() >= ROWS_PER_INSERT * width {
            flush(&mut pending)?;
        }
    }
    flush(&mut pending)?;
    Ok(copied)
}

/// An incident may be merged into a later one, which a row-by-row copy
/// has not yet written when it writes the earlier: incidents go in
/// without `merged_into` (see `copy_table`), and get it here.
fn link_merges(source: &Connection, session: &PgSession) -> Result<(), StoreError> {
    let merges: Vec<(i64, i64)> = source
        .prepare("SELECT id, merged_into FROM incidents WHERE merged_into IS NOT NULL")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let c = session.connection();
    for (id, into) in merges {
        c.execute("UPDATE incidents SET merged_into = ?2 WHERE id = ?1", sql::params![id, into])?;
    }
    Ok(())
}

/// Identity columns continue after the largest copied id.
fn restart_identities(session: &PgSession) -> Result<(), StoreError> {
    let c = session.connection();
    let identities: Vec<(String, String)> = c
        .prepare(
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND is_identity = 'YES'",
        )?
        .query_map(sql::params![], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (table, column) in identities {
        c.query_row(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), coalesce(max({column}), 0) + 1, false)
                 FROM {table}"
            ),
            sql::params![],
            |_| Ok(()),
        )?;
    }
    Ok(())
}
