//! Signing-key rotation and the published lifetime of retired keys.
//!
//! Exactly one key is current and signs new access tokens. Rotating retires it and makes a new one
//! current; the retired key stays in the JWKS for [`overlap_seconds`] (`ACCESS_TOKEN_TTL` plus the
//! verification leeway), by which time every token it signed has expired, and scheduled upkeep then
//! deletes its row. Private keys are never stored: a new row holds only the public half and a
//! random salt (see [`crate::tokens`]).
//!
//! Rotation is ONE batch (D1 has no interactive transactions): retire the current key *if it is still
//! the one the rotator saw*, then insert the new key *only if no current key exists*. Two concurrent
//! rotations that saw the same key therefore end with exactly one current key: the first batch retires
//! it and inserts its key; the second retires nothing and inserts nothing, and both report the key
//! that is current afterwards.

use serde_json::{json, Value};

use crate::app::App;
use crate::config::Config;
use crate::store::{BackendError, Database, FlagStore, Row};
use crate::time::rfc3339;
use crate::tokens::LEEWAY_SECONDS;
use crate::{stmt, ORG_ID};

/// Upper bound of the JWKS `max-age`: verifiers pick up a new key within five minutes even without
/// refetching on an unknown `kid`.
pub const JWKS_MAX_AGE_CAP: i64 = 300;

/// How long a retired key stays published: every token it signed has expired by then.
pub fn overlap_seconds(config: &Config) -> i64 {
    config.access_token_ttl + LEEWAY_SECONDS
}

/// The JWKS `max-age`: never longer than the overlap, so no cache outlives a retired key's
/// publication by more than the overlap itself.
pub fn jwks_max_age(config: &Config) -> i64 {
    overlap_seconds(config).min(JWKS_MAX_AGE_CAP)
}

/// One row of `signing_keys`, public facts only (never the salt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// Key id (the JWT `kid`).
    pub kid: String,
    /// `current` or `retired`.
    pub status: String,
    /// The public key, base64url (the JWK `x`).
    pub public_key: String,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// When it stopped signing.
    pub retired_at: Option<i64>,
    /// Until when a retired key is published.
    pub publish_until: Option<i64>,
}

impl SigningKeyRecord {
    fn from_row(row: &Row) -> Result<Self, BackendError> {
        Ok(SigningKeyRecord {
            kid: row.text("kid")?,
            status: row.text("status")?,
            public_key: row.text("public_key")?,
            created_at: row.int("created_at")?,
            retired_at: row.opt_int("retired_at")?,
            publish_until: row.opt_int("publish_until")?,
        })
    }

    /// The API form: `{"kid","status","x","created_at","retired_at","publish_until"}`.
    pub fn to_json(&self) -> Value {
        json!({
            "kid": self.kid,
            "status": self.status,
            "x": self.public_key,
            "created_at": rfc3339(self.created_at),
            "retired_at": self.retired_at.map(rfc3339),
            "publish_until": self.publish_until.map(rfc3339),
        })
    }
}

macro_rules! select_keys {
    ($where:literal) => {
        concat!(
            "SELECT kid, status, public_key, created_at, retired_at, publish_until \
             FROM signing_keys ",
            $where
        )
    };
}

/// Every key row, newest first (retired keys until upkeep deletes them).
pub async fn list<D: Database>(db: &D) -> Result<Vec<SigningKeyRecord>, BackendError> {
    db.query(stmt!(
        select_keys!("WHERE org_id = ?1 ORDER BY created_at DESC, kid"),
        ORG_ID
    ))
    .await?
    .iter()
    .map(SigningKeyRecord::from_row)
    .collect()
}

/// The current key, if there is one.
pub async fn current<D: Database>(db: &D) -> Result<Option<SigningKeyRecord>, BackendError> {
    db.query_one(stmt!(
        select_keys!("WHERE org_id = ?1 AND status = 'current'"),
        ORG_ID
    ))
    .await?
    .as_ref()
    .map(SigningKeyRecord::from_row)
    .transpose()
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The key this rotation retired (`None` if another rotation had already retired it, or there
    /// was no current key).
    pub retired: Option<String>,
    /// Whether this rotation's new key became current (false: a concurrent rotation's did).
    pub created: bool,
    /// The current key afterwards.
    pub current: SigningKeyRecord,
}

/// Retires `expected_current` (the current key as the caller saw it; `None` if there was none) and
/// makes a new key current, in one batch. See the module documentation for why concurrent rotations
/// leave exactly one current key.
pub async fn rotate<D: Database, F: FlagStore>(
    app: &App<D, F>,
    expected_current: Option<&str>,
) -> Result<Rotation, BackendError> {
    let now = app.clock.now();
    let new =
        crate::tokens::new_signing_key(&app.config, app.random.as_ref(), app.ed25519.as_ref())
            .await?;
    let changes = app
        .db
        .batch(vec![
            stmt!(
                "UPDATE signing_keys SET status = 'retired', retired_at = ?1, publish_until = ?2 \
                 WHERE org_id = ?3 AND kid = ?4 AND status = 'current'",
                now,
                now + overlap_seconds(&app.config),
                ORG_ID,
                expected_current
            ),
            stmt!(
                "INSERT INTO signing_keys (kid, org_id, public_key, seed_salt, status, created_at) \
                 SELECT ?1, ?2, ?3, ?4, 'current', ?5 \
                 WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE org_id = ?2 AND status = 'current')",
                new.kid.clone(),
                ORG_ID,
                new.public_key,
                new.seed_salt,
                now
            ),
        ])
        .await?;
    // This isolate reads the keys afresh from now on (others within tokens::KEY_CACHE_SECONDS,
    // or at once for a token of the new key: see tokens::KeyCache).
    app.key_cache.clear();
    let retired = (changes.first() == Some(&1))
        .then(|| expected_current.map(str::to_owned))
        .flatten();
    let current = current(&app.db)
        .await?
        .ok_or_else(|| BackendError::Database("no current signing key after rotation".into()))?;
    Ok(Rotation {
        retired,
        created: changes.get(1) == Some(&1),
        current,
    })
}

/// Rotates when the current key is `SIGNING_KEY_ROTATION_SECONDS` old (or there is none). Returns
/// the rotation if one was attempted.
pub async fn rotate_if_due<D: Database, F: FlagStore>(
    app: &App<D, F>,
) -> Result<Option<Rotation>, BackendError> {
    let now = app.clock.now();
    let current = current(&app.db).await?;
    let due = current
        .as_ref()
        .is_none_or(|k| k.created_at + app.config.signing_key_rotation_seconds <= now);
    if !due {
        return Ok(None);
    }
    Ok(Some(
        rotate(app, current.as_ref().map(|k| k.kid.as_str())).await?,
    ))
}
