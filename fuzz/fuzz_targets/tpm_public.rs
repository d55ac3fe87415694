//! An attestation key in both forms it arrives in: a marshalled TPMT_PUBLIC (TCG Part 2
//! §12.2.4) and an RSA SubjectPublicKeyInfo in DER (RFC 5280 §4.1.2.7).
#![no_main]

use attestation::tpm::AkPublic;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = AkPublic::from_tpmt_public(data);
    let _ = AkPublic::from_rsa_spki_der(data);
});
