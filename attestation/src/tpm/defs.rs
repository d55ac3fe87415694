//! TPM 2.0 constants the quote verifier needs, named and valued as in the TCG "Trusted Platform
//! Module Library, Part 2: Structures" (revision 1.59). Each group cites the table it mirrors.

/// `TPM_GENERATED_VALUE`, the magic every TPM-produced attestation structure starts with
/// (Part 2 §6.2, Table 7).
pub const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
/// `TPM_ST_ATTEST_QUOTE`, the structure tag of a TPM2_Quote result (Part 2 §6.9, Table 19).
pub const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;

// TPM_ALG_ID values (Part 2 §6.3, Table 9).
/// `TPM_ALG_RSA`.
pub const TPM_ALG_RSA: u16 = 0x0001;
/// `TPM_ALG_SHA256`.
pub const TPM_ALG_SHA256: u16 = 0x000b;
/// `TPM_ALG_SHA384`.
pub const TPM_ALG_SHA384: u16 = 0x000c;
/// `TPM_ALG_SHA512`.
pub const TPM_ALG_SHA512: u16 = 0x000d;
/// `TPM_ALG_NULL`.
pub const TPM_ALG_NULL: u16 = 0x0010;
/// `TPM_ALG_RSASSA` (PKCS#1 v1.5 signatures).
pub const TPM_ALG_RSASSA: u16 = 0x0014;
/// `TPM_ALG_RSAES` (PKCS#1 v1.5 encryption; its scheme details are empty).
pub const TPM_ALG_RSAES: u16 = 0x0015;
/// `TPM_ALG_RSAPSS`.
pub const TPM_ALG_RSAPSS: u16 = 0x0016;
/// `TPM_ALG_ECDSA`.
pub const TPM_ALG_ECDSA: u16 = 0x0018;
/// `TPM_ALG_ECDAA` (its scheme details carry a hash and a count).
pub const TPM_ALG_ECDAA: u16 = 0x001a;
/// `TPM_ALG_ECC`.
pub const TPM_ALG_ECC: u16 = 0x0023;

// TPM_ECC_CURVE values (Part 2 §6.4, Table 11).
/// `TPM_ECC_NIST_P256`.
pub const TPM_ECC_NIST_P256: u16 = 0x0003;
/// `TPM_ECC_NIST_P384`.
pub const TPM_ECC_NIST_P384: u16 = 0x0004;

// TPMA_OBJECT bits (Part 2 §8.3.2, Table 31).
/// `TPMA_OBJECT.restricted`: the key signs only TPM-generated structures (or digests the TPM
/// checked do not start with [`TPM_GENERATED_VALUE`]).
pub const TPMA_OBJECT_RESTRICTED: u32 = 1 << 16;
/// `TPMA_OBJECT.sign`.
pub const TPMA_OBJECT_SIGN: u32 = 1 << 18;

// Size limits of TPM2B buffers (Part 2 §10.4, §10.5, §11.2.4, §11.2.5), with the largest
// algorithm this verifier could meet (SHA-512, RSA-4096, P-521).
/// `sizeof(TPMU_HA)`: the largest digest (SHA-512).
pub const MAX_DIGEST_BYTES: usize = 64;
/// `sizeof(TPMT_HA)`: the largest TPM2B_DATA (qualifying data).
pub const MAX_DATA_BYTES: usize = 2 + MAX_DIGEST_BYTES;
/// `sizeof(TPMU_NAME)`: the largest TPM2B_NAME.
pub const MAX_NAME_BYTES: usize = 2 + MAX_DIGEST_BYTES;
/// `MAX_RSA_KEY_BYTES` for RSA-4096.
pub const MAX_RSA_KEY_BYTES: usize = 512;
/// `MAX_ECC_KEY_BYTES` for P-521.
pub const MAX_ECC_KEY_BYTES: usize = 66;
/// `PCR_SELECT_MAX` for 32 PCRs; TPMS_PCR_SELECTION.sizeofSelect may not exceed it.
pub const MAX_PCR_SELECT_BYTES: usize = 4;
/// `HASH_COUNT` bound on the banks in one TPML_PCR_SELECTION.
pub const MAX_PCR_BANKS: u32 = 16;
/// Bytes of a SHA-256 PCR value.
pub const SHA256_PCR_BYTES: usize = 32;
