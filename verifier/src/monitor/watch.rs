//! The feed: a kernel's `watch` long-poll, held until there is news for it (its own state or
//! a revocation in its ceremony changed), a challenge falls due, or `hold_ms` passes; then
//! answered with a signed [`FeedStatus`].
//!
//! Acknowledgements: a `watch` whose `since_seq` covers a status this connection delivered,
//! signed with the attestation key the kernel's wrap key was released to, acknowledges every
//! revocation up to that sequence number. An unsigned or wrongly signed `watch` is still
//! answered (the status is not secret and a challenge can only be answered with that key),
//! but acknowledges nothing, so the host cannot fake a revocation's completion.

use super::{Monitor, State, Tracker};
use attestation::ak::verify_ak_signature;
use ring::rand::SecureRandom;
use std::time::Duration;
use tokio::time::Instant;
use wire::verifier::{
    feed_signed_message, watch_signed_message, AttestationState, Challenge, FeedStatus,
    VerifierResponse, WatchParams, WATCH_NONCE_BYTES,
};

/// What one `watch` connection has seen.
#[derive(Debug, Default)]
pub struct WatchSession {
    kernel_id: Option<String>,
    answered: bool,
    answered_seq: u64,
    acked_seq: u64,
}

impl WatchSession {
    /// The kernel this connection watches for, once it sent a `watch`.
    pub fn kernel_id(&self) -> Option<&str> {
        self.kernel_id.as_deref()
    }
}

fn refused(reason: impl Into<String>) -> VerifierResponse {
    VerifierResponse::Refused {
        reason: reason.into(),
    }
}

/// Highest feed sequence number of a change in `kernel_id`'s ceremony.
fn relevant_seq(st: &State, t: &Tracker) -> u64 {
    st.members
        .get(&t.rec.ceremony_id)
        .map(|m| {
            m.iter()
                .filter_map(|k| st.kernels.get(k).map(|x| x.changed_seq))
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
        .max(t.changed_seq)
        .max(st.identity_seq)
}

impl Monitor {
    fn challenge_due(&self, t: &Tracker, now: Instant) -> bool {
        t.monitored() && !t.rec.held && t.outstanding.is_none() && now >= t.next_due
    }

    /// `None` when the `watch` should be answered now, else when to look again.
    fn ready(
        &self,
        s: &WatchSession,
        kernel_id: &str,
        hold_until: Instant,
    ) -> Result<Option<Instant>, VerifierResponse> {
        let st = self
            .lock()
            .ok_or_else(|| refused("verifier state unavailable"))?;
        let t = st
            .kernels
            .get(kernel_id)
            .ok_or_else(|| refused(format!("kernel `{kernel_id}` is not registered")))?;
        let now = Instant::now();
        if !s.answered
            || relevant_seq(&st, t) > s.answered_seq
            || self.challenge_due(t, now)
            || now >= hold_until
        {
            return Ok(None);
        }
        let wake = if t.monitored() && !t.rec.held && t.outstanding.is_none() {
            hold_until.min(t.next_due)
        } else {
            hold_until
        };
        Ok(Some(wake))
    }

    /// Serves one `watch`.
    pub async fn watch(&self, s: &mut WatchSession, p: WatchParams) -> VerifierResponse {
        if p.nonce.len() != WATCH_NONCE_BYTES {
            return refused(format!("watch nonce must be {WATCH_NONCE_BYTES} bytes"));
        }
        if let Some(k) = &s.kernel_id {
            if *k != p.kernel_id {
                return refused(format!("this connection watches `{k}`"));
            }
        }
        let (notify, ak_public) = {
            let Some(mut st) = self.lock() else {
                return refused("verifier state unavailable");
            };
            let Some(t) = st.kernels.get(&p.kernel_id) else {
                return refused(format!("kernel `{}` is not registered", p.kernel_id));
            };
            let out = (t.notify.clone(), t.rec.ak_public.clone());
            if s.kernel_id.is_none() {
                st.watching = st.watching.saturating_add(1);
            }
            out
        };
        s.kernel_id = Some(p.kernel_id.clone());

        if p.since_seq > s.acked_seq && p.since_seq <= s.answered_seq {
            let signed = ak_public.is_some_and(|ak| {
                verify_ak_signature(
                    &ak,
                    &watch_signed_message(&p.kernel_id, &p.nonce, p.since_seq),
                    &p.signature,
                )
                .is_ok()
            });
            if signed {
                s.acked_seq = p.since_seq;
                self.ack(&p.kernel_id, p.since_seq);
            }
        }

        let hold_until = Instant::now() + Duration::from_millis(self.cfg.hold_ms);
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.ready(s, &p.kernel_id, hold_until) {
                Err(resp) => return resp,
                Ok(None) => break,
                Ok(Some(wake)) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep_until(wake) => {}
                    }
                }
            }
        }
        self.status(s, &p)
    }

    /// A `watch` connection closed.
    pub fn session_closed(&self, s: &WatchSession) {
        if s.kernel_id.is_some() {
            if let Some(mut st) = self.lock() {
                st.watching = st.watching.saturating_sub(1);
            }
        }
    }

    fn status(&self, s: &mut WatchSession, p: &WatchParams) -> VerifierResponse {
        let now_ms = attestation::now_ms();
        let status = {
            let Some(mut st) = self.lock() else {
                return refused("verifier state unavailable");
            };
            let seq = st.seq;
            let now = Instant::now();
            let revoked_peers: Vec<String> = {
                let Some(t) = st.kernels.get(&p.kernel_id) else {
                    return refused(format!("kernel `{}` is not registered", p.kernel_id));
                };
                st.members
                    .get(&t.rec.ceremony_id)
                    .map(|m| {
                        m.iter()
                            .filter(|k| **k != p.kernel_id)
                            .filter(|k| {
                                st.kernels
                                    .get(k.as_str())
                                    .is_some_and(|x| x.rec.state == AttestationState::Revoked)
                            })
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let revoked_kia_ids: Vec<String> = st.revoked_kia_ids.iter().cloned().collect();
            let revoked_xpids: Vec<String> = st.revoked_xpids.iter().cloned().collect();
            let Some(t) = st.kernels.get_mut(&p.kernel_id) else {
                return refused(format!("kernel `{}` is not registered", p.kernel_id));
            };
            if self.challenge_due(t, now) {
                let mut nonce = [0u8; 32];
                let expires = now_ms.saturating_add(self.cfg.challenge_timeout_ms);
                let issued = ring::rand::SystemRandom::new().fill(&mut nonce).is_ok()
                    && self
                        .store()
                        .issue_nonce(&nonce, &p.kernel_id, now_ms, expires)
                        .map_err(|e| tracing::error!(error = %e, "challenge nonce not stored"))
                        .is_ok();
                if issued {
                    // The log part the answer must carry starts where this boot's replay ends.
                    let event_log_from = t
                        .rec
                        .ak_digest_bytes()
                        .and_then(|d| {
                            self.store()
                                .event_log_state(&p.kernel_id, &d)
                                .ok()
                                .flatten()
                        })
                        .map_or(0, |s| s.events);
                    t.outstanding = Some(super::Outstanding {
                        nonce,
                        event_log_from,
                        expires_at_ms: expires,
                        deadline: now + Duration::from_millis(self.cfg.challenge_timeout_ms),
                    });
                }
            }
            FeedStatus {
                kernel_id: p.kernel_id.clone(),
                watch_nonce: p.nonce.clone(),
                seq,
                issued_at_ms: now_ms,
                state: t.rec.state,
                reason: t.rec.reason.clone(),
                revoked_peers,
                revoked_kia_ids,
                revoked_xpids,
                challenge: t.outstanding.as_ref().map(|o| Challenge {
                    nonce: o.nonce.to_vec(),
                    expires_at_ms: o.expires_at_ms,
                    event_log_from: o.event_log_from,
                }),
                hold_ms: self.cfg.hold_ms,
            }
        };
        s.answered = true;
        s.answered_seq = status.seq;
        let Ok(bytes) = wire::encode(&status) else {
            return refused("could not encode the feed status");
        };
        let signature = self.feed_key.sign(&feed_signed_message(&bytes));
        self.metrics.status_sent();
        VerifierResponse::Status {
            status: bytes,
            signature: signature.as_ref().to_vec(),
        }
    }
}
