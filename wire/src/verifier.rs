//! Messages between an enclave and the verifier (relying party and key broker).
//!
//! One connection carries one appraisal: `nonce` → `appraise` → `release_key`. The verifier
//! releases a wrap key only on the connection whose bundle it just appraised as affirming, and
//! only encrypted to the X25519 key that the bundle carried, so the host proxy in between sees
//! ciphertext.

use serde::{Deserialize, Serialize};

/// A request to the verifier.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "method", content = "params", rename_all = "snake_case")]
pub enum VerifierRequest {
    /// Ask for a fresh single-use nonce.
    Nonce {
        /// Kernel asking.
        kernel_id: String,
    },
    /// Submit an evidence bundle (COSE_Sign1) for appraisal.
    Appraise {
        /// The bundle bytes.
        #[serde(with = "serde_bytes")]
        bundle: Vec<u8>,
    },
    /// Ask for this kernel's wrap key (same connection as an affirming appraisal).
    ReleaseKey {
        /// Kernel asking.
        kernel_id: String,
    },
}

/// A response from the verifier.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "snake_case")]
pub enum VerifierResponse {
    /// A fresh nonce.
    Nonce {
        /// 32 random bytes.
        #[serde(with = "serde_bytes")]
        nonce: Vec<u8>,
        /// Unix time (ms) after which it is refused.
        expires_at_ms: u64,
    },
    /// Appraisal outcome.
    Appraised {
        /// The signed attestation result (COSE_Sign1, EAR-shaped claims set).
        #[serde(with = "serde_bytes")]
        result: Vec<u8>,
        /// Overall status: `affirming`, `warning` or `contraindicated`.
        status: String,
        /// Reasons for every non-affirming claim.
        reasons: Vec<String>,
    },
    /// The wrap key, sealed to the enclave's ephemeral X25519 key.
    KeyReleased {
        /// The verifier's ephemeral X25519 public key.
        #[serde(with = "serde_bytes")]
        ephemeral_public: Vec<u8>,
        /// AES-256-GCM ciphertext of the wrap key (12-byte nonce prefix).
        #[serde(with = "serde_bytes")]
        sealed_wrap_key: Vec<u8>,
        /// The reference-value digest the share was sealed under (AAD part).
        #[serde(with = "serde_bytes")]
        reference_digest: Vec<u8>,
    },
    /// Refusal, with the check that failed.
    Refused {
        /// Why.
        reason: String,
    },
}
