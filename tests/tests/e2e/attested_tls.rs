//! Attested TLS end to end: clients reach a kernel through the untrusted host's proxy over
//! TLS that terminates inside the enclave, verify its attestation in the handshake, and the
//! host sees only ciphertext. Real parts throughout: the verifier service, swtpm vTPMs, the
//! kernels, the proxy on real Unix sockets, rustls on both ends.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: any failure should stop the run loudly"
)]

use crate::common;
use crate::tls;

use attestation::Level;
use attested_tls::PeerPolicy;
use common::*;
use std::time::Duration;
use tls::*;
use wire::msg::{Decision, EvaluateParams, KernelState, Request, Response};

/// Strings that appear in the request or response of [`secret_call`] and nowhere else.
const SECRETS: &[&[u8]] = &[
    b"census-secret-7731",
    b"planner",
    b"relief-read",
    b"purpose",
    b"evaluate",
];

fn secret_call() -> Request {
    Request::Evaluate(EvaluateParams {
        principal: "Agent::\"planner\"".into(),
        action: "Action::\"read\"".into(),
        resource: "Dataset::\"census-secret-7731\"".into(),
        context_json: r#"{"purpose":"relief"}"#.into(),
        entities_json: String::new(),
        session_id: "tls-test".into(),
        agent_xpid: String::new(),
    })
}

fn allowed(resp: &Response) {
    match resp {
        Response::Decision(d) => {
            assert_eq!(d.decision, Decision::Allow, "{d:?}");
            assert_eq!(d.policies, ["relief-read"]);
        }
        other => panic!("expected a decision, got {other:?}"),
    }
}

fn policy_for(c: &Cluster) -> PeerPolicy {
    PeerPolicy::new(c.verifier.public_key.clone(), [Level::L1])
}

fn options() -> Options {
    Options {
        kernels: 2,
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_sees_only_ciphertext_of_attested_calls() {
    let c = Cluster::start(options()).await;
    c.settle(Duration::from_secs(60)).await;
    let k1 = c.node("k1");
    assert_eq!(k1.kernel.health().state, KernelState::Serving);
    let dir = tempfile::tempdir().unwrap();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);

    // Taps on both sides of the proxy: client → [tap] → proxy → [tap] → enclave.
    let vsock = k1.state_dir.join("vsock.sock");
    let enclave_side = tap(&dir.path().join("enclave-tap.sock"), vsock.clone());
    let route = tls_route(
        dir.path(),
        &vsock,
        Some(&dir.path().join("enclave-tap.sock")),
        stop,
    )
    .await;
    let client_side = tap(&dir.path().join("client-tap.sock"), route.listen.clone());

    let mut tls = connect(
        &dir.path().join("client-tap.sock"),
        policy_for(&c).kernels(["k1"]),
    )
    .await
    .unwrap();
    for _ in 0..5 {
        allowed(&tls_call(&mut tls, &secret_call()).await);
    }
    drop(tls);

    for (side, seen) in [("client", &client_side), ("enclave", &enclave_side)] {
        let bytes = seen.lock().unwrap().clone();
        assert!(bytes.len() > 2_000, "the {side} tap saw the handshake");
        for s in SECRETS {
            assert!(
                !contains(&bytes, s),
                "`{}` crossed the proxy in the clear on the {side} side",
                String::from_utf8_lossy(s)
            );
        }
    }
    let m = route.proxy.metrics().inbound_tls;
    assert_eq!(m.accepted, 1);
    assert!(m.forwarded >= 5, "{m:?}");
    assert_eq!(m.refusals(), 0, "{m:?}");

    // Control: the same call on the frame route, through the same kind of tap, is
    // plaintext to the host, so the check above could fail.
    let plain_tap = tap(&dir.path().join("plain-tap.sock"), k1.public.clone());
    allowed(&call_plain(&dir.path().join("plain-tap.sock"), &secret_call()).await);
    let plain = plain_tap.lock().unwrap().clone();
    assert!(SECRETS.iter().all(|s| contains(&plain, s)));
}

async fn call_plain(socket: &std::path::Path, req: &Request) -> Response {
    common::call(socket, req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_refuse_kernels_their_policy_does_not_accept() {
    let c = Cluster::start(options()).await;
    c.settle(Duration::from_secs(60)).await;
    let dir = tempfile::tempdir().unwrap();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let route = tls_route(
        dir.path(),
        &c.node("k1").state_dir.join("vsock.sock"),
        None,
        stop,
    )
    .await;

    // The right kernel, the right verifier: accepted, and the peer is who it says.
    let mut ok = connect(&route.listen, policy_for(&c).kernels(["k1"]))
        .await
        .unwrap();
    let peer =
        attested_tls::verify::peer_of(ok.get_ref().1.peer_certificates(), &policy_for(&c)).unwrap();
    assert_eq!(peer.kernel_id(), "k1");
    assert_eq!(peer.level(), Level::L1);
    match tls_call(&mut ok, &Request::Health).await {
        Response::Health(h) => assert_eq!(h.kernel_id, "k1"),
        other => panic!("{other:?}"),
    }

    // Expecting k2 at k1's address (the host routing elsewhere): refused.
    let err = connect(&route.listen, policy_for(&c).kernels(["k2"]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("KernelNotAllowed"), "{err}");
    // Pinning another verifier: refused.
    let rogue = attestation::result::ResultSigner::generate().unwrap().0;
    let err = connect(
        &route.listen,
        PeerPolicy::new(rogue.public_key().to_vec(), [Level::L1]),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("BadSignature"), "{err}");
    // Demanding hardware (L3) of a software kernel: refused.
    let err = connect(
        &route.listen,
        PeerPolicy::new(c.verifier.public_key.clone(), [Level::L3]),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("LevelNotAllowed"), "{err}");
    // Re-appraising the evidence with the client's own policy, the verifier's policy: ok.
    connect(
        &route.listen,
        policy_for(&c).appraise_with(c.policy.clone()),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_certificate_before_unseal_or_after_a_halt() {
    // The verifier is down: the kernel stays sealed, so it has nothing to present.
    let sealed = Cluster::start(Options {
        verifier_up: false,
        max_attempts: 1,
        ..options()
    })
    .await;
    sealed.settle(Duration::from_secs(30)).await;
    let dir = tempfile::tempdir().unwrap();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let k1 = sealed.node("k1");
    assert_eq!(k1.kernel.health().state, KernelState::Sealed);
    let route = tls_route(
        dir.path(),
        &k1.state_dir.join("vsock.sock"),
        None,
        stop.clone(),
    )
    .await;
    assert!(connect(&route.listen, policy_for(&sealed)).await.is_err());
    // Health stays available on the frame route.
    match common::call(&k1.public, &Request::Health).await {
        Response::Health(h) => assert_eq!(h.state, KernelState::Sealed),
        other => panic!("{other:?}"),
    }
    drop(sealed);

    // A serving kernel that halts (its manifest hash lock broke) stops presenting one.
    let c = Cluster::start(options()).await;
    c.settle(Duration::from_secs(60)).await;
    let k1 = c.node("k1");
    let dir = tempfile::tempdir().unwrap();
    let route = tls_route(dir.path(), &k1.state_dir.join("vsock.sock"), None, stop).await;
    let mut before = connect(&route.listen, policy_for(&c)).await.unwrap();
    allowed(&tls_call(&mut before, &secret_call()).await);
    k1.kernel.corrupt_manifest_for_test();
    let _ = tls_call(&mut before, &secret_call()).await;
    assert_eq!(k1.kernel.health().state, KernelState::Halted);
    assert!(connect(&route.listen, policy_for(&c)).await.is_err());
}
