//! The enclave: PID 1 of the guest image and the governance kernel it runs.
//!
//! Boot (DESIGN.md "Boot to serving"): generate an attestation key, collect platform and vTPM
//! evidence bound to the verifier's nonce, get appraised, unseal the FROST share only on an
//! affirming result, freeze the hash-locked GEC manifest, then serve `health`, `manifest`,
//! `evaluate` (Cedar, audited) and `sign_digest` (FROST across kernels) over vsock.
//!
//! Threat model: the host is untrusted. It can drop, delay or replay traffic; it cannot make
//! this kernel unseal without an affirming result signed by the pinned verifier key, and every
//! uncertainty ends in a refusal.
#![forbid(unsafe_code)]

pub mod acd;
pub mod audit;
pub mod boot;
pub mod catalog;
pub mod cedar;
pub mod config;
pub mod dkg;
pub mod frost;
pub mod gar;
pub mod kernel;
pub mod otel;
pub mod peer;
pub mod peer_link;
pub mod pid1;
pub mod reattest;
pub mod repair;
pub mod tls;
pub mod transport;

pub use attestation::manifest;
pub use config::{KernelConfig, Platform, Retry};
pub use gar::GarConfig;
pub use kernel::Kernel;
pub use reattest::ReattestConfig;
