//! Parsers for the three TPM 2.0 structures a quote travels in: the attestation key's public
//! area (TPMT_PUBLIC), the quote itself (TPMS_ATTEST) and its signature (TPMT_SIGNATURE).
//! Layouts follow TCG "TPM 2.0 Library, Part 2: Structures" (rev. 1.59); section numbers are
//! cited at each parser. Parsing checks framing only: every length against its buffer and the
//! spec's maximum, no trailing bytes. Nothing here says the quote is genuine; that is
//! [`super::verify`]'s job. Hand-written so that a verifier never links libtss2.

use super::defs::*;
use super::der::{rsa_spki, strip_leading_zeros};
use super::reader::Reader;
use super::TpmError;

/// A hash algorithm this verifier accepts in a signature scheme (SHA-1 is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    /// `TPM_ALG_SHA256`.
    Sha256,
    /// `TPM_ALG_SHA384`.
    Sha384,
    /// `TPM_ALG_SHA512`.
    Sha512,
}

impl HashAlg {
    fn from_tpm(alg: u16, what: &'static str) -> Result<Self, TpmError> {
        match alg {
            TPM_ALG_SHA256 => Ok(Self::Sha256),
            TPM_ALG_SHA384 => Ok(Self::Sha384),
            TPM_ALG_SHA512 => Ok(Self::Sha512),
            other => Err(TpmError::UnsupportedAlgorithm(what, other)),
        }
    }

    /// The `TPM_ALG_ID`.
    pub fn tpm_alg(self) -> u16 {
        match self {
            Self::Sha256 => TPM_ALG_SHA256,
            Self::Sha384 => TPM_ALG_SHA384,
            Self::Sha512 => TPM_ALG_SHA512,
        }
    }

    /// The digest of `data`.
    pub(crate) fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            Self::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Self::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Self::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

/// One bank's selection from a TPML_PCR_SELECTION (Part 2 §10.9.7, §10.6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PcrSelection {
    /// `TPMS_PCR_SELECTION.hash`, the bank.
    pub(crate) hash: u16,
    /// Selected PCR indices, ascending (bit `j` of octet `i` selects PCR `8i + j`).
    pub(crate) pcrs: Vec<u8>,
}

/// A TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE, framing checked, signature not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnverifiedQuote {
    pub(crate) extra_data: Vec<u8>,
    pub(crate) clock_ms: u64,
    pub(crate) reset_count: u32,
    pub(crate) restart_count: u32,
    pub(crate) firmware_version: u64,
    pub(crate) pcr_select: Vec<PcrSelection>,
    pub(crate) pcr_digest: Vec<u8>,
}

impl UnverifiedQuote {
    /// `extraData`: the qualifying data the quote carries (not yet verified).
    pub fn extra_data(&self) -> &[u8] {
        &self.extra_data
    }

    /// Parses a marshalled TPMS_ATTEST (Part 2 §10.12.12) carrying a TPMS_QUOTE_INFO
    /// (§10.12.4). Refuses any other magic or attestation type.
    pub fn parse(bytes: &[u8]) -> Result<Self, TpmError> {
        let mut r = Reader::new(bytes);
        let magic = r.u32("TPMS_ATTEST.magic")?;
        if magic != TPM_GENERATED_VALUE {
            return Err(TpmError::BadMagic(magic));
        }
        let st = r.u16("TPMS_ATTEST.type")?;
        if st != TPM_ST_ATTEST_QUOTE {
            return Err(TpmError::WrongType(st));
        }
        r.tpm2b(MAX_NAME_BYTES, "TPMS_ATTEST.qualifiedSigner")?;
        let extra_data = r.tpm2b(MAX_DATA_BYTES, "TPMS_ATTEST.extraData")?.to_vec();
        // TPMS_CLOCK_INFO (§10.11.1).
        let clock_ms = r.u64("TPMS_CLOCK_INFO.clock")?;
        let reset_count = r.u32("TPMS_CLOCK_INFO.resetCount")?;
        let restart_count = r.u32("TPMS_CLOCK_INFO.restartCount")?;
        r.u8("TPMS_CLOCK_INFO.safe")?;
        let firmware_version = r.u64("TPMS_ATTEST.firmwareVersion")?;
        let pcr_select = parse_pcr_selection_list(&mut r)?;
        let pcr_digest = r
            .tpm2b(MAX_DIGEST_BYTES, "TPMS_QUOTE_INFO.pcrDigest")?
            .to_vec();
        r.finish("TPMS_ATTEST")?;
        Ok(Self {
            extra_data,
            clock_ms,
            reset_count,
            restart_count,
            firmware_version,
            pcr_select,
            pcr_digest,
        })
    }
}

/// TPML_PCR_SELECTION (§10.9.7): a count, then that many TPMS_PCR_SELECTION (§10.6.2).
fn parse_pcr_selection_list(r: &mut Reader<'_>) -> Result<Vec<PcrSelection>, TpmError> {
    let what = "TPML_PCR_SELECTION.count";
    let count = r.u32(what)?;
    if count > MAX_PCR_BANKS {
        return Err(TpmError::SizeLimit {
            what,
            size: usize::try_from(count).unwrap_or(usize::MAX),
            max: usize::try_from(MAX_PCR_BANKS).unwrap_or(usize::MAX),
        });
    }
    let mut banks = Vec::new();
    for _ in 0..count {
        let hash = r.u16("TPMS_PCR_SELECTION.hash")?;
        let what = "TPMS_PCR_SELECTION.sizeofSelect";
        let size = usize::from(r.u8(what)?);
        if size > MAX_PCR_SELECT_BYTES {
            return Err(TpmError::SizeLimit {
                what,
                size,
                max: MAX_PCR_SELECT_BYTES,
            });
        }
        let bitmap = r.take(size, "TPMS_PCR_SELECTION.pcrSelect")?;
        let mut pcrs = Vec::new();
        for (octet, byte) in (0u8..).zip(bitmap) {
            for bit in 0u8..8 {
                if byte & (1 << bit) != 0 {
                    pcrs.push(octet * 8 + bit);
                }
            }
        }
        banks.push(PcrSelection { hash, pcrs });
    }
    Ok(banks)
}

/// A TPMT_SIGNATURE (§11.3.4) of a scheme this verifier supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TpmSignature {
    /// TPMS_SIGNATURE_RSA (§11.3.1) under TPM_ALG_RSASSA or TPM_ALG_RSAPSS.
    Rsa {
        /// `TPM_ALG_RSASSA` or `TPM_ALG_RSAPSS`.
        scheme: u16,
        /// The hash the scheme uses.
        hash: HashAlg,
        /// The signature, as long as the modulus.
        sig: Vec<u8>,
    },
    /// TPMS_SIGNATURE_ECC (§11.3.2) under TPM_ALG_ECDSA.
    Ecdsa {
        /// The hash the scheme uses.
        hash: HashAlg,
        /// `signatureR`, big-endian, possibly without leading zeros.
        r: Vec<u8>,
        /// `signatureS`, big-endian, possibly without leading zeros.
        s: Vec<u8>,
    },
}

impl TpmSignature {
    /// Parses a marshalled TPMT_SIGNATURE.
    pub fn parse(bytes: &[u8]) -> Result<Self, TpmError> {
        let mut r = Reader::new(bytes);
        let sig_alg = r.u16("TPMT_SIGNATURE.sigAlg")?;
        let sig = match sig_alg {
            TPM_ALG_RSASSA | TPM_ALG_RSAPSS => {
                let hash = r.u16("TPMS_SIGNATURE_RSA.hash")?;
                let sig = r.tpm2b(MAX_RSA_KEY_BYTES, "TPMS_SIGNATURE_RSA.sig")?;
                Self::Rsa {
                    scheme: sig_alg,
                    hash: HashAlg::from_tpm(hash, "signature hash")?,
                    sig: sig.to_vec(),
                }
            }
            TPM_ALG_ECDSA => {
                let hash = r.u16("TPMS_SIGNATURE_ECC.hash")?;
                let sig_r = r.tpm2b(MAX_ECC_KEY_BYTES, "TPMS_SIGNATURE_ECC.signatureR")?;
                let sig_s = r.tpm2b(MAX_ECC_KEY_BYTES, "TPMS_SIGNATURE_ECC.signatureS")?;
                Self::Ecdsa {
                    hash: HashAlg::from_tpm(hash, "signature hash")?,
                    r: sig_r.to_vec(),
                    s: sig_s.to_vec(),
                }
            }
            other => return Err(TpmError::UnsupportedAlgorithm("signature", other)),
        };
        r.finish("TPMT_SIGNATURE")?;
        Ok(sig)
    }

    /// `TPMT_SIGNATURE.sigAlg`.
    pub(crate) fn scheme(&self) -> u16 {
        match self {
            Self::Rsa { scheme, .. } => *scheme,
            Self::Ecdsa { .. } => TPM_ALG_ECDSA,
        }
    }

    /// The scheme's hash.
    pub(crate) fn hash(&self) -> HashAlg {
        match self {
            Self::Rsa { hash, .. } | Self::Ecdsa { hash, .. } => *hash,
        }
    }
}

/// An elliptic curve this verifier supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EccCurve {
    /// `TPM_ECC_NIST_P256`.
    NistP256,
    /// `TPM_ECC_NIST_P384`.
    NistP384,
}

impl EccCurve {
    /// Bytes of one coordinate.
    pub(crate) fn width(self) -> usize {
        match self {
            Self::NistP256 => 32,
            Self::NistP384 => 48,
        }
    }
}

/// The key material of an attestation key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AkKey {
    /// RSA: modulus and public exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// ECC: the uncompressed SEC1 point `04 ‖ x ‖ y`.
    Ecc { curve: EccCurve, point: Vec<u8> },
}

/// The public part of a TPM attestation key, from a TPMT_PUBLIC or from a form a platform
/// ships it in (X.509 SubjectPublicKeyInfo, bare RSA components).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AkPublic {
    /// The bytes the key was given as (digested into [`super::VerifiedQuote::ak_public_digest`]).
    pub(crate) encoded: Vec<u8>,
    pub(crate) key: AkKey,
    /// The key's own signing scheme (`TPMT_*_SCHEME`), when a TPMT_PUBLIC states one:
    /// (scheme, hash). A signature under any other scheme is refused.
    pub(crate) scheme: Option<(u16, u16)>,
}

impl AkPublic {
    /// Size in bytes of an RSA key's modulus (0 for ECC keys).
    pub fn rsa_modulus_bytes(&self) -> usize {
        match &self.key {
            AkKey::Rsa { n, .. } => n.len(),
            AkKey::Ecc { .. } => 0,
        }
    }

    /// Parses a marshalled TPMT_PUBLIC (§12.2.4) of an RSA or ECC key, and requires the key to
    /// be a restricted signing key (`TPMA_OBJECT` `restricted` and `sign`, §8.3.2): only such a
    /// key guarantees that a signed structure starting with `TPM_GENERATED_VALUE` came from
    /// the TPM itself.
    pub fn from_tpmt_public(bytes: &[u8]) -> Result<Self, TpmError> {
        let mut r = Reader::new(bytes);
        let key_type = r.u16("TPMT_PUBLIC.type")?;
        r.u16("TPMT_PUBLIC.nameAlg")?;
        let attributes = r.u32("TPMT_PUBLIC.objectAttributes")?;
        r.tpm2b(MAX_DIGEST_BYTES, "TPMT_PUBLIC.authPolicy")?;
        let (key, scheme) = match key_type {
            TPM_ALG_RSA => parse_rsa_public(&mut r)?,
            TPM_ALG_ECC => parse_ecc_public(&mut r)?,
            other => {
                return Err(TpmError::UnsupportedAlgorithm(
                    "attestation key type",
                    other,
                ))
            }
        };
        r.finish("TPMT_PUBLIC")?;
        let required = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN;
        if attributes & required != required {
            return Err(TpmError::AkNotRestrictedSigning);
        }
        Ok(Self {
            encoded: bytes.to_vec(),
            key,
            scheme,
        })
    }

    /// An RSA key from a DER `SubjectPublicKeyInfo` (RFC 5280 §4.1.2.7). It carries no TPM
    /// attributes: whoever vouches for the key (a hardware report's runtime data, an AK
    /// certificate) vouches that it is a restricted TPM signing key.
    pub fn from_rsa_spki_der(der: &[u8]) -> Result<Self, TpmError> {
        let (n, e) = rsa_spki(der)?;
        Ok(Self {
            encoded: der.to_vec(),
            key: rsa_key(&n, &e)?,
            scheme: None,
        })
    }

    /// An RSA key from its modulus and public exponent (big-endian), as a JWK carries them.
    /// [`super::VerifiedQuote::ak_public_digest`] is then SHA-256 of `n ‖ e`. Same caveat as
    /// [`AkPublic::from_rsa_spki_der`].
    pub fn from_rsa_components(n: &[u8], e: &[u8]) -> Result<Self, TpmError> {
        let key = rsa_key(n, e)?;
        let mut encoded = n.to_vec();
        encoded.extend_from_slice(e);
        Ok(Self {
            encoded,
            key,
            scheme: None,
        })
    }
}

/// Checks an RSA key's shape: 2048 to 8192 bits (what `ring` verifies), exponent present.
fn rsa_key(n: &[u8], e: &[u8]) -> Result<AkKey, TpmError> {
    let n = strip_leading_zeros(n);
    let e = strip_leading_zeros(e);
    if n.len() < 256 || n.len() > 1024 {
        return Err(TpmError::KeyInvalid("rsa modulus is not 2048 to 8192 bits"));
    }
    if e.is_empty() || e.len() > 4 {
        return Err(TpmError::KeyInvalid("rsa exponent is out of range"));
    }
    Ok(AkKey::Rsa {
        n: n.to_vec(),
        e: e.to_vec(),
    })
}

/// TPMT_SYM_DEF_OBJECT (§11.1.7): an algorithm, then key bits and mode unless it is NULL.
fn skip_sym_def_object(r: &mut Reader<'_>) -> Result<(), TpmError> {
    if r.u16("TPMT_SYM_DEF_OBJECT.algorithm")? != TPM_ALG_NULL {
        r.u16("TPMT_SYM_DEF_OBJECT.keyBits")?;
        r.u16("TPMT_SYM_DEF_OBJECT.mode")?;
    }
    Ok(())
}

/// TPMT_RSA_SCHEME / TPMT_ECC_SCHEME (§11.2.4.2, §11.2.5.6): a scheme, then its details
/// (TPMU_ASYM_SCHEME, §11.2.3.5): nothing for NULL and RSAES, a hash and a count for ECDAA,
/// a hash otherwise. Returns (scheme, hash) unless NULL.
fn parse_asym_scheme(r: &mut Reader<'_>) -> Result<Option<(u16, u16)>, TpmError> {
    let scheme = r.u16("TPMT_ASYM_SCHEME.scheme")?;
    match scheme {
        TPM_ALG_NULL => Ok(None),
        TPM_ALG_RSAES => Ok(Some((scheme, TPM_ALG_NULL))),
        TPM_ALG_ECDAA => {
            let hash = r.u16("TPMS_SCHEME_ECDAA.hashAlg")?;
            r.u16("TPMS_SCHEME_ECDAA.count")?;
            Ok(Some((scheme, hash)))
        }
        _ => Ok(Some((scheme, r.u16("TPMS_SCHEME_HASH.hashAlg")?))),
    }
}

type ParsedKey = (AkKey, Option<(u16, u16)>);

/// TPMS_RSA_PARMS (§12.2.3.5) and TPM2B_PUBLIC_KEY_RSA (§11.2.4.5).
fn parse_rsa_public(r: &mut Reader<'_>) -> Result<ParsedKey, TpmError> {
    skip_sym_def_object(r)?;
    let scheme = parse_asym_scheme(r)?;
    let key_bits = r.u16("TPMS_RSA_PARMS.keyBits")?;
    let exponent = match r.u32("TPMS_RSA_PARMS.exponent")? {
        // Zero means the default exponent 2^16 + 1 (§12.2.3.5).
        0 => 65_537,
        e => e,
    };
    let modulus = r.tpm2b(MAX_RSA_KEY_BYTES, "TPMU_PUBLIC_ID.rsa")?;
    if modulus.len().saturating_mul(8) != usize::from(key_bits) {
        return Err(TpmError::KeyInvalid(
            "rsa modulus size differs from keyBits",
        ));
    }
    Ok((rsa_key(modulus, &exponent.to_be_bytes())?, scheme))
}

/// TPMS_ECC_PARMS (§12.2.3.6) and TPMS_ECC_POINT (§11.2.5.2).
fn parse_ecc_public(r: &mut Reader<'_>) -> Result<ParsedKey, TpmError> {
    skip_sym_def_object(r)?;
    let scheme = parse_asym_scheme(r)?;
    let curve_id = r.u16("TPMS_ECC_PARMS.curveID")?;
    // TPMT_KDF_SCHEME (§11.2.3.3): a scheme, then a hash unless NULL.
    if r.u16("TPMT_KDF_SCHEME.scheme")? != TPM_ALG_NULL {
        r.u16("TPMS_SCHEME_HASH.hashAlg")?;
    }
    let x = r.tpm2b(MAX_ECC_KEY_BYTES, "TPMS_ECC_POINT.x")?;
    let y = r.tpm2b(MAX_ECC_KEY_BYTES, "TPMS_ECC_POINT.y")?;
    let curve = match curve_id {
        TPM_ECC_NIST_P256 => EccCurve::NistP256,
        TPM_ECC_NIST_P384 => EccCurve::NistP384,
        other => return Err(TpmError::UnsupportedAlgorithm("ecc curve", other)),
    };
    let mut point = vec![0x04];
    for coordinate in [x, y] {
        let padded = left_pad(coordinate, curve.width()).ok_or(TpmError::KeyInvalid(
            "ecc coordinate is wider than the curve",
        ))?;
        point.extend_from_slice(&padded);
    }
    Ok((AkKey::Ecc { curve, point }, scheme))
}

/// `bytes` as a big-endian number of exactly `width` bytes, or `None` if it does not fit.
pub(crate) fn left_pad(bytes: &[u8], width: usize) -> Option<Vec<u8>> {
    let bytes = strip_leading_zeros(bytes);
    let pad = width.checked_sub(bytes.len())?;
    let mut out = vec![0u8; pad];
    out.extend_from_slice(bytes);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A TPMS_ATTEST quote over sha256 PCRs 0 and 1 with extraData `abc`.
    fn sample_attest() -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&TPM_GENERATED_VALUE.to_be_bytes());
        a.extend_from_slice(&TPM_ST_ATTEST_QUOTE.to_be_bytes());
        a.extend_from_slice(&[0, 2, 0xaa, 0xbb]); // qualifiedSigner
        a.extend_from_slice(&[0, 3, b'a', b'b', b'c']); // extraData
        a.extend_from_slice(&7u64.to_be_bytes()); // clock
        a.extend_from_slice(&1u32.to_be_bytes()); // resetCount
        a.extend_from_slice(&2u32.to_be_bytes()); // restartCount
        a.push(1); // safe
        a.extend_from_slice(&9u64.to_be_bytes()); // firmwareVersion
        a.extend_from_slice(&1u32.to_be_bytes()); // count
        a.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
        a.extend_from_slice(&[3, 0b11, 0, 0]);
        a.extend_from_slice(&[0, 32]);
        a.extend_from_slice(&[0x55; 32]);
        a
    }

    #[test]
    fn parses_a_quote() {
        let q = UnverifiedQuote::parse(&sample_attest()).unwrap();
        assert_eq!(q.extra_data, b"abc");
        assert_eq!(q.clock_ms, 7);
        assert_eq!(q.reset_count, 1);
        assert_eq!(q.restart_count, 2);
        assert_eq!(q.firmware_version, 9);
        assert_eq!(
            q.pcr_select,
            vec![PcrSelection {
                hash: TPM_ALG_SHA256,
                pcrs: vec![0, 1]
            }]
        );
        assert_eq!(q.pcr_digest, vec![0x55; 32]);
    }

    #[test]
    fn quote_framing_errors_are_typed() {
        let good = sample_attest();
        let mut bad = good.clone();
        bad[0] = 0;
        assert!(matches!(
            UnverifiedQuote::parse(&bad),
            Err(TpmError::BadMagic(0x0054_4347))
        ));
        let mut bad = good.clone();
        bad[5] = 0x17; // TPM_ST_ATTEST_CERTIFY
        assert!(matches!(
            UnverifiedQuote::parse(&bad),
            Err(TpmError::WrongType(0x8017))
        ));
        let mut bad = good.clone();
        bad.push(0);
        assert!(matches!(
            UnverifiedQuote::parse(&bad),
            Err(TpmError::TrailingBytes { count: 1, .. })
        ));
        for len in 0..good.len() {
            assert!(matches!(
                UnverifiedQuote::parse(&good[..len]),
                Err(TpmError::Truncated { .. })
            ));
        }
    }

    #[test]
    fn parses_an_ecdsa_signature_and_refuses_sha1() {
        let mut s = Vec::new();
        s.extend_from_slice(&TPM_ALG_ECDSA.to_be_bytes());
        s.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
        s.extend_from_slice(&[0, 1, 7, 0, 2, 8, 9]);
        assert_eq!(
            TpmSignature::parse(&s).unwrap(),
            TpmSignature::Ecdsa {
                hash: HashAlg::Sha256,
                r: vec![7],
                s: vec![8, 9]
            }
        );
        s[3] = 0x04;
        assert!(matches!(
            TpmSignature::parse(&s),
            Err(TpmError::UnsupportedAlgorithm(_, 0x0004))
        ));
    }

    #[test]
    fn left_pad_fits_or_refuses() {
        assert_eq!(left_pad(&[1, 2], 4), Some(vec![0, 0, 1, 2]));
        assert_eq!(left_pad(&[0, 0, 0, 1, 2], 4), Some(vec![0, 0, 1, 2]));
        assert_eq!(left_pad(&[1, 2, 3], 2), None);
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = UnverifiedQuote::parse(&bytes);
            let _ = TpmSignature::parse(&bytes);
            let _ = AkPublic::from_tpmt_public(&bytes);
            let _ = AkPublic::from_rsa_spki_der(&bytes);
        }

        #[test]
        fn mutated_quotes_never_panic(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let mut bytes = sample_attest();
            for (at, v) in flips {
                let len = bytes.len();
                bytes[at % len] ^= v;
            }
            let cut = cut % (bytes.len() + 1);
            let _ = UnverifiedQuote::parse(&bytes[..cut]);
            let _ = UnverifiedQuote::parse(&bytes);
        }
    }
}
