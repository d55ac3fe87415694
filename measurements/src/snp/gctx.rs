//! The SNP guest context's launch digest: every SNP_LAUNCH_UPDATE folds one page into it
//! (SEV-SNP Firmware ABI Specification, section 8.17.2 "SNP_LAUNCH_UPDATE", table 67
//! "PAGE_INFO"): `LD' = SHA-384(PAGE_INFO)` where `PAGE_INFO = LD ‖ CONTENTS ‖ LENGTH ‖
//! PAGE_TYPE ‖ IMI_PAGE ‖ VMPL3..1_PERMS ‖ reserved ‖ GPA`.

use sha2::{Digest, Sha384};

/// Launch digest size (SHA-384).
pub const LD_BYTES: usize = 48;
/// `PAGE_INFO` size.
const PAGE_INFO_BYTES: usize = 0x70;
/// Page size.
pub const PAGE_BYTES: usize = 4096;
/// The GPA the RMP records for VMSA pages: `(u64)-1` page-aligned, bits above 51 cleared.
pub const VMSA_GPA: u64 = 0xFFFF_FFFF_F000;

/// `PAGE_TYPE` values (ABI table 68).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PageType {
    /// A page of data.
    Normal = 0x01,
    /// A VMSA page.
    Vmsa = 0x02,
    /// A page of zeros.
    Zero = 0x03,
    /// A page whose contents are not measured.
    Unmeasured = 0x04,
    /// The secrets page.
    Secrets = 0x05,
    /// The CPUID page.
    Cpuid = 0x06,
}

/// A launch digest being computed.
#[derive(Debug, Clone)]
pub struct Gctx {
    ld: [u8; LD_BYTES],
}

impl Default for Gctx {
    fn default() -> Self {
        Self::new([0u8; LD_BYTES])
    }
}

impl Gctx {
    /// Starts from `seed` (zeros, or a precomputed firmware digest).
    pub fn new(seed: [u8; LD_BYTES]) -> Self {
        Self { ld: seed }
    }

    /// The digest so far.
    pub fn ld(&self) -> [u8; LD_BYTES] {
        self.ld
    }

    fn update(&mut self, page_type: PageType, gpa: u64, contents: &[u8; LD_BYTES]) {
        let mut info = [0u8; PAGE_INFO_BYTES];
        let (ld, rest) = info.split_at_mut(LD_BYTES);
        ld.copy_from_slice(&self.ld);
        let (c, rest) = rest.split_at_mut(LD_BYTES);
        c.copy_from_slice(contents);
        // LENGTH (u16), PAGE_TYPE, IMI_PAGE = 0, VMPL3/2/1 permissions = 0, reserved, GPA.
        let (len, rest) = rest.split_at_mut(2);
        len.copy_from_slice(&0x70u16.to_le_bytes());
        let (ty, rest) = rest.split_at_mut(1);
        ty.copy_from_slice(&[page_type as u8]);
        let (_zero, gpa_field) = rest.split_at_mut(5);
        gpa_field.copy_from_slice(&gpa.to_le_bytes());
        self.ld = Sha384::digest(info).into();
    }

    /// Folds in pages of data starting at `gpa`. `data` must be a whole number of pages.
    pub fn update_normal_pages(&mut self, gpa: u64, data: &[u8]) {
        let mut offset = 0u64;
        for page in data.chunks(PAGE_BYTES) {
            let digest: [u8; LD_BYTES] = Sha384::digest(page).into();
            self.update(PageType::Normal, gpa + offset, &digest);
            offset += PAGE_BYTES as u64;
        }
    }

    /// Folds in one VMSA page, given its SHA-384 (the same page repeats for every AP).
    pub fn update_vmsa_digest(&mut self, page_digest: &[u8; LD_BYTES]) {
        self.update(PageType::Vmsa, VMSA_GPA, page_digest);
    }

    /// Folds in `len` bytes of zero pages, or of unmeasured pages.
    pub fn update_empty_pages(&mut self, page_type: PageType, gpa: u64, len: u64) {
        let mut offset = 0u64;
        while offset < len {
            self.update(page_type, gpa + offset, &[0u8; LD_BYTES]);
            offset += PAGE_BYTES as u64;
        }
    }

    /// Folds in the secrets page or the CPUID page.
    pub fn update_special_page(&mut self, page_type: PageType, gpa: u64) {
        self.update(page_type, gpa, &[0u8; LD_BYTES]);
    }
}
