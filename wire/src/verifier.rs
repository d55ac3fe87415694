//! Messages between an enclave and the verifier (relying party and key broker).
//!
//! Boot: one connection carries one appraisal: `nonce` → `appraise` → `release_key`. The
//! verifier releases a wrap key only on the connection whose bundle it just appraised as
//! affirming, and only encrypted to the X25519 key that the bundle carried, so the host proxy in
//! between sees ciphertext.
//!
//! Continuous attestation (after boot): the kernel keeps a second connection open and
//! long-polls it with `watch`. The verifier holds each `watch` until something changes for
//! this kernel (its own state, or a revocation in its ceremony), a challenge falls due, or
//! the hold time passes, then answers with a [`FeedStatus`] signed with its result key. A
//! status may carry a challenge nonce; the kernel answers it on the same connection with
//! `appraise` (fresh evidence) and gets `appraised` back. The feed stays request/response, so
//! it crosses the host's egress proxy unchanged; the host can delay or drop it, never forge
//! it, and a kernel that hears nothing fresh for its feed timeout stops signing.

use serde::{Deserialize, Serialize};

/// A request to the verifier.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "method", content = "params", rename_all = "snake_case")]
pub enum VerifierRequest {
    /// Ask for a fresh single-use nonce.
    Nonce {
        /// Kernel asking.
        kernel_id: String,
    },
    /// Submit an evidence bundle (COSE_Sign1) for appraisal.
    Appraise {
        /// The bundle bytes.
        #[serde(with = "serde_bytes")]
        bundle: Vec<u8>,
    },
    /// Ask for this kernel's wrap key (same connection as an affirming appraisal).
    ReleaseKey {
        /// Kernel asking.
        kernel_id: String,
    },
    /// Long-poll the revocation feed and the challenge schedule (continuous attestation).
    Watch(WatchParams),
}

/// Bytes of the nonce a kernel puts in every `watch`.
pub const WATCH_NONCE_BYTES: usize = 32;

/// Domain separation for a kernel's signature over a `watch` (its attestation key, ECDSA
/// P-256): the signature acknowledges every feed status up to `since_seq`.
pub const WATCH_SIGNATURE_CONTEXT: &[u8] = b"enclave-watch-v1";

/// Domain separation for the verifier's signature over a [`FeedStatus`] (its result key,
/// Ed25519). Distinct from the COSE `Signature1` context of attestation results.
pub const FEED_SIGNATURE_CONTEXT: &[u8] = b"enclave-feed-v1";

/// A `watch`: who is asking, a fresh nonce the answer must echo, and the feed sequence number
/// of the last status the kernel applied (its acknowledgement).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchParams {
    /// Kernel asking.
    pub kernel_id: String,
    /// [`WATCH_NONCE_BYTES`] random bytes; the status that answers must carry them.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// Sequence number of the last status this kernel applied on this connection (0 = none).
    pub since_seq: u64,
    /// Attestation-key signature over [`watch_signed_message`]; required for `since_seq` to
    /// count as an acknowledgement, ignored otherwise.
    #[serde(default, with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// The bytes a kernel signs in a `watch`: the context, then each field length-prefixed.
pub fn watch_signed_message(kernel_id: &str, nonce: &[u8], since_seq: u64) -> Vec<u8> {
    let mut m = WATCH_SIGNATURE_CONTEXT.to_vec();
    for part in [kernel_id.as_bytes(), nonce, &since_seq.to_be_bytes()[..]] {
        m.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        m.extend_from_slice(part);
    }
    m
}

/// The bytes the verifier signs for a feed status: the context, then the status CBOR.
pub fn feed_signed_message(status_cbor: &[u8]) -> Vec<u8> {
    let mut m = FEED_SIGNATURE_CONTEXT.to_vec();
    m.extend_from_slice(status_cbor);
    m
}

/// A kernel's attestation state in the verifier's registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttestationState {
    /// Registered by a ceremony; no wrap key released yet, so not monitored.
    Registered,
    /// Latest challenge answered with an affirming result.
    Attested,
    /// Missed one or more challenges, fewer than the grace count; still trusted.
    Failing,
    /// Revoked: a failed appraisal, too many missed challenges, or an operator.
    Revoked,
}

impl AttestationState {
    /// Lowercase name, as stored and printed.
    pub fn as_str(&self) -> &'static str {
        match self {
            AttestationState::Registered => "registered",
            AttestationState::Attested => "attested",
            AttestationState::Failing => "failing",
            AttestationState::Revoked => "revoked",
        }
    }
    /// Parses [`AttestationState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "registered" => Some(AttestationState::Registered),
            "attested" => Some(AttestationState::Attested),
            "failing" => Some(AttestationState::Failing),
            "revoked" => Some(AttestationState::Revoked),
            _ => None,
        }
    }
}

/// A challenge inside a feed status: answer with `appraise` over evidence bound to `nonce`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// 32 random bytes, single use, issued to this kernel.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// Unix time (ms) after which the answer is refused.
    pub expires_at_ms: u64,
    /// The verifier has replayed the kernel's event log up to this event: the answer's TPM
    /// quote carries only the events from here on (0: the whole log).
    #[serde(default)]
    pub event_log_from: u32,
}

/// What the verifier tells one kernel on the feed; signed with the verifier's result key over
/// [`feed_signed_message`] of its CBOR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedStatus {
    /// The kernel this status is for.
    pub kernel_id: String,
    /// The nonce of the `watch` this status answers.
    #[serde(with = "serde_bytes")]
    pub watch_nonce: Vec<u8>,
    /// Feed sequence number (per verifier process; grows with every state change).
    pub seq: u64,
    /// When the verifier issued it (Unix ms).
    pub issued_at_ms: u64,
    /// This kernel's state.
    pub state: AttestationState,
    /// Why it is in that state.
    pub reason: String,
    /// Other kernels of the same ceremony that are revoked: refuse their signing requests.
    pub revoked_peers: Vec<String>,
    /// Revoked KIA ids, fleet-wide (KIA-03 §8; KEE-1 P3 check 3 and P8): no ACD record, no
    /// PEER transaction, no signature for them.
    #[serde(default)]
    pub revoked_kia_ids: Vec<String>,
    /// Revoked agent XPIDs, fleet-wide (KIA-03 §6.5; KEE-1 P3 check 4): their decisions are
    /// DENY and no ACD record names them.
    #[serde(default)]
    pub revoked_xpids: Vec<String>,
    /// A challenge to answer now, if one is due.
    pub challenge: Option<Challenge>,
    /// Longest the verifier holds a `watch` before answering.
    pub hold_ms: u64,
}

/// A response from the verifier.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "snake_case")]
pub enum VerifierResponse {
    /// A fresh nonce.
    Nonce {
        /// 32 random bytes.
        #[serde(with = "serde_bytes")]
        nonce: Vec<u8>,
        /// Unix time (ms) after which it is refused.
        expires_at_ms: u64,
    },
    /// Appraisal outcome.
    Appraised {
        /// The signed attestation result (COSE_Sign1, EAR-shaped claims set).
        #[serde(with = "serde_bytes")]
        result: Vec<u8>,
        /// Overall status: `affirming`, `warning` or `contraindicated`.
        status: String,
        /// Reasons for every non-affirming claim.
        reasons: Vec<String>,
    },
    /// The wrap key, sealed to the enclave's ephemeral X25519 key.
    KeyReleased {
        /// The verifier's ephemeral X25519 public key.
        #[serde(with = "serde_bytes")]
        ephemeral_public: Vec<u8>,
        /// AES-256-GCM ciphertext of the wrap key (12-byte nonce prefix).
        #[serde(with = "serde_bytes")]
        sealed_wrap_key: Vec<u8>,
        /// The reference-value digest the share was sealed under (AAD part).
        #[serde(with = "serde_bytes")]
        reference_digest: Vec<u8>,
    },
    /// Answer to `watch`: a [`FeedStatus`] (CBOR) and the verifier's Ed25519 signature over
    /// [`feed_signed_message`] of exactly those bytes.
    Status {
        /// CBOR of a [`FeedStatus`].
        #[serde(with = "serde_bytes")]
        status: Vec<u8>,
        /// Ed25519 signature (64 bytes).
        #[serde(with = "serde_bytes")]
        signature: Vec<u8>,
    },
    /// Refusal, with the check that failed.
    Refused {
        /// Why.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_and_status_round_trip() {
        let w = VerifierRequest::Watch(WatchParams {
            kernel_id: "k1".into(),
            nonce: vec![7; WATCH_NONCE_BYTES],
            since_seq: 3,
            signature: vec![1, 2],
        });
        let bytes = crate::encode(&w).unwrap();
        let back: VerifierRequest = crate::decode(&bytes).unwrap();
        assert!(matches!(back, VerifierRequest::Watch(p) if p.since_seq == 3));
        let st = FeedStatus {
            kernel_id: "k1".into(),
            watch_nonce: vec![7; 32],
            seq: 9,
            issued_at_ms: 1,
            state: AttestationState::Revoked,
            reason: "r".into(),
            revoked_peers: vec!["k2".into()],
            revoked_kia_ids: vec!["kia:x".into()],
            revoked_xpids: vec![],
            challenge: Some(Challenge {
                nonce: vec![1; 32],
                expires_at_ms: 5,
                event_log_from: 7,
            }),
            hold_ms: 10,
        };
        let bytes = crate::encode(&st).unwrap();
        assert_eq!(crate::decode::<FeedStatus>(&bytes).unwrap(), st);
        for s in ["registered", "attested", "failing", "revoked"] {
            assert_eq!(AttestationState::parse(s).unwrap().as_str(), s);
        }
        assert!(AttestationState::parse("ok").is_none());
    }

    #[test]
    fn signed_messages_are_domain_separated_and_unambiguous() {
        let a = watch_signed_message("k1", &[1; 32], 1);
        let b = watch_signed_message("k1", &[1; 32], 2);
        assert_ne!(a, b);
        assert!(a.starts_with(WATCH_SIGNATURE_CONTEXT));
        assert!(feed_signed_message(b"x").starts_with(FEED_SIGNATURE_CONTEXT));
        // A kernel id cannot absorb the nonce: lengths are prefixed.
        assert_ne!(
            watch_signed_message("k", &[b'1'; 33], 0),
            watch_signed_message("k1", &[b'1'; 32], 0)
        );
    }
}
