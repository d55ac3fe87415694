//! The vsock proxy: the only path into or out of an enclave.
//!
//! The host is untrusted. It cannot unseal a kernel or forge peer-kernel calls (both are
//! protected end to end by the kernels' keys), and on the TLS route it cannot read client
//! calls either: TLS terminates inside the enclave, under a certificate that carries the
//! kernel's attestation (see the `attested-tls` crate). What the host can do is decide which
//! bytes reach the guest. This module makes that decision narrow and visible:
//!
//! * **inbound, frames** ([`inbound`]): clients connect to one listen endpoint; each request
//!   frame is checked against the frame limit and the method allowlist and forwarded
//!   unchanged to the enclave's governance port, its response carried back;
//! * **inbound, TLS** ([`relay`]): clients connect to a second listen endpoint and speak TLS
//!   to the enclave's TLS port; the proxy sees record headers only ([`record`]) and checks
//!   their type and size, the handshake deadline and the rate;
//! * **egress** ([`egress`]): the enclave's own connections to host vsock ports arrive at one
//!   listener per configured rule and are forwarded to that rule's destination only, as
//!   frames, as TLS records, or as OTLP/HTTP requests to a collector ([`http`]).
//!
//! Every connection runs in its own task under three connection limits (per listener, per
//! peer, proxy-wide), a handshake deadline, an idle timeout and two request-rate buckets
//! (per connection, per peer) ([`limits`], [`peers`]); a misbehaving peer loses its own
//! connection and nothing else. Every refusal is counted ([`metrics`], exported as
//! Prometheus text by [`prometheus`]) and logged through one shared throttle ([`rate`]).

pub mod config;
pub mod egress;
pub mod http;
pub mod inbound;
pub mod limits;
pub mod metrics;
pub mod peers;
pub mod prometheus;
pub mod rate;
pub mod record;
pub mod relay;
pub mod upstream;

use crate::transport::{Connection, Endpoint, Listener, Peer, TransportError, VsockPort};
use egress::EgressRule;
use inbound::Allowlist;
use limits::Limits;
use metrics::{Counters, Event, Metrics, MetricsFileError, MetricsSnapshot};
use peers::{PeerKey, PeerSlot, PeerTable};
use rate::LogThrottle;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::timeout;
use wire::msg::ErrorCode;
use wire::FrameError;

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF_MS: u64 = 100;

/// How often the metrics file is rewritten while the proxy runs.
const METRICS_FILE_INTERVAL_MS: u64 = 1_000;

/// The TLS route: clients on `listen` reach the TLS server inside the enclave at `enclave`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsRoute {
    /// Where TLS clients connect (`unix:` or `tcp:`).
    pub listen: Endpoint,
    /// The enclave's TLS port (`hybrid:UDS:5443` in development, `vsock:CID:5443`).
    pub enclave: Endpoint,
}

/// Everything `host proxy` needs to know.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Where frame clients connect (`unix:` or `tcp:`).
    pub listen: Endpoint,
    /// The enclave's governance service (`hybrid:UDS:5000` in development, `vsock:CID:5000`
    /// with a hypervisor).
    pub enclave: Endpoint,
    /// The TLS route, if any.
    pub tls: Option<TlsRoute>,
    /// Allowlisted destinations for the enclave's own connections, carried as frames.
    pub egress: Vec<EgressRule>,
    /// Allowlisted destinations carried as TLS records (mutually attested kernel links).
    pub egress_tls: Vec<EgressRule>,
    /// Allowlisted destinations carried as HTTP/1.1 OTLP exports (an OpenTelemetry
    /// collector's OTLP/HTTP port).
    pub egress_http: Vec<EgressRule>,
    /// Names of egress ports (verifier, otlp, peer-k2), for logs.
    pub egress_names: BTreeMap<VsockPort, String>,
    /// Methods frame clients may call.
    pub allow: Allowlist,
    /// Limits in force on every listener.
    pub limits: Limits,
    /// Where to keep a JSON [`MetricsSnapshot`], rewritten every second and at exit.
    pub metrics_file: Option<PathBuf>,
    /// Where to serve the counters as Prometheus text (`GET /metrics`).
    pub metrics_listen: Option<Endpoint>,
}

impl ProxyConfig {
    /// A proxy from `listen` to `enclave` with no TLS route, no egress, the default
    /// allowlist and limits.
    pub fn new(listen: Endpoint, enclave: Endpoint) -> Self {
        Self {
            listen,
            enclave,
            tls: None,
            egress: Vec::new(),
            egress_tls: Vec::new(),
            egress_http: Vec::new(),
            egress_names: BTreeMap::new(),
            allow: Allowlist::default(),
            limits: Limits::default(),
            metrics_file: None,
            metrics_listen: None,
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
        /// `inbound`, `inbound tls`, `metrics` or `egress port N`.
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

/// Which route a listener serves, and so which counters it feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Inbound,
    InboundTls,
    Egress,
}

/// State every listener of one proxy shares.
#[derive(Debug)]
struct Shared {
    limits: Arc<Limits>,
    metrics: Arc<Metrics>,
    throttle: LogThrottle,
    total: Arc<Semaphore>,
    peers: Arc<PeerTable>,
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
            Direction::InboundTls => &self.shared.metrics.inbound_tls,
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

/// One admitted connection: the peer, its per-peer slot, and its per-connection bucket.
pub(crate) struct Admitted {
    peer: Peer,
    slot: PeerSlot,
    bucket: rate::TokenBucket,
}

impl Admitted {
    /// Takes a request token from the connection's and the peer's bucket, counting and
    /// logging a refusal; `false` when the request is over either rate.
    fn take_token(&mut self, site: &Site) -> bool {
        let now = Instant::now();
        if !self.bucket.try_take(now) {
            site.count(Event::RefusedRate);
            site.warn(
                &self.peer,
                "refused_rate",
                format_args!("connection request rate exceeded"),
            );
            return false;
        }
        if !self.slot.try_take(now) {
            site.count(Event::RefusedRatePeer);
            site.warn(
                &self.peer,
                "refused_rate_peer",
                format_args!("peer {:?} request rate exceeded", self.slot.key()),
            );
            return false;
        }
        true
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
    /// The peer closed, broke the stream, or timed out (timeouts counted); nothing to
    /// answer.
    Gone,
}

/// Reads one frame from a peer under the frame limit and a deadline: the handshake
/// timeout for a connection's first frame, the idle timeout after that. Counts and logs
/// refusals.
pub(crate) async fn read_peer_frame(
    conn: &mut Connection,
    peer: &Peer,
    site: &Site,
    first: bool,
) -> PeerFrame {
    let limits = &site.shared.limits;
    let read = wire::frame::read_frame_limited(conn, limits.frame_limit());
    let (deadline_ms, on_timeout) = if first {
        (limits.handshake_timeout_ms, Event::HandshakeTimeout)
    } else {
        (limits.idle_timeout_ms, Event::IdleTimeout)
    };
    match timeout(Duration::from_millis(deadline_ms), read).await {
        Err(_) => {
            site.count(on_timeout);
            tracing::debug!(listener = %site.label, %peer, first, "timed out waiting for a frame");
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

/// How a listener's connections are carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carry {
    Frames,
    Records,
    Http,
}

/// An egress listener ready to serve.
#[derive(Debug)]
struct EgressSite {
    rule: EgressRule,
    carry: Carry,
    listener: Listener,
    expect_cid: Option<u32>,
}

/// A proxy whose listeners are bound; [`Proxy::run`] serves them.
#[derive(Debug)]
pub struct Proxy {
    config: ProxyConfig,
    inbound: Listener,
    tls: Option<(Listener, Endpoint)>,
    metrics_listener: Option<Listener>,
    egress: Vec<EgressSite>,
    shared: Arc<Shared>,
}

async fn bind(endpoint: &Endpoint, role: impl Into<String>) -> Result<Listener, ProxyError> {
    Listener::bind(endpoint)
        .await
        .map_err(|source| ProxyError::Listen {
            role: role.into(),
            source,
        })
}

impl Proxy {
    /// Validates `config` and binds every listener; nothing is served until [`Proxy::run`].
    /// On error, sockets already bound are closed and their files removed.
    pub async fn bind(config: ProxyConfig) -> Result<Self, ProxyError> {
        if config.limits.zero_connection_limit().is_some() {
            return Err(ProxyError::NoConnections);
        }
        let mut ports = BTreeSet::new();
        for rule in config
            .egress
            .iter()
            .chain(&config.egress_tls)
            .chain(&config.egress_http)
        {
            if !ports.insert(rule.port) {
                return Err(ProxyError::DuplicateEgressPort(rule.port));
            }
        }
        let inbound = bind(&config.listen, "inbound").await?;
        let tls = match &config.tls {
            Some(route) => Some((
                bind(&route.listen, "inbound tls").await?,
                route.enclave.clone(),
            )),
            None => None,
        };
        let metrics_listener = match &config.metrics_listen {
            Some(at) => Some(bind(at, "metrics").await?),
            None => None,
        };
        let mut egress = Vec::with_capacity(
            config.egress.len() + config.egress_tls.len() + config.egress_http.len(),
        );
        let rules = (config.egress.iter().map(|r| (r, Carry::Frames)))
            .chain(config.egress_tls.iter().map(|r| (r, Carry::Records)))
            .chain(config.egress_http.iter().map(|r| (r, Carry::Http)));
        for (rule, carry) in rules {
            let (at, expect_cid) = egress::guest_side_listener(&config.enclave, rule.port)
                .ok_or_else(|| ProxyError::EgressNeedsVsock(config.enclave.to_string()))?;
            let listener = bind(&at, format!("egress port {}", rule.port)).await?;
            egress.push(EgressSite {
                rule: rule.clone(),
                carry,
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
            total: Arc::new(Semaphore::new(config.limits.max_connections_total)),
            peers: Arc::new(PeerTable::new(&config.limits)),
        });
        Ok(Self {
            config,
            inbound,
            tls,
            metrics_listener,
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

    /// The TLS route's listen endpoint as bound, if there is a TLS route.
    pub fn tls_endpoint(&self) -> Option<Result<Endpoint, TransportError>> {
        self.tls.as_ref().map(|(l, _)| l.local_endpoint())
    }

    /// The Prometheus endpoint as bound, if there is one.
    pub fn metrics_endpoint(&self) -> Option<Result<Endpoint, TransportError>> {
        self.metrics_listener.as_ref().map(Listener::local_endpoint)
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
            tls,
            metrics_listener,
            egress,
            shared,
        } = self;
        let mut tasks = JoinSet::new();
        let site = |label: String, direction| {
            Arc::new(Site {
                label,
                direction,
                shared: Arc::clone(&shared),
            })
        };
        let frames_site = site(format!("inbound {}", config.listen), Direction::Inbound);
        let allow = Arc::new(config.allow.clone());
        let enclave = Arc::new(config.enclave.clone());
        let busy = inbound::error_frame(ErrorCode::Busy, "too many connections; try again later");
        let s = Arc::clone(&frames_site);
        tasks.spawn(accept_loop(
            inbound,
            frames_site,
            None,
            busy,
            move |conn, admitted| {
                inbound::serve_client(
                    conn,
                    admitted,
                    Arc::clone(&s),
                    Arc::clone(&allow),
                    Arc::clone(&enclave),
                )
            },
        ));
        if let Some((listener, upstream)) = tls {
            let tls_site = site(format!("inbound tls {upstream}"), Direction::InboundTls);
            let upstream = Arc::new(upstream);
            let s = Arc::clone(&tls_site);
            tasks.spawn(accept_loop(
                listener,
                tls_site,
                None,
                None,
                move |conn, admitted| {
                    relay::serve(conn, admitted, Arc::clone(&s), Arc::clone(&upstream))
                },
            ));
        }
        for e in egress {
            let name = config
                .egress_names
                .get(&e.rule.port)
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            let egress_site = site(format!("egress {}{name}", e.rule), Direction::Egress);
            let destination = Arc::new(e.rule.destination.clone());
            let s = Arc::clone(&egress_site);
            match e.carry {
                Carry::Frames => tasks.spawn(accept_loop(
                    e.listener,
                    egress_site,
                    e.expect_cid,
                    None,
                    move |conn, admitted| {
                        egress::serve_guest(
                            conn,
                            admitted,
                            Arc::clone(&s),
                            Arc::clone(&destination),
                        )
                    },
                )),
                Carry::Records => tasks.spawn(accept_loop(
                    e.listener,
                    egress_site,
                    e.expect_cid,
                    None,
                    move |conn, admitted| {
                        relay::serve(conn, admitted, Arc::clone(&s), Arc::clone(&destination))
                    },
                )),
                Carry::Http => tasks.spawn(accept_loop(
                    e.listener,
                    egress_site,
                    e.expect_cid,
                    None,
                    move |conn, admitted| {
                        http::serve_guest(conn, admitted, Arc::clone(&s), Arc::clone(&destination))
                    },
                )),
            };
        }
        if let Some(listener) = metrics_listener {
            tasks.spawn(prometheus::serve(listener, Arc::clone(&shared.metrics)));
        }
        if let Some(path) = config.metrics_file.clone() {
            tasks.spawn(keep_metrics_file(path, Arc::clone(&shared.metrics)));
        }
        tracing::info!(
            listen = %config.listen,
            enclave = %config.enclave,
            tls = config.tls.is_some(),
            egress = config.egress.len() + config.egress_tls.len() + config.egress_http.len(),
            "proxy serving"
        );
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

/// Why a connection got no slot.
enum NoSlot {
    Listener,
    Total,
    Peer,
}

/// The three slots an admitted connection holds: its listener's, the proxy-wide one, and
/// its peer's.
fn admit(
    site: &Site,
    listener_slots: &Arc<Semaphore>,
    peer: &Peer,
) -> Result<(OwnedSemaphorePermit, OwnedSemaphorePermit, PeerSlot), NoSlot> {
    let own = Arc::clone(listener_slots)
        .try_acquire_owned()
        .map_err(|_| NoSlot::Listener)?;
    let total = Arc::clone(&site.shared.total)
        .try_acquire_owned()
        .map_err(|_| NoSlot::Total)?;
    let slot = site
        .shared
        .peers
        .admit(PeerKey::from(peer))
        .ok_or(NoSlot::Peer)?;
    Ok((own, total, slot))
}

/// Accepts connections on one listener forever, each served by `serve` in its own task
/// while it holds a slot. Dropping this future closes the listener and aborts every
/// connection task.
async fn accept_loop<S, F>(
    listener: Listener,
    site: Arc<Site>,
    expect_cid: Option<u32>,
    busy_reply: Option<Vec<u8>>,
    serve: S,
) where
    S: Fn(Connection, Admitted) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let limits = Arc::clone(&site.shared.limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Telling a refused client that it is busy takes a task too; those are bounded as well.
    let refusal_slots = Arc::new(Semaphore::new(limits.max_connections));
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
                match admit(&site, &slots, &peer) {
                    Ok((own, total, slot)) => {
                        site.count(Event::Accepted);
                        let admitted = Admitted {
                            bucket: rate::TokenBucket::new(
                                limits.requests_per_second,
                                limits.request_burst,
                                Instant::now(),
                            ),
                            peer,
                            slot,
                        };
                        let served = serve(conn, admitted);
                        let s = Arc::clone(&site);
                        tasks.spawn(async move {
                            let _open = s.counters().opened();
                            served.await;
                            drop((own, total));
                        });
                    }
                    Err(why) => {
                        let (event, what) = match why {
                            NoSlot::Listener => (Event::RefusedBusy, "listener"),
                            NoSlot::Total => (Event::RefusedBusyTotal, "proxy-wide"),
                            NoSlot::Peer => (Event::RefusedBusyPeer, "per-peer"),
                        };
                        site.count(event);
                        site.warn(&peer, "refused_busy", format_args!("{what} connection limit reached"));
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
