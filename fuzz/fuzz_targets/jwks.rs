//! `Jwks::from_json` over arbitrary text (a consumer parses whatever its JWKS fetch returned).
//! Must never panic; the keys it keeps have distinct, non-empty ids that all resolve, and a token
//! signed by the fixed key verifies against the parsed set only if that set holds the fixed key.
#![no_main]

use edgeauth::verifier::{verify, Jwks, KeyLookup};
use edgeauth_fuzz::{expected, key_pair, sign, text, valid_parts, KID, NOW};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(jwks) = Jwks::from_json(&text(data)) else {
        return;
    };
    let kids: Vec<&str> = jwks.kids().collect();
    assert_eq!(kids.len(), jwks.len());
    assert_eq!(jwks.is_empty(), kids.is_empty());
    for (i, kid) in kids.iter().enumerate() {
        assert!(!kid.is_empty(), "kept a key with an empty kid");
        assert!(!kids[i + 1..].contains(kid), "kept a duplicate kid {kid:?}");
        assert!(jwks.public_key(kid).is_some());
    }
    let _ = format!("{jwks:?}");

    let (header, payload) = valid_parts();
    let token = sign(header.as_bytes(), payload.as_bytes());
    let accepted = verify(&token, &jwks, &expected(), NOW).is_ok();
    let holds_fixed_key = jwks.public_key(KID) == Some(&key_pair().pk);
    assert_eq!(accepted, holds_fixed_key);
});
