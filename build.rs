//! Build script: turns `data/common-passwords.txt` (the 10,000 most common passwords) into the list
//! `passwords::check_policy` refuses, embedded in the binary.
//!
//! Only entries of at least 8 characters are embedded (3,395 of the 10,000): the length rule already
//! refuses the rest, so checking them too would add ~27 KB to the `.wasm` for nothing. The host test
//! `every_one_of_the_top_10000_is_refused` reads the whole file, so if the length rule and this
//! filter ever disagree, that test fails.

use std::path::PathBuf;
use std::{env, fs};

const SOURCE: &str = "data/common-passwords.txt";
/// `passwords::MIN_PASSWORD_CHARS`.
const MIN_PASSWORD_CHARS: usize = 8;

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
    // One per line, sorted so the output does not depend on the file's order (the check scans it:
    // ~31 KB, a few microseconds beside the 600,000 PBKDF2 rounds that follow).
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    fs::write(out.join("common_passwords.txt"), words.join("\n"))
        .unwrap_or_else(|e| panic!("writing common_passwords.txt: {e}"));
}
