//! The SQL the store's bookkeeping speaks: one connection type, statements,
//! rows, parameters and values, shaped like the part of rusqlite's API the
//! store uses, so the same bookkeeping code can run on more than one
//! database engine. Values cross it as five kinds (null, integer, real,
//! text, blob): timestamps are epoch milliseconds and flags are 0/1
//! integers, on every engine. Engine-specific work (opening files,
//! pragmas, checkpoints, backups) stays outside, on the engine's own types.
use std::fmt;

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
    /// A column held something its reader cannot take.
    Conversion(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Sqlite(e) => e.fmt(f),
            Error::Conversion(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for Error {}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Sqlite(e)
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
    sqlite: &'c rusqlite::Connection,
}

impl<'c> Connection<'c> {
    pub fn sqlite(c: &'c rusqlite::Connection) -> Connection<'c> {
        Connection { sqlite: c }
    }

    /// A statement kept in the connection's cache: the store's statements
    /// are a fixed set, prepared once.
    pub fn prepare_cached(&self, sql: &str) -> Result<Statement<'c>> {
        Ok(Statement::Cached(self.sqlite.prepare_cached(sql)?))
    }

    /// A statement built for one call (its text depends on the query).
    pub fn prepare(&self, sql: &str) -> Result<Statement<'c>> {
        Ok(Statement::Plain(self.sqlite.prepare(sql)?))
    }

    pub fn execute(&self, sql: &str, params: impl Params) -> Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    pub fn query_row<T>(&self, sql: &str, params: impl Params, f: impl FnOnce(&Row<'_>) -> Result<T>) -> Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    /// The id the last insert on this connection gave its row.
    pub fn last_insert_rowid(&self) -> i64 {
        self.sqlite.last_insert_rowid()
    }

    /// A transaction on a connection that is not in one (`commit` keeps it;
    /// dropping it rolls back).
    pub fn unchecked_transaction(&self) -> Result<Transaction<'c>> {
        Ok(Transaction(self.sqlite.unchecked_transaction()?))
    }
}

pub struct Transaction<'c>(rusqlite::Transaction<'c>);

impl Transaction<'_> {
    pub fn connection(&self) -> Connection<'_> {
        Connection::sqlite(&self.0)
    }

    pub fn commit(self) -> Result<()> {
        Ok(self.0.commit()?)
    }
}

pub enum Statement<'c> {
    Cached(rusqlite::CachedStatement<'c>),
    Plain(rusqlite::Statement<'c>),
}

impl<'c> Statement<'c> {
    fn raw(&mut self) -> &mut rusqlite::Statement<'c> {
        match self {
            Statement::Cached(s) => s,
            Statement::Plain(s) => s,
        }
    }

    pub fn execute(&mut self, params: impl Params) -> Result<usize> {
        Ok(self.raw().execute(lite(&params))?)
    }

    /// The first row; `QueryReturnedNoRows` when there is none (see
    /// [`OptionalExtension`]).
    pub fn query_row<T>(&mut self, params: impl Params, f: impl FnOnce(&Row<'_>) -> Result<T>) -> Result<T> {
        let mut rows = self.raw().query(lite(&params))?;
        match rows.next()? {
            Some(r) => f(&Row { sqlite: r }),
            None => Err(Error::Sqlite(rusqlite::Error::QueryReturnedNoRows)),
        }
    }

    /// Every row, each through `f`.
    pub fn query_map<T>(
        &mut self,
        params: impl Params,
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let mut rows = self.raw().query(lite(&params))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(f(&Row { sqlite: r }));
        }
        Ok(out.into_iter())
    }
}

pub struct Row<'r> {
    sqlite: &'r rusqlite::Row<'r>,
}

impl Row<'_> {
    pub fn get<T: FromSql>(&self, idx: usize) -> Result<T> {
        use rusqlite::types::ValueRef as V;
        let v = match self.sqlite.get_ref(idx)? {
            V::Null => ValueRef::Null,
            V::Integer(i) => ValueRef::Integer(i),
            V::Real(r) => ValueRef::Real(r),
            V::Text(t) => ValueRef::Text(
                std::str::from_utf8(t).map_err(|e| Error::Conversion(format!("column {idx}: not UTF-8: {e}")))?,
            ),
            V::Blob(b) => ValueRef::Blob(b),
        };
        T::from_sql(v).map_err(|e| match e {
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
            Err(Error::Sqlite(rusqlite::Error::QueryReturnedNoRows)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_sqlite() {
        let raw = rusqlite::Connection::open_in_memory().unwrap();
        raw.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, f REAL, s TEXT, b BLOB, flag INTEGER)")
            .unwrap();
        let c = Connection::sqlite(&raw);
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
