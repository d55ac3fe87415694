//! The proxy over real sockets: a fake enclave speaking the guest side of hybrid vsock, a
//! TCP destination for egress, and clients that misbehave in every way the limits cover.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failed unwrap is a failed test"
)]

use host::proxy::egress::EgressRule;
use host::proxy::inbound::Allowlist;
use host::proxy::metrics::MetricsSnapshot;
use host::transport::Endpoint;
use host::{Proxy, ProxyConfig, ProxyError, ProxyHandle};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use wire::hybrid::{GOVERNANCE_PORT, VERIFIER_PORT};
use wire::msg::{ErrorCode, ErrorInfo, HealthInfo, KernelState, Request, Response};

/// The one answer the fake enclave gives.
fn health_frame() -> Vec<u8> {
    wire::encode(&Response::Health(HealthInfo {
        kernel_id: "k1".into(),
        state: KernelState::Serving,
        level: "KEE1-L1".into(),
        reason: None,
        boot_to_serving_ms: Some(42),
    }))
    .unwrap()
}

/// A request for any method name, known to the enclave or not.
fn request(method: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct Raw<'a> {
        method: &'a str,
    }
    wire::encode(&Raw { method }).unwrap()
}

/// A fake enclave on `uds`: guest side of the hybrid handshake for the governance port,
/// then every request frame is reported on the channel and answered with [`health_frame`].
fn fake_enclave(uds: &Path) -> mpsc::UnboundedReceiver<Vec<u8>> {
    let listener = UnixListener::bind(uds).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                if wire::hybrid::accept(&mut s, &[GOVERNANCE_PORT])
                    .await
                    .is_err()
                {
                    return;
                }
                while let Ok(body) = wire::read_frame(&mut s).await {
                    let _ = tx.send(body);
                    wire::write_frame(&mut s, &health_frame()).await.unwrap();
                }
            });
        }
    });
    rx
}

/// A TCP destination that answers each frame with `echo:` followed by the frame.
async fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                while let Ok(body) = wire::read_frame(&mut s).await {
                    let mut reply = b"echo:".to_vec();
                    reply.extend_from_slice(&body);
                    wire::write_frame(&mut s, &reply).await.unwrap();
                }
            });
        }
    });
    addr
}

struct Running {
    handle: ProxyHandle,
    listen: PathBuf,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<MetricsSnapshot, ProxyError>>,
}

impl Running {
    async fn client(&self) -> UnixStream {
        UnixStream::connect(&self.listen).await.unwrap()
    }

    async fn stop(self) -> MetricsSnapshot {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap()
    }
}

struct Setup {
    dir: tempfile::TempDir,
    enclave_uds: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let enclave_uds = dir.path().join("enclave.sock");
        Self { dir, enclave_uds }
    }

    fn config(&self) -> ProxyConfig {
        ProxyConfig::new(
            Endpoint::Unix(self.dir.path().join("public.sock")),
            Endpoint::Hybrid {
                uds: self.enclave_uds.clone(),
                port: host::transport::VsockPort(GOVERNANCE_PORT),
            },
        )
    }

    async fn start(&self, config: ProxyConfig) -> Running {
        let listen = match &config.listen {
            Endpoint::Unix(p) => p.clone(),
            other => panic!("tests listen on unix sockets, not {other}"),
        };
        let proxy = Proxy::bind(config).await.unwrap();
        let handle = proxy.handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(proxy.run(async {
            let _ = stopped.await;
        }));
        Running {
            handle,
            listen,
            stop,
            task,
        }
    }
}

async fn call(s: &mut UnixStream, body: &[u8]) -> Vec<u8> {
    wire::write_frame(s, body).await.unwrap();
    wire::read_frame(s).await.unwrap()
}

fn error_of(frame: &[u8]) -> ErrorInfo {
    match wire::decode::<Response>(frame).unwrap() {
        Response::Error(info) => info,
        other => panic!("expected an error response, got {other:?}"),
    }
}

/// Whether the server closed `s` (a read sees end of stream).
async fn is_closed(s: &mut UnixStream) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(5), wire::read_frame(s)).await,
        Ok(Err(wire::FrameError::Closed))
    )
}

#[tokio::test]
async fn allowlisted_requests_are_forwarded_byte_identical() {
    let setup = Setup::new();
    let mut seen = fake_enclave(&setup.enclave_uds);
    let proxy = setup.start(setup.config()).await;
    let mut c = proxy.client().await;

    let health = wire::encode(&Request::Health).unwrap();
    assert_eq!(call(&mut c, &health).await, health_frame());
    assert_eq!(seen.recv().await.unwrap(), health);

    // Parameters the proxy does not understand pass through untouched.
    let sign = wire::encode(&Request::SignDigest(wire::msg::SignDigestParams {
        digest: vec![0xab; 32],
    }))
    .unwrap();
    assert_eq!(call(&mut c, &sign).await, health_frame());
    assert_eq!(seen.recv().await.unwrap(), sign);

    let m = proxy.handle.metrics();
    assert_eq!(m.inbound.accepted, 1);
    assert_eq!(m.inbound.forwarded, 2);
    assert_eq!(m.inbound.upstream_errors, 0);
    proxy.stop().await;
}

#[tokio::test]
async fn refusals_are_counted_and_never_affect_other_clients() {
    let setup = Setup::new();
    let mut seen = fake_enclave(&setup.enclave_uds);
    let mut config = setup.config();
    config.limits.frame_limit_bytes = 1024;
    config.allow = Allowlist::new(["health", "manifest"]).unwrap();
    let proxy = setup.start(config).await;

    // A well-behaved client that stays connected throughout.
    let mut bystander = proxy.client().await;
    assert_eq!(
        call(&mut bystander, &request("health")).await,
        health_frame()
    );
    seen.recv().await.unwrap();

    // Not on the allowlist (known to the enclave, or not): refused, connection kept.
    let mut c = proxy.client().await;
    for method in ["evaluate", "shutdown"] {
        let err = error_of(&call(&mut c, &request(method)).await);
        assert_eq!(err.code, ErrorCode::MethodNotAllowed);
        assert!(err.message.contains(method), "{}", err.message);
    }
    assert_eq!(call(&mut c, &request("manifest")).await, health_frame());
    assert_eq!(seen.recv().await.unwrap(), request("manifest"));

    // Oversize: refused before the body is read, then closed.
    let mut big = proxy.client().await;
    big.write_all(&4096u32.to_be_bytes()).await.unwrap();
    big.write_all(&[0u8; 64]).await.unwrap();
    let err = error_of(&wire::read_frame(&mut big).await.unwrap());
    assert_eq!(err.code, ErrorCode::BadRequest);
    assert!(err.message.contains("oversize"), "{}", err.message);
    assert!(is_closed(&mut big).await);

    // Garbage: not CBOR at all, CBOR without a method, an empty frame. Each closes.
    for body in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &wire::encode(&42u32).unwrap(),
    ] {
        let mut g = proxy.client().await;
        let err = error_of(&call(&mut g, body).await);
        assert_eq!(err.code, ErrorCode::BadRequest);
        assert!(is_closed(&mut g).await);
    }
    let mut e = proxy.client().await;
    e.write_all(&0u32.to_be_bytes()).await.unwrap();
    assert_eq!(
        error_of(&wire::read_frame(&mut e).await.unwrap()).code,
        ErrorCode::BadRequest
    );
    assert!(is_closed(&mut e).await);

    // Nothing refused ever reached the enclave.
    assert!(seen.try_recv().is_err());

    // The bystander and a fresh client are still served.
    assert_eq!(
        call(&mut bystander, &request("health")).await,
        health_frame()
    );
    let mut fresh = proxy.client().await;
    assert_eq!(call(&mut fresh, &request("health")).await, health_frame());

    let m = proxy.handle.metrics();
    assert_eq!(m.inbound.refused_method, 2);
    assert_eq!(m.inbound.refused_oversize, 1);
    assert_eq!(m.inbound.refused_garbage, 3);
    assert_eq!(m.inbound.forwarded, 4);
    assert_eq!(m.inbound.accepted, 7);
    assert_eq!(m.egress, Default::default());
    proxy.stop().await;
}

#[tokio::test]
async fn connections_over_the_limit_are_refused_busy() {
    let setup = Setup::new();
    let _seen = fake_enclave(&setup.enclave_uds);
    let mut config = setup.config();
    config.limits.max_connections = 1;
    let proxy = setup.start(config).await;

    let mut first = proxy.client().await;
    assert_eq!(call(&mut first, &request("health")).await, health_frame());

    let mut second = proxy.client().await;
    let err = error_of(&wire::read_frame(&mut second).await.unwrap());
    assert_eq!(err.code, ErrorCode::Busy);
    assert!(is_closed(&mut second).await);
    assert_eq!(proxy.handle.metrics().inbound.refused_busy, 1);

    // The slot comes back when the first client leaves.
    drop(first);
    let mut served = false;
    for _ in 0..50 {
        let mut c = proxy.client().await;
        wire::write_frame(&mut c, &request("health")).await.unwrap();
        if wire::read_frame(&mut c).await.unwrap() == health_frame() {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "the freed slot was never reused");
    proxy.stop().await;
}

#[tokio::test]
async fn silent_and_stalled_connections_are_closed() {
    let setup = Setup::new();
    let _seen = fake_enclave(&setup.enclave_uds);
    let mut config = setup.config();
    config.limits.handshake_timeout_ms = 150;
    config.limits.idle_timeout_ms = 150;
    let proxy = setup.start(config).await;

    // Never sends a frame: the handshake deadline closes it.
    let mut c = proxy.client().await;
    assert!(is_closed(&mut c).await);
    // Sends half a first frame and stalls: closed by the same deadline.
    let mut slow = proxy.client().await;
    slow.write_all(&[0, 0]).await.unwrap();
    assert!(matches!(
        wire::read_frame(&mut slow).await,
        Err(wire::FrameError::Closed)
    ));
    // Served once, then idle: the idle timeout closes it.
    let mut idle = proxy.client().await;
    assert_eq!(call(&mut idle, &request("health")).await, health_frame());
    assert!(is_closed(&mut idle).await);
    let m = proxy.handle.metrics().inbound;
    assert_eq!(m.handshake_timeouts, 2);
    assert_eq!(m.idle_timeouts, 1);
    proxy.stop().await;
}

#[tokio::test]
async fn request_rate_is_limited_per_connection() {
    let setup = Setup::new();
    let _seen = fake_enclave(&setup.enclave_uds);
    let mut config = setup.config();
    config.limits.requests_per_second = 1;
    config.limits.request_burst = 2;
    let proxy = setup.start(config).await;

    let mut c = proxy.client().await;
    assert_eq!(call(&mut c, &request("health")).await, health_frame());
    assert_eq!(call(&mut c, &request("health")).await, health_frame());
    let err = error_of(&call(&mut c, &request("health")).await);
    assert_eq!(err.code, ErrorCode::Busy);

    // Another connection has its own bucket.
    let mut other = proxy.client().await;
    assert_eq!(call(&mut other, &request("health")).await, health_frame());
    let m = proxy.handle.metrics();
    assert_eq!(m.inbound.refused_rate, 1);
    assert_eq!(m.inbound.forwarded, 3);
    proxy.stop().await;
}

#[tokio::test]
async fn unreachable_enclave_is_an_error_frame_not_a_hang() {
    let setup = Setup::new();
    // No fake enclave: the socket does not exist.
    let proxy = setup.start(setup.config()).await;
    let mut c = proxy.client().await;
    let err = error_of(&call(&mut c, &request("health")).await);
    assert_eq!(err.code, ErrorCode::Internal);
    // The client keeps its connection; once the enclave is up, it is served.
    let _seen = fake_enclave(&setup.enclave_uds);
    assert_eq!(call(&mut c, &request("health")).await, health_frame());
    let m = proxy.handle.metrics();
    assert_eq!(m.inbound.upstream_errors, 1);
    assert_eq!(m.inbound.forwarded, 1);
    proxy.stop().await;
}

#[tokio::test]
async fn egress_reaches_only_configured_destinations() {
    let setup = Setup::new();
    let verifier = echo_server().await;
    let mut config = setup.config();
    config.limits.frame_limit_bytes = 1024;
    config.egress = vec![format!("{VERIFIER_PORT}=tcp:{verifier}")
        .parse::<EgressRule>()
        .unwrap()];
    let proxy = setup.start(config).await;

    let to_verifier = wire::hybrid::guest_initiated_path(&setup.enclave_uds, VERIFIER_PORT);
    let mut g = UnixStream::connect(&to_verifier).await.unwrap();
    assert_eq!(call(&mut g, b"appraise me").await, b"echo:appraise me");
    assert_eq!(call(&mut g, b"again").await, b"echo:again");

    // Frame limits hold on egress too: an oversize frame closes the connection.
    let mut big = UnixStream::connect(&to_verifier).await.unwrap();
    big.write_all(&4096u32.to_be_bytes()).await.unwrap();
    assert!(is_closed(&mut big).await);

    // An unconfigured port has no listener at all.
    let elsewhere = wire::hybrid::guest_initiated_path(&setup.enclave_uds, VERIFIER_PORT + 1);
    assert!(!elsewhere.exists());
    assert!(UnixStream::connect(&elsewhere).await.is_err());

    let m = proxy.handle.metrics();
    assert_eq!(m.egress.accepted, 2);
    assert_eq!(m.egress.forwarded, 2);
    assert_eq!(m.egress.refused_oversize, 1);
    assert_eq!(m.inbound.accepted, 0);
    proxy.stop().await;
}

#[tokio::test]
async fn egress_to_a_dead_destination_closes_the_guest_connection() {
    let setup = Setup::new();
    let mut config = setup.config();
    // A port nothing listens on: bind one, note it, close it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    config.egress = vec![format!("5100=tcp:{dead}").parse().unwrap()];
    let proxy = setup.start(config).await;
    let mut g = UnixStream::connect(wire::hybrid::guest_initiated_path(&setup.enclave_uds, 5100))
        .await
        .unwrap();
    wire::write_frame(&mut g, b"hello").await.unwrap();
    assert!(is_closed(&mut g).await);
    assert_eq!(proxy.handle.metrics().egress.upstream_errors, 1);
    proxy.stop().await;
}

/// An HTTP/1.1 server that answers each request it reads whole with 200 and the request
/// line echoed as the body, and reports the requests it saw.
async fn http_server() -> (std::net::SocketAddr, mpsc::UnboundedReceiver<Vec<u8>>) {
    use tokio::io::AsyncReadExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .map_or(0, |v| v.parse().unwrap());
                    while buf.len() < end + 4 + len {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let _ = tx.send(buf.drain(..end + 4 + len).collect());
                    let line = head.lines().next().unwrap_or_default().to_owned();
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{line}",
                        line.len()
                    );
                    if s.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// Sends `request` and reads one `Content-Length` answer (head and body) back.
async fn http_exchange(g: &mut UnixStream, request: &[u8]) -> String {
    use tokio::io::AsyncReadExt;
    g.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = g.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before an answer");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .parse()
                .unwrap();
            if body.len() >= len {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn the_http_carry_forwards_otlp_exports_and_refuses_anything_else() {
    let setup = Setup::new();
    let (collector, mut seen) = http_server().await;
    let mut config = setup.config();
    config.limits.frame_limit_bytes = 1024;
    config.egress_http = vec![format!("5300=tcp:{collector}").parse().unwrap()];
    let proxy = setup.start(config).await;
    let route = wire::hybrid::guest_initiated_path(&setup.enclave_uds, 5300);

    // Two exports on one kept-alive connection, forwarded byte for byte.
    let export = b"POST /v1/traces HTTP/1.1\r\nHost: otlp\r\nContent-Type: application/x-protobuf\r\nContent-Length: 4\r\n\r\n\x0a\x02\x0a\x00";
    let mut g = UnixStream::connect(&route).await.unwrap();
    for _ in 0..2 {
        let answer = http_exchange(&mut g, export).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("POST /v1/traces HTTP/1.1"), "{answer}");
        assert_eq!(seen.recv().await.unwrap(), export.to_vec());
    }

    // Not an OTLP export, chunked, or over the frame limit: closed, never forwarded.
    for bad in [
        b"GET /v1/traces HTTP/1.1\r\nContent-Length: 0\r\n\r\n".to_vec(),
        b"POST /admin HTTP/1.1\r\nContent-Length: 0\r\n\r\n".to_vec(),
        b"POST /v1/traces HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
        b"POST /v1/traces HTTP/1.1\r\nContent-Length: 4096\r\n\r\n".to_vec(),
        wire::encode(&Request::Health).unwrap(),
    ] {
        let mut g = UnixStream::connect(&route).await.unwrap();
        g.write_all(&bad).await.unwrap();
        assert!(is_closed(&mut g).await);
    }
    assert!(
        seen.try_recv().is_err(),
        "a refused request reached the collector"
    );

    let m = proxy.handle.metrics();
    assert_eq!(m.egress.forwarded, 2);
    assert_eq!(m.egress.refused_garbage, 4);
    assert_eq!(m.egress.refused_oversize, 1);
    assert!(m.egress.bytes_up >= 2 * export.len() as u64);
    proxy.stop().await;
}

#[tokio::test]
async fn shutdown_removes_sockets_and_writes_final_metrics() {
    let setup = Setup::new();
    let _seen = fake_enclave(&setup.enclave_uds);
    let metrics_file = setup.dir.path().join("metrics.json");
    let mut config = setup.config();
    config.egress = vec!["5100=tcp:127.0.0.1:9".parse().unwrap()];
    config.metrics_file = Some(metrics_file.clone());
    let proxy = setup.start(config).await;
    let listen = proxy.listen.clone();
    let egress = wire::hybrid::guest_initiated_path(&setup.enclave_uds, 5100);
    assert!(listen.exists() && egress.exists());

    let mut c = proxy.client().await;
    let err = error_of(&call(&mut c, &request("nope")).await);
    assert_eq!(err.code, ErrorCode::MethodNotAllowed);

    let last = proxy.stop().await;
    assert!(!listen.exists(), "listen socket left behind");
    assert!(!egress.exists(), "egress socket left behind");
    let written: MetricsSnapshot =
        serde_json::from_str(&std::fs::read_to_string(&metrics_file).unwrap()).unwrap();
    assert_eq!(written, last);
    assert_eq!(written.inbound.refused_method, 1);
    // The open client was disconnected.
    assert!(is_closed(&mut c).await);
}

#[tokio::test]
async fn bad_configurations_are_refused_up_front() {
    let setup = Setup::new();
    let mut config = setup.config();
    config.egress = vec![
        "5100=tcp:127.0.0.1:9".parse().unwrap(),
        "5100=tcp:127.0.0.1:10".parse().unwrap(),
    ];
    assert!(matches!(
        Proxy::bind(config).await,
        Err(ProxyError::DuplicateEgressPort(_))
    ));

    let mut config = setup.config();
    config.enclave = Endpoint::Unix(setup.enclave_uds.clone());
    config.egress = vec!["5100=tcp:127.0.0.1:9".parse().unwrap()];
    assert!(matches!(
        Proxy::bind(config).await,
        Err(ProxyError::EgressNeedsVsock(_))
    ));
    // The inbound socket bound before the failure was cleaned up.
    assert!(!setup.dir.path().join("public.sock").exists());

    let mut config = setup.config();
    config.limits.max_connections = 0;
    assert!(matches!(
        Proxy::bind(config).await,
        Err(ProxyError::NoConnections)
    ));
}

#[tokio::test]
async fn tcp_listener_serves_too() {
    let setup = Setup::new();
    let _seen = fake_enclave(&setup.enclave_uds);
    let mut config = setup.config();
    config.listen = "tcp:127.0.0.1:0".parse().unwrap();
    let proxy = Proxy::bind(config).await.unwrap();
    let Endpoint::Tcp(addr) = proxy.listen_endpoint().unwrap() else {
        panic!("tcp listener reports a non-tcp endpoint");
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(proxy.run(async {
        let _ = stopped.await;
    }));
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    wire::write_frame(&mut c, &request("health")).await.unwrap();
    assert_eq!(wire::read_frame(&mut c).await.unwrap(), health_frame());
    stop.send(()).unwrap();
    assert_eq!(task.await.unwrap().unwrap().inbound.forwarded, 1);
}
