//! A whole appliance in one test process, on real parts: the verifier service on a TCP port
//! with its SQLite file, the ceremony's sealed shares on disk, one swtpm per kernel, one host
//! proxy per kernel on real Unix sockets (hybrid vsock), and the kernels themselves.
//!
//! For the re-attestation tests: each kernel's path to the verifier can run through a TCP
//! relay that the test cuts (a partition) or repoints (a verifier restarted elsewhere), and
//! each swtpm can sit behind a command multiplexer (what tpm2-abrmd does) so that
//! `tpm2_pcrextend` reaches the same TPM while the kernel holds its connection.
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UnixStream;
use wire::msg::{KernelState, Request, Response};

pub mod fds;
pub use fds::no_inherited_descriptors;

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

/// Serialises swtpm start-up in this process: between finding a free port pair and swtpm
/// binding it, a second start could pick the same pair; its swtpm then fails to bind, but a
/// connect to the port succeeds (to the *first* swtpm), and two kernels end up sharing one
/// TPM. swtpm serves one connection at a time, so one of them waits forever in `booting`.
static SWTPM_START: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Swtpm {
    pub fn start() -> Self {
        let _one_at_a_time = SWTPM_START.lock().unwrap_or_else(|e| e.into_inner());
        Self::start_locked()
    }

    fn start_locked() -> Self {
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
            let child = no_inherited_descriptors(&mut Command::new("swtpm"))
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
                    // The port answers, but maybe another process's swtpm holds it and ours
                    // is exiting for want of it: ours must still be alive a moment later.
                    std::thread::sleep(Duration::from_millis(100));
                    if matches!(s.child.try_wait(), Ok(None)) {
                        return s;
                    }
                    break;
                }
                if let Ok(Some(_)) = s.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = s.child.kill();
            let _ = s.child.wait();
            s._dir = tempfile::tempdir().unwrap();
            return Swtpm::start_locked();
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

/// A TPM command multiplexer in front of one swtpm: many clients, one upstream connection,
/// one whole command (TPM 2.0 Part 1 §18: tag, size, code header) at a time.
pub struct TpmMux {
    pub port: u16,
    stop: Arc<AtomicBool>,
    /// While set, commands are read but not forwarded (a TPM that stopped answering).
    held: Arc<AtomicBool>,
}

impl TpmMux {
    pub fn start(upstream_port: u16) -> TpmMux {
        use std::io::{Read, Write};
        // The swtpm TCTI also opens the control channel on the next port: keep the pair.
        let (listener, ctrl) = loop {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let p = l.local_addr().unwrap().port();
            if p == u16::MAX {
                continue;
            }
            if let Ok(c) = TcpListener::bind(("127.0.0.1", p + 1)) {
                break (l, c);
            }
        };
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for client in ctrl.incoming() {
                let Ok(client) = client else { continue };
                let Ok(up) = std::net::TcpStream::connect(("127.0.0.1", upstream_port + 1)) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), up.try_clone().unwrap()),
                    (up, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        let upstream = Arc::new(Mutex::new(
            std::net::TcpStream::connect(("127.0.0.1", upstream_port)).unwrap(),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let held = Arc::new(AtomicBool::new(false));
        let holding = held.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut client) = client else { continue };
                let upstream = upstream.clone();
                let holding = holding.clone();
                std::thread::spawn(move || loop {
                    let mut head = [0u8; 10];
                    if client.read_exact(&mut head).is_err() {
                        return;
                    }
                    let size = u32::from_be_bytes(head[2..6].try_into().unwrap()) as usize;
                    let mut cmd = head.to_vec();
                    cmd.resize(size.max(10), 0);
                    if client.read_exact(&mut cmd[10..]).is_err() {
                        return;
                    }
                    while holding.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    let resp = {
                        let mut up = upstream.lock().unwrap();
                        up.write_all(&cmd).unwrap();
                        let mut rhead = [0u8; 10];
                        up.read_exact(&mut rhead).unwrap();
                        let rsize = u32::from_be_bytes(rhead[2..6].try_into().unwrap()) as usize;
                        let mut resp = rhead.to_vec();
                        resp.resize(rsize.max(10), 0);
                        up.read_exact(&mut resp[10..]).unwrap();
                        resp
                    };
                    if client.write_all(&resp).is_err() {
                        return;
                    }
                });
            }
        });
        TpmMux { port, stop, held }
    }

    /// Holds every command from now on (the TPM stops answering), or lets them through again.
    pub fn hold(&self, on: bool) {
        self.held.store(on, Ordering::SeqCst);
    }

    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Extends a SHA-256 PCR with tpm2-tools through this multiplexer.
    pub fn pcrextend(&self, pcr: u8, digest_hex: &str) {
        let out = no_inherited_descriptors(&mut Command::new("tpm2_pcrextend"))
            .args(["-T", &self.tcti(), &format!("{pcr}:sha256={digest_hex}")])
            .output()
            .expect("tpm2-tools is required: run `cargo xtask test`, which installs it");
        assert!(
            out.status.success(),
            "tpm2_pcrextend failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for TpmMux {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A TCP relay on a kernel's path to the verifier: the test can cut it (every open
/// connection dropped, new ones refused) and repoint it.
#[derive(Clone)]
pub struct Relay {
    pub addr: std::net::SocketAddr,
    target: Arc<Mutex<std::net::SocketAddr>>,
    cut: tokio::sync::watch::Sender<bool>,
    /// Every byte the relay carried, both ways (what the host sees of the verifier link).
    pub captured: Arc<Mutex<Vec<u8>>>,
}

/// Copies `from` to `to` until either side ends, appending what it carries to `tap`.
async fn tap_copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    tap: Arc<Mutex<Vec<u8>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        tap.lock().unwrap().extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

impl Relay {
    pub async fn start(target: std::net::SocketAddr) -> Relay {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let target = Arc::new(Mutex::new(target));
        let (cut, _) = tokio::sync::watch::channel(false);
        let captured = Arc::new(Mutex::new(Vec::new()));
        let relay = Relay {
            addr,
            target: target.clone(),
            cut: cut.clone(),
            captured: captured.clone(),
        };
        tokio::spawn(async move {
            loop {
                let Ok((down, _)) = l.accept().await else {
                    return;
                };
                let mut cut_rx = cut.subscribe();
                if *cut_rx.borrow() {
                    drop(down);
                    continue;
                }
                let to = *target.lock().unwrap();
                let tap = captured.clone();
                tokio::spawn(async move {
                    let Ok(up) = tokio::net::TcpStream::connect(to).await else {
                        return;
                    };
                    let (down_r, down_w) = down.into_split();
                    let (up_r, up_w) = up.into_split();
                    let there = tokio::spawn(tap_copy(down_r, up_w, tap.clone()));
                    let back = tokio::spawn(tap_copy(up_r, down_w, tap));
                    let (a, b) = (there.abort_handle(), back.abort_handle());
                    tokio::select! {
                        _ = async { let _ = there.await; let _ = back.await; } => {}
                        _ = cut_rx.wait_for(|c| *c) => {}
                    }
                    a.abort();
                    b.abort();
                });
            }
        });
        relay
    }
    pub fn set_cut(&self, cut: bool) {
        // `send_replace`: the value must change even when no connection is open to see it.
        self.cut.send_replace(cut);
    }
    pub fn repoint(&self, to: std::net::SocketAddr) {
        *self.target.lock().unwrap() = to;
    }
}

pub struct Node {
    pub id: String,
    pub kernel: Arc<Kernel>,
    pub public: PathBuf,
    /// The proxy's attested-TLS route to the kernel (clients and peer kernels).
    pub tls: PathBuf,
    pub proxy: ProxyHandle,
    pub state_dir: PathBuf,
    /// The kernel's path to the verifier (when `Options::relays`).
    pub relay: Option<Relay>,
    /// Its swtpm's command multiplexer (when `Options::tpm_mux`).
    pub tpm: Option<Arc<TpmMux>>,
    /// Its configuration (for `Cluster::restart`).
    pub cfg: KernelConfig,
    /// Stops this kernel's serve loop.
    stop: tokio::sync::watch::Sender<bool>,
    /// Its event log (when `Options::event_log`).
    pub event_log: Option<Arc<TestEventLog>>,
}

/// A TCG2 crypto-agile event log (SHA-256 bank only) written the way a measuring kernel
/// writes one: each event is appended to the file first, then its digest is extended into
/// the PCR on the real swtpm (through the multiplexer), so the kernel ships a real log that
/// replays to its real quote.
pub struct TestEventLog {
    pub path: PathBuf,
    bytes: Mutex<Vec<u8>>,
}

impl TestEventLog {
    /// A log holding only its Spec ID Event03 header (PFP §10.4.5.1: a TCG_PCClientPCREvent
    /// in PCR 0, EV_NO_ACTION, SHA-1 digest of zeros, one algorithm: SHA-256 of 32 bytes).
    pub fn create(path: PathBuf) -> TestEventLog {
        let mut spec = b"Spec ID Event03\0".to_vec();
        spec.extend_from_slice(&0u32.to_le_bytes()); // platformClass
        spec.extend_from_slice(&[0, 2, 0, 2]); // spec version 2.0, errata 0, uintnSize 2 (u64)
        spec.extend_from_slice(&1u32.to_le_bytes()); // numberOfAlgorithms
        spec.extend_from_slice(&0x000bu16.to_le_bytes()); // TPM_ALG_SHA256
        spec.extend_from_slice(&32u16.to_le_bytes());
        spec.push(0); // vendorInfoSize
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0u32.to_le_bytes()); // pcrIndex
        bytes.extend_from_slice(&3u32.to_le_bytes()); // EV_NO_ACTION
        bytes.extend_from_slice(&[0u8; 20]);
        bytes.extend_from_slice(&u32::try_from(spec.len()).unwrap().to_le_bytes());
        bytes.extend_from_slice(&spec);
        std::fs::write(&path, &bytes).unwrap();
        TestEventLog {
            path,
            bytes: Mutex::new(bytes),
        }
    }

    /// Appends a TCG_PCR_EVENT2 (EV_IPL, 0xd) measuring `data` into `pcr`, then extends the
    /// PCR through `tpm` (or not, to model a log that lies).
    pub fn measure(&self, tpm: Option<&TpmMux>, pcr: u8, data: &[u8]) {
        let digest = attestation::sha256(data);
        let mut b = self.bytes.lock().unwrap();
        b.extend_from_slice(&u32::from(pcr).to_le_bytes());
        b.extend_from_slice(&0xdu32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes()); // digest count
        b.extend_from_slice(&0x000bu16.to_le_bytes());
        b.extend_from_slice(&digest);
        b.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
        b.extend_from_slice(data);
        // Replace the file in one step, as securityfs presents a consistent log.
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, &*b).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
        drop(b);
        if let Some(t) = tpm {
            t.pcrextend(pcr, &hex::encode(digest));
        }
    }

    /// Events in the log.
    pub fn events(&self) -> usize {
        attestation::eventlog::EventLog::parse(&self.bytes.lock().unwrap())
            .unwrap()
            .events()
            .len()
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub verifier: verifier::ServiceHandle,
    pub store: Arc<verifier::Store>,
    pub nodes: Vec<Node>,
    pub group_public_key: Vec<u8>,
    pub policy: AppraisalPolicy,
    pub monitor: verifier::MonitorConfig,
    pub db: PathBuf,
    pub reattest: enclave::ReattestConfig,
    pub gar: enclave::GarConfig,
    _tpms: Vec<Swtpm>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

pub struct Options {
    pub ceremony_policy: AppraisalPolicy,
    pub verifier_policy: AppraisalPolicy,
    pub with_tpm: bool,
    pub verifier_up: bool,
    pub max_attempts: u32,
    /// `Retry::exchange_timeout_ms` of every kernel.
    pub exchange_timeout_ms: u64,
    pub kernels: usize,
    pub cedar_missing: bool,
    /// Put a relay between the host proxies and the verifier that flips one byte of every bundle.
    pub tamper_bundles: bool,
    /// The verifier refuses plaintext frames (kernels always speak TLS to it; some tests'
    /// own helpers speak plain frames, so it is off by default).
    pub require_tls: bool,
    /// The verifier's re-attestation settings.
    pub monitor: verifier::MonitorConfig,
    /// The kernels' re-attestation settings.
    pub reattest: enclave::ReattestConfig,
    /// One cuttable, repointable relay per kernel on its path to the verifier.
    pub relays: bool,
    /// A command multiplexer in front of each swtpm (for `tpm2_pcrextend` mid-run).
    pub tpm_mux: bool,
    /// Plan a DKG (`verifier dkg`) instead of the trusted-dealer ceremony: the kernels make
    /// the key among themselves once attested.
    pub dkg: bool,
    /// Threshold t.
    pub threshold: u16,
    /// Kernels whose boot the test starts itself (`Cluster::boot`).
    pub boot_later: Vec<String>,
    /// Give each kernel a TCG2 event log ([`TestEventLog`]) that its swtpm's PCRs follow
    /// (needs `tpm_mux`).
    pub event_log: bool,
    /// Catalog publisher keys pinned in every kernel (threshold 2).
    pub catalog_publishers: Vec<[u8; 32]>,
    /// The kernels' session-block and anchoring settings (issue 4).
    pub gar: enclave::GarConfig,
    /// An OTLP route (KEE-1 P6): the kernels export spans to this host vsock port, and each
    /// proxy carries it (`carry = "http"`) to this collector endpoint.
    pub otlp: Option<(u32, Endpoint)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            ceremony_policy: policy(&["KEE1-L1"], true),
            verifier_policy: policy(&["KEE1-L1"], true),
            with_tpm: true,
            verifier_up: true,
            max_attempts: 0,
            exchange_timeout_ms: enclave::Retry::default().exchange_timeout_ms,
            kernels: 3,
            cedar_missing: false,
            tamper_bundles: false,
            require_tls: false,
            monitor: verifier::MonitorConfig::default(),
            reattest: enclave::ReattestConfig::default(),
            relays: false,
            tpm_mux: false,
            dkg: false,
            threshold: 2,
            boot_later: Vec::new(),
            event_log: false,
            catalog_publishers: Vec::new(),
            gar: enclave::GarConfig::default(),
            otlp: None,
        }
    }
}

/// Fast re-attestation for tests: a challenge every second, three misses revoke.
pub fn fast_monitor() -> verifier::MonitorConfig {
    verifier::MonitorConfig {
        interval_ms: 1_000,
        jitter_pct: 10,
        grace: 3,
        challenge_timeout_ms: 2_000,
        hold_ms: 1_000,
        revocation_deadline_ms: 8_000,
        sweep_ms: 100,
    }
}

/// The kernels' side of [`fast_monitor`].
pub fn fast_reattest() -> enclave::ReattestConfig {
    enclave::ReattestConfig {
        feed_timeout_ms: 4_000,
        reconnect_initial_ms: 100,
        reconnect_max_ms: 500,
    }
}

impl Cluster {
    pub async fn start(mut opts: Options) -> Cluster {
        if !opts.with_tpm {
            opts.ceremony_policy.require_tpm = false;
            opts.verifier_policy.require_tpm = false;
        }
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("verifier.db");
        let store = Arc::new(verifier::Store::open(&db).unwrap());
        let ids: Vec<String> = (1..=opts.kernels).map(|i| format!("k{i}")).collect();
        let state_root = dir.path().join("kernels");
        let group_public_key = if opts.dkg {
            let signer = verifier::service::load_signer(&store).unwrap();
            verifier::ceremony::plan_dkg(
                &store,
                &opts.ceremony_policy,
                &signer,
                opts.threshold,
                &ids,
                &state_root,
            )
            .unwrap();
            Vec::new()
        } else {
            let out = verifier::ceremony::run(
                &store,
                &opts.ceremony_policy,
                opts.threshold,
                &ids,
                &state_root,
            )
            .unwrap();
            hex::decode(&out.group_public_key).unwrap()
        };
        let service = verifier::serve_with(
            verifier::ServiceConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                policy: opts.verifier_policy.clone(),
                require_tls: opts.require_tls,
            },
            opts.monitor.clone(),
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
            let relay = if opts.relays {
                Some(Relay::start(verifier_addr).await)
            } else {
                None
            };
            // The verifier is reached over TLS on its pinned result key, and peer kernels
            // over mutually attested TLS: this proxy carries records, never frames, to the
            // verifier and to the peer's proxy's TLS route (which carries them to its TLS
            // port).
            let mut egress_tls = vec![EgressRule {
                port: host::transport::VsockPort(wire::hybrid::VERIFIER_PORT),
                destination: Endpoint::Tcp(relay.as_ref().map_or(verifier_addr, |r| r.addr)),
            }];
            let mut peers = Vec::new();
            for (j, peer) in ids.iter().enumerate() {
                if j != i {
                    let port = wire::hybrid::PEER_PORT_BASE + j as u32;
                    egress_tls.push(EgressRule {
                        port: host::transport::VsockPort(port),
                        destination: Endpoint::Unix(state_root.join(peer).join("tls.sock")),
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
            let tls = kdir.join("tls.sock");
            pc.tls = Some(host::TlsRoute {
                listen: Endpoint::Unix(tls.clone()),
                enclave: Endpoint::Hybrid {
                    uds: vsock.clone(),
                    port: host::transport::VsockPort(enclave::tls::TLS_PORT),
                },
            });
            if let Some((port, collector)) = &opts.otlp {
                pc.egress_http.push(EgressRule {
                    port: host::transport::VsockPort(*port),
                    destination: collector.clone(),
                });
            }
            pc.egress_tls = egress_tls;
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
            let mux = match (&tpm, opts.tpm_mux) {
                (Some(t), true) => Some(Arc::new(TpmMux::start(t.port))),
                _ => None,
            };
            let cedar = kdir.join("policy.cedar");
            if !opts.cedar_missing {
                std::fs::write(&cedar, CEDAR).unwrap();
            }
            let event_log = opts.event_log.then(|| {
                let mux = mux.as_ref().expect("`event_log` needs `tpm_mux`");
                let log = Arc::new(TestEventLog::create(kdir.join("binary_bios_measurements")));
                // What firmware and boot loader measured before the kernel started.
                log.measure(Some(mux), 0, b"test firmware image");
                log.measure(Some(mux), 4, b"test boot loader");
                log.measure(Some(mux), 8, format!("kernel {id}").as_bytes());
                log
            });
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
                tpm_tcti: mux
                    .as_ref()
                    .map(|m| m.tcti())
                    .or_else(|| tpm.as_ref().map(|t| t.tcti())),
                event_log: event_log.as_ref().map(|l| l.path.clone()),
                retry: Retry {
                    initial_ms: 50,
                    max_ms: 400,
                    max_attempts: opts.max_attempts,
                    exchange_timeout_ms: opts.exchange_timeout_ms,
                },
                peer_timeout_ms: 3_000,
                catalog_publishers: opts.catalog_publishers.clone(),
                catalog_threshold: 2,
                gpus: false,
                otlp_port: opts.otlp.as_ref().map(|(port, _)| *port),
            };
            let (node_stop, node_rx) = tokio::sync::watch::channel(false);
            let kernel = spawn_kernel(&cfg, opts.reattest, opts.gar, rx.clone(), node_rx);
            if !opts.boot_later.contains(id) {
                let k = kernel.clone();
                tokio::spawn(async move { k.boot().await });
            }
            if let Some(t) = tpm {
                tpms.push(t);
            }
            nodes.push(Node {
                id: id.clone(),
                kernel,
                public,
                tls,
                proxy: handle,
                state_dir: kdir,
                relay,
                tpm: mux,
                cfg,
                stop: node_stop,
                event_log,
            });
        }
        Cluster {
            dir,
            verifier: service,
            store,
            nodes,
            group_public_key,
            policy: opts.verifier_policy,
            monitor: opts.monitor,
            db,
            reattest: opts.reattest,
            gar: opts.gar,
            _tpms: tpms,
            shutdown: tx,
        }
    }

    /// Stops the verifier (every connection closed), then starts a new one on the same
    /// database, on a new port the relays are repointed to. Needs `Options::relays`.
    pub async fn restart_verifier(&mut self, down_for: Duration) {
        self.verifier.stop();
        tokio::time::sleep(down_for).await;
        let store = Arc::new(verifier::Store::open(&self.db).unwrap());
        let service = verifier::serve_with(
            verifier::ServiceConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                policy: self.policy.clone(),
                require_tls: false,
            },
            self.monitor.clone(),
            store.clone(),
        )
        .await
        .unwrap();
        for n in &self.nodes {
            n.relay
                .as_ref()
                .expect("restart needs Options::relays")
                .repoint(service.addr);
        }
        self.verifier = service;
        self.store = store;
    }

    /// Waits (generously) until `f` holds, polling every 50 ms; panics with `what` otherwise.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&Cluster) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while !f(self) {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Restarts a kernel (a new instance: new attestation key, same state directory and
    /// sockets), as a rebooted CVM would come back; `boot` also starts its boot.
    pub async fn restart(&mut self, id: &str, boot: bool) {
        let reattest = self.reattest;
        let gar = self.gar;
        let global = self.shutdown.subscribe();
        let n = self.nodes.iter_mut().find(|n| n.id == id).unwrap();
        n.kernel.halt("test: restarted").await;
        let _ = n.stop.send(true);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (stop, rx) = tokio::sync::watch::channel(false);
        n.stop = stop;
        n.kernel = spawn_kernel(&n.cfg, reattest, gar, global, rx);
        if boot {
            let k = n.kernel.clone();
            tokio::spawn(async move { k.boot().await });
        }
    }

    /// Starts the boot of a kernel held back with `Options::boot_later`.
    pub fn boot(&self, id: &str) {
        let k = self.node(id).kernel.clone();
        tokio::spawn(async move { k.boot().await });
    }

    /// The group key a kernel's manifest names (hex-decoded).
    pub async fn manifest_group_key(&self, id: &str) -> (Vec<u8>, String) {
        match call(&self.node(id).public, &Request::Manifest).await {
            Response::Manifest(m) => {
                let v: attestation::manifest::GecManifest = wire::decode(&m.manifest).unwrap();
                (hex::decode(&v.group_public_key).unwrap(), v.frost)
            }
            other => panic!("manifest of {id}: {other:?}"),
        }
    }

    pub fn node(&self, id: &str) -> &Node {
        self.nodes.iter().find(|n| n.id == id).unwrap()
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

/// A kernel serving on its socket until either stop signal fires (its boot not started).
fn spawn_kernel(
    cfg: &KernelConfig,
    reattest: enclave::ReattestConfig,
    gar: enclave::GarConfig,
    mut global: tokio::sync::watch::Receiver<bool>,
    mut own: tokio::sync::watch::Receiver<bool>,
) -> Arc<Kernel> {
    let listener = cfg.vsock.listen().unwrap();
    let kernel = Kernel::with_settings(cfg.clone(), reattest, gar).unwrap();
    let k = kernel.clone();
    tokio::spawn(async move {
        k.serve(listener, async move {
            tokio::select! {
                _ = global.changed() => {}
                _ = own.changed() => {}
            }
        })
        .await
    });
    kernel
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

/// A man in the middle on the verifier path (what an untrusted host could do): carries the
/// bytes both ways and flips one byte in the middle of every chunk over 256 bytes that the
/// kernel sends after its ClientHello (the evidence bundle). Inside TLS that breaks the record's authentication, so the
/// verifier never sees the bundle, tampered or not.
pub async fn tampering_relay(verifier: std::net::SocketAddr) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((down, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let Ok(up) = tokio::net::TcpStream::connect(verifier).await else {
                    return;
                };
                let (mut down_r, mut down_w) = down.into_split();
                let (mut up_r, mut up_w) = up.into_split();
                let there = async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut hello = true;
                    loop {
                        let n = match down_r.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if !std::mem::take(&mut hello) && n > 256 {
                            buf[n / 2] ^= 0x01;
                        }
                        if up_w.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let back = async move {
                    let _ = tokio::io::copy(&mut up_r, &mut down_w).await;
                };
                tokio::join!(there, back);
            });
        }
    });
    addr
}
