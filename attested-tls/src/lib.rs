//! Attested TLS: a TLS 1.3 server certificate that *is* the enclave's attestation.
//!
//! # Design
//!
//! A governance kernel's TLS server runs inside its confidential VM. Its certificate:
//!
//! * has as its key the kernel's **attestation key** (AK, ECDSA P-256), the key that signed
//!   its evidence bundle and whose SHA-256 is bound into every piece of hardware evidence;
//! * carries, in an X.509 extension ([`extension`]), the **evidence bundle** and the
//!   verifier-signed **attestation result** (EAR) about that bundle.
//!
//! A client verifies the handshake with [`verify::AttestedServerVerifier`] instead of a CA
//! chain. It accepts the server only if the bundle's COSE signature verifies under the AK in
//! the bundle, the certificate's key *is* that AK, the result's signature verifies under the
//! verifier key the client pinned, the result is about exactly this bundle (digest), this AK
//! (digest), this kernel and nonce, is affirming and unexpired, and the kernel id and level
//! satisfy the client's [`verify::PeerPolicy`] — optionally after the client re-appraises
//! the evidence itself against its own policy and reference values. TLS then proves the
//! server holds the AK's private key (`CertificateVerify`), which never leaves the enclave.
//! The certificate's own self-signature adds nothing and is not relied on.
//!
//! [`verify::AttestedClientVerifier`] does the same for client certificates, so two
//! kernels can authenticate each other mutually.
//!
//! # Threat model
//!
//! The host between client and enclave (the proxy) is untrusted: it sees every byte of the
//! handshake, may replay an old certificate, and may forward to a different enclave. A
//! replayed certificate is useless without the AK's private key; a different enclave has a
//! different AK and so a bundle and result that do not match its key; an expired or
//! contraindicated result is refused. Every check fails closed and names itself in the
//! error ([`AttestedTlsError`]). Session resumption is disabled on both sides
//! ([`config`]), so every connection is appraised afresh.
//!
//! The certificate and its extension are untrusted input to the verifier: they are parsed
//! once into typed values ([`extension::parse_certificate`], fuzzed as
//! `attested_tls_certificate`) before any check reads them.
#![forbid(unsafe_code)]

pub mod cert;
pub mod config;
pub mod extension;
pub mod pinned;
pub mod signer;
pub mod verify;

pub use cert::{AttestedCertResolver, Evidence, EvidenceSource};
pub use config::{client_config, server_config, server_config_with, ClientAuth, SERVER_NAME};
pub use pinned::{verifier_client_config, verifier_server_config, VERIFIER_SERVER_NAME};
pub use signer::AttestationSigner;
pub use verify::{
    AttestedClientVerifier, AttestedPeer, AttestedServerVerifier, PeerCheck, PeerPolicy,
};

use attestation::bundle::BundleError;
use attestation::result::ResultError;

/// Why a certificate, or the attestation it carries, was refused.
#[derive(Debug, thiserror::Error)]
pub enum AttestedTlsError {
    /// "certificate is not valid x.509 der: {0}".
    #[error("certificate is not valid x.509 der: {0}")]
    Certificate(String),
    /// "certificate carries no attestation extension".
    #[error("certificate carries no attestation extension (oid 2.23.133.5.4.9)")]
    NoEvidence,
    /// "certificate carries the attestation extension twice".
    #[error("certificate carries the attestation extension twice")]
    DuplicateEvidence,
    /// "attestation extension is malformed: {0}".
    #[error("attestation extension is malformed: {0}")]
    Evidence(String),
    /// "attestation extension has media type `{0}`, not ours".
    #[error("attestation extension has media type `{0}`, not `{media}`", media = extension::MEDIA_TYPE)]
    MediaType(String),
    /// "certificate key is not an ecdsa p-256 key".
    #[error("certificate key is not an ecdsa p-256 key")]
    KeyAlgorithm,
    /// "evidence bundle rejected".
    #[error("evidence bundle rejected")]
    Bundle(#[source] BundleError),
    /// "tls key is not the bundle's attestation key".
    #[error("tls key is not the bundle's attestation key")]
    KeyNotAttestationKey,
    /// "attestation result rejected".
    #[error("attestation result rejected")]
    Result(#[source] ResultError),
    /// "attestation result is about another bundle".
    #[error("attestation result is about another bundle")]
    ResultForOtherBundle,
    /// "attestation result is about another attestation key".
    #[error("attestation result is about another attestation key")]
    ResultForOtherKey,
    /// "attestation result is about kernel `{result}`, the bundle about `{bundle}`".
    #[error("attestation result is about kernel `{result}`, the bundle about `{bundle}`")]
    ResultForOtherKernel {
        /// Kernel id in the result.
        result: String,
        /// Kernel id in the bundle.
        bundle: String,
    },
    /// "attestation result answers another nonce".
    #[error("attestation result answers another nonce")]
    ResultForOtherNonce,
    /// "attestation result is `{0}`, not affirming".
    #[error("attestation result is `{0}`, not affirming")]
    NotAffirming(String),
    /// "attestation result expired at {expires_at_ms} (now {now_ms})".
    #[error("attestation result expired at {expires_at_ms} (now {now_ms})")]
    Expired {
        /// Expiry (Unix ms).
        expires_at_ms: u64,
        /// Now (Unix ms).
        now_ms: u64,
    },
    /// "attestation result was issued in the future ({issued_at_ms}, now {now_ms})".
    #[error("attestation result was issued in the future ({issued_at_ms}, now {now_ms})")]
    IssuedInFuture {
        /// Issue time (Unix ms).
        issued_at_ms: u64,
        /// Now (Unix ms).
        now_ms: u64,
    },
    /// "kernel `{0}` is not one this policy accepts".
    #[error("kernel `{0}` is not one this policy accepts")]
    KernelNotAllowed(String),
    /// "level `{0}` is not one this policy accepts".
    #[error("level `{0}` is not one this policy accepts")]
    LevelNotAllowed(String),
    /// "the client's own appraisal is `{status}`: {reasons}".
    #[error("the client's own appraisal is `{status}`: {reasons}")]
    Appraisal {
        /// Overall status.
        status: String,
        /// Non-affirming claims.
        reasons: String,
    },
    /// "peer refused: {0}" (the relying party's own check, [`verify::PeerPolicy::check`]).
    #[error("peer refused: {0}")]
    Refused(String),
    /// "could not sign with the attestation key".
    #[error("could not sign with the attestation key")]
    Sign,
    /// "could not build the certificate: {0}".
    #[error("could not build the certificate: {0}")]
    Build(String),
}
