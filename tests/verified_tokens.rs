//! The per-isolate memory of verified access tokens (`tokens::VerifiedTokens`): the same token
//! presented again skips the parse and the signature check, and is still refused whenever a full
//! verification would refuse it at that moment (expired, its key gone, altered, revoked).

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::*;
use edgeauth::crypto::{b64url, b64url_decode};
use edgeauth::tokens::{
    verify_access_token_cached, AccessClaims, TokenError, LEEWAY_SECONDS, MAX_VERIFIED_TOKENS,
};
use serde_json::json;

/// A bootstrapped app with a counting backend, its clock, a fresh login and the check counter.
fn counted(accept: bool) -> (TestApp, TestClock, serde_json::Value, Rc<Cell<u32>>) {
    let (mut app, clock) = app(&[]);
    let checks = Rc::new(Cell::new(0));
    app.ed25519 = Box::new(Scripted {
        verdict: if accept {
            Verdict::Real
        } else {
            Verdict::Refuse
        },
        checks: Rc::clone(&checks),
    });
    bootstrap(&app);
    let login = login_token_mode(&app);
    (app, clock, login, checks)
}

#[test]
fn a_token_presented_again_is_not_checked_again() {
    let (app, _clock, login, checks) = counted(true);
    let token = text(&login, "access_token");
    let first = send(&app, post("/v1/verify", json!({ "token": token }))).json_value();
    assert_eq!(first["active"], true);
    assert_eq!(checks.get(), 1, "the first use checks the signature");
    for _ in 0..5 {
        let again = send(&app, post("/v1/verify", json!({ "token": token }))).json_value();
        assert_eq!(again, first, "the remembered answer is the verified one");
    }
    assert_eq!(checks.get(), 1, "later uses are answered from memory");
    assert_eq!(app.key_cache.verified_tokens().len(), 1);
}

#[test]
fn a_remembered_token_still_expires() {
    let (app, clock, login, checks) = counted(true);
    let token = text(&login, "access_token");
    assert!(is_active(&app, &token));
    let ttl = app.config.access_token_ttl;
    clock.advance(ttl + LEEWAY_SECONDS);
    assert!(is_active(&app, &token), "still within the leeway");
    clock.advance(1);
    assert!(!is_active(&app, &token), "past exp + leeway");
    assert_eq!(
        checks.get(),
        2,
        "the expired token went to a full verification"
    );
}

#[test]
fn a_remembered_token_is_refused_once_its_key_is_no_longer_in_the_ring() {
    let (app, _clock, login, _checks) = counted(true);
    let token = text(&login, "access_token");
    assert!(is_active(&app, &token));
    // The key row removed by hand, and the kept ring read again (as after KEY_CACHE_SECONDS).
    app.db.rows("DELETE FROM signing_keys", &[]);
    app.key_cache.clear();
    assert_eq!(
        app.key_cache.verified_tokens().len(),
        1,
        "the token is still remembered"
    );
    assert!(
        !is_active(&app, &token),
        "but a key the ring no longer holds verifies nothing"
    );
}

#[test]
fn an_altered_token_is_not_taken_for_the_remembered_one() {
    let (app, _clock, login, checks) = counted(true);
    let token = text(&login, "access_token");
    assert!(is_active(&app, &token));
    let (input, signature) = token.rsplit_once('.').unwrap();
    let (header, claims) = input.split_once('.').unwrap();
    // Other claims (another subject) under the remembered token's own signature.
    let mut other: serde_json::Value =
        serde_json::from_slice(&b64url_decode(claims).unwrap()).unwrap();
    other["sub"] = json!("someone-else");
    let altered = format!(
        "{header}.{}.{signature}",
        b64url(other.to_string().as_bytes())
    );
    assert!(!is_active(&app, &altered));
    assert_eq!(
        checks.get(),
        2,
        "the altered claims went to the signature check"
    );
    assert!(!is_active(&app, &format!("{token}A")), "a longer signature");
    assert!(is_active(&app, &token), "the original is still good");
}

#[test]
fn revocation_is_checked_on_every_use_of_a_remembered_token() {
    let (app, _clock, login, _checks) = counted(true);
    let token = text(&login, "access_token");
    assert!(is_active(&app, &token));
    let logout = send(
        &app,
        with_bearer(post("/v1/auth/logout", json!({})), &token),
    );
    assert_eq!(logout.status, 204, "{:?}", logout.json_value());
    assert!(!is_active(&app, &token), "refused at once after logout");
}

#[test]
fn only_tokens_that_passed_are_remembered() {
    let (app, _clock, login, checks) = counted(false);
    let token = text(&login, "access_token");
    for _ in 0..3 {
        assert!(!is_active(&app, &token));
    }
    assert_eq!(checks.get(), 3, "every refusal came from the backend");
    assert!(app.key_cache.verified_tokens().is_empty());
}

#[test]
fn the_memory_is_bounded_and_drops_expired_tokens_first() {
    let (app, clock, _login, _checks) = counted(true);
    let ring = block_on(app.key_ring()).unwrap();
    let known = app.key_cache.verified_tokens();
    let claims = |n: usize| AccessClaims {
        iss: PUBLIC_URL.into(),
        aud: PUBLIC_URL.into(),
        sub: format!("user-{n}"),
        sid: format!("session-{n}"),
        org: "default".into(),
        ws: None,
        amr: vec!["pwd".into()],
        jti: format!("jti-{n}"),
    };
    let verify = |token: &str, now: i64| {
        block_on(verify_access_token_cached(
            token,
            &ring,
            &app.config,
            now,
            app.ed25519.as_ref(),
            known,
        ))
        .unwrap()
    };
    // Short-lived tokens fill it.
    for n in 0..MAX_VERIFIED_TOKENS {
        let token = block_on(ring.sign(&claims(n), T0, 60, app.ed25519.as_ref())).unwrap();
        assert!(verify(&token, T0).is_ok());
    }
    assert_eq!(known.len(), MAX_VERIFIED_TOKENS);
    // Once they have expired, the next one makes room by dropping them all.
    clock.advance(60 + LEEWAY_SECONDS + 1);
    let now = clock.now();
    let fresh = block_on(ring.sign(&claims(0), now, 600, app.ed25519.as_ref())).unwrap();
    assert!(verify(&fresh, now).is_ok());
    assert_eq!(known.len(), 1, "only the live token is left");
    // Full of live tokens: it starts over rather than grow.
    for n in 1..=MAX_VERIFIED_TOKENS {
        let token = block_on(ring.sign(&claims(n), now, 600, app.ed25519.as_ref())).unwrap();
        assert!(verify(&token, now).is_ok());
        assert!(known.len() <= MAX_VERIFIED_TOKENS);
    }
    assert!(
        known.len() < MAX_VERIFIED_TOKENS,
        "it was cleared when full"
    );
    assert_eq!(
        verify(&fresh, T0 + 10_000),
        Err(TokenError::Expired),
        "a full verification still answers"
    );
}
