//! Why an image was refused. Every variant names the structure and the check that failed.

use crate::guid::Guid;

/// Why an OVMF image could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OvmfError {
    /// "firmware image is {len} bytes, more than the {max} accepted".
    #[error("firmware image is {len} bytes, more than the {max} accepted")]
    TooLarge {
        /// Image size.
        len: usize,
        /// [`crate::defs::MAX_FIRMWARE_BYTES`].
        max: usize,
    },
    /// "image ends inside `{what}` at byte {offset}".
    #[error("image ends inside `{what}` at byte {offset}")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Offset of the field in the image.
        offset: usize,
    },
    /// "footer table declares {size} bytes, but a table needs at least 18 and the image has
    /// {available} before the footer".
    #[error(
        "footer table declares {size} bytes, but a table needs at least 18 and the image has \
         {available} before the footer"
    )]
    FooterSize {
        /// Declared size (footer entry included).
        size: u16,
        /// Bytes available in front of the footer entry.
        available: usize,
    },
    /// "footer entry `{guid}` declares {size} bytes, not between 18 and the {remaining} left".
    #[error(
        "footer entry `{guid}` declares {size} bytes, not between 18 and the {remaining} left"
    )]
    EntrySize {
        /// The entry's GUID.
        guid: Guid,
        /// Declared size.
        size: u16,
        /// Bytes of the table not yet consumed.
        remaining: usize,
    },
    /// "footer table lists `{guid}` twice".
    #[error("footer table lists `{guid}` twice")]
    DuplicateEntry {
        /// The repeated GUID.
        guid: Guid,
    },
    /// "footer table has more than {max} entries".
    #[error("footer table has more than {max} entries")]
    TooManyEntries {
        /// [`crate::defs::MAX_FOOTER_ENTRIES`].
        max: usize,
    },
    /// "footer entry `{guid}` carries {have} data bytes, fewer than the {need} it must have".
    #[error("footer entry `{guid}` carries {have} data bytes, fewer than the {need} it must have")]
    EntryTooShort {
        /// The entry's GUID.
        guid: Guid,
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// "`{what}` offset {offset:#x} from the end lies outside the {len}-byte image".
    #[error("`{what}` offset {offset:#x} from the end lies outside the {len}-byte image")]
    MetadataOffset {
        /// `sev metadata` or `tdvf descriptor`.
        what: &'static str,
        /// Offset as stored.
        offset: u32,
        /// Image size.
        len: usize,
    },
    /// "sev metadata signature is `{found:?}`, not `ASEV`".
    #[error("sev metadata signature is `{found:?}`, not `ASEV`")]
    SevSignature {
        /// The four bytes found.
        found: [u8; 4],
    },
    /// "sev metadata version is {version}, not 1".
    #[error("sev metadata version is {version}, not 1")]
    SevVersion {
        /// Version found.
        version: u32,
    },
    /// "sev metadata declares {count} sections in {size} bytes: does not fit".
    #[error("sev metadata declares {count} sections in {size} bytes: does not fit")]
    SevSectionsSize {
        /// Declared section count.
        count: u32,
        /// Declared descriptor size.
        size: u32,
    },
    /// "sev metadata declares {count} sections, more than the {max} accepted".
    #[error("sev metadata declares {count} sections, more than the {max} accepted")]
    TooManySevSections {
        /// Declared count.
        count: u32,
        /// [`crate::defs::MAX_SEV_SECTIONS`].
        max: usize,
    },
    /// "sev metadata section {index} ({gpa:#x}, {size:#x} bytes) is not page-aligned or wraps".
    #[error(
        "sev metadata section {index} ({gpa:#x}, {size:#x} bytes) is not page-aligned or wraps"
    )]
    SevSectionRange {
        /// Section index.
        index: usize,
        /// Guest physical address.
        gpa: u32,
        /// Size.
        size: u32,
    },
    /// "tdvf descriptor signature is `{found:?}`, not `TDVF`".
    #[error("tdvf descriptor signature is `{found:?}`, not `TDVF`")]
    TdvfSignature {
        /// The four bytes found.
        found: [u8; 4],
    },
    /// "tdvf metadata version is {version}, not 1".
    #[error("tdvf metadata version is {version}, not 1")]
    TdvfVersion {
        /// Version found.
        version: u32,
    },
    /// "tdvf descriptor declares {count} sections in {length} bytes: does not fit".
    #[error("tdvf descriptor declares {count} sections in {length} bytes: does not fit")]
    TdvfLength {
        /// Declared section count.
        count: u32,
        /// Declared descriptor length.
        length: u32,
    },
    /// "tdvf descriptor declares {count} sections, more than the {max} accepted".
    #[error("tdvf descriptor declares {count} sections, more than the {max} accepted")]
    TooManyTdvfSections {
        /// Declared count.
        count: u32,
        /// [`crate::defs::MAX_TDVF_SECTIONS`].
        max: usize,
    },
    /// "tdvf section {index}: {problem}".
    #[error("tdvf section {index}: {problem}")]
    TdvfSection {
        /// Section index.
        index: usize,
        /// The check that failed.
        problem: &'static str,
    },
}
