//! A TDX collateral JSON file and the PCS-response splitter.
#![no_main]

use attestation::tdx::Collateral;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = Collateral::from_json(data) {
        let _ = c.info();
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Collateral::from_pcs_responses(
            text,
            text,
            Vec::new(),
            Vec::new(),
            String::new(),
            String::new(),
        );
    }
});
