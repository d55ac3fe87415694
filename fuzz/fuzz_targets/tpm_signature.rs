//! A marshalled TPMT_SIGNATURE (TCG Part 2 §11.3.4).
#![no_main]

use attestation::tpm::TpmSignature;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = TpmSignature::parse(data);
});
