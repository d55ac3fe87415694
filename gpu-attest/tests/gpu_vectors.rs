//! GPU reports and device chains against every GPU vector (tests/vectors, see PROVENANCE.md
//! there): each gives the outcome its PROVENANCE row states; tampering and truncation give a
//! typed rejection, never an affirming result and never a panic. Missing vectors fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failure must stop the test loudly"
)]

mod common;

use common::*;
use gpu_attest::chain::{self, LeafRole, TrustAnchor};
use gpu_attest::spdm::defs::SIGNATURE_LEN;
use gpu_attest::verify::{bundle_verdict, Tier};
use gpu_attest::*;
use proptest::prelude::*;

fn no_rims() -> GpuPolicy {
    GpuPolicy {
        require_rims: false,
        ..GpuPolicy::default()
    }
}

fn h100_rims() -> Vec<Vec<u8>> {
    vec![
        vector("h100-550.90.07/NV_GPU_DRIVER_GH100_550.90.07.xml"),
        vector("h100-550.90.07/NV_GPU_VBIOS_1010_0200_882_96009F0001.xml"),
    ]
}

fn status(a: &GpuAppraisal, claim: &str) -> Tier {
    a.claim(claim)
        .unwrap_or_else(|| panic!("no claim `{claim}` in {}", a.to_json()))
        .status
}

#[test]
fn h100_550_verifies_end_to_end_with_both_rims() {
    let a = appraise(
        &vector("h100-550.90.07/report.bin"),
        &text("h100-550.90.07/cert_chain.pem"),
        &nonce(NONCE_550),
        &h100_rims(),
        &GpuPolicy::default(),
        NOW,
    );
    assert!(a.affirming(), "{}", a.to_json());
    for c in &a.claims {
        assert_eq!(c.status, Tier::Affirming, "{}: {}", c.name, c.reason);
    }
    assert!(a.claim("measurements").unwrap().reason.contains("`32`"));
    assert_eq!(a.gpu.driver_version.as_deref(), Some("550.90.07"));
    assert_eq!(a.gpu.vbios_version.as_deref(), Some("96.00.9f.00.01"));
    assert!(a.mismatched_indices.is_empty());
}

#[test]
fn verify_cli_takes_the_hex_text_and_documents_its_json() {
    let report_hex = text("hopper-local/hopperAttestationReport.txt");
    let a = verify_cli(
        &report_hex,
        &text("hopper-local/hopper_cert_chain_case1.txt"),
        nonce(NONCE_550).as_bytes(),
        &h100_rims(),
        &GpuPolicy::default(),
        NOW,
    );
    assert!(a.affirming(), "{}", a.to_json());
    let json: serde_json::Value = serde_json::from_str(&a.to_json()).unwrap();
    assert_eq!(json["status"], "affirming");
    assert_eq!(json["gpu"]["nonce"], NONCE_550);
    let names: Vec<&str> = json["claims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "report-format",
            "device-chain",
            "fwid",
            "report-signature",
            "nonce",
            "driver-version",
            "vbios-version",
            "driver-rim",
            "vbios-rim",
            "measurements"
        ]
    );
    assert_eq!(json["mismatched_indices"], serde_json::json!([]));
}

/// The trustee copy (hex) is byte-identical to the go-nvattest-tools binary, and the parser
/// agrees with the claims file trustee's verifier extracted from it.
#[test]
fn hopper_local_parse_matches_the_claims_file() {
    let hex_report =
        UnverifiedGpuReport::parse_hex(&text("hopper-local/hopperAttestationReport.txt")).unwrap();
    assert_eq!(
        hex_report.raw(),
        vector("h100-550.90.07/report.bin").as_slice()
    );
    assert_eq!(
        text("hopper-local/hopperAttestationReport.txt"),
        text("nvtrust/hopperAttestationReport.txt"),
        "nvtrust and trustee samples are the same report"
    );
    let claims: serde_json::Value =
        serde_json::from_slice(&vector("hopper-local/hopperAttestationReport-claims.txt")).unwrap();
    let o = hex_report.opaque();
    assert_eq!(
        o.driver_version().unwrap().unwrap(),
        claims["config"]["driver_version"]
    );
    assert_eq!(
        o.vbios_version().unwrap().unwrap(),
        claims["config"]["vbios_version"]
    );
    assert_eq!(
        hex::encode(o.fwid().unwrap().unwrap()),
        claims["config"]["fwid"]
    );
    assert_eq!(o.project().unwrap().unwrap(), claims["config"]["project"]);
    assert_eq!(
        o.project_sku().unwrap().unwrap(),
        claims["config"]["project_sku"]
    );
    assert_eq!(o.chip_sku().unwrap().unwrap(), claims["config"]["chip_sku"]);
    let m = claims["measurements"].as_object().unwrap();
    assert_eq!(m.len(), hex_report.blocks().len());
    for (index, value) in m {
        let block = hex_report.block(index.parse().unwrap()).unwrap();
        assert_eq!(
            hex::encode(&block.value),
            value.as_str().unwrap(),
            "block {index}"
        );
    }
}

/// The attestation-sdk parser fixtures for hopper-default.
#[test]
fn hopper_default_parse_matches_the_sdk_fixtures() {
    let r = UnverifiedGpuReport::parse_hex(&text("hopper-default/hopperAttestationReport.txt"))
        .unwrap();
    let resp: serde_json::Value =
        serde_json::from_slice(&vector("hopper-default/spdm_parsed_output.json")).unwrap();
    let req: serde_json::Value =
        serde_json::from_slice(&vector("hopper-default/spdm_req_parsed_output.json")).unwrap();
    assert_eq!(
        format!("0x{}", hex::encode(r.request_nonce())),
        req["Nonce"]
    );
    assert_eq!(
        format!("0x{}", hex::encode(r.response_nonce())),
        resp["Nonce"]
    );
    assert_eq!(
        format!("0x{}", hex::encode(r.signature())),
        resp["Signature"]
    );
    assert_eq!(
        Some(r.blocks().len() as u64),
        resp["NumberOfBlocks"].as_u64()
    );
    for (index, b) in resp["MeasurementRecord"]["MeasurementBlocks"]
        .as_object()
        .unwrap()
    {
        let block = r.block(index.parse().unwrap()).unwrap();
        assert_eq!(
            format!("0x{}", hex::encode(&block.value)),
            b["DMTFSpecMeasurementValue"]
        );
        assert_eq!(
            u64::from(block.value_type),
            b["DMTFSpecMeasurementValueType"].as_u64().unwrap()
        );
    }
    let of = &resp["OpaqueData"]["OpaqueDataField"];
    let raw = |id: u16| format!("0x{}", hex::encode(r.opaque().get(id).unwrap()));
    assert_eq!(raw(6), of["OPAQUE_FIELD_ID_VBIOS_VERSION"]);
    assert_eq!(raw(3), of["OPAQUE_FIELD_ID_DRIVER_VERSION"]);
    assert_eq!(raw(20), of["OPAQUE_FIELD_ID_FWID"]);
    assert_eq!(raw(11), of["OPAQUE_FIELD_ID_NVDEC0_STATUS"]);
    assert_eq!(r.opaque().driver_version().unwrap().unwrap(), "580.159.03");
    assert_eq!(
        r.opaque().vbios_version().unwrap().unwrap(),
        "96.00.74.00.20"
    );
}

/// Every GPU report in the vectors verifies (chain, FWID, signature, nonce) with the nonce and
/// versions PROVENANCE.md gives. RIMs for these are not shipped, so the policy does not
/// require them.
#[test]
fn every_gpu_report_verifies_with_its_provenance_nonce() {
    let mut cases: Vec<(String, Vec<u8>, String, GpuNonce, String, String)> = vec![
        (
            "hopper-default".into(),
            hex::decode(text("hopper-default/hopperAttestationReport.txt").trim()).unwrap(),
            text("hopper-default/hopperCertChain.txt"),
            nonce(NONCE_DEFAULT),
            "580.159.03".into(),
            "96.00.74.00.20".into(),
        ),
        (
            "hopper-535".into(),
            hex::decode(text("hopper-535/hopperAttestationReport.txt").trim()).unwrap(),
            text("hopper-535/hopperCertChain.txt"),
            nonce(NONCE_535),
            "535.86.09".into(),
            "96.00.5e.00.01".into(),
        ),
        (
            "hopper-570-expired-rim".into(),
            hex::decode(text("hopper-570-expired-rim/hopperAttestationReportExpired.txt").trim())
                .unwrap(),
            text("hopper-570-expired-rim/hopperCertChainExpired.txt"),
            nonce(NONCE_550),
            "570.124.03".into(),
            "96.00.5e.00.04".into(),
        ),
        (
            "h100-550.90.07".into(),
            vector("h100-550.90.07/report.bin"),
            text("hopper-local/hopper_cert_chain_case1.txt"),
            nonce(NONCE_550),
            "550.90.07".into(),
            "96.00.9f.00.01".into(),
        ),
    ];
    for (file, drv, vb) in [
        (
            "json-evidence/hopper_evidence.json",
            "590.12",
            "96.00.a5.00.01",
        ),
        (
            "json-evidence/evidence_hopper_590_12.json",
            "590.12",
            "96.00.a5.00.01",
        ),
        (
            "json-evidence/multi_gpu_hopper.json",
            "590.12",
            "96.00.a5.00.01",
        ),
        (
            "json-evidence/hopper_evidence_cert_hold.json",
            "570.86.10",
            "96.00.af.00.01",
        ),
    ] {
        for (i, g) in sdk_json(file).into_iter().enumerate() {
            cases.push((
                format!("{file}#{i}"),
                g.report,
                g.chain_pem,
                g.nonce,
                drv.into(),
                vb.into(),
            ));
        }
    }
    for (file, n) in [
        ("blackwell-mpt/test_mpt_data.json", NONCE_MPT),
        ("ppcie-h100/test_ppcie_data.json", NONCE_PPCIE),
    ] {
        for (i, (drv, vb, g)) in go_json(file, n).into_iter().enumerate() {
            cases.push((
                format!("{file}#{i}"),
                g.report,
                g.chain_pem,
                g.nonce,
                drv,
                vb,
            ));
        }
    }
    assert_eq!(cases.len(), 4 + 7 + 16, "every gpu report is covered");
    for (name, report, chain, n, drv, vb) in cases {
        let a = appraise(&report, &chain, &n, &[], &no_rims(), NOW);
        assert!(a.affirming(), "{name}: {}", a.to_json());
        assert_eq!(status(&a, "report-signature"), Tier::Affirming, "{name}");
        assert_eq!(
            a.gpu.driver_version.as_deref(),
            Some(drv.as_str()),
            "{name}"
        );
        assert!(
            a.gpu
                .vbios_version
                .clone()
                .unwrap()
                .eq_ignore_ascii_case(&vb),
            "{name}"
        );
        // The same evidence with another nonce is not affirmed.
        let other = appraise(&report, &chain, &GpuNonce([0; 32]), &[], &no_rims(), NOW);
        assert_eq!(status(&other, "nonce"), Tier::Contraindicated, "{name}");
        assert!(!other.affirming());
    }
}

#[test]
fn reports_before_550_carry_no_fwid_and_a_policy_can_require_one() {
    let report = hex::decode(text("hopper-535/hopperAttestationReport.txt").trim()).unwrap();
    let chain = text("hopper-535/hopperCertChain.txt");
    let a = appraise(&report, &chain, &nonce(NONCE_535), &[], &no_rims(), NOW);
    assert_eq!(status(&a, "fwid"), Tier::None);
    assert!(a.affirming());
    let strict = GpuPolicy {
        require_report_fwid: true,
        ..no_rims()
    };
    let a = appraise(&report, &chain, &nonce(NONCE_535), &[], &strict, NOW);
    assert_eq!(status(&a, "fwid"), Tier::Contraindicated);
}

/// PROVENANCE: hopper-535 with nonce 00..00 => GpuEvidenceNonceMismatch.
#[test]
fn wrong_nonce_is_a_nonce_mismatch() {
    let report =
        UnverifiedGpuReport::parse_hex(&text("hopper-535/hopperAttestationReport.txt")).unwrap();
    let chain = chain::verify_device_chain(&text("hopper-535/hopperCertChain.txt"), NOW).unwrap();
    assert!(matches!(
        verify_report(&report, &chain, &GpuNonce([0; 32])),
        Err(ReportError::NonceMismatch { .. })
    ));
    assert!(verify_report(&report, &chain, &nonce(NONCE_535)).is_ok());
}

#[test]
fn device_chain_cases_from_trustee() {
    let ok =
        chain::verify_device_chain(&text("hopper-local/hopper_cert_chain_case1.txt"), NOW).unwrap();
    assert!(ok.leaf_subject().contains("GH100 A01 GSP FMC LF"));
    assert_eq!(
        chain::verify_device_chain(&text("hopper-local/hopper_cert_chain_case2.txt"), NOW)
            .unwrap_err(),
        ChainError::TooShort { count: 1 }
    );
    let broken = chain::verify_device_chain(&text("hopper-local/hopper_cert_chain_case3.txt"), NOW)
        .unwrap_err();
    assert!(
        matches!(broken, ChainError::IssuerMismatch { index: 1, .. }),
        "{broken:?}"
    );
    assert_eq!(
        chain::verify_device_chain(&text("hopper-local/hopper_cert_chain_case4.txt"), NOW)
            .unwrap_err(),
        ChainError::FwidMissing
    );
    // The signing certificate alone is the leaf of case 1, whose key verifies the report.
    let leaf = chain::pem_certificates(&text("hopper-local/hopper_signing_cert.pem")).unwrap();
    let case1 = chain::pem_certificates(&text("hopper-local/hopper_cert_chain_case1.txt")).unwrap();
    assert_eq!(leaf[0], case1[0]);
    let report =
        UnverifiedGpuReport::parse_hex(&text("hopper-local/hopperAttestationReport.txt")).unwrap();
    assert!(verify_report(&report, &ok, &nonce(NONCE_550)).is_ok());
}

#[test]
fn chains_need_the_pinned_root_and_the_injected_time() {
    let pem = text("hopper-local/hopper_cert_chain_case1.txt");
    let ders = chain::pem_certificates(&pem).unwrap();
    let rim_root = chain::rim_root().unwrap();
    assert!(matches!(
        chain::verify_chain(&ders, rim_root, LeafRole::DeviceAttestation, NOW),
        Err(ChainError::RootNotPinned { .. })
    ));
    // Before the leaf's notBefore (2020-10-17).
    assert!(matches!(
        chain::verify_device_chain(&pem, 1_600_000_000),
        Err(ChainError::NotYetValid { index: 0, .. })
    ));
    // A chain whose root is dropped is refused (the root must be present and pinned).
    assert!(matches!(
        chain::verify_chain(
            &ders[..4],
            chain::device_identity_root().unwrap(),
            LeafRole::DeviceAttestation,
            NOW
        ),
        Err(ChainError::RootNotPinned { .. })
    ));
    // Flipping a byte inside any certificate's signed part breaks that link.
    for (i, offset) in [(0usize, 200usize), (1, 300), (2, 250), (3, 220)] {
        let mut bad = ders.clone();
        bad[i][offset] ^= 0x01;
        let err = chain::verify_chain(
            &bad,
            chain::device_identity_root().unwrap(),
            LeafRole::DeviceAttestation,
            NOW,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                ChainError::BadSignature { .. }
                    | ChainError::Malformed { .. }
                    | ChainError::IssuerMismatch { .. }
                    | ChainError::UnsupportedKey { .. }
            ),
            "cert {i} offset {offset}: {err:?}"
        );
    }
    assert!(TrustAnchor::from_pem("two", &pem).is_err());
}

#[test]
fn nvswitch_reports_share_the_spdm_framing() {
    let chain = chain::verify_device_chain(&text("switch/switchCertChain.txt"), NOW).unwrap();
    let good = UnverifiedGpuReport::parse_hex(&text("switch/switchAttestationReport.txt")).unwrap();
    assert!(verify_report(&good, &chain, &nonce(NONCE_550)).is_ok());
    assert_eq!(
        good.opaque().vbios_version().unwrap().as_deref(),
        Some("96.10.55.00.01")
    );
    let bad =
        UnverifiedGpuReport::parse_hex(&text("switch/switchAttestationReportInvalidSignature.txt"))
            .unwrap();
    assert!(matches!(
        verify_report(&bad, &chain, &GpuNonce(*bad.request_nonce())),
        Err(ReportError::BadSignature)
    ));
}

/// Flipping a bit in any byte of the signed region (all 4021) or the signature is a typed
/// rejection: a framing error when
/// the byte is a length or a code, otherwise a bad signature (or nonce mismatch for the nonce
/// bytes, which the signature also catches).
#[test]
fn byte_flips_in_the_signed_region_are_rejected() {
    let raw = vector("h100-550.90.07/report.bin");
    let chain = chain::verify_device_chain(&text("h100-550.90.07/cert_chain.pem"), NOW).unwrap();
    let n = nonce(NONCE_550);
    let signed = raw.len() - SIGNATURE_LEN;
    let mut cached = GpuVerifier::new(no_rims());
    let chain_pem = text("h100-550.90.07/cert_chain.pem");
    for offset in 0..signed {
        let mut bad = raw.clone();
        bad[offset] ^= 0x01;
        match UnverifiedGpuReport::parse(&bad) {
            Err(_) => {}
            Ok(r) => {
                let e = verify_report(&r, &chain, &n).unwrap_err();
                assert!(
                    matches!(
                        e,
                        ReportError::BadSignature | ReportError::FwidMismatch { .. }
                    ),
                    "offset {offset}: {e:?}"
                );
            }
        }
        if offset % 7 == 0 {
            let a = cached.appraise(&bad, &chain_pem, &n, &[], NOW);
            assert!(!a.affirming(), "offset {offset}");
        }
    }
    for offset in signed..raw.len() {
        let mut bad = raw.clone();
        bad[offset] ^= 0x01;
        let r = UnverifiedGpuReport::parse(&bad).unwrap();
        assert!(
            verify_report(&r, &chain, &n).is_err(),
            "signature offset {offset}"
        );
    }
}

#[test]
fn truncations_and_trailing_bytes_are_typed() {
    let raw = vector("h100-550.90.07/report.bin");
    for len in 0..raw.len() {
        let e = UnverifiedGpuReport::parse(&raw[..len]).unwrap_err();
        assert!(
            matches!(
                e,
                SpdmError::Truncated { .. }
                    | SpdmError::BlockCountMismatch { .. }
                    | SpdmError::DmtfSizeMismatch { .. }
                    | SpdmError::OpaqueOverrun { .. }
            ),
            "len {len}: {e:?}"
        );
    }
    let mut long = raw.clone();
    long.push(0);
    assert_eq!(
        UnverifiedGpuReport::parse(&long).unwrap_err(),
        SpdmError::TrailingBytes { count: 1 }
    );
    assert!(matches!(
        UnverifiedGpuReport::parse_hex("11e0zz"),
        Err(SpdmError::NotHex { .. })
    ));
    let a = verify_cli("", "", &[0; 32], &[], &GpuPolicy::default(), NOW);
    assert_eq!(a.status, Tier::Contraindicated);
    assert_eq!(a.claims.len(), 1);
}

#[test]
fn version_policy_is_enforced() {
    let report = vector("h100-550.90.07/report.bin");
    let chain = text("h100-550.90.07/cert_chain.pem");
    let n = nonce(NONCE_550);
    let min = GpuPolicy {
        min_driver_version: Some("550.100".into()),
        ..no_rims()
    };
    let a = appraise(&report, &chain, &n, &[], &min, NOW);
    assert_eq!(status(&a, "driver-version"), Tier::Contraindicated);
    let listed = GpuPolicy {
        allowed_vbios_versions: vec!["96.00.9F.00.01".into()],
        min_driver_version: Some("550.90.07".into()),
        ..no_rims()
    };
    assert!(appraise(&report, &chain, &n, &[], &listed, NOW).affirming());
    let vb = GpuPolicy {
        min_vbios_version: Some("96.00.a0.00.00".into()),
        ..no_rims()
    };
    assert_eq!(
        status(
            &appraise(&report, &chain, &n, &[], &vb, NOW),
            "vbios-version"
        ),
        Tier::Contraindicated
    );
    // The default policy requires RIMs.
    let a = appraise(&report, &chain, &n, &[], &GpuPolicy::default(), NOW);
    assert_eq!(status(&a, "driver-rim"), Tier::Contraindicated);
    assert!(!a.affirming());
}

#[test]
fn a_bundle_needs_one_affirming_result_per_distinct_gpu() {
    let gpus = sdk_json("json-evidence/multi_gpu_hopper.json");
    let mut appraisals: Vec<GpuAppraisal> = gpus
        .iter()
        .map(|g| appraise(&g.report, &g.chain_pem, &g.nonce, &[], &no_rims(), NOW))
        .collect();
    assert_eq!(
        bundle_verdict(&appraisals, 4),
        GpuBundleVerdict::AllAffirming { gpus: 4 }
    );
    assert_eq!(
        bundle_verdict(&appraisals, 5),
        GpuBundleVerdict::NotAffirming {
            affirming: 4,
            expected: 5
        }
    );
    // The same GPU twice does not count as two.
    let mut dup = appraisals.clone();
    dup[3] = dup[0].clone();
    assert_eq!(
        bundle_verdict(&dup, 4),
        GpuBundleVerdict::NotAffirming {
            affirming: 3,
            expected: 4
        }
    );
    // One tampered report spoils the bundle.
    let mut bad = gpus[2].report.clone();
    bad[100] ^= 1;
    appraisals[2] = appraise(
        &bad,
        &gpus[2].chain_pem,
        &gpus[2].nonce,
        &[],
        &no_rims(),
        NOW,
    );
    assert_eq!(
        bundle_verdict(&appraisals, 4),
        GpuBundleVerdict::NotAffirming {
            affirming: 3,
            expected: 4
        }
    );
    assert_eq!(bundle_verdict(&[], 0), GpuBundleVerdict::NoGpuEvidence);
    assert_eq!(
        bundle_verdict(&[], 1),
        GpuBundleVerdict::NotAffirming {
            affirming: 0,
            expected: 1
        }
    );
    let mpt: Vec<GpuAppraisal> = go_json("blackwell-mpt/test_mpt_data.json", NONCE_MPT)
        .iter()
        .map(|(_, _, g)| appraise(&g.report, &g.chain_pem, &g.nonce, &[], &no_rims(), NOW))
        .collect();
    assert_eq!(
        bundle_verdict(&mpt, 8),
        GpuBundleVerdict::AllAffirming { gpus: 8 }
    );
}

#[test]
fn the_cache_gives_the_same_verdicts_and_rechecks_time() {
    let report = vector("h100-550.90.07/report.bin");
    let chain = text("h100-550.90.07/cert_chain.pem");
    let n = nonce(NONCE_550);
    let mut v = GpuVerifier::new(GpuPolicy::default());
    let first = v.appraise(&report, &chain, &n, &h100_rims(), NOW);
    let second = v.appraise(&report, &chain, &n, &h100_rims(), NOW);
    assert!(first.affirming() && second.affirming());
    assert_eq!(first, second);
    // 2026-07-01: the VBIOS RIM leaf (2026-02-22) has expired; the cache must not hide it.
    let later = v.appraise(&report, &chain, &n, &h100_rims(), 1_782_864_000);
    assert_eq!(status(&later, "vbios-rim"), Tier::Contraindicated);
    assert!(later.claim("vbios-rim").unwrap().reason.contains("expired"));
}

fn h100_chain() -> &'static chain::VerifiedChain {
    static CHAIN: std::sync::OnceLock<chain::VerifiedChain> = std::sync::OnceLock::new();
    CHAIN.get_or_init(|| {
        chain::verify_device_chain(&text("h100-550.90.07/cert_chain.pem"), NOW).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = UnverifiedGpuReport::parse(&bytes);
        let mut prefixed = vec![0x11, 0xE0, 0x01, 0xFF];
        prefixed.extend_from_slice(&bytes);
        let _ = UnverifiedGpuReport::parse(&prefixed);
    }

    #[test]
    fn mutated_reports_are_never_affirmed(pos in 0usize..4117, val in any::<u8>()) {
        let mut raw = vector("h100-550.90.07/report.bin");
        prop_assume!(raw[pos] != val);
        raw[pos] = val;
        if let Ok(r) = UnverifiedGpuReport::parse(&raw) {
            prop_assert!(verify_report(&r, h100_chain(), &nonce(NONCE_550)).is_err());
        }
    }
}

/// A report from one GPU with the certificate chain of another: the FWIDs differ, and the
/// appraisal says so before the signature check fails as well.
#[test]
fn another_gpus_chain_is_an_fwid_mismatch() {
    let report =
        UnverifiedGpuReport::parse_hex(&text("hopper-default/hopperAttestationReport.txt"))
            .unwrap();
    let chain = chain::verify_device_chain(&text("h100-550.90.07/cert_chain.pem"), NOW).unwrap();
    assert!(matches!(
        verify_report(&report, &chain, &nonce(NONCE_DEFAULT)),
        Err(ReportError::FwidMismatch { .. })
    ));
    let a = verify_cli(
        &text("hopper-default/hopperAttestationReport.txt"),
        &text("h100-550.90.07/cert_chain.pem"),
        nonce(NONCE_DEFAULT).as_bytes(),
        &[],
        &no_rims(),
        NOW,
    );
    assert_eq!(status(&a, "fwid"), Tier::Contraindicated);
    assert_eq!(status(&a, "report-signature"), Tier::Contraindicated);
}
