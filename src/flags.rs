//! Revocation flags in the flag store (KV): written when a session is revoked or a user disabled,
//! read by every access-token verification so a revoked token stops working everywhere without a
//! database round trip. D1 stays the source of truth for refresh and API keys.

use futures::future::join;

use crate::config::Config;
use crate::store::{BackendError, FlagStore};

/// KV's smallest TTL.
const MIN_TTL: i64 = 60;

/// How long a flag must live: longer than any access token it guards (plus the verification leeway
/// and a minute of margin).
pub fn flag_ttl(config: &Config) -> u64 {
    let ttl = (config.access_token_ttl + crate::tokens::LEEWAY_SECONDS + 60).max(MIN_TTL);
    u64::try_from(ttl).unwrap_or(u64::MAX)
}

fn session_key(session_id: &str) -> String {
    format!("revoked:session:{session_id}")
}

fn user_key(user_id: &str) -> String {
    format!("revoked:user:{user_id}")
}

fn api_key_key(key_id: &str) -> String {
    format!("revoked:api_key:{key_id}")
}

/// Marks a session revoked.
pub async fn revoke_session<F: FlagStore>(
    flags: &F,
    config: &Config,
    session_id: &str,
    reason: &str,
) -> Result<(), BackendError> {
    flags
        .put(&session_key(session_id), reason, flag_ttl(config))
        .await
}

/// Marks every token of a user issued at or before `at` revoked (disable, admin action).
pub async fn revoke_user_tokens<F: FlagStore>(
    flags: &F,
    config: &Config,
    user_id: &str,
    at: i64,
) -> Result<(), BackendError> {
    flags
        .put(&user_key(user_id), &at.to_string(), flag_ttl(config))
        .await
}

/// Lets a re-enabled user's new tokens through: the user flag's cut-off moves to the second before
/// `now`. Without this, the cut-off a disable wrote is its own second, and a token issued in that
/// same second after the user was enabled again would be refused for its whole life (token times
/// are whole seconds). Nothing from before the disable comes back: the disable also revoked every
/// session the user had, and those sessions' own flags outlive their access tokens.
pub async fn reinstate_user_tokens<F: FlagStore>(
    flags: &F,
    config: &Config,
    user_id: &str,
    now: i64,
) -> Result<(), BackendError> {
    revoke_user_tokens(flags, config, user_id, now - 1).await
}

/// Marks an API key revoked.
pub async fn revoke_api_key<F: FlagStore>(
    flags: &F,
    config: &Config,
    key_id: &str,
) -> Result<(), BackendError> {
    flags
        .put(&api_key_key(key_id), "revoked", flag_ttl(config))
        .await
}

/// Whether an access token of `session_id` for `user_id`, issued at `issued_at`, has been revoked.
pub async fn is_access_revoked<F: FlagStore>(
    flags: &F,
    session_id: &str,
    user_id: &str,
    issued_at: i64,
) -> Result<bool, BackendError> {
    // Both reads at once: one round trip's wait instead of two. The answer is the one the two
    // reads in turn gave: a session flag revokes whatever the user flag says (or whether it could be
    // read); otherwise either read failing is an error, never "not revoked".
    let session_flag = session_key(session_id);
    let user_flag = user_key(user_id);
    let (session, user) = join(flags.get(&session_flag), flags.get(&user_flag)).await;
    if session?.is_some() {
        return Ok(true);
    }
    match user? {
        // A value we cannot read is treated as revoking everything: fail closed.
        Some(at) => Ok(at.parse::<i64>().map_or(true, |at| issued_at <= at)),
        None => Ok(false),
    }
}

/// Whether an API key has been flagged revoked.
pub async fn is_api_key_revoked<F: FlagStore>(
    flags: &F,
    key_id: &str,
) -> Result<bool, BackendError> {
    Ok(flags.get(&api_key_key(key_id)).await?.is_some())
}
