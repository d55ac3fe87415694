//! Kernel-to-kernel links over mutually attested TLS (issue 7). Three kernels make their key
//! by DKG and sign with each other through their host proxies, on real parts (the verifier
//! service, the kernels, one proxy per kernel on Unix sockets, rustls at both ends):
//!
//! * every byte the kernels send each other through the host (the DKG rounds and the FROST
//!   rounds of a threshold signature) is captured at the proxies' egress sockets, and none of
//!   the peer requests' plaintext is in it (the digest, the session id, the method names);
//! * a peer that does not appraise gets nothing: peer methods in plaintext (through the
//!   proxy, or straight to the enclave as a hostile host could send them), over TLS without a
//!   client certificate, with a certificate whose result the pinned verifier did not sign,
//!   or from one attested kernel claiming to be another, are refused and audited.
//!
//! One cluster for the whole binary (a second cluster in one process can stall a boot).
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
use enclave::kernel::events;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tls::*;
use wire::msg::{
    method, ErrorCode, FrostCommitParams, KernelState, Request, Response, SignDigestParams,
};

fn policy(c: &Cluster, id: &str) -> PeerPolicy {
    PeerPolicy::new(c.verifier.public_key.clone(), [Level::L1]).kernels([id])
}

fn refused(r: &Response, code: ErrorCode, words: &str) -> bool {
    matches!(r, Response::Error(e) if e.code == code && e.message.contains(words))
}

/// k1's audit events of `kind` as text, the chain verified first.
fn audit(c: &Cluster, id: &str, kind: &str) -> Vec<(String, String)> {
    let log = enclave::audit::AuditLog::open(&c.node(id).state_dir.join("audit.db")).unwrap();
    log.verify_chain().unwrap();
    log.events_of_kind(kind)
        .unwrap()
        .into_iter()
        .map(|e| (e.session_id, String::from_utf8_lossy(&e.body).into_owned()))
        .collect()
}

/// Puts a [`tap`] on every socket where a kernel's peer connections leave its enclave for
/// its host proxy (`<uds>_<port>`, hybrid vsock): the proxy's listener is moved aside and
/// the tap takes its place, so every peer byte crosses the tap.
fn tap_peer_egress(c: &Cluster, dir: &Path) -> Vec<Capture> {
    let mut taps = Vec::new();
    for n in &c.nodes {
        for (peer, port) in &n.cfg.peers {
            let at = wire::hybrid::guest_initiated_path(&n.state_dir.join("vsock.sock"), *port);
            let real: PathBuf = dir.join(format!("{}-to-{peer}.sock", n.id));
            std::fs::rename(&at, &real).unwrap();
            taps.push(tap(&at, real));
        }
    }
    taps
}

fn captured(taps: &[Capture]) -> Vec<Vec<u8>> {
    taps.iter().map(|t| t.lock().unwrap().clone()).collect()
}

async fn wait_serving(c: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(90);
    for n in &c.nodes {
        while n.kernel.health().state != KernelState::Serving {
            assert!(
                Instant::now() < deadline,
                "{}: {:?}",
                n.id,
                n.kernel.health()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A frame to the enclave's governance port straight over its vsock, past the proxy.
async fn to_enclave(c: &Cluster, id: &str, req: &Request) -> Response {
    let mut s = wire::hybrid::connect(
        &c.node(id).state_dir.join("vsock.sock"),
        wire::hybrid::GOVERNANCE_PORT,
    )
    .await
    .unwrap();
    wire::write_frame(&mut s, &wire::encode(req).unwrap())
        .await
        .unwrap();
    wire::decode(&wire::read_frame(&mut s).await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peer_links_are_mutually_attested_tls_and_the_host_sees_only_ciphertext() {
    let c = Cluster::start(Options {
        with_tpm: false,
        dkg: true,
        boot_later: vec!["k1".into(), "k2".into(), "k3".into()],
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let taps = tap_peer_egress(&c, dir.path());
    for id in ["k1", "k2", "k3"] {
        c.boot(id);
    }
    // The DKG ran over the peer links: all three serve under one group key.
    wait_serving(&c).await;
    let (group, _) = c.manifest_group_key("k1").await;
    assert_eq!(c.manifest_group_key("k3").await.0, group);
    let after_dkg: usize = captured(&taps).iter().map(Vec::len).sum();
    assert!(
        after_dkg > 5_000,
        "the DKG crossed the taps: {after_dkg} bytes"
    );

    // A threshold signature, asked of k1 over its TLS route (so the digest is nowhere in
    // the clear, client side included): k1 runs both FROST rounds with a peer.
    let digest = attestation::sha256(b"peer-tls capture: the digest must not cross in clear");
    let mut client = connect(&c.node("k1").tls, policy(&c, "k1")).await.unwrap();
    let sig = match tls_call(
        &mut client,
        &Request::SignDigest(SignDigestParams {
            digest: digest.to_vec(),
        }),
    )
    .await
    {
        Response::Signature(s) => s,
        other => panic!("no signature: {other:?}"),
    };
    assert_eq!(sig.group_public_key, group);
    assert_eq!(sig.signers.len(), 2);
    let bytes = captured(&taps);
    let total: usize = bytes.iter().map(Vec::len).sum();
    assert!(
        total > after_dkg + 500,
        "the signing rounds crossed the taps ({after_dkg} → {total} bytes)"
    );
    // The signing session, from k1's audit record of the signature.
    let (session_hex, _) = audit(&c, "k1", events::SIGNING)
        .into_iter()
        .rev()
        .find(|(_, body)| body.contains("signature"))
        .unwrap();
    let session = hex::decode(&session_hex).unwrap();
    assert_eq!(session.len(), enclave::frost::SESSION_ID_BYTES);
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("digest", digest.to_vec()),
        ("session id", session.clone()),
        ("session id (hex)", session_hex.as_bytes().to_vec()),
        ("frost_commit", method::FROST_COMMIT.as_bytes().to_vec()),
        ("frost_sign", method::FROST_SIGN.as_bytes().to_vec()),
        ("dkg_round1", method::DKG_ROUND1.as_bytes().to_vec()),
        ("dkg_round2", method::DKG_ROUND2.as_bytes().to_vec()),
        ("peer auth domain", b"enclave-peer-v1".to_vec()),
    ];
    for (i, seen) in bytes.iter().enumerate() {
        if seen.is_empty() {
            continue;
        }
        // Each connection opens with a TLS handshake record (ClientHello).
        assert!(
            contains(seen, &[0x16, 0x03, 0x01]),
            "tap {i}: no tls record"
        );
        for (what, s) in &secrets {
            assert!(
                !contains(seen, s),
                "the {what} crossed the host in the clear"
            );
        }
    }
    // Control: the same peer request as a plaintext frame holds every one of them, so the
    // search above could have found them.
    let plain = wire::encode(&Request::FrostCommit(FrostCommitParams {
        session_id: session.clone(),
        digest: digest.to_vec(),
        target_kernel_id: "k2".into(),
        peer: wire::msg::PeerAuth {
            kernel_id: "k1".into(),
            result: Vec::new(),
            ak_public: Vec::new(),
            signature: Vec::new(),
        },
    }))
    .unwrap();
    for s in [&digest[..], &session[..], method::FROST_COMMIT.as_bytes()] {
        assert!(contains(&plain, s));
    }

    refusals(&c).await;
}

/// Peers that do not appraise get nothing from k1, and every refusal is audited.
async fn refusals(c: &Cluster) {
    let k1 = c.node("k1");
    // A party the verifier appraised as k3 (its own AK, software evidence): a real, affirming
    // identity, so what is refused below is the channel, not the credentials.
    let me = attested_as(c.verifier.addr, "k3").await;
    let digest = [0x5a; 32];
    let commit = |session: u8, claims: &Attested| {
        let s = [session; 16];
        let mut auth = me.auth(method::FROST_COMMIT, &s, "k1", &digest);
        auth.kernel_id = claims.id.clone();
        Request::FrostCommit(FrostCommitParams {
            session_id: s.to_vec(),
            digest: digest.to_vec(),
            target_kernel_id: "k1".into(),
            peer: auth,
        })
    };
    let before = audit(c, "k1", events::SIGNING)
        .iter()
        .filter(|(_, b)| b.contains("refused"))
        .count();

    // 1. Plaintext through the proxy's frame route: not on its allowlist.
    let r = call(&k1.public, &commit(1, &me)).await;
    assert!(
        refused(&r, ErrorCode::MethodNotAllowed, "frost_commit"),
        "{r:?}"
    );
    // 2. Plaintext straight to the enclave (a hostile host): refused by the kernel.
    let r = to_enclave(c, "k1", &commit(2, &me)).await;
    assert!(
        refused(&r, ErrorCode::Unauthorized, "mutually attested tls"),
        "{r:?}"
    );
    // 3. TLS without a client certificate (a governance client): refused.
    let mut anonymous = connect(&k1.tls, policy(c, "k1")).await.unwrap();
    let r = tls_call(&mut anonymous, &commit(3, &me)).await;
    assert!(
        refused(
            &r,
            ErrorCode::Unauthorized,
            "without an attested client certificate"
        ),
        "{r:?}"
    );
    // 4. A certificate whose result another verifier signed: refused in the handshake.
    let claims = attestation::result::verify_result(&me.result, &c.verifier.public_key).unwrap();
    let rogue = attestation::result::ResultSigner::generate().unwrap().0;
    let forged = me.with_result(rogue.sign(&claims).unwrap());
    let refused_handshake = forged.connect(&k1.tls, policy(c, "k1")).await.is_err();
    assert!(
        refused_handshake,
        "a certificate the pinned verifier did not sign was accepted"
    );
    // (The client learns only that the session ended; k1's audit below names the check.)
    // 5. An attested k3 whose requests claim to come from k2: refused.
    let k2_claim = Attested {
        id: "k2".into(),
        ..me.with_result(me.result.clone())
    };
    let r = me
        .try_call(&k1.tls, policy(c, "k1"), &commit(5, &k2_claim))
        .await
        .unwrap();
    assert!(refused(&r, ErrorCode::Unauthorized, "claims"), "{r:?}");
    // Control: the same session, honest, gets a commitment (so the refusals are about the
    // channel and the claim, not the identity).
    let r = me
        .try_call(&k1.tls, policy(c, "k1"), &commit(6, &me))
        .await
        .unwrap();
    assert!(matches!(r, Response::FrostCommitment(_)), "{r:?}");

    // Every refusal by k1 is in its audit log with its reason: 2, 3, 4 (the handshake) and 5
    // (1 never reached the enclave).
    let refusals: Vec<String> = audit(c, "k1", events::SIGNING)
        .into_iter()
        .map(|(_, b)| b)
        .filter(|b| b.contains("refused"))
        .collect();
    assert_eq!(refusals.len() - before, 4, "{refusals:#?}");
    let new = &refusals[before..];
    assert!(new.iter().any(|b| b.contains("mutually attested tls")));
    assert!(new
        .iter()
        .any(|b| b.contains("without an attested client certificate")));
    assert!(new
        .iter()
        .any(|b| b.contains("tls_handshake") && b.contains("attestation result")));
    assert!(new.iter().any(|b| b.contains("claims")));
    // And k1 still signs with its real peers.
    let r = call(
        &k1.public,
        &Request::SignDigest(SignDigestParams {
            digest: digest.to_vec(),
        }),
    )
    .await;
    assert!(matches!(r, Response::Signature(_)), "{r:?}");
}
