//! The evidence bundle as the verifier receives it: COSE_Sign1 framing and claims
//! (`UnverifiedBundle::parse`), then the attestation-key signature (`verify_signature`).
#![no_main]

use attestation::bundle::{UnverifiedBundle, MAX_ITEMS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(unverified) = UnverifiedBundle::parse(data) else {
        return;
    };
    let claimed = unverified.claimed_kernel_id().to_owned();
    if let Ok(bundle) = unverified.verify_signature() {
        assert_eq!(bundle.kernel_id(), claimed);
        assert!((1..=MAX_ITEMS).contains(&bundle.items().len()));
    }
});
