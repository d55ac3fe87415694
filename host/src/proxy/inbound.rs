//! Clients into the enclave: the method allowlist and the per-connection request loop.
//!
//! The host cannot read governance payloads and does not try to: it reads only the frame
//! length and the request's `method` ([`wire::msg::RequestHead`]), refuses what is not on
//! the allowlist, and forwards everything else byte for byte. Each refusal is answered with
//! a typed error frame, counted, and logged through the shared throttle. A frame that
//! cannot be a request at all (oversize, empty, not CBOR) ends the connection, because the
//! stream can no longer be trusted to be in step; a well-formed but refused request does
//! not.

use super::metrics::Event;
use super::upstream::Upstream;
use super::{linger_close, read_peer_frame, write_with_timeout, Admitted, PeerFrame, Site};
use crate::transport::{Connection, Transport};
use std::collections::BTreeSet;
use std::sync::Arc;
use wire::msg::{method, ErrorCode, RequestHead, Response};

/// Methods a client may call by default. The peer-kernel calls (`frost_commit`,
/// `frost_sign`, `dkg_round1`, `dkg_round2`, `peer_hello`, `peer_commit`, `peer_done`) are
/// not among them: kernels exchange them only inside mutually attested TLS sessions (carried
/// as records, never as frames), and the enclave refuses them in plaintext anyway.
pub const DEFAULT_CLIENT_METHODS: &[&str] = &[
    method::HEALTH,
    method::MANIFEST,
    method::EVALUATE,
    method::SIGN_DIGEST,
    method::CATALOG_UPDATE,
    method::END_SESSION,
    method::ACD_ISSUE,
    method::PEER_TRANSACTION,
    method::PEER_COMPLETE,
];

/// Errors building an allowlist.
#[derive(Debug, thiserror::Error)]
pub enum AllowlistError {
    /// "unknown method `{0}`; the enclave serves: …": a typo would silently refuse traffic.
    #[error("unknown method `{0}`; the enclave serves: {known}", known = method::ALL.join(", "))]
    UnknownMethod(String),
}

/// The methods the inbound proxy forwards; everything else is refused (default deny).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowlist(BTreeSet<String>);

impl Allowlist {
    /// Allows exactly `methods`, each of which must be a method the enclave knows
    /// ([`wire::msg::method::ALL`]).
    pub fn new<I, S>(methods: I) -> Result<Self, AllowlistError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        methods
            .into_iter()
            .map(|m| {
                let m = m.as_ref();
                if method::ALL.contains(&m) {
                    Ok(m.to_owned())
                } else {
                    Err(AllowlistError::UnknownMethod(m.to_owned()))
                }
            })
            .collect::<Result<_, _>>()
            .map(Allowlist)
    }

    /// Whether `method` may pass.
    pub fn permits(&self, method: &str) -> bool {
        self.0.contains(method)
    }

    /// The allowed methods, sorted.
    pub fn methods(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl Default for Allowlist {
    /// [`DEFAULT_CLIENT_METHODS`].
    fn default() -> Self {
        Allowlist(
            DEFAULT_CLIENT_METHODS
                .iter()
                .map(|m| (*m).to_owned())
                .collect(),
        )
    }
}

/// A method name as it may be echoed to a client or a log: short and printable.
fn shown(method: &str) -> String {
    let max = super::limits::MAX_ECHOED_METHOD_CHARS;
    let mut out: String = method
        .chars()
        .take(max)
        .flat_map(char::escape_debug)
        .collect();
    if method.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// Encodes an error response; `None` only if encoding fails, which is a bug, not input.
pub(crate) fn error_frame(code: ErrorCode, message: impl Into<String>) -> Option<Vec<u8>> {
    wire::encode(&Response::error(code, message)).ok()
}

/// Serves one client connection until it closes, times out, or sends something that is not
/// a request.
pub(crate) async fn serve_client<T: Transport>(
    mut client: Connection,
    mut admitted: Admitted,
    site: Arc<Site>,
    allow: Arc<Allowlist>,
    enclave: Arc<T>,
) {
    let limits = Arc::clone(&site.shared.limits);
    let mut upstream = Upstream::new(enclave, Arc::clone(&limits));
    let peer = admitted.peer.clone();
    let mut first = true;
    loop {
        let body = match read_peer_frame(&mut client, &peer, &site, first).await {
            PeerFrame::Body(body) => body,
            PeerFrame::Oversize { len, limit } => {
                let msg = format!("oversize frame: {len} bytes exceeds the limit of {limit} bytes");
                return refuse_and_close(client, &site, ErrorCode::BadRequest, msg).await;
            }
            PeerFrame::Empty => {
                return refuse_and_close(client, &site, ErrorCode::BadRequest, "empty frame").await;
            }
            PeerFrame::Gone => return,
        };
        first = false;
        if !admitted.take_token(&site) {
            let msg = "request rate limit exceeded; slow down";
            if !refuse(&mut client, &site, ErrorCode::Busy, msg).await {
                return;
            }
            continue;
        }
        let head = match wire::decode::<RequestHead>(&body) {
            Ok(head) => head,
            Err(e) => {
                site.count(Event::RefusedGarbage);
                site.warn(&peer, "refused_garbage", format_args!("{e}"));
                let msg = "frame is not a cbor request with a `method`";
                return refuse_and_close(client, &site, ErrorCode::BadRequest, msg).await;
            }
        };
        if !allow.permits(&head.method) {
            site.count(Event::RefusedMethod);
            let m = shown(&head.method);
            site.warn(&peer, "refused_method", format_args!("method `{m}`"));
            let msg = format!("method `{m}` is not allowed through this proxy");
            if !refuse(&mut client, &site, ErrorCode::MethodNotAllowed, msg).await {
                return;
            }
            continue;
        }
        let reply = match upstream.exchange(&body).await {
            Ok(response) => {
                site.count(Event::Forwarded);
                response
            }
            Err(e) => {
                site.count(Event::UpstreamError);
                site.warn(&peer, "upstream_error", format_args!("{e}"));
                match error_frame(ErrorCode::Internal, "the enclave is unavailable; try again") {
                    Some(frame) => frame,
                    None => return,
                }
            }
        };
        if !write_with_timeout(&mut client, &reply, limits.idle_timeout_ms).await {
            return;
        }
    }
}

/// Sends one error frame; `false` when the client could not be written to.
async fn refuse(
    client: &mut Connection,
    site: &Site,
    code: ErrorCode,
    message: impl Into<String>,
) -> bool {
    match error_frame(code, message) {
        Some(frame) => write_with_timeout(client, &frame, site.shared.limits.idle_timeout_ms).await,
        None => false,
    }
}

/// Sends one error frame and closes: the stream is out of step and cannot be trusted.
async fn refuse_and_close(
    mut client: Connection,
    site: &Site,
    code: ErrorCode,
    message: impl Into<String>,
) {
    if refuse(&mut client, site, code, message).await {
        linger_close(client).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_allowlist_is_the_client_methods() {
        let a = Allowlist::default();
        for m in DEFAULT_CLIENT_METHODS {
            assert!(a.permits(m));
        }
        assert!(!a.permits("shutdown"));
        // Peer-kernel methods travel only over attested TLS, never as frames.
        for m in [
            method::FROST_COMMIT,
            method::FROST_SIGN,
            method::DKG_ROUND1,
            method::DKG_ROUND2,
        ] {
            assert!(!a.permits(m), "{m}");
        }
        assert!(!a.permits(""));
        assert!(!a.permits("HEALTH"));
    }

    #[test]
    fn allowlist_rejects_unknown_methods() {
        let a = Allowlist::new(["health", "manifest"]).unwrap();
        assert_eq!(a.methods().collect::<Vec<_>>(), ["health", "manifest"]);
        assert!(!a.permits("evaluate"));
        let err = Allowlist::new(["helth"]).unwrap_err();
        assert!(err.to_string().contains("`helth`"));
    }

    #[test]
    fn echoed_methods_are_short_and_printable() {
        assert_eq!(shown("health"), "health");
        assert_eq!(shown("a\nb"), "a\\nb");
        let long = "x".repeat(1000);
        assert_eq!(
            shown(&long).chars().count(),
            super::super::limits::MAX_ECHOED_METHOD_CHARS + 1
        );
    }
}
