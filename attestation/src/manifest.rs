//! The GEC Manifest (KEE-1 P5): the kernel's declared posture, frozen after unsealing and
//! hash-locked (SHA-256 over its canonical CBOR). Every access re-verifies the hash; a
//! mismatch is a fail-closed stop.

use serde::{Deserialize, Serialize};

/// Format version of the manifest.
pub const MANIFEST_VERSION: u32 = 1;

/// The GEC Manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GecManifest {
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    /// Fleet the kernel belongs to.
    pub fleet_id: String,
    /// Kernel id (KIA id).
    pub kernel_id: String,
    /// Conformance level (`KEE1-L1` / `KEE1-L2` / `KEE1-L3`).
    pub conformance_level: String,
    /// SHA-256 (hex) of the Cedar policy set loaded at boot.
    pub cap_profile_hash: String,
    /// Threshold configuration, e.g. `frost:t-of-n:2-3`.
    pub frost: String,
    /// FROST group public key (hex).
    pub group_public_key: String,
    /// Kernel ids of the signer set.
    pub signers: Vec<String>,
    /// SHA-256 (hex) of the evidence bundle; empty in the draft.
    pub evidence_bundle_digest: String,
    /// SHA-256 (hex) of the signed attestation result; empty in the draft.
    pub attestation_result_digest: String,
    /// Attestation status from the result; empty in the draft.
    pub attestation_status: String,
    /// When frozen (Unix ms); 0 in the draft.
    pub frozen_at_ms: u64,
    /// Catalog publishers (hex Ed25519 public keys) whose threshold signature may change the
    /// Cedar policy set (KEE-1 P4); absent when none are pinned (no catalog updates).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub catalog_publishers: Vec<String>,
    /// How many of them must sign (0 when none are pinned).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub catalog_threshold: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl GecManifest {
    /// Canonical CBOR (fixed field order, definite lengths).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        wire::encode(self).unwrap_or_default()
    }
    /// SHA-256 of the canonical bytes.
    pub fn digest(&self) -> [u8; 32] {
        crate::sha256(&self.canonical_bytes())
    }
}

/// Errors of the hash lock.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// "manifest hash mismatch: the frozen manifest changed after it was locked".
    #[error("manifest hash mismatch: the frozen manifest changed after it was locked")]
    HashMismatch,
    /// "frozen manifest bytes no longer decode".
    #[error("frozen manifest bytes no longer decode")]
    Corrupt,
}

/// A manifest frozen as bytes plus the hash taken when it was frozen.
#[derive(Debug, Clone)]
pub struct HashLocked {
    bytes: Vec<u8>,
    locked_hash: [u8; 32],
}

impl HashLocked {
    /// Freezes `manifest`.
    pub fn freeze(manifest: &GecManifest) -> Self {
        let bytes = manifest.canonical_bytes();
        let locked_hash = crate::sha256(&bytes);
        Self { bytes, locked_hash }
    }

    /// Re-verifies the hash and returns the manifest, its bytes and its hash.
    pub fn access(&self) -> Result<(GecManifest, &[u8], [u8; 32]), ManifestError> {
        if crate::sha256(&self.bytes) != self.locked_hash {
            return Err(ManifestError::HashMismatch);
        }
        let m: GecManifest = wire::decode(&self.bytes).map_err(|_| ManifestError::Corrupt)?;
        Ok((m, &self.bytes, self.locked_hash))
    }

    /// Test hook: flips one byte of the frozen bytes, as memory corruption or tampering
    /// would. Exposed for the fail-closed tests of the server; it changes no real manifest.
    #[doc(hidden)]
    pub fn corrupt_for_test(&mut self) {
        if let Some(b) = self.bytes.last_mut() {
            *b ^= 0x01;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GecManifest {
        GecManifest {
            version: MANIFEST_VERSION,
            fleet_id: "fleet".into(),
            kernel_id: "k1".into(),
            conformance_level: "KEE1-L1".into(),
            cap_profile_hash: "00".into(),
            frost: "frost:t-of-n:2-3".into(),
            group_public_key: "ab".into(),
            signers: vec!["k1".into()],
            evidence_bundle_digest: String::new(),
            attestation_result_digest: String::new(),
            attestation_status: String::new(),
            frozen_at_ms: 0,
            catalog_publishers: Vec::new(),
            catalog_threshold: 0,
        }
    }

    #[test]
    fn lock_detects_any_change() {
        let mut l = HashLocked::freeze(&sample());
        let (m, _, h) = l.access().unwrap();
        assert_eq!(m, sample());
        assert_eq!(h, sample().digest());
        l.corrupt_for_test();
        assert_eq!(l.access().unwrap_err(), ManifestError::HashMismatch);
    }

    #[test]
    fn canonical_bytes_are_stable() {
        assert_eq!(sample().canonical_bytes(), sample().canonical_bytes());
        let mut other = sample();
        other.kernel_id = "k2".into();
        assert_ne!(sample().digest(), other.digest());
    }
}
