//! Timestamps: unix seconds inside, RFC 3339 in UTC on the wire.

use chrono::{DateTime, SecondsFormat, Utc};

/// Formats unix seconds as RFC 3339 UTC (`2026-11-22T10:00:00Z`).
pub fn rfc3339(unix_seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix_seconds, 0)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses an RFC 3339 timestamp into unix seconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|d| d.timestamp())
}

/// The age from which a read kept for `lifetime` is renewed early: its last fifth. One request
/// renews it then while the others keep using it (the flag cache and the key ring, in whatever unit
/// their lifetime is counted).
pub fn renewal_age(lifetime: i64) -> i64 {
    lifetime - lifetime / 5
}

/// Unix seconds as a chrono time (for JWT claims).
pub fn to_datetime(unix_seconds: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(unix_seconds, 0).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}
