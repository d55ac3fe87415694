//! The software platform (KEE1-L1): a report carrying the binding value, signed by a per-boot
//! Ed25519 key held in process memory. There is no hardware root of trust, so the report
//! always states level KEE1-L1 and no L2/L3 policy accepts it. For development only, chosen
//! explicitly by configuration; never a fallback when hardware is missing.

use crate::binding::{BindingValue, Level};
use crate::evidence::{to_cbor, Attester, CollectError, EvidenceItem, EvidenceKind};
use ring::rand::SystemRandom;
use ring::signature::{self, Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

/// Report body version.
pub const SOFTWARE_REPORT_VERSION: u32 = 1;
/// Domain separation for the report signature.
const SIGNING_LABEL: &[u8] = b"enclave-software-report-v1";

/// What the software platform asserts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ReportBody {
    version: u32,
    level: Level,
    #[serde(with = "serde_bytes")]
    report_data: Vec<u8>,
    issued_at_ms: u64,
    pid: u32,
}

/// The evidence item body: body bytes, the per-boot public key and the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SignedReport {
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
    #[serde(with = "serde_bytes")]
    platform_key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    signature: Vec<u8>,
}

/// Errors verifying a software report.
#[derive(Debug, thiserror::Error)]
pub enum SoftwareError {
    /// "software report is not valid cbor".
    #[error("software report is not valid cbor")]
    Decode(#[source] wire::CodecError),
    /// "software report version {0} is not supported".
    #[error("software report version {0} is not supported")]
    Version(u32),
    /// "software report signature does not verify".
    #[error("software report signature does not verify")]
    BadSignature,
    /// "software report claims level `{0}`; the software platform is KEE1-L1 only".
    #[error("software report claims level `{0}`; the software platform is KEE1-L1 only")]
    Level(Level),
    /// "software report_data is {0} bytes, expected 64".
    #[error("software report_data is {0} bytes, expected 64")]
    ReportDataLength(usize),
}

/// A software report whose signature verified.
#[derive(Debug, Clone)]
pub struct VerifiedSoftwareReport {
    report_data: [u8; 64],
    issued_at_ms: u64,
    platform_key: Vec<u8>,
}

impl VerifiedSoftwareReport {
    /// The 64-byte report data (the binding value).
    pub fn report_data(&self) -> &[u8; 64] {
        &self.report_data
    }
    /// When the report was made (Unix ms).
    pub fn issued_at_ms(&self) -> u64 {
        self.issued_at_ms
    }
    /// The per-boot platform key (Ed25519, 32 bytes).
    pub fn platform_key(&self) -> &[u8] {
        &self.platform_key
    }
    /// Always [`Level::L1`].
    pub fn level(&self) -> Level {
        Level::L1
    }
}

fn signed_message(body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNING_LABEL.len() + body.len());
    m.extend_from_slice(SIGNING_LABEL);
    m.extend_from_slice(body);
    m
}

/// Verifies the bytes of a software evidence item.
pub fn verify(data: &[u8]) -> Result<VerifiedSoftwareReport, SoftwareError> {
    let signed: SignedReport = wire::decode(data).map_err(SoftwareError::Decode)?;
    signature::UnparsedPublicKey::new(&signature::ED25519, &signed.platform_key)
        .verify(&signed_message(&signed.body), &signed.signature)
        .map_err(|_| SoftwareError::BadSignature)?;
    let body: ReportBody = wire::decode(&signed.body).map_err(SoftwareError::Decode)?;
    if body.version != SOFTWARE_REPORT_VERSION {
        return Err(SoftwareError::Version(body.version));
    }
    if body.level != Level::L1 {
        return Err(SoftwareError::Level(body.level));
    }
    let report_data = <[u8; 64]>::try_from(body.report_data.as_slice())
        .map_err(|_| SoftwareError::ReportDataLength(body.report_data.len()))?;
    Ok(VerifiedSoftwareReport {
        report_data,
        issued_at_ms: body.issued_at_ms,
        platform_key: signed.platform_key,
    })
}

/// The KEE1-L1 software attester.
pub struct SoftwareAttester {
    key: Ed25519KeyPair,
}

impl std::fmt::Debug for SoftwareAttester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareAttester").finish_non_exhaustive()
    }
}

impl SoftwareAttester {
    /// Creates the attester with a fresh per-boot key.
    pub fn new() -> Result<Self, CollectError> {
        let pkcs8 =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| CollectError::Sign)?;
        let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| CollectError::Sign)?;
        Ok(Self { key })
    }
}

impl Attester for SoftwareAttester {
    fn kind(&self) -> EvidenceKind {
        EvidenceKind::Software
    }
    fn level(&self) -> Option<Level> {
        Some(Level::L1)
    }
    fn collect(&mut self, binding: &BindingValue) -> Result<EvidenceItem, CollectError> {
        let body = to_cbor(&ReportBody {
            version: SOFTWARE_REPORT_VERSION,
            level: Level::L1,
            report_data: binding.as_bytes().to_vec(),
            issued_at_ms: crate::now_ms(),
            pid: std::process::id(),
        })?;
        let signature = self.key.sign(&signed_message(&body)).as_ref().to_vec();
        let data = to_cbor(&SignedReport {
            body,
            platform_key: self.key.public_key().as_ref().to_vec(),
            signature,
        })?;
        Ok(EvidenceItem {
            kind: EvidenceKind::Software,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binding::Nonce;

    #[test]
    fn collect_verify_and_tamper() {
        let mut a = SoftwareAttester::new().unwrap();
        let b = BindingValue::compute(&Nonce::new([5; 32]), b"ak", &[6; 32]);
        let item = a.collect(&b).unwrap();
        let v = verify(&item.data).unwrap();
        assert_eq!(v.report_data(), b.as_bytes());
        assert_eq!(v.level(), Level::L1);
        for i in 0..item.data.len() {
            let mut d = item.data.clone();
            d[i] ^= 0x10;
            assert!(verify(&d).is_err(), "flip at {i} accepted");
        }
        for len in 0..item.data.len() {
            assert!(verify(&item.data[..len]).is_err());
        }
    }

    #[test]
    fn a_report_claiming_l3_is_refused_even_if_signed() {
        let key = Ed25519KeyPair::from_pkcs8(
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .unwrap()
                .as_ref(),
        )
        .unwrap();
        let body = to_cbor(&ReportBody {
            version: 1,
            level: Level::L3,
            report_data: vec![0; 64],
            issued_at_ms: 0,
            pid: 1,
        })
        .unwrap();
        let signature = key.sign(&signed_message(&body)).as_ref().to_vec();
        let data = to_cbor(&SignedReport {
            body,
            platform_key: key.public_key().as_ref().to_vec(),
            signature,
        })
        .unwrap();
        assert!(matches!(
            verify(&data),
            Err(SoftwareError::Level(Level::L3))
        ));
    }
}
