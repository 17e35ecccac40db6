//! Verification past the signature: the input is a JOSE header and a claims set (JSON texts
//! separated by a NUL byte), signed with the fixed key as if the issuer had emitted them, then
//! verified. Reaches the header and claims rules that arbitrary tokens never get past the signature
//! to. Must never panic, and whatever it accepts must satisfy every rule `verify` documents, read
//! independently from the JSON here.
#![no_main]

use edgeauth::verifier::{verify, ACCESS_TOKEN_TYPE, LEEWAY_SECONDS};
use edgeauth_fuzz::{expected, fields, jwks, sign, AUDIENCE, ISSUER, NOW};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let parts = fields(data, 0, 2);
    let (header, payload) = (parts[0], parts[1]);
    let token = sign(header, payload);
    let Ok(verified) = verify(&token, jwks(), &expected(), NOW) else {
        return;
    };

    let header: Value = serde_json::from_slice(header).expect("accepted a header that is not JSON");
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], ACCESS_TOKEN_TYPE);
    for name in ["crit", "jwk", "jku", "x5u", "x5c"] {
        assert!(header.get(name).is_none(), "accepted a `{name}` header");
    }
    let kid = header["kid"]
        .as_str()
        .expect("accepted without a string kid");
    assert!(jwks().kids().any(|k| k == kid));

    let claims: Value = serde_json::from_slice(payload).expect("accepted claims that are not JSON");
    let time = |name: &str| {
        claims[name]
            .as_f64()
            .unwrap_or_else(|| panic!("accepted without a numeric `{name}`"))
    };
    let leeway = LEEWAY_SECONDS as f64;
    let now = NOW as f64;
    assert!(time("exp") >= now - leeway, "accepted an expired token");
    assert!(
        time("nbf") < now + leeway + 1.0,
        "accepted a token not yet valid"
    );
    assert!(
        time("iat") < now + leeway + 1.0,
        "accepted a token issued in the future"
    );
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], AUDIENCE);

    let c = verified.claims();
    assert_eq!((c.iss.as_str(), c.aud.as_str()), (ISSUER, AUDIENCE));
    assert_eq!(claims["sub"], c.sub.as_str());
    assert_eq!(claims["sid"], c.sid.as_str());
    assert!(verified.issued_at() <= NOW + LEEWAY_SECONDS);
    assert!(verified.expires_at() >= NOW - LEEWAY_SECONDS);
});
