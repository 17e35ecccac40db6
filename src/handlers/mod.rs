//! Route handlers, one file per resource, and the responses they share (a new or refreshed session).

mod api_keys;
mod audit;
mod auth;
mod authz;
mod bootstrap;
mod magic;
mod pages;
mod public;
mod signing_keys;
mod users;
mod workspaces;

use serde_json::json;

use crate::app::{App, Caller, Principal};
use crate::audit::Actor;
use crate::crypto::{b64url, random_array};
use crate::error::ApiError;
use crate::http::{
    clear_cookie, host_cookie, HttpRequest, HttpResponse, SameSite, ACCESS_COOKIE, REFRESH_COOKIE,
};
use crate::identity::User;
use crate::routes::RouteId;
use crate::sessions::{Session, SessionMode};
use crate::store::{Database, FlagStore};

/// Runs the handler of `route`. Exhaustive: every declared route has a handler.
pub async fn dispatch<D: Database, F: FlagStore>(
    app: &App<D, F>,
    route: RouteId,
    request: &HttpRequest,
    params: &[String],
    caller: Option<Caller>,
) -> Result<HttpResponse, ApiError> {
    match route {
        RouteId::Health => Ok(public::health()),
        RouteId::Jwks => public::jwks(app).await,
        RouteId::OpenIdConfiguration => Ok(public::openid_configuration(app)),
        RouteId::BootstrapStatus => bootstrap::status(app).await,
        RouteId::Bootstrap => bootstrap::bootstrap(app, request).await,
        RouteId::Login => auth::login(app, request).await,
        RouteId::Refresh => auth::refresh(app, request).await,
        RouteId::Logout => auth::logout(app, request, caller).await,
        RouteId::MagicLinkRequest => magic::request_link(app, request).await,
        RouteId::MagicLinkPage => magic::link_page(app, request).await,
        RouteId::MagicLinkVerify => magic::verify_link(app, request).await,
        RouteId::MagicLinkCode => magic::verify_code(app, request).await,
        RouteId::Register => magic::register(app, request).await,
        RouteId::LogoutAll => auth::logout_all(app, request, required(caller)?).await,
        RouteId::ListSessions => auth::list_sessions(app, required(caller)?).await,
        RouteId::DeleteSession => {
            auth::delete_session(app, request, required(caller)?, param(params, 0)?).await
        }
        RouteId::ChangePassword => auth::change_password(app, request, required(caller)?).await,
        RouteId::Me => auth::me(app, required(caller)?).await,
        RouteId::Verify => public::verify(app, request).await,
        RouteId::CreateApiKey => api_keys::create(app, request, required(caller)?).await,
        RouteId::ListApiKeys => api_keys::list(app, required(caller)?).await,
        RouteId::RevokeApiKey => {
            api_keys::revoke(app, request, required(caller)?, param(params, 0)?).await
        }
        RouteId::CreateUser => users::create(app, request, required(caller)?).await,
        RouteId::ListUsers => users::list(app, request, required(caller)?).await,
        RouteId::GetUser => users::get(app, required(caller)?, param(params, 0)?).await,
        RouteId::UpdateUser => {
            users::update(app, request, required(caller)?, param(params, 0)?).await
        }
        RouteId::DeleteUser => {
            users::delete(app, request, required(caller)?, param(params, 0)?).await
        }
        RouteId::DisableUser => {
            users::disable(app, request, required(caller)?, param(params, 0)?).await
        }
        RouteId::EnableUser => {
            users::enable(app, request, required(caller)?, param(params, 0)?).await
        }
        RouteId::ResetPassword => {
            users::reset_password(app, request, required(caller)?, param(params, 0)?).await
        }
        RouteId::ListUserSessions => {
            users::list_sessions(app, required(caller)?, param(params, 0)?).await
        }
        RouteId::RevokeUserSessions => {
            users::revoke_sessions(app, request, required(caller)?, param(params, 0)?).await
        }
        RouteId::CreateWorkspace => workspaces::create(app, request, required(caller)?).await,
        RouteId::ListWorkspaces => workspaces::list(app, request, required(caller)?).await,
        RouteId::GetWorkspace => workspaces::get(app, required(caller)?, param(params, 0)?).await,
        RouteId::UpdateWorkspace => {
            workspaces::update(app, request, required(caller)?, param(params, 0)?).await
        }
        RouteId::DisableWorkspace => {
            workspaces::disable(app, request, required(caller)?, param(params, 0)?).await
        }
        RouteId::ListMembers => {
            workspaces::list_members(app, request, required(caller)?, param(params, 0)?).await
        }
        RouteId::PutMember => {
            workspaces::put_member(
                app,
                request,
                required(caller)?,
                param(params, 0)?,
                param(params, 1)?,
            )
            .await
        }
        RouteId::RemoveMember => {
            workspaces::remove_member(
                app,
                request,
                required(caller)?,
                param(params, 0)?,
                param(params, 1)?,
            )
            .await
        }
        RouteId::ListRoles => authz::list_roles(app).await,
        RouteId::PutRole => {
            authz::put_role(app, request, required(caller)?, param(params, 0)?).await
        }
        RouteId::ListSigningKeys => signing_keys::list(app).await,
        RouteId::RotateSigningKey => signing_keys::rotate(app, request, required(caller)?).await,
        RouteId::Authorize => authz::authorize(app, request, caller).await,
        RouteId::AuthorizeBatch => authz::authorize_batch(app, request, caller).await,
        RouteId::Audit => audit::list(app, request).await,
        RouteId::SignInPage => Ok(pages::sign_in(app, request)),
        RouteId::SignUpPage => pages::sign_up(app),
        RouteId::CodePage => Ok(pages::code(app, request)),
        RouteId::AccountPage => Ok(crate::pages::account_page(&app.config)),
        RouteId::Asset => pages::asset(param(params, 0)?),
    }
}

/// The audit actor for a caller.
pub(crate) fn actor(caller: &Caller) -> Actor<'_> {
    match &caller.principal {
        Principal::Session { user, .. } => Actor::User(&user.id),
        Principal::ApiKey { key, .. } => Actor::ApiKey(&key.id),
    }
}

/// Records a successful change made by `caller` in the audit log.
pub(crate) async fn record_change<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    caller: &Caller,
    action: &str,
    target: (&str, &str),
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    crate::audit::record(
        app,
        &crate::app::RequestMeta::of(request),
        crate::audit::AuditEvent {
            action,
            outcome: crate::audit::Outcome::Success,
            actor: actor(caller),
            target: Some(target),
            detail: (!detail.is_null()).then_some(detail),
        },
    )
    .await?;
    Ok(())
}

/// Routes whose credential is not `None` always have a caller; this turns a broken invariant
/// into a refusal rather than a panic.
fn required(caller: Option<Caller>) -> Result<Caller, ApiError> {
    caller.ok_or(ApiError::AuthFailure)
}

fn param(params: &[String], index: usize) -> Result<&str, ApiError> {
    params
        .get(index)
        .map(String::as_str)
        .ok_or(ApiError::NotFound)
}

/// The response to a login or refresh: a fresh access token for `session`, and the refresh token in
/// the body or in cookies according to `mode`.
pub(crate) async fn session_response<D: Database, F: FlagStore>(
    app: &App<D, F>,
    user: &User,
    session: &Session,
    refresh_token: &str,
    mode: SessionMode,
) -> Result<HttpResponse, ApiError> {
    let now = app.clock.now();
    let ttl = app.config.access_token_ttl;
    let jti = b64url(&random_array::<16>(app.random.as_ref())?);
    let access_token = app
        .key_ring()
        .await?
        .sign(
            &session.access_claims(&app.config, jti),
            now,
            ttl,
            app.ed25519.as_ref(),
        )
        .await?;
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "session_id": session.id,
        "user": user.to_json(),
    });
    let mut response = match mode {
        SessionMode::Token => {
            body["refresh_token"] = json!(refresh_token);
            HttpResponse::json(200, &body)
        }
        SessionMode::Cookie => HttpResponse::json(200, &body)
            .with_header(
                "set-cookie",
                &host_cookie(ACCESS_COOKIE, &access_token, SameSite::Lax, ttl),
            )
            .with_header(
                "set-cookie",
                &host_cookie(
                    REFRESH_COOKIE,
                    refresh_token,
                    SameSite::Strict,
                    session.expires_at.min(session.absolute_expires_at) - now,
                ),
            ),
    };
    response.set_header("cache-control", "no-store");
    Ok(response)
}

/// Login CSRF: a browser posting from a foreign page always sends its `Origin`, so a present but
/// unlisted one is refused. Clients that send none (servers, CLIs) are not browsers and cannot be
/// made to carry someone else's cookies. For routes that start a session or a sign-in attempt,
/// where no credential exists yet to apply the stricter rule of [`App::require_allowed_origin`].
pub(crate) fn reject_foreign_origin<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
) -> Result<(), ApiError> {
    match request.header_value("origin") {
        Some(origin) if !app.is_allowed_request_origin(request, origin) => Err(ApiError::Csrf),
        _ => Ok(()),
    }
}

/// `204` that also deletes both session cookies.
fn no_content_clearing_cookies() -> HttpResponse {
    HttpResponse::no_content()
        .with_header("set-cookie", &clear_cookie(ACCESS_COOKIE, SameSite::Lax))
        .with_header(
            "set-cookie",
            &clear_cookie(REFRESH_COOKIE, SameSite::Strict),
        )
}
