//! The ports through which the domain reaches the world: one SQL executor (D1 on the edge, SQLite on
//! the host, running the same SQL), a flag store (KV on the edge), a clock and a source of randomness.

use std::collections::HashMap;
use std::fmt;

/// A value bound to, or read from, a SQL statement.
///
/// D1 hands numbers back as JavaScript doubles, so integers are kept below 2^53 (timestamps and
/// counters only) and ids are TEXT.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// SQL NULL.
    Null,
    /// An integer that fits a JavaScript double exactly.
    Integer(i64),
    /// A floating-point number (D1 may return integers this way; see [`Row::int`]).
    Real(f64),
    /// UTF-8 text.
    Text(String),
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_owned())
    }
}
impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        SqlValue::Text(v)
    }
}
impl From<&String> for SqlValue {
    fn from(v: &String) -> Self {
        SqlValue::Text(v.clone())
    }
}
impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Integer(v)
    }
}
impl From<u32> for SqlValue {
    fn from(v: u32) -> Self {
        SqlValue::Integer(i64::from(v))
    }
}
impl From<bool> for SqlValue {
    fn from(v: bool) -> Self {
        SqlValue::Integer(i64::from(v))
    }
}
impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

/// One SQL statement with its `?N` parameters.
#[derive(Debug, Clone)]
pub struct Statement {
    /// SQL text with `?1`-style placeholders (the form D1 accepts).
    pub sql: &'static str,
    /// Parameters, in placeholder order (D1 takes at most 100).
    pub params: Vec<SqlValue>,
}

/// Builds a [`Statement`]: `stmt!("SELECT ... WHERE id = ?1", id)`.
#[macro_export]
macro_rules! stmt {
    ($sql:expr $(, $param:expr)* $(,)?) => {
        $crate::store::Statement { sql: $sql, params: vec![$($crate::store::SqlValue::from($param)),*] }
    };
}

/// A result row, by column name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row(pub HashMap<String, SqlValue>);

impl Row {
    fn get(&self, column: &str) -> Result<&SqlValue, BackendError> {
        self.0
            .get(column)
            .ok_or_else(|| BackendError::Decode(format!("column `{column}` missing")))
    }

    /// A non-null text column.
    pub fn text(&self, column: &str) -> Result<String, BackendError> {
        self.opt_text(column)?
            .ok_or_else(|| BackendError::Decode(format!("column `{column}` is null")))
    }

    /// A nullable text column.
    pub fn opt_text(&self, column: &str) -> Result<Option<String>, BackendError> {
        match self.get(column)? {
            SqlValue::Null => Ok(None),
            SqlValue::Text(s) => Ok(Some(s.clone())),
            other => Err(BackendError::Decode(format!(
                "column `{column}`: expected text, got {other:?}"
            ))),
        }
    }

    /// A non-null integer column.
    pub fn int(&self, column: &str) -> Result<i64, BackendError> {
        self.opt_int(column)?
            .ok_or_else(|| BackendError::Decode(format!("column `{column}` is null")))
    }

    /// A nullable integer column. D1 returns every number as a double: accept integral ones.
    pub fn opt_int(&self, column: &str) -> Result<Option<i64>, BackendError> {
        match self.get(column)? {
            SqlValue::Null => Ok(None),
            SqlValue::Integer(i) => Ok(Some(*i)),
            #[allow(clippy::cast_possible_truncation)]
            SqlValue::Real(f) if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 => {
                Ok(Some(*f as i64))
            }
            other => Err(BackendError::Decode(format!(
                "column `{column}`: expected integer, got {other:?}"
            ))),
        }
    }

    /// A 0/1 column.
    pub fn flag(&self, column: &str) -> Result<bool, BackendError> {
        Ok(self.int(column)? != 0)
    }
}

/// A failure of something outside the domain. Always fails closed: it maps to `503 unavailable`
/// and its text goes to the log only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendError {
    /// The SQL executor failed (D1 down, constraint violated, bad SQL).
    Database(String),
    /// The flag store (KV) failed.
    Flags(String),
    /// The platform could not supply random bytes.
    Random(String),
    /// A row did not have the expected shape.
    Decode(String),
    /// Mail could not be delivered (only ever logged: delivery happens after the response).
    Mail(String),
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::Database(m) => write!(f, "database: {m}"),
            BackendError::Flags(m) => write!(f, "flag store: {m}"),
            BackendError::Random(m) => write!(f, "randomness: {m}"),
            BackendError::Decode(m) => write!(f, "decode: {m}"),
            BackendError::Mail(m) => write!(f, "mail: {m}"),
        }
    }
}

impl std::error::Error for BackendError {}

/// The SQL executor: D1 on the edge, SQLite on the host. There are no interactive transactions
/// (D1 has none): atomic multi-statement work goes through [`Database::batch`].
pub trait Database {
    /// Runs a statement that returns rows (`SELECT`, or a write with `RETURNING`).
    async fn query(&self, statement: Statement) -> Result<Vec<Row>, BackendError>;
    /// Runs a write and returns the number of rows it changed.
    async fn execute(&self, statement: Statement) -> Result<u64, BackendError>;
    /// Runs statements atomically, in order (all or none); returns each one's changed-row count.
    async fn batch(&self, statements: Vec<Statement>) -> Result<Vec<u64>, BackendError>;

    /// The first row of a query, if any.
    async fn query_one(&self, statement: Statement) -> Result<Option<Row>, BackendError> {
        Ok(self.query(statement).await?.into_iter().next())
    }
}

/// The revocation flag store: KV on the edge. Eventually consistent; flags expire by TTL.
pub trait FlagStore {
    /// Reads a flag.
    async fn get(&self, key: &str) -> Result<Option<String>, BackendError>;
    /// Writes a flag that expires after `ttl_seconds` (KV requires at least 60).
    async fn put(&self, key: &str, value: &str, ttl_seconds: u64) -> Result<(), BackendError>;
}

/// Wall-clock time, injected so tests can fix and move it.
pub trait Clock {
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;

    /// Milliseconds since the Unix epoch, where the platform has them (ids use them so that events
    /// within one second still sort in order).
    fn now_millis(&self) -> i64 {
        self.now() * 1000
    }
}

/// A cryptographically secure source of random bytes.
pub trait Random {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]) -> Result<(), BackendError>;
}
