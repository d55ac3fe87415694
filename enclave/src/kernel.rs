//! The running kernel: boot state, the serve loop, and dispatch of governance calls.
//!
//! Until unsealed, only `health` is served. Every other call first re-verifies the frozen
//! manifest's hash lock; a mismatch halts the kernel (fail closed) and is audited. Once
//! serving, the kernel keeps re-attesting ([`crate::reattest`]); signing (`sign_digest` and
//! the FROST rounds it asks of peers) passes the attestation gate, and a peer that the
//! verifier's feed lists as revoked gets nothing signed.

use crate::audit::{AuditLog, NewEvent};
use crate::boot::{self, error_chain, BootError, Unsealed};
use crate::cedar::{Engine, LoadedPolicies};
use crate::config::KernelConfig;
use crate::reattest::{Gate, ReattestConfig};
use crate::transport::Listener;
use attestation::ak::AttestationKey;
use attestation::{Attester, Level};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use wire::msg::{
    DecisionInfo, ErrorCode, EvaluateParams, HealthInfo, KernelState, ManifestInfo, Request,
    Response,
};

/// Audit event kinds (soos.governance.* names, KEE-1 P6/P7).
pub mod events {
    /// A Cedar decision.
    pub const DECISION: &str = "soos.governance.cedar.decision";
    /// Boot outcome (unsealed or refused).
    pub const ATTESTATION: &str = "soos.governance.attestation";
    /// A threshold signature made (coordinator) or a share given (participant).
    pub const SIGNING: &str = "soos.governance.kia.signing";
    /// The kernel halted (fail closed).
    pub const HALT: &str = "soos.governance.halt";
    /// A key ceremony (DKG or refresh) step: started, completed, failed, or a peer message
    /// refused (with the reason).
    pub const DKG: &str = "soos.governance.kia.dkg";
    /// A catalog update staged (phase 1), with its version and `cap_profile_hash`.
    pub const CATALOG_STAGED: &str = "soos.governance.catalog.staged";
    /// A catalog update refused, with the check that failed.
    pub const CATALOG_REFUSED: &str = "soos.governance.catalog.refused";
    /// A staged catalog update activated at its effective date (phase 2).
    pub const CATALOG_ACTIVATED: &str = "soos.governance.catalog.activated";
    /// An ACD Record issued after the four checks passed (KEE-1 P3).
    pub const ACD_ISSUED: &str = "soos.governance.acd.issued";
    /// An ACD Record refused, with every check's outcome.
    pub const ACD_REFUSED: &str = "soos.governance.acd.refused";
    /// A session ended by its client; its block closes at the next anchoring pass.
    pub const SESSION_ENDED: &str = "soos.governance.session.ended";
    /// ALE-PEER-01: both kernels' attestation verified.
    pub const PEER_MUTUAL_ATTESTATION_COMPLETE: &str = "ALE-PEER-01.MUTUAL_ATTESTATION_COMPLETE";
    /// ALE-PEER-02: the jointly derived `ptxn_id` and its countersigned PTR.
    pub const PEER_PTXN_ID_ISSUED: &str = "ALE-PEER-02.PTXN_ID_ISSUED";
    /// ALE-PEER-03: the transaction completed.
    pub const PEER_TRANSACTION_COMPLETE: &str = "ALE-PEER-03.PEER_TRANSACTION_COMPLETE";
    /// ALE-PEER-04: mutual attestation failed; nothing was sent.
    pub const PEER_ATTESTATION_FAILED: &str = "ALE-PEER-04.PEER_ATTESTATION_FAILED";
}

/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 256;
/// Idle time after which a connection is closed.
pub const IDLE_TIMEOUT_MS: u64 = 60_000;

struct Status {
    state: KernelState,
    reason: Option<String>,
    boot_to_serving_ms: Option<u64>,
}

/// A governance kernel.
pub struct Kernel {
    pub(crate) cfg: KernelConfig,
    pub(crate) ak: AttestationKey,
    pub(crate) engine: Engine,
    pub(crate) audit: AuditLog,
    level: Level,
    status: RwLock<Status>,
    pub(crate) unsealed: RwLock<Option<Arc<RwLock<Unsealed>>>>,
    pub(crate) pending: Mutex<HashMap<Vec<u8>, crate::frost::Pending>>,
    pub(crate) ceremony: Mutex<Option<crate::dkg::Ceremony>>,
    /// Idle connections to peers, by host port (see `frost::peer_call`).
    pub(crate) peer_pool: Mutex<HashMap<u32, Vec<Box<dyn crate::transport::Stream>>>>,
    started: Instant,
    pub(crate) attesters: Arc<Mutex<Vec<Box<dyn Attester>>>>,
    pub(crate) reattest: ReattestConfig,
    gate: Mutex<Gate>,
    pub(crate) catalog: crate::catalog::CatalogAuthority,
    catalog_staged: tokio::sync::Notify,
    pub(crate) gar: crate::gar::GarState,
    /// The policy set the kernel committed to: (catalog version, hash); version 0 is the
    /// boot set the manifest names (KEE-1 P3 check 2).
    committed_policy: Mutex<(u64, [u8; 32])>,
    pub(crate) peer: crate::peer::PeerState,
    /// `soos.governance.*` spans (KEE-1 P6): `self.otel.span(name, session_id)`.
    pub(crate) otel: crate::otel::Telemetry,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("kernel_id", &self.cfg.kernel_id)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct DecisionRecord<'a> {
    principal: &'a str,
    action: &'a str,
    resource: &'a str,
    #[serde(with = "serde_bytes")]
    context_hash: Vec<u8>,
    decision: &'a str,
    policies: &'a [String],
    reasons: &'a [String],
    #[serde(with = "serde_bytes")]
    cap_profile_hash: Vec<u8>,
}

impl Kernel {
    /// Step 1 of boot: the attestation key, attesters, policy set and audit log. Collects
    /// nothing yet. Re-attestation runs with the default settings.
    pub fn new(cfg: KernelConfig) -> Result<Arc<Self>, BootError> {
        Self::with_reattest(cfg, ReattestConfig::default())
    }

    /// As [`Kernel::new`], with these re-attestation settings.
    pub fn with_reattest(
        cfg: KernelConfig,
        reattest: ReattestConfig,
    ) -> Result<Arc<Self>, BootError> {
        Self::with_settings(cfg, reattest, crate::gar::GarConfig::default())
    }

    /// As [`Kernel::with_reattest`], with these session-block and anchoring settings.
    pub fn with_settings(
        cfg: KernelConfig,
        reattest: ReattestConfig,
        gar: crate::gar::GarConfig,
    ) -> Result<Arc<Self>, BootError> {
        let started = Instant::now();
        std::fs::create_dir_all(&cfg.state_dir)
            .map_err(|e| BootError::Other(format!("state dir: {e}")))?;
        let ak = AttestationKey::generate().map_err(|e| BootError::Other(e.to_string()))?;
        let attesters = boot::make_attesters(&cfg)?;
        let level = attesters
            .iter()
            .find_map(|a| a.level())
            .unwrap_or(Level::L1);
        let policies = match &cfg.cedar_policy {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => match LoadedPolicies::parse(&text) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        tracing::error!(error = %e, "cedar policy set rejected; every decision will be deny");
                        None
                    }
                },
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cedar policy set missing; every decision will be deny");
                    None
                }
            },
            None => None,
        };
        let audit = AuditLog::open(&cfg.state_dir.join("audit.db"))
            .map_err(|e| BootError::Other(format!("audit log: {}", error_chain(&e))))?;
        let catalog = crate::catalog::CatalogAuthority::new(
            cfg.fleet_id.clone(),
            cfg.catalog_publishers.clone(),
            cfg.catalog_threshold,
        )
        .map_err(|e| BootError::Other(format!("catalog publishers: {e}")))?;
        let otel = crate::otel::Telemetry::start(&cfg);
        Ok(Arc::new(Self {
            cfg,
            ak,
            engine: Engine::new(policies).with_telemetry(otel.clone()),
            audit: audit.with_telemetry(otel.clone()),
            level,
            status: RwLock::new(Status {
                state: KernelState::Booting,
                reason: None,
                boot_to_serving_ms: None,
            }),
            unsealed: RwLock::new(None),
            pending: Mutex::new(HashMap::new()),
            ceremony: Mutex::new(None),
            peer_pool: Mutex::new(HashMap::new()),
            started,
            attesters: Arc::new(Mutex::new(attesters)),
            reattest,
            gate: Mutex::new(Gate::default()),
            catalog,
            catalog_staged: tokio::sync::Notify::new(),
            gar: crate::gar::GarState::new(gar),
            committed_policy: Mutex::new((0, [0; 32])),
            peer: crate::peer::PeerState::default(),
            otel,
        }))
    }

    /// The kernel id.
    pub fn kernel_id(&self) -> &str {
        &self.cfg.kernel_id
    }

    fn set_status(&self, state: KernelState, reason: Option<String>) {
        if let Ok(mut s) = self.status.write() {
            if s.state == KernelState::Halted {
                return;
            }
            s.state = state;
            s.reason = reason;
            if state == KernelState::Serving {
                s.boot_to_serving_ms =
                    Some(u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX));
            }
        }
    }

    /// Current health. A serving kernel whose signing is frozen says why in `reason`.
    pub fn health(&self) -> HealthInfo {
        let (state, mut reason, ms) = match self.status.read() {
            Ok(s) => (s.state, s.reason.clone(), s.boot_to_serving_ms),
            Err(_) => (
                KernelState::Halted,
                Some("status lock poisoned".into()),
                None,
            ),
        };
        if state == KernelState::Serving {
            if let Err(why) = self.attestation_gate() {
                reason = Some(format!("signing frozen: {why}"));
            }
        }
        HealthInfo {
            kernel_id: self.cfg.kernel_id.clone(),
            state,
            level: self.level.as_str().to_string(),
            reason,
            boot_to_serving_ms: ms,
        }
    }

    async fn audit(
        &self,
        kind: &str,
        session: &str,
        body: &impl Serialize,
    ) -> Option<(u64, [u8; 32])> {
        let body = wire::encode(body).ok()?;
        match self
            .audit
            .append(NewEvent {
                session_id: session.to_string(),
                kind: kind.to_string(),
                body,
            })
            .await
        {
            Ok(ack) => Some(ack),
            Err(e) => {
                tracing::error!(error = %e, "audit append failed");
                None
            }
        }
    }

    /// Audits one event; its sequence number once durable.
    pub(crate) async fn audit_seq(
        &self,
        kind: &str,
        session: &str,
        body: &impl Serialize,
    ) -> Option<u64> {
        self.audit(kind, session, body).await.map(|(seq, _)| seq)
    }

    /// Audits one event of `kind` (a ceremony or signing refusal, say).
    pub(crate) async fn audit_event(&self, kind: &str, session: &str, body: &impl Serialize) {
        self.audit(kind, session, body).await;
    }

    /// One boot attempt, running first whatever ceremony the signed plan still asks for: a DKG
    /// (attest, run it with the peers, seal the share) or a refresh (unseal, refresh, reseal).
    /// Either way the kernel then unseals its (new) share as on any boot.
    async fn boot_once(self: &Arc<Self>, cap: [u8; 32]) -> Result<Unsealed, BootError> {
        match boot::pending_ceremony(&self.cfg)? {
            boot::PendingCeremony::None => {}
            boot::PendingCeremony::Dkg(plan) => {
                self.set_status(
                    KernelState::Booting,
                    Some(format!("running key ceremony {} (dkg)", plan.ceremony_id)),
                );
                let r = boot::attest_for_ceremony(
                    &self.cfg,
                    &self.ak,
                    self.attesters.clone(),
                    self.level,
                    cap,
                    &plan,
                )
                .await?;
                self.with_gate(|g| g.set_evidence(&r.bundle, &r.result)); // peer TLS identity
                let (kp, pp) = crate::dkg::run(self, &plan, &r.result, None).await?;
                boot::write_sealed(&self.cfg, &r.wrap_key, &plan, &kp, &pp)?;
            }
            boot::PendingCeremony::Refresh(plan) => {
                self.set_status(
                    KernelState::Booting,
                    Some(format!(
                        "running key ceremony {} (refresh)",
                        plan.ceremony_id
                    )),
                );
                let u = boot::attempt(&self.cfg, &self.ak, self.attesters.clone(), self.level, cap)
                    .await?;
                self.with_gate(|g| g.set_evidence(&u.bundle, &u.result)); // peer TLS identity
                let old = (u.key_package.clone(), u.public_package.clone());
                let (kp, pp) = crate::dkg::run(self, &plan, &u.result, Some(old)).await?;
                boot::write_sealed(&self.cfg, &u.wrap_key, &plan, &kp, &pp)?;
            }
            boot::PendingCeremony::RepairMe(plan) => {
                self.set_status(
                    KernelState::Booting,
                    Some(format!(
                        "running key ceremony {} (repair)",
                        plan.ceremony_id
                    )),
                );
                let r = boot::attest_for_ceremony(
                    &self.cfg,
                    &self.ak,
                    self.attesters.clone(),
                    self.level,
                    cap,
                    &plan,
                )
                .await?;
                self.with_gate(|g| g.set_evidence(&r.bundle, &r.result)); // peer TLS identity
                let (kp, pp) = crate::repair::repair(self, &plan, &r.result, None)
                    .await?
                    .ok_or_else(|| BootError::Other("repair gave no share".into()))?;
                boot::write_sealed(&self.cfg, &r.wrap_key, &plan, &kp, &pp)?;
            }
            boot::PendingCeremony::RepairHelp(plan) => {
                self.set_status(
                    KernelState::Booting,
                    Some(format!(
                        "running key ceremony {} (repair helper)",
                        plan.ceremony_id
                    )),
                );
                let u = boot::attempt(&self.cfg, &self.ak, self.attesters.clone(), self.level, cap)
                    .await?;
                self.with_gate(|g| g.set_evidence(&u.bundle, &u.result)); // peer TLS identity
                let mine = (u.key_package.clone(), u.public_package.clone());
                crate::repair::repair(self, &plan, &u.result, Some(mine)).await?;
                // Same share, marked as having taken part in this plan.
                boot::write_sealed(
                    &self.cfg,
                    &u.wrap_key,
                    &plan,
                    &u.key_package,
                    &u.public_package,
                )?;
            }
        }
        boot::attempt(&self.cfg, &self.ak, self.attesters.clone(), self.level, cap).await
    }

    /// Steps 2-7: appraise and unseal, retrying with backoff while the verifier is
    /// unreachable; a refusal stops here with the share sealed.
    pub async fn boot(self: &Arc<Self>) -> KernelState {
        let mut delay = self.cfg.retry.initial_ms.max(1);
        let mut attempts = 0u32;
        let cap = self.engine.cap_profile_hash();
        if let Ok(mut c) = self.committed_policy.lock() {
            *c = (0, cap);
        }
        loop {
            attempts += 1;
            match self.boot_once(cap).await {
                Ok(unsealed) => {
                    let status = unsealed.result_claims.status.as_str().to_string();
                    let result = unsealed.result.clone();
                    self.with_gate(|g| g.set_evidence(&unsealed.bundle, &result));
                    if let Ok(mut u) = self.unsealed.write() {
                        *u = Some(Arc::new(RwLock::new(unsealed)));
                    }
                    self.with_gate(|g| g.attested_at_boot(Instant::now(), result));
                    self.set_status(KernelState::Serving, None);
                    self.audit(events::ATTESTATION, "boot", &("unsealed", status))
                        .await;
                    self.audit_gate().await;
                    tokio::spawn(crate::reattest::run(self.clone()));
                    tokio::spawn(self.clone().activate_catalogs());
                    self.gar.start();
                    tokio::spawn(crate::gar::run_anchor(self.clone()));
                    tokio::spawn(crate::gar::run_watchdog(self.clone()));
                    tracing::info!(kernel = %self.cfg.kernel_id, "unsealed and serving");
                    return KernelState::Serving;
                }
                Err(e @ (BootError::Unreachable(_) | BootError::Stalled(_))) => {
                    let (what, why) = match e {
                        BootError::Stalled(why) => ("evidence collection stalled", why),
                        BootError::Unreachable(why) => ("verifier unreachable", why),
                        other => ("boot failed", other.to_string()),
                    };
                    let give_up =
                        self.cfg.retry.max_attempts != 0 && attempts >= self.cfg.retry.max_attempts;
                    let reason = if give_up {
                        format!("{what} after {attempts} attempts: {why}")
                    } else {
                        format!("{what} (attempt {attempts}, retrying in {delay} ms): {why}")
                    };
                    tracing::warn!(kernel = %self.cfg.kernel_id, %reason, "share stays sealed");
                    self.set_status(KernelState::Sealed, Some(reason.clone()));
                    if give_up {
                        self.audit(events::ATTESTATION, "boot", &("sealed", reason))
                            .await;
                        return KernelState::Sealed;
                    }
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    delay = delay.saturating_mul(2).min(self.cfg.retry.max_ms.max(1));
                }
                Err(e) => {
                    let reason = error_chain(&e);
                    tracing::error!(kernel = %self.cfg.kernel_id, %reason, "share stays sealed");
                    self.set_status(KernelState::Sealed, Some(reason.clone()));
                    self.audit(events::ATTESTATION, "boot", &("sealed", reason))
                        .await;
                    return KernelState::Sealed;
                }
            }
        }
    }

    pub(crate) fn unsealed(&self) -> Option<Arc<RwLock<Unsealed>>> {
        self.unsealed.read().ok().and_then(|u| u.clone())
    }

    /// Whether the kernel halted for good.
    pub fn is_halted(&self) -> bool {
        self.status
            .read()
            .map(|s| s.state == KernelState::Halted)
            .unwrap_or(true)
    }

    pub(crate) fn with_gate<R>(&self, f: impl FnOnce(&mut Gate) -> R) -> Option<R> {
        self.gate.lock().ok().map(|mut g| f(&mut g))
    }

    fn feed_timeout(&self) -> Duration {
        Duration::from_millis(self.reattest.feed_timeout_ms)
    }

    /// "Attestation precedence" (ron-kms K-G6): `Ok` while this kernel may sign, else why not.
    pub fn attestation_gate(&self) -> Result<(), String> {
        let t = self.feed_timeout();
        self.with_gate(|g| g.check(Instant::now(), t))
            .unwrap_or_else(|| Err("attestation gate lock poisoned".into()))
    }

    /// The gate as a refusal for the signing calls (`sign_digest`, FROST rounds).
    pub(crate) fn signing_gate(&self) -> Result<(), Response> {
        self.attestation_gate().map_err(|why| {
            tracing::warn!(kernel = %self.cfg.kernel_id, %why, "signing refused");
            Response::error(
                ErrorCode::NotServing,
                format!("signing frozen (attestation precedence): {why}"),
            )
        })
    }

    /// Whether the verifier's feed lists `kernel_id` as a revoked peer.
    pub fn peer_revoked(&self, kernel_id: &str) -> bool {
        self.with_gate(|g| g.peer_revoked(kernel_id))
            .unwrap_or(true)
    }

    /// The kernel's KIA id (its kernel id, as the manifest records).
    pub fn kia_id(&self) -> &str {
        &self.cfg.kernel_id
    }

    /// The policy set committed to: (catalog version, hash).
    pub fn committed_policy(&self) -> (u64, [u8; 32]) {
        self.committed_policy
            .lock()
            .map(|c| *c)
            .unwrap_or((u64::MAX, [0xff; 32]))
    }

    /// Whether the revocation lists are current (KEE-1 P8, kernel side).
    pub fn revocation_view(&self) -> crate::reattest::RevocationView {
        let t = self.feed_timeout();
        self.with_gate(|g| g.revocation_view(Instant::now(), t))
            .unwrap_or_else(|| {
                crate::reattest::RevocationView::Unknown("gate lock poisoned".into())
            })
    }

    /// Whether the feed lists `kia_id` as revoked.
    pub fn kia_revoked(&self, kia_id: &str) -> bool {
        self.with_gate(|g| g.kia_revoked(kia_id)).unwrap_or(true)
    }

    /// Whether the feed lists `xpid` as revoked.
    pub fn xpid_revoked(&self, xpid: &str) -> bool {
        self.with_gate(|g| g.xpid_revoked(xpid)).unwrap_or(true)
    }

    /// Whether the verifier revoked this kernel.
    pub fn self_revoked(&self) -> bool {
        self.with_gate(|g| g.self_revoked()).unwrap_or(true)
    }

    /// Revoked peers of this kernel's ceremony, as the feed last said.
    pub fn revoked_peers(&self) -> Vec<String> {
        self.with_gate(|g| g.revoked_peers()).unwrap_or_default()
    }

    /// The latest affirming result about this kernel, presented to peers.
    pub(crate) fn peer_credential(&self) -> Option<Vec<u8>> {
        self.with_gate(|g| g.credential()).flatten()
    }

    /// The manifest-draft hash and level every bundle of this boot binds to.
    pub(crate) fn binding_inputs(&self) -> Option<([u8; 32], Level)> {
        let u = self.unsealed()?;
        let g = u.read().ok()?;
        Some((g.draft_hash, g.level))
    }

    /// Audits a re-attestation event.
    pub(crate) async fn audit_attestation(&self, what: &str, detail: &str) {
        self.audit(events::ATTESTATION, "reattest", &(what, detail))
            .await;
    }

    /// Audits the signing verdict when it changed (frozen, with the reason, or resumed).
    pub(crate) async fn audit_gate(&self) {
        let t = self.feed_timeout();
        let Some(Some(verdict)) = self.with_gate(|g| g.transition(Instant::now(), t)) else {
            return;
        };
        match verdict {
            Ok(()) => {
                tracing::info!(kernel = %self.cfg.kernel_id, "signing allowed");
                self.audit_attestation("signing_resumed", "").await;
            }
            Err(why) => {
                tracing::warn!(kernel = %self.cfg.kernel_id, %why, "signing frozen");
                self.audit_attestation("signing_frozen", &why).await;
            }
        }
    }

    fn revoked_peer_refusal(&self, peer: &str) -> Option<Response> {
        self.peer_revoked(peer).then(|| {
            tracing::warn!(kernel = %self.cfg.kernel_id, %peer, "request from a revoked peer refused");
            Response::error(
                ErrorCode::Unauthorized,
                format!("`{peer}` is revoked by the verifier"),
            )
        })
    }

    /// Checks the kernel is serving and its manifest hash lock holds; halts otherwise.
    pub(crate) async fn serving(&self) -> Result<Arc<RwLock<Unsealed>>, Response> {
        let h = self.health();
        if h.state != KernelState::Serving {
            return Err(Response::error(
                ErrorCode::NotServing,
                format!(
                    "kernel is {:?}: {}",
                    h.state,
                    h.reason.unwrap_or_else(|| "not unsealed".into())
                )
                .to_lowercase(),
            ));
        }
        let Some(u) = self.unsealed() else {
            return Err(Response::error(
                ErrorCode::NotServing,
                "kernel is not unsealed",
            ));
        };
        let check = match u.read() {
            Ok(g) => g.manifest.access().map(|_| ()),
            Err(_) => Err(crate::manifest::ManifestError::Corrupt),
        };
        if let Err(e) = check {
            self.halt(&e.to_string()).await;
            return Err(Response::error(
                ErrorCode::NotServing,
                format!("kernel halted: {e}"),
            ));
        }
        Ok(u)
    }

    /// Stops serving for good (fail closed) and drops the unsealed share.
    pub async fn halt(&self, reason: &str) {
        if let Ok(mut s) = self.status.write() {
            s.state = KernelState::Halted;
            s.reason = Some(reason.to_string());
        }
        if let Ok(mut u) = self.unsealed.write() {
            *u = None;
        }
        if let Ok(mut c) = self.ceremony.lock() {
            *c = None;
        }
        // A halted kernel never attests again: release its attesters (and TPM objects) once
        // no collection holds them. Not awaited: a device that stopped answering must not
        // keep the halt from being audited.
        let attesters = self.attesters.clone();
        drop(tokio::task::spawn_blocking(move || {
            if let Ok(mut a) = attesters.lock() {
                a.clear();
            }
        }));
        tracing::error!(kernel = %self.cfg.kernel_id, %reason, "halted");
        self.audit(events::HALT, "boot", &reason).await;
    }

    /// Test hook: corrupts the frozen manifest in memory, to exercise the fail-closed path.
    #[doc(hidden)]
    pub fn corrupt_manifest_for_test(&self) {
        if let Some(u) = self.unsealed() {
            if let Ok(mut g) = u.write() {
                g.manifest.corrupt_for_test();
            }
        }
    }

    /// Answers one request. Refused signing calls are audited with the reason.
    pub async fn handle(self: &Arc<Self>, req: Request) -> Response {
        let (method, peer) = match &req {
            Request::SignDigest(_) => ("sign_digest", String::new()),
            Request::FrostCommit(p) => ("frost_commit", p.peer.kernel_id.clone()),
            Request::FrostSign(p) => ("frost_sign", p.peer.kernel_id.clone()),
            _ => ("", String::new()),
        };
        let resp = self.handle_inner(req).await;
        if let Response::Error(e) = &resp {
            if !method.is_empty() && !matches!(e.code, ErrorCode::NotServing | ErrorCode::Busy) {
                self.audit(
                    events::SIGNING,
                    method,
                    &("refused", method, &peer, &e.message),
                )
                .await;
            }
        }
        resp
    }

    async fn handle_inner(self: &Arc<Self>, req: Request) -> Response {
        match req {
            Request::Health => return Response::Health(self.health()),
            // Ceremony messages arrive before this kernel serves (it is attested, not yet
            // unsealed); the ceremony state authenticates them.
            Request::DkgRound1(p) => return crate::dkg::on_round1(self, &p).await,
            Request::DkgRound2(p) => return crate::dkg::on_round2(self, &p).await,
            _ => {}
        }
        let unsealed = match self.serving().await {
            Ok(u) => u,
            Err(resp) => return resp,
        };
        match req {
            Request::Health => Response::Health(self.health()),
            Request::Manifest => {
                let Ok(g) = unsealed.read() else {
                    return Response::error(ErrorCode::Internal, "lock poisoned");
                };
                match g.manifest.access() {
                    Ok((_, bytes, hash)) => Response::Manifest(ManifestInfo {
                        manifest: bytes.to_vec(),
                        manifest_hash: hash.to_vec(),
                        bundle: g.bundle.clone(),
                        result: g.result.clone(),
                    }),
                    Err(e) => Response::error(ErrorCode::NotServing, e.to_string()),
                }
            }
            Request::Evaluate(p) => self.evaluate(&p).await,
            Request::SignDigest(p) => crate::frost::coordinate(self, &p.digest).await,
            Request::FrostCommit(p) => match self.revoked_peer_refusal(&p.peer.kernel_id) {
                Some(r) => r,
                None => crate::frost::commit(self, &p),
            },
            Request::FrostSign(p) => match self.revoked_peer_refusal(&p.peer.kernel_id) {
                Some(r) => r,
                None => crate::frost::sign_share(self, &p).await,
            },
            Request::DkgRound1(_) | Request::DkgRound2(_) => {
                Response::error(ErrorCode::Internal, "ceremony message not routed")
            }
            Request::CatalogUpdate(p) => self.stage_catalog(&p.signed).await,
            Request::EndSession(p) => self.end_session_call(&p.session_id).await,
            Request::AcdIssue(p) => crate::acd::issue(self, &p).await,
            Request::PeerTransaction(p) => crate::peer::initiate(self, &p).await,
            Request::PeerComplete(p) => crate::peer::complete(self, &p).await,
            Request::PeerHello(p) => crate::peer::on_hello(self, &p).await,
            Request::PeerCommit(p) => crate::peer::on_commit(self, &p).await,
            Request::PeerDone(p) => crate::peer::on_done(self, &p).await,
        }
    }

    /// `end_session`: records the end (the block's last ALE) and marks the session so its
    /// block closes and is signed at the next anchoring pass.
    async fn end_session_call(&self, session_id: &str) -> Response {
        if session_id.is_empty() || session_id.len() > crate::acd::MAX_ID_BYTES {
            return Response::error(
                ErrorCode::BadRequest,
                format!("session_id must be 1 to {} bytes", crate::acd::MAX_ID_BYTES),
            );
        }
        if session_id == crate::gar::GAR_SESSION {
            return Response::error(
                ErrorCode::BadRequest,
                "the kernel's own anchoring session cannot be ended",
            );
        }
        let Some((seq, _)) = self
            .audit(events::SESSION_ENDED, session_id, &"ended")
            .await
        else {
            return Response::error(
                ErrorCode::Internal,
                "audit log unavailable; session not ended",
            );
        };
        if let Err(e) = self.end_session(session_id) {
            tracing::error!(error = %e, "session end not recorded");
            return Response::error(ErrorCode::Internal, "session end could not be recorded");
        }
        Response::SessionEnded(wire::msg::SessionEndedInfo {
            session_id: session_id.to_string(),
            ale_seq: seq,
        })
    }

    /// KEE-1 P4 phase 1: verify and stage a catalog update; every outcome is an ALE, and a
    /// refusal changes nothing.
    async fn stage_catalog(&self, signed: &[u8]) -> Response {
        match self.catalog.stage(signed, attestation::now_ms()) {
            Ok(ack) => {
                let Some((seq, _)) = self.audit(events::CATALOG_STAGED, "catalog", &ack).await
                else {
                    return Response::error(
                        ErrorCode::Internal,
                        "audit log unavailable; catalog update not acknowledged",
                    );
                };
                self.catalog_staged.notify_one();
                tracing::info!(kernel = %self.cfg.kernel_id, version = ack.version, effective_at_ms = ack.effective_at_ms, "catalog update staged");
                Response::CatalogStaged(wire::msg::CatalogStagedInfo {
                    version: ack.version,
                    effective_at_ms: ack.effective_at_ms,
                    cap_profile_hash: ack.cap_profile_hash,
                    publishers: ack.publishers,
                    ale_seq: seq,
                })
            }
            Err(e) => {
                let reason = e.to_string();
                self.audit(events::CATALOG_REFUSED, "catalog", &reason)
                    .await;
                tracing::warn!(kernel = %self.cfg.kernel_id, %reason, "catalog update refused");
                Response::error(
                    ErrorCode::BadRequest,
                    format!("catalog update refused: {reason}"),
                )
            }
        }
    }

    /// KEE-1 P4 phase 2: activates each staged update at its effective date, never before,
    /// with one atomic swap of the policy set; every later decision carries its hash.
    async fn activate_catalogs(self: Arc<Self>) {
        /// Longest sleep between checks (a staged update wakes the loop at once).
        const MAX_SLEEP_MS: u64 = 1_000;
        loop {
            let now = attestation::now_ms();
            if let Some(staged) = self.catalog.take_due(now) {
                #[derive(Serialize)]
                struct Activated {
                    version: u64,
                    effective_date: String,
                    effective_at_ms: u64,
                    activated_at_ms: u64,
                    #[serde(with = "serde_bytes")]
                    cap_profile_hash: Vec<u8>,
                }
                let record = Activated {
                    version: staged.version,
                    effective_date: staged.effective_date.clone(),
                    effective_at_ms: staged.effective_at_ms,
                    activated_at_ms: now,
                    cap_profile_hash: staged.policies.hash().to_vec(),
                };
                let hash = staged.policies.hash();
                self.engine.swap(staged.policies);
                if let Ok(mut c) = self.committed_policy.lock() {
                    *c = (staged.version, hash);
                }
                self.audit(events::CATALOG_ACTIVATED, "catalog", &record)
                    .await;
                tracing::info!(kernel = %self.cfg.kernel_id, version = record.version, "catalog activated");
                continue;
            }
            let sleep_ms = self.catalog.next_due_ms().map_or(MAX_SLEEP_MS, |due| {
                due.saturating_sub(now).clamp(1, MAX_SLEEP_MS)
            });
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(sleep_ms)) => {}
                _ = self.catalog_staged.notified() => {}
            }
        }
    }

    async fn evaluate(&self, p: &EvaluateParams) -> Response {
        let mut o = self.engine.evaluate(p);
        if !p.agent_xpid.is_empty() {
            // KEE-1 P8: a revoked XPID, or a revocation status the kernel cannot vouch for,
            // is a DENY whatever the policies say.
            let why = match (uuid::Uuid::parse_str(&p.agent_xpid), self.revocation_view()) {
                (Err(_), _) => Some(format!("agent_xpid `{}` is not a UUID", p.agent_xpid)),
                (Ok(_), crate::reattest::RevocationView::Unknown(w)) => {
                    Some(format!("revocation status unknown: {w}"))
                }
                (Ok(x), _) if self.xpid_revoked(&x.to_string()) => {
                    Some(format!("agent XPID `{x}` is revoked"))
                }
                _ => None,
            };
            if let Some(why) = why {
                o.decision = wire::msg::Decision::Deny;
                o.policies.clear();
                o.reasons = vec![why];
            }
        }
        if self.gar.deny_all() {
            // KEE-2 D3: no anchoring for over 3x the interval; nothing is allowed until a
            // block is anchored again.
            o.decision = wire::msg::Decision::Deny;
            o.policies.clear();
            o.reasons = vec![
                "audit anchoring gap over 3x the anchor interval: every decision is deny until a block is anchored".into(),
            ];
        }
        let decision = match o.decision {
            wire::msg::Decision::Allow => "allow",
            wire::msg::Decision::Deny => "deny",
        };
        let record = DecisionRecord {
            principal: &p.principal,
            action: &p.action,
            resource: &p.resource,
            context_hash: attestation::sha256(p.context_json.as_bytes()).to_vec(),
            decision,
            policies: &o.policies,
            reasons: &o.reasons,
            cap_profile_hash: o.cap_profile_hash.to_vec(),
        };
        let session = if p.session_id.is_empty() {
            "default"
        } else {
            &p.session_id
        };
        match self.audit(events::DECISION, session, &record).await {
            Some((seq, hash)) => Response::Decision(DecisionInfo {
                decision: o.decision,
                policies: o.policies,
                reasons: o.reasons,
                ale_seq: seq,
                ale_hash: hash.to_vec(),
            }),
            // No durable audit record, no decision: fail closed.
            None => Response::Decision(DecisionInfo {
                decision: wire::msg::Decision::Deny,
                policies: Vec::new(),
                reasons: vec!["audit log unavailable; decision not recorded".into()],
                ale_seq: 0,
                ale_hash: Vec::new(),
            }),
        }
    }

    /// Serves connections until `shutdown` resolves.
    pub async fn serve(
        self: &Arc<Self>,
        mut listener: Listener,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let tls = crate::tls::TlsServer::new(self); // attested TLS on tls::TLS_PORT
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => return,
                a = listener.accept_port() => a,
            };
            let mut stream = match accepted {
                Ok((s, crate::tls::TLS_PORT)) => {
                    tls.spawn(s);
                    continue;
                }
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "connection refused at handshake");
                    continue;
                }
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                let busy = wire::encode(&Response::error(ErrorCode::Busy, "too many connections"))
                    .unwrap_or_default();
                let _ = wire::write_frame(stream.as_mut(), &busy).await;
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move {
                let _permit = permit;
                loop {
                    let frame = match tokio::time::timeout(
                        Duration::from_millis(IDLE_TIMEOUT_MS),
                        wire::read_frame(stream.as_mut()),
                    )
                    .await
                    {
                        Ok(Ok(f)) => f,
                        Ok(Err(_)) | Err(_) => return,
                    };
                    let (resp, close) = match wire::decode::<Request>(&frame) {
                        // Peer methods come only over mutually attested TLS (peer_link).
                        Ok(req) => (crate::peer_link::handle(&me, req, None).await, false),
                        Err(e) => (Response::error(ErrorCode::BadRequest, e.to_string()), true),
                    };
                    let Ok(bytes) = wire::encode(&resp) else {
                        return;
                    };
                    if wire::write_frame(stream.as_mut(), &bytes).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    }
}
