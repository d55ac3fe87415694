//! Attested TLS through the host proxy, on top of the e2e [`Cluster`](super::common::Cluster):
//! a TLS route for one kernel (its own proxy in front of the enclave's TLS port), taps that
//! record every byte crossing the proxy, and attested clients. Shared by
//! `tests/attested_tls.rs` and `benches/tls.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test and bench code: any failure should stop the run loudly"
)]
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the helpers"
)]

use attested_tls::PeerPolicy;
use host::{Endpoint, Proxy, ProxyConfig, ProxyHandle, TlsRoute};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use wire::msg::{Request, Response};

/// Every byte a [`tap`] saw, both directions together.
pub type Capture = Arc<Mutex<Vec<u8>>>;

/// A transparent relay from `listen` to `upstream` that keeps a copy of every byte.
pub fn tap(listen: &Path, upstream: PathBuf) -> Capture {
    let listener = UnixListener::bind(listen).unwrap();
    let seen: Capture = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((down, _)) = listener.accept().await else {
                return;
            };
            let Ok(up) = UnixStream::connect(&upstream).await else {
                continue;
            };
            let (dr, dw) = down.into_split();
            let (ur, uw) = up.into_split();
            spawn_copy(dr, uw, Arc::clone(&keep));
            spawn_copy(ur, dw, Arc::clone(&keep));
        }
    });
    seen
}

fn spawn_copy(
    mut from: impl AsyncReadExt + Unpin + Send + 'static,
    mut to: impl AsyncWriteExt + Unpin + Send + 'static,
    keep: Capture,
) {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown().await;
                    return;
                }
                Ok(n) => n,
            };
            keep.lock().unwrap().extend_from_slice(&buf[..n]);
            if to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    });
}

/// Whether `needle` occurs anywhere in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A kernel's TLS route: a proxy with a TLS listener in front of the kernel's TLS port.
pub struct TlsRouteRunning {
    /// Where TLS clients connect.
    pub listen: PathBuf,
    /// The proxy's counters.
    pub proxy: ProxyHandle,
}

/// Starts a proxy whose TLS route reaches the kernel whose hybrid vsock socket is `vsock`
/// (through `via` instead, if given: e.g. a [`tap`] in front of it). The frame route of this
/// proxy is unused. It stops when `stop` fires.
pub async fn tls_route(
    dir: &Path,
    vsock: &Path,
    via: Option<&Path>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> TlsRouteRunning {
    let listen = dir.join("tls.sock");
    let mut config = ProxyConfig::new(
        Endpoint::Unix(dir.join("unused-frames.sock")),
        Endpoint::Hybrid {
            uds: vsock.to_path_buf(),
            port: host::transport::VsockPort(wire::hybrid::GOVERNANCE_PORT),
        },
    );
    config.tls = Some(TlsRoute {
        listen: Endpoint::Unix(listen.clone()),
        enclave: Endpoint::Hybrid {
            uds: via.unwrap_or(vsock).to_path_buf(),
            port: host::transport::VsockPort(enclave::tls::TLS_PORT),
        },
    });
    let proxy = Proxy::bind(config).await.unwrap();
    let handle = proxy.handle();
    let mut stop = stop;
    tokio::spawn(proxy.run(async move {
        let _ = stop.changed().await;
    }));
    TlsRouteRunning {
        listen,
        proxy: handle,
    }
}

/// An attested TLS connection to a kernel.
pub type TlsStream = tokio_rustls::client::TlsStream<UnixStream>;

/// Connects to `socket` and completes an attested handshake under `policy`.
pub async fn connect(socket: &Path, policy: PeerPolicy) -> std::io::Result<TlsStream> {
    let config = attested_tls::client_config(policy, None).map_err(std::io::Error::other)?;
    let s = UnixStream::connect(socket).await?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(attested_tls::SERVER_NAME.try_into().unwrap(), s)
        .await
}

/// One request and its response over an attested connection.
pub async fn tls_call(tls: &mut TlsStream, req: &Request) -> Response {
    wire::write_frame(tls, &wire::encode(req).unwrap())
        .await
        .unwrap();
    wire::decode(&wire::read_frame(tls).await.unwrap()).unwrap()
}
