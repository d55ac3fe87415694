//! Counters of what the proxy did and refused, readable while it runs.
//!
//! The design promise is "everything else is refused and counted": each refusal class has
//! its own counter, kept separately for the two directions (clients into the enclave, the
//! enclave out to its allowlisted destinations). Counters are plain relaxed atomics; a
//! [`MetricsSnapshot`] is a serde value that tests read in-process and the `host proxy`
//! binary writes to its metrics file.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters for one direction of traffic.
#[derive(Debug, Default)]
pub struct Counters {
    accepted: AtomicU64,
    forwarded: AtomicU64,
    refused_method: AtomicU64,
    refused_oversize: AtomicU64,
    refused_garbage: AtomicU64,
    refused_busy: AtomicU64,
    refused_rate: AtomicU64,
    refused_peer: AtomicU64,
    idle_timeouts: AtomicU64,
    upstream_errors: AtomicU64,
}

/// One event the proxy counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A connection was given a slot and is being served.
    Accepted,
    /// A frame went upstream and its response came back.
    Forwarded,
    /// A request named a method that is not on the allowlist.
    RefusedMethod,
    /// A frame announced a body above the frame limit.
    RefusedOversize,
    /// A frame body was not a CBOR request with a `method`, or was empty.
    RefusedGarbage,
    /// A connection arrived while every slot on its listener was taken.
    RefusedBusy,
    /// A request arrived faster than its connection's rate limit.
    RefusedRate,
    /// A connection came from a peer that may not use this listener.
    RefusedPeer,
    /// A connection sent nothing for the idle timeout and was closed.
    IdleTimeout,
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
            Event::RefusedRate => &self.refused_rate,
            Event::RefusedPeer => &self.refused_peer,
            Event::IdleTimeout => &self.idle_timeouts,
            Event::UpstreamError => &self.upstream_errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
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
            refused_rate: get(&self.refused_rate),
            refused_peer: get(&self.refused_peer),
            idle_timeouts: get(&self.idle_timeouts),
            upstream_errors: get(&self.upstream_errors),
        }
    }
}

/// Values of [`Counters`] at one moment. Field meanings are those of [`Event`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountersSnapshot {
    /// See [`Event::Accepted`].
    pub accepted: u64,
    /// See [`Event::Forwarded`].
    pub forwarded: u64,
    /// See [`Event::RefusedMethod`] (inbound only: egress does not filter methods).
    pub refused_method: u64,
    /// See [`Event::RefusedOversize`].
    pub refused_oversize: u64,
    /// See [`Event::RefusedGarbage`].
    pub refused_garbage: u64,
    /// See [`Event::RefusedBusy`].
    pub refused_busy: u64,
    /// See [`Event::RefusedRate`].
    pub refused_rate: u64,
    /// See [`Event::RefusedPeer`] (egress over real vsock only: a guest other than ours).
    pub refused_peer: u64,
    /// See [`Event::IdleTimeout`].
    pub idle_timeouts: u64,
    /// See [`Event::UpstreamError`].
    pub upstream_errors: u64,
}

/// The proxy's counters, one set per direction.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Clients into the enclave.
    pub inbound: Counters,
    /// The enclave out to its allowlisted destinations (all egress rules together).
    pub egress: Counters,
}

impl Metrics {
    /// The current values of every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            inbound: self.inbound.snapshot(),
            egress: self.egress.snapshot(),
        }
    }
}

/// Values of [`Metrics`] at one moment; the JSON is `{"inbound": {..}, "egress": {..}}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// Clients into the enclave.
    pub inbound: CountersSnapshot,
    /// The enclave out to its allowlisted destinations.
    pub egress: CountersSnapshot,
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
    fn counts_land_in_the_right_direction_and_field() {
        let m = Metrics::default();
        m.inbound.count(Event::RefusedMethod);
        m.inbound.count(Event::RefusedMethod);
        m.egress.count(Event::Forwarded);
        let s = m.snapshot();
        assert_eq!(s.inbound.refused_method, 2);
        assert_eq!(s.inbound.forwarded, 0);
        assert_eq!(s.egress.forwarded, 1);
        assert_eq!(s.egress.refused_method, 0);
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
    }
}
