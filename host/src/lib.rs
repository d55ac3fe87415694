//! The untrusted host side of the enclave appliance: the CVM launcher and the vsock proxy.
//!
//! # Threat model
//!
//! Everything in this crate runs outside the trust boundary. The host launches one
//! confidential VM per governance kernel and carries its traffic. What it cannot do is make
//! a kernel unseal (the wrap key travels encrypted to the key in the kernel's signed bundle)
//! or forge peer-kernel calls (the enclave checks their attestation results and signatures).
//! Client governance calls are plain CBOR through the host today; attested TLS terminating
//! inside the CVM is the design's next step, after which the host sees only ciphertext.
//! What this crate adds is *narrowness*:
//!
//! * the [`proxy`] is the only path into or out of a guest; inbound, only allowlisted
//!   methods pass; outbound, only the configured destinations have a listener at all;
//! * every limit (frame size, connections, idle time, request rate) is a named constant in
//!   [`proxy::limits`], and every refusal is counted in [`proxy::metrics`];
//! * no peer input can panic the proxy or stall another peer's connection.
//!
//! The [`launcher`] builds QEMU command lines for SEV-SNP, TDX and a development mode
//! without a TEE; it never runs them. [`transport`] names the sockets both work with.
#![forbid(unsafe_code)]

pub mod launcher;
pub mod proxy;
pub mod transport;

pub use proxy::egress::EgressRule;
pub use proxy::inbound::Allowlist;
pub use proxy::limits::Limits;
pub use proxy::metrics::MetricsSnapshot;
pub use proxy::{run_proxy, Proxy, ProxyConfig, ProxyError, ProxyHandle};
pub use transport::{Endpoint, Transport};
