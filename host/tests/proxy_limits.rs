//! The proxy's limits over real sockets: per-peer and proxy-wide connection limits, per-peer
//! rate, handshake deadlines against slow-loris clients, the TLS route with real rustls
//! handshakes (and what it refuses), and the Prometheus endpoint.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failed unwrap is a failed test"
)]

use host::proxy::metrics::MetricsSnapshot;
use host::transport::Endpoint;
use host::{Proxy, ProxyConfig, ProxyError, ProxyHandle, TlsRoute};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UnixListener, UnixStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wire::msg::{ErrorCode, HealthInfo, KernelState, Request, Response};

fn health_frame() -> Vec<u8> {
    wire::encode(&Response::Health(HealthInfo {
        kernel_id: "k1".into(),
        state: KernelState::Serving,
        level: "KEE1-L1".into(),
        reason: None,
        boot_to_serving_ms: None,
    }))
    .unwrap()
}

fn health_request() -> Vec<u8> {
    wire::encode(&Request::Health).unwrap()
}

/// A plain upstream on a Unix socket: answers every frame with [`health_frame`] and counts
/// the connections it was given.
fn frame_upstream(path: &Path) -> Arc<AtomicUsize> {
    let listener = UnixListener::bind(path).unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&connections);
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                while let Ok(_body) = wire::read_frame(&mut s).await {
                    if wire::write_frame(&mut s, &health_frame()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    connections
}

struct Running {
    handle: ProxyHandle,
    listen: Endpoint,
    tls: Option<Endpoint>,
    metrics: Option<Endpoint>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<MetricsSnapshot, ProxyError>>,
}

impl Running {
    async fn start(config: ProxyConfig) -> Running {
        let proxy = Proxy::bind(config).await.unwrap();
        let running = Running {
            handle: proxy.handle(),
            listen: proxy.listen_endpoint().unwrap(),
            tls: proxy.tls_endpoint().map(Result::unwrap),
            metrics: proxy.metrics_endpoint().map(Result::unwrap),
            stop: oneshot::channel().0,
            task: tokio::spawn(async { Ok(MetricsSnapshot::default()) }),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(proxy.run(async {
            let _ = stopped.await;
        }));
        Running {
            stop,
            task,
            ..running
        }
    }

    fn addr(&self) -> SocketAddr {
        match &self.listen {
            Endpoint::Tcp(a) => *a,
            other => panic!("not a tcp listener: {other}"),
        }
    }

    fn tls_path(&self) -> PathBuf {
        match &self.tls {
            Some(Endpoint::Unix(p)) => p.clone(),
            other => panic!("not a unix tls listener: {other:?}"),
        }
    }

    async fn stop(self) -> MetricsSnapshot {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap()
    }
}

/// A TCP client connecting from `source` (any 127.0.0.0/8 address is loopback on Linux, so
/// each test peer can have its own address).
async fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(format!("{source}:0").parse().unwrap()).unwrap();
    sock.connect(to).await.unwrap()
}

async fn call(s: &mut TcpStream, body: &[u8]) -> Result<Vec<u8>, wire::FrameError> {
    wire::write_frame(s, body).await?;
    wire::read_frame(s).await
}

fn error_code(frame: &[u8]) -> Option<ErrorCode> {
    match wire::decode::<Response>(frame).ok()? {
        Response::Error(e) => Some(e.code),
        _ => None,
    }
}

/// Whether the far end closed `s` (end of stream or reset) within five seconds.
async fn closed<S: AsyncReadExt + Unpin>(s: &mut S) -> bool {
    let mut buf = [0u8; 256];
    let read = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap_or(false)
}

fn tcp_config(dir: &Path) -> ProxyConfig {
    ProxyConfig::new(
        "tcp:127.0.0.1:0".parse().unwrap(),
        Endpoint::Unix(dir.join("enclave.sock")),
    )
}

#[tokio::test]
async fn connections_are_limited_per_peer_address() {
    let dir = tempfile::tempdir().unwrap();
    frame_upstream(&dir.path().join("enclave.sock"));
    let mut config = tcp_config(dir.path());
    config.limits.max_connections_per_peer = 3;
    let proxy = Running::start(config).await;

    let mut a = Vec::new();
    for _ in 0..3 {
        let mut c = connect_from("127.0.0.2", proxy.addr()).await;
        assert_eq!(
            call(&mut c, &health_request()).await.unwrap(),
            health_frame()
        );
        a.push(c);
    }
    // The fourth from the same address is refused busy ...
    let mut extra = connect_from("127.0.0.2", proxy.addr()).await;
    let refusal = wire::read_frame(&mut extra).await.unwrap();
    assert_eq!(error_code(&refusal), Some(ErrorCode::Busy));
    // ... while another address is served, and the first peer's connections still work.
    let mut b = connect_from("127.0.0.3", proxy.addr()).await;
    assert_eq!(
        call(&mut b, &health_request()).await.unwrap(),
        health_frame()
    );
    assert_eq!(
        call(&mut a[0], &health_request()).await.unwrap(),
        health_frame()
    );
    // A slot given back is free again.
    drop(a.pop());
    let mut again = None;
    for _ in 0..100 {
        let mut c = connect_from("127.0.0.2", proxy.addr()).await;
        let reply = call(&mut c, &health_request()).await.unwrap();
        if reply == health_frame() {
            again = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(again.is_some(), "the freed per-peer slot was never reused");
    let m = proxy.stop().await;
    assert!(m.inbound.refused_busy_peer >= 1);
    assert_eq!(m.inbound.refused_busy, 0);
    assert_eq!(m.inbound.refused_busy_total, 0);
}

#[tokio::test]
async fn the_total_limit_spans_every_listener() {
    let dir = tempfile::tempdir().unwrap();
    frame_upstream(&dir.path().join("enclave.sock"));
    let mut config = tcp_config(dir.path());
    config.tls = Some(TlsRoute {
        listen: Endpoint::Unix(dir.path().join("tls.sock")),
        enclave: Endpoint::Unix(dir.path().join("enclave.sock")),
    });
    config.limits.max_connections_total = 2;
    let proxy = Running::start(config).await;

    // One connection on each route fills the proxy-wide limit of two.
    let mut frames = connect_from("127.0.0.2", proxy.addr()).await;
    assert_eq!(
        call(&mut frames, &health_request()).await.unwrap(),
        health_frame()
    );
    let mut tls = UnixStream::connect(proxy.tls_path()).await.unwrap();
    // Wait until the TLS connection is counted open.
    for _ in 0..500 {
        if proxy.handle.metrics().inbound_tls.open == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(proxy.handle.metrics().inbound_tls.open, 1);
    // A third, on either route, is refused, although each listener has room of its own.
    let mut third = connect_from("127.0.0.3", proxy.addr()).await;
    let refusal = wire::read_frame(&mut third).await.unwrap();
    assert_eq!(error_code(&refusal), Some(ErrorCode::Busy));
    let mut fourth = UnixStream::connect(proxy.tls_path()).await.unwrap();
    assert!(closed(&mut fourth).await);
    tls.shutdown().await.unwrap();
    let m = proxy.stop().await;
    assert_eq!(m.inbound.refused_busy_total, 1);
    assert_eq!(m.inbound_tls.refused_busy_total, 1);
}

#[tokio::test]
async fn request_rate_is_shared_by_a_peers_connections() {
    let dir = tempfile::tempdir().unwrap();
    frame_upstream(&dir.path().join("enclave.sock"));
    let mut config = tcp_config(dir.path());
    config.limits.peer_requests_per_second = 0;
    config.limits.peer_request_burst = 4;
    let proxy = Running::start(config).await;

    // Four requests over two connections use the peer's whole burst ...
    let mut c1 = connect_from("127.0.0.2", proxy.addr()).await;
    let mut c2 = connect_from("127.0.0.2", proxy.addr()).await;
    for _ in 0..2 {
        assert_eq!(
            call(&mut c1, &health_request()).await.unwrap(),
            health_frame()
        );
        assert_eq!(
            call(&mut c2, &health_request()).await.unwrap(),
            health_frame()
        );
    }
    // ... so a fifth on a brand-new connection is refused,
    let mut c3 = connect_from("127.0.0.2", proxy.addr()).await;
    let refusal = call(&mut c3, &health_request()).await.unwrap();
    assert_eq!(error_code(&refusal), Some(ErrorCode::Busy));
    // while another peer has a bucket of its own.
    let mut other = connect_from("127.0.0.3", proxy.addr()).await;
    assert_eq!(
        call(&mut other, &health_request()).await.unwrap(),
        health_frame()
    );
    let m = proxy.stop().await;
    assert_eq!(m.inbound.refused_rate_peer, 1);
    assert_eq!(m.inbound.refused_rate, 0);
    assert_eq!(m.inbound.forwarded, 5);
}

#[tokio::test]
async fn slow_loris_clients_time_out_without_starving_others() {
    const SLOW: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    frame_upstream(&dir.path().join("enclave.sock"));
    let mut config = tcp_config(dir.path());
    config.limits.max_connections = SLOW + 8;
    config.limits.max_connections_per_peer = SLOW;
    config.limits.handshake_timeout_ms = 400;
    let proxy = Running::start(config).await;
    let addr = proxy.addr();

    // Each slow client trickles a valid frame header one byte at a time, slower than the
    // handshake deadline allows, and records whether the proxy cut it off.
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        slow.push(tokio::spawn(async move {
            let mut s = connect_from("127.0.0.2", addr).await;
            let frame = [0u8, 0, 0, 8, 0xa1, 0x66];
            for b in frame {
                if s.write_all(&[b]).await.is_err() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            closed(&mut s).await
        }));
    }
    // Meanwhile a well-behaved peer is served, over and over, on fresh connections too.
    for _ in 0..20 {
        let mut c = connect_from("127.0.0.3", addr).await;
        assert_eq!(
            call(&mut c, &health_request()).await.unwrap(),
            health_frame()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for s in slow {
        assert!(s.await.unwrap(), "a slow-loris client was never cut off");
    }
    let m = proxy.stop().await;
    assert_eq!(m.inbound.handshake_timeouts, SLOW as u64);
    assert_eq!(m.inbound.forwarded, 20);
    assert_eq!(m.inbound.refused_busy + m.inbound.refused_busy_peer, 0);
}

// ---------------------------------------------------------------------------------------
// The TLS route, with real rustls on both ends.

struct TlsPair {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

fn tls_pair() -> TlsPair {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["enclave.test".into()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsPair {
        server: Arc::new(server),
        client: Arc::new(client),
    }
}

/// A TLS server on a Unix socket that echoes every frame prefixed with `echo:`; counts the
/// connections it accepted.
fn tls_echo_server(path: &Path, config: Arc<rustls::ServerConfig>) -> Arc<AtomicUsize> {
    let listener = UnixListener::bind(path).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&connections);
    tokio::spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            seen.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(s).await else {
                    return;
                };
                while let Ok(body) = wire::read_frame(&mut tls).await {
                    let mut reply = b"echo:".to_vec();
                    reply.extend_from_slice(&body);
                    if wire::write_frame(&mut tls, &reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    connections
}

/// A tap between the proxy and the TLS server: forwards both ways and keeps every byte.
fn tap(listen: &Path, upstream: PathBuf) -> Arc<Mutex<Vec<u8>>> {
    let listener = UnixListener::bind(listen).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let (down, _) = listener.accept().await.unwrap();
            let up = UnixStream::connect(&upstream).await.unwrap();
            let (dr, dw) = down.into_split();
            let (ur, uw) = up.into_split();
            for (mut from, mut to, keep) in [
                (
                    Box::new(dr) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                    Box::new(uw) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
                    Arc::clone(&keep),
                ),
                (Box::new(ur) as _, Box::new(dw) as _, Arc::clone(&keep)),
            ] {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = match from.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        keep.lock().unwrap().extend_from_slice(&buf[..n]);
                        if to.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        }
    });
    seen
}

fn tls_config(dir: &Path, upstream: &Path) -> ProxyConfig {
    let mut config = tcp_config(dir);
    config.tls = Some(TlsRoute {
        listen: Endpoint::Unix(dir.join("tls.sock")),
        enclave: Endpoint::Unix(upstream.to_path_buf()),
    });
    config
}

async fn tls_connect(
    proxy: &Running,
    client: Arc<rustls::ClientConfig>,
) -> tokio_rustls::client::TlsStream<UnixStream> {
    let s = UnixStream::connect(proxy.tls_path()).await.unwrap();
    tokio_rustls::TlsConnector::from(client)
        .connect("enclave.test".try_into().unwrap(), s)
        .await
        .unwrap()
}

#[tokio::test]
async fn tls_route_carries_real_handshakes_and_only_ciphertext() {
    let dir = tempfile::tempdir().unwrap();
    let pair = tls_pair();
    tls_echo_server(&dir.path().join("server.sock"), Arc::clone(&pair.server));
    let seen = tap(&dir.path().join("tap.sock"), dir.path().join("server.sock"));
    let proxy = Running::start(tls_config(dir.path(), &dir.path().join("tap.sock"))).await;

    let secret = b"the share-wrapping key is under the doormat";
    let mut tls = tls_connect(&proxy, Arc::clone(&pair.client)).await;
    for _ in 0..3 {
        wire::write_frame(&mut tls, secret).await.unwrap();
        let reply = wire::read_frame(&mut tls).await.unwrap();
        assert_eq!(&reply[5..], secret);
    }
    // A second client, concurrently open.
    let mut tls2 = tls_connect(&proxy, Arc::clone(&pair.client)).await;
    wire::write_frame(&mut tls2, b"second").await.unwrap();
    assert_eq!(wire::read_frame(&mut tls2).await.unwrap(), b"echo:second");
    drop((tls, tls2));

    let captured = seen.lock().unwrap().clone();
    assert!(captured.len() > 1000, "the tap saw the handshakes");
    let contains = |needle: &[u8]| captured.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(secret) && !contains(b"doormat") && !contains(b"echo:"));
    let m = proxy.stop().await;
    assert_eq!(m.inbound_tls.accepted, 2);
    assert!(m.inbound_tls.forwarded >= 5, "{:?}", m.inbound_tls);
    assert!(m.inbound_tls.bytes_up > 0 && m.inbound_tls.bytes_down > 0);
    assert_eq!(m.inbound_tls.refusals(), 0, "{:?}", m.inbound_tls);
}

#[tokio::test]
async fn tls_route_refuses_what_is_not_tls_before_reaching_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let pair = tls_pair();
    let accepted = tls_echo_server(&dir.path().join("server.sock"), Arc::clone(&pair.server));
    let mut config = tls_config(dir.path(), &dir.path().join("server.sock"));
    config.limits.record_limit_bytes = 4096;
    let proxy = Running::start(config).await;

    // Plain HTTP: content type 'G' is no TLS record.
    let mut http = UnixStream::connect(proxy.tls_path()).await.unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(closed(&mut http).await);
    // A well-formed record that is not a handshake may not open a connection.
    let mut early = UnixStream::connect(proxy.tls_path()).await.unwrap();
    early
        .write_all(&[23, 3, 3, 0, 4, 1, 2, 3, 4])
        .await
        .unwrap();
    assert!(closed(&mut early).await);
    // A heartbeat record (type 24) is refused.
    let mut heartbeat = UnixStream::connect(proxy.tls_path()).await.unwrap();
    heartbeat
        .write_all(&[24, 3, 3, 0, 3, 1, 0, 0])
        .await
        .unwrap();
    assert!(closed(&mut heartbeat).await);
    // A record above the configured limit is refused before its body is read.
    let mut big = UnixStream::connect(proxy.tls_path()).await.unwrap();
    big.write_all(&[22, 3, 1, 0x20, 0x00]).await.unwrap();
    assert!(closed(&mut big).await);

    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "garbage reached the server"
    );
    // A real client still gets through.
    let mut tls = tls_connect(&proxy, Arc::clone(&pair.client)).await;
    wire::write_frame(&mut tls, b"ok").await.unwrap();
    assert_eq!(wire::read_frame(&mut tls).await.unwrap(), b"echo:ok");
    let m = proxy.stop().await;
    assert_eq!(m.inbound_tls.refused_garbage, 3);
    assert_eq!(m.inbound_tls.refused_oversize, 1);
}

#[tokio::test]
async fn tls_handshakes_that_never_finish_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let pair = tls_pair();
    tls_echo_server(&dir.path().join("server.sock"), Arc::clone(&pair.server));
    let mut config = tls_config(dir.path(), &dir.path().join("server.sock"));
    config.limits.handshake_timeout_ms = 300;
    let proxy = Running::start(config).await;

    // A real ClientHello, then silence: the server answers with its whole flight, but the
    // client never sends its Finished.
    let mut conn =
        rustls::ClientConnection::new(Arc::clone(&pair.client), "enclave.test".try_into().unwrap())
            .unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    let mut stalled = UnixStream::connect(proxy.tls_path()).await.unwrap();
    stalled.write_all(&hello).await.unwrap();
    assert!(closed(&mut stalled).await);

    // Finished handshakes are not subject to the handshake deadline: a client that is
    // slower than it between requests (but within the idle timeout) keeps its connection.
    let mut tls = tls_connect(&proxy, Arc::clone(&pair.client)).await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        wire::write_frame(&mut tls, b"still here").await.unwrap();
        assert_eq!(
            wire::read_frame(&mut tls).await.unwrap(),
            b"echo:still here"
        );
    }
    let m = proxy.stop().await;
    assert_eq!(m.inbound_tls.handshake_timeouts, 1);
    assert_eq!(m.inbound_tls.idle_timeouts, 0);
}

// ---------------------------------------------------------------------------------------
// Prometheus.

async fn http_get(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// The value of one sample line in Prometheus text.
pub fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample `{series}` in:\n{text}"))
}

#[tokio::test]
async fn refusals_are_exported_as_prometheus_text() {
    let dir = tempfile::tempdir().unwrap();
    frame_upstream(&dir.path().join("enclave.sock"));
    let mut config = tcp_config(dir.path());
    config.metrics_listen = Some("tcp:127.0.0.1:0".parse().unwrap());
    config.limits.frame_limit_bytes = 256;
    let proxy = Running::start(config).await;
    let Some(Endpoint::Tcp(metrics)) = proxy.metrics.clone() else {
        panic!("no metrics endpoint");
    };

    let mut ok = connect_from("127.0.0.2", proxy.addr()).await;
    assert_eq!(
        call(&mut ok, &health_request()).await.unwrap(),
        health_frame()
    );
    let mut big = connect_from("127.0.0.2", proxy.addr()).await;
    big.write_all(&1000u32.to_be_bytes()).await.unwrap();
    assert_eq!(
        error_code(&wire::read_frame(&mut big).await.unwrap()),
        Some(ErrorCode::BadRequest)
    );

    // The refused connection is closed once the client has read the refusal.
    assert!(closed(&mut big).await);
    drop(big);
    for _ in 0..500 {
        if proxy.handle.metrics().inbound.open == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let reply = http_get(metrics, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert_eq!(
        sample(
            body,
            "enclave_proxy_refusals_total{route=\"inbound\",reason=\"oversize\"}"
        ),
        1
    );
    assert_eq!(
        sample(
            body,
            "enclave_proxy_connections_accepted_total{route=\"inbound\"}"
        ),
        2
    );
    assert_eq!(
        sample(body, "enclave_proxy_forwarded_total{route=\"inbound\"}"),
        1
    );
    assert_eq!(
        sample(body, "enclave_proxy_connections_open{route=\"inbound\"}"),
        1
    );

    assert!(http_get(metrics, "GET /other HTTP/1.1\r\n\r\n")
        .await
        .starts_with("HTTP/1.1 404"));
    assert!(http_get(metrics, "DELETE /metrics HTTP/1.1\r\n\r\n")
        .await
        .starts_with("HTTP/1.1 405"));
    assert!(http_get(metrics, "\x16\x03\x01\x00\x10garbage\r\n\r\n")
        .await
        .starts_with("HTTP/1.1 400"));
    proxy.stop().await;
}

#[tokio::test]
async fn egress_routes_can_carry_tls_records() {
    // A guest (the enclave) dialing a peer kernel's TLS route through its own proxy: host
    // vsock port 5201 is allowlisted with `carry = "tls"`.
    let dir = tempfile::tempdir().unwrap();
    let pair = tls_pair();
    tls_echo_server(&dir.path().join("peer.sock"), Arc::clone(&pair.server));
    let uds = dir.path().join("enclave.sock");
    let mut config = ProxyConfig::new(
        "tcp:127.0.0.1:0".parse().unwrap(),
        Endpoint::Hybrid {
            uds: uds.clone(),
            port: host::transport::VsockPort(5000),
        },
    );
    config.egress_tls = vec![
        format!("5201=unix:{}", dir.path().join("peer.sock").display())
            .parse()
            .unwrap(),
    ];
    let proxy = Running::start(config).await;
    let guest_side = wire::hybrid::guest_initiated_path(&uds, 5201);
    let s = UnixStream::connect(&guest_side).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::clone(&pair.client))
        .connect("enclave.test".try_into().unwrap(), s)
        .await
        .unwrap();
    wire::write_frame(&mut tls, b"frost_commit").await.unwrap();
    assert_eq!(
        wire::read_frame(&mut tls).await.unwrap(),
        b"echo:frost_commit"
    );
    // Plain frames are not TLS records: refused on this route.
    let mut plain = UnixStream::connect(&guest_side).await.unwrap();
    wire::write_frame(&mut plain, &health_request())
        .await
        .unwrap();
    assert!(closed(&mut plain).await);
    drop(tls);
    let m = proxy.stop().await;
    assert_eq!(m.egress.accepted, 2);
    assert_eq!(m.egress.refused_garbage, 1);
    assert!(m.egress.forwarded >= 2);
    assert_eq!(m.inbound_tls.accepted, 0);
}
