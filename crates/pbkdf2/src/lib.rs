//! PBKDF2-HMAC-SHA256 (RFC 8018) driven directly on `sha2`'s compression function: the HMAC key
//! blocks are absorbed once per password, and each iteration is then exactly two compressions of a
//! pre-padded block, with no allocation and no re-hashing of the key. The `pbkdf2` crate is the
//! reference it is tested against (edgeauth's tests/pbkdf2.rs).
//!
//! A crate of its own so that it can be built at opt-level 3 inside an opt-level "s" Worker: LLVM
//! then inlines the compression into the loop below, which lets it keep the state in locals and
//! fold the constant padding words into the message schedule.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

use sha2::block_api::compress256;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

/// SHA-256's block size, which is also HMAC's key block size.
const BLOCK_BYTES: usize = 64;
/// SHA-256's output size, and so PBKDF2's block size.
const OUTPUT_BYTES: usize = 32;
/// The length in bits of every message after the first: a 32-byte `U` after the 64-byte key block.
const ITERATION_MESSAGE_BITS: u64 = (BLOCK_BYTES as u64 + OUTPUT_BYTES as u64) * 8;
/// SHA-256's initial hash value (FIPS 180-4, 5.3.3). `sha2` keeps its own copy private.
const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// Derives `out.len()` bytes of PBKDF2-HMAC-SHA256 from `password` and `salt` at `rounds`
/// iterations. Any output length works (several 32-byte blocks are concatenated, the last
/// truncated); `rounds` of 0 is treated as 1, as the `pbkdf2` crate does.
pub fn derive(password: &[u8], salt: &[u8], rounds: u32, out: &mut [u8]) {
    let key = HmacKey::new(password);
    // Blocks are numbered from 1 (RFC 8018, 5.2); zipping with `1u32..` numbers them without a cast.
    for (index, chunk) in (1u32..).zip(out.chunks_mut(OUTPUT_BYTES)) {
        let block = key.pbkdf2_block(salt, index, rounds);
        for (byte, word_byte) in chunk.iter_mut().zip(words_to_bytes(&block)) {
            *byte = word_byte;
        }
    }
}

/// HMAC-SHA256 keyed with one password, as the two SHA-256 states left after absorbing the key
/// block XOR ipad and XOR opad. Computing them once is what makes the iterations cheap. They are
/// key-equivalent (they let anyone compute HMACs under the password), so they are wiped on drop,
/// as are the key blocks they come from. The `U` values are hash outputs, not key material: they
/// are left as they are.
struct HmacKey {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl Drop for HmacKey {
    fn drop(&mut self) {
        self.inner.zeroize();
        self.outer.zeroize();
    }
}

impl HmacKey {
    fn new(password: &[u8]) -> Self {
        // RFC 2104: a key longer than the block is replaced by its hash; shorter keys are
        // zero-padded to the block.
        let mut key = [0u8; BLOCK_BYTES];
        if password.len() > BLOCK_BYTES {
            key[..OUTPUT_BYTES].copy_from_slice(&Sha256::digest(password));
        } else {
            key[..password.len()].copy_from_slice(password);
        }
        let mut pad = key.map(|b| b ^ 0x36);
        let mut inner = IV;
        compress256(&mut inner, std::slice::from_ref(&pad));
        pad = key.map(|b| b ^ 0x5c);
        let mut outer = IV;
        compress256(&mut outer, std::slice::from_ref(&pad));
        key.zeroize();
        pad.zeroize();
        HmacKey { inner, outer }
    }

    /// `T_index = U_1 ^ U_2 ^ ... ^ U_rounds`, with `U_1 = HMAC(P, S || INT(index))` and
    /// `U_j = HMAC(P, U_{j-1})`.
    fn pbkdf2_block(&self, salt: &[u8], index: u32, rounds: u32) -> [u32; 8] {
        let inner = finish(self.inner, &[salt, &index.to_be_bytes()]);
        let mut u = finish(self.outer, &[&words_to_bytes(&inner)]);
        let mut t = u;

        // Every later message is a 32-byte U after a 64-byte key block: 96 bytes, so it fits one
        // block with its padding, and the padding is the same for the inner and the outer hash.
        // Build it once; each iteration only rewrites the first 32 bytes.
        let mut block = [0u8; BLOCK_BYTES];
        block[OUTPUT_BYTES] = 0x80;
        block[BLOCK_BYTES - 8..].copy_from_slice(&ITERATION_MESSAGE_BITS.to_be_bytes());
        for _ in 1..rounds {
            put_words(&mut block, &u);
            let mut state = self.inner;
            compress256(&mut state, std::slice::from_ref(&block));
            put_words(&mut block, &state);
            u = self.outer;
            compress256(&mut u, std::slice::from_ref(&block));
            for (t_word, u_word) in t.iter_mut().zip(u) {
                *t_word ^= u_word;
            }
        }
        t
    }
}

/// Finishes a SHA-256 that has already absorbed one 64-byte key block in `state`, over the
/// concatenation of `parts` (only used for `U_1` and its outer hash: off the hot path).
fn finish(mut state: [u32; 8], parts: &[&[u8]]) -> [u32; 8] {
    let mut block = [0u8; BLOCK_BYTES];
    let mut filled = 0;
    let mut total = BLOCK_BYTES as u64;
    for part in parts {
        for &byte in *part {
            block[filled] = byte;
            filled += 1;
            if filled == BLOCK_BYTES {
                compress256(&mut state, std::slice::from_ref(&block));
                filled = 0;
            }
        }
        total += part.len() as u64;
    }
    // Padding (FIPS 180-4, 5.1.1): 0x80, zeros, then the message length in bits as 64-bit big
    // endian; it takes one more block when fewer than 9 bytes are left in this one.
    block[filled] = 0x80;
    filled += 1;
    if filled > BLOCK_BYTES - 8 {
        block[filled..].fill(0);
        compress256(&mut state, std::slice::from_ref(&block));
        filled = 0;
    }
    block[filled..BLOCK_BYTES - 8].fill(0);
    block[BLOCK_BYTES - 8..].copy_from_slice(&(total * 8).to_be_bytes());
    compress256(&mut state, std::slice::from_ref(&block));
    state
}

/// Writes a SHA-256 state as its 32-byte big-endian digest at the start of `block`.
fn put_words(block: &mut [u8; BLOCK_BYTES], words: &[u32; 8]) {
    for (bytes, word) in block.chunks_exact_mut(4).zip(words) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
}

fn words_to_bytes(words: &[u32; 8]) -> [u8; OUTPUT_BYTES] {
    let mut bytes = [0u8; OUTPUT_BYTES];
    for (chunk, word) in bytes.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    bytes
}
