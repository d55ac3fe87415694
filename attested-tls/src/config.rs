//! rustls configurations for attested links: TLS 1.3 only, ring provider, the AK as the only
//! key, the attested verifiers as the only trust, and no session resumption (a resumed
//! session would skip the appraisal, and the result it relied on may have expired).

use crate::cert::{AttestedCertResolver, EvidenceSource};
use crate::verify::{AttestedClientVerifier, AttestedServerVerifier, PeerPolicy};
use rustls::client::ResolvesClientCert;
use rustls::{ClientConfig, ServerConfig};
use std::sync::Arc;

/// The server name clients send. It carries no meaning: a kernel is identified by the
/// kernel id in its verified evidence, not by a name the host could route anywhere.
pub const SERVER_NAME: &str = "kernel.enclave.invalid";

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Which clients a server lets in.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// Anyone (the client authenticates the server only).
    None,
    /// Anyone without a certificate; a client that presents one must pass the policy
    /// (governance clients and peer kernels on one port).
    Optional(PeerPolicy),
    /// Only clients presenting an attested certificate that passes the policy.
    Required(PeerPolicy),
}

/// A server presenting `resolver`'s attested certificate; with `clients`, every client must
/// present an attested certificate passing that policy (kernel-to-kernel links).
pub fn server_config<S: EvidenceSource + 'static>(
    resolver: Arc<AttestedCertResolver<S>>,
    clients: Option<PeerPolicy>,
) -> Result<ServerConfig, rustls::Error> {
    server_config_with(
        resolver,
        clients.map_or(ClientAuth::None, ClientAuth::Required),
    )
}

/// A server presenting `resolver`'s attested certificate to clients admitted by `clients`.
pub fn server_config_with<S: EvidenceSource + 'static>(
    resolver: Arc<AttestedCertResolver<S>>,
    clients: ClientAuth,
) -> Result<ServerConfig, rustls::Error> {
    let builder = server_builder(clients)?;
    let mut config = builder.with_cert_resolver(resolver);
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// TLS 1.3, the ring provider, and the client verifier `clients` asks for; the caller adds
/// the certificate.
pub(crate) fn server_builder(
    clients: ClientAuth,
) -> Result<rustls::ConfigBuilder<ServerConfig, rustls::server::WantsServerCert>, rustls::Error> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    Ok(match clients {
        ClientAuth::Required(policy) => {
            builder.with_client_cert_verifier(Arc::new(AttestedClientVerifier::new(policy)))
        }
        ClientAuth::Optional(policy) => {
            builder.with_client_cert_verifier(Arc::new(AttestedClientVerifier::optional(policy)))
        }
        ClientAuth::None => builder.with_no_client_auth(),
    })
}

/// A client that accepts only servers passing `policy`; with `identity`, it presents its
/// own attested certificate when asked (kernel-to-kernel links).
pub fn client_config(
    policy: PeerPolicy,
    identity: Option<Arc<dyn ResolvesClientCert>>,
) -> Result<ClientConfig, rustls::Error> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AttestedServerVerifier::new(policy)));
    let mut config = match identity {
        Some(resolver) => builder.with_client_cert_resolver(resolver),
        None => builder.with_no_client_auth(),
    };
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}
