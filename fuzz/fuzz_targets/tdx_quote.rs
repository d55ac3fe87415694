//! An Intel DCAP TDX quote (v4/v5, binary or hex text): framing, then the chain-and-signature
//! verifier at a fixed time (every failure must be a typed error, never a panic).
#![no_main]

use attestation::tdx::{quote::decode_quote_file, verify_tdx_signatures, UnverifiedTdxQuote};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bytes) = decode_quote_file(data) {
        let _ = UnverifiedTdxQuote::parse(&bytes);
    }
    let _ = verify_tdx_signatures(data, 1_750_000_000);
});
