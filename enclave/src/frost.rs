//! KEE-1 P2: FROST (2,3) threshold signing across kernels.
//!
//! The kernel asked to `sign_digest` coordinates: it commits itself, asks peers of the same
//! ceremony for commitments until it has t, sends them the signing package, aggregates, and
//! checks the result verifies under the group key. Every signer draws fresh nonces from the
//! OS CSPRNG per operation and never reuses them (a pending session is single use and
//! expires). Fewer than t signers = nothing is signed (quorum loss fails closed).
//!
//! Peer calls travel only inside mutually attested TLS sessions ([`crate::peer_link`]) and
//! are authenticated again per request: the caller presents its verifier-signed attestation
//! result and signs the request with the attestation key that result names, which must be
//! the TLS peer's.
//!
//! Attestation precedence (ron-kms K-G6): every signing entry point passes
//! [`Kernel::signing_gate`] first, so a kernel whose attestation is failing, revoked or
//! unknown gives neither signatures nor shares.

use crate::kernel::{events, Kernel};
use crate::transport::call;
use attestation::ak::verify_ak_signature;
use attestation::result::verify_result;
use frost_ed25519 as frost;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wire::msg::{
    ErrorCode, FrostCommitParams, FrostCommitmentInfo, FrostShareInfo, FrostSignParams, PeerAuth,
    Request, Response, SignatureInfo,
};

/// A participant's pending session lives at most this long.
pub const SESSION_TTL_MS: u64 = 30_000;
/// Most pending sessions a participant holds.
pub const MAX_PENDING: usize = 64;
/// Bytes of a session id.
pub const SESSION_ID_BYTES: usize = 16;

/// A participant's round-1 state.
pub struct Pending {
    coordinator: String,
    digest: Vec<u8>,
    nonces: frost::round1::SigningNonces,
    commitments: frost::round1::SigningCommitments,
    created: Instant,
}

fn auth_message(method: &str, session_id: &[u8], target: &str, payload: &[u8]) -> Vec<u8> {
    let mut m = b"enclave-peer-v1".to_vec();
    for part in [
        method.as_bytes(),
        session_id,
        target.as_bytes(),
        &attestation::sha256(payload)[..],
    ] {
        m.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        m.extend_from_slice(part);
    }
    m
}

pub(crate) fn make_auth(
    k: &Kernel,
    result: &[u8],
    method: &str,
    session_id: &[u8],
    target: &str,
    payload: &[u8],
) -> Option<PeerAuth> {
    let signature =
        k.ak.sign(&auth_message(method, session_id, target, payload))
            .ok()?;
    Some(PeerAuth {
        kernel_id: k.cfg.kernel_id.clone(),
        result: result.to_vec(),
        ak_public: k.ak.public_key().to_vec(),
        signature,
    })
}

/// Checks a peer's credentials; returns the reason on failure.
pub(crate) fn check_auth(
    k: &Kernel,
    signers: &[String],
    auth: &PeerAuth,
    method: &str,
    session_id: &[u8],
    target: &str,
    payload: &[u8],
) -> Result<(), String> {
    if target != k.cfg.kernel_id {
        return Err(format!("request is addressed to `{target}`"));
    }
    if auth.kernel_id == k.cfg.kernel_id || !signers.contains(&auth.kernel_id) {
        return Err(format!(
            "`{}` is not another signer of this ceremony",
            auth.kernel_id
        ));
    }
    verify_peer(k, auth, method, session_id, target, payload)
}

/// Checks that `auth` comes from an attested kernel: a verifier-signed affirming result
/// about `auth.kernel_id`, naming the attestation key that signed this request.
pub(crate) fn verify_peer(
    k: &Kernel,
    auth: &PeerAuth,
    method: &str,
    session_id: &[u8],
    target: &str,
    payload: &[u8],
) -> Result<(), String> {
    let r = verify_result(&auth.result, &k.cfg.verifier_public_key)
        .map_err(|e| format!("peer attestation result: {e}"))?;
    if r.kernel_id != auth.kernel_id {
        return Err("peer attestation result names another kernel".into());
    }
    if !r.is_affirming_at(attestation::now_ms()) {
        return Err("peer attestation result is not affirming or has expired".into());
    }
    if r.ak_public_digest != attestation::sha256(&auth.ak_public) {
        return Err("peer attestation key is not the one its result names".into());
    }
    verify_ak_signature(
        &auth.ak_public,
        &auth_message(method, session_id, target, payload),
        &auth.signature,
    )
    .map_err(|_| "peer request signature does not verify".to_string())
}

fn signer_ids(sealed: &attestation::sealing::SealedShare) -> Vec<String> {
    sealed.signers.iter().map(|s| s.kernel_id.clone()).collect()
}

/// Notes a signing answer on its span: the signers on success, the refusal otherwise.
fn note_outcome(span: &mut crate::otel::SpanGuard, resp: &Response) {
    match resp {
        Response::Signature(s) => {
            span.set_attr("soos.signing.outcome", "signed");
            span.set_list("soos.signing.signers", &s.signers);
            span.set_hex("soos.signing.group_public_key", &s.group_public_key);
        }
        Response::FrostCommitment(_) => span.set_attr("soos.signing.outcome", "committed"),
        Response::FrostShare(_) => span.set_attr("soos.signing.outcome", "share"),
        Response::Error(e) => {
            span.set_attr("soos.signing.outcome", "refused");
            span.fail(e.message.clone());
        }
        _ => span.fail("unexpected answer"),
    }
}

/// A participant's span for the round `name` of the coordinator's signing `session_id`.
fn participant_span(
    k: &Kernel,
    name: &'static str,
    session_id: &[u8],
    coordinator: &str,
) -> crate::otel::SpanGuard {
    let hex_id = hex::encode(session_id);
    let mut span = k.otel.span(name, &hex_id);
    span.set_attr("soos.frost.session", hex_id);
    span.set_attr("soos.signing.coordinator", coordinator.to_owned());
    span.set_attr("soos.kernel_id", k.cfg.kernel_id.clone());
    span
}

/// Participant, round 1 (span `soos.governance.signing.commit`).
pub fn commit(k: &Arc<Kernel>, p: &FrostCommitParams) -> Response {
    let mut span = participant_span(
        k,
        crate::otel::names::SIGNING_COMMIT,
        &p.session_id,
        &p.peer.kernel_id,
    );
    let resp = commit_inner(k, p);
    note_outcome(&mut span, &resp);
    resp
}

fn commit_inner(k: &Arc<Kernel>, p: &FrostCommitParams) -> Response {
    let Some(u) = k.unsealed() else {
        return Response::error(ErrorCode::NotServing, "kernel is not unsealed");
    };
    if let Err(refusal) = k.signing_gate() {
        return refusal;
    }
    let Ok(g) = u.read() else {
        return Response::error(ErrorCode::Internal, "lock poisoned");
    };
    if p.session_id.len() != SESSION_ID_BYTES || p.digest.len() != 32 {
        return Response::error(
            ErrorCode::BadRequest,
            "session id must be 16 bytes and digest 32 bytes",
        );
    }
    if let Err(reason) = check_auth(
        k,
        &signer_ids(&g.sealed),
        &p.peer,
        wire::msg::method::FROST_COMMIT,
        &p.session_id,
        &p.target_kernel_id,
        &p.digest,
    ) {
        tracing::warn!(%reason, "peer commit refused");
        return Response::error(ErrorCode::Unauthorized, reason);
    }
    let (nonces, commitments) =
        frost::round1::commit(g.key_package.signing_share(), &mut rand::rngs::OsRng);
    let Ok(bytes) = commitments.serialize() else {
        return Response::error(ErrorCode::Internal, "could not encode commitments");
    };
    let identifier = g.key_package.identifier().serialize();
    let Ok(mut pending) = k.pending.lock() else {
        return Response::error(ErrorCode::Internal, "lock poisoned");
    };
    pending.retain(|_, s| s.created.elapsed() < Duration::from_millis(SESSION_TTL_MS));
    if pending.len() >= MAX_PENDING {
        return Response::error(ErrorCode::Busy, "too many pending signing sessions");
    }
    if pending.contains_key(&p.session_id) {
        return Response::error(ErrorCode::BadRequest, "session id already used");
    }
    pending.insert(
        p.session_id.clone(),
        Pending {
            coordinator: p.peer.kernel_id.clone(),
            digest: p.digest.clone(),
            nonces,
            commitments,
            created: Instant::now(),
        },
    );
    Response::FrostCommitment(FrostCommitmentInfo {
        commitments: bytes,
        identifier,
    })
}

/// Participant, round 2 (span `soos.governance.signing.share`).
pub async fn sign_share(k: &Arc<Kernel>, p: &FrostSignParams) -> Response {
    let mut span = participant_span(
        k,
        crate::otel::names::SIGNING_SHARE,
        &p.session_id,
        &p.peer.kernel_id,
    );
    let resp = sign_share_inner(k, p).await;
    note_outcome(&mut span, &resp);
    resp
}

async fn sign_share_inner(k: &Arc<Kernel>, p: &FrostSignParams) -> Response {
    let Some(u) = k.unsealed() else {
        return Response::error(ErrorCode::NotServing, "kernel is not unsealed");
    };
    if let Err(refusal) = k.signing_gate() {
        return refusal;
    }
    let share = {
        let Ok(g) = u.read() else {
            return Response::error(ErrorCode::Internal, "lock poisoned");
        };
        if let Err(reason) = check_auth(
            k,
            &signer_ids(&g.sealed),
            &p.peer,
            wire::msg::method::FROST_SIGN,
            &p.session_id,
            &p.target_kernel_id,
            &p.signing_package,
        ) {
            tracing::warn!(%reason, "peer sign refused");
            return Response::error(ErrorCode::Unauthorized, reason);
        }
        // Single use: the session leaves the table whatever happens next.
        let session = match k.pending.lock() {
            Ok(mut t) => t.remove(&p.session_id),
            Err(_) => return Response::error(ErrorCode::Internal, "lock poisoned"),
        };
        let Some(s) = session else {
            return Response::error(
                ErrorCode::BadRequest,
                "unknown or already used signing session",
            );
        };
        if s.created.elapsed() >= Duration::from_millis(SESSION_TTL_MS)
            || s.coordinator != p.peer.kernel_id
        {
            return Response::error(
                ErrorCode::Unauthorized,
                "signing session expired or belongs to another coordinator",
            );
        }
        let Ok(pkg) = frost::SigningPackage::deserialize(&p.signing_package) else {
            return Response::error(ErrorCode::BadRequest, "signing package does not decode");
        };
        if pkg.message() != s.digest.as_slice() {
            return Response::error(
                ErrorCode::Unauthorized,
                "signing package is for another digest than committed",
            );
        }
        if pkg.signing_commitment(g.key_package.identifier()) != Some(s.commitments) {
            return Response::error(
                ErrorCode::Unauthorized,
                "signing package does not carry this signer's commitments",
            );
        }
        match frost::round2::sign(&pkg, &s.nonces, &g.key_package) {
            Ok(share) => share.serialize(),
            Err(e) => return Response::error(ErrorCode::BadRequest, format!("frost round 2: {e}")),
        }
    };
    let _ = k
        .audit
        .append(crate::audit::NewEvent {
            session_id: hex::encode(&p.session_id),
            kind: events::SIGNING.into(),
            body: wire::encode(&("share", &p.peer.kernel_id)).unwrap_or_default(),
        })
        .await;
    Response::FrostShare(FrostShareInfo { share })
}

/// Coordinator: a threshold signature over `digest`.
pub async fn coordinate(k: &Arc<Kernel>, digest: &[u8]) -> Response {
    coordinate_with(k, digest, true).await
}

/// As [`coordinate`]; `audit` = false for GAR block signatures, which the block itself
/// records (an ALE per block signature would keep every idle log growing).
pub async fn coordinate_with(k: &Arc<Kernel>, digest: &[u8], audit: bool) -> Response {
    coordinate_in(k, digest, audit, None).await
}

/// As [`coordinate_with`], its `soos.governance.signing.coordinate` span in the trace of
/// `trace_session` (a GAR block's session when anchoring it), else of the signing session.
pub async fn coordinate_in(
    k: &Arc<Kernel>,
    digest: &[u8],
    audit: bool,
    trace_session: Option<&str>,
) -> Response {
    let mut session_id = [0u8; SESSION_ID_BYTES];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut session_id).is_err() {
        return Response::error(ErrorCode::Internal, "random number generator failed");
    }
    let hex_id = hex::encode(session_id);
    let mut span = k.otel.span(
        crate::otel::names::SIGNING_COORDINATE,
        trace_session.unwrap_or(&hex_id),
    );
    span.set_attr("soos.frost.session", hex_id);
    span.set_hex("soos.signing.digest", digest);
    span.set_attr("soos.kernel_id", k.cfg.kernel_id.clone());
    let resp = coordinate_session(k, digest, audit, session_id).await;
    note_outcome(&mut span, &resp);
    resp
}

async fn coordinate_session(
    k: &Arc<Kernel>,
    digest: &[u8],
    audit: bool,
    session_id: [u8; SESSION_ID_BYTES],
) -> Response {
    if digest.len() != 32 {
        return Response::error(ErrorCode::BadRequest, "digest must be 32 bytes");
    }
    let Some(u) = k.unsealed() else {
        return Response::error(ErrorCode::NotServing, "kernel is not unsealed");
    };
    if let Err(refusal) = k.signing_gate() {
        return refusal;
    }
    let (key_package, public, result, threshold, signers) = {
        let Ok(g) = u.read() else {
            return Response::error(ErrorCode::Internal, "lock poisoned");
        };
        (
            g.key_package.clone(),
            g.public_package.clone(),
            // The latest affirming re-attestation result (the boot one expires).
            k.peer_credential().unwrap_or_else(|| g.result.clone()),
            // The threshold inside the sealed key package (boot checked the file agrees).
            usize::from(*g.key_package.min_signers()),
            g.sealed.signers.clone(),
        )
    };
    let (my_nonces, my_commitments) =
        frost::round1::commit(key_package.signing_share(), &mut rand::rngs::OsRng);
    let mut commitments = BTreeMap::new();
    commitments.insert(*key_package.identifier(), my_commitments);
    let timeout = Duration::from_millis(k.cfg.peer_timeout_ms.max(1));

    // Round 1: ask peers in configured order until t signers are committed.
    let mut joined: Vec<(String, u32, frost::Identifier)> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for (peer_id, port) in &k.cfg.peers {
        if commitments.len() >= threshold {
            break;
        }
        let Some(entry) = signers.iter().find(|s| &s.kernel_id == peer_id) else {
            failures.push(format!("{peer_id}: not in the ceremony"));
            continue;
        };
        let Ok(ident) = frost::Identifier::deserialize(&entry.identifier) else {
            failures.push(format!("{peer_id}: bad identifier"));
            continue;
        };
        let Some(auth) = make_auth(
            k,
            &result,
            wire::msg::method::FROST_COMMIT,
            &session_id,
            peer_id,
            digest,
        ) else {
            return Response::error(ErrorCode::Internal, "could not sign the peer request");
        };
        let req = Request::FrostCommit(FrostCommitParams {
            session_id: session_id.to_vec(),
            digest: digest.to_vec(),
            target_kernel_id: peer_id.clone(),
            peer: auth,
        });
        match peer_call(k, *port, &req, timeout).await {
            Ok(Response::FrostCommitment(c)) if c.identifier == entry.identifier => {
                match frost::round1::SigningCommitments::deserialize(&c.commitments) {
                    Ok(sc) => {
                        commitments.insert(ident, sc);
                        joined.push((peer_id.clone(), *port, ident));
                    }
                    Err(_) => failures.push(format!("{peer_id}: commitments do not decode")),
                }
            }
            Ok(Response::Error(e)) => failures.push(format!("{peer_id}: {}", e.message)),
            Ok(_) => failures.push(format!("{peer_id}: unexpected answer")),
            Err(e) => failures.push(format!("{peer_id}: {e}")),
        }
    }
    if commitments.len() < threshold {
        let reason = format!(
            "quorum lost: {} of {threshold} signers available; nothing signed ({})",
            commitments.len(),
            failures.join("; ")
        );
        tracing::warn!(%reason, "sign_digest refused");
        return Response::error(ErrorCode::QuorumLost, reason);
    }

    // Round 2.
    let pkg = frost::SigningPackage::new(commitments, digest);
    let Ok(pkg_bytes) = pkg.serialize() else {
        return Response::error(ErrorCode::Internal, "could not encode the signing package");
    };
    let mut shares = BTreeMap::new();
    match frost::round2::sign(&pkg, &my_nonces, &key_package) {
        Ok(s) => {
            shares.insert(*key_package.identifier(), s);
        }
        Err(e) => return Response::error(ErrorCode::Internal, format!("frost round 2: {e}")),
    }
    drop(my_nonces);
    for (peer_id, port, ident) in &joined {
        let Some(auth) = make_auth(
            k,
            &result,
            wire::msg::method::FROST_SIGN,
            &session_id,
            peer_id,
            &pkg_bytes,
        ) else {
            return Response::error(ErrorCode::Internal, "could not sign the peer request");
        };
        let req = Request::FrostSign(FrostSignParams {
            session_id: session_id.to_vec(),
            signing_package: pkg_bytes.clone(),
            target_kernel_id: peer_id.clone(),
            peer: auth,
        });
        match peer_call(k, *port, &req, timeout).await {
            Ok(Response::FrostShare(s)) => {
                match frost::round2::SignatureShare::deserialize(&s.share) {
                    Ok(share) => {
                        shares.insert(*ident, share);
                    }
                    Err(_) => {
                        return Response::error(
                            ErrorCode::QuorumLost,
                            format!("{peer_id}: share does not decode; nothing signed"),
                        )
                    }
                }
            }
            Ok(Response::Error(e)) => {
                return Response::error(
                    ErrorCode::QuorumLost,
                    format!("{peer_id}: {}; nothing signed", e.message),
                )
            }
            Ok(_) => {
                return Response::error(
                    ErrorCode::QuorumLost,
                    format!("{peer_id}: unexpected answer; nothing signed"),
                )
            }
            Err(e) => {
                return Response::error(
                    ErrorCode::QuorumLost,
                    format!("{peer_id}: {e}; nothing signed"),
                )
            }
        }
    }
    let sig = match frost::aggregate(&pkg, &shares, &public) {
        Ok(s) => s,
        Err(e) => {
            // Cheater detection names the signer whose share does not verify (a share over
            // another message, or from a share that is not the group's current one).
            let culprits: Vec<String> = match &e {
                frost::Error::InvalidSignatureShare { culprits } => culprits
                    .iter()
                    .map(|c| {
                        joined
                            .iter()
                            .find(|(_, _, id)| id == c)
                            .map(|(p, _, _)| p.clone())
                            .unwrap_or_else(|| k.cfg.kernel_id.clone())
                    })
                    .collect(),
                _ => Vec::new(),
            };
            return Response::error(
                ErrorCode::Unauthorized,
                format!(
                    "aggregation failed: invalid signature share from [{}] (wrong message or stale share): {e}; nothing signed",
                    culprits.join(", ")
                ),
            );
        }
    };
    if public.verifying_key().verify(digest, &sig).is_err() {
        return Response::error(
            ErrorCode::Internal,
            "aggregated signature does not verify; discarded",
        );
    }
    let (Ok(sig_bytes), Ok(group)) = (sig.serialize(), public.verifying_key().serialize()) else {
        return Response::error(ErrorCode::Internal, "could not encode the signature");
    };
    let mut names = vec![k.cfg.kernel_id.clone()];
    names.extend(joined.iter().map(|(id, _, _)| id.clone()));
    if audit {
        let _ = k
            .audit
            .append(crate::audit::NewEvent {
                session_id: hex::encode(session_id),
                kind: events::SIGNING.into(),
                body: wire::encode(&("signature", serde_bytes::Bytes::new(digest), &names))
                    .unwrap_or_default(),
            })
            .await;
    }
    Response::Signature(SignatureInfo {
        signature: sig_bytes,
        group_public_key: group,
        signers: names,
    })
}

/// Most idle connections kept open per peer port.
pub const POOL_PER_PEER: usize = 32;

/// One request to the peer behind host port `port`, on a pooled connection when one is
/// idle (a peer serves many requests per connection); a pooled connection that fails (closed
/// by an idle timeout or a restart) or answers `not_serving` is dropped and the request goes
/// once more on a fresh one.
/// The answer is whatever the peer said; the caller judges it.
pub(crate) async fn peer_call(
    k: &Arc<Kernel>,
    port: u32,
    req: &Request,
    timeout: Duration,
) -> Result<Response, String> {
    let pooled = k
        .peer_pool
        .lock()
        .ok()
        .and_then(|mut p| p.get_mut(&port).and_then(Vec::pop));
    let fut = async {
        if let Some(mut s) = pooled {
            match call::<_, Response>(s.as_mut(), req).await {
                // "Not serving" on an old connection may come from an instance that has been
                // replaced since (a restarted kernel): ask the one serving now.
                Ok(Response::Error(e)) if e.code == ErrorCode::NotServing => {}
                Ok(r) => return Ok((r, s)),
                Err(_) => {}
            }
        }
        // Mutually attested TLS to the peer (crate::peer_link): nothing in the clear.
        let mut s = crate::peer_link::dial(k, port).await?;
        let r = call::<_, Response>(s.as_mut(), req)
            .await
            .map_err(|e| crate::boot::error_chain(&e))?;
        Ok((r, s))
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok((r, s))) => {
            if let Ok(mut p) = k.peer_pool.lock() {
                let idle = p.entry(port).or_default();
                if idle.len() < POOL_PER_PEER {
                    idle.push(s);
                }
            }
            Ok(r)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}
