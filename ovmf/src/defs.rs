//! Constants of the OVMF reset-vector layout. GUIDs come from edk2
//! `OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm` (footer table),
//! `OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm` (SEV metadata) and
//! `OvmfPkg/ResetVector/X64/IntelTdxMetadata.asm` (TDVF metadata, Intel TDX Virtual Firmware
//! Design Guide, section 11 "Metadata").

use crate::guid::Guid;

/// Marks the end of the footer GUID table; the entry sits 32 bytes before the end of the
/// image (the 16-byte reset vector and its padding follow it).
pub const FOOTER_TABLE_GUID: Guid = Guid::from_fields(
    0x96b5_82de,
    0x1fb2,
    0x45f7,
    [0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d],
);
/// SEV hashes table (kernel/initrd/cmdline hashes for measured direct boot): `DD gpa, DD size`.
pub const SEV_HASH_TABLE_RV_GUID: Guid = Guid::from_fields(
    0x7255_371f,
    0x3a3b,
    0x4b04,
    [0x92, 0x7b, 0x1d, 0xa6, 0xef, 0xa8, 0xd4, 0x54],
);
/// SEV-ES AP reset block: `DD reset eip` (CS base in the high half, IP in the low half).
pub const SEV_ES_RESET_BLOCK_GUID: Guid = Guid::from_fields(
    0x00f7_71de,
    0x1a7e,
    0x4fcb,
    [0x89, 0x0e, 0x68, 0xc7, 0x7e, 0x2f, 0xb4, 0x4e],
);
/// SEV metadata (`ASEV` descriptor): `DD offset of the descriptor from the end of the image`.
pub const SEV_METADATA_GUID: Guid = Guid::from_fields(
    0xdc88_6566,
    0x984a,
    0x4798,
    [0xa7, 0x5e, 0x55, 0x85, 0xa7, 0xbf, 0x67, 0xcc],
);
/// SEV launch secret block: `DD gpa, DD size`.
pub const SEV_SECRET_BLOCK_GUID: Guid = Guid::from_fields(
    0x4c2e_b361,
    0x7d9b,
    0x4cc3,
    [0x80, 0x81, 0x12, 0x7c, 0x90, 0xd3, 0xd2, 0x94],
);
/// TDX metadata offset: `DD offset of the TDVF descriptor from the end of the image`.
pub const TDX_METADATA_OFFSET_GUID: Guid = Guid::from_fields(
    0xe47a_6535,
    0x984a,
    0x4798,
    [0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2],
);

/// Bytes between the footer entry and the end of the image.
pub const BYTES_AFTER_FOOTER: usize = 32;
/// Size of an entry's trailer: `u16` length then the GUID. An entry's length includes it.
pub const ENTRY_HEADER_BYTES: usize = 18;

/// Largest image accepted (real OVMF images are 1 to 4 MiB; the image must fit below 4 GiB).
pub const MAX_FIRMWARE_BYTES: usize = 64 * 1024 * 1024;
/// Most footer entries accepted (edk2 builds carry five or six).
pub const MAX_FOOTER_ENTRIES: usize = 64;
/// Most SEV metadata sections accepted (edk2 builds carry four to seven).
pub const MAX_SEV_SECTIONS: usize = 64;
/// Most TDVF sections accepted (edk2 builds carry six to eight).
pub const MAX_TDVF_SECTIONS: usize = 64;

/// `ASEV` descriptor: signature, size, version, item count (4 × u32).
pub const SEV_METADATA_HEADER_BYTES: usize = 16;
/// One SEV metadata section: gpa, size, type (3 × u32).
pub const SEV_SECTION_BYTES: usize = 12;
/// The only SEV metadata version defined.
pub const SEV_METADATA_VERSION: u32 = 1;

/// TDVF descriptor: signature, length, version, section count (4 × u32).
pub const TDVF_DESCRIPTOR_BYTES: usize = 16;
/// One TDVF section: data offset, raw size (u32), memory address, memory size (u64), type,
/// attributes (u32).
pub const TDVF_SECTION_BYTES: usize = 32;
/// The only TDVF metadata version defined.
pub const TDVF_VERSION: u32 = 1;
/// TDVF section attribute: the host extends MRTD with the section's contents (TDH.MR.EXTEND).
pub const TDVF_ATTR_MR_EXTEND: u32 = 1 << 0;
/// TDVF section attribute: pages are added with TDH.MEM.PAGE.AUG (not measured).
pub const TDVF_ATTR_PAGE_AUG: u32 = 1 << 1;

/// Guest page size.
pub const PAGE_BYTES: u64 = 4096;
/// The image is mapped so that it ends at 4 GiB.
pub const FOUR_GIB: u64 = 1 << 32;
