//! KEE-1 P3 (ACD four-check), P8 (KIA-id and XPID revocation with CLEAN/PARTIAL/UNKNOWN
//! propagation), PEER transactions and `end_session`, on real parts: three kernels on swtpm,
//! the verifier's SQLite registry, real sockets through the host proxies.
//!
//! One cluster for the whole file (a second cluster in the same process can stall a boot; see
//! docs/testing.md), so the steps run in order in one test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "test code: any failure should stop the run loudly"
)]

use crate::common;

use attestation::acd::{verify_acd, verify_ptr, RecordError};
use common::*;
use std::time::Duration;
use verifier::registry::IdentityKind;
use wire::msg::{
    method, AcdIssueParams, Decision, DecisionInfo, EndSessionParams, ErrorCode, EvaluateParams,
    PeerCompleteParams, PeerHelloParams, PeerTransactionParams, PeerTransactionRecord, Request,
    Response, TransactionClass,
};

const BOOT: Duration = Duration::from_secs(120);
const WAIT: Duration = Duration::from_secs(60);

fn xpid(agent: &str) -> String {
    wire::xpid::derive(&wire::xpid::XpidInput {
        initiating_kia_id: "k1",
        responding_kia_id: agent,
        initiated_at: "2026-12-06T05:00:00.000Z",
        initiating_nonce: "00112233445566778899aabbccddeeff",
        responding_nonce: "ffeeddccbbaa99887766554433221100",
    })
    .unwrap()
    .to_string()
}

async fn acd(n: &Node, agent_xpid: &str, nonce: &[u8]) -> Response {
    call(
        &n.public,
        &Request::AcdIssue(AcdIssueParams {
            agent_xpid: agent_xpid.into(),
            agent_kia_id: String::new(),
            resource_provider: "rp:gov-api-gateway".into(),
            nonce: nonce.to_vec(),
            session_id: "acd-test".into(),
        }),
    )
    .await
}

async fn evaluate(n: &Node, session: &str, agent_xpid: &str) -> DecisionInfo {
    match call(
        &n.public,
        &Request::Evaluate(EvaluateParams {
            principal: "Agent::\"planner\"".into(),
            action: "Action::\"read\"".into(),
            resource: "Dataset::\"census\"".into(),
            context_json: r#"{"purpose":"relief"}"#.into(),
            entities_json: String::new(),
            session_id: session.into(),
            agent_xpid: agent_xpid.into(),
        }),
    )
    .await
    {
        Response::Decision(d) => d,
        other => panic!("evaluate: {other:?}"),
    }
}

fn refused(r: &Response, code: ErrorCode, needle: &str) -> bool {
    matches!(r, Response::Error(e) if e.code == code && e.message.contains(needle))
}

fn kinds(n: &Node, kind: &str) -> Vec<serde_json::Value> {
    n.kernel
        .audit_log()
        .events_of_kind(kind)
        .unwrap()
        .into_iter()
        .map(|a| {
            let v: ciborium::Value = ciborium::from_reader(a.body.as_slice()).unwrap();
            serde_json::to_value(&v).unwrap_or(serde_json::Value::Null)
        })
        .collect()
}

fn count(n: &Node, kind: &str) -> usize {
    n.kernel.audit_log().events_of_kind(kind).unwrap().len()
}

/// Revokes an identity and waits until every kernel acknowledged it (`clean`).
fn revoke(
    c: &Cluster,
    kind: IdentityKind,
    subject: &str,
) -> verifier::registry::IdentityRevocation {
    let r = verifier::ops::revoke_identity(
        &c.store,
        kind,
        subject,
        "test revocation",
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(r.completion.as_deref(), Some("clean"), "{r:?}");
    assert_eq!(r.targets, Some(3), "{r:?}");
    assert_eq!(r.acked, Some(3), "{r:?}");
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acd_four_check_revocation_peer_and_session_end() {
    let c = Cluster::start(Options {
        monitor: fast_monitor(),
        reattest: fast_reattest(),
        relays: true,
        ..Options::default()
    })
    .await;
    c.settle(BOOT).await;
    let (k1, k2, k3) = (c.node("k1"), c.node("k2"), c.node("k3"));
    let vk = k1.cfg.verifier_public_key.clone();
    // The feed must have answered once before revocation status is known.
    c.wait_for("feeds current", WAIT, |c| {
        c.nodes.iter().all(|n| {
            matches!(
                n.kernel.revocation_view(),
                enclave::reattest::RevocationView::Clean
            )
        })
    })
    .await;

    // --- P3: a record when all four checks pass, verifiable offline.
    let agent = xpid("agent-a");
    let nonce = [7u8; 32];
    let Response::Acd(info) = acd(k1, &agent, &nonce).await else {
        panic!("acd refused")
    };
    let now = attestation::now_ms();
    let v = verify_acd(&info, &vk, now, Some(&nonce)).unwrap();
    assert_eq!(v.record.kernel_id, "k1");
    assert_eq!(v.record.agent_xpid, agent);
    assert_eq!(
        v.record
            .checks
            .iter()
            .map(|c| c.check.as_str())
            .collect::<Vec<_>>(),
        attestation::acd::ACD_CHECKS
    );
    assert!(v.record.checks.iter().all(|c| c.passed));
    assert_eq!(
        v.record.cedar_policy_hash,
        v.record.manifest_cap_profile_hash
    );
    assert_eq!(v.record.catalog_version, 0);
    assert!(info.ale_seq > 0);
    assert_eq!(count(k1, enclave::kernel::events::ACD_ISSUED), 1);
    // Offline refusals: another nonce, a flipped record byte, another verifier key, expiry.
    assert!(matches!(
        verify_acd(&info, &vk, now, Some(&[8u8; 32])),
        Err(RecordError::Nonce)
    ));
    let mut bad = (*info).clone();
    let last = bad.record.len() - 1;
    bad.record[last] ^= 1;
    assert!(verify_acd(&bad, &vk, now, None).is_err());
    assert!(matches!(
        verify_acd(&info, &[3u8; 32], now, None),
        Err(RecordError::Result(_))
    ));
    assert!(matches!(
        verify_acd(&info, &vk, v.record.expires_at_ms + 1, None),
        Err(RecordError::Expired(..))
    ));
    // Every flipped bit and every truncation of the real answer is refused (only the unsigned
    // `ale_seq` may change without consequence).
    let bytes = wire::encode(&*info).unwrap();
    let same = |x: &wire::msg::AcdInfo| {
        let (mut a, mut b) = (x.clone(), (*info).clone());
        a.ale_seq = 0;
        b.ale_seq = 0;
        a == b
    };
    for i in 0..bytes.len() {
        for bit in [0x01u8, 0x80] {
            let mut m = bytes.clone();
            m[i] ^= bit;
            if let Ok(x) = wire::decode::<wire::msg::AcdInfo>(&m) {
                if verify_acd(&x, &vk, now, Some(&nonce)).is_ok() {
                    assert!(same(&x), "flip at byte {i} still verifies");
                }
            }
        }
        if let Ok(x) = wire::decode::<wire::msg::AcdInfo>(&bytes[..i]) {
            assert!(verify_acd(&x, &vk, now, Some(&nonce)).is_err() || same(&x));
        }
    }
    // Malformed requests: typed refusals, audited, no record.
    assert!(refused(
        &acd(k1, &agent, &[1, 2, 3]).await,
        ErrorCode::BadRequest,
        "nonce"
    ));
    let r = acd(k1, "not-a-uuid", &nonce).await;
    assert!(
        refused(&r, ErrorCode::Refused, "`xpid_not_revoked`"),
        "{r:?}"
    );
    assert_eq!(count(k1, enclave::kernel::events::ACD_ISSUED), 1);
    assert!(count(k1, enclave::kernel::events::ACD_REFUSED) >= 2);

    // --- P8: an XPID revoked at the verifier reaches every kernel (clean), then denies.
    let revoked = xpid("agent-revoked");
    assert_eq!(
        evaluate(k2, "s-xpid", &revoked).await.decision,
        Decision::Allow
    );
    let r = revoke(&c, IdentityKind::Xpid, &revoked);
    assert_eq!(r.subject, revoked);
    let view = verifier::ops::revocations(&c.store, 10).unwrap();
    let row = view
        .revocations
        .iter()
        .find(|x| x.kernel_id == format!("xpid:{revoked}"))
        .unwrap();
    assert_eq!(
        (row.cause.as_str(), row.completion.as_str()),
        ("identity", "clean")
    );
    for n in [k1, k2, k3] {
        let d = evaluate(n, "s-xpid", &revoked).await;
        assert_eq!(d.decision, Decision::Deny, "{}: {d:?}", n.id);
        assert!(d.reasons.iter().any(|r| r.contains("is revoked")), "{d:?}");
        // Another agent is unaffected.
        assert_eq!(
            evaluate(n, "s-xpid", &agent).await.decision,
            Decision::Allow
        );
    }
    let r = acd(k3, &revoked, &nonce).await;
    assert!(
        refused(&r, ErrorCode::Refused, "`xpid_not_revoked`: XPID"),
        "{r:?}"
    );
    let refusal = kinds(k3, enclave::kernel::events::ACD_REFUSED);
    assert!(refusal.last().unwrap().to_string().contains("is revoked"));
    // Revoking twice keeps the first revocation.
    let again = verifier::ops::revoke_identity(
        &c.store,
        IdentityKind::Xpid,
        &revoked,
        "again",
        Duration::ZERO,
    )
    .unwrap();
    assert_eq!(again.reason, "test revocation");

    // --- PEER: k1 → k3, mutual attestation, jointly derived ptxn_id, countersigned PTR.
    let Response::PeerRecord(rec) = call(
        &k1.public,
        &Request::PeerTransaction(PeerTransactionParams {
            responder_kernel_id: "k3".into(),
            transaction_class: TransactionClass::BookingRequest,
            domain_transaction_ref: "atp-booking-0042".into(),
            acd_session_id: v.record.acd_session_id.clone(),
        }),
    )
    .await
    else {
        panic!("peer transaction refused")
    };
    let ptr: PeerTransactionRecord = wire::decode(&rec.ptr).unwrap();
    let checked = verify_ptr(&rec, &vk, attestation::now_ms()).unwrap();
    assert_eq!(checked.ptr.ptxn_id, rec.ptxn_id);
    assert_eq!(checked.responder.kernel_id, "k3");
    assert_eq!(
        (
            ptr.initiating_principal_kia.as_str(),
            ptr.responding_principal_kia.as_str()
        ),
        ("k1", "k3")
    );
    assert_ne!(ptr.initiating_nonce, ptr.responding_nonce);
    // Both logs hold ALE-PEER-01 and -02 with the same ptxn_id before the client got it.
    for n in [k1, k3] {
        assert_eq!(
            count(n, enclave::kernel::events::PEER_MUTUAL_ATTESTATION_COMPLETE),
            1
        );
        let issued = kinds(n, enclave::kernel::events::PEER_PTXN_ID_ISSUED);
        assert_eq!(issued.len(), 1, "{}", n.id);
        assert!(issued[0].to_string().contains(&rec.ptxn_id), "{}", n.id);
    }
    let bytes = wire::encode(&*rec).unwrap();
    for i in 0..bytes.len() {
        let mut m = bytes.clone();
        m[i] ^= 0x04;
        if let Ok(x) = wire::decode::<wire::msg::PeerRecordInfo>(&m) {
            if verify_ptr(&x, &vk, attestation::now_ms()).is_ok() {
                let (mut a, mut b) = (x.clone(), (*rec).clone());
                a.ale_seq = 0;
                b.ale_seq = 0;
                assert_eq!(a, b, "flip at byte {i} still verifies");
            }
        }
        assert!(wire::decode::<wire::msg::PeerRecordInfo>(&bytes[..i]).is_err());
    }
    // A tampered countersignature or PTR does not verify offline.
    let mut bad = (*rec).clone();
    bad.responding_countersignature[5] ^= 1;
    assert!(matches!(
        verify_ptr(&bad, &vk, attestation::now_ms()),
        Err(RecordError::Signature)
    ));
    let mut bad_ptr = ptr.clone();
    bad_ptr.domain_transaction_ref = "atp-booking-0043".into();
    let mut bad = (*rec).clone();
    bad.ptr = wire::encode(&bad_ptr).unwrap();
    assert!(verify_ptr(&bad, &vk, attestation::now_ms()).is_err());
    // Completion: ALE-PEER-03 on both sides, once.
    let done = call(
        &k1.public,
        &Request::PeerComplete(PeerCompleteParams {
            ptxn_id: rec.ptxn_id.clone(),
        }),
    )
    .await;
    assert!(
        matches!(&done, Response::PeerCompleted(d) if d.ptxn_id == rec.ptxn_id),
        "{done:?}"
    );
    for n in [k1, k3] {
        assert_eq!(
            count(n, enclave::kernel::events::PEER_TRANSACTION_COMPLETE),
            1
        );
    }
    let again = call(
        &k1.public,
        &Request::PeerComplete(PeerCompleteParams {
            ptxn_id: rec.ptxn_id.clone(),
        }),
    )
    .await;
    assert!(
        refused(&again, ErrorCode::BadRequest, "already completed"),
        "{again:?}"
    );

    // A replayed hello nonce is refused and recorded as ALE-PEER-04 by the responder.
    let hello = |nonce: Vec<u8>, payload_kia: &str| {
        let payload = wire::encode(&(payload_kia, TransactionClass::ApiCall)).unwrap();
        Request::PeerHello(PeerHelloParams {
            initiating_kia_id: "k1".into(),
            initiating_nonce: nonce.clone(),
            transaction_class: TransactionClass::ApiCall,
            target_kernel_id: "k3".into(),
            peer: enclave::peer::auth_for_test(
                &k1.kernel,
                method::PEER_HELLO,
                &nonce,
                "k3",
                &payload,
            )
            .unwrap(),
        })
    };
    // Peer methods never pass the proxy in plaintext (they travel in mutually attested TLS);
    // the responder's own checks are driven in-process here.
    let plain = call(&k3.public, &hello(vec![8; 32], "k1")).await;
    assert!(
        refused(&plain, ErrorCode::MethodNotAllowed, ""),
        "{plain:?}"
    );
    let failed_before = count(k3, enclave::kernel::events::PEER_ATTESTATION_FAILED);
    let first = k3.kernel.handle(hello(vec![9; 32], "k1")).await;
    assert!(matches!(first, Response::PeerHelloAck(_)), "{first:?}");
    let replay = k3.kernel.handle(hello(vec![9; 32], "k1")).await;
    assert!(refused(&replay, ErrorCode::Refused, "replay"), "{replay:?}");
    // A credential signed over other bytes does not pass either.
    let forged = k3.kernel.handle(hello(vec![10; 32], "k2")).await;
    assert!(
        refused(&forged, ErrorCode::Refused, "signature does not verify"),
        "{forged:?}"
    );
    assert_eq!(
        count(k3, enclave::kernel::events::PEER_ATTESTATION_FAILED),
        failed_before + 2
    );

    // --- P8 / P3 check 3: a revoked KIA id: no PEER with it, no ACD record from it.
    revoke(&c, IdentityKind::Kia, "k2");
    let r = call(
        &k1.public,
        &Request::PeerTransaction(PeerTransactionParams {
            responder_kernel_id: "k2".into(),
            transaction_class: TransactionClass::ApiCall,
            domain_transaction_ref: String::new(),
            acd_session_id: String::new(),
        }),
    )
    .await;
    assert!(refused(&r, ErrorCode::Refused, "`k2` is revoked"), "{r:?}");
    let failed = kinds(k1, enclave::kernel::events::PEER_ATTESTATION_FAILED);
    assert!(failed.last().unwrap().to_string().contains("k2"));
    assert_eq!(count(k2, enclave::kernel::events::PEER_PTXN_ID_ISSUED), 0);
    let r = acd(k2, &agent, &nonce).await;
    assert!(
        refused(&r, ErrorCode::Refused, "`kia_not_revoked`"),
        "{r:?}"
    );

    // --- end_session: the session's block closes and is signed.
    let mut seqs = Vec::new();
    for _ in 0..3 {
        seqs.push(evaluate(k1, "gov-session-1", "").await.ale_seq);
    }
    let ended = call(
        &k1.public,
        &Request::EndSession(EndSessionParams {
            session_id: "gov-session-1".into(),
        }),
    )
    .await;
    let Response::SessionEnded(e) = ended else {
        panic!("end_session: {ended:?}")
    };
    assert!(e.ale_seq > *seqs.last().unwrap());
    seqs.push(e.ale_seq);
    c.wait_for("the ended session's block signed", WAIT, |c| {
        let log = c.node("k1").kernel.audit_log();
        log.blocks_covering(seqs[0], e.ale_seq).unwrap().1 >= 4
            && log.pending_blocks().unwrap().is_empty()
    })
    .await;
    let bad = call(
        &k1.public,
        &Request::EndSession(EndSessionParams {
            session_id: String::new(),
        }),
    )
    .await;
    assert!(
        refused(&bad, ErrorCode::BadRequest, "session_id"),
        "{bad:?}"
    );

    // --- P8 fail closed: k1's feed cut past its timeout = revocation status unknown.
    k1.relay.as_ref().unwrap().set_cut(true);
    c.wait_for("k1's revocation status unknown", WAIT, |c| {
        matches!(
            c.node("k1").kernel.revocation_view(),
            enclave::reattest::RevocationView::Unknown(_)
        )
    })
    .await;
    let r = acd(k1, &agent, &nonce).await;
    assert!(
        refused(&r, ErrorCode::Refused, "revocation status unknown"),
        "{r:?}"
    );
    let d = evaluate(k1, "s-unknown", &agent).await;
    assert_eq!(d.decision, Decision::Deny);
    assert!(
        d.reasons
            .iter()
            .any(|r| r.contains("revocation status unknown")),
        "{d:?}"
    );
    // Without an XPID the decision is the policy's (only XPID-bound calls need the feed).
    assert_eq!(
        evaluate(k1, "s-unknown", "").await.decision,
        Decision::Allow
    );
    k1.relay.as_ref().unwrap().set_cut(false);
    // Once the feed is back (and, if the verifier revoked k1 for the missed challenges, a
    // fresh affirming answer reinstated it) records are issued again.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match acd(k1, &agent, &nonce).await {
            Response::Acd(_) => break,
            r => assert!(
                std::time::Instant::now() < deadline,
                "k1 never recovered: {r:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every ALE of the run chains.
    for n in [k1, k2, k3] {
        n.kernel.audit_log().verify_chain().unwrap();
    }
}
