//! Threshold-signing benchmarks (issue 6; `cargo xtask bench threshold [--json]`):
//!
//! * `frost_2of3_signs_per_s` — `sign_digest` end to end with the three kernels in one
//!   process (the e2e harness: verifier service, one host proxy per kernel on Unix sockets,
//!   hybrid vsock), the group key made by the kernels' DKG: client → proxy → coordinator →
//!   (peer commit, peer share: each over mutually attested TLS through both proxies, on
//!   pooled sessions) → aggregate → Ed25519 verify →
//!   audit ALE → back. 16 concurrent clients spread over the three coordinators. Peer: the
//!   KEE-2 performance wall W2 (100 signatures/s); the goal is 10x.
//! * `frost_2of3_signs_p50_ms` / `_p99_ms` — per-call latency of that run.
//! * `frost_2of3_signs_per_s_3proc` (+ p50/p99) — the same with three `enclave` processes
//!   and three `host proxy` processes on loopback (the verifier in this process).
//! * `frost_2of3_signs_per_cpu_s` / `_per_cpu_s_3proc` — signatures per CPU-second of every
//!   process taking part (`/proc/PID/stat` user + system time of this process — clients,
//!   verifier, in-process kernels and proxies — and of the kernel and proxy processes): a
//!   figure that does not depend on how busy the shared machine is.
//! * `frost_2of3_crypto_signs_per_s` — the FROST arithmetic alone on one core (round 1,
//!   round 2 for two signers, aggregate, verify), what the kernels add on top of it.
//! * `peer_tls_handshake_ms` — median of 50 mutually attested TLS handshakes of a peer
//!   (a verifier-appraised `k3` identity) with k1 through k1's proxy, both certificates
//!   appraised, up to the first answer; `peer_tls_health_rtt_ms` — one `health` round trip
//!   on an open session (subtract it from the first to get the handshake alone).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    reason = "test and bench code: any failure should stop the run loudly"
)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/tls/mod.rs"]
mod tls;

use common::*;
use frost_ed25519 as frost;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UnixStream;
use wire::msg::{KernelState, Request, Response, SignDigestParams};

const CLIENTS: usize = 16;
const RUN: Duration = Duration::from_secs(5);
/// KEE-2 performance wall W2: signatures per second.
const W2_SIGNS_PER_S: f64 = 100.0;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

/// CPU seconds (user + system, every thread) `pid` has used so far, from `/proc/PID/stat`.
fn cpu_s(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // `rest` starts at field 3, so utime (14) is index 11 and stime (15) index 12.
    (ticks(11) + ticks(12)) / 100.0
}

/// What one load run measured.
struct Run {
    per_s: f64,
    p50: f64,
    p99: f64,
    /// Signatures per CPU-second of every process involved (this one: clients, verifier and
    /// in-process kernels; plus `pids`).
    per_cpu_s: f64,
}

/// `CLIENTS` clients calling `sign_digest` on `sockets` (round robin) for `RUN`; every
/// signature is checked under `group`. CPU is counted for this process and `pids`.
async fn load(sockets: &[PathBuf], group: &[u8], pids: &[u32]) -> Run {
    let vk = Arc::new(ed25519_dalek::VerifyingKey::from_bytes(&group.try_into().unwrap()).unwrap());
    // Warm up.
    for s in sockets {
        let r = call(
            s,
            &Request::SignDigest(SignDigestParams {
                digest: vec![0; 32],
            }),
        )
        .await;
        assert!(matches!(r, Response::Signature(_)), "{r:?}");
    }
    let cpu = || cpu_s("self") + pids.iter().map(|p| cpu_s(&p.to_string())).sum::<f64>();
    let cpu0 = cpu();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let sock = sockets[c % sockets.len()].clone();
        let vk = vk.clone();
        tasks.push(tokio::spawn(async move {
            use ed25519_dalek::Verifier as _;
            let mut s = UnixStream::connect(&sock).await.unwrap();
            let mut lat = Vec::new();
            let mut i = 0u64;
            while start.elapsed() < RUN {
                let mut digest = [0u8; 32];
                digest[..8].copy_from_slice(&i.to_be_bytes());
                digest[8] = c as u8;
                i += 1;
                let body = wire::encode(&Request::SignDigest(SignDigestParams {
                    digest: digest.to_vec(),
                }))
                .unwrap();
                let t = Instant::now();
                wire::write_frame(&mut s, &body).await.unwrap();
                let resp = wire::read_frame(&mut s).await.unwrap();
                match wire::decode::<Response>(&resp).unwrap() {
                    Response::Signature(sig) => {
                        lat.push(t.elapsed().as_secs_f64() * 1e3);
                        let sig = ed25519_dalek::Signature::from_slice(&sig.signature).unwrap();
                        vk.verify(&digest, &sig).unwrap();
                    }
                    Response::Error(e) if e.code == wire::msg::ErrorCode::Busy => {
                        s = UnixStream::connect(&sock).await.unwrap();
                    }
                    other => panic!("{other:?}"),
                }
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let secs = start.elapsed().as_secs_f64();
    let used = (cpu() - cpu0).max(0.01);
    let n = lat.len() as f64;
    Run {
        per_s: n / secs,
        p50: pct(&mut lat, 0.5),
        p99: pct(&mut lat, 0.99),
        per_cpu_s: n / used,
    }
}

async fn in_process() -> (Run, (f64, f64)) {
    let c = Cluster::start(Options {
        with_tpm: false,
        dkg: true,
        ..Options::default()
    })
    .await;
    c.settle(Duration::from_secs(60)).await;
    for n in &c.nodes {
        assert_eq!(n.kernel.health().state, KernelState::Serving);
    }
    let (group, _) = c.manifest_group_key("k1").await;
    let sockets: Vec<PathBuf> = c.nodes.iter().map(|n| n.public.clone()).collect();
    let run = load(&sockets, &group, &[]).await;
    (run, peer_handshakes(&c).await)
}

/// Medians of [`HANDSHAKES`] mutually attested peer handshakes to k1 through its proxy, as a
/// verifier-appraised peer identity (`k3`, made by the bench): handshake plus the first
/// `health` answer (in TLS 1.3 the server appraises the client certificate after the
/// client's `Finished`, so only the first answer shows it was accepted), and one `health`
/// round trip on an open session, the part of the first figure that is not the handshake.
async fn peer_handshakes(c: &Cluster) -> (f64, f64) {
    const HANDSHAKES: usize = 50;
    let me = tls::attested_as(c.verifier.addr, "k3").await;
    let policy =
        attested_tls::PeerPolicy::new(c.verifier.public_key.clone(), [attestation::Level::L1])
            .kernels(["k1"]);
    let socket = &c.node("k1").tls;
    let mut connect = Vec::new();
    let mut rtt = Vec::new();
    for _ in 0..HANDSHAKES {
        let t = Instant::now();
        let mut s = me.connect(socket, policy.clone()).await.unwrap();
        connect.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let r = tls::tls_call(&mut s, &Request::Health).await;
        rtt.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(matches!(r, Response::Health(_)), "{r:?}");
    }
    (pct(&mut connect, 0.5), pct(&mut rtt, 0.5))
}

struct Procs(Vec<Child>);
impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `target/release` (where `cargo bench` put this binary's dependencies' binaries), with
/// `enclave` and `host` built there if missing.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    if !dir.join("enclave").exists() || !dir.join("host").exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "--release", "-p", "enclave", "-p", "host"])
            .status()
            .unwrap();
        assert!(st.success(), "building enclave and host failed");
    }
    dir
}

async fn three_processes() -> Run {
    let bin = bin_dir();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("verifier.db");
    let store = Arc::new(verifier::Store::open(&db).unwrap());
    let pol = policy(&["KEE1-L1"], false);
    let ids: Vec<String> = (1..=3).map(|i| format!("k{i}")).collect();
    let state_root = dir.path().join("kernels");
    let signer = verifier::service::load_signer(&store).unwrap();
    verifier::ceremony::plan_dkg(&store, &pol, &signer, 2, &ids, &state_root).unwrap();
    let service = verifier::serve_with(
        verifier::ServiceConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            policy: pol,
            require_tls: true,
        },
        verifier::MonitorConfig::default(),
        store.clone(),
    )
    .await
    .unwrap();
    let vkey = hex::encode(&service.public_key);
    let mut procs = Procs(Vec::new());
    let mut sockets = Vec::new();
    for (i, k) in ids.iter().enumerate() {
        let kdir = state_root.join(k);
        let vsock = kdir.join("vsock.sock");
        let public = kdir.join("public.sock");
        let log = |name: &str| std::fs::File::create(kdir.join(name)).unwrap();
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
                "{}=tcp:{}",
                wire::hybrid::VERIFIER_PORT,
                service.addr
            ))
            // The TLS route, where peer kernels' mutually attested sessions arrive.
            .arg("--listen-tls")
            .arg(format!("unix:{}", kdir.join("tls.sock").display()))
            .arg("--enclave-tls")
            .arg(format!(
                "hybrid:{}:{}",
                vsock.display(),
                enclave::tls::TLS_PORT
            ));
        let mut enclave = Command::new(bin.join("enclave"));
        enclave
            .arg("--kernel-id")
            .arg(k)
            .arg("--state-dir")
            .arg(&kdir)
            .arg("--vsock-uds")
            .arg(&vsock)
            .arg("--verifier-public-key")
            .arg(&vkey)
            .arg("--platform")
            .arg("software")
            .env("RUST_LOG", "warn");
        for (j, peer) in ids.iter().enumerate() {
            if j == i {
                continue;
            }
            let port = wire::hybrid::PEER_PORT_BASE + j as u32;
            host.arg("--egress-tls").arg(format!(
                "{port}=unix:{}",
                state_root.join(peer).join("tls.sock").display()
            ));
            enclave.arg("--peer").arg(format!("{peer}={port}"));
        }
        host.env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log("host.log"));
        enclave.stdout(Stdio::null()).stderr(log("enclave.log"));
        procs.0.push(host.spawn().unwrap());
        procs.0.push(enclave.spawn().unwrap());
        sockets.push(public);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    for s in &sockets {
        loop {
            if s.exists() {
                if let Some(Response::Health(h)) =
                    raw(s, &wire::encode(&Request::Health).unwrap()).await
                {
                    if h.state == KernelState::Serving {
                        break;
                    }
                    assert!(
                        h.state != KernelState::Sealed && h.state != KernelState::Halted,
                        "{h:?}"
                    );
                }
            }
            assert!(Instant::now() < deadline, "kernel processes did not serve");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let group = match call(&sockets[0], &Request::Manifest).await {
        Response::Manifest(m) => {
            let v: attestation::manifest::GecManifest = wire::decode(&m.manifest).unwrap();
            hex::decode(v.group_public_key).unwrap()
        }
        other => panic!("{other:?}"),
    };
    let pids: Vec<u32> = procs.0.iter().map(Child::id).collect();
    let out = load(&sockets, &group, &pids).await;
    drop(procs);
    service.stop();
    out
}

/// The FROST arithmetic of one 2-of-3 signature, on this thread.
fn crypto_only() -> f64 {
    let mut rng = rand::rngs::OsRng;
    let ids: Vec<frost::Identifier> = ["k1", "k2", "k3"]
        .iter()
        .map(|k| frost::Identifier::derive(k.as_bytes()).unwrap())
        .collect();
    let (shares, public) =
        frost::keys::generate_with_dealer(3, 2, frost::keys::IdentifierList::Custom(&ids), rng)
            .unwrap();
    let kps: BTreeMap<_, _> = shares
        .into_iter()
        .map(|(i, s)| (i, frost::keys::KeyPackage::try_from(s).unwrap()))
        .collect();
    let signers = [ids[0], ids[1]];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        let msg = n.to_be_bytes();
        let mut nonces = BTreeMap::new();
        let mut commitments = BTreeMap::new();
        for id in &signers {
            let (no, co) = frost::round1::commit(kps[id].signing_share(), &mut rng);
            nonces.insert(*id, no);
            commitments.insert(*id, co);
        }
        let pkg = frost::SigningPackage::new(commitments, &msg);
        let mut sig_shares = BTreeMap::new();
        for id in &signers {
            sig_shares.insert(
                *id,
                frost::round2::sign(&pkg, &nonces[id], &kps[id]).unwrap(),
            );
        }
        let sig = frost::aggregate(&pkg, &sig_shares, &public).unwrap();
        public.verifying_key().verify(&msg, &sig).unwrap();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json_out = args.iter().any(|a| a == "--json");
    let filter = args.iter().find(|a| !a.starts_with("--")).cloned();
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let mut figures = Vec::new();
    let w2 = "KEE-2 wall W2 (100 signatures/s; goal 10x)";
    if wanted("frost_2of3_crypto_signs_per_s") {
        let v = crypto_only();
        figures.push(
            json!({"name": "frost_2of3_crypto_signs_per_s", "value": v, "unit": "signs/s",
            "peer": w2, "ratio": v / W2_SIGNS_PER_S}),
        );
    }
    let mut push = |name: &str, r: &Run| {
        figures.push(
            json!({"name": format!("frost_2of3_signs_per_s{name}"), "value": r.per_s,
            "unit": "signs/s", "peer": w2, "ratio": r.per_s / W2_SIGNS_PER_S}),
        );
        let tag = name;
        figures.push(
            json!({"name": format!("frost_2of3_signs{tag}_p50_ms"), "value": r.p50,
            "unit": "ms", "peer": null, "ratio": null}),
        );
        figures.push(
            json!({"name": format!("frost_2of3_signs{tag}_p99_ms"), "value": r.p99,
            "unit": "ms", "peer": null, "ratio": null}),
        );
        figures.push(
            json!({"name": format!("frost_2of3_signs_per_cpu_s{name}"), "value": r.per_cpu_s,
            "unit": "signs/CPU-s", "peer": w2, "ratio": r.per_cpu_s / W2_SIGNS_PER_S}),
        );
    };
    let mut handshakes = None;
    if wanted("frost_2of3_signs_per_s") {
        let (run, h) = rt.block_on(in_process());
        push("", &run);
        handshakes = Some(h);
    }
    if wanted("frost_2of3_signs_per_s_3proc") {
        push("_3proc", &rt.block_on(three_processes()));
    }
    if let Some((connect, rtt)) = handshakes {
        figures.push(
            json!({"name": "peer_tls_handshake_ms", "value": connect, "unit": "ms",
            "peer": null, "ratio": null}),
        );
        figures.push(
            json!({"name": "peer_tls_health_rtt_ms", "value": rtt, "unit": "ms",
            "peer": null, "ratio": null}),
        );
    }
    if json_out {
        println!("{}", json!({ "figures": figures }));
    } else {
        for f in &figures {
            println!(
                "{:34} {:>12.1} {:8} peer: {} ratio: {}",
                f["name"].as_str().unwrap_or_default(),
                f["value"].as_f64().unwrap_or(0.0),
                f["unit"].as_str().unwrap_or_default(),
                f["peer"],
                f["ratio"]
            );
        }
    }
}
