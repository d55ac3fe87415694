//! A marshalled TPMS_ATTEST quote (TCG Part 2 §10.12.12), framing only.
#![no_main]

use attestation::tpm::UnverifiedQuote;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = UnverifiedQuote::parse(data);
});
