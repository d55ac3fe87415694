//! Governance kernel benchmarks (issue 4; a `--bench` binary; `cargo xtask bench gar`):
//!
//! * `cedar_evals_per_s` — the kernel's Cedar engine without its cache
//!   (`enclave::cedar::Engine::evaluate_uncached`, request parsing included) over a
//!   50-policy set, on one thread (one core), against the KEE-2 W1 wall (1,000
//!   evaluations/s).
//! * `cedar_cached_evals_per_s` — the same 45 requests through `Engine::evaluate`, which
//!   answers repeats from the KEE-2 D1 evaluation cache (every request repeats after the
//!   first round): what a steady workload of recurring decisions costs.
//! * `cedar_cached_spans_evals_per_s` / `cedar_cached_exported_evals_per_s` — the same through
//!   an engine with KEE-1 P6 spans (one `soos.governance.cedar.evaluate` span per call): made
//!   but not exported (no collector configured), and exported over OTLP/HTTP to a sink on the
//!   hybrid-vsock path `<uds>_5300` that answers 200 (spans exported and dropped are printed).
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

/// How [`cedar_one_core`] evaluates.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cedar {
    /// `Engine::evaluate_uncached`.
    Uncached,
    /// `Engine::evaluate`, no telemetry.
    Cached,
    /// `Engine::evaluate` with spans, not exported.
    CachedSpans,
    /// `Engine::evaluate` with spans exported to a sink.
    CachedExported,
}

/// An OTLP/HTTP sink on the Unix socket where a hybrid-vsock guest's connections to host
/// port 5300 arrive: reads each request whole, answers 200.
fn otlp_sink(path: std::path::PathBuf) {
    use std::io::{Read, Write};
    let l = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = vec![0u8; 64 * 1024];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match c.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let len: usize = head
                        .split("\r\n")
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map(|v| v.trim().parse().unwrap())
                        .unwrap();
                    while buf.len() < end + 4 + len {
                        match c.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..end + 4 + len);
                    if c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
}

/// Evaluations per second on one thread; with spans exported, also the spans exported and
/// dropped (queue full or export failed).
fn cedar_one_core(mode: Cedar, sliced: bool) -> (f64, Option<(u64, u64)>) {
    let text = fifty_policies();
    let dir = tempfile::tempdir().unwrap();
    let otel = match mode {
        Cedar::Uncached | Cedar::Cached => enclave::otel::Telemetry::off(),
        Cedar::CachedSpans => enclave::otel::Telemetry::new("bench", "bench", None),
        Cedar::CachedExported => {
            let uds = dir.path().join("vsock.sock");
            otlp_sink(wire::hybrid::guest_initiated_path(
                &uds,
                enclave::otel::DEFAULT_OTLP_PORT,
            ));
            enclave::otel::Telemetry::new(
                "bench",
                "bench",
                Some((
                    enclave::transport::Vsock::Hybrid(uds),
                    enclave::otel::DEFAULT_OTLP_PORT,
                )),
            )
        }
    };
    let loaded = LoadedPolicies::parse(&text).unwrap();
    let loaded = if sliced {
        loaded
    } else {
        loaded.without_slices()
    };
    let engine = Engine::new(Some(loaded)).with_telemetry(otel.clone());
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
    let (rate, n) = std::thread::spawn(move || {
        let start = Instant::now();
        let mut n = 0usize;
        while start.elapsed() < Duration::from_secs(3) {
            let r = &reqs[n % reqs.len()];
            let o = if mode == Cedar::Uncached {
                engine.evaluate_uncached(r)
            } else {
                engine.evaluate(r)
            };
            assert_eq!(o.decision, Decision::Allow);
            n += 1;
        }
        (n as f64 / start.elapsed().as_secs_f64(), n as u64)
    })
    .join()
    .unwrap();
    if mode != Cedar::CachedExported {
        return (rate, None);
    }
    otel.flush();
    let st = otel.stats();
    (rate, Some((st.exported, n - st.exported)))
}

async fn durable_ales(writers: u32) -> (f64, u64) {
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
    for w in 0..writers {
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
        let (whole, _) = cedar_one_core(Cedar::Uncached, false);
        let (v, _) = cedar_one_core(Cedar::Uncached, true);
        figures.push(
            json!({"name": "cedar_evals_per_s", "value": v, "unit": "evals/s",
            "peer": "KEE-2 wall W1 (1,000 evals/s); 50-policy set sliced by scope, one core, no cache", "ratio": v / W1,
            "whole_set_evals_per_s": whole, "ratio_to_whole_set": v / whole}),
        );
    }
    if wanted("cedar_cached_evals_per_s") {
        let (v, _) = cedar_one_core(Cedar::Cached, true);
        figures.push(
            json!({"name": "cedar_cached_evals_per_s", "value": v, "unit": "evals/s",
            "peer": "KEE-2 wall W1 (1,000 evals/s); 50-policy set, one core, repeats answered by the evaluation cache", "ratio": v / W1}),
        );
    }
    if wanted("cedar_cached_spans_evals_per_s") {
        let (v, _) = cedar_one_core(Cedar::CachedSpans, true);
        figures.push(
            json!({"name": "cedar_cached_spans_evals_per_s", "value": v, "unit": "evals/s",
            "peer": "KEE-2 wall W1 (1,000 evals/s); as cedar_cached_evals_per_s, one span per evaluation, not exported", "ratio": v / W1}),
        );
    }
    if wanted("cedar_cached_exported_evals_per_s") {
        let (v, counts) = cedar_one_core(Cedar::CachedExported, true);
        let (exported, dropped) = counts.unwrap_or_default();
        figures.push(
            json!({"name": "cedar_cached_exported_evals_per_s", "value": v, "unit": "evals/s",
            "peer": "KEE-2 wall W1 (1,000 evals/s); as cedar_cached_evals_per_s, one span per evaluation, exported over OTLP/HTTP to a local sink", "ratio": v / W1,
            "spans_exported": exported, "spans_dropped": dropped}),
        );
    }
    if wanted("gar_durable_ales_per_s") {
        let (v, blocks) = rt.block_on(durable_ales(256));
        figures.push(json!({"name": "gar_durable_ales_per_s", "value": v, "unit": "ALEs/s",
            "peer": "KEE-2 wall W3 (10,000 ALEs/s); acknowledged after a synchronous=FULL WAL commit, 256 writers",
            "ratio": v / W3, "blocks_closed": blocks}));
        // Group commit spreads one fsync over every writer waiting: the rate grows with the
        // number of concurrent sessions until inserting, not syncing, is the cost.
        let (v4k, blocks) = rt.block_on(durable_ales(4096));
        figures.push(json!({"name": "gar_durable_ales_per_s_4096_writers", "value": v4k, "unit": "ALEs/s",
            "peer": "KEE-2 wall W3 (10,000 ALEs/s); same, 4,096 concurrent writers", "ratio": v4k / W3,
            "ratio_to_256_writers": v4k / v, "blocks_closed": blocks}));
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
