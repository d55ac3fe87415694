//! Appraisal: a verified bundle plus a policy becomes a trust vector.
//!
//! Every check is fail-closed: an item kind this build cannot verify, a missing item the
//! policy requires, a binding that does not match, stale evidence — each makes a claim
//! contraindicated, and the overall status is the worst claim.

use crate::binding::{Level, Nonce};
use crate::bundle::VerifiedBundle;
use crate::evidence::EvidenceKind;
use crate::result::{claim, AttestationResult, Tier, TrustClaim};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Clock skew tolerated for evidence timestamps in the future.
pub const MAX_CLOCK_SKEW_MS: u64 = 5_000;

/// What the verifier accepts, loaded from a JSON policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppraisalPolicy {
    /// Name recorded in every result.
    pub policy_id: String,
    /// Levels accepted; a platform whose level is not listed is contraindicated.
    pub allowed_levels: Vec<Level>,
    /// Whether a vTPM quote must be present.
    #[serde(default)]
    pub require_tpm: bool,
    /// Expected SHA-256 PCR values (index → 64 hex digits); every listed PCR must match.
    #[serde(default)]
    pub expected_pcrs: BTreeMap<u8, String>,
    /// Oldest evidence accepted, relative to appraisal time.
    pub max_evidence_age_ms: u64,
    /// How long an affirming result stays valid.
    #[serde(default = "default_result_ttl_ms")]
    pub result_ttl_ms: u64,
    /// How long an issued nonce may be used.
    #[serde(default = "default_nonce_ttl_ms")]
    pub nonce_ttl_ms: u64,
    /// Reference values for SEV-SNP / TDX / TPM evidence (docs/reference-values.md).
    #[serde(default, skip_serializing_if = "is_default_reference")]
    pub reference: crate::reference::ReferenceValues,
    /// Intel collateral for TDX quotes (the `verify tdx --collateral` JSON); without it a TDX
    /// platform is never affirmed (its TCB cannot be evaluated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tdx_collateral: Option<crate::tdx::Collateral>,
    /// What GPU evidence must show (default: none required; any present must verify).
    #[serde(default, skip_serializing_if = "is_default_gpu")]
    pub gpu: crate::gpu::GpuRequirement,
}

fn is_default_gpu(g: &crate::gpu::GpuRequirement) -> bool {
    *g == crate::gpu::GpuRequirement::default()
}

fn is_default_reference(r: &crate::reference::ReferenceValues) -> bool {
    *r == crate::reference::ReferenceValues::default()
}

fn default_result_ttl_ms() -> u64 {
    300_000
}
fn default_nonce_ttl_ms() -> u64 {
    60_000
}

/// Errors loading a policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// "policy is not valid json".
    #[error("policy is not valid json")]
    Json(#[source] serde_json::Error),
    /// "policy allows no level".
    #[error("policy allows no level")]
    NoLevels,
    /// "expected value for pcr {0} is not 64 hex digits".
    #[error("expected value for pcr {0} is not 64 hex digits")]
    PcrValue(u8),
    /// "pcr index {0} is out of range 0-23".
    #[error("pcr index {0} is out of range 0-23")]
    PcrIndex(u8),
}

impl AppraisalPolicy {
    /// Parses and checks a policy document.
    pub fn from_json(text: &str) -> Result<Self, PolicyError> {
        let p: Self = serde_json::from_str(text).map_err(PolicyError::Json)?;
        if p.allowed_levels.is_empty() {
            return Err(PolicyError::NoLevels);
        }
        for (idx, value) in &p.expected_pcrs {
            if *idx > 23 {
                return Err(PolicyError::PcrIndex(*idx));
            }
            let ok = hex::decode(value).map(|v| v.len() == 32).unwrap_or(false);
            if !ok {
                return Err(PolicyError::PcrValue(*idx));
            }
        }
        Ok(p)
    }

    /// Digest of the reference values (what a sealed share is bound to): SHA-256 over the
    /// CBOR of the policy id, allowed levels, TPM requirement and expected PCRs.
    pub fn reference_digest(&self) -> [u8; 32] {
        #[derive(Serialize)]
        struct Reference<'a> {
            policy_id: &'a str,
            allowed_levels: &'a [Level],
            require_tpm: bool,
            expected_pcrs: &'a BTreeMap<u8, String>,
            // Absent when empty, so digests of policies without platform reference values do
            // not change. Collateral is not a reference value (it is refreshed monthly).
            #[serde(skip_serializing_if = "Option::is_none")]
            platform: Option<&'a crate::reference::ReferenceValues>,
            #[serde(skip_serializing_if = "Option::is_none")]
            gpu: Option<&'a crate::gpu::GpuRequirement>,
        }
        let bytes = wire::encode(&Reference {
            policy_id: &self.policy_id,
            allowed_levels: &self.allowed_levels,
            require_tpm: self.require_tpm,
            expected_pcrs: &self.expected_pcrs,
            platform: (!is_default_reference(&self.reference)).then_some(&self.reference),
            gpu: (!is_default_gpu(&self.gpu)).then_some(&self.gpu),
        })
        .unwrap_or_default();
        crate::sha256(&bytes)
    }
}

/// The verifier-side facts appraisal compares the bundle with.
#[derive(Debug, Clone, Copy)]
pub struct AppraisalContext<'a> {
    /// The policy.
    pub policy: &'a AppraisalPolicy,
    /// The nonce the verifier issued for this kernel (already checked single-use).
    pub expected_nonce: &'a Nonce,
    /// Appraisal time (Unix ms).
    pub now_ms: u64,
    /// What this appraiser already replayed of the kernel's event log.
    pub event_log_base: EventLogBase<'a>,
}

/// Where an appraisal of an event log part starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventLogBase<'a> {
    /// The verifier holds no replay for this kernel: only a whole log (from event 0) can be
    /// appraised; a part that starts later is contraindicated.
    Start,
    /// The verifier's replay from the kernel's last affirming appraisal in this boot.
    Replayed(&'a EventLogState),
    /// An appraiser that never keeps state (offline `verify`, a TLS client re-appraising a
    /// certificate): a whole log is replayed; a part that starts later cannot be and is left
    /// to the verifier whose signed result covers it (the quote's PCRs are still checked
    /// against the reference values).
    Stateless,
}

/// How far a verifier has replayed a kernel's measured-boot event log: the number of events
/// and the SHA-256 PCR values they produce. Kept per kernel between appraisals, so that each
/// re-attestation ships and replays only the events since the last one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLogState {
    /// Events replayed (the next delta starts at this index).
    pub events: u32,
    /// SHA-256 bank values the replayed events produce, by PCR index.
    pub pcrs: BTreeMap<u32, Vec<u8>>,
}

/// Checks the event log part shipped with a verified quote: it must continue what the
/// verifier replayed (`base`) and replay, together with it, to the quoted value of every PCR
/// the log touches. Returns the new replay state.
fn appraise_event_log(
    part: &crate::tpm::EventLogPart,
    quoted: &BTreeMap<u8, [u8; 32]>,
    base: EventLogBase<'_>,
) -> Result<Option<EventLogState>, String> {
    use crate::eventlog::{check_delta, DigestAlgorithm, EventLog};
    let empty = BTreeMap::new();
    let base_pcrs = match (part.first_event, base) {
        (0, _) => &empty,
        (first, EventLogBase::Replayed(b)) if b.events == first => &b.pcrs,
        (_, EventLogBase::Stateless) => return Ok(None),
        (first, EventLogBase::Replayed(b)) => {
            return Err(format!(
                "event log part starts at event {first} but this verifier has replayed {} events",
                b.events
            ))
        }
        (first, EventLogBase::Start) => {
            return Err(format!(
                "event log part starts at event {first} but this verifier holds no replay for this kernel"
            ))
        }
    };
    let log = EventLog::parse(&part.log).map_err(|e| format!("event log rejected: {e}"))?;
    let count = u32::try_from(log.events().len()).unwrap_or(u32::MAX);
    if part.first_event.checked_add(count) != Some(part.total_events) {
        return Err(format!(
            "event log part holds {count} events from event {} but claims {} in all",
            part.first_event, part.total_events
        ));
    }
    // Every PCR the log touches (before or in this part) that the quote covers.
    let touched: std::collections::BTreeSet<u32> = base_pcrs
        .keys()
        .copied()
        .chain(log.events().iter().map(|e| e.pcr_index()))
        .collect();
    let expected: BTreeMap<u32, Vec<u8>> = touched
        .into_iter()
        .filter_map(|i| {
            let slot = u8::try_from(i).ok()?;
            quoted.get(&slot).map(|v| (i, v.to_vec()))
        })
        .collect();
    let (covered, pcrs) = check_delta(&log, DigestAlgorithm::Sha256, base_pcrs, &expected)
        .map_err(|e| format!("event log does not replay to the quoted pcrs: {e}"))?;
    // Events past `covered` were logged but not yet extended when the quote was taken: the
    // next part starts with them again.
    Ok(Some(EventLogState {
        events: part
            .first_event
            .saturating_add(u32::try_from(covered).unwrap_or(u32::MAX)),
        pcrs,
    }))
}

/// Outcome of appraisal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appraisal {
    /// The trust vector.
    pub claims: Vec<TrustClaim>,
    /// Overall status.
    pub status: Tier,
    /// Level established by the platform evidence.
    pub level: Level,
    /// PCR values that verified (empty without a TPM item).
    pub pcrs: BTreeMap<u8, [u8; 32]>,
    /// The event-log replay after this appraisal, when the quote came with a log that
    /// replayed to it: the `event_log_base` of the kernel's next appraisal.
    pub event_log: Option<EventLogState>,
}

impl Appraisal {
    /// Reasons of every claim that is not affirming.
    pub fn reasons(&self) -> Vec<String> {
        self.claims
            .iter()
            .filter(|c| c.tier != Tier::Affirming && c.tier != Tier::None)
            .map(|c| format!("{}: {}", c.claim, c.reason))
            .collect()
    }
}

fn push(claims: &mut Vec<TrustClaim>, name: &str, tier: Tier, reason: impl Into<String>) {
    claims.push(TrustClaim {
        claim: name.to_string(),
        tier,
        reason: reason.into(),
    });
}

/// Verifies and appraises an SEV-SNP item (report + the VEK the host returned with it) or a
/// TDX item (quote, against the policy's collateral) with REPORT_DATA = the binding value.
fn appraise_platform_item(
    item: &crate::EvidenceItem,
    binding: &crate::BindingValue,
    ctx: &AppraisalContext<'_>,
) -> crate::verdict::Verdict {
    use crate::verdict::{appraise_snp, appraise_tdx, Verdict};
    let expected = Some(&binding.as_bytes()[..]);
    match item.kind {
        EvidenceKind::SevSnp => {
            let ev: crate::snp::SnpEvidence = match wire::decode(&item.data) {
                Ok(ev) => ev,
                Err(e) => {
                    return Verdict::failed(
                        "sev-snp",
                        "evidence-format",
                        claim::HARDWARE,
                        format!("not SnpEvidence CBOR: {e}"),
                    )
                }
            };
            let vek = ev
                .certs
                .iter()
                .find(|c| c.guid == crate::snp::VCEK_GUID || c.guid == crate::snp::VLEK_GUID)
                .map(|c| c.der.as_slice())
                .unwrap_or_default();
            match crate::snp::verify_snp(&ev.report, vek, None) {
                Ok(r) => appraise_snp(
                    &r,
                    &ctx.policy.reference.snp.clone().unwrap_or_default(),
                    expected,
                ),
                Err(e) => Verdict::failed("sev-snp", e.check(), claim::HARDWARE, e.to_string()),
            }
        }
        _ => {
            let now_s = ctx.now_ms / 1000;
            let verified = match &ctx.policy.tdx_collateral {
                Some(c) => crate::tdx::verify_tdx(&item.data, c, now_s),
                None => crate::tdx::verify_tdx_signatures(&item.data, now_s),
            };
            match verified {
                Ok(q) => appraise_tdx(
                    &q,
                    &ctx.policy.reference.tdx.clone().unwrap_or_default(),
                    expected,
                ),
                Err(e) => Verdict::failed("tdx", e.check(), claim::HARDWARE, e.to_string()),
            }
        }
    }
}

/// Appraises a verified bundle.
pub fn appraise(bundle: &VerifiedBundle, ctx: &AppraisalContext<'_>) -> Appraisal {
    let mut identity: Vec<String> = Vec::new();
    let mut executables: Vec<String> = Vec::new();
    let mut platform_level: Option<Level> = None;
    let mut platform_items = 0usize;
    let mut pcrs = BTreeMap::new();
    let mut tpm_seen = false;
    let mut platform_problems: Vec<String> = Vec::new();
    let mut gpu_item: Option<&[u8]> = None;
    let mut event_log: Option<EventLogState> = None;
    let mut event_log_events: Option<u32> = None;
    let binding = bundle.binding();

    if bundle.nonce() != ctx.expected_nonce {
        identity.push("bundle nonce is not the nonce issued to this kernel".into());
    }
    let created = bundle.created_at_ms();
    if created > ctx.now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
        identity.push(format!(
            "bundle created {} ms in the future",
            created - ctx.now_ms
        ));
    } else if ctx.now_ms.saturating_sub(created) > ctx.policy.max_evidence_age_ms {
        identity.push(format!(
            "evidence is {} ms old, policy allows {} ms",
            ctx.now_ms.saturating_sub(created),
            ctx.policy.max_evidence_age_ms
        ));
    }

    for item in bundle.items() {
        match item.kind {
            EvidenceKind::Software => {
                platform_items += 1;
                match crate::software::verify(&item.data) {
                    Ok(report) => {
                        platform_level = Some(report.level());
                        if report.report_data() != binding.as_bytes() {
                            identity.push(
                                "software report is bound to a different key, nonce or manifest"
                                    .into(),
                            );
                        }
                        if ctx.now_ms.saturating_sub(report.issued_at_ms())
                            > ctx.policy.max_evidence_age_ms
                        {
                            identity.push("software report is stale".into());
                        }
                    }
                    Err(e) => identity.push(format!("software report rejected: {e}")),
                }
            }
            EvidenceKind::Tpm => {
                tpm_seen = true;
                let verified = crate::tpm::TpmEvidence::from_item_data(&item.data).and_then(|ev| {
                    crate::tpm::verify(&ev, binding.tpm_qualifying_data())
                        .map(|q| (q, ev.event_log))
                });
                match verified {
                    Ok((q, log)) => {
                        pcrs = q.pcrs().clone();
                        if let Some(part) = &log {
                            match appraise_event_log(part, &pcrs, ctx.event_log_base) {
                                Ok(Some(state)) => {
                                    event_log_events = Some(state.events);
                                    event_log = Some(state);
                                }
                                Ok(None) => {}
                                Err(e) => executables.push(e),
                            }
                        }
                    }
                    Err(e) => identity.push(format!("tpm quote rejected: {e}")),
                }
            }
            EvidenceKind::SevSnp | EvidenceKind::Tdx => {
                platform_items += 1;
                let verdict = appraise_platform_item(item, binding, ctx);
                if verdict.status == Tier::Contraindicated {
                    let reasons: Vec<String> = verdict
                        .checks
                        .iter()
                        .filter(|c| c.tier == Tier::Contraindicated)
                        .map(|c| format!("{}: {}", c.check, c.reason))
                        .collect();
                    platform_problems.push(format!(
                        "`{}` evidence not affirmed: {}",
                        item.kind.as_str(),
                        reasons.join("; ")
                    ));
                } else if verdict.status == Tier::Warning {
                    platform_problems.push(format!(
                        "`{}` evidence only partly verified: {}",
                        item.kind.as_str(),
                        verdict
                            .checks
                            .iter()
                            .filter(|c| c.tier == Tier::Warning)
                            .map(|c| c.reason.clone())
                            .collect::<Vec<_>>()
                            .join("; ")
                    ));
                } else {
                    platform_level = Some(Level::L3);
                }
            }
            EvidenceKind::NvidiaGpu => {
                if gpu_item.replace(item.data.as_slice()).is_some() {
                    platform_problems.push("bundle carries more than one gpu item".into());
                }
            }
        }
    }

    match crate::gpu::appraise_gpu_item(
        gpu_item,
        binding,
        &ctx.policy.gpu,
        i64::try_from(ctx.now_ms / 1000).unwrap_or(i64::MAX),
    ) {
        crate::gpu::GpuVerdict::Contraindicated(r) => platform_problems.push(r),
        crate::gpu::GpuVerdict::Affirming(_) | crate::gpu::GpuVerdict::NotRequired(_) => {}
    }

    let mut claims = Vec::new();
    if identity.is_empty() {
        push(
            &mut claims,
            claim::INSTANCE_IDENTITY,
            Tier::Affirming,
            "bundle signed by its attestation key; every item bound to that key, the issued nonce and the manifest draft; evidence fresh",
        );
    } else {
        push(
            &mut claims,
            claim::INSTANCE_IDENTITY,
            Tier::Contraindicated,
            identity.join("; "),
        );
    }

    // Hardware / level.
    let level = platform_level.unwrap_or(bundle.level());
    if !platform_problems.is_empty() {
        push(
            &mut claims,
            claim::HARDWARE,
            Tier::Contraindicated,
            platform_problems.join("; "),
        );
    } else if platform_items != 1 {
        push(
            &mut claims,
            claim::HARDWARE,
            Tier::Contraindicated,
            format!("bundle carries {platform_items} platform reports, exactly one is required"),
        );
    } else if platform_level.is_some_and(|l| l != bundle.level()) {
        push(
            &mut claims,
            claim::HARDWARE,
            Tier::Contraindicated,
            format!(
                "bundle claims {} but its platform evidence establishes {}",
                bundle.level(),
                level
            ),
        );
    } else if !ctx.policy.allowed_levels.contains(&level) {
        push(
            &mut claims,
            claim::HARDWARE,
            Tier::Contraindicated,
            format!(
                "level {level} is not allowed by policy `{}`",
                ctx.policy.policy_id
            ),
        );
    } else if level == Level::L1 {
        push(
            &mut claims,
            claim::HARDWARE,
            Tier::None,
            "software platform (KEE1-L1): no hardware claim; level allowed by policy",
        );
    } else {
        push(
            &mut claims,
            claim::HARDWARE,
            Tier::Affirming,
            format!("{level} platform verified"),
        );
    }

    // Executables: PCRs against reference values.
    if ctx.policy.require_tpm && !tpm_seen {
        executables.push("policy requires a vTPM quote and the bundle has none".into());
    }
    for (idx, want_hex) in &ctx.policy.expected_pcrs {
        match pcrs.get(idx) {
            Some(got) if hex::encode(got) == want_hex.to_ascii_lowercase() => {}
            Some(got) => executables.push(format!(
                "pcr {idx} is {}, reference value is {want_hex}",
                hex::encode(got)
            )),
            None => executables.push(format!("pcr {idx} was not quoted")),
        }
    }
    if !executables.is_empty() {
        push(
            &mut claims,
            claim::EXECUTABLES,
            Tier::Contraindicated,
            executables.join("; "),
        );
    } else if tpm_seen && !pcrs.is_empty() {
        push(
            &mut claims,
            claim::EXECUTABLES,
            Tier::Affirming,
            match event_log_events {
                Some(n) => format!(
                    "{} pcrs quoted; {} match reference values; the event log ({n} events) replays to them",
                    pcrs.len(),
                    ctx.policy.expected_pcrs.len()
                ),
                None => format!(
                    "{} pcrs quoted; {} match reference values",
                    pcrs.len(),
                    ctx.policy.expected_pcrs.len()
                ),
            },
        );
    } else {
        push(
            &mut claims,
            claim::EXECUTABLES,
            Tier::None,
            "no measurements quoted",
        );
    }

    let status = AttestationResult::overall(&claims);
    Appraisal {
        claims,
        status,
        level,
        pcrs,
        event_log: if status == Tier::Affirming {
            event_log
        } else {
            None
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_parsing_checks_values() {
        let ok = r#"{"policy_id":"dev","allowed_levels":["KEE1-L1"],"max_evidence_age_ms":1000}"#;
        let p = AppraisalPolicy::from_json(ok).unwrap();
        assert_eq!(p.result_ttl_ms, 300_000);
        let none = r#"{"policy_id":"x","allowed_levels":[],"max_evidence_age_ms":1}"#;
        assert!(matches!(
            AppraisalPolicy::from_json(none),
            Err(PolicyError::NoLevels)
        ));
        let bad_pcr = r#"{"policy_id":"x","allowed_levels":["KEE1-L3"],"max_evidence_age_ms":1,"expected_pcrs":{"0":"abcd"}}"#;
        assert!(matches!(
            AppraisalPolicy::from_json(bad_pcr),
            Err(PolicyError::PcrValue(0))
        ));
        let unknown = r#"{"policy_id":"x","allowed_levels":["KEE1-L3"],"max_evidence_age_ms":1,"skip_checks":true}"#;
        assert!(AppraisalPolicy::from_json(unknown).is_err());
        let mut q = p.clone();
        q.allowed_levels = vec![Level::L3];
        assert_ne!(p.reference_digest(), q.reference_digest());
    }

    #[test]
    fn unverifiable_platform_evidence_is_contraindicated_even_under_an_l3_policy() {
        use crate::ak::AttestationKey;
        use crate::bundle::{sign_bundle, BundleClaims, UnverifiedBundle, BUNDLE_VERSION};
        use crate::evidence::EvidenceItem;
        let ak = AttestationKey::generate().unwrap();
        let now = crate::now_ms();
        let claims = BundleClaims {
            version: BUNDLE_VERSION,
            kernel_id: "k1".into(),
            level: Level::L3,
            nonce: vec![1; 32],
            manifest_draft_hash: vec![2; 32],
            ak_public: ak.public_key().to_vec(),
            key_exchange_public: vec![3; 32],
            created_at_ms: now,
            items: vec![EvidenceItem {
                kind: EvidenceKind::SevSnp,
                data: vec![0; 1184],
            }],
        };
        let bytes = sign_bundle(&claims, &ak).unwrap();
        let b = UnverifiedBundle::parse(&bytes)
            .unwrap()
            .verify_signature()
            .unwrap();
        let policy = AppraisalPolicy::from_json(
            r#"{"policy_id":"gov","allowed_levels":["KEE1-L3"],"max_evidence_age_ms":60000}"#,
        )
        .unwrap();
        let nonce = Nonce::new([1; 32]);
        let a = appraise(
            &b,
            &AppraisalContext {
                policy: &policy,
                expected_nonce: &nonce,
                now_ms: now,
                event_log_base: EventLogBase::Stateless,
            },
        );
        assert_eq!(a.status, Tier::Contraindicated);
        let hw = a
            .claims
            .iter()
            .find(|c| c.claim == claim::HARDWARE)
            .unwrap();
        assert_eq!(hw.tier, Tier::Contraindicated, "{hw:?}");
    }

    fn l3_bundle_with(item: crate::evidence::EvidenceItem) -> (VerifiedBundle, u64) {
        use crate::ak::AttestationKey;
        use crate::bundle::{sign_bundle, BundleClaims, UnverifiedBundle, BUNDLE_VERSION};
        let ak = AttestationKey::generate().unwrap();
        let now = crate::now_ms();
        let claims = BundleClaims {
            version: BUNDLE_VERSION,
            kernel_id: "k1".into(),
            level: Level::L3,
            nonce: vec![1; 32],
            manifest_draft_hash: vec![2; 32],
            ak_public: ak.public_key().to_vec(),
            key_exchange_public: vec![3; 32],
            created_at_ms: now,
            items: vec![item],
        };
        let bytes = sign_bundle(&claims, &ak).unwrap();
        let b = UnverifiedBundle::parse(&bytes)
            .unwrap()
            .verify_signature()
            .unwrap();
        (b, now)
    }

    fn hardware_of(b: &VerifiedBundle, now: u64) -> TrustClaim {
        let policy = AppraisalPolicy::from_json(
            r#"{"policy_id":"gov","allowed_levels":["KEE1-L3"],"max_evidence_age_ms":60000}"#,
        )
        .unwrap();
        let nonce = Nonce::new([1; 32]);
        let a = appraise(
            b,
            &AppraisalContext {
                policy: &policy,
                expected_nonce: &nonce,
                now_ms: now,
                event_log_base: EventLogBase::Stateless,
            },
        );
        assert_eq!(a.status, Tier::Contraindicated);
        a.claims
            .into_iter()
            .find(|c| c.claim == claim::HARDWARE)
            .unwrap()
    }

    #[test]
    fn a_genuine_snp_report_not_bound_to_the_bundle_is_contraindicated_for_its_report_data() {
        // A real Milan report and its VCEK: the chain and signature verify, but REPORT_DATA is
        // not this bundle's binding value, so the platform claim names `report-data`.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/snp");
        let report = std::fs::read(dir.join("trustee-milan-vcek/report.bin")).unwrap();
        let vcek = std::fs::read(dir.join("trustee-milan-vcek/vcek.der")).unwrap();
        let ev = crate::snp::SnpEvidence {
            report: report.clone(),
            certs: vec![crate::snp::SnpCert {
                guid: crate::snp::VCEK_GUID.into(),
                der: vcek.clone(),
            }],
        };
        let item = crate::evidence::EvidenceItem {
            kind: EvidenceKind::SevSnp,
            data: wire::encode(&ev).unwrap(),
        };
        let (b, now) = l3_bundle_with(item);
        let hw = hardware_of(&b, now);
        assert_eq!(hw.tier, Tier::Contraindicated);
        assert!(hw.reason.contains("report-data"), "{}", hw.reason);
        assert!(!hw.reason.contains("report-signature"), "{}", hw.reason);

        // The same report with a flipped measurement byte: the signature check names itself.
        let mut bad = report;
        bad[0x90] ^= 1;
        let ev = crate::snp::SnpEvidence {
            report: bad,
            certs: vec![crate::snp::SnpCert {
                guid: crate::snp::VCEK_GUID.into(),
                der: vcek,
            }],
        };
        let item = crate::evidence::EvidenceItem {
            kind: EvidenceKind::SevSnp,
            data: wire::encode(&ev).unwrap(),
        };
        let (b, now) = l3_bundle_with(item);
        let hw = hardware_of(&b, now);
        assert!(hw.reason.contains("report-signature"), "{}", hw.reason);
    }

    #[test]
    fn a_tdx_quote_without_collateral_is_never_affirmed() {
        let q = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/vectors/tdx/dcap-qvl-uptodate/quote.bin"),
        )
        .unwrap();
        let item = crate::evidence::EvidenceItem {
            kind: EvidenceKind::Tdx,
            data: q,
        };
        let (b, now) = l3_bundle_with(item);
        let hw = hardware_of(&b, now);
        assert_eq!(hw.tier, Tier::Contraindicated);
        assert!(hw.reason.contains("tdx"), "{}", hw.reason);
    }
}
