//! Access-token verification without the Workers runtime and without a database: the rules the
//! server applies, usable by any Rust consumer (another Worker, a native service) that holds the
//! issuer's public keys.
//!
//! The server verifies with its own key ring ([`crate::tokens::KeyRing`], behind the `server`
//! feature) through [`verify_with`], which has the signature checked by the platform's WebCrypto; a
//! consumer parses the published JWKS with [`Jwks::from_json`] and calls [`verify`] (pure Rust,
//! synchronous). Both are the same code except for who checks the signature, so a token the server
//! refuses is refused everywhere, for the same reason.
//!
//! ```
//! use edgeauth::verifier::{verify, Expected, Jwks, TokenError};
//!
//! let jwks = Jwks::from_json(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":"k1",
//!     "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#).unwrap();
//! assert_eq!(jwks.kids().collect::<Vec<_>>(), ["k1"]);
//! let expected = Expected::new("https://auth.example", "https://auth.example");
//! assert!(matches!(
//!     verify("not-a-token", &jwks, &expected, 1_700_000_000),
//!     Err(TokenError::Malformed(_))
//! ));
//! ```

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;

use ed25519_compact::Signature;
use jwt_compact::{Algorithm, AlgorithmExt, Claims, UntrustedToken, ValidationError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use ed25519_compact::PublicKey;

/// The `typ` header of our access tokens (RFC 9068).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// Tokens longer than this are refused before parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Clock skew tolerated on `exp`, `nbf` and `iat`, seconds.
pub const LEEWAY_SECONDS: i64 = 10;
/// Header members we never issue and refuse: `crit` (extensions we do not understand) and the ones
/// that point at keys or certificates outside the issuer's own JWKS.
const FORBIDDEN_HEADERS: [&str; 5] = ["crit", "jwk", "jku", "x5u", "x5c"];
/// JWK members that carry private key material (RFC 7517/7518/8037). A published key carrying one
/// is not used: its private half is public, so anyone could have signed with it.
const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The claims of an access token besides the time claims (identity only, no roles).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// User id.
    pub sub: String,
    /// Session id.
    pub sid: String,
    /// Organisation id.
    pub org: String,
    /// Active workspace id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws: Option<String>,
    /// Authentication methods (`pwd`, `email`).
    pub amr: Vec<String>,
    /// Unique token id.
    pub jti: String,
}

/// An access token whose signature, header and claims have all been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAccess {
    claims: AccessClaims,
    key_id: String,
    issued_at: i64,
    not_before: i64,
    expires_at: i64,
}

impl VerifiedAccess {
    /// The checked claims.
    pub fn claims(&self) -> &AccessClaims {
        &self.claims
    }
    /// The `kid` of the key whose signature was checked.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
    /// `iat`, unix seconds.
    pub fn issued_at(&self) -> i64 {
        self.issued_at
    }
    /// `nbf`, unix seconds.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }
    /// `exp`, unix seconds.
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }
    /// The time rules (`exp`, `nbf`, `iat`, each with [`LEEWAY_SECONDS`]) at `now`: what a token
    /// verified earlier must still pass when it is presented again.
    pub fn check_times(&self, now: i64) -> Result<(), TokenError> {
        check_times(self.expires_at, self.not_before, self.issued_at, now)
    }
}

/// Why a token was refused. Every variant becomes the same `401` for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_BYTES`]; not parsed.
    TooLarge {
        /// The token's length.
        len: usize,
    },
    /// Not a well-formed JWS compact serialisation or its JSON is malformed.
    Malformed(String),
    /// `alg` is not `EdDSA`.
    AlgorithmMismatch {
        /// The `alg` the token claims.
        actual: String,
    },
    /// `typ` is not `at+jwt`.
    WrongType {
        /// The `typ` the token claims.
        actual: Option<String>,
    },
    /// A header member we refuse (`crit`, `jwk`, `jku`, `x5u`, `x5c`).
    ForbiddenHeader {
        /// The member's name.
        name: &'static str,
    },
    /// No `kid`, or one that is not among the issuer's published keys.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// A required claim is absent.
    MissingClaim(&'static str),
    /// `exp` has passed.
    Expired,
    /// `nbf` is in the future.
    NotYetValid,
    /// `iat` is in the future.
    IssuedInFuture,
    /// `iss` is not the expected issuer.
    WrongIssuer,
    /// `aud` is not the expected audience.
    WrongAudience,
}

impl TokenError {
    /// A short, stable snake_case name of the reason (for logs and diagnostics; never shown to an
    /// attacker as anything more than "refused").
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::TooLarge { .. } => "too_large",
            TokenError::Malformed(_) => "malformed",
            TokenError::AlgorithmMismatch { .. } => "algorithm_mismatch",
            TokenError::WrongType { .. } => "wrong_type",
            TokenError::ForbiddenHeader { .. } => "forbidden_header",
            TokenError::UnknownKey => "unknown_key",
            TokenError::BadSignature => "bad_signature",
            TokenError::MissingClaim(_) => "missing_claim",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::IssuedInFuture => "issued_in_future",
            TokenError::WrongIssuer => "wrong_issuer",
            TokenError::WrongAudience => "wrong_audience",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for TokenError {}

/// Where verification finds the public key named by a token's `kid`. The key id is only ever
/// looked up here: never fetched, never used as a path.
pub trait KeyLookup {
    /// The public key published under `kid`, if any.
    fn public_key(&self, kid: &str) -> Option<&PublicKey>;
}

/// The issuer and audience a token must carry, exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected<'a> {
    /// Required `iss`.
    pub issuer: &'a str,
    /// Required `aud`.
    pub audience: &'a str,
}

impl<'a> Expected<'a> {
    /// `iss` must equal `issuer` and `aud` must equal `audience`.
    pub fn new(issuer: &'a str, audience: &'a str) -> Self {
        Expected { issuer, audience }
    }
}

/// Public Ed25519 keys parsed from a JWKS document (`/.well-known/jwks.json`).
#[derive(Clone, Default)]
pub struct Jwks {
    keys: Vec<(String, PublicKey)>,
}

impl fmt::Debug for Jwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwks")
            .field("kids", &self.kids().collect::<Vec<_>>())
            .finish()
    }
}

/// The JWKS document is not a JSON object with a `keys` array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksError(String);

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid JWKS: {}", self.0)
    }
}

impl std::error::Error for JwksError {}

impl Jwks {
    /// Parses a JWKS document. Keeps only keys that can verify our tokens: `kty` `OKP`, `crv`
    /// `Ed25519`, `alg` `EdDSA` or absent, `use` `sig` or absent, a non-empty `kid` and a 32-byte
    /// base64url `x`. Every other key is skipped, and so are keys carrying private members (`d`...)
    /// and every key whose `kid` appears more than once (which one signed would be ambiguous).
    /// Only a document that is not a JSON object with a `keys` array is an error.
    pub fn from_json(text: &str) -> Result<Self, JwksError> {
        let document: Value =
            serde_json::from_str(text).map_err(|e| JwksError(format!("not JSON: {e}")))?;
        let keys = document
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| JwksError("no `keys` array".into()))?;
        let mut parsed: Vec<(String, PublicKey)> = keys.iter().filter_map(parse_jwk).collect();
        let mut ambiguous: Vec<String> = Vec::new();
        for (i, (kid, _)) in parsed.iter().enumerate() {
            if parsed[i + 1..].iter().any(|(other, _)| other == kid) {
                ambiguous.push(kid.clone());
            }
        }
        parsed.retain(|(kid, _)| !ambiguous.contains(kid));
        Ok(Jwks { keys: parsed })
    }

    /// The key ids kept, in document order (for diagnostics).
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(kid, _)| kid.as_str())
    }

    /// How many keys were kept.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key was kept.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl KeyLookup for Jwks {
    fn public_key(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.iter().find(|(k, _)| k == kid).map(|(_, key)| key)
    }
}

fn parse_jwk(jwk: &Value) -> Option<(String, PublicKey)> {
    let member = |name: &str| jwk.get(name);
    let text = |name: &str| member(name).and_then(Value::as_str);
    if text("kty")? != "OKP" || text("crv")? != "Ed25519" {
        return None;
    }
    if member("alg").is_some_and(|alg| alg.as_str() != Some("EdDSA")) {
        return None;
    }
    if member("use").is_some_and(|u| u.as_str() != Some("sig")) {
        return None;
    }
    if PRIVATE_JWK_MEMBERS
        .iter()
        .any(|name| member(name).is_some())
    {
        return None;
    }
    let kid = text("kid").filter(|kid| !kid.is_empty())?;
    let x = b64url_decode(text("x")?)?;
    if x.len() != PublicKey::BYTES {
        return None;
    }
    let key = PublicKey::from_slice(&x).ok()?;
    Some((kid.to_owned(), key))
}

fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// The `kid` in the header of a token that is NOT verified by this call: for diagnostics, or to
/// report which key signed a token after [`verify`] accepted it. Never trust it for anything else.
pub fn unverified_key_id(token: &str) -> Option<String> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    UntrustedToken::<Map<String, Value>>::try_from(token)
        .ok()?
        .header()
        .key_id
        .clone()
}

/// Verifies an access token against `keys`, `expected` issuer and audience, at `now` (unix
/// seconds), checking the signature with ed25519-compact (pure Rust, synchronous: what consumers
/// use). The rules, in order: at most [`MAX_TOKEN_BYTES`] before parsing; `alg` exactly `EdDSA`;
/// `typ` exactly `at+jwt`; no `crit`, `jwk`, `jku`, `x5u` or `x5c` header; `kid` among `keys`; a
/// well-formed claims set; the Ed25519 signature; `exp`, `iat` and `nbf` present; `exp` and `nbf`
/// within [`LEEWAY_SECONDS`]; `iat` not in the future (same leeway); `iss` and `aud` equal to
/// `expected`.
#[inline]
pub fn verify<K: KeyLookup + ?Sized>(
    token: &str,
    keys: &K,
    expected: &Expected<'_>,
    now: i64,
) -> Result<VerifiedAccess, TokenError> {
    let signed = SignedToken::parse(token, keys)?;
    let valid = signed
        .key
        .verify(signed.message, &Signature::new(signed.signature))
        .is_ok();
    signed.accept_if(valid, expected, now)
}

/// Checks Ed25519 signatures for [`verify_with`]: the server's WebCrypto or pure-Rust backend
/// (see `crate::signatures`, behind the `server` feature).
pub trait SignatureCheck {
    /// Whether `signature` is the Ed25519 signature of `message` by `key`, published as `kid`.
    async fn is_valid(
        &self,
        kid: &str,
        key: &PublicKey,
        message: &[u8],
        signature: &[u8; Signature::BYTES],
    ) -> bool;
}

/// [`verify`] with the signature checked by `check` (asynchronously: WebCrypto answers with a
/// promise). Every other rule is the same code as [`verify`], so both refuse the same tokens for the
/// same reasons.
pub async fn verify_with<K: KeyLookup + ?Sized, C: SignatureCheck + ?Sized>(
    token: &str,
    keys: &K,
    expected: &Expected<'_>,
    now: i64,
    check: &C,
) -> Result<VerifiedAccess, TokenError> {
    let signed = SignedToken::parse(token, keys)?;
    let valid = check
        .is_valid(signed.kid(), signed.key, signed.message, &signed.signature)
        .await;
    signed.accept_if(valid, expected, now)
}

/// A token that passed every header rule, whose claims parse, and whose signature is still to be
/// checked against `key`.
struct SignedToken<'t, 'k> {
    untrusted: UntrustedToken<'t, Map<String, Value>>,
    key: &'k PublicKey,
    /// The JWS signing input: the token up to its last `.`.
    message: &'t [u8],
    signature: [u8; Signature::BYTES],
}

impl<'t, 'k> SignedToken<'t, 'k> {
    /// The rules before the signature, in the order jwt-compact's validator applies them: the
    /// signature's length, then the claims parse (so a malformed claims set is `Malformed` whatever
    /// its signature, on every path), and only then the signature itself.
    fn parse<K: KeyLookup + ?Sized>(token: &'t str, keys: &'k K) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge { len: token.len() });
        }
        let untrusted = UntrustedToken::<Map<String, Value>>::try_from(token)
            .map_err(|e| TokenError::Malformed(e.to_string()))?;
        if untrusted.algorithm() != "EdDSA" {
            return Err(TokenError::AlgorithmMismatch {
                actual: untrusted.algorithm().to_owned(),
            });
        }
        let header = untrusted.header();
        if header.token_type.as_deref() != Some(ACCESS_TOKEN_TYPE) {
            return Err(TokenError::WrongType {
                actual: header.token_type.clone(),
            });
        }
        if header.key_set_url.is_some() {
            return Err(TokenError::ForbiddenHeader { name: "jku" });
        }
        if header.certificate_url.is_some() {
            return Err(TokenError::ForbiddenHeader { name: "x5u" });
        }
        if let Some(name) = FORBIDDEN_HEADERS
            .iter()
            .find(|name| header.other_fields.contains_key(**name))
        {
            return Err(TokenError::ForbiddenHeader { name });
        }
        let key = header
            .key_id
            .as_deref()
            .and_then(|kid| keys.public_key(kid))
            .ok_or(TokenError::UnknownKey)?;
        let signature = <[u8; Signature::BYTES]>::try_from(untrusted.signature_bytes())
            .map_err(|_| TokenError::BadSignature)?;
        untrusted
            .deserialize_claims_unchecked::<AccessClaims>()
            .map_err(validation_error)?;
        // jwt-compact parsed exactly three segments, so the signing input is what precedes the last.
        let message = signing_input(token)
            .map(str::as_bytes)
            .ok_or_else(|| TokenError::Malformed("no signature segment".into()))?;
        Ok(SignedToken {
            untrusted,
            key,
            message,
            signature,
        })
    }

    /// The key id the key was found under (`parse` refused the token without one).
    fn kid(&self) -> &str {
        self.untrusted
            .header()
            .key_id
            .as_deref()
            .unwrap_or_default()
    }

    /// The verified token if `valid` (the signature check's answer), after the claim rules. The
    /// validated [`jwt_compact::Token`] comes from jwt-compact's own validator, whose verifying key
    /// is a [`SignatureProof`]: minted here only when the check said yes, for exactly this signing
    /// input and signature, so no token is validated without a successful check.
    fn accept_if(
        self,
        valid: bool,
        expected: &Expected<'_>,
        now: i64,
    ) -> Result<VerifiedAccess, TokenError> {
        if !valid {
            return Err(TokenError::BadSignature);
        }
        let proof = SignatureProof {
            message: self.message.to_vec(),
            signature: self.signature,
        };
        let token = CheckedEd25519
            .validator::<AccessClaims>(&proof)
            .validate(&self.untrusted)
            .map_err(validation_error)?;
        check_claims(token.claims(), self.kid(), expected, now)
    }
}

/// The JWS signing input of a compact token (`header.claims.signature`): everything before the last
/// `.`. What the signer signs ([`crate::tokens`]) and what the verifier checks are cut by this one
/// function, so they cannot disagree.
pub(crate) fn signing_input(token: &str) -> Option<&str> {
    token.rfind('.').map(|dot| &token[..dot])
}

fn validation_error(error: ValidationError) -> TokenError {
    match error {
        ValidationError::InvalidSignature | ValidationError::InvalidSignatureLen { .. } => {
            TokenError::BadSignature
        }
        other => TokenError::Malformed(other.to_string()),
    }
}

/// The claim rules, after the signature.
fn check_claims(
    claims: &Claims<AccessClaims>,
    key_id: &str,
    expected: &Expected<'_>,
    now: i64,
) -> Result<VerifiedAccess, TokenError> {
    let expiration = claims.expiration.ok_or(TokenError::MissingClaim("exp"))?;
    let issued_at = claims.issued_at.ok_or(TokenError::MissingClaim("iat"))?;
    let not_before = claims.not_before.ok_or(TokenError::MissingClaim("nbf"))?;
    check_times(
        expiration.timestamp(),
        not_before.timestamp(),
        issued_at.timestamp(),
        now,
    )?;
    if claims.custom.iss != expected.issuer {
        return Err(TokenError::WrongIssuer);
    }
    if claims.custom.aud != expected.audience {
        return Err(TokenError::WrongAudience);
    }
    Ok(VerifiedAccess {
        claims: claims.custom.clone(),
        key_id: key_id.to_owned(),
        issued_at: issued_at.timestamp(),
        not_before: not_before.timestamp(),
        expires_at: expiration.timestamp(),
    })
}

/// `exp`, `nbf` and `iat` (unix seconds) at `now`, each with [`LEEWAY_SECONDS`]. Compared as unix
/// seconds: jwt-compact's `validate_maturity` computes `nbf - leeway` with chrono, which panics for
/// an `nbf` within the leeway of chrono's earliest date.
fn check_times(
    expiration: i64,
    not_before: i64,
    issued_at: i64,
    now: i64,
) -> Result<(), TokenError> {
    if expiration < now.saturating_sub(LEEWAY_SECONDS) {
        return Err(TokenError::Expired);
    }
    if not_before > now.saturating_add(LEEWAY_SECONDS) {
        return Err(TokenError::NotYetValid);
    }
    if issued_at > now.saturating_add(LEEWAY_SECONDS) {
        return Err(TokenError::IssuedInFuture);
    }
    Ok(())
}

/// Evidence that a signature check said yes for one signing input and signature. Private: only
/// [`SignedToken::accept_if`] makes one.
struct SignatureProof {
    message: Vec<u8>,
    signature: [u8; Signature::BYTES],
}

/// `EdDSA` for jwt-compact's validator when the signature has already been checked (by WebCrypto,
/// asynchronously, or by ed25519-compact): its verifying key is the [`SignatureProof`], and a
/// signature "verifies" only if it is the one the proof was made for, over the same signing input.
/// It cannot sign.
struct CheckedEd25519;

impl Algorithm for CheckedEd25519 {
    type SigningKey = Infallible;
    type VerifyingKey = SignatureProof;
    type Signature = Signature;

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("EdDSA")
    }

    fn sign(&self, signing_key: &Infallible, _message: &[u8]) -> Signature {
        match *signing_key {}
    }

    fn verify_signature(
        &self,
        signature: &Signature,
        proof: &SignatureProof,
        message: &[u8],
    ) -> bool {
        proof.message == message && proof.signature == **signature
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_proof_validates_only_its_own_signing_input_and_signature() {
        let keys = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([7; 32]));
        let header = jwt_compact::Header::empty()
            .with_key_id("k")
            .with_token_type(ACCESS_TOKEN_TYPE);
        let claims = jwt_compact::Claims::new(AccessClaims {
            iss: "i".into(),
            aud: "a".into(),
            sub: "s".into(),
            sid: "d".into(),
            org: "o".into(),
            ws: None,
            amr: vec![],
            jti: "j".into(),
        });
        let token = jwt_compact::alg::Ed25519
            .token(&header, &claims, &keys.sk)
            .unwrap();
        let untrusted = UntrustedToken::<Map<String, Value>>::try_from(token.as_str()).unwrap();
        let (input, _) = token.rsplit_once('.').unwrap();
        let signature: [u8; 64] = untrusted.signature_bytes().try_into().unwrap();
        let validate = |proof: &SignatureProof| {
            CheckedEd25519
                .validator::<AccessClaims>(proof)
                .validate(&untrusted)
                .is_ok()
        };
        assert!(validate(&SignatureProof {
            message: input.as_bytes().to_vec(),
            signature,
        }));
        let mut other_signature = signature;
        other_signature[0] ^= 1;
        assert!(!validate(&SignatureProof {
            message: input.as_bytes().to_vec(),
            signature: other_signature,
        }));
        assert!(!validate(&SignatureProof {
            message: format!("{input}x").into_bytes(),
            signature,
        }));
    }
}
