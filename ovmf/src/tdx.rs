//! TDX Virtual Firmware (TDVF) metadata: the sections the VMM adds to the TD before it runs
//! (Intel "TDX Virtual Firmware Design Guide", section 11.1 "TDVF descriptor" and 11.2
//! "TDVF sections"; edk2 `IntelTdxMetadata.asm`). Each section says where its bytes lie in the
//! image, where they go in guest memory, and whether the VMM extends MRTD with them.

use crate::defs::{
    MAX_TDVF_SECTIONS, PAGE_BYTES, TDVF_ATTR_MR_EXTEND, TDVF_ATTR_PAGE_AUG, TDVF_DESCRIPTOR_BYTES,
    TDVF_SECTION_BYTES, TDVF_VERSION,
};
use crate::error::OvmfError;
use crate::read;
use serde::Serialize;

/// Most guest pages all sections together may describe (4 GiB): a bound on the work a
/// measurement does for one image.
pub const MAX_TDVF_PAGES: u64 = 1 << 20;

/// Type of a TDVF section (Design Guide table 11-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TdvfSectionKind {
    /// 0: boot firmware volume (code).
    Bfv,
    /// 1: configuration firmware volume (variables).
    Cfv,
    /// 2: the TD HOB the VMM writes.
    TdHob,
    /// 3: temporary memory (stack, heap, page tables, mailbox).
    TempMem,
    /// 4: permanent memory.
    PermMem,
    /// 5: payload image.
    Payload,
    /// 6: payload parameters.
    PayloadParam,
    /// Any other value.
    Unknown(u32),
}

impl TdvfSectionKind {
    fn from_u32(v: u32) -> Self {
        match v {
            0 => Self::Bfv,
            1 => Self::Cfv,
            2 => Self::TdHob,
            3 => Self::TempMem,
            4 => Self::PermMem,
            5 => Self::Payload,
            6 => Self::PayloadParam,
            other => Self::Unknown(other),
        }
    }
}

/// One TDVF section, checked: page-aligned, its raw data inside the image, no wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TdvfSection {
    /// Offset of the section's bytes in the image.
    pub data_offset: u32,
    /// Number of bytes taken from the image (the rest of the section is zero).
    pub raw_data_size: u32,
    /// Guest physical address.
    pub memory_address: u64,
    /// Size in guest memory.
    pub memory_data_size: u64,
    /// What the section is.
    pub kind: TdvfSectionKind,
    /// Attribute bits (bit 0 MR.EXTEND, bit 1 PAGE.AUG).
    pub attributes: u32,
}

impl TdvfSection {
    /// Whether the VMM extends MRTD with the section's contents.
    pub fn mr_extend(&self) -> bool {
        self.attributes & TDVF_ATTR_MR_EXTEND != 0
    }

    /// Whether the pages are added with TDH.MEM.PAGE.AUG (so not recorded in MRTD).
    pub fn page_aug(&self) -> bool {
        self.attributes & TDVF_ATTR_PAGE_AUG != 0
    }

    /// Number of guest pages.
    pub fn pages(&self) -> u64 {
        self.memory_data_size / PAGE_BYTES
    }

    /// The section's bytes in `img` (the image it was parsed from). Checked here rather than
    /// at parse time: an image cut to its last pages (as `sev-snp-measure`'s fixtures are)
    /// keeps valid SEV metadata while its TDVF sections point before its start.
    pub fn raw_data<'a>(&self, img: &'a [u8], index: usize) -> Result<&'a [u8], OvmfError> {
        read::bytes(
            img,
            read::to_usize(self.data_offset),
            read::to_usize(self.raw_data_size),
            "tdvf section raw data",
        )
        .map_err(|_| OvmfError::TdvfSection {
            index,
            problem: "raw data lies outside the image",
        })
    }
}

/// The TDVF descriptor and its sections, in image order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TdvfMetadata {
    /// Offset of the descriptor in the image.
    pub offset: usize,
    /// Sections in the order the VMM adds them.
    pub sections: Vec<TdvfSection>,
}

impl TdvfMetadata {
    /// Parses the descriptor that lies `from_end` bytes before the end of `img`.
    pub(crate) fn parse(img: &[u8], from_end: u32) -> Result<Self, OvmfError> {
        let offset =
            img.len()
                .checked_sub(read::to_usize(from_end))
                .ok_or(OvmfError::MetadataOffset {
                    what: "tdvf descriptor",
                    offset: from_end,
                    len: img.len(),
                })?;
        let signature = read::four(img, offset, "tdvf signature")?;
        if &signature != b"TDVF" {
            return Err(OvmfError::TdvfSignature { found: signature });
        }
        let length = read::u32_le(img, offset + 4, "tdvf length")?;
        let version = read::u32_le(img, offset + 8, "tdvf version")?;
        if version != TDVF_VERSION {
            return Err(OvmfError::TdvfVersion { version });
        }
        let count = read::u32_le(img, offset + 12, "tdvf section count")?;
        let n = read::to_usize(count);
        if n > MAX_TDVF_SECTIONS {
            return Err(OvmfError::TooManyTdvfSections {
                count,
                max: MAX_TDVF_SECTIONS,
            });
        }
        if TDVF_DESCRIPTOR_BYTES + n * TDVF_SECTION_BYTES > read::to_usize(length) {
            return Err(OvmfError::TdvfLength { count, length });
        }
        let mut sections = Vec::with_capacity(n);
        let mut pages = 0u64;
        for index in 0..n {
            let at = offset + TDVF_DESCRIPTOR_BYTES + index * TDVF_SECTION_BYTES;
            let s = TdvfSection {
                data_offset: read::u32_le(img, at, "tdvf section data offset")?,
                raw_data_size: read::u32_le(img, at + 4, "tdvf section raw size")?,
                memory_address: read::u64_le(img, at + 8, "tdvf section address")?,
                memory_data_size: read::u64_le(img, at + 16, "tdvf section memory size")?,
                kind: TdvfSectionKind::from_u32(read::u32_le(img, at + 24, "tdvf section type")?),
                attributes: read::u32_le(img, at + 28, "tdvf section attributes")?,
            };
            check_section(index, &s)?;
            pages = pages.saturating_add(s.pages());
            if pages > MAX_TDVF_PAGES {
                return Err(OvmfError::TdvfSection {
                    index,
                    problem: "sections describe more than 4 GiB of guest memory",
                });
            }
            sections.push(s);
        }
        Ok(Self { offset, sections })
    }
}

fn check_section(index: usize, s: &TdvfSection) -> Result<(), OvmfError> {
    let fail = |problem| Err(OvmfError::TdvfSection { index, problem });
    if s.memory_address % PAGE_BYTES != 0 {
        return fail("memory address is not page-aligned");
    }
    if s.memory_data_size % PAGE_BYTES != 0 {
        return fail("memory size is not a multiple of the page size");
    }
    if u64::from(s.raw_data_size) > s.memory_data_size {
        return fail("raw data is larger than the section in memory");
    }
    if s.memory_address.checked_add(s.memory_data_size).is_none() {
        return fail("guest address range wraps");
    }
    Ok(())
}
