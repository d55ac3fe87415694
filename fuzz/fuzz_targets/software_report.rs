//! A KEE1-L1 software evidence item: CBOR envelope, Ed25519 signature under the key it
//! carries, then the report body.
#![no_main]

use attestation::Level;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = attestation::software::verify(data) {
        assert_eq!(report.level(), Level::L1);
    }
});
