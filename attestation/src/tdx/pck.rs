//! The PCK certificate chain a TDX quote carries (PEM: PCK leaf, PCK platform or processor
//! CA, Intel SGX Root CA), checked without collateral: every certificate is signed
//! (ECDSA P-256 / SHA-256) by the next, names chain, each is valid at the verification time,
//! and the chain ends at the pinned root. CRLs are checked only with collateral
//! (see [`super::verify`]).

use super::error::TdxError;
use x509_cert::der::{Decode, Encode};
use x509_cert::Certificate;

/// ecdsa-with-SHA256.
const ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";
/// Most certificates accepted in a chain.
const MAX_CHAIN: usize = 5;

/// Verifies `pem` up to `root_der` at `now_unix_s`; returns the leaf's public key (SEC1
/// uncompressed point).
pub fn verify_pck_chain(pem: &[u8], root_der: &[u8], now_unix_s: u64) -> Result<Vec<u8>, TdxError> {
    let text = std::str::from_utf8(pem)
        .map_err(|_| TdxError::PckChain("pck chain is not pem text".into()))?;
    // Only line ends and NUL padding may follow the last certificate, and nothing may precede
    // the first: bytes outside the certificates are not signed, so none are tolerated.
    const END: &str = "-----END CERTIFICATE-----";
    let end = text
        .rfind(END)
        .map(|i| i.saturating_add(END.len()))
        .ok_or_else(|| TdxError::PckChain("pck chain has no certificate".into()))?;
    let (text, tail) = text.split_at(end);
    if !text.starts_with("-----BEGIN CERTIFICATE-----")
        || tail.bytes().any(|b| !matches!(b, b'\n' | b'\r' | 0))
    {
        return Err(TdxError::PckChain(
            "pck chain has bytes outside its pem certificates".into(),
        ));
    }
    let certs = Certificate::load_pem_chain(text.as_bytes())
        .map_err(|e| TdxError::PckChain(format!("pck chain pem: {e}")))?;
    if certs.len() < 2 || certs.len() > MAX_CHAIN {
        return Err(TdxError::PckChain(format!(
            "pck chain has {} certificates, expected 2 to {MAX_CHAIN}",
            certs.len()
        )));
    }
    let root = Certificate::from_der(root_der)
        .map_err(|e| TdxError::PckChain(format!("pinned root: {e}")))?;
    let last_der = certs
        .last()
        .and_then(|c| c.to_der().ok())
        .ok_or_else(|| TdxError::PckChain("empty pck chain".into()))?;
    if last_der != root_der {
        return Err(TdxError::PckChain(
            "pck chain does not end at the pinned intel sgx root ca".into(),
        ));
    }
    let now = std::time::Duration::from_secs(now_unix_s);
    for (i, cert) in certs.iter().enumerate() {
        let issuer = certs.get(i.saturating_add(1)).unwrap_or(&root);
        check_signed_by(cert, issuer, i)?;
        let v = &cert.tbs_certificate.validity;
        if now < v.not_before.to_unix_duration() || now > v.not_after.to_unix_duration() {
            return Err(TdxError::CollateralExpired(format!(
                "pck chain certificate {i} ({}) is not valid at the verification time",
                cert.tbs_certificate.subject
            )));
        }
    }
    let leaf = certs
        .first()
        .ok_or_else(|| TdxError::PckChain("empty pck chain".into()))?;
    Ok(leaf
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes()
        .to_vec())
}

fn check_signed_by(cert: &Certificate, issuer: &Certificate, i: usize) -> Result<(), TdxError> {
    if cert.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return Err(TdxError::PckChain(format!(
            "certificate {i}: issuer name is not the next certificate's subject"
        )));
    }
    if cert.signature_algorithm.oid.to_string() != ECDSA_WITH_SHA256 {
        return Err(TdxError::PckChain(format!(
            "certificate {i}: signature algorithm {} is not ecdsa-with-sha256",
            cert.signature_algorithm.oid
        )));
    }
    let tbs = cert
        .tbs_certificate
        .to_der()
        .map_err(|e| TdxError::PckChain(format!("certificate {i}: {e}")))?;
    let sig = cert
        .signature
        .as_bytes()
        .ok_or_else(|| TdxError::PckChain(format!("certificate {i}: signature bit string")))?;
    let key = issuer
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, key)
        .verify(&tbs, sig)
        .map_err(|_| {
            TdxError::PckChain(format!(
                "certificate {i} ({}): signature does not verify under its issuer",
                cert.tbs_certificate.subject
            ))
        })
}
