//! Sessions and refresh tokens.
//!
//! A refresh token is `<session id>.<generation>.<mac>` with
//! `mac = HMAC(refresh key, session id || generation || per-session nonce)`: nothing secret is
//! stored, only SHA-256 of the current and previous token. Rotation is one conditional `UPDATE`
//! (D1 has no `SELECT ... FOR UPDATE`): whoever changes the row advances the generation. A request
//! that lost the race, or a retry, presenting the immediate parent within the grace window gets the
//! current token re-derived, so two tabs end up with the same token and the lineage never forks.
//! Anything older, or the parent after the grace window, revokes the session (`reuse_detected`).

use serde_json::{json, Value};

use crate::app::{App, RequestMeta};
use crate::audit::{self, Actor, AuditEvent, Outcome};
use crate::config::Config;
use crate::crypto::{
    b64url, b64url_decode, ct_eq, derive_key, hmac_sha256, new_id, random_array, sha256_hex,
};
use crate::error::ApiError;
use crate::flags;
use crate::store::{BackendError, Database, FlagStore, Row};
use crate::time::rfc3339;
use crate::tokens::AccessClaims;
use crate::{stmt, ORG_ID};

/// How a client holds its session: in cookies (browsers) or in response bodies (programs). Chosen by
/// the request's `"session"` field at login or magic-link request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionMode {
    /// Both tokens in `__Host-` cookies; the refresh token never appears in a body. A magic-link
    /// binding travels in the `__Host-edgeauth-link` cookie.
    Cookie,
    /// Both tokens in the body; no cookies. A magic-link binding is the `attempt` value.
    Token,
}

impl SessionMode {
    /// The request and stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionMode::Cookie => "cookie",
            SessionMode::Token => "token",
        }
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "cookie" => Some(SessionMode::Cookie),
            "token" => Some(SessionMode::Token),
            _ => None,
        }
    }

    /// Parses a request's optional `"session"` field (absent: cookie).
    pub fn from_request(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None => Ok(SessionMode::Cookie),
            Some(text) => Self::parse(text).ok_or_else(|| {
                ApiError::invalid(Some("session"), "session must be \"cookie\" or \"token\"")
            }),
        }
    }
}

/// How the session was authenticated (the `amr` value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// Password (`pwd`).
    Password,
    /// Magic link or emailed code (`email`).
    Email,
}

impl AuthMethod {
    /// The stored and `amr` form.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "pwd",
            AuthMethod::Email => "email",
        }
    }
}

/// Why a session was revoked (the stored `revoked_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    /// The user logged out.
    Logout,
    /// The user ended it from the session list (or logged out everywhere).
    UserTerminated,
    /// An admin revoked it.
    AdminRevoked,
    /// The password changed and other sessions were signed out.
    PasswordChanged,
    /// A rotated refresh token was presented again.
    ReuseDetected,
    /// The user was disabled.
    UserDisabled,
    /// It expired (upkeep).
    Expired,
    /// A newer login pushed it over the per-user cap.
    SessionCapEviction,
}

impl RevokeReason {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Logout => "logout",
            RevokeReason::UserTerminated => "user_terminated",
            RevokeReason::AdminRevoked => "admin_revoked",
            RevokeReason::PasswordChanged => "password_changed",
            RevokeReason::ReuseDetected => "reuse_detected",
            RevokeReason::UserDisabled => "user_disabled",
            RevokeReason::Expired => "expired",
            RevokeReason::SessionCapEviction => "session_cap_eviction",
        }
    }
}

/// A session row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Active workspace chosen at login.
    pub workspace_id: Option<String>,
    /// `pwd` or `email`.
    pub auth_method: String,
    /// Optional label (e.g. "work laptop").
    pub device_label: Option<String>,
    /// Client IP at login (`CF-Connecting-IP`).
    pub ip: Option<String>,
    /// User agent at login.
    pub user_agent: Option<String>,
    /// Login time.
    pub created_at: i64,
    /// Last login or refresh.
    pub last_active_at: i64,
    /// Idle expiry (never past the absolute expiry).
    pub expires_at: i64,
    /// Absolute expiry.
    pub absolute_expires_at: i64,
    /// Current refresh generation.
    pub generation: i64,
    /// When the current generation was minted by a rotation.
    pub rotated_at: Option<i64>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<i64>,
    nonce: String,
}

/// `SELECT <every session column> FROM sessions s` followed by the given SQL literal.
macro_rules! select_sessions {
    ($rest:literal) => {
        concat!(
            "SELECT s.id, s.user_id, s.workspace_id, s.auth_method, s.device_label, s.ip, \
             s.user_agent, s.created_at, s.last_active_at, s.expires_at, s.absolute_expires_at, \
             s.generation, s.rotated_at, s.revoked_at, s.refresh_nonce FROM sessions s ",
            $rest
        )
    };
}

impl Session {
    fn from_row(row: &Row) -> Result<Self, BackendError> {
        Ok(Session {
            id: row.text("id")?,
            user_id: row.text("user_id")?,
            workspace_id: row.opt_text("workspace_id")?,
            auth_method: row.text("auth_method")?,
            device_label: row.opt_text("device_label")?,
            ip: row.opt_text("ip")?,
            user_agent: row.opt_text("user_agent")?,
            created_at: row.int("created_at")?,
            last_active_at: row.int("last_active_at")?,
            expires_at: row.int("expires_at")?,
            absolute_expires_at: row.int("absolute_expires_at")?,
            generation: row.int("generation")?,
            rotated_at: row.opt_int("rotated_at")?,
            revoked_at: row.opt_int("revoked_at")?,
            nonce: row.text("refresh_nonce")?,
        })
    }

    /// Whether the session can still be used at `now`.
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && now < self.expires_at && now < self.absolute_expires_at
    }

    /// The session object of `GET /v1/auth/sessions`.
    pub fn to_json(&self, current_session_id: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "auth_method": self.auth_method,
            "device_label": self.device_label,
            "ip": self.ip,
            "user_agent": self.user_agent,
            "created_at": rfc3339(self.created_at),
            "last_active_at": rfc3339(self.last_active_at),
            "expires_at": rfc3339(self.expires_at),
            "current": current_session_id == Some(self.id.as_str()),
        })
    }

    /// The identity claims of an access token for this session.
    pub fn access_claims(&self, config: &Config, jti: String) -> AccessClaims {
        AccessClaims {
            iss: config.issuer.clone(),
            aud: config.audience.clone(),
            sub: self.user_id.clone(),
            sid: self.id.clone(),
            org: ORG_ID.to_owned(),
            ws: self.workspace_id.clone(),
            amr: vec![self.auth_method.clone()],
            jti,
        }
    }
}

/// Why a refresh was refused. The client sees `401` for all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshError {
    /// Not a token we issued (bad shape, unknown session, wrong MAC). Revokes nothing, so nobody
    /// can end someone else's session by guessing.
    Invalid,
    /// The session is revoked, idle-expired or past its absolute lifetime, or its user is inactive.
    NotLive,
    /// A rotated token was presented outside the grace window: the session is now revoked.
    ReuseDetected,
    /// Storage failed.
    Backend(BackendError),
}

impl From<BackendError> for RefreshError {
    fn from(err: BackendError) -> Self {
        RefreshError::Backend(err)
    }
}

fn refresh_key(config: &Config) -> crate::crypto::Secret {
    derive_key(&config.signing_secret, "refresh-token")
}

fn refresh_mac(config: &Config, session_id: &str, generation: i64, nonce: &str) -> [u8; 32] {
    hmac_sha256(
        refresh_key(config).expose(),
        &[
            session_id.as_bytes(),
            b"\0",
            &generation.to_be_bytes(),
            b"\0",
            nonce.as_bytes(),
        ],
    )
}

/// The refresh token of `session` at `generation`.
fn refresh_token(config: &Config, session_id: &str, generation: i64, nonce: &str) -> String {
    let mac = refresh_mac(config, session_id, generation, nonce);
    format!("{session_id}.{generation}.{}", b64url(&mac))
}

struct PresentedRefresh<'a> {
    session_id: &'a str,
    generation: i64,
    mac: Vec<u8>,
}

fn parse_refresh(token: &str) -> Option<PresentedRefresh<'_>> {
    if token.len() > 256 {
        return None;
    }
    let mut parts = token.split('.');
    let session_id = parts.next()?;
    let generation = parts.next()?.parse::<i64>().ok().filter(|g| *g >= 0)?;
    let mac = b64url_decode(parts.next()?)?;
    if parts.next().is_some() || session_id.is_empty() {
        return None;
    }
    Some(PresentedRefresh {
        session_id,
        generation,
        mac,
    })
}

/// The session id a refresh token names, if it is shaped like one (for logout; not verified).
pub fn session_id_of_refresh(token: &str) -> Option<&str> {
    parse_refresh(token).map(|p| p.session_id)
}

/// Starts a session for `user_id` and returns it with its first refresh token. Evicts the least
/// recently active sessions beyond the per-user cap.
pub async fn create<D: Database, F: FlagStore>(
    app: &App<D, F>,
    meta: &RequestMeta,
    user_id: &str,
    workspace_id: Option<&str>,
    method: AuthMethod,
) -> Result<(Session, String), BackendError> {
    let now = app.clock.now();
    let config = &app.config;
    let id = new_id(app.clock.as_ref(), app.random.as_ref())?;
    let nonce = b64url(&random_array::<32>(app.random.as_ref())?);
    let token = refresh_token(config, &id, 0, &nonce);
    let absolute = now + config.refresh_absolute_ttl;
    let expires = (now + config.refresh_idle_ttl).min(absolute);
    app.db
        .execute(stmt!(
            "INSERT INTO sessions (id, org_id, user_id, workspace_id, auth_method, device_label, ip, \
             user_agent, created_at, last_active_at, expires_at, absolute_expires_at, refresh_nonce, \
             generation, refresh_hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, ?12, 0, ?13)",
            id.clone(),
            ORG_ID,
            user_id,
            workspace_id,
            method.as_str(),
            meta.device_label.clone(),
            meta.ip.clone(),
            meta.user_agent.clone(),
            now,
            expires,
            absolute,
            nonce.clone(),
            sha256_hex(token.as_bytes())
        ))
        .await?;

    let evicted = app
        .db
        .query(stmt!(
            "UPDATE sessions SET revoked_at = ?1, revoked_reason = 'session_cap_eviction' \
             WHERE id IN (SELECT id FROM sessions WHERE org_id = ?2 AND user_id = ?3 \
                          AND revoked_at IS NULL AND expires_at > ?1 \
                          ORDER BY last_active_at DESC, created_at DESC, id DESC \
                          LIMIT -1 OFFSET ?4) \
             RETURNING id",
            now,
            ORG_ID,
            user_id,
            config.max_sessions_per_user
        ))
        .await?;
    for row in &evicted {
        flags::revoke_session(&app.flags, config, &row.text("id")?, "session_cap_eviction").await?;
    }

    let session = find(app, &id)
        .await?
        .ok_or_else(|| BackendError::Database("session vanished after insert".into()))?;
    Ok((session, token))
}

/// Finds a session by id (live or not).
pub async fn find<D: Database, F: FlagStore>(
    app: &App<D, F>,
    session_id: &str,
) -> Result<Option<Session>, BackendError> {
    app.db
        .query_one(stmt!(
            select_sessions!("WHERE s.org_id = ?1 AND s.id = ?2"),
            ORG_ID,
            session_id
        ))
        .await?
        .map(|r| Session::from_row(&r))
        .transpose()
}

/// Rotates a refresh token. Returns the session and the token the client must keep.
pub async fn refresh<D: Database, F: FlagStore>(
    app: &App<D, F>,
    meta: &RequestMeta,
    presented: &str,
) -> Result<(Session, String), RefreshError> {
    let config = &app.config;
    let parsed = parse_refresh(presented).ok_or(RefreshError::Invalid)?;
    let session = find(app, parsed.session_id)
        .await?
        .ok_or(RefreshError::Invalid)?;
    let expected = refresh_mac(config, &session.id, parsed.generation, &session.nonce);
    if !ct_eq(&expected, &parsed.mac) || parsed.generation > session.generation {
        return Err(RefreshError::Invalid);
    }
    let now = app.clock.now();
    if !session.is_live(now) || !user_is_active(app, &session.user_id).await? {
        return Err(RefreshError::NotLive);
    }

    if parsed.generation == session.generation {
        let next = session.generation + 1;
        let token = refresh_token(config, &session.id, next, &session.nonce);
        let changed = app
            .db
            .execute(stmt!(
                "UPDATE sessions SET generation = ?1, prev_refresh_hash = refresh_hash, \
                 refresh_hash = ?2, rotated_at = ?3, last_active_at = ?3, \
                 expires_at = MIN(?3 + ?4, absolute_expires_at) \
                 WHERE id = ?5 AND generation = ?6 AND revoked_at IS NULL \
                   AND expires_at > ?3 AND absolute_expires_at > ?3",
                next,
                sha256_hex(token.as_bytes()),
                now,
                config.refresh_idle_ttl,
                session.id.clone(),
                session.generation
            ))
            .await?;
        if changed == 1 {
            let rotated = find(app, &session.id).await?.ok_or(RefreshError::NotLive)?;
            return Ok((rotated, token));
        }
        // Another request rotated it between our read and our update: judge again on fresh state.
        let fresh = find(app, &session.id).await?.ok_or(RefreshError::Invalid)?;
        return retry_or_reuse(app, meta, fresh, parsed.generation, now).await;
    }
    retry_or_reuse(app, meta, session, parsed.generation, now).await
}

/// A verified but no longer current generation: the immediate parent within the grace window gets
/// the current token; anything else is reuse.
async fn retry_or_reuse<D: Database, F: FlagStore>(
    app: &App<D, F>,
    meta: &RequestMeta,
    session: Session,
    presented_generation: i64,
    now: i64,
) -> Result<(Session, String), RefreshError> {
    if !session.is_live(now) {
        return Err(RefreshError::NotLive);
    }
    let within_grace = session
        .rotated_at
        .is_some_and(|at| now - at <= app.config.refresh_grace_seconds);
    if presented_generation + 1 == session.generation && within_grace {
        let token = refresh_token(&app.config, &session.id, session.generation, &session.nonce);
        return Ok((session, token));
    }
    revoke(app, &session.id, RevokeReason::ReuseDetected).await?;
    audit::record(
        app,
        meta,
        AuditEvent {
            action: "refresh_reuse",
            outcome: Outcome::Failure,
            actor: Actor::System,
            target: Some(("session", &session.id)),
            detail: Some(json!({
                "user_id": session.user_id,
                "presented_generation": presented_generation,
                "current_generation": session.generation,
            })),
        },
    )
    .await?;
    Err(RefreshError::ReuseDetected)
}

async fn user_is_active<D: Database, F: FlagStore>(
    app: &App<D, F>,
    user_id: &str,
) -> Result<bool, BackendError> {
    Ok(app
        .db
        .query_one(stmt!(
            "SELECT 1 AS one FROM users WHERE id = ?1 AND status = 'active'",
            user_id
        ))
        .await?
        .is_some())
}

/// Revokes one session (D1 first, then the KV flag). Returns whether it was live until now.
pub async fn revoke<D: Database, F: FlagStore>(
    app: &App<D, F>,
    session_id: &str,
    reason: RevokeReason,
) -> Result<bool, BackendError> {
    let changed = app
        .db
        .execute(stmt!(
            "UPDATE sessions SET revoked_at = ?1, revoked_reason = ?2 \
             WHERE org_id = ?3 AND id = ?4 AND revoked_at IS NULL",
            app.clock.now(),
            reason.as_str(),
            ORG_ID,
            session_id
        ))
        .await?;
    // The flag is written even if the row was already revoked: a retry after a KV failure must
    // still get the flag out.
    flags::revoke_session(&app.flags, &app.config, session_id, reason.as_str()).await?;
    Ok(changed == 1)
}

/// Revokes every live session of a user except `keep`; returns the revoked ids.
pub async fn revoke_all_for_user<D: Database, F: FlagStore>(
    app: &App<D, F>,
    user_id: &str,
    reason: RevokeReason,
    keep: Option<&str>,
) -> Result<Vec<String>, BackendError> {
    let rows = app
        .db
        .query(stmt!(
            "UPDATE sessions SET revoked_at = ?1, revoked_reason = ?2 \
             WHERE org_id = ?3 AND user_id = ?4 AND revoked_at IS NULL AND id IS NOT ?5 \
             RETURNING id",
            app.clock.now(),
            reason.as_str(),
            ORG_ID,
            user_id,
            keep
        ))
        .await?;
    let mut ids = Vec::with_capacity(rows.len());
    for row in rows {
        let id = row.text("id")?;
        flags::revoke_session(&app.flags, &app.config, &id, reason.as_str()).await?;
        ids.push(id);
    }
    Ok(ids)
}

/// The user's live sessions, most recently active first.
pub async fn list_live<D: Database, F: FlagStore>(
    app: &App<D, F>,
    user_id: &str,
) -> Result<Vec<Session>, BackendError> {
    app.db
        .query(stmt!(
            select_sessions!(
                "WHERE s.org_id = ?1 AND s.user_id = ?2 AND s.revoked_at IS NULL \
                 AND s.expires_at > ?3 AND s.absolute_expires_at > ?3 \
                 ORDER BY s.last_active_at DESC, s.id DESC"
            ),
            ORG_ID,
            user_id,
            app.clock.now()
        ))
        .await?
        .iter()
        .map(Session::from_row)
        .collect()
}

/// The live session a refresh token belongs to, without rotating it (logout by refresh token).
/// Accepts the current generation and its immediate parent, so a logout racing a refresh still
/// names the session; anything else is `None`.
pub async fn identify_by_refresh<D: Database, F: FlagStore>(
    app: &App<D, F>,
    presented: &str,
) -> Result<Option<Session>, BackendError> {
    let Some(parsed) = parse_refresh(presented) else {
        return Ok(None);
    };
    let Some(session) = find(app, parsed.session_id).await? else {
        return Ok(None);
    };
    let expected = refresh_mac(&app.config, &session.id, parsed.generation, &session.nonce);
    let recent =
        parsed.generation <= session.generation && parsed.generation + 1 >= session.generation;
    Ok(
        (ct_eq(&expected, &parsed.mac) && recent && session.is_live(app.clock.now()))
            .then_some(session),
    )
}
