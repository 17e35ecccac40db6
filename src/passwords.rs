//! Password hashing: PBKDF2-HMAC-SHA256 in Rust (no WebCrypto cap), stored as a PHC string with its
//! parameters, compared in constant time, upgraded at login when the configured cost has risen.
//!
//! The hashing itself is [`edgeauth_pbkdf2`] (the fast loop on `sha2`'s compression); the
//! `pbkdf2` crate only reads and writes the PHC records, so what it accepts and writes is unchanged.

use pbkdf2::password_hash::phc::{Output, PasswordHash, Salt};
use pbkdf2::{Algorithm, Params};

use crate::crypto::ct_eq;
use crate::error::ApiError;

/// Shortest password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password, in bytes (bounds the hashing work an attacker can ask for).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Salt length in bytes.
pub const SALT_BYTES: usize = 16;
/// Derived key length in bytes.
pub const HASH_BYTES: usize = 32;

/// Why a stored password record could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordError {
    /// The record is not a PBKDF2-SHA256 PHC string we can read.
    MalformedRecord(String),
    /// The iteration count is outside what the `pbkdf2` crate accepts.
    BadParameters(String),
}

impl std::fmt::Display for PasswordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PasswordError::MalformedRecord(m) => write!(f, "malformed password record: {m}"),
            PasswordError::BadParameters(m) => write!(f, "bad password parameters: {m}"),
        }
    }
}

impl From<PasswordError> for ApiError {
    fn from(err: PasswordError) -> Self {
        ApiError::Unavailable {
            detail: err.to_string(),
        }
    }
}

/// Whether `password` is one of the 10,000 most common, ignoring ASCII case (`Password1` is as
/// guessable as `password1`). The list (those of at least [`MIN_PASSWORD_CHARS`]) is embedded as a
/// hashed set by build.rs: every listed one is found; an unlisted one is taken for listed about once
/// in a million (see [`crate::common_passwords`]).
pub fn is_common(password: &str) -> bool {
    crate::common_passwords::contains(&password.to_ascii_lowercase())
}

/// Checks a new password against the policy: 8 characters to 1024 bytes and not one of the 10,000
/// most common; no composition rules. The password is used exactly as received: no trimming, no
/// normalisation (the common-list check alone ignores ASCII case).
pub fn check_policy(password: &str, field: &str) -> Result<(), ApiError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::invalid(
            Some(field),
            "password must be at least 8 characters",
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::invalid(
            Some(field),
            "password must be at most 1024 bytes",
        ));
    }
    if is_common(password) {
        return Err(ApiError::invalid(
            Some(field),
            "password is one of the most common passwords; choose another",
        ));
    }
    Ok(())
}

/// Hashes `password` with `salt` at `iterations`, returning the PHC string
/// (`$pbkdf2-sha256$i=600000,l=32$<salt>$<hash>`).
pub fn hash(password: &str, salt: &[u8], iterations: u32) -> Result<String, PasswordError> {
    fn bad(e: impl std::fmt::Display) -> PasswordError {
        PasswordError::BadParameters(e.to_string())
    }
    // The same checks and the same record as `pbkdf2`'s `hash_password_customized`, with our
    // derivation in place of its generic one.
    let params = Params::new_with_output_len(iterations, HASH_BYTES).map_err(bad)?;
    let salt = Salt::new(salt).map_err(bad)?;
    let mut out = [0u8; HASH_BYTES];
    edgeauth_pbkdf2::derive(password.as_bytes(), salt.as_ref(), iterations, &mut out);
    let record = PasswordHash {
        algorithm: Algorithm::Pbkdf2Sha256.into(),
        version: None,
        params: params.try_into().map_err(bad)?,
        salt: Some(salt),
        hash: Some(Output::new(&out).map_err(bad)?),
    };
    Ok(record.to_string())
}

/// A parsed stored record.
#[derive(Debug)]
pub struct StoredHash {
    iterations: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl StoredHash {
    /// Parses a PHC string written by [`hash`].
    pub fn parse(phc: &str) -> Result<Self, PasswordError> {
        let record =
            PasswordHash::new(phc).map_err(|e| PasswordError::MalformedRecord(e.to_string()))?;
        if record.algorithm.as_str() != Algorithm::PBKDF2_SHA256_ID {
            return Err(PasswordError::MalformedRecord(format!(
                "algorithm {}",
                record.algorithm
            )));
        }
        let params =
            Params::try_from(&record).map_err(|e| PasswordError::BadParameters(e.to_string()))?;
        let salt = record
            .salt
            .ok_or_else(|| PasswordError::MalformedRecord("no salt".into()))?;
        let hash = record
            .hash
            .ok_or_else(|| PasswordError::MalformedRecord("no hash".into()))?;
        Ok(StoredHash {
            iterations: params.rounds(),
            salt: salt.as_ref().to_vec(),
            hash: hash.as_ref().to_vec(),
        })
    }

    /// Whether `password` matches, compared in constant time.
    pub fn verify(&self, password: &str) -> bool {
        let mut out = vec![0u8; self.hash.len()];
        edgeauth_pbkdf2::derive(password.as_bytes(), &self.salt, self.iterations, &mut out);
        ct_eq(&out, &self.hash)
    }

    /// Whether the record was made with fewer iterations than now configured (upgrade at login).
    pub fn needs_rehash(&self, configured_iterations: u32) -> bool {
        self.iterations < configured_iterations
    }

    /// The record's iteration count.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }
}

/// Spends the same work as verifying a password against a real record, for an unknown user, so the
/// response time does not tell whether the account exists: it is [`StoredHash::verify`] itself, on
/// a record shaped like the ones [`hash`] writes (same salt and hash lengths, so the same number of
/// compressions); the answer is thrown away.
pub fn burn_dummy_verification(password: &str, iterations: u32) {
    let dummy = StoredHash {
        iterations,
        salt: vec![0; SALT_BYTES],
        hash: vec![0; HASH_BYTES],
    };
    std::hint::black_box(dummy.verify(password));
}
