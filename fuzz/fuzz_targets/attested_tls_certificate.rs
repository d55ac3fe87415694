//! The attested-TLS certificate parser (`attested_tls::extension::parse_certificate`): every
//! client and every kernel verifying a peer runs it on a certificate the network (and the
//! untrusted host) delivered, before any signature is checked. Checks that parsing never
//! panics, that an accepted certificate's key is an uncompressed P-256 point, and that
//! `verify_certificate` refuses anything not signed by the pinned verifier key (here a key
//! nobody holds).
#![no_main]

use attested_tls::extension::{decode_extension, encode_extension, parse_certificate};
use attested_tls::verify::{verify_certificate, PeerPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = parse_certificate(data) {
        assert_eq!(parsed.public_key.len(), 65);
        assert_eq!(parsed.public_key[0], 0x04);
        // The evidence re-encodes to an extension that decodes to itself.
        if let Ok(der) = encode_extension(&parsed.evidence) {
            assert_eq!(decode_extension(&der).ok(), Some(parsed.evidence));
        }
    }
    let _ = decode_extension(data);
    let policy = PeerPolicy::new(vec![0u8; 32], [attestation::Level::L1]);
    assert!(verify_certificate(data, &policy, 0).is_err());
});
