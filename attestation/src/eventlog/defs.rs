//! Constants of the TCG2 crypto-agile event log, named and valued as in the TCG "PC Client
//! Platform Firmware Profile Specification" (PFP, version 1.05 revision 23; section cited at
//! each group), the TCG "Algorithm Registry" and, for the CCEL, the UEFI 2.10 and ACPI 6.5
//! specifications.

/// `TCG_EfiSpecIdEvent.signature` of a crypto-agile log (PFP §10.4.5.1, Table 20).
pub const SPEC_ID_SIGNATURE: [u8; 16] = *b"Spec ID Event03\0";
/// `TCG_EfiStartupLocalityEvent.signature` (PFP §10.4.5.3, Table 23).
pub const STARTUP_LOCALITY_SIGNATURE: [u8; 16] = *b"StartupLocality\0";
/// Bytes of a TCG_EfiStartupLocalityEvent: the signature and the locality octet.
pub const STARTUP_LOCALITY_BYTES: usize = 17;
/// `specVersionMajor` of a crypto-agile log (PFP §10.4.5.1: "2" for this format).
pub const SPEC_VERSION_MAJOR: u8 = 2;
/// Bytes of the SHA-1 `digest` of the first, TCG_PCR_EVENT-format entry (PFP §10.2.1).
pub const SHA1_DIGEST_BYTES: usize = 20;
/// Most algorithms a Spec ID header may list: the TPM's `HASH_COUNT` bound (TCG TPM 2.0
/// Part 2 §10.9.6), far above the handful of banks any TPM or TEE implements.
pub const MAX_ALGORITHMS: usize = 16;
/// An end-of-log marker: at an event boundary, this many bytes of `0x00` or of `0xFF` start
/// the padding of a fixed-size log buffer (a CCEL area, PFP §10.2.1 leaves the rest of the
/// buffer unspecified). Fewer leftover bytes are read as a (truncated) event.
pub const MIN_PADDING_BYTES: usize = 8;

// TPM_ALG_ID values (TCG Algorithm Registry, Table 3) and digest sizes.
/// `TPM_ALG_SHA1`.
pub const TPM_ALG_SHA1: u16 = 0x0004;
/// `TPM_ALG_SHA256`.
pub const TPM_ALG_SHA256: u16 = 0x000b;
/// `TPM_ALG_SHA384`.
pub const TPM_ALG_SHA384: u16 = 0x000c;
/// `TPM_ALG_SHA512`.
pub const TPM_ALG_SHA512: u16 = 0x000d;
/// `TPM_ALG_SM3_256`.
pub const TPM_ALG_SM3_256: u16 = 0x0012;

// Event types (PFP §10.4.1, Table 9).
/// `EV_NO_ACTION`: informational, never extended (PFP §10.4.1).
pub const EV_NO_ACTION: u32 = 0x0000_0003;

// CCEL ACPI table (ACPI 6.5 §5.2.34 "CC Event Log ACPI Table").
/// The table's signature.
pub const CCEL_SIGNATURE: [u8; 4] = *b"CCEL";
/// Bytes of the table: the 36-byte ACPI header, CC type and subtype, two reserved bytes, LAML
/// and LASA.
pub const CCEL_TABLE_BYTES: usize = 56;
/// `CC Type` of Intel TDX (ACPI 6.5 Table 5.171).
pub const CCEL_CC_TYPE_TDX: u8 = 2;

// CC measurement register indices (UEFI 2.10 §38.4.1, "TDX" mapping): the index a CCEL
// event's `pcrIndex` field holds.
/// MR index of MRTD, the build-time TD measurement (never extended at run time).
pub const CC_MR_MRTD: u32 = 0;
/// MR index of RTMR0; MR index `1 + i` is RTMR`i`.
pub const CC_MR_RTMR0: u32 = 1;
/// MR index of RTMR3, the last one.
pub const CC_MR_RTMR3: u32 = 4;
/// Number of RTMRs.
pub const RTMR_COUNT: usize = 4;
/// Bytes of an RTMR (SHA-384).
pub const RTMR_BYTES: usize = 48;
