//! The appliance's process-level tests, in one test binary.
//!
//! One binary, not one per file: each e2e test links the whole workspace (kernel, verifier,
//! host, Cedar, libtss2), and thirteen such binaries filled the disk of a CI machine. The
//! modules below are the former test files; run one with `cargo test -p e2e --test e2e
//! kill9::` and all of them with `cargo xtask test`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "test code: any failure should stop the run loudly"
)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../tls/mod.rs"]
mod tls;

mod attested_tls;
mod catalog;
mod gar;
mod gar_watchdog;
mod governance;
mod kill9;
mod otel;
mod peer_tls;
mod reattest;
mod spine;
mod threshold;
mod two_clusters;
mod verifier_refusals;
mod verifier_tls;
