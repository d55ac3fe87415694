//! The collector contract with a test double that replays recorded evidence (the multi-GPU
//! attestation-sdk vector): collected evidence goes through the verifier GPU by GPU, and a
//! source that fails yields "no GPU evidence" with its reason instead of a panic or a fake.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failure must stop the test loudly"
)]

mod common;

use common::*;
use gpu_attest::collect::{collect_or_absent, CcState, GpuEvidence, GpuEvidenceOutcome};
use gpu_attest::*;

/// Replays recorded reports; the nonce asked for must be the one they were recorded with.
struct ReplaySource {
    gpus: Vec<JsonGpu>,
}

impl GpuEvidenceSource for ReplaySource {
    fn collect(&mut self, nonce: &GpuNonce) -> Result<Vec<GpuEvidence>, CollectError> {
        Ok(self
            .gpus
            .iter()
            .enumerate()
            .filter(|(_, g)| &g.nonce == nonce)
            .map(|(i, g)| GpuEvidence {
                index: u32::try_from(i).unwrap(),
                uuid: format!("GPU-replay-{i}"),
                name: "NVIDIA H100 (recorded)".into(),
                architecture: "Hopper".into(),
                driver_version: "590.12".into(),
                vbios_version: "96.00.A5.00.01".into(),
                cc: CcState {
                    cc_enabled: true,
                    dev_tools_mode: false,
                    environment: "prod".into(),
                    gpus_ready: true,
                    protected_pcie: None,
                    protected_memory: None,
                },
                report: g.report.clone(),
                cert_chain_pem: g.chain_pem.clone(),
            })
            .collect())
    }
}

struct CcOffSource;

impl GpuEvidenceSource for CcOffSource {
    fn collect(&mut self, _: &GpuNonce) -> Result<Vec<GpuEvidence>, CollectError> {
        Err(CollectError::CcOff)
    }
}

#[test]
fn replayed_evidence_verifies_gpu_by_gpu() {
    let mut source = ReplaySource {
        gpus: sdk_json("json-evidence/multi_gpu_hopper.json"),
    };
    let n = nonce(NONCE_JSON);
    let GpuEvidenceOutcome::Evidence { gpus } = collect_or_absent(&mut source, &n) else {
        panic!("no evidence")
    };
    assert_eq!(gpus.len(), 4);
    let policy = GpuPolicy {
        require_rims: false,
        ..GpuPolicy::default()
    };
    let mut verifier = GpuVerifier::new(policy);
    let appraisals: Vec<GpuAppraisal> = gpus
        .iter()
        .map(|g| verifier.appraise(&g.report, &g.cert_chain_pem, &n, &[], NOW))
        .collect();
    assert_eq!(
        bundle_verdict(&appraisals, gpus.len()),
        GpuBundleVerdict::AllAffirming { gpus: 4 }
    );
    // The evidence survives a JSON round trip (it travels in the bundle).
    let json = serde_json::to_string(&GpuEvidenceOutcome::Evidence { gpus: gpus.clone() }).unwrap();
    let back: GpuEvidenceOutcome = serde_json::from_str(&json).unwrap();
    assert_eq!(back, GpuEvidenceOutcome::Evidence { gpus });
}

#[test]
fn a_failing_source_means_no_gpu_evidence() {
    let outcome = collect_or_absent(&mut CcOffSource, &nonce(NONCE_JSON));
    assert_eq!(
        outcome,
        GpuEvidenceOutcome::NoGpuEvidence {
            reason: CollectError::CcOff.to_string()
        }
    );
    // A source with no GPU for this nonce: none, not an empty success.
    let mut empty = ReplaySource { gpus: Vec::new() };
    assert!(matches!(
        collect_or_absent(&mut empty, &nonce(NONCE_JSON)),
        GpuEvidenceOutcome::NoGpuEvidence { .. }
    ));
    assert_eq!(bundle_verdict(&[], 0), GpuBundleVerdict::NoGpuEvidence);
}
