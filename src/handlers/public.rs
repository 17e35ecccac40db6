//! Public routes: health, the JWKS and discovery documents, and token verification for other Workers.

use serde::Deserialize;
use serde_json::json;

use crate::api_keys::KEY_PREFIX;
use crate::app::App;
use crate::error::ApiError;
use crate::http::{HttpRequest, HttpResponse};
use crate::store::{Database, FlagStore};
use crate::ORG_ID;

/// How long clients may cache the discovery document (it changes only with the configuration).
const DISCOVERY_MAX_AGE: u32 = 300;

pub(super) fn health() -> HttpResponse {
    HttpResponse::json(
        200,
        &json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }),
    )
}

pub(super) async fn jwks<D: Database, F: FlagStore>(
    app: &App<D, F>,
) -> Result<HttpResponse, ApiError> {
    let ring = app.key_ring().await?;
    // Never longer than a retired key's overlap (see signing_keys::jwks_max_age); verifiers refetch
    // on an unknown `kid` to pick up a new key sooner.
    let max_age = crate::signing_keys::jwks_max_age(&app.config);
    Ok(HttpResponse::json(200, &ring.jwks())
        .with_header("cache-control", &format!("public, max-age={max_age}")))
}

pub(super) fn openid_configuration<D: Database, F: FlagStore>(app: &App<D, F>) -> HttpResponse {
    let base = &app.config.public_url;
    HttpResponse::json(
        200,
        &json!({
            "issuer": app.config.issuer,
            "jwks_uri": format!("{base}/.well-known/jwks.json"),
            "id_token_signing_alg_values_supported": ["EdDSA"],
            "token_endpoint": format!("{base}/v1/auth/refresh"),
            "introspection_endpoint": format!("{base}/v1/verify"),
        }),
    )
    .with_header(
        "cache-control",
        &format!("public, max-age={DISCOVERY_MAX_AGE}"),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    token: String,
}

/// `POST /v1/verify`: presenting the token is the question, so no caller credential is needed.
/// Anything not active is `{"active": false}`; a storage failure is `503`, never an answer.
pub(super) async fn verify<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let body: VerifyBody = request.json_body()?;
    let inactive = || HttpResponse::json(200, &json!({ "active": false }));
    if body.token.starts_with(KEY_PREFIX) {
        let Some((user, key)) = app.resolve_api_key(&body.token).await? else {
            return Ok(inactive());
        };
        return Ok(HttpResponse::json(
            200,
            &json!({
                "active": true,
                "kind": "api_key",
                "sub": user.id,
                "org": ORG_ID,
                "ws": key.workspace_id,
                "key_id": key.id,
                "exp": key.expires_at,
            }),
        ));
    }
    let Some(access) = app.verify_access(&body.token).await? else {
        return Ok(inactive());
    };
    let claims = access.claims();
    Ok(HttpResponse::json(
        200,
        &json!({
            "active": true,
            "kind": "session",
            "sub": claims.sub,
            "org": claims.org,
            "ws": claims.ws,
            "sid": claims.sid,
            "exp": access.expires_at(),
        }),
    ))
}
