//! The SEV hashes table QEMU writes for measured direct boot (`kernel-hashes=on`): SHA-256 of
//! the kernel command line (NUL-terminated), the initrd and the kernel, in QEMU's
//! `SevHashTable` layout (`target/i386/sev.c`), padded to 16 bytes.

use ovmf::Guid;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

const TABLE_HEADER: Guid = Guid::from_fields(
    0x9438_d606,
    0x4f22,
    0x4cc9,
    [0xb4, 0x79, 0xa7, 0x93, 0xd4, 0x11, 0xfd, 0x21],
);
const KERNEL_ENTRY: Guid = Guid::from_fields(
    0x4de7_9437,
    0xabd2,
    0x427f,
    [0xb8, 0x35, 0xd5, 0xb1, 0x72, 0xd2, 0x04, 0x5b],
);
const INITRD_ENTRY: Guid = Guid::from_fields(
    0x44ba_f731,
    0x3a2f,
    0x4bd7,
    [0x9a, 0xf1, 0x41, 0xe2, 0x91, 0x69, 0x78, 0x1d],
);
const CMDLINE_ENTRY: Guid = Guid::from_fields(
    0x97d0_2dd8,
    0xbd20,
    0x4c94,
    [0xaa, 0x78, 0xe7, 0x71, 0x4d, 0x36, 0xab, 0x2a],
);
/// One entry: GUID, u16 length, SHA-256.
const ENTRY_BYTES: u16 = 16 + 2 + 32;
/// The table: GUID, u16 length, three entries.
const TABLE_BYTES: u16 = 16 + 2 + 3 * ENTRY_BYTES;
/// The table padded to a multiple of 16.
pub const PADDED_TABLE_BYTES: usize = (TABLE_BYTES as usize + 15) & !15;

/// SHA-256 digests of the three direct-boot inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SevHashes {
    /// SHA-256 of the kernel image.
    pub kernel: [u8; 32],
    /// SHA-256 of the initrd (of nothing when there is none).
    pub initrd: [u8; 32],
    /// SHA-256 of the command line with its terminating NUL.
    pub cmdline: [u8; 32],
}

impl SevHashes {
    /// Hashes the inputs as QEMU does: an absent initrd hashes as empty, an absent or empty
    /// command line as a single NUL.
    pub fn new(kernel: &[u8], initrd: Option<&[u8]>, append: Option<&str>) -> Self {
        let mut cmdline = append.unwrap_or("").as_bytes().to_vec();
        cmdline.push(0);
        Self {
            kernel: Sha256::digest(kernel).into(),
            initrd: Sha256::digest(initrd.unwrap_or(&[])).into(),
            cmdline: Sha256::digest(&cmdline).into(),
        }
    }

    /// Hashes the files as [`SevHashes::new`] hashes their contents, streaming them (no
    /// whole-file buffers) and hashing the kernel and the initrd on two threads.
    pub fn from_files(
        kernel: &Path,
        initrd: Option<&Path>,
        append: Option<&str>,
    ) -> std::io::Result<Self> {
        let mut cmdline = append.unwrap_or("").as_bytes().to_vec();
        cmdline.push(0);
        let (kernel, initrd) = std::thread::scope(|s| {
            let i = s.spawn(|| match initrd {
                Some(p) => sha256_file(p),
                None => Ok(Sha256::digest([]).into()),
            });
            let k = sha256_file(kernel);
            (k, i.join())
        });
        let initrd = initrd.map_err(|_| std::io::Error::other("initrd hashing thread failed"))?;
        Ok(Self {
            kernel: kernel?,
            initrd: initrd?,
            cmdline: Sha256::digest(&cmdline).into(),
        })
    }

    /// The padded table.
    pub fn table(&self) -> [u8; PADDED_TABLE_BYTES] {
        let mut t = Vec::with_capacity(PADDED_TABLE_BYTES);
        t.extend_from_slice(TABLE_HEADER.as_bytes());
        t.extend_from_slice(&TABLE_BYTES.to_le_bytes());
        for (guid, hash) in [
            (CMDLINE_ENTRY, &self.cmdline),
            (INITRD_ENTRY, &self.initrd),
            (KERNEL_ENTRY, &self.kernel),
        ] {
            t.extend_from_slice(guid.as_bytes());
            t.extend_from_slice(&ENTRY_BYTES.to_le_bytes());
            t.extend_from_slice(hash);
        }
        let mut out = [0u8; PADDED_TABLE_BYTES];
        if let Some(dst) = out.get_mut(..t.len()) {
            dst.copy_from_slice(&t);
        }
        out
    }

    /// A page holding the table at `offset_in_page`, zeros elsewhere; `None` when the table
    /// would not fit in the page.
    pub fn page(&self, offset_in_page: usize) -> Option<[u8; 4096]> {
        let mut page = [0u8; 4096];
        page.get_mut(offset_in_page..offset_in_page.checked_add(PADDED_TABLE_BYTES)?)?
            .copy_from_slice(&self.table());
        Some(page)
    }
}

/// SHA-256 of a file, read in 1 MiB blocks.
pub fn sha256_file(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(buf.get(..n).unwrap_or(&[]));
    }
    Ok(h.finalize().into())
}
