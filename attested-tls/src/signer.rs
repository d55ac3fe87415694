//! The attestation key as a TLS and certificate signing key.
//!
//! The AK never leaves the enclave's memory and is not exportable (ring keeps its PKCS#8
//! private), so it cannot be handed to rustls or rcgen as key bytes. Instead both are given
//! a signer that calls back into the AK: [`AttestationSigner`] is the one operation needed
//! (ECDSA P-256 over SHA-256), and this module adapts it to rustls'
//! `SigningKey`/`Signer` (for `CertificateVerify`) and to rcgen's `SigningKey` (for the
//! certificate's self-signature). Both want ASN.1 DER signatures (RFC 8446 §4.2.3, RFC 5758
//! §3.2); the AK produces fixed-width `r‖s`, converted by [`fixed_to_der`].

use attestation::ak::{AkError, AttestationKey, AK_SIGNATURE_BYTES};
use rustls::{SignatureAlgorithm, SignatureScheme};
use std::sync::Arc;

/// Something that signs with an attestation key.
pub trait AttestationSigner: Send + Sync + std::fmt::Debug {
    /// The public key, uncompressed SEC1 P-256 (65 bytes).
    fn public_key(&self) -> &[u8];
    /// ECDSA P-256 over SHA-256 of `msg`, fixed-width `r‖s` (64 bytes).
    fn sign_fixed(&self, msg: &[u8]) -> Result<Vec<u8>, AkError>;
}

impl AttestationSigner for AttestationKey {
    fn public_key(&self) -> &[u8] {
        AttestationKey::public_key(self)
    }
    fn sign_fixed(&self, msg: &[u8]) -> Result<Vec<u8>, AkError> {
        self.sign(msg)
    }
}

/// One DER INTEGER holding the unsigned big-endian `bytes`.
fn der_integer(bytes: &[u8], out: &mut Vec<u8>) {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let mut v: Vec<u8> = bytes.get(first..).unwrap_or_default().to_vec();
    if v.first().is_none_or(|b| b & 0x80 != 0) {
        v.insert(0, 0);
    }
    out.push(0x02);
    // At most 33 bytes: always the short length form.
    out.push(u8::try_from(v.len()).unwrap_or(0));
    out.extend_from_slice(&v);
}

/// Converts a fixed-width `r‖s` P-256 signature to `Ecdsa-Sig-Value` DER
/// (`SEQUENCE { r INTEGER, s INTEGER }`); `None` if it is not 64 bytes.
pub fn fixed_to_der(sig: &[u8]) -> Option<Vec<u8>> {
    if sig.len() != AK_SIGNATURE_BYTES {
        return None;
    }
    let (r, s) = sig.split_at(AK_SIGNATURE_BYTES / 2);
    let mut body = Vec::with_capacity(72);
    der_integer(r, &mut body);
    der_integer(s, &mut body);
    let mut out = Vec::with_capacity(body.len() + 2);
    out.push(0x30);
    out.push(u8::try_from(body.len()).ok()?);
    out.extend_from_slice(&body);
    Some(out)
}

fn sign_der(signer: &dyn AttestationSigner, msg: &[u8]) -> Option<Vec<u8>> {
    signer
        .sign_fixed(msg)
        .ok()
        .as_deref()
        .and_then(fixed_to_der)
}

/// The AK as a rustls signing key: offers `ecdsa_secp256r1_sha256` only.
#[derive(Debug, Clone)]
pub struct TlsKey(pub Arc<dyn AttestationSigner>);

impl rustls::sign::SigningKey for TlsKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| Box::new(TlsSigner(Arc::clone(&self.0))) as Box<dyn rustls::sign::Signer>)
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

#[derive(Debug)]
struct TlsSigner(Arc<dyn AttestationSigner>);

impl rustls::sign::Signer for TlsSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        sign_der(self.0.as_ref(), message)
            .ok_or_else(|| rustls::Error::General("attestation key could not sign".into()))
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

/// The AK as rcgen's certificate signing key.
pub(crate) struct CertKey<'a>(pub &'a dyn AttestationSigner);

impl rcgen::PublicKeyData for CertKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0.public_key()
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for CertKey<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        sign_der(self.0, msg).ok_or(rcgen::Error::RemoteKeyError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};

    #[test]
    fn der_signatures_verify_as_asn1_ecdsa() {
        let ak = AttestationKey::generate().unwrap();
        for i in 0..64u8 {
            let msg = [i; 17];
            let der = sign_der(&ak, &msg).unwrap();
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, ak.public_key())
                .verify(&msg, &der)
                .unwrap();
        }
    }

    #[test]
    fn integers_are_minimal_and_positive() {
        let mut sig = vec![0u8; 64];
        sig[31] = 1; // r = 1
        sig[32] = 0x80; // s has its high bit set: needs a leading zero
        let der = fixed_to_der(&sig).unwrap();
        assert_eq!(&der[..5], &[0x30, 3 + 35, 0x02, 0x01, 0x01]);
        assert_eq!(&der[5..8], &[0x02, 33, 0x00]);
        assert_eq!(der.len(), 2 + 3 + 35);
        assert!(fixed_to_der(&[0; 63]).is_none());
        // r = 0 still encodes as one zero byte.
        let der = fixed_to_der(&[0; 64]).unwrap();
        assert_eq!(der, [0x30, 6, 0x02, 1, 0, 0x02, 1, 0]);
    }

    #[test]
    fn tls_key_offers_only_p256_sha256() {
        use rustls::sign::SigningKey;
        let key = TlsKey(Arc::new(AttestationKey::generate().unwrap()));
        assert!(key
            .choose_scheme(&[SignatureScheme::ED25519, SignatureScheme::RSA_PSS_SHA256])
            .is_none());
        let signer = key
            .choose_scheme(&[
                SignatureScheme::ECDSA_NISTP384_SHA384,
                SignatureScheme::ECDSA_NISTP256_SHA256,
            ])
            .unwrap();
        assert_eq!(signer.scheme(), SignatureScheme::ECDSA_NISTP256_SHA256);
    }
}
