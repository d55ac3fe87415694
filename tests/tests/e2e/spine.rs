//! The spine end to end: collect → bind → appraise → unseal → serve, on real parts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "test and bench code: any failure should stop the run loudly"
)]

use crate::common;

use common::*;
use ed25519_dalek::Verifier as _;
use std::time::Duration;
use wire::msg::{
    Decision, ErrorCode, EvaluateParams, KernelState, Request, Response, SignDigestParams,
};

fn ask(principal: &str, action: &str, context: &str) -> Request {
    Request::Evaluate(EvaluateParams {
        principal: principal.into(),
        action: action.into(),
        resource: "Dataset::\"census\"".into(),
        context_json: context.into(),
        entities_json: String::new(),
        session_id: "s1".into(),
        agent_xpid: String::new(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_kernels_unseal_decide_sign_and_verify_offline() {
    let c = Cluster::start(Options::default()).await;
    c.settle(Duration::from_secs(60)).await;
    for n in &c.nodes {
        let h = n.kernel.health();
        assert_eq!(h.state, KernelState::Serving, "{}: {:?}", n.id, h.reason);
        assert_eq!(h.level, "KEE1-L1");
        assert!(h.boot_to_serving_ms.is_some());
    }
    let k1 = &c.nodes[0];

    // Manifest, evidence and result verify offline, and re-appraise under the policy.
    let Response::Manifest(m) = call(&k1.public, &Request::Manifest).await else {
        panic!("no manifest")
    };
    let report = verifier::offline::verify_manifest(
        &m.manifest,
        &m.manifest_hash,
        &m.bundle,
        &m.result,
        &c.verifier.public_key,
        Some(&c.policy),
    );
    assert!(report.verified, "{:?}", report.checks);
    assert_eq!(report.level, "KEE1-L1");
    // The bundle carries a real swtpm quote over PCRs 0-15.
    let bundle = attestation::bundle::UnverifiedBundle::parse(&m.bundle)
        .unwrap()
        .verify_signature()
        .unwrap();
    assert!(bundle
        .items()
        .iter()
        .any(|i| i.kind == attestation::EvidenceKind::Tpm));
    // Another verifier key does not verify it.
    let bad = verifier::offline::verify_manifest(
        &m.manifest,
        &m.manifest_hash,
        &m.bundle,
        &m.result,
        &[7u8; 32],
        None,
    );
    assert!(!bad.verified);

    // Decisions, each audited.
    let Response::Decision(allow) = call(
        &k1.public,
        &ask(
            "Agent::\"planner\"",
            "Action::\"read\"",
            r#"{"purpose":"relief"}"#,
        ),
    )
    .await
    else {
        panic!()
    };
    assert_eq!(allow.decision, Decision::Allow);
    assert_eq!(allow.policies, vec!["relief-read".to_string()]);
    let Response::Decision(deny) = call(
        &k1.public,
        &ask("Agent::\"planner\"", "Action::\"delete\"", ""),
    )
    .await
    else {
        panic!()
    };
    assert_eq!(deny.decision, Decision::Deny);
    assert!(deny.ale_seq > allow.ale_seq);
    let decisions = k1.kernel_audit_decisions();
    assert!(decisions >= 2);

    // Threshold signature across kernels verifies as plain Ed25519 under the group key.
    let digest = [0x42u8; 32];
    let Response::Signature(sig) = call(
        &k1.public,
        &Request::SignDigest(SignDigestParams {
            digest: digest.to_vec(),
        }),
    )
    .await
    else {
        panic!("no signature")
    };
    assert_eq!(sig.group_public_key, c.group_public_key);
    assert_eq!(sig.signers.len(), 2);
    let vk =
        ed25519_dalek::VerifyingKey::from_bytes(&sig.group_public_key.clone().try_into().unwrap())
            .unwrap();
    let s = ed25519_dalek::Signature::from_slice(&sig.signature).unwrap();
    vk.verify(&digest, &s).unwrap();
    assert!(vk.verify(&[0x43u8; 32], &s).is_err());
}

trait AuditCount {
    fn kernel_audit_decisions(&self) -> usize;
}
impl AuditCount for Node {
    fn kernel_audit_decisions(&self) -> usize {
        let log = enclave::audit::AuditLog::open(&self.state_dir.join("audit.db")).unwrap();
        log.verify_chain().unwrap();
        log.events_of_kind(enclave::kernel::events::DECISION)
            .unwrap()
            .len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_l3_only_policy_refuses_the_software_platform() {
    let l3 = policy(&["KEE1-L3"], false);
    let c = Cluster::start(Options {
        ceremony_policy: l3.clone(),
        verifier_policy: l3,
        with_tpm: false,
        kernels: 2,
        ..Options::default()
    })
    .await;
    c.settle(Duration::from_secs(30)).await;
    for n in &c.nodes {
        let h = n.kernel.health();
        assert_eq!(h.state, KernelState::Sealed);
        let reason = h.reason.unwrap();
        assert!(reason.contains("KEE1-L1 is not allowed"), "{reason}");
        // Only health is served.
        let Response::Health(_) = call(&n.public, &Request::Health).await else {
            panic!()
        };
        let r = call(
            &n.public,
            &ask(
                "Agent::\"planner\"",
                "Action::\"read\"",
                r#"{"purpose":"relief"}"#,
            ),
        )
        .await;
        assert!(
            matches!(r, Response::Error(ref e) if e.code == ErrorCode::NotServing),
            "{r:?}"
        );
        let r = call(&n.public, &Request::Manifest).await;
        assert!(matches!(r, Response::Error(ref e) if e.code == ErrorCode::NotServing));
    }
    // The verifier recorded a contraindicated result.
    let (status, _, _) = c.store.latest_result("k1").unwrap().unwrap();
    assert_eq!(status, "contraindicated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verifier_unreachable_means_no_unseal_with_retries_and_a_reason() {
    let c = Cluster::start(Options {
        verifier_up: false,
        with_tpm: false,
        max_attempts: 3,
        kernels: 2,
        ..Options::default()
    })
    .await;
    c.settle(Duration::from_secs(30)).await;
    for n in &c.nodes {
        let h = n.kernel.health();
        assert_eq!(h.state, KernelState::Sealed);
        let reason = h.reason.unwrap();
        assert!(
            reason.contains("verifier unreachable after 3 attempts"),
            "{reason}"
        );
        let r = call(
            &n.public,
            &Request::SignDigest(SignDigestParams {
                digest: vec![1; 32],
            }),
        )
        .await;
        assert!(matches!(r, Response::Error(ref e) if e.code == ErrorCode::NotServing));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cedar_errors_and_a_missing_policy_deny_and_are_audited() {
    let c = Cluster::start(Options {
        with_tpm: false,
        kernels: 2,
        ..Options::default()
    })
    .await;
    c.settle(Duration::from_secs(30)).await;
    let k1 = &c.nodes[0];
    // Missing context attribute: evaluation error.
    let Response::Decision(d) = call(
        &k1.public,
        &ask("Agent::\"planner\"", "Action::\"read\"", ""),
    )
    .await
    else {
        panic!()
    };
    assert_eq!(d.decision, Decision::Deny);
    assert!(!d.reasons.is_empty());
    // Malformed entity uid.
    let Response::Decision(d2) = call(&k1.public, &ask("planner", "Action::\"read\"", "")).await
    else {
        panic!()
    };
    assert_eq!(d2.decision, Decision::Deny);
    assert!(d2.reasons[0].contains("principal"));
    assert_eq!(k1.kernel_audit_decisions(), 2);
    drop(c);

    let c = Cluster::start(Options {
        with_tpm: false,
        kernels: 2,
        cedar_missing: true,
        ..Options::default()
    })
    .await;
    c.settle(Duration::from_secs(30)).await;
    let k1 = &c.nodes[0];
    assert_eq!(k1.kernel.health().state, KernelState::Serving);
    let Response::Decision(d) = call(
        &k1.public,
        &ask(
            "Agent::\"planner\"",
            "Action::\"read\"",
            r#"{"purpose":"relief"}"#,
        ),
    )
    .await
    else {
        panic!()
    };
    assert_eq!(d.decision, Decision::Deny);
    assert_eq!(d.reasons, vec!["no cedar policy set is loaded".to_string()]);
    assert_eq!(k1.kernel_audit_decisions(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_manifest_hash_mismatch_halts_the_kernel() {
    let c = Cluster::start(Options {
        with_tpm: false,
        kernels: 2,
        ..Options::default()
    })
    .await;
    c.settle(Duration::from_secs(30)).await;
    let k1 = &c.nodes[0];
    assert!(matches!(
        call(&k1.public, &Request::Manifest).await,
        Response::Manifest(_)
    ));
    k1.kernel.corrupt_manifest_for_test();
    let r = call(&k1.public, &Request::Manifest).await;
    assert!(
        matches!(r, Response::Error(ref e) if e.code == ErrorCode::NotServing && e.message.contains("hash mismatch")),
        "{r:?}"
    );
    assert_eq!(k1.kernel.health().state, KernelState::Halted);
    let r = call(
        &k1.public,
        &ask(
            "Agent::\"planner\"",
            "Action::\"read\"",
            r#"{"purpose":"relief"}"#,
        ),
    )
    .await;
    assert!(matches!(r, Response::Error(ref e) if e.code == ErrorCode::NotServing));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quorum_loss_signs_nothing() {
    let c = Cluster::start(Options {
        with_tpm: false,
        ..Options::default()
    })
    .await;
    c.settle(Duration::from_secs(30)).await;
    c.nodes[1].kernel.halt("test: taken down").await;
    // With k3 still up, 2-of-3 still signs.
    let r = call(
        &c.nodes[0].public,
        &Request::SignDigest(SignDigestParams {
            digest: vec![9; 32],
        }),
    )
    .await;
    assert!(
        matches!(r, Response::Signature(ref s) if s.signers == vec!["k1".to_string(), "k3".to_string()]),
        "{r:?}"
    );
    c.nodes[2].kernel.halt("test: taken down").await;
    let r = call(
        &c.nodes[0].public,
        &Request::SignDigest(SignDigestParams {
            digest: vec![9; 32],
        }),
    )
    .await;
    assert!(
        matches!(r, Response::Error(ref e) if e.code == ErrorCode::QuorumLost),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_proxy_refuses_and_counts_bad_input_and_keeps_serving() {
    let c = Cluster::start(Options {
        with_tpm: false,
        kernels: 2,
        ..Options::default()
    })
    .await;
    c.settle(Duration::from_secs(30)).await;
    let k1 = &c.nodes[0];
    #[derive(serde::Serialize)]
    struct Bogus {
        method: &'static str,
    }
    let r = raw(
        &k1.public,
        &wire::encode(&Bogus {
            method: "unseal_all",
        })
        .unwrap(),
    )
    .await;
    assert!(
        matches!(r, Some(Response::Error(ref e)) if e.code == ErrorCode::MethodNotAllowed),
        "{r:?}"
    );
    let r = raw(&k1.public, b"\xff\xfe garbage").await;
    assert!(
        matches!(r, Some(Response::Error(ref e)) if e.code == ErrorCode::BadRequest),
        "{r:?}"
    );
    // Oversize: announce more than the limit.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::UnixStream::connect(&k1.public).await.unwrap();
        s.write_all(&(wire::MAX_FRAME_BYTES + 1).to_be_bytes())
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    }
    let m = k1.proxy.metrics();
    let json = serde_json::to_value(m).unwrap();
    let text = json.to_string();
    assert!(text.contains("refused_method"), "{text}");
    let count = |key: &str| -> u64 {
        fn find(v: &serde_json::Value, key: &str) -> Option<u64> {
            match v {
                serde_json::Value::Object(o) => o
                    .get(key)
                    .and_then(|x| x.as_u64())
                    .or_else(|| o.values().find_map(|x| find(x, key))),
                _ => None,
            }
        }
        find(&json, key).unwrap_or(0)
    };
    assert!(count("refused_method") >= 1, "{text}");
    assert!(count("refused_garbage") >= 1, "{text}");
    assert!(count("refused_oversize") >= 1, "{text}");
    // Others are still served.
    assert!(matches!(
        call(&k1.public, &Request::Manifest).await,
        Response::Manifest(_)
    ));
}
