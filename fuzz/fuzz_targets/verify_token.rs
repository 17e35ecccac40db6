//! Access-token verification on arbitrary text: `verifier::verify` against a JWKS made from a real
//! key (what every `Authorization: Bearer` and access cookie reaches), and `unverified_key_id`.
//! Must never panic; a token it accepts must carry the expected issuer and audience and still be
//! accepted when verified again.
#![no_main]

use edgeauth::verifier::{unverified_key_id, verify, MAX_TOKEN_BYTES};
use edgeauth_fuzz::{expected, jwks, text, AUDIENCE, ISSUER, NOW};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let token = text(data);
    let kid = unverified_key_id(&token);
    if token.len() > MAX_TOKEN_BYTES {
        assert!(kid.is_none(), "an oversized token's header was parsed");
    }
    match verify(&token, jwks(), &expected(), NOW) {
        Ok(verified) => {
            assert_eq!(verified.claims().iss, ISSUER);
            assert_eq!(verified.claims().aud, AUDIENCE);
            assert!(kid.is_some(), "accepted without a kid");
            assert_eq!(verify(&token, jwks(), &expected(), NOW), Ok(verified));
        }
        Err(error) => {
            // Every refusal has a stable name for the logs.
            assert!(!error.code().is_empty());
            let _ = error.to_string();
        }
    }
});
