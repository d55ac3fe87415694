//! NVIDIA H100 / Blackwell GPU evidence: collection through NVML and offline verification.
//!
//! # Design
//!
//! A confidential VM binds every GPU into its evidence bundle by asking each GPU for an SPDM
//! attestation report over a 32-byte nonce, the first 32 bytes of the bundle's binding value.
//! This crate is organised by RATS role:
//!
//! - [`collect`] (attester): the [`collect::GpuEvidenceSource`] trait and its NVML backend
//!   (cargo feature `nvml`, off by default so verifiers never link NVML);
//! - [`spdm`] (evidence): the report framed once into [`spdm::UnverifiedGpuReport`];
//! - [`chain`] (endorser): device and RIM certificate chains to the pinned NVIDIA roots
//!   (`roots/*.pem`, loaded with `include_bytes!`);
//! - [`rim`] (reference values): SWID RIMs with their enveloped XML signatures (C14N 1.1,
//!   ECDSA P-384) into [`rim::VerifiedRim`];
//! - [`verify`] (verifier): signature, nonce, FWID, version policy and measurement comparison,
//!   each a claim of an EAR-shaped [`verify::GpuAppraisal`]; [`verify::verify_cli`] is the
//!   entry point for `verify gpu`.
//!
//! # Threat model
//!
//! The report, the certificate chain and the RIMs all arrive through the untrusted host.
//! Nothing in them is believed until it verifies: the report's signature under a device leaf
//! that chains to the pinned NVIDIA Device Identity CA, the nonce equal to the expected
//! binding value, the leaf's DICE FWID equal to the report's, and reference measurements only
//! from RIMs whose XML signature verifies under a chain to the pinned NVIDIA CoRIM root.
//! Parsers bound every length, refuse trailing bytes and never panic; every refusal is a typed
//! error that names the check. Certificate validity is checked at a caller-supplied time.
//!
//! Not covered (see `docs/gpu.md`): certificate revocation (NVIDIA's OCSP service is online
//! only), fetching RIMs from NVIDIA's RIM service, and NVSwitch attestation.

// Without NVML no unsafe code at all; with it, only `collect/nvml/sys.rs` (workspace lint
// `unsafe_code = "deny"`, lifted there with a reason).
#![cfg_attr(not(feature = "nvml"), forbid(unsafe_code))]

pub mod chain;
pub mod collect;
mod der;
pub mod error;
pub mod rim;
pub mod spdm;
pub mod verify;

pub use collect::{GpuEvidence, GpuEvidenceOutcome, GpuEvidenceSource};
pub use error::{ChainError, CollectError, ReportError, RimError, SpdmError};
pub use spdm::{GpuNonce, UnverifiedGpuReport};
pub use verify::{
    appraise, bundle_verdict, verify_cli, verify_report, GpuAppraisal, GpuBundleVerdict, GpuPolicy,
    GpuVerifier, Tier, VerifiedGpuReport,
};
