//! What a resource provider or counterparty receives from a kernel and checks offline: an ACD
//! Record answer (`AcdInfo`) and a countersigned PEER Transaction Record (`PeerRecordInfo`),
//! plus the records inside them and the XPID derivation over arbitrary fields. Nothing here
//! may panic; no signature verifies under the all-zero verifier key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::msg::{AcdInfo, AcdRecord, PeerRecordInfo, PeerTransactionRecord};

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = wire::decode::<AcdInfo>(data) {
        assert!(attestation::acd::verify_acd(&info, &[0u8; 32], 0, None).is_err());
    }
    if let Ok(info) = wire::decode::<PeerRecordInfo>(data) {
        assert!(attestation::acd::verify_ptr(&info, &[0u8; 32], 0).is_err());
    }
    if let Ok(r) = wire::decode::<AcdRecord>(data) {
        let again: AcdRecord = wire::decode(&wire::encode(&r).expect("encodes")).expect("decodes");
        assert_eq!(again, r);
    }
    if let Ok(p) = wire::decode::<PeerTransactionRecord>(data) {
        let _ = wire::xpid::derive(&wire::xpid::XpidInput {
            initiating_kia_id: &p.initiating_principal_kia,
            responding_kia_id: &p.responding_principal_kia,
            initiated_at: &p.initiated_at,
            initiating_nonce: &p.initiating_nonce,
            responding_nonce: &p.responding_nonce,
        });
    }
});
