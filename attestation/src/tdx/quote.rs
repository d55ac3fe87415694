//! Framing of Intel DCAP TDX quotes, versions 4 and 5, into typed fields.
//!
//! Layout per Intel's "TDX DCAP Quote Generation Library and Quote Verification Library"
//! (rev. 0.9, appendix A) — every offset below is little-endian:
//!
//! | part | v4 | v5 |
//! |---|---|---|
//! | header | 48 B | 48 B |
//! | body | TD report 1.0, 584 B | `u16` body type (2 = TDX 1.0, 3 = TDX 1.5) + `u32` size + body (584 or 648 B) |
//! | signature data | `u32` length + data | same |
//!
//! Signature data: ECDSA-P256 quote signature (64) ‖ attestation key (64) ‖ certification
//! data `u16` type 6 (QE report) + `u32` size: QE report (384) ‖ QE report signature (64) ‖
//! `u16` QE auth data length + data ‖ certification data `u16` type 5 (PCK chain, PEM) + `u32`
//! size + data.
//!
//! Quotes arrive padded (a 4936-byte quote in a 5006-byte buffer, an 8000-byte configfs
//! buffer): parsing follows the declared lengths and reports the trailing bytes instead of
//! rejecting them; [`UnverifiedTdxQuote::quote_bytes`] is the exact quote.

use super::error::TdxError;

/// Quote header size.
pub const HEADER_BYTES: usize = 48;
/// TD report body size for TDX 1.0.
pub const TD10_BODY_BYTES: usize = 584;
/// TD report body size for TDX 1.5 (adds TEE_TCB_SVN2 and MRSERVICETD).
pub const TD15_BODY_BYTES: usize = 648;
/// SGX enclave report (QE report) size.
pub const QE_REPORT_BYTES: usize = 384;
/// TEE type of TDX in the quote header.
pub const TEE_TYPE_TDX: u32 = 0x81;
/// Attestation key type 2: ECDSA-256 with P-256.
pub const ATT_KEY_ECDSA_P256: u16 = 2;
/// Intel's QE vendor id.
pub const INTEL_QE_VENDOR_ID: [u8; 16] = [
    0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07,
];
/// Largest quote accepted (real quotes with a PCK chain are about 5 KiB).
pub const MAX_QUOTE_BYTES: usize = 64 * 1024;

/// Quote header.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Header {
    /// Quote version (4 or 5).
    pub version: u16,
    /// Attestation key type (2 = ECDSA P-256).
    pub att_key_type: u16,
    /// TEE type (0x81 = TDX).
    pub tee_type: u32,
    /// QE security version.
    pub qe_svn: u16,
    /// PCE security version.
    pub pce_svn: u16,
    /// QE vendor id.
    #[serde(with = "hex_bytes")]
    pub qe_vendor_id: [u8; 16],
    /// User data (first 16 bytes: the platform's QE id).
    #[serde(with = "hex_bytes")]
    pub user_data: [u8; 20],
}

/// The TD report body every version carries (TDX 1.0 fields, plus the 1.5 ones when present).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TdReport {
    /// Which body type carried it: 2 = TDX 1.0, 3 = TDX 1.5 (v4 quotes are always 2).
    pub body_type: u16,
    /// TEE_TCB_SVN.
    #[serde(with = "hex_bytes")]
    pub tee_tcb_svn: [u8; 16],
    /// MRSEAM.
    #[serde(with = "hex_bytes")]
    pub mr_seam: [u8; 48],
    /// MRSIGNERSEAM.
    #[serde(with = "hex_bytes")]
    pub mr_signer_seam: [u8; 48],
    /// SEAMATTRIBUTES.
    #[serde(with = "hex_bytes")]
    pub seam_attributes: [u8; 8],
    /// TDATTRIBUTES (bit 0 = DEBUG).
    #[serde(with = "hex_bytes")]
    pub td_attributes: [u8; 8],
    /// XFAM.
    #[serde(with = "hex_bytes")]
    pub xfam: [u8; 8],
    /// MRTD: the initial TD contents (firmware) measurement.
    #[serde(with = "hex_bytes")]
    pub mr_td: [u8; 48],
    /// MRCONFIGID.
    #[serde(with = "hex_bytes")]
    pub mr_config_id: [u8; 48],
    /// MROWNER.
    #[serde(with = "hex_bytes")]
    pub mr_owner: [u8; 48],
    /// MROWNERCONFIG.
    #[serde(with = "hex_bytes")]
    pub mr_owner_config: [u8; 48],
    /// RTMR0..3.
    #[serde(with = "hex_rtmrs")]
    pub rtmr: [[u8; 48]; 4],
    /// REPORTDATA: the binding value.
    #[serde(with = "hex_bytes")]
    pub report_data: [u8; 64],
    /// TEE_TCB_SVN2 (TDX 1.5 only).
    #[serde(with = "hex_opt")]
    pub tee_tcb_svn2: Option<[u8; 16]>,
    /// MRSERVICETD (TDX 1.5 only).
    #[serde(with = "hex_opt")]
    pub mr_service_td: Option<[u8; 48]>,
}

impl TdReport {
    /// TDATTRIBUTES.DEBUG (bit 0 of the first byte).
    pub fn debug(&self) -> bool {
        self.td_attributes[0] & 0x01 != 0
    }
}

/// A quote whose framing is valid. Nothing in it is trusted until verified.
#[derive(Debug, Clone)]
pub struct UnverifiedTdxQuote {
    bytes: Vec<u8>,
    /// Header fields.
    pub header: Header,
    /// TD report body.
    pub report: TdReport,
    /// ECDSA P-256 signature over header ‖ body (r ‖ s).
    pub signature: [u8; 64],
    /// Attestation key (x ‖ y) the QE certified.
    pub attestation_key: [u8; 64],
    /// The QE's SGX report.
    pub qe_report: [u8; QE_REPORT_BYTES],
    /// Signature of the QE report by the PCK leaf key.
    pub qe_report_signature: [u8; 64],
    /// QE authentication data (hashed with the attestation key into the QE report).
    pub qe_auth_data: Vec<u8>,
    /// PCK certificate chain as PEM text (leaf, platform/processor CA, root).
    pub pck_chain_pem: Vec<u8>,
    /// Bytes after the declared end of the quote (padding of the buffer it arrived in).
    pub trailing_bytes: usize,
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], TdxError> {
        let end = self.pos.checked_add(n).ok_or(TdxError::Truncated {
            what,
            offset: self.pos,
            need: n,
            have: 0,
        })?;
        let slice = self.bytes.get(self.pos..end).ok_or(TdxError::Truncated {
            what,
            offset: self.pos,
            need: n,
            have: self.bytes.len().saturating_sub(self.pos),
        })?;
        self.pos = end;
        Ok(slice)
    }
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], TdxError> {
        let s = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, TdxError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, TdxError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
}

fn len(v: u32) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

impl UnverifiedTdxQuote {
    /// Frames `bytes` (a binary quote, possibly followed by padding).
    pub fn parse(bytes: &[u8]) -> Result<Self, TdxError> {
        if bytes.len() > MAX_QUOTE_BYTES {
            return Err(TdxError::TooLarge { len: bytes.len() });
        }
        let mut r = Reader { bytes, pos: 0 };
        let header = Header {
            version: r.u16("header.version")?,
            att_key_type: r.u16("header.att_key_type")?,
            tee_type: r.u32("header.tee_type")?,
            qe_svn: r.u16("header.qe_svn")?,
            pce_svn: r.u16("header.pce_svn")?,
            qe_vendor_id: r.array("header.qe_vendor_id")?,
            user_data: r.array("header.user_data")?,
        };
        if header.version != 4 && header.version != 5 {
            return Err(TdxError::UnsupportedVersion {
                version: header.version,
            });
        }
        if header.tee_type != TEE_TYPE_TDX {
            return Err(TdxError::NotTdx {
                tee_type: header.tee_type,
            });
        }
        if header.att_key_type != ATT_KEY_ECDSA_P256 {
            return Err(TdxError::UnsupportedKeyType {
                key_type: header.att_key_type,
            });
        }
        if header.qe_vendor_id != INTEL_QE_VENDOR_ID {
            return Err(TdxError::UnknownQeVendor);
        }
        let body_type = if header.version == 5 {
            let body_type = r.u16("body.type")?;
            let size = len(r.u32("body.size")?);
            let expected = match body_type {
                2 => TD10_BODY_BYTES,
                3 => TD15_BODY_BYTES,
                other => return Err(TdxError::UnsupportedBodyType { body_type: other }),
            };
            if size != expected {
                return Err(TdxError::SizeMismatch {
                    what: "body.size",
                    declared: size,
                    expected,
                });
            }
            body_type
        } else {
            2
        };
        let mut report = TdReport {
            body_type,
            tee_tcb_svn: r.array("body.tee_tcb_svn")?,
            mr_seam: r.array("body.mr_seam")?,
            mr_signer_seam: r.array("body.mr_signer_seam")?,
            seam_attributes: r.array("body.seam_attributes")?,
            td_attributes: r.array("body.td_attributes")?,
            xfam: r.array("body.xfam")?,
            mr_td: r.array("body.mr_td")?,
            mr_config_id: r.array("body.mr_config_id")?,
            mr_owner: r.array("body.mr_owner")?,
            mr_owner_config: r.array("body.mr_owner_config")?,
            rtmr: [
                r.array("body.rtmr0")?,
                r.array("body.rtmr1")?,
                r.array("body.rtmr2")?,
                r.array("body.rtmr3")?,
            ],
            report_data: r.array("body.report_data")?,
            tee_tcb_svn2: None,
            mr_service_td: None,
        };
        if body_type == 3 {
            report.tee_tcb_svn2 = Some(r.array("body.tee_tcb_svn2")?);
            report.mr_service_td = Some(r.array("body.mr_service_td")?);
        }
        let sig_len = len(r.u32("signature_data.length")?);
        let sig_start = r.pos;
        let available = bytes.len().saturating_sub(sig_start);
        if sig_len > available {
            return Err(TdxError::SizeMismatch {
                what: "signature_data.length",
                declared: sig_len,
                expected: available,
            });
        }
        let signature = r.array("signature_data.signature")?;
        let attestation_key = r.array("signature_data.attestation_key")?;
        let cert_type = r.u16("certification_data.type")?;
        if cert_type != 6 {
            return Err(TdxError::UnsupportedCertificationData {
                cert_type,
                expected: 6,
            });
        }
        let cert_size = len(r.u32("certification_data.size")?);
        let cert_start = r.pos;
        let qe_report = r.array("qe_report")?;
        let qe_report_signature = r.array("qe_report.signature")?;
        let auth_len = usize::from(r.u16("qe_auth_data.length")?);
        let qe_auth_data = r.take(auth_len, "qe_auth_data")?.to_vec();
        let pck_type = r.u16("pck_certification_data.type")?;
        if pck_type != 5 {
            return Err(TdxError::UnsupportedCertificationData {
                cert_type: pck_type,
                expected: 5,
            });
        }
        let pck_size = len(r.u32("pck_certification_data.size")?);
        let pck_chain_pem = r.take(pck_size, "pck_certification_data")?.to_vec();
        let cert_consumed = r.pos.saturating_sub(cert_start);
        if cert_consumed != cert_size {
            return Err(TdxError::SizeMismatch {
                what: "certification_data.size",
                declared: cert_size,
                expected: cert_consumed,
            });
        }
        let sig_consumed = r.pos.saturating_sub(sig_start);
        if sig_consumed != sig_len {
            return Err(TdxError::SizeMismatch {
                what: "signature_data.length",
                declared: sig_len,
                expected: sig_consumed,
            });
        }
        let end = r.pos;
        let quote = bytes.get(..end).unwrap_or(bytes).to_vec();
        Ok(Self {
            bytes: quote,
            header,
            report,
            signature,
            attestation_key,
            qe_report,
            qe_report_signature,
            qe_auth_data,
            pck_chain_pem,
            trailing_bytes: bytes.len().saturating_sub(end),
        })
    }

    /// The quote without trailing padding: what the signature check reads.
    pub fn quote_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// REPORTDATA of the QE report (offset 320, 64 bytes): its first 32 bytes must be
    /// SHA-256(attestation key ‖ QE auth data).
    pub fn qe_report_data(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        if let Some(s) = self.qe_report.get(320..384) {
            out.copy_from_slice(s);
        }
        out
    }
}

/// Decodes a quote given as binary or as hex text (with or without `0x`, whitespace ignored).
pub fn decode_quote_file(bytes: &[u8]) -> Result<Vec<u8>, TdxError> {
    let looks_hex = !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_hexdigit() || b.is_ascii_whitespace() || *b == b'x');
    if !looks_hex {
        return Ok(bytes.to_vec());
    }
    let text: String = bytes
        .iter()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| char::from(*b))
        .collect();
    let text = text.strip_prefix("0x").unwrap_or(&text);
    hex::decode(text).map_err(|e| TdxError::HexText(e.to_string()))
}

pub(crate) mod hex_bytes {
    pub fn serialize<S: serde::Serializer, const N: usize>(
        v: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
}

mod hex_opt {
    pub fn serialize<S: serde::Serializer, const N: usize>(
        v: &Option<[u8; N]>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&hex::encode(v)),
            None => s.serialize_none(),
        }
    }
}

mod hex_rtmrs {
    use serde::ser::SerializeSeq;
    pub fn serialize<S: serde::Serializer>(v: &[[u8; 48]; 4], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(4))?;
        for r in v {
            seq.serialize_element(&hex::encode(r))?;
        }
        seq.end()
    }
}
