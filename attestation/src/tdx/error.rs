//! The one error type of the TDX verifier: every rejection names the check that failed.

/// Why a TDX quote or its collateral was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TdxError {
    /// Framing: a field runs past the end of the input.
    #[error("tdx quote truncated: `{what}` at offset {offset} needs {need} bytes, {have} left")]
    Truncated {
        /// Field being read.
        what: &'static str,
        /// Offset of the field.
        offset: usize,
        /// Bytes the field needs.
        need: usize,
        /// Bytes that were left.
        have: usize,
    },
    /// Framing: input larger than any real quote.
    #[error("tdx quote is {len} bytes, more than the 64 KiB accepted")]
    TooLarge {
        /// Bytes received.
        len: usize,
    },
    /// Framing: a quote version other than 4 or 5.
    #[error("tdx quote version `{version}` is not supported (4 or 5)")]
    UnsupportedVersion {
        /// Header version.
        version: u16,
    },
    /// Framing: the TEE type is not TDX (0x81).
    #[error("quote tee type `{tee_type:#x}` is not tdx (0x81)")]
    NotTdx {
        /// Header TEE type.
        tee_type: u32,
    },
    /// Framing: attestation key type other than ECDSA P-256 (2).
    #[error("tdx attestation key type `{key_type}` is not ecdsa p-256 (2)")]
    UnsupportedKeyType {
        /// Header key type.
        key_type: u16,
    },
    /// Framing: the QE vendor id is not Intel's.
    #[error("tdx quote qe vendor id is not intel's")]
    UnknownQeVendor,
    /// Framing: a v5 body type other than 2 (TDX 1.0) or 3 (TDX 1.5).
    #[error("tdx v5 body type `{body_type}` is not supported (2 or 3)")]
    UnsupportedBodyType {
        /// Body type.
        body_type: u16,
    },
    /// Framing: certification data of an unexpected type.
    #[error("tdx certification data type `{cert_type}`, expected {expected}")]
    UnsupportedCertificationData {
        /// Type found.
        cert_type: u16,
        /// Type expected at that place.
        expected: u16,
    },
    /// Framing: a declared size disagrees with the data.
    #[error("tdx `{what}` declares {declared} bytes, the data gives {expected}")]
    SizeMismatch {
        /// Size field.
        what: &'static str,
        /// Declared size.
        declared: usize,
        /// Size the data supports.
        expected: usize,
    },
    /// Input given as hex text did not decode.
    #[error("tdx quote hex text does not decode: {0}")]
    HexText(String),
    /// Collateral file is not the expected JSON shape.
    #[error("tdx collateral is malformed: {0}")]
    CollateralMalformed(String),
    /// A collateral item (TCB info, QE identity, CRL, certificate) is outside its validity
    /// window at the verification time.
    #[error("tdx collateral is not valid at the verification time: {0}")]
    CollateralExpired(String),
    /// A collateral signature (TCB info, QE identity) or its issuer chain failed.
    #[error("tdx collateral signature check failed: {0}")]
    CollateralSignature(String),
    /// The PCK certificate chain does not verify to the pinned Intel root, or a certificate
    /// in it is revoked by the CRLs.
    #[error("tdx pck certificate chain check failed: {0}")]
    PckChain(String),
    /// A CRL failed to parse or verify.
    #[error("tdx crl check failed: {0}")]
    Crl(String),
    /// The QE report signature does not verify under the PCK leaf key.
    #[error("tdx qe report signature does not verify under the pck leaf key")]
    QeReportSignature,
    /// The QE report does not bind the attestation key (SHA-256(key ‖ auth data)).
    #[error("tdx qe report does not bind the attestation key")]
    QeReportBinding,
    /// The QE does not match the QE identity (MRSIGNER, ISVPRODID, attributes, ISVSVN).
    #[error("tdx quoting enclave does not match its identity: {0}")]
    QeIdentity(String),
    /// The quote signature does not verify under the attestation key.
    #[error("tdx quote signature does not verify under the attestation key")]
    QuoteSignature,
    /// The platform's TCB is revoked.
    #[error("tdx platform tcb is revoked")]
    TcbRevoked,
    /// No TCB level in the TCB info matches the platform / FMSPC mismatch / module identity.
    #[error("tdx tcb evaluation failed: {0}")]
    Tcb(String),
    /// TD attributes that the verifier library refuses unconditionally (migration, reserved
    /// bits, SEPT_VE_DISABLE off).
    #[error("tdx td attributes refused: {0}")]
    TdAttributes(String),
    /// Any other failure inside the collateral verifier, with its message.
    #[error("tdx verification failed: {0}")]
    Other(String),
}

impl TdxError {
    /// Short, stable name of the check that failed (used as the claim's check name).
    pub fn check(&self) -> &'static str {
        match self {
            Self::Truncated { .. }
            | Self::TooLarge { .. }
            | Self::UnsupportedVersion { .. }
            | Self::NotTdx { .. }
            | Self::UnsupportedKeyType { .. }
            | Self::UnknownQeVendor
            | Self::UnsupportedBodyType { .. }
            | Self::UnsupportedCertificationData { .. }
            | Self::SizeMismatch { .. }
            | Self::HexText(_) => "quote-format",
            Self::CollateralMalformed(_) => "collateral-format",
            Self::CollateralExpired(_) => "collateral-validity",
            Self::CollateralSignature(_) => "collateral-signature",
            Self::PckChain(_) => "pck-chain",
            Self::Crl(_) => "crl",
            Self::QeReportSignature => "qe-report-signature",
            Self::QeReportBinding => "qe-report-binding",
            Self::QeIdentity(_) => "qe-identity",
            Self::QuoteSignature => "quote-signature",
            Self::TcbRevoked | Self::Tcb(_) => "tcb-status",
            Self::TdAttributes(_) => "td-attributes",
            Self::Other(_) => "verification",
        }
    }

    /// Classifies an error of the `dcap-qvl` verifier (whose errors are messages) by the
    /// check that produced it.
    pub(crate) fn from_dcap(err: &anyhow::Error) -> Self {
        let msg = format!("{err:#}");
        let m = msg.to_ascii_lowercase();
        if m.contains("revoked") && m.contains("tcb status") {
            Self::TcbRevoked
        } else if m.contains("expired")
            || m.contains("in the future")
            || m.contains("notvalidyet")
            || m.contains("not valid yet")
            || m.contains("certexpired")
            || m.contains("crlexpired")
        {
            Self::CollateralExpired(msg)
        } else if m.contains("tcb_info") && m.contains("signature")
            || m.contains("qe_identity") && m.contains("signature")
            || m.contains("tcb info") && m.contains("certificate")
            || m.contains("qe identity") && m.contains("certificate")
        {
            Self::CollateralSignature(msg)
        } else if m.contains("decode tcbinfo") || m.contains("decode qeidentity") {
            Self::CollateralMalformed(msg)
        } else if m.contains("qe_report in quote") {
            Self::QeReportSignature
        } else if m.contains("qe report hash mismatch") {
            Self::QeReportBinding
        } else if m.contains("isv enclave report signature") {
            Self::QuoteSignature
        } else if m.contains("qe report validation")
            || m.contains("qe isvsvn")
            || m.contains("qe identity")
            || m.contains("mrsigner")
            || m.contains("isvprodid")
        {
            Self::QeIdentity(msg)
        } else if m.contains("crl") {
            Self::Crl(msg)
        } else if m.contains("pck") || m.contains("certificate") || m.contains("cert") {
            Self::PckChain(msg)
        } else if m.contains("tcb") || m.contains("fmspc") || m.contains("tdx module") {
            Self::Tcb(msg)
        } else if m.contains("debug")
            || m.contains("td attributes")
            || m.contains("migration")
            || m.contains("sept_ve")
            || m.contains("servtd")
            || m.contains("service td")
            || m.contains("profiling")
        {
            Self::TdAttributes(msg)
        } else {
            Self::Other(msg)
        }
    }
}
