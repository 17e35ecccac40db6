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
}

/// What the caller must be, beyond authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Nothing more.
    None,
    /// An organisation admin.
    OrgAdmin,
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
    pub const ALL: [RouteId; 14] = [
        RouteId::Health,
        RouteId::Jwks,
        RouteId::OpenIdConfiguration,
        RouteId::BootstrapStatus,
        RouteId::Bootstrap,
        RouteId::Login,
        RouteId::Refresh,
        RouteId::Logout,
        RouteId::LogoutAll,
        RouteId::ListSessions,
        RouteId::DeleteSession,
        RouteId::ChangePassword,
        RouteId::Me,
        RouteId::Verify,
    ];

    /// The declaration of this route. No default arm: a new route must be declared here.
    pub const fn spec(self) -> RouteSpec {
        use Credential as C;
        use Method::{Delete, Get, Post};
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
            RouteId::LogoutAll => spec(Post, "/v1/auth/logout-all", C::Session, R::None),
            RouteId::ListSessions => spec(Get, "/v1/auth/sessions", C::Session, R::None),
            RouteId::DeleteSession => spec(Delete, "/v1/auth/sessions/{id}", C::Session, R::None),
            RouteId::ChangePassword => spec(Post, "/v1/auth/password", C::Session, R::None),
            RouteId::Me => spec(Get, "/v1/me", C::SessionOrApiKey, R::None),
            RouteId::Verify => spec(Post, "/v1/verify", C::None, R::None),
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
