//! The application: its ports and configuration, authentication of the caller, the CSRF rule, and
//! dispatch of a request through the route table to its handler. Runtime-free: the edge builds an
//! [`App`] from D1/KV and the host tests build one from SQLite.

use std::rc::Rc;

use crate::api_keys::{self, ApiKey, KEY_PREFIX};
use crate::authz::Role;
use crate::config::Config;
use crate::error::ApiError;
use crate::flags;
use crate::handlers;
use crate::http::{HttpRequest, HttpResponse, Method, ACCESS_COOKIE};
use crate::identity::{self, User};
use crate::mail::Outbox;
use crate::rate_limits::IpLimiter;
use crate::routes::{self, Credential, Requirement, RouteId, RouteMatch};
use crate::signatures::DynEd25519Backend;
use crate::store::{BackendError, Clock, Database, FlagStore, Random};
use crate::tokens::{self, KeyCache, KeyRing, TokenError, VerifiedAccess, KEY_CACHE_SECONDS};

/// Everything a request needs: storage, flags, time, randomness and configuration.
pub struct App<D, F> {
    /// SQL executor.
    pub db: D,
    /// Revocation flags.
    pub flags: F,
    /// Clock.
    pub clock: Box<dyn Clock>,
    /// Randomness.
    pub random: Box<dyn Random>,
    /// Configuration.
    pub config: Config,
    /// Mail this request wants sent; delivered by the edge after the response.
    pub outbox: Outbox,
    /// Per-IP request limits (the Rate Limiting binding on the edge).
    pub ip_limiter: Box<dyn IpLimiter>,
    /// Ed25519 signing and verification (WebCrypto on the edge, pure Rust on the host).
    pub ed25519: Box<dyn DynEd25519Backend>,
    /// The signing keys this isolate keeps between requests (see [`KeyCache`]): one per isolate
    /// on the edge, shared by its requests.
    pub key_cache: Rc<KeyCache>,
}

impl<D, F> std::fmt::Debug for App<D, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Facts about the client recorded with sessions and audit events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMeta {
    /// `CF-Connecting-IP`.
    pub ip: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
    /// Device label given at login.
    pub device_label: Option<String>,
}

impl RequestMeta {
    /// The facts of `request`.
    pub fn of(request: &HttpRequest) -> Self {
        RequestMeta {
            ip: request.client_ip(),
            user_agent: request.user_agent(),
            device_label: None,
        }
    }
}

/// Who is calling, as proven by a credential.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A person, through an access token of a session.
    Session {
        /// The user (active).
        user: User,
        /// The verified token.
        access: VerifiedAccess,
    },
    /// A program, through an API key.
    ApiKey {
        /// The key's owner (active).
        user: User,
        /// The key.
        key: ApiKey,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// Whether the credential came from a cookie (and so state changes need an allowed Origin).
    pub via_cookie: bool,
}

impl Caller {
    /// The user behind the credential.
    pub fn user(&self) -> &User {
        match &self.principal {
            Principal::Session { user, .. } | Principal::ApiKey { user, .. } => user,
        }
    }

    /// Whether the caller acts with org-admin powers. An API key does only if its owner is an org
    /// admin and the key is neither scoped to a workspace nor capped below `admin`.
    pub fn is_org_admin(&self) -> bool {
        match &self.principal {
            Principal::Session { user, .. } => user.org_admin,
            Principal::ApiKey { user, key } => {
                user.org_admin
                    && key.workspace_id.is_none()
                    && key.role.as_deref().is_none_or(|r| r == "admin")
            }
        }
    }

    /// The caller's role in `workspace_id`, given its owner's memberships: an API key's role is capped
    /// by its ceiling, and a key scoped to another workspace has none here.
    pub fn role_in(
        &self,
        workspace_id: &str,
        memberships: &[identity::Membership],
    ) -> Option<Role> {
        let role = memberships
            .iter()
            .find(|m| m.workspace_id == workspace_id)
            .and_then(|m| Role::parse(&m.role))?;
        match &self.principal {
            Principal::Session { .. } => Some(role),
            Principal::ApiKey { key, .. } => {
                if key
                    .workspace_id
                    .as_deref()
                    .is_some_and(|w| w != workspace_id)
                {
                    return None;
                }
                let ceiling = match key.role.as_deref() {
                    Some(name) => Some(Role::parse(name)?),
                    None => None,
                };
                Some(role.capped(ceiling))
            }
        }
    }

    /// The session id, for session callers.
    pub fn session_id(&self) -> Option<&str> {
        match &self.principal {
            Principal::Session { access, .. } => Some(access.claims().sid.as_str()),
            Principal::ApiKey { .. } => None,
        }
    }
}

/// Request headers a browser may send cross-origin (after a preflight).
pub const CORS_ALLOW_HEADERS: &str = "authorization, content-type";
/// Response headers a cross-origin script may read beyond the CORS-safelisted ones.
pub const CORS_EXPOSE_HEADERS: &str = "retry-after, allow";
/// How long a browser may cache a preflight answer, seconds.
const CORS_MAX_AGE: &str = "600";

/// Whether `request` is a CORS preflight.
fn is_preflight(request: &HttpRequest) -> bool {
    request.method == Method::Options
        && request.header_value("origin").is_some()
        && request
            .header_value("access-control-request-method")
            .is_some()
}

impl<D: Database, F: FlagStore> App<D, F> {
    /// Answers one request. Never panics on client input; every error becomes its mapped response.
    pub async fn handle(&self, request: &HttpRequest) -> HttpResponse {
        let outcome = if is_preflight(request) {
            self.preflight(request)
        } else {
            self.route(request).await
        };
        self.finish(request, outcome)
    }

    /// The headers every response gets (CORS for the configured origins, `Vary: Origin`,
    /// `no-store` unless the handler chose a cache policy, `nosniff`), on an answer or on a
    /// refusal. The edge also uses it for requests refused before a handler runs (a body over
    /// 64 KiB, absurd headers), whose `request` carries headers but no body.
    pub fn finish(
        &self,
        request: &HttpRequest,
        outcome: Result<HttpResponse, ApiError>,
    ) -> HttpResponse {
        let mut response = match outcome {
            Ok(response) => response,
            Err(error) => error.to_response(),
        };
        self.add_cors_headers(request, &mut response);
        // Identity responses are personal: nothing is cached unless a handler says otherwise.
        if response.header_value("cache-control").is_none() {
            response.set_header("cache-control", "no-store");
        }
        response.set_header("x-content-type-options", "nosniff");
        if request.method == Method::Head {
            response.body.clear();
        }
        response
    }

    /// Answers a CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`). Only
    /// the configured origins get one: any other origin is `403` (and, like every response to it,
    /// carries no CORS header, so the browser refuses the real request). An unknown path is `404`
    /// and a method the path does not take `405`, as for the real request.
    fn preflight(&self, request: &HttpRequest) -> Result<HttpResponse, ApiError> {
        let origin = request.header_value("origin").unwrap_or_default();
        if !self.config.is_allowed_origin(origin) {
            return Err(ApiError::Forbidden);
        }
        let requested = request
            .header_value("access-control-request-method")
            .map(Method::parse)
            .unwrap_or(Method::Other);
        // No route takes OPTIONS, so a known path always answers with the methods it does take.
        let allow = match routes::resolve(Method::Options, &request.path) {
            RouteMatch::MethodNotAllowed(allow) => allow,
            RouteMatch::Found(..) | RouteMatch::NotFound => return Err(ApiError::NotFound),
        };
        if requested == Method::Other || !allow.contains(&requested) {
            return Err(ApiError::MethodNotAllowed { allow });
        }
        let methods: Vec<&str> = allow.iter().map(|m| m.as_str()).collect();
        Ok(HttpResponse::no_content()
            .with_header("access-control-allow-methods", &methods.join(", "))
            .with_header("access-control-allow-headers", CORS_ALLOW_HEADERS)
            .with_header("access-control-max-age", CORS_MAX_AGE))
    }

    /// CORS for the configured origins only: the request's own `Origin` echoed back (never `*`,
    /// never a foreign origin) with `Access-Control-Allow-Credentials`. Every response varies by
    /// `Origin`, so a shared cache never hands one origin's answer to another.
    fn add_cors_headers(&self, request: &HttpRequest, response: &mut HttpResponse) {
        let vary = match response.header_value("vary") {
            Some(existing) if !existing.to_ascii_lowercase().contains("origin") => {
                format!("{existing}, Origin")
            }
            Some(existing) => existing.to_owned(),
            None => "Origin".to_owned(),
        };
        response.set_header("vary", &vary);
        let Some(origin) = request.header_value("origin") else {
            return;
        };
        if !self.config.is_allowed_origin(origin) {
            return;
        }
        response.set_header("access-control-allow-origin", origin);
        response.set_header("access-control-allow-credentials", "true");
        if !is_preflight(request) {
            response.set_header("access-control-expose-headers", CORS_EXPOSE_HEADERS);
        }
    }

    async fn route(&self, request: &HttpRequest) -> Result<HttpResponse, ApiError> {
        let (route, params) = match routes::resolve(request.method, &request.path) {
            RouteMatch::Found(route, params) => (route, params),
            RouteMatch::MethodNotAllowed(allow) => {
                return Err(ApiError::MethodNotAllowed { allow })
            }
            RouteMatch::NotFound => return Err(ApiError::NotFound),
        };
        let spec = route.spec();
        let caller = self.authenticate(request, spec.credential).await?;
        if let Some(caller) = &caller {
            if caller.via_cookie && request.method.is_state_changing() {
                self.require_allowed_origin(request)?;
            }
        }
        self.check_requirement(spec.requirement, caller.as_ref(), &params)
            .await?;
        // After an admin reset, the user's session may only change the password (and see who it
        // is, or leave) until the password is changed.
        if let Some(caller) = &caller {
            let allowed_while_reset = matches!(
                route,
                RouteId::ChangePassword | RouteId::Me | RouteId::Logout | RouteId::LogoutAll
            );
            if caller.user().must_change_password
                && caller.session_id().is_some()
                && !allowed_while_reset
            {
                return Err(ApiError::Forbidden);
            }
        }
        handlers::dispatch(self, route, request, &params, caller).await
    }

    /// Checks a route's requirement. A requirement with no caller fails closed, whatever the
    /// credential kind says.
    async fn check_requirement(
        &self,
        requirement: Requirement,
        caller: Option<&Caller>,
        params: &[String],
    ) -> Result<(), ApiError> {
        if requirement == Requirement::None {
            return Ok(());
        }
        let caller = caller.ok_or(ApiError::AuthFailure)?;
        if caller.is_org_admin() {
            return Ok(());
        }
        let target = params.first().map(String::as_str).unwrap_or_default();
        let allowed = match requirement {
            Requirement::None => true,
            Requirement::OrgAdmin => false,
            Requirement::OrgAdminOrSelf => caller.user().id == target,
            Requirement::WorkspaceAdmin | Requirement::WorkspaceMember => {
                let memberships = identity::find_memberships(&self.db, &caller.user().id).await?;
                match caller.role_in(target, &memberships) {
                    Some(role) => {
                        requirement == Requirement::WorkspaceMember || role == Role::Admin
                    }
                    None => false,
                }
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// The CSRF rule: a cookie-authenticated state change must carry an allowed `Origin`.
    pub fn require_allowed_origin(&self, request: &HttpRequest) -> Result<(), ApiError> {
        match request.header_value("origin") {
            Some(origin) if self.is_allowed_request_origin(request, origin) => Ok(()),
            _ => Err(ApiError::Csrf),
        }
    }

    /// Whether `origin`, the request's `Origin` header, may make a cookie-carrying state change.
    ///
    /// Besides the configured origins, `null` is accepted when the browser itself says the request
    /// comes from our own origin (`Sec-Fetch-Site: same-origin`): our pages are served with
    /// `Referrer-Policy: no-referrer`, under which browsers send `Origin: null` on form posts, such
    /// as the magic-link confirmation. Browsers set `Sec-Fetch-Site` and scripts cannot, so a
    /// foreign page (or a sandboxed frame, whose origin is also `null`) cannot claim it; clients
    /// that are not browsers can send anything, but they do not hold anyone else's cookies.
    pub fn is_allowed_request_origin(&self, request: &HttpRequest, origin: &str) -> bool {
        self.config.is_allowed_origin(origin)
            || (origin == "null" && request.header_value("sec-fetch-site") == Some("same-origin"))
    }

    /// Establishes the caller for a route's credential kind. The Bearer header wins over the cookie.
    async fn authenticate(
        &self,
        request: &HttpRequest,
        credential: Credential,
    ) -> Result<Option<Caller>, ApiError> {
        if credential == Credential::None {
            return Ok(None);
        }
        let (presented, via_cookie) = match request.bearer() {
            Some(token) => (Some(token.to_owned()), false),
            None => (request.cookie(ACCESS_COOKIE), true),
        };
        let Some(presented) = presented else {
            return match credential {
                // The handler may still find the session through the refresh token, or judge the
                // token in the body.
                Credential::SessionOrRefresh | Credential::BodyTokenOrCaller => Ok(None),
                _ => Err(ApiError::AuthFailure),
            };
        };
        if presented.starts_with(KEY_PREFIX) {
            let Some((user, key)) = self.resolve_api_key(&presented).await? else {
                return Err(ApiError::AuthFailure);
            };
            // Routes that belong to a person's session are not for programs.
            if !matches!(
                credential,
                Credential::SessionOrApiKey | Credential::BodyTokenOrCaller
            ) {
                return Err(ApiError::Forbidden);
            }
            return Ok(Some(Caller {
                principal: Principal::ApiKey { user, key },
                via_cookie,
            }));
        }
        match self.resolve_access_token(&presented).await? {
            Some((user, access)) => Ok(Some(Caller {
                principal: Principal::Session { user, access },
                via_cookie,
            })),
            None if matches!(
                credential,
                Credential::SessionOrRefresh | Credential::BodyTokenOrCaller
            ) =>
            {
                Ok(None)
            }
            None => Err(ApiError::AuthFailure),
        }
    }

    /// The live owner and record of an API key, or `None`.
    pub async fn resolve_api_key(
        &self,
        presented: &str,
    ) -> Result<Option<(User, ApiKey)>, BackendError> {
        let Some(key) =
            api_keys::resolve(&self.db, &self.flags, presented, self.clock.now()).await?
        else {
            return Ok(None);
        };
        Ok(identity::find_user(&self.db, &key.user_id)
            .await?
            .filter(User::is_active)
            .map(|user| (user, key)))
    }

    /// The caller a presented credential stands for (an API key or an access token), or `None` if it
    /// is not a live one. Used where the token to judge arrives in a body.
    pub async fn caller_for_token(&self, token: &str) -> Result<Option<Caller>, BackendError> {
        let principal = if token.starts_with(KEY_PREFIX) {
            self.resolve_api_key(token)
                .await?
                .map(|(user, key)| Principal::ApiKey { user, key })
        } else {
            self.resolve_access_token(token)
                .await?
                .map(|(user, access)| Principal::Session { user, access })
        };
        Ok(principal.map(|principal| Caller {
            principal,
            via_cookie: false,
        }))
    }

    /// Verifies an access token: signature and claims, then the KV revocation flags. The keys
    /// come from this isolate's [`KeyCache`]; a `kid` it does not hold makes it read D1 again at
    /// once (a key another isolate has just created), so the cache never refuses a valid token.
    pub async fn verify_access(&self, token: &str) -> Result<Option<VerifiedAccess>, BackendError> {
        let now = self.clock.now();
        let (ring, fresh) = self.verification_key_ring().await?;
        let mut outcome = self.verify_with_ring(token, &ring, now).await?;
        if outcome == Err(TokenError::UnknownKey) && !fresh {
            let ring = self.key_ring().await?;
            outcome = self.verify_with_ring(token, &ring, now).await?;
        }
        let Ok(access) = outcome else {
            return Ok(None);
        };
        let claims = access.claims();
        if flags::is_access_revoked(&self.flags, &claims.sid, &claims.sub, access.issued_at())
            .await?
        {
            return Ok(None);
        }
        Ok(Some(access))
    }

    async fn verify_with_ring(
        &self,
        token: &str,
        ring: &KeyRing,
        now: i64,
    ) -> Result<Result<VerifiedAccess, TokenError>, BackendError> {
        tokens::verify_access_token_cached(
            token,
            ring,
            &self.config,
            now,
            self.ed25519.as_ref(),
            self.key_cache.verified_tokens(),
        )
        .await
    }

    async fn resolve_access_token(
        &self,
        token: &str,
    ) -> Result<Option<(User, VerifiedAccess)>, BackendError> {
        let Some(access) = self.verify_access(token).await? else {
            return Ok(None);
        };
        Ok(identity::find_user(&self.db, &access.claims().sub)
            .await?
            .filter(User::is_active)
            .map(|user| (user, access)))
    }

    /// The published signing keys, read from D1 (creating the first one on first use). Signing,
    /// the JWKS and the key list use this, so they never act on a key list older than the request.
    pub async fn key_ring(&self) -> Result<Rc<KeyRing>, BackendError> {
        KeyRing::load(
            &self.db,
            &self.config,
            self.clock.as_ref(),
            self.random.as_ref(),
            self.ed25519.as_ref(),
            &self.key_cache,
        )
        .await
    }

    /// The keys for verification: this isolate's kept ring while it is recent enough (see
    /// [`KeyCache`] for why that is as good as reading D1), else a fresh one. Never kept longer than
    /// a retired key's overlap. The flag says whether the ring was read by this call.
    async fn verification_key_ring(&self) -> Result<(Rc<KeyRing>, bool), BackendError> {
        let max_age = KEY_CACHE_SECONDS.min(crate::signing_keys::overlap_seconds(&self.config));
        KeyRing::cached(
            &self.db,
            &self.config,
            self.clock.as_ref(),
            self.random.as_ref(),
            self.ed25519.as_ref(),
            &self.key_cache,
            max_age,
        )
        .await
    }
}
