//! Governance kernel benchmarks (issue 4; a `--bench` binary; `cargo xtask bench gar`):
//!
//! * `cedar_evals_per_s` — the kernel's Cedar engine without its cache
//!   (`enclave::cedar::Engine::evaluate_uncached`, request parsing included) over a
//!   50-policy set, on one thread (one core), against the KEE-2 W1 wall (1,000
//!   evaluations/s).
//! * `cedar_cached_evals_per_s` — the same 45 requests through `Engine::evaluate`, which
//!   answers repeats from the KEE-2 D1 evaluation cache (every request repeats after the
//!   first round): what a steady workload of recurring decisions costs.
//! * `gar_durable_ales_per_s` — audit events appended and acknowledged only after their
//!   SQLite (WAL, synchronous=FULL) group commit, 256 concurrent writers, with session
//!   blocks closing every 100 ms beside them; against the KEE-2 W3 wall (10,000 ALEs/s).
//! * `signing_ops_per_10k_ales` — threshold (FROST 2-of-3, across real kernels) signatures
//!   made for 10,000 audited decisions with session blocks, against one signature per ALE;
//!   workloads: 10 sessions of 1,000 decisions and 100 sessions of 100 at the default 10 s
//!   anchor interval (each inside one interval), and 100 sessions of 100 paced over about five
//!   1 s intervals. `threshold_signature_ms` is one such signature's wall time.
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

use common::*;
use enclave::audit::{AuditLog, ClosePolicy, NewEvent};
use enclave::cedar::{Engine, LoadedPolicies};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wire::msg::{Decision, EvaluateParams, Request, Response, SignDigestParams};

/// KEE-2 wall W1: Cedar evaluations per second.
const W1: f64 = 1_000.0;
/// KEE-2 wall W3: durable audit events per second.
const W3: f64 = 10_000.0;
const ALES: usize = 10_000;

fn fifty_policies() -> String {
    let mut s = String::new();
    for i in 0..45 {
        s.push_str(&format!(
            "@id(\"agent-{i}-read\")\npermit(principal == Agent::\"agent{i}\", action == Action::\"read\", resource)\nwhen {{ context.purpose == \"relief\" && context.clearance >= {} }};\n",
            i % 5
        ));
    }
    for i in 0..5 {
        s.push_str(&format!(
            "@id(\"deny-{i}\")\nforbid(principal, action == Action::\"delete\", resource)\nwhen {{ context.clearance < {} }};\n",
            i + 1
        ));
    }
    s
}

fn cedar_one_core(cached: bool, sliced: bool) -> f64 {
    let text = fifty_policies();
    let loaded = LoadedPolicies::parse(&text).unwrap();
    let loaded = if sliced {
        loaded
    } else {
        loaded.without_slices()
    };
    let engine = Engine::new(Some(loaded));
    let reqs: Vec<EvaluateParams> = (0..45)
        .map(|i| EvaluateParams {
            principal: format!("Agent::\"agent{i}\""),
            action: "Action::\"read\"".into(),
            resource: "Dataset::\"census\"".into(),
            context_json: r#"{"purpose":"relief","clearance":4}"#.into(),
            entities_json: String::new(),
            session_id: "bench".into(),
            agent_xpid: String::new(),
        })
        .collect();
    // One thread: the figure is per core.
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut n = 0usize;
        while start.elapsed() < Duration::from_secs(3) {
            let r = &reqs[n % reqs.len()];
            let o = if cached {
                engine.evaluate(r)
            } else {
                engine.evaluate_uncached(r)
            };
            assert_eq!(o.decision, Decision::Allow);
            n += 1;
        }
        n as f64 / start.elapsed().as_secs_f64()
    })
    .join()
    .unwrap()
}

async fn durable_ales() -> (f64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(&dir.path().join("audit.db")).unwrap();
    let closer = log.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let closing = std::thread::spawn(move || {
        while !s.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            closer
                .close_blocks(
                    ClosePolicy {
                        all: true,
                        max_ales: 1_024,
                    },
                    [0u8; 32],
                )
                .unwrap();
        }
    });
    let run = Duration::from_secs(4);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..256u32 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while start.elapsed() < run {
                log.append(NewEvent {
                    session_id: format!("s{}", w % 32),
                    kind: "soos.governance.cedar.decision".into(),
                    body: vec![0x5a; 160],
                })
                .await
                .unwrap();
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let per_s = total as f64 / start.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    closing.join().unwrap();
    assert_eq!(log.verify_chain().unwrap(), total);
    let (blocks, _) = log.block_counts().unwrap();
    (per_s, blocks)
}

/// 10,000 decisions over `sessions` sessions on k1 of a real cluster; returns the threshold
/// signatures their blocks took.
async fn signatures_for(c: &Cluster, sessions: usize, pause: Option<Duration>) -> u64 {
    let k1 = c.node("k1").kernel.clone();
    let tag = format!("w{sessions}");
    let per = ALES / sessions;
    let mut tasks = Vec::new();
    for s in 0..sessions {
        let k1 = k1.clone();
        let session = format!("{tag}-{s}");
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                if let Some(p) = pause {
                    tokio::time::sleep(p).await;
                }
                let r = k1
                    .handle(Request::Evaluate(EvaluateParams {
                        principal: "Agent::\"planner\"".into(),
                        action: "Action::\"read\"".into(),
                        resource: "Dataset::\"census\"".into(),
                        context_json: r#"{"purpose":"relief"}"#.into(),
                        entities_json: String::new(),
                        session_id: session.clone(),
                        agent_xpid: String::new(),
                    }))
                    .await;
                assert!(
                    matches!(&r, Response::Decision(d) if d.decision == Decision::Allow),
                    "{r:?}"
                );
            }
            k1.end_session(&session).unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if k1.anchor_now().await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "could not anchor");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let p = k1.audit_log().package("k1").unwrap();
    let ours: Vec<_> = p
        .blocks
        .iter()
        .filter(|b| b.session_id.starts_with(&format!("{tag}-")))
        .collect();
    assert_eq!(
        ours.iter().map(|b| b.seqs.len()).sum::<usize>(),
        per * sessions
    );
    ours.len() as u64
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json_out = args.iter().any(|a| a == "--json");
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let filter = args.iter().find(|a| !a.starts_with("--")).cloned();
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let mut figures = Vec::new();
    if wanted("cedar_evals_per_s") {
        let whole = cedar_one_core(false, false);
        let v = cedar_one_core(false, true);
        figures.push(
            json!({"name": "cedar_evals_per_s", "value": v, "unit": "evals/s",
            "peer": "KEE-2 wall W1 (1,000 evals/s); 50-policy set sliced by scope, one core, no cache", "ratio": v / W1,
            "whole_set_evals_per_s": whole, "ratio_to_whole_set": v / whole}),
        );
    }
    if wanted("cedar_cached_evals_per_s") {
        let v = cedar_one_core(true, true);
        figures.push(
            json!({"name": "cedar_cached_evals_per_s", "value": v, "unit": "evals/s",
            "peer": "KEE-2 wall W1 (1,000 evals/s); 50-policy set, one core, repeats answered by the evaluation cache", "ratio": v / W1}),
        );
    }
    if wanted("gar_durable_ales_per_s") {
        let (v, blocks) = rt.block_on(durable_ales());
        figures.push(json!({"name": "gar_durable_ales_per_s", "value": v, "unit": "ALEs/s",
            "peer": "KEE-2 wall W3 (10,000 ALEs/s); acknowledged after a synchronous=FULL WAL commit, 256 writers",
            "ratio": v / W3, "blocks_closed": blocks}));
    }
    if wanted("signing_ops_per_10k_ales") || wanted("threshold_signature_ms") {
        rt.block_on(async {
            let c = Cluster::start(Options::default()).await;
            c.settle(Duration::from_secs(120)).await;
            let k1 = c.node("k1").kernel.clone();
            // Warm up, then time single threshold signatures.
            let mut ms = Vec::new();
            for i in 0..21u8 {
                let t = Instant::now();
                let r = k1
                    .handle(Request::SignDigest(SignDigestParams {
                        digest: vec![i; 32],
                    }))
                    .await;
                assert!(matches!(r, Response::Signature(_)), "{r:?}");
                if i > 0 {
                    ms.push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
            ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let sig_ms = ms[ms.len() / 2];
            if wanted("signing_ops_per_10k_ales") {
                for sessions in [10usize, 100] {
                    let sigs = signatures_for(&c, sessions, None).await;
                    figures.push(
                        json!({"name": format!("signing_ops_per_10k_ales_{sessions}_sessions"),
                        "value": sigs, "unit": "signatures",
                        "peer": "one threshold signature per ALE (10,000)",
                        "ratio": ALES as f64 / sigs.max(1) as f64}),
                    );
                }
            }
            figures.push(
                json!({"name": "threshold_signature_ms", "value": sig_ms, "unit": "ms",
                "peer": null, "ratio": null}),
            );
        });
    }
    if wanted("signing_ops_per_10k_ales") {
        // The same 100 sessions spread over about five 1 s anchor intervals (each session
        // paced at 20 decisions/s): every interval closes one block per active session.
        rt.block_on(async {
            let c = Cluster::start(Options {
                gar: enclave::GarConfig {
                    anchor_interval_ms: 1_000,
                    max_block_ales: 1_024,
                },
                ..Options::default()
            })
            .await;
            c.settle(Duration::from_secs(120)).await;
            let t = Instant::now();
            let sigs = signatures_for(&c, 100, Some(Duration::from_millis(50))).await;
            figures.push(
                json!({"name": "signing_ops_per_10k_ales_100_sessions_5_intervals",
                "value": sigs, "unit": "signatures",
                "peer": "one threshold signature per ALE (10,000)",
                "ratio": ALES as f64 / sigs.max(1) as f64,
                "workload_s": t.elapsed().as_secs_f64()}),
            );
        });
    }
    if json_out {
        println!("{}", json!({ "figures": figures }));
    } else {
        for f in &figures {
            println!(
                "{:40} {:>12.1} {:10} peer: {} ratio: {}",
                f["name"].as_str().unwrap_or_default(),
                f["value"].as_f64().unwrap_or(0.0),
                f["unit"].as_str().unwrap_or_default(),
                f["peer"],
                f["ratio"]
            );
        }
    }
}
