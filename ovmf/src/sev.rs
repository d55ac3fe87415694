//! AMD SEV structures OVMF publishes for the hypervisor and for the launch-digest calculation:
//! the SEV-ES AP reset block, the SEV metadata (`ASEV` descriptor, edk2
//! `OvmfSevMetadata.asm`: the pages the VMM must pre-validate, the secrets and CPUID pages, the
//! kernel-hashes page of AmdSev builds), the SEV hashes table location and the launch-secret
//! block. Layouts are those `sev-snp-measure` 0.0.13 (`sevsnpmeasure/ovmf.py`) reads.

use crate::defs::{
    MAX_SEV_SECTIONS, PAGE_BYTES, SEV_METADATA_HEADER_BYTES, SEV_METADATA_VERSION,
    SEV_SECTION_BYTES,
};
use crate::error::OvmfError;
use crate::read;
use serde::Serialize;

/// Type of an SEV metadata section (edk2 `OvmfSevMetadata.asm`, `OVMF_SECTION_TYPE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SevSectionKind {
    /// 1: memory the VMM pre-validates (measured as zero pages).
    SnpSecMem,
    /// 2: the SNP secrets page.
    SnpSecrets,
    /// 3: the CPUID page.
    Cpuid,
    /// 4: the SVSM calling-area page.
    SvsmCaa,
    /// 0x10: the kernel/initrd/cmdline hashes page (AmdSev builds only).
    SnpKernelHashes,
    /// A type this crate does not know; measuring such an image is refused.
    Unknown(u32),
}

impl SevSectionKind {
    fn from_u32(v: u32) -> Self {
        match v {
            1 => Self::SnpSecMem,
            2 => Self::SnpSecrets,
            3 => Self::Cpuid,
            4 => Self::SvsmCaa,
            0x10 => Self::SnpKernelHashes,
            other => Self::Unknown(other),
        }
    }
}

/// One SEV metadata section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SevSection {
    /// Guest physical address (page-aligned).
    pub gpa: u32,
    /// Size in bytes (a multiple of the page size).
    pub size: u32,
    /// What the section is.
    pub kind: SevSectionKind,
}

/// The `ASEV` descriptor and its sections, in image order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SevMetadata {
    /// Offset of the descriptor in the image.
    pub offset: usize,
    /// Sections in the order the VMM processes them.
    pub sections: Vec<SevSection>,
}

impl SevMetadata {
    /// Parses the descriptor that lies `from_end` bytes before the end of `img`.
    pub(crate) fn parse(img: &[u8], from_end: u32) -> Result<Self, OvmfError> {
        let offset =
            img.len()
                .checked_sub(read::to_usize(from_end))
                .ok_or(OvmfError::MetadataOffset {
                    what: "sev metadata",
                    offset: from_end,
                    len: img.len(),
                })?;
        let signature = read::four(img, offset, "sev metadata signature")?;
        if &signature != b"ASEV" {
            return Err(OvmfError::SevSignature { found: signature });
        }
        let size = read::u32_le(img, offset + 4, "sev metadata size")?;
        let version = read::u32_le(img, offset + 8, "sev metadata version")?;
        if version != SEV_METADATA_VERSION {
            return Err(OvmfError::SevVersion { version });
        }
        let count = read::u32_le(img, offset + 12, "sev metadata section count")?;
        let n = read::to_usize(count);
        if n > MAX_SEV_SECTIONS {
            return Err(OvmfError::TooManySevSections {
                count,
                max: MAX_SEV_SECTIONS,
            });
        }
        if SEV_METADATA_HEADER_BYTES + n * SEV_SECTION_BYTES > read::to_usize(size) {
            return Err(OvmfError::SevSectionsSize { count, size });
        }
        let mut sections = Vec::with_capacity(n);
        for index in 0..n {
            let at = offset + SEV_METADATA_HEADER_BYTES + index * SEV_SECTION_BYTES;
            let gpa = read::u32_le(img, at, "sev section gpa")?;
            let size = read::u32_le(img, at + 4, "sev section size")?;
            let kind = SevSectionKind::from_u32(read::u32_le(img, at + 8, "sev section type")?);
            let aligned = u64::from(gpa) % PAGE_BYTES == 0 && u64::from(size) % PAGE_BYTES == 0;
            if !aligned || gpa.checked_add(size).is_none() {
                return Err(OvmfError::SevSectionRange { index, gpa, size });
            }
            sections.push(SevSection { gpa, size, kind });
        }
        Ok(Self { offset, sections })
    }

    /// The first section of `kind`.
    pub fn section(&self, kind: SevSectionKind) -> Option<&SevSection> {
        self.sections.iter().find(|s| s.kind == kind)
    }
}

/// The SEV-ES AP reset block: where application processors start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SevEsResetBlock {
    /// Reset address: CS base in bits 31..16, IP in bits 15..0.
    pub eip: u32,
}

/// Where the SEV hashes table (kernel, initrd, cmdline SHA-256) lies in guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SevHashesTable {
    /// Guest physical address of the table (0 = not supported by this build).
    pub gpa: u32,
    /// Size reserved for it, when the entry says.
    pub size: Option<u32>,
}

/// The SEV launch-secret area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SevSecretBlock {
    /// Guest physical address.
    pub gpa: u32,
    /// Size in bytes.
    pub size: u32,
}
