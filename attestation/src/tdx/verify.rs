//! Verifier role for TDX: a quote becomes a [`VerifiedTdxQuote`] only when
//! 1. our parser frames it ([`UnverifiedTdxQuote::parse`], typed errors),
//! 2. `dcap-qvl` verifies, against the pinned Intel SGX Root CA and the collateral at time
//!    `now`: both CRLs, the TCB info and QE identity signatures and chains, the PCK chain
//!    (revocation included), the QE report signature under the PCK leaf, the QE report's
//!    binding of the attestation key, the QE identity, the quote signature under the
//!    attestation key, and the platform TCB level (FMSPC, CPU SVN, PCE SVN, TDX module),
//! 3. the fields `dcap-qvl` decoded agree with ours (a second, independent parser).
//!
//! TCB status, advisories and TD attributes are reported, not judged: appraisal
//! ([`super::appraise`]) turns them into claims under a policy. `dcap-qvl` itself refuses
//! a revoked TCB and some TD attributes unconditionally; those come back as typed errors.
//!
//! [`TdxVerifier`] caches the platform half (collateral + PCK chain + QE report) per
//! distinct (collateral, QE report, PCK chain): a second quote from the same platform then
//! costs the parse, the quote signature and the QE binding, which are checked every time.

use super::collateral::Collateral;
use super::error::TdxError;
use super::quote::{decode_quote_file, TdReport, UnverifiedTdxQuote};
use std::collections::HashMap;
use std::sync::Mutex;

/// Intel SGX Provisioning Certification Root CA (DER), the trust anchor of every PCK chain and
/// every collateral signature. SHA-256 fingerprint
/// `44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3`.
pub const INTEL_SGX_ROOT_CA_DER: &[u8] =
    include_bytes!("roots/Intel_SGX_Provisioning_Certification_RootCA.der");

/// Intel's TCB status of the platform (and its QE), as the TCB info names it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum TcbStatus {
    /// Fully patched.
    UpToDate,
    /// Patched, but software mitigations for the listed advisories are needed.
    SWHardeningNeeded,
    /// Platform configuration needs attention (e.g. SMT on, where an advisory requires off).
    ConfigurationNeeded,
    /// Both of the above.
    ConfigurationAndSWHardeningNeeded,
    /// A newer TCB exists.
    OutOfDate,
    /// Out of date and configuration needed.
    OutOfDateConfigurationNeeded,
    /// The platform's keys are revoked.
    Revoked,
    /// TDX 1.5: launched on an out-of-date TCB, current TCB is fine; relaunch advised.
    TdRelaunchAdvised,
    /// As above, and configuration needed.
    TdRelaunchAdvisedConfigurationNeeded,
    /// No collateral was given: chain and signatures only ([`verify_tdx_signatures`]).
    NotEvaluated,
    /// A status this build does not know.
    Other(String),
}

impl TcbStatus {
    /// From the TCB info spelling.
    pub fn from_name(s: &str) -> Self {
        match s {
            "UpToDate" => Self::UpToDate,
            "SWHardeningNeeded" => Self::SWHardeningNeeded,
            "ConfigurationNeeded" => Self::ConfigurationNeeded,
            "ConfigurationAndSWHardeningNeeded" => Self::ConfigurationAndSWHardeningNeeded,
            "OutOfDate" => Self::OutOfDate,
            "OutOfDateConfigurationNeeded" => Self::OutOfDateConfigurationNeeded,
            "Revoked" => Self::Revoked,
            "NotEvaluated" => Self::NotEvaluated,
            "TDRelaunchAdvised" => Self::TdRelaunchAdvised,
            "TDRelaunchAdvisedConfigurationNeeded" => Self::TdRelaunchAdvisedConfigurationNeeded,
            other => Self::Other(other.to_string()),
        }
    }

    /// The TCB info spelling.
    pub fn name(&self) -> &str {
        match self {
            Self::UpToDate => "UpToDate",
            Self::SWHardeningNeeded => "SWHardeningNeeded",
            Self::ConfigurationNeeded => "ConfigurationNeeded",
            Self::ConfigurationAndSWHardeningNeeded => "ConfigurationAndSWHardeningNeeded",
            Self::OutOfDate => "OutOfDate",
            Self::OutOfDateConfigurationNeeded => "OutOfDateConfigurationNeeded",
            Self::Revoked => "Revoked",
            Self::NotEvaluated => "NotEvaluated",
            Self::TdRelaunchAdvised => "TDRelaunchAdvised",
            Self::TdRelaunchAdvisedConfigurationNeeded => "TDRelaunchAdvisedConfigurationNeeded",
            Self::Other(s) => s,
        }
    }
}

/// A quote whose signature, QE, PCK chain and collateral have been checked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifiedTdxQuote {
    /// Quote version (4 or 5).
    pub version: u16,
    /// The TD report body.
    pub report: TdReport,
    /// Converged platform + QE TCB status.
    pub tcb_status: TcbStatus,
    /// Intel security advisories (INTEL-SA-…) that apply at this TCB level.
    pub advisory_ids: Vec<String>,
    /// Platform TCB status alone.
    pub platform_tcb_status: TcbStatus,
    /// QE TCB status alone.
    pub qe_tcb_status: TcbStatus,
    /// Bytes of padding after the quote.
    pub trailing_bytes: usize,
}

#[derive(Debug, Clone)]
struct PlatformVerdict {
    tcb_status: TcbStatus,
    advisory_ids: Vec<String>,
    platform_tcb_status: TcbStatus,
    qe_tcb_status: TcbStatus,
    /// Collateral `nextUpdate` (earliest of TCB info and QE identity), Unix seconds; the cache
    /// entry is not used at or after it, nor before the latest issue date.
    not_after: i64,
    not_before: i64,
}

/// TDX quote verifier with a pinned root and a platform-verdict cache.
#[derive(Debug)]
pub struct TdxVerifier {
    root_der: Vec<u8>,
    cache: Mutex<HashMap<[u8; 32], PlatformVerdict>>,
}

impl Default for TdxVerifier {
    fn default() -> Self {
        Self::new(INTEL_SGX_ROOT_CA_DER.to_vec())
    }
}

/// Largest number of cached platform verdicts (a fleet has few distinct platforms).
const MAX_CACHE_ENTRIES: usize = 4096;

impl TdxVerifier {
    /// A verifier anchored at `root_der` (normally [`INTEL_SGX_ROOT_CA_DER`]).
    pub fn new(root_der: Vec<u8>) -> Self {
        Self {
            root_der,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Full verification of `quote` (binary or hex text, padding allowed) at `now_unix_s`,
    /// without using or filling the cache.
    pub fn verify_uncached(
        &self,
        quote: &[u8],
        collateral: &Collateral,
        now_unix_s: u64,
    ) -> Result<VerifiedTdxQuote, TdxError> {
        let bytes = decode_quote_file(quote)?;
        let parsed = UnverifiedTdxQuote::parse(&bytes)?;
        let verdict = self.platform_verdict(&parsed, collateral, now_unix_s)?;
        Ok(finish(parsed, verdict))
    }

    /// Verification that reuses the platform half for quotes of an already verified platform
    /// and collateral (still inside the collateral window). The quote signature and the QE's
    /// binding of the attestation key are checked on every call.
    pub fn verify(
        &self,
        quote: &[u8],
        collateral: &Collateral,
        now_unix_s: u64,
    ) -> Result<VerifiedTdxQuote, TdxError> {
        let bytes = decode_quote_file(quote)?;
        let parsed = UnverifiedTdxQuote::parse(&bytes)?;
        let key = cache_key(&parsed, collateral);
        let now = i64::try_from(now_unix_s).unwrap_or(i64::MAX);
        let cached = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(&key).cloned())
            .filter(|v| now >= v.not_before && now < v.not_after);
        if let Some(verdict) = cached {
            check_quote_signature(&parsed)?;
            check_qe_binding(&parsed)?;
            return Ok(finish(parsed, verdict));
        }
        let verdict = self.platform_verdict(&parsed, collateral, now_unix_s)?;
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= MAX_CACHE_ENTRIES {
                c.clear();
            }
            c.insert(key, verdict.clone());
        }
        Ok(finish(parsed, verdict))
    }

    fn platform_verdict(
        &self,
        parsed: &UnverifiedTdxQuote,
        collateral: &Collateral,
        now_unix_s: u64,
    ) -> Result<PlatformVerdict, TdxError> {
        let info = collateral.info()?;
        let verifier = dcap_qvl::verify::QuoteVerifier::new(self.root_der.clone())
            .allow_debug(true)
            .allow_service_td(true);
        let report = verifier
            .verify(parsed.quote_bytes(), &collateral.to_dcap(), now_unix_s)
            .map_err(|e| TdxError::from_dcap(&e))?;
        // Second parser agrees with ours on what was signed.
        let (mr_td, report_data) = match &report.report {
            dcap_qvl::quote::Report::TD10(r) => (r.mr_td, r.report_data),
            dcap_qvl::quote::Report::TD15(r) => (r.base.mr_td, r.base.report_data),
            dcap_qvl::quote::Report::TD15Ex(r) => (r.base.base.mr_td, r.base.base.report_data),
            dcap_qvl::quote::Report::SgxEnclave(_) => {
                return Err(TdxError::NotTdx { tee_type: 0 });
            }
        };
        if mr_td != parsed.report.mr_td || report_data != parsed.report.report_data {
            return Err(TdxError::Other(
                "the verifier library decoded different TD report fields".into(),
            ));
        }
        let not_after = crate::time::rfc3339_to_unix(&info.tcb_info_next_update)
            .min(crate::time::rfc3339_to_unix(&info.qe_identity_next_update))
            .unwrap_or(i64::MIN);
        let not_before = crate::time::rfc3339_to_unix(&info.tcb_info_issue_date)
            .max(crate::time::rfc3339_to_unix(&info.qe_identity_issue_date))
            .unwrap_or(i64::MAX);
        Ok(PlatformVerdict {
            tcb_status: TcbStatus::from_name(&report.status),
            advisory_ids: report.advisory_ids,
            platform_tcb_status: TcbStatus::from_name(&report.platform_status.status.to_string()),
            qe_tcb_status: TcbStatus::from_name(&report.qe_status.status.to_string()),
            not_after,
            not_before,
        })
    }
}

fn finish(parsed: UnverifiedTdxQuote, v: PlatformVerdict) -> VerifiedTdxQuote {
    VerifiedTdxQuote {
        version: parsed.header.version,
        trailing_bytes: parsed.trailing_bytes,
        report: parsed.report,
        tcb_status: v.tcb_status,
        advisory_ids: v.advisory_ids,
        platform_tcb_status: v.platform_tcb_status,
        qe_tcb_status: v.qe_tcb_status,
    }
}

fn cache_key(parsed: &UnverifiedTdxQuote, collateral: &Collateral) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for part in [
        collateral.to_json().as_bytes(),
        &parsed.qe_report[..],
        &parsed.qe_report_signature[..],
        &parsed.pck_chain_pem[..],
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// ECDSA P-256 / SHA-256 over header ‖ body with the attestation key.
fn check_quote_signature(parsed: &UnverifiedTdxQuote) -> Result<(), TdxError> {
    let bytes = parsed.quote_bytes();
    let body_len = match (parsed.header.version, parsed.report.body_type) {
        (4, _) => super::quote::TD10_BODY_BYTES,
        (_, 3) => super::quote::TD15_BODY_BYTES.saturating_add(6),
        _ => super::quote::TD10_BODY_BYTES.saturating_add(6),
    };
    let signed = bytes
        .get(..super::quote::HEADER_BYTES.saturating_add(body_len))
        .ok_or(TdxError::QuoteSignature)?;
    let mut key = Vec::with_capacity(65);
    key.push(0x04);
    key.extend_from_slice(&parsed.attestation_key);
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, key)
        .verify(signed, &parsed.signature)
        .map_err(|_| TdxError::QuoteSignature)
}

/// QE report data[0..32] = SHA-256(attestation key ‖ QE auth data), rest zero.
fn check_qe_binding(parsed: &UnverifiedTdxQuote) -> Result<(), TdxError> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(parsed.attestation_key);
    h.update(&parsed.qe_auth_data);
    let digest: [u8; 32] = h.finalize().into();
    let data = parsed.qe_report_data();
    let (head, tail) = data.split_at(32);
    if head != digest || tail.iter().any(|b| *b != 0) {
        return Err(TdxError::QeReportBinding);
    }
    Ok(())
}

/// Verifies `quote` against `collateral` at `now_unix_s` with the pinned Intel root.
pub fn verify_tdx(
    quote: &[u8],
    collateral: &Collateral,
    now_unix_s: u64,
) -> Result<VerifiedTdxQuote, TdxError> {
    TdxVerifier::default().verify_uncached(quote, collateral, now_unix_s)
}

/// Checks what a quote proves without collateral: the PCK chain (signatures, names, validity
/// at `now_unix_s`) to the pinned Intel root, the QE report signature under the PCK leaf, the
/// QE's binding of the attestation key and the quote signature. No CRL, no TCB level, no QE
/// identity: the result's [`TcbStatus`] is [`TcbStatus::NotEvaluated`], which appraisal never
/// affirms.
pub fn verify_tdx_signatures(quote: &[u8], now_unix_s: u64) -> Result<VerifiedTdxQuote, TdxError> {
    let bytes = decode_quote_file(quote)?;
    let parsed = UnverifiedTdxQuote::parse(&bytes)?;
    let leaf_key =
        super::pck::verify_pck_chain(&parsed.pck_chain_pem, INTEL_SGX_ROOT_CA_DER, now_unix_s)?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, leaf_key)
        .verify(&parsed.qe_report, &parsed.qe_report_signature)
        .map_err(|_| TdxError::QeReportSignature)?;
    check_qe_binding(&parsed)?;
    check_quote_signature(&parsed)?;
    Ok(finish(
        parsed,
        PlatformVerdict {
            tcb_status: TcbStatus::NotEvaluated,
            advisory_ids: Vec::new(),
            platform_tcb_status: TcbStatus::NotEvaluated,
            qe_tcb_status: TcbStatus::NotEvaluated,
            not_after: i64::MIN,
            not_before: i64::MAX,
        },
    ))
}
