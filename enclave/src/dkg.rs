//! Distributed key generation (and share refresh) among attested kernels, FROST
//! `keys::dkg` / `keys::refresh` (RFC 9591 ciphersuite FROST(Ed25519, SHA-512)).
//!
//! The verifier signs a [`CeremonyPlan`] (threshold t, the n signers and their identifiers);
//! each kernel attests, gets its wrap key released, and then:
//!
//! 1. round 1: `part1` → pushes its round-1 package (commitment + proof of knowledge) to every
//!    peer, with a fresh X25519 public key per peer; waits for every peer's round-1 package;
//! 2. round 2: `part2` → seals each peer's round-2 package (a secret share) to the X25519 key
//!    that peer sent it (X25519 → HKDF-SHA256 → AES-256-GCM; the host proxies in between see
//!    ciphertext), pushes it, and waits for every peer's;
//! 3. `part3` (or `refresh_dkg_shares`) → key package and public key package; the share is
//!    sealed under the released wrap key at once and written to `sealed_share.cbor`.
//!
//! Every ceremony message is authenticated as the signing rounds are ([`PeerAuth`]: a
//! verifier-signed, affirming attestation result about the sender and its AK signature over
//! the message), names the ceremony and the plan's hash, and comes from a signer of the plan.
//! A malformed, mis-ordered, conflicting or unauthenticated message is refused with a reason
//! and recorded in the audit log (ALE); the ceremony never completes without every signer.

use crate::boot::BootError;
use crate::frost::{check_auth, make_auth, peer_call};
use crate::kernel::{events, Kernel};
use attestation::plan::{CeremonyPlan, MODE_REFRESH, MODE_REPAIR};
use attestation::sealing::{self, KeyExchange};
use frost_ed25519 as frost;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wire::msg::{DkgAckInfo, DkgRound1Params, DkgRound2Params, ErrorCode, Request, Response};

/// How long a kernel waits for every peer to finish a ceremony.
pub const CEREMONY_TIMEOUT_MS: u64 = 120_000;
/// Pause between pushes to a peer that is not ready yet.
const RETRY_MS: u64 = 100;
/// Bytes of an X25519 public key.
const KX_PUBLIC_BYTES: usize = 32;

/// A sealed value: ephemeral X25519 public key and AES-GCM output.
pub(crate) type Sealed = (Vec<u8>, Vec<u8>);

/// A ceremony in progress on this kernel.
pub struct Ceremony {
    pub(crate) plan: CeremonyPlan,
    pub(crate) plan_hash: [u8; 32],
    /// Peer kernel ids → their identifiers.
    pub(crate) peers: BTreeMap<String, frost::Identifier>,
    /// One X25519 key per peer: the peer seals its round-2 package for us to it.
    pub(crate) kx: HashMap<String, KeyExchange>,
    /// Round-1 packages received: serialized package and the X25519 key to seal to.
    pub(crate) round1: BTreeMap<String, (Vec<u8>, Vec<u8>)>,
    /// Round-2 messages received: the sealed form (to recognise a retry) and the package.
    pub(crate) round2: BTreeMap<String, (Vec<u8>, Vec<u8>)>,
}

impl Ceremony {
    fn signer_ids(&self) -> Vec<String> {
        if self.plan.mode == MODE_REPAIR {
            let mut v = self.plan.helpers.clone();
            v.push(self.plan.participant.clone());
            return v;
        }
        self.plan
            .signers
            .iter()
            .map(|s| s.kernel_id.clone())
            .collect()
    }
}

pub(crate) fn round2_aad(ceremony_id: &str, from: &str, to: &str) -> Vec<u8> {
    let mut aad = b"enclave-dkg-round2-v1".to_vec();
    for part in [ceremony_id, from, to] {
        aad.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

pub(crate) fn round1_payload(plan_hash: &[u8], package: &[u8], kx_public: &[u8]) -> Vec<u8> {
    wire::encode(&(
        serde_bytes::Bytes::new(plan_hash),
        serde_bytes::Bytes::new(package),
        serde_bytes::Bytes::new(kx_public),
    ))
    .unwrap_or_default()
}

pub(crate) fn round2_payload(plan_hash: &[u8], eph: &[u8], sealed: &[u8]) -> Vec<u8> {
    wire::encode(&(
        serde_bytes::Bytes::new(plan_hash),
        serde_bytes::Bytes::new(eph),
        serde_bytes::Bytes::new(sealed),
    ))
    .unwrap_or_default()
}

/// A refusal: logged, audited (`soos.governance.kia.dkg`), answered with the reason.
async fn refuse(
    k: &Kernel,
    ceremony_id: &str,
    what: &str,
    peer: &str,
    code: ErrorCode,
    reason: String,
) -> Response {
    tracing::warn!(kernel = %k.cfg.kernel_id, %peer, %reason, "{what} refused");
    if code != ErrorCode::NotServing {
        k.audit_event(events::DKG, ceremony_id, &("refused", what, peer, &reason))
            .await;
    }
    Response::error(code, reason)
}

type Refusal = (ErrorCode, String);

fn common_checks(
    k: &Kernel,
    c: &Ceremony,
    method: &str,
    (ceremony_id, plan_hash): (&str, &[u8]),
    target: &str,
    peer: &wire::msg::PeerAuth,
    payload: &[u8],
) -> Result<(), Refusal> {
    if ceremony_id != c.plan.ceremony_id || plan_hash != c.plan_hash {
        return Err((
            ErrorCode::Unauthorized,
            format!(
                "message is for ceremony `{ceremony_id}` or another plan; this kernel runs `{}`",
                c.plan.ceremony_id
            ),
        ));
    }
    check_auth(
        k,
        &c.signer_ids(),
        peer,
        method,
        ceremony_id.as_bytes(),
        target,
        payload,
    )
    .map_err(|r| (ErrorCode::Unauthorized, r))?;
    if k.peer_revoked(&peer.kernel_id) {
        return Err((
            ErrorCode::Unauthorized,
            format!("`{}` is revoked by the verifier", peer.kernel_id),
        ));
    }
    Ok(())
}

fn no_ceremony() -> Refusal {
    (
        ErrorCode::NotServing,
        "no ceremony in progress on this kernel (not attested yet, or none planned)".into(),
    )
}

fn check_round1_package(c: &Ceremony, package: &[u8]) -> Result<(), Refusal> {
    let pkg = frost::keys::dkg::round1::Package::deserialize(package).map_err(|e| {
        (
            ErrorCode::BadRequest,
            format!("malformed round-1 package: {e}"),
        )
    })?;
    // A DKG polynomial has t coefficients; a refresh one t-1 (its constant term is zero and
    // left out). Anything else would change the threshold.
    let expected = if c.plan.mode == MODE_REFRESH {
        usize::from(c.plan.threshold).saturating_sub(1)
    } else {
        usize::from(c.plan.threshold)
    };
    if pkg.commitment().coefficients().len() != expected {
        return Err((
            ErrorCode::BadRequest,
            format!(
                "round-1 package commits to {} coefficients; threshold {} needs {expected}",
                pkg.commitment().coefficients().len(),
                c.plan.threshold
            ),
        ));
    }
    Ok(())
}

fn round1_inner(k: &Kernel, p: &DkgRound1Params) -> Result<(), Refusal> {
    let Ok(mut g) = k.ceremony.lock() else {
        return Err((ErrorCode::Internal, "lock poisoned".into()));
    };
    let Some(c) = g.as_mut() else {
        return Err(no_ceremony());
    };
    let payload = round1_payload(&p.plan_hash, &p.package, &p.kx_public);
    common_checks(
        k,
        c,
        wire::msg::method::DKG_ROUND1,
        (&p.ceremony_id, &p.plan_hash),
        &p.target_kernel_id,
        &p.peer,
        &payload,
    )?;
    if c.plan.mode == MODE_REPAIR {
        // A helper sends the group's public key package; the repaired signer sends nothing.
        if !p.package.is_empty() {
            let pp = frost::keys::PublicKeyPackage::deserialize(&p.package).map_err(|e| {
                (
                    ErrorCode::BadRequest,
                    format!("malformed public key package: {e}"),
                )
            })?;
            let group = pp.verifying_key().serialize().unwrap_or_default();
            if group != c.plan.group_public_key {
                return Err((
                    ErrorCode::Unauthorized,
                    "public key package is for another group key".into(),
                ));
            }
        }
    } else {
        check_round1_package(c, &p.package)?;
    }
    if p.kx_public.len() != KX_PUBLIC_BYTES {
        return Err((
            ErrorCode::BadRequest,
            "round-1 key exchange key is not 32 bytes".into(),
        ));
    }
    let sender = p.peer.kernel_id.clone();
    match c.round1.get(&sender) {
        Some((pk, kx)) if pk == &p.package && kx == &p.kx_public => Ok(()),
        Some(_) => Err((
            ErrorCode::Unauthorized,
            "a different round-1 package from this peer was already accepted".into(),
        )),
        None => {
            c.round1
                .insert(sender, (p.package.clone(), p.kx_public.clone()));
            Ok(())
        }
    }
}

/// Peer, round 1.
pub async fn on_round1(k: &Arc<Kernel>, p: &DkgRound1Params) -> Response {
    match round1_inner(k, p) {
        Ok(()) => Response::DkgAck(DkgAckInfo { round: 1 }),
        Err((code, reason)) => {
            refuse(
                k,
                &p.ceremony_id,
                "dkg_round1",
                &p.peer.kernel_id,
                code,
                reason,
            )
            .await
        }
    }
}

fn round2_inner(k: &Kernel, p: &DkgRound2Params) -> Result<(), Refusal> {
    let Ok(mut g) = k.ceremony.lock() else {
        return Err((ErrorCode::Internal, "lock poisoned".into()));
    };
    let Some(c) = g.as_mut() else {
        return Err(no_ceremony());
    };
    let payload = round2_payload(&p.plan_hash, &p.ephemeral_public, &p.sealed_package);
    common_checks(
        k,
        c,
        wire::msg::method::DKG_ROUND2,
        (&p.ceremony_id, &p.plan_hash),
        &p.target_kernel_id,
        &p.peer,
        &payload,
    )?;
    let sender = p.peer.kernel_id.clone();
    if !c.round1.contains_key(&sender) {
        return Err((
            ErrorCode::BadRequest,
            "round-2 message before the sender's round-1 package (out of order)".into(),
        ));
    }
    let mut sealed_form = p.ephemeral_public.clone();
    sealed_form.extend_from_slice(&p.sealed_package);
    if let Some((seen, _)) = c.round2.get(&sender) {
        return if seen == &sealed_form {
            Ok(())
        } else {
            Err((
                ErrorCode::Unauthorized,
                "a different round-2 package from this peer was already accepted".into(),
            ))
        };
    }
    let Some(kx) = c.kx.remove(&sender) else {
        return Err((
            ErrorCode::BadRequest,
            "no key exchange key left for this peer".into(),
        ));
    };
    let aad = round2_aad(&c.plan.ceremony_id, &sender, &k.cfg.kernel_id);
    let plain = kx
        .open(&p.ephemeral_public, &aad, &p.sealed_package)
        .map_err(|e| (ErrorCode::BadRequest, format!("round-2 package: {e}")))?;
    if c.plan.mode == MODE_REPAIR {
        frost::keys::repairable::Delta::deserialize(&plain).map_err(|e| {
            (
                ErrorCode::BadRequest,
                format!("malformed repair value: {e}"),
            )
        })?;
    } else {
        frost::keys::dkg::round2::Package::deserialize(&plain).map_err(|e| {
            (
                ErrorCode::BadRequest,
                format!("malformed round-2 package: {e}"),
            )
        })?;
    }
    c.round2.insert(sender, (sealed_form, plain));
    Ok(())
}

/// Peer, round 2.
pub async fn on_round2(k: &Arc<Kernel>, p: &DkgRound2Params) -> Response {
    match round2_inner(k, p) {
        Ok(()) => Response::DkgAck(DkgAckInfo { round: 2 }),
        Err((code, reason)) => {
            refuse(
                k,
                &p.ceremony_id,
                "dkg_round2",
                &p.peer.kernel_id,
                code,
                reason,
            )
            .await
        }
    }
}

pub(crate) fn ident(bytes: &[u8]) -> Result<frost::Identifier, BootError> {
    frost::Identifier::deserialize(bytes)
        .map_err(|e| BootError::Share(format!("plan identifier: {e}")))
}

/// Pushes `make(peer)` to every peer until each one acknowledged, retrying refusals and
/// unreachable peers until `deadline`.
pub(crate) async fn push_all(
    k: &Arc<Kernel>,
    peers: &[(String, u32)],
    deadline: Instant,
    what: &str,
    mut make: impl FnMut(&str) -> Result<Request, BootError>,
    mut ready: impl FnMut() -> bool,
) -> Result<(), BootError> {
    let timeout = Duration::from_millis(k.cfg.peer_timeout_ms.max(1));
    let mut pending: Vec<(String, u32)> = peers.to_vec();
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let mut still = Vec::new();
        for (peer, port) in pending {
            let req = make(&peer)?;
            match peer_call(k, port, &req, timeout).await {
                Ok(Response::DkgAck(_)) => {
                    last.remove(&peer);
                }
                Ok(Response::Error(e)) => {
                    tracing::debug!(kernel = %k.cfg.kernel_id, %peer, %what, reason = %e.message, "ceremony push refused");
                    last.insert(peer.clone(), e.message);
                    still.push((peer, port));
                }
                Ok(_) => {
                    last.insert(peer.clone(), "unexpected answer".into());
                    still.push((peer, port));
                }
                Err(e) => {
                    tracing::debug!(kernel = %k.cfg.kernel_id, %peer, %what, error = %e, "ceremony push failed");
                    last.insert(peer.clone(), e);
                    still.push((peer, port));
                }
            }
        }
        pending = still;
        if pending.is_empty() && ready() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let why: Vec<String> = last.iter().map(|(p, e)| format!("{p}: {e}")).collect();
            return Err(BootError::Other(format!(
                "ceremony {what} did not complete in {} ms: {}",
                CEREMONY_TIMEOUT_MS,
                if why.is_empty() {
                    "peers' messages did not all arrive".to_string()
                } else {
                    why.join("; ")
                }
            )));
        }
        tokio::time::sleep(Duration::from_millis(RETRY_MS)).await;
    }
}

/// Runs the plan's ceremony with its peers. `result` is this kernel's affirming attestation
/// result, presented to peers; `old` is the current share for a refresh.
pub async fn run(
    k: &Arc<Kernel>,
    plan: &CeremonyPlan,
    result: &[u8],
    old: Option<(frost::keys::KeyPackage, frost::keys::PublicKeyPackage)>,
) -> Result<(frost::keys::KeyPackage, frost::keys::PublicKeyPackage), BootError> {
    let plan_hash = plan.digest().map_err(|e| BootError::Share(e.to_string()))?;
    let me = plan
        .signers
        .iter()
        .find(|s| s.kernel_id == k.cfg.kernel_id)
        .ok_or_else(|| BootError::Share("the plan does not name this kernel".into()))?;
    let my_ident = ident(&me.identifier)?;
    let mut peers = BTreeMap::new();
    let mut routes = Vec::new();
    for s in plan
        .signers
        .iter()
        .filter(|s| s.kernel_id != k.cfg.kernel_id)
    {
        peers.insert(s.kernel_id.clone(), ident(&s.identifier)?);
        let port = k
            .cfg
            .peers
            .iter()
            .find(|(id, _)| id == &s.kernel_id)
            .map(|(_, p)| *p)
            .ok_or_else(|| {
                BootError::Share(format!("no route to ceremony peer `{}`", s.kernel_id))
            })?;
        routes.push((s.kernel_id.clone(), port));
    }
    let n = u16::try_from(plan.signers.len()).unwrap_or(u16::MAX);
    let refresh = plan.mode == MODE_REFRESH;
    if let Some((kp, pp)) = &old {
        if *kp.min_signers() != plan.threshold {
            return Err(BootError::Share(format!(
                "refresh plan says threshold {} but the share's is {}: a refresh never changes it",
                plan.threshold,
                kp.min_signers()
            )));
        }
        let group = pp
            .verifying_key()
            .serialize()
            .map_err(|e| BootError::Share(e.to_string()))?;
        if group != plan.group_public_key || *kp.identifier() != my_ident {
            return Err(BootError::Share(
                "refresh plan is for another group key or identifier".into(),
            ));
        }
    } else if refresh {
        return Err(BootError::Share("a refresh needs the current share".into()));
    }
    let (secret1, package1) = if refresh {
        frost::keys::refresh::refresh_dkg_part1(my_ident, n, plan.threshold, rand::rngs::OsRng)
    } else {
        frost::keys::dkg::part1(my_ident, n, plan.threshold, rand::rngs::OsRng)
    }
    .map_err(|e| BootError::Other(format!("dkg part 1: {e}")))?;
    let my_round1 = package1
        .serialize()
        .map_err(|e| BootError::Other(e.to_string()))?;
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
    k.audit_event(
        events::DKG,
        &plan.ceremony_id,
        &("started", &plan.mode, plan.threshold, n),
    )
    .await;
    let deadline = Instant::now() + Duration::from_millis(CEREMONY_TIMEOUT_MS);
    let cid = plan.ceremony_id.clone();

    // Round 1.
    let peer_count = peers.len();
    push_all(
        k,
        &routes,
        deadline,
        "round 1",
        |peer| {
            let kxp = kx_public.get(peer).cloned().unwrap_or_default();
            let payload = round1_payload(&plan_hash, &my_round1, &kxp);
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
                package: my_round1.clone(),
                kx_public: kxp,
                target_kernel_id: peer.to_string(),
                peer: auth,
            }))
        },
        || {
            k.ceremony
                .lock()
                .ok()
                .and_then(|g| g.as_ref().map(|c| c.round1.len() == peer_count))
                .unwrap_or(false)
        },
    )
    .await?;
    let (round1, peer_kx): (BTreeMap<frost::Identifier, _>, HashMap<String, Vec<u8>>) = {
        let g = k
            .ceremony
            .lock()
            .map_err(|_| BootError::Other("lock poisoned".into()))?;
        let c = g
            .as_ref()
            .ok_or_else(|| BootError::Other("ceremony state vanished".into()))?;
        let mut r1 = BTreeMap::new();
        let mut kxs = HashMap::new();
        for (peer, (bytes, kxp)) in &c.round1 {
            let id = c
                .peers
                .get(peer)
                .ok_or_else(|| BootError::Other(format!("`{peer}` is not a peer")))?;
            r1.insert(
                *id,
                frost::keys::dkg::round1::Package::deserialize(bytes)
                    .map_err(|e| BootError::Other(e.to_string()))?,
            );
            kxs.insert(peer.clone(), kxp.clone());
        }
        (r1, kxs)
    };
    let (secret2, packages2) = if refresh {
        frost::keys::refresh::refresh_dkg_part2(secret1, &round1)
    } else {
        frost::keys::dkg::part2(secret1, &round1)
    }
    .map_err(|e| {
        BootError::Other(format!(
            "dkg part 2 (a peer's round-1 package is invalid): {e}"
        ))
    })?;

    // Round 2: each package sealed to its recipient, once (a retry resends the same bytes).
    let mut sealed2: HashMap<String, (Vec<u8>, Vec<u8>)> = HashMap::new();
    for (peer, id) in &peers {
        let pkg = packages2
            .get(id)
            .ok_or_else(|| BootError::Other(format!("no round-2 package for `{peer}`")))?
            .serialize()
            .map_err(|e| BootError::Other(e.to_string()))?;
        let to = peer_kx.get(peer).cloned().unwrap_or_default();
        let sealed = sealing::seal_to(&to, &round2_aad(&cid, &k.cfg.kernel_id, peer), &pkg)
            .map_err(|e| BootError::Other(format!("sealing the round-2 package: {e}")))?;
        sealed2.insert(peer.clone(), sealed);
    }
    push_all(
        k,
        &routes,
        deadline,
        "round 2",
        |peer| {
            let (eph, sealed) = sealed2.get(peer).cloned().unwrap_or_default();
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
        || {
            k.ceremony
                .lock()
                .ok()
                .and_then(|g| g.as_ref().map(|c| c.round2.len() == peer_count))
                .unwrap_or(false)
        },
    )
    .await?;
    let round2: BTreeMap<frost::Identifier, frost::keys::dkg::round2::Package> = {
        let g = k
            .ceremony
            .lock()
            .map_err(|_| BootError::Other("lock poisoned".into()))?;
        let c = g
            .as_ref()
            .ok_or_else(|| BootError::Other("ceremony state vanished".into()))?;
        let mut r2 = BTreeMap::new();
        for (peer, (_, bytes)) in &c.round2 {
            let id = c
                .peers
                .get(peer)
                .ok_or_else(|| BootError::Other(format!("`{peer}` is not a peer")))?;
            r2.insert(
                *id,
                frost::keys::dkg::round2::Package::deserialize(bytes)
                    .map_err(|e| BootError::Other(e.to_string()))?,
            );
        }
        r2
    };
    let out = match old {
        Some((kp, pp)) => {
            frost::keys::refresh::refresh_dkg_shares(&secret2, &round1, &round2, pp, kp)
        }
        None => frost::keys::dkg::part3(&secret2, &round1, &round2),
    }
    .map_err(|e| BootError::Other(format!("dkg part 3 (a peer's share is invalid): {e}")));
    let (kp, pp) = match out {
        Ok(v) => v,
        Err(e) => {
            k.audit_event(events::DKG, &cid, &("failed", e.to_string()))
                .await;
            return Err(e);
        }
    };
    let group = pp
        .verifying_key()
        .serialize()
        .map_err(|e| BootError::Other(e.to_string()))?;
    if refresh && group != plan.group_public_key {
        return Err(BootError::Other(
            "refresh changed the group key; discarded".into(),
        ));
    }
    k.audit_event(
        events::DKG,
        &cid,
        &("completed", &plan.mode, serde_bytes::Bytes::new(&group)),
    )
    .await;
    tracing::info!(kernel = %k.cfg.kernel_id, ceremony = %cid, mode = %plan.mode, group = %hex::encode(&group), "ceremony completed");
    Ok((kp, pp))
}
