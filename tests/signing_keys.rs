//! Signing-key rotation on demand (`GET /v1/signing-keys`, `POST /v1/signing-keys/rotate`): tokens
//! signed before a rotation verify through the overlap and not after it, the JWKS and the key list
//! never carry private material, the JWKS cache never outlives the overlap, and concurrent rotations
//! leave exactly one current key.

mod common;

use common::*;
use ed25519_compact::{KeyPair, Seed};
use edgeauth::crypto::{b64url, b64url_decode, derive_key, hmac_sha256, Secret};
use edgeauth::http::{HttpRequest, Method};
use edgeauth::store::SqlValue;
use serde_json::{json, Value};

/// `ACCESS_TOKEN_TTL` (default) + the 10 s verification leeway.
const OVERLAP: i64 = 610;

fn get(app: &TestApp, path: &str, credential: &str) -> edgeauth::http::HttpResponse {
    send(
        app,
        with_bearer(HttpRequest::new(Method::Get, path), credential),
    )
}

fn rotate(app: &TestApp, credential: &str) -> edgeauth::http::HttpResponse {
    send(
        app,
        with_bearer(post("/v1/signing-keys/rotate", json!({})), credential),
    )
}

fn list(app: &TestApp, credential: &str) -> Vec<Value> {
    let response = get(app, "/v1/signing-keys", credential);
    assert_eq!(response.status, 200, "{:?}", response.json_value());
    response.json_value()["signing_keys"]
        .as_array()
        .unwrap()
        .clone()
}

fn jwks_kids(app: &TestApp) -> Vec<String> {
    let response = send(app, HttpRequest::new(Method::Get, "/.well-known/jwks.json"));
    assert_eq!(response.status, 200);
    let mut kids: Vec<String> = response.json_value()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    kids
}

fn kid_of(token: &str) -> String {
    let header: Value =
        serde_json::from_slice(&b64url_decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// A token signed with key `kid`'s real private half (derived from the secret and the row's salt, as
/// documented), valid from `now` until `exp`.
fn forge(app: &TestApp, kid: &str, now: i64, exp: i64) -> String {
    let row = app
        .db
        .rows(
            "SELECT seed_salt FROM signing_keys WHERE kid = ?1",
            &[SqlValue::from(kid)],
        )
        .remove(0);
    let salt = b64url_decode(&row.text("seed_salt").unwrap()).unwrap();
    let root = derive_key(
        &Secret::new(SIGNING_SECRET.as_bytes().to_vec()),
        "signing-key",
    );
    let keys = KeyPair::from_seed(Seed::new(hmac_sha256(
        root.expose(),
        &[kid.as_bytes(), b"\0", &salt],
    )));
    let header = json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": kid });
    let claims = json!({
        "iss": PUBLIC_URL, "aud": PUBLIC_URL, "sub": "user-forged", "sid": "session-forged",
        "org": "default", "amr": ["pwd"], "jti": "jti-forged", "iat": now, "nbf": now, "exp": exp,
    });
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = keys.sk.sign(input.as_bytes(), None);
    format!("{input}.{}", b64url(signature.as_ref()))
}

#[test]
fn the_signing_key_routes_are_for_org_admins_only() {
    let (app, _clock) = app(&[]);
    let boot = bootstrap(&app);
    let admin_key = text(&boot, "key");
    insert_user(&app, "plain@example.test", ADMIN_PASSWORD, false);
    let plain = access_token_for(&app, "plain@example.test", ADMIN_PASSWORD, None);

    for request in [
        HttpRequest::new(Method::Get, "/v1/signing-keys"),
        post("/v1/signing-keys/rotate", json!({})),
    ] {
        let anonymous = send(&app, request.clone());
        assert_eq!(anonymous.status, 401);
        assert_eq!(anonymous.json_value(), auth_failure_body());
        let forbidden = send(&app, with_bearer(request.clone(), &plain));
        assert_eq!(forbidden.status, 403, "{:?}", forbidden.json_value());
    }
    let before = list(&app, &admin_key);
    assert_eq!(rotate(&app, &plain).status, 403);
    assert_eq!(
        list(&app, &admin_key),
        before,
        "a refused rotation changed nothing"
    );
    // The bootstrap API key is an org admin's unscoped key: it may rotate.
    assert_eq!(rotate(&app, &admin_key).status, 200);
}

#[test]
fn the_key_list_and_the_jwks_carry_public_halves_only() {
    let (app, _clock) = app(&[]);
    let boot = bootstrap(&app);
    let admin_key = text(&boot, "key");
    let keys = list(&app, &admin_key);
    assert_eq!(keys.len(), 1, "listing makes the first key: {keys:?}");
    let key = &keys[0];
    let mut fields: Vec<&str> = key
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "created_at",
            "kid",
            "publish_until",
            "retired_at",
            "status",
            "x"
        ]
    );
    assert_eq!(key["status"], "current");
    assert_eq!(key["created_at"], "2026-01-15T10:00:00Z");
    assert_eq!(key["retired_at"], Value::Null);
    assert_eq!(key["publish_until"], Value::Null);

    let jwks = send(
        &app,
        HttpRequest::new(Method::Get, "/.well-known/jwks.json"),
    )
    .json_value();
    let jwk = &jwks["keys"][0];
    assert_eq!(jwk["kid"], key["kid"]);
    assert_eq!(jwk["x"], key["x"], "the listed x is the published one");

    let salt = app.db.rows("SELECT seed_salt FROM signing_keys", &[])[0]
        .text("seed_salt")
        .unwrap();
    for body in [serde_json::to_string(&keys).unwrap(), jwks.to_string()] {
        assert!(!body.contains(&salt), "a salt leaked: {body}");
        for private in ["\"d\"", "seed", "salt", "private"] {
            assert!(!body.contains(private), "{private} in {body}");
        }
    }
}

#[test]
fn tokens_signed_before_a_rotation_verify_through_the_overlap_and_not_after() {
    let (app, clock) = app(&[]);
    let boot = bootstrap(&app);
    let admin_key = text(&boot, "key");
    let before = text(&login_token_mode(&app), "access_token");
    let old_kid = kid_of(&before);
    // A token of the old key that would be valid for a day: only the overlap keeps it alive.
    let long_lived = forge(&app, &old_kid, T0, T0 + 86_400);
    assert!(is_active(&app, &long_lived), "the forged baseline verifies");

    clock.advance(100);
    let rotated_at = T0 + 100;
    let response = rotate(&app, &admin_key);
    assert_eq!(response.status, 200, "{:?}", response.json_value());
    let new_key = response.json_value()["signing_key"].clone();
    let new_kid = new_key["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    assert_eq!(new_key["status"], "current");
    assert_eq!(new_key["created_at"], "2026-01-15T10:01:40Z");

    let keys = list(&app, &admin_key);
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["kid"], new_kid.as_str(), "newest first");
    assert_eq!(keys[1]["kid"], old_kid.as_str());
    assert_eq!(keys[1]["status"], "retired");
    assert_eq!(keys[1]["retired_at"], "2026-01-15T10:01:40Z");
    let publish_until = app.db.rows(
        "SELECT retired_at, publish_until FROM signing_keys WHERE kid = ?1",
        &[SqlValue::from(old_kid.as_str())],
    )[0]
    .int("publish_until")
    .unwrap();
    assert_eq!(publish_until, rotated_at + OVERLAP);

    // Both keys are published; the old token still verifies, new tokens carry the new kid.
    let mut both = vec![old_kid.clone(), new_kid.clone()];
    both.sort();
    assert_eq!(jwks_kids(&app), both);
    assert!(
        is_active(&app, &before),
        "a token issued before the rotation"
    );
    let after = text(&login_token_mode(&app), "access_token");
    assert_eq!(kid_of(&after), new_kid);
    assert!(is_active(&app, &after));

    // Last second of the overlap: still published and accepted.
    clock.advance(OVERLAP - 1);
    assert!(is_active(&app, &long_lived));
    assert_eq!(jwks_kids(&app), both);
    // Overlap over: unpublished and refused, even before upkeep deletes the row.
    clock.advance(1);
    assert!(!is_active(&app, &long_lived), "a key past its overlap");
    assert_eq!(jwks_kids(&app), vec![new_kid.clone()]);

    // The rotation is in the audit log, by the key that asked.
    let events = app.db.rows(
        "SELECT actor_kind, actor_id, target_kind, target_id, outcome, detail FROM audit_events \
         WHERE action = 'signing_key_rotate'",
        &[],
    );
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.text("actor_kind").unwrap(), "api_key");
    assert_eq!(
        event.text("actor_id").unwrap(),
        boot["api_key"]["id"].as_str().unwrap()
    );
    assert_eq!(event.text("target_kind").unwrap(), "signing_key");
    assert_eq!(event.text("target_id").unwrap(), new_kid);
    assert_eq!(event.text("outcome").unwrap(), "success");
    let detail: Value = serde_json::from_str(&event.text("detail").unwrap()).unwrap();
    assert_eq!(detail, json!({ "retired": old_kid, "created": true }));
}

#[test]
fn the_jwks_cache_never_outlives_the_overlap() {
    for (ttl, max_age) in [(None, 300), (Some("60"), 70), (Some("290"), 300)] {
        let overrides: Vec<(&str, &str)> = ttl
            .map(|t| vec![("ACCESS_TOKEN_TTL", t)])
            .unwrap_or_default();
        let (app, _clock) = app(&overrides);
        let response = send(
            &app,
            HttpRequest::new(Method::Get, "/.well-known/jwks.json"),
        );
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header_value("cache-control"),
            Some(format!("public, max-age={max_age}").as_str()),
            "ACCESS_TOKEN_TTL {ttl:?}"
        );
    }
}

#[test]
fn concurrent_rotations_leave_exactly_one_current_key() {
    let (app, _clock) = app(&[]);
    let boot = bootstrap(&app);
    let admin_key = text(&boot, "key");
    let first = list(&app, &admin_key)[0]["kid"]
        .as_str()
        .unwrap()
        .to_owned();

    // Both requests read the current key before either writes (every storage call yields once).
    let request = with_bearer(post("/v1/signing-keys/rotate", json!({})), &admin_key);
    app.db.interleave.set(true);
    let (a, b) = block_on(async { futures::join!(app.handle(&request), app.handle(&request)) });
    app.db.interleave.set(false);
    assert_eq!(a.status, 200, "{:?}", a.json_value());
    assert_eq!(b.status, 200, "{:?}", b.json_value());
    let kid_a = a.json_value()["signing_key"]["kid"].clone();
    assert_eq!(
        kid_a,
        b.json_value()["signing_key"]["kid"],
        "both answer the one current key"
    );

    let rows = app.db.rows(
        "SELECT kid, status FROM signing_keys ORDER BY created_at, status DESC",
        &[],
    );
    let statuses: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.text("kid").unwrap(), r.text("status").unwrap()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (first.clone(), "retired".to_owned()),
            (kid_a.as_str().unwrap().to_owned(), "current".to_owned()),
        ],
        "the first key retired once, one new current key, no third key"
    );

    // The two really raced: one rotation made the key, the other found it made.
    let mut details: Vec<Value> = app
        .db
        .rows(
            "SELECT detail FROM audit_events WHERE action = 'signing_key_rotate'",
            &[],
        )
        .iter()
        .map(|r| serde_json::from_str(&r.text("detail").unwrap()).unwrap())
        .collect();
    details.sort_by_key(|d| d["created"].as_bool());
    assert_eq!(
        details,
        vec![
            json!({ "retired": null, "created": false }),
            json!({ "retired": first, "created": true }),
        ]
    );
}
