//! The verifier: relying party and key broker for governance kernels.
//!
//! It issues single-use nonces, appraises evidence bundles against a policy, signs
//! EAR-shaped attestation results, runs the FROST key ceremony (sealing each kernel's share
//! under a wrap key it keeps) and releases a wrap key only to a kernel whose latest result is
//! affirming, on the connection that carried the bundle, encrypted to the key in that bundle.
//!
//! Threat model: the host and network between enclave and verifier are untrusted (they may
//! drop, delay, replay or alter frames); the verifier trusts only its own state (SQLite),
//! its policy file and the vendor roots. Every failure leaves a wrap key unreleased.
#![forbid(unsafe_code)]

pub mod ceremony;
pub mod evidence;
pub mod offline;
pub mod service;
pub mod store;

pub use service::{serve, ServiceConfig, ServiceHandle};
pub use store::Store;
