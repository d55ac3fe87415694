//! Re-attestation at fleet scale (issue 9; a `--bench` binary, `cargo xtask bench`):
//! 10,000 simulated kernels speak the real protocol over real TCP to one verifier (real
//! SQLite file, WAL): each boots (nonce → appraise → release), then long-polls `watch` and
//! answers every challenge with fresh software-platform evidence (a per-kernel Ed25519
//! platform key signs the report, a per-kernel ECDSA P-256 attestation key signs the bundle,
//! the verifier verifies both and signs an EAR result and every feed status).
//!
//! * `appraisals_per_s_per_core` — challenge appraisals per CPU-second of the verifier, whose
//!   runtime has one worker thread (its threads are named `verifier-rt`, its WAL checkpointer
//!   `verifier-ckpt`; their CPU time comes from `/proc/self/task/*/schedstat`), over a
//!   steady-state window at a 10 s interval. Peer: the issue's goal, 1,000/s per core (60,000
//!   kernels at a 60 s interval).
//! * `revocation_propagation_p99_ms` — 1% of the kernels start answering with evidence bound
//!   to the wrong manifest; each is revoked at its next challenge, and every kernel of its
//!   ceremony (3) must acknowledge the revocation with a signed `watch`. p99 of verdict →
//!   acknowledgement, as the verifier measures it. Peer: the ron-kms revocation SLA (5 s).
//!
//! The kernels run in a child process (this binary with `--sim`), so that neither side runs
//! out of file descriptors and the verifier's CPU time is its own. `--kernels N` runs another
//! fleet size, `--interval-ms N` another challenge interval (a shorter one offers more load).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "test and bench code: any failure should stop the run loudly"
)]

use attestation::ak::AttestationKey;
use attestation::appraisal::AppraisalPolicy;
use attestation::bundle::{sign_bundle, BundleClaims, BUNDLE_VERSION};
use attestation::sealing::KeyExchange;
use attestation::software::SoftwareAttester;
use attestation::{Attester, BindingValue, Level, Nonce};
use serde_json::json;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use wire::verifier::{
    watch_signed_message, AttestationState, FeedStatus, VerifierRequest, VerifierResponse,
    WatchParams,
};

const KERNELS: usize = 10_000;
const CEREMONY: usize = 3;
const INTERVAL_MS: u64 = 10_000;
const RUN: Duration = Duration::from_secs(30);
const BAD_EVERY: usize = 100;
const BOOT_CONCURRENCY: usize = 64;
/// Issue 9 goal: 60,000 kernels at a 60 s interval on one verifier core.
const GOAL_PER_CORE: f64 = 1_000.0;
/// ron-kms revocation SLA.
const SLA_MS: f64 = 5_000.0;

fn policy() -> AppraisalPolicy {
    AppraisalPolicy::from_json(
        r#"{"policy_id":"bench","allowed_levels":["KEE1-L1"],"require_tpm":false,"max_evidence_age_ms":60000,"nonce_ttl_ms":60000}"#,
    )
    .unwrap()
}

fn kernel_id(i: usize) -> String {
    format!("sim{i:05}")
}

// ---------------------------------------------------------------- simulated kernels (child)

struct Sim {
    id: String,
    ak: AttestationKey,
    platform: SoftwareAttester,
    draft_hash: [u8; 32],
    bad: bool,
}

async fn rpc(s: &mut TcpStream, req: &VerifierRequest) -> VerifierResponse {
    wire::write_frame(s, &wire::encode(req).unwrap())
        .await
        .unwrap();
    wire::decode(&wire::read_frame(s).await.unwrap()).unwrap()
}

impl Sim {
    fn bundle(&mut self, nonce: &Nonce, honest: bool) -> Vec<u8> {
        // A dishonest kernel binds its platform report to another manifest than it claims.
        let bound_to = if honest { self.draft_hash } else { [0xEE; 32] };
        let binding = BindingValue::compute(nonce, self.ak.public_key(), &bound_to);
        let item = self.platform.collect(&binding).unwrap();
        let kx = KeyExchange::generate().unwrap();
        sign_bundle(
            &BundleClaims {
                version: BUNDLE_VERSION,
                kernel_id: self.id.clone(),
                level: Level::L1,
                nonce: nonce.as_bytes().to_vec(),
                manifest_draft_hash: self.draft_hash.to_vec(),
                ak_public: self.ak.public_key().to_vec(),
                key_exchange_public: kx.public_key().to_vec(),
                created_at_ms: attestation::now_ms(),
                items: vec![item],
            },
            &self.ak,
        )
        .unwrap()
    }

    async fn boot(&mut self, addr: &str) {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let VerifierResponse::Nonce { nonce, .. } = rpc(
            &mut s,
            &VerifierRequest::Nonce {
                kernel_id: self.id.clone(),
            },
        )
        .await
        else {
            panic!("no nonce")
        };
        let bundle = self.bundle(&Nonce::from_slice(&nonce).unwrap(), true);
        match rpc(&mut s, &VerifierRequest::Appraise { bundle }).await {
            VerifierResponse::Appraised { status, .. } if status == "affirming" => {}
            other => panic!("boot appraisal: {other:?}"),
        }
        match rpc(
            &mut s,
            &VerifierRequest::ReleaseKey {
                kernel_id: self.id.clone(),
            },
        )
        .await
        {
            VerifierResponse::KeyReleased { .. } => {}
            other => panic!("release: {other:?}"),
        }
    }

    async fn watch(mut self, addr: String, verifier_key: Arc<Vec<u8>>, bad: Arc<AtomicBool>) {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let mut since = 0u64;
        let mut acknowledged = 0u64;
        let mut frozen = false;
        loop {
            let nonce: Vec<u8> = (0..32).map(|_| rand_byte()).collect();
            let signature = if since > acknowledged {
                acknowledged = since;
                self.ak
                    .sign(&watch_signed_message(&self.id, &nonce, since))
                    .unwrap()
            } else {
                Vec::new()
            };
            let resp = rpc(
                &mut s,
                &VerifierRequest::Watch(WatchParams {
                    kernel_id: self.id.clone(),
                    nonce: nonce.clone(),
                    since_seq: since,
                    signature,
                }),
            )
            .await;
            let VerifierResponse::Status { status, signature } = resp else {
                panic!("watch: {resp:?}")
            };
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &*verifier_key)
                .verify(&wire::verifier::feed_signed_message(&status), &signature)
                .expect("feed status signature");
            let st: FeedStatus = wire::decode(&status).unwrap();
            assert_eq!(st.watch_nonce, nonce);
            since = st.seq;
            if st.state == AttestationState::Revoked && !frozen {
                frozen = true;
            }
            if let Some(ch) = st.challenge {
                let honest = !(self.bad && bad.load(Ordering::Relaxed));
                let bundle = self.bundle(&Nonce::from_slice(&ch.nonce).unwrap(), honest);
                match rpc(&mut s, &VerifierRequest::Appraise { bundle }).await {
                    VerifierResponse::Appraised { .. } => {}
                    other => panic!("challenge appraisal: {other:?}"),
                }
            }
        }
    }
}

fn rand_byte() -> u8 {
    use rand::Rng;
    rand::thread_rng().gen()
}

fn sim_main(addr: String, key_hex: String, n: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("sim-rt")
        .enable_all()
        .build()
        .unwrap();
    let key = Arc::new(hex::decode(key_hex).unwrap());
    let bad = Arc::new(AtomicBool::new(false));
    let flag = bad.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if line.map(|l| l.trim() == "bad").unwrap_or(false) {
                flag.store(true, Ordering::SeqCst);
            }
        }
    });
    rt.block_on(async move {
        let slots = Arc::new(tokio::sync::Semaphore::new(BOOT_CONCURRENCY));
        let booted = Arc::new(AtomicUsize::new(0));
        for i in 0..n {
            let permit = slots.clone().acquire_owned().await.unwrap();
            let (addr, key, bad, booted) = (addr.clone(), key.clone(), bad.clone(), booted.clone());
            tokio::spawn(async move {
                let mut draft_hash = [0u8; 32];
                draft_hash.iter_mut().for_each(|b| *b = rand_byte());
                let mut sim = Sim {
                    id: kernel_id(i),
                    ak: AttestationKey::generate().unwrap(),
                    platform: SoftwareAttester::new().unwrap(),
                    draft_hash,
                    bad: i % BAD_EVERY == 0,
                };
                sim.boot(&addr).await;
                drop(permit);
                let done = booted.fetch_add(1, Ordering::SeqCst) + 1;
                if done % 1_000 == 0 {
                    eprintln!("bench: {done} simulated kernels booted");
                }
                sim.watch(addr, key, bad).await;
            });
        }
        std::future::pending::<()>().await;
    });
}

// ---------------------------------------------------------------- the verifier (parent)

/// CPU time (ns) of every thread of process `pid` (`self` for this one) whose name starts
/// with `prefix`.
fn cpu_ns(pid: &str, prefix: &str) -> u64 {
    let mut total = 0u64;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let p = t.path();
        let name = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        if !name.trim().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(p.join("schedstat")).unwrap_or_default();
        total += stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

fn percentile(v: &mut [f64], per_mille: usize) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let rank = (per_mille * v.len()).div_ceil(1000).max(1);
    v.get(rank - 1).copied().unwrap_or(0.0)
}

struct Figures {
    per_core: f64,
    per_s: f64,
    cpu_share: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    samples: usize,
    revoked: u64,
    completion: String,
}

fn run(n: usize, interval_ms: u64) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(verifier::Store::open(&dir.path().join("verifier.db")).unwrap());
    let p = policy();
    let regs: Vec<verifier::store::Registration> = (0..n)
        .map(|i| verifier::store::Registration {
            kernel_id: kernel_id(i),
            ceremony_id: format!("c{:05}", i / CEREMONY),
            wrap_key: attestation::sealing::new_wrap_key().unwrap(),
            reference_digest: p.reference_digest().to_vec(),
            group_public_key: vec![0; 32],
        })
        .collect();
    store
        .register_kernels(&regs, attestation::now_ms())
        .unwrap();
    let monitor = verifier::MonitorConfig {
        interval_ms,
        jitter_pct: 10,
        grace: 3,
        challenge_timeout_ms: 10_000,
        hold_ms: 10_000,
        revocation_deadline_ms: 30_000,
        sweep_ms: 1_000,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("verifier-rt")
        .enable_all()
        .build()
        .unwrap();
    let service = rt
        .block_on(verifier::serve_with(
            verifier::ServiceConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                policy: p,
                require_tls: false,
            },
            monitor,
            store.clone(),
        ))
        .unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--sim",
            &service.addr.to_string(),
            &hex::encode(&service.public_key),
            &n.to_string(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let m = service.monitor.clone();
    let attested = |m: &verifier::Monitor| {
        m.metrics()
            .kernels_by_state
            .get("attested")
            .copied()
            .unwrap_or(0) as usize
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    while attested(&m) < n || m.metrics().watching < n as u64 {
        assert!(Instant::now() < deadline, "the fleet did not boot");
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("bench: {n} kernels attested and watching; steady state for one interval");
    std::thread::sleep(Duration::from_millis(interval_ms));

    let sim = child.id().to_string();
    let (a0, c0, s0, t0) = (
        m.metrics().challenge_appraisals_total,
        cpu_ns("self", "verifier"),
        cpu_ns(&sim, ""),
        Instant::now(),
    );
    std::thread::sleep(RUN);
    let (a1, c1, s1, t1) = (
        m.metrics().challenge_appraisals_total,
        cpu_ns("self", "verifier"),
        cpu_ns(&sim, ""),
        Instant::now(),
    );
    let appraisals = (a1 - a0) as f64;
    let cpu_s = (c1 - c0) as f64 / 1e9;
    let wall_s = (t1 - t0).as_secs_f64();
    eprintln!(
        "bench: {appraisals} challenge appraisals in {wall_s:.1} s wall ({:.0}/s offered), {cpu_s:.2} s verifier CPU, {:.2} s simulator CPU",
        n as f64 * 1_000.0 / interval_ms as f64,
        (s1 - s0) as f64 / 1e9
    );

    // Revocations: 1% of the fleet turns bad.
    let bad = n.div_ceil(BAD_EVERY) as u64;
    writeln!(child.stdin.as_mut().unwrap(), "bad").unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = m.metrics();
        let settled: u64 = s.revocation_completion.values().sum();
        if s.revocations_total >= bad && settled >= bad {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "revocations did not settle: {:?}",
            s.revocation_completion
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let s = m.metrics();
    let wal = std::fs::metadata(dir.path().join("verifier.db-wal")).map_or(0, |m| m.len());
    eprintln!(
        "bench: write-ahead log at the end: {:.1} MiB",
        wal as f64 / 1048576.0
    );
    let mut samples = m.propagation_samples();
    let p50 = percentile(&mut samples, 500);
    let p99 = percentile(&mut samples, 990);
    let max = samples.last().copied().unwrap_or(0.0);
    let _ = child.kill();
    let _ = child.wait();
    service.stop();
    drop(rt);
    Figures {
        per_core: appraisals / cpu_s,
        per_s: appraisals / wall_s,
        cpu_share: cpu_s / wall_s,
        p50_ms: p50,
        p99_ms: p99,
        max_ms: max,
        samples: samples.len(),
        revoked: s.revocations_total,
        completion: format!("{:?}", s.revocation_completion),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--sim") {
        sim_main(args[1].clone(), args[2].clone(), args[3].parse().unwrap());
        return;
    }
    let json_out = args.iter().any(|a| a == "--json");
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.parse::<u64>().unwrap())
    };
    let n = value_of("--kernels").map_or(KERNELS, |v| v as usize);
    let interval_ms = value_of("--interval-ms").unwrap_or(INTERVAL_MS);
    let filter = args
        .iter()
        .enumerate()
        .find(|(i, a)| {
            !a.starts_with("--")
                && (*i == 0 || !["--kernels", "--interval-ms"].contains(&args[i - 1].as_str()))
        })
        .map(|(_, a)| a.clone());
    // A figure name (or part of one) selects figures; `reattest` selects this whole bench.
    let wanted = |name: &str| {
        filter
            .as_deref()
            .is_none_or(|f| f == "reattest" || name.contains(f))
    };
    let mut figures = Vec::new();
    if wanted("appraisals_per_s_per_core") || wanted("revocation_propagation_p99_ms") {
        let f = run(n, interval_ms);
        eprintln!(
            "bench: {n} kernels, interval {interval_ms} ms: {:.0} appraisals/s at {:.0}% of one core = {:.0}/s per core; \
             {} revocations ({}), {} acknowledgements: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            f.per_s,
            f.cpu_share * 100.0,
            f.per_core,
            f.revoked,
            f.completion,
            f.samples,
            f.p50_ms,
            f.p99_ms,
            f.max_ms
        );
        figures.push(json!({"name": "appraisals_per_s_per_core", "value": f.per_core, "unit": "appraisals/s/core",
            "peer": "issue 9 goal: 1,000/s per verifier core (60,000 kernels at a 60 s interval)",
            "ratio": f.per_core / GOAL_PER_CORE}));
        figures.push(
            json!({"name": "reattest_appraisals_per_s", "value": f.per_s, "unit": "appraisals/s",
            "peer": null, "ratio": null}),
        );
        figures.push(
            json!({"name": "revocation_propagation_p99_ms", "value": f.p99_ms, "unit": "ms",
            "peer": "ron-kms revocation SLA (5,000 ms)", "ratio": f.p99_ms / SLA_MS}),
        );
        figures.push(
            json!({"name": "revocation_propagation_p50_ms", "value": f.p50_ms, "unit": "ms",
            "peer": null, "ratio": null}),
        );
    }
    if json_out {
        println!("{}", json!({ "figures": figures }));
    } else {
        for f in &figures {
            println!(
                "{:32} {:>12.2} {:18} peer: {} ratio: {}",
                f["name"].as_str().unwrap_or_default(),
                f["value"].as_f64().unwrap_or(0.0),
                f["unit"].as_str().unwrap_or_default(),
                f["peer"],
                f["ratio"]
            );
        }
    }
}
