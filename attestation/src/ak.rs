//! The enclave's ephemeral attestation key (AK): ECDSA P-256, generated at boot, never leaves
//! process memory. It signs the evidence bundle (COSE_Sign1, ES256) and peer requests; its
//! public key's SHA-256 is part of the binding value.

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};

/// Bytes of an uncompressed SEC1 P-256 public key.
pub const AK_PUBLIC_BYTES: usize = 65;
/// Bytes of a fixed-width (r‖s) P-256 signature.
pub const AK_SIGNATURE_BYTES: usize = 64;

/// Errors with the attestation key.
#[derive(Debug, thiserror::Error)]
pub enum AkError {
    /// "could not generate the attestation key".
    #[error("could not generate the attestation key")]
    Generate,
    /// "could not sign with the attestation key".
    #[error("could not sign with the attestation key")]
    Sign,
    /// "signature does not verify under the attestation key".
    #[error("signature does not verify under the attestation key")]
    BadSignature,
}

/// An ephemeral ECDSA P-256 attestation key.
pub struct AttestationKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for AttestationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttestationKey")
            .field("public", &hex::encode(self.public_key()))
            .finish_non_exhaustive()
    }
}

impl AttestationKey {
    /// Generates a fresh key from the OS CSPRNG.
    pub fn generate() -> Result<Self, AkError> {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|_| AkError::Generate)?;
        let pair =
            EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).map_err(|_| AkError::Generate)?;
        Ok(Self { pair, rng })
    }

    /// The public key, uncompressed SEC1 (65 bytes).
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// Signs `msg` (SHA-256 inside), fixed-width r‖s.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, AkError> {
        self.pair
            .sign(&self.rng, msg)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| AkError::Sign)
    }
}

/// Verifies an AK signature (fixed-width r‖s, SHA-256) under `public_key` (SEC1).
pub fn verify_ak_signature(public_key: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), AkError> {
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, public_key)
        .verify(msg, sig)
        .map_err(|_| AkError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let ak = AttestationKey::generate().unwrap();
        assert_eq!(ak.public_key().len(), AK_PUBLIC_BYTES);
        let sig = ak.sign(b"hello").unwrap();
        assert_eq!(sig.len(), AK_SIGNATURE_BYTES);
        verify_ak_signature(ak.public_key(), b"hello", &sig).unwrap();
        assert!(verify_ak_signature(ak.public_key(), b"hellO", &sig).is_err());
        let other = AttestationKey::generate().unwrap();
        assert!(verify_ak_signature(other.public_key(), b"hello", &sig).is_err());
    }
}
