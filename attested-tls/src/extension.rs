//! The attestation extension: how evidence rides in the certificate, and the one parser of
//! certificates a verifier runs.
//!
//! The extension uses the TCG DICE `tcg-dice-conceptual-message-wrapper` OID
//! `2.23.133.5.4.9` (TCG DICE Attestation Architecture v1.1), whose value is an OCTET STRING
//! holding a RATS conceptual message wrapper (CMW, draft-ietf-rats-msg-wrap): here a CBOR
//! CMW *record*, the array `[media type, value]`. Our value is a CBOR map of the bundle and
//! the result, each as the exact bytes that were signed:
//!
//! ```text
//! extnValue = OCTET STRING {                 -- DER, as RFC 5280 wraps every extension
//!   OCTET STRING {                           -- the TCG DICE CMW extension's own type
//!     [ "application/vnd.enclave.attested-tls+cbor",
//!       bstr .cbor { "version": 1, "bundle": bstr, "result": bstr } ]
//!   }
//! }
//! ```
//!
//! rustls accepts handshake messages of at most 64 KiB, so the whole evidence is limited
//! to [`MAX_EVIDENCE_BYTES`]; a larger bundle is refused when the certificate is built,
//! with a message saying why, rather than failing handshakes.

use crate::AttestedTlsError;
use serde::{Deserialize, Serialize};
use x509_cert::der::asn1::{ObjectIdentifier, OctetString};
use x509_cert::der::{Decode, Encode};

/// TCG DICE `tcg-dice-conceptual-message-wrapper` (`2.23.133.5.4.9`).
pub const EVIDENCE_OID: &[u64] = &[2, 23, 133, 5, 4, 9];
/// The same, as text.
pub const EVIDENCE_OID_TEXT: &str = "2.23.133.5.4.9";
/// Media type of our CMW record.
pub const MEDIA_TYPE: &str = "application/vnd.enclave.attested-tls+cbor";
/// Version of the record's value.
pub const EVIDENCE_VERSION: u32 = 1;
/// Largest bundle plus result carried (leaves room for the rest of the certificate within
/// rustls's 64 KiB handshake-message limit).
pub const MAX_EVIDENCE_BYTES: usize = 60 * 1024;
/// Largest certificate the parser looks at.
pub const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;

/// `id-ecPublicKey` (RFC 5480 §2.1.1).
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// `secp256r1` (RFC 5480 §2.1.1.1).
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// What a kernel presents: its signed evidence bundle and the verifier's signed result
/// about it, both exactly as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The COSE_Sign1 evidence bundle.
    #[serde(with = "serde_bytes")]
    pub bundle: Vec<u8>,
    /// The COSE_Sign1 attestation result.
    #[serde(with = "serde_bytes")]
    pub result: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Value {
    version: u32,
    #[serde(with = "serde_bytes")]
    bundle: Vec<u8>,
    #[serde(with = "serde_bytes")]
    result: Vec<u8>,
}

/// The DER content of the extension (what goes inside `extnValue`).
pub fn encode_extension(evidence: &Evidence) -> Result<Vec<u8>, AttestedTlsError> {
    let size = evidence.bundle.len().saturating_add(evidence.result.len());
    if size > MAX_EVIDENCE_BYTES {
        return Err(AttestedTlsError::Build(format!(
            "evidence of {size} bytes does not fit a tls certificate (limit {MAX_EVIDENCE_BYTES}; \
             rustls refuses handshake messages over 64 KiB)"
        )));
    }
    let value = wire::encode(&Value {
        version: EVIDENCE_VERSION,
        bundle: evidence.bundle.clone(),
        result: evidence.result.clone(),
    })
    .map_err(|e| AttestedTlsError::Build(e.to_string()))?;
    let record = wire::encode(&(MEDIA_TYPE, serde_bytes::ByteBuf::from(value)))
        .map_err(|e| AttestedTlsError::Build(e.to_string()))?;
    OctetString::new(record)
        .and_then(|o| o.to_der())
        .map_err(|e| AttestedTlsError::Build(e.to_string()))
}

/// Decodes the DER content of the extension.
pub fn decode_extension(der: &[u8]) -> Result<Evidence, AttestedTlsError> {
    let bad = |e: &dyn std::fmt::Display| AttestedTlsError::Evidence(e.to_string());
    let record = OctetString::from_der(der).map_err(|e| bad(&e))?;
    let (media, value): (String, serde_bytes::ByteBuf) =
        wire::decode(record.as_bytes()).map_err(|e| bad(&e))?;
    if media != MEDIA_TYPE {
        return Err(AttestedTlsError::MediaType(
            media.chars().take(64).collect(),
        ));
    }
    let v: Value = wire::decode(&value).map_err(|e| bad(&e))?;
    if v.version != EVIDENCE_VERSION {
        return Err(AttestedTlsError::Evidence(format!(
            "version {} is not supported",
            v.version
        )));
    }
    Ok(Evidence {
        bundle: v.bundle,
        result: v.result,
    })
}

/// What a verifier needs from a certificate, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCertificate {
    /// The subject public key: an uncompressed SEC1 P-256 point (65 bytes).
    pub public_key: Vec<u8>,
    /// The attestation the certificate carries.
    pub evidence: Evidence,
}

/// Parses a certificate: its P-256 key and its single attestation extension. Nothing
/// else in the certificate (names, validity, its self-signature) carries meaning here.
pub fn parse_certificate(der: &[u8]) -> Result<ParsedCertificate, AttestedTlsError> {
    if der.len() > MAX_CERTIFICATE_BYTES {
        return Err(AttestedTlsError::Certificate(format!(
            "{} bytes is more than {MAX_CERTIFICATE_BYTES}",
            der.len()
        )));
    }
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| AttestedTlsError::Certificate(e.to_string()))?;
    let tbs = &cert.tbs_certificate;
    let spki = &tbs.subject_public_key_info;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    if spki.algorithm.oid != EC_PUBLIC_KEY || curve != Some(P256) {
        return Err(AttestedTlsError::KeyAlgorithm);
    }
    let public_key = spki
        .subject_public_key
        .as_bytes()
        .filter(|k| k.len() == attestation::ak::AK_PUBLIC_BYTES && k.first() == Some(&0x04))
        .ok_or(AttestedTlsError::KeyAlgorithm)?
        .to_vec();
    let oid = ObjectIdentifier::new_unwrap(EVIDENCE_OID_TEXT);
    let mut found = tbs.extensions.iter().flatten().filter(|e| e.extn_id == oid);
    let ext = found.next().ok_or(AttestedTlsError::NoEvidence)?;
    if found.next().is_some() {
        return Err(AttestedTlsError::DuplicateEvidence);
    }
    let evidence = decode_extension(ext.extn_value.as_bytes())?;
    Ok(ParsedCertificate {
        public_key,
        evidence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn oid_constants_agree() {
        let text: Vec<String> = EVIDENCE_OID.iter().map(u64::to_string).collect();
        assert_eq!(text.join("."), EVIDENCE_OID_TEXT);
    }

    #[test]
    fn evidence_round_trips_and_is_a_cmw_record() {
        let e = Evidence {
            bundle: vec![1, 2, 3],
            result: vec![4; 40],
        };
        let der = encode_extension(&e).unwrap();
        assert_eq!(decode_extension(&der).unwrap(), e);
        // Inside the OCTET STRING: a two-element CBOR array, text then bytes.
        let inner = OctetString::from_der(&der).unwrap();
        let (media, _): (String, serde_bytes::ByteBuf) = wire::decode(inner.as_bytes()).unwrap();
        assert_eq!(media, MEDIA_TYPE);
    }

    #[test]
    fn malformed_extensions_are_refused() {
        assert!(matches!(
            decode_extension(&[0x04, 0x01]),
            Err(AttestedTlsError::Evidence(_))
        ));
        let other = OctetString::new(
            wire::encode(&(
                "application/eat+cwt",
                serde_bytes::ByteBuf::from(vec![0xa0]),
            ))
            .unwrap(),
        )
        .unwrap()
        .to_der()
        .unwrap();
        assert!(matches!(
            decode_extension(&other),
            Err(AttestedTlsError::MediaType(_))
        ));
        let big = Evidence {
            bundle: vec![0; MAX_EVIDENCE_BYTES],
            result: vec![0; 1],
        };
        assert!(matches!(
            encode_extension(&big),
            Err(AttestedTlsError::Build(_))
        ));
    }

    proptest! {
        #[test]
        fn any_evidence_round_trips(bundle in proptest::collection::vec(any::<u8>(), 0..512),
                                    result in proptest::collection::vec(any::<u8>(), 0..512)) {
            let e = Evidence { bundle, result };
            prop_assert_eq!(decode_extension(&encode_extension(&e).unwrap()).unwrap(), e);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_extension(&bytes);
            let _ = parse_certificate(&bytes);
        }
    }
}
