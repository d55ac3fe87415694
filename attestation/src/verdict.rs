//! Appraisal of one piece of verified platform evidence against reference values: the
//! verifier role's last step for a resource provider checking evidence offline, and the
//! platform part of the bundle appraisal in [`crate::appraisal`].
//!
//! The output, [`Verdict`], is EAR-shaped (draft-ietf-rats-ear): an overall status, the
//! AR4SI trust vector (worst tier per claim) and, because an auditor needs to know *which*
//! check decided, every individual check with its tier and reason. A verification error is
//! one contraindicated check named after the failed step ([`crate::snp::SnpError`],
//! [`crate::tdx::TdxError::check`]).

use crate::reference::{hex_eq, SnpReference, TdxReference, TpmReference};
use crate::result::{claim, Tier, TrustClaim};
use crate::snp::VerifiedSnpReport;
use crate::tdx::{TcbStatus, VerifiedTdxQuote};
use serde::Serialize;
use std::collections::BTreeMap;

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable check name (e.g. `report-signature`, `measurement`, `tcb-status`).
    pub check: String,
    /// AR4SI claim the check feeds.
    pub claim: String,
    /// Outcome.
    pub tier: Tier,
    /// Why.
    pub reason: String,
}

/// An EAR-shaped appraisal of one piece of evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// EAR profile.
    pub eat_profile: String,
    /// Evidence kind (`sev-snp`, `tdx`, `tpm`, `bundle`).
    pub evidence: String,
    /// Worst tier over all checks.
    pub status: Tier,
    /// Worst tier per AR4SI claim.
    pub trust_vector: Vec<TrustClaim>,
    /// Every check.
    pub checks: Vec<Check>,
    /// Measured values a reader needs to write reference values (hex).
    pub measured: BTreeMap<String, serde_json::Value>,
}

impl Verdict {
    /// Starts an empty verdict for `evidence`.
    pub fn new(evidence: &str) -> Self {
        Self {
            eat_profile: crate::result::EAR_PROFILE.to_string(),
            evidence: evidence.to_string(),
            status: Tier::None,
            trust_vector: Vec::new(),
            checks: Vec::new(),
            measured: BTreeMap::new(),
        }
    }

    /// A verdict that is one failed verification step.
    pub fn failed(evidence: &str, check: &str, claim_name: &str, reason: String) -> Self {
        let mut v = Self::new(evidence);
        v.push(check, claim_name, Tier::Contraindicated, reason);
        v.finish()
    }

    /// Adds a check.
    pub fn push(&mut self, check: &str, claim_name: &str, tier: Tier, reason: impl Into<String>) {
        self.checks.push(Check {
            check: check.to_string(),
            claim: claim_name.to_string(),
            tier,
            reason: reason.into(),
        });
    }

    /// Records a measured value.
    pub fn measure(&mut self, name: &str, value: impl Into<serde_json::Value>) {
        self.measured.insert(name.to_string(), value.into());
    }

    /// Computes the status and trust vector from the checks.
    pub fn finish(mut self) -> Self {
        let mut by_claim: BTreeMap<String, (Tier, Vec<String>)> = BTreeMap::new();
        for c in &self.checks {
            let e = by_claim
                .entry(c.claim.clone())
                .or_insert((Tier::None, Vec::new()));
            if c.tier > e.0 {
                e.0 = c.tier;
                e.1.clear();
            }
            if c.tier == e.0 {
                e.1.push(format!("{}: {}", c.check, c.reason));
            }
        }
        self.trust_vector = by_claim
            .into_iter()
            .map(|(name, (tier, reasons))| TrustClaim {
                claim: name,
                tier,
                reason: reasons.join("; "),
            })
            .collect();
        self.status = self
            .checks
            .iter()
            .map(|c| c.tier)
            .max()
            .unwrap_or(Tier::None);
        self
    }

    /// Affirming for the CLI's exit code: at least one check and no contraindicated one.
    pub fn affirming(&self) -> bool {
        !self.checks.is_empty() && self.status != Tier::Contraindicated
    }

    /// Merges another verdict's checks (prefixing their names) into this one.
    pub fn absorb(&mut self, prefix: &str, other: Verdict) {
        for c in other.checks {
            self.checks.push(Check {
                check: format!("{prefix}.{}", c.check),
                ..c
            });
        }
        for (k, v) in other.measured {
            self.measured.insert(format!("{prefix}.{k}"), v);
        }
    }
}

fn equal_check(
    v: &mut Verdict,
    check: &str,
    claim_name: &str,
    measured: &[u8],
    expected: Option<&str>,
) {
    match expected {
        None => v.push(check, claim_name, Tier::None, "no reference value given"),
        Some(e) if hex_eq(measured, e) => v.push(check, claim_name, Tier::Affirming, "matches"),
        Some(e) => v.push(
            check,
            claim_name,
            Tier::Contraindicated,
            format!(
                "is {}, reference {}",
                hex::encode(measured),
                e.to_lowercase()
            ),
        ),
    }
}

fn any_of_check(v: &mut Verdict, check: &str, claim_name: &str, measured: &[u8], any: &[String]) {
    if any.is_empty() {
        v.push(check, claim_name, Tier::None, "no reference value given");
    } else if any.iter().any(|e| hex_eq(measured, e)) {
        v.push(
            check,
            claim_name,
            Tier::Affirming,
            "matches a reference value",
        );
    } else {
        v.push(
            check,
            claim_name,
            Tier::Contraindicated,
            format!(
                "{} is none of the {} reference values",
                hex::encode(measured),
                any.len()
            ),
        );
    }
}

/// Report data against the expected value (the binding value, or a nonce zero-padded to 64).
fn report_data_check(v: &mut Verdict, report_data: &[u8; 64], expected: Option<&[u8]>) {
    match expected {
        None => v.push(
            "report-data",
            claim::INSTANCE_IDENTITY,
            Tier::None,
            "no expected report data (--nonce) given: freshness not checked",
        ),
        Some(e) => {
            let mut padded = [0u8; 64];
            let n = e.len().min(64);
            if let (Some(dst), Some(src)) = (padded.get_mut(..n), e.get(..n)) {
                dst.copy_from_slice(src);
            }
            if e.len() <= 64 && padded == *report_data {
                v.push(
                    "report-data",
                    claim::INSTANCE_IDENTITY,
                    Tier::Affirming,
                    "equals the expected binding value",
                );
            } else {
                v.push(
                    "report-data",
                    claim::INSTANCE_IDENTITY,
                    Tier::Contraindicated,
                    format!(
                        "is {}, expected {}",
                        hex::encode(report_data),
                        hex::encode(e)
                    ),
                );
            }
        }
    }
}

/// Appraises a verified SEV-SNP report.
pub fn appraise_snp(
    report: &VerifiedSnpReport,
    reference: &SnpReference,
    expected_report_data: Option<&[u8]>,
) -> Verdict {
    let mut v = Verdict::new("sev-snp");
    v.push(
        "report-signature",
        claim::HARDWARE,
        Tier::Affirming,
        format!(
            "signed by a {:?} that chains to the pinned AMD {:?} root; the VEK's TCB and chip id match the report",
            report.signing_key(),
            report.product()
        ),
    );
    report_data_check(&mut v, report.report_data(), expected_report_data);
    let policy = report.policy();
    let tier = |bad: bool| {
        if bad {
            Tier::Contraindicated
        } else {
            Tier::Affirming
        }
    };
    v.push(
        "debug",
        claim::CONFIGURATION,
        tier(policy.debug_allowed() && !reference.allow_debug),
        if policy.debug_allowed() {
            "guest policy allows debugging (the hypervisor can read guest memory)"
        } else {
            "guest policy forbids debugging"
        },
    );
    v.push(
        "smt",
        claim::CONFIGURATION,
        tier(policy.smt_allowed() && !reference.allow_smt),
        if policy.smt_allowed() {
            "guest policy allows SMT"
        } else {
            "guest policy forbids SMT"
        },
    );
    v.push(
        "migration-agent",
        claim::CONFIGURATION,
        tier(policy.migrate_ma_allowed() && !reference.allow_migration_agent),
        if policy.migrate_ma_allowed() {
            "guest policy allows a migration agent"
        } else {
            "guest policy forbids a migration agent"
        },
    );
    v.push(
        "vmpl",
        claim::CONFIGURATION,
        tier(report.vmpl() > reference.max_vmpl),
        format!(
            "report requested at VMPL {} (highest accepted {})",
            report.vmpl(),
            reference.max_vmpl
        ),
    );
    any_of_check(
        &mut v,
        "measurement",
        claim::EXECUTABLES,
        report.measurement(),
        &reference.measurements,
    );
    equal_check(
        &mut v,
        "host-data",
        claim::CONFIGURATION,
        report.host_data(),
        reference.host_data.as_deref(),
    );
    if !reference.id_key_digests.is_empty() {
        any_of_check(
            &mut v,
            "id-key-digest",
            claim::CONFIGURATION,
            report.id_key_digest(),
            &reference.id_key_digests,
        );
    }
    if !reference.author_key_digests.is_empty() {
        match report.author_key_digest() {
            Some(d) => any_of_check(
                &mut v,
                "author-key-digest",
                claim::CONFIGURATION,
                d,
                &reference.author_key_digests,
            ),
            None => v.push(
                "author-key-digest",
                claim::CONFIGURATION,
                Tier::Contraindicated,
                "reference requires an author key, the report has none",
            ),
        }
    }
    let (raw, parts) = report.reported_tcb();
    match &reference.min_tcb {
        None => v.push(
            "min-tcb",
            claim::HARDWARE,
            Tier::None,
            "no minimum TCB given",
        ),
        Some(min) => {
            let mut low = Vec::new();
            for (name, have, need) in [
                ("bootloader", parts.bootloader, min.bootloader),
                ("tee", parts.tee, min.tee),
                ("snp", parts.snp, min.snp),
                ("microcode", parts.microcode, min.microcode),
            ] {
                if have < need {
                    low.push(format!("{name} {have} < {need}"));
                }
            }
            if let (Some(need), have) = (min.fmc, parts.fmc) {
                if have.unwrap_or(0) < need {
                    low.push(format!("fmc {} < {need}", have.unwrap_or(0)));
                }
            }
            if low.is_empty() {
                v.push(
                    "min-tcb",
                    claim::HARDWARE,
                    Tier::Affirming,
                    "reported TCB meets the minimum",
                );
            } else {
                v.push(
                    "min-tcb",
                    claim::HARDWARE,
                    Tier::Contraindicated,
                    format!("reported TCB below minimum: {}", low.join(", ")),
                );
            }
        }
    }
    v.measure("version", report.version());
    v.measure("product", format!("{:?}", report.product()).to_lowercase());
    v.measure("measurement", hex::encode(report.measurement()));
    v.measure("host_data", hex::encode(report.host_data()));
    v.measure("report_data", hex::encode(report.report_data()));
    v.measure("policy", format!("{:#x}", policy.0));
    v.measure("vmpl", report.vmpl());
    v.measure("reported_tcb", format!("{:#018x}", raw.0));
    v.measure(
        "reported_tcb_parts",
        serde_json::json!({
            "bootloader": parts.bootloader, "tee": parts.tee, "snp": parts.snp,
            "microcode": parts.microcode, "fmc": parts.fmc,
        }),
    );
    v.measure("chip_id", hex::encode(report.chip_id()));
    v.finish()
}

/// Appraises a verified TDX quote.
pub fn appraise_tdx(
    quote: &VerifiedTdxQuote,
    reference: &TdxReference,
    expected_report_data: Option<&[u8]>,
) -> Verdict {
    let mut v = Verdict::new("tdx");
    let r = &quote.report;
    let evaluated = quote.tcb_status != TcbStatus::NotEvaluated;
    v.push(
        "quote-signature",
        claim::HARDWARE,
        Tier::Affirming,
        if evaluated {
            "quote, QE report and PCK chain verify to the pinned Intel SGX Root CA; collateral signatures, CRLs and dates check"
        } else {
            "quote, QE report and PCK chain verify to the pinned Intel SGX Root CA (no collateral: no CRL, no TCB level)"
        },
    );
    let status = quote.tcb_status.name().to_string();
    let advisories = if quote.advisory_ids.is_empty() {
        String::new()
    } else {
        format!(" (advisories {})", quote.advisory_ids.join(", "))
    };
    if !evaluated {
        v.push(
            "tcb-status",
            claim::HARDWARE,
            Tier::Warning,
            "no collateral given: platform TCB not evaluated",
        );
    } else if reference.accepted_tcb_status.contains(&status) {
        v.push(
            "tcb-status",
            claim::HARDWARE,
            Tier::Affirming,
            format!("{status}{advisories}"),
        );
    } else {
        v.push(
            "tcb-status",
            claim::HARDWARE,
            Tier::Contraindicated,
            format!(
                "{status}{advisories}; accepted: {}",
                reference.accepted_tcb_status.join(", ")
            ),
        );
    }
    let rejected: Vec<&String> = quote
        .advisory_ids
        .iter()
        .filter(|a| reference.rejected_advisories.contains(a))
        .collect();
    if !rejected.is_empty() {
        v.push(
            "advisories",
            claim::HARDWARE,
            Tier::Contraindicated,
            format!(
                "platform is affected by rejected advisories: {}",
                rejected
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    report_data_check(&mut v, &r.report_data, expected_report_data);
    v.push(
        "debug",
        claim::CONFIGURATION,
        if r.debug() && !reference.allow_debug {
            Tier::Contraindicated
        } else {
            Tier::Affirming
        },
        if r.debug() {
            "TDATTRIBUTES.DEBUG is set (the host can read TD memory)"
        } else {
            "TDATTRIBUTES.DEBUG is clear"
        },
    );
    any_of_check(
        &mut v,
        "mrtd",
        claim::EXECUTABLES,
        &r.mr_td,
        &reference.mrtd,
    );
    for (i, (rtmr, expected)) in r.rtmr.iter().zip(reference.rtmr.iter()).enumerate() {
        equal_check(
            &mut v,
            &format!("rtmr{i}"),
            claim::EXECUTABLES,
            rtmr,
            expected.as_deref(),
        );
    }
    for (name, measured, expected) in [
        ("mr-config-id", &r.mr_config_id, &reference.mr_config_id),
        ("mr-owner", &r.mr_owner, &reference.mr_owner),
        (
            "mr-owner-config",
            &r.mr_owner_config,
            &reference.mr_owner_config,
        ),
    ] {
        if expected.is_some() {
            equal_check(
                &mut v,
                name,
                claim::CONFIGURATION,
                measured,
                expected.as_deref(),
            );
        }
    }
    v.measure("version", quote.version);
    v.measure("tcb_status", status);
    v.measure("advisory_ids", quote.advisory_ids.clone());
    v.measure("mrtd", hex::encode(r.mr_td));
    for (i, rtmr) in r.rtmr.iter().enumerate() {
        v.measure(&format!("rtmr{i}"), hex::encode(rtmr));
    }
    v.measure("mr_config_id", hex::encode(r.mr_config_id));
    v.measure("mr_owner", hex::encode(r.mr_owner));
    v.measure("td_attributes", hex::encode(r.td_attributes));
    v.measure("report_data", hex::encode(r.report_data));
    v.measure("tee_tcb_svn", hex::encode(r.tee_tcb_svn));
    v.finish()
}

/// Appraises verified TPM PCR values against reference PCRs.
pub fn appraise_tpm_pcrs(
    v: &mut Verdict,
    pcrs: &BTreeMap<u8, [u8; 32]>,
    reference: Option<&TpmReference>,
) {
    match reference {
        None => v.push(
            "pcrs",
            claim::EXECUTABLES,
            Tier::None,
            "no reference PCRs given",
        ),
        Some(r) if r.pcrs.is_empty() => v.push(
            "pcrs",
            claim::EXECUTABLES,
            Tier::None,
            "no reference PCRs given",
        ),
        Some(r) => {
            let mut bad = Vec::new();
            for (i, expected) in &r.pcrs {
                match pcrs.get(i) {
                    Some(value) if hex_eq(value, expected) => {}
                    Some(value) => bad.push(format!(
                        "pcr{i} is {}, reference {}",
                        hex::encode(value),
                        expected.to_lowercase()
                    )),
                    None => bad.push(format!("pcr{i} is not in the quote")),
                }
            }
            if bad.is_empty() {
                v.push(
                    "pcrs",
                    claim::EXECUTABLES,
                    Tier::Affirming,
                    format!("{} reference PCRs match", r.pcrs.len()),
                );
            } else {
                v.push(
                    "pcrs",
                    claim::EXECUTABLES,
                    Tier::Contraindicated,
                    bad.join("; "),
                );
            }
        }
    }
    for (i, value) in pcrs {
        v.measure(&format!("pcr{i}"), hex::encode(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_tier_wins_per_claim_and_overall() {
        let mut v = Verdict::new("x");
        v.push("a", claim::HARDWARE, Tier::Affirming, "ok");
        v.push("b", claim::HARDWARE, Tier::Contraindicated, "bad");
        v.push("c", claim::EXECUTABLES, Tier::None, "unchecked");
        let v = v.finish();
        assert_eq!(v.status, Tier::Contraindicated);
        assert!(!v.affirming());
        let hw = v
            .trust_vector
            .iter()
            .find(|c| c.claim == claim::HARDWARE)
            .map(|c| (c.tier, c.reason.clone()));
        assert_eq!(hw, Some((Tier::Contraindicated, "b: bad".to_string())));
    }

    #[test]
    fn an_empty_verdict_is_not_affirming() {
        assert!(!Verdict::new("x").finish().affirming());
    }

    fn tdx_with(status: TcbStatus, advisories: &[&str]) -> VerifiedTdxQuote {
        let bytes = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/vectors/tdx/dcap-qvl-uptodate/quote.bin"),
        )
        .unwrap();
        let q = crate::tdx::UnverifiedTdxQuote::parse(&bytes).unwrap();
        VerifiedTdxQuote {
            version: 4,
            report: q.report,
            tcb_status: status.clone(),
            advisory_ids: advisories.iter().map(|s| s.to_string()).collect(),
            platform_tcb_status: status.clone(),
            qe_tcb_status: TcbStatus::UpToDate,
            trailing_bytes: 0,
        }
    }

    fn tier_of(v: &Verdict, check: &str) -> (Tier, String) {
        let c = v.checks.iter().find(|c| c.check == check).unwrap();
        (c.tier, c.reason.clone())
    }

    #[test]
    fn tdx_tcb_statuses_map_to_claims_with_advisories() {
        let r = TdxReference::default();
        let v = appraise_tdx(&tdx_with(TcbStatus::UpToDate, &[]), &r, None);
        assert_eq!(tier_of(&v, "tcb-status").0, Tier::Affirming);
        for status in [
            TcbStatus::OutOfDate,
            TcbStatus::SWHardeningNeeded,
            TcbStatus::ConfigurationNeeded,
            TcbStatus::Revoked,
        ] {
            let v = appraise_tdx(&tdx_with(status.clone(), &["INTEL-SA-00615"]), &r, None);
            let (tier, reason) = tier_of(&v, "tcb-status");
            assert_eq!(tier, Tier::Contraindicated, "{status:?}");
            assert!(reason.contains(status.name()), "{reason}");
            assert!(reason.contains("INTEL-SA-00615"), "{reason}");
            assert!(!v.affirming());
        }
        // An operator may accept SWHardeningNeeded, but still refuse one advisory.
        let lenient = TdxReference {
            accepted_tcb_status: vec!["UpToDate".into(), "SWHardeningNeeded".into()],
            rejected_advisories: vec!["INTEL-SA-00837".into()],
            ..TdxReference::default()
        };
        let v = appraise_tdx(
            &tdx_with(TcbStatus::SWHardeningNeeded, &["INTEL-SA-00615"]),
            &lenient,
            None,
        );
        assert!(v.affirming(), "{v:?}");
        let v = appraise_tdx(
            &tdx_with(TcbStatus::SWHardeningNeeded, &["INTEL-SA-00837"]),
            &lenient,
            None,
        );
        assert_eq!(tier_of(&v, "advisories").0, Tier::Contraindicated);
        // No collateral: never affirming TCB.
        let v = appraise_tdx(&tdx_with(TcbStatus::NotEvaluated, &[]), &r, None);
        assert_eq!(tier_of(&v, "tcb-status").0, Tier::Warning);
    }

    #[test]
    fn dcap_errors_are_classified_by_check() {
        use crate::tdx::TdxError;
        let cases = [
            ("TCB status is invalid: Revoked", "tcb-status"),
            ("TCBInfo expired", "collateral-validity"),
            (
                "Signature is invalid for tcb_info in quote_collateral",
                "collateral-signature",
            ),
            (
                "Signature is invalid for qe_report in quote",
                "qe-report-signature",
            ),
            ("QE report hash mismatch", "qe-report-binding"),
            ("ISV enclave report signature is invalid", "quote-signature"),
            ("No matching TCB level found", "tcb-status"),
            ("Fmspc mismatch", "tcb-status"),
        ];
        for (msg, check) in cases {
            let e = TdxError::from_dcap(&anyhow::anyhow!(msg));
            assert_eq!(e.check(), check, "{msg}: {e}");
        }
        assert!(matches!(
            TdxError::from_dcap(&anyhow::anyhow!("TCB status is invalid: Revoked")),
            TdxError::TcbRevoked
        ));
    }
}
