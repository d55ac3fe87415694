//! Continuous re-attestation and revocation on real parts (swtpm, sockets, SQLite): a kernel
//! whose PCR is extended mid-run is caught by its next challenge, revoked, frozen, and
//! shunned by its peers; a kernel that stops answering is revoked after the grace count and
//! recovers only with a fresh affirming result; a verifier restart loses nothing and revokes
//! no healthy kernel.
//!
//! Timing is never asserted here (the bench measures it); waits are generous timeouts.
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
use wire::msg::{
    Decision, ErrorCode, EvaluateParams, KernelState, Request, Response, SignDigestParams,
};
use wire::verifier::{AttestationState, VerifierRequest, VerifierResponse};

const WAIT: Duration = Duration::from_secs(60);

async fn sign(n: &Node) -> Response {
    call(
        &n.public,
        &Request::SignDigest(SignDigestParams {
            digest: vec![0x42; 32],
        }),
    )
    .await
}

async fn evaluate(n: &Node) -> Response {
    call(
        &n.public,
        &Request::Evaluate(EvaluateParams {
            principal: "Agent::\"planner\"".into(),
            action: "Action::\"read\"".into(),
            resource: "Dataset::\"census\"".into(),
            context_json: r#"{"purpose":"relief"}"#.into(),
            entities_json: String::new(),
            session_id: "reattest".into(),
            agent_xpid: String::new(),
        }),
    )
    .await
}

fn state(c: &Cluster, id: &str) -> AttestationState {
    c.store.kernel_record(id).unwrap().unwrap().state
}

/// Waits until every kernel answered at least `n` challenges.
async fn challenged(c: &Cluster, n: usize) {
    c.wait_for("challenges answered", WAIT, |c| {
        c.nodes.iter().all(|k| {
            c.store
                .history_of(&k.id, 200)
                .unwrap()
                .iter()
                .filter(|h| h.event == "attested")
                .count()
                >= 1
                && c.store.appraisals_of(&k.id, 200).unwrap().len() > n
        })
    })
    .await;
}

fn pcr_policy() -> attestation::appraisal::AppraisalPolicy {
    let mut p = policy(&["KEE1-L1"], true);
    // A fresh swtpm has PCR 7 all zero; nothing in this appliance extends it.
    p.expected_pcrs.insert(7, "00".repeat(32));
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pcr_extended_mid_run_is_caught_by_the_next_challenge_revoked_and_frozen() {
    let c = Cluster::start(Options {
        ceremony_policy: pcr_policy(),
        verifier_policy: pcr_policy(),
        monitor: fast_monitor(),
        reattest: fast_reattest(),
        tpm_mux: true,
        ..Options::default()
    })
    .await;
    c.settle(WAIT).await;
    for n in &c.nodes {
        assert_eq!(
            n.kernel.health().state,
            KernelState::Serving,
            "{:?}",
            n.kernel.health()
        );
    }
    challenged(&c, 2).await;
    let k1 = c.node("k1");
    assert!(matches!(sign(k1).await, Response::Signature(_)));

    let extended_at = attestation::now_ms();
    k1.tpm.as_ref().unwrap().pcrextend(7, &"ab".repeat(32));

    c.wait_for("k1 revoked", WAIT, |c| {
        state(c, "k1") == AttestationState::Revoked
    })
    .await;
    let rec = c.store.kernel_record("k1").unwrap().unwrap();
    assert!(rec.reason.contains("pcr 7"), "{}", rec.reason);
    let revoked_at = rec.revoked_at_ms.unwrap();
    // Within one interval: at most the one challenge already in flight when the PCR changed
    // was affirmed; the next one caught it.
    let after: Vec<_> = c
        .store
        .appraisals_of("k1", 100)
        .unwrap()
        .into_iter()
        .filter(|a| a.at_ms >= extended_at && a.at_ms <= revoked_at)
        .collect();
    let affirmed = after.iter().filter(|a| a.status == "affirming").count();
    assert!(affirmed <= 1, "{after:?}");
    assert_eq!(after.first().unwrap().status, "contraindicated");
    eprintln!(
        "pcr 7 extended -> revoked in {} ms (interval {} ms)",
        revoked_at - extended_at,
        c.monitor.interval_ms
    );

    // k1 freezes signing; evaluate goes on (attestation precedence: verify may continue).
    c.wait_for("k1 frozen", WAIT, |c| {
        c.node("k1").kernel.attestation_gate().is_err()
    })
    .await;
    match sign(k1).await {
        Response::Error(e) => {
            assert_eq!(e.code, ErrorCode::NotServing);
            assert!(e.message.contains("signing frozen"), "{}", e.message);
        }
        other => panic!("a revoked kernel signed: {other:?}"),
    }
    let Response::Decision(d) = evaluate(k1).await else {
        panic!("evaluate stopped")
    };
    assert_eq!(d.decision, Decision::Allow);
    let h = k1.kernel.health();
    assert_eq!(h.state, KernelState::Serving);
    assert!(h.reason.unwrap_or_default().contains("signing frozen"));

    // Its peers learn it from the feed and keep signing without it.
    c.wait_for("peers list k1 as revoked", WAIT, |c| {
        ["k2", "k3"]
            .iter()
            .all(|p| c.node(p).kernel.revoked_peers() == vec!["k1".to_string()])
    })
    .await;
    let Response::Signature(s) = sign(c.node("k2")).await else {
        panic!("k2 and k3 should still sign")
    };
    assert_eq!(s.signers, vec!["k2".to_string(), "k3".to_string()]);

    // KEE-1 P8: every kernel of the ceremony acknowledged the revocation.
    c.wait_for("revocation settled", WAIT, |c| {
        c.store.revocations_of("k1", 1).unwrap()[0].completion != "pending"
    })
    .await;
    let r = &c.store.revocations_of("k1", 1).unwrap()[0];
    assert_eq!(r.completion, "clean", "{r:?}");
    assert_eq!((r.acked, r.targets), (3, 3));
    eprintln!(
        "revocation propagated to all 3 kernels; slowest {:?} ms",
        r.max_propagation_ms
    );
    let m = c.verifier.monitor.metrics();
    assert!(
        m.failures_by_reason
            .get("executables")
            .copied()
            .unwrap_or(0)
            >= 1
    );
    assert_eq!(m.revocations_total, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kernel_that_stops_answering_is_revoked_after_the_grace_count_and_needs_a_fresh_result() {
    let c = Cluster::start(Options {
        monitor: fast_monitor(),
        reattest: fast_reattest(),
        relays: true,
        ..Options::default()
    })
    .await;
    c.settle(WAIT).await;
    challenged(&c, 2).await;
    let k1 = c.node("k1");
    assert!(matches!(sign(k1).await, Response::Signature(_)));

    // Partition k1 from the verifier.
    k1.relay.as_ref().unwrap().set_cut(true);
    c.wait_for("k1 revoked", WAIT, |c| {
        state(c, "k1") == AttestationState::Revoked
    })
    .await;
    let rec = c.store.kernel_record("k1").unwrap().unwrap();
    let grace = c.monitor.grace;
    assert_eq!(rec.misses, grace);
    assert!(
        rec.reason.contains("consecutive challenges missed"),
        "{}",
        rec.reason
    );
    let history = c.store.history_of("k1", 50).unwrap();
    assert_eq!(history[0].event, "revoked");
    let missed_before = history
        .iter()
        .skip(1)
        .take_while(|h| h.event == "missed")
        .count();
    assert_eq!(missed_before as u32, grace - 1, "{history:?}");

    // Cut off, k1 cannot know whether it is revoked: it freezes when its feed goes silent.
    c.wait_for("k1 frozen", WAIT, |c| {
        c.node("k1").kernel.attestation_gate().is_err()
    })
    .await;
    let why = k1.kernel.attestation_gate().unwrap_err();
    assert!(why.contains("feed silent"), "{why}");
    assert!(matches!(sign(k1).await, Response::Error(e) if e.code == ErrorCode::NotServing));

    // The others shun it and sign without it.
    c.wait_for("peers list k1 as revoked", WAIT, |c| {
        ["k2", "k3"]
            .iter()
            .all(|p| c.node(p).kernel.revoked_peers().contains(&"k1".to_string()))
    })
    .await;
    assert!(
        matches!(sign(c.node("k3")).await, Response::Signature(s) if !s.signers.contains(&"k1".to_string()))
    );
    // P8: k2 and k3 acknowledged, k1 could not: partial.
    c.wait_for("revocation settled", WAIT, |c| {
        c.store.revocations_of("k1", 1).unwrap()[0].completion != "pending"
    })
    .await;
    let r = &c.store.revocations_of("k1", 1).unwrap()[0];
    assert_eq!(r.completion, "partial", "{r:?}");
    assert_eq!((r.acked, r.targets), (2, 3));

    // Back on the network: the next challenge answered affirming reinstates it.
    k1.relay.as_ref().unwrap().set_cut(false);
    c.wait_for("k1 reinstated", WAIT, |c| {
        state(c, "k1") == AttestationState::Attested
    })
    .await;
    c.wait_for("k1 may sign again", WAIT, |c| {
        c.node("k1").kernel.attestation_gate().is_ok()
    })
    .await;
    c.wait_for("peers no longer list k1", WAIT, |c| {
        c.node("k2").kernel.revoked_peers().is_empty()
    })
    .await;
    assert!(matches!(sign(k1).await, Response::Signature(_)));
    let history = c.store.history_of("k1", 50).unwrap();
    assert!(
        history.iter().any(|h| h.event == "reinstated"),
        "{history:?}"
    );
    assert!(c.verifier.monitor.metrics().missed_challenges_total >= u64::from(grace));
}

async fn verifier_nonce(c: &Cluster, kernel: &str) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(c.verifier.addr)
        .await
        .unwrap();
    let req = VerifierRequest::Nonce {
        kernel_id: kernel.into(),
    };
    wire::write_frame(&mut s, &wire::encode(&req).unwrap())
        .await
        .unwrap();
    match wire::decode(&wire::read_frame(&mut s).await.unwrap()).unwrap() {
        VerifierResponse::Nonce { nonce, .. } => nonce,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_verifier_restart_loses_nothing_and_revokes_no_healthy_kernel() {
    let mut c = Cluster::start(Options {
        monitor: fast_monitor(),
        reattest: fast_reattest(),
        relays: true,
        // With event logs, a challenge answer carries only the events since the last one:
        // a verifier that lost its replay on restart would refuse them.
        tpm_mux: true,
        event_log: true,
        ..Options::default()
    })
    .await;
    c.settle(WAIT).await;
    challenged(&c, 2).await;

    // State to survive: an operator revocation (k3, held), used and unused nonces, every
    // kernel's pinned attestation key.
    let cmd = verifier::ops::revoke(&c.store, "k3", "maintenance").unwrap();
    c.wait_for("operator revocation applied", WAIT, |c| {
        c.store
            .operator_command(cmd.id)
            .unwrap()
            .unwrap()
            .applied_at_ms
            .is_some()
    })
    .await;
    c.wait_for("k3 frozen", WAIT, |c| {
        c.node("k3").kernel.attestation_gate().is_err()
    })
    .await;
    assert!(c
        .node("k3")
        .kernel
        .attestation_gate()
        .unwrap_err()
        .contains("revoked by an operator"));
    let used = verifier_nonce(&c, "k1").await;
    let unused = verifier_nonce(&c, "k1").await;
    assert_eq!(
        c.store
            .use_nonce(&used, "k1", attestation::now_ms())
            .unwrap(),
        verifier::store::NonceUse::Fresh
    );
    let before = c.store.kernel_records().unwrap();
    let counts_before: Vec<usize> = ["k1", "k2"]
        .iter()
        .map(|k| c.store.appraisals_of(k, 10_000).unwrap().len())
        .collect();

    // k1 measures something new while the verifier is up, and again while it is down.
    let k1 = c.node("k1");
    let log = k1.event_log.as_ref().unwrap();
    log.measure(k1.tpm.as_deref(), 9, b"before the restart");
    c.wait_for("k1's new event replayed", WAIT, |c| {
        replayed_events(c, "k1") == Some(4)
    })
    .await;

    c.restart_verifier(Duration::from_millis(1_500)).await;
    let k1 = c.node("k1");
    k1.event_log
        .as_ref()
        .unwrap()
        .measure(k1.tpm.as_deref(), 9, b"during the restart");

    // Nothing lost.
    let after = c.store.kernel_records().unwrap();
    assert_eq!(after.len(), before.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.kernel_id, a.kernel_id);
        assert_eq!(b.ak_digest, a.ak_digest, "{}", a.kernel_id);
        assert_eq!(b.held, a.held, "{}", a.kernel_id);
    }
    assert_eq!(state(&c, "k3"), AttestationState::Revoked);
    assert!(c.store.kernel_record("k3").unwrap().unwrap().held);
    assert_eq!(
        c.store
            .use_nonce(&used, "k1", attestation::now_ms())
            .unwrap(),
        verifier::store::NonceUse::Replayed
    );
    assert_eq!(
        c.store
            .use_nonce(&unused, "k1", attestation::now_ms())
            .unwrap(),
        verifier::store::NonceUse::Expired,
        "nonces issued before the restart are void after it"
    );

    // Re-attestation goes on: several more challenges each, for longer than the grace count
    // of intervals, and no healthy kernel is revoked.
    c.wait_for("challenges after the restart", WAIT, |c| {
        ["k1", "k2"]
            .iter()
            .zip(&counts_before)
            .all(|(k, n)| c.store.appraisals_of(k, 10_000).unwrap().len() >= n + 5)
    })
    .await;
    for k in ["k1", "k2"] {
        assert_ne!(state(&c, k), AttestationState::Revoked, "{k}");
        assert!(c.store.revocations_of(k, 10).unwrap().is_empty(), "{k}");
    }
    // The replay survived the restart and went on with the delta.
    c.wait_for("k1's replay continued after the restart", WAIT, |c| {
        replayed_events(c, "k1") == Some(5)
    })
    .await;
    assert_eq!(replayed_events(&c, "k2"), Some(3));
    c.wait_for("k1 may sign after the restart", WAIT, |c| {
        c.node("k1").kernel.attestation_gate().is_ok()
    })
    .await;
    let Response::Signature(s) = sign(c.node("k1")).await else {
        panic!("k1 and k2 should sign after the restart")
    };
    assert_eq!(s.signers, vec!["k1".to_string(), "k2".to_string()]);
    // k3 stays frozen: the hold survived.
    assert!(c.node("k3").kernel.attestation_gate().is_err());
    assert!(c
        .node("k1")
        .kernel
        .revoked_peers()
        .contains(&"k3".to_string()));
}

/// Events of `kernel`'s log the verifier has replayed for its current boot.
fn replayed_events(c: &Cluster, kernel: &str) -> Option<u32> {
    let rec = c.store.kernel_record(kernel).unwrap()?;
    let digest = rec.ak_digest_bytes()?;
    c.store
        .event_log_state(kernel, &digest)
        .unwrap()
        .map(|s| s.events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn event_log_deltas_follow_a_growing_log_and_an_unlogged_extend_is_revoked() {
    let c = Cluster::start(Options {
        monitor: fast_monitor(),
        reattest: fast_reattest(),
        tpm_mux: true,
        event_log: true,
        ..Options::default()
    })
    .await;
    c.settle(WAIT).await;
    for n in &c.nodes {
        assert_eq!(
            n.kernel.health().state,
            KernelState::Serving,
            "{:?}",
            n.kernel.health()
        );
        // Boot: the whole log (the Spec ID header and three events) replayed to the quote.
        assert_eq!(replayed_events(&c, &n.id), Some(3), "{}", n.id);
    }
    challenged(&c, 2).await;

    // The kernel measures more at run time: each challenge answer carries only the new
    // events, the verifier continues its replay from what it holds.
    let k1 = c.node("k1");
    let log = k1.event_log.as_ref().unwrap();
    let tpm = k1.tpm.as_deref();
    log.measure(tpm, 9, b"cedar policy set v2");
    log.measure(tpm, 10, b"model weights sha");
    assert_eq!(log.events(), 5);
    c.wait_for("k1's two new events replayed", WAIT, |c| {
        replayed_events(c, "k1") == Some(5)
    })
    .await;
    // A logged event whose extend has not happened yet (the log is written first) is not
    // an attack: the quote covers the prefix, the event comes again in the next delta.
    log.measure(None, 11, b"pending measurement");
    let seen = c.store.appraisals_of("k1", 10_000).unwrap().len();
    c.wait_for("two more challenges of k1", WAIT, |c| {
        c.store.appraisals_of("k1", 10_000).unwrap().len() >= seen + 2
    })
    .await;
    assert_eq!(state(&c, "k1"), AttestationState::Attested);
    assert_eq!(replayed_events(&c, "k1"), Some(5));
    tpm.unwrap().pcrextend(
        11,
        &hex::encode(attestation::sha256(b"pending measurement")),
    );
    c.wait_for("the pending event replayed once extended", WAIT, |c| {
        replayed_events(c, "k1") == Some(6)
    })
    .await;

    // PCR 9 extended outside the log: the next delta no longer replays to the quote.
    let extended_at = attestation::now_ms();
    k1.tpm.as_ref().unwrap().pcrextend(9, &"cd".repeat(32));
    c.wait_for("k1 revoked", WAIT, |c| {
        state(c, "k1") == AttestationState::Revoked
    })
    .await;
    let rec = c.store.kernel_record("k1").unwrap().unwrap();
    assert!(
        rec.reason.contains("event log does not replay") && rec.reason.contains("pcr 9"),
        "{}",
        rec.reason
    );
    eprintln!(
        "unlogged extend of pcr 9 -> revoked in {} ms (interval {} ms)",
        rec.revoked_at_ms.unwrap() - extended_at,
        c.monitor.interval_ms
    );
    c.wait_for("k1 frozen", WAIT, |c| {
        c.node("k1").kernel.attestation_gate().is_err()
    })
    .await;
    assert!(!matches!(sign(k1).await, Response::Signature(_)));
    // The others are untouched.
    for k in ["k2", "k3"] {
        assert_eq!(state(&c, k), AttestationState::Attested, "{k}");
    }
}
