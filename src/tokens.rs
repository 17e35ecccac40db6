//! Access tokens: Ed25519-signed JWTs (`typ: at+jwt`) and the signing keys behind them.
//!
//! Private keys never sit in D1: each key row holds a random salt, and the private key is
//! `HMAC(derived signing root, kid || salt)` with the root derived from the `SIGNING_SECRET` Worker
//! secret. jwt-compact builds and parses the tokens; the signatures themselves go through the
//! [`Ed25519Backend`](crate::signatures::Ed25519Backend) port (WebCrypto on the edge). Verification
//! is strict by construction: an untrusted string becomes [`VerifiedAccess`] only through
//! [`crate::verifier`] (here via [`verify_access_token`]), which pins EdDSA and checks every rule of
//! design.md §5.
//!
//! Keys per isolate: the ring last read from D1 is kept in a [`KeyCache`] (one per isolate on the
//! edge). Signing, the JWKS and the key list always read D1 afresh; only verification uses the kept
//! ring, for at most [`KEY_CACHE_SECONDS`], and reads afresh at once when a token names a key it does
//! not hold. See [`KeyCache`] for why that gives the same answers as reading D1 every time.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::rc::Rc;

use ed25519_compact::{PublicKey, Signature};
use jwt_compact::{Algorithm, AlgorithmExt, Claims, Header};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::crypto::{b64url, b64url_decode, derive_key, hmac_sha256, random_array, Secret};
use crate::signatures::{DynEd25519Backend, PrivateKey, SIGNATURE_BYTES};
use crate::store::{BackendError, Clock, Database, Random};
use crate::time::to_datetime;
use crate::verifier::{self, Expected, KeyLookup, SignatureCheck};
use crate::{stmt, ORG_ID};

// The verification types live in the runtime-free `verifier` module (shared with consumers); they
// are re-exported here so server code keeps naming them `tokens::...`.
pub use crate::verifier::{
    AccessClaims, TokenError, VerifiedAccess, ACCESS_TOKEN_TYPE, LEEWAY_SECONDS, MAX_TOKEN_BYTES,
};

/// How long verification may use a key ring read earlier by the same isolate, seconds (capped by
/// the overlap of a retired key, see [`KeyCache`]).
pub const KEY_CACHE_SECONDS: i64 = 60;

/// One published signing key.
#[derive(Clone)]
pub struct SigningKey {
    /// Key id.
    pub kid: String,
    /// Whether this key signs new tokens.
    pub current: bool,
    public: PublicKey,
    salt: Vec<u8>,
    /// Until when a retired key is published (`None` for the current key).
    publish_until: Option<i64>,
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
    /// When it was read from D1, unix seconds.
    read_at: i64,
}

fn signing_root(config: &Config) -> Secret {
    derive_key(&config.signing_secret, "signing-key")
}

/// The Ed25519 seed (private key) of key `kid` with `salt`.
fn seed(root: &Secret, kid: &str, salt: &[u8]) -> Secret {
    Secret::new(hmac_sha256(root.expose(), &[kid.as_bytes(), b"\0", salt]).to_vec())
}

impl KeyRing {
    /// Reads the published keys from D1, creating the first current key if there is none, and
    /// keeps them in `cache` for verification.
    pub async fn load<D: Database>(
        db: &D,
        config: &Config,
        clock: &dyn Clock,
        random: &dyn Random,
        ed25519: &dyn DynEd25519Backend,
        cache: &KeyCache,
    ) -> Result<Rc<KeyRing>, BackendError> {
        let root = signing_root(config);
        let known = cache.get();
        let known = known.as_deref();
        let mut ring = Self::read(db, &root, clock.now(), ed25519, known).await?;
        if !ring.keys.iter().any(|k| k.current) {
            create_current_key(db, &root, clock, random, ed25519).await?;
            ring = Self::read(db, &root, clock.now(), ed25519, known).await?;
        }
        let ring = Rc::new(ring);
        cache.put(Rc::clone(&ring));
        Ok(ring)
    }

    /// The ring `cache` holds if it was read less than `max_age` seconds before `now`, else a
    /// fresh one ([`KeyRing::load`]). The flag says whether the ring was read by this call.
    ///
    /// In the last fifth of `max_age`, the first request to need the ring reads it again while the
    /// requests that come meanwhile use the kept one (still within `max_age`): under load the ring
    /// is renewed before it is stale, instead of every request in flight at that moment reading
    /// D1. If that read fails, the request uses the kept ring too, and the next one tries again.
    pub async fn cached<D: Database>(
        db: &D,
        config: &Config,
        clock: &dyn Clock,
        random: &dyn Random,
        ed25519: &dyn DynEd25519Backend,
        cache: &KeyCache,
        max_age: i64,
    ) -> Result<(Rc<KeyRing>, bool), BackendError> {
        let now = clock.now();
        if let Some(ring) = cache.get() {
            let age = now - ring.read_at;
            if (0..max_age).contains(&age) {
                if age < crate::time::renewal_age(max_age) || cache.refreshing.get() {
                    return Ok((ring, false));
                }
                cache.refreshing.set(true);
                let _mark = RingRefresh(cache);
                return Ok(
                    match Self::load(db, config, clock, random, ed25519, cache).await {
                        Ok(fresh) => (fresh, true),
                        Err(_) => (ring, false),
                    },
                );
            }
        }
        let ring = Self::load(db, config, clock, random, ed25519, cache).await?;
        Ok((ring, true))
    }

    async fn read<D: Database>(
        db: &D,
        root: &Secret,
        now: i64,
        ed25519: &dyn DynEd25519Backend,
        known: Option<&KeyRing>,
    ) -> Result<KeyRing, BackendError> {
        let rows = db
            .query(stmt!(
                "SELECT kid, public_key, seed_salt, status, publish_until FROM signing_keys \
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
            // cannot sign, and publishing it would only mislead verifiers. A row this isolate has
            // already checked under the same root is not derived again.
            let checked = known.is_some_and(|ring| ring.has_checked(root, &kid, &public, &salt));
            if !checked && ed25519.public_key(&seed(root, &kid, &salt)).await? != public {
                return Err(BackendError::Decode(format!(
                    "signing key {kid} does not derive from SIGNING_SECRET (was the secret changed?)"
                )));
            }
            keys.push(SigningKey {
                current: row.text("status")? == "current",
                publish_until: row.opt_int("publish_until")?,
                kid,
                public,
                salt,
            });
        }
        Ok(KeyRing {
            keys,
            root: root.clone(),
            read_at: now,
        })
    }

    /// Whether this ring holds exactly this row, derived under `root` (so checked already).
    fn has_checked(&self, root: &Secret, kid: &str, public: &PublicKey, salt: &[u8]) -> bool {
        self.root.matches(root.expose())
            && self
                .keys
                .iter()
                .any(|k| k.kid == kid && k.public == *public && k.salt == salt)
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

    /// Signs `claims` with the current key, valid from `now` for `ttl` seconds. jwt-compact builds
    /// the header and claims; `ed25519` signs the JWS signing input.
    pub async fn sign(
        &self,
        claims: &AccessClaims,
        now: i64,
        ttl: i64,
        ed25519: &dyn DynEd25519Backend,
    ) -> Result<String, BackendError> {
        let key = self
            .current()
            .ok_or_else(|| BackendError::Decode("no current signing key".into()))?;
        let header = Header::empty()
            .with_key_id(key.kid.clone())
            .with_token_type(ACCESS_TOKEN_TYPE);
        let mut full = Claims::new(claims.clone());
        full.issued_at = Some(to_datetime(now));
        full.not_before = Some(to_datetime(now));
        full.expiration = Some(to_datetime(now + ttl));
        let unsigned = UnsignedEdDsa
            .token(&header, &full, &())
            .map_err(|e| BackendError::Decode(format!("token encoding failed: {e}")))?;
        // `header.claims.placeholder`: the signing input is everything before the last `.`.
        let input = verifier::signing_input(&unsigned)
            .ok_or_else(|| BackendError::Decode("token encoding failed".into()))?;
        let private = PrivateKey::new(
            key.kid.clone(),
            key.public,
            seed(&self.root, &key.kid, &key.salt),
        );
        let signature = ed25519.sign(&private, input.as_bytes()).await?;
        Ok(format!("{input}.{}", b64url(&signature)))
    }

    /// The keys verification accepts at `now`: the current key and the retired ones still within
    /// their overlap (a kept ring may hold one whose overlap has ended since it was read).
    fn published_at(&self, now: i64) -> PublishedKeys<'_> {
        PublishedKeys { ring: self, now }
    }
}

/// [`KeyRing::published_at`].
struct PublishedKeys<'a> {
    ring: &'a KeyRing,
    now: i64,
}

impl KeyLookup for PublishedKeys<'_> {
    fn public_key(&self, kid: &str) -> Option<&PublicKey> {
        self.ring
            .keys
            .iter()
            .filter(|k| k.current || k.publish_until.is_some_and(|until| until > self.now))
            .find(|k| k.kid == kid)
            .map(|k| &k.public)
    }
}

/// `EdDSA` for jwt-compact's token builder, with the signature left out: [`KeyRing::sign`] takes the
/// signing input jwt-compact encoded and has the backend sign it (asynchronously, which
/// jwt-compact's `sign` cannot be). The placeholder signature never leaves `sign`.
struct UnsignedEdDsa;

impl Algorithm for UnsignedEdDsa {
    type SigningKey = ();
    type VerifyingKey = Infallible;
    type Signature = Signature;

    fn name(&self) -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("EdDSA")
    }

    fn sign(&self, (): &(), _message: &[u8]) -> Signature {
        Signature::new([0; SIGNATURE_BYTES])
    }

    fn verify_signature(&self, _: &Signature, key: &Infallible, _: &[u8]) -> bool {
        match *key {}
    }
}

/// The key ring one isolate last read, kept across its requests (the edge keeps one per isolate;
/// each host-test [`App`](crate::app::App) has its own). Verification uses it for at most
/// [`KEY_CACHE_SECONDS`], which gives the same answers as reading D1 for every token:
/// - a key created since (a rotation by any isolate): its tokens name a `kid` the kept ring lacks,
///   and verification reads D1 again at once;
/// - a key retired since: still published for its whole overlap (`ACCESS_TOKEN_TTL` + leeway, at
///   least 70 s) from its retirement, which came after the read, so it is still published while the
///   kept ring (at most 60 s old) is used;
/// - a retired key's overlap ending: checked against the clock at each use ([`KeyRing::published_at`]);
/// - a row deleted by hand in D1 (no API does that): used for at most [`KEY_CACHE_SECONDS`] more.
///
/// Signing, the JWKS and the key list read D1 afresh (and refresh the kept ring), so a new current
/// key signs at once in every isolate. The ring also remembers which rows were checked to derive
/// from `SIGNING_SECRET`, so an isolate derives each public key once, not on every request.
#[derive(Debug, Default)]
pub struct KeyCache {
    ring: RefCell<Option<Rc<KeyRing>>>,
    /// Whether a request is reading the ring again before the kept one is stale (see
    /// [`KeyRing::cached`]).
    refreshing: Cell<bool>,
    verified: VerifiedTokens,
}

/// Clears [`KeyCache`]'s refresh mark however the refreshing request ends (a Worker request can be
/// cancelled mid-read), so that another request may refresh the ring.
struct RingRefresh<'a>(&'a KeyCache);

impl Drop for RingRefresh<'_> {
    fn drop(&mut self) {
        self.0.refreshing.set(false);
    }
}

impl KeyCache {
    /// The access tokens this isolate has verified (see [`VerifiedTokens`]).
    pub fn verified_tokens(&self) -> &VerifiedTokens {
        &self.verified
    }

    fn get(&self) -> Option<Rc<KeyRing>> {
        self.ring.borrow().clone()
    }

    fn put(&self, ring: Rc<KeyRing>) {
        *self.ring.borrow_mut() = Some(ring);
    }

    /// Forgets the kept ring (after a rotation by this isolate).
    pub fn clear(&self) {
        self.ring.borrow_mut().take();
    }
}

/// At most this many verified tokens are kept per isolate (see [`VerifiedTokens`]): ~0.5 KB each.
pub const MAX_VERIFIED_TOKENS: usize = 4096;

/// The access tokens this isolate has verified, by the SHA-256 of the whole token, so that the same
/// token presented again (a client sends its token with every request for its whole life) skips
/// the parse and the signature check. Only a token that passed every rule is kept, and it is taken
/// from here only if, at the time of use:
/// - the key that signed it is still published under the same `kid`, with the same public key, in
///   the ring verification would use ([`KeyRing`], read as for any other token): a key whose
///   overlap has ended, or a ring re-read without it, refuses it exactly as a fresh check would;
/// - its time claims still pass ([`VerifiedAccess::check_times`], the verifier's own rules).
///
/// Otherwise the token is verified afresh, so the answer is always the one a full verification
/// would give at that moment. Issuer and audience are the isolate's configuration, fixed for its
/// life. Revocation is not decided here: the flags are checked after, on every use. Nothing that
/// failed is kept, so an attacker cannot fill it without valid tokens; when it is full, expired
/// entries go, and if none have, all of them.
#[derive(Debug, Default)]
pub struct VerifiedTokens {
    known: RefCell<HashMap<[u8; 32], KnownToken>>,
}

#[derive(Debug)]
struct KnownToken {
    access: VerifiedAccess,
    key: PublicKey,
}

impl VerifiedTokens {
    /// How many tokens are kept.
    pub fn len(&self) -> usize {
        self.known.borrow().len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The token verified earlier, if it still passes at `now` against `ring` (see the type).
    fn recall(&self, digest: &[u8; 32], ring: &KeyRing, now: i64) -> Option<VerifiedAccess> {
        let known = self.known.borrow();
        let entry = known.get(digest)?;
        let key = ring
            .published_at(now)
            .public_key(entry.access.key_id())
            .copied()?;
        (key == entry.key && entry.access.check_times(now).is_ok()).then(|| entry.access.clone())
    }

    fn remember(&self, digest: [u8; 32], access: &VerifiedAccess, ring: &KeyRing, now: i64) {
        let Some(key) = ring.published_at(now).public_key(access.key_id()).copied() else {
            return;
        };
        let mut known = self.known.borrow_mut();
        if known.len() >= MAX_VERIFIED_TOKENS {
            known.retain(|_, entry| entry.access.check_times(now).is_ok());
            if known.len() >= MAX_VERIFIED_TOKENS {
                known.clear();
            }
        }
        known.insert(
            digest,
            KnownToken {
                access: access.clone(),
                key,
            },
        );
    }
}

/// [`verify_access_token`], answered from `known` when the same token was verified before and
/// still passes (see [`VerifiedTokens`]); a token that passes now is remembered there.
pub async fn verify_access_token_cached(
    token: &str,
    ring: &KeyRing,
    config: &Config,
    now: i64,
    ed25519: &dyn DynEd25519Backend,
    known: &VerifiedTokens,
) -> Result<Result<VerifiedAccess, TokenError>, BackendError> {
    // A token over the size limit is refused unread, as by the verifier; it is not hashed either.
    if token.len() > MAX_TOKEN_BYTES {
        return verify_access_token(token, ring, config, now, ed25519).await;
    }
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    if let Some(access) = known.recall(&digest, ring, now) {
        return Ok(Ok(access));
    }
    let outcome = verify_access_token(token, ring, config, now, ed25519).await?;
    if let Ok(access) = &outcome {
        known.remember(digest, access, ring, now);
    }
    Ok(outcome)
}

async fn create_current_key<D: Database>(
    db: &D,
    root: &Secret,
    clock: &dyn Clock,
    random: &dyn Random,
    ed25519: &dyn DynEd25519Backend,
) -> Result<(), BackendError> {
    let salt: [u8; 32] = random_array(random)?;
    let kid_bytes: [u8; 12] = random_array(random)?;
    let kid = b64url(&kid_bytes);
    let public = ed25519.public_key(&seed(root, &kid, &salt)).await?;
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

/// Verifies an access token against our keys published at `now`, issuer and audience: the same
/// rules as the [`verifier::verify`] consumers run against the JWKS, with the signature checked by
/// `ed25519`. The outer error is the backend's (the check could not be made: `503`), the inner one
/// the token's refusal.
pub async fn verify_access_token(
    token: &str,
    ring: &KeyRing,
    config: &Config,
    now: i64,
    ed25519: &dyn DynEd25519Backend,
) -> Result<Result<VerifiedAccess, TokenError>, BackendError> {
    let expected = Expected::new(&config.issuer, &config.audience);
    let check = BackendCheck {
        ed25519,
        failure: RefCell::new(None),
    };
    let outcome =
        verifier::verify_with(token, &ring.published_at(now), &expected, now, &check).await;
    match check.failure.into_inner() {
        Some(error) => Err(error),
        None => Ok(outcome),
    }
}

/// The backend as the verifier's [`SignatureCheck`]: a failure of the backend refuses the token and
/// is kept, so the caller answers `503` rather than `401`.
struct BackendCheck<'a> {
    ed25519: &'a dyn DynEd25519Backend,
    failure: RefCell<Option<BackendError>>,
}

impl SignatureCheck for BackendCheck<'_> {
    async fn is_valid(
        &self,
        kid: &str,
        key: &PublicKey,
        message: &[u8],
        signature: &[u8; SIGNATURE_BYTES],
    ) -> bool {
        match self.ed25519.verify(kid, key, message, signature).await {
            Ok(valid) => valid,
            Err(error) => {
                *self.failure.borrow_mut() = Some(error);
                false
            }
        }
    }
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
pub(crate) async fn new_signing_key(
    config: &Config,
    random: &dyn Random,
    ed25519: &dyn DynEd25519Backend,
) -> Result<NewSigningKey, BackendError> {
    let salt: [u8; 32] = random_array(random)?;
    let kid = b64url(&random_array::<12>(random)?);
    let public = ed25519
        .public_key(&seed(&signing_root(config), &kid, &salt))
        .await?;
    Ok(NewSigningKey {
        kid,
        public_key: b64url(public.as_ref()),
        seed_salt: b64url(&salt),
    })
}
