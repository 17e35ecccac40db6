//! Scheduled upkeep (the cron trigger, every 30 minutes): rotates the signing key when it is due and
//! deletes what can no longer matter. Each run is recorded as one `upkeep` audit event (actor
//! `system`) with its counts; a failed run is recorded as a failure and reported as an error, never
//! as success.
//!
//! What is deleted, and what is kept on purpose:
//! - retired signing keys whose `publish_until` has passed (every token they signed has expired);
//! - sessions once no access token of theirs can still be valid: a session's last token was issued
//!   before it ended (idle expiry, absolute expiry or revocation, whichever came first), so the row
//!   goes `ACCESS_TOKEN_TTL + LEEWAY` after that end. Until then it is kept: "log out everywhere"
//!   and password changes find a session's row to write its revocation flag, even for a session
//!   that has just expired but whose last access token still works;
//! - magic-link attempts past their expiry (consumed or not: neither can be used any more);
//! - rate-limit rows whose window has ended, unless they carry a lockout still in force;
//! - audit events older than `AUDIT_RETENTION_DAYS`.
//!
//! Deletes run in chunks of [`CHUNK`] rows (at most [`MAX_CHUNKS`] per table per run), so a large
//! backlog never turns into one long D1 statement; what is left goes in the next run.

use std::fmt;

use serde_json::{json, Value};

use crate::app::{App, RequestMeta};
use crate::audit::{self, Actor, AuditEvent, Outcome};
use crate::signing_keys;
use crate::store::{BackendError, Database, FlagStore, Statement};
use crate::{stmt, ORG_ID};

/// Rows deleted per statement.
pub const CHUNK: i64 = 1000;
/// Statements per table per run.
pub const MAX_CHUNKS: usize = 20;

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpkeepReport {
    /// The new current key, if this run rotated.
    pub rotated_to: Option<String>,
    /// Retired keys deleted after their publication ended.
    pub signing_keys_deleted: u64,
    /// Ended sessions deleted.
    pub sessions_deleted: u64,
    /// Expired magic-link attempts deleted.
    pub magic_link_attempts_deleted: u64,
    /// Ended rate-limit windows deleted.
    pub rate_limits_deleted: u64,
    /// Audit events past the retention deleted.
    pub audit_events_deleted: u64,
}

impl UpkeepReport {
    /// The audit detail (and log line) of a run.
    pub fn to_json(&self) -> Value {
        json!({
            "rotated_to": self.rotated_to,
            "signing_keys_deleted": self.signing_keys_deleted,
            "sessions_deleted": self.sessions_deleted,
            "magic_link_attempts_deleted": self.magic_link_attempts_deleted,
            "rate_limits_deleted": self.rate_limits_deleted,
            "audit_events_deleted": self.audit_events_deleted,
        })
    }
}

impl fmt::Display for UpkeepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

/// A failed run: the step that failed and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpkeepError {
    /// `rotate`, `signing_keys`, `sessions`, `magic_link_attempts`, `rate_limits`, `audit_events`
    /// or `audit` (recording the run).
    pub step: &'static str,
    /// The cause.
    pub source: BackendError,
    /// What was done before the failure.
    pub partial: UpkeepReport,
}

impl fmt::Display for UpkeepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "upkeep failed at {}: {} (done before: {})",
            self.step, self.source, self.partial
        )
    }
}

impl std::error::Error for UpkeepError {}

/// Runs upkeep once at the app's clock.
pub async fn run<D: Database, F: FlagStore>(app: &App<D, F>) -> Result<UpkeepReport, UpkeepError> {
    let mut report = UpkeepReport::default();
    match steps(app, &mut report).await {
        Ok(()) => {}
        Err((step, source)) => {
            // Best effort: the database may be what failed.
            let _ = record(app, Outcome::Failure, &report, Some(step)).await;
            return Err(UpkeepError {
                step,
                source,
                partial: report,
            });
        }
    }
    record(app, Outcome::Success, &report, None)
        .await
        .map_err(|source| UpkeepError {
            step: "audit",
            source,
            partial: report.clone(),
        })?;
    Ok(report)
}

async fn steps<D: Database, F: FlagStore>(
    app: &App<D, F>,
    report: &mut UpkeepReport,
) -> Result<(), (&'static str, BackendError)> {
    let now = app.clock.now();
    // Rotate before pruning: the key retired now is published until `now + overlap`.
    let rotation = signing_keys::rotate_if_due(app)
        .await
        .map_err(|e| ("rotate", e))?;
    report.rotated_to = rotation.filter(|r| r.created).map(|r| r.current.kid);

    report.signing_keys_deleted = delete_chunked(
        &app.db,
        stmt!(
            "DELETE FROM signing_keys WHERE rowid IN (SELECT rowid FROM signing_keys \
             WHERE org_id = ?1 AND status = 'retired' AND publish_until <= ?2 LIMIT ?3)",
            ORG_ID,
            now,
            CHUNK
        ),
    )
    .await
    .map_err(|e| ("signing_keys", e))?;

    // A session ended at the earliest of its idle expiry, absolute expiry and revocation; its last
    // access token expires at most an overlap later.
    let session_cutoff = now - signing_keys::overlap_seconds(&app.config);
    report.sessions_deleted = delete_chunked(
        &app.db,
        stmt!(
            "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions \
             WHERE org_id = ?1 AND (expires_at <= ?2 OR absolute_expires_at <= ?2 \
                                    OR revoked_at <= ?2) LIMIT ?3)",
            ORG_ID,
            session_cutoff,
            CHUNK
        ),
    )
    .await
    .map_err(|e| ("sessions", e))?;

    report.magic_link_attempts_deleted = delete_chunked(
        &app.db,
        stmt!(
            "DELETE FROM magic_link_attempts WHERE rowid IN (SELECT rowid FROM magic_link_attempts \
             WHERE org_id = ?1 AND expires_at <= ?2 LIMIT ?3)",
            ORG_ID,
            now,
            CHUNK
        ),
    )
    .await
    .map_err(|e| ("magic_link_attempts", e))?;

    report.rate_limits_deleted = delete_chunked(
        &app.db,
        stmt!(
            "DELETE FROM rate_limits WHERE rowid IN (SELECT rowid FROM rate_limits \
             WHERE org_id = ?1 AND expires_at <= ?2 \
               AND (locked_until IS NULL OR locked_until <= ?2) LIMIT ?3)",
            ORG_ID,
            now,
            CHUNK
        ),
    )
    .await
    .map_err(|e| ("rate_limits", e))?;

    let audit_cutoff = now - app.config.audit_retention_days * 86_400;
    report.audit_events_deleted = delete_chunked(
        &app.db,
        stmt!(
            "DELETE FROM audit_events WHERE rowid IN (SELECT rowid FROM audit_events \
             WHERE org_id = ?1 AND occurred_at < ?2 LIMIT ?3)",
            ORG_ID,
            audit_cutoff,
            CHUNK
        ),
    )
    .await
    .map_err(|e| ("audit_events", e))?;
    Ok(())
}

/// Runs a `DELETE ... LIMIT CHUNK` statement until it deletes less than a chunk (or
/// [`MAX_CHUNKS`] times); returns the rows deleted.
async fn delete_chunked<D: Database>(db: &D, statement: Statement) -> Result<u64, BackendError> {
    let mut total = 0;
    for _ in 0..MAX_CHUNKS {
        let deleted = db.execute(statement.clone()).await?;
        total += deleted;
        if deleted < CHUNK.unsigned_abs() {
            break;
        }
    }
    Ok(total)
}

async fn record<D: Database, F: FlagStore>(
    app: &App<D, F>,
    outcome: Outcome,
    report: &UpkeepReport,
    failed_step: Option<&str>,
) -> Result<(), BackendError> {
    let mut detail = report.to_json();
    if let Some(step) = failed_step {
        detail["failed_step"] = json!(step);
    }
    audit::record(
        app,
        &RequestMeta::default(),
        AuditEvent {
            action: "upkeep",
            outcome,
            actor: Actor::System,
            target: None,
            detail: Some(detail),
        },
    )
    .await
}
