//! KEE-1 P6 / KEE-2 D3: `soos.governance.*` spans exported over OTLP/HTTP, on real parts.
//!
//! A 3-kernel cluster (swtpm, sockets, SQLite, FROST across kernels) whose kernels export
//! spans to host vsock port 5300; each host proxy carries that port (`carry = "http"`, the
//! route a deployment configures) to a real OTLP/HTTP receiver this test runs on a TCP port:
//! it speaks HTTP/1.1, takes `POST /v1/traces` with `application/x-protobuf`, decodes the
//! `ExportTraceServiceRequest` with the `opentelemetry-proto` types and answers 200. Then:
//!
//! * boot spans (collect, appraise, unseal) arrive with the affirming status;
//! * every evaluate call of a named session has its Cedar span (100% sampling) with the
//!   decision, and its GAR write span with the ALE seq the call returned, all with trace id =
//!   the session's GAR `block_id`;
//! * the session's block close and anchor spans carry that block's height, root and id, and
//!   a `sign_digest` has its coordinator span (signers) and its participants' spans;
//! * with the collector down, evaluate calls still answer, and the spans are counted as
//!   dropped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "test and bench code: any failure should stop the run loudly"
)]

use crate::common;

use common::*;
use host::Endpoint;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wire::msg::{Decision, EvaluateParams, Request, Response, SignDigestParams};

const WAIT: Duration = Duration::from_secs(60);
const BOOT: Duration = Duration::from_secs(240);
const OTLP_PORT: u32 = enclave::otel::DEFAULT_OTLP_PORT;

/// One span as received, with the kernel that exported it.
#[derive(Debug, Clone)]
struct Got {
    kernel: String,
    span: Span,
}

impl Got {
    fn attr(&self, key: &str) -> Option<AnyValue> {
        self.span
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.clone())
            .and_then(|v| v.value)
    }
    fn str(&self, key: &str) -> Option<String> {
        match self.attr(key) {
            Some(AnyValue::StringValue(s)) => Some(s),
            _ => None,
        }
    }
    fn int(&self, key: &str) -> Option<i64> {
        match self.attr(key) {
            Some(AnyValue::IntValue(i)) => Some(i),
            _ => None,
        }
    }
    fn list(&self, key: &str) -> Vec<String> {
        match self.attr(key) {
            Some(AnyValue::ArrayValue(a)) => a
                .values
                .into_iter()
                .filter_map(|v| match v.value {
                    Some(AnyValue::StringValue(s)) => Some(s),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// A real OTLP/HTTP receiver (the collector side of the protocol).
struct Receiver {
    spans: Arc<Mutex<Vec<Got>>>,
    /// Requests that were not a protobuf OTLP trace export (must stay 0).
    bad: Arc<Mutex<Vec<String>>>,
    down: Arc<AtomicBool>,
    accept: tokio::task::JoinHandle<()>,
}

async fn read_request(s: &mut tokio::net::TcpStream) -> Option<(String, String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_owned();
    let mut length = 0usize;
    let mut content_type = String::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok()?;
            } else if k.eq_ignore_ascii_case("content-type") {
                content_type = v.trim().to_owned();
            }
        }
    }
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((request_line, content_type, body))
}

impl Receiver {
    async fn start(listener: tokio::net::TcpListener) -> Receiver {
        let spans: Arc<Mutex<Vec<Got>>> = Arc::default();
        let bad: Arc<Mutex<Vec<String>>> = Arc::default();
        let down = Arc::new(AtomicBool::new(false));
        let (s2, b2, d2) = (spans.clone(), bad.clone(), down.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let (spans, bad, down) = (s2.clone(), b2.clone(), d2.clone());
                tokio::spawn(async move {
                    while let Some((line, ctype, body)) = read_request(&mut conn).await {
                        if down.load(Ordering::SeqCst) {
                            return; // the collector died: the connection just closes
                        }
                        if line != "POST /v1/traces HTTP/1.1" || ctype != "application/x-protobuf" {
                            bad.lock().unwrap().push(format!("{line} [{ctype}]"));
                            let _ = conn
                                .write_all(b"HTTP/1.1 415 Unsupported\r\nContent-Length: 0\r\n\r\n")
                                .await;
                            continue;
                        }
                        let req = match ExportTraceServiceRequest::decode(body.as_slice()) {
                            Ok(r) => r,
                            Err(e) => {
                                bad.lock().unwrap().push(format!("undecodable: {e}"));
                                return;
                            }
                        };
                        {
                            let mut got = spans.lock().unwrap();
                            for rs in req.resource_spans {
                                let kernel = rs
                                    .resource
                                    .iter()
                                    .flat_map(|r| r.attributes.iter())
                                    .find(|kv| kv.key == "soos.kernel_id")
                                    .and_then(|kv| kv.value.clone()?.value)
                                    .and_then(|v| match v {
                                        AnyValue::StringValue(s) => Some(s),
                                        _ => None,
                                    })
                                    .unwrap_or_default();
                                for ss in rs.scope_spans {
                                    assert_eq!(ss.scope.unwrap().name, "soos.governance");
                                    for span in ss.spans {
                                        got.push(Got {
                                            kernel: kernel.clone(),
                                            span,
                                        });
                                    }
                                }
                            }
                        }
                        let answer = ExportTraceServiceResponse::default().encode_to_vec();
                        let mut resp = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
                            answer.len()
                        )
                        .into_bytes();
                        resp.extend_from_slice(&answer);
                        if conn.write_all(&resp).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Receiver {
            spans,
            bad,
            down,
            accept,
        }
    }

    fn named(&self, name: &str) -> Vec<Got> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.span.name == name)
            .cloned()
            .collect()
    }

    /// Stops listening and drops every open connection at its next request.
    fn kill(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.accept.abort();
    }
}

async fn evaluate(n: &Node, session: &str, action: &str) -> wire::msg::DecisionInfo {
    let req = Request::Evaluate(EvaluateParams {
        principal: "Agent::\"planner\"".into(),
        action: format!("Action::\"{action}\""),
        resource: "Dataset::\"census\"".into(),
        context_json: r#"{"purpose":"relief"}"#.into(),
        entities_json: String::new(),
        session_id: session.into(),
        agent_xpid: String::new(),
    });
    let call = call(&n.public, &req);
    // Generous: the point is that a collector never holds a call, not how fast it is.
    match tokio::time::timeout(Duration::from_secs(30), call).await {
        Ok(Response::Decision(d)) => d,
        Ok(other) => panic!("{other:?}"),
        Err(_) => panic!("evaluate did not answer within 30 s"),
    }
}

fn trace_hex(session: &str) -> String {
    hex::encode(attestation::gar::trace_id(session))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn governance_spans_reach_a_real_otlp_receiver_and_a_dead_one_blocks_nothing() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = listener.local_addr().unwrap();
    let rx = Receiver::start(listener).await;
    let c = Cluster::start(Options {
        gar: enclave::GarConfig {
            anchor_interval_ms: 1_000,
            max_block_ales: 64,
        },
        otlp: Some((OTLP_PORT, Endpoint::Tcp(collector))),
        ..Options::default()
    })
    .await;
    c.settle(BOOT).await;
    let k1 = c.node("k1");

    // Boot: collect, appraise and unseal spans from every kernel, in the "boot" trace.
    c.wait_for("boot spans of all three kernels", WAIT, |_| {
        let unseal = rx.named("soos.governance.attestation.unseal");
        ["k1", "k2", "k3"]
            .iter()
            .all(|k| unseal.iter().any(|g| g.kernel == *k))
    })
    .await;
    for g in rx.named("soos.governance.attestation.unseal") {
        assert_eq!(hex::encode(&g.span.trace_id), trace_hex("boot"));
        assert_eq!(
            g.str("soos.attestation.status").as_deref(),
            Some("affirming")
        );
        assert_eq!(
            g.str("soos.attestation.outcome").as_deref(),
            Some("unsealed")
        );
    }
    assert!(rx
        .named("soos.governance.attestation.appraise")
        .iter()
        .any(|g| g.kernel == "k1"
            && g.str("soos.attestation.status").as_deref() == Some("affirming")));
    assert!(rx
        .named("soos.governance.attestation.collect")
        .iter()
        .any(|g| g.kernel == "k1" && g.str("soos.attestation.bundle_digest").is_some()));

    // Decisions in one named session: each call has its spans (100% sampling).
    let session = "otel-session-1";
    let mut seqs = Vec::new();
    for i in 0..12 {
        let action = if i % 3 == 2 { "delete" } else { "read" };
        let d = evaluate(k1, session, action).await;
        let expect = if action == "read" {
            Decision::Allow
        } else {
            Decision::Deny
        };
        assert_eq!(d.decision, expect);
        seqs.push(d.ale_seq);
    }
    c.wait_for("every decision's spans", WAIT, |_| {
        rx.named("soos.governance.cedar.evaluate")
            .iter()
            .filter(|g| g.str("soos.session_id").as_deref() == Some(session))
            .count()
            >= 12
            && rx
                .named("soos.governance.gar.write")
                .iter()
                .filter(|g| g.str("soos.session_id").as_deref() == Some(session))
                .count()
                >= 12
    })
    .await;
    let evals: Vec<Got> = rx
        .named("soos.governance.cedar.evaluate")
        .into_iter()
        .filter(|g| g.str("soos.session_id").as_deref() == Some(session))
        .collect();
    assert_eq!(evals.len(), 12, "exactly one cedar span per evaluate call");
    for g in &evals {
        assert_eq!(g.kernel, "k1");
        assert_eq!(hex::encode(&g.span.trace_id), trace_hex(session));
        assert_eq!(g.span.span_id.len(), 8);
        let decision = g.str("soos.cedar.decision").unwrap();
        match g.str("soos.cedar.action").unwrap().as_str() {
            "Action::\"read\"" => {
                assert_eq!(decision, "allow");
                assert_eq!(g.list("soos.cedar.policies"), ["relief-read"]);
            }
            "Action::\"delete\"" => {
                assert_eq!(decision, "deny");
                assert_eq!(g.list("soos.cedar.policies"), ["no-delete"]);
            }
            other => panic!("unexpected action {other}"),
        }
        assert_eq!(
            g.str("soos.cap_profile_hash").unwrap(),
            hex::encode(attestation::sha256(CEDAR.as_bytes()))
        );
    }
    assert_eq!(
        evals
            .iter()
            .filter(|g| g.str("soos.cedar.decision").as_deref() == Some("deny"))
            .count(),
        4
    );
    let mut written: Vec<u64> = rx
        .named("soos.governance.gar.write")
        .iter()
        .filter(|g| g.str("soos.session_id").as_deref() == Some(session))
        .map(|g| {
            assert_eq!(hex::encode(&g.span.trace_id), trace_hex(session));
            assert_eq!(
                g.str("soos.ale.kind").as_deref(),
                Some("soos.governance.cedar.decision")
            );
            g.int("soos.ale.seq").unwrap() as u64
        })
        .collect();
    written.sort_unstable();
    assert_eq!(written, seqs, "one gar.write span per ALE, with its seq");

    // Close and anchor the session's block: its spans carry trace id == block_id.
    k1.kernel.end_session(session).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while let Err(why) = k1.kernel.anchor_now().await {
        assert!(std::time::Instant::now() < deadline, "anchoring: {why}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let package = k1.kernel.audit_log().package("k1").unwrap();
    let block = package
        .blocks
        .iter()
        .find(|b| b.session_id == session)
        .expect("the session's block is anchored")
        .clone();
    assert_eq!(block.seqs, seqs);
    c.wait_for("block close and anchor spans", WAIT, |_| {
        !rx.named("soos.governance.gar.block_anchor").is_empty()
            && rx
                .named("soos.governance.gar.block_close")
                .iter()
                .any(|g| g.str("soos.session_id").as_deref() == Some(session))
    })
    .await;
    let close = rx
        .named("soos.governance.gar.block_close")
        .into_iter()
        .find(|g| g.str("soos.session_id").as_deref() == Some(session))
        .unwrap();
    assert_eq!(close.span.trace_id, block.block_id, "trace id == block_id");
    assert_eq!(close.int("soos.gar.height"), Some(block.height as i64));
    assert_eq!(close.str("soos.gar.root"), Some(hex::encode(&block.root)));
    assert_eq!(close.int("soos.gar.ales"), Some(12));
    c.wait_for("the block's anchor span", WAIT, |_| {
        rx.named("soos.governance.gar.block_anchor")
            .iter()
            .any(|g| g.span.trace_id == block.block_id)
    })
    .await;
    let anchor = rx
        .named("soos.governance.gar.block_anchor")
        .into_iter()
        .find(|g| g.span.trace_id == block.block_id)
        .unwrap();
    assert_eq!(anchor.int("soos.gar.height"), Some(block.height as i64));
    let signers = anchor.list("soos.signing.signers");
    assert_eq!(signers.len(), 2, "{signers:?}");
    assert_eq!(signers[0], "k1");
    // The block's threshold signature: its coordinator span is in the block's trace too.
    assert!(rx
        .named("soos.governance.signing.coordinate")
        .iter()
        .any(|g| g.span.trace_id == block.block_id
            && g.str("soos.signing.outcome").as_deref() == Some("signed")));

    // A threshold signature on request: coordinator and participant spans, one FROST session.
    let digest = attestation::sha256(b"otel test digest");
    let sig = match call(
        &k1.public,
        &Request::SignDigest(SignDigestParams {
            digest: digest.to_vec(),
        }),
    )
    .await
    {
        Response::Signature(s) => s,
        other => panic!("{other:?}"),
    };
    let digest_hex = hex::encode(digest);
    c.wait_for("sign_digest spans", WAIT, |_| {
        let coordinator = rx
            .named("soos.governance.signing.coordinate")
            .into_iter()
            .find(|g| g.str("soos.signing.digest").as_deref() == Some(digest_hex.as_str()));
        let Some(coordinator) = coordinator else {
            return false;
        };
        let frost = coordinator.str("soos.frost.session").unwrap();
        rx.named("soos.governance.signing.share")
            .iter()
            .any(|g| g.str("soos.frost.session").as_deref() == Some(frost.as_str()))
    })
    .await;
    let coordinator = rx
        .named("soos.governance.signing.coordinate")
        .into_iter()
        .find(|g| g.str("soos.signing.digest").as_deref() == Some(digest_hex.as_str()))
        .unwrap();
    assert_eq!(coordinator.kernel, "k1");
    assert_eq!(coordinator.list("soos.signing.signers"), sig.signers);
    let frost = coordinator.str("soos.frost.session").unwrap();
    // The trace of a sign_digest is its FROST session's (the ALE's session id).
    assert_eq!(hex::encode(&coordinator.span.trace_id), trace_hex(&frost));
    let share = rx
        .named("soos.governance.signing.share")
        .into_iter()
        .find(|g| g.str("soos.frost.session").as_deref() == Some(frost.as_str()))
        .unwrap();
    assert_eq!(share.kernel, sig.signers[1]);
    assert_eq!(share.str("soos.signing.coordinator").as_deref(), Some("k1"));
    assert_eq!(share.span.trace_id, coordinator.span.trace_id);
    assert!(rx.named("soos.governance.signing.commit").iter().any(|g| g
        .str("soos.frost.session")
        .as_deref()
        == Some(frost.as_str())
        && g.str("soos.signing.outcome").as_deref() == Some("committed")));
    assert!(
        rx.bad.lock().unwrap().is_empty(),
        "{:?}",
        rx.bad.lock().unwrap()
    );
    // The KEE-1 P3 four-check: one span per acd_issue, each check's outcome an attribute.
    let xpid = "570c5aa4-8261-5288-8476-1635979bac56";
    let r = call(
        &k1.public,
        &Request::AcdIssue(wire::msg::AcdIssueParams {
            agent_xpid: xpid.into(),
            agent_kia_id: String::new(),
            resource_provider: "rp:otel-test".into(),
            nonce: vec![5; 32],
            session_id: "acd-otel".into(),
        }),
    )
    .await;
    assert!(matches!(r, Response::Acd(_)), "{r:?}");
    c.wait_for("the acd check span", WAIT, |_| {
        !rx.named("soos.governance.acd.check").is_empty()
    })
    .await;
    let acd = rx.named("soos.governance.acd.check").remove(0);
    assert_eq!(acd.kernel, "k1");
    assert_eq!(hex::encode(&acd.span.trace_id), trace_hex("acd-otel"));
    assert_eq!(acd.str("soos.acd.agent_xpid").as_deref(), Some(xpid));
    for check in [
        "soos.acd.manifest_current",
        "soos.acd.cedar_policy_hash",
        "soos.acd.kia_not_revoked",
        "soos.acd.xpid_not_revoked",
    ] {
        assert_eq!(acd.attr(check), Some(AnyValue::BoolValue(true)), "{check}");
    }
    let stats = enclave::otel::of_kernel("k1").stats();
    assert!(stats.exported >= 30, "{stats:?}");

    // The collector dies: governance calls go on, spans are dropped and counted.
    rx.kill();
    let before = enclave::otel::of_kernel("k1").stats();
    let received = rx.spans.lock().unwrap().len();
    for _ in 0..20 {
        let d = evaluate(k1, "otel-session-2", "read").await;
        assert_eq!(d.decision, Decision::Allow);
        assert!(d.ale_seq > *seqs.last().unwrap());
    }
    c.wait_for("spans dropped while the collector is down", WAIT, |_| {
        let s = enclave::otel::of_kernel("k1").stats();
        s.dropped >= before.dropped + 20 && s.failed_batches > before.failed_batches
    })
    .await;
    assert_eq!(rx.spans.lock().unwrap().len(), received);
    let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
    for g in rx.spans.lock().unwrap().iter() {
        *by_name.entry(g.span.name.clone()).or_default() += 1;
    }
    eprintln!("spans received by name: {by_name:?}");
    // The proxies counted the forwarded exports and the failed ones as upstream errors.
    let m = k1.proxy.metrics();
    assert!(m.egress.forwarded > 0, "{:?}", m.egress);
    assert!(m.egress.upstream_errors > 0, "{:?}", m.egress);
    // Only the http carry counts bytes on this proxy's egress (the verifier route is frames).
    assert!(m.egress.bytes_up > 0, "{:?}", m.egress);
}
