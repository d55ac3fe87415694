//! Verifier role: authenticates a GPU report and appraises it against a policy and RIMs.
//!
//! [`verify_report`] is the authentication step proper (device chain FWID, ECDSA P-384
//! signature, nonce) and yields a [`VerifiedGpuReport`]. [`GpuVerifier::appraise`] runs every
//! check, each as a [`Claim`], and returns a [`GpuAppraisal`]; it caches verified device chains
//! and RIMs by content digest, re-checking their validity window against each call's `now`.
//! [`verify_cli`] is the entry point for `verify gpu`.

mod claims;
mod compare;
mod policy;

pub use claims::{bundle_verdict, Claim, GpuAppraisal, GpuBundleVerdict, GpuIdentity, Tier};
pub use compare::{compare, Comparison};
pub use policy::{compare_versions, GpuPolicy};

use crate::chain::{self, VerifiedChain};
use crate::error::{ReportError, SpdmError};
use crate::rim::{self, UnverifiedRim, VerifiedRim};
use crate::spdm::defs::opaque_id;
use crate::spdm::{GpuNonce, UnverifiedGpuReport};
use ring::signature::{UnparsedPublicKey, ECDSA_P384_SHA384_FIXED};
use sha2::{Digest as _, Sha384};
use std::collections::HashMap;

/// Most cached chains or RIMs kept before the cache is emptied.
pub const MAX_CACHE_ENTRIES: usize = 64;

/// A report whose FWID, signature and nonce verified under an authenticated device chain.
#[derive(Debug, Clone)]
pub struct VerifiedGpuReport {
    report: UnverifiedGpuReport,
    device_subject: String,
}

impl VerifiedGpuReport {
    /// The report (every field now authenticated).
    pub fn report(&self) -> &UnverifiedGpuReport {
        &self.report
    }

    /// Subject of the device certificate that signed it.
    pub fn device_subject(&self) -> &str {
        &self.device_subject
    }
}

/// Compares the report's FWID field, when present, with the leaf certificate's. A field of the
/// wrong length cannot equal the certificate's 48-byte FWID, so it is a mismatch too.
fn check_fwid(report: &UnverifiedGpuReport, chain: &VerifiedChain) -> Result<bool, ReportError> {
    let Some(report_fwid) = report.opaque().get(opaque_id::FWID) else {
        return Ok(false);
    };
    match chain.fwid() {
        Some(cert) if cert == report_fwid => Ok(true),
        cert => Err(ReportError::FwidMismatch {
            report: hex::encode(report_fwid),
            cert: cert.map(hex::encode).unwrap_or_default(),
        }),
    }
}

fn check_signature(report: &UnverifiedGpuReport, chain: &VerifiedChain) -> Result<(), ReportError> {
    UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, chain.leaf_public_key())
        .verify(report.signed_bytes(), report.signature())
        .map_err(|_| ReportError::BadSignature)
}

fn check_nonce(report: &UnverifiedGpuReport, expected: &GpuNonce) -> Result<(), ReportError> {
    if report.request_nonce() == expected.as_bytes() {
        Ok(())
    } else {
        Err(ReportError::NonceMismatch {
            found: hex::encode(report.request_nonce()),
            expected: hex::encode(expected.as_bytes()),
        })
    }
}

/// Authenticates `report` under `chain` (a verified device chain) and checks that it answers
/// `expected`. The FWID is compared when the report carries one (drivers from 550 on); whether
/// one is required is policy ([`GpuPolicy::require_report_fwid`], applied by the appraisal).
pub fn verify_report(
    report: &UnverifiedGpuReport,
    chain: &VerifiedChain,
    expected: &GpuNonce,
) -> Result<VerifiedGpuReport, ReportError> {
    check_fwid(report, chain)?;
    check_signature(report, chain)?;
    check_nonce(report, expected)?;
    Ok(VerifiedGpuReport {
        report: report.clone(),
        device_subject: chain.leaf_subject().to_owned(),
    })
}

/// An error with its sources, joined by `: ` (claims carry the whole chain in words).
fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

fn key(bytes: &[u8]) -> [u8; 48] {
    Sha384::digest(bytes).into()
}

/// Which RIM a manifest is, by the version it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RimKind {
    Driver,
    Vbios,
}

/// Appraises GPU evidence under one policy, caching what does not change between reports.
#[derive(Debug, Clone)]
pub struct GpuVerifier {
    policy: GpuPolicy,
    chains: HashMap<[u8; 48], VerifiedChain>,
    rims: HashMap<[u8; 48], VerifiedRim>,
}

impl GpuVerifier {
    /// A verifier with empty caches.
    pub fn new(policy: GpuPolicy) -> Self {
        Self {
            policy,
            chains: HashMap::new(),
            rims: HashMap::new(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &GpuPolicy {
        &self.policy
    }

    fn device_chain(&mut self, pem: &str, now: i64) -> Result<VerifiedChain, String> {
        let k = key(pem.as_bytes());
        if let Some(c) = self.chains.get(&k).filter(|c| c.valid_at(now)) {
            return Ok(c.clone());
        }
        let c = chain::verify_device_chain(pem, now).map_err(|e| describe(&e))?;
        if self.chains.len() >= MAX_CACHE_ENTRIES {
            self.chains.clear();
        }
        self.chains.insert(k, c.clone());
        Ok(c)
    }

    /// A RIM's version, and its verification (cached on success).
    fn rim(
        &mut self,
        bytes: &[u8],
        now: i64,
    ) -> Result<(String, Result<VerifiedRim, String>), String> {
        let k = key(bytes);
        if let Some(r) = self.rims.get(&k).filter(|r| r.valid_at(now)) {
            return Ok((r.colloquial_version().to_owned(), Ok(r.clone())));
        }
        let u = UnverifiedRim::parse(bytes).map_err(|e| describe(&e))?;
        let version = u.colloquial_version().to_owned();
        let verified = rim::verify_rim(&u, now).map_err(|e| describe(&e));
        if let Ok(v) = &verified {
            if self.rims.len() >= MAX_CACHE_ENTRIES {
                self.rims.clear();
            }
            self.rims.insert(k, v.clone());
        }
        Ok((version, verified))
    }

    /// Appraises one GPU: `report` (binary SPDM), its device chain (PEM), the nonce it must
    /// answer, any number of RIMs (matched to the report by the version they name), at `now`
    /// (unix seconds).
    pub fn appraise(
        &mut self,
        report: &[u8],
        chain_pem: &str,
        nonce: &GpuNonce,
        rims: &[Vec<u8>],
        now: i64,
    ) -> GpuAppraisal {
        let parsed = UnverifiedGpuReport::parse(report);
        self.appraise_parsed(parsed, chain_pem, nonce, rims, now)
    }

    fn appraise_parsed(
        &mut self,
        parsed: Result<UnverifiedGpuReport, SpdmError>,
        chain_pem: &str,
        nonce: &GpuNonce,
        rims: &[Vec<u8>],
        now: i64,
    ) -> GpuAppraisal {
        let mut claims = Vec::new();
        let mut gpu = GpuIdentity::default();
        let report = match parsed {
            Ok(r) => {
                claims.push(Claim::new(
                    "report-format",
                    Tier::Affirming,
                    format!("spdm 1.1 measurements with `{}` blocks", r.blocks().len()),
                ));
                r
            }
            Err(e) => {
                claims.push(Claim::new(
                    "report-format",
                    Tier::Contraindicated,
                    describe(&e),
                ));
                return GpuAppraisal::from_claims(gpu, claims, Vec::new());
            }
        };
        let o = report.opaque();
        gpu.driver_version = o.driver_version().ok().flatten();
        gpu.vbios_version = o.vbios_version().ok().flatten();
        gpu.project = o.project().ok().flatten();
        gpu.project_sku = o.project_sku().ok().flatten();
        gpu.chip_sku = o.chip_sku().ok().flatten();
        gpu.nonce = Some(hex::encode(report.request_nonce()));
        gpu.fwid = o.fwid().ok().flatten().map(hex::encode);

        self.authenticate(&report, chain_pem, nonce, now, &mut claims, &mut gpu);
        claims.push(policy::version_claim(
            "driver-version",
            "driver version",
            gpu.driver_version.as_deref(),
            &self.policy.allowed_driver_versions,
            self.policy.min_driver_version.as_deref(),
            10,
        ));
        claims.push(policy::version_claim(
            "vbios-version",
            "vbios version",
            gpu.vbios_version.as_deref(),
            &self.policy.allowed_vbios_versions,
            self.policy.min_vbios_version.as_deref(),
            16,
        ));
        let mismatched = self.reference_values(&report, &gpu, rims, now, &mut claims);
        GpuAppraisal::from_claims(gpu, claims, mismatched)
    }

    /// Device chain, FWID, signature and nonce claims.
    fn authenticate(
        &mut self,
        report: &UnverifiedGpuReport,
        chain_pem: &str,
        nonce: &GpuNonce,
        now: i64,
        claims: &mut Vec<Claim>,
        gpu: &mut GpuIdentity,
    ) {
        let chain = match self.device_chain(chain_pem, now) {
            Ok(c) => {
                claims.push(Claim::new(
                    "device-chain",
                    Tier::Affirming,
                    format!(
                        "`{}` chains to the pinned `{}`",
                        c.leaf_subject(),
                        c.anchor()
                    ),
                ));
                gpu.device_subject = Some(c.leaf_subject().to_owned());
                Some(c)
            }
            Err(reason) => {
                claims.push(Claim::new("device-chain", Tier::Contraindicated, reason));
                None
            }
        };
        let not_run =
            |name: &str| Claim::new(name, Tier::None, "not evaluated: device chain refused");
        let Some(chain) = chain else {
            claims.push(not_run("fwid"));
            claims.push(not_run("report-signature"));
            claims.push(check_nonce_claim(report, nonce));
            return;
        };
        claims.push(match check_fwid(report, &chain) {
            Ok(true) => Claim::new(
                "fwid",
                Tier::Affirming,
                "report fwid equals the certificate's",
            ),
            Err(e) => Claim::new("fwid", Tier::Contraindicated, describe(&e)),
            Ok(false) if self.policy.require_report_fwid => Claim::new(
                "fwid",
                Tier::Contraindicated,
                "report carries no fwid and the policy requires one",
            ),
            Ok(false) => Claim::new(
                "fwid",
                Tier::None,
                "report carries no fwid (driver before 550); not compared, as the policy allows",
            ),
        });
        claims.push(match check_signature(report, &chain) {
            Ok(()) => Claim::new(
                "report-signature",
                Tier::Affirming,
                "ecdsa p-384 signature verifies under the device certificate",
            ),
            Err(e) => Claim::new("report-signature", Tier::Contraindicated, describe(&e)),
        });
        claims.push(check_nonce_claim(report, nonce));
    }

    /// RIM claims and the measurement comparison; returns the mismatched indices.
    fn reference_values(
        &mut self,
        report: &UnverifiedGpuReport,
        gpu: &GpuIdentity,
        rims: &[Vec<u8>],
        now: i64,
        claims: &mut Vec<Claim>,
    ) -> Vec<u32> {
        let mut driver: Option<Result<VerifiedRim, String>> = None;
        let mut vbios: Option<Result<VerifiedRim, String>> = None;
        for (k, bytes) in rims.iter().enumerate() {
            let name = format!("rim-input-{k}");
            let (version, verified) = match self.rim(bytes, now) {
                Ok(v) => v,
                Err(reason) => {
                    claims.push(Claim::new(
                        &name,
                        Tier::Contraindicated,
                        format!("rim #{k} does not parse: {reason}"),
                    ));
                    continue;
                }
            };
            let same = |v: &Option<String>| {
                v.as_deref()
                    .is_some_and(|v| v.eq_ignore_ascii_case(&version))
            };
            let kind = if same(&gpu.driver_version) {
                RimKind::Driver
            } else if same(&gpu.vbios_version) {
                RimKind::Vbios
            } else {
                claims.push(Claim::new(
                    &name,
                    Tier::Contraindicated,
                    format!("rim #{k} describes version `{version}`, which is neither the report's driver nor its vbios"),
                ));
                continue;
            };
            let slot = match kind {
                RimKind::Driver => &mut driver,
                RimKind::Vbios => &mut vbios,
            };
            if slot.is_some() {
                claims.push(Claim::new(
                    &name,
                    Tier::Contraindicated,
                    format!("rim #{k} is a second rim for version `{version}`"),
                ));
                continue;
            }
            *slot = Some(verified);
        }
        let required = self.policy.require_rims;
        let rim_claim =
            |name: &str, what: &str, slot: &Option<Result<VerifiedRim, String>>| match slot {
                Some(Ok(r)) => Claim::new(
                    name,
                    Tier::Affirming,
                    format!(
                        "{what} rim `{}` signed by `{}` chains to the pinned rim root",
                        r.colloquial_version(),
                        r.signer()
                    ),
                ),
                Some(Err(e)) => Claim::new(
                    name,
                    Tier::Contraindicated,
                    format!("{what} rim refused: {e}"),
                ),
                None if required => Claim::new(
                    name,
                    Tier::Contraindicated,
                    format!("no {what} rim matches the report and the policy requires one"),
                ),
                None => Claim::new(
                    name,
                    Tier::None,
                    format!("no {what} rim given; the policy does not require one"),
                ),
            };
        claims.push(rim_claim("driver-rim", "driver", &driver));
        claims.push(rim_claim("vbios-rim", "vbios", &vbios));
        let verified: Vec<&VerifiedRim> = [&driver, &vbios]
            .into_iter()
            .filter_map(|s| s.as_ref().and_then(|r| r.as_ref().ok()))
            .collect();
        let complete = verified.len() == 2;
        if verified.is_empty() {
            let status = if required {
                Tier::Contraindicated
            } else {
                Tier::None
            };
            claims.push(Claim::new(
                "measurements",
                status,
                "not compared: no verified rim",
            ));
            return Vec::new();
        }
        let (status, reason, mismatched) = match compare(report, &verified) {
            Comparison::Conflict { index } => (
                Tier::Contraindicated,
                format!("driver and vbios rims both have an active entry at index `{index}`"),
                Vec::new(),
            ),
            Comparison::Compared { mismatched, .. } if !mismatched.is_empty() => (
                Tier::Contraindicated,
                format!("measurements at rim indices {mismatched:?} match no alternative"),
                mismatched,
            ),
            Comparison::Compared { compared, skipped, .. } if complete => (
                Tier::Affirming,
                format!("all `{compared}` active measurements match (skipped: {skipped:?})"),
                Vec::new(),
            ),
            Comparison::Compared { compared, .. } if required => (
                Tier::Contraindicated,
                format!("the `{compared}` measurements of the one verified rim match, but the policy requires both rims"),
                Vec::new(),
            ),
            Comparison::Compared { compared, .. } => (
                Tier::Affirming,
                format!("the `{compared}` measurements of the one verified rim match (the policy does not require both)"),
                Vec::new(),
            ),
        };
        claims.push(Claim::new("measurements", status, reason));
        mismatched
    }
}

fn check_nonce_claim(report: &UnverifiedGpuReport, nonce: &GpuNonce) -> Claim {
    match check_nonce(report, nonce) {
        Ok(()) => Claim::new(
            "nonce",
            Tier::Affirming,
            "request nonce equals the binding value",
        ),
        Err(e) => Claim::new("nonce", Tier::Contraindicated, describe(&e)),
    }
}

/// Appraises one GPU with a fresh verifier (no cache).
pub fn appraise(
    report: &[u8],
    chain_pem: &str,
    nonce: &GpuNonce,
    rims: &[Vec<u8>],
    policy: &GpuPolicy,
    now: i64,
) -> GpuAppraisal {
    GpuVerifier::new(policy.clone()).appraise(report, chain_pem, nonce, rims, now)
}

/// The `verify gpu --report FILE --chain PEM --nonce HEX [--rim FILE…] [--json]` entry point:
/// the report as hex text (as NVML tools and the vectors give it), the device chain as PEM,
/// the expected 32-byte nonce, the RIM files' bytes, the policy and the time (unix seconds).
///
/// Exit codes for a binary wrapping it: `0` when [`GpuAppraisal::affirming`], `1` when not,
/// `2` for usage or I/O errors before this call. With `--json`, print
/// [`GpuAppraisal::to_json`] (shape documented on [`GpuAppraisal`]).
pub fn verify_cli(
    report_hex: &str,
    chain_pem: &str,
    nonce: &[u8; 32],
    rims: &[Vec<u8>],
    policy: &GpuPolicy,
    now_unix_s: i64,
) -> GpuAppraisal {
    let parsed = UnverifiedGpuReport::parse_hex(report_hex);
    GpuVerifier::new(policy.clone()).appraise_parsed(
        parsed,
        chain_pem,
        &GpuNonce(*nonce),
        rims,
        now_unix_s,
    )
}
