//! The one error type of the SEV-SNP verifier: every rejection names the check that failed.

use super::endorser::Product;

/// Why an SEV-SNP report or its endorsement was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnpError {
    /// "snp report is `{len}` bytes, expected 1184": framing check failed.
    #[error("snp report is `{len}` bytes, expected 1184")]
    WrongSize {
        /// Bytes received.
        len: usize,
    },
    /// "snp report version `{version}` is not supported (2, 3, 4 or 5)".
    #[error("snp report version `{version}` is not supported (2, 3, 4 or 5)")]
    UnsupportedVersion {
        /// VERSION field.
        version: u32,
    },
    /// "snp report signature algorithm `{algo}` is not ecdsa p-384 with sha-384 (1)".
    #[error("snp report signature algorithm `{algo}` is not ecdsa p-384 with sha-384 (1)")]
    UnsupportedSignatureAlgorithm {
        /// SIGNATURE_ALGO field.
        algo: u32,
    },
    /// "snp report names signing key `{key}`, which is neither vcek (0) nor vlek (1)".
    #[error("snp report names signing key `{key}`, which is neither vcek (0) nor vlek (1)")]
    UnsupportedSigningKey {
        /// SIGNING_KEY bits.
        key: u8,
    },
    /// "snp report signature has nonzero bytes where the abi requires zero".
    #[error("snp report signature has nonzero bytes where the abi requires zero")]
    SignatureNotCanonical,
    /// "snp report signature is not a valid p-384 ecdsa signature".
    #[error("snp report signature is not a valid p-384 ecdsa signature")]
    SignatureMalformed,
    /// "snp report signature does not verify under the vek": the signed region was altered or
    /// the report was signed by another key.
    #[error("snp report signature does not verify under the vek")]
    BadReportSignature,
    /// "vek certificate is not valid der x.509".
    #[error("vek certificate is not valid der x.509")]
    VekMalformed(#[source] std::io::Error),
    /// "vek public key is not a p-384 point".
    #[error("vek public key is not a p-384 point")]
    VekKey,
    /// "vek does not chain to the pinned amd `{product}` root".
    #[error("vek does not chain to the pinned amd `{product}` root")]
    ChainBroken {
        /// Product whose root was tried.
        product: Product,
        /// What the chain check reported.
        #[source]
        source: std::io::Error,
    },
    /// "ca bundle refused: {0}": a user-supplied ASK/ARK bundle is not AMD's pinned one.
    #[error("ca bundle refused: {0}")]
    CaBundle(String),
    /// "vek chains to none of the pinned amd roots (milan, genoa, turin)".
    #[error("vek chains to none of the pinned amd roots (milan, genoa, turin)")]
    NoProductRoot,
    /// "pinned amd `{product}` root certificates do not verify": a build defect.
    #[error("pinned amd `{product}` root certificates do not verify")]
    PinnedRoot {
        /// Product.
        product: Product,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// "vek certificate lacks the `{name}` extension (`{oid}`)".
    #[error("vek certificate lacks the `{name}` extension (`{oid}`)")]
    ExtensionMissing {
        /// Extension name.
        name: &'static str,
        /// Its OID.
        oid: &'static str,
    },
    /// "vek certificate extension `{name}` is malformed".
    #[error("vek certificate extension `{name}` is malformed")]
    ExtensionMalformed {
        /// Extension name.
        name: &'static str,
    },
    /// "reported tcb `{field}` is `{report}` but the vek certifies `{cert}`".
    #[error("reported tcb `{field}` is `{report}` but the vek certifies `{cert}`")]
    TcbMismatch {
        /// TCB component.
        field: &'static str,
        /// Value in REPORTED_TCB.
        report: u8,
        /// Value in the VEK extension.
        cert: u8,
    },
    /// "report chip id does not match the vcek hwid".
    #[error("report chip id does not match the vcek hwid")]
    ChipIdMismatch,
    /// "report cpuid family `{family:#x}` is not a `{product}` processor".
    #[error("report cpuid family `{family:#x}` is not a `{product}` processor")]
    ProductMismatch {
        /// CPUID_FAM_ID of the report.
        family: u8,
        /// Product of the chain.
        product: Product,
    },
}

impl SnpError {
    /// Short, stable name of the check that failed (used as the claim's check name).
    pub fn check(&self) -> &'static str {
        match self {
            Self::WrongSize { .. }
            | Self::UnsupportedVersion { .. }
            | Self::UnsupportedSignatureAlgorithm { .. }
            | Self::UnsupportedSigningKey { .. } => "report-format",
            Self::SignatureNotCanonical | Self::SignatureMalformed | Self::BadReportSignature => {
                "report-signature"
            }
            Self::VekMalformed(_) | Self::VekKey => "vek-format",
            Self::ChainBroken { .. }
            | Self::CaBundle(_)
            | Self::NoProductRoot
            | Self::PinnedRoot { .. }
            | Self::ProductMismatch { .. } => "vek-chain",
            Self::ExtensionMissing { .. } | Self::ExtensionMalformed { .. } => "vek-extensions",
            Self::TcbMismatch { .. } => "vek-tcb",
            Self::ChipIdMismatch => "vek-chip-id",
        }
    }
}
