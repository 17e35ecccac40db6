//! Host test support: real SQLite running the real migrations, an in-memory flag store (read
//! through the flag cache, as on the edge), a fixed clock, and an `App` wired from them. Both
//! stores can be told to fail.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use ed25519_compact::PublicKey;
use edgeauth::app::App;
use edgeauth::config::Config;
use edgeauth::crypto::Secret;
use edgeauth::flag_cache::{CachedFlags, FlagCache};
use edgeauth::http::{HttpRequest, HttpResponse, Method};
use edgeauth::rate_limits::MemoryIpLimiter;
use edgeauth::signatures::{Ed25519Backend, PrivateKey, PureEd25519, SIGNATURE_BYTES};
use edgeauth::store::{BackendError, Clock, Database, FlagStore, Random, Row, SqlValue, Statement};
use edgeauth::tokens::{verify_access_token, KeyRing, TokenError, VerifiedAccess};
use rusqlite::types::{Value as SqliteValue, ValueRef};
use rusqlite::Connection;
use serde_json::{json, Value};

/// 2026-01-15T10:00:00Z: tests run at a fixed time.
pub const T0: i64 = 1_768_471_200;
pub const PUBLIC_URL: &str = "https://auth.example.test";
pub const SIGNING_SECRET: &str = "test-signing-secret-0123456789abcdef0123456789abcdef";
pub const BOOTSTRAP_TOKEN: &str = "test-bootstrap-token-0123456789";
pub const ADMIN_EMAIL: &str = "admin@example.test";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// SQLite with every migration applied, as D1 would have it.
pub struct Sqlite {
    conn: RefCell<Connection>,
    /// When set, every call fails as if the database were down.
    pub fail: Cell<bool>,
    /// When set, every call first yields to the executor once, so concurrent futures interleave
    /// between statements the way concurrent Worker requests do.
    pub interleave: Cell<bool>,
    /// The SQL of every round trip so far (a batch is one, its statements joined by ` ; `), to
    /// compare the work two requests do.
    pub round_trips: RefCell<Vec<String>>,
}

impl Sqlite {
    pub fn migrated() -> Self {
        let conn = Connection::open_in_memory().expect("open sqlite");
        // D1 enforces foreign keys; SQLite needs asking.
        conn.execute_batch("PRAGMA foreign_keys = ON;").unwrap();
        let mut files: Vec<_> =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "sql"))
                .collect();
        files.sort();
        assert!(!files.is_empty(), "no migrations found");
        for file in files {
            let sql = std::fs::read_to_string(&file).unwrap();
            conn.execute_batch(&sql)
                .unwrap_or_else(|e| panic!("migration {} failed: {e}", file.display()));
        }
        Sqlite {
            conn: RefCell::new(conn),
            fail: Cell::new(false),
            interleave: Cell::new(false),
            round_trips: RefCell::new(Vec::new()),
        }
    }

    async fn gate(&self, sql: String) -> Result<(), BackendError> {
        self.round_trips.borrow_mut().push(sql);
        if self.interleave.get() {
            YieldOnce(false).await;
        }
        if self.fail.get() {
            return Err(BackendError::Database("injected failure".into()));
        }
        Ok(())
    }

    /// Runs a query directly (assertions on stored state).
    pub fn rows(&self, sql: &str, params: &[SqlValue]) -> Vec<Row> {
        run_query(&self.conn.borrow(), sql, params).unwrap()
    }
}

fn to_sqlite(value: &SqlValue) -> SqliteValue {
    match value {
        SqlValue::Null => SqliteValue::Null,
        SqlValue::Integer(i) => SqliteValue::Integer(*i),
        SqlValue::Real(f) => SqliteValue::Real(*f),
        SqlValue::Text(s) => SqliteValue::Text(s.clone()),
    }
}

fn run_query(conn: &Connection, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, BackendError> {
    let err = |e: rusqlite::Error| BackendError::Database(e.to_string());
    let mut stmt = conn.prepare(sql).map_err(err)?;
    let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params.iter().map(to_sqlite)))
        .map_err(err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(err)? {
        let mut map = HashMap::new();
        for (i, name) in names.iter().enumerate() {
            let value = match row.get_ref(i).map_err(err)? {
                ValueRef::Null => SqlValue::Null,
                ValueRef::Integer(v) => SqlValue::Integer(v),
                ValueRef::Real(v) => SqlValue::Real(v),
                ValueRef::Text(t) | ValueRef::Blob(t) => {
                    SqlValue::Text(String::from_utf8_lossy(t).into_owned())
                }
            };
            map.insert(name.clone(), value);
        }
        out.push(Row(map));
    }
    Ok(out)
}

impl Database for Sqlite {
    async fn query(&self, statement: Statement) -> Result<Vec<Row>, BackendError> {
        self.gate(statement.sql.to_owned()).await?;
        run_query(&self.conn.borrow(), statement.sql, &statement.params)
    }

    async fn execute(&self, statement: Statement) -> Result<u64, BackendError> {
        self.gate(statement.sql.to_owned()).await?;
        let conn = self.conn.borrow();
        let changed = conn
            .execute(
                statement.sql,
                rusqlite::params_from_iter(statement.params.iter().map(to_sqlite)),
            )
            .map_err(|e| BackendError::Database(e.to_string()))?;
        Ok(changed as u64)
    }

    async fn batch(&self, statements: Vec<Statement>) -> Result<Vec<u64>, BackendError> {
        let sql: Vec<&str> = statements.iter().map(|s| s.sql).collect();
        self.gate(sql.join(" ; ")).await?;
        let mut conn = self.conn.borrow_mut();
        let err = |e: rusqlite::Error| BackendError::Database(e.to_string());
        // D1 runs a batch as one transaction: all or nothing.
        let tx = conn.transaction().map_err(err)?;
        let mut changes = Vec::with_capacity(statements.len());
        for s in &statements {
            let n = tx
                .execute(
                    s.sql,
                    rusqlite::params_from_iter(s.params.iter().map(to_sqlite)),
                )
                .map_err(err)?;
            changes.push(n as u64);
        }
        tx.commit().map_err(err)?;
        Ok(changes)
    }
}

/// Yields to the executor once.
#[derive(Default)]
pub struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// KV stand-in: values with the TTL they were written with.
#[derive(Default)]
pub struct MemoryFlags {
    pub values: RefCell<HashMap<String, (String, u64)>>,
    pub fail: Cell<bool>,
    /// How many reads reached this store (failed ones included).
    pub reads: Cell<u64>,
    /// When set, a read takes its value at once but yields to the executor once before answering,
    /// like a KV read whose answer is still on its way while other requests run.
    pub interleave: Cell<bool>,
}

impl FlagStore for MemoryFlags {
    async fn get(&self, key: &str) -> Result<Option<String>, BackendError> {
        self.reads.set(self.reads.get() + 1);
        if self.fail.get() {
            return Err(BackendError::Flags("injected failure".into()));
        }
        let value = self.values.borrow().get(key).map(|(v, _)| v.clone());
        if self.interleave.get() {
            YieldOnce(false).await;
        }
        Ok(value)
    }

    async fn put(&self, key: &str, value: &str, ttl_seconds: u64) -> Result<(), BackendError> {
        if self.fail.get() {
            return Err(BackendError::Flags("injected failure".into()));
        }
        self.values
            .borrow_mut()
            .insert(key.to_owned(), (value.to_owned(), ttl_seconds));
        Ok(())
    }
}

/// A clock the test moves by hand.
#[derive(Clone)]
pub struct TestClock(pub Rc<Cell<i64>>);

impl TestClock {
    pub fn advance(&self, seconds: i64) {
        self.0.set(self.0.get() + seconds);
    }
    pub fn now(&self) -> i64 {
        self.0.get()
    }
}

impl Clock for TestClock {
    fn now(&self) -> i64 {
        self.0.get()
    }
}

/// The operating system's randomness.
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), BackendError> {
        getrandom::fill(buf).map_err(|e| BackendError::Random(e.to_string()))
    }
}

/// The app as the edge builds it: flags read through a per-app [`FlagCache`] over [`MemoryFlags`]
/// (`app.flags.inner()` is the store itself, as another isolate would see it).
pub type TestApp = App<Sqlite, CachedFlags<MemoryFlags>>;

/// [`MemoryFlags`] behind a fresh cache of `ttl_seconds`, timed by `clock`.
pub fn cached_flags(clock: &TestClock, ttl_seconds: i64) -> CachedFlags<MemoryFlags> {
    CachedFlags::new(
        MemoryFlags::default(),
        Rc::new(FlagCache::default()),
        Box::new(clock.clone()),
        ttl_seconds,
    )
}

/// Test configuration; `overrides` replace the defaults. PBKDF2 runs at the crate's minimum of
/// 1000 iterations so tests stay fast; the iteration count itself is tested separately.
pub fn config(overrides: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<&str, &str> = HashMap::from([
        ("PUBLIC_URL", PUBLIC_URL),
        ("SIGNING_SECRET", SIGNING_SECRET),
        ("BOOTSTRAP_TOKEN", BOOTSTRAP_TOKEN),
        ("PBKDF2_ITERATIONS", "1000"),
    ]);
    vars.extend(overrides.iter().copied());
    Config::from_lookup(|name| vars.get(name).map(|v| (*v).to_owned())).expect("valid test config")
}

/// A fresh app over fresh SQLite at time [`T0`].
pub fn app(overrides: &[(&str, &str)]) -> (TestApp, TestClock) {
    let clock = TestClock(Rc::new(Cell::new(T0)));
    let config = config(overrides);
    let app = App {
        db: Sqlite::migrated(),
        flags: cached_flags(&clock, config.flag_cache_seconds),
        clock: Box::new(clock.clone()),
        random: Box::new(OsRandom),
        config,
        outbox: Default::default(),
        ip_limiter: Box::new(MemoryIpLimiter::default()),
        ed25519: Box::new(PureEd25519),
        key_cache: Default::default(),
    };
    (app, clock)
}

pub fn block_on<F: Future>(future: F) -> F::Output {
    futures::executor::block_on(future)
}

/// The server's verification of `token` against `ring` at `now`, with `app`'s configuration and
/// Ed25519 backend (the outer error is the backend's, the inner one the token's refusal).
pub fn verify_token(
    app: &TestApp,
    ring: &KeyRing,
    token: &str,
    now: i64,
) -> Result<Result<VerifiedAccess, TokenError>, BackendError> {
    block_on(verify_access_token(
        token,
        ring,
        &app.config,
        now,
        app.ed25519.as_ref(),
    ))
}

/// Sends a request; returns status and JSON body.
pub fn send(app: &TestApp, request: HttpRequest) -> HttpResponse {
    block_on(app.handle(&request))
}

pub fn post(path: &str, body: Value) -> HttpRequest {
    HttpRequest::new(Method::Post, path).json(&body)
}

/// Bootstraps the first admin; returns the bootstrap response body.
pub fn bootstrap(app: &TestApp) -> Value {
    let response = send(
        app,
        post(
            "/v1/bootstrap",
            json!({ "token": BOOTSTRAP_TOKEN, "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }),
        ),
    );
    assert_eq!(
        response.status,
        201,
        "bootstrap: {:?}",
        response.json_value()
    );
    response.json_value()
}

/// Logs the admin in in token mode; returns the body (access_token, refresh_token, session_id...).
pub fn login_token_mode(app: &TestApp) -> Value {
    let response = send(
        app,
        post(
            "/v1/auth/login",
            json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "session": "token" }),
        ),
    );
    assert_eq!(response.status, 200, "login: {:?}", response.json_value());
    response.json_value()
}

/// `POST /v1/auth/refresh` with a refresh token in the body.
pub fn refresh(app: &TestApp, refresh_token: &str) -> HttpResponse {
    send(
        app,
        post(
            "/v1/auth/refresh",
            json!({ "refresh_token": refresh_token }),
        ),
    )
}

/// Whether `/v1/verify` reports the token active.
pub fn is_active(app: &TestApp, token: &str) -> bool {
    let response = send(app, post("/v1/verify", json!({ "token": token })));
    assert_eq!(response.status, 200);
    response.json_value()["active"] == json!(true)
}

/// The exact body every authentication failure carries.
pub fn auth_failure_body() -> Value {
    json!({ "error": { "code": "auth_failure", "message": "authentication failed" } })
}

/// A string field of a JSON body (panics with the field's name if absent).
pub fn text(body: &Value, field: &str) -> String {
    body[field]
        .as_str()
        .unwrap_or_else(|| panic!("`{field}` missing in {body}"))
        .to_owned()
}

/// Refreshes `refresh_token`, asserting success; returns the rotated token.
pub fn rotate(app: &TestApp, refresh_token: &str) -> String {
    let response = refresh(app, refresh_token);
    assert_eq!(response.status, 200, "refresh: {:?}", response.json_value());
    text(&response.json_value(), "refresh_token")
}

/// Inserts an active user with a password (at 1000 iterations) straight into the database and returns
/// its id: for tests that need users without going through the admin API.
pub fn insert_user(app: &TestApp, email: &str, password: &str, org_admin: bool) -> String {
    let id = format!("user-{email}");
    let phc = edgeauth::passwords::hash(password, b"0123456789abcdef", 1000).unwrap();
    block_on(app.db.batch(vec![
        edgeauth::stmt!(
            "INSERT INTO users (id, org_id, email, name, status, org_admin, created_at, updated_at) \
             VALUES (?1, 'default', ?2, '', 'active', ?3, ?4, ?4)",
            id.clone(),
            email,
            org_admin,
            T0
        ),
        edgeauth::stmt!(
            "INSERT INTO password_credentials (user_id, org_id, phc, updated_at) VALUES (?1, 'default', ?2, ?3)",
            id.clone(),
            phc,
            T0
        ),
    ]))
    .unwrap();
    id
}

/// Inserts a workspace (active unless `disabled`) and returns its id.
pub fn insert_workspace(app: &TestApp, name: &str, disabled: bool) -> String {
    let id = format!("ws-{name}");
    block_on(app.db.execute(edgeauth::stmt!(
        "INSERT INTO workspaces (id, org_id, name, status, created_at, updated_at) VALUES (?1, 'default', ?2, ?3, ?4, ?4)",
        id.clone(),
        name,
        if disabled { "disabled" } else { "active" },
        T0
    )))
    .unwrap();
    id
}

/// Gives `user_id` `role` in `workspace_id`.
pub fn insert_membership(app: &TestApp, workspace_id: &str, user_id: &str, role: &str) {
    block_on(app.db.execute(edgeauth::stmt!(
        "INSERT INTO memberships (org_id, workspace_id, user_id, role, created_at) VALUES ('default', ?1, ?2, ?3, ?4)",
        workspace_id,
        user_id,
        role,
        T0
    )))
    .unwrap();
}

/// Logs `email` in (token mode) and returns the access token.
pub fn access_token_for(
    app: &TestApp,
    email: &str,
    password: &str,
    workspace: Option<&str>,
) -> String {
    let mut body = json!({ "email": email, "password": password, "session": "token" });
    if let Some(ws) = workspace {
        body["workspace"] = json!(ws);
    }
    let response = send(app, post("/v1/auth/login", body));
    assert_eq!(
        response.status,
        200,
        "login {email}: {:?}",
        response.json_value()
    );
    text(&response.json_value(), "access_token")
}

/// A request with a Bearer credential.
pub fn with_bearer(request: HttpRequest, credential: &str) -> HttpRequest {
    request.header("authorization", &format!("Bearer {credential}"))
}

/// What a [`Scripted`] backend answers to `verify` (signing and derivation stay the real pure-Rust
/// ones).
#[derive(Clone, Copy)]
pub enum Verdict {
    Real,
    Refuse,
    Fail,
}

/// The host backend with `verify` overridden, counting the checks it is asked for.
pub struct Scripted {
    pub verdict: Verdict,
    pub checks: Rc<Cell<u32>>,
}

impl Ed25519Backend for Scripted {
    async fn public_key(&self, seed: &Secret) -> Result<PublicKey, BackendError> {
        PureEd25519.public_key(seed).await
    }
    async fn sign(
        &self,
        key: &PrivateKey,
        message: &[u8],
    ) -> Result<[u8; SIGNATURE_BYTES], BackendError> {
        PureEd25519.sign(key, message).await
    }
    async fn verify(
        &self,
        kid: &str,
        public_key: &PublicKey,
        message: &[u8],
        signature: &[u8; SIGNATURE_BYTES],
    ) -> Result<bool, BackendError> {
        self.checks.set(self.checks.get() + 1);
        match self.verdict {
            Verdict::Real => {
                PureEd25519
                    .verify(kid, public_key, message, signature)
                    .await
            }
            Verdict::Refuse => Ok(false),
            Verdict::Fail => Err(BackendError::Decode("WebCrypto is gone".into())),
        }
    }
}
