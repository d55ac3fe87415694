//! Bounds-checked little-endian reads; the only place that touches raw offsets.

use crate::error::OvmfError;
use crate::guid::Guid;

/// `len` bytes at `offset`, or `Truncated` naming `what`.
pub(crate) fn bytes<'a>(
    img: &'a [u8],
    offset: usize,
    len: usize,
    what: &'static str,
) -> Result<&'a [u8], OvmfError> {
    offset
        .checked_add(len)
        .and_then(|end| img.get(offset..end))
        .ok_or(OvmfError::Truncated { what, offset })
}

fn array<const N: usize>(
    img: &[u8],
    offset: usize,
    what: &'static str,
) -> Result<[u8; N], OvmfError> {
    let b = bytes(img, offset, N, what)?;
    let mut out = [0u8; N];
    out.copy_from_slice(b);
    Ok(out)
}

pub(crate) fn u16_le(img: &[u8], offset: usize, what: &'static str) -> Result<u16, OvmfError> {
    array(img, offset, what).map(u16::from_le_bytes)
}

pub(crate) fn u32_le(img: &[u8], offset: usize, what: &'static str) -> Result<u32, OvmfError> {
    array(img, offset, what).map(u32::from_le_bytes)
}

pub(crate) fn u64_le(img: &[u8], offset: usize, what: &'static str) -> Result<u64, OvmfError> {
    array(img, offset, what).map(u64::from_le_bytes)
}

pub(crate) fn four(img: &[u8], offset: usize, what: &'static str) -> Result<[u8; 4], OvmfError> {
    array(img, offset, what)
}

pub(crate) fn guid(img: &[u8], offset: usize, what: &'static str) -> Result<Guid, OvmfError> {
    array(img, offset, what).map(Guid::from_bytes)
}

/// Converts a `u32` read from the image to an offset (lossless on every supported target).
pub(crate) fn to_usize(v: u32) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}
