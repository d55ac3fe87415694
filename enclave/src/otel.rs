//! KEE-1 P6: `soos.governance.*` OpenTelemetry spans, exported over OTLP/HTTP (protobuf)
//! through the host proxy.
//!
//! * **What.** A span for every Cedar evaluation, GAR write, block close, threshold-signing
//!   step (coordinator and participant) and attestation step (collect, appraise, unseal,
//!   re-attestation challenge), named `soos.governance.*` and carrying the fields an
//!   operator needs (decision, policy ids, `cap_profile_hash`, ALE seq, block height and
//!   root, signers, attestation status).
//! * **Trace id = block id (KEE-2 D3).** Every span of a governance session gets the trace id
//!   [`attestation::gar::trace_id`]`(session_id)`, the same function that names the
//!   session's GAR blocks, so a block's `block_id` *is* the OTel trace id of its session and
//!   an auditor can go from a signed block to its spans and back.
//! * **Sampling.** 100% (`Sampler::AlwaysOn`): every call has its span.
//! * **Export.** The guest has no network. A batch span processor (its own thread) hands
//!   batches to [`VsockExporter`], which encodes an OTLP `ExportTraceServiceRequest`
//!   (protobuf) and POSTs it as HTTP/1.1 `/v1/traces` on a connection to host vsock port
//!   `otlp_port` (hybrid vsock: the Unix socket `<uds>_<port>`); the host proxy's
//!   `carry = "http"` egress route forwards it to the collector it allowlists. The exporter
//!   uses blocking sockets with timeouts on the processor's thread, never the runtime: a
//!   collector that is down, slow or refusing costs a governance call nothing. A failed batch
//!   is dropped and counted ([`Telemetry::stats`]); a full queue drops spans in the SDK.
//! * **No endpoint configured.** Spans are still created (same code path, same cost of
//!   building them) and go nowhere.

use crate::config::KernelConfig;
use crate::transport::Vsock;
use opentelemetry::trace::{Span as _, SpanBuilder, Status, TraceId, Tracer as _, TracerProvider};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, SpanData,
    SpanExporter,
};
use opentelemetry_sdk::Resource;
use prost::Message as _;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Host vsock port conventionally routed to the OTLP collector (`carry = "http"`).
pub const DEFAULT_OTLP_PORT: u32 = 5300;
/// Instrumentation scope of every span.
pub const SCOPE: &str = "soos.governance";
/// Longest one export may take (connect, send, answer) before the batch is dropped.
pub const EXPORT_TIMEOUT_MS: u64 = 2_000;
/// Spans waiting for export; past this the SDK drops new spans.
pub const MAX_QUEUE: usize = 4_096;
/// How often the batch processor exports.
pub const EXPORT_INTERVAL_MS: u64 = 200;
/// Longest collector answer read (head and body).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Span names (KEE-1 P6).
pub mod names {
    /// A Cedar evaluation.
    pub const CEDAR_EVALUATE: &str = "soos.governance.cedar.evaluate";
    /// A GAR write (one ALE appended).
    pub const GAR_WRITE: &str = "soos.governance.gar.write";
    /// A session block closed (root computed).
    pub const GAR_BLOCK_CLOSE: &str = "soos.governance.gar.block_close";
    /// A closed block anchored (its threshold signature stored).
    pub const GAR_BLOCK_ANCHOR: &str = "soos.governance.gar.block_anchor";
    /// Threshold signing, coordinator.
    pub const SIGNING_COORDINATE: &str = "soos.governance.signing.coordinate";
    /// Threshold signing, participant round 1 (commitments).
    pub const SIGNING_COMMIT: &str = "soos.governance.signing.commit";
    /// Threshold signing, participant round 2 (signature share).
    pub const SIGNING_SHARE: &str = "soos.governance.signing.share";
    /// Evidence collected and bundled.
    pub const ATTESTATION_COLLECT: &str = "soos.governance.attestation.collect";
    /// The bundle appraised by the verifier and its result checked.
    pub const ATTESTATION_APPRAISE: &str = "soos.governance.attestation.appraise";
    /// The share unsealed with the released wrap key.
    pub const ATTESTATION_UNSEAL: &str = "soos.governance.attestation.unseal";
    /// A re-attestation challenge answered.
    pub const ATTESTATION_REATTEST: &str = "soos.governance.attestation.reattest";
    /// The KEE-1 P3 four-check before an ACD record (issued or refused).
    pub const ACD_CHECK: &str = "soos.governance.acd.check";
    /// A PEER transaction step that produced a PTR (initiator or responder).
    pub const PEER_TRANSACTION: &str = "soos.governance.peer.transaction";
    /// A PEER mutual attestation that failed (ALE-PEER-04).
    pub const PEER_ATTESTATION_FAILED: &str = "soos.governance.peer.attestation_failed";
}

/// Export counters.
#[derive(Debug, Default)]
struct Counters {
    exported: AtomicU64,
    dropped: AtomicU64,
    failed_batches: AtomicU64,
}

/// What the exporter did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Spans the collector acknowledged (HTTP 2xx).
    pub exported: u64,
    /// Spans dropped because their batch could not be delivered.
    pub dropped: u64,
    /// Batches that could not be delivered.
    pub failed_batches: u64,
}

struct Inner {
    tracer: SdkTracer,
    provider: SdkTracerProvider,
    counters: Arc<Counters>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// A kernel's tracer: cheap to clone; [`Telemetry::off`] makes no spans at all (for tools
/// that open an audit log outside a kernel).
#[derive(Clone, Default)]
pub struct Telemetry {
    inner: Option<Arc<Inner>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("on", &self.inner.is_some())
            .finish()
    }
}

impl Telemetry {
    /// No spans.
    pub fn off() -> Self {
        Self { inner: None }
    }

    /// The kernel's tracer: 100% sampling; exported to host port `cfg.otlp_port` when set.
    /// Also registered under the kernel id for code that has only the configuration (the
    /// boot steps), see [`of_kernel`].
    pub fn start(cfg: &KernelConfig) -> Self {
        let t = Self::new(
            &cfg.kernel_id,
            &cfg.fleet_id,
            cfg.otlp_port.map(|p| (cfg.vsock.clone(), p)),
        );
        if let (Ok(mut r), Some(inner)) = (REGISTRY.lock(), &t.inner) {
            r.retain(|_, w| w.strong_count() > 0);
            r.insert(cfg.kernel_id.clone(), Arc::downgrade(inner));
        }
        t
    }

    /// A tracer for `kernel_id` of `fleet_id`, exporting through `export` (the enclave's
    /// vsock and the host port of the OTLP route) when given.
    pub fn new(kernel_id: &str, fleet_id: &str, export: Option<(Vsock, u32)>) -> Self {
        let counters = Arc::new(Counters::default());
        let resource = Resource::builder_empty()
            .with_service_name("soos-enclave")
            .with_attribute(KeyValue::new("soos.kernel_id", kernel_id.to_owned()))
            .with_attribute(KeyValue::new("soos.fleet_id", fleet_id.to_owned()))
            .build();
        let mut builder = SdkTracerProvider::builder()
            .with_sampler(Sampler::AlwaysOn)
            .with_resource(resource);
        if let Some((vsock, port)) = export {
            let exporter = VsockExporter {
                vsock,
                port,
                resource: ResourceAttributesWithSchema::default(),
                conn: Mutex::new(None),
                counters: Arc::clone(&counters),
            };
            let batch = BatchConfigBuilder::default()
                .with_max_queue_size(MAX_QUEUE)
                .with_scheduled_delay(Duration::from_millis(EXPORT_INTERVAL_MS))
                .build();
            builder = builder.with_span_processor(
                BatchSpanProcessor::builder(exporter)
                    .with_batch_config(batch)
                    .build(),
            );
        }
        let provider = builder.build();
        let tracer = provider.tracer(SCOPE);
        Self {
            inner: Some(Arc::new(Inner {
                tracer,
                provider,
                counters,
            })),
        }
    }

    /// Starts span `name` in the trace of `session_id` (trace id = the session's GAR
    /// `block_id`). It ends when the guard drops.
    pub fn span(&self, name: &'static str, session_id: &str) -> SpanGuard {
        let Some(inner) = &self.inner else {
            return SpanGuard { span: None };
        };
        let builder = SpanBuilder::from_name(name)
            .with_trace_id(TraceId::from_bytes(attestation::gar::trace_id(session_id)))
            .with_attributes([KeyValue::new("soos.session_id", session_id.to_owned())]);
        let span = inner.tracer.build_with_context(builder, &Context::new());
        SpanGuard { span: Some(span) }
    }

    /// Export counters.
    pub fn stats(&self) -> Stats {
        self.inner.as_ref().map_or_else(Stats::default, |i| Stats {
            exported: i.counters.exported.load(Ordering::Relaxed),
            dropped: i.counters.dropped.load(Ordering::Relaxed),
            failed_batches: i.counters.failed_batches.load(Ordering::Relaxed),
        })
    }

    /// Exports what has ended so far (blocking, at most the export timeout per batch).
    pub fn flush(&self) {
        if let Some(i) = &self.inner {
            let _ = i.provider.force_flush();
        }
    }
}

/// Kernels' tracers by kernel id (several kernels share a process in tests).
static REGISTRY: Mutex<std::collections::BTreeMap<String, std::sync::Weak<Inner>>> =
    Mutex::new(std::collections::BTreeMap::new());

/// The tracer last started for `kernel_id`, or [`Telemetry::off`] when there is none.
pub fn of_kernel(kernel_id: &str) -> Telemetry {
    let inner = REGISTRY
        .lock()
        .ok()
        .and_then(|r| r.get(kernel_id).and_then(std::sync::Weak::upgrade));
    Telemetry { inner }
}

/// A span in progress; ends on drop.
pub struct SpanGuard {
    span: Option<opentelemetry_sdk::trace::Span>,
}

impl SpanGuard {
    /// Sets an attribute.
    pub fn set_attr(&mut self, key: &'static str, value: impl Into<Value>) {
        if let Some(s) = &mut self.span {
            s.set_attribute(KeyValue::new(key, value));
        }
    }

    /// Sets an unsigned attribute (OTLP integers are signed: saturates at `i64::MAX`).
    pub fn set_u64(&mut self, key: &'static str, value: u64) {
        self.set_attr(key, i64::try_from(value).unwrap_or(i64::MAX));
    }

    /// Sets an attribute to the lowercase hex of `bytes`.
    pub fn set_hex(&mut self, key: &'static str, bytes: &[u8]) {
        self.set_attr(key, hex::encode(bytes));
    }

    /// Sets a list-of-strings attribute.
    pub fn set_list(&mut self, key: &'static str, items: &[String]) {
        let v: Vec<opentelemetry::StringValue> = items.iter().map(|s| s.clone().into()).collect();
        self.set_attr(key, Value::Array(v.into()));
    }

    /// Marks the span failed, with the reason.
    pub fn fail(&mut self, reason: impl Into<String>) {
        if let Some(s) = &mut self.span {
            let reason = reason.into();
            s.set_attribute(KeyValue::new("soos.error", reason.clone()));
            s.set_status(Status::error(reason));
        }
    }
}

/// A connection to the host port that leads to the collector.
enum Conn {
    Unix(std::os::unix::net::UnixStream),
    Vsock(vsock::VsockStream),
}

impl Conn {
    fn open(vsock: &Vsock, port: u32) -> std::io::Result<Self> {
        let t = Some(Duration::from_millis(EXPORT_TIMEOUT_MS));
        match vsock {
            Vsock::Hybrid(uds) => {
                let path = wire::hybrid::guest_initiated_path(uds, port);
                let s = std::os::unix::net::UnixStream::connect(path)?;
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)?;
                Ok(Conn::Unix(s))
            }
            Vsock::Kernel => {
                let s =
                    vsock::VsockStream::connect_with_cid_port(crate::transport::HOST_CID, port)?;
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)?;
                Ok(Conn::Vsock(s))
            }
        }
    }

    fn io(&mut self) -> &mut dyn ReadWrite {
        match self {
            Conn::Unix(s) => s,
            Conn::Vsock(s) => s,
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Errors of one export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// "could not reach the otlp route".
    #[error("could not reach the otlp route on host port {port}")]
    Connect {
        /// Host vsock port.
        port: u32,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// "otlp export i/o failed".
    #[error("otlp export i/o failed")]
    Io(#[source] std::io::Error),
    /// "the collector's answer is not http".
    #[error("the collector's answer is not http")]
    BadAnswer,
    /// "the collector refused the export with status {0}".
    #[error("the collector refused the export with status {0}")]
    Status(u16),
}

/// The OTLP/HTTP request for `body` (an encoded `ExportTraceServiceRequest`).
pub fn http_request(body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: otlp\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// Reads one HTTP/1.1 answer (head and `Content-Length` body); returns the status code and
/// whether the connection must close.
fn read_answer(r: &mut dyn Read) -> Result<(u16, bool), ExportError> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i.saturating_add(4);
        }
        if buf.len() > MAX_ANSWER_BYTES {
            return Err(ExportError::BadAnswer);
        }
        let n = r.read(&mut chunk).map_err(ExportError::Io)?;
        if n == 0 {
            return Err(ExportError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        buf.extend_from_slice(chunk.get(..n).ok_or(ExportError::BadAnswer)?);
    };
    let head = std::str::from_utf8(buf.get(..head_end).ok_or(ExportError::BadAnswer)?)
        .map_err(|_| ExportError::BadAnswer)?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or(ExportError::BadAnswer)?;
    let mut length = 0usize;
    let mut close = false;
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().map_err(|_| ExportError::BadAnswer)?;
            } else if k.eq_ignore_ascii_case("connection") {
                close |= v.trim().eq_ignore_ascii_case("close");
            }
        }
    }
    if length > MAX_ANSWER_BYTES {
        return Err(ExportError::BadAnswer);
    }
    let have = buf.len().saturating_sub(head_end);
    if have < length {
        let mut rest = vec![0u8; length.saturating_sub(have)];
        r.read_exact(&mut rest).map_err(ExportError::Io)?;
    }
    Ok((status, close))
}

/// The span exporter: OTLP/HTTP protobuf over the enclave transport.
pub struct VsockExporter {
    vsock: Vsock,
    port: u32,
    resource: ResourceAttributesWithSchema,
    /// The kept-alive connection (export is never called concurrently).
    conn: Mutex<Option<Conn>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for VsockExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VsockExporter")
            .field("vsock", &self.vsock)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl VsockExporter {
    /// Posts one encoded request on the kept connection, or on a fresh one when the kept one
    /// fails before anything came back.
    fn post(&self, request: &[u8]) -> Result<(), ExportError> {
        let Ok(mut slot) = self.conn.lock() else {
            return Err(ExportError::BadAnswer);
        };
        for attempt in 0..2 {
            let reused = slot.is_some();
            let mut conn = match slot.take() {
                Some(c) => c,
                None => {
                    Conn::open(&self.vsock, self.port).map_err(|source| ExportError::Connect {
                        port: self.port,
                        source,
                    })?
                }
            };
            let sent = conn
                .io()
                .write_all(request)
                .map_err(ExportError::Io)
                .and_then(|()| read_answer(conn.io()));
            match sent {
                Ok((status, close)) => {
                    if !close {
                        *slot = Some(conn);
                    }
                    return if (200..300).contains(&status) {
                        Ok(())
                    } else {
                        Err(ExportError::Status(status))
                    };
                }
                // A kept connection the proxy closed while idle: once more on a fresh one.
                Err(ExportError::Io(_)) if reused && attempt == 0 => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ExportError::BadAnswer)
    }
}

impl SpanExporter for VsockExporter {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let n = u64::try_from(batch.len()).unwrap_or(u64::MAX);
        let request = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(batch, &self.resource),
        };
        // Blocking i/o with socket timeouts, on the batch processor's own thread.
        let result = match self.post(&http_request(&request.encode_to_vec())) {
            Ok(()) => {
                self.counters.exported.fetch_add(n, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.counters.dropped.fetch_add(n, Ordering::Relaxed);
                let failed = self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                // Log the first failure and then one in a hundred.
                if failed % 100 == 0 {
                    tracing::warn!(error = %crate::boot::error_chain(&e), dropped = n, "otlp export failed; spans dropped");
                }
                Err(OTelSdkError::InternalFailure(e.to_string()))
            }
        };
        std::future::ready(result)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_otlp_http_posts() {
        let r = http_request(b"abc");
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("POST /v1/traces HTTP/1.1\r\n"));
        assert!(text.contains("Content-Type: application/x-protobuf\r\n"));
        assert!(text.ends_with("Content-Length: 3\r\n\r\nabc"));
    }

    #[test]
    fn answers_are_read_with_their_status() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
        assert_eq!(read_answer(&mut &ok[..]).unwrap(), (200, false));
        let refused = b"HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(read_answer(&mut &refused[..]).unwrap(), (503, true));
        assert!(matches!(
            read_answer(&mut &b"garbage\r\n\r\n"[..]),
            Err(ExportError::BadAnswer)
        ));
        assert!(matches!(
            read_answer(&mut &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhi"[..]),
            Err(ExportError::Io(_))
        ));
    }

    #[test]
    fn spans_with_no_route_are_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        // Nothing listens at `<uds>_5300`: every batch fails at connect.
        let t = Telemetry::new(
            "k1",
            "f",
            Some((
                Vsock::Hybrid(dir.path().join("vsock.sock")),
                DEFAULT_OTLP_PORT,
            )),
        );
        for i in 0..5 {
            let mut g = t.span(names::GAR_WRITE, "s");
            g.set_u64("soos.ale.seq", i);
        }
        t.flush();
        let s = t.stats();
        assert_eq!((s.exported, s.dropped), (0, 5));
        assert!(s.failed_batches >= 1);
    }

    #[test]
    fn a_live_route_gets_one_protobuf_post_per_batch() {
        let dir = tempfile::tempdir().unwrap();
        let uds = dir.path().join("vsock.sock");
        let l = std::os::unix::net::UnixListener::bind(wire::hybrid::guest_initiated_path(
            &uds,
            DEFAULT_OTLP_PORT,
        ))
        .unwrap();
        let server = std::thread::spawn(move || {
            // One kept-alive connection; requests until the three spans are in.
            let (mut c, _) = l.accept().unwrap();
            let mut heads = Vec::new();
            let mut spans = Vec::new();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while spans.len() < 3 {
                let end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    let n = c.read(&mut chunk).unwrap();
                    assert!(n > 0);
                    buf.extend_from_slice(&chunk[..n]);
                };
                let head = String::from_utf8(buf[..end].to_vec()).unwrap();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .unwrap()
                    .parse()
                    .unwrap();
                while buf.len() < end + len {
                    let n = c.read(&mut chunk).unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                let req = ExportTraceServiceRequest::decode(&buf[end..end + len]).unwrap();
                buf.drain(..end + len);
                spans.extend(
                    req.resource_spans
                        .into_iter()
                        .flat_map(|r| r.scope_spans)
                        .flat_map(|s| s.spans),
                );
                heads.push(head);
                c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    .unwrap();
            }
            (heads, spans)
        });
        let t = Telemetry::new("k7", "f", Some((Vsock::Hybrid(uds), DEFAULT_OTLP_PORT)));
        for i in 0..3 {
            let mut g = t.span(names::CEDAR_EVALUATE, "sess");
            g.set_attr("soos.cedar.decision", "allow");
            g.set_u64("i", i);
        }
        t.flush();
        let (heads, spans) = server.join().unwrap();
        for head in heads {
            assert!(head.starts_with("POST /v1/traces HTTP/1.1\r\n"));
            assert!(head.contains("Content-Type: application/x-protobuf"));
        }
        assert_eq!(spans.len(), 3);
        for s in spans {
            assert_eq!(s.name, names::CEDAR_EVALUATE);
            assert_eq!(s.trace_id, attestation::gar::trace_id("sess"));
        }
        assert_eq!(t.stats().exported, 3);
    }

    #[test]
    fn span_trace_ids_are_the_session_block_ids() {
        let t = Telemetry::new("k1", "f", None);
        let g = t.span(names::CEDAR_EVALUATE, "s-1");
        let id = g
            .span
            .as_ref()
            .map(|s| s.span_context().trace_id())
            .unwrap();
        assert_eq!(id.to_bytes(), attestation::gar::trace_id("s-1"));
        assert!(g.span.as_ref().unwrap().span_context().is_sampled());
        assert!(Telemetry::off().span(names::GAR_WRITE, "s").span.is_none());
    }
}
