//! Signed ceremony plans: what the verifier tells freshly attested kernels about a
//! distributed key generation (DKG) or a share refresh they are to run among themselves.
//!
//! A plan names the ceremony, its mode, the threshold t, every signer (kernel id and FROST
//! identifier), the reference digest the resulting shares are sealed under and, for a refresh,
//! the group key that must come out unchanged. The verifier signs it with its result-signing
//! key (Ed25519, context [`PLAN_SIGNATURE_CONTEXT`]); kernels check it under the key they pin,
//! so an untrusted host that stores the plan can neither lower the threshold nor add a signer.

use crate::sealing::SignerEntry;
use ring::signature;
use serde::{Deserialize, Serialize};

/// Format version of [`CeremonyPlan`].
pub const PLAN_VERSION: u32 = 1;
/// Domain separation of the plan signature.
pub const PLAN_SIGNATURE_CONTEXT: &[u8] = b"enclave-ceremony-plan-v1";
/// Name of the signed plan file in a kernel's state directory.
pub const PLAN_FILE: &str = "ceremony_plan.cbor";
/// Mode: a fresh DKG (new group key).
pub const MODE_DKG: &str = "dkg";
/// Mode: refresh every share (same group key, new shares).
pub const MODE_REFRESH: &str = "refresh";
/// Mode: repair one signer's lost share with the help of t others (same group key).
pub const MODE_REPAIR: &str = "repair";

/// Errors reading a plan.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// "plan does not decode".
    #[error("ceremony plan does not decode: {0}")]
    Format(String),
    /// "plan signature does not verify under the pinned verifier key".
    #[error("ceremony plan signature does not verify under the pinned verifier key")]
    Signature,
    /// "plan is not valid".
    #[error("ceremony plan is not valid: {0}")]
    Invalid(String),
}

/// What a ceremony is to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CeremonyPlan {
    /// [`PLAN_VERSION`].
    pub version: u32,
    /// Random id of the ceremony.
    pub ceremony_id: String,
    /// [`MODE_DKG`] or [`MODE_REFRESH`].
    pub mode: String,
    /// Threshold t.
    pub threshold: u16,
    /// Every signer, in order.
    pub signers: Vec<SignerEntry>,
    /// Reference digest the shares are sealed under.
    #[serde(with = "serde_bytes")]
    pub reference_digest: Vec<u8>,
    /// For a refresh: the group key that stays. Empty for a DKG.
    #[serde(with = "serde_bytes")]
    pub group_public_key: Vec<u8>,
    /// When the verifier issued it (Unix ms).
    pub issued_at_ms: u64,
    /// For a repair: the t signers that help (they keep their shares).
    #[serde(default)]
    pub helpers: Vec<String>,
    /// For a repair: the signer whose share is rebuilt.
    #[serde(default)]
    pub participant: String,
}

/// A plan and the verifier's signature over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPlan {
    /// CBOR of [`CeremonyPlan`].
    #[serde(with = "serde_bytes")]
    pub plan: Vec<u8>,
    /// Ed25519 signature over [`PLAN_SIGNATURE_CONTEXT`] ‖ `plan`.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// The bytes the verifier signs.
pub fn signed_message(plan: &[u8]) -> Vec<u8> {
    let mut m = PLAN_SIGNATURE_CONTEXT.to_vec();
    m.extend_from_slice(plan);
    m
}

impl CeremonyPlan {
    /// Checks the plan's own consistency: 2 <= t <= n <= 255, distinct signers, known mode.
    pub fn validate(&self) -> Result<(), PlanError> {
        if self.version != PLAN_VERSION {
            return Err(PlanError::Invalid(format!("version {}", self.version)));
        }
        let n = self.signers.len();
        if self.threshold < 2 || usize::from(self.threshold) > n || n > 255 {
            return Err(PlanError::Invalid(format!(
                "threshold {} of {n} signers (need 2 <= t <= n)",
                self.threshold
            )));
        }
        let mut ids: Vec<&str> = self.signers.iter().map(|s| s.kernel_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut idents: Vec<&[u8]> = self
            .signers
            .iter()
            .map(|s| s.identifier.as_slice())
            .collect();
        idents.sort_unstable();
        idents.dedup();
        if ids.len() != n || idents.len() != n {
            return Err(PlanError::Invalid("repeated signer".into()));
        }
        match self.mode.as_str() {
            MODE_DKG if self.group_public_key.is_empty() => Ok(()),
            MODE_REFRESH if self.group_public_key.len() == 32 => Ok(()),
            MODE_REPAIR if self.group_public_key.len() == 32 => {
                let named = |id: &String| self.signers.iter().any(|s| &s.kernel_id == id);
                let mut helpers = self.helpers.clone();
                helpers.sort_unstable();
                helpers.dedup();
                if helpers.len() != usize::from(self.threshold)
                    || !self.helpers.iter().all(named)
                    || !named(&self.participant)
                    || self.helpers.contains(&self.participant)
                {
                    return Err(PlanError::Invalid(
                        "a repair needs t distinct helpers, signers of the group, and another signer to repair".into(),
                    ));
                }
                Ok(())
            }
            m => Err(PlanError::Invalid(format!(
                "mode `{m}` with a {}-byte group key",
                self.group_public_key.len()
            ))),
        }
    }

    /// SHA-256 of the plan's CBOR: every ceremony message carries it.
    pub fn digest(&self) -> Result<[u8; 32], PlanError> {
        wire::encode(self)
            .map(|b| crate::sha256(&b))
            .map_err(|e| PlanError::Format(e.to_string()))
    }
}

impl SignedPlan {
    /// Decodes a plan file, checks the signature under `verifier_public` and the plan's
    /// consistency.
    pub fn open(bytes: &[u8], verifier_public: &[u8]) -> Result<CeremonyPlan, PlanError> {
        let s: SignedPlan = wire::decode(bytes).map_err(|e| PlanError::Format(e.to_string()))?;
        signature::UnparsedPublicKey::new(&signature::ED25519, verifier_public)
            .verify(&signed_message(&s.plan), &s.signature)
            .map_err(|_| PlanError::Signature)?;
        let plan: CeremonyPlan =
            wire::decode(&s.plan).map_err(|e| PlanError::Format(e.to_string()))?;
        plan.validate()?;
        Ok(plan)
    }

    /// Encodes it.
    pub fn encode(&self) -> Result<Vec<u8>, PlanError> {
        wire::encode(self).map_err(|e| PlanError::Format(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        reason = "test code: any failure should stop the run loudly"
    )]
    use super::*;
    use crate::result::ResultSigner;

    fn plan() -> CeremonyPlan {
        CeremonyPlan {
            version: PLAN_VERSION,
            ceremony_id: "c1".into(),
            mode: MODE_DKG.into(),
            threshold: 2,
            signers: (1u8..=3)
                .map(|i| SignerEntry {
                    kernel_id: format!("k{i}"),
                    identifier: vec![i; 32],
                })
                .collect(),
            reference_digest: vec![7; 32],
            group_public_key: Vec::new(),
            issued_at_ms: 1,
            helpers: Vec::new(),
            participant: String::new(),
        }
    }

    #[test]
    fn a_signed_plan_opens_only_untouched_and_under_its_key() {
        let (signer, _) = ResultSigner::generate().unwrap();
        let (other, _) = ResultSigner::generate().unwrap();
        let bytes = signer.sign_plan(&plan()).unwrap().encode().unwrap();
        assert_eq!(
            SignedPlan::open(&bytes, signer.public_key()).unwrap(),
            plan()
        );
        assert!(matches!(
            SignedPlan::open(&bytes, other.public_key()),
            Err(PlanError::Signature)
        ));
        // The host lowers the threshold of a 3-of-3 plan: the signature no longer holds.
        let mut p = plan();
        p.threshold = 3;
        let mut s = signer.sign_plan(&p).unwrap();
        let mut lowered = p.clone();
        lowered.threshold = 2;
        s.plan = wire::encode(&lowered).unwrap();
        assert!(matches!(
            SignedPlan::open(&s.encode().unwrap(), signer.public_key()),
            Err(PlanError::Signature)
        ));
    }

    #[test]
    fn inconsistent_plans_are_invalid() {
        let mut p = plan();
        p.threshold = 1;
        assert!(p.validate().is_err());
        let mut p = plan();
        p.threshold = 4;
        assert!(p.validate().is_err());
        let mut p = plan();
        p.signers[1].kernel_id = "k1".into();
        assert!(p.validate().is_err());
        let mut p = plan();
        p.mode = MODE_REFRESH.into();
        assert!(p.validate().is_err());
        p.group_public_key = vec![1; 32];
        assert!(p.validate().is_ok());
        assert!(plan().validate().is_ok());
    }
}
