//! A whole appliance in one test process, on real parts: the verifier service on a TCP port
//! with its SQLite file, the ceremony's sealed shares on disk, one swtpm per kernel, one host
//! proxy per kernel on real Unix sockets (hybrid vsock), and the kernels themselves.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "test and bench code: any failure should stop the run loudly"
)]
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

use attestation::appraisal::AppraisalPolicy;
use enclave::transport::Vsock;
use enclave::{Kernel, KernelConfig, Platform, Retry};
use host::proxy::egress::EgressRule;
use host::{Endpoint, Proxy, ProxyConfig, ProxyHandle};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UnixStream;
use wire::msg::{KernelState, Request, Response};

pub const CEDAR: &str = r#"
@id("relief-read")
permit(principal == Agent::"planner", action == Action::"read", resource)
when { context.purpose == "relief" };
@id("no-delete")
forbid(principal, action == Action::"delete", resource);
"#;

pub fn policy(levels: &[&str], require_tpm: bool) -> AppraisalPolicy {
    let levels: Vec<String> = levels.iter().map(|l| format!("\"{l}\"")).collect();
    AppraisalPolicy::from_json(&format!(
        r#"{{"policy_id":"test","allowed_levels":[{}],"require_tpm":{require_tpm},"max_evidence_age_ms":60000,"nonce_ttl_ms":60000}}"#,
        levels.join(",")
    ))
    .unwrap()
}

/// A swtpm process on its own port pair, killed on drop. Fails the test if swtpm is missing.
pub struct Swtpm {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Swtpm {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..50 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            if port == u16::MAX || TcpListener::bind(("127.0.0.1", port + 1)).is_err() {
                continue;
            }
            let child = Command::new("swtpm")
                .args(["socket", "--tpm2", "--flags", "not-need-init,startup-clear"])
                .arg("--tpmstate")
                .arg(format!("dir={}", dir.path().display()))
                .arg("--server")
                .arg(format!("type=tcp,port={port}"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={}", port + 1))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect(
                    "swtpm is required for these tests: run `cargo xtask test`, which installs it",
                );
            let mut s = Swtpm {
                child,
                port,
                _dir: dir,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return s;
                }
                if let Ok(Some(_)) = s.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = s.child.kill();
            let _ = s.child.wait();
            s._dir = tempfile::tempdir().unwrap();
            return Swtpm::start();
        }
        panic!("no free port pair for swtpm");
    }
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Node {
    pub id: String,
    pub kernel: Arc<Kernel>,
    pub public: PathBuf,
    pub proxy: ProxyHandle,
    pub state_dir: PathBuf,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub verifier: verifier::ServiceHandle,
    pub store: Arc<verifier::Store>,
    pub nodes: Vec<Node>,
    pub group_public_key: Vec<u8>,
    pub policy: AppraisalPolicy,
    _tpms: Vec<Swtpm>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

pub struct Options {
    pub ceremony_policy: AppraisalPolicy,
    pub verifier_policy: AppraisalPolicy,
    pub with_tpm: bool,
    pub verifier_up: bool,
    pub max_attempts: u32,
    pub kernels: usize,
    pub cedar_missing: bool,
    /// Put a relay between the host proxies and the verifier that flips one byte of every bundle.
    pub tamper_bundles: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            ceremony_policy: policy(&["KEE1-L1"], true),
            verifier_policy: policy(&["KEE1-L1"], true),
            with_tpm: true,
            verifier_up: true,
            max_attempts: 0,
            kernels: 3,
            cedar_missing: false,
            tamper_bundles: false,
        }
    }
}

impl Cluster {
    pub async fn start(mut opts: Options) -> Cluster {
        if !opts.with_tpm {
            opts.ceremony_policy.require_tpm = false;
            opts.verifier_policy.require_tpm = false;
        }
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(verifier::Store::open(&dir.path().join("verifier.db")).unwrap());
        let ids: Vec<String> = (1..=opts.kernels).map(|i| format!("k{i}")).collect();
        let state_root = dir.path().join("kernels");
        let out =
            verifier::ceremony::run(&store, &opts.ceremony_policy, 2, &ids, &state_root).unwrap();
        let group_public_key = hex::decode(&out.group_public_key).unwrap();
        let service = verifier::serve(
            verifier::ServiceConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                policy: opts.verifier_policy.clone(),
            },
            store.clone(),
        )
        .await
        .unwrap();
        let verifier_addr = if opts.tamper_bundles {
            tampering_relay(service.addr).await
        } else {
            service.addr
        };
        let verifier_key = service.public_key.clone();
        if !opts.verifier_up {
            service.stop();
            // Let the listener close before kernels try it.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut tpms = Vec::new();
        let mut nodes = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let kdir = state_root.join(id);
            let vsock = kdir.join("vsock.sock");
            let public = kdir.join("public.sock");
            let mut egress = vec![EgressRule {
                port: host::transport::VsockPort(wire::hybrid::VERIFIER_PORT),
                destination: Endpoint::Tcp(verifier_addr),
            }];
            let mut peers = Vec::new();
            for (j, peer) in ids.iter().enumerate() {
                if j != i {
                    let port = wire::hybrid::PEER_PORT_BASE + j as u32;
                    egress.push(EgressRule {
                        port: host::transport::VsockPort(port),
                        destination: Endpoint::Unix(state_root.join(peer).join("public.sock")),
                    });
                    peers.push((peer.clone(), port));
                }
            }
            let mut pc = ProxyConfig::new(
                Endpoint::Unix(public.clone()),
                Endpoint::Hybrid {
                    uds: vsock.clone(),
                    port: host::transport::VsockPort(wire::hybrid::GOVERNANCE_PORT),
                },
            );
            pc.egress = egress;
            let proxy = Proxy::bind(pc).await.unwrap();
            let handle = proxy.handle();
            let mut stop = rx.clone();
            tokio::spawn(proxy.run(async move {
                let _ = stop.changed().await;
            }));
            let tpm = if opts.with_tpm {
                Some(Swtpm::start())
            } else {
                None
            };
            let cedar = kdir.join("policy.cedar");
            if !opts.cedar_missing {
                std::fs::write(&cedar, CEDAR).unwrap();
            }
            let cfg = KernelConfig {
                kernel_id: id.clone(),
                fleet_id: "test-fleet".into(),
                state_dir: kdir.clone(),
                vsock: Vsock::Hybrid(vsock),
                verifier_port: wire::hybrid::VERIFIER_PORT,
                peers,
                verifier_public_key: verifier_key.clone(),
                cedar_policy: Some(cedar),
                platform: Platform::Software,
                tpm_tcti: tpm.as_ref().map(|t| t.tcti()),
                retry: Retry {
                    initial_ms: 50,
                    max_ms: 400,
                    max_attempts: opts.max_attempts,
                },
                peer_timeout_ms: 3_000,
                gpus: false,
            };
            let listener = cfg.vsock.listen().unwrap();
            let kernel = Kernel::new(cfg).unwrap();
            let k = kernel.clone();
            let mut stop = rx.clone();
            tokio::spawn(async move {
                k.serve(listener, async move {
                    let _ = stop.changed().await;
                })
                .await
            });
            let k = kernel.clone();
            tokio::spawn(async move { k.boot().await });
            if let Some(t) = tpm {
                tpms.push(t);
            }
            nodes.push(Node {
                id: id.clone(),
                kernel,
                public,
                proxy: handle,
                state_dir: kdir,
            });
        }
        Cluster {
            dir,
            verifier: service,
            store,
            nodes,
            group_public_key,
            policy: opts.verifier_policy,
            _tpms: tpms,
            shutdown: tx,
        }
    }

    /// Waits until every kernel left `booting` (and, for sealed ones, gave a final reason).
    pub async fn settle(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for n in &self.nodes {
            loop {
                let h = n.kernel.health();
                if h.state == KernelState::Serving
                    || h.state == KernelState::Halted
                    || (h.state == KernelState::Sealed
                        && !h.reason.clone().unwrap_or_default().contains("retrying"))
                {
                    break;
                }
                assert!(Instant::now() < deadline, "{} did not settle: {h:?}", n.id);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

pub async fn call(socket: &Path, req: &Request) -> Response {
    let mut s = UnixStream::connect(socket).await.unwrap();
    let bytes = wire::encode(req).unwrap();
    wire::write_frame(&mut s, &bytes).await.unwrap();
    let body = wire::read_frame(&mut s).await.unwrap();
    wire::decode(&body).unwrap()
}

pub async fn raw(socket: &Path, body: &[u8]) -> Option<Response> {
    let mut s = UnixStream::connect(socket).await.ok()?;
    wire::write_frame(&mut s, body).await.ok()?;
    let body = wire::read_frame(&mut s).await.ok()?;
    wire::decode(&body).ok()
}

/// A man in the middle on the verifier path (what an untrusted host could do): forwards
/// frames both ways and flips one byte in the middle of every evidence bundle.
pub async fn tampering_relay(verifier: std::net::SocketAddr) -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut down, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let Ok(mut up) = tokio::net::TcpStream::connect(verifier).await else {
                    return;
                };
                loop {
                    let Ok(frame) = wire::read_frame(&mut down).await else {
                        return;
                    };
                    let frame = match wire::decode::<wire::verifier::VerifierRequest>(&frame) {
                        Ok(wire::verifier::VerifierRequest::Appraise { mut bundle }) => {
                            let mid = bundle.len() / 2;
                            bundle[mid] ^= 0x01;
                            wire::encode(&wire::verifier::VerifierRequest::Appraise { bundle })
                                .unwrap()
                        }
                        _ => frame,
                    };
                    if wire::write_frame(&mut up, &frame).await.is_err() {
                        return;
                    }
                    let Ok(resp) = wire::read_frame(&mut up).await else {
                        return;
                    };
                    if wire::write_frame(&mut down, &resp).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}
