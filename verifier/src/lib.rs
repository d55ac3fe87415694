//! The verifier: relying party and key broker for governance kernels.
//!
//! It issues single-use nonces, appraises evidence bundles against a policy, signs
//! EAR-shaped attestation results, runs the FROST key ceremony (sealing each kernel's share
//! under a wrap key it keeps) and releases a wrap key only to a kernel whose latest result is
//! affirming, on the connection that carried the bundle, encrypted to the key in that bundle.
//!
//! After release it keeps re-attesting every kernel (Keylime-style, [`monitor`]): a fresh
//! challenge each interval over the kernel's long-polled feed, a registry of every kernel's
//! state and history ([`registry`]), revocation on a failed or missing answer pushed to the
//! revoked kernel's signing group, and the operator's view of it all ([`ops`]).
//!
//! Threat model: the host and network between enclave and verifier are untrusted (they may
//! drop, delay, replay or alter frames); the verifier trusts only its own state (SQLite),
//! its policy file and the vendor roots. Every failure leaves a wrap key unreleased.
#![forbid(unsafe_code)]

pub mod ceremony;
pub mod evidence;
pub mod monitor;
pub mod offline;
pub mod ops;
pub mod registry;
pub mod service;
pub mod store;

pub use monitor::{Monitor, MonitorConfig};
pub use service::{serve, serve_with, LinkCounts, ServiceConfig, ServiceHandle};
pub use store::Store;
