//! Intel TDX measurements of an OVMF (TDVF) guest: MRTD from the TDVF metadata, and RTMR1 and
//! RTMR2 for OVMF's direct kernel boot.
//!
//! MRTD (Intel TDX Module ABI specification, TDH.MEM.PAGE.ADD and TDH.MR.EXTEND): one SHA-384
//! over 128-byte records. For every 4 KiB page of every section: `"MEM.PAGE.ADD"` and the GPA
//! (unless the section is PAGE.AUG); and for sections with MR.EXTEND, for every 256-byte chunk,
//! `"MR.EXTEND"` and the chunk's GPA followed by the 256 bytes. Current KVM adds and extends one
//! page at a time ([`PageOrder::SinglePass`]); older TDX kernels added all pages of a section
//! first ([`PageOrder::TwoPass`]).
//!
//! RTMRs start at zero and are extended as `RTMR' = SHA-384(RTMR ‖ digest)`. With direct boot,
//! edk2 (stable202302 and later) extends RTMR1 with the kernel's Authenticode digest, the
//! `"Calling EFI Application from Boot Option"` action, the separator, and the two
//! `ExitBootServices` actions; RTMR2 with the command line (UTF-16LE, NUL-terminated, as OVMF
//! passes it in `LoadOptions`) and the initrd.

pub mod authenticode;
pub mod linux;

use ovmf::{Ovmf, OvmfError};
use sha2::{Digest, Sha384};

/// A 48-byte TDX measurement register value.
pub type Mr = [u8; 48];

/// Page size.
const PAGE: u64 = 4096;
/// Page size as a length.
const PAGE_LEN: usize = 4096;
/// TDH.MR.EXTEND granularity.
const CHUNK: usize = 256;

/// The order in which the VMM adds and extends pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PageOrder {
    /// PAGE.ADD then MR.EXTEND page by page (upstream KVM `KVM_TDX_INIT_MEM_REGION`).
    #[default]
    SinglePass,
    /// All PAGE.ADDs of a section, then all its MR.EXTENDs (early TDX host kernels).
    TwoPass,
}

/// Why a TDX measurement cannot be computed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TdxError {
    /// "firmware has no TDVF metadata (not a TDX-capable build)".
    #[error("firmware has no TDVF metadata (not a TDX-capable build)")]
    NoTdvf,
    /// A section's data lies outside the image.
    #[error(transparent)]
    Section(#[from] OvmfError),
    /// The kernel is not a PE image.
    #[error("kernel cannot be hashed")]
    Kernel(#[source] authenticode::PeError),
    /// QEMU's header patch failed.
    #[error("kernel cannot be patched as QEMU loads it")]
    Patch(#[source] linux::PatchError),
}

fn record(tag: &[u8], gpa: u64) -> [u8; 128] {
    let mut r = [0u8; 128];
    if let Some(dst) = r.get_mut(..tag.len()) {
        dst.copy_from_slice(tag);
    }
    if let Some(dst) = r.get_mut(16..24) {
        dst.copy_from_slice(&gpa.to_le_bytes());
    }
    r
}

/// MRTD of `ovmf` for the given page order.
pub fn mrtd(ovmf: &Ovmf, order: PageOrder) -> Result<Mr, TdxError> {
    let tdvf = ovmf.tdvf().ok_or(TdxError::NoTdvf)?;
    let mut h = Sha384::new();
    let zero_page = [0u8; PAGE_LEN];
    for (index, s) in tdvf.sections.iter().enumerate() {
        let raw = s.raw_data(ovmf.bytes(), index)?;
        let page_bytes = |page: u64| -> &[u8] {
            let start = usize::try_from(page * PAGE).unwrap_or(usize::MAX);
            let end = start.saturating_add(PAGE_LEN).min(raw.len());
            raw.get(start..end).unwrap_or(&[])
        };
        let add = |h: &mut Sha384, page: u64| {
            if !s.page_aug() {
                h.update(record(b"MEM.PAGE.ADD", s.memory_address + page * PAGE));
            }
        };
        let extend = |h: &mut Sha384, page: u64| {
            if s.mr_extend() {
                let data = page_bytes(page);
                for (i, chunk) in (0..PAGE_LEN / CHUNK).map(|i| (i, i * CHUNK)) {
                    let gpa = s.memory_address + page * PAGE + (i * CHUNK) as u64;
                    h.update(record(b"MR.EXTEND", gpa));
                    let bytes = data.get(chunk..chunk + CHUNK).unwrap_or(&[]);
                    h.update(bytes);
                    h.update(zero_page.get(..CHUNK - bytes.len()).unwrap_or(&[]));
                }
            }
        };
        match order {
            PageOrder::SinglePass => {
                for page in 0..s.pages() {
                    add(&mut h, page);
                    extend(&mut h, page);
                }
            }
            PageOrder::TwoPass => {
                for page in 0..s.pages() {
                    add(&mut h, page);
                }
                for page in 0..s.pages() {
                    extend(&mut h, page);
                }
            }
        }
    }
    Ok(h.finalize().into())
}

/// Extends `mr` with each digest in turn.
pub fn replay(digests: &[Mr]) -> Mr {
    digests.iter().fold([0u8; 48], |mr, d| {
        let mut h = Sha384::new();
        h.update(mr);
        h.update(d);
        h.finalize().into()
    })
}

/// SHA-384 of `data`.
pub fn sha384(data: &[u8]) -> Mr {
    Sha384::digest(data).into()
}

/// The EV_SEPARATOR event data.
pub const SEPARATOR: [u8; 4] = [0; 4];

/// The RTMR1 event digests of a direct boot, given the kernel's Authenticode SHA-384.
pub fn rtmr1_log(kernel_authenticode: Mr) -> Vec<Mr> {
    vec![
        kernel_authenticode,
        sha384(b"Calling EFI Application from Boot Option"),
        sha384(&SEPARATOR),
        sha384(b"Exit Boot Services Invocation"),
        sha384(b"Exit Boot Services Returned with Success"),
    ]
}

/// How edk2 adds the initrd to the command line it measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InitrdArg {
    /// `"<cmdline> initrd=initrd"` (edk2 up to stable202505, Debian trixie's 2025.02).
    #[default]
    Suffix,
    /// `"initrd=initrd <cmdline>"` (edk2 stable202508 and later).
    Prefix,
}

/// The command line as OVMF measures it.
pub fn measured_cmdline(cmdline: &str, has_initrd: bool, arg: InitrdArg) -> String {
    match (has_initrd, arg, cmdline.is_empty()) {
        (false, ..) => cmdline.to_string(),
        (true, _, true) => "initrd=initrd".to_string(),
        (true, InitrdArg::Suffix, false) => format!("{cmdline} initrd=initrd"),
        (true, InitrdArg::Prefix, false) => format!("initrd=initrd {cmdline}"),
    }
}

/// UTF-16LE of `s` with a terminating NUL (how `LoadOptions` holds it).
pub fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain(std::iter::once(0))
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// The RTMR2 event digests of a direct boot.
pub fn rtmr2_log(measured_cmdline: &str, initrd: Option<&[u8]>) -> Vec<Mr> {
    let mut log = vec![sha384(&utf16z(measured_cmdline))];
    if let Some(i) = initrd {
        log.push(sha384(i));
    }
    log
}

/// Direct-boot inputs of RTMR1/RTMR2.
#[derive(Debug, Clone, Copy)]
pub struct DirectBoot<'a> {
    /// Kernel image as given to QEMU.
    pub kernel: &'a [u8],
    /// initrd, if any.
    pub initrd: Option<&'a [u8]>,
    /// Command line as given to QEMU (`-append`).
    pub cmdline: &'a str,
    /// QEMU's header patch (QEMU before 10.2), or `None` when the kernel is measured as is.
    pub qemu_patch: Option<linux::QemuLoad>,
    /// How edk2 adds `initrd=initrd`.
    pub initrd_arg: InitrdArg,
}

/// The kernel image as OVMF loads and measures it (QEMU's header patch applied if asked).
pub fn loaded_kernel(b: &DirectBoot<'_>) -> Result<Vec<u8>, TdxError> {
    match b.qemu_patch {
        Some(load) => linux::qemu_patch(b.kernel, load).map_err(TdxError::Patch),
        None => Ok(b.kernel.to_vec()),
    }
}

/// The event digests of a direct boot, before they are folded into registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectBootLog {
    /// RTMR1 event digests.
    pub rtmr1: Vec<Mr>,
    /// RTMR2 event digests.
    pub rtmr2: Vec<Mr>,
    /// The command line as measured.
    pub measured_cmdline: String,
}

/// The RTMR1/RTMR2 event digests of a direct boot.
pub fn direct_boot_log(b: &DirectBoot<'_>) -> Result<DirectBootLog, TdxError> {
    let kernel = loaded_kernel(b)?;
    let auth = authenticode::digest::<Sha384>(&kernel).map_err(TdxError::Kernel)?;
    let mut k = [0u8; 48];
    k.copy_from_slice(auth.get(..48).unwrap_or(&[0u8; 48]));
    let cmdline = measured_cmdline(b.cmdline, b.initrd.is_some(), b.initrd_arg);
    Ok(DirectBootLog {
        rtmr1: rtmr1_log(k),
        rtmr2: rtmr2_log(&cmdline, b.initrd),
        measured_cmdline: cmdline,
    })
}

/// RTMR1 and RTMR2 of a direct boot.
pub fn direct_boot_rtmrs(b: &DirectBoot<'_>) -> Result<(Mr, Mr), TdxError> {
    let log = direct_boot_log(b)?;
    Ok((replay(&log.rtmr1), replay(&log.rtmr2)))
}
