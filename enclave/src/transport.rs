//! How the enclave reaches the world: only through vsock, via the host proxy.
//!
//! * In a CVM: AF_VSOCK (`tokio-vsock`); the enclave listens on [`GOVERNANCE_PORT`] (CBOR
//!   frames) and [`crate::tls::TLS_PORT`] (the same calls over attested TLS) and dials the
//!   host (CID 2) on the verifier and peer ports.
//! * In development: the Firecracker hybrid-vsock convention over Unix sockets — the enclave
//!   listens on its `uds` and answers `CONNECT <port>`, and dials host port `P` at `<uds>_P`.
//!   The same proxy code runs on the host side in both cases.

use std::path::PathBuf;
use tokio::io::{AsyncRead, AsyncWrite};
use wire::hybrid::{self, GOVERNANCE_PORT};

/// vsock CID of the host.
pub const HOST_CID: u32 = 2;

/// A bidirectional byte stream.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Which vsock the enclave uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vsock {
    /// Hybrid vsock over the Unix socket at this path (development).
    Hybrid(PathBuf),
    /// Real AF_VSOCK (inside a CVM).
    Kernel,
}

/// The ports the enclave serves, in [`Listener::accept_port`]'s answers.
pub const SERVED_PORTS: [u32; 2] = [GOVERNANCE_PORT, crate::tls::TLS_PORT];

/// Errors of the transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// "could not reach host port {port}".
    #[error("could not reach host port {port}")]
    Dial {
        /// Host vsock port.
        port: u32,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// "could not listen on vsock".
    #[error("could not listen on vsock")]
    Listen(#[source] std::io::Error),
    /// "handshake failed".
    #[error("hybrid vsock handshake failed")]
    Handshake(#[from] hybrid::HybridError),
}

impl Vsock {
    /// Opens a connection to host `port`.
    pub async fn dial(&self, port: u32) -> Result<Box<dyn Stream>, TransportError> {
        match self {
            Vsock::Hybrid(uds) => {
                let path = hybrid::guest_initiated_path(uds, port);
                let s = tokio::net::UnixStream::connect(&path)
                    .await
                    .map_err(|source| TransportError::Dial { port, source })?;
                Ok(Box::new(s))
            }
            Vsock::Kernel => {
                let addr = tokio_vsock::VsockAddr::new(HOST_CID, port);
                let s = tokio_vsock::VsockStream::connect(addr)
                    .await
                    .map_err(|source| TransportError::Dial { port, source })?;
                Ok(Box::new(s))
            }
        }
    }

    /// Starts listening for the host's connections to [`GOVERNANCE_PORT`].
    pub fn listen(&self) -> Result<Listener, TransportError> {
        match self {
            Vsock::Hybrid(uds) => {
                let _ = std::fs::remove_file(uds);
                let l = tokio::net::UnixListener::bind(uds).map_err(TransportError::Listen)?;
                Ok(Listener::Hybrid(l, uds.clone()))
            }
            Vsock::Kernel => {
                let bind = |port| {
                    let addr = tokio_vsock::VsockAddr::new(tokio_vsock::VMADDR_CID_ANY, port);
                    tokio_vsock::VsockListener::bind(addr).map_err(TransportError::Listen)
                };
                Ok(Listener::Kernel(
                    bind(GOVERNANCE_PORT)?,
                    bind(crate::tls::TLS_PORT)?,
                ))
            }
        }
    }
}

/// A listening vsock.
#[derive(Debug)]
pub enum Listener {
    /// Hybrid (Unix socket) listener and its path (removed on drop).
    Hybrid(tokio::net::UnixListener, PathBuf),
    /// AF_VSOCK listeners: governance port, TLS port.
    Kernel(tokio_vsock::VsockListener, tokio_vsock::VsockListener),
}

impl Listener {
    /// Accepts the next connection on any served port; for hybrid, completes the `CONNECT`
    /// handshake.
    pub async fn accept(&mut self) -> Result<Box<dyn Stream>, TransportError> {
        self.accept_port().await.map(|(s, _)| s)
    }

    /// Accepts the next connection and says which of [`SERVED_PORTS`] it came in on.
    pub async fn accept_port(&mut self) -> Result<(Box<dyn Stream>, u32), TransportError> {
        match self {
            Listener::Hybrid(l, _) => {
                let (mut s, _) = l.accept().await.map_err(TransportError::Listen)?;
                let port = match tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    hybrid::accept(&mut s, &SERVED_PORTS),
                )
                .await
                {
                    Ok(r) => r?,
                    Err(_) => {
                        return Err(TransportError::Handshake(hybrid::HybridError::Malformed))
                    }
                };
                Ok((Box::new(s), port))
            }
            Listener::Kernel(governance, tls) => {
                let (s, port) = tokio::select! {
                    a = governance.accept() => (a, GOVERNANCE_PORT),
                    a = tls.accept() => (a, crate::tls::TLS_PORT),
                };
                let (s, _) = s.map_err(TransportError::Listen)?;
                Ok((Box::new(s), port))
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Hybrid(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Sends one request frame and reads one response frame.
pub async fn call<Req: serde::Serialize, Resp: serde::de::DeserializeOwned>(
    stream: &mut dyn Stream,
    req: &Req,
) -> Result<Resp, CallError> {
    let bytes = wire::encode(req).map_err(CallError::Codec)?;
    wire::write_frame(stream, &bytes)
        .await
        .map_err(CallError::Frame)?;
    let frame = wire::read_frame(stream).await.map_err(CallError::Frame)?;
    wire::decode(&frame).map_err(CallError::Codec)
}

/// Errors of a request/response exchange.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Framing or i/o.
    #[error("connection failed")]
    Frame(#[source] wire::FrameError),
    /// Encoding.
    #[error("message could not be coded")]
    Codec(#[source] wire::CodecError),
}
