//! The firmware id a GPU's attestation certificate carries (TCG DICE Attestation Architecture,
//! `tcg-dice-TcbInfo` extension 2.23.133.5.4.1; Blackwell uses 2.23.133.5.4.1.1).
//!
//! Blackwell leaves carry a standard `DiceTcbInfo` whose `fwids [6]` list holds
//! `FWID ::= SEQUENCE { hashAlg OID, digest OCTET STRING }`. Hopper leaves carry NVIDIA's earlier
//! layout, a SEQUENCE whose last element is one such FWID (upstream verifiers take the last 48
//! bytes). Both forms are read structurally here; the first SHA-384 FWID wins.

use crate::der;
use crate::error::ChainError;
use x509_cert::Certificate;

const OID_DICE_TCB_INFO: &str = "2.23.133.5.4.1";
const OID_DICE_TCB_INFO_BLACKWELL: &str = "2.23.133.5.4.1.1";
/// DER contents of OID 2.16.840.1.101.3.4.2.2 (id-sha384).
const SHA384_OID_CONTENTS: [u8; 9] = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const FWID_LEN: usize = 48;

/// `SEQUENCE { id-sha384, OCTET STRING (48) }` → the digest.
fn sha384_fwid(tlv: &der::Tlv<'_>) -> Option<Vec<u8>> {
    if tlv.tag != 0x30 {
        return None;
    }
    match der::children(tlv.contents)?.as_slice() {
        [oid, digest]
            if oid.tag == 0x06
                && oid.contents == SHA384_OID_CONTENTS
                && digest.tag == 0x04
                && digest.contents.len() == FWID_LEN =>
        {
            Some(digest.contents.to_vec())
        }
        _ => None,
    }
}

fn parse(value: &[u8]) -> Option<Vec<u8>> {
    let (outer, rest) = der::read(value)?;
    if outer.tag != 0x30 || !rest.is_empty() {
        return None;
    }
    for element in der::children(outer.contents)? {
        // DiceTcbInfo fwids: [6] IMPLICIT SEQUENCE OF FWID.
        if element.tag == 0xA6 {
            if let Some(found) = der::children(element.contents)?
                .iter()
                .find_map(sha384_fwid)
            {
                return Some(found);
            }
        }
        if let Some(found) = sha384_fwid(&element) {
            return Some(found);
        }
    }
    None
}

/// The leaf's SHA-384 FWID; the extension must be present.
pub(super) fn leaf_fwid(leaf: &Certificate) -> Result<Vec<u8>, ChainError> {
    let ext = leaf
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| {
            let oid = e.extn_id.to_string();
            oid == OID_DICE_TCB_INFO || oid == OID_DICE_TCB_INFO_BLACKWELL
        })
        .ok_or(ChainError::FwidMissing)?;
    parse(ext.extn_value.as_bytes()).ok_or(ChainError::ExtensionMalformed {
        index: 0,
        name: "tcg dice fwid",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwid_seq(byte: u8) -> Vec<u8> {
        let mut v = vec![0x30, 0x3D, 0x06, 0x09];
        v.extend_from_slice(&SHA384_OID_CONTENTS);
        v.extend_from_slice(&[0x04, 0x30]);
        v.extend_from_slice(&[byte; 48]);
        v
    }

    #[test]
    fn hopper_and_dice_forms() {
        let hopper = [vec![0x30, 0x42, 0x02, 0x01, 0x01], fwid_seq(0xAB)].concat();
        assert_eq!(parse(&hopper), Some(vec![0xAB; 48]));
        let list = [fwid_seq(0x11), fwid_seq(0x22)].concat();
        let dice = [
            vec![0x30, 0x81, 0x83, 0x80, 0x01, b'N', 0xA6, 0x7E],
            list.clone(),
        ]
        .concat();
        assert_eq!(parse(&dice), Some(vec![0x11; 48]));
        assert_eq!(parse(&[0x30, 0x00]), None);
        assert_eq!(parse(&[0x30, 0x05]), None);
    }
}
