//! The SQL executor on D1. D1 quirks handled here: parameters are JavaScript values (integers go as
//! doubles, below 2^53 by schema convention), rows come back as JS objects whose numbers are doubles,
//! and `batch` is D1's only atomic multi-statement unit (there are no interactive transactions).

use std::cell::OnceCell;

use serde_json::Value;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, Env};

use crate::store::{BackendError, Database, Row, SqlValue, Statement};

/// The D1 binding `DB`, looked up in the Worker's environment at its first use in a request: an
/// answer that needs no SQL (a token verified from the isolate's caches) skips the lookup.
pub struct D1 {
    env: Env,
    binding: OnceCell<D1Database>,
}

impl D1 {
    pub fn new(env: Env) -> Self {
        D1 {
            env,
            binding: OnceCell::new(),
        }
    }

    fn db(&self) -> Result<&D1Database, BackendError> {
        if let Some(db) = self.binding.get() {
            return Ok(db);
        }
        let db = self
            .env
            .d1("DB")
            .map_err(|e| BackendError::Database(format!("D1 binding DB: {e}")))?;
        Ok(self.binding.get_or_init(|| db))
    }
}

fn db_error(context: &str, err: &worker::Error) -> BackendError {
    BackendError::Database(format!("{context}: {err}"))
}

fn to_js(value: &SqlValue) -> JsValue {
    match value {
        SqlValue::Null => JsValue::NULL,
        #[allow(clippy::cast_precision_loss)]
        SqlValue::Integer(i) => JsValue::from_f64(*i as f64),
        SqlValue::Real(f) => JsValue::from_f64(*f),
        SqlValue::Text(s) => JsValue::from_str(s),
    }
}

fn from_json(value: Value) -> SqlValue {
    match value {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(b)),
        Value::Number(n) => n
            .as_i64()
            .map(SqlValue::Integer)
            .unwrap_or_else(|| SqlValue::Real(n.as_f64().unwrap_or(f64::NAN))),
        Value::String(s) => SqlValue::Text(s),
        // Arrays and objects (blobs) are not used by our schema; keep them as their JSON text.
        other => SqlValue::Text(other.to_string()),
    }
}

impl D1 {
    fn prepare(&self, statement: &Statement) -> Result<D1PreparedStatement, BackendError> {
        let params: Vec<JsValue> = statement.params.iter().map(to_js).collect();
        self.db()?
            .prepare(statement.sql)
            .bind(&params)
            .map_err(|e| db_error("bind", &e))
    }
}

impl Database for D1 {
    async fn query(&self, statement: Statement) -> Result<Vec<Row>, BackendError> {
        let result = self
            .prepare(&statement)?
            .all()
            .await
            .map_err(|e| db_error("query", &e))?;
        let rows: Vec<serde_json::Map<String, Value>> =
            result.results().map_err(|e| db_error("decode rows", &e))?;
        Ok(rows
            .into_iter()
            .map(|row| Row(row.into_iter().map(|(k, v)| (k, from_json(v))).collect()))
            .collect())
    }

    async fn execute(&self, statement: Statement) -> Result<u64, BackendError> {
        let result = self
            .prepare(&statement)?
            .run()
            .await
            .map_err(|e| db_error("execute", &e))?;
        changes(&result)
    }

    async fn batch(&self, statements: Vec<Statement>) -> Result<Vec<u64>, BackendError> {
        let prepared = statements
            .iter()
            .map(|s| self.prepare(s))
            .collect::<Result<Vec<_>, _>>()?;
        let results = self
            .db()?
            .batch(prepared)
            .await
            .map_err(|e| db_error("batch", &e))?;
        results.iter().map(changes).collect()
    }
}

fn changes(result: &worker::D1Result) -> Result<u64, BackendError> {
    if let Some(error) = result.error() {
        return Err(BackendError::Database(error));
    }
    let meta = result.meta().map_err(|e| db_error("meta", &e))?;
    Ok(meta.and_then(|m| m.changes).unwrap_or(0) as u64)
}
