//! A signed attestation result (COSE_Sign1, EAR-shaped claims) as an enclave receives it from
//! the verifier. No signature verifies under the all-zero key, so the claims set is also
//! decoded directly to reach its parser.
#![no_main]

use attestation::result::{verify_result, AttestationResult};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = verify_result(data, &[0u8; 32]);
    if let Ok(claims) = wire::decode::<AttestationResult>(data) {
        let bytes = wire::encode(&claims).expect("decoded claims encode");
        let again: AttestationResult = wire::decode(&bytes).expect("encoded claims decode");
        assert_eq!(again, claims);
    }
});
