//! NVIDIA GPU evidence in the bundle (issue 8): one [`EvidenceKind::NvidiaGpu`] item per bundle,
//! CBOR of [`gpu_attest::GpuEvidenceOutcome`]: either every GPU's SPDM report (for the first 32
//! bytes of the binding value as nonce) and device chain, or "no GPU evidence" with the reason
//! (NVML absent, CC mode off, call unsupported). The policy decides what either means
//! ([`GpuRequirement`]); a bundle that must carry N GPUs needs N affirming GPU appraisals from
//! N distinct devices.

use crate::binding::{BindingValue, Level};
use crate::evidence::{Attester, CollectError, EvidenceItem, EvidenceKind};
use gpu_attest::{GpuEvidenceOutcome, GpuEvidenceSource, GpuNonce, GpuPolicy};
use serde::{Deserialize, Serialize};

/// What the verifier's policy requires of GPU evidence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuRequirement {
    /// GPUs every kernel must prove (0: GPU evidence is optional, but any present must verify).
    #[serde(default)]
    pub required_gpus: usize,
    /// Driver / VBIOS policy and whether RIMs are required.
    #[serde(default)]
    pub policy: GpuPolicy,
    /// Driver and VBIOS RIMs (SWID XML text) to compare measurements with.
    #[serde(default)]
    pub rims: Vec<String>,
}

/// Collects GPU evidence through any [`GpuEvidenceSource`] (NVML in production).
pub struct GpuAttester {
    source: Box<dyn GpuEvidenceSource + Send>,
}

impl std::fmt::Debug for GpuAttester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GpuAttester")
    }
}

impl GpuAttester {
    /// Wraps `source`.
    pub fn new(source: Box<dyn GpuEvidenceSource + Send>) -> Self {
        Self { source }
    }
}

impl Attester for GpuAttester {
    fn kind(&self) -> EvidenceKind {
        EvidenceKind::NvidiaGpu
    }
    fn level(&self) -> Option<Level> {
        None
    }
    fn collect(&mut self, binding: &BindingValue) -> Result<EvidenceItem, CollectError> {
        let nonce = GpuNonce(binding.gpu_nonce());
        let outcome = gpu_attest::collect::collect_or_absent(self.source.as_mut(), &nonce);
        Ok(EvidenceItem {
            kind: EvidenceKind::NvidiaGpu,
            data: crate::evidence::to_cbor(&outcome)?,
        })
    }
}

/// The result of appraising a bundle's GPU item(s) under a requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuVerdict {
    /// Nothing to say: no GPU evidence and none required.
    NotRequired(String),
    /// Every required GPU verified.
    Affirming(String),
    /// Not acceptable, with the reasons.
    Contraindicated(String),
}

/// Appraises the outcome carried in a GPU item (`data`), nonce = the binding's first 32 bytes.
pub fn appraise_gpu_item(
    data: Option<&[u8]>,
    binding: &BindingValue,
    req: &GpuRequirement,
    now_unix_s: i64,
) -> GpuVerdict {
    let outcome: Option<GpuEvidenceOutcome> = match data {
        None => None,
        Some(d) => match wire::decode(d) {
            Ok(o) => Some(o),
            Err(e) => {
                return GpuVerdict::Contraindicated(format!("gpu item is not valid cbor: {e}"))
            }
        },
    };
    let gpus = match outcome {
        None if req.required_gpus == 0 => {
            return GpuVerdict::NotRequired("no gpu item; none required".into())
        }
        None => {
            return GpuVerdict::Contraindicated(format!(
                "policy requires {} gpu(s), the bundle has no gpu item",
                req.required_gpus
            ))
        }
        Some(GpuEvidenceOutcome::NoGpuEvidence { reason }) if req.required_gpus == 0 => {
            return GpuVerdict::NotRequired(format!("no gpu evidence ({reason}); none required"))
        }
        Some(GpuEvidenceOutcome::NoGpuEvidence { reason }) => {
            return GpuVerdict::Contraindicated(format!(
                "policy requires {} gpu(s): no gpu evidence ({reason})",
                req.required_gpus
            ))
        }
        Some(GpuEvidenceOutcome::Evidence { gpus }) => gpus,
    };
    let nonce = GpuNonce(binding.gpu_nonce());
    let rims: Vec<Vec<u8>> = req.rims.iter().map(|r| r.as_bytes().to_vec()).collect();
    let mut verifier = gpu_attest::GpuVerifier::new(req.policy.clone());
    let appraisals: Vec<gpu_attest::GpuAppraisal> = gpus
        .iter()
        .map(|g| verifier.appraise(&g.report, &g.cert_chain_pem, &nonce, &rims, now_unix_s))
        .collect();
    let expected = req.required_gpus.max(gpus.len());
    match gpu_attest::bundle_verdict(&appraisals, expected) {
        gpu_attest::GpuBundleVerdict::AllAffirming { gpus } => {
            GpuVerdict::Affirming(format!("{gpus} gpu(s) verified, each a distinct device"))
        }
        gpu_attest::GpuBundleVerdict::NoGpuEvidence => {
            GpuVerdict::NotRequired("no gpu evidence; none required".into())
        }
        gpu_attest::GpuBundleVerdict::NotAffirming {
            affirming,
            expected,
        } => {
            let reasons: Vec<String> = appraisals
                .iter()
                .zip(&gpus)
                .flat_map(|(a, g)| {
                    a.claims
                        .iter()
                        .filter(|c| c.status == gpu_attest::Tier::Contraindicated)
                        .map(move |c| format!("gpu {} {}: {}", g.index, c.name, c.reason))
                })
                .collect();
            GpuVerdict::Contraindicated(format!(
                "{affirming} of {expected} gpu(s) affirmed; {}",
                reasons.join("; ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpu_attest::collect::{CcState, GpuEvidence};

    /// Test double: replays a real H100 report (NVIDIA-signed for a fixed nonce).
    struct Replay;
    impl GpuEvidenceSource for Replay {
        fn collect(
            &mut self,
            _nonce: &GpuNonce,
        ) -> Result<Vec<GpuEvidence>, gpu_attest::CollectError> {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../gpu-attest/tests/vectors/h100-550.90.07");
            Ok(vec![GpuEvidence {
                index: 0,
                uuid: "GPU-test".into(),
                name: "NVIDIA H100".into(),
                architecture: "hopper".into(),
                driver_version: "550.90.07".into(),
                vbios_version: "96.00.9f.00.01".into(),
                cc: CcState {
                    cc_enabled: true,
                    dev_tools_mode: false,
                    environment: "prod".into(),
                    gpus_ready: true,
                    protected_pcie: None,
                    protected_memory: None,
                },
                report: std::fs::read(dir.join("report.bin")).unwrap(),
                cert_chain_pem: std::fs::read_to_string(dir.join("cert_chain.pem")).unwrap(),
            }])
        }
    }

    struct Absent;
    impl GpuEvidenceSource for Absent {
        fn collect(
            &mut self,
            _nonce: &GpuNonce,
        ) -> Result<Vec<GpuEvidence>, gpu_attest::CollectError> {
            Err(gpu_attest::CollectError::NoGpus)
        }
    }

    fn binding() -> BindingValue {
        BindingValue::compute(&crate::Nonce::new([1; 32]), b"ak", &[2; 32])
    }

    fn req(n: usize) -> GpuRequirement {
        GpuRequirement {
            required_gpus: n,
            policy: GpuPolicy {
                require_rims: false,
                ..GpuPolicy::default()
            },
            rims: Vec::new(),
        }
    }

    #[test]
    fn a_genuine_report_for_another_nonce_is_contraindicated_for_its_nonce() {
        let b = binding();
        let item = GpuAttester::new(Box::new(Replay)).collect(&b).unwrap();
        assert_eq!(item.kind, EvidenceKind::NvidiaGpu);
        let v = appraise_gpu_item(Some(&item.data), &b, &req(1), 1_748_736_000);
        match v {
            GpuVerdict::Contraindicated(r) => {
                assert!(r.contains("nonce"), "{r}");
                assert!(!r.contains("report-signature"), "{r}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_gpu_evidence_is_fine_only_when_none_is_required() {
        let b = binding();
        let item = GpuAttester::new(Box::new(Absent)).collect(&b).unwrap();
        assert!(matches!(
            appraise_gpu_item(Some(&item.data), &b, &req(0), 0),
            GpuVerdict::NotRequired(_)
        ));
        assert!(matches!(
            appraise_gpu_item(Some(&item.data), &b, &req(1), 0),
            GpuVerdict::Contraindicated(r) if r.contains("no gpu evidence")
        ));
        assert!(matches!(
            appraise_gpu_item(None, &b, &req(2), 0),
            GpuVerdict::Contraindicated(_)
        ));
        assert!(matches!(
            appraise_gpu_item(Some(b"\xff\x00"), &b, &req(0), 0),
            GpuVerdict::Contraindicated(_)
        ));
    }
}
