//! Offline checks of what a kernel hands a resource provider or a counterparty: an ACD Record
//! (KEE-1 P3) and a countersigned PEER Transaction Record. Both are signed by the kernel's
//! attestation key; the verifier-signed attestation result that comes with them names that
//! key by digest, so trusting the record reduces to trusting the verifier's key.

use crate::ak::verify_ak_signature;
use crate::result::{verify_result, AttestationResult};
use wire::msg::{
    AcdInfo, AcdRecord, PeerRecordInfo, PeerTransactionRecord, ACD_SIGNATURE_CONTEXT,
    PTR_COUNTERSIGNATURE_CONTEXT,
};

/// The four checks, in the order KEE-1 P3 runs them.
pub const ACD_CHECKS: [&str; 4] = [
    "manifest_current",
    "cedar_policy_hash",
    "kia_not_revoked",
    "xpid_not_revoked",
];

/// Why a record was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// "the record does not decode".
    #[error("the record does not decode")]
    Decode(#[source] wire::CodecError),
    /// "the attestation result does not verify under the verifier key".
    #[error("the attestation result does not verify under the verifier key")]
    Result(#[source] crate::result::ResultError),
    /// "the attestation result names kernel `{0}`, the record `{1}`".
    #[error("the attestation result names kernel `{0}`, the record `{1}`")]
    KernelMismatch(String, String),
    /// "the attestation key is not the one the result names".
    #[error("the attestation key is not the one the result names")]
    AkMismatch,
    /// "the attestation result was not affirming when the record was issued".
    #[error(
        "the attestation result was not affirming (or had expired) when the record was issued"
    )]
    NotAffirming,
    /// "the record's signature does not verify under the attestation key".
    #[error("the record's signature does not verify under the attestation key")]
    Signature,
    /// "the record names another attestation result".
    #[error("the record names another attestation result")]
    ResultDigest,
    /// "check `{0}` is missing or did not pass".
    #[error("check `{0}` is missing or did not pass")]
    Check(&'static str),
    /// "the record expired at {0} (now {1})".
    #[error("the record expired at {0} (now {1})")]
    Expired(u64, u64),
    /// "the record answers another nonce".
    #[error("the record answers another nonce")]
    Nonce,
    /// "the ptxn_id is not the XPID derivation of the record's fields".
    #[error("the ptxn_id is not the XPID derivation of the record's fields")]
    PtxnId,
}

/// An ACD Record whose signature, key and checks verified.
#[derive(Debug, Clone)]
pub struct VerifiedAcd {
    /// The record.
    pub record: AcdRecord,
    /// The verifier's result about the issuing kernel.
    pub result: AttestationResult,
}

fn credential(
    result: &[u8],
    ak_public: &[u8],
    kernel_id: &str,
    at_ms: u64,
    verifier_public: &[u8],
) -> Result<AttestationResult, RecordError> {
    let r = verify_result(result, verifier_public).map_err(RecordError::Result)?;
    if r.kernel_id != kernel_id {
        return Err(RecordError::KernelMismatch(
            r.kernel_id.clone(),
            kernel_id.to_string(),
        ));
    }
    if r.ak_public_digest != crate::sha256(ak_public) {
        return Err(RecordError::AkMismatch);
    }
    if !r.is_affirming_at(at_ms) || at_ms < r.issued_at_ms {
        return Err(RecordError::NotAffirming);
    }
    Ok(r)
}

/// Verifies an ACD Record offline: the verifier-signed result, the attestation key it names,
/// the key's signature over the record, all four checks passed, not expired at `now_ms`,
/// and, when given, the resource provider's nonce.
pub fn verify_acd(
    info: &AcdInfo,
    verifier_public: &[u8],
    now_ms: u64,
    expected_nonce: Option<&[u8]>,
) -> Result<VerifiedAcd, RecordError> {
    let record: AcdRecord = wire::decode(&info.record).map_err(RecordError::Decode)?;
    let result = credential(
        &info.result,
        &info.ak_public,
        &record.kernel_id,
        record.issued_at_ms,
        verifier_public,
    )?;
    let mut msg = ACD_SIGNATURE_CONTEXT.to_vec();
    msg.extend_from_slice(&info.record);
    verify_ak_signature(&info.ak_public, &msg, &info.signature)
        .map_err(|_| RecordError::Signature)?;
    if record.attestation_result_digest != hex::encode(crate::sha256(&info.result)) {
        return Err(RecordError::ResultDigest);
    }
    for name in ACD_CHECKS {
        let passed = record.checks.iter().any(|c| c.check == name && c.passed);
        if !passed {
            return Err(RecordError::Check(name));
        }
    }
    if now_ms > record.expires_at_ms {
        return Err(RecordError::Expired(record.expires_at_ms, now_ms));
    }
    if expected_nonce.is_some_and(|n| n != record.nonce.as_slice()) {
        return Err(RecordError::Nonce);
    }
    Ok(VerifiedAcd { record, result })
}

/// A PTR whose countersignature verified.
#[derive(Debug, Clone)]
pub struct VerifiedPtr {
    /// The record.
    pub ptr: PeerTransactionRecord,
    /// The verifier's result about the responding kernel.
    pub responder: AttestationResult,
}

/// Verifies a countersigned PEER Transaction Record offline: the `ptxn_id` is the XPID
/// derivation of its fields, and the responder's attestation key (named by a verifier-signed
/// result about the responding kernel) countersigned exactly these bytes. `at_ms` is when the
/// countersignature is claimed to have been made (the PTR's `initiated_at` is fine).
pub fn verify_ptr(
    info: &PeerRecordInfo,
    verifier_public: &[u8],
    at_ms: u64,
) -> Result<VerifiedPtr, RecordError> {
    let ptr: PeerTransactionRecord = wire::decode(&info.ptr).map_err(RecordError::Decode)?;
    let derived = wire::xpid::derive(&wire::xpid::XpidInput {
        initiating_kia_id: &ptr.initiating_principal_kia,
        responding_kia_id: &ptr.responding_principal_kia,
        initiated_at: &ptr.initiated_at,
        initiating_nonce: &ptr.initiating_nonce,
        responding_nonce: &ptr.responding_nonce,
    })
    .map_err(|_| RecordError::PtxnId)?;
    if derived.to_string() != ptr.ptxn_id || ptr.ptxn_id != info.ptxn_id {
        return Err(RecordError::PtxnId);
    }
    let responder = credential(
        &info.responder_result,
        &info.responder_ak_public,
        &ptr.responding_principal_kia,
        at_ms,
        verifier_public,
    )?;
    let mut msg = PTR_COUNTERSIGNATURE_CONTEXT.to_vec();
    msg.extend_from_slice(&info.ptr);
    verify_ak_signature(
        &info.responder_ak_public,
        &msg,
        &info.responding_countersignature,
    )
    .map_err(|_| RecordError::Signature)?;
    Ok(VerifiedPtr { ptr, responder })
}
