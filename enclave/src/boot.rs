//! Boot to serving (DESIGN.md steps 1-7): collect → bind → appraise → unseal → freeze the
//! manifest. Nothing is unsealed before the verifier's affirming result, and a result is only
//! trusted after its signature verifies under the pinned verifier key.

use crate::config::{KernelConfig, Platform};
use crate::manifest::{GecManifest, HashLocked, MANIFEST_VERSION};
use crate::transport::{call, CallError, TransportError};
use attestation::ak::AttestationKey;
use attestation::bundle::{sign_bundle, BundleClaims, BUNDLE_VERSION};
use attestation::plan::{CeremonyPlan, SignedPlan, MODE_DKG, MODE_REFRESH, MODE_REPAIR, PLAN_FILE};
use attestation::result::{verify_result, AttestationResult};
use attestation::sealing::{self, KeyExchange, SealedShare};
use attestation::{Attester, BindingValue, CollectError, Level, Nonce};
use frost_ed25519 as frost;
use std::sync::{Arc, Mutex};
use wire::verifier::{VerifierRequest, VerifierResponse};

/// Name of the sealed share file in the state directory.
pub const SEALED_SHARE_FILE: &str = "sealed_share.cbor";

/// Why a boot attempt did not reach serving.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// "verifier unreachable": worth retrying.
    #[error("verifier unreachable: {0}")]
    Unreachable(String),
    /// "evidence collection stalled": a TPM or TEE device did not answer within the
    /// exchange deadline (or a collection it holds up has not returned); worth retrying.
    #[error("evidence collection stalled: {0}")]
    Stalled(String),
    /// "appraisal refused": the verifier said no; retrying the same evidence will not help.
    #[error("appraisal refused: {0}")]
    Refused(String),
    /// "evidence collection failed".
    #[error("evidence collection failed")]
    Collect(#[from] CollectError),
    /// "sealed share unusable".
    #[error("sealed share unusable: {0}")]
    Share(String),
    /// Anything else that stops the boot.
    #[error("{0}")]
    Other(String),
}

impl From<TransportError> for BootError {
    fn from(e: TransportError) -> Self {
        BootError::Unreachable(error_chain(&e))
    }
}

impl From<CallError> for BootError {
    fn from(e: CallError) -> Self {
        BootError::Unreachable(error_chain(&e))
    }
}

/// `fut` within the boot's exchange deadline ([`crate::Retry::exchange_timeout_ms`]);
/// past it, "verifier unreachable" naming `what` did not finish.
async fn within<T>(
    cfg: &KernelConfig,
    what: &str,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, BootError> {
    let limit = cfg.retry.exchange_timeout_ms;
    tokio::time::timeout(std::time::Duration::from_millis(limit), fut)
        .await
        .map_err(|_| {
            BootError::Unreachable(format!("the verifier did not {what} within {limit} ms"))
        })
}

/// One request to the verifier and its answer, within the boot's exchange deadline.
async fn verifier_call(
    cfg: &KernelConfig,
    conn: &mut dyn crate::transport::Stream,
    req: &VerifierRequest,
) -> Result<VerifierResponse, BootError> {
    Ok(within(cfg, "answer", call::<_, VerifierResponse>(conn, req)).await??)
}

/// An error and its sources on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// What a successful boot hands to the server.
pub struct Unsealed {
    /// The frozen, hash-locked manifest.
    pub manifest: HashLocked,
    /// The evidence bundle bytes.
    pub bundle: Vec<u8>,
    /// The signed result bytes.
    pub result: Vec<u8>,
    /// The verified result.
    pub result_claims: AttestationResult,
    /// This kernel's FROST key package (the unsealed share).
    pub key_package: frost::keys::KeyPackage,
    /// The group's public key package.
    pub public_package: frost::keys::PublicKeyPackage,
    /// The ceremony's signer list and threshold.
    pub sealed: SealedShare,
    /// Hash of the manifest draft every bundle of this boot binds to (re-attestation binds
    /// fresh evidence to the same draft).
    pub draft_hash: [u8; 32],
    /// Level the platform attester establishes.
    pub level: Level,
    /// The wrap key the share was sealed under (a refresh reseals the new share with it).
    pub(crate) wrap_key: [u8; 32],
}

impl std::fmt::Debug for Unsealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsealed").finish_non_exhaustive()
    }
}

/// The GPU evidence source: NVML when built with the `gpu` feature; otherwise one that always
/// answers "no gpu evidence" with the reason, so policy decides.
fn gpu_source() -> Box<dyn gpu_attest::GpuEvidenceSource + Send> {
    #[cfg(feature = "gpu")]
    let source: Box<dyn gpu_attest::GpuEvidenceSource + Send> =
        match gpu_attest::collect::nvml::NvmlSource::open() {
            Ok(s) => Box::new(s),
            Err(e) => Box::new(NoGpu(e.to_string())),
        };
    #[cfg(not(feature = "gpu"))]
    let source: Box<dyn gpu_attest::GpuEvidenceSource + Send> = Box::new(NoGpu(
        "enclave built without the `gpu` feature (no NVML collector)".into(),
    ));
    source
}

/// A GPU source that has nothing to offer, and says why.
struct NoGpu(String);

impl gpu_attest::GpuEvidenceSource for NoGpu {
    fn collect(
        &mut self,
        _nonce: &gpu_attest::GpuNonce,
    ) -> Result<Vec<gpu_attest::GpuEvidence>, gpu_attest::CollectError> {
        Err(gpu_attest::CollectError::LibraryMissing(Box::new(
            std::io::Error::other(self.0.clone()),
        )))
    }
}

/// Creates the attesters the configuration names. A missing TEE is an error.
pub fn make_attesters(cfg: &KernelConfig) -> Result<Vec<Box<dyn Attester>>, CollectError> {
    let mut v: Vec<Box<dyn Attester>> = Vec::new();
    match cfg.platform {
        Platform::Software => v.push(Box::new(attestation::software::SoftwareAttester::new()?)),
        Platform::Tdx => v.push(Box::new(attestation::tdx::TdxAttester::open(
            std::path::Path::new(attestation::tdx::TSM_REPORT_ROOT),
        )?)),
        Platform::SevSnp => {
            #[cfg(feature = "snp")]
            v.push(Box::new(attestation::snp::SnpAttester::open(0)?));
            #[cfg(not(feature = "snp"))]
            return Err(CollectError::NoSuchDevice {
                path: attestation::snp::SEV_GUEST_DEVICE.into(),
                what: "SEV-SNP collector (built without the `snp` feature)",
            });
        }
    }
    if let Some(tcti) = &cfg.tpm_tcti {
        #[cfg(feature = "tpm")]
        {
            let tpm = attestation::tpm::TpmAttester::connect(tcti)?;
            v.push(Box::new(match &cfg.event_log {
                Some(path) => tpm.with_event_log(path),
                None => tpm,
            }));
        }
        #[cfg(not(feature = "tpm"))]
        return Err(CollectError::NoSuchDevice {
            path: tcti.clone(),
            what: "vTPM collector (built without the `tpm` feature)",
        });
    }
    if cfg.gpus {
        v.push(Box::new(attestation::gpu::GpuAttester::new(gpu_source())));
    }
    Ok(v)
}

/// The manifest draft: everything but the evidence and result.
pub fn manifest_draft(
    cfg: &KernelConfig,
    level: Level,
    cap_profile_hash: &[u8; 32],
    threshold: u16,
    signers: &[String],
    group_public_key: &[u8],
) -> GecManifest {
    GecManifest {
        version: MANIFEST_VERSION,
        fleet_id: cfg.fleet_id.clone(),
        kernel_id: cfg.kernel_id.clone(),
        conformance_level: level.as_str().to_string(),
        cap_profile_hash: hex::encode(cap_profile_hash),
        frost: format!("frost:t-of-n:{}-{}", threshold, signers.len()),
        group_public_key: hex::encode(group_public_key),
        signers: signers.to_vec(),
        evidence_bundle_digest: String::new(),
        attestation_result_digest: String::new(),
        attestation_status: String::new(),
        frozen_at_ms: 0,
        catalog_publishers: cfg.catalog_publishers.iter().map(hex::encode).collect(),
        catalog_threshold: if cfg.catalog_publishers.is_empty() {
            0
        } else {
            u32::try_from(cfg.catalog_threshold).unwrap_or(u32::MAX)
        },
    }
}

/// Loads the sealed share of this kernel.
pub fn load_sealed(cfg: &KernelConfig) -> Result<SealedShare, BootError> {
    let path = cfg.state_dir.join(SEALED_SHARE_FILE);
    let bytes = std::fs::read(&path)
        .map_err(|e| BootError::Share(format!("reading `{}`: {e}", path.display())))?;
    let sealed = SealedShare::decode(&bytes).map_err(|e| BootError::Share(e.to_string()))?;
    if sealed.kernel_id != cfg.kernel_id {
        return Err(BootError::Share(format!(
            "sealed share belongs to `{}`, not `{}`",
            sealed.kernel_id, cfg.kernel_id
        )));
    }
    Ok(sealed)
}

/// Collects fresh evidence from every attester, bound to `nonce`, this kernel's attestation
/// key and `draft_hash`, and signs it into a bundle with a fresh X25519 key for the release.
/// Returns the bundle, its SHA-256 and the key exchange.
pub async fn collect_bundle(
    cfg: &KernelConfig,
    ak: &AttestationKey,
    attesters: Arc<Mutex<Vec<Box<dyn Attester>>>>,
    nonce: &Nonce,
    level: Level,
    draft_hash: &[u8; 32],
    event_log_from: u32,
) -> Result<(Vec<u8>, [u8; 32], KeyExchange), BootError> {
    let binding = BindingValue::compute(nonce, ak.public_key(), draft_hash);
    // The devices answer on a blocking thread, within the exchange deadline: a TPM or TEE
    // device that never answers costs one stuck thread (holding the attesters), and every
    // later attempt waits for that lock only until its own deadline, so a hung device shows
    // as `sealed`, "evidence collection stalled … retrying", never as `booting` forever.
    let limit = cfg.retry.exchange_timeout_ms;
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(limit);
    let collect = tokio::task::spawn_blocking(move || {
        let mut a = loop {
            match attesters.try_lock() {
                Ok(a) => break a,
                Err(std::sync::TryLockError::Poisoned(_)) => {
                    return Err(BootError::Other("attester lock".into()))
                }
                Err(std::sync::TryLockError::WouldBlock) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(BootError::Stalled(format!(
                            "a previous evidence collection has not returned within {limit} ms"
                        )));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        };
        a.iter_mut()
            .map(|x| {
                x.event_log_from(event_log_from);
                x.collect(&binding).map_err(BootError::from)
            })
            .collect::<Result<Vec<_>, _>>()
    });
    let items = tokio::time::timeout_at(deadline.into(), collect)
        .await
        .map_err(|_| {
            BootError::Stalled(format!(
                "evidence collection did not return within {limit} ms (the TPM or TEE device is not answering)"
            ))
        })?
        .map_err(|e| BootError::Other(e.to_string()))??;
    let kx = KeyExchange::generate().map_err(|e| BootError::Other(e.to_string()))?;
    let claims = BundleClaims {
        version: BUNDLE_VERSION,
        kernel_id: cfg.kernel_id.clone(),
        level,
        nonce: nonce.as_bytes().to_vec(),
        manifest_draft_hash: draft_hash.to_vec(),
        ak_public: ak.public_key().to_vec(),
        key_exchange_public: kx.public_key().to_vec(),
        created_at_ms: attestation::now_ms(),
        items,
    };
    let bundle = sign_bundle(&claims, ak).map_err(|e| BootError::Other(e.to_string()))?;
    let digest = attestation::sha256(&bundle);
    Ok((bundle, digest, kx))
}

/// One boot attempt at `level` (the kernel's, fixed when its attesters were made: the
/// attesters' lock is taken only on a blocking thread, under the collection deadline).
pub async fn attempt(
    cfg: &KernelConfig,
    ak: &AttestationKey,
    attesters: Arc<Mutex<Vec<Box<dyn Attester>>>>,
    level: Level,
    cap_profile_hash: [u8; 32],
) -> Result<Unsealed, BootError> {
    let sealed = load_sealed(cfg)?;
    let public_package = frost::keys::PublicKeyPackage::deserialize(&sealed.public_key_package)
        .map_err(|e| BootError::Share(format!("public key package: {e}")))?;
    let group_key = public_package
        .verifying_key()
        .serialize()
        .map_err(|e| BootError::Share(e.to_string()))?;
    let ids: Vec<String> = sealed.signers.iter().map(|s| s.kernel_id.clone()).collect();
    let draft = manifest_draft(
        cfg,
        level,
        &cap_profile_hash,
        sealed.threshold,
        &ids,
        &group_key,
    );
    let draft_hash = draft.digest();
    let r = appraise_and_release(cfg, ak, attesters, level, &draft_hash).await?;
    let mut span =
        crate::otel::of_kernel(&cfg.kernel_id).span(crate::otel::names::ATTESTATION_UNSEAL, "boot");
    span.set_attr("soos.attestation.status", r.result_claims.status.as_str());
    span.set_hex(
        "soos.attestation.reference_digest",
        &sealed.reference_digest,
    );
    let opened = open_share(cfg, &sealed, &public_package, &r);
    match &opened {
        Ok(_) => span.set_attr("soos.attestation.outcome", "unsealed"),
        Err(e) => span.fail(error_chain(e)),
    }
    drop(span);
    let key_package = opened?;
    let (bundle, bundle_digest, result, result_claims, wrap) = (
        r.bundle,
        r.bundle_digest,
        r.result,
        r.result_claims,
        r.wrap_key,
    );

    let mut manifest = draft;
    manifest.evidence_bundle_digest = hex::encode(bundle_digest);
    manifest.attestation_result_digest = hex::encode(attestation::sha256(&result));
    manifest.attestation_status = result_claims.status.as_str().to_string();
    manifest.frozen_at_ms = attestation::now_ms();
    Ok(Unsealed {
        manifest: HashLocked::freeze(&manifest),
        bundle,
        result,
        result_claims,
        key_package,
        public_package,
        sealed,
        draft_hash,
        level,
        wrap_key: wrap,
    })
}

/// Opens the sealed share with the released wrap key (KEE-1 P6 span
/// `soos.governance.attestation.unseal`) and checks that it belongs to the group key and
/// carries the threshold the file says.
fn open_share(
    cfg: &KernelConfig,
    sealed: &SealedShare,
    public_package: &frost::keys::PublicKeyPackage,
    r: &Released,
) -> Result<frost::keys::KeyPackage, BootError> {
    if r.reference_digest != sealed.reference_digest {
        return Err(BootError::Share(
            "verifier released a key for other reference values".into(),
        ));
    }
    let plain = sealing::open(
        &r.wrap_key,
        &sealing::share_aad(&cfg.kernel_id, &sealed.reference_digest),
        &sealed.sealed,
    )
    .map_err(|e| BootError::Share(e.to_string()))?;
    let key_package = frost::keys::KeyPackage::deserialize(&plain)
        .map_err(|e| BootError::Share(format!("key package: {e}")))?;
    if key_package.verifying_key() != public_package.verifying_key() {
        return Err(BootError::Share(
            "share does not belong to the group key".into(),
        ));
    }
    // The threshold is the one inside the sealed key package; a host that edits the
    // plaintext copy (to lower it) stops the boot.
    if *key_package.min_signers() != sealed.threshold {
        return Err(BootError::Share(format!(
            "sealed share file says threshold {} but the sealed key package says {}",
            sealed.threshold,
            key_package.min_signers()
        )));
    }
    Ok(key_package)
}

/// What an affirming appraisal released.
pub struct Released {
    /// The evidence bundle bytes.
    pub bundle: Vec<u8>,
    /// Its SHA-256.
    pub bundle_digest: [u8; 32],
    /// The signed result bytes.
    pub result: Vec<u8>,
    /// The verified result.
    pub result_claims: AttestationResult,
    /// The released wrap key.
    pub wrap_key: [u8; 32],
    /// Reference digest the verifier released it for.
    pub reference_digest: Vec<u8>,
}

/// Appraisal of `bundle` on the verifier connection and the checks of its result: signed by
/// the pinned key, about this bundle, nonce and kernel, affirming and unexpired.
async fn appraise_checked(
    cfg: &KernelConfig,
    conn: &mut dyn crate::transport::Stream,
    bundle: &[u8],
    bundle_digest: &[u8; 32],
    nonce: &Nonce,
) -> Result<(Vec<u8>, AttestationResult), BootError> {
    let (result, status, reasons) = match verifier_call(
        cfg,
        conn,
        &VerifierRequest::Appraise {
            bundle: bundle.to_vec(),
        },
    )
    .await?
    {
        VerifierResponse::Appraised {
            result,
            status,
            reasons,
        } => (result, status, reasons),
        VerifierResponse::Refused { reason } => return Err(BootError::Refused(reason)),
        _ => {
            return Err(BootError::Refused(
                "unexpected verifier answer to `appraise`".into(),
            ))
        }
    };
    let result_claims = verify_result(&result, &cfg.verifier_public_key)
        .map_err(|e| BootError::Refused(format!("attestation result not trusted: {e}")))?;
    if result_claims.bundle_digest != *bundle_digest
        || result_claims.nonce != nonce.as_bytes()
        || result_claims.kernel_id != cfg.kernel_id
    {
        return Err(BootError::Refused(
            "attestation result is about another bundle".into(),
        ));
    }
    if !result_claims.is_affirming_at(attestation::now_ms()) {
        return Err(BootError::Refused(format!(
            "attestation status {status}: {}",
            reasons.join("; ")
        )));
    }
    Ok((result, result_claims))
}

/// Nonce, evidence bound to `draft_hash`, appraisal, and release of this kernel's wrap key,
/// on one verifier connection. Anything but an affirming, fresh result about this bundle is
/// a refusal.
pub async fn appraise_and_release(
    cfg: &KernelConfig,
    ak: &AttestationKey,
    attesters: Arc<Mutex<Vec<Box<dyn Attester>>>>,
    level: Level,
    draft_hash: &[u8; 32],
) -> Result<Released, BootError> {
    // Appraisal happens on one connection: nonce, appraise, release.
    // TLS to the verifier's pinned result key: the host carries only ciphertext.
    let mut conn = within(
        cfg,
        "open the link",
        crate::peer_link::dial_verifier(cfg, None),
    )
    .await?
    .map_err(BootError::Unreachable)?;
    let nonce = match verifier_call(
        cfg,
        conn.as_mut(),
        &VerifierRequest::Nonce {
            kernel_id: cfg.kernel_id.clone(),
        },
    )
    .await?
    {
        VerifierResponse::Nonce { nonce, .. } => Nonce::from_slice(&nonce)
            .ok_or_else(|| BootError::Refused("verifier sent a malformed nonce".into()))?,
        VerifierResponse::Refused { reason } => return Err(BootError::Refused(reason)),
        _ => {
            return Err(BootError::Refused(
                "unexpected verifier answer to `nonce`".into(),
            ))
        }
    };

    let otel = crate::otel::of_kernel(&cfg.kernel_id);
    let mut span = otel.span(crate::otel::names::ATTESTATION_COLLECT, "boot");
    span.set_attr("soos.attestation.level", level.as_str());
    let collected = collect_bundle(cfg, ak, attesters, &nonce, level, draft_hash, 0).await;
    match &collected {
        Ok((_, digest, _)) => span.set_hex("soos.attestation.bundle_digest", digest),
        Err(e) => span.fail(error_chain(e)),
    }
    drop(span);
    let (bundle, bundle_digest, kx) = collected?;

    let mut span = otel.span(crate::otel::names::ATTESTATION_APPRAISE, "boot");
    span.set_hex("soos.attestation.bundle_digest", &bundle_digest);
    let appraised = appraise_checked(cfg, conn.as_mut(), &bundle, &bundle_digest, &nonce).await;
    match &appraised {
        Ok((_, claims)) => span.set_attr("soos.attestation.status", claims.status.as_str()),
        Err(e) => span.fail(error_chain(e)),
    }
    drop(span);
    let (result, result_claims) = appraised?;

    let (eph, sealed_wrap, reference_digest) = match verifier_call(
        cfg,
        conn.as_mut(),
        &VerifierRequest::ReleaseKey {
            kernel_id: cfg.kernel_id.clone(),
        },
    )
    .await?
    {
        VerifierResponse::KeyReleased {
            ephemeral_public,
            sealed_wrap_key,
            reference_digest,
        } => (ephemeral_public, sealed_wrap_key, reference_digest),
        VerifierResponse::Refused { reason } => return Err(BootError::Refused(reason)),
        _ => {
            return Err(BootError::Refused(
                "unexpected verifier answer to `release_key`".into(),
            ))
        }
    };
    let wrap = kx
        .open(
            &eph,
            &sealing::release_aad(&cfg.kernel_id, &bundle_digest),
            &sealed_wrap,
        )
        .map_err(|e| BootError::Share(format!("released wrap key: {e}")))?;
    let wrap_key: [u8; 32] = wrap
        .as_slice()
        .try_into()
        .map_err(|_| BootError::Share("released wrap key has the wrong length".into()))?;
    Ok(Released {
        bundle,
        bundle_digest,
        result,
        result_claims,
        wrap_key,
        reference_digest,
    })
}

/// A ceremony that the verifier-signed plan in the state directory still asks of this
/// kernel.
#[derive(Debug)]
pub enum PendingCeremony {
    /// Nothing to do: unseal the share and serve.
    None,
    /// A DKG: attest, run it with the plan's peers, seal the share, then boot as usual.
    Dkg(CeremonyPlan),
    /// A refresh: unseal the current share, refresh it with the peers, reseal, then boot.
    Refresh(CeremonyPlan),
    /// A repair, as the signer being repaired (attest, rebuild the share, seal it).
    RepairMe(CeremonyPlan),
    /// A repair, as a helper (unseal, help, reseal the same share marked with the plan).
    RepairHelp(CeremonyPlan),
}

/// Reads the plan file (if any) and says what it still asks for. A plan that does not verify
/// under the pinned verifier key, or that does not name this kernel, stops the boot.
pub fn pending_ceremony(cfg: &KernelConfig) -> Result<PendingCeremony, BootError> {
    let path = cfg.state_dir.join(PLAN_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PendingCeremony::None),
        Err(e) => {
            return Err(BootError::Share(format!(
                "reading `{}`: {e}",
                path.display()
            )))
        }
    };
    let plan = SignedPlan::open(&bytes, &cfg.verifier_public_key)
        .map_err(|e| BootError::Share(e.to_string()))?;
    if !plan.signers.iter().any(|s| s.kernel_id == cfg.kernel_id) {
        return Err(BootError::Share(format!(
            "ceremony plan {} does not name `{}`",
            plan.ceremony_id, cfg.kernel_id
        )));
    }
    let share = cfg.state_dir.join(SEALED_SHARE_FILE);
    let sealed = if share.exists() {
        Some(load_sealed(cfg)?)
    } else {
        None
    };
    if sealed
        .as_ref()
        .is_some_and(|s| s.ceremony_id == plan.ceremony_id)
    {
        return Ok(PendingCeremony::None);
    }
    match plan.mode.as_str() {
        MODE_DKG => Ok(PendingCeremony::Dkg(plan)),
        MODE_REFRESH if sealed.is_some() => Ok(PendingCeremony::Refresh(plan)),
        MODE_REPAIR if plan.participant == cfg.kernel_id => Ok(PendingCeremony::RepairMe(plan)),
        MODE_REPAIR if plan.helpers.contains(&cfg.kernel_id) && sealed.is_some() => {
            Ok(PendingCeremony::RepairHelp(plan))
        }
        MODE_REPAIR => Ok(PendingCeremony::None),
        _ => Err(BootError::Share(format!(
            "ceremony plan {} asks for a refresh but there is no share to refresh",
            plan.ceremony_id
        ))),
    }
}

/// Attests for a DKG: the manifest draft names the plan's threshold and signers and no group
/// key yet. Returns what the affirming appraisal released (the wrap key the new share will be
/// sealed under).
pub async fn attest_for_ceremony(
    cfg: &KernelConfig,
    ak: &AttestationKey,
    attesters: Arc<Mutex<Vec<Box<dyn Attester>>>>,
    level: Level,
    cap_profile_hash: [u8; 32],
    plan: &CeremonyPlan,
) -> Result<Released, BootError> {
    let ids: Vec<String> = plan.signers.iter().map(|s| s.kernel_id.clone()).collect();
    let draft = manifest_draft(cfg, level, &cap_profile_hash, plan.threshold, &ids, &[]);
    let r = appraise_and_release(cfg, ak, attesters, level, &draft.digest()).await?;
    if r.reference_digest != plan.reference_digest {
        return Err(BootError::Share(
            "verifier released a key for other reference values than the plan's".into(),
        ));
    }
    Ok(r)
}

/// Seals `key_package` for this kernel under `wrap_key` (as the trusted-dealer ceremony
/// does) and replaces `sealed_share.cbor` atomically.
pub fn write_sealed(
    cfg: &KernelConfig,
    wrap_key: &[u8; 32],
    plan: &CeremonyPlan,
    key_package: &frost::keys::KeyPackage,
    public_package: &frost::keys::PublicKeyPackage,
) -> Result<(), BootError> {
    let plain = key_package
        .serialize()
        .map_err(|e| BootError::Share(e.to_string()))?;
    let public = public_package
        .serialize()
        .map_err(|e| BootError::Share(e.to_string()))?;
    let aad = sealing::share_aad(&cfg.kernel_id, &plan.reference_digest);
    let sealed = SealedShare {
        version: sealing::SEALED_SHARE_VERSION,
        kernel_id: cfg.kernel_id.clone(),
        reference_digest: plan.reference_digest.clone(),
        sealed: sealing::seal(wrap_key, &aad, &plain)
            .map_err(|e| BootError::Share(e.to_string()))?,
        public_key_package: public,
        threshold: plan.threshold,
        signers: plan.signers.clone(),
        ceremony_id: plan.ceremony_id.clone(),
    };
    let bytes = sealed
        .encode()
        .map_err(|e| BootError::Share(e.to_string()))?;
    let path = cfg.state_dir.join(SEALED_SHARE_FILE);
    let tmp = cfg.state_dir.join(format!("{SEALED_SHARE_FILE}.tmp"));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| BootError::Share(format!("writing `{}`: {e}", path.display())))
}
