//! Ten thousand concurrent connections held by a real `host proxy` process on loopback,
//! configured from a file and observed through its Prometheus endpoint. Bounded: every
//! wait has a deadline, and the test stops the proxy itself.
//!
//! File descriptors: the proxy holds one per client connection plus two per connection
//! that has reached the enclave (its upstream side and the fake enclave's); the test
//! process holds the clients and the fake enclave. Both stay below a hard RLIMIT_NOFILE of
//! 20,000 (the smallest seen on the build machines): [`ACTIVE`] of the [`HELD`] connections
//! make requests through to the enclave, the rest are held mid-handshake (connected, no
//! complete frame yet, within the handshake deadline).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failed unwrap is a failed test"
)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use wire::msg::{HealthInfo, KernelState, Request, Response};

const HOST: &str = env!("CARGO_BIN_EXE_host");
/// Connections held at once.
const HELD: usize = 10_000;
/// Of those, how many make requests through to the enclave while all are held.
const ACTIVE: usize = 2_000;
/// Connections opened at once while ramping up.
const BATCH: usize = 500;

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

fn raise_nofile(needed: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    setrlimit(Resource::Nofile, limit).unwrap();
    let have = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    assert!(
        have >= needed,
        "this test needs RLIMIT_NOFILE >= {needed} (hard limit is {have}); raise it with \
         `ulimit -Hn` or run as a user allowed to"
    );
}

/// The fake enclave: answers every frame with [`health_frame`]; counts connections.
fn enclave(path: &Path) -> Arc<AtomicUsize> {
    let listener = UnixListener::bind(path).unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&n);
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                while wire::read_frame(&mut s).await.is_ok() {
                    if wire::write_frame(&mut s, &health_frame()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    n
}

async fn scrape(metrics: &Path) -> String {
    let mut s = UnixStream::connect(metrics).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample `{series}` in:\n{text}"))
}

async fn open_inbound(metrics: &Path) -> u64 {
    sample(
        &scrape(metrics).await,
        "enclave_proxy_connections_open{route=\"inbound\"}",
    )
}

/// Polls until the proxy reports `want` open inbound connections, for at most 60 s.
async fn wait_open(metrics: &Path, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let open = open_inbound(metrics).await;
        if open == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "proxy reports {open} open connections, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Proxy {
    child: Child,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_file(p: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !p.exists() {
        assert!(
            Instant::now() < deadline,
            "`{}` never appeared",
            p.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_connections_are_held_and_others_still_served() {
    raise_nofile(u64::try_from(HELD + ACTIVE + 512).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("public.sock");
    let metrics = dir.path().join("metrics.sock");
    let enclave_sock = dir.path().join("enclave.sock");
    let reached = enclave(&enclave_sock);
    let config = dir.path().join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            r#"
listen = "unix:{public}"
enclave = "unix:{enclave}"
metrics_listen = "unix:{metrics}"

[limits]
max_connections = 12000
max_connections_total = 12000
max_connections_per_peer = 12000
handshake_timeout_ms = 300000
idle_timeout_ms = 300000
"#,
            public = public.display(),
            enclave = enclave_sock.display(),
            metrics = metrics.display(),
        ),
    )
    .unwrap();
    let child = Command::new(HOST)
        .args(["proxy", "--json", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut proxy = Proxy { child };
    wait_for_file(&public);
    wait_for_file(&metrics);

    // Ramp up in batches; the first ACTIVE connections make one request each.
    let mut held: Vec<UnixStream> = Vec::with_capacity(HELD);
    while held.len() < HELD {
        let start = held.len();
        let batch: Vec<_> = (start..(start + BATCH).min(HELD))
            .map(|i| {
                let public = public.clone();
                tokio::spawn(async move {
                    let mut s = UnixStream::connect(&public).await.unwrap();
                    if i < ACTIVE {
                        let body = wire::encode(&Request::Health).unwrap();
                        wire::write_frame(&mut s, &body).await.unwrap();
                        assert_eq!(wire::read_frame(&mut s).await.unwrap(), health_frame());
                    }
                    s
                })
            })
            .collect();
        for t in batch {
            held.push(t.await.unwrap());
        }
        // A Unix connect returns once queued in the listen backlog (4096), before the proxy
        // accepts it: let the proxy take this batch before queueing the next, or a slow
        // (loaded) machine overflows the backlog and connects fail with EAGAIN.
        wait_open(&metrics, u64::try_from(held.len()).unwrap()).await;
    }
    wait_open(&metrics, u64::try_from(HELD).unwrap()).await;
    assert_eq!(reached.load(Ordering::SeqCst), ACTIVE);

    // With all of them held, a newcomer is served, and the active ones still are.
    let mut newcomer = UnixStream::connect(&public).await.unwrap();
    let body = wire::encode(&Request::Health).unwrap();
    wire::write_frame(&mut newcomer, &body).await.unwrap();
    assert_eq!(
        wire::read_frame(&mut newcomer).await.unwrap(),
        health_frame()
    );
    for s in held.iter_mut().take(ACTIVE).step_by(10) {
        wire::write_frame(s, &body).await.unwrap();
        assert_eq!(wire::read_frame(s).await.unwrap(), health_frame());
    }

    // Let go of everything; the proxy's gauge returns to zero.
    drop(held);
    drop(newcomer);
    wait_open(&metrics, 0).await;
    let text = scrape(&metrics).await;
    let refusals: u64 = text
        .lines()
        .filter(|l| l.starts_with("enclave_proxy_refusals_total{route=\"inbound\""))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum();
    assert_eq!(refusals, 0, "{text}");
    let accepted = sample(
        &text,
        "enclave_proxy_connections_accepted_total{route=\"inbound\"}",
    );
    assert_eq!(accepted, u64::try_from(HELD + 1).unwrap());

    // SIGTERM: a clean exit with the final counters on stdout.
    use rustix::process::{kill_process, Pid, Signal};
    kill_process(Pid::from_child(&proxy.child), Signal::TERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = proxy.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "proxy did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");
    let mut out = String::new();
    use std::io::Read;
    proxy
        .child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let last: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(last["inbound"]["accepted"], HELD + 1);
    assert_eq!(last["inbound"]["open"], 0);
}
