//! The verifier's appraisal policy (JSON). A policy that loads serializes back to one that
//! loads equal, and its reference digest is computable.
#![no_main]

use attestation::appraisal::AppraisalPolicy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = AppraisalPolicy::from_json(text) else {
        return;
    };
    let _ = policy.reference_digest();
    let json = serde_json::to_string(&policy).expect("a loaded policy serializes");
    assert_eq!(
        AppraisalPolicy::from_json(&json).expect("a serialized policy loads"),
        policy
    );
});
