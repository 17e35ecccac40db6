//! The route table: every route, declared once, with the credential it needs and what it requires.
//! [`RouteId::spec`] is an exhaustive `match`, so a route without a declaration does not build; the
//! end-to-end role x endpoint matrix walks [`RouteId::ALL`].

use crate::http::Method;

/// What a route accepts as proof of who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// No caller credential: public, or the credential is the subject of the request itself
    /// (a token to verify, a password to check, a bootstrap token).
    None,
    /// A person's session (access token by Bearer or cookie). API keys get `403`.
    Session,
    /// A person's session, or the refresh token (cookie or body) that names one. API keys get `403`.
    SessionOrRefresh,
    /// A session or an API key.
    SessionOrApiKey,
    /// The subject is a `token` in the body when one is given (no caller credential needed);
    /// otherwise the caller's own session or API key is judged.
    BodyTokenOrCaller,
}

/// What the caller must be, beyond authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Nothing more.
    None,
    /// An organisation admin.
    OrgAdmin,
    /// An organisation admin, or the user named by the path's `{id}` (self-service).
    OrgAdminOrSelf,
    /// An organisation admin, or an `admin` of the workspace named by the path's `{id}`.
    WorkspaceAdmin,
    /// An organisation admin, or any member of the workspace named by the path's `{id}`.
    WorkspaceMember,
}

/// A route's declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    /// Method.
    pub method: Method,
    /// Path pattern; `{name}` matches one segment.
    pub pattern: &'static str,
    /// Credential accepted.
    pub credential: Credential,
    /// Requirement on the caller.
    pub requirement: Requirement,
}

/// Every route of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteId {
    /// `GET /health`
    Health,
    /// `GET /.well-known/jwks.json`
    Jwks,
    /// `GET /.well-known/openid-configuration`
    OpenIdConfiguration,
    /// `GET /v1/bootstrap`
    BootstrapStatus,
    /// `POST /v1/bootstrap`
    Bootstrap,
    /// `POST /v1/auth/login`
    Login,
    /// `POST /v1/auth/refresh`
    Refresh,
    /// `POST /v1/auth/logout`
    Logout,
    /// `POST /v1/auth/magic-link`
    MagicLinkRequest,
    /// `GET /v1/auth/magic-link/verify` (the confirmation page; consumes nothing)
    MagicLinkPage,
    /// `POST /v1/auth/magic-link/verify`
    MagicLinkVerify,
    /// `POST /v1/auth/magic-link/code`
    MagicLinkCode,
    /// `POST /v1/auth/register`
    Register,
    /// `POST /v1/auth/logout-all`
    LogoutAll,
    /// `GET /v1/auth/sessions`
    ListSessions,
    /// `DELETE /v1/auth/sessions/{id}`
    DeleteSession,
    /// `POST /v1/auth/password`
    ChangePassword,
    /// `GET /v1/me`
    Me,
    /// `POST /v1/verify`
    Verify,
    /// `POST /v1/api-keys`
    CreateApiKey,
    /// `GET /v1/api-keys`
    ListApiKeys,
    /// `DELETE /v1/api-keys/{id}`
    RevokeApiKey,
    /// `POST /v1/users`
    CreateUser,
    /// `GET /v1/users`
    ListUsers,
    /// `GET /v1/users/{id}`
    GetUser,
    /// `PATCH /v1/users/{id}`
    UpdateUser,
    /// `DELETE /v1/users/{id}`
    DeleteUser,
    /// `POST /v1/users/{id}/disable`
    DisableUser,
    /// `POST /v1/users/{id}/enable`
    EnableUser,
    /// `POST /v1/users/{id}/reset-password`
    ResetPassword,
    /// `GET /v1/users/{id}/sessions`
    ListUserSessions,
    /// `DELETE /v1/users/{id}/sessions`
    RevokeUserSessions,
    /// `POST /v1/workspaces`
    CreateWorkspace,
    /// `GET /v1/workspaces`
    ListWorkspaces,
    /// `GET /v1/workspaces/{id}`
    GetWorkspace,
    /// `PATCH /v1/workspaces/{id}`
    UpdateWorkspace,
    /// `POST /v1/workspaces/{id}/disable`
    DisableWorkspace,
    /// `GET /v1/workspaces/{id}/members`
    ListMembers,
    /// `PUT /v1/workspaces/{id}/members/{user_id}`
    PutMember,
    /// `DELETE /v1/workspaces/{id}/members/{user_id}`
    RemoveMember,
    /// `GET /v1/roles`
    ListRoles,
    /// `PUT /v1/roles/{role}`
    PutRole,
    /// `GET /v1/signing-keys`
    ListSigningKeys,
    /// `POST /v1/signing-keys/rotate`
    RotateSigningKey,
    /// `POST /v1/authorize`
    Authorize,
    /// `POST /v1/authorize/batch`
    AuthorizeBatch,
    /// `GET /v1/audit`
    Audit,
    /// `GET /login` (sign-in page)
    SignInPage,
    /// `GET /signup` (sign-up page)
    SignUpPage,
    /// `GET /login/code` (code entry page)
    CodePage,
    /// `GET /account` (the signed-in user's sessions)
    AccountPage,
    /// `GET /assets/{name}` (the pages' script and stylesheet)
    Asset,
}

const fn spec(
    method: Method,
    pattern: &'static str,
    credential: Credential,
    requirement: Requirement,
) -> RouteSpec {
    RouteSpec {
        method,
        pattern,
        credential,
        requirement,
    }
}

impl RouteId {
    /// Every route, in matching order.
    pub const ALL: [RouteId; 52] = [
        RouteId::Health,
        RouteId::Jwks,
        RouteId::OpenIdConfiguration,
        RouteId::BootstrapStatus,
        RouteId::Bootstrap,
        RouteId::Login,
        RouteId::Refresh,
        RouteId::Logout,
        RouteId::MagicLinkRequest,
        RouteId::MagicLinkPage,
        RouteId::MagicLinkVerify,
        RouteId::MagicLinkCode,
        RouteId::Register,
        RouteId::LogoutAll,
        RouteId::ListSessions,
        RouteId::DeleteSession,
        RouteId::ChangePassword,
        RouteId::Me,
        RouteId::Verify,
        RouteId::CreateApiKey,
        RouteId::ListApiKeys,
        RouteId::RevokeApiKey,
        RouteId::CreateUser,
        RouteId::ListUsers,
        RouteId::GetUser,
        RouteId::UpdateUser,
        RouteId::DeleteUser,
        RouteId::DisableUser,
        RouteId::EnableUser,
        RouteId::ResetPassword,
        RouteId::ListUserSessions,
        RouteId::RevokeUserSessions,
        RouteId::CreateWorkspace,
        RouteId::ListWorkspaces,
        RouteId::GetWorkspace,
        RouteId::UpdateWorkspace,
        RouteId::DisableWorkspace,
        RouteId::ListMembers,
        RouteId::PutMember,
        RouteId::RemoveMember,
        RouteId::ListRoles,
        RouteId::PutRole,
        RouteId::ListSigningKeys,
        RouteId::RotateSigningKey,
        RouteId::Authorize,
        RouteId::AuthorizeBatch,
        RouteId::Audit,
        RouteId::SignInPage,
        RouteId::SignUpPage,
        RouteId::CodePage,
        RouteId::AccountPage,
        RouteId::Asset,
    ];

    /// The declaration of this route. No default arm: a new route must be declared here.
    pub const fn spec(self) -> RouteSpec {
        use Credential as C;
        use Method::{Delete, Get, Patch, Post, Put};
        use Requirement as R;
        match self {
            RouteId::Health => spec(Get, "/health", C::None, R::None),
            RouteId::Jwks => spec(Get, "/.well-known/jwks.json", C::None, R::None),
            RouteId::OpenIdConfiguration => {
                spec(Get, "/.well-known/openid-configuration", C::None, R::None)
            }
            RouteId::BootstrapStatus => spec(Get, "/v1/bootstrap", C::None, R::None),
            RouteId::Bootstrap => spec(Post, "/v1/bootstrap", C::None, R::None),
            RouteId::Login => spec(Post, "/v1/auth/login", C::None, R::None),
            // The refresh token is the credential, read by the handler (with the CSRF rule).
            RouteId::Refresh => spec(Post, "/v1/auth/refresh", C::None, R::None),
            RouteId::Logout => spec(Post, "/v1/auth/logout", C::SessionOrRefresh, R::None),
            // The magic-link routes need no caller credential: the mail's token or code and the
            // browser's binding are the proof, checked by the handlers.
            RouteId::MagicLinkRequest => spec(Post, "/v1/auth/magic-link", C::None, R::None),
            RouteId::MagicLinkPage => spec(Get, "/v1/auth/magic-link/verify", C::None, R::None),
            RouteId::MagicLinkVerify => spec(Post, "/v1/auth/magic-link/verify", C::None, R::None),
            RouteId::MagicLinkCode => spec(Post, "/v1/auth/magic-link/code", C::None, R::None),
            RouteId::Register => spec(Post, "/v1/auth/register", C::None, R::None),
            RouteId::LogoutAll => spec(Post, "/v1/auth/logout-all", C::Session, R::None),
            RouteId::ListSessions => spec(Get, "/v1/auth/sessions", C::Session, R::None),
            RouteId::DeleteSession => spec(Delete, "/v1/auth/sessions/{id}", C::Session, R::None),
            RouteId::ChangePassword => spec(Post, "/v1/auth/password", C::Session, R::None),
            RouteId::Me => spec(Get, "/v1/me", C::SessionOrApiKey, R::None),
            RouteId::Verify => spec(Post, "/v1/verify", C::None, R::None),
            // A caller manages its own keys; what a key may do is capped by its creator's rights.
            RouteId::CreateApiKey => spec(Post, "/v1/api-keys", C::SessionOrApiKey, R::None),
            RouteId::ListApiKeys => spec(Get, "/v1/api-keys", C::SessionOrApiKey, R::None),
            RouteId::RevokeApiKey => spec(Delete, "/v1/api-keys/{id}", C::SessionOrApiKey, R::None),
            RouteId::CreateUser => spec(Post, "/v1/users", C::SessionOrApiKey, R::OrgAdmin),
            RouteId::ListUsers => spec(Get, "/v1/users", C::SessionOrApiKey, R::OrgAdmin),
            RouteId::GetUser => spec(Get, "/v1/users/{id}", C::SessionOrApiKey, R::OrgAdminOrSelf),
            RouteId::UpdateUser => spec(
                Patch,
                "/v1/users/{id}",
                C::SessionOrApiKey,
                R::OrgAdminOrSelf,
            ),
            RouteId::DeleteUser => spec(Delete, "/v1/users/{id}", C::SessionOrApiKey, R::OrgAdmin),
            RouteId::DisableUser => spec(
                Post,
                "/v1/users/{id}/disable",
                C::SessionOrApiKey,
                R::OrgAdmin,
            ),
            RouteId::EnableUser => spec(
                Post,
                "/v1/users/{id}/enable",
                C::SessionOrApiKey,
                R::OrgAdmin,
            ),
            RouteId::ResetPassword => spec(
                Post,
                "/v1/users/{id}/reset-password",
                C::SessionOrApiKey,
                R::OrgAdmin,
            ),
            RouteId::ListUserSessions => spec(
                Get,
                "/v1/users/{id}/sessions",
                C::SessionOrApiKey,
                R::OrgAdmin,
            ),
            RouteId::RevokeUserSessions => spec(
                Delete,
                "/v1/users/{id}/sessions",
                C::SessionOrApiKey,
                R::OrgAdmin,
            ),
            RouteId::CreateWorkspace => {
                spec(Post, "/v1/workspaces", C::SessionOrApiKey, R::OrgAdmin)
            }
            // Lists what the caller may see: every workspace for org admins, else its own.
            RouteId::ListWorkspaces => spec(Get, "/v1/workspaces", C::SessionOrApiKey, R::None),
            RouteId::GetWorkspace => spec(
                Get,
                "/v1/workspaces/{id}",
                C::SessionOrApiKey,
                R::WorkspaceMember,
            ),
            RouteId::UpdateWorkspace => spec(
                Patch,
                "/v1/workspaces/{id}",
                C::SessionOrApiKey,
                R::OrgAdmin,
            ),
            RouteId::DisableWorkspace => spec(
                Post,
                "/v1/workspaces/{id}/disable",
                C::SessionOrApiKey,
                R::OrgAdmin,
            ),
            RouteId::ListMembers => spec(
                Get,
                "/v1/workspaces/{id}/members",
                C::SessionOrApiKey,
                R::WorkspaceAdmin,
            ),
            RouteId::PutMember => spec(
                Put,
                "/v1/workspaces/{id}/members/{user_id}",
                C::SessionOrApiKey,
                R::WorkspaceAdmin,
            ),
            RouteId::RemoveMember => spec(
                Delete,
                "/v1/workspaces/{id}/members/{user_id}",
                C::SessionOrApiKey,
                R::WorkspaceAdmin,
            ),
            RouteId::ListRoles => spec(Get, "/v1/roles", C::SessionOrApiKey, R::OrgAdmin),
            RouteId::PutRole => spec(Put, "/v1/roles/{role}", C::SessionOrApiKey, R::OrgAdmin),
            RouteId::ListSigningKeys => {
                spec(Get, "/v1/signing-keys", C::SessionOrApiKey, R::OrgAdmin)
            }
            RouteId::RotateSigningKey => spec(
                Post,
                "/v1/signing-keys/rotate",
                C::SessionOrApiKey,
                R::OrgAdmin,
            ),
            RouteId::Authorize => spec(Post, "/v1/authorize", C::BodyTokenOrCaller, R::None),
            RouteId::AuthorizeBatch => {
                spec(Post, "/v1/authorize/batch", C::BodyTokenOrCaller, R::None)
            }
            RouteId::Audit => spec(Get, "/v1/audit", C::SessionOrApiKey, R::OrgAdmin),
            // Pages are public HTML; the account page's script calls the session routes, which
            // check the credential.
            RouteId::SignInPage => spec(Get, "/login", C::None, R::None),
            RouteId::SignUpPage => spec(Get, "/signup", C::None, R::None),
            RouteId::CodePage => spec(Get, "/login/code", C::None, R::None),
            RouteId::AccountPage => spec(Get, "/account", C::None, R::None),
            RouteId::Asset => spec(Get, "/assets/{name}", C::None, R::None),
        }
    }
}

/// The outcome of matching a request line against the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch {
    /// A route, with the values of its `{params}` in order.
    Found(RouteId, Vec<String>),
    /// The path exists under other methods (listed, for the `Allow` header).
    MethodNotAllowed(Vec<Method>),
    /// No such path.
    NotFound,
}

/// Matches `method` and `path`. `HEAD` matches `GET` routes.
pub fn resolve(method: Method, path: &str) -> RouteMatch {
    let effective = if method == Method::Head {
        Method::Get
    } else {
        method
    };
    let mut allowed = Vec::new();
    for id in RouteId::ALL {
        let spec = id.spec();
        if let Some(params) = match_pattern(spec.pattern, path) {
            if spec.method == effective {
                return RouteMatch::Found(id, params);
            }
            allowed.push(spec.method);
        }
    }
    if allowed.is_empty() {
        RouteMatch::NotFound
    } else {
        if allowed.contains(&Method::Get) {
            allowed.push(Method::Head);
        }
        RouteMatch::MethodNotAllowed(allowed)
    }
}

fn match_pattern(pattern: &str, path: &str) -> Option<Vec<String>> {
    let mut pattern_parts = pattern.split('/');
    let mut path_parts = path.split('/');
    let mut params = Vec::new();
    loop {
        match (pattern_parts.next(), path_parts.next()) {
            (None, None) => return Some(params),
            (Some(p), Some(s)) if p.starts_with('{') && p.ends_with('}') => {
                if s.is_empty() {
                    return None;
                }
                params.push(s.to_owned());
            }
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}
