//! The reset-vector footer GUID table (edk2 `ResetVectorVtf0.asm`, "OVMF GUIDed structure
//! table"). It ends 32 bytes before the end of the image with an entry whose GUID is
//! [`FOOTER_TABLE_GUID`] and whose length covers the whole table. Each entry is
//! `data ‖ u16 length ‖ GUID`, read backwards from the footer; `length` counts the 18-byte
//! trailer too.

use crate::defs::{BYTES_AFTER_FOOTER, ENTRY_HEADER_BYTES, FOOTER_TABLE_GUID, MAX_FOOTER_ENTRIES};
use crate::error::OvmfError;
use crate::guid::Guid;
use crate::read;
use serde::Serialize;

/// One entry of the table: where its data lies in the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FooterEntry {
    /// The entry's GUID.
    pub guid: Guid,
    /// Offset of the entry's data in the image.
    pub data_offset: usize,
    /// Length of the entry's data (the declared length less the 18-byte trailer).
    pub data_len: usize,
}

/// The parsed table, entries in the order they are read (from the footer backwards).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FooterTable {
    /// Offset of the first byte of the table.
    pub offset: usize,
    /// Entries, footer excluded.
    pub entries: Vec<FooterEntry>,
}

impl FooterTable {
    /// Parses the table of `img`; `Ok(None)` when the image has no footer GUID where the
    /// table must end (such images, e.g. Debian bookworm's `_4M` builds, carry no metadata).
    pub(crate) fn parse(img: &[u8]) -> Result<Option<Self>, OvmfError> {
        let Some(footer_at) = img
            .len()
            .checked_sub(BYTES_AFTER_FOOTER + ENTRY_HEADER_BYTES)
        else {
            return Ok(None);
        };
        let size = read::u16_le(img, footer_at, "footer length")?;
        if read::guid(img, footer_at + 2, "footer guid")? != FOOTER_TABLE_GUID {
            return Ok(None);
        }
        let table_len = usize::from(size)
            .checked_sub(ENTRY_HEADER_BYTES)
            .filter(|l| *l <= footer_at)
            .ok_or(OvmfError::FooterSize {
                size,
                available: footer_at,
            })?;
        let start = footer_at - table_len;
        let mut end = footer_at;
        let mut entries: Vec<FooterEntry> = Vec::new();
        while end - start >= ENTRY_HEADER_BYTES {
            let trailer = end - ENTRY_HEADER_BYTES;
            let len = read::u16_le(img, trailer, "footer entry length")?;
            let guid = read::guid(img, trailer + 2, "footer entry guid")?;
            let remaining = end - start;
            let entry_len = usize::from(len);
            if entry_len < ENTRY_HEADER_BYTES || entry_len > remaining {
                return Err(OvmfError::EntrySize {
                    guid,
                    size: len,
                    remaining,
                });
            }
            if entries.iter().any(|e| e.guid == guid) {
                return Err(OvmfError::DuplicateEntry { guid });
            }
            if entries.len() == MAX_FOOTER_ENTRIES {
                return Err(OvmfError::TooManyEntries {
                    max: MAX_FOOTER_ENTRIES,
                });
            }
            entries.push(FooterEntry {
                guid,
                data_offset: end - entry_len,
                data_len: entry_len - ENTRY_HEADER_BYTES,
            });
            end -= entry_len;
        }
        Ok(Some(Self {
            offset: start,
            entries,
        }))
    }

    /// The entry with `guid`.
    pub fn get(&self, guid: Guid) -> Option<&FooterEntry> {
        self.entries.iter().find(|e| e.guid == guid)
    }
}

impl FooterEntry {
    /// The entry's data, which must hold at least `need` bytes.
    pub(crate) fn data<'a>(&self, img: &'a [u8], need: usize) -> Result<&'a [u8], OvmfError> {
        if self.data_len < need {
            return Err(OvmfError::EntryTooShort {
                guid: self.guid,
                need,
                have: self.data_len,
            });
        }
        read::bytes(img, self.data_offset, self.data_len, "footer entry data")
    }
}
