//! Fixed-window counters in the `rate_limits` table, for limits that must hold across isolates and
//! locations (D1 is the one place every request sees).
//!
//! Also the per-account login lockout (exact and global, so in D1) and the per-IP limits (coarse,
//! through the [`IpLimiter`] port: the Workers Rate Limiting binding on the edge).
//!
//! A hit is ONE upsert that opens a new window when the old one has ended and otherwise adds one,
//! returning the count: no read-then-write window, so concurrent hits are all counted.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use crate::app::App;
use crate::crypto::sha256_hex;
use crate::error::ApiError;
use crate::http::HttpRequest;
use crate::store::{BackendError, Database, FlagStore, Statement};
use crate::{stmt, ORG_ID};

/// A limit: at most `max` hits per `window_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Hits allowed per window.
    pub max: i64,
    /// Window length, seconds.
    pub window_seconds: i64,
}

/// Mails to one address: five per 15 minutes (sign-in links, confirmations and "already registered"
/// mails together), enough for a user who mistyped twice, too few to flood a mailbox.
pub const MAIL_PER_ADDRESS: Limit = Limit {
    max: 5,
    window_seconds: 15 * 60,
};

/// The counter key for `scope` and `subject`. The subject is hashed so that the table holds no
/// addresses or IPs, only counts.
pub fn key(scope: &str, subject: &str) -> String {
    format!("{scope}:{}", sha256_hex(subject.as_bytes()))
}

/// The upsert that counts one hit: `?1` key, `?2` org, `?3` now, `?4` window seconds.
macro_rules! hit_upsert {
    () => {
        "INSERT INTO rate_limits (key, org_id, window_start, count, expires_at) \
         VALUES (?1, ?2, ?3, 1, ?3 + ?4) \
         ON CONFLICT (key) DO UPDATE SET \
           count = CASE WHEN rate_limits.window_start + ?4 <= ?3 THEN 1 \
                        ELSE rate_limits.count + 1 END, \
           window_start = CASE WHEN rate_limits.window_start + ?4 <= ?3 THEN ?3 \
                               ELSE rate_limits.window_start END, \
           expires_at = CASE WHEN rate_limits.window_start + ?4 <= ?3 THEN ?3 + ?4 \
                             ELSE rate_limits.expires_at END"
    };
}

/// Counts one hit on `key` and says whether it is within `limit`. Hits beyond the limit are counted
/// too, so hammering does not open the next window early.
pub async fn hit<D: Database, F: FlagStore>(
    app: &App<D, F>,
    key: &str,
    limit: Limit,
) -> Result<bool, BackendError> {
    let now = app.clock.now();
    let row = app
        .db
        .query_one(stmt!(
            concat!(hit_upsert!(), " RETURNING count"),
            key,
            ORG_ID,
            now,
            limit.window_seconds
        ))
        .await?;
    let count = match row {
        Some(row) => row.int("count")?,
        None => {
            return Err(BackendError::Database(
                "rate-limit upsert returned no row".into(),
            ))
        }
    };
    Ok(count <= limit.max)
}

/// [`hit`] as a statement, to batch the count with the work it guards: a later statement of the
/// same batch tests `(SELECT count FROM rate_limits WHERE key = ?) <= max`.
pub fn hit_statement(key: &str, limit: Limit, now: i64) -> Statement {
    stmt!(hit_upsert!(), key, ORG_ID, now, limit.window_seconds)
}

// ---- Per-account lockout -------------------------------------------------------------------------

/// Consecutive password attempts on one identifier that pass before the lockout starts.
pub const LOCKOUT_FREE_ATTEMPTS: i64 = 4;
/// The lock after the first counted failure beyond the free ones (the 5th), seconds; each further
/// failure doubles it.
pub const LOCKOUT_BASE_SECONDS: i64 = 15;
/// The longest lock, seconds.
pub const LOCKOUT_MAX_SECONDS: i64 = 3600;
/// A run of failures is forgotten after this long without an attempt, seconds (also how long the
/// row lives). Longer than [`LOCKOUT_MAX_SECONDS`], so waiting out a lock never resets the count.
pub const LOCKOUT_MEMORY_SECONDS: i64 = 86_400;
/// The most password checks one identifier can get in any hour: 5 at once, then one after each
/// lock of 15, 30, 60, 120, 240, 480 and 960 s (t = 0, 15, 45, 105, 225, 465, 945, 1905 s); the
/// next lock (1920 s) ends at 3825 s, past the hour. Proven with the fixed clock in tests/lockout.rs.
pub const LOCKOUT_MAX_CHECKS_PER_HOUR: i64 = 12;

/// What a login may do with an identifier (the normalised email or username the client typed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The password may be checked. The attempt is already counted as a failure (and the lock that
    /// failure earns is already set), so concurrent attempts cannot slip past the count; a
    /// successful check clears it with [`clear_lockout`].
    Check,
    /// Locked: the password must not be checked.
    Locked,
}

/// The lockout counter key of an identifier: `kind` is `email` or `username`. Unknown identifiers
/// get a counter exactly like known ones, so the lock says nothing about whether an account exists.
pub fn lockout_key(kind: &str, identifier: &str) -> String {
    key(&format!("lockout:{kind}"), identifier)
}

/// Admits one password attempt on `key`, or refuses it while the key is locked. One conditional
/// upsert (D1 serialises writes): an admitted attempt counts itself and sets the lock the failure
/// would earn before the password is even checked, so of any number of concurrent attempts exactly
/// as many are admitted as the backoff allows. An attempt refused while locked changes nothing (it
/// neither counts nor extends the lock: no password was checked).
///
/// The `n`th consecutive admitted attempt (n > [`LOCKOUT_FREE_ATTEMPTS`]) locks the key for
/// `LOCKOUT_BASE_SECONDS * 2^(n - 5)`, at most [`LOCKOUT_MAX_SECONDS`].
pub async fn admit_login<D: Database, F: FlagStore>(
    app: &App<D, F>,
    key: &str,
) -> Result<Admission, BackendError> {
    let now = app.clock.now();
    // `n` below is the attempt's number in the run: 1 if the run was forgotten, else count + 1.
    // The shift is capped at 8 (15 << 8 > 3600), so a long run never overflows.
    let row = app
        .db
        .query_one(stmt!(
            "INSERT INTO rate_limits (key, org_id, window_start, count, locked_until, expires_at) \
             VALUES (?1, ?2, ?3, 1, CASE WHEN 1 > ?4 THEN ?3 + ?5 ELSE NULL END, ?3 + ?7) \
             ON CONFLICT (key) DO UPDATE SET \
               count = CASE WHEN rate_limits.expires_at <= ?3 THEN 1 ELSE rate_limits.count + 1 END, \
               locked_until = CASE \
                 WHEN (CASE WHEN rate_limits.expires_at <= ?3 THEN 1 ELSE rate_limits.count + 1 END) > ?4 \
                 THEN ?3 + MIN(?6, ?5 << MIN(8, (CASE WHEN rate_limits.expires_at <= ?3 THEN 1 \
                                                 ELSE rate_limits.count + 1 END) - ?4 - 1)) \
                 ELSE NULL END, \
               window_start = ?3, \
               expires_at = ?3 + ?7 \
             WHERE rate_limits.locked_until IS NULL OR rate_limits.locked_until <= ?3 \
                OR rate_limits.expires_at <= ?3 \
             RETURNING count",
            key,
            ORG_ID,
            now,
            LOCKOUT_FREE_ATTEMPTS,
            LOCKOUT_BASE_SECONDS,
            LOCKOUT_MAX_SECONDS,
            LOCKOUT_MEMORY_SECONDS
        ))
        .await?;
    Ok(match row {
        Some(_) => Admission::Check,
        None => Admission::Locked,
    })
}

/// Ends the run of failures (and any lock) on `keys`: a successful password login, a successful
/// magic-link or code sign-in, an admin's password reset.
pub async fn clear_lockout<D: Database, F: FlagStore>(
    app: &App<D, F>,
    keys: &[String],
) -> Result<(), BackendError> {
    let statements = keys
        .iter()
        .map(|k| stmt!("DELETE FROM rate_limits WHERE key = ?1", k.clone()))
        .collect();
    app.db.batch(statements).await?;
    Ok(())
}

/// The lockout keys of a user: its email and, if it has one, its username (the two identifiers a
/// login can name it by).
pub fn lockout_keys_of(email: &str, username: Option<&str>) -> Vec<String> {
    let mut keys = vec![lockout_key("email", email)];
    if let Some(username) = username {
        keys.push(lockout_key("username", username));
    }
    keys
}

// ---- Per-IP limits -------------------------------------------------------------------------------

/// The routes with a per-IP limit. Each scope counts apart (`<scope>:<ip>`); scopes that share a
/// binding share its numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpScope {
    /// `POST /v1/auth/login`.
    Login,
    /// `POST /v1/auth/register`.
    Register,
    /// `POST /v1/auth/magic-link` (a mail per request).
    MagicLinkRequest,
    /// `POST /v1/auth/magic-link/verify` and `/code`.
    MagicLinkConfirm,
    /// `POST /v1/auth/refresh`.
    Refresh,
}

/// Name of the Rate Limiting binding for sign-in routes (wrangler.toml `[[ratelimits]]`).
pub const SIGN_IN_BINDING: &str = "IP_LIMIT_SIGN_IN";
/// Name of the Rate Limiting binding for refresh.
pub const REFRESH_BINDING: &str = "IP_LIMIT_REFRESH";

/// Sign-in routes per IP: 60 a minute. One a second sustained is far beyond what the people behind
/// one office NAT do (sessions last weeks; a login is a rare event), and it keeps one address from
/// turning PBKDF2 into a CPU bill or spraying passwords across accounts quickly. Must equal the
/// binding's `simple` in wrangler.toml.
pub const SIGN_IN_PER_IP: Limit = Limit {
    max: 60,
    window_seconds: 60,
};

/// Refreshes per IP: 600 a minute. Every live tab refreshes about once per access-token lifetime
/// (10 min), so 600/min covers some 6,000 open sessions behind one address; refresh costs an HMAC
/// and two D1 statements, so the limit is only a ceiling on abuse.
pub const REFRESH_PER_IP: Limit = Limit {
    max: 600,
    window_seconds: 60,
};

impl IpScope {
    /// The counter prefix.
    pub fn name(self) -> &'static str {
        match self {
            IpScope::Login => "login",
            IpScope::Register => "register",
            IpScope::MagicLinkRequest => "magic_request",
            IpScope::MagicLinkConfirm => "magic_confirm",
            IpScope::Refresh => "refresh",
        }
    }

    /// The binding that enforces it on the edge.
    pub fn binding(self) -> &'static str {
        match self {
            IpScope::Refresh => REFRESH_BINDING,
            _ => SIGN_IN_BINDING,
        }
    }

    /// Its numbers (those of its binding).
    pub fn limit(self) -> Limit {
        match self {
            IpScope::Refresh => REFRESH_PER_IP,
            _ => SIGN_IN_PER_IP,
        }
    }
}

/// Counts one request of an IP against a scope's limit. On the edge: the Workers Rate Limiting
/// binding (counted in the location's memory, no D1 write per request; see `edge::rate_limit`); in
/// host tests: [`MemoryIpLimiter`]. The error is for the log only.
pub trait IpLimiter {
    /// Counts a hit on `key` (`<scope>:<ip>`) and says whether it is within the scope's limit.
    fn allow<'a>(
        &'a self,
        scope: IpScope,
        key: &'a str,
        now: i64,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + 'a>>;
}

/// Fixed windows in memory, for host tests (same numbers as the bindings).
#[derive(Debug, Default)]
pub struct MemoryIpLimiter {
    windows: RefCell<HashMap<String, (i64, i64)>>,
    /// When set, every call fails as if the binding were unreachable.
    pub fail: Cell<bool>,
}

impl IpLimiter for MemoryIpLimiter {
    fn allow<'a>(
        &'a self,
        scope: IpScope,
        key: &'a str,
        now: i64,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + 'a>> {
        Box::pin(async move {
            if self.fail.get() {
                return Err("injected failure".into());
            }
            let limit = scope.limit();
            let mut windows = self.windows.borrow_mut();
            let entry = windows.entry(key.to_owned()).or_insert((now, 0));
            if entry.0 + limit.window_seconds <= now {
                *entry = (now, 0);
            }
            entry.1 += 1;
            Ok(entry.1 <= limit.max)
        })
    }
}

/// The per-IP check, before any expensive work: `429 rate_limited` with `Retry-After` (the
/// window's length: the binding does not say when its window ends) once the client's IP is over
/// the scope's limit. The IP is `CF-Connecting-IP` only; without one, every such request shares the
/// bucket `unknown`. A limiter that fails answers `503` (fail closed).
pub async fn check_ip<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    scope: IpScope,
) -> Result<(), ApiError> {
    let ip = request.client_ip().unwrap_or_else(|| "unknown".to_owned());
    let key = format!("{}:{ip}", scope.name());
    let allowed = app
        .ip_limiter
        .allow(scope, &key, app.clock.now())
        .await
        .map_err(|detail| ApiError::Unavailable {
            detail: format!("rate limiter {}: {detail}", scope.binding()),
        })?;
    if allowed {
        Ok(())
    } else {
        let retry_after = u64::try_from(scope.limit().window_seconds).unwrap_or(60);
        Err(ApiError::RateLimited { retry_after })
    }
}
