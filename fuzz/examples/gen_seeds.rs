//! Writes the seed corpora under `fuzz/seeds/<target>/`: messages produced by the real
//! encoders (fresh keys on every run, so signed seeds differ between runs but always verify
//! under the key they carry) and the real TPM vectors of `attestation/tests/vectors/tpm`
//! (provenance in that folder's PROVENANCE.md), decoded to the binary form each parser takes.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds`

use attestation::ak::AttestationKey;
use attestation::bundle::{sign_bundle, BundleClaims, BUNDLE_VERSION};
use attestation::manifest::{GecManifest, MANIFEST_VERSION};
use attestation::result::{AttestationResult, ResultSigner, Tier, TrustClaim, EAR_PROFILE};
use attestation::sealing::{SealedShare, SignerEntry, SEALED_SHARE_VERSION};
use attestation::software::SoftwareAttester;
use attestation::tpm::{PcrValue, TpmEvidence};
use attestation::{Attester, BindingValue, Level, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::path::PathBuf;
use wire::msg::{
    ErrorCode, ErrorInfo, EvaluateParams, HealthInfo, KernelState, Request, Response,
    SignDigestParams,
};
use wire::verifier::{VerifierRequest, VerifierResponse};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn vector(rel: &str) -> Res<Vec<u8>> {
    let path = fuzz_dir()
        .join("../attestation/tests/vectors/tpm")
        .join(rel);
    std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()).into())
}

fn write(target: &str, name: &str, bytes: &[u8]) -> Res<()> {
    let dir = fuzz_dir().join("seeds").join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), bytes)?;
    Ok(())
}

fn frame(body: &[u8]) -> Res<Vec<u8>> {
    let mut out = u32::try_from(body.len())?.to_be_bytes().to_vec();
    out.extend_from_slice(body);
    Ok(out)
}

fn evaluate() -> Request {
    Request::Evaluate(EvaluateParams {
        principal: r#"Agent::"planner-7""#.into(),
        action: r#"Action::"read""#.into(),
        resource: r#"Dataset::"census""#.into(),
        context_json: "{}".into(),
        entities_json: String::new(),
        session_id: "s1".into(),
        agent_xpid: String::new(),
    })
}

fn wire_seeds(bundle: &[u8]) -> Res<()> {
    let health = wire::encode(&Request::Health)?;
    let eval = wire::encode(&evaluate())?;
    write("wire_request", "health.cbor", &health)?;
    write("wire_request", "evaluate.cbor", &eval)?;
    let sign = Request::SignDigest(SignDigestParams {
        digest: vec![0x11; 32],
    });
    write("wire_request", "sign_digest.cbor", &wire::encode(&sign)?)?;
    let appraise = VerifierRequest::Appraise {
        bundle: bundle.to_vec(),
    };
    write(
        "wire_request",
        "verifier_appraise.cbor",
        &wire::encode(&appraise)?,
    )?;

    let mut two = frame(&health)?;
    two.extend_from_slice(&frame(&eval)?);
    write("wire_frame", "health.bin", &frame(&health)?)?;
    write("wire_frame", "health_then_evaluate.bin", &two)?;

    let resp = Response::Health(HealthInfo {
        kernel_id: "k1".into(),
        state: KernelState::Serving,
        level: "KEE1-L1".into(),
        reason: None,
        boot_to_serving_ms: Some(1234),
    });
    write("wire_response", "health.cbor", &wire::encode(&resp)?)?;
    let err = Response::Error(ErrorInfo {
        code: ErrorCode::MethodNotAllowed,
        message: "method `frost_sign` is not allowed".into(),
    });
    write("wire_response", "error.cbor", &wire::encode(&err)?)?;
    let nonce = VerifierResponse::Nonce {
        nonce: vec![0x22; 32],
        expires_at_ms: 1_700_000_060_000,
    };
    write(
        "wire_response",
        "verifier_nonce.cbor",
        &wire::encode(&nonce)?,
    )?;
    Ok(())
}

/// A software item, a signed bundle carrying it, and its raw claims.
fn evidence_seeds() -> Res<Vec<u8>> {
    let ak = AttestationKey::generate()?;
    let nonce = Nonce::new([0x33; 32]);
    let draft = [0x44u8; 32];
    let binding = BindingValue::compute(&nonce, ak.public_key(), &draft);
    let item = SoftwareAttester::new()?.collect(&binding)?;
    write("software_report", "l1.cbor", &item.data)?;
    let claims = BundleClaims {
        version: BUNDLE_VERSION,
        kernel_id: "k1".into(),
        level: Level::L1,
        nonce: nonce.as_bytes().to_vec(),
        manifest_draft_hash: draft.to_vec(),
        ak_public: ak.public_key().to_vec(),
        key_exchange_public: vec![0x55; 32],
        created_at_ms: 1_700_000_000_000,
        items: vec![item],
    };
    let bundle = sign_bundle(&claims, &ak)?;
    write("bundle", "software_l1.cose", &bundle)?;
    Ok(bundle)
}

fn result_seeds() -> Res<()> {
    let result = AttestationResult {
        eat_profile: EAR_PROFILE.into(),
        issued_at_ms: 1_700_000_000_000,
        expires_at_ms: 1_700_000_300_000,
        verifier_id: "verifier/0.1.0".into(),
        policy_id: "dev-kee1-l1".into(),
        kernel_id: "k1".into(),
        level: Level::L1,
        status: Tier::Affirming,
        trust_vector: vec![TrustClaim {
            claim: "hardware".into(),
            tier: Tier::Affirming,
            reason: "software platform at KEE1-L1".into(),
        }],
        nonce: vec![0x33; 32],
        bundle_digest: vec![0x66; 32],
        ak_public_digest: vec![0x77; 32],
        reference_digest: vec![0x88; 32],
    };
    let (signer, _) = ResultSigner::generate()?;
    write("ear_result", "signed.cose", &signer.sign(&result)?)?;
    write("ear_result", "claims.cbor", &wire::encode(&result)?)?;
    Ok(())
}

fn state_seeds() -> Res<()> {
    let share = SealedShare {
        version: SEALED_SHARE_VERSION,
        kernel_id: "k1".into(),
        reference_digest: vec![0x99; 32],
        sealed: vec![0xaa; 12 + 64 + 16],
        public_key_package: vec![0xbb; 96],
        threshold: 2,
        signers: (1u8..=3)
            .map(|i| SignerEntry {
                kernel_id: format!("k{i}"),
                identifier: vec![i; 32],
            })
            .collect(),
        ceremony_id: String::new(),
    };
    write("sealed_share", "two_of_three.cbor", &share.encode()?)?;

    let manifest = GecManifest {
        version: MANIFEST_VERSION,
        fleet_id: "fleet-a".into(),
        kernel_id: "k1".into(),
        conformance_level: "KEE1-L1".into(),
        cap_profile_hash: "ab".repeat(32),
        frost: "frost:t-of-n:2-3".into(),
        group_public_key: "cd".repeat(32),
        signers: vec!["k1".into(), "k2".into(), "k3".into()],
        evidence_bundle_digest: "ef".repeat(32),
        attestation_result_digest: "01".repeat(32),
        attestation_status: "affirming".into(),
        frozen_at_ms: 1_700_000_000_000,
        catalog_publishers: Vec::new(),
        catalog_threshold: 0,
    };
    write("manifest", "frozen.cbor", &manifest.canonical_bytes())?;

    let zero = "0".repeat(64);
    let policy = format!(
        r#"{{"policy_id":"dev-kee1-l1","allowed_levels":["KEE1-L1"],"require_tpm":true,"expected_pcrs":{{"0":"{zero}","7":"{zero}"}},"max_evidence_age_ms":60000,"result_ttl_ms":600000,"nonce_ttl_ms":30000}}"#
    );
    write("appraisal_policy", "dev.json", policy.as_bytes())?;
    let minimal = r#"{"policy_id":"p","allowed_levels":["KEE1-L3"],"max_evidence_age_ms":1}"#;
    write("appraisal_policy", "minimal.json", minimal.as_bytes())?;
    Ok(())
}

/// Reads a protobuf varint (the go-tpm-tools `Pcrs` message).
fn varint(bytes: &[u8], at: &mut usize) -> Res<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at).ok_or("varint runs past the end")?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

fn take<'a>(bytes: &'a [u8], at: &mut usize) -> Res<&'a [u8]> {
    let len = usize::try_from(varint(bytes, at)?)?;
    let out = bytes
        .get(*at..*at + len)
        .ok_or("length runs past the end")?;
    *at += len;
    Ok(out)
}

/// go-tpm-tools `Pcrs { hash = 1; map<uint32, bytes> pcrs = 2 }`, SHA-256 bank only.
fn gce_pcrs(bytes: &[u8]) -> Res<Vec<PcrValue>> {
    let (mut at, mut pcrs) = (0, Vec::new());
    while at < bytes.len() {
        match varint(bytes, &mut at)? {
            0x08 => {
                varint(bytes, &mut at)?;
            }
            0x12 => {
                let entry = take(bytes, &mut at)?;
                let (mut e, mut index, mut digest) = (0, 0u8, Vec::new());
                while e < entry.len() {
                    match varint(entry, &mut e)? {
                        0x08 => index = u8::try_from(varint(entry, &mut e)?)?,
                        0x12 => digest = take(entry, &mut e)?.to_vec(),
                        tag => return Err(format!("map entry tag {tag}").into()),
                    }
                }
                pcrs.push(PcrValue { index, digest });
            }
            tag => return Err(format!("Pcrs tag {tag}").into()),
        }
    }
    Ok(pcrs)
}

fn pem_der(pem: &[u8]) -> Res<Vec<u8>> {
    let text = std::str::from_utf8(pem)?;
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    Ok(B64.decode(b64)?)
}

fn tpm_seeds() -> Res<()> {
    for (dir, tag) in [
        ("decoded-gce-cos-85-nonce9009", "gce_nonce9009"),
        ("decoded-gce-cos-85-no-nonce", "gce_no_nonce"),
    ] {
        let path = |f: &str| format!("go-tpm-tools-gce/{dir}/{f}");
        let ev = TpmEvidence {
            ak_public: vector(&path("field1.bin"))?,
            attest: vector(&path("quote1_field1.bin"))?,
            signature: vector(&path("quote1_field2.bin"))?,
            pcrs: gce_pcrs(&vector(&path("quote1_field3.bin"))?)?,
            event_log: None,
        };
        write("tpm_evidence", &format!("{tag}.cbor"), &ev.to_item()?.data)?;
        if tag == "gce_nonce9009" {
            write("tpm_attest", &format!("{tag}.bin"), &ev.attest)?;
            write("tpm_signature", &format!("{tag}_rsassa.bin"), &ev.signature)?;
            write(
                "tpm_public",
                &format!("{tag}_tpmt_public.bin"),
                &ev.ak_public,
            )?;
        }
    }
    write(
        "tpm_attest",
        "dstack_sample.bin",
        &vector("dstack-sample/tpm_quote_sample.bin")?,
    )?;
    write(
        "tpm_public",
        "azure_ak_spki.der",
        &pem_der(&vector("kinvolk-az-cvm-vtpm/akpub.pem")?)?,
    )?;

    let json: serde_json::Value =
        serde_json::from_slice(&vector("trustee-tpm-evidence/tpm_evidence.json")?)?;
    let b64 = |v: &serde_json::Value| -> Res<Vec<u8>> {
        Ok(B64.decode(v.as_str().ok_or("not a string")?)?)
    };
    write(
        "tpm_attest",
        "trustee.bin",
        &b64(&json["tpm_quote"]["message"])?,
    )?;
    write(
        "tpm_signature",
        "trustee_rsassa.bin",
        &b64(&json["tpm_quote"]["signature"])?,
    )?;
    write(
        "tpm_public",
        "trustee_ak_spki.der",
        &b64(&json["ak_public"])?,
    )?;
    Ok(())
}

fn main() -> Res<()> {
    let bundle = evidence_seeds()?;
    wire_seeds(&bundle)?;
    result_seeds()?;
    state_seeds()?;
    tpm_seeds()?;
    println!("seeds written under {}", fuzz_dir().join("seeds").display());
    Ok(())
}
