//! Minimal DER TLV walking for the two places where the typed `x509-cert` decoder is not
//! enough: the exact to-be-signed bytes of a certificate (signatures are checked over the bytes
//! received, not a re-encoding) and the TCG DICE FWID extension, whose Hopper form is not the
//! standard `TcbInfo` (ITU-T X.690 §8.1 for the TLV layout).

/// One TLV: its tag, its whole encoding and its contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    pub whole: &'a [u8],
    pub contents: &'a [u8],
}

/// Reads the TLV at the start of `input`; returns it and the bytes after it. Only single-byte
/// tags and definite lengths up to 4 length bytes (DER forbids the rest).
pub(crate) fn read(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let tag = *input.first()?;
    if tag & 0x1F == 0x1F {
        return None;
    }
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2usize)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = input.get(2..2usize.checked_add(n)?)?;
        let len = bytes.iter().try_fold(0usize, |acc, b| {
            acc.checked_mul(256)?.checked_add(usize::from(*b))
        })?;
        (len, 2usize.checked_add(n)?)
    };
    let end = header.checked_add(len)?;
    let whole = input.get(..end)?;
    let contents = input.get(header..end)?;
    let rest = input.get(end..)?;
    Some((
        Tlv {
            tag,
            whole,
            contents,
        },
        rest,
    ))
}

/// The TLVs of a constructed value's contents, stopping at the first malformed one.
pub(crate) fn children(contents: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    let mut rest = contents;
    while !rest.is_empty() {
        let (tlv, next) = read(rest)?;
        out.push(tlv);
        rest = next;
    }
    Some(out)
}

/// The raw TBSCertificate of a DER certificate (RFC 5280 §4.1: SEQUENCE { tbs, alg, sig }).
pub(crate) fn tbs_certificate(cert: &[u8]) -> Option<&[u8]> {
    let (outer, rest) = read(cert)?;
    if outer.tag != 0x30 || !rest.is_empty() {
        return None;
    }
    let (tbs, _) = read(outer.contents)?;
    (tbs.tag == 0x30).then_some(tbs.whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_lengths() {
        let (t, rest) = read(&[0x04, 0x02, 1, 2, 9]).unwrap();
        assert_eq!((t.tag, t.contents, rest), (0x04, &[1u8, 2][..], &[9u8][..]));
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend_from_slice(&[7; 0x80]);
        assert_eq!(read(&long).unwrap().0.contents.len(), 0x80);
        assert!(read(&[0x04, 0x85, 0, 0, 0, 0, 1]).is_none());
        assert!(read(&[0x04, 0x03, 1]).is_none());
        assert!(read(&[0x1F, 0x01, 0]).is_none());
    }
}
