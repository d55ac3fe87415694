//! SEV-SNP verifier against real vectors (tests/vectors/snp, see PROVENANCE.md there): each
//! valid report verifies; tampering with the VCEK, the signed region, the signature or the
//! length gives a typed error, never `Ok` and never a panic. Missing vectors fail the test.

use attestation::snp::endorser::{verify_vek, Product};
use attestation::snp::{verify_snp, SigningKey, SnpError, UnverifiedSnpReport, REPORT_BYTES};
use proptest::prelude::*;
use std::path::PathBuf;

#[expect(
    clippy::unwrap_used,
    reason = "a missing vector must fail the test loudly, naming the file"
)]
fn vector(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/snp")
        .join(rel);
    std::fs::read(&path)
        .map_err(|e| format!("snp vector `{}` is missing: {e}", path.display()))
        .unwrap()
}

/// (name, report, vcek) for every valid report vector.
fn valid() -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    vec![
        (
            "trustee-milan-vcek",
            vector("trustee-milan-vcek/report.bin"),
            vector("trustee-milan-vcek/vcek.der"),
        ),
        (
            "virtee-milan",
            vector("virtee-milan/report_milan.bin"),
            vector("virtee-milan/vcek_milan.der"),
        ),
        (
            "go-sev-guest-milan",
            vector("go-sev-guest-milan/attestation.bin"),
            vector("go-sev-guest-milan/vcek.der"),
        ),
    ]
}

#[test]
fn every_valid_report_verifies() {
    for (name, report, vcek) in valid() {
        let inferred = verify_snp(&report, &vcek, None)
            .map_err(|e| format!("{name}: inferred product: {e}"))
            .unwrap();
        assert_eq!(inferred.product(), Product::Milan, "{name}");
        let given = verify_snp(&report, &vcek, Some(Product::Milan))
            .map_err(|e| format!("{name}: milan: {e}"))
            .unwrap();
        assert_eq!(given.signing_key(), SigningKey::Vcek);
        assert_eq!(given.version(), 2);
        assert_eq!(given.vmpl(), given.report().vmpl);
        assert_eq!(&given.chip_id()[..], &report[0x1A0..0x1E0]);
        assert_eq!(&given.report_data()[..], &report[0x50..0x90]);
        assert_eq!(&given.measurement()[..], &report[0x90..0xC0]);
    }
}

#[test]
fn go_sev_guest_fields() {
    let r = verify_snp(
        &vector("go-sev-guest-milan/attestation.bin"),
        &vector("go-sev-guest-milan/vcek.der"),
        None,
    )
    .unwrap();
    let mut expected = [0u8; 64];
    expected[..5].copy_from_slice(&[1, 2, 3, 4, 5]);
    assert_eq!(r.report_data(), &expected);
    let (_, tcb) = r.reported_tcb();
    assert_eq!(
        (tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode, tcb.fmc),
        (2, 0, 5, 68, None)
    );
    // POLICY = 0x0b0000: SMT (bit 16), reserved-one (bit 17), DEBUG (bit 19).
    assert_eq!(r.policy().0, 0x0b_0000);
    assert!(r.policy().debug_allowed() && r.policy().smt_allowed());
    assert!(!r.policy().migrate_ma_allowed());
}

#[test]
fn vcek_byte_42_breaks_the_chain() {
    for (name, report, vcek) in valid() {
        let mut bad = vcek.clone();
        bad[42] ^= 0x01;
        let err = verify_snp(&report, &bad, Some(Product::Milan)).unwrap_err();
        assert!(
            matches!(
                err,
                SnpError::ChainBroken { .. } | SnpError::VekMalformed(_)
            ),
            "{name}: {err}"
        );
        assert!(verify_snp(&report, &bad, None).is_err(), "{name}");
    }
}

#[test]
fn report_bytes_21_and_42_break_the_signature() {
    for (name, report, vcek) in valid() {
        for at in [21usize, 42] {
            let mut bad = report.clone();
            bad[at] ^= 0x80;
            let err = verify_snp(&bad, &vcek, None).unwrap_err();
            assert!(
                matches!(err, SnpError::BadReportSignature),
                "{name} byte {at}: {err}"
            );
        }
    }
}

#[test]
fn wrong_product_root_fails() {
    for (name, report, vcek) in valid() {
        for p in [Product::Genoa, Product::Turin] {
            let err = verify_snp(&report, &vcek, Some(p)).unwrap_err();
            assert!(
                matches!(err, SnpError::ChainBroken { product, .. } if product == p),
                "{name}: {err}"
            );
        }
        // The VCEK presented as a VLEK must not chain to the ASVK.
        assert!(verify_vek(&vcek, Some(Product::Milan), SigningKey::Vlek).is_err());
    }
}

#[test]
fn turin_vcek_chains_to_turin_only() {
    let vcek = vector("virtee-turin/vcek_turin.der");
    let vek = verify_vek(&vcek, None, SigningKey::Vcek).unwrap();
    assert_eq!(vek.product(), Product::Turin);
    assert_eq!(vek.claims().hwid.as_ref().map(Vec::len), Some(8));
    assert!(vek.claims().tcb.fmc.is_some());
    assert!(verify_vek(&vcek, Some(Product::Milan), SigningKey::Vcek).is_err());
}

#[test]
fn odd_vcek_encodings_do_not_panic() {
    for f in [
        "trustee-invalid-vcek/vcek-invalid-legacy.der",
        "trustee-invalid-vcek/vcek-invalid-new.der",
    ] {
        let der = vector(f);
        for p in [None, Some(Product::Milan)] {
            // Upstream asserts nothing about their chain; only that nothing panics.
            let _ = verify_vek(&der, p, SigningKey::Vcek);
        }
        let (_, report, _) = valid().remove(0);
        assert!(verify_snp(&report, &der, None).is_err(), "{f}");
    }
}

#[test]
fn every_flip_in_signed_region_and_signature_is_rejected() {
    for (name, report, vcek) in valid() {
        let vek = verify_vek(&vcek, Some(Product::Milan), SigningKey::Vcek).unwrap();
        for at in 0..REPORT_BYTES {
            let mut bad = report.clone();
            bad[at] ^= 0x01;
            let result = UnverifiedSnpReport::parse(&bad).and_then(|r| r.verify_with(&vek));
            assert!(result.is_err(), "{name}: flip at {at:#x} was accepted");
        }
    }
}

#[test]
fn every_truncation_is_rejected() {
    for (name, report, vcek) in valid() {
        for len in 0..report.len() {
            let err = verify_snp(&report[..len], &vcek, None).unwrap_err();
            assert!(
                matches!(err, SnpError::WrongSize { len: l } if l == len),
                "{name} {len}"
            );
        }
        let mut long = report.clone();
        long.push(0);
        assert!(matches!(
            verify_snp(&long, &vcek, None),
            Err(SnpError::WrongSize { .. })
        ));
        for len in [0, 1, 42, vcek.len() - 1] {
            assert!(
                verify_snp(&report, &vcek[..len], None).is_err(),
                "{name} vcek {len}"
            );
        }
    }
}

proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1300)) {
        let _ = UnverifiedSnpReport::parse(&bytes);
    }

    #[test]
    fn parse_full_size_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), REPORT_BYTES), v in 0u32..8) {
        bytes[..4].copy_from_slice(&v.to_le_bytes());
        if let Ok(r) = UnverifiedSnpReport::parse(&bytes) {
            prop_assert_eq!(r.version, v);
        }
    }
}

#[test]
fn amd_kds_cert_chain_bundles_match_the_pinned_cas() {
    use attestation::snp::endorser::check_ca_bundle;
    for (file, product) in [
        ("ask_ark_milan.pem", Product::Milan),
        ("ask_ark_milan_vlek.pem", Product::Milan),
        ("ask_ark_genoa.pem", Product::Genoa),
        ("ask_ark_genoa_vlek.pem", Product::Genoa),
        ("ask_ark_turin_vcek.pem", Product::Turin),
        ("ask_ark_turin_vlek.pem", Product::Turin),
    ] {
        let pem = vector(&format!("go-sev-guest-trust/{file}"));
        assert_eq!(check_ca_bundle(&pem).unwrap(), product, "{file}");
        // One base64 character changed inside the first certificate: refused.
        let mut bad = pem.clone();
        let at = bad.iter().position(|b| *b == b'\n').unwrap() + 100;
        bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
        assert!(check_ca_bundle(&bad).is_err(), "{file} altered");
    }
}
