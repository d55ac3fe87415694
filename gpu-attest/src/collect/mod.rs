//! Attester role: collecting GPU evidence behind the [`GpuEvidenceSource`] trait.
//!
//! The real backend is NVML (`nvml::NvmlSource`, cargo feature `nvml`): for each GPU it
//! records identity (UUID, name, architecture, driver and VBIOS versions), the
//! confidential-computing state (system CC feature, dev-tools mode, environment, GPUs-ready
//! state, protected memory), the SPDM attestation report for the 32-byte nonce and the device
//! certificate chain. Test doubles live in test code only.
//!
//! Collection never panics and never falls back to fake evidence: when NVML is missing, CC is
//! off or a call is not supported, [`collect_or_absent`] yields
//! [`GpuEvidenceOutcome::NoGpuEvidence`] with the reason, and the appraisal policy decides.

#[cfg(feature = "nvml")]
pub mod nvml;

use crate::error::CollectError;
use crate::spdm::GpuNonce;
use serde::{Deserialize, Serialize};

/// Protected (CC) video memory of one GPU, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectedMemory {
    /// Total protected memory.
    pub total_bytes: u64,
    /// Used protected memory.
    pub used_bytes: u64,
}

/// Confidential-computing state as NVML reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CcState {
    /// System CC feature on (`nvmlSystemGetConfComputeState().ccFeature`).
    pub cc_enabled: bool,
    /// CC dev-tools (debug) mode on: evidence from such a system must not be affirmed.
    pub dev_tools_mode: bool,
    /// CC environment (`unavailable`, `sim`, `prod`).
    pub environment: String,
    /// GPUs accept client work (`nvmlSystemGetConfComputeGpusReadyState`).
    pub gpus_ready: bool,
    /// Multi-GPU protected PCIe mode, where the driver reports it.
    pub protected_pcie: Option<bool>,
    /// Protected memory of this GPU, where the driver reports it.
    pub protected_memory: Option<ProtectedMemory>,
}

/// Everything collected from one GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuEvidence {
    /// NVML device index.
    pub index: u32,
    /// GPU UUID (`GPU-…`).
    pub uuid: String,
    /// Product name.
    pub name: String,
    /// Architecture (`Hopper`, `Blackwell`, …).
    pub architecture: String,
    /// Driver version (system-wide).
    pub driver_version: String,
    /// VBIOS version.
    pub vbios_version: String,
    /// Confidential-computing state.
    pub cc: CcState,
    /// The SPDM GET_MEASUREMENTS request ‖ MEASUREMENTS response, binary.
    pub report: Vec<u8>,
    /// The device certificate chain, PEM, leaf first.
    pub cert_chain_pem: String,
}

/// A source of GPU evidence (NVML on a CVM; recorded vectors in tests).
pub trait GpuEvidenceSource {
    /// Evidence from every GPU, each report answering `nonce`.
    fn collect(&mut self, nonce: &GpuNonce) -> Result<Vec<GpuEvidence>, CollectError>;
}

/// GPU evidence for a bundle, or the reason there is none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum GpuEvidenceOutcome {
    /// Evidence from each GPU.
    Evidence {
        /// One entry per GPU.
        gpus: Vec<GpuEvidence>,
    },
    /// No GPU evidence; the appraisal policy decides whether that is acceptable.
    NoGpuEvidence {
        /// Why (the collection error, in words).
        reason: String,
    },
}

/// Collects from `source`, turning any error into [`GpuEvidenceOutcome::NoGpuEvidence`].
pub fn collect_or_absent(
    source: &mut dyn GpuEvidenceSource,
    nonce: &GpuNonce,
) -> GpuEvidenceOutcome {
    match source.collect(nonce) {
        Ok(gpus) if !gpus.is_empty() => GpuEvidenceOutcome::Evidence { gpus },
        Ok(_) => GpuEvidenceOutcome::NoGpuEvidence {
            reason: CollectError::NoGpus.to_string(),
        },
        Err(e) => {
            let mut reason = e.to_string();
            let mut cur = std::error::Error::source(&e);
            while let Some(inner) = cur {
                reason.push_str(": ");
                reason.push_str(&inner.to_string());
                cur = inner.source();
            }
            GpuEvidenceOutcome::NoGpuEvidence { reason }
        }
    }
}
