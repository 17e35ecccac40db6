//! Small cryptographic helpers shared by the domain: secrets that do not print, constant-time
//! comparison, SHA-256, HMAC-SHA256 key derivation, base64url and random identifiers.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::store::{BackendError, Clock, Random};

/// Secret bytes: `Debug` prints `_`, memory is wiped on drop, comparison is constant-time.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps secret bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(Zeroizing::new(bytes))
    }

    /// The secret bytes, for keyed computations.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Constant-time equality with `candidate`.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        ct_eq(&self.0, candidate)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(_)")
    }
}

/// Constant-time equality of two byte strings (the length itself is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Hex SHA-256 of `data`: how tokens and keys are stored at rest.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// HMAC-SHA256 of the concatenated `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Derives an independent 32-byte key for `purpose` from a root secret, so one leaked derived key
/// says nothing about the others.
pub fn derive_key(root: &Secret, purpose: &str) -> Secret {
    Secret::new(hmac_sha256(root.expose(), &[b"edgeauth/v1/", purpose.as_bytes()]).to_vec())
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Unpadded base64url.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded base64url; `None` on any invalid character.
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// `N` random bytes.
pub fn random_array<const N: usize>(random: &dyn Random) -> Result<[u8; N], BackendError> {
    let mut buf = [0u8; N];
    random.fill(&mut buf)?;
    Ok(buf)
}

/// A new time-ordered identifier (UUIDv7), so ids double as stable paging cursors.
pub fn new_id(clock: &dyn Clock, random: &dyn Random) -> Result<String, BackendError> {
    let bytes: [u8; 10] = random_array(random)?;
    let millis = u64::try_from(clock.now_millis()).unwrap_or(0);
    Ok(uuid::Builder::from_unix_timestamp_millis(millis, &bytes)
        .into_uuid()
        .hyphenated()
        .to_string())
}
