//! A catalog update as the host delivers it (`catalog_update`): parsed and staged against
//! fixed pinned publishers. Arbitrary bytes must never panic, and never stage: no input the
//! fuzzer can make carries two valid signatures by the pinned keys.
#![no_main]

use enclave::catalog::{CatalogAuthority, SignedCatalogUpdate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = SignedCatalogUpdate::parse(data);
    let authority = CatalogAuthority::new("fleet", vec![[1u8; 32], [2u8; 32], [3u8; 32]], 2)
        .expect("valid publishers");
    assert!(authority.stage(data, 1_800_000_000_000).is_err());
});
