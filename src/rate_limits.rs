//! Fixed-window counters in the `rate_limits` table, for limits that must hold across isolates and
//! locations (D1 is the one place every request sees).
//!
//! A hit is ONE upsert that opens a new window when the old one has ended and otherwise adds one,
//! returning the count: no read-then-write window, so concurrent hits are all counted.

use crate::app::App;
use crate::crypto::sha256_hex;
use crate::store::{BackendError, Database, FlagStore};
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
            "INSERT INTO rate_limits (key, org_id, window_start, count, expires_at) \
             VALUES (?1, ?2, ?3, 1, ?3 + ?4) \
             ON CONFLICT (key) DO UPDATE SET \
               count = CASE WHEN rate_limits.window_start + ?4 <= ?3 THEN 1 \
                            ELSE rate_limits.count + 1 END, \
               window_start = CASE WHEN rate_limits.window_start + ?4 <= ?3 THEN ?3 \
                                   ELSE rate_limits.window_start END, \
               expires_at = CASE WHEN rate_limits.window_start + ?4 <= ?3 THEN ?3 + ?4 \
                                 ELSE rate_limits.expires_at END \
             RETURNING count",
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
