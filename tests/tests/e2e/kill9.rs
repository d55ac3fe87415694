//! Crash safety of the audit log (issue 4), on the real binaries: `verifier serve`, three
//! `host proxy` processes, three swtpm vTPMs and three `enclave` processes on the software
//! platform (KEE1-L1), started the way `cargo xtask demo` starts them (DKG ceremony first).
//!
//! Four clients send `evaluate` to k1 through its host proxy without pause, each recording
//! every acknowledged `(ale_seq, ale_hash)`. After a random 100-600 ms of load, k1 gets
//! SIGKILL with writes in flight, is started again on the same state directory, re-attests,
//! unseals and serves again; 20 times. Then:
//!
//! * every acknowledged ALE is in k1's `audit.db` (read-only SQLite) with the same hash,
//!   sequence numbers are gap-free from 1, and the `prev_span_hash` chain verifies end to end
//!   across all 20 crashes;
//! * the exported audit package (`enclave --export-audit`, the threshold-signed prefix)
//!   reaches past the last acknowledged ALE and verifies offline (`verify audit`'s logic)
//!   under the group key, holding every acknowledged ALE with its hash;
//! * every one of the 21 boots left its attestation event.
//!
//! It prints, per kill, the writes acknowledged, the writes in flight that got no
//! acknowledgement (and how many of those are durable anyway or lost), and the time from
//! SIGKILL to serving again.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: any failure should stop the run loudly"
)]

use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wire::msg::{EvaluateParams, KernelState, Request, Response};

const KERNELS: [&str; 3] = ["k1", "k2", "k3"];
const KILLS: usize = 20;
const CLIENTS: usize = 4;
/// The whole run stops by itself after this long (it aims at under two minutes).
const BUDGET: Duration = Duration::from_secs(300);
/// Three kernels booting (vTPM key creation, DKG) on a loaded two-core machine.
const FIRST_BOOT: Duration = Duration::from_secs(180);
/// One restart after a kill, boot to serving.
const RESTART: Duration = Duration::from_secs(60);

const CEDAR: &str = r#"
@id("relief-read")
permit(principal == Agent::"planner", action == Action::"read", resource)
when { context.purpose == "relief" };
"#;

/// Every child process, killed (SIGKILL) and reaped on drop, last started first.
#[derive(Default)]
struct Procs(Vec<(String, Child)>);

impl Procs {
    fn start(&mut self, name: &str, cmd: &mut Command, log: &Path) {
        let file = std::fs::File::create(log).unwrap();
        let child = crate::common::no_inherited_descriptors(cmd)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        self.0.push((name.to_string(), child));
    }

    fn get(&mut self, name: &str) -> &mut Child {
        &mut self.0.iter_mut().find(|(n, _)| n == name).unwrap().1
    }

    fn remove(&mut self, name: &str) -> Child {
        let i = self.0.iter().position(|(n, _)| n == name).unwrap();
        self.0.remove(i).1
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in self.0.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `target/<profile>`, where `cargo build --workspace --bins` (run first by `cargo xtask
/// test`) put the binaries.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    for b in ["enclave", "verifier", "host"] {
        assert!(
            dir.join(b).is_file(),
            "{} is missing: `cargo build -p enclave -p verifier -p host` (`cargo xtask test` builds every binary)",
            dir.join(b).display()
        );
    }
    dir
}

/// A free TCP port P on loopback with P+1 free too (swtpm's control port).
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if p < u16::MAX && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
    panic!("no free port pair on loopback")
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn send(s: &mut UnixStream, req: &Request) -> std::io::Result<()> {
    let body = wire::encode(req).map_err(std::io::Error::other)?;
    s.write_all(&u32::try_from(body.len()).unwrap().to_be_bytes())?;
    s.write_all(&body)
}

fn recv(s: &mut UnixStream) -> std::io::Result<Response> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h)?;
    let len = u32::from_be_bytes(h);
    if len > wire::MAX_FRAME_BYTES {
        return Err(std::io::Error::other("oversize frame"));
    }
    let mut body = vec![0u8; len as usize];
    s.read_exact(&mut body)?;
    wire::decode(&body).map_err(std::io::Error::other)
}

/// One request on a fresh connection.
fn call(socket: &Path, req: &Request) -> std::io::Result<Response> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    send(&mut s, req)?;
    recv(&mut s)
}

fn health(socket: &Path) -> Option<wire::msg::HealthInfo> {
    match call(socket, &Request::Health) {
        Ok(Response::Health(h)) => Some(h),
        _ => None,
    }
}

fn policy_json() -> String {
    serde_json::json!({
        "policy_id": "kill9-kee1-l1",
        "allowed_levels": ["KEE1-L1"],
        "require_tpm": true,
        "max_evidence_age_ms": 60000,
        "result_ttl_ms": 600000,
        "nonce_ttl_ms": 30000
    })
    .to_string()
}

/// One acknowledged write.
#[derive(Debug, Clone)]
struct Ack {
    seq: u64,
    hash: Vec<u8>,
    context_hash: [u8; 32],
}

/// One write sent while k1 was serving that got no acknowledgement.
#[derive(Debug, Clone)]
struct Unacked {
    /// Index of the kill that interrupted it (0-based).
    kill: usize,
    context_hash: [u8; 32],
}

#[derive(Default)]
struct Ledger {
    acks: Vec<(usize, Ack)>,
    unacked: Vec<Unacked>,
    /// Writes refused while k1 was down or booting (never sent to a serving kernel).
    refused_while_down: u64,
}

struct Load {
    /// Incremented at each kill: the epoch a write was sent in.
    epoch: AtomicUsize,
    /// k1 is serving (set by the test once health says so, cleared just before SIGKILL).
    serving: AtomicBool,
    stop: AtomicBool,
    ledger: Mutex<Ledger>,
}

/// One client: a connection to k1's proxy, reopened whenever it breaks; every write carries
/// a unique context so that its ALE can be found by the context hash the kernel records.
fn client(id: usize, socket: PathBuf, load: Arc<Load>) {
    let mut conn: Option<UnixStream> = None;
    let mut n = 0u64;
    while !load.stop.load(Ordering::Acquire) {
        if conn.is_none() {
            match UnixStream::connect(&socket) {
                Ok(s) => {
                    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                    conn = Some(s);
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            }
        }
        let Some(s) = conn.as_mut() else { continue };
        n += 1;
        let context_json = format!(r#"{{"purpose":"relief","req":"c{id}-{n}"}}"#);
        let context_hash = attestation::sha256(context_json.as_bytes());
        let req = Request::Evaluate(EvaluateParams {
            principal: "Agent::\"planner\"".into(),
            action: "Action::\"read\"".into(),
            resource: "Dataset::\"census\"".into(),
            context_json,
            entities_json: String::new(),
            session_id: format!("load-c{id}"),
            agent_xpid: String::new(),
        });
        let epoch = load.epoch.load(Ordering::Acquire);
        let serving = load.serving.load(Ordering::Acquire);
        let outcome = send(s, &req).and_then(|()| recv(s));
        let mut ledger = load.ledger.lock().unwrap();
        match outcome {
            Ok(Response::Decision(d)) if d.ale_seq > 0 => ledger.acks.push((
                epoch,
                Ack {
                    seq: d.ale_seq,
                    hash: d.ale_hash,
                    context_hash,
                },
            )),
            other => {
                if other.is_err() {
                    conn = None;
                }
                if serving {
                    ledger.unacked.push(Unacked {
                        kill: epoch,
                        context_hash,
                    });
                } else {
                    ledger.refused_while_down += 1;
                }
                drop(ledger);
                if !serving {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
}

/// One durable ALE, as read back from `audit.db`.
struct Row {
    seq: u64,
    kind: String,
    session_id: String,
    body: Vec<u8>,
    span_hash: Vec<u8>,
}

/// Reads k1's audit database read-only and checks gap-free sequence numbers, stored hashes
/// and the `prev_span_hash` chain from genesis to the tail.
fn read_and_verify_db(path: &Path) -> Vec<Row> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT seq, session_id, at_ms, kind, body, prev_span_hash, span_hash FROM ales ORDER BY seq",
        )
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut out = Vec::new();
    let mut prev = attestation::gar::GENESIS_HASH.to_vec();
    while let Some(r) = rows.next().unwrap() {
        let seq: i64 = r.get(0).unwrap();
        let at: i64 = r.get(2).unwrap();
        let ale = attestation::gar::Ale {
            seq: seq as u64,
            session_id: r.get(1).unwrap(),
            at_ms: at as u64,
            kind: r.get(3).unwrap(),
            body: r.get(4).unwrap(),
            prev_span_hash: r.get(5).unwrap(),
        };
        let stored: Vec<u8> = r.get(6).unwrap();
        let expected_seq = out.len() as u64 + 1;
        assert_eq!(ale.seq, expected_seq, "gap in durable sequence numbers");
        assert_eq!(
            ale.prev_span_hash, prev,
            "prev_span_hash chain broken at seq {}",
            ale.seq
        );
        assert_eq!(
            ale.hash().to_vec(),
            stored,
            "stored span hash of seq {} is not its ALE's hash",
            ale.seq
        );
        prev = stored.clone();
        out.push(Row {
            seq: ale.seq,
            kind: ale.kind,
            session_id: ale.session_id,
            body: ale.body,
            span_hash: stored,
        });
    }
    out
}

#[derive(serde::Deserialize)]
struct DecisionBody {
    #[serde(with = "serde_bytes")]
    context_hash: Vec<u8>,
}

/// The last lines of a log, for a failure message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!(
        "--- {} ---\n{}",
        path.display(),
        lines[lines.len().saturating_sub(30)..].join("\n")
    )
}

fn percentile(sorted: &[u128], p: usize) -> u128 {
    sorted[(sorted.len() - 1) * p / 100]
}

#[test]
fn twenty_kill9s_of_the_enclave_under_load_lose_no_acknowledged_ale() {
    let started = Instant::now();
    let bin = bin_dir();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let policy_path = root.join("policy.json");
    std::fs::write(&policy_path, policy_json()).unwrap();
    let cedar_path = root.join("governance.cedar");
    std::fs::write(&cedar_path, CEDAR).unwrap();
    let db = root.join("verifier.db");
    let state_root = root.join("kernels");
    let mut procs = Procs::default();

    // The ceremony, as `cargo xtask demo` runs it: a signed DKG plan per kernel.
    let out = Command::new(bin.join("verifier"))
        .args(["dkg", "--json", "--threshold", "2", "--signers", "3"])
        .arg("--db")
        .arg(&db)
        .arg("--policy")
        .arg(&policy_path)
        .arg("--state-root")
        .arg(&state_root)
        .args(KERNELS.iter().flat_map(|k| ["--kernel", k]))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "verifier dkg: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let vport = free_port_pair();
    let vkey_path = root.join("verifier.pub");
    procs.start(
        "verifier",
        Command::new(bin.join("verifier"))
            .arg("serve")
            .arg("--db")
            .arg(&db)
            .arg("--policy")
            .arg(&policy_path)
            .arg("--listen")
            .arg(format!("127.0.0.1:{vport}"))
            .arg("--require-tls")
            .arg("--public-key-out")
            .arg(&vkey_path),
        &root.join("verifier.log"),
    );
    wait_for("the verifier's public key", Duration::from_secs(30), || {
        std::fs::read_to_string(&vkey_path).is_ok_and(|k| k.trim().len() == 64)
    });
    let vkey = std::fs::read_to_string(&vkey_path)
        .unwrap()
        .trim()
        .to_string();

    // Per kernel: swtpm, host proxy, enclave. k1's enclave command is kept to restart it.
    let mut enclave_cmds: HashMap<&str, Vec<std::ffi::OsString>> = HashMap::new();
    for (i, k) in KERNELS.iter().enumerate() {
        let dir = state_root.join(k);
        let tpm_port = free_port_pair();
        let tpm_state = dir.join("tpm");
        std::fs::create_dir_all(&tpm_state).unwrap();
        procs.start(
            &format!("swtpm-{k}"),
            Command::new("swtpm")
                .args(["socket", "--tpm2", "--flags", "not-need-init,startup-clear"])
                .arg("--tpmstate")
                .arg(format!("dir={}", tpm_state.display()))
                .arg("--server")
                .arg(format!("type=tcp,port={tpm_port}"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={}", tpm_port + 1)),
            &dir.join("swtpm.log"),
        );
        wait_for("swtpm", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", tpm_port)).is_ok()
        });
        let vsock = dir.join("vsock.sock");
        let public = dir.join("public.sock");
        let mut host = Command::new(bin.join("host"));
        host.arg("proxy")
            .arg("--listen")
            .arg(format!("unix:{}", public.display()))
            .arg("--enclave")
            .arg(format!(
                "hybrid:{}:{}",
                vsock.display(),
                wire::hybrid::GOVERNANCE_PORT
            ))
            .arg("--egress-tls")
            .arg(format!(
                "{}=tcp:127.0.0.1:{vport}",
                wire::hybrid::VERIFIER_PORT
            ))
            // The attested TLS route: peer kernels reach this one here (mutual TLS).
            .arg("--listen-tls")
            .arg(format!("unix:{}", dir.join("tls.sock").display()))
            .arg("--enclave-tls")
            .arg(format!(
                "hybrid:{}:{}",
                vsock.display(),
                enclave::tls::TLS_PORT
            ))
            .env("RUST_LOG", "warn");
        let mut args: Vec<std::ffi::OsString> = vec![
            "--kernel-id".into(),
            (*k).into(),
            "--state-dir".into(),
            dir.clone().into(),
            "--vsock-uds".into(),
            vsock.clone().into(),
            "--verifier-public-key".into(),
            vkey.clone().into(),
            "--cedar-policy".into(),
            cedar_path.clone().into(),
            "--platform".into(),
            "software".into(),
            "--tpm-tcti".into(),
            format!("swtpm:host=127.0.0.1,port={tpm_port}").into(),
            // Blocks close and are threshold-signed often, so kills land mid-anchoring too.
            "--anchor-interval-ms".into(),
            "500".into(),
        ];
        for (j, peer) in KERNELS.iter().enumerate() {
            if j == i {
                continue;
            }
            let port = wire::hybrid::PEER_PORT_BASE + j as u32;
            // Peer calls: mutually attested TLS, carried as records to the peer's TLS route.
            host.arg("--egress-tls").arg(format!(
                "{port}=unix:{}",
                state_root.join(peer).join("tls.sock").display()
            ));
            args.push("--peer".into());
            args.push(format!("{peer}={port}").into());
        }
        procs.start(&format!("host-{k}"), &mut host, &dir.join("host.log"));
        procs.start(
            &format!("enclave-{k}"),
            Command::new(bin.join("enclave"))
                .args(&args)
                .env("RUST_LOG", "info")
                .env("RUST_BACKTRACE", "0"),
            &dir.join("enclave-0.log"),
        );
        enclave_cmds.insert(k, args);
    }
    let public = |k: &str| state_root.join(k).join("public.sock");
    for k in KERNELS {
        let mut last = None;
        let deadline = Instant::now() + FIRST_BOOT;
        loop {
            if let Some(h) = health(&public(k)) {
                if h.state == KernelState::Serving {
                    break;
                }
                assert!(
                    h.state != KernelState::Halted,
                    "{k} halted at first boot: {h:?}"
                );
                last = Some(h);
            }
            assert!(
                Instant::now() < deadline,
                "{k} did not serve within {FIRST_BOOT:?}; last health {last:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let first_boot = started.elapsed();
    let group_key = match call(&public("k1"), &Request::Manifest).unwrap() {
        Response::Manifest(m) => {
            let man: attestation::manifest::GecManifest = wire::decode(&m.manifest).unwrap();
            hex::decode(man.group_public_key).unwrap()
        }
        other => panic!("manifest of k1: {other:?}"),
    };
    assert_eq!(group_key.len(), 32);

    let load = Arc::new(Load {
        epoch: AtomicUsize::new(0),
        serving: AtomicBool::new(true),
        stop: AtomicBool::new(false),
        ledger: Mutex::new(Ledger::default()),
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (sock, load) = (public("k1"), load.clone());
            std::thread::spawn(move || client(id, sock, load))
        })
        .collect();

    let k1_dir = state_root.join("k1");
    let mut rng = rand::thread_rng();
    let mut restart_ms: Vec<u128> = Vec::new();
    let mut boot_to_serving_ms: Vec<u64> = Vec::new();
    let mut load_ms: Vec<u64> = Vec::new();
    for kill in 0..KILLS {
        assert!(
            started.elapsed() < BUDGET,
            "over the time budget after {kill} kills"
        );
        let ms = rng.gen_range(100..=600);
        load_ms.push(ms);
        std::thread::sleep(Duration::from_millis(ms));
        if let Ok(Some(st)) = procs.get("enclave-k1").try_wait() {
            panic!(
                "k1 exited by itself before kill {kill}: {st}\n{}",
                log_tail(&k1_dir.join(format!("enclave-{kill}.log")))
            );
        }
        // SIGKILL with writes in flight.
        load.serving.store(false, Ordering::Release);
        let killed_at = Instant::now();
        let mut child = procs.remove("enclave-k1");
        child.kill().unwrap();
        child.wait().unwrap();
        load.epoch.fetch_add(1, Ordering::AcqRel);
        procs.start(
            "enclave-k1",
            Command::new(bin.join("enclave"))
                .args(&enclave_cmds["k1"])
                .env("RUST_LOG", "info")
                .env("RUST_BACKTRACE", "0"),
            &k1_dir.join(format!("enclave-{}.log", kill + 1)),
        );
        let mut last = None;
        loop {
            if let Some(h) = health(&public("k1")) {
                if h.state == KernelState::Serving {
                    boot_to_serving_ms.push(h.boot_to_serving_ms.unwrap_or(0));
                    break;
                }
                last = Some(h);
            }
            if let Ok(Some(st)) = procs.get("enclave-k1").try_wait() {
                panic!(
                    "k1 exited after restart {}: {st}; last health {last:?}\n{}",
                    kill + 1,
                    log_tail(&k1_dir.join(format!("enclave-{}.log", kill + 1)))
                );
            }
            assert!(
                killed_at.elapsed() < RESTART,
                "k1 did not serve again within {RESTART:?} of kill {}; last health {last:?}",
                kill + 1
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        restart_ms.push(killed_at.elapsed().as_millis());
        load.serving.store(true, Ordering::Release);
    }
    // A last stretch of load on the twentieth restart, then stop.
    std::thread::sleep(Duration::from_millis(300));
    load.stop.store(true, Ordering::Release);
    for c in clients {
        c.join().unwrap();
    }
    let ledger = std::mem::take(&mut *load.ledger.lock().unwrap());
    let max_acked = ledger.acks.iter().map(|(_, a)| a.seq).max().unwrap_or(0);
    assert!(
        ledger.acks.len() > KILLS,
        "too few writes acknowledged to mean anything: {}",
        ledger.acks.len()
    );

    // 1. The database: gap-free, chained, every acknowledged ALE with its hash.
    let rows = read_and_verify_db(&k1_dir.join("audit.db"));
    let by_seq: HashMap<u64, &Row> = rows.iter().map(|r| (r.seq, r)).collect();
    let mut seen_seq = HashSet::new();
    for (epoch, a) in &ledger.acks {
        assert!(seen_seq.insert(a.seq), "seq {} acknowledged twice", a.seq);
        let row = by_seq
            .get(&a.seq)
            .unwrap_or_else(|| panic!("acknowledged ALE {} (epoch {epoch}) is gone", a.seq));
        assert_eq!(row.span_hash, a.hash, "acknowledged ALE {} changed", a.seq);
        assert_eq!(row.kind, "soos.governance.cedar.decision");
        let body: DecisionBody = wire::decode(&row.body).unwrap();
        assert_eq!(
            body.context_hash,
            a.context_hash.to_vec(),
            "ALE {} records another request than the one acknowledged",
            a.seq
        );
    }
    let boots = rows
        .iter()
        .filter(|r| r.kind == "soos.governance.attestation")
        .count();
    assert!(
        boots > KILLS,
        "{boots} attestation events for {} boots",
        KILLS + 1
    );
    // Writes that got no acknowledgement: durable anyway (committed, the answer died with
    // the process) or lost (never committed; allowed, since nobody was told otherwise).
    let durable_contexts: HashSet<Vec<u8>> = rows
        .iter()
        .filter(|r| r.session_id.starts_with("load-c"))
        .filter_map(|r| wire::decode::<DecisionBody>(&r.body).ok())
        .map(|b| b.context_hash)
        .collect();
    // Every load ALE in the log was acknowledged or in flight at a kill: nothing else.
    let load_ales = rows
        .iter()
        .filter(|r| r.session_id.starts_with("load-c"))
        .count();
    let unacked_contexts: HashSet<Vec<u8>> = ledger
        .unacked
        .iter()
        .map(|u| u.context_hash.to_vec())
        .collect();
    let durable_unacked = durable_contexts
        .iter()
        .filter(|c| unacked_contexts.contains(*c))
        .count();
    assert_eq!(
        load_ales,
        ledger.acks.len() + durable_unacked,
        "the log holds decisions nobody sent"
    );
    let mut per_kill = vec![(0u64, 0u64, 0u64); KILLS + 1];
    for (epoch, _) in &ledger.acks {
        per_kill[*epoch].0 += 1;
    }
    for u in &ledger.unacked {
        if durable_contexts.contains(u.context_hash.as_slice()) {
            per_kill[u.kill].1 += 1;
        } else {
            per_kill[u.kill].2 += 1;
        }
    }

    // 2. The threshold-signed audit package reaches past the last acknowledged ALE and
    //    verifies offline under the group key.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut attempt = 0;
    let package = loop {
        attempt += 1;
        let dir = root.join(format!("package-{attempt}"));
        let out = Command::new(bin.join("enclave"))
            .args(&enclave_cmds["k1"])
            .arg("--export-audit")
            .arg(&dir)
            .output()
            .unwrap();
        if out.status.success() {
            let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            if s["ales"].as_u64().unwrap() >= max_acked {
                break dir;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the anchored prefix never reached ALE {max_acked}: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let report = verifier::offline::verify_audit_package(&package, None, Some(&group_key)).unwrap();
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.check, c.detail))
        .collect();
    assert!(report.verified, "audit package does not verify: {failed:?}");
    let read = |f: &str| std::fs::read(package.join(f)).unwrap();
    use attestation::gar::files;
    let p = attestation::gar::Package::parse(
        &read(files::MANIFEST),
        &read(files::ALES),
        &read(files::BLOCKS),
        &read(files::SIGNATURES),
        &read(files::GROUP_KEY),
    )
    .unwrap();
    for (_, a) in &ledger.acks {
        let bytes = &p.ales[(a.seq - 1) as usize];
        assert_eq!(
            attestation::sha256(bytes).to_vec(),
            a.hash,
            "packaged ALE {} differs from the acknowledged one",
            a.seq
        );
    }

    // The figures.
    let mut sorted = restart_ms.clone();
    sorted.sort_unstable();
    let mut bts = boot_to_serving_ms.clone();
    bts.sort_unstable();
    let bts: Vec<u128> = bts.into_iter().map(u128::from).collect();
    let unacked_total: u64 = per_kill.iter().map(|k| k.1 + k.2).sum();
    let lost_total: u64 = per_kill.iter().map(|k| k.2).sum();
    println!("kill9: first boot of three kernels {first_boot:?}");
    println!("kill9: kill  load_ms  acked_before  unacked_in_flight  durable_unacked  lost_unacked  kill_to_serving_ms  boot_to_serving_ms");
    for i in 0..KILLS {
        let (acked, durable, lost) = per_kill[i];
        println!(
            "kill9: {:>4}  {:>7}  {:>12}  {:>17}  {:>15}  {:>12}  {:>18}  {:>18}",
            i + 1,
            load_ms[i],
            acked,
            durable + lost,
            durable,
            lost,
            restart_ms[i],
            boot_to_serving_ms[i]
        );
    }
    println!(
        "kill9: {KILLS} kills, {} ALEs acknowledged (all durable, same hash; {} after the last restart), {} durable ALEs in all, {unacked_total} writes in flight unacknowledged ({lost_total} lost, {} durable anyway), {} refused while k1 was down",
        ledger.acks.len(),
        per_kill[KILLS].0,
        rows.len(),
        unacked_total - lost_total,
        ledger.refused_while_down
    );
    println!(
        "kill9: kill to serving p50 {} ms, max {} ms; the kernel's own boot to serving p50 {} ms, max {} ms; package {} ALEs in {} blocks verifies; run {:?}",
        percentile(&sorted, 50),
        sorted.last().unwrap(),
        percentile(&bts, 50),
        bts.last().unwrap(),
        p.ales.len(),
        p.blocks.len(),
        started.elapsed()
    );
    drop(procs);
    assert!(
        started.elapsed() < BUDGET,
        "the run took {:?}",
        started.elapsed()
    );
}
