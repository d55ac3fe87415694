//! COSE_Sign1 (RFC 9052 §4.2) helpers shared by the evidence bundle (ES256, signed by the AK)
//! and the attestation result (EdDSA, signed by the verifier).

use coset::{iana, CborSerializable, CoseSign1, CoseSign1Builder, HeaderBuilder};

/// Errors opening a COSE_Sign1.
#[derive(Debug, thiserror::Error)]
pub enum CoseError {
    /// "not a cose_sign1 structure".
    #[error("not a cose_sign1 structure: {0}")]
    Decode(String),
    /// "cose algorithm is not `{0}`".
    #[error("cose algorithm is not `{0}`")]
    Algorithm(&'static str),
    /// "cose content type is not `{0}`".
    #[error("cose content type is not `{0}`")]
    ContentType(&'static str),
    /// "cose_sign1 has no payload".
    #[error("cose_sign1 has no payload")]
    MissingPayload,
    /// "could not encode cose_sign1".
    #[error("could not encode cose_sign1: {0}")]
    Encode(String),
}

/// Builds a COSE_Sign1 over `payload`; `sign` receives the ToBeSigned bytes.
pub(crate) fn sign1<E>(
    alg: iana::Algorithm,
    content_type: &str,
    payload: Vec<u8>,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
) -> Result<Result<Vec<u8>, CoseError>, E> {
    let protected = HeaderBuilder::new()
        .algorithm(alg)
        .content_type(content_type.to_string())
        .build();
    let mut msg = CoseSign1Builder::new()
        .protected(protected)
        .payload(payload)
        .build();
    let tbs = msg.tbs_data(b"");
    msg.signature = sign(&tbs)?;
    Ok(msg.to_vec().map_err(|e| CoseError::Encode(e.to_string())))
}

/// Decodes a COSE_Sign1 and checks algorithm and content type; the signature is NOT checked.
pub(crate) fn open1(
    bytes: &[u8],
    alg: iana::Algorithm,
    alg_name: &'static str,
    content_type: &'static str,
) -> Result<(CoseSign1, Vec<u8>), CoseError> {
    let msg = CoseSign1::from_slice(bytes).map_err(|e| CoseError::Decode(e.to_string()))?;
    let want = Some(coset::RegisteredLabelWithPrivate::Assigned(alg));
    if msg.protected.header.alg != want {
        return Err(CoseError::Algorithm(alg_name));
    }
    let ct_ok = matches!(
        &msg.protected.header.content_type,
        Some(coset::ContentType::Text(t)) if t == content_type
    );
    if !ct_ok {
        return Err(CoseError::ContentType(content_type));
    }
    let payload = msg.payload.clone().ok_or(CoseError::MissingPayload)?;
    Ok((msg, payload))
}
