//! The monitor's rules on a real SQLite file, without sockets: release pins and schedules,
//! a failed challenge revokes and wakes the ceremony's held watches, signed acknowledgements
//! settle a revocation as clean, missed challenges revoke after the grace count, operator
//! holds block release, and a restarted monitor keeps what it decided.

use super::*;
use attestation::ak::AttestationKey;
use attestation::result::claim;
use wire::verifier::{FeedStatus, VerifierResponse, WatchParams};

fn feed_key() -> (ring::signature::Ed25519KeyPair, Vec<u8>) {
    use ring::signature::KeyPair;
    let pkcs8 =
        ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let k = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let public = k.public_key().as_ref().to_vec();
    (k, public)
}

fn cfg() -> MonitorConfig {
    MonitorConfig {
        interval_ms: 200,
        jitter_pct: 0,
        grace: 2,
        challenge_timeout_ms: 200,
        hold_ms: 5_000,
        revocation_deadline_ms: 30_000,
        sweep_ms: 50,
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    store: Arc<Store>,
    monitor: Arc<Monitor>,
    feed_public: Vec<u8>,
    aks: Vec<AttestationKey>,
}

fn fixture(cfg: MonitorConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("v.db")).unwrap());
    for k in ["k1", "k2", "k3"] {
        store
            .register_kernel(k, "c1", &[1; 32], &[2; 32], &[3; 32], 1)
            .unwrap();
    }
    let (key, feed_public) = feed_key();
    let monitor = Monitor::start(cfg, "test".into(), store.clone(), key).unwrap();
    let aks: Vec<AttestationKey> = (0..3)
        .map(|_| AttestationKey::generate().unwrap())
        .collect();
    for (i, k) in ["k1", "k2", "k3"].iter().enumerate() {
        monitor.released(k, aks[i].public_key(), "KEE1-L1");
    }
    Fixture {
        dir,
        store,
        monitor,
        feed_public,
        aks,
    }
}

fn open_status(f: &Fixture, resp: VerifierResponse, nonce: &[u8]) -> FeedStatus {
    let VerifierResponse::Status { status, signature } = resp else {
        panic!("{resp:?}")
    };
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &f.feed_public)
        .verify(&wire::verifier::feed_signed_message(&status), &signature)
        .unwrap();
    let s: FeedStatus = wire::decode(&status).unwrap();
    assert_eq!(s.watch_nonce, nonce);
    s
}

fn watch_params(f: &Fixture, i: usize, since: u64, nonce_byte: u8, sign: bool) -> WatchParams {
    let id = format!("k{}", i + 1);
    let nonce = vec![nonce_byte; 32];
    let signature = if sign {
        f.aks[i]
            .sign(&wire::verifier::watch_signed_message(&id, &nonce, since))
            .unwrap()
    } else {
        Vec::new()
    };
    WatchParams {
        kernel_id: id,
        nonce,
        since_seq: since,
        signature,
    }
}

fn bad_claims() -> Vec<TrustClaim> {
    vec![TrustClaim {
        claim: claim::EXECUTABLES.into(),
        tier: Tier::Contraindicated,
        reason: "pcr 7 changed".into(),
    }]
}

#[tokio::test]
async fn a_failed_challenge_revokes_wakes_the_ceremony_and_settles_clean() {
    // Long interval and hold: a held watch can only come back early because of news.
    let f = fixture(MonitorConfig {
        interval_ms: 60_000,
        hold_ms: 25_000,
        ..cfg()
    });
    let rec = f.monitor.record("k1").unwrap();
    assert_eq!(rec.state, AttestationState::Attested);
    assert_eq!(
        rec.ak_digest_bytes(),
        Some(attestation::sha256(f.aks[0].public_key()))
    );
    // First watch of each kernel is answered at once; k1's challenge falls due and comes on
    // its next answer.
    let mut sessions: Vec<WatchSession> = (0..3).map(|_| WatchSession::default()).collect();
    let mut seqs = [0u64; 3];
    for i in 0..3 {
        let p = watch_params(&f, i, 0, 1, false);
        let s = open_status(&f, f.monitor.watch(&mut sessions[i], p).await, &[1; 32]);
        assert_eq!(s.state, AttestationState::Attested);
        assert!(s.revoked_peers.is_empty());
        seqs[i] = s.seq;
    }
    f.monitor.make_due("k1");
    let p = watch_params(&f, 0, seqs[0], 2, true);
    let s = open_status(&f, f.monitor.watch(&mut sessions[0], p).await, &[2; 32]);
    let ch = s.challenge.expect("a challenge once due");
    let m = f.monitor.challenge_match("k1", &ch.nonce);
    assert!(m.challenge);
    assert!(!f.monitor.challenge_match("k2", &ch.nonce).challenge);

    // k2 holds a watch; k1's failed answer must wake it with k1 listed as revoked.
    let m2 = f.monitor.clone();
    let mut s2 = std::mem::take(&mut sessions[1]);
    let p2 = watch_params(&f, 1, seqs[1], 3, true);
    let held = tokio::spawn(async move {
        let r = m2.watch(&mut s2, p2).await;
        (r, s2)
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    f.monitor.appraised(
        "k1",
        true,
        Tier::Contraindicated,
        &bad_claims(),
        &["executables: pcr 7 changed".into()],
        "KEE1-L1",
    );
    let rec = f.monitor.record("k1").unwrap();
    assert_eq!(rec.state, AttestationState::Revoked);
    assert!(rec.reason.contains("pcr 7"), "{}", rec.reason);
    let (resp, s2) = tokio::time::timeout(Duration::from_secs(20), held)
        .await
        .expect("the held watch was woken")
        .unwrap();
    sessions[1] = s2;
    let st2 = open_status(&f, resp, &[3; 32]);
    assert_eq!(st2.revoked_peers, vec!["k1".to_string()]);
    assert!(st2.challenge.is_none());
    // Release is withdrawn for an appraisal older than the revocation.
    assert!(f
        .monitor
        .release_allowed("k1", rec.revoked_at_ms.unwrap())
        .is_err());

    // Acknowledgements: an unsigned watch acknowledges nothing; signed ones do.
    let unsigned = watch_params(&f, 1, st2.seq, 4, false);
    let s2b = f.monitor.watch(&mut sessions[1], unsigned);
    let _ = tokio::time::timeout(Duration::from_millis(100), s2b).await;
    assert_eq!(f.monitor.metrics().revocation_propagation.samples, 0);
    let revs = f.store.revocations_of("k1", 5).unwrap();
    assert_eq!(revs[0].completion, completion::PENDING);
    assert_eq!(revs[0].targets, 3);
    for (i, session) in sessions.iter_mut().enumerate() {
        // Each kernel's next watch gets the latest status (news since its last one) ...
        let p = watch_params(&f, i, 0, 5, false);
        *session = WatchSession::default();
        let r = f.monitor.watch(session, p).await;
        let s = open_status(&f, r, &[5; 32]);
        // ... and acknowledges it signed.
        let ack = watch_params(&f, i, s.seq, 6, true);
        let _ =
            tokio::time::timeout(Duration::from_millis(100), f.monitor.watch(session, ack)).await;
    }
    let m = f.monitor.metrics();
    assert_eq!(m.revocation_propagation.samples, 3);
    assert_eq!(m.revocation_completion.get("clean"), Some(&1));
    let revs = f.store.revocations_of("k1", 5).unwrap();
    assert_eq!(revs[0].completion, completion::CLEAN);
    assert_eq!(revs[0].acked, 3);

    // Recovery needs a fresh affirming result.
    f.monitor
        .appraised("k1", false, Tier::Affirming, &[], &[], "KEE1-L1");
    assert_eq!(
        f.monitor.record("k1").unwrap().state,
        AttestationState::Revoked,
        "a boot appraisal alone does not reinstate"
    );
    f.monitor.released("k1", f.aks[0].public_key(), "KEE1-L1");
    assert_eq!(
        f.monitor.record("k1").unwrap().state,
        AttestationState::Attested
    );
    drop(f.dir);
}

#[tokio::test]
async fn missed_challenges_revoke_after_the_grace_count() {
    let f = fixture(cfg());
    // Nobody watches: each due challenge that cannot be delivered is a miss.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        f.monitor.sweep();
        if f.monitor.record("k2").unwrap().state == AttestationState::Revoked {
            break;
        }
        assert!(Instant::now() < deadline, "k2 was never revoked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rec = f.monitor.record("k2").unwrap();
    assert_eq!(rec.misses, 2);
    assert!(
        rec.reason.contains("2 consecutive challenges missed"),
        "{}",
        rec.reason
    );
    let h = f.store.history_of("k2", 10).unwrap();
    assert_eq!(h.iter().filter(|e| e.event == "missed").count(), 1);
    assert_eq!(h[0].event, "revoked");
    assert!(
        f.monitor
            .metrics()
            .failures_by_reason
            .get("missed")
            .copied()
            .unwrap_or(0)
            >= 2
    );
}

#[tokio::test]
async fn an_operator_hold_blocks_release_until_admitted_and_survives_restart() {
    let f = fixture(cfg());
    let id = f
        .store
        .request_operator("k3", action::REVOKE, "suspected compromise", 1)
        .unwrap();
    f.monitor.sweep();
    let c = f.store.operator_command(id).unwrap().unwrap();
    assert_eq!(c.outcome.as_deref(), Some("revoked and held"));
    let rec = f.monitor.record("k3").unwrap();
    assert_eq!(rec.state, AttestationState::Revoked);
    assert!(rec.held);
    let later = rec.revoked_at_ms.unwrap() + 10;
    let err = f.monitor.release_allowed("k3", later).unwrap_err();
    assert!(err.contains("held by an operator"), "{err}");
    // An affirming challenge answer does not reinstate a held kernel.
    f.monitor
        .appraised("k3", true, Tier::Affirming, &[], &[], "KEE1-L1");
    assert_eq!(
        f.monitor.record("k3").unwrap().state,
        AttestationState::Revoked
    );

    // Restart: the decision and the hold are kept; the pending revocation is unknown.
    f.store
        .issue_nonce(
            &[9; 32],
            "k1",
            attestation::now_ms(),
            attestation::now_ms() + 60_000,
        )
        .unwrap();
    let (key, _) = feed_key();
    let again = Monitor::start(cfg(), "test".into(), f.store.clone(), key).unwrap();
    let rec = again.record("k3").unwrap();
    assert_eq!(rec.state, AttestationState::Revoked);
    assert!(rec.held);
    assert_eq!(
        again.record("k1").unwrap().state,
        AttestationState::Attested
    );
    assert_eq!(
        f.store.revocations_of("k3", 1).unwrap()[0].completion,
        completion::UNKNOWN
    );
    assert_eq!(
        f.store
            .use_nonce(&[9; 32], "k1", attestation::now_ms())
            .unwrap(),
        crate::store::NonceUse::Expired,
        "a nonce issued before the restart is void"
    );
    assert_eq!(
        again.operator("k3", action::ADMIT, "cleared"),
        "hold lifted; the kernel needs a fresh affirming result to be reinstated"
    );
    assert!(again.release_allowed("k3", later).is_ok());
}

#[tokio::test]
async fn a_kernel_registered_while_running_is_known_at_its_release() {
    let f = fixture(cfg());
    f.store
        .register_kernel("k4", "c2", &[1; 32], &[2; 32], &[3; 32], 5)
        .unwrap();
    assert!(f.monitor.record("k4").is_none(), "not swept yet");
    assert!(f
        .monitor
        .release_allowed("k4", attestation::now_ms())
        .is_ok());
    f.monitor.released("k4", f.aks[0].public_key(), "KEE1-L1");
    assert_eq!(
        f.monitor.record("k4").unwrap().state,
        AttestationState::Attested
    );
}

#[test]
fn settings_are_checked() {
    assert!(MonitorConfig::default().validate().is_ok());
    let c = MonitorConfig {
        hold_ms: PROXY_RESPONSE_TIMEOUT_MS,
        ..MonitorConfig::default()
    };
    assert!(c.validate().is_err());
    let c = MonitorConfig {
        grace: 0,
        ..MonitorConfig::default()
    };
    assert!(c.validate().is_err());
    let c = MonitorConfig {
        interval_ms: 1_000,
        jitter_pct: 10,
        ..MonitorConfig::default()
    };
    for _ in 0..100 {
        let d = c.next_interval().as_millis();
        assert!((900..=1_100).contains(&d), "{d}");
    }
}
