//! Evidence role: framing of the SEV-SNP `ATTESTATION_REPORT` structure.
//!
//! Layout from the AMD SEV Secure Nested Paging Firmware ABI Specification (publication
//! 56860), Table 23 "ATTESTATION_REPORT Structure"; offsets are cited beside each field. The
//! parser checks the size and version once and copies every field into a typed value; nothing
//! after [`UnverifiedSnpReport::parse`] reads raw bytes except the signature check, which
//! hashes the signed region `0x000..0x2A0` kept here.

use super::error::SnpError;
use crate::snp::REPORT_BYTES;

/// End of the signed part of the report (Table 23: SIGNATURE at 0x2A0).
pub const SIGNED_BYTES: usize = 0x2A0;
/// Bytes of each little-endian ECDSA component in the signature (Table 139, ECDSA P-384
/// SIGNATURE: R at 0x00, S at 0x48, 72 bytes each).
pub const SIG_COMPONENT_BYTES: usize = 72;
/// Bytes of a P-384 scalar.
pub const P384_SCALAR_BYTES: usize = 48;
/// SIGNATURE_ALGO value for ECDSA P-384 with SHA-384 (Table 138).
pub const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;
/// Report versions this parser accepts (2: ABI 1.51; 3: CPUID fields, ABI 1.55; 5:
/// mitigation vectors, ABI 1.58; 4 has the version-3 layout).
pub const SUPPORTED_VERSIONS: std::ops::RangeInclusive<u32> = 2..=5;

/// A TCB_VERSION (Table 3 / Table 4): one byte per firmware component; the layout depends on
/// the processor generation (see [`TcbVersion::parts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcbVersion(pub u64);

/// A TCB_VERSION split into components.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcbParts {
    /// FMC SPL (Turin and later only).
    pub fmc: Option<u8>,
    /// Boot loader SPL.
    pub bootloader: u8,
    /// PSP OS (TEE) SPL.
    pub tee: u8,
    /// SNP firmware SPL.
    pub snp: u8,
    /// CPU microcode SPL.
    pub microcode: u8,
}

impl TcbVersion {
    /// Splits the TCB by the layout of `product`: Milan and Genoa use BOOT_LOADER(0), TEE(1),
    /// SNP(6), MICROCODE(7) (Table 3); Turin uses FMC(0), BOOT_LOADER(1), TEE(2), SNP(3),
    /// MICROCODE(7) (Table 4).
    pub fn parts(&self, product: super::endorser::Product) -> TcbParts {
        let b = self.0.to_le_bytes();
        let [b0, b1, b2, b3, _, _, b6, b7] = b;
        match product {
            super::endorser::Product::Turin => TcbParts {
                fmc: Some(b0),
                bootloader: b1,
                tee: b2,
                snp: b3,
                microcode: b7,
            },
            super::endorser::Product::Milan | super::endorser::Product::Genoa => TcbParts {
                fmc: None,
                bootloader: b0,
                tee: b1,
                snp: b6,
                microcode: b7,
            },
        }
    }
}

/// GUEST_POLICY (Table 9), at report offset 0x08.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GuestPolicy(pub u64);

impl GuestPolicy {
    /// Bit 16: SMT allowed on the host.
    pub fn smt_allowed(&self) -> bool {
        self.0 & (1 << 16) != 0
    }
    /// Bit 18: association with a migration agent allowed.
    pub fn migrate_ma_allowed(&self) -> bool {
        self.0 & (1 << 18) != 0
    }
    /// Bit 19: debugging allowed (a guest owner can read guest memory).
    pub fn debug_allowed(&self) -> bool {
        self.0 & (1 << 19) != 0
    }
    /// Bit 20: guest may be activated on one socket only.
    pub fn single_socket_required(&self) -> bool {
        self.0 & (1 << 20) != 0
    }
    /// Minimum ABI major (bits 15:8) and minor (bits 7:0).
    pub fn abi_min(&self) -> (u8, u8) {
        let [minor, major, ..] = self.0.to_le_bytes();
        (major, minor)
    }
}

/// PLATFORM_INFO (Table 24), at report offset 0x40.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlatformInfo(pub u64);

impl PlatformInfo {
    /// Bit 0: SMT is enabled on the platform.
    pub fn smt_enabled(&self) -> bool {
        self.0 & 1 != 0
    }
    /// Bit 1: TSME is enabled.
    pub fn tsme_enabled(&self) -> bool {
        self.0 & 2 != 0
    }
}

/// Which key signed the report: SIGNING_KEY, bits 4:2 of the word at 0x48.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningKey {
    /// 0: the chip's VCEK.
    Vcek,
    /// 1: the VLEK loaded by the cloud provider.
    Vlek,
    /// Anything else (7: no key; the report is unsigned).
    Other(u8),
}

/// Firmware version triple (build, minor, major at 0x1E8 / 0x1EC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FirmwareVersion {
    /// Major.
    pub major: u8,
    /// Minor.
    pub minor: u8,
    /// Build.
    pub build: u8,
}

/// CPUID family/model/stepping of the signing chip (0x188..0x18B, report version 3 and later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CpuId {
    /// CPUID_FAM_ID (0x188): combined extended family.
    pub family: u8,
    /// CPUID_MOD_ID (0x189): combined extended model.
    pub model: u8,
    /// CPUID_STEP (0x18A).
    pub stepping: u8,
}

/// A report that is well framed but whose signature and endorsement have not been checked.
/// Nothing here may be trusted until [`super::verify_snp`] returns a
/// [`super::VerifiedSnpReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnverifiedSnpReport {
    pub(crate) signed: [u8; SIGNED_BYTES],
    pub(crate) signature_raw: [u8; REPORT_BYTES - SIGNED_BYTES],
    /// VERSION (0x00).
    pub version: u32,
    /// GUEST_SVN (0x04).
    pub guest_svn: u32,
    /// POLICY (0x08).
    pub policy: GuestPolicy,
    /// FAMILY_ID (0x10).
    pub family_id: [u8; 16],
    /// IMAGE_ID (0x20).
    pub image_id: [u8; 16],
    /// VMPL (0x30).
    pub vmpl: u32,
    /// SIGNATURE_ALGO (0x34).
    pub signature_algo: u32,
    /// CURRENT_TCB (0x38).
    pub current_tcb: TcbVersion,
    /// PLATFORM_INFO (0x40).
    pub platform_info: PlatformInfo,
    /// AUTHOR_KEY_EN (0x48 bit 0).
    pub author_key_en: bool,
    /// MASK_CHIP_KEY (0x48 bit 1).
    pub mask_chip_key: bool,
    /// SIGNING_KEY (0x48 bits 4:2).
    pub signing_key: SigningKey,
    /// REPORT_DATA (0x50): the guest-supplied binding value.
    pub report_data: [u8; 64],
    /// MEASUREMENT (0x90): launch digest.
    pub measurement: [u8; 48],
    /// HOST_DATA (0xC0).
    pub host_data: [u8; 32],
    /// ID_KEY_DIGEST (0xE0).
    pub id_key_digest: [u8; 48],
    /// AUTHOR_KEY_DIGEST (0x110).
    pub author_key_digest: [u8; 48],
    /// REPORT_ID (0x140).
    pub report_id: [u8; 32],
    /// REPORT_ID_MA (0x160).
    pub report_id_ma: [u8; 32],
    /// REPORTED_TCB (0x180): the TCB the VCEK was derived from.
    pub reported_tcb: TcbVersion,
    /// CPUID family/model/stepping (0x188; version 3 and later).
    pub cpuid: Option<CpuId>,
    /// CHIP_ID (0x1A0).
    pub chip_id: [u8; 64],
    /// COMMITTED_TCB (0x1E0).
    pub committed_tcb: TcbVersion,
    /// CURRENT_BUILD/MINOR/MAJOR (0x1E8).
    pub current_version: FirmwareVersion,
    /// COMMITTED_BUILD/MINOR/MAJOR (0x1EC).
    pub committed_version: FirmwareVersion,
    /// LAUNCH_TCB (0x1F0).
    pub launch_tcb: TcbVersion,
    /// LAUNCH_MIT_VECTOR (0x1F8; version 5 and later).
    pub launch_mit_vector: Option<u64>,
    /// CURRENT_MIT_VECTOR (0x200; version 5 and later).
    pub current_mit_vector: Option<u64>,
    /// SIGNATURE R (0x2A0), little endian.
    pub signature_r: [u8; SIG_COMPONENT_BYTES],
    /// SIGNATURE S (0x2E8), little endian.
    pub signature_s: [u8; SIG_COMPONENT_BYTES],
}

fn field<const N: usize>(b: &[u8], off: usize) -> Result<[u8; N], SnpError> {
    let end = off
        .checked_add(N)
        .ok_or(SnpError::WrongSize { len: b.len() })?;
    b.get(off..end)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(SnpError::WrongSize { len: b.len() })
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, SnpError> {
    field::<4>(b, off).map(u32::from_le_bytes)
}

fn u64_at(b: &[u8], off: usize) -> Result<u64, SnpError> {
    field::<8>(b, off).map(u64::from_le_bytes)
}

fn fw_version(b: &[u8], off: usize) -> Result<FirmwareVersion, SnpError> {
    let [build, minor, major] = field::<3>(b, off)?;
    Ok(FirmwareVersion {
        major,
        minor,
        build,
    })
}

impl UnverifiedSnpReport {
    /// Frames a report: exactly [`REPORT_BYTES`] bytes, a supported version; every field is
    /// copied into a typed value. Signature, algorithm and key checks happen in
    /// [`super::verify_snp`].
    pub fn parse(bytes: &[u8]) -> Result<Self, SnpError> {
        if bytes.len() != REPORT_BYTES {
            return Err(SnpError::WrongSize { len: bytes.len() });
        }
        let version = u32_at(bytes, 0x00)?;
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(SnpError::UnsupportedVersion { version });
        }
        let key_word = u32_at(bytes, 0x48)?;
        let signing_key = match (key_word >> 2) & 0b111 {
            0 => SigningKey::Vcek,
            1 => SigningKey::Vlek,
            // The mask keeps three bits, so the value fits a byte.
            other => SigningKey::Other(u8::try_from(other).unwrap_or(u8::MAX)),
        };
        let cpuid = if version >= 3 {
            let [family, model, stepping] = field::<3>(bytes, 0x188)?;
            Some(CpuId {
                family,
                model,
                stepping,
            })
        } else {
            None
        };
        let (launch_mit_vector, current_mit_vector) = if version >= 5 {
            (Some(u64_at(bytes, 0x1F8)?), Some(u64_at(bytes, 0x200)?))
        } else {
            (None, None)
        };
        Ok(Self {
            signed: field::<SIGNED_BYTES>(bytes, 0)?,
            signature_raw: field::<{ REPORT_BYTES - SIGNED_BYTES }>(bytes, SIGNED_BYTES)?,
            version,
            guest_svn: u32_at(bytes, 0x04)?,
            policy: GuestPolicy(u64_at(bytes, 0x08)?),
            family_id: field(bytes, 0x10)?,
            image_id: field(bytes, 0x20)?,
            vmpl: u32_at(bytes, 0x30)?,
            signature_algo: u32_at(bytes, 0x34)?,
            current_tcb: TcbVersion(u64_at(bytes, 0x38)?),
            platform_info: PlatformInfo(u64_at(bytes, 0x40)?),
            author_key_en: key_word & 1 != 0,
            mask_chip_key: key_word & 2 != 0,
            signing_key,
            report_data: field(bytes, 0x50)?,
            measurement: field(bytes, 0x90)?,
            host_data: field(bytes, 0xC0)?,
            id_key_digest: field(bytes, 0xE0)?,
            author_key_digest: field(bytes, 0x110)?,
            report_id: field(bytes, 0x140)?,
            report_id_ma: field(bytes, 0x160)?,
            reported_tcb: TcbVersion(u64_at(bytes, 0x180)?),
            cpuid,
            chip_id: field(bytes, 0x1A0)?,
            committed_tcb: TcbVersion(u64_at(bytes, 0x1E0)?),
            current_version: fw_version(bytes, 0x1E8)?,
            committed_version: fw_version(bytes, 0x1EC)?,
            launch_tcb: TcbVersion(u64_at(bytes, 0x1F0)?),
            launch_mit_vector,
            current_mit_vector,
            signature_r: field(bytes, SIGNED_BYTES)?,
            signature_s: field(bytes, SIGNED_BYTES + SIG_COMPONENT_BYTES)?,
        })
    }

    /// The signed region, bytes `0x000..0x2A0`.
    pub fn signed_bytes(&self) -> &[u8; SIGNED_BYTES] {
        &self.signed
    }

    /// The 512-byte SIGNATURE field as received (R, S, reserved).
    pub fn signature_bytes(&self) -> &[u8] {
        &self.signature_raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_wrong_size_and_version() {
        assert!(matches!(
            UnverifiedSnpReport::parse(&[0; 10]),
            Err(SnpError::WrongSize { len: 10 })
        ));
        let mut b = vec![0u8; REPORT_BYTES];
        assert!(matches!(
            UnverifiedSnpReport::parse(&b),
            Err(SnpError::UnsupportedVersion { version: 0 })
        ));
        b[0] = 3;
        b[0x188] = 0x19;
        b[0x48] = 0b101;
        let r = UnverifiedSnpReport::parse(&b).unwrap();
        assert_eq!(r.cpuid.unwrap().family, 0x19);
        assert!(r.author_key_en);
        assert_eq!(r.signing_key, SigningKey::Vlek);
        assert_eq!(r.launch_mit_vector, None);
    }

    #[test]
    fn tcb_layouts() {
        use crate::snp::endorser::Product;
        let t = TcbVersion(u64::from_le_bytes([1, 2, 3, 4, 5, 6, 7, 8]));
        let m = t.parts(Product::Milan);
        assert_eq!(
            (m.bootloader, m.tee, m.snp, m.microcode, m.fmc),
            (1, 2, 7, 8, None)
        );
        let u = t.parts(Product::Turin);
        assert_eq!(
            (u.fmc, u.bootloader, u.tee, u.snp, u.microcode),
            (Some(1), 2, 3, 4, 8)
        );
    }
}
