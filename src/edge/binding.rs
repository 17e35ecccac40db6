//! Calling edgeauth from another Worker through a service binding (feature `binding`, wasm only).
//!
//! A service binding (`[[services]] binding = "EDGEAUTH", service = "edgeauth"` in the consumer's
//! wrangler.toml) reaches edgeauth without leaving Cloudflare; the URL's host is ignored. Each helper
//! makes one request and fails (an `Err`) on anything but a well-formed `200`, so a consumer that
//! maps errors to `503` fails closed when edgeauth is down or misconfigured.
//!
//! ```ignore
//! let edgeauth = env.service("EDGEAUTH")?;
//! let verdict = edgeauth::edge::binding::verify_remote(&edgeauth, token).await?;
//! if !verdict.active { /* 401 */ }
//! ```

use serde::{Deserialize, Serialize};
use worker::wasm_bindgen::JsValue;
use worker::{Fetcher, Headers, Method, RequestInit};

use crate::verifier::{Jwks, MAX_TOKEN_BYTES};

/// Base URL of requests through the binding (any host works; this one reads well in logs).
pub const BASE_URL: &str = "https://edgeauth";

/// The answer of `POST /v1/verify`: `active` and, when active, who the credential stands for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Verdict {
    /// Whether the token is live: signature, claims, and the revocation flags all pass.
    pub active: bool,
    /// `session` (an access token) or `api_key`.
    #[serde(default)]
    pub kind: Option<String>,
    /// User id.
    #[serde(default)]
    pub sub: Option<String>,
    /// Organisation id.
    #[serde(default)]
    pub org: Option<String>,
    /// Workspace id (the token's active workspace, or the key's scope).
    #[serde(default)]
    pub ws: Option<String>,
    /// Session id (access tokens).
    #[serde(default)]
    pub sid: Option<String>,
    /// API key id (API keys).
    #[serde(default)]
    pub key_id: Option<String>,
    /// Expiry, unix seconds (absent for an API key without expiry).
    #[serde(default)]
    pub exp: Option<i64>,
}

impl Verdict {
    fn inactive() -> Self {
        Verdict::default()
    }
}

/// One authorisation question for `POST /v1/authorize`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Check<'a> {
    /// `resource:action`, e.g. `docs:read`.
    pub capability: &'a str,
    /// Target workspace id; `None`: the token's own workspace (none: deny).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<&'a str>,
    /// What is acted on (recorded in the audit log of a denial).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<&'a str>,
}

/// The answer of `POST /v1/authorize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Decision {
    /// Whether the capability is granted.
    pub allow: bool,
    /// How long the decision may be cached, seconds.
    pub ttl: i64,
}

/// The published keys and how long they may be cached.
#[derive(Debug, Clone)]
pub struct FetchedJwks {
    /// The usable keys (see [`Jwks::from_json`]).
    pub jwks: Jwks,
    /// `max-age` of the response's `Cache-Control`, seconds, if it had one.
    pub max_age: Option<u32>,
}

/// `GET /.well-known/jwks.json` through the binding.
pub async fn fetch_jwks(edgeauth: &Fetcher) -> worker::Result<FetchedJwks> {
    let mut response = edgeauth
        .fetch(format!("{BASE_URL}/.well-known/jwks.json"), None)
        .await?;
    expect_ok(response.status_code(), "/.well-known/jwks.json")?;
    let max_age = response
        .headers()
        .get("cache-control")?
        .and_then(|value| max_age(&value));
    let text = response.text().await?;
    let jwks = Jwks::from_json(&text).map_err(|e| worker::Error::RustError(e.to_string()))?;
    Ok(FetchedJwks { jwks, max_age })
}

/// Asks edgeauth whether `token` (an access token or an API key) is live right now: besides what
/// an offline check sees, this consults the revocation flags (logout, disabled user, changed
/// password) and, for API keys, D1. A token longer than [`MAX_TOKEN_BYTES`] is inactive without a
/// round trip (edgeauth refuses such tokens unparsed).
pub async fn verify_remote(edgeauth: &Fetcher, token: &str) -> worker::Result<Verdict> {
    if token.len() > MAX_TOKEN_BYTES {
        return Ok(Verdict::inactive());
    }
    post_json(
        edgeauth,
        "/v1/verify",
        &serde_json::json!({ "token": token }),
    )
    .await
}

/// Asks edgeauth whether `token` holds `check.capability` in the workspace (`POST /v1/authorize`).
/// An inactive token is a denial, not an error.
pub async fn authorize_remote(
    edgeauth: &Fetcher,
    token: &str,
    check: &Check<'_>,
) -> worker::Result<Decision> {
    if token.len() > MAX_TOKEN_BYTES {
        return Ok(Decision {
            allow: false,
            ttl: 0,
        });
    }
    #[derive(Serialize)]
    struct Body<'a> {
        token: &'a str,
        #[serde(flatten)]
        check: &'a Check<'a>,
    }
    post_json(edgeauth, "/v1/authorize", &Body { token, check }).await
}

async fn post_json<B: Serialize, T: serde::de::DeserializeOwned>(
    edgeauth: &Fetcher,
    path: &str,
    body: &B,
) -> worker::Result<T> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(JsValue::from_str(&serde_json::to_string(body)?)));
    let mut response = edgeauth
        .fetch(format!("{BASE_URL}{path}"), Some(init))
        .await?;
    expect_ok(response.status_code(), path)?;
    response.json().await
}

fn expect_ok(status: u16, path: &str) -> worker::Result<()> {
    if status == 200 {
        Ok(())
    } else {
        Err(worker::Error::RustError(format!(
            "edgeauth {path} answered {status}"
        )))
    }
}

/// The `max-age` directive of a `Cache-Control` value.
fn max_age(cache_control: &str) -> Option<u32> {
    cache_control.split(',').find_map(|directive| {
        let (name, value) = directive.trim().split_once('=')?;
        if name.trim().eq_ignore_ascii_case("max-age") {
            value.trim().parse().ok()
        } else {
            None
        }
    })
}
