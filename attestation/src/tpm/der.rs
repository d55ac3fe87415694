//! Just enough DER (ITU-T X.690 §8, §10) to read an RSA `SubjectPublicKeyInfo` (RFC 5280
//! §4.1.2.7, RFC 8017 Appendix A.1.1): some platforms (Azure's paravisor vTPM, Confidential
//! Containers' trustee) ship the TPM attestation key as an X.509 public key rather than as a
//! TPMT_PUBLIC. Definite lengths only, at most four length octets; anything else is refused.

use super::reader::Reader;
use super::TpmError;

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_NULL: u8 = 0x05;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;
/// DER content of OID 1.2.840.113549.1.1.1 (`rsaEncryption`, RFC 8017 Appendix A.1).
const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// Reads one TLV with tag `tag` and returns its content.
fn tlv<'a>(r: &mut Reader<'a>, tag: u8) -> Result<&'a [u8], TpmError> {
    let found = r.u8("der tag")?;
    if found != tag {
        return Err(TpmError::BadSpki("unexpected der tag"));
    }
    let first = r.u8("der length")?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 {
            return Err(TpmError::BadSpki("unsupported der length form"));
        }
        let mut len = 0usize;
        for &b in r.take(octets, "der length")? {
            len = (len << 8) | usize::from(b);
        }
        len
    };
    r.take(len, "der value")
}

/// A non-negative DER INTEGER as big-endian magnitude without leading zeros.
fn unsigned_integer<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], TpmError> {
    let content = tlv(r, TAG_INTEGER)?;
    match content.first() {
        None => Err(TpmError::BadSpki("empty der integer")),
        Some(b) if b & 0x80 != 0 => Err(TpmError::BadSpki("negative der integer")),
        Some(_) => Ok(strip_leading_zeros(content)),
    }
}

/// `bytes` without its leading zero octets.
pub(crate) fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.get(zeros..).unwrap_or_default()
}

/// Parses a DER `SubjectPublicKeyInfo` holding an `rsaEncryption` key; returns (n, e) as
/// big-endian magnitudes.
pub(crate) fn rsa_spki(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), TpmError> {
    let mut outer = Reader::new(der);
    let spki = tlv(&mut outer, TAG_SEQUENCE)?;
    outer.finish("subject public key info")?;

    let mut spki = Reader::new(spki);
    let mut alg = Reader::new(tlv(&mut spki, TAG_SEQUENCE)?);
    if tlv(&mut alg, TAG_OID)? != OID_RSA_ENCRYPTION {
        return Err(TpmError::BadSpki("algorithm is not rsaEncryption"));
    }
    // The parameters are NULL (RFC 8017 Appendix A.1); some encoders omit them.
    if !alg.is_empty() && !tlv(&mut alg, TAG_NULL)?.is_empty() {
        return Err(TpmError::BadSpki("rsaEncryption parameters are not NULL"));
    }
    alg.finish("algorithm identifier")?;

    let bits = tlv(&mut spki, TAG_BIT_STRING)?;
    spki.finish("subject public key info")?;
    let key = match bits.split_first() {
        Some((0, key)) => key,
        _ => return Err(TpmError::BadSpki("public key bit string has unused bits")),
    };

    let mut key_outer = Reader::new(key);
    let mut rsa = Reader::new(tlv(&mut key_outer, TAG_SEQUENCE)?);
    key_outer.finish("rsa public key")?;
    let n = unsigned_integer(&mut rsa)?.to_vec();
    let e = unsigned_integer(&mut rsa)?.to_vec();
    rsa.finish("rsa public key")?;
    Ok((n, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_rsa_and_garbage() {
        assert!(rsa_spki(&[]).is_err());
        assert!(rsa_spki(&[0x30, 0x80]).is_err());
        // An EC SPKI header (id-ecPublicKey).
        let ec = [
            0x30, 0x13, 0x30, 0x09, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x03,
            0x06, 0x00, 0x04, 0x01, 0x02, 0x03, 0x04,
        ];
        assert!(matches!(rsa_spki(&ec), Err(TpmError::BadSpki(_))));
    }

    #[test]
    fn strips_zeros() {
        assert_eq!(strip_leading_zeros(&[0, 0, 1, 0]), &[1, 0]);
        assert!(strip_leading_zeros(&[0, 0]).is_empty());
    }
}
