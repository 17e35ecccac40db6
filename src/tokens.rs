//! Access tokens: Ed25519-signed JWTs (`typ: at+jwt`) and the signing keys behind them.
//!
//! Private keys never sit in D1: each key row holds a random salt, and the private key is
//! `HMAC(derived signing root, kid || salt)` with the root derived from the `SIGNING_SECRET` Worker
//! secret. Verification is strict by construction: an untrusted string becomes [`VerifiedAccess`]
//! only through [`verify_access_token`], which pins EdDSA and checks every rule of design.md §5.

use std::fmt;

use ed25519_compact::{KeyPair, PublicKey, Seed};
use jwt_compact::alg::Ed25519;
use jwt_compact::{AlgorithmExt, Claims, Header, TimeOptions, UntrustedToken, ValidationError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::crypto::{b64url, b64url_decode, derive_key, hmac_sha256, random_array, Secret};
use crate::store::{BackendError, Clock, Database, Random};
use crate::time::to_datetime;
use crate::{stmt, ORG_ID};

/// The `typ` header of our access tokens (RFC 9068).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// Tokens longer than this are refused before parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Clock skew tolerated on `exp`, `nbf` and `iat`, seconds.
pub const LEEWAY_SECONDS: i64 = 10;
/// Header members we never issue and refuse: `crit` (extensions we do not understand) and the ones
/// that point at keys or certificates outside our own JWKS.
const FORBIDDEN_HEADERS: [&str; 5] = ["crit", "jwk", "jku", "x5u", "x5c"];

/// The claims of an access token besides the time claims (identity only, no roles).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// User id.
    pub sub: String,
    /// Session id.
    pub sid: String,
    /// Organisation id.
    pub org: String,
    /// Active workspace id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws: Option<String>,
    /// Authentication methods (`pwd`, `email`).
    pub amr: Vec<String>,
    /// Unique token id.
    pub jti: String,
}

/// An access token whose signature, header and claims have all been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAccess {
    claims: AccessClaims,
    issued_at: i64,
    expires_at: i64,
}

impl VerifiedAccess {
    /// The checked claims.
    pub fn claims(&self) -> &AccessClaims {
        &self.claims
    }
    /// `iat`, unix seconds.
    pub fn issued_at(&self) -> i64 {
        self.issued_at
    }
    /// `exp`, unix seconds.
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }
}

/// Why a token was refused. Every variant becomes the same `401` for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_BYTES`]; not parsed.
    TooLarge {
        /// The token's length.
        len: usize,
    },
    /// Not a well-formed JWS compact serialisation or its JSON is malformed.
    Malformed(String),
    /// `alg` is not `EdDSA`.
    AlgorithmMismatch {
        /// The `alg` the token claims.
        actual: String,
    },
    /// `typ` is not `at+jwt`.
    WrongType {
        /// The `typ` the token claims.
        actual: Option<String>,
    },
    /// A header member we refuse (`crit`, `jwk`, `jku`, `x5u`, `x5c`).
    ForbiddenHeader {
        /// The member's name.
        name: &'static str,
    },
    /// No `kid`, or one that is not among our published keys.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// A required claim is absent.
    MissingClaim(&'static str),
    /// `exp` has passed.
    Expired,
    /// `nbf` is in the future.
    NotYetValid,
    /// `iat` is in the future.
    IssuedInFuture,
    /// `iss` is not ours.
    WrongIssuer,
    /// `aud` is not ours.
    WrongAudience,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// One published signing key.
#[derive(Clone)]
pub struct SigningKey {
    /// Key id.
    pub kid: String,
    /// Whether this key signs new tokens.
    pub current: bool,
    public: PublicKey,
    salt: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

/// The keys we publish; exactly one is current.
#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: Vec<SigningKey>,
    root: Secret,
}

fn signing_root(config: &Config) -> Secret {
    derive_key(&config.signing_secret, "signing-key")
}

fn key_pair(root: &Secret, kid: &str, salt: &[u8]) -> KeyPair {
    let seed = hmac_sha256(root.expose(), &[kid.as_bytes(), b"\0", salt]);
    KeyPair::from_seed(Seed::new(seed))
}

impl KeyRing {
    /// Loads the published keys, creating the first current key if there is none.
    pub async fn load<D: Database>(
        db: &D,
        config: &Config,
        clock: &dyn Clock,
        random: &dyn Random,
    ) -> Result<KeyRing, BackendError> {
        let root = signing_root(config);
        let mut ring = Self::read(db, &root, clock.now()).await?;
        if !ring.keys.iter().any(|k| k.current) {
            create_current_key(db, &root, clock, random).await?;
            ring = Self::read(db, &root, clock.now()).await?;
        }
        Ok(ring)
    }

    async fn read<D: Database>(db: &D, root: &Secret, now: i64) -> Result<KeyRing, BackendError> {
        let rows = db
            .query(stmt!(
                "SELECT kid, public_key, seed_salt, status FROM signing_keys \
                 WHERE org_id = ?1 AND (status = 'current' OR publish_until > ?2) \
                 ORDER BY created_at DESC, kid",
                ORG_ID,
                now
            ))
            .await?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            let kid = row.text("kid")?;
            let public = b64url_decode(&row.text("public_key")?)
                .and_then(|b| PublicKey::from_slice(&b).ok())
                .ok_or_else(|| {
                    BackendError::Decode(format!("signing key {kid}: bad public key"))
                })?;
            let salt = b64url_decode(&row.text("seed_salt")?)
                .ok_or_else(|| BackendError::Decode(format!("signing key {kid}: bad salt")))?;
            // A key whose derived public half differs was made under another SIGNING_SECRET: it
            // cannot sign, and publishing it would only mislead verifiers.
            if key_pair(root, &kid, &salt).pk != public {
                return Err(BackendError::Decode(format!(
                    "signing key {kid} does not derive from SIGNING_SECRET (was the secret changed?)"
                )));
            }
            keys.push(SigningKey {
                current: row.text("status")? == "current",
                kid,
                public,
                salt,
            });
        }
        Ok(KeyRing {
            keys,
            root: root.clone(),
        })
    }

    /// The published keys.
    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    fn current(&self) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.current)
    }

    fn find(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// The JWKS document: public halves only.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|k| {
                json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": b64url(k.public.as_ref()),
                    "kid": k.kid,
                    "alg": "EdDSA",
                    "use": "sig",
                })
            })
            .collect();
        json!({ "keys": keys })
    }

    /// Signs `claims` with the current key, valid from `now` for `ttl` seconds.
    pub fn sign(&self, claims: &AccessClaims, now: i64, ttl: i64) -> Result<String, BackendError> {
        let key = self
            .current()
            .ok_or_else(|| BackendError::Decode("no current signing key".into()))?;
        let secret = key_pair(&self.root, &key.kid, &key.salt).sk;
        let header = Header::empty()
            .with_key_id(key.kid.clone())
            .with_token_type(ACCESS_TOKEN_TYPE);
        let mut full = Claims::new(claims.clone());
        full.issued_at = Some(to_datetime(now));
        full.not_before = Some(to_datetime(now));
        full.expiration = Some(to_datetime(now + ttl));
        Ed25519
            .token(&header, &full, &secret)
            .map_err(|e| BackendError::Decode(format!("signing failed: {e}")))
    }
}

async fn create_current_key<D: Database>(
    db: &D,
    root: &Secret,
    clock: &dyn Clock,
    random: &dyn Random,
) -> Result<(), BackendError> {
    let salt: [u8; 32] = random_array(random)?;
    let kid_bytes: [u8; 12] = random_array(random)?;
    let kid = b64url(&kid_bytes);
    let public = key_pair(root, &kid, &salt).pk;
    // The partial unique index allows one current key: a concurrent creator simply loses.
    db.execute(stmt!(
        "INSERT OR IGNORE INTO signing_keys (kid, org_id, public_key, seed_salt, status, created_at) \
         VALUES (?1, ?2, ?3, ?4, 'current', ?5)",
        kid,
        ORG_ID,
        b64url(public.as_ref()),
        b64url(&salt),
        clock.now()
    ))
    .await?;
    Ok(())
}

/// Verifies an access token against our keys, issuer and audience at time `now`.
pub fn verify_access_token(
    token: &str,
    ring: &KeyRing,
    config: &Config,
    now: i64,
) -> Result<VerifiedAccess, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge { len: token.len() });
    }
    let untrusted = UntrustedToken::<Map<String, Value>>::try_from(token)
        .map_err(|e| TokenError::Malformed(e.to_string()))?;
    if untrusted.algorithm() != "EdDSA" {
        return Err(TokenError::AlgorithmMismatch {
            actual: untrusted.algorithm().to_owned(),
        });
    }
    let header = untrusted.header();
    if header.token_type.as_deref() != Some(ACCESS_TOKEN_TYPE) {
        return Err(TokenError::WrongType {
            actual: header.token_type.clone(),
        });
    }
    if header.key_set_url.is_some() {
        return Err(TokenError::ForbiddenHeader { name: "jku" });
    }
    if header.certificate_url.is_some() {
        return Err(TokenError::ForbiddenHeader { name: "x5u" });
    }
    if let Some(name) = FORBIDDEN_HEADERS
        .iter()
        .find(|name| header.other_fields.contains_key(**name))
    {
        return Err(TokenError::ForbiddenHeader { name });
    }
    // `kid` is only ever looked up among our own keys: never fetched, never used as a path.
    let key = header
        .key_id
        .as_deref()
        .and_then(|kid| ring.find(kid))
        .ok_or(TokenError::UnknownKey)?;

    let token = Ed25519
        .validator::<AccessClaims>(&key.public)
        .validate(&untrusted)
        .map_err(|e| match e {
            ValidationError::InvalidSignature | ValidationError::InvalidSignatureLen { .. } => {
                TokenError::BadSignature
            }
            other => TokenError::Malformed(other.to_string()),
        })?;

    let claims = token.claims();
    let time = TimeOptions::new(chrono::Duration::seconds(LEEWAY_SECONDS), || {
        to_datetime(now)
    });
    let expiration = claims.expiration.ok_or(TokenError::MissingClaim("exp"))?;
    let issued_at = claims.issued_at.ok_or(TokenError::MissingClaim("iat"))?;
    claims.not_before.ok_or(TokenError::MissingClaim("nbf"))?;
    claims
        .validate_expiration(&time)
        .map_err(|_| TokenError::Expired)?;
    claims
        .validate_maturity(&time)
        .map_err(|_| TokenError::NotYetValid)?;
    if issued_at.timestamp() > now + LEEWAY_SECONDS {
        return Err(TokenError::IssuedInFuture);
    }
    if claims.custom.iss != config.issuer {
        return Err(TokenError::WrongIssuer);
    }
    if claims.custom.aud != config.audience {
        return Err(TokenError::WrongAudience);
    }
    Ok(VerifiedAccess {
        claims: claims.custom.clone(),
        issued_at: issued_at.timestamp(),
        expires_at: expiration.timestamp(),
    })
}
