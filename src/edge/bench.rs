//! In-worker microbenchmarks, only in the `bench` build (cargo feature `bench`; never in the release
//! build): `GET /__bench/crypto` times our PBKDF2-HMAC-SHA256 and Ed25519 against the platform's
//! native WebCrypto, side by side in the same isolate and run, and answers the samples as JSON
//! (`scripts/bench.mjs` turns them into the table).
//!
//! Timing: `performance.now()` advances during CPU work under local `wrangler dev` (production
//! freezes timers until I/O, so these figures only mean something locally). Fast operations are
//! timed in batches. "Native" is WebCrypto called from plain JavaScript (an inline snippet below),
//! so the comparison includes none of our glue on that side.

use serde_json::json;
use worker::js_sys::{self, Reflect, Uint8Array};
use worker::wasm_bindgen::prelude::wasm_bindgen;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{Request, Response};

use super::webcrypto::WebCrypto;
use crate::crypto::Secret;
use crate::signatures::{Ed25519Backend, PrivateKey};

#[wasm_bindgen(inline_js = r#"
// PKCS#8 wrapping of a raw 32-byte Ed25519 seed (RFC 8410).
const PKCS8_PREFIX = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

export async function nativePbkdf2(password, salt, iterations) {
  const key = await crypto.subtle.importKey('raw', password, 'PBKDF2', false, ['deriveBits']);
  const start = performance.now();
  const bits = await crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations }, key, 256);
  return { ms: performance.now() - start, out: new Uint8Array(bits) };
}

export async function nativeEd25519(seed, message, n) {
  const pkcs8 = new Uint8Array([...PKCS8_PREFIX, ...seed]);
  const priv = await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519' }, true, ['sign']);
  const { x } = await crypto.subtle.exportKey('jwk', priv);
  const pub = await crypto.subtle.importKey('jwk', { kty: 'OKP', crv: 'Ed25519', x }, { name: 'Ed25519' }, false, ['verify']);
  let signature;
  let start = performance.now();
  for (let i = 0; i < n; i++) signature = await crypto.subtle.sign('Ed25519', priv, message);
  const signMs = (performance.now() - start) / n;
  start = performance.now();
  for (let i = 0; i < n; i++) {
    if (!(await crypto.subtle.verify('Ed25519', pub, signature, message))) throw new Error('native verify failed');
  }
  const verifyMs = (performance.now() - start) / n;
  return { signMs, verifyMs, signature: new Uint8Array(signature) };
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = nativePbkdf2)]
    fn native_pbkdf2(password: &[u8], salt: &[u8], iterations: u32) -> js_sys::Promise;
    #[wasm_bindgen(js_name = nativeEd25519)]
    fn native_ed25519(seed: &[u8], message: &[u8], n: u32) -> js_sys::Promise;
}

const PASSWORD: &[u8] = b"correct horse battery staple";
const SALT: &[u8] = b"0123456789abcdef";
/// A fixed seed and message: Ed25519 is deterministic, so ours and native must sign alike.
const SEED: [u8; 32] = [7; 32];
const MESSAGE: &[u8] =
    b"eyJhbGciOiJFZERTQSIsInR5cCI6ImF0K2p3dCIsImtpZCI6ImJlbmNoIn0.eyJzdWIiOiJiZW5jaCJ9";

/// `GET /__bench/crypto?runs=R&n=N`: R interleaved runs of each measurement (default 7); Ed25519
/// per-operation times over batches of N (default 500).
pub async fn handle(request: &Request) -> worker::Result<Response> {
    let url = request.url()?;
    if url.path() != "/__bench/crypto" {
        return Response::error("not found", 404);
    }
    let param = |name: &str, default: u32, max: u32| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse::<u32>().ok())
            .map_or(default, |v| v.clamp(1, max))
    };
    let runs = param("runs", 7, 50);
    let n = param("n", 500, 10_000);
    match run(runs, n).await {
        Ok(body) => Response::from_json(&body),
        Err(err) => Response::error(format!("bench failed: {err:?}"), 500),
    }
}

async fn run(runs: u32, n: u32) -> Result<serde_json::Value, JsValue> {
    // Same output first (a cheap cost), then the timed runs.
    if ours_pbkdf2(PASSWORD, SALT, 1000).as_slice() != native_pbkdf2_once(1000).await?.1.as_slice()
    {
        return Err(JsValue::from_str("PBKDF2 outputs differ"));
    }
    let mut pbkdf2 = Vec::new();
    for iterations in [100_000u32, 600_000] {
        let (mut ours, mut native) = (Vec::new(), Vec::new());
        for run in 0..runs {
            // Alternate which goes first, so neither always runs on a warmer isolate.
            for slot in 0..2 {
                if (slot == 0) == (run % 2 == 0) {
                    let start = now_ms();
                    std::hint::black_box(ours_pbkdf2(PASSWORD, SALT, iterations));
                    ours.push(now_ms() - start);
                } else {
                    native.push(native_pbkdf2_once(iterations).await?.0);
                }
            }
        }
        pbkdf2.push(json!({ "iterations": iterations, "ours_ms": ours, "native_ms": native }));
    }

    let mut ed25519 = Vec::new();
    for _ in 0..runs {
        let native = JsFuture::from(native_ed25519(&SEED, MESSAGE, n)).await?;
        let native_signature =
            Uint8Array::new(&Reflect::get(&native, &"signature".into())?).to_vec();
        let (compact_sign, compact_verify, compact_signature) = compact_ed25519(n);
        let (ours_sign, ours_verify, ours_signature) = ours_ed25519(n).await?;
        if compact_signature != native_signature || ours_signature != native_signature {
            return Err(JsValue::from_str("Ed25519 signatures differ"));
        }
        ed25519.push(json!({
            "ours_sign_ms": ours_sign,
            "ours_verify_ms": ours_verify,
            "native_sign_ms": number(&native, "signMs")?,
            "native_verify_ms": number(&native, "verifyMs")?,
            "compact_sign_ms": compact_sign,
            "compact_verify_ms": compact_verify,
        }));
    }
    Ok(json!({
        "runs": runs,
        "n": n,
        "simd128": cfg!(target_feature = "simd128"),
        "pbkdf2": pbkdf2,
        "ed25519": ed25519,
    }))
}

/// Our PBKDF2-HMAC-SHA256, 32-byte output: what `passwords` hashes with.
fn ours_pbkdf2(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    edgeauth_pbkdf2::derive(password, salt, iterations, &mut out);
    out
}

/// Our Ed25519 on the edge (the [`WebCrypto`] backend the server signs and verifies with, keys
/// imported once per isolate): per-operation sign and verify times over `n`, and the signature.
async fn ours_ed25519(n: u32) -> Result<(f64, f64, Vec<u8>), JsValue> {
    let failed = |e: crate::store::BackendError| JsValue::from_str(&e.to_string());
    let seed = Secret::new(SEED.to_vec());
    let public = Ed25519Backend::public_key(&WebCrypto, &seed)
        .await
        .map_err(failed)?;
    let key = PrivateKey::new("bench".into(), public, seed);
    let mut signature = Ed25519Backend::sign(&WebCrypto, &key, MESSAGE)
        .await
        .map_err(failed)?;
    let start = now_ms();
    for _ in 0..n {
        signature = Ed25519Backend::sign(&WebCrypto, &key, MESSAGE)
            .await
            .map_err(failed)?;
    }
    let sign = (now_ms() - start) / f64::from(n);
    let start = now_ms();
    for _ in 0..n {
        let valid = Ed25519Backend::verify(&WebCrypto, "bench", &public, MESSAGE, &signature)
            .await
            .map_err(failed)?;
        if !valid {
            return Err(JsValue::from_str("our verify refused our signature"));
        }
    }
    let verify = (now_ms() - start) / f64::from(n);
    Ok((sign, verify, signature.to_vec()))
}

async fn native_pbkdf2_once(iterations: u32) -> Result<(f64, Vec<u8>), JsValue> {
    let result = JsFuture::from(native_pbkdf2(PASSWORD, SALT, iterations)).await?;
    let out = Uint8Array::new(&Reflect::get(&result, &"out".into())?).to_vec();
    Ok((number(&result, "ms")?, out))
}

/// ed25519-compact in wasm (the pure-Rust reference): per-operation sign and verify times over
/// `n`, and the signature.
fn compact_ed25519(n: u32) -> (f64, f64, Vec<u8>) {
    let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(SEED));
    let mut signature = pair.sk.sign(MESSAGE, None);
    let start = now_ms();
    for _ in 0..n {
        signature = pair.sk.sign(MESSAGE, None);
    }
    let sign = (now_ms() - start) / f64::from(n);
    let start = now_ms();
    for _ in 0..n {
        assert!(pair.pk.verify(MESSAGE, &signature).is_ok());
    }
    let verify = (now_ms() - start) / f64::from(n);
    (sign, verify, signature.to_vec())
}

fn number(object: &JsValue, name: &str) -> Result<f64, JsValue> {
    Reflect::get(object, &name.into())?
        .as_f64()
        .ok_or_else(|| JsValue::from_str(name))
}

/// `performance.now()`, falling back to `Date.now()`.
fn now_ms() -> f64 {
    let performance = Reflect::get(&js_sys::global(), &"performance".into()).ok();
    performance
        .and_then(|p| {
            let now: js_sys::Function = Reflect::get(&p, &"now".into()).ok()?.dyn_into().ok()?;
            now.call0(&p).ok()?.as_f64()
        })
        .unwrap_or_else(js_sys::Date::now)
}
