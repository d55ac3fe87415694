//! TCG2 crypto-agile event logs: the firmware's record of what it measured into TPM PCRs
//! (`/sys/kernel/security/tpm0/binary_bios_measurements`) or into TDX RTMRs (the CCEL,
//! `/sys/firmware/acpi/tables/data/CCEL`).
//!
//! A log mediates between two worlds: the hardware holds only the final register values
//! (quoted by a TPM, reported in a TD quote), the log holds the list of digests that produced
//! them. Neither is useful alone: a register value says nothing about what was loaded, a log
//! says nothing until its replay equals registers from verified evidence. So this module
//! parses ([`EventLog::parse`], framing only, [`event`]), replays ([`replay()`],
//! [`ccel::replay_rtmrs`]) and compares ([`check_against`], [`ccel::check_rtmrs`]); event
//! data is trusted only after that comparison succeeds.
//!
//! Threat model: every byte of the log comes from the untrusted host or guest userspace. The
//! parser never panics, never allocates from a declared length before checking it against the
//! input, and refuses anything outside the format (unknown banks, missing digests, bytes after
//! the end-of-log padding). Layouts follow the TCG "PC Client Platform Firmware Profile
//! Specification" (PFP) version 1.05 revision 23, cited by section.

pub mod ccel;
pub mod defs;
pub mod event;
mod reader;
pub mod replay;

pub use ccel::{check_rtmrs, replay_rtmrs, CcelTable, Rtmrs};
pub use event::{Digest, DigestAlgorithm, Event, EventLog, EventType, SpecIdEvent};
pub use replay::{
    check_against, check_delta, replay, Prefix, Register, ReplayError, ReplayMismatch,
};

/// Why an event log was rejected or cannot be replayed. Each variant names the check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventLogError {
    /// "event log ends inside `{what}` at byte {offset}".
    #[error("event log ends inside `{what}` at byte {offset}")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Offset of the field from the start of the log (or of the Spec ID event data).
        offset: usize,
    },
    /// "`{what}` declares {size} bytes but only {remaining} remain": a size that overflows the
    /// log (event index given when known).
    #[error("`{what}` declares {size} bytes but only {remaining} remain")]
    SizeExceedsLog {
        /// The size field.
        what: &'static str,
        /// Index of the event, `None` for the Spec ID header.
        event: Option<usize>,
        /// The declared size.
        size: u32,
        /// Bytes left in the input.
        remaining: usize,
    },
    /// "first event is not a `Spec ID Event03` header: not a crypto-agile log".
    #[error("first event is not a `Spec ID Event03` header: not a crypto-agile log")]
    MissingSpecIdHeader,
    /// "spec id header is malformed: {0}".
    #[error("spec id header is malformed: {0}")]
    MalformedSpecId(&'static str),
    /// "spec id header lists {count} algorithms, not 1 to 16".
    #[error("spec id header lists {count} algorithms, not 1 to 16")]
    AlgorithmCount {
        /// `numberOfAlgorithms`.
        count: u32,
    },
    /// "spec id header lists unknown algorithm `{id:#06x}`".
    #[error("spec id header lists unknown algorithm `{id:#06x}`")]
    UnknownAlgorithm {
        /// The TPM_ALG_ID.
        id: u16,
    },
    /// "spec id header gives `{alg}` a digest size of {size} bytes".
    #[error("spec id header gives `{alg}` a digest size of {size} bytes")]
    DigestSize {
        /// The algorithm.
        alg: DigestAlgorithm,
        /// The size the header states.
        size: u16,
    },
    /// "algorithm `{alg}` appears twice (event {event:?}; `None` is the header)".
    #[error("algorithm `{alg}` appears twice (event {event:?}; `None` is the header)")]
    DuplicateAlgorithm {
        /// The algorithm.
        alg: DigestAlgorithm,
        /// The event, `None` for the header.
        event: Option<usize>,
    },
    /// "event {event} carries {count} digests, the header lists {expected} algorithms".
    #[error("event {event} carries {count} digests, the header lists {expected} algorithms")]
    DigestCount {
        /// Index of the event.
        event: usize,
        /// `TPML_DIGEST_VALUES.count`.
        count: u32,
        /// Algorithms in the header.
        expected: usize,
    },
    /// "event {event} carries a digest of algorithm `{id:#06x}`, which the header does not
    /// list".
    #[error(
        "event {event} carries a digest of algorithm `{id:#06x}`, which the header does not list"
    )]
    AlgorithmNotInHeader {
        /// Index of the event.
        event: usize,
        /// The TPM_ALG_ID.
        id: u16,
    },
    /// "byte {offset} inside the end-of-log padding of `{fill:#04x}` is not padding".
    #[error("byte {offset} inside the end-of-log padding of `{fill:#04x}` is not padding")]
    PaddingNotUniform {
        /// Offset of the first other byte.
        offset: usize,
        /// The padding byte.
        fill: u8,
    },
    /// "log has no `{alg}` bank".
    #[error("log has no `{alg}` bank")]
    AlgorithmNotInLog {
        /// The bank asked for.
        alg: DigestAlgorithm,
    },
    /// "cannot compute `{alg}` to replay the log".
    #[error("cannot compute `{alg}` to replay the log")]
    ReplayUnsupported {
        /// The bank asked for.
        alg: DigestAlgorithm,
    },
    /// "startup locality event {event} comes after pcr 0 was extended or set".
    #[error("startup locality event {event} comes after pcr 0 was extended or set")]
    MisplacedStartupLocality {
        /// Index of the event.
        event: usize,
    },
    /// "ccel event {event} extends register index {index}, not rtmr0..3 (1..=4)".
    #[error("ccel event {event} extends register index {index}, not rtmr0..3 (1..=4)")]
    CcelRegister {
        /// Index of the event.
        event: usize,
        /// Its `pcrIndex` (CC MR index).
        index: u32,
    },
    /// "the log has {events} events, a tail cannot start at event {first_event}".
    #[error("the log has {events} events, a tail cannot start at event {first_event}")]
    TailBeyondLog {
        /// The event the tail was asked to start at.
        first_event: usize,
        /// Events in the log.
        events: usize,
    },
    /// "ccel acpi table is malformed: {0}".
    #[error("ccel acpi table is malformed: {0}")]
    CcelTable(&'static str),
}
