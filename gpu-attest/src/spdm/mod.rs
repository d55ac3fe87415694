//! Evidence role: the GPU attestation report, framed once at the edge.
//!
//! NVML's `nvmlDeviceGetConfComputeGpuAttestationReport` returns the SPDM 1.1 GET_MEASUREMENTS
//! request the driver sent (37 bytes, carrying the caller's 32-byte nonce) followed by the GPU's
//! MEASUREMENTS response: measurement blocks, the GPU's own nonce, NVIDIA opaque data (driver
//! and VBIOS versions, SKU, FWID, …) and an ECDSA P-384 signature over everything before it.
//! [`UnverifiedGpuReport::parse`] checks framing only; nothing here is trusted until
//! [`crate::verify::verify_report`] has checked the signature against an authenticated device
//! chain.

pub mod defs;
mod opaque;

use crate::error::SpdmError;
use defs::*;
pub use opaque::{OpaqueData, OpaqueField};

/// The 32-byte nonce a verifier asks the GPU to sign: the evidence binding value truncated to
/// 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GpuNonce(pub [u8; NONCE_LEN]);

impl GpuNonce {
    /// The first 32 bytes of a longer binding value (SHA-512 binding, see DESIGN.md "Bind").
    pub fn from_binding_prefix(binding: &[u8]) -> Option<Self> {
        binding
            .get(..NONCE_LEN)
            .and_then(|b| <[u8; NONCE_LEN]>::try_from(b).ok())
            .map(GpuNonce)
    }

    /// The nonce bytes.
    pub fn as_bytes(&self) -> &[u8; NONCE_LEN] {
        &self.0
    }
}

/// One measurement block of the MEASUREMENTS response (DMTF measurement specification).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasurementBlock {
    /// Index as the GPU numbers it (1-based; RIM index `i` describes block `i + 1`).
    pub index: u8,
    /// DMTFSpecMeasurementValueType.
    pub value_type: u8,
    /// The measurement value (a SHA-384 digest on Hopper and Blackwell).
    pub value: Vec<u8>,
}

/// A framed but unauthenticated GPU attestation report. Every length and offset has been
/// checked; no field may be trusted before verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnverifiedGpuReport {
    raw: Vec<u8>,
    signed_len: usize,
    spdm_version: u8,
    request_nonce: [u8; NONCE_LEN],
    slot_id: u8,
    response_nonce: [u8; NONCE_LEN],
    blocks: Vec<MeasurementBlock>,
    opaque: OpaqueData,
    signature: [u8; SIGNATURE_LEN],
}

/// Bounded reader over untrusted bytes: every read is checked once here.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], SpdmError> {
        let available = self.buf.len().saturating_sub(self.pos);
        let out = self
            .pos
            .checked_add(n)
            .and_then(|end| self.buf.get(self.pos..end))
            .ok_or(SpdmError::Truncated {
                field,
                offset: self.pos,
                needed: n,
                available,
            })?;
        self.pos = self.pos.saturating_add(n);
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, SpdmError> {
        Ok(self.take(1, field)?.first().copied().unwrap_or_default())
    }

    fn u16le(&mut self, field: &'static str) -> Result<u16, SpdmError> {
        let b = self.take(2, field)?;
        Ok(u16::from_le_bytes([
            b.first().copied().unwrap_or_default(),
            b.get(1).copied().unwrap_or_default(),
        ]))
    }

    fn u24le(&mut self, field: &'static str) -> Result<usize, SpdmError> {
        let b = self.take(3, field)?;
        let v = u32::from_le_bytes([
            b.first().copied().unwrap_or_default(),
            b.get(1).copied().unwrap_or_default(),
            b.get(2).copied().unwrap_or_default(),
            0,
        ]);
        Ok(usize::try_from(v).unwrap_or(usize::MAX))
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], SpdmError> {
        let b = self.take(N, field)?;
        <[u8; N]>::try_from(b).map_err(|_| SpdmError::Truncated {
            field,
            offset: self.pos,
            needed: N,
            available: b.len(),
        })
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
}

/// Decodes the hex text NVML tools and the vectors carry (ASCII whitespace ignored).
pub fn decode_report_hex(text: &str) -> Result<Vec<u8>, SpdmError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.len() / 2 > MAX_REPORT_LEN {
        return Err(SpdmError::TooLarge {
            len: compact.len() / 2,
            max: MAX_REPORT_LEN,
        });
    }
    hex::decode(&compact).map_err(|e| SpdmError::NotHex {
        detail: e.to_string(),
    })
}

impl UnverifiedGpuReport {
    /// Frames a binary report: request, response, measurement record, opaque data, signature.
    /// Bytes after the signature are refused ([`SpdmError::TrailingBytes`]).
    pub fn parse(bytes: &[u8]) -> Result<Self, SpdmError> {
        if bytes.len() > MAX_REPORT_LEN {
            return Err(SpdmError::TooLarge {
                len: bytes.len(),
                max: MAX_REPORT_LEN,
            });
        }
        let mut c = Cursor::new(bytes);
        // GET_MEASUREMENTS request.
        let spdm_version = c.u8("request SPDMVersion")?;
        if spdm_version != SPDM_VERSION_11 {
            return Err(SpdmError::UnsupportedVersion {
                version: spdm_version,
            });
        }
        let code = c.u8("request RequestResponseCode")?;
        if code != CODE_GET_MEASUREMENTS {
            return Err(SpdmError::NotGetMeasurements { code });
        }
        let param1 = c.u8("request Param1")?;
        if param1 & PARAM1_SIGNATURE_REQUESTED == 0 {
            return Err(SpdmError::SignatureNotRequested { param1 });
        }
        let _measurement_operation = c.u8("request Param2")?;
        let request_nonce = c.array::<NONCE_LEN>("request Nonce")?;
        let slot_id = c.u8("request SlotIDParam")? & 0x0F;

        // MEASUREMENTS response.
        let response_version = c.u8("response SPDMVersion")?;
        if response_version != spdm_version {
            return Err(SpdmError::VersionMismatch {
                request: spdm_version,
                response: response_version,
            });
        }
        let code = c.u8("response RequestResponseCode")?;
        if code != CODE_MEASUREMENTS {
            return Err(SpdmError::NotMeasurements { code });
        }
        let _param1 = c.u8("response Param1")?;
        let _param2 = c.u8("response Param2")?;
        let block_count = usize::from(c.u8("response NumberOfBlocks")?);
        let record_len = c.u24le("response MeasurementRecordLength")?;
        let record = c.take(record_len, "response MeasurementRecord")?;
        let blocks = parse_record(record, block_count)?;
        let response_nonce = c.array::<NONCE_LEN>("response Nonce")?;
        let opaque_len = usize::from(c.u16le("response OpaqueLength")?);
        let opaque = OpaqueData::parse(c.take(opaque_len, "response OpaqueData")?)?;
        let signed_len = c.pos;
        let signature = c.array::<SIGNATURE_LEN>("response Signature")?;
        if c.remaining() != 0 {
            return Err(SpdmError::TrailingBytes {
                count: c.remaining(),
            });
        }
        Ok(Self {
            raw: bytes.to_vec(),
            signed_len,
            spdm_version,
            request_nonce,
            slot_id,
            response_nonce,
            blocks,
            opaque,
            signature,
        })
    }

    /// Frames the hex text form ([`decode_report_hex`] then [`Self::parse`]).
    pub fn parse_hex(text: &str) -> Result<Self, SpdmError> {
        Self::parse(&decode_report_hex(text)?)
    }

    /// The whole report as received.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The bytes the signature covers: request ‖ response up to the signature.
    pub fn signed_bytes(&self) -> &[u8] {
        self.raw.get(..self.signed_len).unwrap_or_default()
    }

    /// The raw r ‖ s signature.
    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    /// SPDMVersion (0x11).
    pub fn spdm_version(&self) -> u8 {
        self.spdm_version
    }

    /// The nonce the requester put in GET_MEASUREMENTS: the binding value.
    pub fn request_nonce(&self) -> &[u8; NONCE_LEN] {
        &self.request_nonce
    }

    /// The certificate slot the request named.
    pub fn slot_id(&self) -> u8 {
        self.slot_id
    }

    /// The GPU's own nonce in the response.
    pub fn response_nonce(&self) -> &[u8; NONCE_LEN] {
        &self.response_nonce
    }

    /// The measurement blocks, in report order.
    pub fn blocks(&self) -> &[MeasurementBlock] {
        &self.blocks
    }

    /// The block with GPU index `index` (1-based).
    pub fn block(&self, index: u8) -> Option<&MeasurementBlock> {
        self.blocks.iter().find(|b| b.index == index)
    }

    /// NVIDIA opaque data.
    pub fn opaque(&self) -> &OpaqueData {
        &self.opaque
    }
}

/// Parses `count` measurement blocks that must fill `record` exactly.
fn parse_record(record: &[u8], count: usize) -> Result<Vec<MeasurementBlock>, SpdmError> {
    if count == 0 {
        return Err(SpdmError::NoMeasurementBlocks);
    }
    let mut c = Cursor::new(record);
    let mut blocks: Vec<MeasurementBlock> = Vec::with_capacity(count);
    while c.remaining() > 0 {
        let index = c.u8("block Index")?;
        let spec = c.u8("block MeasurementSpecification")?;
        if spec != MEASUREMENT_SPEC_DMTF {
            return Err(SpdmError::NotDmtf { index, spec });
        }
        let size = usize::from(c.u16le("block MeasurementSize")?);
        let body = c.take(size, "block Measurement")?;
        let mut m = Cursor::new(body);
        let value_type = m.u8("DMTFSpecMeasurementValueType")?;
        let declared = usize::from(m.u16le("DMTFSpecMeasurementValueSize")?);
        if declared != m.remaining() {
            return Err(SpdmError::DmtfSizeMismatch {
                index,
                declared,
                available: m.remaining(),
            });
        }
        let value = m.take(declared, "DMTFSpecMeasurementValue")?.to_vec();
        if blocks.iter().any(|b| b.index == index) {
            return Err(SpdmError::DuplicateBlock { index });
        }
        blocks.push(MeasurementBlock {
            index,
            value_type,
            value,
        });
    }
    if blocks.len() != count {
        return Err(SpdmError::BlockCountMismatch {
            declared: count,
            parsed: blocks.len(),
        });
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(index: u8, value: &[u8]) -> Vec<u8> {
        let mut b = vec![index, MEASUREMENT_SPEC_DMTF];
        let size = u16::try_from(value.len() + DMTF_HEADER_LEN).unwrap();
        b.extend_from_slice(&size.to_le_bytes());
        b.push(1);
        b.extend_from_slice(&u16::try_from(value.len()).unwrap().to_le_bytes());
        b.extend_from_slice(value);
        b
    }

    /// A structurally valid report with two blocks and one opaque field (unsigned).
    pub(crate) fn synthetic() -> Vec<u8> {
        let mut r = vec![SPDM_VERSION_11, CODE_GET_MEASUREMENTS, 1, 0xFF];
        r.extend_from_slice(&[7u8; 32]);
        r.push(0);
        let record = [block(1, &[0xAA; 48]), block(2, &[0xBB; 48])].concat();
        r.extend_from_slice(&[SPDM_VERSION_11, CODE_MEASUREMENTS, 0, 0, 2]);
        r.extend_from_slice(&u32::try_from(record.len()).unwrap().to_le_bytes()[..3]);
        r.extend_from_slice(&record);
        r.extend_from_slice(&[9u8; 32]);
        let opaque = [&3u16.to_le_bytes()[..], &4u16.to_le_bytes(), b"1.2\0"].concat();
        r.extend_from_slice(&u16::try_from(opaque.len()).unwrap().to_le_bytes());
        r.extend_from_slice(&opaque);
        r.extend_from_slice(&[0u8; SIGNATURE_LEN]);
        r
    }

    #[test]
    fn synthetic_report_frames() {
        let r = UnverifiedGpuReport::parse(&synthetic()).unwrap();
        assert_eq!(r.request_nonce(), &[7u8; 32]);
        assert_eq!(r.response_nonce(), &[9u8; 32]);
        assert_eq!(r.blocks().len(), 2);
        assert_eq!(r.block(2).unwrap().value, vec![0xBB; 48]);
        assert_eq!(r.opaque().driver_version().unwrap().as_deref(), Some("1.2"));
        assert_eq!(r.signed_bytes().len(), synthetic().len() - SIGNATURE_LEN);
    }

    #[test]
    fn every_truncation_is_a_typed_error() {
        let full = synthetic();
        for len in 0..full.len() {
            assert!(
                UnverifiedGpuReport::parse(&full[..len]).is_err(),
                "len {len}"
            );
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut r = synthetic();
        r.push(0);
        assert_eq!(
            UnverifiedGpuReport::parse(&r),
            Err(SpdmError::TrailingBytes { count: 1 })
        );
    }

    #[test]
    fn nonce_from_binding_prefix() {
        let binding = [5u8; 64];
        assert_eq!(
            GpuNonce::from_binding_prefix(&binding),
            Some(GpuNonce([5; 32]))
        );
        assert_eq!(GpuNonce::from_binding_prefix(&binding[..31]), None);
    }
}
