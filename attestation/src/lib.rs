//! Attestation for the enclave appliance: what a kernel collects, how the pieces are bound to
//! one attestation key and one verifier nonce, and how a verifier appraises them.
//!
//! RATS roles (RFC 9334) map onto modules:
//! * **Attester** — [`evidence::Attester`] and one collector per evidence kind
//!   ([`software`], [`tpm`], [`snp`], [`tdx`]); real hardware collectors sit behind cargo
//!   features so that verification code never links hardware libraries.
//! * **Evidence** — [`binding`] (the binding value every piece carries) and [`bundle`] (the
//!   COSE_Sign1 evidence bundle signed by the attestation key, [`ak`]).
//! * **Verifier** — per-kind `verify` functions and [`appraisal`], which turns a verified
//!   bundle plus a policy into trust-vector claims.
//! * **Attestation result** — [`result`], an EAR-shaped claims set signed by the verifier.
//!
//! Two stages for everything that arrives from outside: `parse` (framing only, typed errors),
//! then `verify`, which returns a type whose fields are the only ones later code reads.
#![forbid(unsafe_code)]

pub mod acd;
pub mod ak;
pub mod appraisal;
pub mod azure;
pub mod binding;
pub mod bundle;
pub mod cose;
pub mod eventlog;
pub mod evidence;
pub mod gar;
pub mod gpu;
pub mod manifest;
pub mod plan;
pub mod reference;
pub mod result;
pub mod sealing;
pub mod snp;
pub mod software;
pub mod tdx;
pub mod time;
pub mod tpm;
pub mod verdict;

pub use binding::{BindingValue, Level, Nonce};
pub use evidence::{Attester, CollectError, EvidenceItem, EvidenceKind};

/// Milliseconds since the Unix epoch, from the system clock (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}
