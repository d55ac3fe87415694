//! Evidence role: framing of the HCL report an Azure confidential VM's paravisor (HCL,
//! OpenHCL) writes to vTPM NV index `0x01400001`.
//!
//! Layout (little-endian), as OpenHCL defines it (`openhcl_attestation_protocol::igvm_attest::
//! get`: `IgvmAttestRequestBase` = `IgvmAttestRequestHeader`, the TEE report,
//! `IgvmAttestRequestData`, then the runtime claims) and Microsoft's `az-cvm-vtpm` crate reads
//! it (`src/hcl/mod.rs`):
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 4 | signature `HCLA` |
//! | 4 | 4 | header version (1 or 2) |
//! | 8 | 4 | report size: header + hardware report + request data |
//! | 12 | 4 | request type (2 = AK_CERT_REQUEST: the report that vouches for the vTPM AK) |
//! | 16 | 4 | status (0 = success) |
//! | 20 | 12 | reserved |
//! | 32 | 1184 | hardware report: an SEV-SNP ATTESTATION_REPORT, or a 1024-byte TDREPORT and zeros |
//! | 1216 | 4 | request data size: 20 + runtime data size |
//! | 1220 | 4 | request data version (1; version 2 inserts an extension this parser refuses) |
//! | 1224 | 4 | report type: 2 = SEV-SNP, 4 = TDX |
//! | 1228 | 4 | report data hash type: 1 = SHA-256, 2 = SHA-384, 3 = SHA-512 |
//! | 1232 | 4 | runtime data size |
//! | 1236 | n | runtime data (JSON, [`super::runtime`]) |
//!
//! The NV index is larger than the report; the bytes after it must be zero. Every size is
//! checked against the others and against the input before anything is copied.

use super::runtime::RuntimeData;
use super::tdreport::{TdReportStruct, TD_REPORT_BYTES};
use super::AzureError;
use crate::snp::UnverifiedSnpReport;

/// The header signature.
pub const HCL_SIGNATURE: [u8; 4] = *b"HCLA";
/// Bytes of the header.
pub const HEADER_BYTES: usize = 32;
/// Bytes reserved for the hardware report (the larger of an SNP report and a TDREPORT).
pub const HW_REPORT_BYTES: usize = crate::snp::REPORT_BYTES;
/// Offset of the request data (IgvmRequestData).
pub const REQUEST_DATA_OFFSET: usize = HEADER_BYTES + HW_REPORT_BYTES;
/// Bytes of the request data before the runtime data.
pub const REQUEST_DATA_HEADER_BYTES: usize = 20;
/// Offset of the runtime data.
pub const RUNTIME_DATA_OFFSET: usize = REQUEST_DATA_OFFSET + REQUEST_DATA_HEADER_BYTES;
/// Header versions this parser knows.
pub const HEADER_VERSIONS: std::ops::RangeInclusive<u32> = 1..=2;
/// The request data version this parser knows.
pub const REQUEST_DATA_VERSION: u32 = 1;
/// `IgvmAttestRequestType::AK_CERT_REQUEST`: the request whose runtime claims name the AK.
pub const REQUEST_TYPE_AK_CERT: u32 = 2;
/// Report type of an SEV-SNP hardware report.
pub const REPORT_TYPE_SNP: u32 = 2;
/// Report type of a TDX hardware report.
pub const REPORT_TYPE_TDX: u32 = 4;

/// How the runtime data is hashed into the hardware report's report data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeDataHash {
    /// 1: SHA-256, in report data bytes 0..32.
    Sha256,
    /// 2: SHA-384, in bytes 0..48.
    Sha384,
    /// 3: SHA-512, all 64 bytes.
    Sha512,
}

impl RuntimeDataHash {
    fn from_u32(value: u32) -> Result<Self, AzureError> {
        match value {
            1 => Ok(Self::Sha256),
            2 => Ok(Self::Sha384),
            3 => Ok(Self::Sha512),
            other => Err(AzureError::UnsupportedHashType(other)),
        }
    }

    /// The digest of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            Self::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Self::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Self::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

/// The hardware report inside an HCL report.
#[derive(Debug, Clone)]
pub enum HardwareReport {
    /// An SEV-SNP ATTESTATION_REPORT, framed by [`crate::snp`].
    Snp(Box<UnverifiedSnpReport>),
    /// A TDX TDREPORT_STRUCT.
    Tdx(Box<TdReportStruct>),
}

impl HardwareReport {
    /// The report's 64-byte report data.
    pub fn report_data(&self) -> &[u8; 64] {
        match self {
            Self::Snp(r) => &r.report_data,
            Self::Tdx(r) => r.report_data(),
        }
    }

    /// "sev-snp" or "tdx", for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Snp(_) => "sev-snp",
            Self::Tdx(_) => "tdx",
        }
    }
}

/// An HCL report, framed; nothing in it verified yet.
#[derive(Debug, Clone)]
pub struct UnverifiedHclReport {
    pub(crate) version: u32,
    pub(crate) hardware: HardwareReport,
    pub(crate) hash: RuntimeDataHash,
    pub(crate) runtime_data: Vec<u8>,
    pub(crate) runtime: RuntimeData,
}

/// A little-endian u32 at `at`.
fn u32_at(bytes: &[u8], at: usize, what: &'static str) -> Result<u32, AzureError> {
    bytes
        .get(at..at.saturating_add(4))
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map(u32::from_le_bytes)
        .ok_or(AzureError::Truncated {
            what,
            len: bytes.len(),
        })
}

/// `len` bytes at `at`, or a truncation error naming `what`.
fn slice<'a>(
    bytes: &'a [u8],
    at: usize,
    len: usize,
    what: &'static str,
) -> Result<&'a [u8], AzureError> {
    bytes
        .get(at..at.saturating_add(len))
        .ok_or(AzureError::Truncated {
            what,
            len: bytes.len(),
        })
}

impl UnverifiedHclReport {
    /// Frames an HCL report (see the module docs), the hardware report inside it and its
    /// runtime data JSON.
    pub fn parse(bytes: &[u8]) -> Result<Self, AzureError> {
        if slice(bytes, 0, 4, "signature")? != HCL_SIGNATURE {
            return Err(AzureError::NotHclReport);
        }
        let version = u32_at(bytes, 4, "header version")?;
        if !HEADER_VERSIONS.contains(&version) {
            return Err(AzureError::UnsupportedVersion {
                what: "header",
                version,
            });
        }
        let report_size = u32_at(bytes, 8, "report size")?;
        let request_type = u32_at(bytes, 12, "request type")?;
        if request_type != REQUEST_TYPE_AK_CERT {
            return Err(AzureError::UnsupportedRequestType(request_type));
        }
        let status = u32_at(bytes, 16, "status")?;
        if status != 0 {
            return Err(AzureError::HclStatus(status));
        }
        if slice(bytes, 20, 12, "reserved")?.iter().any(|b| *b != 0) {
            return Err(AzureError::NonZeroPadding("header reserved bytes"));
        }
        let hw = slice(bytes, HEADER_BYTES, HW_REPORT_BYTES, "hardware report")?;
        let data_size = u32_at(bytes, REQUEST_DATA_OFFSET, "request data size")?;
        let data_version = u32_at(bytes, REQUEST_DATA_OFFSET + 4, "request data version")?;
        if data_version != REQUEST_DATA_VERSION {
            return Err(AzureError::UnsupportedVersion {
                what: "request data",
                version: data_version,
            });
        }
        let report_type = u32_at(bytes, REQUEST_DATA_OFFSET + 8, "report type")?;
        let hash =
            RuntimeDataHash::from_u32(u32_at(bytes, REQUEST_DATA_OFFSET + 12, "hash type")?)?;
        let runtime_size = u32_at(bytes, REQUEST_DATA_OFFSET + 16, "runtime data size")?;

        // data size = 20 + runtime size; report size = 1216 + data size; both within input.
        let runtime_len = usize::try_from(runtime_size).unwrap_or(usize::MAX);
        let data_len = REQUEST_DATA_HEADER_BYTES.saturating_add(runtime_len);
        if usize::try_from(data_size).ok() != Some(data_len) {
            return Err(AzureError::SizeMismatch(
                "request data size is not 20 + runtime data size",
            ));
        }
        let report_len = REQUEST_DATA_OFFSET.saturating_add(data_len);
        if usize::try_from(report_size).ok() != Some(report_len) {
            return Err(AzureError::SizeMismatch(
                "report size is not the sum of its parts",
            ));
        }
        let runtime_data = slice(bytes, RUNTIME_DATA_OFFSET, runtime_len, "runtime data")?;
        if bytes
            .get(report_len..)
            .is_some_and(|tail| tail.iter().any(|b| *b != 0))
        {
            return Err(AzureError::NonZeroPadding("bytes after the report"));
        }

        let hardware = match report_type {
            REPORT_TYPE_SNP => HardwareReport::Snp(Box::new(
                UnverifiedSnpReport::parse(hw).map_err(AzureError::Snp)?,
            )),
            REPORT_TYPE_TDX => {
                let (td, rest) = hw.split_at(TD_REPORT_BYTES.min(hw.len()));
                if rest.iter().any(|b| *b != 0) {
                    return Err(AzureError::NonZeroPadding(
                        "hardware report after the tdreport",
                    ));
                }
                HardwareReport::Tdx(Box::new(TdReportStruct::parse(td)?))
            }
            other => return Err(AzureError::UnsupportedReportType(other)),
        };
        Ok(Self {
            version,
            hardware,
            hash,
            runtime: RuntimeData::parse(runtime_data)?,
            runtime_data: runtime_data.to_vec(),
        })
    }

    /// Header version.
    pub fn version(&self) -> u32 {
        self.version
    }
    /// The hardware report (unverified).
    pub fn hardware(&self) -> &HardwareReport {
        &self.hardware
    }
    /// How the runtime data is hashed into the report data.
    pub fn runtime_data_hash(&self) -> RuntimeDataHash {
        self.hash
    }
    /// The runtime data bytes, as hashed.
    pub fn runtime_data_bytes(&self) -> &[u8] {
        &self.runtime_data
    }
    /// The runtime data, parsed (unverified).
    pub fn runtime_data(&self) -> &RuntimeData {
        &self.runtime
    }

    /// Checks the binding between the hardware report and the runtime data: the report data
    /// starts with the runtime data's digest (of the stated hash type) and the bytes after it
    /// are zero. It says nothing until the hardware report itself is verified.
    pub fn check_runtime_data_binding(&self) -> Result<(), AzureError> {
        let digest = self.hash.digest(&self.runtime_data);
        let report_data = self.hardware.report_data();
        let (head, tail) = report_data.split_at(digest.len().min(report_data.len()));
        if head != digest.as_slice() {
            return Err(AzureError::RuntimeDataBinding {
                hardware: self.hardware.kind(),
            });
        }
        if tail.iter().any(|b| *b != 0) {
            return Err(AzureError::NonZeroPadding(
                "report data after the runtime data digest",
            ));
        }
        Ok(())
    }
}
