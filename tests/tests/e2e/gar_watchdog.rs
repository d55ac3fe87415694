//! KEE-1 P7 / KEE-2 D3 on a real 3-kernel cluster (swtpm, sockets, SQLite, FROST across
//! kernels): when quorum is lost, blocks stay unsigned-pending, the watchdog reports the
//! anchoring gap at 1.5x the interval and switches decisions to DENY at 3x, and both end once
//! the quorum is back and the pending blocks are signed (by t kernels, never fewer); the
//! package exported afterwards verifies.
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
use std::time::Duration;
use wire::msg::{Decision, EvaluateParams, Request, Response};

const WAIT: Duration = Duration::from_secs(60);
/// Booting three kernels (vTPM key creation on swtpm) takes long on a loaded two-core machine.
const BOOT: Duration = Duration::from_secs(240);

async fn evaluate(n: &Node, session: &str) -> wire::msg::DecisionInfo {
    match call(
        &n.public,
        &Request::Evaluate(EvaluateParams {
            principal: "Agent::\"planner\"".into(),
            action: "Action::\"read\"".into(),
            resource: "Dataset::\"census\"".into(),
            context_json: r#"{"purpose":"relief"}"#.into(),
            entities_json: String::new(),
            session_id: session.into(),
            agent_xpid: String::new(),
        }),
    )
    .await
    {
        Response::Decision(d) => d,
        other => panic!("{other:?}"),
    }
}

/// Closes and signs everything now (retrying while a peer is still coming back).
async fn anchor_now(n: &Node) {
    let deadline = std::time::Instant::now() + WAIT;
    while let Err(why) = n.kernel.anchor_now().await {
        assert!(std::time::Instant::now() < deadline, "anchoring: {why}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn failed(report: &attestation::gar::PackageReport) -> Vec<String> {
    report
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.check, c.detail))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quorum_loss_keeps_blocks_pending_then_the_watchdog_reports_and_denies_until_anchored() {
    let c = Cluster::start(Options {
        monitor: fast_monitor(),
        reattest: fast_reattest(),
        relays: true,
        gar: enclave::GarConfig {
            anchor_interval_ms: 1_000,
            max_block_ales: 64,
        },
        ..Options::default()
    })
    .await;
    c.settle(BOOT).await;
    let k1 = c.node("k1");
    assert_eq!(evaluate(k1, "before").await.decision, Decision::Allow);
    c.wait_for("first blocks anchored", WAIT, |c| {
        let log = c.node("k1").kernel.audit_log();
        log.block_counts().unwrap().1 > 0 && log.pending_blocks().unwrap().is_empty()
    })
    .await;

    // k2 and k3 lose the verifier: they freeze, and k1 is left without a quorum.
    for p in ["k2", "k3"] {
        c.node(p).relay.as_ref().unwrap().set_cut(true);
    }
    c.wait_for("k2 and k3 frozen", WAIT, |c| {
        ["k2", "k3"]
            .iter()
            .all(|p| c.node(p).kernel.attestation_gate().is_err())
    })
    .await;
    // Decisions go on being recorded; their blocks close but stay unsigned.
    assert_eq!(evaluate(k1, "during").await.decision, Decision::Allow);
    c.wait_for("an unsigned-pending block", WAIT, |c| {
        !c.node("k1")
            .kernel
            .audit_log()
            .pending_blocks()
            .unwrap()
            .is_empty()
    })
    .await;
    c.wait_for("anchor gap reported", WAIT, |c| {
        !c.node("k1")
            .kernel
            .audit_log()
            .events_of_kind(enclave::gar::ANCHOR_GAP_DETECTED)
            .unwrap()
            .is_empty()
    })
    .await;
    c.wait_for("deny-all", WAIT, |c| c.node("k1").kernel.gar_deny_all())
        .await;
    let d = evaluate(k1, "during").await;
    assert_eq!(d.decision, Decision::Deny);
    assert!(d.reasons[0].contains("anchor"), "{:?}", d.reasons);
    let gaps = k1
        .kernel
        .audit_log()
        .events_of_kind(enclave::gar::ANCHOR_GAP_DETECTED)
        .unwrap();
    let phases: Vec<(String, u64, u64)> = gaps
        .iter()
        .map(|a| wire::decode(&a.body).unwrap())
        .collect();
    assert_eq!(phases[0].0, "gap");
    assert!(phases[0].1 > 1_500, "{phases:?}");
    assert!(
        phases.iter().any(|p| p.0 == "deny_all" && p.1 > 3_000),
        "{phases:?}"
    );
    let (closed, signed) = k1.kernel.audit_log().block_counts().unwrap();
    assert!(closed > signed);

    // Quorum back: pending blocks are signed and decisions resume.
    for p in ["k2", "k3"] {
        c.node(p).relay.as_ref().unwrap().set_cut(false);
    }
    c.wait_for("pending blocks signed", WAIT, |c| {
        let log = c.node("k1").kernel.audit_log();
        log.pending_blocks().unwrap().is_empty() && !c.node("k1").kernel.gar_deny_all()
    })
    .await;
    assert_eq!(evaluate(k1, "after").await.decision, Decision::Allow);
    assert!(!k1
        .kernel
        .audit_log()
        .events_of_kind(enclave::gar::ANCHOR_RESTORED)
        .unwrap()
        .is_empty());
    anchor_now(k1).await;
    let dir = c.dir.path().join("package");
    k1.kernel.audit_log().export("k1", &dir).unwrap();
    let r = verifier::offline::verify_audit_package(&dir, None, Some(&c.group_public_key)).unwrap();
    assert!(r.verified, "{:?}", failed(&r));
}
