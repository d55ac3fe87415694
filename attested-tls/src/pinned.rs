//! Kernel → verifier links: the verifier's TLS server authenticates with the Ed25519 key that
//! signs its attestation results, and kernels pin that key.
//!
//! A kernel already trusts exactly one verifier key (`--verifier-public-key`): results and
//! revocation-feed statuses are accepted only under it. The verifier's TLS certificate is a
//! self-signed X.509 certificate whose subject key *is* that Ed25519 key, so a kernel needs
//! no CA and no new configuration: [`PinnedVerifierKey`] accepts a server only if the
//! certificate's key equals the pinned key and the TLS 1.3 `CertificateVerify` verifies under
//! it (proof that the server holds the result-signing key). Names, validity dates and the
//! self-signature carry no trust and are not relied on.
//!
//! The verifier admits clients with [`crate::ClientAuth::Optional`]: a kernel booting has no
//! attestation yet and connects anonymously (its evidence is appraised inside the session);
//! a re-attesting kernel presents its attested certificate, and the verifier then serves that
//! session only for the kernel id its certificate proves.

use crate::config::{provider, server_builder, ClientAuth};
use crate::AttestedTlsError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};
use std::sync::Arc;
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::Decode;

/// The server name kernels send to the verifier (carries no meaning, as
/// [`crate::SERVER_NAME`]).
pub const VERIFIER_SERVER_NAME: &str = "verifier.enclave.invalid";

/// id-Ed25519 (RFC 8410).
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// Ed25519 public keys are 32 bytes.
const ED25519_PUBLIC_BYTES: usize = 32;

/// The Ed25519 key of an X.509 certificate (DER), or why there is none.
pub fn ed25519_key(der: &[u8]) -> Result<Vec<u8>, AttestedTlsError> {
    if der.len() > crate::extension::MAX_CERTIFICATE_BYTES {
        return Err(AttestedTlsError::Certificate(format!(
            "{} bytes is more than {}",
            der.len(),
            crate::extension::MAX_CERTIFICATE_BYTES
        )));
    }
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| AttestedTlsError::Certificate(e.to_string()))?;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid != ED25519 || spki.algorithm.parameters.is_some() {
        return Err(AttestedTlsError::Certificate(
            "certificate key is not an ed25519 key".into(),
        ));
    }
    spki.subject_public_key
        .as_bytes()
        .filter(|k| k.len() == ED25519_PUBLIC_BYTES)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| AttestedTlsError::Certificate("ed25519 key is not 32 bytes".into()))
}

/// The Ed25519 key pair as rcgen's certificate signing key.
struct EdKey(ring::signature::Ed25519KeyPair);

impl rcgen::PublicKeyData for EdKey {
    fn der_bytes(&self) -> &[u8] {
        use ring::signature::KeyPair as _;
        self.0.public_key().as_ref()
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ED25519
    }
}

impl rcgen::SigningKey for EdKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        Ok(self.0.sign(msg).as_ref().to_vec())
    }
}

/// The verifier's certificate: subject key = the Ed25519 key in `pkcs8`, self-signed.
pub fn verifier_certificate(pkcs8: &[u8]) -> Result<CertificateDer<'static>, AttestedTlsError> {
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
        .map_err(|e| AttestedTlsError::Build(format!("ed25519 key: {e}")))?;
    let mut params = rcgen::CertificateParams::default();
    // A positive 16-byte serial derived from the key: one certificate per verifier key.
    let mut serial = {
        use ring::signature::KeyPair as _;
        attestation::sha256(pair.public_key().as_ref())
    }
    .get(..16)
    .unwrap_or_default()
    .to_vec();
    if let Some(first) = serial.first_mut() {
        *first &= 0x7f;
    }
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, VERIFIER_SERVER_NAME);
    let cert = params
        .self_signed(&EdKey(pair))
        .map_err(|e| AttestedTlsError::Build(e.to_string()))?;
    Ok(cert.der().clone())
}

/// The verifier's TLS server: its certificate on the result-signing key in `pkcs8`, clients
/// admitted by `clients`, TLS 1.3 only, no resumption.
pub fn verifier_server_config(
    pkcs8: &[u8],
    clients: ClientAuth,
) -> Result<ServerConfig, AttestedTlsError> {
    let cert = verifier_certificate(pkcs8)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.to_vec()));
    let mut config = server_builder(clients)
        .and_then(|b| b.with_single_cert(vec![cert], key))
        .map_err(|e| AttestedTlsError::Build(e.to_string()))?;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// A kernel's client to the verifier whose result key is `pinned` (32 bytes); with
/// `identity`, it presents its attested certificate when asked.
pub fn verifier_client_config(
    pinned: &[u8],
    identity: Option<Arc<dyn ResolvesClientCert>>,
) -> Result<ClientConfig, AttestedTlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| AttestedTlsError::Build(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedVerifierKey::new(pinned)?));
    let mut config = match identity {
        Some(resolver) => builder.with_client_cert_resolver(resolver),
        None => builder.with_no_client_auth(),
    };
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// A rustls server-certificate verifier that accepts exactly one Ed25519 key.
#[derive(Debug)]
pub struct PinnedVerifierKey {
    key: Vec<u8>,
}

impl PinnedVerifierKey {
    /// Accepts servers holding `key` (a 32-byte Ed25519 public key).
    pub fn new(key: &[u8]) -> Result<Self, AttestedTlsError> {
        if key.len() != ED25519_PUBLIC_BYTES {
            return Err(AttestedTlsError::Build(format!(
                "the pinned verifier key has {} bytes, not {ED25519_PUBLIC_BYTES}",
                key.len()
            )));
        }
        Ok(Self { key: key.to_vec() })
    }

    fn pinned_key_of(&self, cert: &CertificateDer<'_>) -> Result<Vec<u8>, rustls::Error> {
        let key = ed25519_key(cert).map_err(refuse)?;
        if key != self.key {
            return Err(refuse(AttestedTlsError::Refused(
                "the server's key is not the pinned verifier key".into(),
            )));
        }
        Ok(key)
    }
}

fn refuse(e: AttestedTlsError) -> rustls::Error {
    tracing::debug!(error = %e, "verifier tls server refused");
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(e),
    )))
}

impl ServerCertVerifier for PinnedVerifierKey {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.pinned_key_of(end_entity)
            .map(|_| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General(
            "the verifier link is tls 1.3 only".into(),
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if dss.scheme != SignatureScheme::ED25519 {
            return Err(rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ));
        }
        let key = self.pinned_key_of(cert)?;
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
            .verify(message, dss.signature())
            .map(|()| HandshakeSignatureValid::assertion())
            .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::KeyPair as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn key() -> (Vec<u8>, Vec<u8>) {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
            .unwrap()
            .as_ref()
            .to_vec();
        let public = ring::signature::Ed25519KeyPair::from_pkcs8(&pkcs8)
            .unwrap()
            .public_key()
            .as_ref()
            .to_vec();
        (pkcs8, public)
    }

    /// One handshake over a real loopback socket; the server echoes one byte.
    async fn handshake(server_pkcs8: &[u8], pinned: &[u8]) -> Result<u8, String> {
        let server = Arc::new(verifier_server_config(server_pkcs8, ClientAuth::None).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let serve = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            if let Ok(mut tls) = tokio_rustls::TlsAcceptor::from(server).accept(tcp).await {
                let mut b = [0u8; 1];
                if tls.read_exact(&mut b).await.is_ok() {
                    let _ = tls.write_all(&b).await;
                    let _ = tls.flush().await;
                }
            }
        });
        let client = Arc::new(verifier_client_config(pinned, None).unwrap());
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from(VERIFIER_SERVER_NAME).unwrap();
        let result = async {
            let mut tls = tokio_rustls::TlsConnector::from(client)
                .connect(name, tcp)
                .await
                .map_err(|e| e.to_string())?;
            tls.write_all(&[42]).await.map_err(|e| e.to_string())?;
            let mut b = [0u8; 1];
            tls.read_exact(&mut b).await.map_err(|e| e.to_string())?;
            Ok(b[0])
        }
        .await;
        serve.abort();
        result
    }

    #[tokio::test]
    async fn the_pinned_key_is_accepted_and_any_other_refused() {
        let (pkcs8, public) = key();
        assert_eq!(handshake(&pkcs8, &public).await, Ok(42));
        let (_, other) = key();
        let err = handshake(&pkcs8, &other).await.unwrap_err();
        assert!(err.contains("not the pinned verifier key"), "{err}");
    }

    #[test]
    fn the_certificate_carries_exactly_the_result_key() {
        let (pkcs8, public) = key();
        let cert = verifier_certificate(&pkcs8).unwrap();
        assert_eq!(ed25519_key(&cert).unwrap(), public);
    }

    #[test]
    fn other_keys_and_bad_certificates_are_refused() {
        // An ECDSA certificate is not an Ed25519 one.
        let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::default()
            .self_signed(&p256)
            .unwrap();
        assert!(ed25519_key(cert.der()).is_err());
        // Every truncation and a sample of bit flips of a real certificate: a typed error or
        // (a flip outside the key) the same key, never a panic.
        let (pkcs8, _) = key();
        let der = verifier_certificate(&pkcs8).unwrap().to_vec();
        for n in 0..der.len() {
            assert!(ed25519_key(&der[..n]).is_err(), "truncated to {n}");
        }
        for i in 0..der.len() * 8 {
            let mut bad = der.clone();
            bad[i / 8] ^= 1 << (i % 8);
            if let Ok(k) = ed25519_key(&bad) {
                assert_eq!(k.len(), 32);
            }
        }
        assert!(PinnedVerifierKey::new(&[0; 31]).is_err());
    }
}
