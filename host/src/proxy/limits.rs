//! Every limit the proxy enforces, as a named constant and as one [`Limits`] value.
//!
//! The host is untrusted, but it is still the first thing a hostile client or a runaway
//! guest talks to; these bounds keep one bad peer from exhausting memory, file descriptors,
//! tasks or the enclave's attention at the expense of the others. They are policy, not
//! protocol: the wire format's own ceiling is [`wire::MAX_FRAME_BYTES`] and TLS's is
//! [`TLS_MAX_RECORD_BYTES`]; a configured limit can only be lower.
//!
//! "Peer" means the identity the transport gives the other end: the IP address of a TCP
//! client, the user id of a Unix-socket client (`SO_PEERCRED`), the context id of a vsock
//! peer. Per-peer limits are shared by all of that peer's connections on every listener.

use serde::{Deserialize, Serialize};

/// Connections served at once on one listener; the next one gets a `busy` refusal.
pub const MAX_CONNECTIONS_PER_LISTENER: usize = 64;

/// Connections served at once by the whole proxy, every listener together.
pub const MAX_CONNECTIONS_TOTAL: usize = 1_024;

/// Connections one peer may hold at once, every listener together.
pub const MAX_CONNECTIONS_PER_PEER: usize = 64;

/// A connection with no complete frame (or TLS record) from its peer for this long is closed.
pub const IDLE_TIMEOUT_MS: u64 = 30_000;

/// Time a new connection has to prove it speaks the protocol: its first complete request
/// frame, or, on a TLS route, a finished TLS handshake (the client's first encrypted record
/// after the server's). Bounds slow-loris clients that trickle bytes to hold a slot.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

/// Longest wait for an upstream (enclave, verifier, peer kernel) to accept a connection.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;

/// Longest wait for an upstream's response to one forwarded frame. A `sign_digest` runs
/// two FROST rounds across peer kernels, so this is generous.
pub const RESPONSE_TIMEOUT_MS: u64 = 30_000;

/// Sustained requests per second one connection may send (token-bucket refill rate).
pub const REQUESTS_PER_SECOND: u32 = 5_000;

/// Requests one connection may send back to back before the refill rate applies.
pub const REQUEST_BURST: u32 = 10_000;

/// Sustained requests per second one peer may send over all its connections.
pub const PEER_REQUESTS_PER_SECOND: u32 = 50_000;

/// Requests one peer may send back to back over all its connections.
pub const PEER_REQUEST_BURST: u32 = 100_000;

/// Largest frame body forwarded in either direction.
pub const FRAME_LIMIT_BYTES: u32 = wire::MAX_FRAME_BYTES;

/// Largest TLS record body (`TLSCiphertext.length`) a TLS 1.3 peer may send: 2^14 + 256
/// (RFC 8446 §5.2).
pub const TLS_MAX_RECORD_BYTES: u32 = (1 << 14) + 256;

/// Largest TLS record body forwarded on a TLS route unless configured lower.
pub const RECORD_LIMIT_BYTES: u32 = TLS_MAX_RECORD_BYTES;

/// Peer-triggered warnings logged per [`WARN_WINDOW_MS`] across the whole proxy; the rest
/// are counted and reported with the next warning that gets through.
pub const WARNINGS_PER_WINDOW: u32 = 10;

/// Length of the window for [`WARNINGS_PER_WINDOW`].
pub const WARN_WINDOW_MS: u64 = 10_000;

/// How long the proxy spends telling a refused connection that it is busy.
pub const REFUSAL_WRITE_TIMEOUT_MS: u64 = 1_000;

/// After refusing a peer, how long the proxy keeps reading (and discarding) what the peer
/// is still sending before it closes, so that the refusal is not lost to a TCP reset.
pub const LINGER_MS: u64 = 500;

/// At most this much is read and discarded while lingering.
pub const LINGER_DRAIN_BYTES: usize = 64 * 1024;

/// Longest method name echoed back in a refusal or written to a log line.
pub const MAX_ECHOED_METHOD_CHARS: usize = 64;

/// Peers remembered for rate limiting without a live connection; past this, those whose
/// buckets have refilled are forgotten.
pub const MAX_IDLE_PEERS_TRACKED: usize = 4_096;

/// The limits in force for one proxy; [`Limits::default`] is the named constants above.
/// In a configuration file every field is optional and defaults to its constant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// See [`MAX_CONNECTIONS_PER_LISTENER`].
    pub max_connections: usize,
    /// See [`MAX_CONNECTIONS_TOTAL`].
    pub max_connections_total: usize,
    /// See [`MAX_CONNECTIONS_PER_PEER`].
    pub max_connections_per_peer: usize,
    /// See [`IDLE_TIMEOUT_MS`].
    pub idle_timeout_ms: u64,
    /// See [`HANDSHAKE_TIMEOUT_MS`].
    pub handshake_timeout_ms: u64,
    /// See [`CONNECT_TIMEOUT_MS`].
    pub connect_timeout_ms: u64,
    /// See [`RESPONSE_TIMEOUT_MS`].
    pub response_timeout_ms: u64,
    /// See [`REQUESTS_PER_SECOND`].
    pub requests_per_second: u32,
    /// See [`REQUEST_BURST`].
    pub request_burst: u32,
    /// See [`PEER_REQUESTS_PER_SECOND`].
    pub peer_requests_per_second: u32,
    /// See [`PEER_REQUEST_BURST`].
    pub peer_request_burst: u32,
    /// See [`FRAME_LIMIT_BYTES`]; values above [`wire::MAX_FRAME_BYTES`] are clamped to it.
    pub frame_limit_bytes: u32,
    /// See [`RECORD_LIMIT_BYTES`]; values above [`TLS_MAX_RECORD_BYTES`] are clamped to it.
    pub record_limit_bytes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS_PER_LISTENER,
            max_connections_total: MAX_CONNECTIONS_TOTAL,
            max_connections_per_peer: MAX_CONNECTIONS_PER_PEER,
            idle_timeout_ms: IDLE_TIMEOUT_MS,
            handshake_timeout_ms: HANDSHAKE_TIMEOUT_MS,
            connect_timeout_ms: CONNECT_TIMEOUT_MS,
            response_timeout_ms: RESPONSE_TIMEOUT_MS,
            requests_per_second: REQUESTS_PER_SECOND,
            request_burst: REQUEST_BURST,
            peer_requests_per_second: PEER_REQUESTS_PER_SECOND,
            peer_request_burst: PEER_REQUEST_BURST,
            frame_limit_bytes: FRAME_LIMIT_BYTES,
            record_limit_bytes: RECORD_LIMIT_BYTES,
        }
    }
}

impl Limits {
    /// The frame limit actually applied: never above the wire format's ceiling.
    pub fn frame_limit(&self) -> u32 {
        self.frame_limit_bytes.min(wire::MAX_FRAME_BYTES)
    }

    /// The TLS record limit actually applied: never above TLS 1.3's ceiling.
    pub fn record_limit(&self) -> u32 {
        self.record_limit_bytes.min(TLS_MAX_RECORD_BYTES)
    }

    /// The name of the first connection limit that is zero (nothing could ever connect).
    pub fn zero_connection_limit(&self) -> Option<&'static str> {
        [
            ("max_connections", self.max_connections),
            ("max_connections_total", self.max_connections_total),
            ("max_connections_per_peer", self.max_connections_per_peer),
        ]
        .into_iter()
        .find(|(_, v)| *v == 0)
        .map(|(name, _)| name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_clamped_to_the_protocol_ceilings() {
        let limits = Limits {
            frame_limit_bytes: u32::MAX,
            record_limit_bytes: u32::MAX,
            ..Limits::default()
        };
        assert_eq!(limits.frame_limit(), wire::MAX_FRAME_BYTES);
        assert_eq!(limits.record_limit(), TLS_MAX_RECORD_BYTES);
        assert_eq!(Limits::default().frame_limit(), wire::MAX_FRAME_BYTES);
        assert_eq!(Limits::default().record_limit(), 16_640);
    }

    #[test]
    fn zero_connection_limits_are_named() {
        assert_eq!(Limits::default().zero_connection_limit(), None);
        let l = Limits {
            max_connections_per_peer: 0,
            ..Limits::default()
        };
        assert_eq!(l.zero_connection_limit(), Some("max_connections_per_peer"));
    }
}
