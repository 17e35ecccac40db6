//! Session routes: login, refresh, logout, the session list, password change and `/v1/me`.

use serde::Deserialize;
use serde_json::json;

use super::{no_content_clearing_cookies, reject_foreign_origin, session_response};
use crate::app::{App, Caller, Principal, RequestMeta};
use crate::audit::{self, Actor, AuditEvent, Outcome};
use crate::crypto::random_array;
use crate::error::ApiError;
use crate::http::{HttpRequest, HttpResponse, REFRESH_COOKIE};
use crate::identity::{self, normalize_email, LoginName, User};
use crate::passwords::{self, StoredHash, SALT_BYTES};
use crate::rate_limits::{self, Admission, IpScope};
use crate::sessions::{self, AuthMethod, RefreshError, RevokeReason, SessionMode};
use crate::stmt;
use crate::store::{Database, FlagStore};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    username: Option<String>,
    password: String,
    #[serde(default)]
    workspace: Option<String>,
    #[serde(default)]
    session: Option<String>,
    #[serde(default)]
    device_label: Option<String>,
}

pub(super) async fn login<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
) -> Result<HttpResponse, ApiError> {
    rate_limits::check_ip(app, request, IpScope::Login).await?;
    let body: LoginBody = request.json_body()?;
    let mode = SessionMode::from_request(body.session.as_deref())?;
    if mode == SessionMode::Cookie {
        reject_foreign_origin(app, request)?;
    }
    let password_too_long = body.password.len() > passwords::MAX_PASSWORD_BYTES;
    let (kind, identifier) = match (&body.email, &body.username) {
        (Some(email), None) => ("email", normalize_email(email, "email")?),
        (None, Some(username)) => ("username", username.trim().to_lowercase()),
        _ => {
            return Err(ApiError::invalid(
                Some("email"),
                "give exactly one of email and username",
            ))
        }
    };
    let mut meta = RequestMeta::of(request);
    meta.device_label = body
        .device_label
        .map(|l| l.trim().chars().take(100).collect::<String>())
        .filter(|l| !l.is_empty());

    // The attempt is counted (and the lock it would earn set) before the password is checked; a
    // locked identifier, known or not, takes the same path as a wrong password below.
    let lockout_key = rate_limits::lockout_key(kind, &identifier);
    let admission = rate_limits::admit_login(app, &lockout_key).await?;
    let locked = admission == Admission::Locked;

    let name = if body.email.is_some() {
        LoginName::Email(&identifier)
    } else {
        LoginName::Username(&identifier)
    };
    let (user, record) = match identity::find_login_candidate(&app.db, name).await? {
        Some((user, record)) => (Some(user), record),
        None => (None, None),
    };

    // Every path below costs one full hash, known user or not, so timing does not reveal accounts;
    // an over-long password, and any password while the identifier is locked, is refused after the
    // same work (against the dummy: a locked password is never checked), with the same 401.
    let verified = match &record {
        Some(phc) if !password_too_long && !locked => {
            let stored = StoredHash::parse(phc)?;
            stored.verify(&body.password).then_some(stored)
        }
        _ => {
            let probe = if password_too_long {
                ""
            } else {
                body.password.as_str()
            };
            passwords::burn_dummy_verification(probe, app.config.pbkdf2_iterations);
            None
        }
    };
    let (user, stored) = match (user, verified) {
        (Some(user), Some(stored)) if user.is_active() => (user, stored),
        (user, _) => {
            audit::record(
                app,
                &meta,
                AuditEvent {
                    action: "login",
                    outcome: Outcome::Failure,
                    actor: Actor::Anonymous,
                    target: user.as_ref().map(|u| ("user", u.id.as_str())),
                    detail: Some(
                        json!({ "method": "pwd", "identifier": identifier, "locked": locked }),
                    ),
                },
            )
            .await?;
            return Err(ApiError::AuthFailure);
        }
    };

    // The right password ends the run of failures on every identifier of the user.
    let mut keys = rate_limits::lockout_keys_of(&user.email, user.username.as_deref());
    if !keys.contains(&lockout_key) {
        keys.push(lockout_key);
    }
    rate_limits::clear_lockout(app, &keys).await?;

    if stored.needs_rehash(app.config.pbkdf2_iterations) {
        // The configured cost has risen since this hash was made: upgrade it while we hold the
        // plaintext. Conditional on the record being unchanged, so a concurrent password change wins.
        let salt: [u8; SALT_BYTES] = random_array(app.random.as_ref())?;
        let upgraded = passwords::hash(&body.password, &salt, app.config.pbkdf2_iterations)?;
        app.db
            .execute(stmt!(
                "UPDATE password_credentials SET phc = ?1, updated_at = ?2 WHERE user_id = ?3 AND phc = ?4",
                upgraded,
                app.clock.now(),
                user.id.clone(),
                record.unwrap_or_default()
            ))
            .await?;
    }

    if let Some(workspace) = &body.workspace {
        let member = identity::find_memberships(&app.db, &user.id)
            .await?
            .iter()
            .any(|m| &m.workspace_id == workspace);
        if !member {
            return Err(ApiError::Forbidden);
        }
    }

    let (session, refresh_token) = sessions::create(
        app,
        &meta,
        &user.id,
        body.workspace.as_deref(),
        AuthMethod::Password,
    )
    .await?;
    audit::record(
        app,
        &meta,
        AuditEvent {
            action: "login",
            outcome: Outcome::Success,
            actor: Actor::User(&user.id),
            target: Some(("session", &session.id)),
            detail: Some(json!({ "method": "pwd", "mode": mode.as_str() })),
        },
    )
    .await?;
    session_response(app, &user, &session, &refresh_token, mode).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    #[serde(default)]
    refresh_token: Option<String>,
}

/// The refresh token of a request: from the body (token mode), else from the cookie (cookie mode,
/// which is a cookie-authenticated state change and so needs an allowed Origin).
fn presented_refresh_token<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
) -> Result<Option<(String, SessionMode)>, ApiError> {
    let body: RefreshBody = request.json_body()?;
    if let Some(token) = body.refresh_token {
        return Ok(Some((token, SessionMode::Token)));
    }
    match request.cookie(REFRESH_COOKIE) {
        Some(token) => {
            app.require_allowed_origin(request)?;
            Ok(Some((token, SessionMode::Cookie)))
        }
        None => Ok(None),
    }
}

pub(super) async fn refresh<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
) -> Result<HttpResponse, ApiError> {
    rate_limits::check_ip(app, request, IpScope::Refresh).await?;
    let (token, mode) = presented_refresh_token(app, request)?.ok_or(ApiError::AuthFailure)?;
    let meta = RequestMeta::of(request);
    let (session, current_token) = match sessions::refresh(app, &meta, &token).await {
        Ok(rotated) => rotated,
        Err(RefreshError::Backend(err)) => return Err(err.into()),
        Err(RefreshError::Invalid | RefreshError::NotLive | RefreshError::ReuseDetected) => {
            return Err(ApiError::AuthFailure)
        }
    };
    let user = identity::find_user(&app.db, &session.user_id)
        .await?
        .filter(User::is_active)
        .ok_or(ApiError::AuthFailure)?;
    session_response(app, &user, &session, &current_token, mode).await
}

pub(super) async fn logout<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    caller: Option<Caller>,
) -> Result<HttpResponse, ApiError> {
    let meta = RequestMeta::of(request);
    let (session_id, user_id) = match caller.as_ref().map(|c| &c.principal) {
        Some(Principal::Session { user, access }) => {
            // The access token names the session; a body is still judged like any other.
            request.json_body::<RefreshBody>()?;
            (access.claims().sid.clone(), user.id.clone())
        }
        // API keys never reach here (the route table refuses them); treat it as no session.
        Some(Principal::ApiKey { .. }) => return Err(ApiError::Forbidden),
        None => {
            let (token, _) = presented_refresh_token(app, request)?.ok_or(ApiError::AuthFailure)?;
            let session = sessions::identify_by_refresh(app, &token)
                .await?
                .ok_or(ApiError::AuthFailure)?;
            (session.id, session.user_id)
        }
    };
    sessions::revoke(app, &session_id, RevokeReason::Logout).await?;
    audit::record(
        app,
        &meta,
        AuditEvent {
            action: "logout",
            outcome: Outcome::Success,
            actor: Actor::User(&user_id),
            target: Some(("session", &session_id)),
            detail: None,
        },
    )
    .await?;
    Ok(no_content_clearing_cookies())
}

pub(super) async fn logout_all<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    request.expect_no_body()?;
    let user_id = caller.user().id.clone();
    let revoked = sessions::revoke_all_for_user(app, &user_id, RevokeReason::Logout, None).await?;
    audit::record(
        app,
        &RequestMeta::of(request),
        AuditEvent {
            action: "logout_all",
            outcome: Outcome::Success,
            actor: Actor::User(&user_id),
            target: Some(("user", &user_id)),
            detail: Some(json!({ "sessions_revoked": revoked.len() })),
        },
    )
    .await?;
    Ok(no_content_clearing_cookies())
}

pub(super) async fn list_sessions<D: Database, F: FlagStore>(
    app: &App<D, F>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let current = caller.session_id();
    let sessions: Vec<_> = sessions::list_live(app, &caller.user().id)
        .await?
        .iter()
        .map(|s| s.to_json(current))
        .collect();
    Ok(HttpResponse::json(200, &json!({ "sessions": sessions })))
}

pub(super) async fn delete_session<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    caller: Caller,
    session_id: &str,
) -> Result<HttpResponse, ApiError> {
    let user_id = &caller.user().id;
    // Someone else's session, or one already ended, is indistinguishable from one that never was.
    let owned = sessions::find(app, session_id)
        .await?
        .filter(|s| &s.user_id == user_id && s.is_live(app.clock.now()))
        .ok_or(ApiError::NotFound)?;
    sessions::revoke(app, &owned.id, RevokeReason::UserTerminated).await?;
    audit::record(
        app,
        &RequestMeta::of(request),
        AuditEvent {
            action: "session_revoke",
            outcome: Outcome::Success,
            actor: Actor::User(user_id),
            target: Some(("session", &owned.id)),
            detail: None,
        },
    )
    .await?;
    Ok(HttpResponse::no_content())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePasswordBody {
    current_password: String,
    new_password: String,
    #[serde(default)]
    sign_out_other_sessions: Option<bool>,
}

pub(super) async fn change_password<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let body: ChangePasswordBody = request.json_body()?;
    passwords::check_policy(&body.new_password, "new_password")?;
    let user = caller.user();
    let meta = RequestMeta::of(request);
    let record = identity::find_password_record(&app.db, &user.id).await?;
    let current_ok = match &record {
        Some(phc) if body.current_password.len() <= passwords::MAX_PASSWORD_BYTES => {
            StoredHash::parse(phc)?.verify(&body.current_password)
        }
        _ => false,
    };
    if !current_ok {
        audit::record(
            app,
            &meta,
            AuditEvent {
                action: "password_change",
                outcome: Outcome::Failure,
                actor: Actor::User(&user.id),
                target: Some(("user", &user.id)),
                detail: None,
            },
        )
        .await?;
        return Err(ApiError::AuthFailure);
    }
    let salt: [u8; SALT_BYTES] = random_array(app.random.as_ref())?;
    let phc = passwords::hash(&body.new_password, &salt, app.config.pbkdf2_iterations)?;
    let now = app.clock.now();
    app.db
        .batch(vec![
            stmt!(
                "INSERT INTO password_credentials (user_id, org_id, phc, updated_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (user_id) DO UPDATE SET phc = excluded.phc, updated_at = excluded.updated_at",
                user.id.clone(),
                crate::ORG_ID,
                phc,
                now
            ),
            stmt!(
                "UPDATE users SET must_change_password = 0, updated_at = ?1 WHERE id = ?2",
                now,
                user.id.clone()
            ),
        ])
        .await?;
    // Signing the other sessions out is the default: a password is usually changed because it may
    // be known to someone else.
    let sign_out = body.sign_out_other_sessions.unwrap_or(true);
    let revoked = if sign_out {
        sessions::revoke_all_for_user(
            app,
            &user.id,
            RevokeReason::PasswordChanged,
            caller.session_id(),
        )
        .await?
    } else {
        Vec::new()
    };
    audit::record(
        app,
        &meta,
        AuditEvent {
            action: "password_change",
            outcome: Outcome::Success,
            actor: Actor::User(&user.id),
            target: Some(("user", &user.id)),
            detail: Some(json!({ "sessions_revoked": revoked.len() })),
        },
    )
    .await?;
    Ok(HttpResponse::no_content())
}

pub(super) async fn me<D: Database, F: FlagStore>(
    app: &App<D, F>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let user = caller.user();
    let memberships: Vec<_> = identity::find_memberships(&app.db, &user.id)
        .await?
        .iter()
        .map(|m| json!({ "workspace_id": m.workspace_id, "role": m.role }))
        .collect();
    let mut body = json!({
        "user": user.to_json(),
        "memberships": memberships,
        "org_admin": user.org_admin,
    });
    match &caller.principal {
        Principal::Session { access, .. } => body["session_id"] = json!(access.claims().sid),
        Principal::ApiKey { key, .. } => body["api_key_id"] = json!(key.id),
    }
    Ok(HttpResponse::json(200, &body))
}
