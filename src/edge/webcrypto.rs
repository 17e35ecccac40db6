//! Ed25519 through the platform's WebCrypto (`crypto.subtle`, algorithm `Ed25519`): the edge's
//! [`Ed25519Backend`]. Native code signs in ~0.015 ms and verifies in ~0.045 ms where Ed25519
//! compiled to wasm takes ~0.22 ms for either, and the server's `.wasm` carries no curve arithmetic.
//!
//! Importing a key costs about as much as using it, so each isolate imports a key once and keeps
//! the `CryptoKey`, by key id AND public key: a rotated key has a new id, and a row re-derived under
//! another secret has another public key, so neither can ever meet a stale entry.

use std::cell::RefCell;
use std::collections::HashMap;

use ed25519_compact::PublicKey;
use worker::js_sys::{self, Array, Object, Reflect, Uint8Array};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{Crypto, CryptoKey, SubtleCrypto};
use zeroize::Zeroizing;

use crate::crypto::{b64url_decode, Secret};
use crate::signatures::{Ed25519Backend, PrivateKey, SEED_BYTES, SIGNATURE_BYTES};
use crate::store::BackendError;

const ALGORITHM: &str = "Ed25519";
/// DER prefix of a PKCS#8 Ed25519 private key (RFC 8410); the 32-byte seed follows it.
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// Entries kept per map: an isolate meets a handful of keys (the current one and those retired
/// within the overlap); past this the map is emptied rather than grown.
const MAX_KEPT_KEYS: usize = 32;

/// Imported keys by public key, each with the key id it was imported for.
type KeptKeys = RefCell<HashMap<[u8; PublicKey::BYTES], (String, CryptoKey)>>;

thread_local! {
    /// Private keys imported for signing, per isolate.
    static SIGNING_KEYS: KeptKeys = RefCell::new(HashMap::new());
    /// Public keys imported for verification, per isolate.
    static VERIFYING_KEYS: KeptKeys = RefCell::new(HashMap::new());
    /// `crypto.subtle`, looked up once.
    static SUBTLE: RefCell<Option<SubtleCrypto>> = const { RefCell::new(None) };
}

/// [`Ed25519Backend`] over `crypto.subtle`.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebCrypto;

fn js_error(what: &str) -> impl Fn(JsValue) -> BackendError + '_ {
    move |error| {
        let detail = error
            .dyn_ref::<js_sys::Error>()
            .map_or_else(|| format!("{error:?}"), |e| String::from(e.message()));
        BackendError::Decode(format!("WebCrypto {what}: {detail}"))
    }
}

/// `crypto.subtle` of this isolate (read through `Reflect`: the global is a
/// `ServiceWorkerGlobalScope` in workerd, which web-sys has no binding for).
fn subtle() -> Result<SubtleCrypto, BackendError> {
    if let Some(subtle) = SUBTLE.with(|kept| kept.borrow().clone()) {
        return Ok(subtle);
    }
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))
        .map_err(js_error("crypto"))?;
    if crypto.is_undefined() {
        return Err(BackendError::Decode("WebCrypto: no crypto global".into()));
    }
    let subtle = crypto.unchecked_into::<Crypto>().subtle();
    SUBTLE.with(|kept| *kept.borrow_mut() = Some(subtle.clone()));
    Ok(subtle)
}

fn usages(usage: &str) -> Array {
    Array::of1(&JsValue::from_str(usage))
}

/// Imports the private key `seed` (PKCS#8), for signing; `extractable` only to read its public half.
async fn import_private(
    subtle: &SubtleCrypto,
    seed: &Secret,
    extractable: bool,
) -> Result<CryptoKey, BackendError> {
    if seed.expose().len() != SEED_BYTES {
        return Err(BackendError::Decode("an Ed25519 seed is 32 bytes".into()));
    }
    let mut der = Zeroizing::new(Vec::with_capacity(PKCS8_PREFIX.len() + SEED_BYTES));
    der.extend_from_slice(&PKCS8_PREFIX);
    der.extend_from_slice(seed.expose());
    let data = Uint8Array::from(der.as_slice());
    let promise =
        subtle.import_key_with_str("pkcs8", &data, ALGORITHM, extractable, &usages("sign"));
    // importKey copied the bytes when called: wipe the JS copy whatever the outcome.
    data.fill(0, 0, data.length());
    let key = JsFuture::from(promise.map_err(js_error("importKey"))?)
        .await
        .map_err(js_error("importKey"))?;
    Ok(key.unchecked_into())
}

async fn import_public(
    subtle: &SubtleCrypto,
    public: &PublicKey,
) -> Result<CryptoKey, BackendError> {
    let data = Uint8Array::from(public.as_ref());
    let promise = subtle
        .import_key_with_str("raw", &data, ALGORITHM, false, &usages("verify"))
        .map_err(js_error("importKey"))?;
    let key = JsFuture::from(promise)
        .await
        .map_err(js_error("importKey"))?;
    Ok(key.unchecked_into())
}

/// The key imported for (`kid`, `public`), if this isolate has one.
fn kept(
    map: &'static std::thread::LocalKey<KeptKeys>,
    kid: &str,
    public: &PublicKey,
) -> Option<CryptoKey> {
    map.with(|keys| {
        keys.borrow()
            .get(&**public)
            .filter(|(kept_kid, _)| kept_kid == kid)
            .map(|(_, key)| key.clone())
    })
}

fn keep(
    map: &'static std::thread::LocalKey<KeptKeys>,
    kid: &str,
    public: &PublicKey,
    key: &CryptoKey,
) {
    map.with(|keys| {
        let mut keys = keys.borrow_mut();
        if keys.len() >= MAX_KEPT_KEYS {
            keys.clear();
        }
        keys.insert(**public, (kid.to_owned(), key.clone()));
    });
}

impl Ed25519Backend for WebCrypto {
    async fn public_key(&self, seed: &Secret) -> Result<PublicKey, BackendError> {
        let subtle = subtle()?;
        let key = import_private(&subtle, seed, true).await?;
        let jwk = JsFuture::from(
            subtle
                .export_key("jwk", &key)
                .map_err(js_error("exportKey"))?,
        )
        .await
        .map_err(js_error("exportKey"))?;
        // The JWK also carries `d` (the seed): read `x` and drop the rest.
        let x = Reflect::get(&jwk, &JsValue::from_str("x"))
            .ok()
            .and_then(|x| x.as_string())
            .and_then(|x| b64url_decode(&x))
            .and_then(|x| PublicKey::from_slice(&x).ok());
        if let Ok(object) = jwk.dyn_into::<Object>() {
            let _ = Reflect::delete_property(&object, &JsValue::from_str("d"));
        }
        x.ok_or_else(|| BackendError::Decode("WebCrypto exportKey: no Ed25519 `x`".into()))
    }

    async fn sign(
        &self,
        key: &PrivateKey,
        message: &[u8],
    ) -> Result<[u8; SIGNATURE_BYTES], BackendError> {
        let subtle = subtle()?;
        let crypto_key = match kept(&SIGNING_KEYS, key.kid(), key.public()) {
            Some(crypto_key) => crypto_key,
            None => {
                let crypto_key = import_private(&subtle, key.seed(), false).await?;
                keep(&SIGNING_KEYS, key.kid(), key.public(), &crypto_key);
                crypto_key
            }
        };
        let promise = subtle
            .sign_with_str_and_u8_array(ALGORITHM, &crypto_key, message)
            .map_err(js_error("sign"))?;
        let signature = JsFuture::from(promise).await.map_err(js_error("sign"))?;
        let signature = Uint8Array::new(&signature);
        let mut bytes = [0u8; SIGNATURE_BYTES];
        if signature.length() as usize != SIGNATURE_BYTES {
            return Err(BackendError::Decode(format!(
                "WebCrypto sign: {} bytes, not {SIGNATURE_BYTES}",
                signature.length()
            )));
        }
        signature.copy_to(&mut bytes);
        Ok(bytes)
    }

    async fn verify(
        &self,
        kid: &str,
        public_key: &PublicKey,
        message: &[u8],
        signature: &[u8; SIGNATURE_BYTES],
    ) -> Result<bool, BackendError> {
        let subtle = subtle()?;
        let crypto_key = match kept(&VERIFYING_KEYS, kid, public_key) {
            Some(crypto_key) => crypto_key,
            None => {
                let crypto_key = import_public(&subtle, public_key).await?;
                keep(&VERIFYING_KEYS, kid, public_key, &crypto_key);
                crypto_key
            }
        };
        let promise = subtle
            .verify_with_str_and_u8_array_and_u8_array(ALGORITHM, &crypto_key, signature, message)
            .map_err(js_error("verify"))?;
        let valid = JsFuture::from(promise).await.map_err(js_error("verify"))?;
        Ok(valid.as_bool() == Some(true))
    }
}

/// Mean per-operation timings of Ed25519 in this isolate, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ed25519Timings {
    /// [`WebCrypto`] sign (key already imported).
    pub webcrypto_sign: f64,
    /// [`WebCrypto`] verify (key already imported).
    pub webcrypto_verify: f64,
    /// `crypto.subtle.sign` awaited in a loop on an imported key, without the port: the floor.
    pub direct_sign: f64,
    /// `crypto.subtle.verify` likewise.
    pub direct_verify: f64,
    /// ed25519-compact in wasm, sign (key pair expanded once).
    pub pure_sign: f64,
    /// [`PureEd25519`](crate::signatures::PureEd25519) verify.
    pub pure_verify: f64,
}

/// Times `iterations` signs and verifies of a token-sized message with each backend, side by side
/// in one isolate, and checks that both backends give the same signature. For the benchmark
/// build only: nothing in the Worker calls it, so the release `.wasm` does not carry it.
pub async fn time_ed25519(iterations: u32) -> Result<Ed25519Timings, BackendError> {
    use crate::signatures::PureEd25519;

    let seed = Secret::new([42u8; SEED_BYTES].to_vec());
    let public = Ed25519Backend::public_key(&WebCrypto, &seed).await?;
    let key = PrivateKey::new("bench".into(), public, seed);
    let message = [b'm'; 300];
    let signature = Ed25519Backend::sign(&WebCrypto, &key, &message).await?;
    if Ed25519Backend::sign(&PureEd25519, &key, &message).await? != signature {
        return Err(BackendError::Decode(
            "WebCrypto and ed25519-compact signatures differ".into(),
        ));
    }
    Ed25519Backend::verify(&WebCrypto, "bench", &public, &message, &signature).await?;
    let per_op = |start: f64| (js_sys::Date::now() - start) / f64::from(iterations.max(1));
    let start = js_sys::Date::now();
    for _ in 0..iterations {
        Ed25519Backend::sign(&WebCrypto, &key, &message).await?;
    }
    let webcrypto_sign = per_op(start);
    let start = js_sys::Date::now();
    for _ in 0..iterations {
        Ed25519Backend::verify(&WebCrypto, "bench", &public, &message, &signature).await?;
    }
    let webcrypto_verify = per_op(start);
    // ed25519-compact with its key pair expanded once, as a signer holding its key would use it
    // (PureEd25519 re-derives the pair from the seed on each call).
    let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([42u8; SEED_BYTES]));
    let start = js_sys::Date::now();
    for _ in 0..iterations {
        std::hint::black_box(pair.sk.sign(std::hint::black_box(&message), None));
    }
    let pure_sign = per_op(start);
    let start = js_sys::Date::now();
    for _ in 0..iterations {
        Ed25519Backend::verify(&PureEd25519, "bench", &public, &message, &signature).await?;
    }
    let pure_verify = per_op(start);
    let subtle = subtle()?;
    let private = import_private(&subtle, key.seed(), false).await?;
    let start = js_sys::Date::now();
    for _ in 0..iterations {
        let promise = subtle
            .sign_with_str_and_u8_array(ALGORITHM, &private, &message)
            .map_err(js_error("sign"))?;
        JsFuture::from(promise).await.map_err(js_error("sign"))?;
    }
    let direct_sign = per_op(start);
    let verifying = import_public(&subtle, &public).await?;
    let start = js_sys::Date::now();
    for _ in 0..iterations {
        let promise = subtle
            .verify_with_str_and_u8_array_and_u8_array(ALGORITHM, &verifying, &signature, &message)
            .map_err(js_error("verify"))?;
        JsFuture::from(promise).await.map_err(js_error("verify"))?;
    }
    let direct_verify = per_op(start);
    Ok(Ed25519Timings {
        webcrypto_sign,
        webcrypto_verify,
        direct_sign,
        direct_verify,
        pure_sign,
        pure_verify,
    })
}
