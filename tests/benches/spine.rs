//! Spine benchmarks (a `--bench` binary; `cargo xtask bench [NAME] [--json]`):
//!
//! * `boot_to_serving_ms` — per kernel, from process-level start of the kernel (attestation key,
//!   vTPM AK, policy, audit log) through collect, appraise and unseal, on the software platform
//!   with a real swtpm; median over every kernel of several 3-kernel clusters.
//! * `spine_evaluate_calls_per_s` — `evaluate` calls end to end through the host proxy
//!   (client → Unix socket → proxy → hybrid vsock → enclave → Cedar → durable audit ALE → back),
//!   8 concurrent clients; the peer is cedar-policy evaluating the same request in-process in
//!   the same run (what the spine adds on top of Cedar).
//! * `cedar_inprocess_evals_per_s` — that in-process baseline, against the KEE-2 W1 wall
//!   (1,000 evaluations/s).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "test and bench code: any failure should stop the run loudly"
)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::net::UnixStream;
use wire::msg::{EvaluateParams, Request, Response};

const CLUSTERS: usize = 3;
const CLIENTS: usize = 8;
const RUN: Duration = Duration::from_secs(4);
/// KEE-2 performance wall W1: Cedar throughput above which a Cedar cluster is required.
const W1_EVALS_PER_S: f64 = 1_000.0;

fn params() -> EvaluateParams {
    EvaluateParams {
        principal: "Agent::\"planner\"".into(),
        action: "Action::\"read\"".into(),
        resource: "Dataset::\"census\"".into(),
        context_json: r#"{"purpose":"relief"}"#.into(),
        entities_json: String::new(),
        session_id: "bench".into(),
        agent_xpid: String::new(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

async fn boot_to_serving() -> f64 {
    let mut all = Vec::new();
    for i in 0..CLUSTERS {
        let c = Cluster::start(Options::default()).await;
        c.settle(Duration::from_secs(60)).await;
        for n in &c.nodes {
            let h = n.kernel.health();
            assert_eq!(h.state, wire::msg::KernelState::Serving, "{:?}", h.reason);
            all.push(h.boot_to_serving_ms.unwrap_or(0) as f64);
        }
        eprintln!("bench: cluster {}/{CLUSTERS} booted", i + 1);
    }
    median(all)
}

async fn evaluate_through_proxy() -> (f64, f64) {
    let c = Cluster::start(Options::default()).await;
    c.settle(Duration::from_secs(60)).await;
    let sock = c.nodes[0].public.clone();
    let body = wire::encode(&Request::Evaluate(params())).unwrap();
    // Warm up.
    let _ = call(&sock, &Request::Evaluate(params())).await;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let sock = sock.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = UnixStream::connect(&sock).await.unwrap();
            let mut n = 0u64;
            let mut lat = Vec::new();
            while start.elapsed() < RUN {
                let t = Instant::now();
                wire::write_frame(&mut s, &body).await.unwrap();
                let resp = wire::read_frame(&mut s).await.unwrap();
                lat.push(t.elapsed().as_secs_f64() * 1e3);
                match wire::decode::<Response>(&resp).unwrap() {
                    Response::Decision(d) => assert_eq!(d.decision, wire::msg::Decision::Allow),
                    Response::Error(e) if e.code == wire::msg::ErrorCode::Busy => {
                        // Per-connection rate limit of the proxy: open a fresh connection.
                        s = UnixStream::connect(&sock).await.unwrap();
                        continue;
                    }
                    other => panic!("{other:?}"),
                }
                n += 1;
            }
            (n, lat)
        }));
    }
    let mut total = 0u64;
    let mut lat = Vec::new();
    for t in tasks {
        let (n, l) = t.await.unwrap();
        total += n;
        lat.extend(l);
    }
    let secs = start.elapsed().as_secs_f64();
    (total as f64 / secs, median(lat))
}

fn cedar_inprocess() -> f64 {
    use cedar_policy::{Authorizer, Context, Entities, PolicySet, Request as CReq};
    let set: PolicySet = CEDAR.parse().unwrap();
    let auth = Authorizer::new();
    let p = params();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        // Parse the request each time, as the kernel does for every call.
        let req = CReq::new(
            p.principal.parse().unwrap(),
            p.action.parse().unwrap(),
            p.resource.parse().unwrap(),
            Context::from_json_str(&p.context_json, None).unwrap(),
            None,
        )
        .unwrap();
        let r = auth.is_authorized(&req, &set, &Entities::empty());
        assert_eq!(r.decision(), cedar_policy::Decision::Allow);
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
    if wanted("boot_to_serving_ms") {
        let ms = rt.block_on(boot_to_serving());
        figures.push(json!({"name": "boot_to_serving_ms", "value": ms, "unit": "ms", "peer": null, "ratio": null}));
    }
    let need_eval = wanted("spine_evaluate_calls_per_s") || wanted("cedar_inprocess_evals_per_s");
    if need_eval {
        let raw = cedar_inprocess();
        if wanted("spine_evaluate_calls_per_s") {
            let (per_s, p50) = rt.block_on(evaluate_through_proxy());
            figures.push(json!({"name": "spine_evaluate_calls_per_s", "value": per_s, "unit": "calls/s",
                "peer": "cedar-policy in-process evaluation of the same request, same run", "ratio": per_s / raw}));
            figures.push(json!({"name": "spine_evaluate_p50_ms", "value": p50, "unit": "ms", "peer": null, "ratio": null}));
        }
        if wanted("cedar_inprocess_evals_per_s") {
            figures.push(
                json!({"name": "cedar_inprocess_evals_per_s", "value": raw, "unit": "evals/s",
                "peer": "KEE-2 wall W1 (1,000 evals/s)", "ratio": raw / W1_EVALS_PER_S}),
            );
        }
    }
    if json_out {
        println!("{}", json!({ "figures": figures }));
    } else {
        for f in &figures {
            println!(
                "{:32} {:>12.1} {:8} peer: {} ratio: {}",
                f["name"].as_str().unwrap_or_default(),
                f["value"].as_f64().unwrap_or(0.0),
                f["unit"].as_str().unwrap_or_default(),
                f["peer"],
                f["ratio"]
            );
        }
    }
}
