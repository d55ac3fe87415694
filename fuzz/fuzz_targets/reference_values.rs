//! A reference-values JSON file (`verify --reference`).
#![no_main]

use attestation::reference::ReferenceValues;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ReferenceValues::from_json(data);
});
