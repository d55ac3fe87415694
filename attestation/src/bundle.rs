//! The evidence bundle: a CBOR claims set carrying typed evidence items, signed as
//! COSE_Sign1 (ES256) by the enclave's attestation key.
//!
//! Receiving side: [`UnverifiedBundle::parse`] checks framing and field lengths;
//! [`UnverifiedBundle::verify_signature`] checks the AK signature and returns a
//! [`VerifiedBundle`], the only type appraisal reads.

use crate::ak::{verify_ak_signature, AttestationKey, AK_PUBLIC_BYTES};
use crate::binding::{BindingValue, Level, Nonce, NONCE_BYTES};
use crate::cose::{self, CoseError};
use crate::evidence::EvidenceItem;
use coset::iana;
use serde::{Deserialize, Serialize};

/// COSE content type of a bundle.
pub const BUNDLE_CONTENT_TYPE: &str = "application/vnd.enclave.evidence-bundle+cbor";
/// Claims-set version this code writes and reads.
pub const BUNDLE_VERSION: u32 = 1;
/// Most evidence items a bundle may carry (platform, vTPM, up to 8 GPUs, slack).
pub const MAX_ITEMS: usize = 16;
/// Bytes of an X25519 public key.
pub const KEY_EXCHANGE_PUBLIC_BYTES: usize = 32;

/// The claims a bundle carries (the COSE payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleClaims {
    /// [`BUNDLE_VERSION`].
    pub version: u32,
    /// The governance kernel's id.
    pub kernel_id: String,
    /// The level the platform evidence establishes.
    pub level: Level,
    /// The verifier nonce (32 bytes).
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// SHA-256 of the manifest draft (32 bytes).
    #[serde(with = "serde_bytes")]
    pub manifest_draft_hash: Vec<u8>,
    /// The AK public key (SEC1 P-256, 65 bytes).
    #[serde(with = "serde_bytes")]
    pub ak_public: Vec<u8>,
    /// X25519 public key the verifier encrypts the released wrap key to (32 bytes).
    #[serde(with = "serde_bytes")]
    pub key_exchange_public: Vec<u8>,
    /// When the bundle was made (Unix ms).
    pub created_at_ms: u64,
    /// The evidence items.
    pub items: Vec<EvidenceItem>,
}

/// Errors parsing or verifying a bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The COSE envelope is wrong.
    #[error("bundle envelope rejected")]
    Envelope(#[from] CoseError),
    /// "bundle claims are not valid cbor".
    #[error("bundle claims are not valid cbor")]
    Claims(#[source] wire::CodecError),
    /// "bundle version {0} is not supported".
    #[error("bundle version {0} is not supported")]
    UnsupportedVersion(u32),
    /// "bundle field `{field}` has {actual} bytes, expected {expected}".
    #[error("bundle field `{field}` has {actual} bytes, expected {expected}")]
    FieldLength {
        /// Field name.
        field: &'static str,
        /// Required length.
        expected: usize,
        /// Found length.
        actual: usize,
    },
    /// "bundle has {0} items, more than the limit".
    #[error("bundle has {0} items, more than the limit")]
    TooManyItems(usize),
    /// "bundle carries no evidence items".
    #[error("bundle carries no evidence items")]
    NoItems,
    /// "kernel id is empty or longer than 128 bytes".
    #[error("kernel id is empty or longer than 128 bytes")]
    KernelId,
    /// "bundle signature does not verify under its attestation key".
    #[error("bundle signature does not verify under its attestation key")]
    BadSignature,
    /// "could not sign the bundle".
    #[error("could not sign the bundle")]
    Sign,
    /// "could not encode the bundle".
    #[error("could not encode the bundle: {0}")]
    Encode(String),
}

/// Signs `claims` with `ak` into COSE_Sign1 bytes.
pub fn sign_bundle(claims: &BundleClaims, ak: &AttestationKey) -> Result<Vec<u8>, BundleError> {
    let payload = wire::encode(claims).map_err(|e| BundleError::Encode(e.to_string()))?;
    cose::sign1(
        iana::Algorithm::ES256,
        BUNDLE_CONTENT_TYPE,
        payload,
        |tbs| ak.sign(tbs).map_err(|_| BundleError::Sign),
    )?
    .map_err(BundleError::Envelope)
}

fn check_len(field: &'static str, bytes: &[u8], expected: usize) -> Result<(), BundleError> {
    if bytes.len() == expected {
        Ok(())
    } else {
        Err(BundleError::FieldLength {
            field,
            expected,
            actual: bytes.len(),
        })
    }
}

/// A bundle whose framing is valid but whose signature is not yet checked.
#[derive(Debug)]
pub struct UnverifiedBundle {
    msg: coset::CoseSign1,
    claims: BundleClaims,
    digest: [u8; 32],
}

impl UnverifiedBundle {
    /// Parses COSE_Sign1 bytes: algorithm ES256, content type, claims, field lengths.
    pub fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        let (msg, payload) =
            cose::open1(bytes, iana::Algorithm::ES256, "ES256", BUNDLE_CONTENT_TYPE)?;
        let claims: BundleClaims = wire::decode(&payload).map_err(BundleError::Claims)?;
        if claims.version != BUNDLE_VERSION {
            return Err(BundleError::UnsupportedVersion(claims.version));
        }
        if claims.kernel_id.is_empty() || claims.kernel_id.len() > 128 {
            return Err(BundleError::KernelId);
        }
        check_len("nonce", &claims.nonce, NONCE_BYTES)?;
        check_len("manifest_draft_hash", &claims.manifest_draft_hash, 32)?;
        check_len("ak_public", &claims.ak_public, AK_PUBLIC_BYTES)?;
        check_len(
            "key_exchange_public",
            &claims.key_exchange_public,
            KEY_EXCHANGE_PUBLIC_BYTES,
        )?;
        if claims.items.is_empty() {
            return Err(BundleError::NoItems);
        }
        if claims.items.len() > MAX_ITEMS {
            return Err(BundleError::TooManyItems(claims.items.len()));
        }
        Ok(Self {
            msg,
            claims,
            digest: crate::sha256(bytes),
        })
    }

    /// The kernel id the bundle claims (unverified; for routing and logging only).
    pub fn claimed_kernel_id(&self) -> &str {
        &self.claims.kernel_id
    }

    /// Checks the ES256 signature under the bundle's own AK.
    pub fn verify_signature(self) -> Result<VerifiedBundle, BundleError> {
        let ak = self.claims.ak_public.clone();
        self.msg
            .verify_signature(b"", |sig, tbs| verify_ak_signature(&ak, tbs, sig))
            .map_err(|_| BundleError::BadSignature)?;
        let nonce = Nonce::from_slice(&self.claims.nonce).ok_or(BundleError::FieldLength {
            field: "nonce",
            expected: NONCE_BYTES,
            actual: self.claims.nonce.len(),
        })?;
        let mut mdh = [0u8; 32];
        mdh.copy_from_slice(&self.claims.manifest_draft_hash);
        let binding = BindingValue::compute(&nonce, &self.claims.ak_public, &mdh);
        Ok(VerifiedBundle {
            claims: self.claims,
            nonce,
            manifest_draft_hash: mdh,
            binding,
            digest: self.digest,
        })
    }
}

/// A bundle whose AK signature verified. Items are not yet verified: that is appraisal.
#[derive(Debug, Clone)]
pub struct VerifiedBundle {
    claims: BundleClaims,
    nonce: Nonce,
    manifest_draft_hash: [u8; 32],
    binding: BindingValue,
    digest: [u8; 32],
}

impl VerifiedBundle {
    /// Kernel id.
    pub fn kernel_id(&self) -> &str {
        &self.claims.kernel_id
    }
    /// Claimed level (appraisal checks it against the platform evidence).
    pub fn level(&self) -> Level {
        self.claims.level
    }
    /// Verifier nonce.
    pub fn nonce(&self) -> &Nonce {
        &self.nonce
    }
    /// Manifest draft hash.
    pub fn manifest_draft_hash(&self) -> &[u8; 32] {
        &self.manifest_draft_hash
    }
    /// AK public key.
    pub fn ak_public(&self) -> &[u8] {
        &self.claims.ak_public
    }
    /// X25519 key-exchange public key.
    pub fn key_exchange_public(&self) -> &[u8] {
        &self.claims.key_exchange_public
    }
    /// Creation time (Unix ms).
    pub fn created_at_ms(&self) -> u64 {
        self.claims.created_at_ms
    }
    /// Evidence items.
    pub fn items(&self) -> &[EvidenceItem] {
        &self.claims.items
    }
    /// The binding value every item must carry.
    pub fn binding(&self) -> &BindingValue {
        &self.binding
    }
    /// SHA-256 of the bundle bytes.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::EvidenceKind;

    fn claims(ak: &AttestationKey) -> BundleClaims {
        BundleClaims {
            version: BUNDLE_VERSION,
            kernel_id: "k1".into(),
            level: Level::L1,
            nonce: vec![1; 32],
            manifest_draft_hash: vec![2; 32],
            ak_public: ak.public_key().to_vec(),
            key_exchange_public: vec![3; 32],
            created_at_ms: 1,
            items: vec![EvidenceItem {
                kind: EvidenceKind::Software,
                data: vec![4; 10],
            }],
        }
    }

    #[test]
    fn sign_parse_verify_round_trip() {
        let ak = AttestationKey::generate().unwrap();
        let bytes = sign_bundle(&claims(&ak), &ak).unwrap();
        let v = UnverifiedBundle::parse(&bytes)
            .unwrap()
            .verify_signature()
            .unwrap();
        assert_eq!(v.kernel_id(), "k1");
        assert_eq!(v.items().len(), 1);
        assert_eq!(v.digest(), &crate::sha256(&bytes));
    }

    #[test]
    fn every_bit_flip_and_truncation_is_refused() {
        let ak = AttestationKey::generate().unwrap();
        let bytes = sign_bundle(&claims(&ak), &ak).unwrap();
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut b = bytes.clone();
                b[i] ^= bit;
                let r = UnverifiedBundle::parse(&b).and_then(|u| u.verify_signature());
                assert!(r.is_err(), "flip at {i} accepted");
            }
        }
        for len in 0..bytes.len() {
            assert!(UnverifiedBundle::parse(&bytes[..len]).is_err());
        }
    }

    #[test]
    fn a_bundle_signed_by_another_key_is_refused() {
        let ak = AttestationKey::generate().unwrap();
        let other = AttestationKey::generate().unwrap();
        // Claims name `ak` but `other` signs.
        let bytes = sign_bundle(&claims(&ak), &other).unwrap();
        let r = UnverifiedBundle::parse(&bytes).unwrap().verify_signature();
        assert!(matches!(r, Err(BundleError::BadSignature)));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(0u8.., 0..512)) {
            let _ = UnverifiedBundle::parse(&bytes);
        }
    }
}
