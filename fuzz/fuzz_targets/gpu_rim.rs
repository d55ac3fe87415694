//! A GPU reference integrity manifest: XML tokenizer and tree, SWID measurement table, then
//! the enveloped XML signature (C14N 1.1 canonicalisation, digest, ECDSA, RIM chain) at a fixed
//! time. Mutated RIMs must be refused, never verified, and never panic.
#![no_main]

use gpu_attest::rim::{verify_rim, UnverifiedRim};
use libfuzzer_sys::fuzz_target;

/// 2025-06-01T00:00:00Z, inside the validity of the seed RIMs' chains.
const NOW: i64 = 1_748_736_000;

fuzz_target!(|data: &[u8]| {
    if let Ok(rim) = UnverifiedRim::parse(data) {
        let _ = rim.colloquial_version();
        for m in rim.measurements() {
            assert!(m
                .alternatives
                .iter()
                .all(|a| a.len() as u64 == u64::from(m.size)));
        }
        let _ = verify_rim(&rim, NOW);
    }
});
