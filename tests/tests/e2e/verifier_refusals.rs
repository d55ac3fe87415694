//! The verifier refuses every bundle that is tampered with, replayed, stale or bound to
//! different keys, and then releases no wrap key on that connection; an enclave whose bundle
//! is tampered with on the way never unseals and serves only `health`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "test and bench code: any failure should stop the run loudly"
)]

use crate::common;

use attestation::ak::AttestationKey;
use attestation::bundle::{sign_bundle, BundleClaims, BUNDLE_VERSION};
use attestation::sealing::KeyExchange;
use attestation::software::SoftwareAttester;
use attestation::{Attester, BindingValue, Level, Nonce};
use common::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use wire::msg::{ErrorCode, KernelState, Request, Response};
use wire::verifier::{VerifierRequest, VerifierResponse};

struct Fixture {
    _dir: tempfile::TempDir,
    service: verifier::ServiceHandle,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(verifier::Store::open(&dir.path().join("v.db")).unwrap());
    let p = policy(&["KEE1-L1"], false);
    let ids = vec!["k1".to_string(), "k2".to_string()];
    verifier::ceremony::run(&store, &p, 2, &ids, &dir.path().join("kernels")).unwrap();
    let service = verifier::serve(
        verifier::ServiceConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            policy: p,
            require_tls: false,
        },
        store,
    )
    .await
    .unwrap();
    Fixture { _dir: dir, service }
}

async fn req(s: &mut TcpStream, r: VerifierRequest) -> VerifierResponse {
    wire::write_frame(s, &wire::encode(&r).unwrap())
        .await
        .unwrap();
    wire::decode(&wire::read_frame(s).await.unwrap()).unwrap()
}

async fn nonce(s: &mut TcpStream, kernel: &str) -> Nonce {
    match req(
        s,
        VerifierRequest::Nonce {
            kernel_id: kernel.into(),
        },
    )
    .await
    {
        VerifierResponse::Nonce { nonce, .. } => Nonce::from_slice(&nonce).unwrap(),
        other => panic!("no nonce: {other:?}"),
    }
}

/// A bundle as an honest enclave would make it; `binding_ak` lets a test bind the evidence to
/// another key than the one that signs the bundle, `created_at_ms` lets it backdate.
fn bundle(
    kernel: &str,
    nonce: &Nonce,
    ak: &AttestationKey,
    binding_ak: &[u8],
    created_at_ms: u64,
) -> Vec<u8> {
    let draft = [3u8; 32];
    let binding = BindingValue::compute(nonce, binding_ak, &draft);
    let item = SoftwareAttester::new().unwrap().collect(&binding).unwrap();
    let kx = KeyExchange::generate().unwrap();
    sign_bundle(
        &BundleClaims {
            version: BUNDLE_VERSION,
            kernel_id: kernel.into(),
            level: Level::L1,
            nonce: nonce.as_bytes().to_vec(),
            manifest_draft_hash: draft.to_vec(),
            ak_public: ak.public_key().to_vec(),
            key_exchange_public: kx.public_key().to_vec(),
            created_at_ms,
            items: vec![item],
        },
        ak,
    )
    .unwrap()
}

fn refused(r: &VerifierResponse) -> bool {
    matches!(r, VerifierResponse::Refused { .. })
        || matches!(r, VerifierResponse::Appraised { status, .. } if status != "affirming")
}

async fn release_refused(s: &mut TcpStream, kernel: &str) {
    let r = req(
        s,
        VerifierRequest::ReleaseKey {
            kernel_id: kernel.into(),
        },
    )
    .await;
    assert!(
        matches!(r, VerifierResponse::Refused { .. }),
        "wrap key released: {r:?}"
    );
}

#[tokio::test]
async fn flipped_bytes_are_refused_and_release_nothing_while_the_original_passes() {
    let f = fixture().await;
    let mut s = TcpStream::connect(f.service.addr).await.unwrap();
    let n = nonce(&mut s, "k1").await;
    let ak = AttestationKey::generate().unwrap();
    let good = bundle("k1", &n, &ak, ak.public_key(), attestation::now_ms());
    for i in (0..good.len()).step_by(3) {
        let mut b = good.clone();
        b[i] ^= 0x20;
        // One connection per attempt: a connection carries a bounded number of requests.
        let mut c = TcpStream::connect(f.service.addr).await.unwrap();
        let r = req(&mut c, VerifierRequest::Appraise { bundle: b }).await;
        assert!(refused(&r), "flip at {i} accepted: {r:?}");
        release_refused(&mut c, "k1").await;
    }
    // The untouched bundle, same nonce, is affirming and releases the key exactly once.
    let r = req(
        &mut s,
        VerifierRequest::Appraise {
            bundle: good.clone(),
        },
    )
    .await;
    assert!(
        matches!(r, VerifierResponse::Appraised { ref status, .. } if status == "affirming"),
        "{r:?}"
    );
    let r = req(
        &mut s,
        VerifierRequest::ReleaseKey {
            kernel_id: "k1".into(),
        },
    )
    .await;
    assert!(matches!(r, VerifierResponse::KeyReleased { .. }), "{r:?}");
    release_refused(&mut s, "k1").await;

    // Replay: the same bundle on a new connection.
    let mut s2 = TcpStream::connect(f.service.addr).await.unwrap();
    let r = req(&mut s2, VerifierRequest::Appraise { bundle: good }).await;
    assert!(
        matches!(r, VerifierResponse::Refused { ref reason } if reason.contains("replay")),
        "{r:?}"
    );
    release_refused(&mut s2, "k1").await;
}

#[tokio::test]
async fn stale_evidence_is_contraindicated() {
    let f = fixture().await;
    let mut s = TcpStream::connect(f.service.addr).await.unwrap();
    let n = nonce(&mut s, "k1").await;
    let ak = AttestationKey::generate().unwrap();
    let old = attestation::now_ms() - 120_000;
    let r = req(
        &mut s,
        VerifierRequest::Appraise {
            bundle: bundle("k1", &n, &ak, ak.public_key(), old),
        },
    )
    .await;
    match &r {
        VerifierResponse::Appraised {
            status, reasons, ..
        } => {
            assert_eq!(status, "contraindicated");
            assert!(reasons.iter().any(|x| x.contains("old")), "{reasons:?}");
        }
        other => panic!("{other:?}"),
    }
    release_refused(&mut s, "k1").await;
}

#[tokio::test]
async fn items_bound_to_another_key_are_contraindicated() {
    let f = fixture().await;
    let mut s = TcpStream::connect(f.service.addr).await.unwrap();
    let n = nonce(&mut s, "k1").await;
    let ak = AttestationKey::generate().unwrap();
    let other = AttestationKey::generate().unwrap();
    let r = req(
        &mut s,
        VerifierRequest::Appraise {
            bundle: bundle("k1", &n, &ak, other.public_key(), attestation::now_ms()),
        },
    )
    .await;
    match &r {
        VerifierResponse::Appraised {
            status, reasons, ..
        } => {
            assert_eq!(status, "contraindicated");
            assert!(
                reasons
                    .iter()
                    .any(|x| x.contains("bound to a different key")),
                "{reasons:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    release_refused(&mut s, "k1").await;
}

#[tokio::test]
async fn nonces_are_per_kernel_and_release_needs_this_connections_appraisal() {
    let f = fixture().await;
    let mut s = TcpStream::connect(f.service.addr).await.unwrap();
    // Unregistered kernels get no nonce.
    let r = req(
        &mut s,
        VerifierRequest::Nonce {
            kernel_id: "intruder".into(),
        },
    )
    .await;
    assert!(matches!(r, VerifierResponse::Refused { .. }));
    // A nonce issued to k2 does not serve k1.
    let n2 = nonce(&mut s, "k2").await;
    let ak = AttestationKey::generate().unwrap();
    let r = req(
        &mut s,
        VerifierRequest::Appraise {
            bundle: bundle("k1", &n2, &ak, ak.public_key(), attestation::now_ms()),
        },
    )
    .await;
    assert!(
        matches!(r, VerifierResponse::Refused { ref reason } if reason.contains("another kernel")),
        "{r:?}"
    );
    // A never-issued nonce.
    let r = req(
        &mut s,
        VerifierRequest::Appraise {
            bundle: bundle(
                "k1",
                &Nonce::new([7; 32]),
                &ak,
                ak.public_key(),
                attestation::now_ms(),
            ),
        },
    )
    .await;
    assert!(
        matches!(r, VerifierResponse::Refused { ref reason } if reason.contains("never issued")),
        "{r:?}"
    );
    // k1 affirmed on one connection; another connection cannot take its key, nor can k2's id.
    let n1 = nonce(&mut s, "k1").await;
    let r = req(
        &mut s,
        VerifierRequest::Appraise {
            bundle: bundle("k1", &n1, &ak, ak.public_key(), attestation::now_ms()),
        },
    )
    .await;
    assert!(matches!(r, VerifierResponse::Appraised { ref status, .. } if status == "affirming"));
    let mut other = TcpStream::connect(f.service.addr).await.unwrap();
    release_refused(&mut other, "k1").await;
    release_refused(&mut s, "k2").await;
    // The refusal above spent this connection's appraisal: fail closed.
    release_refused(&mut s, "k1").await;
}

/// The host flips a byte of the evidence in flight: inside the verifier link's TLS that
/// breaks the record's authentication (the verifier answers with a fatal alert), so the
/// bundle is never appraised and the kernel stays sealed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bundle_tampered_on_the_way_leaves_the_enclave_sealed_serving_only_health() {
    let c = Cluster::start(Options {
        with_tpm: false,
        kernels: 2,
        tamper_bundles: true,
        max_attempts: 1,
        ..Options::default()
    })
    .await;
    c.settle(Duration::from_secs(30)).await;
    for n in &c.nodes {
        let h = n.kernel.health();
        assert_eq!(h.state, KernelState::Sealed, "{}", n.id);
        assert!(
            h.reason.clone().unwrap().contains("BadRecordMac"),
            "{:?}",
            h.reason
        );
        assert!(matches!(
            call(&n.public, &Request::Health).await,
            Response::Health(_)
        ));
        let r = call(&n.public, &Request::Manifest).await;
        assert!(matches!(r, Response::Error(ref e) if e.code == ErrorCode::NotServing));
    }
}

/// A verifier link that opens and then says nothing (a stuck verifier, or a host holding
/// the connection) cannot hold a kernel in `booting`: past the exchange deadline the
/// attempt counts as unreachable, the share stays sealed and the boot retries; once the
/// verifier answers, the same kernel unseals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_verifier_leaves_the_kernel_sealed_and_retrying_until_it_answers() {
    let c = Cluster::start(Options {
        relays: true,
        boot_later: vec!["k1".into()],
        exchange_timeout_ms: 300,
        ..Options::default()
    })
    .await;
    // A listener that accepts and never reads nor writes.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let held = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = silent.accept().await {
            keep.lock().unwrap().push(s);
        }
    });
    let relay = c.node("k1").relay.clone().unwrap();
    relay.repoint(silent_addr);
    c.boot("k1");
    c.wait_for(
        "k1 sealed by the exchange deadline",
        Duration::from_secs(30),
        |c| {
            let h = c.node("k1").kernel.health();
            h.state == KernelState::Sealed
                && h.reason.as_deref().is_some_and(|r| {
                    r.contains("did not") && r.contains("within 300 ms") && r.contains("retrying")
                })
        },
    )
    .await;
    assert!(c.node("k1").kernel.health().boot_to_serving_ms.is_none());
    // It kept trying: more than one connection reached the silent verifier.
    c.wait_for("a second attempt", Duration::from_secs(30), |_| {
        held.lock().unwrap().len() >= 2
    })
    .await;
    relay.repoint(c.verifier.addr);
    c.wait_for(
        "k1 serving once the verifier answers",
        Duration::from_secs(60),
        |c| c.node("k1").kernel.health().state == KernelState::Serving,
    )
    .await;
}

/// A TPM that stops answering cannot hold a kernel in `booting` either: the collection
/// deadline leaves it sealed with the reason and retrying, and once the TPM answers again
/// the same kernel unseals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tpm_that_does_not_answer_leaves_the_kernel_sealed_and_retrying_until_it_does() {
    let c = Cluster::start(Options {
        tpm_mux: true,
        boot_later: vec!["k1".into()],
        exchange_timeout_ms: 1_000,
        ..Options::default()
    })
    .await;
    let mux = c.node("k1").tpm.clone().unwrap();
    mux.hold(true);
    c.boot("k1");
    c.wait_for(
        "k1 sealed by the collection deadline",
        Duration::from_secs(30),
        |c| {
            let h = c.node("k1").kernel.health();
            h.state == KernelState::Sealed
                && h.reason.as_deref().is_some_and(|r| {
                    r.starts_with("evidence collection stalled (attempt")
                        && r.contains("within 1000 ms")
                        && r.contains("retrying")
                })
        },
    )
    .await;
    // Later attempts find the first collection still holding the TPM, and say so.
    c.wait_for("a later attempt", Duration::from_secs(30), |c| {
        c.node("k1")
            .kernel
            .health()
            .reason
            .is_some_and(|r| r.contains("a previous evidence collection has not returned"))
    })
    .await;
    assert_ne!(c.node("k1").kernel.health().state, KernelState::Serving);
    mux.hold(false);
    c.wait_for(
        "k1 serving once the TPM answers",
        Duration::from_secs(60),
        |c| c.node("k1").kernel.health().state == KernelState::Serving,
    )
    .await;
}
