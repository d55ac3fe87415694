//! Attested TLS through the host proxy, on top of the e2e [`Cluster`](super::common::Cluster):
//! a TLS route for one kernel (its own proxy in front of the enclave's TLS port), taps that
//! record every byte crossing the proxy, and attested clients. Shared by
//! `tests/e2e/attested_tls.rs`, `tests/e2e/peer_tls.rs` and the benches.
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
    tls_route_with(
        dir,
        vsock,
        via,
        stop,
        host::proxy::limits::Limits::default(),
    )
    .await
}

/// [`tls_route`] under `limits` instead of the defaults.
pub async fn tls_route_with(
    dir: &Path,
    vsock: &Path,
    via: Option<&Path>,
    stop: tokio::sync::watch::Receiver<bool>,
    limits: host::proxy::limits::Limits,
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
    config.limits = limits;
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

/// A kernel identity made by the test: a fresh attestation key, a software-platform bundle
/// bound to a verifier nonce, and the verifier's affirming result about it, for kernel `id`.
/// It can call peer methods as that kernel would: over mutually attested TLS, presenting
/// a certificate built from exactly these (the kernels' own certificate builder).
pub struct Attested {
    pub id: String,
    pub ak: Arc<attestation::ak::AttestationKey>,
    pub bundle: Vec<u8>,
    pub result: Vec<u8>,
}

/// Gets a test-made identity for `id` appraised by the verifier at `verifier`.
pub async fn attested_as(verifier: std::net::SocketAddr, id: &str) -> Attested {
    use attestation::bundle::{sign_bundle, BundleClaims, BUNDLE_VERSION};
    use attestation::{Attester, BindingValue, Level, Nonce};
    use wire::verifier::{VerifierRequest, VerifierResponse};
    let mut s = tokio::net::TcpStream::connect(verifier).await.unwrap();
    let ask = |r: VerifierRequest| wire::encode(&r).unwrap();
    wire::write_frame(
        &mut s,
        &ask(VerifierRequest::Nonce {
            kernel_id: id.into(),
        }),
    )
    .await
    .unwrap();
    let nonce = match wire::decode(&wire::read_frame(&mut s).await.unwrap()).unwrap() {
        VerifierResponse::Nonce { nonce, .. } => Nonce::from_slice(&nonce).unwrap(),
        other => panic!("no nonce: {other:?}"),
    };
    let ak = attestation::ak::AttestationKey::generate().unwrap();
    let draft = [5u8; 32];
    let item = attestation::software::SoftwareAttester::new()
        .unwrap()
        .collect(&BindingValue::compute(&nonce, ak.public_key(), &draft))
        .unwrap();
    let bundle = sign_bundle(
        &BundleClaims {
            version: BUNDLE_VERSION,
            kernel_id: id.into(),
            level: Level::L1,
            nonce: nonce.as_bytes().to_vec(),
            manifest_draft_hash: draft.to_vec(),
            ak_public: ak.public_key().to_vec(),
            key_exchange_public: attestation::sealing::KeyExchange::generate()
                .unwrap()
                .public_key()
                .to_vec(),
            created_at_ms: attestation::now_ms(),
            items: vec![item],
        },
        &ak,
    )
    .unwrap();
    wire::write_frame(
        &mut s,
        &ask(VerifierRequest::Appraise {
            bundle: bundle.clone(),
        }),
    )
    .await
    .unwrap();
    let result = match wire::decode(&wire::read_frame(&mut s).await.unwrap()).unwrap() {
        VerifierResponse::Appraised { result, status, .. } if status == "affirming" => result,
        other => panic!("not affirming: {other:?}"),
    };
    Attested {
        id: id.into(),
        ak: Arc::new(ak),
        bundle,
        result,
    }
}

impl Attested {
    /// Credentials as `enclave::frost` makes them (`enclave-peer-v1` framing).
    pub fn auth(
        &self,
        method: &str,
        session: &[u8],
        target: &str,
        payload: &[u8],
    ) -> wire::msg::PeerAuth {
        let mut m = b"enclave-peer-v1".to_vec();
        for part in [
            method.as_bytes(),
            session,
            target.as_bytes(),
            &attestation::sha256(payload)[..],
        ] {
            m.extend_from_slice(&u32::try_from(part.len()).unwrap().to_be_bytes());
            m.extend_from_slice(part);
        }
        wire::msg::PeerAuth {
            kernel_id: self.id.clone(),
            result: self.result.clone(),
            ak_public: self.ak.public_key().to_vec(),
            signature: self.ak.sign(&m).unwrap(),
        }
    }

    /// This identity with another result in its certificate (e.g. one the verifier did not
    /// sign).
    pub fn with_result(&self, result: Vec<u8>) -> Attested {
        Attested {
            id: self.id.clone(),
            ak: Arc::clone(&self.ak),
            bundle: self.bundle.clone(),
            result,
        }
    }

    /// A mutually attested TLS session to `socket` (a kernel's TLS route), presenting this
    /// identity's certificate and accepting the server under `policy`.
    pub async fn connect(&self, socket: &Path, policy: PeerPolicy) -> std::io::Result<TlsStream> {
        let identity = Arc::new(attested_tls::AttestedCertResolver::new(
            attested_tls::Evidence {
                bundle: self.bundle.clone(),
                result: self.result.clone(),
            },
            Arc::clone(&self.ak) as Arc<dyn attested_tls::AttestationSigner>,
        ));
        let config =
            attested_tls::client_config(policy, Some(identity)).map_err(std::io::Error::other)?;
        let s = UnixStream::connect(socket).await?;
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(attested_tls::SERVER_NAME.try_into().unwrap(), s)
            .await?;
        // TLS 1.3: the server judges the client certificate after the client's Finished;
        // a refusal arrives as an alert on the first read. Make it surface here.
        wire::write_frame(&mut tls, &wire::encode(&Request::Health).unwrap())
            .await
            .map_err(std::io::Error::other)?;
        wire::read_frame(&mut tls)
            .await
            .map_err(std::io::Error::other)?;
        Ok(tls)
    }

    /// One request over a fresh mutually attested session to `socket`.
    pub async fn try_call(
        &self,
        socket: &Path,
        policy: PeerPolicy,
        req: &Request,
    ) -> std::io::Result<Response> {
        let mut tls = self.connect(socket, policy).await?;
        Ok(tls_call(&mut tls, req).await)
    }
}
