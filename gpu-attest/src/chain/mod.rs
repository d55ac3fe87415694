//! Endorser role: NVIDIA certificate chains up to the pinned roots.
//!
//! Two hierarchies, each pinned as a data file beside this crate (`roots/`, copied unchanged
//! from NVIDIA nvtrust `local_gpu_verifier/src/verifier/certs/`):
//!
//! - the **device identity** chain a GPU returns through NVML (leaf "GH100 A01 GSP FMC LF" or
//!   "GB100 …", BROM, provisioner ICA, product identity CA, NVIDIA Device Identity CA); its leaf
//!   signs the attestation report and carries the TCG DICE FWID that the report repeats;
//! - the **RIM signing** chain embedded in each reference manifest (RIM L4 signer, reference
//!   value L3, product CA, NVIDIA CoRIM signing Root CA).
//!
//! Every certificate must be ECDSA P-384 with SHA-384, name its successor as issuer, be signed
//! by it, sit inside its validity window at the caller's `now` (injectable: tests and replays
//! pick the time), and respect basic constraints, key usage and path length; unknown critical
//! extensions are refused. The chain must end in the pinned root, byte for byte. Revocation
//! (OCSP) is not checked here: see docs/gpu.md.

mod fwid;

use crate::der;
use crate::error::ChainError;
use base64::Engine as _;
use ring::signature::{UnparsedPublicKey, ECDSA_P384_SHA384_ASN1};
use std::sync::OnceLock;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};
use x509_cert::Certificate;

/// Longest chain accepted (NVIDIA's are 4 and 5 certificates).
pub const MAX_CHAIN_LEN: usize = 8;

const OID_ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_SECP384R1: &str = "1.3.132.0.34";
const OID_KEY_USAGE: &str = "2.5.29.15";
const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";

/// A pinned trust anchor: one self-signed root certificate.
#[derive(Debug, Clone)]
pub struct TrustAnchor {
    name: &'static str,
    der: Vec<u8>,
}

impl TrustAnchor {
    /// An anchor from a PEM certificate (tests use this to try a wrong root).
    pub fn from_pem(name: &'static str, pem: &str) -> Result<Self, ChainError> {
        let mut ders = pem_certificates(pem)?;
        match (ders.pop(), ders.is_empty()) {
            (Some(der), true) => Ok(Self { name, der }),
            _ => Err(ChainError::Pem {
                detail: "a trust anchor is exactly one certificate".into(),
            }),
        }
    }

    /// Which root this is (for messages).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The root certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}

fn pinned(
    cell: &'static OnceLock<Result<TrustAnchor, ChainError>>,
    name: &'static str,
    pem: &'static [u8],
) -> Result<&'static TrustAnchor, ChainError> {
    cell.get_or_init(|| {
        let text = std::str::from_utf8(pem).map_err(|_| ChainError::PinnedRoot { anchor: name })?;
        TrustAnchor::from_pem(name, text).map_err(|_| ChainError::PinnedRoot { anchor: name })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// The NVIDIA Device Identity CA (`roots/nvidia_device_identity_ca.pem`).
pub fn device_identity_root() -> Result<&'static TrustAnchor, ChainError> {
    static CELL: OnceLock<Result<TrustAnchor, ChainError>> = OnceLock::new();
    pinned(
        &CELL,
        "nvidia device identity ca",
        include_bytes!("../../roots/nvidia_device_identity_ca.pem"),
    )
}

/// The NVIDIA CoRIM signing Root CA (`roots/nvidia_rim_root_ca.pem`).
pub fn rim_root() -> Result<&'static TrustAnchor, ChainError> {
    static CELL: OnceLock<Result<TrustAnchor, ChainError>> = OnceLock::new();
    pinned(
        &CELL,
        "nvidia corim signing root ca",
        include_bytes!("../../roots/nvidia_rim_root_ca.pem"),
    )
}

/// Splits PEM text into certificate DER blobs. Only whitespace and NUL padding (NVML pads its
/// buffer) may sit between blocks.
pub fn pem_certificates(pem: &str) -> Result<Vec<Vec<u8>>, ChainError> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let pem_err = |detail: &str| ChainError::Pem {
        detail: detail.to_owned(),
    };
    let mut out = Vec::new();
    let mut rest = pem;
    loop {
        let Some(start) = rest.find(BEGIN) else {
            if rest.chars().all(|c| c.is_ascii_whitespace() || c == '\0') {
                break;
            }
            return Err(pem_err("text outside certificate blocks"));
        };
        let (before, after_begin) = rest.split_at(start);
        if !before.chars().all(|c| c.is_ascii_whitespace() || c == '\0') {
            return Err(pem_err("text outside certificate blocks"));
        }
        let body_start = after_begin.get(BEGIN.len()..).unwrap_or_default();
        let end = body_start
            .find(END)
            .ok_or_else(|| pem_err("certificate block without end line"))?;
        let (body, after) = body_start.split_at(end);
        let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| pem_err(&e.to_string()))?;
        if out.len() >= MAX_CHAIN_LEN {
            return Err(ChainError::TooLong {
                count: out.len().saturating_add(1),
                max: MAX_CHAIN_LEN,
            });
        }
        out.push(der);
        rest = after.get(END.len()..).unwrap_or_default();
    }
    Ok(out)
}

/// What the leaf of a chain must be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafRole {
    /// A GPU attestation key: must carry the DICE FWID extension.
    DeviceAttestation,
    /// A RIM signing key.
    RimSigning,
}

/// Length of an uncompressed SEC1 P-384 point (0x04 ‖ x ‖ y).
pub const P384_POINT_LEN: usize = 97;

/// A chain that verified to a pinned root at some time: the proof token later checks need.
#[derive(Debug, Clone)]
pub struct VerifiedChain {
    leaf_key: Vec<u8>,
    leaf_subject: String,
    fwid: Option<Vec<u8>>,
    valid_from: i64,
    valid_until: i64,
    anchor: &'static str,
}

impl VerifiedChain {
    /// The leaf's public key: an uncompressed SEC1 P-384 point.
    pub fn leaf_public_key(&self) -> &[u8] {
        &self.leaf_key
    }

    /// The leaf's subject (RFC 4514).
    pub fn leaf_subject(&self) -> &str {
        &self.leaf_subject
    }

    /// The DICE FWID (SHA-384) of a device leaf.
    pub fn fwid(&self) -> Option<&[u8]> {
        self.fwid.as_deref()
    }

    /// Whether every certificate is inside its validity window at `now` (unix seconds).
    pub fn valid_at(&self, now: i64) -> bool {
        self.valid_from <= now && now <= self.valid_until
    }

    /// The pinned root the chain ends in.
    pub fn anchor(&self) -> &'static str {
        self.anchor
    }
}

/// One certificate parsed for chain checks.
struct Parsed<'a> {
    der: &'a [u8],
    tbs: &'a [u8],
    cert: Certificate,
}

fn unix(t: &x509_cert::time::Time) -> i64 {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

fn subject(cert: &Certificate) -> String {
    cert.tbs_certificate.subject.to_string()
}

/// The certificate's P-384 public key as an uncompressed SEC1 point (its validity as a curve
/// point is checked by every signature verification that uses it).
fn ec_key(index: usize, cert: &Certificate) -> Result<Vec<u8>, ChainError> {
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<x509_cert::der::asn1::ObjectIdentifier>().ok());
    if spki.algorithm.oid.to_string() != OID_EC_PUBLIC_KEY
        || curve.map(|c| c.to_string()).as_deref() != Some(OID_SECP384R1)
    {
        return Err(ChainError::UnsupportedKey { index });
    }
    let point = spki.subject_public_key.raw_bytes();
    if point.len() != P384_POINT_LEN || point.first() != Some(&0x04) {
        return Err(ChainError::UnsupportedKey { index });
    }
    Ok(point.to_vec())
}

/// Basic constraints and key usage of a certificate, refusing unknown critical extensions.
fn constraints(
    index: usize,
    cert: &Certificate,
) -> Result<(Option<BasicConstraints>, Option<KeyUsage>), ChainError> {
    let mut bc = None;
    let mut ku = None;
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        let oid = ext.extn_id.to_string();
        let value = ext.extn_value.as_bytes();
        match oid.as_str() {
            OID_BASIC_CONSTRAINTS => {
                bc = Some(BasicConstraints::from_der(value).map_err(|_| {
                    ChainError::ExtensionMalformed {
                        index,
                        name: "basic constraints",
                    }
                })?);
            }
            OID_KEY_USAGE => {
                ku = Some(KeyUsage::from_der(value).map_err(|_| {
                    ChainError::ExtensionMalformed {
                        index,
                        name: "key usage",
                    }
                })?);
            }
            _ if ext.critical => {
                return Err(ChainError::UnknownCriticalExtension { index, oid });
            }
            _ => {}
        }
    }
    Ok((bc, ku))
}

/// Verifies `ders` (leaf first) up to `anchor` at `now` (unix seconds).
pub fn verify_chain(
    ders: &[Vec<u8>],
    anchor: &TrustAnchor,
    role: LeafRole,
    now: i64,
) -> Result<VerifiedChain, ChainError> {
    if ders.len() < 2 {
        return Err(ChainError::TooShort { count: ders.len() });
    }
    if ders.len() > MAX_CHAIN_LEN {
        return Err(ChainError::TooLong {
            count: ders.len(),
            max: MAX_CHAIN_LEN,
        });
    }
    let parsed = ders
        .iter()
        .enumerate()
        .map(|(index, der)| {
            let cert = Certificate::from_der(der).map_err(|e| ChainError::Malformed {
                index,
                detail: e.to_string(),
            })?;
            let tbs = der::tbs_certificate(der).ok_or_else(|| ChainError::Malformed {
                index,
                detail: "no tbsCertificate".into(),
            })?;
            Ok(Parsed { der, tbs, cert })
        })
        .collect::<Result<Vec<_>, ChainError>>()?;

    // A device leaf without the DICE FWID extension is refused before anything else: it is
    // not an attestation certificate.
    let leaf = parsed.first().ok_or(ChainError::TooShort { count: 0 })?;
    let fwid = match role {
        LeafRole::DeviceAttestation => Some(fwid::leaf_fwid(&leaf.cert)?),
        LeafRole::RimSigning => None,
    };
    let last = parsed.last().ok_or(ChainError::TooShort { count: 0 })?;
    if last.der != anchor.der() {
        return Err(ChainError::RootNotPinned {
            subject: subject(&last.cert),
            anchor: anchor.name(),
        });
    }

    let mut valid_from = i64::MIN;
    let mut valid_until = i64::MAX;
    for (index, p) in parsed.iter().enumerate() {
        let validity = &p.cert.tbs_certificate.validity;
        let (nb, na) = (unix(&validity.not_before), unix(&validity.not_after));
        if now < nb {
            return Err(ChainError::NotYetValid {
                index,
                subject: subject(&p.cert),
                not_before: nb,
                now,
            });
        }
        if now > na {
            return Err(ChainError::Expired {
                index,
                subject: subject(&p.cert),
                not_after: na,
                now,
            });
        }
        valid_from = valid_from.max(nb);
        valid_until = valid_until.min(na);
        let alg = p.cert.signature_algorithm.oid.to_string();
        if alg != OID_ECDSA_SHA384 {
            return Err(ChainError::UnsupportedSignatureAlgorithm { index, oid: alg });
        }
        let (bc, ku) = constraints(index, &p.cert)?;
        if index == 0 {
            if ku.is_some_and(|k| !k.digital_signature()) {
                return Err(ChainError::KeyUsage {
                    index,
                    usage: "digitalSignature",
                });
            }
        } else {
            let bc = bc.ok_or(ChainError::NotCa { index })?;
            if !bc.ca {
                return Err(ChainError::NotCa { index });
            }
            if bc
                .path_len_constraint
                .is_some_and(|max| index.saturating_sub(1) > usize::from(max))
            {
                return Err(ChainError::PathLength { index });
            }
            if ku.is_some_and(|k| !k.key_cert_sign()) {
                return Err(ChainError::KeyUsage {
                    index,
                    usage: "keyCertSign",
                });
            }
        }
    }

    for (index, pair) in parsed.windows(2).enumerate() {
        let [child, issuer] = pair else { continue };
        let child_issuer = child.cert.tbs_certificate.issuer.to_der().ok();
        let issuer_subject = issuer.cert.tbs_certificate.subject.to_der().ok();
        if child_issuer.is_none() || child_issuer != issuer_subject {
            return Err(ChainError::IssuerMismatch {
                index,
                issuer: child.cert.tbs_certificate.issuer.to_string(),
                next_subject: subject(&issuer.cert),
            });
        }
        let key = ec_key(index.saturating_add(1), &issuer.cert)?;
        UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, &key)
            .verify(child.tbs, child.cert.signature.raw_bytes())
            .map_err(|_| ChainError::BadSignature { index })?;
    }

    Ok(VerifiedChain {
        leaf_key: ec_key(0, &leaf.cert)?,
        leaf_subject: subject(&leaf.cert),
        fwid,
        valid_from,
        valid_until,
        anchor: anchor.name(),
    })
}

/// Verifies a GPU device chain (PEM, leaf first) to the pinned NVIDIA Device Identity CA.
pub fn verify_device_chain(pem: &str, now: i64) -> Result<VerifiedChain, ChainError> {
    verify_chain(
        &pem_certificates(pem)?,
        device_identity_root()?,
        LeafRole::DeviceAttestation,
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest as _, Sha256};

    /// The pinned roots are the files roots/README.md names.
    #[test]
    fn pinned_roots_are_the_documented_ones() {
        let fp = |a: &TrustAnchor| hex::encode(Sha256::digest(a.der()));
        assert_eq!(
            fp(device_identity_root().unwrap()),
            "102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48"
        );
        assert_eq!(
            fp(rim_root().unwrap()),
            "12977b5115acb0381179279fffeb5a8c4d264971ebb32298023a465fa41df5d1"
        );
    }

    #[test]
    fn pem_outside_blocks_is_refused() {
        assert!(pem_certificates("junk").is_err());
        assert_eq!(pem_certificates("\n\0\0").unwrap(), Vec::<Vec<u8>>::new());
        assert!(
            pem_certificates("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----").is_err()
        );
        assert!(pem_certificates("-----BEGIN CERTIFICATE-----\nAAAA").is_err());
    }
}
