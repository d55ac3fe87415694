//! Repair of one signer's lost share by t helpers (FROST `keys::repairable`), over the
//! ceremony messages of [`crate::dkg`]: a replaced kernel gets its share back under the same
//! group key without a new ceremony for anyone else.

use crate::boot::BootError;
use crate::dkg::{
    ident, push_all, round1_payload, round2_aad, round2_payload, Ceremony, Sealed,
    CEREMONY_TIMEOUT_MS,
};
use crate::frost::make_auth;
use crate::kernel::{events, Kernel};
use attestation::plan::CeremonyPlan;
use attestation::sealing::{self, KeyExchange};
use frost_ed25519 as frost;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wire::msg::{DkgRound1Params, DkgRound2Params, Request};

/// Runs a repair plan (`frost-ed25519` `keys::repairable`): the t helpers (`mine` = their
/// current share) each split a delta for the others, sum what they receive into a sigma and
/// seal it to the repaired signer, which (`mine` = `None`) rebuilds its share from the t
/// sigmas and the helpers' public key package. Messages travel as in a DKG: round 1 carries
/// the public key package (helpers) and the per-peer X25519 keys; round 2 the sealed deltas
/// (helper to helper) and sigmas (helper to the repaired signer). Returns the rebuilt share
/// to the repaired signer, `None` to a helper.
pub async fn repair(
    k: &Arc<Kernel>,
    plan: &CeremonyPlan,
    result: &[u8],
    mine: Option<(frost::keys::KeyPackage, frost::keys::PublicKeyPackage)>,
) -> Result<Option<(frost::keys::KeyPackage, frost::keys::PublicKeyPackage)>, BootError> {
    let plan_hash = plan.digest().map_err(|e| BootError::Share(e.to_string()))?;
    let ident_of = |id: &str| -> Result<frost::Identifier, BootError> {
        let s = plan
            .signers
            .iter()
            .find(|s| s.kernel_id == id)
            .ok_or_else(|| BootError::Share(format!("`{id}` is not a signer of the plan")))?;
        ident(&s.identifier)
    };
    let me = k.cfg.kernel_id.clone();
    let helping = plan.helpers.contains(&me);
    if helping == mine.is_none() {
        return Err(BootError::Share(
            "a helper needs its share; the repaired signer has none".into(),
        ));
    }
    let mut members = plan.helpers.clone();
    members.push(plan.participant.clone());
    let mut peers = BTreeMap::new();
    let mut routes = Vec::new();
    for id in members.iter().filter(|id| **id != me) {
        peers.insert(id.clone(), ident_of(id)?);
        let port = k
            .cfg
            .peers
            .iter()
            .find(|(p, _)| p == id)
            .map(|(_, p)| *p)
            .ok_or_else(|| BootError::Share(format!("no route to ceremony peer `{id}`")))?;
        routes.push((id.clone(), port));
    }
    if let Some((kp, pp)) = &mine {
        let group = pp
            .verifying_key()
            .serialize()
            .map_err(|e| BootError::Share(e.to_string()))?;
        if group != plan.group_public_key || *kp.min_signers() != plan.threshold {
            return Err(BootError::Share(
                "repair plan is for another group key or threshold".into(),
            ));
        }
    }
    let my_package = match &mine {
        Some((_, pp)) => pp
            .serialize()
            .map_err(|e| BootError::Other(e.to_string()))?,
        None => Vec::new(),
    };
    let mut kx = HashMap::new();
    let mut kx_public = HashMap::new();
    for id in peers.keys() {
        let key = KeyExchange::generate().map_err(|e| BootError::Other(e.to_string()))?;
        kx_public.insert(id.clone(), key.public_key().to_vec());
        kx.insert(id.clone(), key);
    }
    if let Ok(mut g) = k.ceremony.lock() {
        *g = Some(Ceremony {
            plan: plan.clone(),
            plan_hash,
            peers: peers.clone(),
            kx,
            round1: BTreeMap::new(),
            round2: BTreeMap::new(),
        });
    }
    let cid = plan.ceremony_id.clone();
    k.audit_event(
        events::DKG,
        &cid,
        &("started", &plan.mode, &plan.participant, &plan.helpers),
    )
    .await;
    let deadline = Instant::now() + Duration::from_millis(CEREMONY_TIMEOUT_MS);
    let peer_count = peers.len();
    let round1_done = || {
        k.ceremony
            .lock()
            .ok()
            .and_then(|g| g.as_ref().map(|c| c.round1.len() == peer_count))
            .unwrap_or(false)
    };
    push_all(
        k,
        &routes,
        deadline,
        "round 1",
        |peer| {
            let kxp = kx_public.get(peer).cloned().unwrap_or_default();
            let payload = round1_payload(&plan_hash, &my_package, &kxp);
            let auth = make_auth(
                k,
                result,
                wire::msg::method::DKG_ROUND1,
                cid.as_bytes(),
                peer,
                &payload,
            )
            .ok_or_else(|| BootError::Other("could not sign a ceremony message".into()))?;
            Ok(Request::DkgRound1(DkgRound1Params {
                ceremony_id: cid.clone(),
                plan_hash: plan_hash.to_vec(),
                package: my_package.clone(),
                kx_public: kxp,
                target_kernel_id: peer.to_string(),
                peer: auth,
            }))
        },
        round1_done,
    )
    .await?;
    let (peer_kx, packages): (HashMap<String, Vec<u8>>, Vec<Vec<u8>>) = {
        let g = k
            .ceremony
            .lock()
            .map_err(|_| BootError::Other("lock poisoned".into()))?;
        let c = g
            .as_ref()
            .ok_or_else(|| BootError::Other("ceremony state vanished".into()))?;
        (
            c.round1
                .iter()
                .map(|(p, (_, x))| (p.clone(), x.clone()))
                .collect(),
            c.round1
                .iter()
                .filter(|(p, _)| plan.helpers.contains(p))
                .map(|(_, (b, _))| b.clone())
                .collect(),
        )
    };
    let received = |from: &[String]| -> Result<Vec<Vec<u8>>, BootError> {
        let g = k
            .ceremony
            .lock()
            .map_err(|_| BootError::Other("lock poisoned".into()))?;
        let c = g
            .as_ref()
            .ok_or_else(|| BootError::Other("ceremony state vanished".into()))?;
        Ok(from
            .iter()
            .filter_map(|p| c.round2.get(p).map(|(_, v)| v.clone()))
            .collect())
    };
    let seal_push = |to: Vec<(String, u32)>,
                     values: HashMap<String, Vec<u8>>,
                     what: &'static str| {
        let sealed: Result<HashMap<String, Sealed>, BootError> = values
            .iter()
            .map(|(peer, v)| {
                let key = peer_kx.get(peer).cloned().unwrap_or_default();
                sealing::seal_to(&key, &round2_aad(&cid, &me, peer), v)
                    .map(|s| (peer.clone(), s))
                    .map_err(|e| BootError::Other(format!("sealing a repair value: {e}")))
            })
            .collect();
        let cid = cid.clone();
        async move {
            let sealed = sealed?;
            push_all(
                k,
                &to,
                deadline,
                what,
                |peer| {
                    let (eph, sealed) = sealed.get(peer).cloned().unwrap_or_default();
                    let payload = round2_payload(&plan_hash, &eph, &sealed);
                    let auth = make_auth(
                        k,
                        result,
                        wire::msg::method::DKG_ROUND2,
                        cid.as_bytes(),
                        peer,
                        &payload,
                    )
                    .ok_or_else(|| BootError::Other("could not sign a ceremony message".into()))?;
                    Ok(Request::DkgRound2(DkgRound2Params {
                        ceremony_id: cid.clone(),
                        plan_hash: plan_hash.to_vec(),
                        ephemeral_public: eph,
                        sealed_package: sealed,
                        target_kernel_id: peer.to_string(),
                        peer: auth,
                    }))
                },
                || true,
            )
            .await
        }
    };
    let other_helpers: Vec<String> = plan.helpers.iter().filter(|h| **h != me).cloned().collect();
    if let Some((kp, _)) = &mine {
        // Helper: deltas to the other helpers, then the sigma to the repaired signer.
        let helper_ids: Vec<frost::Identifier> = plan
            .helpers
            .iter()
            .map(|h| ident_of(h))
            .collect::<Result<_, _>>()?;
        let deltas = frost::keys::repairable::repair_share_part1::<frost::Ed25519Sha512, _>(
            &helper_ids,
            kp,
            &mut rand::rngs::OsRng,
            ident_of(&plan.participant)?,
        )
        .map_err(|e| BootError::Other(format!("repair part 1: {e}")))?;
        let mut to_helpers = HashMap::new();
        for h in &other_helpers {
            let d = deltas
                .get(&ident_of(h)?)
                .ok_or_else(|| BootError::Other(format!("no delta for `{h}`")))?;
            to_helpers.insert(h.clone(), d.serialize());
        }
        let routes_h: Vec<(String, u32)> = routes
            .iter()
            .filter(|(p, _)| other_helpers.contains(p))
            .cloned()
            .collect();
        seal_push(routes_h, to_helpers, "repair deltas").await?;
        let wanted = other_helpers.len();
        push_all(
            k,
            &[],
            deadline,
            "repair deltas in",
            |_| Err(BootError::Other(String::new())),
            || {
                received(&other_helpers)
                    .map(|v| v.len() == wanted)
                    .unwrap_or(false)
            },
        )
        .await?;
        let mut all = vec![deltas
            .get(kp.identifier())
            .cloned()
            .ok_or_else(|| BootError::Other("no own delta".into()))?];
        for bytes in received(&other_helpers)? {
            all.push(
                frost::keys::repairable::Delta::deserialize(&bytes)
                    .map_err(|e| BootError::Other(e.to_string()))?,
            );
        }
        let sigma = frost::keys::repairable::repair_share_part2(&all);
        let routes_p: Vec<(String, u32)> = routes
            .iter()
            .filter(|(p, _)| *p == plan.participant)
            .cloned()
            .collect();
        let mut to_p = HashMap::new();
        to_p.insert(plan.participant.clone(), sigma.serialize());
        seal_push(routes_p, to_p, "repair sigma").await?;
        k.audit_event(events::DKG, &cid, &("completed", &plan.mode, "helped"))
            .await;
        return Ok(None);
    }
    // The repaired signer: t sigmas and one agreed public key package.
    let helpers = plan.helpers.clone();
    let wanted = helpers.len();
    push_all(
        k,
        &[],
        deadline,
        "repair sigmas in",
        |_| Err(BootError::Other(String::new())),
        || {
            received(&helpers)
                .map(|v| v.len() == wanted)
                .unwrap_or(false)
        },
    )
    .await?;
    let first = packages
        .first()
        .cloned()
        .ok_or_else(|| BootError::Other("no public key package from the helpers".into()))?;
    if packages.len() != wanted || packages.iter().any(|p| *p != first) {
        return Err(BootError::Other(
            "helpers sent different public key packages; nothing repaired".into(),
        ));
    }
    let pp = frost::keys::PublicKeyPackage::deserialize(&first)
        .map_err(|e| BootError::Other(e.to_string()))?;
    let mut sigmas = Vec::new();
    for bytes in received(&helpers)? {
        sigmas.push(
            frost::keys::repairable::Sigma::deserialize(&bytes)
                .map_err(|e| BootError::Other(e.to_string()))?,
        );
    }
    let my_ident = ident_of(&me)?;
    let kp = frost::keys::repairable::repair_share_part3(&sigmas, my_ident, &pp)
        .map_err(|e| BootError::Other(format!("repair part 3: {e}")))?;
    if pp.verifying_shares().get(&my_ident) != Some(kp.verifying_share()) {
        k.audit_event(
            events::DKG,
            &cid,
            &("failed", "repaired share does not match"),
        )
        .await;
        return Err(BootError::Other(
            "repaired share does not match the group's verifying share; a helper sent a wrong value".into(),
        ));
    }
    k.audit_event(events::DKG, &cid, &("completed", &plan.mode, "repaired"))
        .await;
    Ok(Some((kp, pp)))
}
