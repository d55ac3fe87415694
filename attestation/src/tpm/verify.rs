//! Verifying a TPM 2.0 quote: the signature over the TPMS_ATTEST bytes under the attestation
//! key, the qualifying data, and that the supplied PCR values are the ones the TPM digested.
//! The result, [`VerifiedQuote`], is the only place later code reads PCR values from.

use super::defs::{
    SHA256_PCR_BYTES, TPM_ALG_ECDSA, TPM_ALG_RSAPSS, TPM_ALG_RSASSA, TPM_ALG_SHA256,
};
use super::evidence::{
    left_pad, AkKey, AkPublic, EccCurve, HashAlg, TpmSignature, UnverifiedQuote,
};
use super::{PcrValue, TpmError, TpmEvidence};
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use std::collections::BTreeMap;

/// A quote whose signature, qualifying data and PCR digest all checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedQuote {
    pcrs: BTreeMap<u8, [u8; 32]>,
    ak_public_digest: [u8; 32],
    clock_ms: u64,
    reset_count: u32,
    restart_count: u32,
    firmware_version: u64,
}

impl VerifiedQuote {
    /// The quoted SHA-256 PCR values, by index.
    pub fn pcrs(&self) -> &BTreeMap<u8, [u8; 32]> {
        &self.pcrs
    }
    /// SHA-256 of the attestation key as it was given: the marshalled TPMT_PUBLIC for
    /// [`verify`]; see the [`AkPublic`] constructors for the other forms.
    pub fn ak_public_digest(&self) -> [u8; 32] {
        self.ak_public_digest
    }
    /// `TPMS_CLOCK_INFO.clock`: milliseconds the TPM has been powered since its clock was last
    /// cleared (TCG Part 2 §10.11.1).
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }
    /// `TPMS_CLOCK_INFO.resetCount`: TPM resets since the last TPM2_Clear.
    pub fn reset_count(&self) -> u32 {
        self.reset_count
    }
    /// `TPMS_CLOCK_INFO.restartCount`: TPM2_Shutdown/Startup cycles since the last reset.
    pub fn restart_count(&self) -> u32 {
        self.restart_count
    }
    /// `TPMS_ATTEST.firmwareVersion`, vendor-specific.
    pub fn firmware_version(&self) -> u64 {
        self.firmware_version
    }
}

/// Verifies a quote collected by `TpmAttester` (or any TPM whose AK is given as a
/// TPMT_PUBLIC) against the qualifying data the verifier expects.
pub fn verify(
    evidence: &TpmEvidence,
    expected_qualifying_data: &[u8],
) -> Result<VerifiedQuote, TpmError> {
    let ak = AkPublic::from_tpmt_public(&evidence.ak_public)?;
    verify_quote_with_key(
        &evidence.attest,
        &evidence.signature,
        &ak,
        &evidence.pcrs,
        expected_qualifying_data,
    )
}

/// Verifies a quote given as its parts: `attest` a marshalled TPMS_ATTEST, `signature` a
/// marshalled TPMT_SIGNATURE, `ak` the attestation key, `pcrs` the SHA-256 PCR values the
/// quote must cover (exactly those, in any order).
///
/// Checks, in order: framing of both structures; the signature scheme is one the key allows;
/// the signature over `attest`; `extraData == expected_qualifying_data`; the quote selects
/// exactly the supplied PCRs in the SHA-256 bank; the hash (of the signing scheme, TCG Part 3
/// §18.4) over the supplied values in ascending index order equals `pcrDigest`.
pub fn verify_quote_with_key(
    attest: &[u8],
    signature: &[u8],
    ak: &AkPublic,
    pcrs: &[PcrValue],
    expected_qualifying_data: &[u8],
) -> Result<VerifiedQuote, TpmError> {
    let quote = UnverifiedQuote::parse(attest)?;
    let sig = TpmSignature::parse(signature)?;
    check_scheme(ak, &sig)?;
    verify_signature(ak, &sig, attest)?;
    if quote.extra_data != expected_qualifying_data {
        return Err(TpmError::QualifyingDataMismatch);
    }
    let values = check_pcrs(&quote, pcrs, sig.hash())?;
    Ok(VerifiedQuote {
        pcrs: values,
        ak_public_digest: crate::sha256(&ak.encoded),
        clock_ms: quote.clock_ms,
        reset_count: quote.reset_count,
        restart_count: quote.restart_count,
        firmware_version: quote.firmware_version,
    })
}

/// The signature's algorithm must fit the key type and, when the key names a scheme, be it.
fn check_scheme(ak: &AkPublic, sig: &TpmSignature) -> Result<(), TpmError> {
    let fits_key = matches!(
        (&ak.key, sig.scheme()),
        (AkKey::Rsa { .. }, TPM_ALG_RSASSA | TPM_ALG_RSAPSS) | (AkKey::Ecc { .. }, TPM_ALG_ECDSA)
    );
    let fits_scheme = ak
        .scheme
        .is_none_or(|(scheme, hash)| scheme == sig.scheme() && hash == sig.hash().tpm_alg());
    if fits_key && fits_scheme {
        Ok(())
    } else {
        Err(TpmError::SchemeMismatch)
    }
}

/// Checks the signature over `msg` with `ring`.
fn verify_signature(ak: &AkPublic, sig: &TpmSignature, msg: &[u8]) -> Result<(), TpmError> {
    match (&ak.key, sig) {
        (AkKey::Rsa { n, e }, TpmSignature::Rsa { scheme, hash, sig }) => {
            let params: &signature::RsaParameters = match (*scheme, hash) {
                (TPM_ALG_RSASSA, HashAlg::Sha256) => &signature::RSA_PKCS1_2048_8192_SHA256,
                (TPM_ALG_RSASSA, HashAlg::Sha384) => &signature::RSA_PKCS1_2048_8192_SHA384,
                (TPM_ALG_RSASSA, HashAlg::Sha512) => &signature::RSA_PKCS1_2048_8192_SHA512,
                // ring checks PSS with a salt as long as the digest, which is what TPMs
                // produce (TCG Part 1 §B.7).
                (TPM_ALG_RSAPSS, HashAlg::Sha256) => &signature::RSA_PSS_2048_8192_SHA256,
                (TPM_ALG_RSAPSS, HashAlg::Sha384) => &signature::RSA_PSS_2048_8192_SHA384,
                (TPM_ALG_RSAPSS, HashAlg::Sha512) => &signature::RSA_PSS_2048_8192_SHA512,
                (other, _) => return Err(TpmError::UnsupportedAlgorithm("signature", other)),
            };
            RsaPublicKeyComponents { n, e }
                .verify(params, msg, sig)
                .map_err(|_| TpmError::SignatureInvalid)
        }
        (AkKey::Ecc { curve, point }, TpmSignature::Ecdsa { hash, r, s }) => {
            // Each curve with its own hash size, as TPMs pair them (mixed pairs are refused).
            let alg: &signature::EcdsaVerificationAlgorithm = match (curve, hash) {
                (EccCurve::NistP256, HashAlg::Sha256) => &signature::ECDSA_P256_SHA256_FIXED,
                (EccCurve::NistP384, HashAlg::Sha384) => &signature::ECDSA_P384_SHA384_FIXED,
                (_, other) => {
                    return Err(TpmError::UnsupportedAlgorithm(
                        "ecdsa hash",
                        other.tpm_alg(),
                    ))
                }
            };
            let width = curve.width();
            let mut fixed = left_pad(r, width).ok_or(TpmError::SignatureInvalid)?;
            fixed.extend(left_pad(s, width).ok_or(TpmError::SignatureInvalid)?);
            UnparsedPublicKey::new(alg, point)
                .verify(msg, &fixed)
                .map_err(|_| TpmError::SignatureInvalid)
        }
        _ => Err(TpmError::SchemeMismatch),
    }
}

/// Matches the supplied PCR values against the quote's selection and digest.
fn check_pcrs(
    quote: &UnverifiedQuote,
    pcrs: &[PcrValue],
    hash: HashAlg,
) -> Result<BTreeMap<u8, [u8; 32]>, TpmError> {
    let mut values = BTreeMap::new();
    for pcr in pcrs {
        let digest = <[u8; SHA256_PCR_BYTES]>::try_from(pcr.digest.as_slice()).map_err(|_| {
            TpmError::PcrValueLength {
                index: pcr.index,
                len: pcr.digest.len(),
            }
        })?;
        if values.insert(pcr.index, digest).is_some() {
            return Err(TpmError::PcrSelectionMismatch);
        }
    }

    // Banks with nothing selected add nothing to pcrDigest; exactly one other, SHA-256, may
    // remain, and it must select exactly the supplied indices.
    let mut selected = quote.pcr_select.iter().filter(|s| !s.pcrs.is_empty());
    let bank = match (selected.next(), selected.next()) {
        (Some(bank), None) if bank.hash == TPM_ALG_SHA256 => bank,
        _ => return Err(TpmError::PcrSelectionMismatch),
    };
    if !bank.pcrs.iter().copied().eq(values.keys().copied()) {
        return Err(TpmError::PcrSelectionMismatch);
    }

    let concatenated: Vec<u8> = values.values().flatten().copied().collect();
    if hash.digest(&concatenated) != quote.pcr_digest {
        return Err(TpmError::PcrDigestMismatch);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::super::defs::*;
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    /// A P-256 key held by `ring`, standing in for a TPM AK so that each check can be hit
    /// in isolation; the swtpm and vector tests cover real TPM output.
    struct Signer {
        pair: EcdsaKeyPair,
        rng: SystemRandom,
    }

    impl Signer {
        fn new() -> Self {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            Self { pair, rng }
        }

        fn tpmt_public(&self, attributes: u32) -> Vec<u8> {
            let point = self.pair.public_key().as_ref();
            let mut p = Vec::new();
            p.extend_from_slice(&TPM_ALG_ECC.to_be_bytes());
            p.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
            p.extend_from_slice(&attributes.to_be_bytes());
            p.extend_from_slice(&[0, 0]); // authPolicy
            p.extend_from_slice(&TPM_ALG_NULL.to_be_bytes()); // symmetric
            p.extend_from_slice(&TPM_ALG_ECDSA.to_be_bytes());
            p.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
            p.extend_from_slice(&TPM_ECC_NIST_P256.to_be_bytes());
            p.extend_from_slice(&TPM_ALG_NULL.to_be_bytes()); // kdf
            p.extend_from_slice(&[0, 32]);
            p.extend_from_slice(&point[1..33]);
            p.extend_from_slice(&[0, 32]);
            p.extend_from_slice(&point[33..65]);
            p
        }

        fn sign(&self, msg: &[u8]) -> Vec<u8> {
            let sig = self.pair.sign(&self.rng, msg).unwrap();
            let (r, s) = sig.as_ref().split_at(32);
            let mut t = Vec::new();
            t.extend_from_slice(&TPM_ALG_ECDSA.to_be_bytes());
            t.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
            // A TPM may strip leading zeros; the verifier pads them back.
            for half in [r, s] {
                let half = super::super::der::strip_leading_zeros(half);
                t.extend_from_slice(&u16::try_from(half.len()).unwrap().to_be_bytes());
                t.extend_from_slice(half);
            }
            t
        }
    }

    const RESTRICTED_SIGNING: u32 = 0x0005_0072;

    fn attest(extra: &[u8], bank: u16, select: [u8; 3], pcr_digest: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&TPM_GENERATED_VALUE.to_be_bytes());
        a.extend_from_slice(&TPM_ST_ATTEST_QUOTE.to_be_bytes());
        a.extend_from_slice(&[0, 0]);
        a.extend_from_slice(&u16::try_from(extra.len()).unwrap().to_be_bytes());
        a.extend_from_slice(extra);
        a.extend_from_slice(&1234u64.to_be_bytes());
        a.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 1]);
        a.extend_from_slice(&0x2020_0312u64.to_be_bytes());
        a.extend_from_slice(&1u32.to_be_bytes());
        a.extend_from_slice(&bank.to_be_bytes());
        a.push(3);
        a.extend_from_slice(&select);
        a.extend_from_slice(&u16::try_from(pcr_digest.len()).unwrap().to_be_bytes());
        a.extend_from_slice(pcr_digest);
        a
    }

    fn pcrs() -> Vec<PcrValue> {
        vec![
            PcrValue {
                index: 1,
                digest: vec![1; 32],
            },
            PcrValue {
                index: 0,
                digest: vec![0; 32],
            },
        ]
    }

    fn digest_of_pcrs() -> Vec<u8> {
        let mut concat = vec![0u8; 32];
        concat.extend_from_slice(&[1; 32]);
        crate::sha256(&concat).to_vec()
    }

    fn evidence(signer: &Signer, attest: Vec<u8>) -> TpmEvidence {
        TpmEvidence {
            ak_public: signer.tpmt_public(RESTRICTED_SIGNING),
            signature: signer.sign(&attest),
            attest,
            pcrs: pcrs(),
            event_log: None,
        }
    }

    #[test]
    fn accepts_a_well_formed_quote() {
        let signer = Signer::new();
        let ev = evidence(
            &signer,
            attest(b"nonce", TPM_ALG_SHA256, [3, 0, 0], &digest_of_pcrs()),
        );
        let q = verify(&ev, b"nonce").unwrap();
        assert_eq!(q.pcrs().len(), 2);
        assert_eq!(q.pcrs()[&1], [1; 32]);
        assert_eq!(q.clock_ms(), 1234);
        assert_eq!(q.reset_count(), 1);
        assert_eq!(q.restart_count(), 2);
        assert_eq!(q.firmware_version(), 0x2020_0312);
        assert_eq!(q.ak_public_digest(), crate::sha256(&ev.ak_public));
    }

    #[test]
    fn each_check_has_its_error() {
        let signer = Signer::new();
        let good = attest(b"nonce", TPM_ALG_SHA256, [3, 0, 0], &digest_of_pcrs());

        let ev = evidence(&signer, good.clone());
        assert!(matches!(
            verify(&ev, b"other"),
            Err(TpmError::QualifyingDataMismatch)
        ));

        let mut ev = evidence(&signer, good.clone());
        ev.pcrs[0].digest[0] ^= 1;
        assert!(matches!(
            verify(&ev, b"nonce"),
            Err(TpmError::PcrDigestMismatch)
        ));

        let mut ev = evidence(&signer, good.clone());
        ev.pcrs.pop();
        assert!(matches!(
            verify(&ev, b"nonce"),
            Err(TpmError::PcrSelectionMismatch)
        ));

        let mut ev = evidence(&signer, good.clone());
        ev.pcrs.push(PcrValue {
            index: 1,
            digest: vec![1; 32],
        });
        assert!(matches!(
            verify(&ev, b"nonce"),
            Err(TpmError::PcrSelectionMismatch)
        ));

        let mut ev = evidence(&signer, good.clone());
        ev.pcrs[0].digest.push(0);
        assert!(matches!(
            verify(&ev, b"nonce"),
            Err(TpmError::PcrValueLength { index: 1, len: 33 })
        ));

        let ev = evidence(
            &signer,
            attest(b"nonce", TPM_ALG_SHA384, [3, 0, 0], &digest_of_pcrs()),
        );
        assert!(matches!(
            verify(&ev, b"nonce"),
            Err(TpmError::PcrSelectionMismatch)
        ));

        let mut ev = evidence(&signer, good.clone());
        ev.attest[20] ^= 1; // inside TPMS_CLOCK_INFO.clock
        assert!(matches!(
            verify(&ev, b"nonce"),
            Err(TpmError::SignatureInvalid)
        ));

        let mut ev = evidence(&signer, good.clone());
        ev.ak_public = Signer::new().tpmt_public(RESTRICTED_SIGNING);
        assert!(matches!(
            verify(&ev, b"nonce"),
            Err(TpmError::SignatureInvalid)
        ));

        let mut ev = evidence(&signer, good.clone());
        ev.ak_public = signer.tpmt_public(RESTRICTED_SIGNING & !TPMA_OBJECT_RESTRICTED);
        assert!(matches!(
            verify(&ev, b"nonce"),
            Err(TpmError::AkNotRestrictedSigning)
        ));

        let mut ev = evidence(&signer, good);
        ev.signature[3] = 0x0c; // claims SHA-384, the key's scheme says SHA-256
        assert!(matches!(
            verify(&ev, b"nonce"),
            Err(TpmError::SchemeMismatch)
        ));
    }
}
