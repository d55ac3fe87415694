//! Evidence role: framing of the 1024-byte TDX `TDREPORT_STRUCT` an Azure TDX paravisor puts
//! in its HCL report.
//!
//! Layout from the Intel TDX Module ABI specification ("TDREPORT_STRUCT", "REPORTMACSTRUCT",
//! "TDINFO_STRUCT"): REPORTMACSTRUCT (256 bytes: REPORTTYPE 0, reserved 4, CPUSVN 16,
//! TEE_TCB_INFO_HASH 32, TEE_INFO_HASH 80, REPORTDATA 128, reserved 192, MAC 224), TEE_TCB_INFO
//! (239 bytes at 256), reserved (17 bytes at 495), TDINFO_STRUCT (512 bytes at 512: ATTRIBUTES,
//! XFAM, MRTD, MRCONFIGID, MROWNER, MROWNERCONFIG, RTMR0..3, SERVTD_HASH, reserved).
//!
//! A TDREPORT is MAC'd with a key only the CPU holds, so a remote verifier cannot authenticate
//! it; the TD quote the quoting enclave makes from it is what chains to Intel. What can be
//! checked offline is checked here: the report type, that reserved bytes are zero, and that
//! TEE_TCB_INFO and TDINFO hash to the values the MAC'd header holds (so the fields this type
//! exposes are the ones the MAC, and hence the TD quote, covers).

use super::AzureError;
use sha2::{Digest, Sha384};

/// Bytes of a TDREPORT_STRUCT.
pub const TD_REPORT_BYTES: usize = 1024;
/// REPORTTYPE.TYPE of TDX.
pub const REPORT_TYPE_TDX: u8 = 0x81;
/// Offsets within the report.
const TEE_TCB_INFO_HASH: usize = 32;
const TEE_INFO_HASH: usize = 80;
const REPORT_DATA: usize = 128;
const TEE_TCB_INFO: usize = 256;
const TEE_TCB_INFO_BYTES: usize = 239;
const TD_INFO: usize = 512;
const TD_INFO_BYTES: usize = 512;

/// A TDREPORT_STRUCT, framing and internal hashes checked; its MAC is not (and cannot be)
/// verified here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdReportStruct {
    report_version: u8,
    cpu_svn: [u8; 16],
    report_data: [u8; 64],
    mac: [u8; 32],
    tee_tcb_info: [u8; TEE_TCB_INFO_BYTES],
    attributes: [u8; 8],
    xfam: [u8; 8],
    mr_td: [u8; 48],
    mr_config_id: [u8; 48],
    mr_owner: [u8; 48],
    mr_owner_config: [u8; 48],
    rtmr: [[u8; 48]; 4],
    servtd_hash: [u8; 48],
}

/// `N` bytes of `bytes` at `at`.
fn field<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], AzureError> {
    bytes
        .get(at..at.saturating_add(N))
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(AzureError::TdReport("shorter than 1024 bytes"))
}

/// Whether `len` bytes at `at` are all zero.
fn zero(bytes: &[u8], at: usize, len: usize) -> bool {
    bytes
        .get(at..at.saturating_add(len))
        .is_some_and(|s| s.iter().all(|b| *b == 0))
}

impl TdReportStruct {
    /// Frames exactly [`TD_REPORT_BYTES`] bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, AzureError> {
        if bytes.len() != TD_REPORT_BYTES {
            return Err(AzureError::TdReport("not 1024 bytes"));
        }
        let [ty, subtype, version, reserved] = field::<4>(bytes, 0)?;
        if ty != REPORT_TYPE_TDX || subtype != 0 || reserved != 0 || version > 1 {
            return Err(AzureError::TdReport(
                "report type is not tdx (0x81, subtype 0, version 0 or 1)",
            ));
        }
        if !zero(bytes, 4, 12) || !zero(bytes, 192, 32) || !zero(bytes, 495, 17) {
            return Err(AzureError::TdReport("reserved bytes are not zero"));
        }
        let tee_tcb_info: [u8; TEE_TCB_INFO_BYTES] = field(bytes, TEE_TCB_INFO)?;
        let td_info: [u8; TD_INFO_BYTES] = field(bytes, TD_INFO)?;
        let sha384 = |data: &[u8]| -> [u8; 48] { Sha384::digest(data).into() };
        if sha384(&tee_tcb_info) != field::<48>(bytes, TEE_TCB_INFO_HASH)? {
            return Err(AzureError::TdReportHash("tee_tcb_info"));
        }
        if sha384(&td_info) != field::<48>(bytes, TEE_INFO_HASH)? {
            return Err(AzureError::TdReportHash("tdinfo"));
        }
        let info = |at: usize| field::<48>(&td_info, at);
        Ok(Self {
            report_version: version,
            cpu_svn: field(bytes, 16)?,
            report_data: field(bytes, REPORT_DATA)?,
            mac: field(bytes, 224)?,
            tee_tcb_info,
            attributes: field(&td_info, 0)?,
            xfam: field(&td_info, 8)?,
            mr_td: info(16)?,
            mr_config_id: info(64)?,
            mr_owner: info(112)?,
            mr_owner_config: info(160)?,
            rtmr: [info(208)?, info(256)?, info(304)?, info(352)?],
            servtd_hash: info(400)?,
        })
    }

    /// REPORTTYPE.VERSION (0: TDX 1.0, 1: TDX 1.5 with SERVTD_HASH).
    pub fn report_version(&self) -> u8 {
        self.report_version
    }
    /// CPUSVN.
    pub fn cpu_svn(&self) -> &[u8; 16] {
        &self.cpu_svn
    }
    /// REPORTDATA.
    pub fn report_data(&self) -> &[u8; 64] {
        &self.report_data
    }
    /// MAC (only the CPU that made the report can check it).
    pub fn mac(&self) -> &[u8; 32] {
        &self.mac
    }
    /// TEE_TCB_INFO (TEE_TCB_SVN, MRSEAM, MRSIGNERSEAM, ATTRIBUTES, …).
    pub fn tee_tcb_info(&self) -> &[u8; TEE_TCB_INFO_BYTES] {
        &self.tee_tcb_info
    }
    /// TD ATTRIBUTES (bit 0 = DEBUG).
    pub fn attributes(&self) -> &[u8; 8] {
        &self.attributes
    }
    /// XFAM.
    pub fn xfam(&self) -> &[u8; 8] {
        &self.xfam
    }
    /// MRTD.
    pub fn mr_td(&self) -> &[u8; 48] {
        &self.mr_td
    }
    /// MRCONFIGID.
    pub fn mr_config_id(&self) -> &[u8; 48] {
        &self.mr_config_id
    }
    /// MROWNER.
    pub fn mr_owner(&self) -> &[u8; 48] {
        &self.mr_owner
    }
    /// MROWNERCONFIG.
    pub fn mr_owner_config(&self) -> &[u8; 48] {
        &self.mr_owner_config
    }
    /// RTMR0..3.
    pub fn rtmr(&self) -> &[[u8; 48]; 4] {
        &self.rtmr
    }
    /// SERVTD_HASH (zero on TDX 1.0).
    pub fn servtd_hash(&self) -> &[u8; 48] {
        &self.servtd_hash
    }
}
