//! A sealed FROST share file, read back from host-controlled storage at boot.
#![no_main]

use attestation::sealing::SealedShare;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(share) = SealedShare::decode(data) {
        let bytes = share.encode().expect("a decoded share encodes");
        assert_eq!(SealedShare::decode(&bytes).expect("re-decodes"), share);
    }
});
