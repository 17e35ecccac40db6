//! What the fuzz targets share: a fixed signing key with its JWKS, a fixed clock, and the way a
//! target cuts one fuzzer input into several fields.
//!
//! Inputs are split on a separator byte rather than decoded with `arbitrary`, so the seeds in
//! `fuzz/seeds/` are plain, readable text and a crash input can be read in an editor.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_compact::{KeyPair, Seed};
use edgeauth::verifier::{Expected, Jwks};

/// The issuer and audience every target expects.
pub const ISSUER: &str = "https://auth.example";
/// See [`ISSUER`].
pub const AUDIENCE: &str = "https://auth.example";
/// The fixed "now" of every verification, unix seconds (2023-11-14).
pub const NOW: i64 = 1_700_000_000;
/// The key id the fixed key is published under.
pub const KID: &str = "fuzz-key-1";
/// The seed of the fixed signing key. Not a secret: it exists only here.
const KEY_SEED: [u8; 32] = *b"edgeauth-fuzz-fixed-signing-key!";

/// The fixed Ed25519 key pair.
pub fn key_pair() -> &'static KeyPair {
    static PAIR: OnceLock<KeyPair> = OnceLock::new();
    PAIR.get_or_init(|| KeyPair::from_seed(Seed::new(KEY_SEED)))
}

/// The JWKS document publishing the fixed key (plus a second, unrelated key), as the server's
/// `/.well-known/jwks.json` would.
pub fn jwks_json() -> String {
    let other = KeyPair::from_seed(Seed::new([7; 32]));
    format!(
        r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","use":"sig","kid":"{KID}","x":"{}"}},{{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","use":"sig","kid":"fuzz-key-0","x":"{}"}}]}}"#,
        b64(key_pair().pk.as_ref()),
        b64(other.pk.as_ref()),
    )
}

/// [`jwks_json`] parsed once.
pub fn jwks() -> &'static Jwks {
    static JWKS: OnceLock<Jwks> = OnceLock::new();
    JWKS.get_or_init(|| {
        let jwks = Jwks::from_json(&jwks_json()).expect("the fixed JWKS parses");
        assert_eq!(jwks.len(), 2, "both fixed keys are kept");
        jwks
    })
}

/// The issuer and audience to expect.
pub fn expected() -> Expected<'static> {
    Expected::new(ISSUER, AUDIENCE)
}

/// Unpadded base64url.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS over exactly these header and payload bytes, signed with the fixed key: what the
/// issuer would emit if it serialised these JSON texts.
pub fn sign(header: &[u8], payload: &[u8]) -> String {
    let signing_input = format!("{}.{}", b64(header), b64(payload));
    let signature = key_pair().sk.sign(signing_input.as_bytes(), None);
    format!("{signing_input}.{}", b64(signature.as_ref()))
}

/// The header and claims of a token the server would issue at [`NOW`] for 15 minutes.
pub fn valid_parts() -> (String, String) {
    let header = format!(r#"{{"alg":"EdDSA","kid":"{KID}","typ":"at+jwt"}}"#);
    let payload = format!(
        r#"{{"exp":{},"nbf":{NOW},"iat":{NOW},"iss":"{ISSUER}","aud":"{AUDIENCE}","sub":"usr_1","sid":"ses_1","org":"default","ws":"wsp_1","amr":["pwd"],"jti":"tok_1"}}"#,
        NOW + 900
    );
    (header, payload)
}

/// Cuts `data` into at most `n` fields at `separator` (the last field keeps any further
/// separators); missing fields are empty.
pub fn fields(data: &[u8], separator: u8, n: usize) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = data.splitn(n, |b| *b == separator).collect();
    out.resize(n, &[]);
    out
}

/// `bytes` as text, invalid UTF-8 replaced (header values and URLs reach us as strings).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeauth::verifier::verify;

    #[test]
    fn the_fixed_key_signs_a_token_that_verifies() {
        let (header, payload) = valid_parts();
        let token = sign(header.as_bytes(), payload.as_bytes());
        let verified = verify(&token, jwks(), &expected(), NOW).expect("valid token");
        assert_eq!(verified.claims().sub, "usr_1");
        assert!(verify(&token, jwks(), &expected(), NOW + 2000).is_err());
    }

    #[test]
    fn the_valid_seeds_verify() {
        let seeds = concat!(env!("CARGO_MANIFEST_DIR"), "/seeds");
        let token = std::fs::read_to_string(format!("{seeds}/verify_token/valid")).unwrap();
        assert!(verify(&token, jwks(), &expected(), NOW).is_ok());
        let parts = std::fs::read(format!("{seeds}/verify_signed/valid")).unwrap();
        let parts = fields(&parts, 0, 2);
        assert!(verify(&sign(parts[0], parts[1]), jwks(), &expected(), NOW).is_ok());
        assert_eq!(
            Jwks::from_json(&std::fs::read_to_string(format!("{seeds}/jwks/fixed")).unwrap())
                .unwrap()
                .kids()
                .collect::<Vec<_>>(),
            jwks().kids().collect::<Vec<_>>()
        );
    }

    #[test]
    fn fields_pads_and_keeps_the_tail() {
        assert_eq!(fields(b"a\nb\nc", b'\n', 2), [&b"a"[..], &b"b\nc"[..]]);
        assert_eq!(fields(b"a", b'\n', 3), [&b"a"[..], &b""[..], &b""[..]]);
    }
}
