//! An SEV-SNP attestation report (ABI Table 23), framing only, and the verifier path with a
//! real VCEK (any input must be a typed rejection, never a panic).
#![no_main]

use attestation::snp::{endorser::Product, verify_snp, UnverifiedSnpReport};
use libfuzzer_sys::fuzz_target;

const VCEK: &[u8] =
    include_bytes!("../../attestation/tests/vectors/snp/trustee-milan-vcek/vcek.der");

fuzz_target!(|data: &[u8]| {
    let _ = UnverifiedSnpReport::parse(data);
    let _ = verify_snp(data, VCEK, Some(Product::Milan));
});
