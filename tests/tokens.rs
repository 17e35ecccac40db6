//! Access-token verification refuses every malformed or hostile token. Each forged token below is
//! validly signed with our real key (derived from the secret exactly as documented) unless the test
//! is about the signature, so each rejection is for the one reason under test.

mod common;

use common::*;
use ed25519_compact::{KeyPair, Noise, Seed};
use edgeauth::crypto::{b64url, derive_key, hmac_sha256, Secret};
use std::rc::Rc;

use edgeauth::tokens::{AccessClaims, KeyRing, TokenError, MAX_TOKEN_BYTES};
use serde_json::{json, Value};

struct Forge {
    app: TestApp,
    ring: Rc<KeyRing>,
    kid: String,
    keys: KeyPair,
}

impl Forge {
    fn new() -> Self {
        let (app, _clock) = app(&[]);
        let ring = block_on(app.key_ring()).unwrap();
        let row = app
            .db
            .rows(
                "SELECT kid, seed_salt FROM signing_keys WHERE status = 'current'",
                &[],
            )
            .remove(0);
        let kid = row.text("kid").unwrap();
        let salt = edgeauth::crypto::b64url_decode(&row.text("seed_salt").unwrap()).unwrap();
        let root = derive_key(
            &Secret::new(SIGNING_SECRET.as_bytes().to_vec()),
            "signing-key",
        );
        let seed = hmac_sha256(root.expose(), &[kid.as_bytes(), b"\0", &salt]);
        let keys = KeyPair::from_seed(Seed::new(seed));
        Forge {
            app,
            ring,
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

    fn signed(&self, header: &Value, claims: &Value) -> String {
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let signature = self
            .keys
            .sk
            .sign(signing_input.as_bytes(), Some(Noise::default()));
        format!("{signing_input}.{}", b64url(signature.as_ref()))
    }

    fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        self.verify_at(token, T0)
    }

    fn verify_at(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        verify_token(&self.app, &self.ring, token, now)
            .expect("the backend answers")
            .map(|v| v.claims().clone())
    }
}

#[test]
fn a_correctly_forged_baseline_token_verifies_so_the_rejections_below_are_meaningful() {
    let f = Forge::new();
    let claims = f.verify(&f.signed(&f.header(), &f.claims())).unwrap();
    assert_eq!(claims.sub, "user-1");
    assert_eq!(claims.sid, "session-1");
}

#[test]
fn tokens_we_sign_verify_and_carry_the_contract_claims() {
    let f = Forge::new();
    let claims = AccessClaims {
        iss: PUBLIC_URL.into(),
        aud: PUBLIC_URL.into(),
        sub: "u".into(),
        sid: "s".into(),
        org: "default".into(),
        ws: Some("w".into()),
        amr: vec!["pwd".into()],
        jti: "j".into(),
    };
    let token = block_on(f.ring.sign(&claims, T0, 600, f.app.ed25519.as_ref())).unwrap();
    let verified = verify_token(&f.app, &f.ring, &token, T0 + 1)
        .unwrap()
        .unwrap();
    assert_eq!(verified.claims(), &claims);
    assert_eq!(verified.expires_at() - verified.issued_at(), 600);
    let header: Value = serde_json::from_slice(
        &edgeauth::crypto::b64url_decode(token.split('.').next().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        header,
        json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": f.kid })
    );
}

#[test]
fn alg_none_in_any_case_is_refused() {
    let f = Forge::new();
    for alg in ["none", "None", "NONE"] {
        let mut header = f.header();
        header["alg"] = json!(alg);
        let unsigned = format!(
            "{}.{}.",
            b64url(header.to_string().as_bytes()),
            b64url(f.claims().to_string().as_bytes())
        );
        assert!(
            matches!(
                f.verify(&unsigned),
                Err(TokenError::AlgorithmMismatch { .. } | TokenError::Malformed(_))
            ),
            "alg {alg}"
        );
    }
}

#[test]
fn hs256_signed_with_the_public_key_bytes_is_refused() {
    let f = Forge::new();
    let mut header = f.header();
    header["alg"] = json!("HS256");
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(f.claims().to_string().as_bytes())
    );
    let jwk_x = b64url(f.keys.pk.as_ref());
    for key in [f.keys.pk.as_ref().to_vec(), jwk_x.into_bytes()] {
        let mac = hmac_sha256(&key, &[signing_input.as_bytes()]);
        let token = format!("{signing_input}.{}", b64url(&mac));
        assert!(
            matches!(f.verify(&token), Err(TokenError::AlgorithmMismatch { actual }) if actual == "HS256")
        );
    }
}

#[test]
fn an_unknown_or_missing_kid_is_refused() {
    let f = Forge::new();
    for kid in [
        json!("not-ours"),
        json!("../../etc/passwd"),
        json!("' OR 1=1 --"),
        Value::Null,
    ] {
        let mut header = f.header();
        match kid {
            Value::Null => {
                header.as_object_mut().unwrap().remove("kid");
            }
            kid => header["kid"] = kid,
        }
        assert_eq!(
            f.verify(&f.signed(&header, &f.claims())),
            Err(TokenError::UnknownKey)
        );
    }
}

#[test]
fn a_wrong_or_missing_typ_is_refused() {
    let f = Forge::new();
    let mut header = f.header();
    header["typ"] = json!("JWT");
    assert!(matches!(
        f.verify(&f.signed(&header, &f.claims())),
        Err(TokenError::WrongType { .. })
    ));
    header.as_object_mut().unwrap().remove("typ");
    assert!(matches!(
        f.verify(&f.signed(&header, &f.claims())),
        Err(TokenError::WrongType { .. })
    ));
}

#[test]
fn a_wrong_issuer_or_audience_is_refused() {
    let f = Forge::new();
    let mut claims = f.claims();
    claims["iss"] = json!("https://evil.example");
    assert_eq!(
        f.verify(&f.signed(&f.header(), &claims)),
        Err(TokenError::WrongIssuer)
    );
    let mut claims = f.claims();
    claims["aud"] = json!("https://other-service.example");
    assert_eq!(
        f.verify(&f.signed(&f.header(), &claims)),
        Err(TokenError::WrongAudience)
    );
}

#[test]
fn expired_not_yet_valid_and_future_issued_tokens_are_refused() {
    let f = Forge::new();
    let token = f.signed(&f.header(), &f.claims());
    assert!(
        f.verify_at(&token, T0 + 600 + 5).is_ok(),
        "inside the leeway"
    );
    assert_eq!(f.verify_at(&token, T0 + 600 + 11), Err(TokenError::Expired));

    let mut claims = f.claims();
    claims["nbf"] = json!(T0 + 3600);
    claims["exp"] = json!(T0 + 7200);
    assert_eq!(
        f.verify(&f.signed(&f.header(), &claims)),
        Err(TokenError::NotYetValid)
    );

    let mut claims = f.claims();
    claims["iat"] = json!(T0 + 3600);
    assert_eq!(
        f.verify(&f.signed(&f.header(), &claims)),
        Err(TokenError::IssuedInFuture)
    );

    let mut claims = f.claims();
    claims.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        f.verify(&f.signed(&f.header(), &claims)),
        Err(TokenError::MissingClaim("exp"))
    );
}

#[test]
fn crit_and_key_pointing_headers_are_refused() {
    let f = Forge::new();
    for (name, value) in [
        ("crit", json!(["exp"])),
        ("jku", json!("https://evil.example/jwks.json")),
        (
            "jwk",
            json!({ "kty": "OKP", "crv": "Ed25519", "x": "AAAA" }),
        ),
        ("x5u", json!("https://evil.example/cert.pem")),
    ] {
        let mut header = f.header();
        header[name] = value;
        assert!(
            matches!(
                f.verify(&f.signed(&header, &f.claims())),
                Err(TokenError::ForbiddenHeader { .. })
            ),
            "{name}"
        );
    }
}

#[test]
fn a_token_over_8_kib_is_refused_before_parsing() {
    let f = Forge::new();
    let mut claims = f.claims();
    claims["pad"] = json!("x".repeat(MAX_TOKEN_BYTES));
    let token = f.signed(&f.header(), &claims);
    assert!(matches!(f.verify(&token), Err(TokenError::TooLarge { .. })));
    // Not even parseable garbage of that size gets further than the length check.
    let garbage = "a".repeat(MAX_TOKEN_BYTES + 1);
    assert!(matches!(
        f.verify(&garbage),
        Err(TokenError::TooLarge { .. })
    ));
}

#[test]
fn a_tampered_payload_or_signature_is_refused() {
    let f = Forge::new();
    let token = f.signed(&f.header(), &f.claims());
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims = f.claims();
    claims["sub"] = json!("admin");
    parts[1] = b64url(claims.to_string().as_bytes());
    assert_eq!(f.verify(&parts.join(".")), Err(TokenError::BadSignature));
    assert!(f.verify("not.a.jwt!").is_err());
    assert!(f.verify("").is_err());
}

#[test]
fn the_private_key_is_not_stored_and_a_different_secret_cannot_use_the_keys() {
    let f = Forge::new();
    let dump = format!("{:?}", f.app.db.rows("SELECT * FROM signing_keys", &[]));
    assert!(!dump.contains(&b64url(f.keys.sk.seed().as_ref())));
    assert!(!dump.contains(&b64url(f.keys.sk.as_ref())));
    // Key rows made under one SIGNING_SECRET are refused under another rather than used wrongly.
    let (mut other, _clock) = app(&[]);
    let row = f.app.db.rows("SELECT * FROM signing_keys", &[]).remove(0);
    block_on(edgeauth::store::Database::execute(
        &other.db,
        edgeauth::stmt!(
            "INSERT INTO signing_keys (kid, org_id, public_key, seed_salt, status, created_at) VALUES (?1, 'default', ?2, ?3, 'current', ?4)",
            row.text("kid").unwrap(),
            row.text("public_key").unwrap(),
            row.text("seed_salt").unwrap(),
            T0
        ),
    ))
    .unwrap();
    other.config = config(&[(
        "SIGNING_SECRET",
        "a-completely-different-signing-secret-0123456789",
    )]);
    assert!(block_on(other.key_ring()).is_err());
}
