//! AMD SEV-SNP evidence.
//!
//! Collection asks the AMD Secure Processor for an attestation report whose `REPORT_DATA`
//! (64 bytes, SEV-SNP ABI spec rev 1.55 Table 23 offset 0x50) is the binding value, through
//! `/dev/sev-guest` with the `sev` crate (`SNP_GET_EXT_REPORT`, which also returns the
//! host-provided VCEK/VLEK certificates when the host has loaded them).
//!
//! Verifier side, by RATS role: [`report`] frames the 1184-byte report (evidence),
//! [`endorser`] pins the AMD roots and checks VCEK/VLEK chains, [`verify`] checks the report
//! signature and its TCB binding and yields a [`VerifiedSnpReport`].

use serde::{Deserialize, Serialize};

pub mod endorser;
pub mod error;
pub mod report;
pub mod verify;

pub use endorser::{verify_vek, Product, VerifiedVek};
pub use error::SnpError;
pub use report::{GuestPolicy, SigningKey, TcbParts, TcbVersion, UnverifiedSnpReport};
pub use verify::{verify_snp, VerifiedSnpReport};

/// GUID of the VCEK entry in the extended report's certificate table (GHCB spec).
pub const VCEK_GUID: &str = "63da758d-e664-4564-adc5-f4b93be8accd";
/// GUID of the VLEK entry.
pub const VLEK_GUID: &str = "a8074bc2-a25a-483e-aae6-39c045a0b8a1";

/// The guest device the collector talks to.
pub const SEV_GUEST_DEVICE: &str = "/dev/sev-guest";
/// Size of an SNP attestation report (ABI Table 23).
pub const REPORT_BYTES: usize = 1184;

/// The evidence item body for [`crate::EvidenceKind::SevSnp`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnpEvidence {
    /// The raw 1184-byte attestation report.
    #[serde(with = "serde_bytes")]
    pub report: Vec<u8>,
    /// Certificates returned with the extended report (GUID-tagged DER blobs).
    pub certs: Vec<SnpCert>,
}

/// One entry of the extended report's certificate table (GHCB spec §4.1.8.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnpCert {
    /// The entry GUID, as text (e.g. the VCEK GUID `63da758d-e664-4564-adc5-f4b93be8accd`).
    pub guid: String,
    /// DER bytes.
    #[serde(with = "serde_bytes")]
    pub der: Vec<u8>,
}

#[cfg(feature = "snp-collector")]
mod collect {
    use super::*;
    use crate::binding::{BindingValue, Level};
    use crate::evidence::{to_cbor, Attester, CollectError, EvidenceItem, EvidenceKind};

    /// Collects SEV-SNP reports from `/dev/sev-guest`.
    #[derive(Debug)]
    pub struct SnpAttester {
        fw: sev::firmware::guest::Firmware,
        vmpl: u32,
    }

    impl SnpAttester {
        /// Opens `/dev/sev-guest`; on a machine without SEV-SNP this is
        /// [`CollectError::NoSuchDevice`].
        pub fn open(vmpl: u32) -> Result<Self, CollectError> {
            if !std::path::Path::new(SEV_GUEST_DEVICE).exists() {
                return Err(CollectError::NoSuchDevice {
                    path: SEV_GUEST_DEVICE.into(),
                    what: "AMD SEV-SNP guest device",
                });
            }
            let fw =
                sev::firmware::guest::Firmware::open().map_err(|source| CollectError::Device {
                    path: SEV_GUEST_DEVICE.into(),
                    source,
                })?;
            Ok(Self { fw, vmpl })
        }
    }

    impl Attester for SnpAttester {
        fn kind(&self) -> EvidenceKind {
            EvidenceKind::SevSnp
        }
        fn level(&self) -> Option<Level> {
            Some(Level::L3)
        }
        fn collect(&mut self, binding: &BindingValue) -> Result<EvidenceItem, CollectError> {
            let (report, table) = self
                .fw
                .get_ext_report(None, Some(*binding.as_bytes()), Some(self.vmpl))
                .map_err(|e| CollectError::Device {
                    path: SEV_GUEST_DEVICE.into(),
                    source: std::io::Error::other(e.to_string()),
                })?;
            if report.len() != REPORT_BYTES {
                return Err(CollectError::Malformed(format!(
                    "snp report is {} bytes, expected {REPORT_BYTES}",
                    report.len()
                )));
            }
            let certs = table
                .unwrap_or_default()
                .into_iter()
                .map(|entry| SnpCert {
                    guid: format!("{:?}", entry.cert_type),
                    der: entry.data().to_vec(),
                })
                .collect();
            let data = to_cbor(&SnpEvidence { report, certs })?;
            Ok(EvidenceItem {
                kind: EvidenceKind::SevSnp,
                data,
            })
        }
    }
}

#[cfg(feature = "snp-collector")]
pub use collect::SnpAttester;
