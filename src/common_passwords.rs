//! The common-password set built by `build.rs`: a Golomb-coded set of hashed entries, exact for
//! every listed password, with a false-positive rate of about 2^-20 for any other.
//!
//! Why a hashed set: the 3,395 listed passwords of 8 characters or more took ~13.7 KB of the gzipped
//! `.wasm` as text and take ~9.2 KB this way. A false positive only makes someone choose another
//! password (about one in a million unlisted ones); no listed one is ever let through.

use sha2::{Digest, Sha256};

mod generated {
    include!(concat!(env!("OUT_DIR"), "/common_passwords.rs"));
}

/// The Rice parameter, and -log2 of the false-positive rate (chosen in `build.rs`).
pub const FALSE_POSITIVE_BITS: u32 = generated::FALSE_POSITIVE_BITS;

/// How many listed passwords the set holds (entries of 8 characters or more).
pub const LISTED: usize = generated::LISTED;
/// Distinct hash values in the set (at most [`LISTED`]).
pub const VALUES: usize = generated::VALUES;
/// The hash range, `LISTED << FALSE_POSITIVE_BITS`.
pub const RANGE: u64 = generated::RANGE;

/// Maps `lowered` onto `0..RANGE`: the first 8 bytes of its SHA-256, big-endian, scaled (as
/// `build.rs` does).
pub fn hash(lowered: &str) -> u64 {
    let digest = Sha256::digest(lowered.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    ((u128::from(u64::from_be_bytes(first)) * u128::from(RANGE)) >> 64) as u64
}

/// The set's values in increasing order, decoded from the Rice-coded gaps.
pub fn values() -> impl Iterator<Item = u64> {
    let data = generated::GCS;
    let mut position = 0usize;
    let mut next_bit = move || {
        let byte = data.get(position / 8).copied()?;
        position += 1;
        Some(byte & (0x80 >> ((position - 1) % 8)) != 0)
    };
    let mut value = 0u64;
    (0..VALUES).map_while(move |_| {
        let mut quotient = 0u64;
        while next_bit()? {
            quotient += 1;
        }
        let mut remainder = 0u64;
        for _ in 0..FALSE_POSITIVE_BITS {
            remainder = (remainder << 1) | u64::from(next_bit()?);
        }
        value += (quotient << FALSE_POSITIVE_BITS) | remainder;
        Some(value)
    })
}

/// Whether `lowered` (already ASCII-lower-cased) hashes to a value in the set. A linear decode: a
/// few thousand steps, microseconds beside the PBKDF2 that follows.
pub fn contains(lowered: &str) -> bool {
    let target = hash(lowered);
    values().find(|value| *value >= target) == Some(target)
}
