//! Access tokens: Ed25519-signed JWTs (`typ: at+jwt`) and the signing keys behind them.
//!
//! Private keys never sit in D1: each key row holds a random salt, and the private key is
//! `HMAC(derived signing root, kid || salt)` with the root derived from the `SIGNING_SECRET` Worker
//! secret. Verification is strict by construction: an untrusted string becomes [`VerifiedAccess`]
//! only through [`crate::verifier::verify`] (here via [`verify_access_token`]), which pins EdDSA and
//! checks every rule of design.md §5.

use std::fmt;

use ed25519_compact::{KeyPair, PublicKey, Seed};
use jwt_compact::alg::Ed25519;
use jwt_compact::{AlgorithmExt, Claims, Header};
use serde_json::{json, Value};

use crate::config::Config;
use crate::crypto::{b64url, b64url_decode, derive_key, hmac_sha256, random_array, Secret};
use crate::store::{BackendError, Clock, Database, Random};
use crate::time::to_datetime;
use crate::verifier::{self, Expected, KeyLookup};
use crate::{stmt, ORG_ID};

// The verification types live in the runtime-free `verifier` module (shared with consumers); they
// are re-exported here so server code keeps naming them `tokens::...`.
pub use crate::verifier::{
    AccessClaims, TokenError, VerifiedAccess, ACCESS_TOKEN_TYPE, LEEWAY_SECONDS, MAX_TOKEN_BYTES,
};

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

impl KeyLookup for KeyRing {
    fn public_key(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.kid == kid).map(|k| &k.public)
    }
}

/// Verifies an access token against our keys, issuer and audience at time `now`: the same
/// [`verifier::verify`] consumers run against the JWKS.
pub fn verify_access_token(
    token: &str,
    ring: &KeyRing,
    config: &Config,
    now: i64,
) -> Result<VerifiedAccess, TokenError> {
    let expected = Expected::new(&config.issuer, &config.audience);
    verifier::verify(token, ring, &expected, now)
}

/// A new signing key's row values, all base64url: the public half and the salt from which the
/// private half is derived again (under `SIGNING_SECRET`) whenever it signs. Nothing here can sign.
#[derive(Debug, Clone)]
pub(crate) struct NewSigningKey {
    /// Key id.
    pub kid: String,
    /// Public key (the JWK `x`).
    pub public_key: String,
    /// Random salt.
    pub seed_salt: String,
}

/// Draws a new signing key (for rotation, src/signing_keys.rs): random kid and salt, public half
/// derived exactly as for the first key.
pub(crate) fn new_signing_key(
    config: &Config,
    random: &dyn Random,
) -> Result<NewSigningKey, BackendError> {
    let salt: [u8; 32] = random_array(random)?;
    let kid = b64url(&random_array::<12>(random)?);
    let public = key_pair(&signing_root(config), &kid, &salt).pk;
    Ok(NewSigningKey {
        kid,
        public_key: b64url(public.as_ref()),
        seed_salt: b64url(&salt),
    })
}
