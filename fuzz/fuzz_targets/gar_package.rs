//! The auditor's reader of an exported audit package (KEE-1 P7 Governance Audit Record):
//! `Package::parse` over the five files (manifest JSON, ALEs, blocks, signatures, group key),
//! then `verify_package` with and without an inclusion proof, and the block list decoder on
//! its own.
//!
//! Input: the five files' contents separated by `\0GAR\0` (missing files are empty).
//! Properties: nothing panics; a parsed package writes back to files that parse to the same
//! package; a report is `verified` only when every check passed.
#![no_main]

use attestation::gar::{verify_package, Block, Package};
use libfuzzer_sys::fuzz_target;

const SEP: &[u8] = b"\0GAR\0";

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while parts.len() < 4 {
        match rest.windows(SEP.len()).position(|w| w == SEP) {
            Some(i) => {
                parts.push(&rest[..i]);
                rest = &rest[i + SEP.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    while parts.len() < 5 {
        parts.push(&[]);
    }
    parts
}

fuzz_target!(|data: &[u8]| {
    let _ = wire::decode::<Vec<Block>>(data);
    let p = split(data);
    let Ok(pkg) = Package::parse(p[0], p[1], p[2], p[3], p[4]) else {
        return;
    };
    for ale in [None, Some(1), Some(u64::MAX)] {
        let r = verify_package(&pkg, ale, None);
        assert_eq!(r.verified, r.checks.iter().all(|c| c.ok));
    }
    let files = pkg.to_files().expect("a parsed package encodes");
    let again = Package::parse(&files[0], &files[1], &files[2], &files[3], &files[4])
        .expect("an encoded package parses");
    assert_eq!(again.ales, pkg.ales);
    assert_eq!(again.blocks, pkg.blocks);
    assert_eq!(again.signatures, pkg.signatures);
    assert_eq!(again.group_public_key, pkg.group_public_key);
});
