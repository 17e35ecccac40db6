//! Build script: turns `data/common-passwords.txt` (the 10,000 most common passwords) into the set
//! `passwords::check_policy` refuses, embedded in the binary as a Golomb-coded set (see
//! `src/common_passwords.rs`, which reads it).
//!
//! Only entries of at least 8 characters are embedded (3,395 of the 10,000): the length rule already
//! refuses the rest. The host test `every_one_of_the_top_10000_is_refused` reads the whole file, so
//! if the length rule, this filter or the encoding ever disagree, that test fails.
//!
//! Each entry, lower-cased, is hashed with SHA-256; the first 8 bytes, read big-endian, are mapped
//! onto `0..count << FALSE_POSITIVE_BITS`; the sorted distinct values are stored as Rice-coded gaps
//! (parameter `FALSE_POSITIVE_BITS`). Every listed password is found (no false negatives); another
//! password is taken for a listed one with probability about 2^-20. 3,395 entries take ~9.2 KB this
//! way, against ~13.7 KB for the gzipped text.

use std::path::PathBuf;
use std::{env, fs};

use sha2::{Digest, Sha256};

const SOURCE: &str = "data/common-passwords.txt";
/// `passwords::MIN_PASSWORD_CHARS`.
const MIN_PASSWORD_CHARS: usize = 8;
/// The Rice parameter, and -log2 of the false-positive rate (passed on to the reader).
const FALSE_POSITIVE_BITS: u32 = 20;

/// `common_passwords::hash`: the same mapping (the host tests fail if the two ever differ).
fn hash_to_range(word: &str, range: u64) -> u64 {
    let digest = Sha256::digest(word.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    ((u128::from(u64::from_be_bytes(first)) * u128::from(range)) >> 64) as u64
}

/// Appends bits most significant first.
struct BitWriter {
    bytes: Vec<u8>,
    used: u32,
}

impl BitWriter {
    fn push(&mut self, bit: bool) {
        if self.used % 8 == 0 {
            self.bytes.push(0);
        }
        if bit {
            *self.bytes.last_mut().expect("pushed above") |= 0x80 >> (self.used % 8);
        }
        self.used += 1;
    }
}

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-changed=build.rs");
    let text = fs::read_to_string(SOURCE).unwrap_or_else(|e| panic!("reading {SOURCE}: {e}"));
    let mut words: Vec<String> = text
        .lines()
        .skip_while(|line| line.starts_with('#'))
        .filter(|word| word.chars().count() >= MIN_PASSWORD_CHARS)
        .map(str::to_ascii_lowercase)
        .collect();
    words.sort_unstable();
    words.dedup();

    let count = words.len() as u64;
    let range = count << FALSE_POSITIVE_BITS;
    let mut values: Vec<u64> = words.iter().map(|w| hash_to_range(w, range)).collect();
    values.sort_unstable();
    values.dedup();

    let mut bits = BitWriter {
        bytes: Vec::new(),
        used: 0,
    };
    let mut previous = 0;
    for value in &values {
        let gap = value - previous;
        previous = *value;
        for _ in 0..gap >> FALSE_POSITIVE_BITS {
            bits.push(true);
        }
        bits.push(false);
        for i in (0..FALSE_POSITIVE_BITS).rev() {
            bits.push((gap >> i) & 1 == 1);
        }
    }

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    fs::write(out.join("common_passwords.gcs"), &bits.bytes)
        .unwrap_or_else(|e| panic!("writing common_passwords.gcs: {e}"));
    // The parameters the reader needs, generated so they cannot drift from the data.
    fs::write(
        out.join("common_passwords.rs"),
        format!(
            "/// The Rice parameter.\n\
             pub const FALSE_POSITIVE_BITS: u32 = {FALSE_POSITIVE_BITS};\n\
             /// Distinct values in the set.\n\
             pub const VALUES: usize = {};\n\
             /// Listed passwords the set was built from.\n\
             pub const LISTED: usize = {count};\n\
             /// The hash range, `LISTED << FALSE_POSITIVE_BITS`.\n\
             pub const RANGE: u64 = {range};\n\
             /// The Rice-coded gaps.\n\
             pub static GCS: &[u8] = include_bytes!(concat!(env!(\"OUT_DIR\"), \"/common_passwords.gcs\"));\n",
            values.len()
        ),
    )
    .unwrap_or_else(|e| panic!("writing common_passwords.rs: {e}"));
}
