//! Magic-link routes and self-registration: request a link, the link's page (which consumes
//! nothing), consume it by link or code with the browser's binding, and register.
//!
//! Every request route answers the same `202` whatever the address: known, unknown, disabled or
//! throttled, each gets a binding (cookie or `attempt`) of the same shape, and mail is queued in the
//! outbox and sent after the answer.

use serde::Deserialize;
use serde_json::json;
use zeroize::Zeroizing;

use super::{reject_foreign_origin, session_response};
use crate::app::{App, RequestMeta};
use crate::audit::{self, Actor, AuditEvent, Outcome};
use crate::crypto::random_array;
use crate::error::ApiError;
use crate::http::{clear_cookie, host_cookie, HttpRequest, HttpResponse, SameSite, LINK_COOKIE};
use crate::identity::{self, normalize_email, normalize_name, User};
use crate::magic_links::{self, Attempt, CodeOutcome, NewAttempt, Purpose};
use crate::mail::{self, LinkMailKind};
use crate::passwords::{self, SALT_BYTES};
use crate::rate_limits::{self, IpScope, MAIL_PER_ADDRESS};
use crate::redirects::check_redirect;
use crate::sessions::{self, AuthMethod, SessionMode};
use crate::store::{Database, FlagStore};
use crate::{pages, stmt, ORG_ID};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkRequestBody {
    email: String,
    #[serde(default)]
    redirect_to: Option<String>,
    #[serde(default)]
    session: Option<String>,
}

/// `POST /v1/auth/magic-link`.
pub(super) async fn request_link<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
) -> Result<HttpResponse, ApiError> {
    rate_limits::check_ip(app, request, IpScope::MagicLinkRequest).await?;
    let body: LinkRequestBody = request.json_body()?;
    let email = normalize_email(&body.email, "email")?;
    let mode = SessionMode::from_request(body.session.as_deref())?;
    let redirect_to = match body.redirect_to.as_deref() {
        Some(candidate) => Some(
            check_redirect(candidate, &app.config.allowed_redirects)
                .map_err(|e| ApiError::invalid(Some("redirect_to"), &e.to_string()))?,
        ),
        None => None,
    };
    if mode == SessionMode::Cookie {
        reject_foreign_origin(app, request)?;
    }
    let held = held_binding(request, mode);

    // The same work for every address: one lookup, then one batch that counts the mail and stores
    // the attempt only if the address may sign in and is within its mail limit.
    let user = identity::find_user_by_email(&app.db, &email).await?;
    let eligible = match &user {
        Some(user) => user.status != "disabled",
        None => app.config.allow_signup,
    };
    let (secrets, stored) = magic_links::create_attempt_within_limit(
        app,
        &NewAttempt {
            email: &email,
            user_id: user.as_ref().map(|u| u.id.as_str()),
            purpose: Purpose::Login,
            redirect_to: redirect_to.as_deref(),
            session_mode: mode,
            binding: held.as_deref().map(String::as_str),
        },
        eligible,
        &mail_limit_key(&email),
        MAIL_PER_ADDRESS,
    )
    .await?;
    if stored {
        app.outbox.push(mail::link_mail(
            &app.config,
            &email,
            LinkMailKind::SignIn,
            secrets.token(),
            secrets.code(),
        ));
    }
    // Stored or not, the answer carries the binding drawn for it (the held one, or a fresh one).
    Ok(sent_response(app, mode, secrets.binding()))
}

/// The binding the browser already holds (cookie mode only), if it has the shape of ours.
fn held_binding(request: &HttpRequest, mode: SessionMode) -> Option<Zeroizing<String>> {
    if mode != SessionMode::Cookie {
        return None;
    }
    request
        .cookie(LINK_COOKIE)
        .filter(|b| magic_links::is_binding_shaped(b))
        .map(Zeroizing::new)
}

/// For answers that create no attempt: the held binding, or a new one, exactly as an attempt would.
fn reuse_or_new_binding<D: Database, F: FlagStore>(
    app: &App<D, F>,
    held: Option<Zeroizing<String>>,
) -> Result<Zeroizing<String>, ApiError> {
    match held {
        Some(binding) => Ok(binding),
        None => Ok(magic_links::new_binding(app.random.as_ref())?),
    }
}

/// Counts a mail to `email` against the per-address limit; `false` means send nothing.
async fn mail_allowed<D: Database, F: FlagStore>(
    app: &App<D, F>,
    email: &str,
) -> Result<bool, ApiError> {
    Ok(rate_limits::hit(app, &mail_limit_key(email), MAIL_PER_ADDRESS).await?)
}

/// The counter of mails to `email`.
fn mail_limit_key(email: &str) -> String {
    rate_limits::key("mail", email)
}

/// `202 {"status":"sent"}` with the binding: the link cookie, or `attempt` in token mode.
fn sent_response<D: Database, F: FlagStore>(
    app: &App<D, F>,
    mode: SessionMode,
    binding: &str,
) -> HttpResponse {
    let mut response = match mode {
        SessionMode::Cookie => HttpResponse::json(202, &json!({ "status": "sent" })).with_header(
            "set-cookie",
            &host_cookie(
                LINK_COOKIE,
                binding,
                SameSite::Lax,
                app.config.magic_link_ttl,
            ),
        ),
        SessionMode::Token => {
            HttpResponse::json(202, &json!({ "status": "sent", "attempt": binding }))
        }
    };
    response.set_header("cache-control", "no-store");
    response
}

/// `GET|HEAD /v1/auth/magic-link/verify?token=`: the confirmation page. Reads, never writes, so
/// a mail scanner that fetches (or renders) the link changes nothing.
pub(super) async fn link_page<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let token = request.query_param("token").unwrap_or_default();
    let preview = magic_links::peek_by_token(app, &token).await?;
    Ok(pages::link_page(&app.config, preview.as_ref(), &token))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    token: String,
    #[serde(default)]
    attempt: Option<String>,
}

/// How the client posted, and so how it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Responder {
    /// JSON in, JSON out.
    Json,
    /// An HTML form: `303` on success, an HTML page on refusal.
    Form,
}

/// `POST /v1/auth/magic-link/verify`: consumes the link's attempt if the binding matches.
pub(super) async fn verify_link<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
) -> Result<HttpResponse, ApiError> {
    rate_limits::check_ip(app, request, IpScope::MagicLinkConfirm).await?;
    let (responder, body) = if request.has_content_type("application/x-www-form-urlencoded") {
        let mut token = None;
        let mut attempt = None;
        for (name, value) in request.form_fields()? {
            match name.as_str() {
                "token" => token = Some(value),
                "attempt" => attempt = Some(value),
                _ => return Err(ApiError::invalid(Some(&name), "unknown field")),
            }
        }
        let token = token.ok_or_else(|| ApiError::invalid(Some("token"), "missing field"))?;
        (Responder::Form, VerifyBody { token, attempt })
    } else {
        (Responder::Json, request.json_body::<VerifyBody>()?)
    };
    reject_foreign_origin(app, request)?;
    let binding = body.attempt.or_else(|| request.cookie(LINK_COOKIE));
    let consumed = match binding {
        Some(binding) => magic_links::consume_by_token(app, &body.token, &binding).await?,
        None => None,
    };
    match consumed {
        Some(attempt) => finish(app, request, attempt, responder).await,
        None => refuse(app, request, responder).await,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    email: String,
    code: String,
    #[serde(default)]
    attempt: Option<String>,
}

/// `POST /v1/auth/magic-link/code`: the 6-digit fallback, five wrong codes per attempt.
pub(super) async fn verify_code<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
) -> Result<HttpResponse, ApiError> {
    rate_limits::check_ip(app, request, IpScope::MagicLinkConfirm).await?;
    let body: CodeBody = request.json_body()?;
    let email = normalize_email(&body.email, "email")?;
    reject_foreign_origin(app, request)?;
    let Some(binding) = body.attempt.or_else(|| request.cookie(LINK_COOKIE)) else {
        return refuse(app, request, Responder::Json).await;
    };
    match magic_links::consume_by_code(app, &email, body.code.trim(), &binding).await? {
        CodeOutcome::Consumed(attempt) => finish(app, request, attempt, Responder::Json).await,
        CodeOutcome::WrongCode { .. } | CodeOutcome::NoLiveAttempt => {
            refuse(app, request, Responder::Json).await
        }
    }
}

/// A refused link or code: audited, then the one `401` (or its HTML page for a form).
async fn refuse<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    responder: Responder,
) -> Result<HttpResponse, ApiError> {
    audit::record(
        app,
        &RequestMeta::of(request),
        AuditEvent {
            action: "login",
            outcome: Outcome::Failure,
            actor: Actor::Anonymous,
            target: None,
            detail: Some(json!({ "method": "email" })),
        },
    )
    .await?;
    match responder {
        Responder::Json => Err(ApiError::AuthFailure),
        Responder::Form => Ok(pages::link_refused_page(&app.config)),
    }
}

/// Turns a consumed attempt into a session: the user it signs in (created or activated as the
/// purpose says), a session with `amr: ["email"]`, and the answer.
async fn finish<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    attempt: Attempt,
    responder: Responder,
) -> Result<HttpResponse, ApiError> {
    let Some(user) = user_for_attempt(app, &attempt).await? else {
        return refuse(app, request, responder).await;
    };
    // Proof of the mailbox ends any password lockout of the account.
    rate_limits::clear_lockout(
        app,
        &rate_limits::lockout_keys_of(&user.email, user.username.as_deref()),
    )
    .await?;
    let meta = RequestMeta::of(request);
    let (session, refresh_token) =
        sessions::create(app, &meta, &user.id, None, AuthMethod::Email).await?;
    audit::record(
        app,
        &meta,
        AuditEvent {
            action: "login",
            outcome: Outcome::Success,
            actor: Actor::User(&user.id),
            target: Some(("session", &session.id)),
            detail: Some(json!({
                "method": "email",
                "purpose": attempt.purpose.as_str(),
                "mode": attempt.session_mode.as_str(),
            })),
        },
    )
    .await?;
    let mode = attempt.session_mode;
    let response = session_response(app, &user, &session, &refresh_token, mode).await?;
    let mut response = if responder == Responder::Form && mode == SessionMode::Cookie {
        // A browser form: keep the cookies, go where the request asked (checked when stored).
        let location = attempt
            .redirect_to
            .clone()
            .unwrap_or_else(|| format!("{}/account", app.config.public_url));
        let mut redirect = HttpResponse::no_content();
        redirect.status = 303;
        for cookie in response.set_cookies() {
            redirect = redirect.with_header("set-cookie", cookie);
        }
        redirect.with_header("location", &location)
    } else {
        response
    };
    if mode == SessionMode::Cookie {
        response = response.with_header("set-cookie", &clear_cookie(LINK_COOKIE, SameSite::Lax));
    }
    response.set_header("cache-control", "no-store");
    Ok(response)
}

/// The user a consumed attempt signs in, or `None` if it may not sign in (disabled, deleted, or a
/// sign-up attempt after sign-up was closed).
///
/// - login, existing user: active signs in; pending is activated first, and its password (set at
///   registration by whoever typed this address) is dropped, because only the mail was proven here;
/// - login, no user when the link was sent: with sign-up open, the account is created now;
/// - verify_email: the pending account is activated with its password, which the registering
///   browser (the only holder of the binding) chose.
async fn user_for_attempt<D: Database, F: FlagStore>(
    app: &App<D, F>,
    attempt: &Attempt,
) -> Result<Option<User>, ApiError> {
    let user = match &attempt.user_id {
        Some(id) => identity::find_user(&app.db, id).await?,
        None => {
            if !app.config.allow_signup {
                return Ok(None);
            }
            create_user_on_first_sign_in(app, &attempt.email).await?
        }
    };
    let Some(user) = user else {
        return Ok(None);
    };
    match user.status.as_str() {
        "active" => Ok(Some(user)),
        "pending" => {
            let keep_password = attempt.purpose == Purpose::VerifyEmail;
            activate(app, &user.id, keep_password).await?;
            Ok(identity::find_user(&app.db, &user.id)
                .await?
                .filter(User::is_active))
        }
        _ => Ok(None),
    }
}

/// Creates the active account of `email` unless one exists by now (a registration or another link
/// may have won the race), and returns whichever account has the address.
async fn create_user_on_first_sign_in<D: Database, F: FlagStore>(
    app: &App<D, F>,
    email: &str,
) -> Result<Option<User>, ApiError> {
    let now = app.clock.now();
    let user_id = crate::crypto::new_id(app.clock.as_ref(), app.random.as_ref())?;
    app.db
        .execute(stmt!(
            "INSERT INTO users (id, org_id, email, name, status, org_admin, must_change_password, \
             created_at, updated_at) \
             SELECT ?1, ?2, ?3, '', 'active', 0, 0, ?4, ?4 \
             WHERE NOT EXISTS (SELECT 1 FROM users WHERE org_id = ?2 AND email = ?3)",
            user_id,
            ORG_ID,
            email,
            now
        ))
        .await?;
    Ok(identity::find_user_by_email(&app.db, email).await?)
}

/// Makes a pending account active; without `keep_password`, also deletes its password in the same
/// batch. Conditional on the account still being pending, so it never touches a disabled one.
async fn activate<D: Database, F: FlagStore>(
    app: &App<D, F>,
    user_id: &str,
    keep_password: bool,
) -> Result<(), ApiError> {
    let now = app.clock.now();
    let mut statements = Vec::with_capacity(2);
    if !keep_password {
        statements.push(stmt!(
            "DELETE FROM password_credentials WHERE user_id = ?1 \
             AND EXISTS (SELECT 1 FROM users WHERE id = ?1 AND status = 'pending')",
            user_id
        ));
    }
    statements.push(stmt!(
        "UPDATE users SET status = 'active', updated_at = ?1 WHERE id = ?2 AND status = 'pending'",
        now,
        user_id
    ));
    app.db.batch(statements).await?;
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    email: String,
    password: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    session: Option<String>,
}

/// `POST /v1/auth/register` (only with `ALLOW_SIGNUP=true`).
///
/// A new address gets a pending account and a confirmation link; an existing one gets a mail
/// saying so, and nothing changes. Both answer the same `202`, and both hash the password, so
/// neither the answer nor its cost says which happened.
pub(super) async fn register<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
) -> Result<HttpResponse, ApiError> {
    if !app.config.allow_signup {
        return Err(ApiError::NotFound);
    }
    rate_limits::check_ip(app, request, IpScope::Register).await?;
    let body: RegisterBody = request.json_body()?;
    let email = normalize_email(&body.email, "email")?;
    passwords::check_policy(&body.password, "password")?;
    let name = match body.name.as_deref() {
        Some(name) if !name.trim().is_empty() => normalize_name(name, "name")?,
        _ => String::new(),
    };
    let mode = SessionMode::from_request(body.session.as_deref())?;
    if mode == SessionMode::Cookie {
        reject_foreign_origin(app, request)?;
    }
    let held = held_binding(request, mode);
    let salt: [u8; SALT_BYTES] = random_array(app.random.as_ref())?;
    let phc = passwords::hash(&body.password, &salt, app.config.pbkdf2_iterations)?;

    let existing = identity::find_user_by_email(&app.db, &email).await?;
    if !mail_allowed(app, &email).await? {
        let binding = reuse_or_new_binding(app, held)?;
        return Ok(sent_response(app, mode, &binding));
    }
    let created = match existing {
        Some(_) => None,
        None => create_pending_user(app, request, &email, &name, &phc).await?,
    };
    let binding = match created {
        Some(user_id) => {
            let (secrets, _) = magic_links::create_attempt(
                app,
                &NewAttempt {
                    email: &email,
                    user_id: Some(&user_id),
                    purpose: Purpose::VerifyEmail,
                    redirect_to: None,
                    session_mode: mode,
                    binding: held.as_deref().map(String::as_str),
                },
            )
            .await?;
            app.outbox.push(mail::link_mail(
                &app.config,
                &email,
                LinkMailKind::ConfirmAddress,
                secrets.token(),
                secrets.code(),
            ));
            Zeroizing::new(secrets.binding().to_owned())
        }
        None => {
            app.outbox
                .push(mail::already_registered_mail(&app.config, &email));
            reuse_or_new_binding(app, held)?
        }
    };
    Ok(sent_response(app, mode, &binding))
}

/// Creates a pending account with its password and an audit event in one batch, unless the address
/// is taken by then. Returns the new id, or `None` if the address was taken.
async fn create_pending_user<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    email: &str,
    name: &str,
    phc: &str,
) -> Result<Option<String>, ApiError> {
    let now = app.clock.now();
    let user_id = crate::crypto::new_id(app.clock.as_ref(), app.random.as_ref())?;
    let event = AuditEvent {
        action: "register",
        outcome: Outcome::Success,
        actor: Actor::Anonymous,
        target: Some(("user", &user_id)),
        detail: None,
    };
    let changes = app
        .db
        .batch(vec![
            stmt!(
                "INSERT INTO users (id, org_id, email, name, status, org_admin, \
                 must_change_password, created_at, updated_at) \
                 SELECT ?1, ?2, ?3, ?4, 'pending', 0, 0, ?5, ?5 \
                 WHERE NOT EXISTS (SELECT 1 FROM users WHERE org_id = ?2 AND email = ?3)",
                user_id.clone(),
                ORG_ID,
                email,
                name,
                now
            ),
            stmt!(
                "INSERT INTO password_credentials (user_id, org_id, phc, updated_at) \
                 SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM users WHERE id = ?1)",
                user_id.clone(),
                ORG_ID,
                phc,
                now
            ),
            audit::statement_if_user_exists(app, &RequestMeta::of(request), &event, &user_id)?,
        ])
        .await?;
    Ok((changes.first() == Some(&1)).then_some(user_id))
}
