//! The evidence model: typed evidence items and the [`Attester`] trait every collector
//! implements.

use crate::binding::{BindingValue, Level};
use serde::{Deserialize, Serialize};

/// What an evidence item is, in the spirit of RATS conceptual message wrappers: the type tells
/// the verifier which parser to run on `data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EvidenceKind {
    /// Software platform report (KEE1-L1), CBOR.
    #[serde(rename = "software")]
    Software,
    /// vTPM quote over PCRs 0-15 with the AK public area, CBOR.
    #[serde(rename = "tpm")]
    Tpm,
    /// AMD SEV-SNP attestation report (1184 bytes) with its certificates, CBOR.
    #[serde(rename = "sev-snp")]
    SevSnp,
    /// Intel TDX quote (v4/v5), raw.
    #[serde(rename = "tdx")]
    Tdx,
    /// NVIDIA GPU attestation report and certificate chain, CBOR.
    #[serde(rename = "nvidia-gpu")]
    NvidiaGpu,
}

impl EvidenceKind {
    /// The kind's name in bundles and results.
    pub fn as_str(&self) -> &'static str {
        match self {
            EvidenceKind::Software => "software",
            EvidenceKind::Tpm => "tpm",
            EvidenceKind::SevSnp => "sev-snp",
            EvidenceKind::Tdx => "tdx",
            EvidenceKind::NvidiaGpu => "nvidia-gpu",
        }
    }
}

/// One piece of evidence inside a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceItem {
    /// What it is.
    pub kind: EvidenceKind,
    /// Kind-specific bytes.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// Errors collecting evidence.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// "no such device `{0}`: this machine has no {1}": the hardware interface is absent.
    #[error("no such device `{path}`: this machine has no {what}")]
    NoSuchDevice {
        /// The device or interface path that is missing.
        path: String,
        /// What it would have been.
        what: &'static str,
    },
    /// "device `{path}` refused the request".
    #[error("device `{path}` refused the request")]
    Device {
        /// Device path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// "tpm operation `{op}` failed: {detail}".
    #[error("tpm operation `{op}` failed: {detail}")]
    Tpm {
        /// Which operation.
        op: &'static str,
        /// What the TSS reported.
        detail: String,
    },
    /// "the platform returned malformed evidence: {0}".
    #[error("the platform returned malformed evidence: {0}")]
    Malformed(String),
    /// "could not encode evidence".
    #[error("could not encode evidence: {0}")]
    Encode(String),
    /// "could not sign evidence".
    #[error("could not sign evidence")]
    Sign,
}

/// A source of evidence. One implementation per backend; hardware backends are production
/// code, test doubles live only in test code.
pub trait Attester: Send {
    /// The kind of item [`Attester::collect`] returns.
    fn kind(&self) -> EvidenceKind;
    /// The conformance level this attester establishes, if it is a platform attester (software,
    /// SEV-SNP, TDX). Supporting evidence (vTPM, GPU) returns `None`.
    fn level(&self) -> Option<Level>;
    /// Collects one evidence item bound to `binding`.
    fn collect(&mut self, binding: &BindingValue) -> Result<EvidenceItem, CollectError>;
    /// The verifier has replayed the event log up to (not including) event `first_event`:
    /// later items carry only the events from there on. Attesters without a log ignore it.
    fn event_log_from(&mut self, first_event: u32) {
        let _ = first_event;
    }
}

/// Encodes a serde value as CBOR for an evidence item.
pub(crate) fn to_cbor<T: Serialize>(value: &T) -> Result<Vec<u8>, CollectError> {
    wire::encode(value).map_err(|e| CollectError::Encode(e.to_string()))
}
