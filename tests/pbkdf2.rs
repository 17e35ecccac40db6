//! Our PBKDF2-HMAC-SHA256 (`edgeauth_pbkdf2`) against the `pbkdf2` crate, the reference:
//! on published vectors (each also checked against its published value) and on seeded random
//! inputs that cover keys longer than a block, empty passwords and salts, and multi-block outputs.

use edgeauth::passwords;
use edgeauth_pbkdf2::derive;
use pbkdf2::password_hash::CustomizedPasswordHasher;
use pbkdf2::{Algorithm, Params, Pbkdf2};

fn hex_decode(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn ours(password: &[u8], salt: &[u8], rounds: u32, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    derive(password, salt, rounds, &mut out);
    out
}

fn reference(password: &[u8], salt: &[u8], rounds: u32, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, rounds, &mut out);
    out
}

/// Asserts ours == the reference == the published value.
fn check_vector(password: &[u8], salt: &[u8], rounds: u32, expected_hex: &str) {
    let expected = hex_decode(expected_hex);
    let len = expected.len();
    let reference = reference(password, salt, rounds, len);
    assert_eq!(
        reference, expected,
        "the reference disagrees with the published vector"
    );
    assert_eq!(
        ours(password, salt, rounds, len),
        expected,
        "P={password:?} S={salt:?} c={rounds} dkLen={len}"
    );
}

/// RFC 7914 section 11, the two PBKDF2-HMAC-SHA256 vectors (dkLen 64: two PBKDF2 blocks).
#[test]
fn rfc_7914_vectors() {
    check_vector(
        b"passwd",
        b"salt",
        1,
        "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc\
         49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783",
    );
    check_vector(
        b"Password",
        b"NaCl",
        80_000,
        "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56\
         a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d",
    );
}

/// The widely published PBKDF2-HMAC-SHA256 counterparts of RFC 6070's vectors.
#[test]
fn rfc_6070_style_sha256_vectors() {
    check_vector(
        b"password",
        b"salt",
        1,
        "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b",
    );
    check_vector(
        b"password",
        b"salt",
        2,
        "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43",
    );
    check_vector(
        b"password",
        b"salt",
        4096,
        "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a",
    );
    // 40 bytes: a second PBKDF2 block, truncated.
    check_vector(
        b"passwordPASSWORDpassword",
        b"saltSALTsaltSALTsaltSALTsaltSALTsalt",
        4096,
        "348c89dbcbd32b2f32d814b8116e84cf2b17347ebc1800181c4e2a1fb8dd53e1c635518c7dac47e9",
    );
    // NUL bytes in both, and a 16-byte output (a truncated first block).
    check_vector(
        b"pass\0word",
        b"sa\0lt",
        4096,
        "89b69d0516f829893c696226650a8687",
    );
}

/// xorshift64*: a fixed, dependency-free stream, so a failure names a reproducible case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below_or_equal(&mut self, max: usize) -> usize {
        usize::try_from(self.next() % (max as u64 + 1)).unwrap()
    }

    fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.below_or_equal(max_len);
        (0..len).map(|_| self.next().to_le_bytes()[7]).collect()
    }
}

/// Random passwords of 0..=200 bytes (so many longer than the 64-byte HMAC block, which HMAC
/// hashes first), salts of 0..=100 bytes (the first message then spans one to three blocks),
/// 1..=64 iterations and outputs of 1..=100 bytes (one to four PBKDF2 blocks).
#[test]
fn random_inputs_match_the_reference() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut long_keys = 0;
    for case in 0..500 {
        let password = rng.bytes(200);
        let salt = rng.bytes(100);
        let rounds = u32::try_from(1 + rng.below_or_equal(63)).unwrap();
        let len = 1 + rng.below_or_equal(99);
        if password.len() > 64 {
            long_keys += 1;
        }
        assert_eq!(
            ours(&password, &salt, rounds, len),
            reference(&password, &salt, rounds, len),
            "case {case}: P={password:?} S={salt:?} c={rounds} dkLen={len}"
        );
    }
    assert!(
        long_keys > 100,
        "the generator covers long keys ({long_keys})"
    );
}

/// The block-boundary lengths, exhaustively: passwords of 63, 64 and 65 bytes (the last one is
/// hashed first), salts whose first message `salt || INT(i)` ends just before, at and after the
/// 55/56/64-byte padding limits, outputs at 31, 32, 33, 64 and 65 bytes.
#[test]
fn boundary_lengths_match_the_reference() {
    for password_len in [0, 1, 32, 63, 64, 65, 128] {
        for salt_len in [0, 51, 52, 53, 59, 60, 61, 115, 116, 117] {
            for len in [1, 31, 32, 33, 64, 65] {
                let password = vec![0xa5u8; password_len];
                let salt: Vec<u8> = (0..salt_len).map(|i| i as u8).collect();
                assert_eq!(
                    ours(&password, &salt, 3, len),
                    reference(&password, &salt, 3, len),
                    "|P|={password_len} |S|={salt_len} dkLen={len}"
                );
            }
        }
    }
}

/// RFC 8018 asks for at least one iteration; like the reference, 0 is treated as 1 (no panic).
#[test]
fn zero_rounds_behave_like_the_reference() {
    assert_eq!(ours(b"p", b"s", 0, 32), reference(b"p", b"s", 0, 32));
    assert_eq!(ours(b"p", b"s", 0, 32), ours(b"p", b"s", 1, 32));
}

/// The PHC record is byte for byte the one the `pbkdf2` crate writes, so records written before
/// this implementation (by the crate) keep verifying, and the reverse.
#[test]
fn records_are_the_ones_the_pbkdf2_crate_writes() {
    let password = "correct horse battery staple";
    let salt = b"0123456789abcdef";
    let params = Params::new_with_output_len(1000, 32).unwrap();
    let by_crate = Pbkdf2::new(Algorithm::Pbkdf2Sha256, params)
        .hash_password_customized(password.as_bytes(), salt, None, None, params)
        .unwrap()
        .to_string();
    let by_us = passwords::hash(password, salt, 1000).unwrap();
    assert_eq!(by_us, by_crate);
    let stored = passwords::StoredHash::parse(&by_crate).unwrap();
    assert!(stored.verify(password));
    assert!(!stored.verify("correct horse battery stapl"));
}
