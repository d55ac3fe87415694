//! OVMF firmware images, parsed once into typed values.
//!
//! A confidential VM's launch measurement is a function of its firmware image. AMD SEV-SNP's
//! launch digest covers every firmware page plus the pages OVMF's *SEV metadata* tells the VMM
//! to pre-validate; the APs start at the address in the *SEV-ES reset block*; measured direct
//! boot writes kernel/initrd/cmdline hashes where the *SEV hashes table* says. Intel TDX's MRTD
//! covers the sections OVMF's *TDVF metadata* lists. All of these hang off one structure: the
//! GUIDed *footer table* that ends 32 bytes before the end of the image (edk2
//! `OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm`).
//!
//! [`Ovmf::parse`] reads that table and every structure it points to, checks each length and
//! offset against the image, and returns them as typed values; the measurement code
//! downstream reads only those values and the page contents. Threat model: the image is
//! outside input (downloaded, or handed over by an operator): the parser never panics, bounds
//! every count ([`defs`]), and names the structure and check in every [`OvmfError`]. An image
//! without a footer table (Debian bookworm's `_4M` builds) parses, with no metadata; asking it
//! for a launch digest then fails with a typed error downstream.

#![forbid(unsafe_code)]

pub mod defs;
mod error;
mod footer;
pub mod guid;
mod read;
mod sev;
mod tdx;

pub use error::OvmfError;
pub use footer::{FooterEntry, FooterTable};
pub use guid::Guid;
pub use sev::{
    SevEsResetBlock, SevHashesTable, SevMetadata, SevSecretBlock, SevSection, SevSectionKind,
};
pub use tdx::{TdvfMetadata, TdvfSection, TdvfSectionKind, MAX_TDVF_PAGES};

use defs::{
    FOUR_GIB, MAX_FIRMWARE_BYTES, SEV_ES_RESET_BLOCK_GUID, SEV_HASH_TABLE_RV_GUID,
    SEV_METADATA_GUID, SEV_SECRET_BLOCK_GUID, TDX_METADATA_OFFSET_GUID,
};
use serde::Serialize;

/// A parsed firmware image: its bytes and every structure found in it.
#[derive(Clone)]
pub struct Ovmf {
    bytes: Vec<u8>,
    footer: Option<FooterTable>,
    sev_es_reset: Option<SevEsResetBlock>,
    sev_metadata: Option<SevMetadata>,
    sev_hashes_table: Option<SevHashesTable>,
    sev_secret: Option<SevSecretBlock>,
    tdvf: Option<TdvfMetadata>,
}

impl std::fmt::Debug for Ovmf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ovmf")
            .field("len", &self.bytes.len())
            .field("footer", &self.footer)
            .field("sev_es_reset", &self.sev_es_reset)
            .field("sev_metadata", &self.sev_metadata)
            .field("sev_hashes_table", &self.sev_hashes_table)
            .field("sev_secret", &self.sev_secret)
            .field("tdvf", &self.tdvf)
            .finish()
    }
}

impl Ovmf {
    /// Parses an image. Fails only when a structure is present but malformed (or the image is
    /// larger than [`MAX_FIRMWARE_BYTES`]); absent structures are `None`.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, OvmfError> {
        if bytes.len() > MAX_FIRMWARE_BYTES {
            return Err(OvmfError::TooLarge {
                len: bytes.len(),
                max: MAX_FIRMWARE_BYTES,
            });
        }
        let footer = FooterTable::parse(&bytes)?;
        let mut image = Self {
            bytes: Vec::new(),
            footer: None,
            sev_es_reset: None,
            sev_metadata: None,
            sev_hashes_table: None,
            sev_secret: None,
            tdvf: None,
        };
        if let Some(table) = &footer {
            let first_u32 = |guid: Guid| -> Result<Option<(u32, &[u8])>, OvmfError> {
                match table.get(guid) {
                    None => Ok(None),
                    Some(e) => {
                        let data = e.data(&bytes, 4)?;
                        Ok(Some((read::u32_le(data, 0, "footer entry value")?, data)))
                    }
                }
            };
            image.sev_es_reset =
                first_u32(SEV_ES_RESET_BLOCK_GUID)?.map(|(eip, _)| SevEsResetBlock { eip });
            image.sev_hashes_table =
                first_u32(SEV_HASH_TABLE_RV_GUID)?.map(|(gpa, data)| SevHashesTable {
                    gpa,
                    size: read::u32_le(data, 4, "hashes table size").ok(),
                });
            if let Some((gpa, data)) = first_u32(SEV_SECRET_BLOCK_GUID)? {
                let size = read::u32_le(data, 4, "sev secret block size").map_err(|_| {
                    OvmfError::EntryTooShort {
                        guid: SEV_SECRET_BLOCK_GUID,
                        need: 8,
                        have: data.len(),
                    }
                })?;
                image.sev_secret = Some(SevSecretBlock { gpa, size });
            }
            if let Some((from_end, _)) = first_u32(SEV_METADATA_GUID)? {
                image.sev_metadata = Some(SevMetadata::parse(&bytes, from_end)?);
            }
            if let Some((from_end, _)) = first_u32(TDX_METADATA_OFFSET_GUID)? {
                image.tdvf = Some(TdvfMetadata::parse(&bytes, from_end)?);
            }
        }
        image.footer = footer;
        image.bytes = bytes;
        Ok(image)
    }

    /// The image bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Guest physical address of the first byte: the image ends at 4 GiB.
    pub fn gpa(&self) -> u64 {
        FOUR_GIB - u64::try_from(self.bytes.len()).unwrap_or(0)
    }

    /// The footer GUID table, if the image has one.
    pub fn footer(&self) -> Option<&FooterTable> {
        self.footer.as_ref()
    }

    /// The SEV-ES AP reset block.
    pub fn sev_es_reset(&self) -> Option<&SevEsResetBlock> {
        self.sev_es_reset.as_ref()
    }

    /// The SEV metadata sections.
    pub fn sev_metadata(&self) -> Option<&SevMetadata> {
        self.sev_metadata.as_ref()
    }

    /// The SEV hashes-table location (only AmdSev builds have a non-zero one).
    pub fn sev_hashes_table(&self) -> Option<&SevHashesTable> {
        self.sev_hashes_table.as_ref()
    }

    /// The SEV launch-secret block.
    pub fn sev_secret(&self) -> Option<&SevSecretBlock> {
        self.sev_secret.as_ref()
    }

    /// The TDVF metadata.
    pub fn tdvf(&self) -> Option<&TdvfMetadata> {
        self.tdvf.as_ref()
    }

    /// Whether SEV/SEV-ES measured direct boot is possible (hashes table at a non-zero gpa).
    pub fn supports_sev_hashes(&self) -> bool {
        self.sev_hashes_table.is_some_and(|t| t.gpa != 0)
    }

    /// Whether SNP measured direct boot is possible (a kernel-hashes metadata section).
    pub fn supports_snp_kernel_hashes(&self) -> bool {
        self.sev_metadata
            .as_ref()
            .and_then(|m| m.section(SevSectionKind::SnpKernelHashes))
            .is_some()
    }

    /// A serialisable description of everything found (`measure ovmf --json`).
    pub fn report(&self) -> Report<'_> {
        Report {
            size: self.bytes.len(),
            gpa: self.gpa(),
            footer_entries: self
                .footer
                .iter()
                .flat_map(|t| t.entries.iter())
                .map(|e| ReportEntry {
                    guid: e.guid,
                    name: entry_name(e.guid),
                    data_offset: e.data_offset,
                    data_len: e.data_len,
                })
                .collect(),
            sev_es_reset_eip: self.sev_es_reset.map(|r| r.eip),
            sev_metadata: self.sev_metadata.as_ref(),
            sev_hashes_table: self.sev_hashes_table.as_ref(),
            sev_secret: self.sev_secret.as_ref(),
            snp_kernel_hashes: self.supports_snp_kernel_hashes(),
            tdvf: self.tdvf.as_ref(),
        }
    }
}

/// The name of a footer entry this crate knows, for display.
pub fn entry_name(guid: Guid) -> &'static str {
    match guid {
        g if g == SEV_ES_RESET_BLOCK_GUID => "sev_es_reset_block",
        g if g == SEV_HASH_TABLE_RV_GUID => "sev_hashes_table",
        g if g == SEV_METADATA_GUID => "sev_metadata",
        g if g == SEV_SECRET_BLOCK_GUID => "sev_secret_block",
        g if g == TDX_METADATA_OFFSET_GUID => "tdx_metadata",
        _ => "unknown",
    }
}

/// What [`Ovmf::report`] returns.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    /// Image size in bytes.
    pub size: usize,
    /// Guest physical address of the image.
    pub gpa: u64,
    /// Footer table entries.
    pub footer_entries: Vec<ReportEntry>,
    /// SEV-ES AP reset address.
    pub sev_es_reset_eip: Option<u32>,
    /// SEV metadata.
    pub sev_metadata: Option<&'a SevMetadata>,
    /// SEV hashes table.
    pub sev_hashes_table: Option<&'a SevHashesTable>,
    /// Launch-secret block.
    pub sev_secret: Option<&'a SevSecretBlock>,
    /// Whether the image has an SNP kernel-hashes section.
    pub snp_kernel_hashes: bool,
    /// TDVF metadata.
    pub tdvf: Option<&'a TdvfMetadata>,
}

/// One footer entry in a [`Report`].
#[derive(Debug, Serialize)]
pub struct ReportEntry {
    /// GUID.
    pub guid: Guid,
    /// Known name, or `unknown`.
    pub name: &'static str,
    /// Offset of the data in the image.
    pub data_offset: usize,
    /// Data length.
    pub data_len: usize,
}
