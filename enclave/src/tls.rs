//! Governance calls over attested TLS: the TLS server inside the CVM.
//!
//! Connections to [`TLS_PORT`] are TLS 1.3 terminated here, under a certificate whose key
//! is the kernel's attestation key and which carries its evidence bundle and the
//! verifier's result (the `attested-tls` crate); inside the TLS stream the protocol is the
//! same CBOR frames as on the plain governance port. The host proxy in front sees only
//! ciphertext, and a client that verifies the certificate with `attested_tls::PeerPolicy`
//! knows it reached an appraised kernel before it sends a byte.
//!
//! No evidence, no certificate: until the kernel is unsealed (and after it halts) the
//! handshake fails, closed. The certificate follows the kernel's current bundle and result
//! ([`KernelEvidence`]), rebuilt when they change.

use crate::kernel::{Kernel, IDLE_TIMEOUT_MS};
use crate::transport::Stream;
use attestation::ak::AkError;
use attested_tls::{AttestationSigner, AttestedCertResolver, Evidence, EvidenceSource};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Semaphore;
use wire::msg::{ErrorCode, KernelState, Request, Response};

/// vsock port of the attested TLS server (next to [`wire::hybrid::GOVERNANCE_PORT`]).
pub const TLS_PORT: u32 = 5443;
/// Time a client has to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// TLS connections served at once; more are closed at once.
pub const MAX_TLS_CONNECTIONS: usize = 256;

/// The kernel's current evidence: the bundle and result of its unsealed state, while it
/// serves.
#[derive(Debug)]
struct KernelEvidence(Weak<Kernel>);

impl EvidenceSource for KernelEvidence {
    fn current(&self) -> Option<Evidence> {
        let kernel = self.0.upgrade()?;
        if kernel.health().state != KernelState::Serving {
            return None;
        }
        let unsealed = kernel.unsealed()?;
        let u = unsealed.read().ok()?;
        Some(Evidence {
            bundle: u.bundle.clone(),
            result: u.result.clone(),
        })
    }
}

/// The kernel's attestation key, signing through the kernel.
#[derive(Debug)]
struct KernelAk {
    kernel: Weak<Kernel>,
    public: Vec<u8>,
}

impl AttestationSigner for KernelAk {
    fn public_key(&self) -> &[u8] {
        &self.public
    }
    fn sign_fixed(&self, msg: &[u8]) -> Result<Vec<u8>, AkError> {
        self.kernel.upgrade().ok_or(AkError::Sign)?.ak.sign(msg)
    }
}

/// The TLS side of [`Kernel::serve`]: accepts TLS on connections from [`TLS_PORT`].
pub struct TlsServer {
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    kernel: Weak<Kernel>,
    slots: Arc<Semaphore>,
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
        let signer = Arc::new(KernelAk {
            kernel: Arc::downgrade(kernel),
            public: kernel.ak.public_key().to_vec(),
        });
        let resolver = Arc::new(AttestedCertResolver::new(
            KernelEvidence(Arc::downgrade(kernel)),
            signer as Arc<dyn AttestationSigner>,
        ));
        let acceptor = match attested_tls::server_config(resolver, None) {
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
        tokio::spawn(async move {
            serve_connection(acceptor, kernel, stream).await;
            drop(permit);
        });
    }
}

async fn serve_connection(
    acceptor: tokio_rustls::TlsAcceptor,
    kernel: Weak<Kernel>,
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
            return;
        }
        Err(_) => return,
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
            Ok(req) => (k.handle(req).await, false),
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
