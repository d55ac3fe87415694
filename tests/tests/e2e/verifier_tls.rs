//! The kernel → verifier link is TLS on the verifier's pinned result key, and the host sees
//! only ciphertext: a tap on the relay between each kernel's proxy and the verifier records
//! every byte of the boot appraisal (nonce, evidence bundle, result, sealed key release) and
//! of the re-attestation feed (held `watch`es, challenges, fresh bundles), and none of those
//! plaintexts appears in it. Re-attesting kernels present their attested certificate (the
//! verifier counts them), and a plaintext client is refused (this test's verifier requires TLS).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: any failure should stop the run loudly"
)]

use crate::common;

use common::*;
use std::time::Duration;
use wire::msg::{Request, Response};
use wire::verifier::VerifierRequest;

const WAIT: Duration = Duration::from_secs(60);

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Windows of `bytes` every `step` bytes, 48 bytes long: any of them in the capture means
/// that part of `bytes` crossed the host in the clear.
fn windows(bytes: &[u8], step: usize) -> Vec<Vec<u8>> {
    (0..bytes.len().saturating_sub(48))
        .step_by(step)
        .map(|i| bytes[i..i + 48].to_vec())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_host_sees_only_ciphertext_on_the_verifier_link() {
    let c = Cluster::start(Options {
        monitor: fast_monitor(),
        reattest: fast_reattest(),
        relays: true,
        require_tls: true,
        ..Options::default()
    })
    .await;
    c.settle(WAIT).await;
    // Two challenges answered by every kernel: fresh bundles and results crossed the link.
    c.wait_for("challenges answered", WAIT, |c| {
        c.nodes
            .iter()
            .all(|k| c.store.appraisals_of(&k.id, 200).unwrap().len() > 2)
    })
    .await;

    for n in &c.nodes {
        let captured = n.relay.as_ref().unwrap().captured.lock().unwrap().clone();
        // TLS records from the first byte: a handshake record, TLS 1.x record version.
        assert!(captured.len() > 4_000, "{}: {} bytes", n.id, captured.len());
        assert_eq!(&captured[..2], &[0x16, 0x03], "{}", n.id);

        let Response::Manifest(m) = call(&n.public, &Request::Manifest).await else {
            panic!("{}: no manifest", n.id);
        };
        let mut markers = windows(&m.bundle, 97);
        markers.extend(windows(&m.result, 31));
        for w in &markers {
            assert!(contains(&m.bundle, w) || contains(&m.result, w));
        }
        // What a frame on this link would carry in the clear.
        let nonce_req = wire::encode(&VerifierRequest::Nonce {
            kernel_id: n.id.clone(),
        })
        .unwrap();
        markers.push(nonce_req);
        markers.push(b"kernel_id".to_vec());
        markers.push(b"release_key".to_vec());
        markers.push(b"since_seq".to_vec());
        for w in &markers {
            assert!(
                !contains(&captured, w),
                "{}: plaintext crossed the host: {}",
                n.id,
                hex::encode(w)
            );
        }
    }

    let links = c.verifier.links();
    assert_eq!(links.plaintext, 0, "{links:?}");
    // Boot connections are anonymous TLS (a kernel has nothing attested yet); re-attesting
    // kernels present their attested certificate.
    assert!(links.tls_anonymous >= c.nodes.len() as u64, "{links:?}");
    assert!(links.tls_attested >= c.nodes.len() as u64, "{links:?}");

    // A plaintext client is refused before it is read.
    let mut s = tokio::net::TcpStream::connect(c.verifier.addr)
        .await
        .unwrap();
    let req = wire::encode(&VerifierRequest::Nonce {
        kernel_id: "k1".into(),
    })
    .unwrap();
    wire::write_frame(&mut s, &req).await.unwrap();
    let answer = tokio::time::timeout(WAIT, wire::read_frame(&mut s))
        .await
        .unwrap();
    assert!(answer.is_err(), "a plaintext request was answered");
    assert_eq!(c.verifier.links().plaintext_refused, 1);
}
