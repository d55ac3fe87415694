//! Attested TLS benchmarks (a `--bench` binary; `cargo xtask bench [NAME] [--json]`):
//!
//! * `e2e_evaluate_calls_per_s` — `evaluate` calls end to end over attested TLS through the
//!   host proxy's TLS route (client → Unix socket → proxy, record checks → hybrid vsock →
//!   rustls inside the enclave → Cedar → durable audit ALE → back), [`CLIENTS`] concurrent
//!   clients, one attested connection each; the peer is the same workload on direct
//!   connections to the enclave's TLS port in the same run.
//! * `e2e_p50_ms`, `e2e_p99_ms` — per-call latency of that run.
//! * `proxy_overhead_ratio` — direct calls/s divided by proxied calls/s (1.0 = the proxy
//!   costs nothing; 1.25 = a quarter more time per call).
//! * `tls_handshake_ms` — median time to connect and finish an attested handshake through
//!   the proxy (the client's appraisal of the certificate included).
//! * `e2e_health_calls_per_s` — the same path with `health` instead of `evaluate` (no Cedar,
//!   no audit write): what TLS, the proxy and vsock carry when the kernel's work is nil.
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
#[path = "../tests/tls/mod.rs"]
mod tls;

use attestation::Level;
use attested_tls::PeerPolicy;
use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wire::msg::{Decision, EvaluateParams, Request, Response};

const CLIENTS: usize = 8;

/// `--clients=N` on the bench's command line, else [`CLIENTS`].
fn clients() -> usize {
    std::env::args()
        .find_map(|a| a.strip_prefix("--clients=").and_then(|n| n.parse().ok()))
        .unwrap_or(CLIENTS)
}
/// Length of one measured round; each side runs [`ROUNDS`] rounds, interleaved. The
/// calls/s figure is the median round (this machine's throughput swings between runs; the
/// JSON carries every round), the latencies are over all rounds' calls.
const RUN: Duration = Duration::from_secs(2);
const ROUNDS: usize = 5;
const HANDSHAKES: usize = 50;

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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Where a client connects: through the proxy, or straight to the enclave's TLS port.
#[derive(Clone)]
enum Target {
    Proxy(PathBuf),
    Direct(PathBuf),
}

async fn open(target: &Target, policy: &PeerPolicy) -> tls::TlsStream {
    let config = Arc::new(attested_tls::client_config(policy.clone(), None).unwrap());
    let stream = match target {
        Target::Proxy(p) => tokio::net::UnixStream::connect(p).await.unwrap(),
        Target::Direct(uds) => wire::hybrid::connect(uds, enclave::tls::TLS_PORT)
            .await
            .unwrap(),
    };
    tokio_rustls::TlsConnector::from(config)
        .connect(attested_tls::SERVER_NAME.try_into().unwrap(), stream)
        .await
        .unwrap()
}

/// `CLIENTS` attested connections calling `req` for [`RUN`]; (calls, latencies in ms).
async fn round(target: &Target, policy: &PeerPolicy, req: &Request) -> (u64, Vec<f64>) {
    let body = wire::encode(req).unwrap();
    let mut conns = Vec::new();
    for _ in 0..clients() {
        conns.push(open(target, policy).await);
    }
    let start = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut tls| {
            let body = body.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                let mut lat = Vec::new();
                while start.elapsed() < RUN {
                    let t = Instant::now();
                    wire::write_frame(&mut tls, &body).await.unwrap();
                    let resp = wire::read_frame(&mut tls).await.unwrap();
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                    match wire::decode::<Response>(&resp).unwrap() {
                        Response::Decision(d) => assert_eq!(d.decision, Decision::Allow),
                        Response::Health(_) => {}
                        other => panic!("{other:?}"),
                    }
                    n += 1;
                }
                (n, lat)
            })
        })
        .collect();
    let mut total = 0;
    let mut lat = Vec::new();
    for t in tasks {
        let (n, l) = t.await.unwrap();
        total += n;
        lat.extend(l);
    }
    (total, lat)
}

struct Run {
    /// Median round's calls/s.
    per_s: f64,
    /// Every round's calls/s, in order.
    rounds: Vec<f64>,
    p50: f64,
    p99: f64,
}

async fn measure(targets: &[Target], policy: &PeerPolicy, req: &Request) -> Vec<Run> {
    let mut acc: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); targets.len()];
    for _ in 0..ROUNDS {
        for (i, t) in targets.iter().enumerate() {
            let (n, l) = round(t, policy, req).await;
            acc[i].0.push(n as f64 / RUN.as_secs_f64());
            acc[i].1.extend(l);
        }
    }
    let by_value = |a: &f64, b: &f64| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal);
    acc.into_iter()
        .map(|(rounds, mut l)| {
            l.sort_by(by_value);
            let mut sorted = rounds.clone();
            sorted.sort_by(by_value);
            Run {
                per_s: percentile(&sorted, 0.5),
                rounds,
                p50: percentile(&l, 0.50),
                p99: percentile(&l, 0.99),
            }
        })
        .collect()
}

/// Calls/s per round, rounded, for the JSON.
fn rounds(r: &Run) -> Vec<u64> {
    r.rounds.iter().map(|x| x.round() as u64).collect()
}

async fn handshakes(target: &Target, policy: &PeerPolicy) -> f64 {
    let mut ms = Vec::new();
    for _ in 0..HANDSHAKES {
        let t = Instant::now();
        let tls = open(target, policy).await;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        drop(tls);
    }
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    percentile(&ms, 0.5)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json_out = args.iter().any(|a| a == "--json");
    let filter = args.iter().find(|a| !a.starts_with("--")).cloned();
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let names = [
        "e2e_evaluate_calls_per_s",
        "e2e_p50_ms",
        "e2e_p99_ms",
        "proxy_overhead_ratio",
        "tls_handshake_ms",
        "e2e_health_calls_per_s",
    ];
    let mut figures = Vec::new();
    if names.iter().any(|n| wanted(n)) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        figures = rt.block_on(run(&wanted));
    }
    if json_out {
        println!("{}", json!({ "figures": figures }));
    } else {
        for f in &figures {
            println!(
                "{:28} {:>12.3} {:8} peer: {} ratio: {}",
                f["name"].as_str().unwrap_or_default(),
                f["value"].as_f64().unwrap_or(0.0),
                f["unit"].as_str().unwrap_or_default(),
                f["peer"],
                f["ratio"]
            );
        }
    }
}

async fn run(wanted: &dyn Fn(&str) -> bool) -> Vec<serde_json::Value> {
    let c = Cluster::start(Options {
        kernels: 2,
        ..Options::default()
    })
    .await;
    c.settle(Duration::from_secs(60)).await;
    let dir = tempfile::tempdir().unwrap();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let vsock: &Path = &c.node("k1").state_dir.join("vsock.sock");
    // Rate limits are an operator's policy, not capacity: the defaults (5,000 requests/s
    // per connection, 50,000/s per peer, and every bench client is one peer) would cut the
    // bench's connections mid-run. Every other limit keeps its default.
    let limits = host::proxy::limits::Limits {
        requests_per_second: u32::MAX / 2,
        request_burst: u32::MAX / 2,
        peer_requests_per_second: u32::MAX / 2,
        peer_request_burst: u32::MAX / 2,
        ..host::proxy::limits::Limits::default()
    };
    let route = tls::tls_route_with(dir.path(), vsock, None, stop, limits).await;
    let policy = PeerPolicy::new(c.verifier.public_key.clone(), [Level::L1]).kernels(["k1"]);
    let proxied = Target::Proxy(route.listen.clone());
    let direct = Target::Direct(vsock.to_path_buf());
    // Warm up both paths.
    let evaluate = Request::Evaluate(params());
    let _ = round(&proxied, &policy, &evaluate).await;
    eprintln!(
        "bench: measuring {} attested clients, {ROUNDS}x{RUN:?} per path",
        clients()
    );
    let runs = measure(&[proxied.clone(), direct.clone()], &policy, &evaluate).await;
    let (via, straight) = (&runs[0], &runs[1]);
    let mut figures = Vec::new();
    let peer = "same workload on direct connections to the enclave's TLS port, same run";
    if wanted("e2e_evaluate_calls_per_s") {
        figures.push(
            json!({"name": "e2e_evaluate_calls_per_s", "value": via.per_s, "unit": "calls/s",
            "peer": peer, "ratio": via.per_s / straight.per_s, "clients": clients(),
            "goal": 20_000, "ratio_to_goal": via.per_s / 20_000.0,
            "rounds": rounds(via), "direct_rounds": rounds(straight)}),
        );
    }
    if wanted("e2e_p50_ms") {
        figures.push(json!({"name": "e2e_p50_ms", "value": via.p50, "unit": "ms",
            "peer": peer, "ratio": via.p50 / straight.p50}));
    }
    if wanted("e2e_p99_ms") {
        figures.push(json!({"name": "e2e_p99_ms", "value": via.p99, "unit": "ms",
            "peer": peer, "ratio": via.p99 / straight.p99, "goal": 5.0}));
    }
    if wanted("proxy_overhead_ratio") {
        figures.push(json!({"name": "proxy_overhead_ratio", "value": straight.per_s / via.per_s, "unit": "ratio",
            "peer": format!("direct {:.0} calls/s vs proxied {:.0} calls/s", straight.per_s, via.per_s), "ratio": null}));
    }
    if wanted("tls_handshake_ms") {
        let ms = handshakes(&proxied, &policy).await;
        figures.push(json!({"name": "tls_handshake_ms", "value": ms, "unit": "ms", "peer": null, "ratio": null}));
    }
    if wanted("e2e_health_calls_per_s") {
        let runs = measure(&[proxied.clone(), direct], &policy, &Request::Health).await;
        figures.push(
            json!({"name": "e2e_health_calls_per_s", "value": runs[0].per_s, "unit": "calls/s",
            "peer": "health on direct connections to the enclave's TLS port, same run",
            "ratio": runs[0].per_s / runs[1].per_s}),
        );
    }
    let m = route.proxy.metrics().inbound_tls;
    assert_eq!(m.refusals(), 0, "the proxy refused bench traffic: {m:?}");
    figures
}
