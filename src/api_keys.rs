//! API keys: `ea_` + 192 random bits (base64url), shown once, stored as SHA-256 with a display
//! prefix. Resolution checks D1 (the source of truth) and the KV flag, and writes `last_used_at`
//! at most once per [`LAST_USED_RESOLUTION`] per key rather than on every request.

use serde_json::{json, Value};

use crate::crypto::{b64url, random_array, sha256_hex};
use crate::flags;
use crate::store::{BackendError, Database, FlagStore, Random, Row};
use crate::time::rfc3339;
use crate::{stmt, ORG_ID};

/// Every API key starts with this, which is how a bearer credential is told apart from a JWT.
pub const KEY_PREFIX: &str = "ea_";
/// Characters of the key kept for display.
pub const DISPLAY_PREFIX_CHARS: usize = 11;
/// `last_used_at` is refreshed at most this often, seconds.
pub const LAST_USED_RESOLUTION: i64 = 300;
/// Longest string we try to resolve as a key.
const MAX_KEY_LEN: usize = 128;

/// A freshly generated key: the plaintext (shown once) and what is stored.
#[derive(Debug)]
pub struct GeneratedKey {
    /// The whole key; returned to the creator once and never stored.
    pub plaintext: String,
    /// Hex SHA-256 of the key.
    pub hash: String,
    /// The first characters, for display.
    pub prefix: String,
}

/// Generates a new key.
pub fn generate(random: &dyn Random) -> Result<GeneratedKey, BackendError> {
    let bytes: [u8; 24] = random_array(random)?;
    let plaintext = format!("{KEY_PREFIX}{}", b64url(&bytes));
    Ok(GeneratedKey {
        hash: sha256_hex(plaintext.as_bytes()),
        prefix: plaintext.chars().take(DISPLAY_PREFIX_CHARS).collect(),
        plaintext,
    })
}

/// A stored key's public facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Name given at creation.
    pub name: String,
    /// Display prefix.
    pub prefix: String,
    /// Workspace scope.
    pub workspace_id: Option<String>,
    /// Role ceiling.
    pub role: Option<String>,
    /// Expiry, unix seconds.
    pub expires_at: Option<i64>,
    /// Creation, unix seconds.
    pub created_at: i64,
    /// Last use (at [`LAST_USED_RESOLUTION`] granularity).
    pub last_used_at: Option<i64>,
}

impl ApiKey {
    fn from_row(row: &Row) -> Result<Self, BackendError> {
        Ok(ApiKey {
            id: row.text("id")?,
            user_id: row.text("user_id")?,
            name: row.text("name")?,
            prefix: row.text("prefix")?,
            workspace_id: row.opt_text("workspace_id")?,
            role: row.opt_text("role")?,
            expires_at: row.opt_int("expires_at")?,
            created_at: row.int("created_at")?,
            last_used_at: row.opt_int("last_used_at")?,
        })
    }

    /// The `api_key` object of the HTTP contract (never the secret).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "workspace": self.workspace_id,
            "role": self.role,
            "expires_at": self.expires_at.map(rfc3339),
            "created_at": rfc3339(self.created_at),
            "last_used_at": self.last_used_at.map(rfc3339),
        })
    }
}

/// Resolves a presented key to its live record: not revoked (D1 and KV), not expired, owner active.
/// `None` for anything else, including strings that are not keys at all.
pub async fn resolve<D: Database, F: FlagStore>(
    db: &D,
    flag_store: &F,
    presented: &str,
    now: i64,
) -> Result<Option<ApiKey>, BackendError> {
    if !presented.starts_with(KEY_PREFIX) || presented.len() > MAX_KEY_LEN {
        return Ok(None);
    }
    // Lookup by hash: the index compare is on a digest, so it leaks nothing about the key.
    let row = db
        .query_one(stmt!(
            "SELECT k.id, k.user_id, k.name, k.prefix, k.workspace_id, k.role, k.expires_at, \
                    k.created_at, k.last_used_at \
             FROM api_keys k JOIN users u ON u.id = k.user_id \
             WHERE k.org_id = ?1 AND k.key_hash = ?2 AND k.revoked_at IS NULL \
               AND (k.expires_at IS NULL OR k.expires_at > ?3) AND u.status = 'active'",
            ORG_ID,
            sha256_hex(presented.as_bytes()),
            now
        ))
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let key = ApiKey::from_row(&row)?;
    if flags::is_api_key_revoked(flag_store, &key.id).await? {
        return Ok(None);
    }
    if key
        .last_used_at
        .is_none_or(|t| now - t >= LAST_USED_RESOLUTION)
    {
        db.execute(stmt!(
            "UPDATE api_keys SET last_used_at = ?1 WHERE id = ?2",
            now,
            key.id.clone()
        ))
        .await?;
    }
    Ok(Some(key))
}

/// What a new key is allowed to do, already checked against its creator's rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// Name.
    pub name: String,
    /// Workspace scope.
    pub workspace_id: Option<String>,
    /// Role ceiling.
    pub role: Option<String>,
    /// Expiry, unix seconds.
    pub expires_at: Option<i64>,
}

/// Stores a new key for `user_id`; returns its record and the plaintext (shown once).
pub async fn create<D: Database>(
    db: &D,
    random: &dyn Random,
    id: String,
    user_id: &str,
    new: NewKey,
    now: i64,
) -> Result<(ApiKey, String), BackendError> {
    let key = generate(random)?;
    db.execute(stmt!(
        "INSERT INTO api_keys (id, org_id, user_id, workspace_id, name, prefix, key_hash, role, \
         expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        id.clone(),
        ORG_ID,
        user_id,
        new.workspace_id.clone(),
        new.name.clone(),
        key.prefix.clone(),
        key.hash.clone(),
        new.role.clone(),
        new.expires_at,
        now
    ))
    .await?;
    let record = ApiKey {
        id,
        user_id: user_id.to_owned(),
        name: new.name,
        prefix: key.prefix,
        workspace_id: new.workspace_id,
        role: new.role,
        expires_at: new.expires_at,
        created_at: now,
        last_used_at: None,
    };
    Ok((record, key.plaintext))
}

/// The user's keys that are neither revoked nor expired, newest first.
pub async fn list_live<D: Database>(
    db: &D,
    user_id: &str,
    now: i64,
) -> Result<Vec<ApiKey>, BackendError> {
    db.query(stmt!(
        "SELECT id, user_id, name, prefix, workspace_id, role, expires_at, created_at, last_used_at \
         FROM api_keys WHERE org_id = ?1 AND user_id = ?2 AND revoked_at IS NULL \
           AND (expires_at IS NULL OR expires_at > ?3) ORDER BY id DESC",
        ORG_ID,
        user_id,
        now
    ))
    .await?
    .iter()
    .map(ApiKey::from_row)
    .collect()
}

/// Finds an unrevoked key by id.
pub async fn find_unrevoked<D: Database>(db: &D, id: &str) -> Result<Option<ApiKey>, BackendError> {
    db.query_one(stmt!(
        "SELECT id, user_id, name, prefix, workspace_id, role, expires_at, created_at, last_used_at \
         FROM api_keys WHERE org_id = ?1 AND id = ?2 AND revoked_at IS NULL",
        ORG_ID,
        id
    ))
    .await?
    .map(|r| ApiKey::from_row(&r))
    .transpose()
}

/// Revokes a key in D1 and then flags it in KV.
pub async fn revoke<D: Database, F: FlagStore>(
    db: &D,
    flag_store: &F,
    config: &crate::config::Config,
    id: &str,
    now: i64,
) -> Result<(), BackendError> {
    db.execute(stmt!(
        "UPDATE api_keys SET revoked_at = ?1 WHERE org_id = ?2 AND id = ?3 AND revoked_at IS NULL",
        now,
        ORG_ID,
        id
    ))
    .await?;
    flags::revoke_api_key(flag_store, config, id).await
}
