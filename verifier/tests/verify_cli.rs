//! The `verify` binary as a resource provider runs it, on real vendor vectors (copied into
//! attestation/tests/vectors with their PROVENANCE): exit codes 0 affirming / 1 not affirming /
//! 2 usage or I/O error, and `--json` output with a reason per check.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failure must stop the test loudly"
)]

use std::path::PathBuf;
use std::process::Command;

fn vectors(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../attestation/tests/vectors")
        .join(rel);
    assert!(p.exists(), "vector `{}` is missing", p.display());
    p.display().to_string()
}

fn verify(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_verify"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn check<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check `{name}` in {v}"))
}

#[test]
fn tdx_up_to_date_quote_is_affirming_and_expired_collateral_is_not() {
    let quote = vectors("tdx/dcap-qvl-uptodate/quote.bin");
    let coll = vectors("tdx/dcap-qvl-uptodate/collateral.json");
    let (code, out, err) = verify(&[
        "tdx",
        "--quote",
        &quote,
        "--collateral",
        &coll,
        "--now",
        "2025-06-20T00:00:00Z",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let v = json(&out);
    assert_eq!(v["status"], "affirming");
    assert_eq!(check(&v, "tcb-status")["reason"], "UpToDate");
    assert_eq!(v["measured"]["tcb_status"], "UpToDate");

    let (code, out, _) = verify(&[
        "tdx",
        "--quote",
        &quote,
        "--collateral",
        &coll,
        "--now",
        "2025-09-01T00:00:00Z",
        "--json",
    ]);
    assert_eq!(code, 1);
    let v = json(&out);
    assert_eq!(check(&v, "collateral-validity")["tier"], "contraindicated");
}

#[test]
fn tdx_reference_values_and_nonce_decide() {
    let quote = vectors("tdx/dcap-qvl-uptodate/quote.bin");
    let coll = vectors("tdx/dcap-qvl-uptodate/collateral.json");
    let dir = tempfile::tempdir().unwrap();
    let (_, out, _) = verify(&[
        "tdx",
        "--quote",
        &quote,
        "--collateral",
        &coll,
        "--now",
        "2025-06-20T00:00:00Z",
        "--json",
    ]);
    let measured = json(&out)["measured"].clone();
    let mrtd = measured["mrtd"].as_str().unwrap().to_string();
    let report_data = measured["report_data"].as_str().unwrap().to_string();
    let good = dir.path().join("good.json");
    std::fs::write(
        &good,
        serde_json::json!({"tdx": {"mrtd": [mrtd], "rtmr": [null, null, null, measured["rtmr3"]]}})
            .to_string(),
    )
    .unwrap();
    let (code, out, err) = verify(&[
        "tdx",
        "--quote",
        &quote,
        "--collateral",
        &coll,
        "--now",
        "2025-06-20T00:00:00Z",
        "--reference",
        good.to_str().unwrap(),
        "--nonce",
        &report_data,
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let v = json(&out);
    assert_eq!(check(&v, "mrtd")["tier"], "affirming");
    assert_eq!(check(&v, "report-data")["tier"], "affirming");

    // Wrong nonce: instance identity contraindicated.
    let (code, out, _) = verify(&[
        "tdx",
        "--quote",
        &quote,
        "--collateral",
        &coll,
        "--now",
        "2025-06-20T00:00:00Z",
        "--nonce",
        "00",
        "--json",
    ]);
    assert_eq!(code, 1);
    assert_eq!(check(&json(&out), "report-data")["tier"], "contraindicated");

    // Wrong MRTD.
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        serde_json::json!({"tdx": {"mrtd": ["00".repeat(48)]}}).to_string(),
    )
    .unwrap();
    let (code, out, _) = verify(&[
        "tdx",
        "--quote",
        &quote,
        "--collateral",
        &coll,
        "--now",
        "2025-06-20T00:00:00Z",
        "--reference",
        bad.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 1);
    assert_eq!(check(&json(&out), "mrtd")["tier"], "contraindicated");

    // An out-of-date status is not accepted unless the reference says so.
    let strict = dir.path().join("strict.json");
    std::fs::write(
        &strict,
        serde_json::json!({"tdx": {"accepted_tcb_status": ["OutOfDate"]}}).to_string(),
    )
    .unwrap();
    let (code, out, _) = verify(&[
        "tdx",
        "--quote",
        &quote,
        "--collateral",
        &coll,
        "--now",
        "2025-06-20T00:00:00Z",
        "--reference",
        strict.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 1);
    assert_eq!(check(&json(&out), "tcb-status")["tier"], "contraindicated");
}

#[test]
fn tdx_without_collateral_checks_signatures_and_warns() {
    let quote = vectors("tdx/go-tdx-guest/quote_v5_sample.dat");
    let (code, out, err) = verify(&[
        "tdx",
        "--quote",
        &quote,
        "--now",
        "2026-02-03T01:00:00Z",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let v = json(&out);
    assert_eq!(v["status"], "warning");
    assert_eq!(check(&v, "tcb-status")["tier"], "warning");
    assert_eq!(v["measured"]["version"], 5);
}

#[test]
fn snp_debug_policy_is_contraindicated_unless_allowed() {
    let report = vectors("snp/go-sev-guest-milan/attestation.bin");
    let vek = vectors("snp/go-sev-guest-milan/vcek.der");
    let ca = vectors("snp/go-sev-guest-milan/ask_ark_milan.pem");
    let (code, out, _) = verify(&[
        "snp", "--report", &report, "--vek", &vek, "--ca", &ca, "--json",
    ]);
    assert_eq!(code, 1);
    let v = json(&out);
    assert_eq!(check(&v, "report-signature")["tier"], "affirming");
    assert_eq!(check(&v, "debug")["tier"], "contraindicated");
    assert_eq!(v["measured"]["product"], "milan");

    let dir = tempfile::tempdir().unwrap();
    let allow = dir.path().join("allow.json");
    let measurement = v["measured"]["measurement"].as_str().unwrap();
    std::fs::write(
        &allow,
        serde_json::json!({"snp": {"allow_debug": true, "measurements": [measurement],
            "min_tcb": {"bootloader": 2, "snp": 5, "microcode": 68}}})
        .to_string(),
    )
    .unwrap();
    let report_data = v["measured"]["report_data"].as_str().unwrap();
    let (code, out, err) = verify(&[
        "snp",
        "--report",
        &report,
        "--vek",
        &vek,
        "--reference",
        allow.to_str().unwrap(),
        "--nonce",
        report_data,
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let v = json(&out);
    assert_eq!(check(&v, "measurement")["tier"], "affirming");
    assert_eq!(check(&v, "min-tcb")["tier"], "affirming");

    // A minimum TCB above the reported one.
    let high = dir.path().join("high.json");
    std::fs::write(
        &high,
        serde_json::json!({"snp": {"allow_debug": true, "min_tcb": {"snp": 200}}}).to_string(),
    )
    .unwrap();
    let (code, out, _) = verify(&[
        "snp",
        "--report",
        &report,
        "--vek",
        &vek,
        "--reference",
        high.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 1);
    assert_eq!(check(&json(&out), "min-tcb")["tier"], "contraindicated");
}

#[test]
fn snp_wrong_product_and_foreign_ca_are_refused() {
    let report = vectors("snp/trustee-milan-vcek/report.bin");
    let vek = vectors("snp/trustee-milan-vcek/vcek.der");
    let (code, out, _) = verify(&[
        "snp",
        "--report",
        &report,
        "--vek",
        &vek,
        "--product",
        "genoa",
        "--json",
    ]);
    assert_eq!(code, 1);
    assert_eq!(check(&json(&out), "vek-chain")["tier"], "contraindicated");
    // The Turin chain offered for a Milan VCEK.
    let turin = vectors("snp/virtee-turin/cert_chain_turin");
    let (code, out, _) = verify(&[
        "snp", "--report", &report, "--vek", &vek, "--ca", &turin, "--json",
    ]);
    assert_eq!(code, 1, "{out}");
}

#[test]
fn tpm_explicit_parts_with_nonce() {
    let dir = "tpm/kinvolk-az-cvm-vtpm";
    let quote_bin = std::fs::read(vectors(&format!("{dir}/quote.bin"))).unwrap();
    // bincode Quote { signature, message, pcrs } with u64le lengths.
    let u64le = |at: usize| {
        usize::try_from(u64::from_le_bytes(
            quote_bin[at..at + 8].try_into().unwrap(),
        ))
        .unwrap()
    };
    let sig_len = u64le(0);
    let sig = &quote_bin[8..8 + sig_len];
    let msg_len = u64le(8 + sig_len);
    let msg = &quote_bin[16 + sig_len..16 + sig_len + msg_len];
    let mut at = 16 + sig_len + msg_len;
    let count = u64le(at);
    at += 8;
    let pcrs: String = (0..count)
        .map(|i| {
            format!(
                "{i}: {}\n",
                hex::encode(&quote_bin[at + 32 * i..at + 32 * (i + 1)])
            )
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n).display().to_string();
    std::fs::write(p("attest"), msg).unwrap();
    std::fs::write(p("sig"), sig).unwrap();
    std::fs::write(p("pcrs"), &pcrs).unwrap();
    let ak = vectors(&format!("{dir}/akpub.pem"));
    let nonce = hex::encode(b"challenge");
    let args = |nonce: &str| {
        vec![
            "tpm".to_string(),
            "--quote".into(),
            p("attest"),
            "--signature".into(),
            p("sig"),
            "--ak-pub".into(),
            ak.clone(),
            "--pcrs".into(),
            p("pcrs"),
            "--nonce".into(),
            nonce.to_string(),
            "--json".into(),
        ]
    };
    let a = args(&nonce);
    let (code, out, err) = verify(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(check(&json(&out), "qualifying-data")["tier"], "affirming");
    // PROVENANCE: nonce 01020304 => NonceMismatch.
    let a = args("01020304");
    let (code, out, _) = verify(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 1);
    assert!(check(&json(&out), "quote")["reason"]
        .as_str()
        .unwrap()
        .contains("qualifying"));
    // A PCR value changed: the digest no longer matches.
    let mut changed = pcrs.clone();
    changed.replace_range(3..5, "ff");
    std::fs::write(p("pcrs"), &changed).unwrap();
    let a = args(&nonce);
    let (code, _, _) = verify(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 1);
}

#[test]
fn tpm_reference_pcrs_decide() {
    let ev = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../attestation/tests/vectors/tpm/trustee-tpm-evidence/tpm_evidence.json");
    let ev = ev.display().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.json");
    std::fs::write(
        &good,
        serde_json::json!({"tpm": {"pcrs": {"17": "ff".repeat(32)}}}).to_string(),
    )
    .unwrap();
    let (code, out, err) = verify(&[
        "tpm",
        "--evidence",
        &ev,
        "--reference",
        good.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let bad = tmp.path().join("bad.json");
    std::fs::write(
        &bad,
        serde_json::json!({"tpm": {"pcrs": {"0": "11".repeat(32)}}}).to_string(),
    )
    .unwrap();
    let (code, out, _) = verify(&[
        "tpm",
        "--evidence",
        &ev,
        "--reference",
        bad.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 1);
    assert_eq!(check(&json(&out), "pcrs")["tier"], "contraindicated");
}

#[test]
fn usage_and_io_errors_exit_2() {
    assert_eq!(
        verify(&["snp", "--report", "/nonexistent", "--vek", "/nonexistent"]).0,
        2
    );
    assert_eq!(verify(&["tdx"]).0, 2);
    assert_eq!(verify(&["tpm"]).0, 2);
    let quote = vectors("tdx/dcap-qvl-uptodate/quote.bin");
    assert_eq!(
        verify(&["tdx", "--quote", &quote, "--now", "yesterday"]).0,
        2
    );
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("ref.json");
    std::fs::write(&bad, r#"{"tdx": {"mrtd": ["abc"]}}"#).unwrap();
    assert_eq!(
        verify(&[
            "tdx",
            "--quote",
            &quote,
            "--reference",
            bad.to_str().unwrap()
        ])
        .0,
        2
    );
}

#[test]
fn garbage_evidence_is_not_affirming_never_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk");
    std::fs::write(&junk, vec![0x5au8; 1184]).unwrap();
    let vek = vectors("snp/trustee-milan-vcek/vcek.der");
    let (code, out, _) = verify(&[
        "snp",
        "--report",
        junk.to_str().unwrap(),
        "--vek",
        &vek,
        "--json",
    ]);
    assert_eq!(code, 1, "{out}");
    let (code, _, _) = verify(&["tdx", "--quote", junk.to_str().unwrap(), "--json"]);
    assert_eq!(code, 1);
    let (code, _, _) = verify(&["bundle", junk.to_str().unwrap(), "--json"]);
    assert_eq!(code, 1);
}

/// A real bundle: software platform report (KEE1-L1) bound to a fresh AK, signed COSE_Sign1.
fn make_bundle(nonce: [u8; 32], tamper_binding: bool) -> Vec<u8> {
    use attestation::evidence::Attester;
    let ak = attestation::ak::AttestationKey::generate().unwrap();
    let nonce = attestation::Nonce::new(nonce);
    let draft = [7u8; 32];
    let binding = attestation::BindingValue::compute(
        &nonce,
        ak.public_key(),
        if tamper_binding { &[8u8; 32] } else { &draft },
    );
    let mut sw = attestation::software::SoftwareAttester::new().unwrap();
    let item = sw.collect(&binding).unwrap();
    let claims = attestation::bundle::BundleClaims {
        version: attestation::bundle::BUNDLE_VERSION,
        kernel_id: "k-test".into(),
        level: attestation::Level::L1,
        nonce: nonce.as_bytes().to_vec(),
        manifest_draft_hash: draft.to_vec(),
        ak_public: ak.public_key().to_vec(),
        key_exchange_public: vec![9u8; 32],
        created_at_ms: attestation::now_ms(),
        items: vec![item],
    };
    attestation::bundle::sign_bundle(&claims, &ak).unwrap()
}

#[test]
fn bundle_verifies_and_binding_or_nonce_tampering_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bundle.cbor");
    std::fs::write(&path, make_bundle([3u8; 32], false)).unwrap();
    let p = path.to_str().unwrap();
    let (code, out, err) = verify(&["bundle", p, "--nonce", &"03".repeat(32), "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let v = json(&out);
    assert_eq!(check(&v, "nonce")["tier"], "affirming");
    assert_eq!(v["measured"]["level"], "KEE1-L1");
    // Another nonce.
    let (code, _, _) = verify(&["bundle", p, "--nonce", &"04".repeat(32), "--json"]);
    assert_eq!(code, 1);
    // Report bound to another manifest draft than the bundle names.
    std::fs::write(&path, make_bundle([3u8; 32], true)).unwrap();
    let (code, out, _) = verify(&["bundle", p, "--json"]);
    assert_eq!(code, 1, "{out}");
    // Every third byte flipped in turn: never affirming, never a crash.
    let good = make_bundle([3u8; 32], false);
    for i in (0..good.len()).step_by(7) {
        let mut b = good.clone();
        b[i] ^= 0x01;
        std::fs::write(&path, &b).unwrap();
        let (code, out, _) = verify(&["bundle", p, "--nonce", &"03".repeat(32), "--json"]);
        assert_eq!(code, 1, "flip at {i} accepted: {out}");
    }
}

#[test]
fn tpm_event_log_replays_to_the_quote_or_names_the_pcr() {
    let d = "tpm/go-tpm-tools-gce/decoded-gce-cos-85-nonce9009";
    let base = |log: &str| {
        vec![
            "tpm".to_string(),
            "--quote".into(),
            vectors(&format!("{d}/quote1_field1.bin")),
            "--signature".into(),
            vectors(&format!("{d}/quote1_field2.bin")),
            "--ak-pub".into(),
            vectors(&format!("{d}/field1.bin")),
            "--pcrs".into(),
            vectors(&format!("{d}/quote1-pcrs-sha256.txt")),
            "--nonce".into(),
            "9009".into(),
            "--eventlog".into(),
            vectors(&format!("eventlog/go-tpm-tools-gce/{log}")),
            "--json".into(),
        ]
    };
    let a = base("gce-cos-85-nonce9009-eventlog.bin");
    let (code, out, err) = verify(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(check(&json(&out), "eventlog")["tier"], "affirming");
    // A log from another boot: the mismatch names the PCR.
    let a = base("cos-85-amd-sev.bin");
    let (code, out, _) = verify(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 1);
    let v = json(&out);
    let reason = check(&v, "eventlog")["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("pcr 5"), "{reason}");
}

#[test]
fn gpu_report_with_rims_is_affirming_and_a_wrong_nonce_is_not() {
    let g = |rel: &str| {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../gpu-attest/tests/vectors")
            .join(rel);
        assert!(p.exists(), "gpu vector `{}` is missing", p.display());
        p.display().to_string()
    };
    let report = g("hopper-local/hopperAttestationReport.txt");
    let chain = g("hopper-local/hopper_cert_chain_case1.txt");
    let driver = g("h100-550.90.07/NV_GPU_DRIVER_GH100_550.90.07.xml");
    let vbios = g("h100-550.90.07/NV_GPU_VBIOS_1010_0200_882_96009F0001.xml");
    let nonce = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb";
    let (code, out, err) = verify(&[
        "gpu",
        "--report",
        &report,
        "--chain",
        &chain,
        "--rim",
        &driver,
        "--rim",
        &vbios,
        "--nonce",
        nonce,
        "--now",
        "2025-01-01T00:00:00Z",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let v = json(&out);
    assert_eq!(check(&v, "measurements")["tier"], "affirming");
    assert_eq!(v["measured"]["driver_version"], "550.90.07");
    let (code, out, _) = verify(&[
        "gpu",
        "--report",
        &report,
        "--chain",
        &chain,
        "--no-rims-required",
        "--nonce",
        &"00".repeat(32),
        "--now",
        "2025-01-01T00:00:00Z",
        "--json",
    ]);
    assert_eq!(code, 1);
    assert_eq!(check(&json(&out), "nonce")["tier"], "contraindicated");
    // Without a nonce: usage error.
    assert_eq!(
        verify(&["gpu", "--report", &report, "--chain", &chain]).0,
        2
    );
}
