//! Azure confidential VMs: SEV-SNP or TDX guests whose TPM is a vTPM inside the paravisor
//! (HCL/OpenHCL), verified offline as a resource provider would verify them.
//!
//! The guest cannot ask the hardware for a report itself; the paravisor does, at boot, and
//! leaves an *HCL report* in vTPM NV index `0x01400001`: a header, the hardware report (an SNP
//! report or a TDREPORT) and *runtime data*, a JSON document that names the vTPM's attestation
//! key (AK). The paravisor puts the runtime data's digest in the hardware report's report data.
//! So one chain links the hardware root to the TPM quote:
//!
//! ```text
//! AMD root → VCEK → SNP report ─┐
//!                               ├ report_data[..32] = SHA-256(runtime data) → AK (JWK) → vTPM quote
//! Intel root → TD quote → TDREPORT ┘                                              (nonce, PCRs)
//! ```
//!
//! By RATS role: [`hcl`] and [`runtime`] (and [`tdreport`]) frame the evidence;
//! [`verify`] checks the chain ([`UnverifiedHclReport::verify_snp`] all the way to AMD's
//! root; [`UnverifiedHclReport::bind_tdx`] up to the TD quote, whose verification to Intel's
//! root is [`crate::tdx`]'s). Endorsements come from [`crate::snp::endorser`]; the quote is
//! checked by [`crate::tpm`].
//!
//! Threat model: the host, the guest's userspace and the network may change any byte of the
//! HCL report, the quote and the certificates. Only the hardware report's signature (SNP) or
//! the TD quote (TDX) is trusted; everything else is believed because it is bound to it.

pub mod hcl;
pub mod runtime;
pub mod tdreport;
pub mod verify;

pub use hcl::{HardwareReport, RuntimeDataHash, UnverifiedHclReport};
pub use runtime::{RuntimeData, VmConfiguration};
pub use tdreport::TdReportStruct;
pub use verify::{AzureTdxBinding, VerifiedAzureSnp, VtpmQuote};

/// Why an Azure HCL report or its vTPM quote was rejected. Each variant names the check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AzureError {
    /// "hcl report is {len} bytes, too short for its `{what}`".
    #[error("hcl report is {len} bytes, too short for its `{what}`")]
    Truncated {
        /// The field that did not fit.
        what: &'static str,
        /// Bytes received.
        len: usize,
    },
    /// "not an hcl report: signature is not `HCLA`".
    #[error("not an hcl report: signature is not `HCLA`")]
    NotHclReport,
    /// "hcl {what} version `{version}` is not supported".
    #[error("hcl {what} version `{version}` is not supported")]
    UnsupportedVersion {
        /// "header" or "request data".
        what: &'static str,
        /// The version found.
        version: u32,
    },
    /// "hcl request type `{0}` is not an ak certificate request (2)".
    #[error("hcl request type `{0}` is not an ak certificate request (2)")]
    UnsupportedRequestType(u32),
    /// "hcl report status is `{0:#x}`, not success".
    #[error("hcl report status is `{0:#x}`, not success")]
    HclStatus(u32),
    /// "hcl report sizes disagree: {0}".
    #[error("hcl report sizes disagree: {0}")]
    SizeMismatch(&'static str),
    /// "{0} are not zero".
    #[error("{0} are not zero")]
    NonZeroPadding(&'static str),
    /// "hardware report type `{0}` is neither sev-snp (2) nor tdx (4)".
    #[error("hardware report type `{0}` is neither sev-snp (2) nor tdx (4)")]
    UnsupportedReportType(u32),
    /// "report data hash type `{0}` is not sha-256 (1), sha-384 (2) or sha-512 (3)".
    #[error("report data hash type `{0}` is not sha-256 (1), sha-384 (2) or sha-512 (3)")]
    UnsupportedHashType(u32),
    /// "hcl report carries a {found} report, not {expected}".
    #[error("hcl report carries a {found} report, not {expected}")]
    WrongHardware {
        /// The kind the caller verifies.
        expected: &'static str,
        /// The kind the report carries.
        found: &'static str,
    },
    /// "embedded sev-snp report is rejected".
    #[error("embedded sev-snp report is rejected")]
    Snp(#[source] crate::snp::SnpError),
    /// "sev-snp report comes from vmpl {0}, not the paravisor's vmpl 0".
    #[error("sev-snp report comes from vmpl {0}, not the paravisor's vmpl 0")]
    NotParavisorVmpl(u32),
    /// "tdreport is malformed: {0}".
    #[error("tdreport is malformed: {0}")]
    TdReport(&'static str),
    /// "tdreport `{0}` does not match its hash in the mac'd header".
    #[error("tdreport `{0}` does not match its hash in the mac'd header")]
    TdReportHash(&'static str),
    /// "{hardware} report data does not hold the digest of the runtime data".
    #[error("{hardware} report data does not hold the digest of the runtime data")]
    RuntimeDataBinding {
        /// "sev-snp" or "tdx".
        hardware: &'static str,
    },
    /// "runtime data is not the expected json".
    #[error("runtime data is not the expected json")]
    RuntimeDataJson(#[source] serde_json::Error),
    /// "runtime data names no `HCLAkPub` key".
    #[error("runtime data names no `HCLAkPub` key")]
    AkMissing,
    /// "runtime data names `HCLAkPub` more than once".
    #[error("runtime data names `HCLAkPub` more than once")]
    AkDuplicated,
    /// "attestation key `HCLAkPub` is not an rsa key".
    #[error("attestation key `HCLAkPub` is not an rsa key")]
    AkNotRsa,
    /// "attestation key member `{0}` is not base64url".
    #[error("attestation key member `{0}` is not base64url")]
    AkEncoding(&'static str),
    /// "attestation key `HCLAkPub` is not usable".
    #[error("attestation key `HCLAkPub` is not usable")]
    AkKey(#[source] crate::tpm::TpmError),
    /// "runtime data `user-data` is not hex".
    #[error("runtime data `user-data` is not hex")]
    UserDataEncoding,
    /// "vtpm quote signature is {0} bytes, more than an rsa-4096 signature".
    #[error("vtpm quote signature is {0} bytes, more than an rsa-4096 signature")]
    SignatureSize(usize),
    /// "vtpm quote is rejected".
    #[error("vtpm quote is rejected")]
    Quote(#[source] crate::tpm::TpmError),
}
