//! Issue 6: FROST threshold signing across kernels with a distributed key generation among
//! attested kernels, refresh of shares, and refusals of bad ceremony and signing input. On real
//! parts: the verifier service, one host proxy per kernel on Unix sockets, swtpm where noted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "test and bench code: any failure should stop the run loudly"
)]

use crate::common;
use crate::tls;

use attestation::plan::{CeremonyPlan, SignedPlan, PLAN_FILE};
use attestation::sealing::SealedShare;
use attestation::Level;
use common::*;
use ed25519_dalek::Verifier as _;
use enclave::kernel::events;
use frost_ed25519 as frost;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tls::*;
use wire::msg::{
    DkgRound1Params, DkgRound2Params, ErrorCode, FrostCommitParams, FrostSignParams, KernelState,
    PeerAuth, Request, Response, SignDigestParams,
};

const SHARE: &str = "sealed_share.cbor";

async fn sign(c: &Cluster, id: &str, digest: &[u8; 32]) -> Response {
    call(
        &c.node(id).public,
        &Request::SignDigest(SignDigestParams {
            digest: digest.to_vec(),
        }),
    )
    .await
}

fn verifies(group: &[u8], digest: &[u8], sig: &[u8]) -> bool {
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&group.try_into().unwrap()).unwrap();
    let s = ed25519_dalek::Signature::from_slice(sig).unwrap();
    vk.verify(digest, &s).is_ok()
}

fn audit_bodies(c: &Cluster, id: &str, kind: &str) -> Vec<String> {
    let log = enclave::audit::AuditLog::open(&c.node(id).state_dir.join("audit.db")).unwrap();
    log.verify_chain().unwrap();
    log.events_of_kind(kind)
        .unwrap()
        .into_iter()
        .map(|e| format!("{:?}", ciborium_text(&e.body)))
        .collect()
}

/// The audit body as text (CBOR strings concatenated), for `contains` checks.
fn ciborium_text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

async fn wait_serving(c: &Cluster, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    for n in &c.nodes {
        loop {
            let h = n.kernel.health();
            if h.state == KernelState::Serving {
                break;
            }
            assert!(Instant::now() < deadline, "{} is not serving: {h:?}", n.id);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn plan_of(c: &Cluster, id: &str) -> CeremonyPlan {
    let bytes = std::fs::read(c.node(id).state_dir.join(PLAN_FILE)).unwrap();
    SignedPlan::open(&bytes, &c.verifier.public_key).unwrap()
}

fn r1_payload(plan_hash: &[u8], package: &[u8], kx: &[u8]) -> Vec<u8> {
    wire::encode(&(
        serde_bytes_bytes(plan_hash),
        serde_bytes_bytes(package),
        serde_bytes_bytes(kx),
    ))
    .unwrap()
}

fn serde_bytes_bytes(b: &[u8]) -> serde_bytes::ByteBuf {
    serde_bytes::ByteBuf::from(b.to_vec())
}

/// What a test peer accepts of kernel `id`'s TLS certificate.
fn to(c: &Cluster, id: &str) -> attested_tls::PeerPolicy {
    attested_tls::PeerPolicy::new(c.verifier.public_key.clone(), [Level::L1]).kernels([id])
}

fn refused(r: &Response, code: ErrorCode, words: &str) -> bool {
    matches!(r, Response::Error(e) if e.code == code && e.message.contains(words))
}

/// DKG among three freshly booted, attested kernels (each with its own swtpm): the same group
/// key and `frost:t-of-n:2-3` land in every manifest, signatures verify as plain Ed25519, one
/// kernel down still signs, two down signs nothing, a host that lowers the threshold in the
/// share file stops that kernel's boot, and a returning kernel rejoins without a new ceremony.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dkg_among_attested_kernels_signs_survives_one_loss_and_rejoins() {
    let mut c = Cluster::start(Options {
        dkg: true,
        ..Options::default()
    })
    .await;
    wait_serving(&c, Duration::from_secs(90)).await;
    let (group, frost_label) = c.manifest_group_key("k1").await;
    assert_eq!(group.len(), 32);
    assert_eq!(frost_label, "frost:t-of-n:2-3");
    for id in ["k2", "k3"] {
        assert_eq!(
            c.manifest_group_key(id).await,
            (group.clone(), frost_label.clone())
        );
    }
    // The shares are sealed (the file holds ciphertext, not the key package) and name the
    // ceremony of the plan.
    let plan = plan_of(&c, "k1");
    for n in &c.nodes {
        let s = SealedShare::decode(&std::fs::read(n.state_dir.join(SHARE)).unwrap()).unwrap();
        assert_eq!(s.ceremony_id, plan.ceremony_id);
        assert_eq!(s.threshold, 2);
        assert!(frost::keys::KeyPackage::deserialize(&s.sealed).is_err());
    }
    assert!(audit_bodies(&c, "k1", events::DKG)
        .iter()
        .any(|b| b.contains("completed")));

    let digest = [0x42u8; 32];
    let Response::Signature(sig) = sign(&c, "k1", &digest).await else {
        panic!("no signature")
    };
    assert_eq!(sig.group_public_key, group);
    assert!(verifies(&group, &digest, &sig.signature));
    assert!(!verifies(&group, &[0x43; 32], &sig.signature));

    // One of three down: signing continues.
    c.nodes[1].kernel.halt("test: taken down").await;
    let r = sign(&c, "k1", &digest).await;
    assert!(
        matches!(&r, Response::Signature(s) if s.signers == ["k1", "k3"] && verifies(&group, &digest, &s.signature)),
        "{r:?}"
    );
    // Quorum lost: a clear error, nothing signed, audited.
    c.nodes[2].kernel.halt("test: taken down").await;
    let r = sign(&c, "k1", &[0x44; 32]).await;
    assert!(
        refused(&r, ErrorCode::QuorumLost, "nothing signed"),
        "{r:?}"
    );
    assert!(audit_bodies(&c, "k1", events::SIGNING)
        .iter()
        .any(|b| b.contains("refused") && b.contains("quorum lost")));

    // The host lowers the threshold in k2's share file: k2 refuses to unseal.
    let path = c.node("k2").state_dir.join(SHARE);
    let original = std::fs::read(&path).unwrap();
    let mut lowered = SealedShare::decode(&original).unwrap();
    lowered.threshold = 1;
    std::fs::write(&path, lowered.encode().unwrap()).unwrap();
    c.restart("k2", true).await;
    c.settle(Duration::from_secs(60)).await;
    let h = c.node("k2").kernel.health();
    assert_eq!(h.state, KernelState::Sealed, "{h:?}");
    assert!(h.reason.unwrap_or_default().contains("threshold"));

    // The share restored, k2 comes back and rejoins: same group key, no new ceremony.
    std::fs::write(&path, &original).unwrap();
    c.restart("k2", true).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.node("k2").kernel.health().state != KernelState::Serving {
        assert!(Instant::now() < deadline, "k2 did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(c.manifest_group_key("k2").await.0, group);
    let r = sign(&c, "k2", &[0x45; 32]).await;
    assert!(
        matches!(&r, Response::Signature(s) if s.signers == ["k2", "k1"] && verifies(&group, &[0x45; 32], &s.signature)),
        "{r:?}"
    );
    assert_eq!(
        SealedShare::decode(&std::fs::read(&path).unwrap())
            .unwrap()
            .ceremony_id,
        plan.ceremony_id
    );
}

/// While k1 and k2 wait in the ceremony for k3, messages that are unauthenticated, from a
/// non-signer, for another ceremony, malformed or out of order are refused with a reason and
/// audited; the ceremony then completes when the real k3 boots.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dkg_refuses_bad_and_unattested_ceremony_messages() {
    let c = Cluster::start(Options {
        with_tpm: false,
        dkg: true,
        boot_later: vec!["k3".into()],
        ..Options::default()
    })
    .await;
    let plan = plan_of(&c, "k1");
    let plan_hash = plan.digest().unwrap().to_vec();
    let me = attested_as(c.verifier.addr, "k3").await;
    // Peer methods go over mutually attested TLS, presenting the test-made k3 identity.
    let k1 = c.node("k1").tls.clone();
    let to_k1 = to(&c, "k1");
    let call = |socket: &std::path::Path, req: &Request| {
        let (socket, req, pol) = (socket.to_path_buf(), req.clone(), to_k1.clone());
        let me = &me;
        async move { me.try_call(&socket, pol, &req).await.unwrap() }
    };
    let cid = plan.ceremony_id.clone();
    let r1 = |package: Vec<u8>, cid: &str, auth: PeerAuth| {
        Request::DkgRound1(DkgRound1Params {
            ceremony_id: cid.into(),
            plan_hash: plan_hash.clone(),
            package,
            kx_public: vec![9; 32],
            target_kernel_id: "k1".into(),
            peer: auth,
        })
    };
    let good_auth = |package: &[u8], cid: &str| {
        me.auth(
            wire::msg::method::DKG_ROUND1,
            cid.as_bytes(),
            "k1",
            &r1_payload(&plan_hash, package, &[9; 32]),
        )
    };
    // Wait until k1 is attested and in the ceremony (before that: "no ceremony in progress").
    let junk = vec![1u8, 2, 3];
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        // No certificate (no handshake) until k1 is attested and in the ceremony.
        let r = me
            .try_call(
                &k1,
                to_k1.clone(),
                &r1(junk.clone(), &cid, good_auth(&junk, &cid)),
            )
            .await;
        if let Ok(r) = r {
            if !refused(&r, ErrorCode::NotServing, "no ceremony") {
                break r;
            }
        }
        assert!(Instant::now() < deadline, "k1 never entered the ceremony");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Malformed round-1 package from an attested signer.
    assert!(
        refused(&first, ErrorCode::BadRequest, "malformed round-1 package"),
        "{first:?}"
    );
    // Unattested: a result that is not the verifier's.
    let mut forged = good_auth(&junk, &cid);
    forged.result = b"not a result".to_vec();
    let r = call(&k1, &r1(junk.clone(), &cid, forged)).await;
    assert!(
        refused(&r, ErrorCode::Unauthorized, "attestation result"),
        "{r:?}"
    );
    // Credentials claiming k2 from the TLS session of k3: refused before they are read.
    let mut other = good_auth(&junk, &cid);
    other.kernel_id = "k2".into();
    let r = call(&k1, &r1(junk.clone(), &cid, other)).await;
    assert!(refused(&r, ErrorCode::Unauthorized, "claims"), "{r:?}");
    // A signature over other bytes than those sent.
    let r = call(&k1, &r1(vec![4, 5, 6], &cid, good_auth(&junk, &cid))).await;
    assert!(refused(&r, ErrorCode::Unauthorized, "signature"), "{r:?}");
    // Another ceremony.
    let r = call(
        &k1,
        &r1(
            junk.clone(),
            "feedfacefeedface",
            good_auth(&junk, "feedfacefeedface"),
        ),
    )
    .await;
    assert!(refused(&r, ErrorCode::Unauthorized, "ceremony"), "{r:?}");
    // Round 2 before the sender's round 1.
    let payload = wire::encode(&(
        serde_bytes_bytes(&plan_hash),
        serde_bytes_bytes(&[7; 32]),
        serde_bytes_bytes(&[8; 64]),
    ))
    .unwrap();
    let r = call(
        &k1,
        &Request::DkgRound2(DkgRound2Params {
            ceremony_id: cid.clone(),
            plan_hash: plan_hash.clone(),
            ephemeral_public: vec![7; 32],
            sealed_package: vec![8; 64],
            target_kernel_id: "k1".into(),
            peer: me.auth(
                wire::msg::method::DKG_ROUND2,
                cid.as_bytes(),
                "k1",
                &payload,
            ),
        }),
    )
    .await;
    assert!(refused(&r, ErrorCode::BadRequest, "out of order"), "{r:?}");
    let refusals = audit_bodies(&c, "k1", events::DKG)
        .into_iter()
        .filter(|b| b.contains("refused"))
        .count();
    assert!(refusals >= 6, "{refusals} refusals audited");

    // The real k3 boots: the ceremony completes and all three serve under one group key.
    c.boot("k3");
    wait_serving(&c, Duration::from_secs(90)).await;
    let (group, _) = c.manifest_group_key("k1").await;
    assert_eq!(c.manifest_group_key("k3").await.0, group);
    let Response::Signature(s) = sign(&c, "k3", &[1; 32]).await else {
        panic!("no signature")
    };
    assert!(verifies(&group, &[1; 32], &s.signature));
}

/// A signed plan is the only source of the threshold: a host that edits it (here: 3-of-3
/// lowered to 2-of-3) stops the kernel before it attests.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plan_edited_by_the_host_stops_the_boot() {
    let c = Cluster::start(Options {
        with_tpm: false,
        dkg: true,
        threshold: 3,
        boot_later: vec!["k1".into(), "k2".into(), "k3".into()],
        ..Options::default()
    })
    .await;
    let path = c.node("k1").state_dir.join(PLAN_FILE);
    let mut signed: SignedPlan = wire::decode(&std::fs::read(&path).unwrap()).unwrap();
    let mut plan: CeremonyPlan = wire::decode(&signed.plan).unwrap();
    assert_eq!(plan.threshold, 3);
    plan.threshold = 2;
    signed.plan = wire::encode(&plan).unwrap();
    std::fs::write(&path, signed.encode().unwrap()).unwrap();
    c.boot("k1");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let h = c.node("k1").kernel.health();
        if h.state == KernelState::Sealed {
            assert!(h.reason.unwrap_or_default().contains("signature"));
            break;
        }
        assert!(Instant::now() < deadline, "{h:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Signing rounds: a reused session id, a signing package for another digest than committed,
/// a second round 2 on a spent session and a replayed round-1 commitment are all refused (and
/// audited); honest signing continues.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replayed_commitments_and_reused_sessions_are_refused() {
    let c = Cluster::start(Options {
        with_tpm: false,
        dkg: true,
        ..Options::default()
    })
    .await;
    wait_serving(&c, Duration::from_secs(60)).await;
    let me = attested_as(c.verifier.addr, "k3").await;
    // One mutually attested session to k1 as the test-made k3, for every peer request.
    let session =
        tokio::sync::Mutex::new(me.connect(&c.node("k1").tls, to(&c, "k1")).await.unwrap());
    let peer = |req: Request| {
        let session = &session;
        async move { tls_call(&mut *session.lock().await, &req).await }
    };
    let digest = [0x11u8; 32];
    let commit = |session: [u8; 16]| {
        Request::FrostCommit(FrostCommitParams {
            session_id: session.to_vec(),
            digest: digest.to_vec(),
            target_kernel_id: "k1".into(),
            peer: me.auth(wire::msg::method::FROST_COMMIT, &session, "k1", &digest),
        })
    };
    let sign_req = |session: [u8; 16], pkg: &frost::SigningPackage| {
        let bytes = pkg.serialize().unwrap();
        Request::FrostSign(FrostSignParams {
            session_id: session.to_vec(),
            signing_package: bytes.clone(),
            target_kernel_id: "k1".into(),
            peer: me.auth(wire::msg::method::FROST_SIGN, &session, "k1", &bytes),
        })
    };
    let k1_id = frost::Identifier::derive(b"k1").unwrap();
    let k3_id = frost::Identifier::derive(b"k3").unwrap();
    let my_share = frost::keys::SigningShare::deserialize(&[1u8; 32][..]).unwrap_or_else(|_| {
        let mut b = [0u8; 32];
        b[0] = 1;
        frost::keys::SigningShare::deserialize(&b).unwrap()
    });
    let (_n, mine) = frost::round1::commit(&my_share, &mut rand::rngs::OsRng);
    let package = |k1_commitment: frost::round1::SigningCommitments, msg: &[u8]| {
        let mut m = BTreeMap::new();
        m.insert(k1_id, k1_commitment);
        m.insert(k3_id, mine);
        frost::SigningPackage::new(m, msg)
    };
    // An unattested peer (a result the verifier did not sign) gets no commitment.
    let mut forged = commit([9u8; 16]);
    if let Request::FrostCommit(p) = &mut forged {
        p.peer.result = b"self-made result".to_vec();
    }
    let r = peer(forged.clone()).await;
    assert!(
        refused(&r, ErrorCode::Unauthorized, "attestation result"),
        "{r:?}"
    );
    let s1 = [1u8; 16];
    let Response::FrostCommitment(c1) = peer(commit(s1)).await else {
        panic!("no commitment")
    };
    let c1 = frost::round1::SigningCommitments::deserialize(&c1.commitments).unwrap();
    // The same session id again.
    let r = peer(commit(s1)).await;
    assert!(refused(&r, ErrorCode::BadRequest, "already used"), "{r:?}");
    // Round 2 for another message than committed to.
    let r = peer(sign_req(s1, &package(c1, &[0x22; 32]))).await;
    assert!(
        refused(&r, ErrorCode::Unauthorized, "another digest"),
        "{r:?}"
    );
    // The session is spent: round 2 again, even well formed, is refused.
    let r = peer(sign_req(s1, &package(c1, &digest))).await;
    assert!(refused(&r, ErrorCode::BadRequest, "already used"), "{r:?}");
    // A replayed round-1 commitment (session 1's) in a new session.
    let s2 = [2u8; 16];
    let Response::FrostCommitment(_) = peer(commit(s2)).await else {
        panic!("no commitment")
    };
    let r = peer(sign_req(s2, &package(c1, &digest))).await;
    assert!(refused(&r, ErrorCode::Unauthorized, "commitments"), "{r:?}");
    // Round 2 with no round 1 at all (mis-ordered).
    let r = peer(sign_req([3u8; 16], &package(c1, &digest))).await;
    assert!(refused(&r, ErrorCode::BadRequest, "unknown"), "{r:?}");
    let refusals = audit_bodies(&c, "k1", events::SIGNING)
        .into_iter()
        .filter(|b| b.contains("refused"))
        .count();
    assert!(refusals >= 6, "{refusals} refusals audited");
    // Honest signing is unaffected.
    let (group, _) = c.manifest_group_key("k1").await;
    let Response::Signature(s) = sign(&c, "k1", &digest).await else {
        panic!("no signature")
    };
    assert!(verifies(&group, &digest, &s.signature));
}

/// `verifier refresh`: the kernels refresh their shares among themselves; the group key and
/// threshold stay, the shares change, signing continues, and an old share put back by the
/// host no longer produces signatures with the new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_keeps_the_group_key_and_old_shares_stop_working() {
    let mut c = Cluster::start(Options {
        with_tpm: false,
        dkg: true,
        ..Options::default()
    })
    .await;
    wait_serving(&c, Duration::from_secs(60)).await;
    let (group, _) = c.manifest_group_key("k1").await;
    let old3 = std::fs::read(c.node("k3").state_dir.join(SHARE)).unwrap();
    let signer = verifier::service::load_signer(&c.store).unwrap();
    let out =
        verifier::ceremony::plan_refresh(&c.store, &signer, "k1", &c.dir.path().join("kernels"))
            .unwrap();
    assert_eq!(hex::decode(&out.group_public_key).unwrap(), group);
    for id in ["k1", "k2", "k3"] {
        c.restart(id, true).await;
    }
    wait_serving(&c, Duration::from_secs(90)).await;
    for id in ["k1", "k2", "k3"] {
        assert_eq!(
            c.manifest_group_key(id).await,
            (group.clone(), "frost:t-of-n:2-3".into())
        );
        let s =
            SealedShare::decode(&std::fs::read(c.node(id).state_dir.join(SHARE)).unwrap()).unwrap();
        assert_eq!(s.ceremony_id, out.ceremony_id);
        assert!(audit_bodies(&c, id, events::DKG)
            .iter()
            .any(|b| b.contains("completed") && b.contains("refresh")));
    }
    assert_ne!(
        std::fs::read(c.node("k3").state_dir.join(SHARE)).unwrap(),
        old3
    );
    let Response::Signature(s) = sign(&c, "k1", &[3; 32]).await else {
        panic!("no signature after refresh")
    };
    assert!(verifies(&group, &[3; 32], &s.signature));

    // The host puts k3's old share back (and drops the plan so that k3 just unseals it).
    std::fs::write(c.node("k3").state_dir.join(SHARE), &old3).unwrap();
    std::fs::remove_file(c.node("k3").state_dir.join(PLAN_FILE)).unwrap();
    c.restart("k3", true).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.node("k3").kernel.health().state != KernelState::Serving {
        assert!(Instant::now() < deadline, "k3 did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.nodes[1].kernel.halt("test: taken down").await;
    let r = sign(&c, "k1", &[4; 32]).await;
    assert!(
        refused(
            &r,
            ErrorCode::Unauthorized,
            "invalid signature share from [k3]"
        ),
        "an old share still signs: {r:?}"
    );
    assert!(audit_bodies(&c, "k1", events::SIGNING)
        .iter()
        .any(|b| b.contains("refused") && b.contains("invalid signature share")));
    let r = sign(&c, "k3", &[4; 32]).await;
    assert!(!matches!(r, Response::Signature(_)), "{r:?}");
}

/// `verifier repair`: k3 is replaced and its state lost; k1 and k2 (t = 2 helpers) rebuild its
/// share with `keys::repairable`. Same group key, no new ceremony for anyone; the repaired k3
/// signs with k1 while k2 is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_signer_is_repaired_by_t_helpers_under_the_same_group_key() {
    let mut c = Cluster::start(Options {
        with_tpm: false,
        dkg: true,
        ..Options::default()
    })
    .await;
    wait_serving(&c, Duration::from_secs(60)).await;
    let (group, _) = c.manifest_group_key("k1").await;
    // k3's machine is lost, with its state.
    c.nodes[2].kernel.halt("test: machine lost").await;
    std::fs::remove_file(c.node("k3").state_dir.join(SHARE)).unwrap();
    let signer = verifier::service::load_signer(&c.store).unwrap();
    let out = verifier::ceremony::plan_repair(
        &c.store,
        &signer,
        "k3",
        &["k1".to_string(), "k2".to_string()],
        &c.dir.path().join("kernels"),
    )
    .unwrap();
    assert_eq!(hex::decode(&out.group_public_key).unwrap(), group);
    for id in ["k1", "k2", "k3"] {
        c.restart(id, true).await;
    }
    wait_serving(&c, Duration::from_secs(90)).await;
    for id in ["k1", "k2", "k3"] {
        assert_eq!(c.manifest_group_key(id).await.0, group, "{id}");
    }
    assert!(audit_bodies(&c, "k3", events::DKG)
        .iter()
        .any(|b| b.contains("completed") && b.contains("repaired")));
    c.nodes[1].kernel.halt("test: taken down").await;
    let r = sign(&c, "k3", &[6; 32]).await;
    assert!(
        matches!(&r, Response::Signature(s) if s.signers == ["k3", "k1"] && verifies(&group, &[6; 32], &s.signature)),
        "{r:?}"
    );
}

/// t-of-n is configurable: a 3-of-4 DKG signs with three kernels, and with two down (quorum
/// lost) signs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_three_of_four_dkg_signs_with_three_and_not_with_two() {
    let c = Cluster::start(Options {
        with_tpm: false,
        dkg: true,
        kernels: 4,
        threshold: 3,
        ..Options::default()
    })
    .await;
    wait_serving(&c, Duration::from_secs(90)).await;
    let (group, label) = c.manifest_group_key("k4").await;
    assert_eq!(label, "frost:t-of-n:3-4");
    let Response::Signature(s) = sign(&c, "k1", &[7; 32]).await else {
        panic!("no signature")
    };
    assert_eq!(s.signers.len(), 3);
    assert!(verifies(&group, &[7; 32], &s.signature));
    c.nodes[1].kernel.halt("test: taken down").await;
    let r = sign(&c, "k1", &[8; 32]).await;
    assert!(
        matches!(&r, Response::Signature(s) if s.signers == ["k1", "k3", "k4"]),
        "{r:?}"
    );
    c.nodes[2].kernel.halt("test: taken down").await;
    let r = sign(&c, "k1", &[9; 32]).await;
    assert!(
        refused(&r, ErrorCode::QuorumLost, "nothing signed"),
        "{r:?}"
    );
}
