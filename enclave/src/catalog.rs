//! KEE-1 P4 / KEE-2 D4: catalog authority. A kernel changes its Cedar policy set (its CAP
//! profile) only for a catalog update that a threshold of the publishers pinned in its
//! manifest signed (2-of-3 by default), whose version is strictly above every version it has
//! accepted (no rollback, no replay), and only at the update's `effective_date`, never before.
//!
//! Two phases, as D4 describes them:
//!
//! 1. **Stage** ([`CatalogAuthority::stage`]): the update is parsed, its signatures, fleet,
//!    version, effective date and policy text are checked, and it is held; the kernel
//!    acknowledges it (an ALE, and the answer to the caller). Nothing changes yet.
//! 2. **Activate** ([`CatalogAuthority::take_due`]): once `effective_date` has passed, the
//!    staged set replaces the live one in one atomic swap ([`crate::cedar::Engine::swap`]);
//!    every later decision and ALE carries the new `cap_profile_hash`.
//!
//! Threat model: the update arrives from the untrusted host (the proxy carries it), so it is
//! parsed once into typed values at the edge ([`SignedCatalogUpdate::parse`], fuzzed as
//! `catalog_update`) with every size bounded. A signature counts only if it is by a pinned
//! publisher key and verifies over `"soos-catalog-v1\0" ‖ update`; each publisher counts once.
//! The host can delay or drop an update, not forge, alter, replay or pre-date one. Rollback
//! protection is as strong as the kernel's memory of its highest version: it lives in the
//! kernel (and in `catalog.cbor` in its state directory, which the host can delete — with TPM
//! NV counters unavailable here, a rebooted kernel starts from its boot policy set again).

use crate::cedar::LoadedPolicies;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Domain separation for publisher signatures.
pub const SIGNATURE_CONTEXT: &[u8] = b"soos-catalog-v1\0";
/// Largest signed update accepted (the wire frame limit is larger).
pub const MAX_UPDATE_BYTES: usize = 256 * 1024;
/// Most signatures an update may carry.
pub const MAX_SIGNATURES: usize = 16;
/// Most updates staged at once.
pub const MAX_STAGED: usize = 8;
/// Latest effective date accepted, relative to now (a year): a far-future date is a typo or
/// an attempt to park an update.
pub const MAX_EFFECTIVE_AHEAD_MS: u64 = 366 * 24 * 3600 * 1000;

/// A catalog update as the publishers sign it (CBOR).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogUpdate {
    /// The fleet it is for (the manifest's `fleet_id`).
    pub fleet_id: String,
    /// Monotone version: every kernel refuses a version at or below one it has accepted.
    pub version: u64,
    /// Activation instant, RFC 3339 (`2027-01-01T00:00:00Z`); never activated before it.
    pub effective_date: String,
    /// Longest delay publishers allow between publication and every kernel staging it.
    pub max_propagation_window_seconds: u64,
    /// The Cedar policy set (the CAP profile) that becomes live.
    pub cap_profile: String,
}

/// One publisher's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublisherSignature {
    /// The publisher's Ed25519 public key (32 bytes).
    #[serde(with = "serde_bytes")]
    pub public_key: Vec<u8>,
    /// Ed25519 over [`SIGNATURE_CONTEXT`] ‖ `update`.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// A catalog update with its signatures: what travels (CBOR).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCatalogUpdate {
    /// CBOR of a [`CatalogUpdate`], the exact bytes signed.
    #[serde(with = "serde_bytes")]
    pub update: Vec<u8>,
    /// Publisher signatures over it.
    pub signatures: Vec<PublisherSignature>,
}

/// The message a publisher signs.
pub fn signed_message(update: &[u8]) -> Vec<u8> {
    let mut m = SIGNATURE_CONTEXT.to_vec();
    m.extend_from_slice(update);
    m
}

impl SignedCatalogUpdate {
    /// Parses the outside bytes: size limits and CBOR framing only; nothing is trusted yet.
    pub fn parse(bytes: &[u8]) -> Result<(Self, CatalogUpdate), CatalogError> {
        if bytes.len() > MAX_UPDATE_BYTES {
            return Err(CatalogError::TooLarge(bytes.len()));
        }
        let signed: SignedCatalogUpdate =
            wire::decode(bytes).map_err(|e| CatalogError::Malformed(e.to_string()))?;
        if signed.signatures.len() > MAX_SIGNATURES {
            return Err(CatalogError::Malformed(format!(
                "{} signatures, at most {MAX_SIGNATURES}",
                signed.signatures.len()
            )));
        }
        let update: CatalogUpdate =
            wire::decode(&signed.update).map_err(|e| CatalogError::Malformed(e.to_string()))?;
        Ok((signed, update))
    }

    /// Encodes for the wire.
    pub fn encode(&self) -> Result<Vec<u8>, CatalogError> {
        wire::encode(self).map_err(|e| CatalogError::Malformed(e.to_string()))
    }
}

/// Why an update was refused. Each variant names the check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// "catalog update is {0} bytes, more than the limit".
    #[error("catalog update is {0} bytes, more than the limit")]
    TooLarge(usize),
    /// "catalog update is malformed: {0}".
    #[error("catalog update is malformed: {0}")]
    Malformed(String),
    /// "no catalog publishers are pinned in this kernel's manifest".
    #[error("no catalog publishers are pinned in this kernel's manifest")]
    NoPublishers,
    /// "catalog update is for fleet `{got}`, this kernel is in `{expected}`".
    #[error("catalog update is for fleet `{got}`, this kernel is in `{expected}`")]
    WrongFleet {
        /// This kernel's fleet.
        expected: String,
        /// The update's.
        got: String,
    },
    /// "catalog update carries {valid} valid publisher signatures, {needed} are required".
    #[error("catalog update carries {valid} valid publisher signatures, {needed} are required")]
    NotEnoughSignatures {
        /// Distinct pinned publishers whose signature verified.
        valid: usize,
        /// The threshold.
        needed: usize,
    },
    /// "catalog version {version} is not above {highest}, the highest this kernel accepted (rollback or replay)".
    #[error("catalog version {version} is not above {highest}, the highest this kernel accepted (rollback or replay)")]
    Rollback {
        /// The update's version.
        version: u64,
        /// Highest version active or staged.
        highest: u64,
    },
    /// "effective_date `{0}` is not an rfc 3339 time".
    #[error("effective_date `{0}` is not an rfc 3339 time")]
    BadEffectiveDate(String),
    /// "effective_date `{0}` is more than a year ahead".
    #[error("effective_date `{0}` is more than a year ahead")]
    TooFarAhead(String),
    /// "cap profile is not a valid cedar policy set: {0}".
    #[error("cap profile is not a valid cedar policy set: {0}")]
    Policy(String),
    /// "{MAX_STAGED} updates are already staged".
    #[error("{MAX_STAGED} updates are already staged")]
    TooManyStaged,
    /// "catalog state lock poisoned".
    #[error("catalog state lock poisoned")]
    Poisoned,
}

/// A verified, staged update waiting for its effective date.
#[derive(Debug)]
pub struct Staged {
    /// Its version.
    pub version: u64,
    /// Activation instant (Unix ms).
    pub effective_at_ms: u64,
    /// The effective date as signed.
    pub effective_date: String,
    /// The parsed policy set and its `cap_profile_hash`.
    pub policies: LoadedPolicies,
}

/// What staging acknowledges (phase 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageAck {
    /// The staged version.
    pub version: u64,
    /// Its activation instant (Unix ms).
    pub effective_at_ms: u64,
    /// The `cap_profile_hash` it will activate.
    #[serde(with = "serde_bytes")]
    pub cap_profile_hash: Vec<u8>,
    /// Publishers whose signatures counted (hex public keys).
    pub publishers: Vec<String>,
}

#[derive(Debug, Default)]
struct State {
    /// Version of the live catalog (0: the boot policy set).
    active_version: u64,
    staged: BTreeMap<u64, Staged>,
}

/// The pinned publishers, the threshold, and the staged/active versions of one kernel.
#[derive(Debug)]
pub struct CatalogAuthority {
    fleet_id: String,
    publishers: Vec<[u8; 32]>,
    threshold: usize,
    state: Mutex<State>,
}

impl CatalogAuthority {
    /// Pins `publishers` (Ed25519 public keys) with a `threshold`. A threshold of 0, above
    /// the number of publishers, or duplicate keys are refused.
    pub fn new(
        fleet_id: impl Into<String>,
        publishers: Vec<[u8; 32]>,
        threshold: usize,
    ) -> Result<Self, CatalogError> {
        let mut sorted = publishers.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != publishers.len() {
            return Err(CatalogError::Malformed(
                "a publisher key is pinned twice".into(),
            ));
        }
        if !publishers.is_empty() && (threshold == 0 || threshold > publishers.len()) {
            return Err(CatalogError::Malformed(format!(
                "threshold {threshold} does not fit {} publishers",
                publishers.len()
            )));
        }
        Ok(Self {
            fleet_id: fleet_id.into(),
            publishers,
            threshold,
            state: Mutex::new(State::default()),
        })
    }

    /// The pinned publisher keys.
    pub fn publishers(&self) -> &[[u8; 32]] {
        &self.publishers
    }

    /// The threshold.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Version of the live catalog (0 = the boot policy set).
    pub fn active_version(&self) -> u64 {
        self.state.lock().map_or(0, |s| s.active_version)
    }

    /// Checks signatures and fleet; returns the update and the publishers that counted.
    fn verify(
        &self,
        signed: &SignedCatalogUpdate,
        update: &CatalogUpdate,
    ) -> Result<Vec<[u8; 32]>, CatalogError> {
        if self.publishers.is_empty() {
            return Err(CatalogError::NoPublishers);
        }
        if update.fleet_id != self.fleet_id {
            return Err(CatalogError::WrongFleet {
                expected: self.fleet_id.clone(),
                got: update.fleet_id.clone(),
            });
        }
        let message = signed_message(&signed.update);
        let mut counted: Vec<[u8; 32]> = Vec::new();
        for s in &signed.signatures {
            let Ok(key) = <[u8; 32]>::try_from(s.public_key.as_slice()) else {
                continue;
            };
            if !self.publishers.contains(&key) || counted.contains(&key) {
                continue;
            }
            let ok = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
                .verify(&message, &s.signature)
                .is_ok();
            if ok {
                counted.push(key);
            }
        }
        if counted.len() < self.threshold {
            return Err(CatalogError::NotEnoughSignatures {
                valid: counted.len(),
                needed: self.threshold,
            });
        }
        Ok(counted)
    }

    /// Phase 1: verifies `bytes` and stages the update for its effective date.
    pub fn stage(&self, bytes: &[u8], now_ms: u64) -> Result<StageAck, CatalogError> {
        let (signed, update) = SignedCatalogUpdate::parse(bytes)?;
        let counted = self.verify(&signed, &update)?;
        let effective_at_ms = attestation::time::rfc3339_to_unix(&update.effective_date)
            .and_then(|s| u64::try_from(s).ok())
            .and_then(|s| s.checked_mul(1000))
            .ok_or_else(|| CatalogError::BadEffectiveDate(update.effective_date.clone()))?;
        if effective_at_ms > now_ms.saturating_add(MAX_EFFECTIVE_AHEAD_MS) {
            return Err(CatalogError::TooFarAhead(update.effective_date.clone()));
        }
        let policies = LoadedPolicies::parse(&update.cap_profile)
            .map_err(|e| CatalogError::Policy(e.to_string()))?;
        let mut st = self.state.lock().map_err(|_| CatalogError::Poisoned)?;
        let highest = st
            .staged
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .max(st.active_version);
        if update.version <= highest {
            return Err(CatalogError::Rollback {
                version: update.version,
                highest,
            });
        }
        if st.staged.len() >= MAX_STAGED {
            return Err(CatalogError::TooManyStaged);
        }
        let ack = StageAck {
            version: update.version,
            effective_at_ms,
            cap_profile_hash: policies.hash().to_vec(),
            publishers: counted.iter().map(hex::encode).collect(),
        };
        st.staged.insert(
            update.version,
            Staged {
                version: update.version,
                effective_at_ms,
                effective_date: update.effective_date,
                policies,
            },
        );
        Ok(ack)
    }

    /// Phase 2: the newest staged update whose effective date has passed, if any; it becomes
    /// the active version, and older staged updates that are also due are superseded (dropped).
    pub fn take_due(&self, now_ms: u64) -> Option<Staged> {
        let mut st = self.state.lock().ok()?;
        let due: Vec<u64> = st
            .staged
            .values()
            .filter(|s| s.effective_at_ms <= now_ms)
            .map(|s| s.version)
            .collect();
        let newest = *due.last()?;
        let mut taken = None;
        for v in due {
            let s = st.staged.remove(&v);
            if v == newest {
                taken = s;
            }
        }
        if let Some(s) = &taken {
            st.active_version = s.version;
        }
        taken
    }

    /// The earliest effective date among staged updates (Unix ms).
    pub fn next_due_ms(&self) -> Option<u64> {
        let st = self.state.lock().ok()?;
        st.staged.values().map(|s| s.effective_at_ms).min()
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        reason = "test code: a failed expectation is a test failure"
    )]
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    const POLICY: &str = r#"permit(principal, action == Action::"read", resource);"#;

    fn key() -> Ed25519KeyPair {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    }

    fn public(k: &Ed25519KeyPair) -> [u8; 32] {
        k.public_key().as_ref().try_into().unwrap()
    }

    fn update(version: u64, date: &str) -> Vec<u8> {
        wire::encode(&CatalogUpdate {
            fleet_id: "fleet".into(),
            version,
            effective_date: date.into(),
            max_propagation_window_seconds: 60,
            cap_profile: POLICY.into(),
        })
        .unwrap()
    }

    fn signed(update: Vec<u8>, by: &[&Ed25519KeyPair]) -> Vec<u8> {
        let message = signed_message(&update);
        let signatures = by
            .iter()
            .map(|k| PublisherSignature {
                public_key: k.public_key().as_ref().to_vec(),
                signature: k.sign(&message).as_ref().to_vec(),
            })
            .collect();
        SignedCatalogUpdate { update, signatures }.encode().unwrap()
    }

    fn authority(keys: &[&Ed25519KeyPair]) -> CatalogAuthority {
        CatalogAuthority::new("fleet", keys.iter().map(|k| public(k)).collect(), 2).unwrap()
    }

    const NOW: u64 = 1_800_000_000_000; // 2027-01-15
    const PAST: &str = "2027-01-01T00:00:00Z";
    const SOON: &str = "2027-01-15T08:00:05Z"; // NOW + 5 s

    #[test]
    fn two_of_three_stages_and_activates_only_at_the_effective_date() {
        let (a, b, c) = (key(), key(), key());
        let auth = authority(&[&a, &b, &c]);
        let ack = auth
            .stage(&signed(update(1, SOON), &[&a, &c]), NOW)
            .unwrap();
        assert_eq!(ack.version, 1);
        assert_eq!(ack.effective_at_ms, NOW + 5_000);
        assert_eq!(ack.publishers.len(), 2);
        assert!(
            auth.take_due(NOW).is_none(),
            "never before the effective date"
        );
        assert!(auth.take_due(NOW + 4_999).is_none());
        assert_eq!(auth.active_version(), 0);
        let s = auth.take_due(NOW + 5_000).unwrap();
        assert_eq!(s.version, 1);
        assert_eq!(auth.active_version(), 1);
        assert!(auth.take_due(NOW + 10_000).is_none(), "activated once");
    }

    #[test]
    fn one_signature_a_repeated_publisher_or_a_foreign_key_is_not_enough() {
        let (a, b, c, stranger) = (key(), key(), key(), key());
        let auth = authority(&[&a, &b, &c]);
        let need = |valid| CatalogError::NotEnoughSignatures { valid, needed: 2 };
        assert_eq!(
            auth.stage(&signed(update(1, PAST), &[&a]), NOW),
            Err(need(1))
        );
        assert_eq!(
            auth.stage(&signed(update(1, PAST), &[&a, &a]), NOW),
            Err(need(1))
        );
        assert_eq!(
            auth.stage(&signed(update(1, PAST), &[&a, &stranger]), NOW),
            Err(need(1))
        );
        // A signature over other bytes does not count.
        let mut s: SignedCatalogUpdate = wire::decode(&signed(update(1, PAST), &[&a, &b])).unwrap();
        s.update = update(2, PAST);
        assert_eq!(auth.stage(&s.encode().unwrap(), NOW), Err(need(0)));
    }

    #[test]
    fn versions_only_go_up() {
        let (a, b, c) = (key(), key(), key());
        let auth = authority(&[&a, &b, &c]);
        auth.stage(&signed(update(5, PAST), &[&a, &b]), NOW)
            .unwrap();
        let replay = auth.stage(&signed(update(5, PAST), &[&a, &b]), NOW);
        assert_eq!(
            replay,
            Err(CatalogError::Rollback {
                version: 5,
                highest: 5
            })
        );
        assert!(auth.take_due(NOW).is_some());
        let old = auth.stage(&signed(update(4, PAST), &[&b, &c]), NOW);
        assert!(matches!(
            old,
            Err(CatalogError::Rollback { version: 4, .. })
        ));
        auth.stage(&signed(update(6, PAST), &[&b, &c]), NOW)
            .unwrap();
    }

    #[test]
    fn the_newest_due_update_wins_and_supersedes_older_due_ones() {
        let (a, b) = (key(), key());
        let auth = authority(&[&a, &b]);
        auth.stage(&signed(update(1, PAST), &[&a, &b]), NOW)
            .unwrap();
        auth.stage(&signed(update(2, PAST), &[&a, &b]), NOW)
            .unwrap();
        auth.stage(&signed(update(3, SOON), &[&a, &b]), NOW)
            .unwrap();
        assert_eq!(auth.take_due(NOW).unwrap().version, 2);
        assert_eq!(auth.next_due_ms(), Some(NOW + 5_000));
        assert_eq!(auth.take_due(NOW + 5_000).unwrap().version, 3);
    }

    #[test]
    fn wrong_fleet_bad_dates_and_bad_policies_are_refused() {
        let (a, b) = (key(), key());
        let auth = authority(&[&a, &b]);
        let mut u: CatalogUpdate = wire::decode(&update(1, PAST)).unwrap();
        u.fleet_id = "other".into();
        assert!(matches!(
            auth.stage(&signed(wire::encode(&u).unwrap(), &[&a, &b]), NOW),
            Err(CatalogError::WrongFleet { .. })
        ));
        assert!(matches!(
            auth.stage(&signed(update(1, "next tuesday"), &[&a, &b]), NOW),
            Err(CatalogError::BadEffectiveDate(_))
        ));
        assert!(matches!(
            auth.stage(&signed(update(1, "2099-01-01T00:00:00Z"), &[&a, &b]), NOW),
            Err(CatalogError::TooFarAhead(_))
        ));
        let mut u: CatalogUpdate = wire::decode(&update(1, PAST)).unwrap();
        u.cap_profile = "permit(".into();
        assert!(matches!(
            auth.stage(&signed(wire::encode(&u).unwrap(), &[&a, &b]), NOW),
            Err(CatalogError::Policy(_))
        ));
        let none = CatalogAuthority::new("fleet", Vec::new(), 2).unwrap();
        assert_eq!(
            none.stage(&signed(update(1, PAST), &[&a, &b]), NOW),
            Err(CatalogError::NoPublishers)
        );
        assert!(CatalogAuthority::new("fleet", vec![public(&a)], 2).is_err());
        assert!(CatalogAuthority::new("fleet", vec![public(&a), public(&a)], 1).is_err());
    }

    #[test]
    fn every_flip_and_truncation_of_a_signed_update_is_refused() {
        let (a, b) = (key(), key());
        let auth = authority(&[&a, &b]);
        let good = signed(update(1, PAST), &[&a, &b]);
        for i in 0..good.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = good.clone();
                bad[i] ^= bit;
                // A flip may still decode (e.g. inside a signature); it must never stage.
                assert!(auth.stage(&bad, NOW).is_err(), "flip at {i} staged");
            }
        }
        for n in 0..good.len() {
            assert!(auth.stage(&good[..n], NOW).is_err(), "truncation to {n}");
        }
        assert!(auth.stage(&good, NOW).is_ok());
    }
}
