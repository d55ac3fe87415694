//! The Authenticode digest of a PE/COFF image, as edk2 measures an EFI application before it
//! starts it (`SecurityPkg` `Tcg2MeasurePeImage`, following the Microsoft "Windows
//! Authenticode Portable Executable Signature Format", "Calculating the PE Image Hash"): the
//! headers without the checksum and the certificate-table directory entry, the sections in
//! file order, then whatever follows them except the certificate table.

use digest::Digest;

/// Why an image is not a PE/COFF file this code can hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeError {
    /// "not a PE image: {0}".
    #[error("not a PE image: {0}")]
    Malformed(&'static str),
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, PeError> {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map(u16::from_le_bytes)
        .ok_or(PeError::Malformed("header runs past the end of the file"))
}

fn u32_at(b: &[u8], at: usize) -> Result<usize, PeError> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .and_then(|v| usize::try_from(v).ok())
        .ok_or(PeError::Malformed("header runs past the end of the file"))
}

fn range(b: &[u8], start: usize, end: usize) -> Result<&[u8], PeError> {
    b.get(start..end)
        .ok_or(PeError::Malformed("a header range lies outside the file"))
}

/// Most sections accepted (the PE format allows 96).
const MAX_SECTIONS: usize = 96;
/// Index of the certificate table in the data directories.
const SECURITY_DIRECTORY: usize = 4;

/// The Authenticode digest of `image` with hash `D`.
pub fn digest<D: Digest>(image: &[u8]) -> Result<Vec<u8>, PeError> {
    if image.get(..2) != Some(b"MZ") {
        return Err(PeError::Malformed("no MZ signature"));
    }
    let pe = u32_at(image, 0x3c)?;
    if image.get(pe..pe + 4) != Some(b"PE\0\0") {
        return Err(PeError::Malformed("no PE signature"));
    }
    let coff = pe + 4;
    let sections = usize::from(u16_at(image, coff + 2)?);
    let opt_size = usize::from(u16_at(image, coff + 16)?);
    let opt = coff + 20;
    let (dirs, count_at) = match u16_at(image, opt)? {
        0x10b => (opt + 96, opt + 92),
        0x20b => (opt + 112, opt + 108),
        _ => return Err(PeError::Malformed("unknown optional-header magic")),
    };
    let dir_count = u32_at(image, count_at)?;
    let checksum = opt + 64;
    let size_of_headers = u32_at(image, opt + 60)?;
    let mut h = D::new();
    h.update(range(image, 0, checksum)?);
    let (cert_addr, cert_size) = if dir_count > SECURITY_DIRECTORY {
        let cert_dir = dirs + SECURITY_DIRECTORY * 8;
        h.update(range(image, checksum + 4, cert_dir)?);
        h.update(range(image, cert_dir + 8, size_of_headers)?);
        (u32_at(image, cert_dir)?, u32_at(image, cert_dir + 4)?)
    } else {
        h.update(range(image, checksum + 4, size_of_headers)?);
        (0, 0)
    };
    if sections > MAX_SECTIONS {
        return Err(PeError::Malformed("too many sections"));
    }
    let table = opt + opt_size;
    let mut raw: Vec<(usize, usize)> = Vec::with_capacity(sections);
    for i in 0..sections {
        let s = table + i * 40;
        let size = u32_at(image, s + 16)?;
        let ptr = u32_at(image, s + 20)?;
        if size > 0 {
            raw.push((ptr, size));
        }
    }
    raw.sort_by_key(|(ptr, _)| *ptr);
    let mut hashed = size_of_headers;
    for (ptr, size) in raw {
        let end = ptr
            .checked_add(size)
            .ok_or(PeError::Malformed("section range overflows"))?;
        h.update(range(image, ptr, end)?);
        hashed = hashed.saturating_add(size);
    }
    let cert = if cert_addr > 0 { cert_size } else { 0 };
    if image.len() > hashed.saturating_add(cert) {
        h.update(range(image, hashed, image.len() - cert)?);
    }
    let _ = cert_addr;
    Ok(h.finalize().to_vec())
}
