//! Sealing of FROST key shares and release of the key that unseals them.
//!
//! * A share is sealed with AES-256-GCM under a fresh 32-byte wrap key; the AAD is
//!   `kernel_id ‖ reference_digest`, so a share opens only for the kernel it was made for and
//!   only under the reference values it was sealed against (DESIGN.md step 6).
//! * The verifier keeps the wrap keys and releases one only after an affirming appraisal,
//!   encrypted to the X25519 key the enclave put in its signed bundle: X25519 → HKDF-SHA256
//!   → AES-256-GCM. The untrusted host proxy in between sees ciphertext.

use ring::aead::{self, Aad, LessSafeKey, Nonce as AeadNonce, UnboundKey, NONCE_LEN};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// Bytes in a wrap key.
pub const WRAP_KEY_BYTES: usize = 32;
/// Format version of [`SealedShare`].
pub const SEALED_SHARE_VERSION: u32 = 1;
/// HKDF info string for key release.
const RELEASE_INFO: &[u8] = b"enclave-key-release-v1";

/// Errors sealing or unsealing.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// "random number generator failed".
    #[error("random number generator failed")]
    Rng,
    /// "sealed data does not open: wrong key, kernel id or reference digest, or tampered".
    #[error("sealed data does not open: wrong key, kernel id or reference digest, or tampered")]
    Open,
    /// "sealing failed".
    #[error("sealing failed")]
    Seal,
    /// "key agreement failed".
    #[error("key agreement failed")]
    Agreement,
    /// "sealed blob is {0} bytes, too short".
    #[error("sealed blob is {0} bytes, too short")]
    TooShort(usize),
    /// "sealed share file is not valid".
    #[error("sealed share file is not valid: {0}")]
    Format(String),
}

/// A FROST share sealed for one kernel, stored with that kernel's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedShare {
    /// [`SEALED_SHARE_VERSION`].
    pub version: u32,
    /// Kernel the share belongs to.
    pub kernel_id: String,
    /// Reference-value digest it was sealed against.
    #[serde(with = "serde_bytes")]
    pub reference_digest: Vec<u8>,
    /// 12-byte AES-GCM nonce ‖ ciphertext ‖ tag of the serialized FROST `KeyPackage`.
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
    /// Serialized FROST `PublicKeyPackage` (public: group key and verifying shares).
    #[serde(with = "serde_bytes")]
    pub public_key_package: Vec<u8>,
    /// Threshold t.
    pub threshold: u16,
    /// Every signer of the ceremony: kernel id and serialized FROST identifier.
    pub signers: Vec<SignerEntry>,
    /// The ceremony (trusted-dealer run, DKG or refresh) that made this share; empty in files
    /// written before it was recorded.
    #[serde(default)]
    pub ceremony_id: String,
}

/// One signer of a ceremony.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerEntry {
    /// Kernel id.
    pub kernel_id: String,
    /// Serialized FROST identifier.
    #[serde(with = "serde_bytes")]
    pub identifier: Vec<u8>,
}

impl SealedShare {
    /// Decodes a sealed share file.
    pub fn decode(bytes: &[u8]) -> Result<Self, SealError> {
        let s: Self = wire::decode(bytes).map_err(|e| SealError::Format(e.to_string()))?;
        if s.version != SEALED_SHARE_VERSION {
            return Err(SealError::Format(format!("version {}", s.version)));
        }
        Ok(s)
    }
    /// Encodes it.
    pub fn encode(&self) -> Result<Vec<u8>, SealError> {
        wire::encode(self).map_err(|e| SealError::Format(e.to_string()))
    }
}

/// The AAD of a sealed share.
pub fn share_aad(kernel_id: &str, reference_digest: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(kernel_id.len() + reference_digest.len());
    aad.extend_from_slice(kernel_id.as_bytes());
    aad.extend_from_slice(reference_digest);
    aad
}

/// AAD of a released wrap key: binds it to the kernel and the appraised bundle.
pub fn release_aad(kernel_id: &str, bundle_digest: &[u8]) -> Vec<u8> {
    let mut aad = b"enclave-wrap-key-release-v1".to_vec();
    aad.extend_from_slice(kernel_id.as_bytes());
    aad.extend_from_slice(bundle_digest);
    aad
}

/// A fresh random wrap key.
pub fn new_wrap_key() -> Result<[u8; WRAP_KEY_BYTES], SealError> {
    let mut k = [0u8; WRAP_KEY_BYTES];
    SystemRandom::new()
        .fill(&mut k)
        .map_err(|_| SealError::Rng)?;
    Ok(k)
}

/// AES-256-GCM seal: returns nonce ‖ ciphertext ‖ tag.
pub fn seal(
    key: &[u8; WRAP_KEY_BYTES],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let k =
        LessSafeKey::new(UnboundKey::new(&aead::AES_256_GCM, key).map_err(|_| SealError::Seal)?);
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| SealError::Rng)?;
    let mut buf = plaintext.to_vec();
    k.seal_in_place_append_tag(
        AeadNonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut buf,
    )
    .map_err(|_| SealError::Seal)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    Ok(out)
}

/// AES-256-GCM open of [`seal`]'s output.
pub fn open(key: &[u8; WRAP_KEY_BYTES], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    if sealed.len() < NONCE_LEN + aead::AES_256_GCM.tag_len() {
        return Err(SealError::TooShort(sealed.len()));
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let nonce = AeadNonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
    let k =
        LessSafeKey::new(UnboundKey::new(&aead::AES_256_GCM, key).map_err(|_| SealError::Open)?);
    let mut buf = ct.to_vec();
    let plain = k
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| SealError::Open)?;
    Ok(plain.to_vec())
}

struct OkmLen;
impl hkdf::KeyType for OkmLen {
    fn len(&self) -> usize {
        WRAP_KEY_BYTES
    }
}

fn derive(shared: &[u8], salt: &[u8]) -> Result<[u8; 32], SealError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(shared);
    let okm = prk
        .expand(&[RELEASE_INFO], OkmLen)
        .map_err(|_| SealError::Agreement)?;
    let mut out = [0u8; 32];
    okm.fill(&mut out).map_err(|_| SealError::Agreement)?;
    Ok(out)
}

/// Verifier side: encrypts `secret` to the enclave's X25519 `recipient` key. Returns the
/// ephemeral public key and the sealed secret. `aad` binds context (kernel id, bundle digest).
pub fn seal_to(
    recipient: &[u8],
    aad: &[u8],
    secret: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), SealError> {
    let rng = SystemRandom::new();
    let eph = EphemeralPrivateKey::generate(&X25519, &rng).map_err(|_| SealError::Agreement)?;
    let eph_pub = eph
        .compute_public_key()
        .map_err(|_| SealError::Agreement)?
        .as_ref()
        .to_vec();
    let key = agreement::agree_ephemeral(eph, &UnparsedPublicKey::new(&X25519, recipient), |s| {
        derive(s, &eph_pub)
    })
    .map_err(|_| SealError::Agreement)??;
    Ok((eph_pub.clone(), seal(&key, aad, secret)?))
}

/// Enclave side: the ephemeral X25519 key whose public half goes into the bundle.
pub struct KeyExchange {
    private: EphemeralPrivateKey,
    public: Vec<u8>,
}

impl std::fmt::Debug for KeyExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyExchange")
            .field("public", &hex::encode(&self.public))
            .finish_non_exhaustive()
    }
}

impl KeyExchange {
    /// Generates a key pair.
    pub fn generate() -> Result<Self, SealError> {
        let private = EphemeralPrivateKey::generate(&X25519, &SystemRandom::new())
            .map_err(|_| SealError::Agreement)?;
        let public = private
            .compute_public_key()
            .map_err(|_| SealError::Agreement)?
            .as_ref()
            .to_vec();
        Ok(Self { private, public })
    }
    /// The public key (32 bytes).
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }
    /// Opens what [`seal_to`] produced; consumes the key (single use).
    pub fn open(
        self,
        ephemeral_public: &[u8],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let key = agreement::agree_ephemeral(
            self.private,
            &UnparsedPublicKey::new(&X25519, ephemeral_public),
            |s| derive(s, ephemeral_public),
        )
        .map_err(|_| SealError::Agreement)??;
        open(&key, aad, sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_sealing_binds_kernel_and_reference() {
        let key = new_wrap_key().unwrap();
        let aad = share_aad("k1", &[7; 32]);
        let sealed = seal(&key, &aad, b"share").unwrap();
        assert_eq!(open(&key, &aad, &sealed).unwrap(), b"share");
        assert!(open(&key, &share_aad("k2", &[7; 32]), &sealed).is_err());
        assert!(open(&key, &share_aad("k1", &[8; 32]), &sealed).is_err());
        assert!(open(&new_wrap_key().unwrap(), &aad, &sealed).is_err());
        for i in 0..sealed.len() {
            let mut s = sealed.clone();
            s[i] ^= 1;
            assert!(open(&key, &aad, &s).is_err());
        }
        assert!(matches!(
            open(&key, &aad, &sealed[..10]),
            Err(SealError::TooShort(10))
        ));
    }

    #[test]
    fn key_release_round_trip() {
        let kx = KeyExchange::generate().unwrap();
        let (eph, sealed) = seal_to(kx.public_key(), b"ctx", b"wrapkey").unwrap();
        assert_eq!(kx.open(&eph, b"ctx", &sealed).unwrap(), b"wrapkey");
        let other = KeyExchange::generate().unwrap();
        assert!(other.open(&eph, b"ctx", &sealed).is_err());
        let kx = KeyExchange::generate().unwrap();
        let (eph, sealed) = seal_to(kx.public_key(), b"ctx", b"wrapkey").unwrap();
        assert!(kx.open(&eph, b"other ctx", &sealed).is_err());
    }
}
