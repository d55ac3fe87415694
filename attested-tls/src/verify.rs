//! The relying side: appraising a peer's certificate, and the rustls verifiers that do it in
//! the handshake.
//!
//! [`verify_certificate`] is the whole decision, a pure function of the certificate, the
//! client's [`PeerPolicy`] and the time; the rustls [`AttestedServerVerifier`] and
//! [`AttestedClientVerifier`] only call it and check the handshake signature under the same
//! key. Its result, [`AttestedPeer`], has private fields and no public constructor: holding
//! one means every check passed.

use crate::extension::parse_certificate;
use crate::AttestedTlsError;
use attestation::appraisal::{appraise, AppraisalContext, AppraisalPolicy};
use attestation::bundle::UnverifiedBundle;
use attestation::result::{verify_result, AttestationResult, Tier};
use attestation::Level;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Clock skew tolerated between the verifier that issued a result and this relying party.
pub const MAX_CLOCK_SKEW_MS: u64 = 5_000;

/// What a relying party accepts.
#[derive(Clone)]
pub struct PeerPolicy {
    verifier_public_key: Vec<u8>,
    allowed_levels: Vec<Level>,
    kernel_ids: Option<BTreeSet<String>>,
    appraisal: Option<AppraisalPolicy>,
    check: Option<Arc<PeerCheck>>,
}

/// A relying party's own last check of a peer that passed every other one (e.g. "not
/// revoked by the verifier's feed"); the error says why the peer is refused.
pub type PeerCheck = dyn Fn(&AttestedPeer) -> Result<(), String> + Send + Sync;

impl std::fmt::Debug for PeerPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerPolicy")
            .field(
                "verifier_public_key",
                &hex::encode(&self.verifier_public_key),
            )
            .field("allowed_levels", &self.allowed_levels)
            .field("kernel_ids", &self.kernel_ids)
            .field("appraisal", &self.appraisal.is_some())
            .field("check", &self.check.is_some())
            .finish()
    }
}

impl PeerPolicy {
    /// Accepts kernels whose results are signed by `verifier_public_key` (the pinned
    /// Ed25519 key of the verifier) at one of `allowed_levels`. An empty level list accepts
    /// nothing.
    pub fn new(
        verifier_public_key: impl Into<Vec<u8>>,
        allowed_levels: impl IntoIterator<Item = Level>,
    ) -> Self {
        Self {
            verifier_public_key: verifier_public_key.into(),
            allowed_levels: allowed_levels.into_iter().collect(),
            kernel_ids: None,
            appraisal: None,
            check: None,
        }
    }

    /// Runs `check` last, on a peer that passed every other check (a revocation list, a
    /// ceremony's membership); its error refuses the peer as [`AttestedTlsError::Refused`].
    pub fn check(
        mut self,
        check: impl Fn(&AttestedPeer) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.check = Some(Arc::new(check));
        self
    }

    /// Accepts only these kernel ids.
    pub fn kernels<I: IntoIterator<Item = S>, S: Into<String>>(mut self, ids: I) -> Self {
        self.kernel_ids = Some(ids.into_iter().map(Into::into).collect());
        self
    }

    /// Also appraises the evidence itself, against this policy and its reference values,
    /// and requires an affirming outcome (the verifier's result is still required too).
    /// Evidence age is judged by the policy's `max_evidence_age_ms` against the bundle's
    /// creation time.
    pub fn appraise_with(mut self, policy: AppraisalPolicy) -> Self {
        self.appraisal = Some(policy);
        self
    }
}

/// A peer whose certificate passed every check of a [`PeerPolicy`].
#[derive(Debug, Clone)]
pub struct AttestedPeer {
    kernel_id: String,
    level: Level,
    public_key: Vec<u8>,
    bundle_digest: [u8; 32],
    result: AttestationResult,
}

impl AttestedPeer {
    /// The kernel id (from the verified bundle, confirmed by the result).
    pub fn kernel_id(&self) -> &str {
        &self.kernel_id
    }
    /// The level the verifier appraised.
    pub fn level(&self) -> Level {
        self.level
    }
    /// The attestation key (= the TLS key), SEC1.
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }
    /// SHA-256 of the evidence bundle.
    pub fn bundle_digest(&self) -> &[u8; 32] {
        &self.bundle_digest
    }
    /// The verified attestation result.
    pub fn result(&self) -> &AttestationResult {
        &self.result
    }
}

/// Appraises a certificate under `policy` at `now_ms`. Every failure names its check.
pub fn verify_certificate(
    der: &[u8],
    policy: &PeerPolicy,
    now_ms: u64,
) -> Result<AttestedPeer, AttestedTlsError> {
    let parsed = parse_certificate(der)?;
    let bundle = UnverifiedBundle::parse(&parsed.evidence.bundle)
        .and_then(UnverifiedBundle::verify_signature)
        .map_err(AttestedTlsError::Bundle)?;
    if bundle.ak_public() != parsed.public_key.as_slice() {
        return Err(AttestedTlsError::KeyNotAttestationKey);
    }
    let result = verify_result(&parsed.evidence.result, &policy.verifier_public_key)
        .map_err(AttestedTlsError::Result)?;
    if result.bundle_digest.as_slice() != bundle.digest() {
        return Err(AttestedTlsError::ResultForOtherBundle);
    }
    if result.ak_public_digest.as_slice() != attestation::sha256(bundle.ak_public()) {
        return Err(AttestedTlsError::ResultForOtherKey);
    }
    if result.kernel_id != bundle.kernel_id() {
        return Err(AttestedTlsError::ResultForOtherKernel {
            result: result.kernel_id.clone(),
            bundle: bundle.kernel_id().to_owned(),
        });
    }
    if result.nonce.as_slice() != bundle.nonce().as_bytes() {
        return Err(AttestedTlsError::ResultForOtherNonce);
    }
    if result.status != Tier::Affirming {
        return Err(AttestedTlsError::NotAffirming(
            result.status.as_str().into(),
        ));
    }
    if now_ms > result.expires_at_ms {
        return Err(AttestedTlsError::Expired {
            expires_at_ms: result.expires_at_ms,
            now_ms,
        });
    }
    if result.issued_at_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
        return Err(AttestedTlsError::IssuedInFuture {
            issued_at_ms: result.issued_at_ms,
            now_ms,
        });
    }
    if let Some(ids) = &policy.kernel_ids {
        if !ids.contains(&result.kernel_id) {
            return Err(AttestedTlsError::KernelNotAllowed(result.kernel_id.clone()));
        }
    }
    if !policy.allowed_levels.contains(&result.level) || result.level != bundle.level() {
        return Err(AttestedTlsError::LevelNotAllowed(
            result.level.as_str().into(),
        ));
    }
    if let Some(own) = &policy.appraisal {
        let ctx = AppraisalContext {
            policy: own,
            expected_nonce: bundle.nonce(),
            now_ms,
            event_log_base: attestation::appraisal::EventLogBase::Stateless,
        };
        let a = appraise(&bundle, &ctx);
        if a.status != Tier::Affirming {
            return Err(AttestedTlsError::Appraisal {
                status: a.status.as_str().into(),
                reasons: a.reasons().join("; "),
            });
        }
    }
    let peer = AttestedPeer {
        kernel_id: result.kernel_id.clone(),
        level: result.level,
        public_key: parsed.public_key,
        bundle_digest: *bundle.digest(),
        result,
    };
    if let Some(check) = &policy.check {
        check(&peer).map_err(AttestedTlsError::Refused)?;
    }
    Ok(peer)
}

/// Verifies the peer of an established connection again and returns who it is (call with
/// `conn.peer_certificates()` after the handshake).
pub fn peer_of(
    certificates: Option<&[CertificateDer<'_>]>,
    policy: &PeerPolicy,
) -> Result<AttestedPeer, AttestedTlsError> {
    let cert = certificates
        .and_then(<[_]>::first)
        .ok_or(AttestedTlsError::NoEvidence)?;
    verify_certificate(cert, policy, attestation::now_ms())
}

fn refuse(e: AttestedTlsError) -> rustls::Error {
    tracing::debug!(error = %e, "attested tls peer refused");
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(e),
    )))
}

/// Now, in Unix ms. rustls passes the time in whole seconds; results expire to the
/// millisecond, so the system clock is read directly rather than rounding up to a second of
/// grace. The rustls value is kept as a floor, should a time provider run ahead.
fn unix_ms(now: UnixTime) -> u64 {
    now.as_secs()
        .saturating_mul(1000)
        .max(attestation::now_ms())
}

/// Checks a TLS 1.3 `CertificateVerify` signature under the certificate's key (the AK).
fn verify_handshake_signature(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    if dss.scheme != SignatureScheme::ECDSA_NISTP256_SHA256 {
        return Err(rustls::Error::PeerMisbehaved(
            rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
        ));
    }
    let key = parse_certificate(cert).map_err(refuse)?.public_key;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, key)
        .verify(message, dss.signature())
        .map(|()| HandshakeSignatureValid::assertion())
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature))
}

fn no_tls12() -> rustls::Error {
    rustls::Error::General("attested tls is tls 1.3 only".into())
}

/// What both rustls verifiers share: the appraisal of the end-entity certificate under one
/// policy, and the TLS 1.3 `CertificateVerify` check under the same key.
#[derive(Debug)]
struct Appraiser {
    policy: PeerPolicy,
}

impl Appraiser {
    fn appraise(
        &self,
        end_entity: &CertificateDer<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        verify_certificate(end_entity, &self.policy, unix_ms(now))
            .map(|_| ())
            .map_err(refuse)
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_handshake_signature(message, cert, dss)
    }

    fn schemes() -> Vec<SignatureScheme> {
        vec![SignatureScheme::ECDSA_NISTP256_SHA256]
    }
}

/// A rustls server-certificate verifier that appraises the attestation in the certificate
/// instead of building a CA chain. The server name is not checked: identity is the kernel
/// id in the verified evidence (restrict it with [`PeerPolicy::kernels`]).
#[derive(Debug)]
pub struct AttestedServerVerifier(Appraiser);

impl AttestedServerVerifier {
    /// A verifier enforcing `policy`.
    pub fn new(policy: PeerPolicy) -> Self {
        Self(Appraiser { policy })
    }
}

impl ServerCertVerifier for AttestedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0
            .appraise(end_entity, now)
            .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(no_tls12())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        Appraiser::schemes()
    }
}

/// A rustls client-certificate verifier for mutually attested links: a client certificate
/// must be attested and pass `policy`. [`AttestedClientVerifier::new`] requires one;
/// [`AttestedClientVerifier::optional`] lets clients without a certificate in (governance
/// clients), while one that presents a certificate that does not appraise is refused in the
/// handshake all the same.
#[derive(Debug)]
pub struct AttestedClientVerifier {
    appraiser: Appraiser,
    mandatory: bool,
}

impl AttestedClientVerifier {
    /// A verifier enforcing `policy` on clients, every one of which must present a
    /// certificate.
    pub fn new(policy: PeerPolicy) -> Self {
        Self {
            appraiser: Appraiser { policy },
            mandatory: true,
        }
    }

    /// A verifier enforcing `policy` on the clients that present a certificate; the others
    /// are anonymous (the server decides what they may do).
    pub fn optional(policy: PeerPolicy) -> Self {
        Self {
            appraiser: Appraiser { policy },
            mandatory: false,
        }
    }
}

impl ClientCertVerifier for AttestedClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.appraiser
            .appraise(end_entity, now)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(no_tls12())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.appraiser.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        Appraiser::schemes()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
}
