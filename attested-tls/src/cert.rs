//! The server (or client) side: the certificate built from the AK and the current evidence,
//! rebuilt whenever the evidence changes.
//!
//! A kernel is re-attested while it serves; each new affirming result (and the bundle it is
//! about) replaces the old pair. [`AttestedCertResolver`] asks its [`EvidenceSource`] for
//! the current pair at every handshake and rebuilds the certificate only when the pair
//! changed, so a result that has been superseded is not presented for long. No evidence
//! (the kernel is not unsealed, or was halted) means no certificate: the handshake fails,
//! closed.

pub use crate::extension::Evidence;
use crate::extension::{encode_extension, EVIDENCE_OID};
use crate::signer::{CertKey, TlsKey};
use crate::{AttestationSigner, AttestedTlsError};
use rustls::pki_types::CertificateDer;
use rustls::sign::CertifiedKey;
use std::sync::{Arc, Mutex, PoisonError};

/// Where the current evidence comes from (in the enclave: the unsealed kernel state).
pub trait EvidenceSource: Send + Sync + std::fmt::Debug {
    /// The bundle and result to present now; `None` when there is nothing affirming to
    /// present.
    fn current(&self) -> Option<Evidence>;
}

impl EvidenceSource for Evidence {
    fn current(&self) -> Option<Evidence> {
        Some(self.clone())
    }
}

/// Builds the certificate: key = the AK, extension = `evidence`, self-signed by the AK.
/// Subject CN is the kernel id the bundle claims (informational only).
pub fn build_certificate(
    signer: &dyn AttestationSigner,
    evidence: &Evidence,
    common_name: &str,
) -> Result<CertificateDer<'static>, AttestedTlsError> {
    let build = |e: rcgen::Error| AttestedTlsError::Build(e.to_string());
    let mut params = rcgen::CertificateParams::default();
    let digest = attestation::sha256(&evidence.result);
    // A positive 16-byte serial derived from the result: one certificate per result.
    let mut serial = digest.get(..16).unwrap_or_default().to_vec();
    if let Some(first) = serial.first_mut() {
        *first &= 0x7f;
    }
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let key_id = attestation::sha256(signer.public_key());
    params.key_identifier_method =
        rcgen::KeyIdMethod::PreSpecified(key_id.get(..20).unwrap_or_default().to_vec());
    params
        .custom_extensions
        .push(rcgen::CustomExtension::from_oid_content(
            EVIDENCE_OID,
            encode_extension(evidence)?,
        ));
    let cert = params.self_signed(&CertKey(signer)).map_err(build)?;
    Ok(cert.der().clone())
}

/// The kernel id a bundle claims, for the certificate's CN (unverified, informational).
fn claimed_kernel_id(bundle: &[u8]) -> String {
    attestation::bundle::UnverifiedBundle::parse(bundle)
        .map(|b| b.claimed_kernel_id().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// A rustls certificate resolver (server and client side) presenting the current evidence
/// under the attestation key.
#[derive(Debug)]
pub struct AttestedCertResolver<S> {
    source: S,
    signer: Arc<dyn AttestationSigner>,
    cache: Mutex<Option<(Evidence, Arc<CertifiedKey>)>>,
}

impl<S: EvidenceSource> AttestedCertResolver<S> {
    /// A resolver signing with `signer` and presenting what `source` has.
    pub fn new(source: S, signer: Arc<dyn AttestationSigner>) -> Self {
        Self {
            source,
            signer,
            cache: Mutex::new(None),
        }
    }

    /// The certified key for the current evidence, built or cached; `None` when there is no
    /// evidence or the certificate cannot be built (logged).
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        let evidence = self.source.current()?;
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((cached, key)) = cache.as_ref() {
            if *cached == evidence {
                return Some(Arc::clone(key));
            }
        }
        let cn = claimed_kernel_id(&evidence.bundle);
        let cert = match build_certificate(self.signer.as_ref(), &evidence, &cn) {
            Ok(cert) => cert,
            Err(e) => {
                tracing::error!(error = %e, "no attested certificate");
                return None;
            }
        };
        let key = Arc::new(CertifiedKey::new(
            vec![cert],
            Arc::new(TlsKey(Arc::clone(&self.signer))),
        ));
        *cache = Some((evidence, Arc::clone(&key)));
        Some(key)
    }
}

impl<S: EvidenceSource> rustls::server::ResolvesServerCert for AttestedCertResolver<S> {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

impl<S: EvidenceSource> rustls::client::ResolvesClientCert for AttestedCertResolver<S> {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        if !sigschemes.contains(&rustls::SignatureScheme::ECDSA_NISTP256_SHA256) {
            return None;
        }
        self.current()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extension::parse_certificate;
    use attestation::ak::AttestationKey;

    #[derive(Debug, Default)]
    struct Switch(Mutex<Option<Evidence>>);
    impl EvidenceSource for Arc<Switch> {
        fn current(&self) -> Option<Evidence> {
            self.0.lock().unwrap().clone()
        }
    }

    #[test]
    fn certificates_carry_the_key_and_the_evidence() {
        let ak = AttestationKey::generate().unwrap();
        let e = Evidence {
            bundle: b"bundle".to_vec(),
            result: b"result".to_vec(),
        };
        let der = build_certificate(&ak, &e, "k1").unwrap();
        let parsed = parse_certificate(&der).unwrap();
        assert_eq!(parsed.public_key, ak.public_key());
        assert_eq!(parsed.evidence, e);
    }

    #[test]
    fn the_resolver_follows_its_evidence() {
        let ak: Arc<dyn AttestationSigner> = Arc::new(AttestationKey::generate().unwrap());
        let source = Arc::new(Switch::default());
        let r = AttestedCertResolver::new(Arc::clone(&source), ak);
        assert!(r.current().is_none(), "no evidence, no certificate");
        let first = Evidence {
            bundle: b"b1".to_vec(),
            result: b"r1".to_vec(),
        };
        *source.0.lock().unwrap() = Some(first);
        let a = r.current().unwrap();
        assert!(
            Arc::ptr_eq(&a, &r.current().unwrap()),
            "cached while unchanged"
        );
        *source.0.lock().unwrap() = Some(Evidence {
            bundle: b"b2".to_vec(),
            result: b"r2".to_vec(),
        });
        let b = r.current().unwrap();
        assert_ne!(a.cert, b.cert);
        assert_eq!(
            parse_certificate(&b.cert[0]).unwrap().evidence.result,
            b"r2"
        );
        *source.0.lock().unwrap() = None;
        assert!(r.current().is_none(), "halted: no certificate");
    }
}
