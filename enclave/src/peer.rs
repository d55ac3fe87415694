//! PEER (draft-sato-soos-peer-00): a cross-principal transaction between two kernels, governed
//! before any payload moves.
//!
//! 1. `peer_hello` (initiator → responder): the initiator's KIA id, a fresh 32-byte nonce and
//!    its attested credential (verifier-signed result + attestation-key signature over the
//!    nonce). The responder checks the credential and that the nonce was never seen (a
//!    single-use cache over [`PEER_WINDOW_MS`]), and answers with its own nonce and
//!    credential, signed over both nonces.
//! 2. The initiator checks the responder's credential (mutual attestation; ALE-PEER-01), sets
//!    `initiated_at` to the time it received the responding nonce, and derives the `ptxn_id`
//!    ([`wire::xpid`]) over both KIA ids, `initiated_at` and both nonces.
//! 3. `peer_commit`: the PTR, signed by the initiator. The responder takes the pending hello
//!    (single use, within the window), re-derives the `ptxn_id`, records ALE-PEER-01 and
//!    ALE-PEER-02 and countersigns the PTR with its attestation key; the initiator checks the
//!    countersignature and records ALE-PEER-02. Only then does `peer_transaction` answer the
//!    client: the payload may go.
//! 4. `peer_complete` → `peer_done`: ALE-PEER-03 on both sides.
//!
//! Any failed check of the other side's attestation, a revoked KIA id, an uncertain
//! revocation status, a replayed nonce or an expired hello records ALE-PEER-04
//! (`PEER_ATTESTATION_FAILED`) on the side that saw it, and nothing further is sent. Both
//! kernels trust the same pinned verifier key here; federation across verifiers (KEE-2 §6)
//! is not built.

use crate::frost::{make_auth, peer_call, verify_peer};
use crate::kernel::{events, Kernel};
use crate::reattest::RevocationView;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wire::msg::{
    method, ErrorCode, PeerAuth, PeerCommitParams, PeerCompleteParams, PeerCompletedInfo,
    PeerDoneParams, PeerHelloInfo, PeerHelloParams, PeerRecordInfo, PeerTransactionParams,
    PeerTransactionRecord, Request, Response, TransactionClass, PTR_COUNTERSIGNATURE_CONTEXT,
};

/// A hello must be committed within this window; a nonce is remembered this long.
pub const PEER_WINDOW_MS: u64 = 30_000;
/// Bytes of each side's nonce.
pub const PEER_NONCE_BYTES: usize = 32;
/// Most hellos pending, nonces remembered and transactions open at once.
pub const MAX_PEER_STATE: usize = 4096;
/// Longest `domain_transaction_ref` / `acd_session_id` accepted.
pub const MAX_REF_BYTES: usize = 256;
/// Audit session of PEER events.
pub const PEER_SESSION: &str = "peer";

struct Hello {
    initiator: String,
    ak_public: Vec<u8>,
    responding_nonce: [u8; PEER_NONCE_BYTES],
    class: TransactionClass,
    created: Instant,
    created_ms: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Initiator,
    Responder,
}

struct Txn {
    role: Role,
    peer: String,
    completed: bool,
}

/// PEER state of one kernel: pending hellos, the nonce cache, open transactions.
#[derive(Default)]
pub struct PeerState {
    hellos: Mutex<HashMap<[u8; PEER_NONCE_BYTES], Hello>>,
    seen: Mutex<HashMap<Vec<u8>, Instant>>,
    txns: Mutex<HashMap<String, Txn>>,
}

impl std::fmt::Debug for PeerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerState").finish_non_exhaustive()
    }
}

impl PeerState {
    /// Records `nonce` as used; `false` if it was seen within the window or the cache is
    /// full (fail closed).
    fn first_use(&self, nonce: &[u8], now: Instant) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        let window = Duration::from_millis(PEER_WINDOW_MS);
        seen.retain(|_, at| now.saturating_duration_since(*at) <= window);
        if seen.contains_key(nonce) || seen.len() >= MAX_PEER_STATE {
            return false;
        }
        seen.insert(nonce.to_vec(), now);
        true
    }
}

#[derive(Serialize)]
struct Failed<'a> {
    stage: &'a str,
    peer: &'a str,
    reason: &'a str,
}

#[derive(Serialize)]
struct Mutual<'a> {
    role: &'a str,
    peer: &'a str,
    initiating_nonce: &'a str,
    responding_nonce: &'a str,
}

#[derive(Serialize)]
struct Issued<'a> {
    role: &'a str,
    ptr: &'a PeerTransactionRecord,
    #[serde(with = "serde_bytes")]
    responding_countersignature: &'a [u8],
}

#[derive(Serialize)]
struct Completed<'a> {
    role: &'a str,
    ptxn_id: &'a str,
    peer: &'a str,
}

/// Records ALE-PEER-04 and returns the refusal the caller gets.
async fn failed(k: &Kernel, stage: &str, peer: &str, reason: &str) -> Response {
    {
        let mut span = k
            .otel
            .span(crate::otel::names::PEER_ATTESTATION_FAILED, PEER_SESSION);
        span.set_attr("soos.peer.stage", stage.to_string());
        span.set_attr("soos.peer.peer", peer.to_string());
        span.fail(reason.to_string());
    }
    tracing::warn!(kernel = %k.kernel_id(), %peer, %stage, %reason, "peer attestation failed");
    k.audit_event(
        events::PEER_ATTESTATION_FAILED,
        PEER_SESSION,
        &Failed {
            stage,
            peer,
            reason,
        },
    )
    .await;
    Response::error(
        ErrorCode::Refused,
        format!("peer attestation failed ({stage}): {reason}"),
    )
}

/// Whether this kernel may transact with `peer` now: its own revocation status is current,
/// and neither the verifier's peer list nor the revoked KIA ids name `peer` or this kernel.
fn revocation_gate(k: &Kernel, peer: &str) -> Result<(), String> {
    if let RevocationView::Unknown(why) = k.revocation_view() {
        return Err(format!("revocation status unknown: {why}"));
    }
    if k.self_revoked() || k.kia_revoked(k.kia_id()) {
        return Err(format!("this kernel (`{}`) is revoked", k.kia_id()));
    }
    if k.peer_revoked(peer) || k.kia_revoked(peer) {
        return Err(format!("`{peer}` is revoked"));
    }
    Ok(())
}

fn hello_payload(kia: &str, class: TransactionClass) -> Vec<u8> {
    wire::encode(&(kia, class)).unwrap_or_default()
}

fn pair(a: &[u8], b: &[u8]) -> Vec<u8> {
    [a, b].concat()
}

fn random_nonce() -> Option<[u8; PEER_NONCE_BYTES]> {
    let mut n = [0u8; PEER_NONCE_BYTES];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut n).ok()?;
    Some(n)
}

fn countersign_message(ptr: &[u8]) -> Vec<u8> {
    [PTR_COUNTERSIGNATURE_CONTEXT, ptr].concat()
}

fn derive(ptr: &PeerTransactionRecord) -> Result<String, String> {
    wire::xpid::derive(&wire::xpid::XpidInput {
        initiating_kia_id: &ptr.initiating_principal_kia,
        responding_kia_id: &ptr.responding_principal_kia,
        initiated_at: &ptr.initiated_at,
        initiating_nonce: &ptr.initiating_nonce,
        responding_nonce: &ptr.responding_nonce,
    })
    .map(|u| u.to_string())
    .map_err(|e| e.to_string())
}

/// Client → initiator: run steps 1-3 with `responder_kernel_id` and return the countersigned
/// PTR; nothing is answered before ALE-PEER-02 is durable on both sides.
pub async fn initiate(k: &Arc<Kernel>, p: &PeerTransactionParams) -> Response {
    let responder = p.responder_kernel_id.as_str();
    if p.domain_transaction_ref.len() > MAX_REF_BYTES || p.acd_session_id.len() > MAX_REF_BYTES {
        return Response::error(
            ErrorCode::BadRequest,
            format!("references are at most {MAX_REF_BYTES} bytes"),
        );
    }
    let Some(port) = k
        .cfg
        .peers
        .iter()
        .find(|(id, _)| id == responder)
        .map(|(_, port)| *port)
    else {
        return Response::error(
            ErrorCode::BadRequest,
            format!("`{responder}` is not a configured peer of this kernel"),
        );
    };
    if let Err(why) = revocation_gate(k, responder) {
        return failed(k, "pre-call", responder, &why).await;
    }
    let Some(credential) = k.peer_credential() else {
        return Response::error(ErrorCode::NotServing, "no affirming attestation result yet");
    };
    let Some(initiating_nonce) = random_nonce() else {
        return Response::error(ErrorCode::Internal, "no randomness");
    };
    let me = k.kia_id().to_string();
    let Some(auth) = make_auth(
        k,
        &credential,
        method::PEER_HELLO,
        &initiating_nonce,
        responder,
        &hello_payload(&me, p.transaction_class),
    ) else {
        return Response::error(ErrorCode::Internal, "attestation key could not sign");
    };
    let timeout = Duration::from_millis(k.cfg.peer_timeout_ms.max(1));
    let hello = Request::PeerHello(PeerHelloParams {
        initiating_kia_id: me.clone(),
        initiating_nonce: initiating_nonce.to_vec(),
        transaction_class: p.transaction_class,
        target_kernel_id: responder.to_string(),
        peer: auth,
    });
    let ack = match peer_call(k, port, &hello, timeout).await {
        Ok(Response::PeerHelloAck(a)) => a,
        Ok(Response::Error(e)) => {
            return failed(
                k,
                "hello",
                responder,
                &format!("responder refused: {}", e.message),
            )
            .await
        }
        Ok(_) => return failed(k, "hello", responder, "unexpected answer").await,
        Err(e) => return failed(k, "hello", responder, &format!("unreachable: {e}")).await,
    };
    let received_ms = attestation::now_ms();
    // Mutual attestation: the responder's credential, over both nonces.
    let check = (|| {
        if ack.peer.kernel_id != responder || ack.responding_kia_id != responder {
            return Err(format!(
                "answer comes from `{}` (KIA `{}`)",
                ack.peer.kernel_id, ack.responding_kia_id
            ));
        }
        if ack.responding_nonce.len() != PEER_NONCE_BYTES {
            return Err("responding nonce is not 32 bytes".to_string());
        }
        verify_peer(
            k,
            &ack.peer,
            method::PEER_HELLO,
            &pair(&initiating_nonce, &ack.responding_nonce),
            &me,
            ack.responding_kia_id.as_bytes(),
        )
    })();
    if let Err(why) = check {
        return failed(k, "hello-answer", responder, &why).await;
    }
    let ptr = PeerTransactionRecord {
        ptxn_id: String::new(),
        initiating_principal_kia: me.clone(),
        responding_principal_kia: ack.responding_kia_id.clone(),
        initiated_at: wire::xpid::rfc3339_ms(received_ms),
        initiating_nonce: hex::encode(initiating_nonce),
        responding_nonce: hex::encode(&ack.responding_nonce),
        transaction_class: p.transaction_class,
        domain_transaction_ref: p.domain_transaction_ref.clone(),
        acd_session_id: p.acd_session_id.clone(),
    };
    let ptxn_id = match derive(&ptr) {
        Ok(id) => id,
        Err(e) => return failed(k, "derive", responder, &e).await,
    };
    let ptr = PeerTransactionRecord { ptxn_id, ..ptr };
    k.audit_event(
        events::PEER_MUTUAL_ATTESTATION_COMPLETE,
        PEER_SESSION,
        &Mutual {
            role: "initiator",
            peer: responder,
            initiating_nonce: &ptr.initiating_nonce,
            responding_nonce: &ptr.responding_nonce,
        },
    )
    .await;
    let Ok(ptr_bytes) = wire::encode(&ptr) else {
        return Response::error(ErrorCode::Internal, "ptr does not encode");
    };
    let Some(auth) = make_auth(
        k,
        &credential,
        method::PEER_COMMIT,
        &pair(&initiating_nonce, &ack.responding_nonce),
        responder,
        &ptr_bytes,
    ) else {
        return Response::error(ErrorCode::Internal, "attestation key could not sign");
    };
    let commit = Request::PeerCommit(PeerCommitParams {
        ptr: ptr_bytes.clone(),
        target_kernel_id: responder.to_string(),
        peer: auth,
    });
    let rec = match peer_call(k, port, &commit, timeout).await {
        Ok(Response::PeerRecord(r)) => r,
        Ok(Response::Error(e)) => {
            return failed(
                k,
                "commit",
                responder,
                &format!("responder refused: {}", e.message),
            )
            .await
        }
        Ok(_) => return failed(k, "commit", responder, "unexpected answer").await,
        Err(e) => return failed(k, "commit", responder, &format!("unreachable: {e}")).await,
    };
    let countersigned = rec.ptr == ptr_bytes
        && rec.ptxn_id == ptr.ptxn_id
        && rec.responder_ak_public == ack.peer.ak_public
        && attestation::ak::verify_ak_signature(
            &rec.responder_ak_public,
            &countersign_message(&ptr_bytes),
            &rec.responding_countersignature,
        )
        .is_ok();
    if !countersigned {
        return failed(
            k,
            "countersignature",
            responder,
            "the responder's countersignature does not verify over this PTR",
        )
        .await;
    }
    let Some(ale_seq) = k
        .audit_seq(
            events::PEER_PTXN_ID_ISSUED,
            PEER_SESSION,
            &Issued {
                role: "initiator",
                ptr: &ptr,
                responding_countersignature: &rec.responding_countersignature,
            },
        )
        .await
    else {
        return Response::error(
            ErrorCode::Internal,
            "audit log unavailable; the transaction must not proceed",
        );
    };
    opened(k, &ptr.ptxn_id, Role::Initiator, responder, ale_seq);
    Response::PeerRecord(Box::new(PeerRecordInfo {
        ptxn_id: ptr.ptxn_id,
        ptr: ptr_bytes,
        responding_countersignature: rec.responding_countersignature,
        responder_ak_public: rec.responder_ak_public,
        responder_result: rec.responder_result,
        ale_seq,
    }))
}

/// Responder, step 1.
pub async fn on_hello(k: &Arc<Kernel>, p: &PeerHelloParams) -> Response {
    let initiator = p.peer.kernel_id.as_str();
    let me = k.kia_id().to_string();
    let check = (|| {
        if p.target_kernel_id != me {
            return Err(format!("hello is addressed to `{}`", p.target_kernel_id));
        }
        if p.initiating_kia_id != initiator || initiator == me {
            return Err(format!(
                "KIA id `{}` does not match the credential of `{initiator}`",
                p.initiating_kia_id
            ));
        }
        if p.initiating_nonce.len() != PEER_NONCE_BYTES {
            return Err("initiating nonce is not 32 bytes".to_string());
        }
        revocation_gate(k, initiator)?;
        verify_peer(
            k,
            &p.peer,
            method::PEER_HELLO,
            &p.initiating_nonce,
            &me,
            &hello_payload(&p.initiating_kia_id, p.transaction_class),
        )
    })();
    if let Err(why) = check {
        return failed(k, "hello", initiator, &why).await;
    }
    let now = Instant::now();
    if !k.peer.first_use(&p.initiating_nonce, now) {
        return failed(
            k,
            "hello",
            initiator,
            "initiating nonce already used (replay) or nonce cache full",
        )
        .await;
    }
    let (Some(credential), Some(responding_nonce)) = (k.peer_credential(), random_nonce()) else {
        return Response::error(ErrorCode::NotServing, "no affirming attestation result yet");
    };
    let Some(auth) = make_auth(
        k,
        &credential,
        method::PEER_HELLO,
        &pair(&p.initiating_nonce, &responding_nonce),
        initiator,
        me.as_bytes(),
    ) else {
        return Response::error(ErrorCode::Internal, "attestation key could not sign");
    };
    let mut key = [0u8; PEER_NONCE_BYTES];
    key.copy_from_slice(&p.initiating_nonce);
    let stored = k.peer.hellos.lock().is_ok_and(|mut h| {
        let window = Duration::from_millis(PEER_WINDOW_MS);
        h.retain(|_, x| now.saturating_duration_since(x.created) <= window);
        if h.len() >= MAX_PEER_STATE {
            return false;
        }
        h.insert(
            key,
            Hello {
                initiator: initiator.to_string(),
                ak_public: p.peer.ak_public.clone(),
                responding_nonce,
                class: p.transaction_class,
                created: now,
                created_ms: attestation::now_ms(),
            },
        );
        true
    });
    if !stored {
        return Response::error(ErrorCode::Busy, "too many pending peer hellos");
    }
    Response::PeerHelloAck(Box::new(PeerHelloInfo {
        responding_kia_id: me,
        responding_nonce: responding_nonce.to_vec(),
        peer: auth,
    }))
}

/// Responder, step 3: check and countersign the PTR.
pub async fn on_commit(k: &Arc<Kernel>, p: &PeerCommitParams) -> Response {
    let initiator = p.peer.kernel_id.as_str();
    let me = k.kia_id().to_string();
    let ptr: PeerTransactionRecord = match wire::decode(&p.ptr) {
        Ok(r) => r,
        Err(e) => return Response::error(ErrorCode::BadRequest, format!("ptr: {e}")),
    };
    let Some(key) = hex::decode(&ptr.initiating_nonce)
        .ok()
        .and_then(|n| <[u8; PEER_NONCE_BYTES]>::try_from(n).ok())
    else {
        return failed(
            k,
            "commit",
            initiator,
            "initiating nonce is not 32 hex bytes",
        )
        .await;
    };
    // Single use: the hello is taken whatever the outcome.
    let hello = k.peer.hellos.lock().ok().and_then(|mut h| h.remove(&key));
    let Some(hello) = hello else {
        return failed(
            k,
            "commit",
            initiator,
            "no pending hello for this nonce (expired, used or never sent)",
        )
        .await;
    };
    let now_ms = attestation::now_ms();
    let check = (|| {
        if p.target_kernel_id != me || ptr.responding_principal_kia != me {
            return Err(format!(
                "ptr names responder `{}`",
                ptr.responding_principal_kia
            ));
        }
        if hello.initiator != initiator || ptr.initiating_principal_kia != initiator {
            return Err(format!(
                "ptr names initiator `{}`",
                ptr.initiating_principal_kia
            ));
        }
        if p.peer.ak_public != hello.ak_public {
            return Err("commit is signed by another attestation key than the hello".into());
        }
        if ptr.responding_nonce != hex::encode(hello.responding_nonce) {
            return Err("ptr carries another responding nonce".into());
        }
        if ptr.transaction_class != hello.class {
            return Err("ptr carries another transaction class".into());
        }
        if hello.created.elapsed() > Duration::from_millis(PEER_WINDOW_MS) {
            return Err(format!("hello older than {PEER_WINDOW_MS} ms"));
        }
        // Fixed-width RFC 3339: string order is time order.
        let (lo, hi) = (
            wire::xpid::rfc3339_ms(hello.created_ms),
            wire::xpid::rfc3339_ms(now_ms),
        );
        if ptr.initiated_at < lo || ptr.initiated_at > hi || ptr.initiated_at.len() != lo.len() {
            return Err(format!(
                "initiated_at `{}` is outside the hello window",
                ptr.initiated_at
            ));
        }
        if ptr.domain_transaction_ref.len() > MAX_REF_BYTES
            || ptr.acd_session_id.len() > MAX_REF_BYTES
        {
            return Err(format!("references are at most {MAX_REF_BYTES} bytes"));
        }
        if derive(&ptr)? != ptr.ptxn_id {
            return Err("ptxn_id is not the derivation of the ptr's fields".into());
        }
        revocation_gate(k, initiator)?;
        verify_peer(
            k,
            &p.peer,
            method::PEER_COMMIT,
            &pair(&key, &hello.responding_nonce),
            &me,
            &p.ptr,
        )
    })();
    if let Err(why) = check {
        return failed(k, "commit", initiator, &why).await;
    }
    let Some(credential) = k.peer_credential() else {
        return Response::error(ErrorCode::NotServing, "no affirming attestation result yet");
    };
    let Ok(countersignature) = k.ak.sign(&countersign_message(&p.ptr)) else {
        return Response::error(ErrorCode::Internal, "attestation key could not sign");
    };
    k.audit_event(
        events::PEER_MUTUAL_ATTESTATION_COMPLETE,
        PEER_SESSION,
        &Mutual {
            role: "responder",
            peer: initiator,
            initiating_nonce: &ptr.initiating_nonce,
            responding_nonce: &ptr.responding_nonce,
        },
    )
    .await;
    let Some(ale_seq) = k
        .audit_seq(
            events::PEER_PTXN_ID_ISSUED,
            PEER_SESSION,
            &Issued {
                role: "responder",
                ptr: &ptr,
                responding_countersignature: &countersignature,
            },
        )
        .await
    else {
        return Response::error(
            ErrorCode::Internal,
            "audit log unavailable; ptr not countersigned",
        );
    };
    opened(k, &ptr.ptxn_id, Role::Responder, initiator, ale_seq);
    Response::PeerRecord(Box::new(PeerRecordInfo {
        ptxn_id: ptr.ptxn_id,
        ptr: p.ptr.clone(),
        responding_countersignature: countersignature,
        responder_ak_public: k.ak.public_key().to_vec(),
        responder_result: credential,
        ale_seq,
    }))
}

/// A PTR is recorded on this side: its span, and the transaction open for completion.
fn opened(k: &Kernel, ptxn_id: &str, role: Role, peer: &str, ale_seq: u64) {
    let mut span = k
        .otel
        .span(crate::otel::names::PEER_TRANSACTION, PEER_SESSION);
    span.set_attr(
        "soos.peer.role",
        if role == Role::Initiator {
            "initiator"
        } else {
            "responder"
        },
    );
    span.set_attr("soos.peer.peer", peer.to_string());
    span.set_attr("soos.peer.ptxn_id", ptxn_id.to_string());
    span.set_u64("soos.gar.ale_seq", ale_seq);
    if let Ok(mut t) = k.peer.txns.lock() {
        if t.len() < MAX_PEER_STATE {
            t.insert(
                ptxn_id.to_string(),
                Txn {
                    role,
                    peer: peer.to_string(),
                    completed: false,
                },
            );
        }
    }
}

fn open_txn(k: &Kernel, ptxn_id: &str, role: Role) -> Result<String, String> {
    let t = k.peer.txns.lock().map_err(|_| "peer state lock poisoned")?;
    match t.get(ptxn_id) {
        Some(x) if x.role == role && !x.completed => Ok(x.peer.clone()),
        Some(x) if x.completed => Err(format!("transaction `{ptxn_id}` already completed")),
        _ => Err(format!("no open transaction `{ptxn_id}` in this role")),
    }
}

fn mark_completed(k: &Kernel, ptxn_id: &str) {
    if let Ok(mut t) = k.peer.txns.lock() {
        if let Some(x) = t.get_mut(ptxn_id) {
            x.completed = true;
        }
    }
}

/// Client → initiator: the payload went; tell the responder, then record ALE-PEER-03.
pub async fn complete(k: &Arc<Kernel>, p: &PeerCompleteParams) -> Response {
    let responder = match open_txn(k, &p.ptxn_id, Role::Initiator) {
        Ok(r) => r,
        Err(why) => return Response::error(ErrorCode::BadRequest, why),
    };
    let Some(port) = k
        .cfg
        .peers
        .iter()
        .find(|(id, _)| *id == responder)
        .map(|(_, port)| *port)
    else {
        return Response::error(ErrorCode::Internal, "responder is no longer a peer");
    };
    let Some(credential) = k.peer_credential() else {
        return Response::error(ErrorCode::NotServing, "no affirming attestation result yet");
    };
    let Some(auth) = make_auth(
        k,
        &credential,
        method::PEER_DONE,
        p.ptxn_id.as_bytes(),
        &responder,
        p.ptxn_id.as_bytes(),
    ) else {
        return Response::error(ErrorCode::Internal, "attestation key could not sign");
    };
    let req = Request::PeerDone(PeerDoneParams {
        ptxn_id: p.ptxn_id.clone(),
        target_kernel_id: responder.clone(),
        peer: auth,
    });
    let timeout = Duration::from_millis(k.cfg.peer_timeout_ms.max(1));
    match peer_call(k, port, &req, timeout).await {
        Ok(Response::PeerCompleted(c)) if c.ptxn_id == p.ptxn_id => {}
        Ok(Response::Error(e)) => {
            return Response::error(e.code, format!("responder: {}", e.message))
        }
        Ok(_) => return Response::error(ErrorCode::Internal, "unexpected answer"),
        Err(e) => return Response::error(ErrorCode::Internal, format!("responder: {e}")),
    }
    record_completed(k, &p.ptxn_id, "initiator", &responder).await
}

/// Responder: the initiator says the transaction completed.
pub async fn on_done(k: &Arc<Kernel>, p: &PeerDoneParams) -> Response {
    let initiator = p.peer.kernel_id.as_str();
    let check = (|| {
        let peer = open_txn(k, &p.ptxn_id, Role::Responder)?;
        if peer != initiator {
            return Err(format!("transaction belongs to `{peer}`"));
        }
        verify_peer(
            k,
            &p.peer,
            method::PEER_DONE,
            p.ptxn_id.as_bytes(),
            &p.target_kernel_id,
            p.ptxn_id.as_bytes(),
        )?;
        if p.target_kernel_id != k.kia_id() {
            return Err(format!("addressed to `{}`", p.target_kernel_id));
        }
        Ok(())
    })();
    if let Err(why) = check {
        return Response::error(ErrorCode::Unauthorized, why);
    }
    record_completed(k, &p.ptxn_id, "responder", initiator).await
}

async fn record_completed(k: &Kernel, ptxn_id: &str, role: &str, peer: &str) -> Response {
    let Some(ale_seq) = k
        .audit_seq(
            events::PEER_TRANSACTION_COMPLETE,
            PEER_SESSION,
            &Completed {
                role,
                ptxn_id,
                peer,
            },
        )
        .await
    else {
        return Response::error(ErrorCode::Internal, "audit log unavailable");
    };
    mark_completed(k, ptxn_id);
    Response::PeerCompleted(PeerCompletedInfo {
        ptxn_id: ptxn_id.to_string(),
        ale_seq,
    })
}

/// Test hook: the PEER auth a kernel would send, for refusal tests.
#[doc(hidden)]
pub fn auth_for_test(
    k: &Kernel,
    method: &str,
    session: &[u8],
    target: &str,
    payload: &[u8],
) -> Option<PeerAuth> {
    make_auth(k, &k.peer_credential()?, method, session, target, payload)
}
