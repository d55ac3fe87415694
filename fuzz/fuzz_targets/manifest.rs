//! The GEC manifest as CBOR (served to clients, hash-locked in the enclave). Its canonical
//! bytes decode back to the same manifest.
#![no_main]

use attestation::manifest::GecManifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = wire::decode::<GecManifest>(data) {
        let canonical = manifest.canonical_bytes();
        assert_eq!(
            wire::decode::<GecManifest>(&canonical).expect("canonical bytes decode"),
            manifest
        );
        let _ = manifest.digest();
    }
});
