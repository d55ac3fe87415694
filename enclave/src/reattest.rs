//! Continuous attestation inside the kernel, and the gate that enforces "attestation
//! precedence" (ron-kms K-G6): no signing while attestation is failing; `evaluate`,
//! `manifest` and `health` go on.
//!
//! After boot the kernel keeps a second connection to the verifier and long-polls it with
//! signed `watch` requests (the design is in `wire::verifier`). Each answer is a feed status
//! signed with the pinned verifier key and echoing the `watch` nonce; it may carry a challenge,
//! which the kernel answers at once with fresh evidence from the same attesters and
//! attestation key as at boot.
//!
//! The [`Gate`] opens only while all of these hold (KEE-1 P8: uncertain revocation = deny):
//! * the latest verified status says this kernel is `attested` or `failing` (within grace);
//! * the kernel's own latest signed appraisal is affirming;
//! * a verified status answered a `watch` sent less than `feed_timeout_ms` ago.
//!
//! Bounds: a kernel connected to the verifier learns a revocation when its held `watch` is
//! answered, milliseconds after the verdict; a kernel cut off from the verifier (or whose
//! host delays the feed) freezes at most `feed_timeout_ms` after its last fresh status,
//! 25 s by default, inside the KEE-1 P8 30 s bound. Peers of the same ceremony listed as
//! revoked get no commitment or signature share from this kernel.

use crate::boot::{self, error_chain};
use crate::kernel::Kernel;
use crate::transport::{call, Stream};
use attestation::result::{verify_result, Tier};
use attestation::Nonce;
use ring::rand::SecureRandom;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wire::verifier::{
    feed_signed_message, watch_signed_message, AttestationState, Challenge, FeedStatus,
    VerifierRequest, VerifierResponse, WatchParams, WATCH_NONCE_BYTES,
};

/// KEE-1 P8: past this, an uncertain revocation status means deny.
pub const P8_BOUND_MS: u64 = 30_000;

/// Default feed timeout: below KEE-1 P8's 30 s and the host proxy's 30 s response timeout,
/// above the verifier's default 10 s hold.
pub const FEED_TIMEOUT_MS: u64 = 25_000;
/// Extra time allowed for a held `watch` to come back beyond the hold the verifier states.
pub const READ_MARGIN_MS: u64 = 5_000;
/// Longest wait for the appraisal of a challenge answer.
pub const APPRAISE_TIMEOUT_MS: u64 = 30_000;

/// The kernel's side of re-attestation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReattestConfig {
    /// Signing freezes when no verified feed status answered a `watch` sent within this.
    pub feed_timeout_ms: u64,
    /// First reconnect delay after the feed connection fails.
    pub reconnect_initial_ms: u64,
    /// Largest reconnect delay.
    pub reconnect_max_ms: u64,
}

impl Default for ReattestConfig {
    fn default() -> Self {
        Self {
            feed_timeout_ms: FEED_TIMEOUT_MS,
            reconnect_initial_ms: 200,
            reconnect_max_ms: 2_000,
        }
    }
}

/// What the kernel knows about its own attestation, and the revoked peers of its ceremony.
#[derive(Debug, Clone)]
pub struct Gate {
    fresh_at: Option<Instant>,
    state: AttestationState,
    reason: String,
    own_failure: Option<String>,
    revoked_peers: BTreeSet<String>,
    revoked_kia_ids: BTreeSet<String>,
    revoked_xpids: BTreeSet<String>,
    credential: Option<Vec<u8>>,
    evidence: Option<attested_tls::Evidence>,
    last_verdict: Option<Result<(), String>>,
}

/// What the kernel can say about revocations at a given moment (KEE-1 P8, kernel side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocationView {
    /// A verified feed status answered a `watch` sent within the feed timeout (below P8's
    /// 30 s): the lists are current.
    Clean,
    /// No fresh status: whatever was revoked since is unknown, so every revocation check
    /// fails (fail closed). The reason says how stale.
    Unknown(String),
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            fresh_at: None,
            state: AttestationState::Registered,
            reason: "not attested yet".into(),
            own_failure: None,
            revoked_peers: BTreeSet::new(),
            revoked_kia_ids: BTreeSet::new(),
            revoked_xpids: BTreeSet::new(),
            credential: None,
            evidence: None,
            last_verdict: None,
        }
    }
}

impl Gate {
    /// Boot ended with an affirming result and a release, just now.
    pub fn attested_at_boot(&mut self, now: Instant, result: Vec<u8>) {
        self.fresh_at = Some(now);
        self.state = AttestationState::Attested;
        self.reason = "unsealed after an affirming appraisal".into();
        self.own_failure = None;
        self.credential = Some(result);
    }

    /// Whether signing is allowed at `now`; the error says why not.
    pub fn check(&self, now: Instant, feed_timeout: Duration) -> Result<(), String> {
        let Some(fresh) = self.fresh_at else {
            return Err("not attested yet".into());
        };
        match self.state {
            AttestationState::Revoked => {
                return Err(format!("revoked by the verifier: {}", self.reason))
            }
            AttestationState::Registered => {
                return Err("the verifier holds no release for this kernel".into())
            }
            AttestationState::Attested | AttestationState::Failing => {}
        }
        if let Some(why) = &self.own_failure {
            return Err(format!("attestation failing: {why}"));
        }
        let age = now.saturating_duration_since(fresh);
        if age > feed_timeout {
            return Err(format!(
                "revocation feed silent for {} ms (limit {} ms): revocation state unknown",
                age.as_millis(),
                feed_timeout.as_millis()
            ));
        }
        Ok(())
    }

    /// A verified status answered a `watch` sent at `sent_at`.
    pub fn apply_status(&mut self, st: &FeedStatus, sent_at: Instant) {
        if self.fresh_at.is_none_or(|f| sent_at > f) {
            self.fresh_at = Some(sent_at);
        }
        self.state = st.state;
        self.reason = st.reason.clone();
        self.revoked_peers = st.revoked_peers.iter().cloned().collect();
        self.revoked_kia_ids = st.revoked_kia_ids.iter().cloned().collect();
        self.revoked_xpids = st.revoked_xpids.iter().cloned().collect();
    }

    /// Whether the revocation lists can be vouched for at `now`.
    pub fn revocation_view(&self, now: Instant, feed_timeout: Duration) -> RevocationView {
        let Some(fresh) = self.fresh_at else {
            return RevocationView::Unknown("no revocation status received yet".into());
        };
        let age = now.saturating_duration_since(fresh);
        let bound = feed_timeout.min(Duration::from_millis(P8_BOUND_MS));
        if age > bound {
            return RevocationView::Unknown(format!(
                "revocation feed silent for {} ms (bound {} ms)",
                age.as_millis(),
                bound.as_millis()
            ));
        }
        RevocationView::Clean
    }

    /// Whether `kia_id` is revoked (the feed's list).
    pub fn kia_revoked(&self, kia_id: &str) -> bool {
        self.revoked_kia_ids.contains(kia_id)
    }

    /// Whether `xpid` is revoked (the feed's list; compared as lowercase).
    pub fn xpid_revoked(&self, xpid: &str) -> bool {
        self.revoked_xpids.contains(&xpid.to_ascii_lowercase()) || self.revoked_xpids.contains(xpid)
    }

    /// Whether the verifier's feed says this kernel itself is revoked.
    pub fn self_revoked(&self) -> bool {
        self.state == AttestationState::Revoked
    }

    /// The kernel's own challenge answer was appraised (result verified by the caller).
    pub fn own_appraisal(&mut self, affirming: bool, reasons: &str, result: Vec<u8>) {
        if affirming {
            self.own_failure = None;
            self.credential = Some(result);
        } else {
            self.own_failure = Some(format!(
                "latest challenge appraised non-affirming: {reasons}"
            ));
        }
    }

    /// Whether `kernel_id` is a revoked peer.
    pub fn peer_revoked(&self, kernel_id: &str) -> bool {
        self.revoked_peers.contains(kernel_id)
    }

    /// Revoked peers of this kernel's ceremony.
    pub fn revoked_peers(&self) -> Vec<String> {
        self.revoked_peers.iter().cloned().collect()
    }

    /// The latest affirming result about this kernel (what it presents to peers).
    pub fn credential(&self) -> Option<Vec<u8>> {
        self.credential.clone()
    }

    /// The latest affirming bundle and result about this kernel, together: what its attested
    /// TLS certificate carries (to clients and, as server or client certificate, to peers).
    pub fn evidence(&self) -> Option<attested_tls::Evidence> {
        self.evidence.clone()
    }

    /// An affirming appraisal of `bundle`, signed as `result`, is this kernel's newest:
    /// at boot, for a key ceremony before the share is unsealed, or answering a challenge.
    pub fn set_evidence(&mut self, bundle: &[u8], result: &[u8]) {
        self.evidence = Some(attested_tls::Evidence {
            bundle: bundle.to_vec(),
            result: result.to_vec(),
        });
    }

    /// Records the verdict at `now`; returns it when it differs from the last one recorded.
    pub fn transition(
        &mut self,
        now: Instant,
        feed_timeout: Duration,
    ) -> Option<Result<(), String>> {
        let v = self.check(now, feed_timeout);
        let changed = match (&self.last_verdict, &v) {
            (None, _) => true,
            (Some(Ok(())), Ok(())) => false,
            (Some(Err(_)), Err(_)) => false,
            _ => true,
        };
        self.last_verdict = Some(v.clone());
        changed.then_some(v)
    }
}

/// Verifies a feed status: the verifier's signature over exactly these bytes, then the
/// kernel id and the `watch` nonce it must answer.
pub fn verify_status(
    verifier_public_key: &[u8],
    status: &[u8],
    signature: &[u8],
    kernel_id: &str,
    watch_nonce: &[u8],
) -> Result<FeedStatus, String> {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, verifier_public_key)
        .verify(&feed_signed_message(status), signature)
        .map_err(|_| "feed status signature does not verify under the verifier key".to_string())?;
    let st: FeedStatus =
        wire::decode(status).map_err(|e| format!("feed status does not decode: {e}"))?;
    if st.kernel_id != kernel_id {
        return Err(format!("feed status is for `{}`", st.kernel_id));
    }
    if st.watch_nonce != watch_nonce {
        return Err("feed status answers another watch (nonce mismatch)".into());
    }
    Ok(st)
}

/// Keeps the feed open until the kernel halts: reconnects with backoff, audits every change
/// of the signing verdict.
pub async fn run(k: Arc<Kernel>) {
    let cfg = k.reattest;
    let mut delay = cfg.reconnect_initial_ms.max(1);
    loop {
        if k.is_halted() {
            return;
        }
        let mut progressed = false;
        if let Err(e) = session(&k, &mut progressed).await {
            tracing::debug!(kernel = %k.kernel_id(), error = %e, "feed connection ended");
        }
        if progressed {
            delay = cfg.reconnect_initial_ms.max(1);
        }
        k.audit_gate().await;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        delay = delay.saturating_mul(2).min(cfg.reconnect_max_ms.max(1));
    }
}

async fn session(k: &Arc<Kernel>, progressed: &mut bool) -> Result<(), String> {
    let mut conn = crate::peer_link::dial_verifier(&k.cfg, Some(k)).await?;
    let mut since = 0u64;
    let mut acknowledged = 0u64;
    let mut hold_ms = k.reattest.feed_timeout_ms;
    loop {
        if k.is_halted() {
            return Ok(());
        }
        let mut nonce = vec![0u8; WATCH_NONCE_BYTES];
        ring::rand::SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| "random number generator failed".to_string())?;
        // Signed only when it acknowledges something new (the verifier checks no other).
        let signature = if since > acknowledged {
            acknowledged = since;
            k.ak.sign(&watch_signed_message(k.kernel_id(), &nonce, since))
                .map_err(|e| e.to_string())?
        } else {
            Vec::new()
        };
        let req = VerifierRequest::Watch(WatchParams {
            kernel_id: k.kernel_id().to_string(),
            nonce: nonce.clone(),
            since_seq: since,
            signature,
        });
        let sent = Instant::now();
        let wait = Duration::from_millis(hold_ms.saturating_add(READ_MARGIN_MS));
        let resp = tokio::time::timeout(wait, call::<_, VerifierResponse>(conn.as_mut(), &req))
            .await
            .map_err(|_| format!("no feed status within {} ms", wait.as_millis()))?
            .map_err(|e| error_chain(&e))?;
        let st = match resp {
            VerifierResponse::Status { status, signature } => verify_status(
                &k.cfg.verifier_public_key,
                &status,
                &signature,
                k.kernel_id(),
                &nonce,
            )?,
            VerifierResponse::Refused { reason } => return Err(format!("watch refused: {reason}")),
            _ => return Err("unexpected verifier answer to `watch`".into()),
        };
        since = st.seq;
        hold_ms = st.hold_ms.min(k.reattest.feed_timeout_ms);
        *progressed = true;
        k.with_gate(|g| g.apply_status(&st, sent));
        k.audit_gate().await;
        if let Some(ch) = &st.challenge {
            answer(k, conn.as_mut(), ch).await?;
        }
    }
}

/// Answers one challenge with fresh evidence. A collection failure or a refusal leaves the
/// gate as it is (the verifier counts a missed challenge and decides); a signed non-affirming
/// result closes it at once.
/// KEE-1 P6: each challenge answered is a `soos.governance.attestation.reattest` span.
async fn answer(k: &Arc<Kernel>, conn: &mut dyn Stream, ch: &Challenge) -> Result<(), String> {
    let mut span = k
        .otel
        .span(crate::otel::names::ATTESTATION_REATTEST, "reattest");
    let r = answer_challenge(k, conn, ch, &mut span).await;
    if let Err(why) = &r {
        span.fail(why.clone());
    }
    r
}

async fn answer_challenge(
    k: &Arc<Kernel>,
    conn: &mut dyn Stream,
    ch: &Challenge,
    span: &mut crate::otel::SpanGuard,
) -> Result<(), String> {
    let nonce = Nonce::from_slice(&ch.nonce).ok_or("challenge nonce is not 32 bytes")?;
    let Some((draft_hash, level)) = k.binding_inputs() else {
        return Err("kernel is not unsealed".into());
    };
    let (bundle, digest, _kx) = match boot::collect_bundle(
        &k.cfg,
        &k.ak,
        k.attesters.clone(),
        &nonce,
        level,
        &draft_hash,
        ch.event_log_from,
    )
    .await
    {
        Ok(b) => b,
        Err(e) => {
            let why = format!("evidence collection failed: {}", error_chain(&e));
            tracing::warn!(kernel = %k.kernel_id(), %why, "challenge not answered");
            span.fail(why.clone());
            k.audit_attestation("challenge_unanswered", &why).await;
            return Ok(());
        }
    };
    let req = VerifierRequest::Appraise {
        bundle: bundle.clone(),
    };
    let resp = tokio::time::timeout(
        Duration::from_millis(APPRAISE_TIMEOUT_MS),
        call::<_, VerifierResponse>(conn, &req),
    )
    .await
    .map_err(|_| "no appraisal of the challenge answer".to_string())?
    .map_err(|e| error_chain(&e))?;
    match resp {
        VerifierResponse::Appraised {
            result, reasons, ..
        } => {
            let claims = verify_result(&result, &k.cfg.verifier_public_key)
                .map_err(|e| format!("challenge result not trusted: {e}"))?;
            if claims.bundle_digest != digest
                || claims.nonce != nonce.as_bytes()
                || claims.kernel_id != k.kernel_id()
            {
                return Err("challenge result is about another bundle".into());
            }
            let affirming = claims.is_affirming_at(attestation::now_ms());
            let status = if affirming {
                Tier::Affirming.as_str()
            } else {
                claims.status.as_str()
            };
            span.set_attr("soos.attestation.status", status);
            span.set_hex("soos.attestation.bundle_digest", &digest);
            k.with_gate(|g| {
                if affirming {
                    g.set_evidence(&bundle, &result);
                }
                g.own_appraisal(affirming, &reasons.join("; "), result);
            });
            if !affirming {
                k.audit_attestation(
                    "challenge_failed",
                    &format!("{status}: {}", reasons.join("; ")),
                )
                .await;
            }
            k.audit_gate().await;
            Ok(())
        }
        VerifierResponse::Refused { reason } => {
            tracing::warn!(kernel = %k.kernel_id(), %reason, "challenge answer refused");
            span.fail(format!("refused: {reason}"));
            k.audit_attestation("challenge_refused", &reason).await;
            Ok(())
        }
        _ => Err("unexpected verifier answer to `appraise`".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: AttestationState, peers: &[&str]) -> FeedStatus {
        FeedStatus {
            kernel_id: "k1".into(),
            watch_nonce: vec![1; 32],
            seq: 2,
            issued_at_ms: 0,
            state,
            reason: "because".into(),
            revoked_peers: peers.iter().map(|p| p.to_string()).collect(),
            revoked_kia_ids: Vec::new(),
            revoked_xpids: Vec::new(),
            challenge: None,
            hold_ms: 10,
        }
    }

    #[test]
    fn the_gate_opens_only_when_attested_affirming_and_fresh() {
        let t = Duration::from_millis(1_000);
        let now = Instant::now();
        let mut g = Gate::default();
        assert!(g.check(now, t).is_err());
        g.attested_at_boot(now, vec![1]);
        assert!(g.check(now, t).is_ok());
        assert_eq!(g.credential(), Some(vec![1]));
        // Silence past the feed timeout: unknown revocation state = deny.
        let later = now + Duration::from_millis(1_500);
        let e = g.check(later, t).unwrap_err();
        assert!(e.contains("feed silent"), "{e}");
        g.apply_status(&status(AttestationState::Failing, &["k3"]), later);
        assert!(
            g.check(later, t).is_ok(),
            "failing within grace still signs"
        );
        assert!(g.peer_revoked("k3"));
        assert!(!g.peer_revoked("k2"));
        g.own_appraisal(false, "executables: pcr 7", vec![2]);
        let e = g.check(later, t).unwrap_err();
        assert!(e.contains("pcr 7"), "{e}");
        assert_eq!(
            g.credential(),
            Some(vec![1]),
            "a failed result is not a credential"
        );
        g.own_appraisal(true, "", vec![3]);
        assert!(g.check(later, t).is_ok());
        g.apply_status(&status(AttestationState::Revoked, &[]), later);
        let e = g.check(later, t).unwrap_err();
        assert!(e.contains("revoked"), "{e}");
        assert!(!g.peer_revoked("k3"), "the list is replaced by each status");
        // An older status does not move freshness backwards.
        g.apply_status(&status(AttestationState::Attested, &[]), now);
        assert!(g.check(later, t).is_ok());
    }

    #[test]
    fn transitions_are_reported_once() {
        let t = Duration::from_millis(1_000);
        let now = Instant::now();
        let mut g = Gate::default();
        assert!(g.transition(now, t).is_some());
        assert!(g.transition(now, t).is_none());
        g.attested_at_boot(now, vec![]);
        assert_eq!(g.transition(now, t), Some(Ok(())));
        assert!(g.transition(now, t).is_none());
        g.own_appraisal(false, "x", vec![]);
        assert!(matches!(g.transition(now, t), Some(Err(_))));
    }

    #[test]
    fn statuses_are_verified_before_they_are_read() {
        use ring::signature::KeyPair;
        let pkcs8 =
            ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .unwrap();
        let key = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let public = key.public_key().as_ref().to_vec();
        let bytes = wire::encode(&status(AttestationState::Attested, &[])).unwrap();
        let sig = key.sign(&feed_signed_message(&bytes)).as_ref().to_vec();
        assert!(verify_status(&public, &bytes, &sig, "k1", &[1; 32]).is_ok());
        assert!(verify_status(&public, &bytes, &sig, "k2", &[1; 32])
            .unwrap_err()
            .contains("is for `k1`"));
        assert!(verify_status(&public, &bytes, &sig, "k1", &[2; 32])
            .unwrap_err()
            .contains("nonce"));
        let mut flipped = bytes.clone();
        if let Some(b) = flipped.last_mut() {
            *b ^= 1;
        }
        assert!(verify_status(&public, &flipped, &sig, "k1", &[1; 32])
            .unwrap_err()
            .contains("signature"));
        // A result-style signature (no feed context) does not verify as a feed status.
        let raw = key.sign(&bytes).as_ref().to_vec();
        assert!(verify_status(&public, &bytes, &raw, "k1", &[1; 32]).is_err());
    }
}
