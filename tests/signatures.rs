//! The Ed25519 port and what rests on it: the host backend is RFC 8032 Ed25519 (its test vectors,
//! deterministic signatures, so WebCrypto's must be byte-identical: tests/e2e/signatures.test.mjs
//! checks that on the edge); no verified token exists unless the backend said the signature is good;
//! a backend failure is a `503`, not a refusal or an acceptance; and the key ring an isolate keeps
//! gives the same answers as reading D1 every time, across a rotation by another isolate.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::*;
use ed25519_compact::{KeyPair, PublicKey, Seed};
use edgeauth::crypto::{b64url, b64url_decode, derive_key, hmac_sha256, Secret};
use edgeauth::http::{HttpRequest, Method};
use edgeauth::signatures::{Ed25519Backend, PrivateKey, PureEd25519};
use edgeauth::store::BackendError;
use edgeauth::tokens::{KeyCache, TokenError, KEY_CACHE_SECONDS};
use serde_json::{json, Value};

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// RFC 8032 §7.1, TEST 1 to 3: secret key (seed), public key, message, signature.
const RFC8032: [(&str, &str, &str, &str); 3] = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
];

#[test]
fn the_host_backend_is_rfc_8032_ed25519_on_its_test_vectors() {
    for (i, (seed, public, message, signature)) in RFC8032.iter().enumerate() {
        let seed = Secret::new(hex(seed));
        let derived = block_on(PureEd25519.public_key(&seed)).unwrap();
        assert_eq!(
            derived.as_ref(),
            hex(public).as_slice(),
            "TEST {}: public",
            i + 1
        );
        let key = PrivateKey::new("k".into(), derived, seed);
        let signed = block_on(PureEd25519.sign(&key, &hex(message))).unwrap();
        assert_eq!(signed.to_vec(), hex(signature), "TEST {}: signature", i + 1);
        assert!(block_on(PureEd25519.verify("k", &derived, &hex(message), &signed)).unwrap());
        // One bit off in the signature or the message, and it no longer verifies.
        let mut flipped = signed;
        flipped[7] ^= 1;
        assert!(!block_on(PureEd25519.verify("k", &derived, &hex(message), &flipped)).unwrap());
        let mut other = hex(message);
        other.push(0);
        assert!(!block_on(PureEd25519.verify("k", &derived, &other, &signed)).unwrap());
    }
}

#[test]
fn the_host_backend_refuses_to_sign_with_a_seed_that_is_not_the_keys() {
    let (seed, public, _, _) = RFC8032[0];
    let (other_seed, _, _, _) = RFC8032[1];
    let public = PublicKey::from_slice(&hex(public)).unwrap();
    let mislabelled = PrivateKey::new("k".into(), public, Secret::new(hex(other_seed)));
    assert!(block_on(PureEd25519.sign(&mislabelled, b"m")).is_err());
    let right = PrivateKey::new("k".into(), public, Secret::new(hex(seed)));
    assert!(block_on(PureEd25519.sign(&right, b"m")).is_ok());
}

/// An app whose backend says `verdict`, a token it issued, and the check counter.
fn scripted(verdict: Verdict) -> (TestApp, String, Rc<Cell<u32>>) {
    let (mut app, _clock) = app(&[]);
    let checks = Rc::new(Cell::new(0));
    app.ed25519 = Box::new(Scripted {
        verdict,
        checks: Rc::clone(&checks),
    });
    bootstrap(&app);
    let token = text(&login_token_mode(&app), "access_token");
    (app, token, checks)
}

#[test]
fn no_verified_token_exists_unless_the_backend_said_the_signature_is_good() {
    // Control: the same token is accepted when the backend checks for real.
    let (app, token, checks) = scripted(Verdict::Real);
    assert!(is_active(&app, &token));
    assert_eq!(checks.get(), 1, "the signature went through the backend");

    let (app, token, checks) = scripted(Verdict::Refuse);
    let ring = block_on(app.key_ring()).unwrap();
    let outcome = verify_token(&app, &ring, &token, T0).unwrap();
    assert_eq!(outcome, Err(TokenError::BadSignature));
    assert!(!is_active(&app, &token), "/v1/verify");
    let me = send(
        &app,
        with_bearer(HttpRequest::new(Method::Get, "/v1/me"), &token),
    );
    assert_eq!(
        me.status, 401,
        "a bearer the backend refuses authenticates nothing"
    );
    assert!(checks.get() >= 3, "each refusal came from the backend");
}

#[test]
fn a_backend_that_cannot_check_is_a_503_never_an_acceptance() {
    let (app, token, _checks) = scripted(Verdict::Fail);
    let ring = block_on(app.key_ring()).unwrap();
    let outcome = verify_token(&app, &ring, &token, T0);
    assert!(
        matches!(outcome, Err(BackendError::Decode(_))),
        "{outcome:?}"
    );
    let response = send(&app, post("/v1/verify", json!({ "token": token })));
    assert_eq!(response.status, 503, "{:?}", response.json_value());
    let me = send(
        &app,
        with_bearer(HttpRequest::new(Method::Get, "/v1/me"), &token),
    );
    assert_eq!(me.status, 503);
}

/// The seed of signing key `kid` (derived from the secret and the row's salt, as documented).
fn seed_of(app: &TestApp, kid: &str) -> [u8; 32] {
    let row = app
        .db
        .rows(
            "SELECT seed_salt FROM signing_keys WHERE kid = ?1",
            &[kid.into()],
        )
        .remove(0);
    let salt = b64url_decode(&row.text("seed_salt").unwrap()).unwrap();
    let root = derive_key(
        &Secret::new(SIGNING_SECRET.as_bytes().to_vec()),
        "signing-key",
    );
    hmac_sha256(root.expose(), &[kid.as_bytes(), b"\0", &salt])
}

fn header_of(token: &str) -> Value {
    serde_json::from_slice(&b64url_decode(token.split('.').next().unwrap()).unwrap()).unwrap()
}

#[test]
fn issued_tokens_carry_the_deterministic_rfc_8032_signature_of_their_signing_input() {
    let (app, _clock) = app(&[]);
    bootstrap(&app);
    let token = text(&login_token_mode(&app), "access_token");
    let kid = header_of(&token)["kid"].as_str().unwrap().to_owned();
    let keys = KeyPair::from_seed(Seed::new(seed_of(&app, &kid)));
    let (input, signature) = token.rsplit_once('.').unwrap();
    // ed25519-compact without added noise is plain RFC 8032, as WebCrypto is.
    assert_eq!(
        signature,
        b64url(keys.sk.sign(input.as_bytes(), None).as_ref())
    );
}

/// The number of key-ring reads among the round trips since `from`.
fn key_reads(app: &TestApp, from: usize) -> usize {
    app.db.round_trips.borrow()[from..]
        .iter()
        .filter(|sql| sql.starts_with("SELECT kid, public_key, seed_salt"))
        .count()
}

/// A token for the admin's session signed with key `kid`, valid from `now` for ten years.
fn forged(app: &TestApp, kid: &str, like: &str, now: i64) -> String {
    let mut claims: Value =
        serde_json::from_slice(&b64url_decode(like.split('.').nth(1).unwrap()).unwrap()).unwrap();
    claims["iat"] = json!(now);
    claims["nbf"] = json!(now);
    claims["exp"] = json!(now + 10 * 365 * 86_400);
    let header = json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": kid });
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let keys = KeyPair::from_seed(Seed::new(seed_of(app, kid)));
    format!(
        "{input}.{}",
        b64url(keys.sk.sign(input.as_bytes(), None).as_ref())
    )
}

#[test]
fn verification_reuses_the_isolates_key_ring_until_it_is_stale() {
    let (app, clock) = app(&[]);
    let boot = bootstrap(&app);
    let token = text(&login_token_mode(&app), "access_token");
    let start = app.db.round_trips.borrow().len();
    assert!(is_active(&app, &token));
    assert!(is_active(&app, &token));
    assert_eq!(key_reads(&app, start), 0, "login read the keys moments ago");
    clock.0.set(T0 + KEY_CACHE_SECONDS);
    let start = app.db.round_trips.borrow().len();
    assert!(is_active(&app, &token));
    assert!(is_active(&app, &token));
    assert_eq!(
        key_reads(&app, start),
        1,
        "read again once, after {KEY_CACHE_SECONDS} s"
    );
    // A kid the ring lacks reads D1 again (it may be a key another isolate just made).
    let start = app.db.round_trips.borrow().len();
    let mut header = header_of(&token);
    header["kid"] = json!("not-a-key");
    let stranger = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        token.split_once('.').unwrap().1
    );
    assert!(!is_active(&app, &stranger));
    assert_eq!(key_reads(&app, start), 1);
    // Signing and the JWKS always read afresh.
    let start = app.db.round_trips.borrow().len();
    login_token_mode(&app);
    let jwks = send(
        &app,
        HttpRequest::new(Method::Get, "/.well-known/jwks.json"),
    );
    assert_eq!(jwks.status, 200);
    assert_eq!(key_reads(&app, start), 2);
    let _ = boot;
}

/// In the last fifth of the kept ring's life, one verification reads the ring again while the
/// others use the kept one; a failed read is answered from the kept ring and tried again next time.
#[test]
fn the_kept_ring_is_renewed_in_the_last_fifth_of_its_life() {
    let (app, clock) = app(&[]);
    let _boot = bootstrap(&app);
    let token = text(&login_token_mode(&app), "access_token");
    let refresh_from = KEY_CACHE_SECONDS - KEY_CACHE_SECONDS / 5;
    // Login read the ring at T0.
    clock.0.set(T0 + refresh_from - 1);
    let start = app.db.round_trips.borrow().len();
    assert!(is_active(&app, &token));
    assert_eq!(key_reads(&app, start), 0, "not yet");

    clock.0.set(T0 + refresh_from);
    // D1 down: the refresh fails, and the kept ring (still within its life) answers.
    app.db.fail.set(true);
    assert!(is_active(&app, &token), "answered from the kept ring");
    app.db.fail.set(false);
    // Three verifications at once, each D1 round trip yielding as a real one does.
    app.db.interleave.set(true);
    let start = app.db.round_trips.borrow().len();
    let verify = post("/v1/verify", json!({ "token": token }));
    let answers = block_on(async {
        futures::join!(
            app.handle(&verify),
            app.handle(&verify),
            app.handle(&verify)
        )
    });
    app.db.interleave.set(false);
    for answer in [answers.0, answers.1, answers.2] {
        assert_eq!(answer.json_value()["active"], json!(true));
    }
    assert_eq!(key_reads(&app, start), 1, "one of the three read the ring");
    // The renewed ring counts from its own read.
    clock.0.set(T0 + 2 * refresh_from - 1);
    let start = app.db.round_trips.borrow().len();
    assert!(is_active(&app, &token));
    assert_eq!(key_reads(&app, start), 0, "renewed at T0 + {refresh_from}");
}

#[test]
fn after_a_rotation_by_another_isolate_the_kept_ring_answers_as_d1_would() {
    let (mut app, clock) = app(&[]);
    let boot = bootstrap(&app);
    let admin_key = text(&boot, "key");
    let t1 = text(&login_token_mode(&app), "access_token");
    let k1 = header_of(&t1)["kid"].as_str().unwrap().to_owned();
    let old_forgery = forged(&app, &k1, &t1, T0);
    assert!(is_active(&app, &t1));
    assert!(is_active(&app, &old_forgery));

    // Isolate B (its own cache, the same D1) rotates a second later.
    let isolate_a = std::mem::replace(&mut app.key_cache, Rc::new(KeyCache::default()));
    clock.0.set(T0 + 1);
    let rotated = send(
        &app,
        with_bearer(
            HttpRequest::new(Method::Post, "/v1/signing-keys/rotate"),
            &admin_key,
        ),
    );
    assert_eq!(rotated.status, 200, "{:?}", rotated.json_value());
    let t2 = text(&login_token_mode(&app), "access_token");
    let k2 = header_of(&t2)["kid"].as_str().unwrap().to_owned();
    assert_ne!(k1, k2);

    // Back in isolate A, whose kept ring (read at T0) has K1 current and no K2.
    app.key_cache = isolate_a;
    assert!(
        is_active(&app, &t2),
        "a token of the new key verifies at once"
    );
    assert_eq!(
        header_of(&text(&login_token_mode(&app), "access_token"))["kid"],
        json!(k2),
        "A signs with the new key at once"
    );
    assert!(is_active(&app, &t1), "K1 is published during its overlap");

    // Past K1's overlap (from the rotation), its tokens are refused, whatever A kept.
    let overlap = edgeauth::signing_keys::overlap_seconds(&app.config);
    clock.0.set(T0 + 1 + overlap + 1);
    assert!(!is_active(&app, &old_forgery), "K1 is no longer published");
    let new_forgery = forged(&app, &k2, &t2, T0 + 1 + overlap + 1);
    assert!(
        is_active(&app, &new_forgery),
        "control: K2 forgeries still verify"
    );
}

#[test]
fn a_kept_ring_is_not_trusted_under_another_signing_secret() {
    let (mut app, _clock) = app(&[]);
    bootstrap(&app);
    login_token_mode(&app);
    block_on(app.key_ring()).unwrap();
    app.config = config(&[(
        "SIGNING_SECRET",
        "a-completely-different-signing-secret-0123456789",
    )]);
    assert!(block_on(app.key_ring()).is_err());
}

#[test]
fn a_kept_ring_stops_accepting_a_retired_key_the_moment_its_overlap_ends() {
    let (app, clock) = app(&[]);
    let boot = bootstrap(&app);
    let t1 = text(&login_token_mode(&app), "access_token");
    let k1 = header_of(&t1)["kid"].as_str().unwrap().to_owned();
    let forgery = forged(&app, &k1, &t1, T0);
    let rotated = send(
        &app,
        with_bearer(
            HttpRequest::new(Method::Post, "/v1/signing-keys/rotate"),
            &text(&boot, "key"),
        ),
    );
    assert_eq!(rotated.status, 200);
    let overlap = edgeauth::signing_keys::overlap_seconds(&app.config);
    clock.0.set(T0 + overlap - 5);
    assert!(
        is_active(&app, &forgery),
        "K1 is published until T0 + overlap"
    );
    // Within KEY_CACHE_SECONDS of that read: the kept ring still lists K1, and only the clock
    // check at use keeps it from verifying.
    clock.0.set(T0 + overlap + 1);
    assert!(!is_active(&app, &forgery), "and not a second longer");
}
