//! A vTPM evidence item (CBOR of AK, quote, signature and PCR values), decoded and then run
//! through the whole quote verifier.
#![no_main]

use attestation::tpm::{verify, TpmEvidence};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(evidence) = TpmEvidence::from_item_data(data) else {
        return;
    };
    let item = evidence.to_item().expect("decoded evidence encodes");
    assert_eq!(
        TpmEvidence::from_item_data(&item.data).expect("encoded evidence decodes"),
        evidence
    );
    let _ = verify(&evidence, &[0u8; 64]);
});
