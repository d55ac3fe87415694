//! A ceremony plan file (`ceremony_plan.cbor`), read back from host-controlled storage at
//! boot: it never panics, never opens without the verifier's signature, and a plan that
//! decodes re-encodes to the same plan.
#![no_main]

use attestation::plan::{CeremonyPlan, SignedPlan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // No key signed these bytes: opening must fail, whatever they are.
    assert!(SignedPlan::open(data, &[0x42; 32]).is_err());
    if let Ok(plan) = wire::decode::<CeremonyPlan>(data) {
        let _ = plan.validate();
        let _ = plan.digest();
        let bytes = wire::encode(&plan).expect("a decoded plan encodes");
        assert_eq!(wire::decode::<CeremonyPlan>(&bytes).expect("re-decodes"), plan);
    }
});
