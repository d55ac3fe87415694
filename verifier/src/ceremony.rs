//! FROST key ceremonies.
//!
//! * [`plan_dkg`] (production): the verifier registers a fresh wrap key per kernel and writes a
//!   signed [`CeremonyPlan`] into each kernel's state directory; the kernels, once attested,
//!   run the DKG among themselves (`enclave::dkg`) and seal their own shares under the wrap
//!   key released to them. No party ever holds the group secret.
//! * [`plan_refresh`]: a signed plan that has the same kernels refresh their shares (same group
//!   key, same threshold, new shares).
//! * [`run`] (development only): a trusted dealer in this process generates the key and seals
//!   the shares; the dealer saw every share.

use crate::store::{Store, StoreError};
use attestation::appraisal::AppraisalPolicy;
use attestation::plan::{
    CeremonyPlan, MODE_DKG, MODE_REFRESH, MODE_REPAIR, PLAN_FILE, PLAN_VERSION,
};
use attestation::sealing::{self, SealedShare, SignerEntry, SEALED_SHARE_VERSION};
use frost_ed25519 as frost;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// File name of a kernel's sealed share inside its state directory.
pub const SEALED_SHARE_FILE: &str = "sealed_share.cbor";

/// Errors of the ceremony.
#[derive(Debug, thiserror::Error)]
pub enum CeremonyError {
    /// "threshold {t} of {n} signers is not allowed: need 2 <= t <= n".
    #[error("threshold {t} of {n} signers is not allowed: need 2 <= t <= n")]
    Threshold {
        /// Threshold.
        t: u16,
        /// Signers.
        n: u16,
    },
    /// "{given} kernel ids given for {n} signers".
    #[error("{given} kernel ids given for {n} signers")]
    KernelCount {
        /// Ids given.
        given: usize,
        /// Signers asked for.
        n: u16,
    },
    /// "kernel id `{0}` is invalid or repeated".
    #[error("kernel id `{0}` is invalid or repeated")]
    KernelId(String),
    /// "frost key generation failed".
    #[error("frost key generation failed: {0}")]
    Frost(String),
    /// "sealing a share failed".
    #[error("sealing a share failed")]
    Seal(#[from] sealing::SealError),
    /// "could not write `{path}`".
    #[error("could not write `{path}`")]
    Write {
        /// Path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// State store failure.
    #[error("verifier state")]
    Store(#[from] StoreError),
}

/// What a ceremony produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CeremonyOutput {
    /// Random id of this ceremony.
    pub ceremony_id: String,
    /// Threshold t.
    pub threshold: u16,
    /// Signers n.
    pub signers: u16,
    /// The group's Ed25519 public key (hex).
    pub group_public_key: String,
    /// Where each kernel's sealed share was written.
    pub sealed_shares: Vec<(String, PathBuf)>,
    /// Reference digest the shares are sealed under (hex).
    pub reference_digest: String,
}

fn valid_kernel_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !id.starts_with('.')
}

/// What a plan run produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanOutput {
    /// Random id of the ceremony.
    pub ceremony_id: String,
    /// `dkg` or `refresh`.
    pub mode: String,
    /// Threshold t.
    pub threshold: u16,
    /// Signers n.
    pub signers: u16,
    /// For a refresh, the group key that stays (hex); empty for a DKG.
    pub group_public_key: String,
    /// Where each kernel's signed plan was written.
    pub plans: Vec<(String, PathBuf)>,
}

fn write_plans(
    signer: &attestation::result::ResultSigner,
    plan: &CeremonyPlan,
    state_root: &Path,
) -> Result<Vec<(String, PathBuf)>, CeremonyError> {
    let signed = signer
        .sign_plan(plan)
        .map_err(|e| CeremonyError::Frost(e.to_string()))?;
    let bytes = signed
        .encode()
        .map_err(|e| CeremonyError::Frost(e.to_string()))?;
    let mut out = Vec::new();
    for s in &plan.signers {
        let dir = state_root.join(&s.kernel_id);
        std::fs::create_dir_all(&dir).map_err(|source| CeremonyError::Write {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join(PLAN_FILE);
        std::fs::write(&path, &bytes).map_err(|source| CeremonyError::Write {
            path: path.display().to_string(),
            source,
        })?;
        out.push((s.kernel_id.clone(), path));
    }
    Ok(out)
}

fn check_ids(threshold: u16, kernel_ids: &[String]) -> Result<u16, CeremonyError> {
    let n = u16::try_from(kernel_ids.len()).unwrap_or(u16::MAX);
    if threshold < 2 || threshold > n || n > 255 {
        return Err(CeremonyError::Threshold { t: threshold, n });
    }
    let mut seen = BTreeSet::new();
    for id in kernel_ids {
        if !valid_kernel_id(id) || !seen.insert(id.as_str()) {
            return Err(CeremonyError::KernelId(id.clone()));
        }
    }
    Ok(n)
}

/// Plans a DKG among `kernel_ids` (t = `threshold`): registers a fresh wrap key per kernel
/// (under `policy`'s reference digest; no group key yet), removes any earlier share from each
/// kernel's state directory and writes the plan, signed with the verifier's result key, as
/// `<state_root>/<kernel>/ceremony_plan.cbor`. Identifiers derive from the kernel ids.
pub fn plan_dkg(
    store: &Store,
    policy: &AppraisalPolicy,
    signer: &attestation::result::ResultSigner,
    threshold: u16,
    kernel_ids: &[String],
    state_root: &Path,
) -> Result<PlanOutput, CeremonyError> {
    let n = check_ids(threshold, kernel_ids)?;
    let mut signers = Vec::new();
    for id in kernel_ids {
        let ident = frost::Identifier::derive(id.as_bytes())
            .map_err(|e| CeremonyError::Frost(e.to_string()))?;
        signers.push(SignerEntry {
            kernel_id: id.clone(),
            identifier: ident.serialize(),
        });
    }
    let reference_digest = policy.reference_digest();
    let ceremony_id = hex::encode(sealing::new_wrap_key()?.get(..8).unwrap_or_default());
    let now = attestation::now_ms();
    let plan = CeremonyPlan {
        version: PLAN_VERSION,
        ceremony_id: ceremony_id.clone(),
        mode: MODE_DKG.into(),
        threshold,
        signers,
        reference_digest: reference_digest.to_vec(),
        group_public_key: Vec::new(),
        issued_at_ms: now,
        helpers: Vec::new(),
        participant: String::new(),
    };
    let mut regs = Vec::new();
    for id in kernel_ids {
        regs.push(crate::store::Registration {
            kernel_id: id.clone(),
            ceremony_id: ceremony_id.clone(),
            wrap_key: sealing::new_wrap_key()?,
            reference_digest: reference_digest.to_vec(),
            group_public_key: Vec::new(),
        });
        let old = state_root.join(id).join(SEALED_SHARE_FILE);
        if old.exists() {
            std::fs::remove_file(&old).map_err(|source| CeremonyError::Write {
                path: old.display().to_string(),
                source,
            })?;
        }
    }
    store.register_kernels(&regs, now)?;
    let plans = write_plans(signer, &plan, state_root)?;
    Ok(PlanOutput {
        ceremony_id,
        mode: MODE_DKG.into(),
        threshold,
        signers: n,
        group_public_key: String::new(),
        plans,
    })
}

/// Plans a refresh of every share of `kernel`'s group (its sealed share under `state_root`
/// names the signers): same signers, same threshold (a refresh never changes it, and each
/// kernel checks the plan's threshold against its sealed key package), same group key. Wrap
/// keys stay; each kernel reseals its new share.
pub fn plan_refresh(
    store: &Store,
    signer: &attestation::result::ResultSigner,
    kernel: &str,
    state_root: &Path,
) -> Result<PlanOutput, CeremonyError> {
    let first = &kernel.to_string();
    let path = state_root.join(first).join(SEALED_SHARE_FILE);
    let bytes = std::fs::read(&path).map_err(|source| CeremonyError::Write {
        path: path.display().to_string(),
        source,
    })?;
    let sealed = SealedShare::decode(&bytes)?;
    let ids: Vec<String> = sealed.signers.iter().map(|s| s.kernel_id.clone()).collect();
    let n = check_ids(sealed.threshold, &ids)?;
    let public = frost::keys::PublicKeyPackage::deserialize(&sealed.public_key_package)
        .map_err(|e| CeremonyError::Frost(e.to_string()))?;
    let group_key = public
        .verifying_key()
        .serialize()
        .map_err(|e| CeremonyError::Frost(e.to_string()))?;
    let reference_digest = store
        .wrap_key(first)?
        .map(|r| r.reference_digest)
        .ok_or_else(|| CeremonyError::KernelId(first.clone()))?;
    let ceremony_id = hex::encode(sealing::new_wrap_key()?.get(..8).unwrap_or_default());
    let plan = CeremonyPlan {
        version: PLAN_VERSION,
        ceremony_id: ceremony_id.clone(),
        mode: MODE_REFRESH.into(),
        threshold: sealed.threshold,
        signers: sealed.signers.clone(),
        reference_digest,
        group_public_key: group_key.clone(),
        issued_at_ms: attestation::now_ms(),
        helpers: Vec::new(),
        participant: String::new(),
    };
    let plans = write_plans(signer, &plan, state_root)?;
    Ok(PlanOutput {
        ceremony_id,
        mode: MODE_REFRESH.into(),
        threshold: sealed.threshold,
        signers: n,
        group_public_key: hex::encode(group_key),
        plans,
    })
}

/// Plans the repair of `participant`'s share (a replaced kernel under the same id, its state
/// lost) with the help of `helpers` (exactly t other signers, who keep their shares):
/// `frost-ed25519` `keys::repairable`. Registers a fresh wrap key for the participant, removes
/// whatever share file it had, and writes a signed `repair` plan for the helpers and the
/// participant. Same group key, same threshold; no new ceremony for anyone else.
pub fn plan_repair(
    store: &Store,
    signer: &attestation::result::ResultSigner,
    participant: &str,
    helpers: &[String],
    state_root: &Path,
) -> Result<PlanOutput, CeremonyError> {
    let first = helpers
        .first()
        .ok_or_else(|| CeremonyError::KernelId(String::new()))?;
    let path = state_root.join(first).join(SEALED_SHARE_FILE);
    let bytes = std::fs::read(&path).map_err(|source| CeremonyError::Write {
        path: path.display().to_string(),
        source,
    })?;
    let sealed = SealedShare::decode(&bytes)?;
    let public = frost::keys::PublicKeyPackage::deserialize(&sealed.public_key_package)
        .map_err(|e| CeremonyError::Frost(e.to_string()))?;
    let group_key = public
        .verifying_key()
        .serialize()
        .map_err(|e| CeremonyError::Frost(e.to_string()))?;
    let reference_digest = store
        .wrap_key(first)?
        .map(|r| r.reference_digest)
        .ok_or_else(|| CeremonyError::KernelId(first.clone()))?;
    let ceremony_id = hex::encode(sealing::new_wrap_key()?.get(..8).unwrap_or_default());
    let plan = CeremonyPlan {
        version: PLAN_VERSION,
        ceremony_id: ceremony_id.clone(),
        mode: MODE_REPAIR.into(),
        threshold: sealed.threshold,
        signers: sealed.signers.clone(),
        reference_digest: reference_digest.clone(),
        group_public_key: group_key.clone(),
        issued_at_ms: attestation::now_ms(),
        helpers: helpers.to_vec(),
        participant: participant.to_string(),
    };
    plan.validate()
        .map_err(|e| CeremonyError::Frost(e.to_string()))?;
    store.register_kernel(
        participant,
        &ceremony_id,
        &sealing::new_wrap_key()?,
        &reference_digest,
        &group_key,
        attestation::now_ms(),
    )?;
    let old = state_root.join(participant).join(SEALED_SHARE_FILE);
    if old.exists() {
        std::fs::remove_file(&old).map_err(|source| CeremonyError::Write {
            path: old.display().to_string(),
            source,
        })?;
    }
    let mut members = plan.clone();
    members
        .signers
        .retain(|s| s.kernel_id == participant || helpers.contains(&s.kernel_id));
    let signed = signer
        .sign_plan(&plan)
        .map_err(|e| CeremonyError::Frost(e.to_string()))?
        .encode()
        .map_err(|e| CeremonyError::Frost(e.to_string()))?;
    let mut plans = Vec::new();
    for s in &members.signers {
        let dir = state_root.join(&s.kernel_id);
        std::fs::create_dir_all(&dir).map_err(|source| CeremonyError::Write {
            path: dir.display().to_string(),
            source,
        })?;
        let p = dir.join(PLAN_FILE);
        std::fs::write(&p, &signed).map_err(|source| CeremonyError::Write {
            path: p.display().to_string(),
            source,
        })?;
        plans.push((s.kernel_id.clone(), p));
    }
    Ok(PlanOutput {
        ceremony_id,
        mode: MODE_REPAIR.into(),
        threshold: sealed.threshold,
        signers: u16::try_from(sealed.signers.len()).unwrap_or(u16::MAX),
        group_public_key: hex::encode(group_key),
        plans,
    })
}

/// Development only: a trusted dealer. Runs the ceremony: generates the key, seals each share for its kernel under
/// `policy`'s reference digest, writes `<state_root>/<kernel>/sealed_share.cbor`, and
/// registers each kernel's wrap key in `store`.
pub fn run(
    store: &Store,
    policy: &AppraisalPolicy,
    threshold: u16,
    kernel_ids: &[String],
    state_root: &Path,
) -> Result<CeremonyOutput, CeremonyError> {
    let n = u16::try_from(kernel_ids.len()).unwrap_or(u16::MAX);
    if threshold < 2 || threshold > n {
        return Err(CeremonyError::Threshold { t: threshold, n });
    }
    let mut seen = BTreeSet::new();
    for id in kernel_ids {
        if !valid_kernel_id(id) || !seen.insert(id.as_str()) {
            return Err(CeremonyError::KernelId(id.clone()));
        }
    }
    let rng = rand::rngs::OsRng;
    let (shares, public) =
        frost::keys::generate_with_dealer(n, threshold, frost::keys::IdentifierList::Default, rng)
            .map_err(|e| CeremonyError::Frost(e.to_string()))?;
    let public_bytes = public
        .serialize()
        .map_err(|e| CeremonyError::Frost(e.to_string()))?;
    let group_key = public
        .verifying_key()
        .serialize()
        .map_err(|e| CeremonyError::Frost(e.to_string()))?;
    let reference_digest = policy.reference_digest();
    let ceremony_id = hex::encode(sealing::new_wrap_key()?.get(..8).unwrap_or_default());

    // Identifiers come back sorted; pair them with kernel ids in the order given.
    let pairs: Vec<(&String, (&frost::Identifier, &frost::keys::SecretShare))> =
        kernel_ids.iter().zip(shares.iter()).collect();
    let signers: Vec<SignerEntry> = pairs
        .iter()
        .map(|(k, (id, _))| SignerEntry {
            kernel_id: (*k).clone(),
            identifier: id.serialize(),
        })
        .collect();

    let mut written = Vec::new();
    let now = attestation::now_ms();
    for (kernel_id, (_, share)) in pairs {
        let key_package = frost::keys::KeyPackage::try_from(share.clone())
            .map_err(|e| CeremonyError::Frost(e.to_string()))?;
        let plain = key_package
            .serialize()
            .map_err(|e| CeremonyError::Frost(e.to_string()))?;
        let wrap_key = sealing::new_wrap_key()?;
        let aad = sealing::share_aad(kernel_id, &reference_digest);
        let sealed = SealedShare {
            version: SEALED_SHARE_VERSION,
            kernel_id: kernel_id.clone(),
            reference_digest: reference_digest.to_vec(),
            sealed: sealing::seal(&wrap_key, &aad, &plain)?,
            public_key_package: public_bytes.clone(),
            threshold,
            signers: signers.clone(),
            ceremony_id: ceremony_id.clone(),
        };
        let dir = state_root.join(kernel_id);
        std::fs::create_dir_all(&dir).map_err(|source| CeremonyError::Write {
            path: dir.display().to_string(),
            source,
        })?;
        // A dealt share replaces whatever ceremony was planned before.
        let stale_plan = dir.join(PLAN_FILE);
        if stale_plan.exists() {
            std::fs::remove_file(&stale_plan).map_err(|source| CeremonyError::Write {
                path: stale_plan.display().to_string(),
                source,
            })?;
        }
        let path = dir.join(SEALED_SHARE_FILE);
        std::fs::write(&path, sealed.encode()?).map_err(|source| CeremonyError::Write {
            path: path.display().to_string(),
            source,
        })?;
        store.register_kernel(
            kernel_id,
            &ceremony_id,
            &wrap_key,
            &reference_digest,
            &group_key,
            now,
        )?;
        written.push((kernel_id.clone(), path));
    }
    Ok(CeremonyOutput {
        ceremony_id,
        threshold,
        signers: n,
        group_public_key: hex::encode(&group_key),
        sealed_shares: written,
        reference_digest: hex::encode(reference_digest),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AppraisalPolicy {
        AppraisalPolicy::from_json(
            r#"{"policy_id":"dev","allowed_levels":["KEE1-L1"],"max_evidence_age_ms":60000}"#,
        )
        .unwrap()
    }

    #[test]
    fn ceremony_seals_shares_that_open_only_with_their_wrap_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("v.db")).unwrap();
        let ids: Vec<String> = ["k1", "k2", "k3"].iter().map(|s| s.to_string()).collect();
        let out = run(&store, &policy(), 2, &ids, dir.path()).unwrap();
        assert_eq!(out.group_public_key.len(), 64);
        for id in &ids {
            let bytes = std::fs::read(dir.path().join(id).join(SEALED_SHARE_FILE)).unwrap();
            let sealed = SealedShare::decode(&bytes).unwrap();
            let rec = store.wrap_key(id).unwrap().unwrap();
            let aad = sealing::share_aad(id, &rec.reference_digest);
            let plain = sealing::open(&rec.wrap_key, &aad, &sealed.sealed).unwrap();
            let kp = frost::keys::KeyPackage::deserialize(&plain).unwrap();
            assert_eq!(
                hex::encode(kp.verifying_key().serialize().unwrap()),
                out.group_public_key
            );
            // Another kernel's wrap key does not open it.
            let other = store
                .wrap_key(if id == "k1" { "k2" } else { "k1" })
                .unwrap()
                .unwrap();
            assert!(sealing::open(&other.wrap_key, &aad, &sealed.sealed).is_err());
        }
    }

    #[test]
    fn bad_parameters_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("v.db")).unwrap();
        let ids: Vec<String> = ["k1", "k2", "k3"].iter().map(|s| s.to_string()).collect();
        assert!(matches!(
            run(&store, &policy(), 1, &ids, dir.path()),
            Err(CeremonyError::Threshold { .. })
        ));
        assert!(matches!(
            run(&store, &policy(), 4, &ids, dir.path()),
            Err(CeremonyError::Threshold { .. })
        ));
        let dup: Vec<String> = ["k1", "k1", "k3"].iter().map(|s| s.to_string()).collect();
        assert!(matches!(
            run(&store, &policy(), 2, &dup, dir.path()),
            Err(CeremonyError::KernelId(_))
        ));
        let bad: Vec<String> = ["../x", "k2", "k3"].iter().map(|s| s.to_string()).collect();
        assert!(matches!(
            run(&store, &policy(), 2, &bad, dir.path()),
            Err(CeremonyError::KernelId(_))
        ));
    }
}
