//! Governance calls over attested TLS: the TLS server inside the CVM.
//!
//! Connections to [`TLS_PORT`] are TLS 1.3 terminated here, under a certificate whose key
//! is the kernel's attestation key and which carries its evidence bundle and the
//! verifier's result (the `attested-tls` crate); inside the TLS stream the protocol is the
//! same CBOR frames as on the plain governance port. The host proxy in front sees only
//! ciphertext, and a client that verifies the certificate with `attested_tls::PeerPolicy`
//! knows it reached an appraised kernel before it sends a byte.
//!
//! No evidence, no certificate: until the kernel is attested (unsealed, or attested for a
//! key ceremony it is running) and after it halts, the handshake fails, closed. The
//! certificate follows the kernel's newest affirming bundle and result
//! ([`crate::peer_link::KernelEvidence`]: re-attestation replaces them), rebuilt when they
//! change.
//!
//! Client certificates are optional: a governance client presents none; a peer kernel
//! presents its own attested certificate, appraised in the handshake under
//! [`crate::peer_link::peer_policy`] (a certificate that does not appraise ends the
//! handshake and is audited), and only such a peer may call peer methods
//! ([`crate::peer_link::handle`]).

use crate::kernel::{events, Kernel, IDLE_TIMEOUT_MS};
use crate::peer_link::{certificate_refusal, peer_policy};
use crate::transport::Stream;
use attested_tls::{ClientAuth, PeerPolicy};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Semaphore;
use wire::msg::{ErrorCode, Request, Response};

/// vsock port of the attested TLS server (next to [`wire::hybrid::GOVERNANCE_PORT`]).
pub const TLS_PORT: u32 = 5443;
/// Time a client has to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// TLS connections served at once; more are closed at once.
pub const MAX_TLS_CONNECTIONS: usize = 256;

/// The TLS side of [`Kernel::serve`]: accepts TLS on connections from [`TLS_PORT`].
pub struct TlsServer {
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    kernel: Weak<Kernel>,
    slots: Arc<Semaphore>,
    peers: PeerPolicy,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer")
            .field("ready", &self.acceptor.is_some())
            .finish_non_exhaustive()
    }
}

impl TlsServer {
    /// A server for `kernel`. If the TLS configuration cannot be built (a bug, not input),
    /// it is logged and every TLS connection is closed.
    pub fn new(kernel: &Arc<Kernel>) -> Self {
        let peers = peer_policy(kernel);
        let resolver = crate::peer_link::identity(kernel);
        // Governance clients come without a certificate; a peer kernel presents its own,
        // appraised in the handshake (crate::peer_link).
        let auth = ClientAuth::Optional(peers.clone());
        let acceptor = match attested_tls::server_config_with(resolver, auth) {
            Ok(config) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
            Err(e) => {
                tracing::error!(error = %e, "attested tls unavailable");
                None
            }
        };
        Self {
            acceptor,
            kernel: Arc::downgrade(kernel),
            slots: Arc::new(Semaphore::new(MAX_TLS_CONNECTIONS)),
            peers,
        }
    }

    /// Serves one connection from the TLS port in its own task.
    pub fn spawn(&self, stream: Box<dyn Stream>) {
        let (Some(acceptor), Ok(permit)) = (
            self.acceptor.clone(),
            Arc::clone(&self.slots).try_acquire_owned(),
        ) else {
            return;
        };
        let kernel = Weak::clone(&self.kernel);
        let peers = self.peers.clone();
        tokio::spawn(async move {
            serve_connection(acceptor, kernel, peers, stream).await;
            drop(permit);
        });
    }
}

async fn serve_connection(
    acceptor: tokio_rustls::TlsAcceptor,
    kernel: Weak<Kernel>,
    peers: PeerPolicy,
    stream: Box<dyn Stream>,
) {
    let handshake = tokio::time::timeout(
        Duration::from_millis(HANDSHAKE_TIMEOUT_MS),
        acceptor.accept(stream),
    );
    let mut tls = match handshake.await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "tls handshake failed");
            // A client certificate that did not appraise: a peer kernel (or someone posing
            // as one) refused, with the check that failed.
            if let (Some(reason), Some(k)) = (certificate_refusal(&e), kernel.upgrade()) {
                tracing::warn!(kernel = %k.cfg.kernel_id, %reason, "peer tls handshake refused");
                k.audit_event(
                    events::SIGNING,
                    "peer_tls",
                    &("refused", "tls_handshake", "", &reason),
                )
                .await;
            }
            return;
        }
        Err(_) => return,
    };
    // The appraised client identity (a peer kernel), or `None` for a governance client.
    let peer = match tls.get_ref().1.peer_certificates() {
        None => None,
        Some(certs) => match attested_tls::verify::peer_of(Some(certs), &peers) {
            Ok(p) => Some(p),
            Err(_) => return,
        },
    };
    loop {
        let read = tokio::time::timeout(
            Duration::from_millis(IDLE_TIMEOUT_MS),
            wire::read_frame(&mut tls),
        );
        let Ok(Ok(frame)) = read.await else {
            return;
        };
        let Some(k) = kernel.upgrade() else {
            return;
        };
        let (resp, close) = match wire::decode::<Request>(&frame) {
            Ok(req) => (
                crate::peer_link::handle(&k, req, peer.as_ref()).await,
                false,
            ),
            Err(e) => (Response::error(ErrorCode::BadRequest, e.to_string()), true),
        };
        let Ok(bytes) = wire::encode(&resp) else {
            return;
        };
        if wire::write_frame(&mut tls, &bytes).await.is_err() || close {
            return;
        }
    }
}
