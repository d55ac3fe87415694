//! Every limit the proxy enforces, as a named constant and as one [`Limits`] value.
//!
//! The host is untrusted, but it is still the first thing a hostile client or a runaway
//! guest talks to; these bounds keep one bad peer from exhausting memory, file descriptors,
//! tasks or the enclave's attention at the expense of the others. They are policy, not
//! protocol: the wire format's own ceiling is [`wire::MAX_FRAME_BYTES`], and a configured
//! frame limit can only be lower.

/// Connections served at once on one listener; the next one gets a `busy` refusal.
pub const MAX_CONNECTIONS_PER_LISTENER: usize = 64;

/// A connection with no complete frame from its peer for this long is closed.
pub const IDLE_TIMEOUT_MS: u64 = 30_000;

/// Longest wait for an upstream (enclave, verifier, peer kernel) to accept a connection.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;

/// Longest wait for an upstream's response to one forwarded frame. A `sign_digest` runs
/// two FROST rounds across peer kernels, so this is generous.
pub const RESPONSE_TIMEOUT_MS: u64 = 30_000;

/// Sustained requests per second one connection may send (token-bucket refill rate).
pub const REQUESTS_PER_SECOND: u32 = 5_000;

/// Requests one connection may send back to back before the refill rate applies.
pub const REQUEST_BURST: u32 = 10_000;

/// Largest frame body forwarded in either direction.
pub const FRAME_LIMIT_BYTES: u32 = wire::MAX_FRAME_BYTES;

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

/// The limits in force for one proxy; [`Limits::default`] is the named constants above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// See [`MAX_CONNECTIONS_PER_LISTENER`].
    pub max_connections: usize,
    /// See [`IDLE_TIMEOUT_MS`].
    pub idle_timeout_ms: u64,
    /// See [`CONNECT_TIMEOUT_MS`].
    pub connect_timeout_ms: u64,
    /// See [`RESPONSE_TIMEOUT_MS`].
    pub response_timeout_ms: u64,
    /// See [`REQUESTS_PER_SECOND`].
    pub requests_per_second: u32,
    /// See [`REQUEST_BURST`].
    pub request_burst: u32,
    /// See [`FRAME_LIMIT_BYTES`]; values above [`wire::MAX_FRAME_BYTES`] are clamped to it.
    pub frame_limit_bytes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS_PER_LISTENER,
            idle_timeout_ms: IDLE_TIMEOUT_MS,
            connect_timeout_ms: CONNECT_TIMEOUT_MS,
            response_timeout_ms: RESPONSE_TIMEOUT_MS,
            requests_per_second: REQUESTS_PER_SECOND,
            request_burst: REQUEST_BURST,
            frame_limit_bytes: FRAME_LIMIT_BYTES,
        }
    }
}

impl Limits {
    /// The frame limit actually applied: never above the wire format's ceiling.
    pub fn frame_limit(&self) -> u32 {
        self.frame_limit_bytes.min(wire::MAX_FRAME_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_limit_is_clamped_to_the_wire_ceiling() {
        let limits = Limits {
            frame_limit_bytes: u32::MAX,
            ..Limits::default()
        };
        assert_eq!(limits.frame_limit(), wire::MAX_FRAME_BYTES);
        assert_eq!(Limits::default().frame_limit(), wire::MAX_FRAME_BYTES);
    }
}
