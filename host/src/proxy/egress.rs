//! The enclave out to its allowlisted destinations.
//!
//! Each rule `PORT=ENDPOINT` opens exactly one listener where the guest's connections to
//! host vsock port `PORT` arrive: the Unix socket `<uds>_PORT` under hybrid vsock
//! ([`wire::hybrid::guest_initiated_path`]), or an `AF_VSOCK` listener on `PORT` that admits
//! only the enclave's own context id. A port without a rule has no listener at all, so the
//! guest cannot reach anything else: refusal by construction, not by a check that could be
//! forgotten. The enclave is the trusted side, so methods are not filtered, but frame size,
//! connection count, idle time and request rate are limited as inbound.

use super::metrics::Event;
use super::upstream::Upstream;
use super::{read_peer_frame, write_with_timeout, Admitted, PeerFrame, Site};
use crate::transport::{Connection, Endpoint, ParseEndpointError, Transport, VsockPort};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// One allowlisted destination: guest connections to host vsock `port` go to `destination`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressRule {
    /// Host vsock port the enclave dials (e.g. [`wire::hybrid::VERIFIER_PORT`]).
    pub port: VsockPort,
    /// Where those connections are forwarded.
    pub destination: Endpoint,
}

/// Errors reading an egress rule from text.
#[derive(Debug, thiserror::Error)]
pub enum EgressRuleError {
    /// "egress rule `{0}` is not `PORT=ENDPOINT`".
    #[error("egress rule `{0}` is not `PORT=ENDPOINT`")]
    MissingEquals(String),
    /// "egress rule `{rule}` has a bad port".
    #[error("egress rule `{rule}` has a bad port")]
    Port {
        /// The rule as given.
        rule: String,
        /// Cause.
        #[source]
        source: ParseEndpointError,
    },
    /// "egress rule `{rule}` has a bad destination".
    #[error("egress rule `{rule}` has a bad destination")]
    Destination {
        /// The rule as given.
        rule: String,
        /// Cause.
        #[source]
        source: ParseEndpointError,
    },
}

impl FromStr for EgressRule {
    type Err = EgressRuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (port, destination) = s
            .split_once('=')
            .ok_or_else(|| EgressRuleError::MissingEquals(s.to_owned()))?;
        Ok(EgressRule {
            port: port.parse().map_err(|source| EgressRuleError::Port {
                rule: s.to_owned(),
                source,
            })?,
            destination: destination
                .parse()
                .map_err(|source| EgressRuleError::Destination {
                    rule: s.to_owned(),
                    source,
                })?,
        })
    }
}

impl fmt::Display for EgressRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.port, self.destination)
    }
}

/// Where guest-initiated connections to host `port` arrive for an enclave reached at
/// `enclave`, and which vsock context id they must come from. `None` when the enclave
/// endpoint is not a vsock one (then the guest has no way to dial the host at all).
pub fn guest_side_listener(enclave: &Endpoint, port: VsockPort) -> Option<(Endpoint, Option<u32>)> {
    match enclave {
        Endpoint::Hybrid { uds, .. } => Some((
            Endpoint::Unix(wire::hybrid::guest_initiated_path(uds, port.0)),
            None,
        )),
        Endpoint::Vsock { cid, .. } => Some((
            Endpoint::Vsock {
                cid: tokio_vsock::VMADDR_CID_ANY,
                port,
            },
            Some(*cid),
        )),
        Endpoint::Unix(_) | Endpoint::Tcp(_) | Endpoint::Dns { .. } => None,
    }
}

/// Serves one guest connection: frame up to the destination, frame back, until either
/// side stops. Refusals close the connection (the destination's protocol has no error
/// frame the host could forge), and are counted. Egress routes carried as TLS records are
/// served by [`super::relay`] instead.
pub(crate) async fn serve_guest<T: Transport>(
    mut guest: Connection,
    mut admitted: Admitted,
    site: Arc<Site>,
    destination: Arc<T>,
) {
    let limits = Arc::clone(&site.shared.limits);
    let mut upstream = Upstream::new(destination, Arc::clone(&limits));
    let peer = admitted.peer.clone();
    let mut first = true;
    loop {
        let body = match read_peer_frame(&mut guest, &peer, &site, first).await {
            PeerFrame::Body(body) => body,
            PeerFrame::Oversize { .. } | PeerFrame::Empty | PeerFrame::Gone => return,
        };
        first = false;
        if !admitted.take_token(&site) {
            return;
        }
        match upstream.exchange(&body).await {
            Ok(response) => {
                site.count(Event::Forwarded);
                if !write_with_timeout(&mut guest, &response, limits.idle_timeout_ms).await {
                    return;
                }
            }
            Err(e) => {
                site.count(Event::UpstreamError);
                site.warn(&peer, "upstream_error", format_args!("{e}"));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_print_back() {
        let r: EgressRule = "5100=tcp:127.0.0.1:7000".parse().unwrap();
        assert_eq!(r.port, VsockPort(5100));
        assert_eq!(r.destination, "tcp:127.0.0.1:7000".parse().unwrap());
        assert_eq!(r.to_string(), "5100=tcp:127.0.0.1:7000");
        let r: EgressRule = "5201=unix:/tmp/x/k2-public.sock".parse().unwrap();
        assert_eq!(
            r.destination,
            Endpoint::Unix("/tmp/x/k2-public.sock".into())
        );
    }

    #[test]
    fn bad_rules_name_the_bad_part() {
        assert!(matches!(
            "5100".parse::<EgressRule>(),
            Err(EgressRuleError::MissingEquals(_))
        ));
        assert!(matches!(
            "verifier=tcp:127.0.0.1:1".parse::<EgressRule>(),
            Err(EgressRuleError::Port { .. })
        ));
        assert!(matches!(
            "5100=example.org:443".parse::<EgressRule>(),
            Err(EgressRuleError::Destination { .. })
        ));
    }

    #[test]
    fn guest_side_follows_the_enclave_transport() {
        let hybrid: Endpoint = "hybrid:/run/k1/enclave.sock:5000".parse().unwrap();
        assert_eq!(
            guest_side_listener(&hybrid, VsockPort(5100)),
            Some((Endpoint::Unix("/run/k1/enclave.sock_5100".into()), None))
        );
        let vsock: Endpoint = "vsock:7:5000".parse().unwrap();
        assert_eq!(
            guest_side_listener(&vsock, VsockPort(5100)),
            Some((
                Endpoint::Vsock {
                    cid: tokio_vsock::VMADDR_CID_ANY,
                    port: VsockPort(5100)
                },
                Some(7)
            ))
        );
        let plain: Endpoint = "unix:/run/k1/enclave.sock".parse().unwrap();
        assert_eq!(guest_side_listener(&plain, VsockPort(5100)), None);
    }
}
