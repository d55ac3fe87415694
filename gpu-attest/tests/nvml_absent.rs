//! The NVML backend on a machine without libnvidia-ml (this project's CI and developer
//! machines): opening it is a typed error, never a panic, and collection falls back to
//! "no GPU evidence". On a GPU machine the same test would collect instead; it then asserts
//! that the evidence verifies.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failure must stop the test loudly"
)]

use gpu_attest::collect::nvml::NvmlSource;
use gpu_attest::collect::{collect_or_absent, GpuEvidenceOutcome};
use gpu_attest::*;

#[test]
fn nvml_without_a_driver_is_a_typed_error() {
    let nonce = GpuNonce([0x5A; 32]);
    match NvmlSource::open() {
        Err(e) => {
            assert!(
                matches!(
                    e,
                    CollectError::LibraryMissing(_) | CollectError::DriverNotLoaded
                ),
                "{e:?}"
            );
        }
        Ok(mut source) => match collect_or_absent(&mut source, &nonce) {
            GpuEvidenceOutcome::NoGpuEvidence { reason } => {
                eprintln!("nvml loaded but gave no evidence: {reason}");
            }
            GpuEvidenceOutcome::Evidence { gpus } => {
                for g in gpus {
                    let a = appraise(
                        &g.report,
                        &g.cert_chain_pem,
                        &nonce,
                        &[],
                        &GpuPolicy {
                            require_rims: false,
                            ..GpuPolicy::default()
                        },
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                            .unwrap(),
                    );
                    assert!(a.affirming(), "{}", a.to_json());
                }
            }
        },
    }
}
