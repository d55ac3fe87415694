//! Helpers shared by the integration tests and the benchmark.

#![allow(dead_code, reason = "each test uses a subset")]

pub mod peer;
