//! Messages of the enclave's governance API, as carried in frames.
//!
//! Requests are adjacently tagged CBOR maps `{"method": "<name>", "params": {...}}` so that the
//! host proxy can read the method name ([`RequestHead`]) without knowing the parameter types,
//! and refuse anything not on its allowlist.

use serde::{Deserialize, Serialize};

/// Method names, as they appear in the `method` field.
pub mod method {
    /// Liveness and boot state; the only method served before unsealing.
    pub const HEALTH: &str = "health";
    /// The frozen GEC manifest with the evidence bundle and attestation result.
    pub const MANIFEST: &str = "manifest";
    /// A Cedar decision, recorded in the audit log.
    pub const EVALUATE: &str = "evaluate";
    /// A FROST threshold signature over a 32-byte digest.
    pub const SIGN_DIGEST: &str = "sign_digest";
    /// Peer kernel: FROST round 1 (commitments).
    pub const FROST_COMMIT: &str = "frost_commit";
    /// Peer kernel: FROST round 2 (signature share).
    pub const FROST_SIGN: &str = "frost_sign";
    /// A publisher-signed catalog (CAP profile) update to stage (KEE-1 P4, KEE-2 D4).
    pub const CATALOG_UPDATE: &str = "catalog_update";
    /// Peer, DKG/refresh round 1: a kernel's round-1 package (commitment and proof of
    /// knowledge) and the X25519 key the target seals its round-2 package to.
    pub const DKG_ROUND1: &str = "dkg_round1";
    /// Peer, DKG/refresh round 2: a round-2 package (a secret share), sealed to the target.
    pub const DKG_ROUND2: &str = "dkg_round2";
    /// Ends a governance session: its Session Block closes and is threshold-signed at the
    /// next anchoring pass (KEE-2 D3).
    pub const END_SESSION: &str = "end_session";
    /// An ACD Record after the KEE-1 P3 four-check, or a reasoned refusal.
    pub const ACD_ISSUE: &str = "acd_issue";
    /// Client: open a PEER transaction with another kernel (mutual attestation, jointly
    /// derived `ptxn_id`, countersigned PTR) before any payload is sent.
    pub const PEER_TRANSACTION: &str = "peer_transaction";
    /// Client: the PEER transaction's payload was exchanged (ALE-PEER-03 on both sides).
    pub const PEER_COMPLETE: &str = "peer_complete";
    /// Peer kernel, PEER step 1: the initiator's KIA id, nonce and attested credential.
    pub const PEER_HELLO: &str = "peer_hello";
    /// Peer kernel, PEER step 2: the PTR to countersign.
    pub const PEER_COMMIT: &str = "peer_commit";
    /// Peer kernel, PEER step 3: the initiator says the transaction completed.
    pub const PEER_DONE: &str = "peer_done";
    /// Every method the enclave knows.
    pub const ALL: &[&str] = &[
        HEALTH,
        MANIFEST,
        EVALUATE,
        SIGN_DIGEST,
        FROST_COMMIT,
        FROST_SIGN,
        DKG_ROUND1,
        DKG_ROUND2,
        CATALOG_UPDATE,
        END_SESSION,
        ACD_ISSUE,
        PEER_TRANSACTION,
        PEER_COMPLETE,
        PEER_HELLO,
        PEER_COMMIT,
        PEER_DONE,
    ];
}

/// Just the method name of a request: what the proxy needs to apply its allowlist.
#[derive(Debug, Clone, Deserialize)]
pub struct RequestHead {
    /// The `method` field.
    pub method: String,
}

/// A request to the enclave.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "method", content = "params", rename_all = "snake_case")]
pub enum Request {
    /// See [`method::HEALTH`].
    Health,
    /// See [`method::MANIFEST`].
    Manifest,
    /// See [`method::EVALUATE`].
    Evaluate(EvaluateParams),
    /// See [`method::SIGN_DIGEST`].
    SignDigest(SignDigestParams),
    /// See [`method::FROST_COMMIT`].
    FrostCommit(FrostCommitParams),
    /// See [`method::FROST_SIGN`].
    FrostSign(FrostSignParams),
    /// DKG/refresh round 1 (peer).
    DkgRound1(DkgRound1Params),
    /// DKG/refresh round 2 (peer).
    DkgRound2(DkgRound2Params),
    /// See [`method::CATALOG_UPDATE`].
    CatalogUpdate(CatalogUpdateParams),
    /// See [`method::END_SESSION`].
    EndSession(EndSessionParams),
    /// See [`method::ACD_ISSUE`].
    AcdIssue(AcdIssueParams),
    /// See [`method::PEER_TRANSACTION`].
    PeerTransaction(PeerTransactionParams),
    /// See [`method::PEER_COMPLETE`].
    PeerComplete(PeerCompleteParams),
    /// See [`method::PEER_HELLO`].
    PeerHello(PeerHelloParams),
    /// See [`method::PEER_COMMIT`].
    PeerCommit(PeerCommitParams),
    /// See [`method::PEER_DONE`].
    PeerDone(PeerDoneParams),
}

/// A catalog update to stage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CatalogUpdateParams {
    /// CBOR of the signed update (`enclave::catalog::SignedCatalogUpdate`), as the
    /// publishers' `catalog sign` wrote it.
    #[serde(with = "serde_bytes")]
    pub signed: Vec<u8>,
}

/// Answer to `catalog_update`: the update is staged (phase 1) and activates at
/// `effective_at_ms` (phase 2), never before.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CatalogStagedInfo {
    /// The staged version.
    pub version: u64,
    /// Activation instant (Unix ms).
    pub effective_at_ms: u64,
    /// The `cap_profile_hash` that becomes live then.
    #[serde(with = "serde_bytes")]
    pub cap_profile_hash: Vec<u8>,
    /// Pinned publishers whose signatures counted (hex).
    pub publishers: Vec<String>,
    /// The audit event recording the staging.
    pub ale_seq: u64,
}

impl Request {
    /// The method name this request travels under.
    pub fn method(&self) -> &'static str {
        match self {
            Request::Health => method::HEALTH,
            Request::Manifest => method::MANIFEST,
            Request::Evaluate(_) => method::EVALUATE,
            Request::SignDigest(_) => method::SIGN_DIGEST,
            Request::FrostCommit(_) => method::FROST_COMMIT,
            Request::FrostSign(_) => method::FROST_SIGN,
            Request::DkgRound1(_) => method::DKG_ROUND1,
            Request::DkgRound2(_) => method::DKG_ROUND2,
            Request::CatalogUpdate(_) => method::CATALOG_UPDATE,
            Request::EndSession(_) => method::END_SESSION,
            Request::AcdIssue(_) => method::ACD_ISSUE,
            Request::PeerTransaction(_) => method::PEER_TRANSACTION,
            Request::PeerComplete(_) => method::PEER_COMPLETE,
            Request::PeerHello(_) => method::PEER_HELLO,
            Request::PeerCommit(_) => method::PEER_COMMIT,
            Request::PeerDone(_) => method::PEER_DONE,
        }
    }
}

/// A Cedar authorization question.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvaluateParams {
    /// Principal entity uid, e.g. `Agent::"planner-7"`.
    pub principal: String,
    /// Action entity uid, e.g. `Action::"read"`.
    pub action: String,
    /// Resource entity uid, e.g. `Dataset::"census"`.
    pub resource: String,
    /// Cedar context as a JSON object (text); empty means `{}`.
    #[serde(default)]
    pub context_json: String,
    /// Cedar entities as a JSON array (text); empty means none.
    #[serde(default)]
    pub entities_json: String,
    /// Session the decision belongs to (groups audit events); empty = the default session.
    #[serde(default)]
    pub session_id: String,
    /// The acting agent's XPID, when known: a revoked XPID, or a revocation state the kernel
    /// cannot vouch for (KEE-1 P8), is a DENY whatever the policies say.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub agent_xpid: String,
}

/// Ask the kernel cluster to threshold-sign a digest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SignDigestParams {
    /// The 32-byte digest to sign.
    #[serde(with = "serde_bytes")]
    pub digest: Vec<u8>,
}

/// Proof that a peer request comes from an attested kernel of the same ceremony.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeerAuth {
    /// The requesting kernel's id.
    pub kernel_id: String,
    /// The requester's attestation result (COSE_Sign1 by the verifier).
    #[serde(with = "serde_bytes")]
    pub result: Vec<u8>,
    /// The requester's attestation key (SEC1 P-256 public key).
    #[serde(with = "serde_bytes")]
    pub ak_public: Vec<u8>,
    /// ECDSA P-256 signature (fixed r‖s) by the AK over the request's binding string.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// FROST round 1 request to a peer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FrostCommitParams {
    /// 16 random bytes naming this signing session.
    #[serde(with = "serde_bytes")]
    pub session_id: Vec<u8>,
    /// The digest that will be signed.
    #[serde(with = "serde_bytes")]
    pub digest: Vec<u8>,
    /// The id of the kernel asked to commit.
    pub target_kernel_id: String,
    /// Who asks.
    pub peer: PeerAuth,
}

/// FROST round 2 request to a peer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FrostSignParams {
    /// Session named in round 1.
    #[serde(with = "serde_bytes")]
    pub session_id: Vec<u8>,
    /// Serialized `frost_ed25519::SigningPackage`.
    #[serde(with = "serde_bytes")]
    pub signing_package: Vec<u8>,
    /// The id of the kernel asked to sign.
    pub target_kernel_id: String,
    /// Who asks.
    pub peer: PeerAuth,
}

/// A response from the enclave.
/// `dkg_round1` parameters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DkgRound1Params {
    /// The ceremony (from the verifier-signed plan).
    pub ceremony_id: String,
    /// SHA-256 of the plan: every participant must run the same one.
    #[serde(with = "serde_bytes")]
    pub plan_hash: Vec<u8>,
    /// Serialized FROST `dkg::round1::Package`.
    #[serde(with = "serde_bytes")]
    pub package: Vec<u8>,
    /// X25519 public key the target seals its round-2 package for the sender to.
    #[serde(with = "serde_bytes")]
    pub kx_public: Vec<u8>,
    /// The kernel this is for.
    pub target_kernel_id: String,
    /// The sender's credentials.
    pub peer: PeerAuth,
}

/// `dkg_round2` parameters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DkgRound2Params {
    /// The ceremony.
    pub ceremony_id: String,
    /// SHA-256 of the plan.
    #[serde(with = "serde_bytes")]
    pub plan_hash: Vec<u8>,
    /// Ephemeral X25519 key of the seal.
    #[serde(with = "serde_bytes")]
    pub ephemeral_public: Vec<u8>,
    /// The serialized `dkg::round2::Package`, sealed to the target's round-1 X25519 key.
    #[serde(with = "serde_bytes")]
    pub sealed_package: Vec<u8>,
    /// The kernel this is for.
    pub target_kernel_id: String,
    /// The sender's credentials.
    pub peer: PeerAuth,
}

/// A ceremony message accepted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DkgAckInfo {
    /// 1 or 2.
    pub round: u8,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "snake_case")]
pub enum Response {
    /// Answer to `health`.
    Health(HealthInfo),
    /// Answer to `manifest`.
    Manifest(ManifestInfo),
    /// Answer to `evaluate`.
    Decision(DecisionInfo),
    /// Answer to `sign_digest`.
    Signature(SignatureInfo),
    /// Answer to `frost_commit`.
    FrostCommitment(FrostCommitmentInfo),
    /// Answer to `frost_sign`.
    FrostShare(FrostShareInfo),
    /// A ceremony message was accepted (round 1 or 2).
    DkgAck(DkgAckInfo),
    /// Answer to `catalog_update`.
    CatalogStaged(CatalogStagedInfo),
    /// Answer to `end_session`.
    SessionEnded(SessionEndedInfo),
    /// Answer to `acd_issue`: a signed ACD Record.
    Acd(Box<AcdInfo>),
    /// Answer to `peer_transaction` and `peer_commit`: the countersigned PTR.
    PeerRecord(Box<PeerRecordInfo>),
    /// Answer to `peer_hello`.
    PeerHelloAck(Box<PeerHelloInfo>),
    /// Answer to `peer_complete` and `peer_done`.
    PeerCompleted(PeerCompletedInfo),
    /// Any refusal or failure.
    Error(ErrorInfo),
}

/// Boot state of a kernel.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KernelState {
    /// Collecting evidence / waiting for appraisal.
    Booting,
    /// Appraisal failed or the verifier is unreachable: share stays sealed; only `health` served.
    Sealed,
    /// Unsealed and serving governance calls.
    Serving,
    /// A fail-closed stop (e.g. manifest hash mismatch); only `health` served.
    Halted,
}

/// Answer to `health`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HealthInfo {
    /// Kernel id.
    pub kernel_id: String,
    /// Boot state.
    pub state: KernelState,
    /// Conformance level claimed by the platform (e.g. `KEE1-L1`).
    pub level: String,
    /// Why the kernel is not serving, when it is not.
    pub reason: Option<String>,
    /// Milliseconds from process start to serving, once serving.
    pub boot_to_serving_ms: Option<u64>,
}

/// Answer to `manifest`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestInfo {
    /// Canonical CBOR of the GEC manifest.
    #[serde(with = "serde_bytes")]
    pub manifest: Vec<u8>,
    /// SHA-256 of `manifest` (the hash lock).
    #[serde(with = "serde_bytes")]
    pub manifest_hash: Vec<u8>,
    /// The evidence bundle (COSE_Sign1 by the AK).
    #[serde(with = "serde_bytes")]
    pub bundle: Vec<u8>,
    /// The attestation result (COSE_Sign1 by the verifier).
    #[serde(with = "serde_bytes")]
    pub result: Vec<u8>,
}

/// Cedar decision.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Permitted by at least one policy and forbidden by none.
    Allow,
    /// Anything else, including every error.
    Deny,
}

/// Answer to `evaluate`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DecisionInfo {
    /// The decision.
    pub decision: Decision,
    /// Ids of the policies that determined it.
    pub policies: Vec<String>,
    /// Why (errors, or the deny reason).
    pub reasons: Vec<String>,
    /// Sequence number of the audit event recording it.
    pub ale_seq: u64,
    /// SHA-256 of that audit event.
    #[serde(with = "serde_bytes")]
    pub ale_hash: Vec<u8>,
}

/// Answer to `sign_digest`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SignatureInfo {
    /// Ed25519 signature (64 bytes), verifiable under the group key.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// The FROST group public key (32 bytes).
    #[serde(with = "serde_bytes")]
    pub group_public_key: Vec<u8>,
    /// Kernel ids whose shares took part.
    pub signers: Vec<String>,
}

/// Answer to `frost_commit`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FrostCommitmentInfo {
    /// Serialized `frost_ed25519::round1::SigningCommitments`.
    #[serde(with = "serde_bytes")]
    pub commitments: Vec<u8>,
    /// Serialized FROST identifier of the committing share.
    #[serde(with = "serde_bytes")]
    pub identifier: Vec<u8>,
}

/// Answer to `frost_sign`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FrostShareInfo {
    /// Serialized `frost_ed25519::round2::SignatureShare`.
    #[serde(with = "serde_bytes")]
    pub share: Vec<u8>,
}

/// Error classes a caller can act on.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The kernel is not unsealed; only `health` is served.
    NotServing,
    /// The request was malformed.
    BadRequest,
    /// The method is not allowed on this path (proxy allowlist).
    MethodNotAllowed,
    /// The peer could not prove it is an attested kernel of the same ceremony.
    Unauthorized,
    /// Not enough signers answered; nothing was signed.
    QuorumLost,
    /// Too many connections or requests.
    Busy,
    /// An internal failure; the request had no effect.
    Internal,
    /// A governance check failed (the ACD four-check, PEER mutual attestation, a revoked
    /// identity); the message names the check. Nothing was issued.
    Refused,
}

/// Any refusal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorInfo {
    /// Class.
    pub code: ErrorCode,
    /// Human-readable reason.
    pub message: String,
}

impl Response {
    /// Convenience constructor for an error response.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Response::Error(ErrorInfo {
            code,
            message: message.into(),
        })
    }
}

/// `end_session` parameters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EndSessionParams {
    /// The session to end (as given in `evaluate`).
    pub session_id: String,
}

/// Answer to `end_session`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionEndedInfo {
    /// The session ended.
    pub session_id: String,
    /// The audit event recording the end (the block's last ALE).
    pub ale_seq: u64,
}

/// Domain separation of the attestation-key signature over an ACD Record.
pub const ACD_SIGNATURE_CONTEXT: &[u8] = b"enclave-acd-v1";
/// Domain separation of the responder's countersignature over a PEER Transaction Record.
pub const PTR_COUNTERSIGNATURE_CONTEXT: &[u8] = b"enclave-ptr-countersign-v1";
/// Smallest and largest resource-provider nonce in `acd_issue` (bytes).
pub const ACD_NONCE_BYTES: std::ops::RangeInclusive<usize> = 16..=64;

/// `acd_issue` parameters: a resource provider asks whether this kernel may govern the named
/// agent's access now (KEE-1 P3).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AcdIssueParams {
    /// The agent's XPID (check 4).
    pub agent_xpid: String,
    /// The agent's KIA id, when it has its own; checked against revoked KIA ids with the
    /// kernel's (check 3). Empty: only the kernel's.
    #[serde(default)]
    pub agent_kia_id: String,
    /// Who asks (recorded).
    pub resource_provider: String,
    /// The resource provider's freshness nonce, echoed in the record.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// Session the ALE goes to; empty = `acd`.
    #[serde(default)]
    pub session_id: String,
}

/// One of the four checks, as recorded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AcdCheck {
    /// `manifest_current`, `cedar_policy_hash`, `kia_not_revoked` or `xpid_not_revoked`.
    pub check: String,
    /// Whether it passed.
    pub passed: bool,
    /// What was compared.
    pub detail: String,
}

/// An ACD Record (KEE-1 P3): issued only when all four checks passed; signed by the
/// kernel's attestation key, which the accompanying verifier-signed result names.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AcdRecord {
    /// Record format version (1).
    pub version: u32,
    /// UUID-v4 naming this ACD session.
    pub acd_session_id: String,
    /// Issuing kernel.
    pub kernel_id: String,
    /// The kernel's KIA id.
    pub kia_id: String,
    /// Fleet from the manifest.
    pub fleet_id: String,
    /// `KEE1-L1` / `KEE1-L2` / `KEE1-L3`.
    pub conformance_level: String,
    /// The agent's XPID.
    pub agent_xpid: String,
    /// The agent's KIA id (may be empty).
    pub agent_kia_id: String,
    /// Who asked.
    pub resource_provider: String,
    /// The resource provider's nonce.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// SHA-256 (hex) of the hash-locked GEC manifest.
    pub manifest_hash: String,
    /// SHA-256 (hex) recomputed over the live Cedar policy set at issue time.
    pub cedar_policy_hash: String,
    /// The `cap_profile_hash` the manifest committed to at boot (hex).
    pub manifest_cap_profile_hash: String,
    /// Catalog version in force (0: the boot policy set, as in the manifest).
    pub catalog_version: u64,
    /// SHA-256 (hex) of the attestation result presented with the record.
    pub attestation_result_digest: String,
    /// The four checks, in order; all passed.
    pub checks: Vec<AcdCheck>,
    /// Issue time (Unix ms).
    pub issued_at_ms: u64,
    /// The record is not to be relied on after this (Unix ms).
    pub expires_at_ms: u64,
}

/// Answer to `acd_issue`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AcdInfo {
    /// CBOR of the [`AcdRecord`].
    #[serde(with = "serde_bytes")]
    pub record: Vec<u8>,
    /// ECDSA P-256 (r‖s) by the attestation key over [`ACD_SIGNATURE_CONTEXT`] ‖ `record`.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// The attestation key (SEC1).
    #[serde(with = "serde_bytes")]
    pub ak_public: Vec<u8>,
    /// The latest affirming attestation result about this kernel (COSE_Sign1 by the
    /// verifier); names the attestation key by digest.
    #[serde(with = "serde_bytes")]
    pub result: Vec<u8>,
    /// The audit event recording the issue.
    pub ale_seq: u64,
}

/// PEER `transaction_class`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransactionClass {
    /// An API call.
    ApiCall,
    /// A webhook.
    Webhook,
    /// A booking request.
    BookingRequest,
    /// A settlement.
    Settlement,
    /// A data exchange.
    DataExchange,
}

/// `peer_transaction` parameters (client → initiating kernel).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerTransactionParams {
    /// The responding kernel (one of this kernel's configured peers).
    pub responder_kernel_id: String,
    /// What kind of transaction.
    pub transaction_class: TransactionClass,
    /// Domain record it belongs to (e.g. an ATP Booking Object id); may be empty.
    #[serde(default)]
    pub domain_transaction_ref: String,
    /// ACD session of the pre-call gate, when the responder is regulated; may be empty.
    #[serde(default)]
    pub acd_session_id: String,
}

/// PEER Transaction Record (PTR), as both kernels store it (ALE-PEER-02).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerTransactionRecord {
    /// Jointly derived UUID-v5 ([`crate::xpid`]).
    pub ptxn_id: String,
    /// Initiating KIA id.
    pub initiating_principal_kia: String,
    /// Responding KIA id.
    pub responding_principal_kia: String,
    /// RFC 3339 UTC (ms): when the initiator received the responding nonce.
    pub initiated_at: String,
    /// The initiator's nonce (hex).
    pub initiating_nonce: String,
    /// The responder's nonce (hex).
    pub responding_nonce: String,
    /// What kind of transaction.
    pub transaction_class: TransactionClass,
    /// Domain record; may be empty.
    #[serde(default)]
    pub domain_transaction_ref: String,
    /// ACD session of the pre-call gate; may be empty.
    #[serde(default)]
    pub acd_session_id: String,
}

/// `peer_hello` parameters (initiating kernel → responding kernel).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeerHelloParams {
    /// The initiator's KIA id.
    pub initiating_kia_id: String,
    /// 32 fresh random bytes, single use.
    #[serde(with = "serde_bytes")]
    pub initiating_nonce: Vec<u8>,
    /// What kind of transaction.
    pub transaction_class: TransactionClass,
    /// The kernel this is for.
    pub target_kernel_id: String,
    /// The initiator's attested credential, signing the nonce.
    pub peer: PeerAuth,
}

/// Answer to `peer_hello`: the responder's nonce and credential (mutual attestation).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeerHelloInfo {
    /// The responder's KIA id.
    pub responding_kia_id: String,
    /// 32 fresh random bytes.
    #[serde(with = "serde_bytes")]
    pub responding_nonce: Vec<u8>,
    /// The responder's attested credential, signing both nonces.
    pub peer: PeerAuth,
}

/// `peer_commit` parameters: the PTR for the responder to check and countersign.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeerCommitParams {
    /// CBOR of the [`PeerTransactionRecord`].
    #[serde(with = "serde_bytes")]
    pub ptr: Vec<u8>,
    /// The kernel this is for.
    pub target_kernel_id: String,
    /// The initiator's credential, signing the PTR.
    pub peer: PeerAuth,
}

/// Answer to `peer_commit` (responder) and `peer_transaction` (initiator).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerRecordInfo {
    /// The `ptxn_id`.
    pub ptxn_id: String,
    /// CBOR of the [`PeerTransactionRecord`].
    #[serde(with = "serde_bytes")]
    pub ptr: Vec<u8>,
    /// The responder's attestation-key signature over [`PTR_COUNTERSIGNATURE_CONTEXT`] ‖
    /// `ptr` (the PTR's `responding_gec_countersignature`).
    #[serde(with = "serde_bytes")]
    pub responding_countersignature: Vec<u8>,
    /// The responder's attestation key (SEC1).
    #[serde(with = "serde_bytes")]
    pub responder_ak_public: Vec<u8>,
    /// The responder's attestation result (COSE_Sign1 by the verifier).
    #[serde(with = "serde_bytes")]
    pub responder_result: Vec<u8>,
    /// The ALE-PEER-02 event in the answering kernel's log.
    pub ale_seq: u64,
}

/// `peer_complete` parameters (client → initiating kernel).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerCompleteParams {
    /// The transaction.
    pub ptxn_id: String,
}

/// `peer_done` parameters (initiating kernel → responding kernel).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeerDoneParams {
    /// The transaction.
    pub ptxn_id: String,
    /// The kernel this is for.
    pub target_kernel_id: String,
    /// The initiator's credential.
    pub peer: PeerAuth,
}

/// Answer to `peer_complete` / `peer_done`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerCompletedInfo {
    /// The transaction.
    pub ptxn_id: String,
    /// The ALE-PEER-03 event in the answering kernel's log.
    pub ale_seq: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, encode};

    #[test]
    fn head_reads_method_of_every_request() {
        let reqs = vec![
            Request::Health,
            Request::Manifest,
            Request::Evaluate(EvaluateParams {
                principal: "Agent::\"a\"".into(),
                action: "Action::\"read\"".into(),
                resource: "Doc::\"d\"".into(),
                context_json: String::new(),
                entities_json: String::new(),
                session_id: String::new(),
                agent_xpid: String::new(),
            }),
            Request::SignDigest(SignDigestParams {
                digest: vec![7; 32],
            }),
        ];
        for r in reqs {
            let bytes = encode(&r).unwrap();
            let head: RequestHead = decode(&bytes).unwrap();
            assert_eq!(head.method, r.method());
            let back: Request = decode(&bytes).unwrap();
            assert_eq!(back.method(), r.method());
        }
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(decode::<Request>(&[0xff, 0x00, 0x13]).is_err());
        assert!(decode::<RequestHead>(b"not cbor at all").is_err());
        let mut ok = encode(&Request::Health).unwrap();
        ok.push(0);
        assert!(matches!(
            decode::<Request>(&ok),
            Err(crate::CodecError::TrailingBytes(1))
        ));
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(0u8.., 0..256)) {
            let _ = decode::<Request>(&bytes);
            let _ = decode::<Response>(&bytes);
            let _ = decode::<RequestHead>(&bytes);
        }
    }
}
