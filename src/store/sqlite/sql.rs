//! The SQL the store's bookkeeping speaks: one connection type, statements,
//! rows, parameters and values, shaped like the part of rusqlite's API the
//! store uses, so the same bookkeeping code can run on more than one
//! database engine. Values cross it as five kinds (null, integer, real,
//! text, blob): timestamps are epoch milliseconds and flags are 0/1
//! integers, on every engine. Engine-specific work (opening files,
//! pragmas, checkpoints, backups) stays outside, on the engine's own types.
//!
//! Statements are written once, in the SQL both engines speak, with
//! numbered parameters `?1`, `?2`...; on PostgreSQL they become `$1`,
//! `$2`... when first prepared.
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use postgres::types::ToSql as PgSend;

/// A value as a statement takes it or a row gives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// An owned value, for parameter lists built at run time.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

#[derive(Debug)]
pub enum Error {
    Sqlite(rusqlite::Error),
    Postgres(postgres::Error),
    /// `query_row` found no row (see [`OptionalExtension`]).
    NoRows,
    /// A column held something its reader cannot take.
    Conversion(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Sqlite(e) => e.fmt(f),
            Error::Postgres(e) => e.fmt(f),
            Error::NoRows => f.write_str("the query returned no row"),
            Error::Conversion(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for Error {}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::QueryReturnedNoRows => Error::NoRows,
            e => Error::Sqlite(e),
        }
    }
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        Error::Postgres(e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a statement can take as a parameter.
pub trait ToSql {
    fn to_sql(&self) -> ValueRef<'_>;
}

/// What a row's column can be read as.
pub trait FromSql: Sized {
    fn from_sql(v: ValueRef<'_>) -> Result<Self>;
}

fn mismatch<T>(want: &str, got: ValueRef<'_>) -> Result<T> {
    Err(Error::Conversion(format!("expected {want}, the column holds {got:?}")))
}

macro_rules! integer {
    ($($t:ty),*) => {$(
        impl ToSql for $t {
            fn to_sql(&self) -> ValueRef<'_> {
                ValueRef::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
        impl FromSql for $t {
            fn from_sql(v: ValueRef<'_>) -> Result<Self> {
                match v {
                    ValueRef::Integer(i) => <$t>::try_from(i)
                        .map_err(|_| Error::Conversion(format!("{i} is out of range for {}", stringify!($t)))),
                    other => mismatch("an integer", other),
                }
            }
        }
    )*};
}

integer!(i64, i32, u32, u64, usize, u8, u16, i16);

impl ToSql for bool {
    fn to_sql(&self) -> ValueRef<'_> {
        ValueRef::Integer(i64::from(*self))
    }
}

impl FromSql for bool {
    fn from_sql(v: ValueRef<'_>) -> Result<Self> {
        match v {
            ValueRef::Integer(i) => Ok(i != 0),
            other => mismatch("a flag", other),
        }
    }
}

impl ToSql for f64 {
    fn to_sql(&self) -> ValueRef<'_> {
        ValueRef::Real(*self)
    }
}

impl FromSql for f64 {
    fn from_sql(v: ValueRef<'_>) -> Result<Self> {
        match v {
            ValueRef::Real(r) => Ok(r),
            ValueRef::Integer(i) => Ok(i as f64),
            other => mismatch("a number", other),
        }
    }
}

impl ToSql for str {
    fn to_sql(&self) -> ValueRef<'_> {
        ValueRef::Text(self)
    }
}

impl ToSql for String {
    fn to_sql(&self) -> ValueRef<'_> {
        ValueRef::Text(self)
    }
}

impl FromSql for String {
    fn from_sql(v: ValueRef<'_>) -> Result<Self> {
        match v {
            ValueRef::Text(t) => Ok(t.to_owned()),
            other => mismatch("text", other),
        }
    }
}

impl ToSql for [u8] {
    fn to_sql(&self) -> ValueRef<'_> {
        ValueRef::Blob(self)
    }
}

impl ToSql for Vec<u8> {
    fn to_sql(&self) -> ValueRef<'_> {
        ValueRef::Blob(self)
    }
}

impl FromSql for Vec<u8> {
    fn from_sql(v: ValueRef<'_>) -> Result<Self> {
        match v {
            ValueRef::Blob(b) => Ok(b.to_vec()),
            other => mismatch("bytes", other),
        }
    }
}

impl<T: ToSql> ToSql for Option<T> {
    fn to_sql(&self) -> ValueRef<'_> {
        self.as_ref().map_or(ValueRef::Null, ToSql::to_sql)
    }
}

impl<T: FromSql> FromSql for Option<T> {
    fn from_sql(v: ValueRef<'_>) -> Result<Self> {
        match v {
            ValueRef::Null => Ok(None),
            v => T::from_sql(v).map(Some),
        }
    }
}

impl<T: ToSql + ?Sized> ToSql for &T {
    fn to_sql(&self) -> ValueRef<'_> {
        (**self).to_sql()
    }
}

impl ToSql for Value {
    fn to_sql(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(r) => ValueRef::Real(*r),
            Value::Text(t) => ValueRef::Text(t),
            Value::Blob(b) => ValueRef::Blob(b),
        }
    }
}

impl FromSql for Value {
    fn from_sql(v: ValueRef<'_>) -> Result<Self> {
        Ok(match v {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(r) => Value::Real(r),
            ValueRef::Text(t) => Value::Text(t.to_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        })
    }
}

/// A statement's parameters, in order.
pub trait Params {
    fn each(&self) -> impl Iterator<Item = &dyn ToSql>;
}

impl Params for &[&dyn ToSql] {
    fn each(&self) -> impl Iterator<Item = &dyn ToSql> {
        self.iter().copied()
    }
}

impl<T: ToSql, const N: usize> Params for [T; N] {
    fn each(&self) -> impl Iterator<Item = &dyn ToSql> {
        self.iter().map(|t| t as &dyn ToSql)
    }
}

/// Parameters from a list built at run time.
pub struct ParamsFromIter<'a, T>(&'a [T]);

pub fn params_from_iter<T: ToSql>(values: &[T]) -> ParamsFromIter<'_, T> {
    ParamsFromIter(values)
}

impl<T: ToSql> Params for ParamsFromIter<'_, T> {
    fn each(&self) -> impl Iterator<Item = &dyn ToSql> {
        self.0.iter().map(|t| t as &dyn ToSql)
    }
}

/// `params![a, b, c]`: a statement's parameters.
macro_rules! params {
    () => { &[] as &[&dyn $crate::store::sqlite::sql::ToSql] };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::store::sqlite::sql::ToSql),+] as &[&dyn $crate::store::sqlite::sql::ToSql] };
}
pub(crate) use params;

// --- SQLite ---------------------------------------------------------------

struct Lite<'a>(&'a dyn ToSql);

impl rusqlite::ToSql for Lite<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::ValueRef as V;
        Ok(rusqlite::types::ToSqlOutput::Borrowed(match self.0.to_sql() {
            ValueRef::Null => V::Null,
            ValueRef::Integer(i) => V::Integer(i),
            ValueRef::Real(r) => V::Real(r),
            ValueRef::Text(t) => V::Text(t.as_bytes()),
            ValueRef::Blob(b) => V::Blob(b),
        }))
    }
}

fn lite(p: &impl Params) -> rusqlite::ParamsFromIter<impl Iterator<Item = Lite<'_>>> {
    rusqlite::params_from_iter(p.each().map(Lite))
}

/// A connection, or a transaction on one: the bookkeeping code takes this.
#[derive(Clone, Copy)]
pub struct Connection<'c> {
    engine: Engine<'c>,
}

#[derive(Clone, Copy)]
enum Engine<'c> {
    Sqlite(&'c rusqlite::Connection),
    Postgres(&'c PgSession),
}

impl<'c> Connection<'c> {
    pub fn sqlite(c: &'c rusqlite::Connection) -> Connection<'c> {
        Connection { engine: Engine::Sqlite(c) }
    }

    pub fn postgres(s: &'c PgSession) -> Connection<'c> {
        Connection { engine: Engine::Postgres(s) }
    }

    /// Whether statements cross a network to PostgreSQL (each a round
    /// trip) rather than run in process on SQLite.
    pub fn is_postgres(&self) -> bool {
        matches!(self.engine, Engine::Postgres(_))
    }

    /// Whether this transaction runs beside other gateways' batches (it
    /// holds the write lock shared): it may only take alerts sent again,
    /// and ends with [`crate::store::StoreError::NeedsWriteLock`] at
    /// anything else (see `shared.rs`).
    pub fn resends_only(&self) -> bool {
        match self.engine {
            Engine::Sqlite(_) => false,
            Engine::Postgres(s) => s.resends_only.get(),
        }
    }

    /// A statement kept in the connection's cache: the store's statements
    /// are a fixed set, prepared once.
    pub fn prepare_cached(&self, sql: &str) -> Result<Statement<'c>> {
        match self.engine {
            Engine::Sqlite(c) => Ok(Statement::Cached(c.prepare_cached(sql)?)),
            Engine::Postgres(s) => Ok(Statement::Postgres { session: s, statement: s.prepare(sql)? }),
        }
    }

    /// A statement built for one call (its text depends on the query).
    pub fn prepare(&self, sql: &str) -> Result<Statement<'c>> {
        match self.engine {
            Engine::Sqlite(c) => Ok(Statement::Plain(c.prepare(sql)?)),
            Engine::Postgres(s) => Ok(Statement::Postgres { session: s, statement: s.prepare(sql)? }),
        }
    }

    pub fn execute(&self, sql: &str, params: impl Params) -> Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    pub fn query_row<T>(&self, sql: &str, params: impl Params, f: impl FnOnce(&Row<'_>) -> Result<T>) -> Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    /// Run an `INSERT` into a table with an `id` key; the id it gave the
    /// row. One round trip on PostgreSQL (`RETURNING id`), where
    /// [`Connection::last_insert_rowid`] takes a second.
    pub fn insert(&self, sql: &str, params: impl Params) -> Result<i64> {
        match self.engine {
            Engine::Sqlite(c) => {
                Statement::Cached(c.prepare_cached(sql)?).execute(params)?;
                Ok(c.last_insert_rowid())
            }
            Engine::Postgres(_) => self.query_row(&format!("{sql} RETURNING id"), params, |r| r.get(0)),
        }
    }

    /// The id the last insert on this connection gave its row.
    pub fn last_insert_rowid(&self) -> Result<i64> {
        match self.engine {
            Engine::Sqlite(c) => Ok(c.last_insert_rowid()),
            Engine::Postgres(_) => self.query_row("SELECT lastval()", params![], |r| r.get(0)),
        }
    }

    /// A transaction on a connection that is not in one (`commit` keeps it;
    /// dropping it rolls back).
    pub fn unchecked_transaction(&self) -> Result<Transaction<'c>> {
        self.batch("BEGIN")?;
        Ok(Transaction { conn: *self, open: true })
    }

    fn batch(&self, sql: &str) -> Result<()> {
        match self.engine {
            Engine::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Engine::Postgres(s) => s.batch_execute(sql),
        }
    }
}

pub struct Transaction<'c> {
    conn: Connection<'c>,
    open: bool,
}

impl<'c> Transaction<'c> {
    pub fn connection(&self) -> Connection<'c> {
        self.conn
    }

    pub fn commit(mut self) -> Result<()> {
        self.open = false;
        self.conn.batch("COMMIT")
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.open
            && let Err(e) = self.conn.batch("ROLLBACK")
        {
            tracing::warn!(error = %e, "rolling back a transaction failed");
        }
    }
}

pub enum Statement<'c> {
    Cached(rusqlite::CachedStatement<'c>),
    Plain(rusqlite::Statement<'c>),
    Postgres { session: &'c PgSession, statement: postgres::Statement },
}

impl<'c> Statement<'c> {
    pub fn execute(&mut self, params: impl Params) -> Result<usize> {
        match self {
            Statement::Cached(s) => Ok(s.execute(lite(&params))?),
            Statement::Plain(s) => Ok(s.execute(lite(&params))?),
            Statement::Postgres { session, statement } => {
                let n = with_pg_params(&params, |refs| session.client.borrow_mut().execute(&*statement, refs))?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            }
        }
    }

    /// The first row; [`Error::NoRows`] when there is none (see
    /// [`OptionalExtension`]).
    pub fn query_row<T>(&mut self, params: impl Params, f: impl FnOnce(&Row<'_>) -> Result<T>) -> Result<T> {
        let mut first = Some(f);
        let mut out = None;
        self.each_row(params, &mut |r| {
            if let Some(f) = first.take() {
                out = Some(f(r));
            }
            Ok(false)
        })?;
        out.unwrap_or(Err(Error::NoRows))
    }

    /// Every row, each through `f`.
    pub fn query_map<T>(
        &mut self,
        params: impl Params,
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let mut out = Vec::new();
        self.each_row(params, &mut |r| {
            out.push(f(r));
            Ok(true)
        })?;
        Ok(out.into_iter())
    }

    /// Run the query, handing each row to `each` while it says go on.
    fn each_row(&mut self, params: impl Params, each: &mut dyn FnMut(&Row<'_>) -> Result<bool>) -> Result<()> {
        let lite_rows = |s: &mut rusqlite::Statement<'_>, each: &mut dyn FnMut(&Row<'_>) -> Result<bool>| {
            let mut rows = s.query(lite(&params))?;
            while let Some(r) = rows.next()? {
                if !each(&Row::Sqlite(r))? {
                    break;
                }
            }
            Ok(())
        };
        match self {
            Statement::Cached(s) => lite_rows(s, each),
            Statement::Plain(s) => lite_rows(s, each),
            Statement::Postgres { session, statement } => {
                let rows = with_pg_params(&params, |refs| session.client.borrow_mut().query(&*statement, refs))?;
                for r in &rows {
                    if !each(&Row::Postgres(r))? {
                        break;
                    }
                }
                Ok(())
            }
        }
    }
}

pub enum Row<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r postgres::Row),
}

impl Row<'_> {
    pub fn get<T: FromSql>(&self, idx: usize) -> Result<T> {
        let converted = match self {
            Row::Sqlite(r) => {
                use rusqlite::types::ValueRef as V;
                match r.get_ref(idx)? {
                    V::Null => T::from_sql(ValueRef::Null),
                    V::Integer(i) => T::from_sql(ValueRef::Integer(i)),
                    V::Real(r) => T::from_sql(ValueRef::Real(r)),
                    V::Text(t) => T::from_sql(ValueRef::Text(
                        std::str::from_utf8(t).map_err(|e| Error::Conversion(format!("not UTF-8: {e}")))?,
                    )),
                    V::Blob(b) => T::from_sql(ValueRef::Blob(b)),
                }
            }
            Row::Postgres(r) => pg_column(r, idx, T::from_sql),
        };
        converted.map_err(|e| match e {
            Error::Conversion(m) => Error::Conversion(format!("column {idx}: {m}")),
            e => e,
        })
    }
}

/// `.optional()`: no row is `None`, not an error.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(Error::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// How many rows of a group satisfy `predicate`, as both engines count
/// (PostgreSQL sums no booleans, and its sum of integers is NUMERIC).
pub fn count_where(predicate: &str) -> String {
    format!("CAST(coalesce(sum(CASE WHEN {predicate} THEN 1 ELSE 0 END), 0) AS BIGINT)")
}

// --- Many rows at once ------------------------------------------------------

/// One column of the rows a [`ForRows`] statement runs for; every column
/// of a call holds one value per row.
pub enum Column<'a> {
    Int(Vec<Option<i64>>),
    Text(Vec<Option<&'a str>>),
}

impl Column<'_> {
    fn len(&self) -> usize {
        match self {
            Column::Int(v) => v.len(),
            Column::Text(v) => v.len(),
        }
    }

    fn value(&self, row: usize) -> ValueRef<'_> {
        match self {
            Column::Int(v) => v[row].map_or(ValueRef::Null, ValueRef::Integer),
            Column::Text(v) => v[row].map_or(ValueRef::Null, ValueRef::Text),
        }
    }
}

/// A statement for many rows. On PostgreSQL it runs once, each column an
/// array parameter (`unnest(?1::bigint[], ?2::text[])`): one round trip
/// for the lot. On SQLite, in process, it runs once per row with that
/// row's values as `?1`, `?2`...
pub struct ForRows {
    pub sqlite: String,
    pub postgres: String,
}

impl ForRows {
    /// The statement as `c`'s engine takes it, for a statement run once
    /// rather than for rows given column by column.
    pub fn on(&self, c: &Connection<'_>) -> &str {
        if c.is_postgres() { &self.postgres } else { &self.sqlite }
    }
}

struct RowParams<'a>(Vec<ValueRef<'a>>);

impl Params for RowParams<'_> {
    fn each(&self) -> impl Iterator<Item = &dyn ToSql> {
        self.0.iter().map(|v| v as &dyn ToSql)
    }
}

impl ToSql for ValueRef<'_> {
    fn to_sql(&self) -> ValueRef<'_> {
        *self
    }
}

impl Connection<'_> {
    /// Run `statement` for the rows given column by column, handing each
    /// row it returns to `each`.
    pub fn for_rows(
        &self,
        statement: &ForRows,
        columns: &[Column<'_>],
        mut each: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        let rows = columns.first().map_or(0, Column::len);
        if rows == 0 {
            return Ok(());
        }
        if columns.iter().any(|c| c.len() != rows) {
            return Err(Error::Conversion("columns of unequal length".into()));
        }
        match self.engine {
            Engine::Sqlite(c) => {
                let mut s = Statement::Cached(c.prepare_cached(&statement.sqlite)?);
                for row in 0..rows {
                    let values = RowParams(columns.iter().map(|c| c.value(row)).collect());
                    s.each_row(values, &mut |r| each(r).map(|()| true))?;
                }
                Ok(())
            }
            Engine::Postgres(session) => {
                let prepared = session.prepare(&statement.postgres)?;
                let texts: Vec<Option<Vec<Option<std::borrow::Cow<'_, str>>>>> = columns
                    .iter()
                    .map(|c| match c {
                        Column::Text(v) => Some(v.iter().map(|t| t.map(pg_text_in)).collect()),
                        Column::Int(_) => None,
                    })
                    .collect();
                let arrays: Vec<Box<dyn postgres::types::ToSql + Sync + '_>> = columns
                    .iter()
                    .zip(&texts)
                    .map(|(c, t)| -> Box<dyn postgres::types::ToSql + Sync + '_> {
                        match (c, t) {
                            (_, Some(t)) => Box::new(t.iter().map(|v| v.as_deref()).collect::<Vec<Option<&str>>>()),
                            (Column::Int(v), None) => Box::new(v.clone()),
                            (Column::Text(_), None) => unreachable!("text columns are escaped above"),
                        }
                    })
                    .collect();
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = arrays.iter().map(|a| &**a as _).collect();
                let found = session.client.borrow_mut().query(&prepared, &refs)?;
                found.iter().try_for_each(|r| each(&Row::Postgres(r)))
            }
        }
    }
}

// --- PostgreSQL -------------------------------------------------------------

/// One PostgreSQL connection and the statements prepared on it. The
/// caller keeps it on one thread, as the SQLite writer keeps its own.
pub struct PgSession {
    client: RefCell<postgres::Client>,
    statements: RefCell<HashMap<String, postgres::Statement>>,
    /// See [`Connection::resends_only`].
    pub(super) resends_only: std::cell::Cell<bool>,
}

impl PgSession {
    pub fn new(client: postgres::Client) -> PgSession {
        PgSession {
            client: RefCell::new(client),
            statements: RefCell::new(HashMap::new()),
            resends_only: std::cell::Cell::new(false),
        }
    }

    pub fn connection(&self) -> Connection<'_> {
        Connection::postgres(self)
    }

    /// Run statements that take no parameters (a transaction's `BEGIN`,
    /// a migration).
    pub fn batch_execute(&self, sql: &str) -> Result<()> {
        Ok(self.client.borrow_mut().batch_execute(sql)?)
    }

    /// Run `sql` as [`PgSession::batch_execute`] does (statements without
    /// parameters, one round trip); the first column of the last row they
    /// returned, as text.
    pub fn batch_last_value(&self, sql: &str) -> Result<Option<String>> {
        let messages = self.client.borrow_mut().simple_query(sql)?;
        let last = messages.iter().rev().find_map(|m| match m {
            postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_owned)),
            _ => None,
        });
        Ok(last.flatten())
    }

    /// True once the connection is lost: the session must be replaced.
    pub fn is_closed(&self) -> bool {
        self.client.borrow().is_closed()
    }

    fn prepare(&self, sql: &str) -> Result<postgres::Statement> {
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let statement = self.client.borrow_mut().prepare(&numbered(sql)).map_err(|e| {
            // The statement is named in the log: a dialect the server refuses is a bug to fix.
            tracing::error!(error = %e, statement = %sql.split_whitespace().collect::<Vec<_>>().join(" "), "PostgreSQL refused a statement");
            e
        })?;
        self.statements.borrow_mut().insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// `?1` becomes `$1`; a `?` inside a quoted literal stays.
pub(super) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted && chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            c => out.push(c),
        }
    }
    out
}

/// Call `f` with the parameters as the postgres client takes them.
fn with_pg_params<T>(
    params: &impl Params,
    f: impl FnOnce(&[&(dyn postgres::types::ToSql + Sync)]) -> std::result::Result<T, postgres::Error>,
) -> Result<T> {
    let values: Vec<Pg<'_>> = params.each().map(|p| Pg(p.to_sql())).collect();
    let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = values.iter().map(|v| v as _).collect();
    Ok(f(&refs)?)
}

/// A parameter on its way to PostgreSQL, converted to the type the server
/// chose for its place in the statement.
#[derive(Debug)]
struct Pg<'a>(ValueRef<'a>);

impl postgres::types::ToSql for Pg<'_> {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::Type as T;
        match self.0 {
            ValueRef::Null => Ok(postgres::types::IsNull::Yes),
            ValueRef::Integer(i) if *ty == T::INT8 => PgSend::to_sql(&i, ty, out),
            ValueRef::Integer(i) if *ty == T::INT4 => PgSend::to_sql(&i32::try_from(i)?, ty, out),
            ValueRef::Integer(i) if *ty == T::INT2 => PgSend::to_sql(&i16::try_from(i)?, ty, out),
            ValueRef::Integer(i) if *ty == T::BOOL => PgSend::to_sql(&(i != 0), ty, out),
            ValueRef::Integer(i) if *ty == T::FLOAT8 => PgSend::to_sql(&(i as f64), ty, out),
            ValueRef::Real(r) if *ty == T::FLOAT8 => PgSend::to_sql(&r, ty, out),
            ValueRef::Real(r) if *ty == T::FLOAT4 => PgSend::to_sql(&(r as f32), ty, out),
            ValueRef::Text(t) if [T::TEXT, T::VARCHAR, T::BPCHAR, T::NAME, T::UNKNOWN].contains(ty) => {
                PgSend::to_sql(&pg_text_in(t).as_ref(), ty, out)
            }
            // SQLite keeps a number written to a text column as a number
            // (a copied database may hold some).
            ValueRef::Integer(i) if [T::TEXT, T::VARCHAR].contains(ty) => PgSend::to_sql(&i.to_string(), ty, out),
            ValueRef::Blob(b) if *ty == T::BYTEA => PgSend::to_sql(&b, ty, out),
            v => Err(format!("cannot send {v:?} as {ty}").into()),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// Read column `idx` of a PostgreSQL row as one of the five kinds.
fn pg_column<T>(r: &postgres::Row, idx: usize, f: impl FnOnce(ValueRef<'_>) -> Result<T>) -> Result<T> {
    use postgres::types::Type as Ty;
    let ty = r.columns().get(idx).ok_or_else(|| Error::Conversion("no such column".into()))?.type_().clone();
    let conv = |e: postgres::Error| Error::Conversion(e.to_string());
    let int = |v: Option<i64>| v.map_or(ValueRef::Null, ValueRef::Integer);
    match ty {
        Ty::INT8 => f(int(r.try_get::<_, Option<i64>>(idx).map_err(conv)?)),
        Ty::INT4 => f(int(r.try_get::<_, Option<i32>>(idx).map_err(conv)?.map(i64::from))),
        Ty::INT2 => f(int(r.try_get::<_, Option<i16>>(idx).map_err(conv)?.map(i64::from))),
        Ty::BOOL => f(int(r.try_get::<_, Option<bool>>(idx).map_err(conv)?.map(i64::from))),
        Ty::FLOAT8 => f(r.try_get::<_, Option<f64>>(idx).map_err(conv)?.map_or(ValueRef::Null, ValueRef::Real)),
        Ty::FLOAT4 => {
            f(r.try_get::<_, Option<f32>>(idx).map_err(conv)?.map_or(ValueRef::Null, |v| ValueRef::Real(f64::from(v))))
        }
        Ty::BYTEA => f(r.try_get::<_, Option<&[u8]>>(idx).map_err(conv)?.map_or(ValueRef::Null, ValueRef::Blob)),
        Ty::NUMERIC => match r.try_get::<_, Option<Numeric>>(idx).map_err(conv)? {
            None => f(ValueRef::Null),
            Some(Numeric(v)) if v.fract() == 0.0 && v.abs() < 9.0e15 => f(ValueRef::Integer(v as i64)),
            Some(Numeric(v)) => f(ValueRef::Real(v)),
        },
        _ => match r.try_get::<_, Option<&str>>(idx).map_err(conv)? {
            None => f(ValueRef::Null),
            Some(t) => f(ValueRef::Text(&pg_text_out(t))),
        },
    }
}

/// PostgreSQL's text holds no NUL character, which labels may (SQLite's
/// does): on the way in a NUL becomes this noncharacter and `0`, the
/// noncharacter itself is doubled; on the way out both are undone. Text
/// without either (nearly all) passes untouched.
const NUL_ESCAPE: char = '\u{10FFFF}';

fn pg_text_in(t: &str) -> std::borrow::Cow<'_, str> {
    // Scanned as bytes rather than decoded chars (every request's labels
    // and payloads pass here): 0xF4 leads U+100000 and up, U+10FFFF among
    // them, so only text holding one is decoded.
    let rare = t.bytes().fold(false, |rare, b| rare | (b == 0) | (b == 0xF4));
    if !rare || !t.contains(['\0', NUL_ESCAPE]) {
        return std::borrow::Cow::Borrowed(t);
    }
    let mut out = String::with_capacity(t.len() + 8);
    for c in t.chars() {
        match c {
            '\0' => out.extend([NUL_ESCAPE, '0']),
            NUL_ESCAPE => out.extend([NUL_ESCAPE, NUL_ESCAPE]),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

fn pg_text_out(t: &str) -> std::borrow::Cow<'_, str> {
    if !t.contains(NUL_ESCAPE) {
        return std::borrow::Cow::Borrowed(t);
    }
    let mut out = String::with_capacity(t.len());
    let mut chars = t.chars();
    while let Some(c) = chars.next() {
        match (c, c == NUL_ESCAPE) {
            (_, true) => match chars.next() {
                Some('0') => out.push('\0'),
                Some(other) => out.push(other),
                None => out.push(NUL_ESCAPE),
            },
            (c, false) => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A NUMERIC (what `sum` of integers gives), read as the nearest double
/// from its binary form: sign, weight and base-10000 digits.
struct Numeric(f64);

impl<'a> postgres::types::FromSql<'a> for Numeric {
    fn from_sql(
        _: &postgres::types::Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let word = |i: usize| -> std::result::Result<i16, Box<dyn std::error::Error + Sync + Send>> {
            let b = raw.get(i * 2..i * 2 + 2).ok_or("a NUMERIC too short")?;
            Ok(i16::from_be_bytes([b[0], b[1]]))
        };
        let (digits, weight, sign) = (word(0)? as usize, word(1)?, word(2)? as u16);
        if sign == 0xC000 {
            return Ok(Numeric(f64::NAN));
        }
        let mut value = 0.0;
        for i in 0..digits {
            value += f64::from(word(4 + i)?) * 10_000f64.powi(i32::from(weight) - i as i32);
        }
        Ok(Numeric(if sign == 0x4000 { -value } else { value }))
    }

    fn accepts(ty: &postgres::types::Type) -> bool {
        *ty == postgres::types::Type::NUMERIC
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_sqlite() {
        let raw = rusqlite::Connection::open_in_memory().unwrap();
        raw.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, f REAL, s TEXT, b BLOB, flag INTEGER)")
            .unwrap();
        round_trip(Connection::sqlite(&raw));
    }

    /// A database of its own on the local PostgreSQL server, dropped after.
    pub(in crate::store::sqlite) struct PgDatabase {
        admin: postgres::Client,
        name: String,
    }

    impl PgDatabase {
        /// `ALERTGATE_TEST_POSTGRES` (default: the local server, user postgres).
        pub(in crate::store::sqlite) fn create() -> (PgDatabase, PgSession) {
            let base = std::env::var("ALERTGATE_TEST_POSTGRES")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
            let mut admin = postgres::Client::connect(&base, postgres::NoTls)
                .unwrap_or_else(|e| panic!("the PostgreSQL tests need a server at {base}: {e}"));
            let mut suffix = [0u8; 6];
            getrandom::fill(&mut suffix).unwrap();
            let name = format!("alertgate_test_{}", hex::encode(suffix));
            admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
            let url = format!("{}/{name}", base.rsplit_once('/').map_or(base.as_str(), |(b, _)| b));
            let client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            (PgDatabase { admin, name }, PgSession::new(client))
        }
    }

    impl Drop for PgDatabase {
        fn drop(&mut self) {
            let _ = self.admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }

    #[test]
    fn values_round_trip_through_postgresql() {
        let (_db, session) = PgDatabase::create();
        session
            .batch_execute(
                "CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT,
                    f DOUBLE PRECISION, s TEXT, b BYTEA, flag BIGINT)",
            )
            .unwrap();
        round_trip(session.connection());
        // Columns PostgreSQL types its own way read as the same five kinds.
        let c = session.connection();
        let (yes, small, text): (bool, i64, String) = c
            .query_row("SELECT ?1 = 'a?b', 7::int4, 'it''s ?1'", params!["a?b"], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!((yes, small, text.as_str()), (true, 7, "it's ?1"));
        let (sum, half, neg): (i64, f64, i64) = c
            .query_row(
                "SELECT sum(x), 12345.5::numeric, -20000::numeric FROM (VALUES (1::bigint), (99999999)) v(x)",
                params![],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((sum, half, neg), (100_000_000, 12345.5, -20000));
    }

    #[test]
    fn text_with_nul_characters_round_trips_through_postgresql() {
        let (_db, session) = PgDatabase::create();
        session.batch_execute("CREATE TABLE t (s TEXT)").unwrap();
        let c = session.connection();
        for text in ["plain", "a\0b", "\0", "\u{10FFFF}", "x\u{10FFFF}0y\0\u{10FFFF}\u{10FFFF}", ""] {
            c.execute("DELETE FROM t", params![]).unwrap();
            c.execute("INSERT INTO t (s) VALUES (?1)", params![text]).unwrap();
            let back: String = c.query_row("SELECT s FROM t", params![], |r| r.get(0)).unwrap();
            assert_eq!(back, text);
            let found: i64 = c.query_row("SELECT count(*) FROM t WHERE s = ?1", params![text], |r| r.get(0)).unwrap();
            assert_eq!(found, 1, "{text:?} is found by equality");
        }
        assert_eq!(pg_text_in("plain"), std::borrow::Cow::Borrowed("plain"));
    }

    /// Many rows in one statement: inserted (NULLs and NUL characters
    /// among them), their ids returned, then found again by a list of keys.
    fn for_rows_round_trip(c: Connection<'_>) {
        let insert = ForRows {
            sqlite: "INSERT INTO t (n, s) VALUES (?1, ?2) RETURNING id, s".into(),
            postgres: "INSERT INTO t (n, s) SELECT * FROM unnest(?1::bigint[], ?2::text[]) RETURNING id, s".into(),
        };
        let texts = [Some("one"), None, Some("th\0ree")];
        let mut ids = Vec::new();
        c.for_rows(&insert, &[Column::Int(vec![Some(1), Some(2), None]), Column::Text(texts.to_vec())], |r| {
            ids.push((r.get::<i64>(0)?, r.get::<Option<String>>(1)?));
            Ok(())
        })
        .unwrap();
        let returned: Vec<Option<&str>> = ids.iter().map(|(_, s)| s.as_deref()).collect();
        assert_eq!(returned, texts, "one row back per row in, in order");
        let find = ForRows {
            sqlite: "SELECT n FROM t WHERE s = ?1".into(),
            postgres: "SELECT n FROM t WHERE s = ANY(?1::text[])".into(),
        };
        let mut found = Vec::new();
        c.for_rows(&find, &[Column::Text(vec![Some("th\0ree"), Some("one"), Some("none")])], |r| {
            found.push(r.get::<Option<i64>>(0)?);
            Ok(())
        })
        .unwrap();
        found.sort();
        assert_eq!(found, [None, Some(1)]);
        c.for_rows(&find, &[Column::Text(vec![])], |_| panic!("no rows, no statement")).unwrap();
        let uneven = c.for_rows(&find, &[Column::Text(vec![Some("a")]), Column::Int(vec![])], |_| Ok(()));
        assert!(uneven.is_err(), "columns of unequal length are refused");
        c.execute("DELETE FROM t", params![]).unwrap();
    }

    #[test]
    fn numbered_parameters_become_dollars_outside_literals() {
        assert_eq!(
            numbered("SELECT ?1, '?2', ?12 WHERE a = '?' OR b = ?2"),
            "SELECT $1, '?2', $12 WHERE a = '?' OR b = $2"
        );
    }

    /// What every engine must do alike, on a table `t` (id, n, f, s, b, flag).
    fn round_trip(c: Connection<'_>) {
        for_rows_round_trip(c);
        let id: i64 = c
            .query_row(
                "INSERT INTO t (n, f, s, b, flag) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                params![7u32, 1.5, "x", vec![1u8, 2], true],
                |r| r.get(0),
            )
            .unwrap();
        let row = c
            .query_row("SELECT n, f, s, b, flag FROM t WHERE id = ?1", [id], |r| {
                Ok((r.get::<u32>(0)?, r.get::<f64>(1)?, r.get::<String>(2)?, r.get::<Vec<u8>>(3)?, r.get::<bool>(4)?))
            })
            .unwrap();
        assert_eq!(row, (7, 1.5, "x".to_owned(), vec![1, 2], true));
        let none: Option<i64> =
            c.query_row("SELECT n FROM t WHERE id = ?1", [id + 1], |r| r.get(0)).optional().unwrap();
        assert_eq!(none, None);
        let null: Option<String> = c.query_row("SELECT NULL", params![], |r| r.get(0)).unwrap();
        assert_eq!(null, None);
        let bad = c.query_row("SELECT s FROM t", params![], |r| r.get::<i64>(0)).unwrap_err();
        assert!(bad.to_string().contains("column 0: expected an integer"), "{bad}");
        let args = vec![Value::Integer(id), Value::Text("x".into())];
        let n: i64 = c
            .prepare("SELECT count(*) FROM t WHERE id = ?1 AND s = ?2")
            .unwrap()
            .query_row(params_from_iter(&args), |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        let all: Vec<i64> = c
            .prepare_cached("SELECT n FROM t")
            .unwrap()
            .query_map([0i64; 0], |r| r.get(0))
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(all, [7]);
    }
}
