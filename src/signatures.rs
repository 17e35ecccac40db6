//! Ed25519 as a port: whatever computes and checks signatures fastest where the code runs. On the
//! edge that is the platform's WebCrypto (src/edge/webcrypto.rs, about five times faster than
//! Ed25519 compiled to wasm, and it keeps the curve arithmetic out of the `.wasm`); on the host it is
//! [`PureEd25519`] (ed25519-compact). Both are RFC 8032 Ed25519, deterministic, so they produce the
//! same signature for the same key and message and accept each other's signatures.
//!
//! The port only does arithmetic: what is signed and what makes a token valid stay in
//! [`crate::tokens`] and [`crate::verifier`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use ed25519_compact::{KeyPair, PublicKey, Seed, Signature};

use crate::crypto::Secret;
use crate::store::BackendError;

/// Length of an Ed25519 signature.
pub const SIGNATURE_BYTES: usize = 64;
/// Length of an Ed25519 seed (the private key of RFC 8032).
pub const SEED_BYTES: usize = 32;

/// A private signing key: the 32-byte seed (derived from `SIGNING_SECRET`, see
/// [`crate::tokens`]), with the key id and the public half it was checked to derive.
#[derive(Clone)]
pub struct PrivateKey {
    kid: String,
    public: PublicKey,
    seed: Secret,
}

impl PrivateKey {
    /// The key `seed` whose public half is `public`, published as `kid`. The caller vouches that
    /// `public` derives from `seed` (the key ring checked it through [`Ed25519Backend::public_key`]):
    /// backends may cache the platform's key object by `(kid, public)`.
    pub fn new(kid: String, public: PublicKey, seed: Secret) -> Self {
        PrivateKey { kid, public, seed }
    }
    /// Key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }
    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }
    /// The seed: secret.
    pub fn seed(&self) -> &Secret {
        &self.seed
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Ed25519 (RFC 8032, pure, deterministic). Native `async fn` without `Send`, like the storage
/// ports: the platform's WebCrypto answers with promises, and wasm is single-threaded. The
/// [`App`](crate::app::App) holds one through [`DynEd25519Backend`].
pub trait Ed25519Backend {
    /// The public key of the private key `seed` (RFC 8032 §5.1.5). The error is for the log only.
    async fn public_key(&self, seed: &Secret) -> Result<PublicKey, BackendError>;

    /// The signature of `message` by `key`.
    async fn sign(
        &self,
        key: &PrivateKey,
        message: &[u8],
    ) -> Result<[u8; SIGNATURE_BYTES], BackendError>;

    /// Whether `signature` is the signature of `message` by `public_key`, published as `kid` (which
    /// only names the key for caching). `Ok(false)` for any wrong signature; an error only when the
    /// check could not be made at all.
    async fn verify(
        &self,
        kid: &str,
        public_key: &PublicKey,
        message: &[u8],
        signature: &[u8; SIGNATURE_BYTES],
    ) -> Result<bool, BackendError>;
}

/// A future of a [`DynEd25519Backend`] call.
pub type BackendFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + 'a>>;

/// [`Ed25519Backend`] as a trait object, so that the [`App`](crate::app::App) can hold either backend
/// without another type parameter. Implemented for every [`Ed25519Backend`]; implement that one.
pub trait DynEd25519Backend {
    /// See [`Ed25519Backend::public_key`].
    fn public_key<'a>(&'a self, seed: &'a Secret) -> BackendFuture<'a, PublicKey>;
    /// See [`Ed25519Backend::sign`].
    fn sign<'a>(
        &'a self,
        key: &'a PrivateKey,
        message: &'a [u8],
    ) -> BackendFuture<'a, [u8; SIGNATURE_BYTES]>;
    /// See [`Ed25519Backend::verify`].
    fn verify<'a>(
        &'a self,
        kid: &'a str,
        public_key: &'a PublicKey,
        message: &'a [u8],
        signature: &'a [u8; SIGNATURE_BYTES],
    ) -> BackendFuture<'a, bool>;
}

impl<B: Ed25519Backend> DynEd25519Backend for B {
    fn public_key<'a>(&'a self, seed: &'a Secret) -> BackendFuture<'a, PublicKey> {
        Box::pin(Ed25519Backend::public_key(self, seed))
    }
    fn sign<'a>(
        &'a self,
        key: &'a PrivateKey,
        message: &'a [u8],
    ) -> BackendFuture<'a, [u8; SIGNATURE_BYTES]> {
        Box::pin(Ed25519Backend::sign(self, key, message))
    }
    fn verify<'a>(
        &'a self,
        kid: &'a str,
        public_key: &'a PublicKey,
        message: &'a [u8],
        signature: &'a [u8; SIGNATURE_BYTES],
    ) -> BackendFuture<'a, bool> {
        Box::pin(Ed25519Backend::verify(
            self, kid, public_key, message, signature,
        ))
    }
}

/// Ed25519 in Rust (ed25519-compact): the host's backend, and the reference the edge's WebCrypto
/// backend is tested against. Signs deterministically (no added noise), exactly as RFC 8032 and
/// WebCrypto do.
#[derive(Debug, Clone, Copy, Default)]
pub struct PureEd25519;

fn key_pair(seed: &Secret) -> Result<KeyPair, BackendError> {
    let seed = Seed::from_slice(seed.expose())
        .map_err(|_| BackendError::Decode("an Ed25519 seed is 32 bytes".into()))?;
    Ok(KeyPair::from_seed(seed))
}

impl Ed25519Backend for PureEd25519 {
    async fn public_key(&self, seed: &Secret) -> Result<PublicKey, BackendError> {
        Ok(key_pair(seed)?.pk)
    }

    async fn sign(
        &self,
        key: &PrivateKey,
        message: &[u8],
    ) -> Result<[u8; SIGNATURE_BYTES], BackendError> {
        let pair = key_pair(key.seed())?;
        // Cheap here, and it keeps a mislabelled key from signing under another key's id.
        if pair.pk != key.public {
            return Err(BackendError::Decode(format!(
                "signing key {}: the seed does not give its public key",
                key.kid
            )));
        }
        Ok(*pair.sk.sign(message, None))
    }

    async fn verify(
        &self,
        _kid: &str,
        public_key: &PublicKey,
        message: &[u8],
        signature: &[u8; SIGNATURE_BYTES],
    ) -> Result<bool, BackendError> {
        Ok(public_key
            .verify(message, &Signature::new(*signature))
            .is_ok())
    }
}
