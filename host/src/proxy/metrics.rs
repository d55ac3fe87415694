//! Counters of what the proxy did and refused, readable while it runs.
//!
//! The design promise is "everything else is refused and counted": each refusal class has
//! its own counter, kept separately for the three routes (clients into the enclave as CBOR
//! frames, clients into the enclave as TLS records, the enclave out to its allowlisted
//! destinations). Counters are plain relaxed atomics; a [`MetricsSnapshot`] is a serde value
//! that tests read in-process, the `host proxy` binary writes to its metrics file, and
//! [`render_prometheus`] turns into the Prometheus text exposition format for the
//! `--metrics-listen` endpoint ([`super::prometheus`]).

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters for one route.
#[derive(Debug, Default)]
pub struct Counters {
    accepted: AtomicU64,
    forwarded: AtomicU64,
    refused_method: AtomicU64,
    refused_oversize: AtomicU64,
    refused_garbage: AtomicU64,
    refused_busy: AtomicU64,
    refused_busy_total: AtomicU64,
    refused_busy_peer: AtomicU64,
    refused_rate: AtomicU64,
    refused_rate_peer: AtomicU64,
    refused_peer: AtomicU64,
    idle_timeouts: AtomicU64,
    handshake_timeouts: AtomicU64,
    upstream_errors: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    open: AtomicU64,
}

/// One event the proxy counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A connection was given a slot and is being served.
    Accepted,
    /// A frame (or TLS record) went upstream.
    Forwarded,
    /// A request named a method that is not on the allowlist.
    RefusedMethod,
    /// A frame or record announced a body above the limit.
    RefusedOversize,
    /// A frame body was not a CBOR request with a `method`, or was empty; or a TLS record
    /// had a content type, version or length TLS 1.3 never sends.
    RefusedGarbage,
    /// A connection arrived while every slot on its listener was taken.
    RefusedBusy,
    /// A connection arrived while the proxy-wide connection limit was reached.
    RefusedBusyTotal,
    /// A connection arrived from a peer already holding its per-peer limit.
    RefusedBusyPeer,
    /// A request arrived faster than its connection's rate limit.
    RefusedRate,
    /// A request arrived faster than its peer's rate limit (all its connections together).
    RefusedRatePeer,
    /// A connection came from a peer that may not use this listener.
    RefusedPeer,
    /// A connection sent nothing complete for the idle timeout and was closed.
    IdleTimeout,
    /// A new connection did not finish its handshake (first frame, or TLS handshake) in
    /// time and was closed.
    HandshakeTimeout,
    /// An upstream could not be reached, timed out, or answered with a bad frame.
    UpstreamError,
}

impl Counters {
    /// Counts one `event`.
    pub fn count(&self, event: Event) {
        let counter = match event {
            Event::Accepted => &self.accepted,
            Event::Forwarded => &self.forwarded,
            Event::RefusedMethod => &self.refused_method,
            Event::RefusedOversize => &self.refused_oversize,
            Event::RefusedGarbage => &self.refused_garbage,
            Event::RefusedBusy => &self.refused_busy,
            Event::RefusedBusyTotal => &self.refused_busy_total,
            Event::RefusedBusyPeer => &self.refused_busy_peer,
            Event::RefusedRate => &self.refused_rate,
            Event::RefusedRatePeer => &self.refused_rate_peer,
            Event::RefusedPeer => &self.refused_peer,
            Event::IdleTimeout => &self.idle_timeouts,
            Event::HandshakeTimeout => &self.handshake_timeouts,
            Event::UpstreamError => &self.upstream_errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` bytes carried toward the upstream (`up`) or back to the peer.
    pub fn add_bytes(&self, up: bool, n: usize) {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        let c = if up { &self.bytes_up } else { &self.bytes_down };
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// One more connection open; the returned guard closes it again.
    pub(crate) fn opened(&self) -> OpenGuard<'_> {
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenGuard(&self.open)
    }

    /// The current values.
    pub fn snapshot(&self) -> CountersSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CountersSnapshot {
            accepted: get(&self.accepted),
            forwarded: get(&self.forwarded),
            refused_method: get(&self.refused_method),
            refused_oversize: get(&self.refused_oversize),
            refused_garbage: get(&self.refused_garbage),
            refused_busy: get(&self.refused_busy),
            refused_busy_total: get(&self.refused_busy_total),
            refused_busy_peer: get(&self.refused_busy_peer),
            refused_rate: get(&self.refused_rate),
            refused_rate_peer: get(&self.refused_rate_peer),
            refused_peer: get(&self.refused_peer),
            idle_timeouts: get(&self.idle_timeouts),
            handshake_timeouts: get(&self.handshake_timeouts),
            upstream_errors: get(&self.upstream_errors),
            bytes_up: get(&self.bytes_up),
            bytes_down: get(&self.bytes_down),
            open: get(&self.open),
        }
    }
}

/// Decrements the open-connections gauge when dropped.
#[derive(Debug)]
pub(crate) struct OpenGuard<'a>(&'a AtomicU64);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Values of [`Counters`] at one moment. Field meanings are those of [`Event`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CountersSnapshot {
    /// See [`Event::Accepted`].
    pub accepted: u64,
    /// See [`Event::Forwarded`].
    pub forwarded: u64,
    /// See [`Event::RefusedMethod`] (frame route only: nothing else can see methods).
    pub refused_method: u64,
    /// See [`Event::RefusedOversize`].
    pub refused_oversize: u64,
    /// See [`Event::RefusedGarbage`].
    pub refused_garbage: u64,
    /// See [`Event::RefusedBusy`].
    pub refused_busy: u64,
    /// See [`Event::RefusedBusyTotal`].
    pub refused_busy_total: u64,
    /// See [`Event::RefusedBusyPeer`].
    pub refused_busy_peer: u64,
    /// See [`Event::RefusedRate`].
    pub refused_rate: u64,
    /// See [`Event::RefusedRatePeer`].
    pub refused_rate_peer: u64,
    /// See [`Event::RefusedPeer`] (egress over real vsock only: a guest other than ours).
    pub refused_peer: u64,
    /// See [`Event::IdleTimeout`].
    pub idle_timeouts: u64,
    /// See [`Event::HandshakeTimeout`].
    pub handshake_timeouts: u64,
    /// See [`Event::UpstreamError`].
    pub upstream_errors: u64,
    /// Bytes carried from peers toward upstreams.
    pub bytes_up: u64,
    /// Bytes carried from upstreams back to peers.
    pub bytes_down: u64,
    /// Connections open now (a gauge, not a counter).
    pub open: u64,
}

impl CountersSnapshot {
    /// Every refusal of this route, whatever its reason.
    pub fn refusals(&self) -> u64 {
        self.refusal_reasons().iter().map(|(_, v)| *v).sum()
    }

    /// `(reason label, count)` for each refusal class, in a fixed order.
    pub fn refusal_reasons(&self) -> [(&'static str, u64); 12] {
        [
            ("method", self.refused_method),
            ("oversize", self.refused_oversize),
            ("garbage", self.refused_garbage),
            ("busy_listener", self.refused_busy),
            ("busy_total", self.refused_busy_total),
            ("busy_peer", self.refused_busy_peer),
            ("rate_connection", self.refused_rate),
            ("rate_peer", self.refused_rate_peer),
            ("wrong_peer", self.refused_peer),
            ("idle_timeout", self.idle_timeouts),
            ("handshake_timeout", self.handshake_timeouts),
            ("upstream_error", self.upstream_errors),
        ]
    }
}

/// The proxy's counters, one set per route.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Clients into the enclave, CBOR frames (methods visible and filtered).
    pub inbound: Counters,
    /// Clients into the enclave, TLS records (ciphertext only).
    pub inbound_tls: Counters,
    /// The enclave out to its allowlisted destinations (all egress rules together).
    pub egress: Counters,
}

impl Metrics {
    /// The current values of every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            inbound: self.inbound.snapshot(),
            inbound_tls: self.inbound_tls.snapshot(),
            egress: self.egress.snapshot(),
        }
    }
}

/// Values of [`Metrics`] at one moment; the JSON is
/// `{"inbound": {..}, "inbound_tls": {..}, "egress": {..}}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsSnapshot {
    /// Clients into the enclave, CBOR frames.
    pub inbound: CountersSnapshot,
    /// Clients into the enclave, TLS records.
    pub inbound_tls: CountersSnapshot,
    /// The enclave out to its allowlisted destinations.
    pub egress: CountersSnapshot,
}

impl MetricsSnapshot {
    fn routes(&self) -> [(&'static str, &CountersSnapshot); 3] {
        [
            ("inbound", &self.inbound),
            ("inbound_tls", &self.inbound_tls),
            ("egress", &self.egress),
        ]
    }
}

/// Renders `s` in the Prometheus text exposition format (version 0.0.4): one counter
/// family per kind of event, labelled by `route` (and `reason` for refusals), and the
/// open-connections gauge.
pub fn render_prometheus(s: &MetricsSnapshot) -> String {
    let mut out = String::with_capacity(4096);
    let mut family =
        |name: &str, kind: &str, help: &str, value: &dyn Fn(&CountersSnapshot) -> u64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (route, c) in s.routes() {
                let _ = writeln!(out, "{name}{{route=\"{route}\"}} {}", value(c));
            }
        };
    family(
        "enclave_proxy_connections_accepted_total",
        "counter",
        "Connections given a slot and served.",
        &|c| c.accepted,
    );
    family(
        "enclave_proxy_connections_open",
        "gauge",
        "Connections open now.",
        &|c| c.open,
    );
    family(
        "enclave_proxy_forwarded_total",
        "counter",
        "Frames or TLS records forwarded toward the upstream.",
        &|c| c.forwarded,
    );
    family(
        "enclave_proxy_bytes_up_total",
        "counter",
        "Bytes carried from peers toward upstreams.",
        &|c| c.bytes_up,
    );
    family(
        "enclave_proxy_bytes_down_total",
        "counter",
        "Bytes carried from upstreams back to peers.",
        &|c| c.bytes_down,
    );
    let name = "enclave_proxy_refusals_total";
    let _ = writeln!(
        out,
        "# HELP {name} Connections, frames and records refused or cut off, by reason."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    for (route, c) in s.routes() {
        for (reason, v) in c.refusal_reasons() {
            let _ = writeln!(out, "{name}{{route=\"{route}\",reason=\"{reason}\"}} {v}");
        }
    }
    out
}

/// Errors writing a metrics file.
#[derive(Debug, thiserror::Error)]
pub enum MetricsFileError {
    /// "could not encode metrics as json".
    #[error("could not encode metrics as json")]
    Encode(#[source] serde_json::Error),
    /// "could not write metrics file `{path}`".
    #[error("could not write metrics file `{path}`")]
    Write {
        /// The file (or its temporary sibling) that failed.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Writes `snapshot` as JSON to `path`, through a temporary sibling and a rename, so that a
/// reader never sees a half-written file.
pub fn write_metrics_file(path: &Path, snapshot: &MetricsSnapshot) -> Result<(), MetricsFileError> {
    let mut json = serde_json::to_vec_pretty(snapshot).map_err(MetricsFileError::Encode)?;
    json.push(b'\n');
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let io = |p: &Path| {
        let path = p.display().to_string();
        move |source| MetricsFileError::Write { path, source }
    };
    let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(&json).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_the_right_route_and_field() {
        let m = Metrics::default();
        m.inbound.count(Event::RefusedMethod);
        m.inbound.count(Event::RefusedMethod);
        m.egress.count(Event::Forwarded);
        m.inbound_tls.count(Event::HandshakeTimeout);
        let s = m.snapshot();
        assert_eq!(s.inbound.refused_method, 2);
        assert_eq!(s.inbound.forwarded, 0);
        assert_eq!(s.egress.forwarded, 1);
        assert_eq!(s.egress.refused_method, 0);
        assert_eq!(s.inbound_tls.handshake_timeouts, 1);
        assert_eq!(s.inbound.refusals(), 2);
        assert_eq!(s.inbound_tls.refusals(), 1);
    }

    #[test]
    fn open_gauge_follows_guards() {
        let m = Metrics::default();
        let a = m.inbound.opened();
        let b = m.inbound.opened();
        assert_eq!(m.snapshot().inbound.open, 2);
        drop(a);
        assert_eq!(m.snapshot().inbound.open, 1);
        drop(b);
        assert_eq!(m.snapshot().inbound.open, 0);
    }

    #[test]
    fn snapshot_json_round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.json");
        let m = Metrics::default();
        m.inbound.count(Event::RefusedBusy);
        write_metrics_file(&path, &m.snapshot()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["inbound"]["refused_busy"], 1);
        let back: MetricsSnapshot = serde_json::from_str(&text).unwrap();
        assert_eq!(back, m.snapshot());
        // Snapshots from before the TLS route and the newer counters still read.
        let old: MetricsSnapshot =
            serde_json::from_str(r#"{"inbound":{"accepted":3},"egress":{}}"#).unwrap();
        assert_eq!(old.inbound.accepted, 3);
    }

    #[test]
    fn prometheus_text_has_every_route_and_reason() {
        let m = Metrics::default();
        m.inbound_tls.count(Event::RefusedOversize);
        m.egress.count(Event::Accepted);
        let text = render_prometheus(&m.snapshot());
        assert!(text.contains(
            "enclave_proxy_refusals_total{route=\"inbound_tls\",reason=\"oversize\"} 1\n"
        ));
        assert!(text.contains("enclave_proxy_connections_accepted_total{route=\"egress\"} 1\n"));
        assert!(text.contains("# TYPE enclave_proxy_connections_open gauge\n"));
        // Every sample line is `name{labels} value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            value.parse::<u64>().unwrap();
        }
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("enclave_proxy_refusals_total{"))
                .count(),
            3 * 12
        );
    }
}
