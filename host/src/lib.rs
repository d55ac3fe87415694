//! The untrusted host side of the enclave appliance: the CVM launcher and the vsock proxy.
//!
//! # Threat model
//!
//! Everything in this crate runs outside the trust boundary. The host launches one
//! confidential VM per governance kernel and carries its traffic. What it cannot do is make
//! a kernel unseal (the wrap key travels encrypted to the key in the kernel's signed bundle)
//! or read or forge peer-kernel calls (they travel inside mutually attested TLS sessions
//! between the enclaves, carried as records by `egress_tls` routes, and the enclave checks
//! their attestation results and signatures again). On the TLS route, client governance
//! calls are TLS from the client to a server inside the CVM whose certificate carries the
//! kernel's attestation: the host sees only ciphertext.
//! (The frame route, plain CBOR whose methods the host can filter, remains for development
//! and for health checks.) What this crate adds is *narrowness*:
//!
//! * the [`proxy`] is the only path into or out of a guest; inbound, only allowlisted
//!   methods (frame route) or well-formed TLS records (TLS route) pass; outbound, only the
//!   configured destinations have a listener at all;
//! * every limit (frame and record size, connections per listener, per peer and in total,
//!   handshake and idle time, request rate per connection and per peer) is a named constant
//!   in [`proxy::limits`], and every refusal is counted in [`proxy::metrics`] and exported
//!   as Prometheus text;
//! * no peer input can panic the proxy or stall another peer's connection.
//!
//! The [`launcher`] builds QEMU command lines for SEV-SNP, TDX and a development mode
//! without a TEE, and [`supervisor`] runs one CVM per kernel with its own state directory,
//! swtpm and vsock context id. [`transport`] names the sockets all of them work with.
#![forbid(unsafe_code)]

pub mod launcher;
pub mod proxy;
pub mod supervisor;
pub mod transport;

pub use proxy::egress::EgressRule;
pub use proxy::inbound::Allowlist;
pub use proxy::limits::Limits;
pub use proxy::metrics::MetricsSnapshot;
pub use proxy::{run_proxy, Proxy, ProxyConfig, ProxyError, ProxyHandle, TlsRoute};
pub use transport::{Endpoint, Transport};
