//! NVIDIA opaque data: `[type u16 LE | size u16 LE | value]*` after the response nonce.
//!
//! Fields are framed at parse time (every TLV must fit, no id twice); typed accessors interpret
//! the fields this verifier reads and report a malformed one as an error, never as absent.

use super::defs::opaque_id;
use crate::error::SpdmError;

/// One opaque TLV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpaqueField {
    /// Field id (see [`opaque_id`]).
    pub id: u16,
    /// Field bytes.
    pub value: Vec<u8>,
}

/// The framed opaque data of a MEASUREMENTS response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpaqueData {
    fields: Vec<OpaqueField>,
}

/// Name of a field id for error messages.
fn name(id: u16) -> &'static str {
    match id {
        opaque_id::DRIVER_VERSION => "driver version",
        opaque_id::GPU_INFO => "gpu info",
        opaque_id::VBIOS_VERSION => "vbios version",
        opaque_id::NVDEC0_STATUS => "nvdec0 status",
        opaque_id::MSRSCNT => "measurement counts",
        opaque_id::BOARD_ID => "board id",
        opaque_id::CHIP_SKU => "chip sku",
        opaque_id::CHIP_SKU_MOD => "chip sku mod",
        opaque_id::PROJECT => "project",
        opaque_id::PROJECT_SKU => "project sku",
        opaque_id::PROJECT_SKU_MOD => "project sku mod",
        opaque_id::FWID => "fwid",
        opaque_id::PROTECTED_PCIE_STATUS => "protected pcie status",
        opaque_id::OPAQUE_DATA_VERSION => "opaque data version",
        opaque_id::CHIP_INFO => "chip info",
        opaque_id::FEATURE_FLAG => "feature flag",
        _ => "vendor field",
    }
}

/// Bytes before the first NUL, as printable ASCII.
fn text(id: u16, value: &[u8]) -> Result<String, SpdmError> {
    let end = value.iter().position(|b| *b == 0).unwrap_or(value.len());
    let head = value.get(..end).unwrap_or_default();
    if head.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        Ok(String::from_utf8_lossy(head).trim().to_owned())
    } else {
        Err(SpdmError::OpaqueFieldMalformed { name: name(id) })
    }
}

impl OpaqueData {
    /// Frames the opaque data.
    pub fn parse(bytes: &[u8]) -> Result<Self, SpdmError> {
        let mut fields: Vec<OpaqueField> = Vec::new();
        let mut pos = 0usize;
        while pos < bytes.len() {
            let header = pos
                .checked_add(4)
                .and_then(|end| bytes.get(pos..end))
                .ok_or(SpdmError::OpaqueOverrun { offset: pos })?;
            let (id, size) = match header {
                [a, b, c, d] => (
                    u16::from_le_bytes([*a, *b]),
                    usize::from(u16::from_le_bytes([*c, *d])),
                ),
                _ => return Err(SpdmError::OpaqueOverrun { offset: pos }),
            };
            let start = pos.saturating_add(4);
            let value = start
                .checked_add(size)
                .and_then(|end| bytes.get(start..end))
                .ok_or(SpdmError::OpaqueOverrun { offset: pos })?;
            if fields.iter().any(|f| f.id == id) {
                return Err(SpdmError::DuplicateOpaqueField { name: name(id) });
            }
            fields.push(OpaqueField {
                id,
                value: value.to_vec(),
            });
            pos = start.saturating_add(size);
        }
        Ok(Self { fields })
    }

    /// Every field, in report order.
    pub fn fields(&self) -> &[OpaqueField] {
        &self.fields
    }

    /// The raw bytes of field `id`.
    pub fn get(&self, id: u16) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|f| f.id == id)
            .map(|f| f.value.as_slice())
    }

    fn text_field(&self, id: u16) -> Result<Option<String>, SpdmError> {
        self.get(id).map(|v| text(id, v)).transpose()
    }

    /// Driver version (e.g. `550.90.07`).
    pub fn driver_version(&self) -> Result<Option<String>, SpdmError> {
        self.text_field(opaque_id::DRIVER_VERSION)
    }

    /// VBIOS version in NVIDIA's dotted form (e.g. `96.00.9f.00.01`): for a GPU, 8 bytes read
    /// as little endian `b0..b7` and written `b3.b2.b1.b0.b4` (nvtrust
    /// `format_vbios_version`); NVSwitch reports carry the text form directly.
    pub fn vbios_version(&self) -> Result<Option<String>, SpdmError> {
        match self.get(opaque_id::VBIOS_VERSION) {
            None => Ok(None),
            Some([b0, b1, b2, b3, b4, _, _, _]) => Ok(Some(format!(
                "{b3:02x}.{b2:02x}.{b1:02x}.{b0:02x}.{b4:02x}"
            ))),
            Some(v) => text(opaque_id::VBIOS_VERSION, v).map(Some),
        }
    }

    /// Firmware id (48 bytes, SHA-384) the device certificate must repeat.
    pub fn fwid(&self) -> Result<Option<&[u8]>, SpdmError> {
        match self.get(opaque_id::FWID) {
            None => Ok(None),
            Some(v) if v.len() == 48 => Ok(Some(v)),
            Some(_) => Err(SpdmError::OpaqueFieldMalformed {
                name: name(opaque_id::FWID),
            }),
        }
    }

    /// NVDEC0 status byte (0xAA enabled, 0x55 disabled).
    pub fn nvdec0_status(&self) -> Option<u8> {
        self.get(opaque_id::NVDEC0_STATUS)
            .and_then(|v| v.first().copied())
    }

    /// Project (e.g. `1010`).
    pub fn project(&self) -> Result<Option<String>, SpdmError> {
        self.text_field(opaque_id::PROJECT)
    }

    /// Project SKU (e.g. `0200`).
    pub fn project_sku(&self) -> Result<Option<String>, SpdmError> {
        self.text_field(opaque_id::PROJECT_SKU)
    }

    /// Chip SKU (e.g. `882`).
    pub fn chip_sku(&self) -> Result<Option<String>, SpdmError> {
        self.text_field(opaque_id::CHIP_SKU)
    }

    /// Chip info (Blackwell, e.g. `GB100`).
    pub fn chip_info(&self) -> Result<Option<String>, SpdmError> {
        self.text_field(opaque_id::CHIP_INFO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(id: u16, v: &[u8]) -> Vec<u8> {
        [
            &id.to_le_bytes()[..],
            &u16::try_from(v.len()).unwrap().to_le_bytes(),
            v,
        ]
        .concat()
    }

    #[test]
    fn vbios_bytes_format_like_nvtrust() {
        let o = OpaqueData::parse(&tlv(6, &[0x00, 0x9f, 0x00, 0x96, 0x01, 0, 0, 0])).unwrap();
        assert_eq!(
            o.vbios_version().unwrap().as_deref(),
            Some("96.00.9f.00.01")
        );
    }

    #[test]
    fn duplicate_and_overrun_are_refused() {
        let d = [tlv(3, b"1\0"), tlv(3, b"2\0")].concat();
        assert!(matches!(
            OpaqueData::parse(&d),
            Err(SpdmError::DuplicateOpaqueField { .. })
        ));
        let mut o = tlv(3, b"550\0");
        o.pop();
        assert!(matches!(
            OpaqueData::parse(&o),
            Err(SpdmError::OpaqueOverrun { offset: 0 })
        ));
        assert!(OpaqueData::parse(&[1, 0, 0]).is_err());
    }

    #[test]
    fn malformed_fwid_and_text_are_errors() {
        let o = OpaqueData::parse(&[tlv(20, &[1; 47]), tlv(3, &[0xff, 0])].concat()).unwrap();
        assert!(o.fwid().is_err());
        assert!(o.driver_version().is_err());
    }
}
