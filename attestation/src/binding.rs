//! The binding value: one 64-byte value that every evidence item carries, so that a verifier
//! can tell all items were produced for the same verifier nonce, the same attestation key and
//! the same manifest draft (DESIGN.md "Bind").
//!
//! `binding = SHA-512("enclave-binding-v1" ‖ nonce ‖ SHA-256(AK public key) ‖ manifest_draft_hash)`
//!
//! Fields shorter than 64 bytes take a prefix: the GPU nonce takes 32 bytes.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

/// Domain separation label of the binding value.
pub const BINDING_LABEL: &[u8] = b"enclave-binding-v1";
/// Bytes in a verifier nonce.
pub const NONCE_BYTES: usize = 32;
/// Bytes the TPM quote's qualifying data (TPM2B_DATA) carries.
pub const TPM_QUALIFYING_DATA_BYTES: usize = 64;
/// Bytes of the NVIDIA GPU attestation nonce.
pub const GPU_NONCE_BYTES: usize = 32;

/// A single-use verifier nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nonce([u8; NONCE_BYTES]);

impl Nonce {
    /// Wraps 32 bytes.
    pub fn new(bytes: [u8; NONCE_BYTES]) -> Self {
        Self(bytes)
    }
    /// Parses a nonce of exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; NONCE_BYTES]>::try_from(bytes).ok().map(Self)
    }
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; NONCE_BYTES] {
        &self.0
    }
}

/// The 64-byte value every evidence item is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingValue([u8; 64]);

impl BindingValue {
    /// Computes the binding value (see the module docs).
    pub fn compute(nonce: &Nonce, ak_public: &[u8], manifest_draft_hash: &[u8; 32]) -> Self {
        let ak_digest = Sha256::digest(ak_public);
        let mut h = Sha512::new();
        h.update(BINDING_LABEL);
        h.update(nonce.as_bytes());
        h.update(ak_digest);
        h.update(manifest_draft_hash);
        Self(h.finalize().into())
    }
    /// The full 64 bytes: SEV-SNP `REPORT_DATA`, TDX `REPORTDATA`, the software report.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
    /// TPM2 quote qualifying data (`extraData` of TPMS_ATTEST).
    pub fn tpm_qualifying_data(&self) -> &[u8] {
        self.0.get(..TPM_QUALIFYING_DATA_BYTES).unwrap_or(&self.0)
    }
    /// The 32-byte NVIDIA GPU attestation nonce.
    pub fn gpu_nonce(&self) -> [u8; GPU_NONCE_BYTES] {
        let mut out = [0u8; GPU_NONCE_BYTES];
        out.copy_from_slice(
            self.0
                .get(..GPU_NONCE_BYTES)
                .unwrap_or(&[0u8; GPU_NONCE_BYTES]),
        );
        out
    }
}

/// KEE-1 conformance level. Every manifest and result states one; an L3 policy rejects L1
/// evidence, always.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    /// Software platform, development only.
    #[serde(rename = "KEE1-L1")]
    L1,
    /// Sidecar TEE.
    #[serde(rename = "KEE1-L2")]
    L2,
    /// Hardware TEE with a chain to the deployment authority (SNP/TDX + vendor roots).
    #[serde(rename = "KEE1-L3")]
    L3,
}

impl Level {
    /// The level's name as written in manifests and policies.
    pub fn as_str(&self) -> &'static str {
        match self {
            Level::L1 => "KEE1-L1",
            Level::L2 => "KEE1-L2",
            Level::L3 => "KEE1-L3",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_changes_with_every_input() {
        let n = Nonce::new([1; 32]);
        let base = BindingValue::compute(&n, b"ak", &[2; 32]);
        assert_ne!(
            base,
            BindingValue::compute(&Nonce::new([9; 32]), b"ak", &[2; 32])
        );
        assert_ne!(base, BindingValue::compute(&n, b"other", &[2; 32]));
        assert_ne!(base, BindingValue::compute(&n, b"ak", &[3; 32]));
        assert_eq!(base, BindingValue::compute(&n, b"ak", &[2; 32]));
        assert_eq!(&base.gpu_nonce()[..], &base.as_bytes()[..32]);
    }

    #[test]
    fn level_names() {
        assert_eq!(serde_json::to_string(&Level::L3).unwrap(), "\"KEE1-L3\"");
        assert!(Level::L1 < Level::L3);
    }
}
