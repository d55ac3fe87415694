//! The error types of this crate, one per boundary: report framing ([`SpdmError`]), device and
//! RIM certificate chains ([`ChainError`]), report authentication ([`ReportError`]), reference
//! manifests ([`RimError`]) and collection ([`CollectError`]).
//!
//! Every variant names the check that failed; user data appears in backticks; messages are
//! lowercase without a trailing period.

/// Why an attestation report failed framing (SPDM GET_MEASUREMENTS request ‖ MEASUREMENTS
/// response, DSP0274 1.1 §10.11).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpdmError {
    /// "report is not hex text: `{detail}`".
    #[error("report is not hex text: `{detail}`")]
    NotHex {
        /// What the hex decoder said.
        detail: String,
    },
    /// "report is `{len}` bytes, more than the `{max}` bytes nvml can return".
    #[error("report is `{len}` bytes, more than the `{max}` bytes nvml can return")]
    TooLarge {
        /// Bytes received.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// "report ends inside `{field}`: needs `{needed}` bytes at offset `{offset}`, has `{available}`".
    #[error(
        "report ends inside `{field}`: needs `{needed}` bytes at offset `{offset}`, has `{available}`"
    )]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Offset of the field in the report.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// "spdm version `{version:#04x}` is not supported (spdm 1.1 = 0x11)".
    #[error("spdm version `{version:#04x}` is not supported (spdm 1.1 = 0x11)")]
    UnsupportedVersion {
        /// SPDMVersion byte.
        version: u8,
    },
    /// "request code `{code:#04x}` is not GET_MEASUREMENTS (0xe0)".
    #[error("request code `{code:#04x}` is not GET_MEASUREMENTS (0xe0)")]
    NotGetMeasurements {
        /// RequestResponseCode of the request.
        code: u8,
    },
    /// "response code `{code:#04x}` is not MEASUREMENTS (0x60)".
    #[error("response code `{code:#04x}` is not MEASUREMENTS (0x60)")]
    NotMeasurements {
        /// RequestResponseCode of the response.
        code: u8,
    },
    /// "request spdm version `{request:#04x}` differs from response version `{response:#04x}`".
    #[error(
        "request spdm version `{request:#04x}` differs from response version `{response:#04x}`"
    )]
    VersionMismatch {
        /// Request SPDMVersion.
        request: u8,
        /// Response SPDMVersion.
        response: u8,
    },
    /// "request did not ask for a signature (param1 `{param1:#04x}`)".
    #[error("request did not ask for a signature (param1 `{param1:#04x}`)")]
    SignatureNotRequested {
        /// Param1 of the request.
        param1: u8,
    },
    /// "response carries no measurement blocks".
    #[error("response carries no measurement blocks")]
    NoMeasurementBlocks,
    /// "measurement block `{index}` uses measurement specification `{spec:#04x}`, not dmtf (0x01)".
    #[error(
        "measurement block `{index}` uses measurement specification `{spec:#04x}`, not dmtf (0x01)"
    )]
    NotDmtf {
        /// Block index.
        index: u8,
        /// MeasurementSpecification byte.
        spec: u8,
    },
    /// "measurement block `{index}` declares a dmtf value of `{declared}` bytes in `{available}`".
    #[error(
        "measurement block `{index}` declares a dmtf value of `{declared}` bytes in `{available}`"
    )]
    DmtfSizeMismatch {
        /// Block index.
        index: u8,
        /// DMTFSpecMeasurementValueSize.
        declared: usize,
        /// Bytes the block holds after the DMTF header.
        available: usize,
    },
    /// "measurement block index `{index}` appears twice".
    #[error("measurement block index `{index}` appears twice")]
    DuplicateBlock {
        /// Block index.
        index: u8,
    },
    /// "measurement record holds `{parsed}` blocks, the response declares `{declared}`".
    #[error("measurement record holds `{parsed}` blocks, the response declares `{declared}`")]
    BlockCountMismatch {
        /// NumberOfBlocks.
        declared: usize,
        /// Blocks found in MeasurementRecordLength bytes.
        parsed: usize,
    },
    /// "opaque data field at offset `{offset}` runs past the opaque data".
    #[error("opaque data field at offset `{offset}` runs past the opaque data")]
    OpaqueOverrun {
        /// Offset inside the opaque data.
        offset: usize,
    },
    /// "opaque field `{name}` appears twice".
    #[error("opaque field `{name}` appears twice")]
    DuplicateOpaqueField {
        /// Field name.
        name: &'static str,
    },
    /// "opaque field `{name}` is malformed".
    #[error("opaque field `{name}` is malformed")]
    OpaqueFieldMalformed {
        /// Field name.
        name: &'static str,
    },
    /// "`{count}` bytes follow the signature".
    #[error("`{count}` bytes follow the signature")]
    TrailingBytes {
        /// Extra bytes.
        count: usize,
    },
}

/// Why a certificate chain (device identity or RIM signing) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// "certificate chain pem is malformed: `{detail}`".
    #[error("certificate chain pem is malformed: `{detail}`")]
    Pem {
        /// What the PEM decoder said.
        detail: String,
    },
    /// "certificate chain holds `{count}` certificates; it needs at least the signing certificate and the root ca".
    #[error(
        "certificate chain holds `{count}` certificates; it needs at least the signing certificate and the root ca"
    )]
    TooShort {
        /// Certificates found.
        count: usize,
    },
    /// "certificate chain holds `{count}` certificates, more than `{max}`".
    #[error("certificate chain holds `{count}` certificates, more than `{max}`")]
    TooLong {
        /// Certificates found.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// "certificate `{index}` is not valid der x.509: `{detail}`".
    #[error("certificate `{index}` is not valid der x.509: `{detail}`")]
    Malformed {
        /// Position in the chain, leaf = 0.
        index: usize,
        /// What the DER decoder said.
        detail: String,
    },
    /// "certificate `{index}` is signed with `{oid}`, not ecdsa-with-sha384".
    #[error("certificate `{index}` is signed with `{oid}`, not ecdsa-with-sha384")]
    UnsupportedSignatureAlgorithm {
        /// Position in the chain.
        index: usize,
        /// The signature algorithm OID.
        oid: String,
    },
    /// "certificate `{index}` does not carry a p-384 ecdsa public key".
    #[error("certificate `{index}` does not carry a p-384 ecdsa public key")]
    UnsupportedKey {
        /// Position in the chain.
        index: usize,
    },
    /// "certificate `{index}` names issuer `{issuer}` but the next certificate is `{next_subject}`".
    #[error(
        "certificate `{index}` names issuer `{issuer}` but the next certificate is `{next_subject}`"
    )]
    IssuerMismatch {
        /// Position in the chain.
        index: usize,
        /// Issuer of certificate `index`.
        issuer: String,
        /// Subject of certificate `index + 1`.
        next_subject: String,
    },
    /// "certificate `{index}` signature does not verify under its issuer's key".
    #[error("certificate `{index}` signature does not verify under its issuer's key")]
    BadSignature {
        /// Position in the chain.
        index: usize,
    },
    /// "certificate `{index}` issues another certificate but is not a ca".
    #[error("certificate `{index}` issues another certificate but is not a ca")]
    NotCa {
        /// Position in the chain.
        index: usize,
    },
    /// "certificate `{index}` key usage does not allow `{usage}`".
    #[error("certificate `{index}` key usage does not allow `{usage}`")]
    KeyUsage {
        /// Position in the chain.
        index: usize,
        /// The usage needed.
        usage: &'static str,
    },
    /// "certificate `{index}` path length constraint is exceeded".
    #[error("certificate `{index}` path length constraint is exceeded")]
    PathLength {
        /// Position in the chain.
        index: usize,
    },
    /// "certificate `{index}` (`{subject}`) is not valid before `{not_before}` (unix s); now is `{now}`".
    #[error(
        "certificate `{index}` (`{subject}`) is not valid before `{not_before}` (unix s); now is `{now}`"
    )]
    NotYetValid {
        /// Position in the chain.
        index: usize,
        /// Subject name.
        subject: String,
        /// notBefore, unix seconds.
        not_before: i64,
        /// The time checked.
        now: i64,
    },
    /// "certificate `{index}` (`{subject}`) expired at `{not_after}` (unix s); now is `{now}`".
    #[error(
        "certificate `{index}` (`{subject}`) expired at `{not_after}` (unix s); now is `{now}`"
    )]
    Expired {
        /// Position in the chain.
        index: usize,
        /// Subject name.
        subject: String,
        /// notAfter, unix seconds.
        not_after: i64,
        /// The time checked.
        now: i64,
    },
    /// "certificate `{index}` has unsupported critical extension `{oid}`".
    #[error("certificate `{index}` has unsupported critical extension `{oid}`")]
    UnknownCriticalExtension {
        /// Position in the chain.
        index: usize,
        /// Extension OID.
        oid: String,
    },
    /// "certificate `{index}` extension `{name}` is malformed".
    #[error("certificate `{index}` extension `{name}` is malformed")]
    ExtensionMalformed {
        /// Position in the chain.
        index: usize,
        /// Extension name.
        name: &'static str,
    },
    /// "chain ends in `{subject}`, which is not the pinned `{anchor}` root".
    #[error("chain ends in `{subject}`, which is not the pinned `{anchor}` root")]
    RootNotPinned {
        /// Subject of the last certificate.
        subject: String,
        /// Which pinned root was expected.
        anchor: &'static str,
    },
    /// "pinned `{anchor}` root does not parse": a build defect.
    #[error("pinned `{anchor}` root does not parse")]
    PinnedRoot {
        /// Which pinned root.
        anchor: &'static str,
    },
    /// "signing certificate lacks the tcg dice fwid extension (2.23.133.5.4.1)".
    #[error("signing certificate lacks the tcg dice fwid extension (2.23.133.5.4.1)")]
    FwidMissing,
}

/// Why an attestation report was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// "report signature does not verify under the device certificate": the signed region was
    /// altered, another key signed it, or r or s is out of range.
    #[error("report signature does not verify under the device certificate")]
    BadSignature,
    /// "report nonce `{found}` is not the expected binding value `{expected}`".
    #[error("report nonce `{found}` is not the expected binding value `{expected}`")]
    NonceMismatch {
        /// Nonce in the request, hex.
        found: String,
        /// Expected nonce, hex.
        expected: String,
    },
    /// "report fwid `{report}` differs from the device certificate fwid `{cert}`".
    #[error("report fwid `{report}` differs from the device certificate fwid `{cert}`")]
    FwidMismatch {
        /// FWID in the opaque data, hex.
        report: String,
        /// FWID in the leaf certificate, hex.
        cert: String,
    },
}

/// Why a reference integrity manifest (SWID tag with an enveloped XML signature) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RimError {
    /// "rim is `{len}` bytes, more than `{max}`".
    #[error("rim is `{len}` bytes, more than `{max}`")]
    TooLarge {
        /// Bytes received.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// "rim is not utf-8".
    #[error("rim is not utf-8")]
    NotUtf8,
    /// "rim is not well-formed xml: `{detail}`".
    #[error("rim is not well-formed xml: `{detail}`")]
    Xml {
        /// What the tokenizer or tree builder said.
        detail: String,
    },
    /// "rim carries a doctype, which is refused".
    #[error("rim carries a doctype, which is refused")]
    Doctype,
    /// "rim exceeds the `{limit}` limit".
    #[error("rim exceeds the `{limit}` limit")]
    Limit {
        /// Which limit.
        limit: &'static str,
    },
    /// "rim uses undeclared namespace prefix `{prefix}`".
    #[error("rim uses undeclared namespace prefix `{prefix}`")]
    UnboundPrefix {
        /// The prefix.
        prefix: String,
    },
    /// "rim uses `{feature}`, which this canonicaliser does not support".
    #[error("rim uses `{feature}`, which this canonicaliser does not support")]
    Unsupported {
        /// The construct.
        feature: &'static str,
    },
    /// "rim root element is `{found}`, not swid SoftwareIdentity".
    #[error("rim root element is `{found}`, not swid SoftwareIdentity")]
    NotSwid {
        /// Root element name.
        found: String,
    },
    /// "rim lacks `{what}`".
    #[error("rim lacks `{what}`")]
    Missing {
        /// The element or attribute.
        what: &'static str,
    },
    /// "rim resource attribute `{attr}` has invalid value `{value}`".
    #[error("rim resource attribute `{attr}` has invalid value `{value}`")]
    InvalidAttribute {
        /// Attribute name.
        attr: &'static str,
        /// Its value.
        value: String,
    },
    /// "rim measurement index `{index}` appears twice".
    #[error("rim measurement index `{index}` appears twice")]
    DuplicateIndex {
        /// RIM index.
        index: u32,
    },
    /// "rim measurement index `{index}` lacks hash alternative `{alternative}`".
    #[error("rim measurement index `{index}` lacks hash alternative `{alternative}`")]
    MissingHash {
        /// RIM index.
        index: u32,
        /// Alternative number.
        alternative: u32,
    },
    /// "rim measurement index `{index}` hash `{alternative}` is not `{size}` bytes of hex".
    #[error("rim measurement index `{index}` hash `{alternative}` is not `{size}` bytes of hex")]
    BadHash {
        /// RIM index.
        index: u32,
        /// Alternative number.
        alternative: u32,
        /// Declared size.
        size: u32,
    },
    /// "rim has `{count}` signature elements; exactly one enveloped signature is accepted".
    #[error("rim has `{count}` signature elements; exactly one enveloped signature is accepted")]
    SignatureCount {
        /// ds:Signature elements found.
        count: usize,
    },
    /// "rim signature is not a child of the root element".
    #[error("rim signature is not a child of the root element")]
    SignatureNotEnveloped,
    /// "rim signature element `{element}` is malformed".
    #[error("rim signature element `{element}` is malformed")]
    SignatureStructure {
        /// The element.
        element: &'static str,
    },
    /// "rim signature uses `{what}` `{uri}`, which is not supported".
    #[error("rim signature uses `{what}` `{uri}`, which is not supported")]
    UnsupportedAlgorithm {
        /// Which algorithm slot.
        what: &'static str,
        /// The algorithm URI.
        uri: String,
    },
    /// "rim signature reference uri `{uri}` is not the whole document (\"\")".
    #[error("rim signature reference uri `{uri}` is not the whole document (\"\")")]
    ReferenceUri {
        /// The URI.
        uri: String,
    },
    /// "rim `{field}` is not base64".
    #[error("rim `{field}` is not base64")]
    Base64 {
        /// Which element.
        field: &'static str,
    },
    /// "rim document digest does not match the signed digest value": the manifest was altered
    /// after signing.
    #[error("rim document digest does not match the signed digest value")]
    DigestMismatch,
    /// "rim signature value is not a 96-byte p-384 r‖s signature".
    #[error("rim signature value is not a 96-byte p-384 r‖s signature")]
    SignatureMalformed,
    /// "rim signature does not verify under the rim signing certificate".
    #[error("rim signature does not verify under the rim signing certificate")]
    BadSignature,
    /// "rim signing chain is refused".
    #[error("rim signing chain is refused")]
    Chain(#[source] ChainError),
}

/// Why GPU evidence could not be collected. The bundle then carries "no GPU evidence" with this
/// reason, and the appraisal policy decides.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectError {
    /// "libnvidia-ml could not be loaded; install the nvidia driver or run without gpu evidence".
    #[error(
        "libnvidia-ml could not be loaded; install the nvidia driver or run without gpu evidence"
    )]
    LibraryMissing(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// "the nvidia kernel driver is not loaded".
    #[error("the nvidia kernel driver is not loaded")]
    DriverNotLoaded,
    /// "no nvidia gpu is present".
    #[error("no nvidia gpu is present")]
    NoGpus,
    /// "confidential computing is off on this system; enable cc mode on the gpus".
    #[error("confidential computing is off on this system; enable cc mode on the gpus")]
    CcOff,
    /// "nvml call `{call}` is not supported by this driver or gpu".
    #[error("nvml call `{call}` is not supported by this driver or gpu")]
    NotSupported {
        /// The NVML function.
        call: &'static str,
    },
    /// "nvml call `{call}` failed".
    #[error("nvml call `{call}` failed")]
    Nvml {
        /// The NVML function.
        call: &'static str,
        /// NVML's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// "nvml returned malformed `{what}`".
    #[error("nvml returned malformed `{what}`")]
    Malformed {
        /// What was malformed.
        what: &'static str,
    },
}
