//! The vsock proxy: the only path into or out of an enclave.
//!
//! The host is untrusted. It cannot unseal a kernel or forge peer-kernel calls (both are
//! protected end to end by the kernels' keys); client calls are plain CBOR until attested TLS
//! inside the enclave lands. What it can do is decide which bytes reach the guest.
//! This module makes that decision narrow and visible:
//!
//! * **inbound** ([`inbound`]): clients connect to one listen endpoint; each request frame
//!   is checked against the frame limit and the method allowlist and forwarded unchanged to
//!   the enclave's governance port, its response carried back;
//! * **egress** ([`egress`]): the enclave's own connections to host vsock ports arrive at one
//!   listener per configured rule and are forwarded to that rule's destination only.
//!
//! Every connection runs in its own task under a per-listener connection limit, an idle
//! timeout and a request-rate bucket ([`limits`]); a misbehaving peer loses its own
//! connection and nothing else. Every refusal is counted ([`metrics`]) and logged through
//! one shared throttle ([`rate`]).

pub mod egress;
pub mod inbound;
pub mod limits;
pub mod metrics;
pub mod rate;
pub mod upstream;

use crate::transport::{Connection, Endpoint, Listener, Peer, TransportError, VsockPort};
use egress::EgressRule;
use inbound::Allowlist;
use limits::Limits;
use metrics::{Counters, Event, Metrics, MetricsFileError, MetricsSnapshot};
use rate::LogThrottle;
use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::timeout;
use wire::msg::ErrorCode;
use wire::FrameError;

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF_MS: u64 = 100;

/// How often the metrics file is rewritten while the proxy runs.
const METRICS_FILE_INTERVAL_MS: u64 = 1_000;

/// Everything `host proxy` needs to know.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Where clients connect (`unix:` or `tcp:`).
    pub listen: Endpoint,
    /// The enclave's governance service (`hybrid:UDS:5000` in development, `vsock:CID:5000`
    /// with a hypervisor).
    pub enclave: Endpoint,
    /// Allowlisted destinations for the enclave's own connections.
    pub egress: Vec<EgressRule>,
    /// Methods clients may call.
    pub allow: Allowlist,
    /// Limits in force on every listener.
    pub limits: Limits,
    /// Where to keep a JSON [`MetricsSnapshot`], rewritten every second and at exit.
    pub metrics_file: Option<PathBuf>,
}

impl ProxyConfig {
    /// A proxy from `listen` to `enclave` with no egress, the default allowlist and limits.
    pub fn new(listen: Endpoint, enclave: Endpoint) -> Self {
        Self {
            listen,
            enclave,
            egress: Vec::new(),
            allow: Allowlist::default(),
            limits: Limits::default(),
            metrics_file: None,
        }
    }
}

/// Errors starting or stopping the proxy. Errors on single connections are never fatal:
/// they are counted and logged instead.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// "could not open the {role} listener".
    #[error("could not open the {role} listener")]
    Listen {
        /// `inbound` or `egress port N`.
        role: String,
        /// Cause.
        #[source]
        source: TransportError,
    },
    /// "egress needs a vsock enclave endpoint (hybrid: or vsock:), not `{0}`".
    #[error("egress needs a vsock enclave endpoint (hybrid: or vsock:), not `{0}`")]
    EgressNeedsVsock(String),
    /// "egress port {0} is configured twice".
    #[error("egress port {0} is configured twice")]
    DuplicateEgressPort(VsockPort),
    /// "max connections must be at least 1".
    #[error("max connections must be at least 1")]
    NoConnections,
    /// "could not write the metrics file".
    #[error("could not write the metrics file")]
    MetricsFile(#[source] MetricsFileError),
}

/// Which set of counters a listener feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Inbound,
    Egress,
}

/// State every listener of one proxy shares.
#[derive(Debug)]
struct Shared {
    limits: Arc<Limits>,
    metrics: Arc<Metrics>,
    throttle: LogThrottle,
}

/// One listener's view: its name in logs, its counters, the shared state.
#[derive(Debug)]
pub(crate) struct Site {
    label: String,
    direction: Direction,
    shared: Arc<Shared>,
}

impl Site {
    fn counters(&self) -> &Counters {
        match self.direction {
            Direction::Inbound => &self.shared.metrics.inbound,
            Direction::Egress => &self.shared.metrics.egress,
        }
    }

    fn count(&self, event: Event) {
        self.counters().count(event);
    }

    /// A warning about something a peer did, subject to the proxy-wide throttle.
    fn warn(&self, peer: &Peer, event: &'static str, detail: fmt::Arguments<'_>) {
        if let Some(suppressed) = self.shared.throttle.admit(Instant::now()) {
            tracing::warn!(listener = %self.label, %peer, event, suppressed, "{detail}");
        }
    }
}

/// What came from a peer when the proxy asked for a frame.
pub(crate) enum PeerFrame {
    /// A frame body within the limit.
    Body(Vec<u8>),
    /// A frame announced above the limit (counted as `refused_oversize`).
    Oversize { len: u32, limit: u32 },
    /// A zero-length frame (counted as `refused_garbage`).
    Empty,
    /// The peer closed, broke the stream, or idled out (idle counted); nothing to answer.
    Gone,
}

/// Reads one frame from a peer under the idle timeout and the frame limit, counting and
/// logging refusals.
pub(crate) async fn read_peer_frame(conn: &mut Connection, peer: &Peer, site: &Site) -> PeerFrame {
    let limits = &site.shared.limits;
    let read = wire::frame::read_frame_limited(conn, limits.frame_limit());
    match timeout(Duration::from_millis(limits.idle_timeout_ms), read).await {
        Err(_) => {
            site.count(Event::IdleTimeout);
            tracing::debug!(listener = %site.label, %peer, "idle timeout");
            PeerFrame::Gone
        }
        Ok(Ok(body)) => PeerFrame::Body(body),
        Ok(Err(FrameError::Oversize { len, limit })) => {
            site.count(Event::RefusedOversize);
            site.warn(
                peer,
                "refused_oversize",
                format_args!("frame of {len} bytes, limit {limit}"),
            );
            PeerFrame::Oversize { len, limit }
        }
        Ok(Err(FrameError::Empty)) => {
            site.count(Event::RefusedGarbage);
            site.warn(peer, "refused_garbage", format_args!("empty frame"));
            PeerFrame::Empty
        }
        Ok(Err(FrameError::Closed)) => PeerFrame::Gone,
        Ok(Err(e)) => {
            tracing::debug!(listener = %site.label, %peer, error = %e, "connection ended mid-frame");
            PeerFrame::Gone
        }
    }
}

/// Writes one frame within `timeout_ms`; `false` when the peer could not take it.
pub(crate) async fn write_with_timeout(
    conn: &mut Connection,
    body: &[u8],
    timeout_ms: u64,
) -> bool {
    matches!(
        timeout(
            Duration::from_millis(timeout_ms),
            wire::write_frame(conn, body)
        )
        .await,
        Ok(Ok(()))
    )
}

/// Closes `conn` after a refusal: stop writing (the peer sees end of stream after the
/// refusal frame), then read and discard what the peer still sends, within
/// [`limits::LINGER_MS`] and [`limits::LINGER_DRAIN_BYTES`]. Closing with unread input
/// would make TCP reset the connection, and the peer could lose the refusal.
pub(crate) async fn linger_close(mut conn: Connection) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let drain = async {
        if conn.shutdown().await.is_err() {
            return;
        }
        let mut buf = [0u8; 4096];
        let mut left = limits::LINGER_DRAIN_BYTES;
        while left > 0 {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = timeout(Duration::from_millis(limits::LINGER_MS), drain).await;
}

/// Reads the counters of a running proxy.
#[derive(Debug, Clone)]
pub struct ProxyHandle {
    metrics: Arc<Metrics>,
}

impl ProxyHandle {
    /// The current values of every counter.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }
}

/// An egress listener ready to serve.
#[derive(Debug)]
struct EgressSite {
    rule: EgressRule,
    listener: Listener,
    expect_cid: Option<u32>,
}

/// A proxy whose listeners are bound; [`Proxy::run`] serves them.
#[derive(Debug)]
pub struct Proxy {
    config: ProxyConfig,
    inbound: Listener,
    egress: Vec<EgressSite>,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Validates `config` and binds every listener; nothing is served until [`Proxy::run`].
    /// On error, sockets already bound are closed and their files removed.
    pub async fn bind(config: ProxyConfig) -> Result<Self, ProxyError> {
        if config.limits.max_connections == 0 {
            return Err(ProxyError::NoConnections);
        }
        let mut ports = BTreeSet::new();
        for rule in &config.egress {
            if !ports.insert(rule.port) {
                return Err(ProxyError::DuplicateEgressPort(rule.port));
            }
        }
        let inbound =
            Listener::bind(&config.listen)
                .await
                .map_err(|source| ProxyError::Listen {
                    role: "inbound".into(),
                    source,
                })?;
        let mut egress = Vec::with_capacity(config.egress.len());
        for rule in &config.egress {
            let (at, expect_cid) = egress::guest_side_listener(&config.enclave, rule.port)
                .ok_or_else(|| ProxyError::EgressNeedsVsock(config.enclave.to_string()))?;
            let listener = Listener::bind(&at)
                .await
                .map_err(|source| ProxyError::Listen {
                    role: format!("egress port {}", rule.port),
                    source,
                })?;
            egress.push(EgressSite {
                rule: rule.clone(),
                listener,
                expect_cid,
            });
        }
        let shared = Arc::new(Shared {
            limits: Arc::new(config.limits.clone()),
            metrics: Arc::new(Metrics::default()),
            throttle: LogThrottle::new(
                limits::WARNINGS_PER_WINDOW,
                Duration::from_millis(limits::WARN_WINDOW_MS),
            ),
        });
        Ok(Self {
            config,
            inbound,
            egress,
            shared,
        })
    }

    /// A handle for reading counters, valid after the proxy stops too.
    pub fn handle(&self) -> ProxyHandle {
        ProxyHandle {
            metrics: Arc::clone(&self.shared.metrics),
        }
    }

    /// The inbound endpoint as bound (the real port after `tcp:…:0`).
    pub fn listen_endpoint(&self) -> Result<Endpoint, TransportError> {
        self.inbound.local_endpoint()
    }

    /// Each egress rule's port and the endpoint listening for it.
    pub fn egress_endpoints(&self) -> Vec<(VsockPort, Endpoint)> {
        self.egress
            .iter()
            .filter_map(|e| Some((e.rule.port, e.listener.local_endpoint().ok()?)))
            .collect()
    }

    /// Serves until `shutdown` completes, then closes every listener and connection, removes
    /// the socket files it created, writes the metrics file a last time, and returns the
    /// final counters.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<MetricsSnapshot, ProxyError> {
        let Proxy {
            config,
            inbound,
            egress,
            shared,
        } = self;
        let mut tasks = JoinSet::new();
        let site = Arc::new(Site {
            label: format!("inbound {}", config.listen),
            direction: Direction::Inbound,
            shared: Arc::clone(&shared),
        });
        let allow = Arc::new(config.allow.clone());
        let enclave = Arc::new(config.enclave.clone());
        let busy = inbound::error_frame(ErrorCode::Busy, "too many connections; try again later");
        tasks.spawn(accept_loop(
            inbound,
            Arc::clone(&site),
            None,
            busy,
            move |conn, peer| {
                inbound::serve_client(
                    conn,
                    peer,
                    Arc::clone(&site),
                    Arc::clone(&allow),
                    Arc::clone(&enclave),
                )
            },
        ));
        for e in egress {
            let site = Arc::new(Site {
                label: format!("egress {}", e.rule),
                direction: Direction::Egress,
                shared: Arc::clone(&shared),
            });
            let destination = Arc::new(e.rule.destination.clone());
            tasks.spawn(accept_loop(
                e.listener,
                Arc::clone(&site),
                e.expect_cid,
                None,
                move |conn, peer| {
                    egress::serve_guest(conn, peer, Arc::clone(&site), Arc::clone(&destination))
                },
            ));
        }
        if let Some(path) = config.metrics_file.clone() {
            tasks.spawn(keep_metrics_file(path, Arc::clone(&shared.metrics)));
        }
        tracing::info!(listen = %config.listen, enclave = %config.enclave, egress = config.egress.len(), "proxy serving");
        shutdown.await;
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        tracing::info!("proxy stopped");
        let snapshot = shared.metrics.snapshot();
        if let Some(path) = &config.metrics_file {
            metrics::write_metrics_file(path, &snapshot).map_err(ProxyError::MetricsFile)?;
        }
        Ok(snapshot)
    }
}

/// Binds every listener in `config` and serves until `shutdown` completes; returns the
/// final counters. Use [`Proxy::bind`] and [`Proxy::handle`] to read counters meanwhile.
pub async fn run_proxy(
    config: ProxyConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<MetricsSnapshot, ProxyError> {
    Proxy::bind(config).await?.run(shutdown).await
}

/// Accepts connections on one listener forever, each served by `serve` in its own task
/// while a slot is free. Dropping this future closes the listener and aborts every
/// connection task.
async fn accept_loop<S, F>(
    listener: Listener,
    site: Arc<Site>,
    expect_cid: Option<u32>,
    busy_reply: Option<Vec<u8>>,
    serve: S,
) where
    S: Fn(Connection, Peer) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let max = site.shared.limits.max_connections;
    let slots = Arc::new(Semaphore::new(max));
    // Telling a refused client that it is busy takes a task too; those are bounded as well.
    let refusal_slots = Arc::new(Semaphore::new(max));
    let busy_reply: Option<Arc<[u8]>> = busy_reply.map(Arc::from);
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => {
                let (conn, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(listener = %site.label, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(ACCEPT_BACKOFF_MS)).await;
                        continue;
                    }
                };
                if let (Some(cid), Peer::Vsock { cid: from, .. }) = (expect_cid, &peer) {
                    if *from != cid {
                        site.count(Event::RefusedPeer);
                        site.warn(&peer, "refused_peer", format_args!("expected vsock cid {cid}"));
                        continue;
                    }
                }
                match Arc::clone(&slots).try_acquire_owned() {
                    Ok(slot) => {
                        site.count(Event::Accepted);
                        let served = serve(conn, peer);
                        tasks.spawn(async move {
                            served.await;
                            drop(slot);
                        });
                    }
                    Err(_) => {
                        site.count(Event::RefusedBusy);
                        site.warn(&peer, "refused_busy", format_args!("all {max} connection slots taken"));
                        let (Some(reply), Ok(slot)) =
                            (busy_reply.clone(), Arc::clone(&refusal_slots).try_acquire_owned())
                        else {
                            continue;
                        };
                        tasks.spawn(async move {
                            let mut conn = conn;
                            if write_with_timeout(&mut conn, &reply, limits::REFUSAL_WRITE_TIMEOUT_MS).await {
                                linger_close(conn).await;
                            }
                            drop(slot);
                        });
                    }
                }
            }
        }
    }
}

/// Rewrites the metrics file every [`METRICS_FILE_INTERVAL_MS`] until aborted.
async fn keep_metrics_file(path: PathBuf, metrics: Arc<Metrics>) {
    let mut tick = tokio::time::interval(Duration::from_millis(METRICS_FILE_INTERVAL_MS));
    let mut failing = false;
    loop {
        tick.tick().await;
        match metrics::write_metrics_file(&path, &metrics.snapshot()) {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "metrics file not written; will keep trying");
            }
            Err(_) => {}
        }
    }
}
