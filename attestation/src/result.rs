//! Attestation results in the shape of IETF EAR (draft-ietf-rats-ear): a status per
//! trust-vector claim (affirming / warning / contraindicated), signed by the verifier as
//! COSE_Sign1 (EdDSA, Ed25519).

use crate::binding::Level;
use crate::cose::{self, CoseError};
use coset::iana;
use ring::rand::SystemRandom;
use ring::signature::{self, Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

/// EAR profile name.
pub const EAR_PROFILE: &str = "tag:github.com,2023:veraison/ear";
/// COSE content type of a signed result.
pub const RESULT_CONTENT_TYPE: &str = "application/ear+cbor";
/// Bytes of the verifier's Ed25519 public key.
pub const VERIFIER_PUBLIC_BYTES: usize = 32;

/// A trustworthiness tier (EAR §3.2; AR4SI tiers). Ordered from "no claim" to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// No claim made (value 0).
    None,
    /// Affirming (2).
    Affirming,
    /// Warning (32).
    Warning,
    /// Contraindicated (96).
    Contraindicated,
}

impl Tier {
    /// The AR4SI numeric value.
    pub fn ear_value(&self) -> u8 {
        match self {
            Tier::None => 0,
            Tier::Affirming => 2,
            Tier::Warning => 32,
            Tier::Contraindicated => 96,
        }
    }
    /// Lowercase name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Tier::None => "none",
            Tier::Affirming => "affirming",
            Tier::Warning => "warning",
            Tier::Contraindicated => "contraindicated",
        }
    }
}

/// Names of the AR4SI trust-vector claims used here.
pub mod claim {
    /// The attester is the instance it claims to be; evidence is fresh and bound.
    pub const INSTANCE_IDENTITY: &str = "instance-identity";
    /// Configuration (policy bits, debug, TCB) is acceptable.
    pub const CONFIGURATION: &str = "configuration";
    /// Measured executables match reference values.
    pub const EXECUTABLES: &str = "executables";
    /// The hardware / platform level is acceptable.
    pub const HARDWARE: &str = "hardware";
}

/// One trust-vector claim with the reason the verifier gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustClaim {
    /// AR4SI claim name (see [`claim`]).
    pub claim: String,
    /// Tier.
    pub tier: Tier,
    /// Why.
    pub reason: String,
}

/// The attestation result claims set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationResult {
    /// [`EAR_PROFILE`].
    pub eat_profile: String,
    /// When issued (Unix ms).
    pub issued_at_ms: u64,
    /// After this the result is stale and must not be relied on (Unix ms).
    pub expires_at_ms: u64,
    /// Verifier identity (name and build).
    pub verifier_id: String,
    /// Appraisal policy id.
    pub policy_id: String,
    /// Kernel the result is about.
    pub kernel_id: String,
    /// Level appraised.
    pub level: Level,
    /// Overall status: the worst tier among claims; `none` never counts as affirming.
    pub status: Tier,
    /// Trust vector.
    pub trust_vector: Vec<TrustClaim>,
    /// Nonce the evidence answered.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// SHA-256 of the evidence bundle.
    #[serde(with = "serde_bytes")]
    pub bundle_digest: Vec<u8>,
    /// SHA-256 of the AK public key.
    #[serde(with = "serde_bytes")]
    pub ak_public_digest: Vec<u8>,
    /// Digest of the reference values the appraisal used.
    #[serde(with = "serde_bytes")]
    pub reference_digest: Vec<u8>,
}

impl AttestationResult {
    /// Overall status of a trust vector: the worst tier present; a vector with no claims at
    /// all is contraindicated (fail closed).
    pub fn overall(claims: &[TrustClaim]) -> Tier {
        claims
            .iter()
            .map(|c| c.tier)
            .filter(|t| *t != Tier::None)
            .max()
            .unwrap_or(Tier::Contraindicated)
    }
    /// True when the result is affirming and not expired at `now_ms`.
    pub fn is_affirming_at(&self, now_ms: u64) -> bool {
        self.status == Tier::Affirming && now_ms <= self.expires_at_ms
    }
}

/// Errors signing or verifying a result.
#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    /// The COSE envelope is wrong.
    #[error("result envelope rejected")]
    Envelope(#[from] CoseError),
    /// "result claims are not valid cbor".
    #[error("result claims are not valid cbor")]
    Claims(#[source] wire::CodecError),
    /// "result signature does not verify under the verifier key".
    #[error("result signature does not verify under the verifier key")]
    BadSignature,
    /// "result profile is not ear".
    #[error("result profile is not `{EAR_PROFILE}`")]
    Profile,
    /// "could not create or load the verifier key".
    #[error("could not create or load the verifier key")]
    Key,
    /// "could not encode the result".
    #[error("could not encode the result: {0}")]
    Encode(String),
}

/// The verifier's result-signing key (Ed25519).
pub struct ResultSigner {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for ResultSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultSigner")
            .field("public", &hex::encode(self.public_key()))
            .finish_non_exhaustive()
    }
}

impl ResultSigner {
    /// Generates a new key; returns it with its PKCS#8 encoding for storage.
    pub fn generate() -> Result<(Self, Vec<u8>), ResultError> {
        let pkcs8 =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| ResultError::Key)?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| ResultError::Key)?;
        Ok((Self { pair }, pkcs8.as_ref().to_vec()))
    }
    /// Loads a stored PKCS#8 key.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, ResultError> {
        Ed25519KeyPair::from_pkcs8(pkcs8)
            .map(|pair| Self { pair })
            .map_err(|_| ResultError::Key)
    }
    /// The public key (32 bytes).
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }
    /// Signs a ceremony plan (Ed25519 over [`crate::plan::signed_message`]).
    pub fn sign_plan(
        &self,
        plan: &crate::plan::CeremonyPlan,
    ) -> Result<crate::plan::SignedPlan, ResultError> {
        let bytes = wire::encode(plan).map_err(|e| ResultError::Encode(e.to_string()))?;
        let signature = self
            .pair
            .sign(&crate::plan::signed_message(&bytes))
            .as_ref()
            .to_vec();
        Ok(crate::plan::SignedPlan {
            plan: bytes,
            signature,
        })
    }
    /// Signs a result into COSE_Sign1 bytes.
    pub fn sign(&self, result: &AttestationResult) -> Result<Vec<u8>, ResultError> {
        let payload = wire::encode(result).map_err(|e| ResultError::Encode(e.to_string()))?;
        let signed: Result<_, std::convert::Infallible> = cose::sign1(
            iana::Algorithm::EdDSA,
            RESULT_CONTENT_TYPE,
            payload,
            |tbs| Ok(self.pair.sign(tbs).as_ref().to_vec()),
        );
        match signed {
            Ok(inner) => inner.map_err(ResultError::Envelope),
            Err(never) => match never {},
        }
    }
}

/// Verifies a signed result under the verifier's public key and returns its claims.
pub fn verify_result(
    bytes: &[u8],
    verifier_public: &[u8],
) -> Result<AttestationResult, ResultError> {
    let (msg, payload) = cose::open1(bytes, iana::Algorithm::EdDSA, "EdDSA", RESULT_CONTENT_TYPE)?;
    msg.verify_signature(b"", |sig, tbs| {
        signature::UnparsedPublicKey::new(&signature::ED25519, verifier_public).verify(tbs, sig)
    })
    .map_err(|_| ResultError::BadSignature)?;
    let result: AttestationResult = wire::decode(&payload).map_err(ResultError::Claims)?;
    if result.eat_profile != EAR_PROFILE {
        return Err(ResultError::Profile);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AttestationResult {
        let tv = vec![
            TrustClaim {
                claim: claim::INSTANCE_IDENTITY.into(),
                tier: Tier::Affirming,
                reason: "ok".into(),
            },
            TrustClaim {
                claim: claim::HARDWARE.into(),
                tier: Tier::None,
                reason: "software".into(),
            },
        ];
        AttestationResult {
            eat_profile: EAR_PROFILE.into(),
            issued_at_ms: 10,
            expires_at_ms: 20,
            verifier_id: "v".into(),
            policy_id: "p".into(),
            kernel_id: "k".into(),
            level: Level::L1,
            status: AttestationResult::overall(&tv),
            trust_vector: tv,
            nonce: vec![1; 32],
            bundle_digest: vec![2; 32],
            ak_public_digest: vec![3; 32],
            reference_digest: vec![4; 32],
        }
    }

    #[test]
    fn overall_is_worst_and_fails_closed() {
        assert_eq!(AttestationResult::overall(&[]), Tier::Contraindicated);
        let r = sample();
        assert_eq!(r.status, Tier::Affirming);
        assert!(r.is_affirming_at(20));
        assert!(!r.is_affirming_at(21));
        let mut tv = r.trust_vector.clone();
        tv.push(TrustClaim {
            claim: claim::EXECUTABLES.into(),
            tier: Tier::Warning,
            reason: "w".into(),
        });
        assert_eq!(AttestationResult::overall(&tv), Tier::Warning);
    }

    #[test]
    fn sign_verify_and_tamper() {
        let (signer, pkcs8) = ResultSigner::generate().unwrap();
        let again = ResultSigner::from_pkcs8(&pkcs8).unwrap();
        assert_eq!(signer.public_key(), again.public_key());
        let bytes = signer.sign(&sample()).unwrap();
        assert_eq!(
            verify_result(&bytes, signer.public_key()).unwrap(),
            sample()
        );
        let (other, _) = ResultSigner::generate().unwrap();
        assert!(verify_result(&bytes, other.public_key()).is_err());
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x04;
            assert!(
                verify_result(&b, signer.public_key()).is_err(),
                "flip at {i}"
            );
        }
    }
}
