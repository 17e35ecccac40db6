//! The runtime-free verifier consumers use (`edgeauth::verifier`) against the real server: it parses
//! the JWKS the server publishes, accepts the tokens the server issues, and refuses every token the
//! server refuses, for the same reason. Forged tokens are signed with the server's real key (derived
//! from the secret exactly as documented) unless the case is about the key or signature.

mod common;

use std::rc::Rc;

use common::*;
use ed25519_compact::{KeyPair, Noise, Seed};
use edgeauth::crypto::{b64url, b64url_decode, derive_key, hmac_sha256, Secret};
use edgeauth::http::{HttpRequest, Method};
use edgeauth::tokens::KeyRing;
use edgeauth::verifier::{
    unverified_key_id, verify, Expected, Jwks, KeyLookup, TokenError, LEEWAY_SECONDS,
    MAX_TOKEN_BYTES,
};
use serde_json::{json, Value};

/// The RFC 8037 example Ed25519 public key.
const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
/// Its private half (a JWK member `d`).
const RFC8037_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";

fn jwk(kid: &str) -> Value {
    json!({ "kty": "OKP", "crv": "Ed25519", "x": RFC8037_X, "kid": kid, "alg": "EdDSA", "use": "sig" })
}

fn kids(jwks: &Jwks) -> Vec<&str> {
    jwks.kids().collect()
}

#[test]
fn a_jwks_keeps_only_public_ed25519_signing_keys() {
    let mut with_d = jwk("has-d");
    with_d["d"] = json!(RFC8037_D);
    let mut no_alg = jwk("no-alg");
    no_alg.as_object_mut().unwrap().remove("alg");
    no_alg.as_object_mut().unwrap().remove("use");
    let mut rsa = jwk("rsa");
    rsa["kty"] = json!("RSA");
    let mut x25519 = jwk("x25519");
    x25519["crv"] = json!("X25519");
    let mut es256 = jwk("es256");
    es256["alg"] = json!("ES256");
    let mut encryption = jwk("enc");
    encryption["use"] = json!("enc");
    let mut short_x = jwk("short-x");
    short_x["x"] = json!(b64url(&[7u8; 31]));
    let mut padded_x = jwk("padded-x");
    padded_x["x"] = json!(format!("{RFC8037_X}="));
    let mut no_kid = jwk("");
    no_kid.as_object_mut().unwrap().remove("kid");
    let empty_kid = jwk("");
    let mut numeric_kid = jwk("");
    numeric_kid["kid"] = json!(7);
    let document = json!({ "keys": [
        jwk("good"), with_d, no_alg, rsa, x25519, es256, encryption, short_x, padded_x, no_kid,
        empty_kid, numeric_kid, "not an object", jwk("dup"), jwk("dup"),
    ] });
    let jwks = Jwks::from_json(&document.to_string()).unwrap();
    assert_eq!(kids(&jwks), ["good", "no-alg"]);
    assert_eq!(jwks.len(), 2);
    assert!(jwks.public_key("good").is_some());
    assert!(
        jwks.public_key("has-d").is_none(),
        "a key with private material is not used"
    );
    assert!(
        jwks.public_key("dup").is_none(),
        "an ambiguous kid is not used"
    );
    assert!(jwks.public_key("rsa").is_none());
}

#[test]
fn a_jwks_with_any_private_member_is_refused_key_by_key() {
    for member in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
        let mut key = jwk("k");
        key[member] = json!(RFC8037_D);
        let jwks = Jwks::from_json(&json!({ "keys": [key, jwk("other")] }).to_string()).unwrap();
        assert_eq!(kids(&jwks), ["other"], "member {member}");
    }
}

#[test]
fn a_document_that_is_not_a_jwks_is_an_error_and_an_empty_one_has_no_keys() {
    for bad in [
        "",
        "not json",
        "[]",
        "{}",
        r#"{"keys":{}}"#,
        r#"{"keys":"k"}"#,
    ] {
        assert!(Jwks::from_json(bad).is_err(), "{bad:?}");
    }
    let empty = Jwks::from_json(r#"{"keys":[]}"#).unwrap();
    assert!(empty.is_empty());
}

/// A server over SQLite with a bootstrapped admin, its current signing key, and the consumer's view.
struct Setup {
    app: TestApp,
    clock: TestClock,
    ring: Rc<KeyRing>,
    jwks: Jwks,
    jwks_body: Value,
    expected: Expected<'static>,
    kid: String,
    keys: KeyPair,
}

impl Setup {
    fn new() -> Self {
        let (app, clock) = app(&[]);
        bootstrap(&app);
        let response = send(
            &app,
            HttpRequest::new(Method::Get, "/.well-known/jwks.json"),
        );
        assert_eq!(response.status, 200);
        let jwks_body = response.json_value();
        let jwks = Jwks::from_json(std::str::from_utf8(&response.body).unwrap()).unwrap();
        let ring = block_on(app.key_ring()).unwrap();
        let row = app
            .db
            .rows(
                "SELECT kid, seed_salt FROM signing_keys WHERE status = 'current'",
                &[],
            )
            .remove(0);
        let kid = row.text("kid").unwrap();
        let salt = b64url_decode(&row.text("seed_salt").unwrap()).unwrap();
        let root = derive_key(
            &Secret::new(SIGNING_SECRET.as_bytes().to_vec()),
            "signing-key",
        );
        let keys = KeyPair::from_seed(Seed::new(hmac_sha256(
            root.expose(),
            &[kid.as_bytes(), b"\0", &salt],
        )));
        Setup {
            expected: Expected::new(PUBLIC_URL, PUBLIC_URL),
            app,
            clock,
            ring,
            jwks,
            jwks_body,
            kid,
            keys,
        }
    }

    fn header(&self) -> Value {
        json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": self.kid })
    }

    fn claims(&self) -> Value {
        json!({
            "iss": PUBLIC_URL, "aud": PUBLIC_URL, "sub": "user-1", "sid": "session-1",
            "org": "default", "amr": ["pwd"], "jti": "jti-1",
            "iat": T0, "nbf": T0, "exp": T0 + 600,
        })
    }

    fn signed_with(keys: &KeyPair, header: &Value, claims: &Value) -> String {
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let signature = keys
            .sk
            .sign(signing_input.as_bytes(), Some(Noise::default()));
        format!("{signing_input}.{}", b64url(signature.as_ref()))
    }

    fn signed(&self, header: &Value, claims: &Value) -> String {
        Self::signed_with(&self.keys, header, claims)
    }

    /// The verifier's answer, after checking the server's own verification gives the same one.
    fn both(&self, token: &str, now: i64) -> Result<String, TokenError> {
        let ours = verify(token, &self.jwks, &self.expected, now).map(|v| v.claims().sub.clone());
        let server = verify_token(&self.app, &self.ring, token, now)
            .expect("the backend answers")
            .map(|v| v.claims().sub.clone());
        assert_eq!(ours, server, "verifier and server disagree");
        ours
    }
}

#[test]
fn the_published_jwks_is_public_only_and_parses_to_the_servers_keys() {
    let s = Setup::new();
    assert_eq!(kids(&s.jwks), [s.kid.as_str()]);
    assert_eq!(
        s.jwks.public_key(&s.kid).map(|k| k.as_ref().to_vec()),
        Some(s.keys.pk.as_ref().to_vec())
    );
    for key in s.jwks_body["keys"].as_array().unwrap() {
        let members: Vec<&str> = key
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(!members.contains(&private), "JWKS key has `{private}`");
        }
    }
    let body = s.jwks_body.to_string();
    assert!(!body.contains(&b64url(s.keys.sk.seed().as_ref())));
}

#[test]
fn a_token_the_server_issues_at_login_verifies_against_its_published_jwks() {
    let s = Setup::new();
    let login = login_token_mode(&s.app);
    let token = text(&login, "access_token");
    let verified = verify(&token, &s.jwks, &s.expected, s.clock.now()).unwrap();
    assert_eq!(unverified_key_id(&token).as_deref(), Some(s.kid.as_str()));
    assert_eq!(verified.claims().sid, text(&login, "session_id"));
    assert_eq!(verified.claims().sub, text(&login["user"], "id"));
    assert_eq!(verified.claims().iss, PUBLIC_URL);
    assert_eq!(
        verified.expires_at() - verified.issued_at(),
        login["expires_in"].as_i64().unwrap()
    );
    assert!(is_active(&s.app, &token));
    // The same token for another audience or issuer is refused.
    let other_aud = Expected::new(PUBLIC_URL, "https://other.example");
    assert_eq!(
        verify(&token, &s.jwks, &other_aud, s.clock.now()).unwrap_err(),
        TokenError::WrongAudience
    );
    let other_iss = Expected::new("https://other.example", PUBLIC_URL);
    assert_eq!(
        verify(&token, &s.jwks, &other_iss, s.clock.now()).unwrap_err(),
        TokenError::WrongIssuer
    );
    // And once it has expired (past the leeway), offline verification refuses it as the server does.
    let after = verified.expires_at() + LEEWAY_SECONDS + 1;
    assert_eq!(s.both(&token, after), Err(TokenError::Expired));
}

#[test]
fn every_refusal_of_the_server_is_a_refusal_of_the_verifier_for_the_same_reason() {
    let s = Setup::new();
    let header = s.header();
    let claims = s.claims();
    let with_header = |name: &str, value: Value| {
        let mut h = header.clone();
        if value.is_null() {
            h.as_object_mut().unwrap().remove(name);
        } else {
            h[name] = value;
        }
        s.signed(&h, &claims)
    };
    let with_claim = |name: &str, value: Value| {
        let mut c = claims.clone();
        if value.is_null() {
            c.as_object_mut().unwrap().remove(name);
        } else {
            c[name] = value;
        }
        s.signed(&header, &c)
    };
    let baseline = s.signed(&header, &claims);
    assert_eq!(s.both(&baseline, T0), Ok("user-1".into()), "baseline");
    assert_eq!(
        s.both(&baseline, T0 + 600 + LEEWAY_SECONDS - 1),
        Ok("user-1".into()),
        "inside the leeway"
    );

    let unsigned = |alg: &str| {
        let mut h = header.clone();
        h["alg"] = json!(alg);
        format!(
            "{}.{}.",
            b64url(h.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        )
    };
    let hs256 = {
        let mut h = header.clone();
        h["alg"] = json!("HS256");
        let input = format!(
            "{}.{}",
            b64url(h.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let mac = hmac_sha256(s.keys.pk.as_ref(), &[input.as_bytes()]);
        format!("{input}.{}", b64url(&mac))
    };
    let tampered = {
        let mut parts: Vec<String> = baseline.split('.').map(str::to_owned).collect();
        let mut c = claims.clone();
        c["sub"] = json!("admin");
        parts[1] = b64url(c.to_string().as_bytes());
        parts.join(".")
    };
    // Same kid, another key: what a token signed by a stranger claiming our kid looks like.
    let stranger = Setup::signed_with(&KeyPair::from_seed(Seed::new([42u8; 32])), &header, &claims);
    let oversized = with_claim("pad", json!("x".repeat(MAX_TOKEN_BYTES)));

    let cases: Vec<(&str, String, i64, TokenError)> = vec![
        ("oversized", oversized, T0, TokenError::TooLarge { len: 0 }),
        (
            "garbage over 8 KiB",
            "a".repeat(MAX_TOKEN_BYTES + 1),
            T0,
            TokenError::TooLarge { len: 0 },
        ),
        (
            "not a jwt",
            "not.a.jwt!".into(),
            T0,
            TokenError::Malformed(String::new()),
        ),
        (
            "empty",
            String::new(),
            T0,
            TokenError::Malformed(String::new()),
        ),
        (
            "alg none",
            unsigned("none"),
            T0,
            TokenError::AlgorithmMismatch {
                actual: "none".into(),
            },
        ),
        (
            "alg HS256 keyed with the public key",
            hs256,
            T0,
            TokenError::AlgorithmMismatch {
                actual: "HS256".into(),
            },
        ),
        (
            "typ JWT",
            with_header("typ", json!("JWT")),
            T0,
            TokenError::WrongType {
                actual: Some("JWT".into()),
            },
        ),
        (
            "typ missing",
            with_header("typ", Value::Null),
            T0,
            TokenError::WrongType { actual: None },
        ),
        (
            "crit",
            with_header("crit", json!(["exp"])),
            T0,
            TokenError::ForbiddenHeader { name: "crit" },
        ),
        (
            "jku",
            with_header("jku", json!("https://evil.example/jwks.json")),
            T0,
            TokenError::ForbiddenHeader { name: "jku" },
        ),
        (
            "jwk",
            with_header(
                "jwk",
                json!({ "kty": "OKP", "crv": "Ed25519", "x": RFC8037_X }),
            ),
            T0,
            TokenError::ForbiddenHeader { name: "jwk" },
        ),
        (
            "x5u",
            with_header("x5u", json!("https://evil.example/cert.pem")),
            T0,
            TokenError::ForbiddenHeader { name: "x5u" },
        ),
        (
            "x5c",
            with_header("x5c", json!(["MIIB"])),
            T0,
            TokenError::ForbiddenHeader { name: "x5c" },
        ),
        (
            "unknown kid",
            with_header("kid", json!("not-ours")),
            T0,
            TokenError::UnknownKey,
        ),
        (
            "path kid",
            with_header("kid", json!("../../etc/passwd")),
            T0,
            TokenError::UnknownKey,
        ),
        (
            "missing kid",
            with_header("kid", Value::Null),
            T0,
            TokenError::UnknownKey,
        ),
        ("tampered payload", tampered, T0, TokenError::BadSignature),
        (
            "signed by a stranger under our kid",
            stranger,
            T0,
            TokenError::BadSignature,
        ),
        (
            "expired",
            baseline.clone(),
            T0 + 600 + LEEWAY_SECONDS + 1,
            TokenError::Expired,
        ),
        (
            "not yet valid",
            with_claim("nbf", json!(T0 + 3600)),
            T0,
            TokenError::NotYetValid,
        ),
        (
            "issued in the future",
            with_claim("iat", json!(T0 + 3600)),
            T0,
            TokenError::IssuedInFuture,
        ),
        (
            "exp missing",
            with_claim("exp", Value::Null),
            T0,
            TokenError::MissingClaim("exp"),
        ),
        (
            "iat missing",
            with_claim("iat", Value::Null),
            T0,
            TokenError::MissingClaim("iat"),
        ),
        (
            "nbf missing",
            with_claim("nbf", Value::Null),
            T0,
            TokenError::MissingClaim("nbf"),
        ),
        (
            "wrong issuer",
            with_claim("iss", json!("https://evil.example")),
            T0,
            TokenError::WrongIssuer,
        ),
        (
            "wrong audience",
            with_claim("aud", json!("https://other-service.example")),
            T0,
            TokenError::WrongAudience,
        ),
        (
            "sub missing",
            with_claim("sub", Value::Null),
            T0,
            TokenError::Malformed(String::new()),
        ),
    ];
    for (name, token, now, want) in cases {
        let got = s.both(&token, now).expect_err(name);
        assert_eq!(got.code(), want.code(), "{name}: {got:?}");
        // Variants with data must match exactly, except the free-text and length ones.
        if !matches!(want, TokenError::Malformed(_) | TokenError::TooLarge { .. }) {
            assert_eq!(got, want, "{name}");
        }
        // And the server's own endpoint says the same, at that time: not active.
        s.clock.0.set(now);
        assert!(!is_active(&s.app, &token), "{name}: /v1/verify");
        s.clock.0.set(T0);
    }
}

#[test]
fn offline_verification_cannot_see_a_logout_but_the_servers_verify_can() {
    // The documented bound of offline checks: a revoked token stays valid offline until `exp`.
    let s = Setup::new();
    let login = login_token_mode(&s.app);
    let token = text(&login, "access_token");
    let response = send(
        &s.app,
        with_bearer(HttpRequest::new(Method::Post, "/v1/auth/logout"), &token),
    );
    assert_eq!(response.status, 204);
    assert!(!is_active(&s.app, &token), "the server refuses it");
    assert!(
        verify(&token, &s.jwks, &s.expected, s.clock.now()).is_ok(),
        "offline, it verifies until it expires"
    );
}
