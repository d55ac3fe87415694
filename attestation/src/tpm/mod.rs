//! vTPM evidence: a TPM 2.0 quote over the SHA-256 PCRs 0-15, signed by a TPM-resident
//! attestation key (AK), with the quote's qualifying data set to the bundle's binding value.
//!
//! It mediates between two worlds. In the guest, `TpmAttester` (feature `tpm-collector`)
//! talks to the TPM through `tss-esapi`/libtss2: it creates an ECDSA P-256 restricted signing
//! key under the endorsement hierarchy, quotes and reads the PCRs, and ships the three TPM
//! structures marshalled as the TPM produced them. On the verifier, hand-written,
//! bounds-checked parsers ([`evidence`]) read those structures without libtss2, and
//! [`verify`] checks the signature with `ring`, the qualifying data and the PCR digest before
//! returning a [`VerifiedQuote`], the only type later code reads PCR values from.
//!
//! Threat model: the host and anyone on the path may change any byte. A quote is trusted only
//! as far as its AK is; the AK is bound to the platform by the binding value
//! ([`crate::binding`]) and, on cloud vTPMs, by the hardware report's runtime data. Structure
//! layouts follow TCG "TPM 2.0 Library, Part 2: Structures" (rev. 1.59).

#[cfg(feature = "tpm-collector")]
mod collect;
mod defs;
mod der;
pub mod evidence;
mod reader;
mod verify;

#[cfg(feature = "tpm-collector")]
pub use collect::TpmAttester;
pub use evidence::{AkPublic, EccCurve, HashAlg, TpmSignature, UnverifiedQuote};
pub use verify::{verify, verify_quote_with_key, VerifiedQuote};

use crate::evidence::{to_cbor, CollectError, EvidenceItem, EvidenceKind};
use serde::{Deserialize, Serialize};

/// The PCRs the attester quotes (SHA-256 bank): firmware, boot loader and kernel measurements
/// of the TCG PC Client Platform Firmware Profile (PCRs 0-7) and the OS (8-15).
pub const QUOTED_PCRS: std::ops::Range<u8> = 0..16;

/// Where a Linux guest exposes the firmware's TCG2 event log (securityfs).
pub const EVENT_LOG_PATH: &str = "/sys/kernel/security/tpm0/binary_bios_measurements";

/// The body of an [`EvidenceKind::Tpm`] evidence item (CBOR).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TpmEvidence {
    /// The AK's marshalled TPMT_PUBLIC (TCG Part 2 §12.2.4).
    #[serde(with = "serde_bytes")]
    pub ak_public: Vec<u8>,
    /// The quote: a marshalled TPMS_ATTEST (§10.12.12), the exact bytes the AK signed.
    #[serde(with = "serde_bytes")]
    pub attest: Vec<u8>,
    /// The marshalled TPMT_SIGNATURE (§11.3.4) over `attest`.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// The SHA-256 bank values of the quoted PCRs (0-15), as read from the TPM.
    pub pcrs: Vec<PcrValue>,
    /// The measured-boot event log, whole or only the events since those the verifier already
    /// replayed; absent when the kernel keeps no log. Untrusted until it replays to the
    /// quoted PCRs ([`crate::eventlog::check_delta`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_log: Option<EventLogPart>,
}

/// A TCG2 event log shipped with a quote: the Spec ID header and the events from
/// `first_event` on ([`crate::eventlog::EventLog::tail`]). The first quote of a boot carries
/// the whole log (`first_event` 0); each re-attestation carries only the events since the
/// last appraisal, which the verifier names in its challenge (Keylime's incremental log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLogPart {
    /// Index, in the whole log, of the first event of `log`.
    pub first_event: u32,
    /// Events in the whole log when it was read (the next delta starts here).
    pub total_events: u32,
    /// The Spec ID header followed by events `first_event..total_events`.
    #[serde(with = "serde_bytes")]
    pub log: Vec<u8>,
}

/// One PCR value as shipped in evidence; unverified until [`verify`] has matched it against
/// the quote's digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PcrValue {
    /// PCR index.
    pub index: u8,
    /// The PCR's SHA-256 bank value (32 bytes).
    #[serde(with = "serde_bytes")]
    pub digest: Vec<u8>,
}

impl TpmEvidence {
    /// Wraps the evidence as a bundle item.
    pub fn to_item(&self) -> Result<EvidenceItem, CollectError> {
        Ok(EvidenceItem {
            kind: EvidenceKind::Tpm,
            data: to_cbor(self)?,
        })
    }

    /// Decodes an item's data (CBOR, no trailing bytes).
    pub fn from_item_data(data: &[u8]) -> Result<Self, TpmError> {
        wire::decode(data).map_err(TpmError::Encoding)
    }
}

/// Why a TPM quote was rejected. Each variant names the check that failed.
#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    /// "tpm structure ends inside `{what}`".
    #[error("tpm structure ends inside `{what}`")]
    Truncated {
        /// The field being read.
        what: &'static str,
    },
    /// "`{what}` is {size} bytes, more than the {max} the tpm specification allows".
    #[error("`{what}` is {size} bytes, more than the {max} the tpm specification allows")]
    SizeLimit {
        /// The field.
        what: &'static str,
        /// Its declared size.
        size: usize,
        /// The specification's maximum.
        max: usize,
    },
    /// "{count} trailing bytes after `{what}`".
    #[error("{count} trailing bytes after `{what}`")]
    TrailingBytes {
        /// The structure that ended early.
        what: &'static str,
        /// How many bytes followed it.
        count: usize,
    },
    /// "quote magic is `{0:#010x}`, not TPM_GENERATED_VALUE 0xff544347".
    #[error("quote magic is `{0:#010x}`, not TPM_GENERATED_VALUE 0xff544347")]
    BadMagic(u32),
    /// "attestation type is `{0:#06x}`, not TPM_ST_ATTEST_QUOTE 0x8018".
    #[error("attestation type is `{0:#06x}`, not TPM_ST_ATTEST_QUOTE 0x8018")]
    WrongType(u16),
    /// "unsupported {0} algorithm `{1:#06x}`".
    #[error("unsupported {0} algorithm `{1:#06x}`")]
    UnsupportedAlgorithm(&'static str, u16),
    /// "attestation key is not a restricted signing key".
    #[error("attestation key is not a restricted signing key")]
    AkNotRestrictedSigning,
    /// "attestation key is invalid: {0}".
    #[error("attestation key is invalid: {0}")]
    KeyInvalid(&'static str),
    /// "attestation key is not an rsa subject public key info: {0}".
    #[error("attestation key is not an rsa subject public key info: {0}")]
    BadSpki(&'static str),
    /// "signature scheme does not match the attestation key".
    #[error("signature scheme does not match the attestation key")]
    SchemeMismatch,
    /// "quote signature does not verify under the attestation key".
    #[error("quote signature does not verify under the attestation key")]
    SignatureInvalid,
    /// "quote qualifying data does not match the expected binding value".
    #[error("quote qualifying data does not match the expected binding value")]
    QualifyingDataMismatch,
    /// "pcr {index} value is {len} bytes, expected 32 (sha256 bank)".
    #[error("pcr {index} value is {len} bytes, expected 32 (sha256 bank)")]
    PcrValueLength {
        /// PCR index.
        index: u8,
        /// Its length.
        len: usize,
    },
    /// "quote pcr selection is not exactly the supplied sha256 pcrs".
    #[error("quote pcr selection is not exactly the supplied sha256 pcrs")]
    PcrSelectionMismatch,
    /// "supplied pcr values do not match the quote's pcr digest".
    #[error("supplied pcr values do not match the quote's pcr digest")]
    PcrDigestMismatch,
    /// "tpm evidence is not valid cbor".
    #[error("tpm evidence is not valid cbor")]
    Encoding(#[source] wire::CodecError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_round_trips_through_an_item() {
        let ev = TpmEvidence {
            ak_public: vec![1, 2],
            attest: vec![3],
            signature: vec![4, 5, 6],
            pcrs: vec![PcrValue {
                index: 0,
                digest: vec![0; 32],
            }],
            event_log: None,
        };
        let item = ev.to_item().unwrap();
        assert_eq!(item.kind, EvidenceKind::Tpm);
        assert_eq!(TpmEvidence::from_item_data(&item.data).unwrap(), ev);
        assert!(matches!(
            TpmEvidence::from_item_data(&[0xff]),
            Err(TpmError::Encoding(_))
        ));
        let mut trailing = item.data.clone();
        trailing.push(0);
        assert!(TpmEvidence::from_item_data(&trailing).is_err());
    }
}
