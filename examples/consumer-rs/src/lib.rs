//! A Worker that accepts edgeauth access tokens: the recipe for a Rust consumer.
//!
//! - `GET /offline`: the token is verified here, against edgeauth's JWKS (fetched through the
//!   `EDGEAUTH` service binding, cached in the isolate). No round trip per request, but a token
//!   stays valid until its `exp` even after logout (at most `ACCESS_TOKEN_TTL`, 10 min by default).
//!   A token signed by a key newer than our copy of the JWKS, while a refetch is not yet allowed,
//!   is checked by edgeauth instead of being refused.
//! - `GET /checked`: the same, then `POST /v1/verify` through the binding, which also sees
//!   revocations (logout, disabled user, changed password) as soon as KV has them.
//! - `GET /authorized?capability=docs:read&workspace=<id>`: `POST /v1/authorize` through the binding.
//!
//! Answers: `200` JSON, `401 {"error": reason}` for a missing, invalid or revoked token, `403` for a
//! denial, `503` when edgeauth cannot be asked (fail closed).

use std::cell::RefCell;
use std::rc::Rc;

use edgeauth::edge::binding::{self, Check};
use edgeauth::verifier::{self, Expected, Jwks, TokenError};
use serde_json::{json, Value};
use worker::{console_error, event, Context, Date, Env, Fetcher, Method, Request, Response};

/// An unknown `kid` refetches the JWKS at most this often (a stream of forged kids must not turn
/// into a stream of requests to edgeauth).
const REFETCH_INTERVAL_MS: u64 = 10_000;
/// How long the JWKS is used when edgeauth's response names no `max-age`.
const DEFAULT_MAX_AGE_S: u32 = 300;

/// The JWKS as last fetched. An isolate serves one request at a time per thread (wasm has one).
struct CachedJwks {
    jwks: Rc<Jwks>,
    fetched_at_ms: u64,
    fresh_until_ms: u64,
}

thread_local! {
    static JWKS: RefCell<Option<CachedJwks>> = const { RefCell::new(None) };
}

/// Why a request is refused.
enum Refusal {
    /// `401`: no token, or one that is invalid or no longer active.
    Unauthorized(&'static str),
    /// `403`: a valid caller without the capability.
    Forbidden,
    /// `400`: a malformed request.
    BadRequest(&'static str),
    /// `503`: edgeauth could not be asked, or this Worker is misconfigured.
    Unavailable(String),
}

impl From<worker::Error> for Refusal {
    fn from(error: worker::Error) -> Self {
        Refusal::Unavailable(error.to_string())
    }
}

#[event(fetch)]
async fn fetch(request: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let answer = match (request.method(), request.path().as_str()) {
        (Method::Get, "/offline") => offline(&request, &env).await,
        (Method::Get, "/checked") => checked(&request, &env).await,
        (Method::Get, "/authorized") => authorized(&request, &env).await,
        _ => return json_response(404, &json!({ "error": "not_found" })),
    };
    match answer {
        Ok(body) => json_response(200, &body),
        Err(Refusal::Unauthorized(reason)) => json_response(401, &json!({ "error": reason })),
        Err(Refusal::Forbidden) => json_response(403, &json!({ "error": "forbidden" })),
        Err(Refusal::BadRequest(reason)) => json_response(400, &json!({ "error": reason })),
        Err(Refusal::Unavailable(detail)) => {
            console_error!("edgeauth unavailable: {detail}");
            json_response(503, &json!({ "error": "unavailable" }))
        }
    }
}

async fn offline(request: &Request, env: &Env) -> Result<Value, Refusal> {
    let token = bearer(request)?;
    let who = verify_offline(&token, env).await?;
    Ok(identity(&token, &who, "offline"))
}

async fn checked(request: &Request, env: &Env) -> Result<Value, Refusal> {
    let token = bearer(request)?;
    let who = verify_offline(&token, env).await?;
    // Offline checks cannot see a logout: ask edgeauth, which reads the revocation flags.
    let verdict = binding::verify_remote(&edgeauth(env)?, &token).await?;
    if !verdict.active {
        return Err(Refusal::Unauthorized("inactive"));
    }
    Ok(identity(&token, &who, "checked"))
}

async fn authorized(request: &Request, env: &Env) -> Result<Value, Refusal> {
    let token = bearer(request)?;
    let url = request.url()?;
    let param = |name: &str| {
        url.query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    let capability = param("capability").ok_or(Refusal::BadRequest("capability is required"))?;
    let workspace = param("workspace");
    let check = Check {
        capability: &capability,
        workspace: workspace.as_deref(),
        resource: None,
    };
    // edgeauth judges the token too: an invalid or revoked one is a denial.
    let decision = binding::authorize_remote(&edgeauth(env)?, &token, &check).await?;
    if !decision.allow {
        return Err(Refusal::Forbidden);
    }
    Ok(json!({ "allow": true, "ttl": decision.ttl, "path": "authorized" }))
}

/// Who a token names.
struct Identity {
    sub: String,
    sid: String,
}

fn identity(token: &str, who: &Identity, path: &str) -> Value {
    // The token was accepted, so its header's `kid` is the key that signed it.
    let kid = verifier::unverified_key_id(token);
    json!({ "sub": who.sub, "sid": who.sid, "kid": kid, "path": path })
}

/// Verifies the Bearer token against the cached JWKS; an unknown `kid` refreshes the cache once
/// (edgeauth may have rotated its key since we fetched it). If the kid is still unknown, because
/// the refetch was not allowed yet or the key really is not edgeauth's, edgeauth is asked: it
/// accepts a token from a key it just made and refuses everything else, so a rotation never turns
/// valid tokens away here.
async fn verify_offline(token: &str, env: &Env) -> Result<Identity, Refusal> {
    let (issuer, audience) = (var(env, "EDGEAUTH_ISSUER")?, var(env, "EDGEAUTH_AUDIENCE")?);
    let expected = Expected::new(&issuer, &audience);
    let edgeauth = edgeauth(env)?;
    let now_ms = Date::now().as_millis();
    let now = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
    let jwks = cached_jwks(&edgeauth, now_ms, false).await?;
    let result = match verifier::verify(token, jwks.as_ref(), &expected, now) {
        Err(TokenError::UnknownKey) => {
            let fresh = cached_jwks(&edgeauth, now_ms, true).await?;
            verifier::verify(token, fresh.as_ref(), &expected, now)
        }
        other => other,
    };
    match result {
        Ok(access) => Ok(Identity {
            sub: access.claims().sub.clone(),
            sid: access.claims().sid.clone(),
        }),
        Err(TokenError::UnknownKey) => {
            let verdict = binding::verify_remote(&edgeauth, token).await?;
            match (
                verdict.active,
                verdict.kind.as_deref(),
                verdict.sub,
                verdict.sid,
            ) {
                (true, Some("session"), Some(sub), Some(sid)) => Ok(Identity { sub, sid }),
                _ => Err(Refusal::Unauthorized("unknown_key")),
            }
        }
        Err(error) => Err(Refusal::Unauthorized(error.code())),
    }
}

/// The cached JWKS while fresh (its `max-age`); otherwise fetched again, but never more often than
/// every [`REFETCH_INTERVAL_MS`].
async fn cached_jwks(edgeauth: &Fetcher, now_ms: u64, force: bool) -> Result<Rc<Jwks>, Refusal> {
    let cached = JWKS.with(|cell| {
        cell.borrow().as_ref().map(|c| {
            let usable = (!force && now_ms < c.fresh_until_ms)
                || now_ms.saturating_sub(c.fetched_at_ms) < REFETCH_INTERVAL_MS;
            (Rc::clone(&c.jwks), usable)
        })
    });
    if let Some((jwks, true)) = cached {
        return Ok(jwks);
    }
    let fetched = binding::fetch_jwks(edgeauth).await?;
    let max_age_ms = u64::from(fetched.max_age.unwrap_or(DEFAULT_MAX_AGE_S)) * 1000;
    let jwks = Rc::new(fetched.jwks);
    JWKS.with(|cell| {
        *cell.borrow_mut() = Some(CachedJwks {
            jwks: Rc::clone(&jwks),
            fetched_at_ms: now_ms,
            fresh_until_ms: now_ms.saturating_add(max_age_ms),
        });
    });
    Ok(jwks)
}

/// The token of `Authorization: Bearer <token>` (the scheme is case-insensitive).
fn bearer(request: &Request) -> Result<String, Refusal> {
    let header = request.headers().get("authorization")?.unwrap_or_default();
    match header.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim().to_owned())
        }
        _ => Err(Refusal::Unauthorized("missing_token")),
    }
}

fn edgeauth(env: &Env) -> Result<Fetcher, Refusal> {
    env.service("EDGEAUTH")
        .map_err(|e| Refusal::Unavailable(format!("service binding EDGEAUTH: {e}")))
}

fn var(env: &Env, name: &str) -> Result<String, Refusal> {
    env.var(name)
        .map(|v| v.to_string())
        .map_err(|_| Refusal::Unavailable(format!("var {name} is not set")))
}

fn json_response(status: u16, body: &Value) -> worker::Result<Response> {
    let mut response = Response::from_json(body)?.with_status(status);
    response.headers_mut().set("cache-control", "no-store")?;
    Ok(response)
}
