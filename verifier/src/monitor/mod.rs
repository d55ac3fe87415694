//! Continuous re-attestation (Keylime's promise for confidential VMs): every kernel whose wrap
//! key was released is challenged again every interval, and one that fails or stops answering
//! is revoked and told so, with its ceremony peers, on the feed.
//!
//! State per kernel lives in the [`Store`]'s registry (every transition is written before it
//! takes effect) and, for scheduling, in memory here: the next challenge time, the
//! outstanding challenge nonce, the feed sequence number of its last change, and a [`Notify`]
//! that wakes the kernel's held `watch` (see [`watch`]).
//!
//! Rules (fail closed):
//! * a challenge answered with a non-affirming appraisal, or with evidence signed by another
//!   attestation key than the one the wrap key was released to, revokes at once;
//! * a challenge not answered within `challenge_timeout_ms` (or that could not be delivered,
//!   because the kernel is not watching) is a miss; `grace` consecutive misses revoke;
//! * a revoked kernel gets no wrap key until a fresh affirming appraisal after the
//!   revocation, and none while an operator holds it;
//! * recovery needs a fresh affirming result: an affirming challenge answer, or a boot
//!   appraisal followed by a release.
//!
//! A revocation is pushed to every monitored kernel of the revoked kernel's ceremony (its
//! FROST signing group) by answering their held `watch`; each target's next signed `watch`
//! acknowledges it. KEE-1 P8 completion: `clean` when every target acknowledged within
//! `revocation_deadline_ms` (30 s), `partial` when some did, `unknown` when none did (or the
//! verifier restarted first).

pub mod metrics;
pub mod watch;

use crate::registry::{action, completion, KernelRecord};
use crate::store::{Store, StoreError};
use attestation::result::{Tier, TrustClaim};
use metrics::{Metrics, MetricsSnapshot};
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use wire::verifier::AttestationState;

pub use watch::WatchSession;

/// KEE-1 P8: a revocation must reach every kernel instance within 30 s.
pub const P8_PROPAGATION_BOUND_MS: u64 = 30_000;
/// The host proxy answers nothing it has waited on for longer than this
/// (`host::proxy::limits::RESPONSE_TIMEOUT_MS`); a `watch` must be held for less.
pub const PROXY_RESPONSE_TIMEOUT_MS: u64 = 30_000;
/// History and appraisal log entries older than this are purged.
pub const HISTORY_RETENTION_MS: u64 = 7 * 24 * 3_600_000;
/// How often the metrics snapshot is written to the database.
pub const METRICS_EVERY_MS: u64 = 5_000;
/// How often old nonces and history are purged.
pub const PURGE_EVERY_MS: u64 = 60_000;

/// Re-attestation settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorConfig {
    /// Time between challenges of one kernel.
    pub interval_ms: u64,
    /// Each interval is stretched or shrunk by a random amount up to this percentage, so
    /// that a fleet booted together does not answer together.
    pub jitter_pct: u8,
    /// Consecutive missed challenges that revoke.
    pub grace: u32,
    /// Time a kernel has to answer one challenge.
    pub challenge_timeout_ms: u64,
    /// Longest a `watch` is held without news (the feed's heartbeat).
    pub hold_ms: u64,
    /// KEE-1 P8 propagation bound, after which a revocation's completion state is settled.
    pub revocation_deadline_ms: u64,
    /// How often the sweeper looks for missed challenges, settles revocations and applies
    /// operator commands.
    pub sweep_ms: u64,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            interval_ms: 60_000,
            jitter_pct: 10,
            grace: 3,
            challenge_timeout_ms: 10_000,
            hold_ms: 10_000,
            revocation_deadline_ms: P8_PROPAGATION_BOUND_MS,
            sweep_ms: 1_000,
        }
    }
}

/// Errors starting the monitor.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// "re-attestation settings rejected: {0}".
    #[error("re-attestation settings rejected: {0}")]
    Config(String),
    /// The registry could not be read or written.
    #[error("re-attestation registry")]
    Store(#[from] StoreError),
}

impl MonitorConfig {
    /// Checks the settings against each other and the host proxy's limits.
    pub fn validate(&self) -> Result<(), MonitorError> {
        let bad = |m: String| Err(MonitorError::Config(m));
        if self.interval_ms < 100 {
            return bad(format!("interval {} ms is below 100 ms", self.interval_ms));
        }
        if self.jitter_pct > 50 {
            return bad(format!("jitter {}% is above 50%", self.jitter_pct));
        }
        if self.grace == 0 {
            return bad("grace must be at least 1 missed challenge".into());
        }
        if self.challenge_timeout_ms < 100 {
            return bad("challenge timeout is below 100 ms".into());
        }
        if self.hold_ms == 0 || self.hold_ms >= PROXY_RESPONSE_TIMEOUT_MS {
            return bad(format!(
                "hold {} ms must be above 0 and below the host proxy's response timeout ({PROXY_RESPONSE_TIMEOUT_MS} ms)",
                self.hold_ms
            ));
        }
        if self.sweep_ms == 0 || self.revocation_deadline_ms == 0 {
            return bad("sweep and revocation deadline must be above 0".into());
        }
        Ok(())
    }

    /// One jittered interval.
    pub fn next_interval(&self) -> Duration {
        let spread = self.interval_ms.saturating_mul(u64::from(self.jitter_pct)) / 100;
        let low = self.interval_ms.saturating_sub(spread);
        let high = self.interval_ms.saturating_add(spread);
        Duration::from_millis(rand::thread_rng().gen_range(low..=high))
    }
}

struct Outstanding {
    nonce: [u8; 32],
    /// First event-log event the answer's quote must carry (what this boot's replay covers).
    event_log_from: u32,
    expires_at_ms: u64,
    deadline: Instant,
}

struct Tracker {
    rec: KernelRecord,
    next_due: Instant,
    outstanding: Option<Outstanding>,
    changed_seq: u64,
    notify: Arc<Notify>,
}

impl Tracker {
    fn new(rec: KernelRecord, next_due: Instant) -> Self {
        Self {
            rec,
            next_due,
            outstanding: None,
            changed_seq: 0,
            notify: Arc::new(Notify::new()),
        }
    }
    /// Monitored: a wrap key was released to a pinned attestation key.
    fn monitored(&self) -> bool {
        self.rec.state != AttestationState::Registered && self.rec.ak_digest.is_some()
    }
}

struct PendingRevocation {
    id: i64,
    seq: u64,
    verdict: Instant,
    deadline: Instant,
    acks: BTreeMap<String, Option<Duration>>,
}

struct State {
    kernels: HashMap<String, Tracker>,
    members: HashMap<String, Vec<String>>,
    seq: u64,
    pending: Vec<PendingRevocation>,
    registration_mark: (i64, i64),
    watching: u64,
    last_purge: Instant,
    last_metrics: Instant,
    /// Revoked KIA ids and XPIDs, pushed to every kernel's feed.
    revoked_kia_ids: BTreeSet<String>,
    revoked_xpids: BTreeSet<String>,
    /// Feed sequence number of the latest identity revocation (every kernel must learn it).
    identity_seq: u64,
    identity_mark: i64,
}

/// The re-attestation engine of one verifier.
pub struct Monitor {
    cfg: MonitorConfig,
    policy_id: String,
    store: Arc<Store>,
    feed_key: ring::signature::Ed25519KeyPair,
    state: Mutex<State>,
    metrics: Metrics,
    started: Instant,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// What a bundle's nonce means to the monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeMatch {
    /// The nonce is the kernel's outstanding challenge.
    pub challenge: bool,
    /// The attestation-key digest the kernel's wrap key was released to.
    pub pinned_ak_digest: Option<[u8; 32]>,
}

fn failed_claims(claims: &[TrustClaim]) -> Vec<String> {
    claims
        .iter()
        .filter(|c| c.tier == Tier::Contraindicated || c.tier == Tier::Warning)
        .map(|c| c.claim.clone())
        .collect()
}

impl Monitor {
    /// Loads the registry and prepares the schedule. Revocations still pending from a
    /// previous run settle as `unknown`; nonces issued before now are voided; every monitored
    /// kernel gets a fresh grace and its first challenge within one interval.
    pub fn start(
        cfg: MonitorConfig,
        policy_id: String,
        store: Arc<Store>,
        feed_key: ring::signature::Ed25519KeyPair,
    ) -> Result<Arc<Self>, MonitorError> {
        cfg.validate()?;
        let now_ms = attestation::now_ms();
        store.void_outstanding_nonces(now_ms)?;
        store.settle_pending_revocations(now_ms)?;
        let now = Instant::now();
        let mut state = State {
            kernels: HashMap::new(),
            members: HashMap::new(),
            seq: 1,
            pending: Vec::new(),
            registration_mark: store.registration_mark()?,
            watching: 0,
            last_purge: now,
            last_metrics: now,
            revoked_kia_ids: BTreeSet::new(),
            revoked_xpids: BTreeSet::new(),
            identity_seq: 0,
            identity_mark: -1,
        };
        for mut rec in store.kernel_records()? {
            rec.misses = 0;
            let first = Duration::from_millis(rand::thread_rng().gen_range(0..=cfg.interval_ms));
            insert(&mut state, Tracker::new(rec, now + first));
        }
        let m = Arc::new(Self {
            cfg,
            policy_id,
            store,
            feed_key,
            state: Mutex::new(state),
            metrics: Metrics::default(),
            started: now,
        });
        m.reload_identity_revocations();
        Ok(m)
    }

    /// The settings in force.
    pub fn config(&self) -> &MonitorConfig {
        &self.cfg
    }

    fn lock(&self) -> Option<MutexGuard<'_, State>> {
        self.state.lock().ok()
    }

    /// The in-memory record of a kernel.
    pub fn record(&self, kernel_id: &str) -> Option<KernelRecord> {
        self.lock()?.kernels.get(kernel_id).map(|t| t.rec.clone())
    }

    /// A metrics snapshot.
    pub fn metrics(&self) -> MetricsSnapshot {
        let (by_state, watching) = match self.lock() {
            Some(st) => {
                let mut m: BTreeMap<String, u64> = BTreeMap::new();
                for t in st.kernels.values() {
                    let e = m.entry(t.rec.state.as_str().to_string()).or_insert(0);
                    *e = e.saturating_add(1);
                }
                (m, st.watching)
            }
            None => (BTreeMap::new(), 0),
        };
        self.metrics.snapshot(self.started, by_state, watching)
    }

    /// Every kept revocation propagation sample (ms).
    pub fn propagation_samples(&self) -> Vec<f64> {
        self.metrics.propagation_samples()
    }

    /// Whether `nonce` is `kernel_id`'s outstanding challenge, and the key it must answer with.
    pub fn challenge_match(&self, kernel_id: &str, nonce: &[u8]) -> ChallengeMatch {
        let Some(st) = self.lock() else {
            return ChallengeMatch {
                challenge: false,
                pinned_ak_digest: None,
            };
        };
        match st.kernels.get(kernel_id) {
            Some(t) => ChallengeMatch {
                challenge: t
                    .outstanding
                    .as_ref()
                    .is_some_and(|o| o.nonce.as_slice() == nonce),
                pinned_ak_digest: t.rec.ak_digest_bytes(),
            },
            None => ChallengeMatch {
                challenge: false,
                pinned_ak_digest: None,
            },
        }
    }

    /// A refusal that is not a trust-vector claim (`nonce`, `attestation-key`), for metrics.
    pub fn refusal(&self, reason: &str) {
        self.metrics.failure(reason);
    }

    /// An appraisal finished. A challenge answer moves the kernel's state; a boot appraisal
    /// only counts.
    pub fn appraised(
        &self,
        kernel_id: &str,
        challenge: bool,
        status: Tier,
        claims: &[TrustClaim],
        reasons: &[String],
        level: &str,
    ) {
        let affirming = status == Tier::Affirming;
        self.metrics
            .appraisal(challenge, affirming, &failed_claims(claims));
        if !challenge {
            return;
        }
        let Some(mut st) = self.lock() else { return };
        let now_ms = attestation::now_ms();
        let next = Instant::now() + self.cfg.next_interval();
        let Some(t) = st.kernels.get_mut(kernel_id) else {
            return;
        };
        t.outstanding = None;
        t.next_due = next;
        t.rec.last_status = Some(status.as_str().to_string());
        t.rec.last_appraisal_ms = Some(now_ms);
        t.rec.level = Some(level.to_string());
        t.rec.policy_id = Some(self.policy_id.clone());
        if !affirming {
            let reason = format!(
                "challenge appraised {}: {}",
                status.as_str(),
                reasons.join("; ")
            );
            self.revoke_locked(&mut st, kernel_id, "appraisal", &reason, false);
            return;
        }
        t.rec.misses = 0;
        t.rec.last_affirming_ms = Some(now_ms);
        match t.rec.state {
            AttestationState::Revoked if !t.rec.held => {
                self.reinstate_locked(&mut st, kernel_id, "fresh affirming challenge answer");
            }
            AttestationState::Revoked => {
                let rec = t.rec.clone();
                self.persist(
                    &rec,
                    Some(("appraised", "affirming; still held by an operator")),
                    false,
                );
            }
            _ => {
                let event = (t.rec.state != AttestationState::Attested)
                    .then_some(("attested", "affirming challenge answer"));
                if event.is_some() {
                    t.rec.since_ms = now_ms;
                }
                t.rec.state = AttestationState::Attested;
                t.rec.reason = "latest challenge answered affirming".into();
                let rec = t.rec.clone();
                self.persist(&rec, event, false);
            }
        }
    }

    /// Whether a wrap key may be released to `kernel_id` on an appraisal made at
    /// `appraised_at_ms`: never while an operator holds the kernel, never on an appraisal
    /// older than its latest revocation.
    pub fn release_allowed(&self, kernel_id: &str, appraised_at_ms: u64) -> Result<(), String> {
        self.know(kernel_id);
        let st = self.lock().ok_or("verifier state unavailable")?;
        let t = st
            .kernels
            .get(kernel_id)
            .ok_or_else(|| format!("kernel `{kernel_id}` is not in the registry"))?;
        if t.rec.held {
            return Err(format!(
                "kernel `{kernel_id}` is revoked and held by an operator; `verifier admit {kernel_id}` first"
            ));
        }
        if t.rec.revoked_at_ms.is_some_and(|r| appraised_at_ms <= r) {
            return Err(format!(
                "kernel `{kernel_id}` was revoked after this appraisal; appraise again"
            ));
        }
        Ok(())
    }

    /// A wrap key was released: pin the attestation key, start challenging, reinstate a
    /// revoked kernel (the release followed a fresh affirming appraisal).
    pub fn released(&self, kernel_id: &str, ak_public: &[u8], level: &str) {
        self.know(kernel_id);
        let Some(mut st) = self.lock() else { return };
        let now_ms = attestation::now_ms();
        let next = Instant::now() + self.cfg.next_interval();
        let Some(t) = st.kernels.get_mut(kernel_id) else {
            return;
        };
        t.rec.ak_digest = Some(hex::encode(attestation::sha256(ak_public)));
        t.rec.ak_public = Some(ak_public.to_vec());
        t.rec.level = Some(level.to_string());
        t.rec.policy_id = Some(self.policy_id.clone());
        t.rec.last_status = Some(Tier::Affirming.as_str().to_string());
        t.rec.last_appraisal_ms = Some(now_ms);
        t.rec.last_affirming_ms = Some(now_ms);
        t.rec.misses = 0;
        t.next_due = next;
        t.outstanding = None;
        if t.rec.state == AttestationState::Revoked {
            self.reinstate_locked(
                &mut st,
                kernel_id,
                "wrap key released after a fresh affirming boot appraisal",
            );
            return;
        }
        t.rec.state = AttestationState::Attested;
        t.rec.reason = "wrap key released after an affirming appraisal".into();
        t.rec.since_ms = now_ms;
        let rec = t.rec.clone();
        self.persist(
            &rec,
            Some(("attested", "wrap key released; attestation key pinned")),
            true,
        );
        bump(&mut st, kernel_id);
    }

    fn persist(&self, rec: &KernelRecord, event: Option<(&str, &str)>, durable: bool) {
        if let Err(e) = self.store.put_record(rec, event, durable) {
            tracing::error!(kernel = %rec.kernel_id, error = %e, "registry write failed");
        }
    }

    fn reinstate_locked(&self, st: &mut State, kernel_id: &str, why: &str) {
        let Some(t) = st.kernels.get_mut(kernel_id) else {
            return;
        };
        t.rec.state = AttestationState::Attested;
        t.rec.reason = why.to_string();
        t.rec.since_ms = attestation::now_ms();
        t.rec.misses = 0;
        let rec = t.rec.clone();
        self.persist(&rec, Some(("reinstated", why)), true);
        self.metrics.reinstated();
        tracing::info!(kernel = %kernel_id, %why, "reinstated");
        bump(st, kernel_id);
    }

    /// Revokes under the lock: durable record, feed bump, wake the ceremony's watchers, start
    /// measuring propagation.
    fn revoke_locked(
        &self,
        st: &mut State,
        kernel_id: &str,
        cause: &str,
        reason: &str,
        hold: bool,
    ) {
        let now_ms = attestation::now_ms();
        let targets: Vec<String> = {
            let Some(t) = st.kernels.get(kernel_id) else {
                return;
            };
            st.members
                .get(&t.rec.ceremony_id)
                .map(|m| {
                    m.iter()
                        .filter(|id| {
                            id.as_str() == kernel_id
                                || st.kernels.get(id.as_str()).is_some_and(Tracker::monitored)
                        })
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        };
        let Some(t) = st.kernels.get_mut(kernel_id) else {
            return;
        };
        t.rec.held |= hold;
        if t.rec.state == AttestationState::Revoked {
            let rec = t.rec.clone();
            let detail = format!("{cause}: {reason}");
            self.persist(
                &rec,
                Some((if hold { "held" } else { "appraised" }, &detail)),
                true,
            );
            return;
        }
        t.rec.state = AttestationState::Revoked;
        t.rec.reason = reason.to_string();
        t.rec.since_ms = now_ms;
        t.rec.revoked_at_ms = Some(now_ms);
        let rec = t.rec.clone();
        let targets_n = u32::try_from(targets.len()).unwrap_or(u32::MAX);
        let id = match self.store.record_revocation(&rec, cause, targets_n) {
            Ok(id) => id,
            Err(e) => {
                // The in-memory state is revoked regardless (fail closed); the row is missing.
                tracing::error!(kernel = %kernel_id, error = %e, "revocation could not be recorded");
                -1
            }
        };
        self.metrics.revoked();
        if cause == "operator" {
            self.metrics.failure("operator");
        }
        tracing::warn!(kernel = %kernel_id, %cause, %reason, targets = targets.len(), "revoked");
        let seq = bump(st, kernel_id);
        let now = Instant::now();
        st.pending.push(PendingRevocation {
            id,
            seq,
            verdict: now,
            deadline: now + Duration::from_millis(self.cfg.revocation_deadline_ms),
            acks: targets.into_iter().map(|k| (k, None)).collect(),
        });
    }

    /// `kernel_id` acknowledged every feed status up to `seq` (a signed `watch`).
    fn ack(&self, kernel_id: &str, seq: u64) {
        let Some(mut st) = self.lock() else { return };
        let now = Instant::now();
        let mut done = Vec::new();
        for (i, p) in st.pending.iter_mut().enumerate() {
            if p.seq > seq {
                continue;
            }
            if let Some(slot @ None) = p.acks.get_mut(kernel_id) {
                let took = now.duration_since(p.verdict);
                *slot = Some(took);
                self.metrics.propagated(took.as_secs_f64() * 1e3);
            }
            if p.acks.values().all(Option::is_some) {
                done.push(i);
            }
        }
        for i in done.into_iter().rev() {
            let p = st.pending.swap_remove(i);
            self.settle(&p, completion::CLEAN);
        }
    }

    fn settle(&self, p: &PendingRevocation, state: &str) {
        let acked = p.acks.values().filter(|a| a.is_some()).count();
        // Rounded up to whole milliseconds.
        let max_ms = p.acks.values().flatten().max().map(|d| {
            let whole = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            if d.subsec_nanos() % 1_000_000 == 0 {
                whole
            } else {
                whole.saturating_add(1)
            }
        });
        self.metrics.completed(state);
        if p.id >= 0 {
            if let Err(e) = self.store.complete_revocation(
                p.id,
                state,
                u32::try_from(acked).unwrap_or(u32::MAX),
                max_ms,
                attestation::now_ms(),
            ) {
                tracing::error!(error = %e, "revocation completion could not be recorded");
            }
        }
        tracing::info!(revocation = p.id, %state, acked, targets = p.acks.len(), "revocation settled");
    }

    /// One sweep: missed challenges, revocation deadlines, operator commands, new
    /// registrations, housekeeping.
    pub fn sweep(&self) {
        self.sweep_schedule();
        self.apply_operator_commands();
        self.reload_registrations();
        self.reload_identity_revocations();
        self.housekeeping();
    }

    fn sweep_schedule(&self) {
        let Some(mut st) = self.lock() else { return };
        let now = Instant::now();
        let timeout = Duration::from_millis(self.cfg.challenge_timeout_ms);
        let grace_start = self.started + timeout;
        let mut missed: Vec<(String, String)> = Vec::new();
        for (id, t) in st.kernels.iter_mut() {
            if !t.monitored() || t.rec.held || t.rec.state == AttestationState::Revoked {
                continue;
            }
            match &t.outstanding {
                Some(o) if now >= o.deadline => {
                    missed.push((
                        id.clone(),
                        format!(
                            "challenge not answered within {} ms",
                            self.cfg.challenge_timeout_ms
                        ),
                    ));
                    t.outstanding = None;
                    t.next_due = now + self.cfg.next_interval();
                }
                None if now >= t.next_due + timeout && now >= grace_start => {
                    missed.push((
                        id.clone(),
                        "challenge could not be delivered: the kernel is not watching".into(),
                    ));
                    t.next_due = now + self.cfg.next_interval();
                }
                _ => {}
            }
        }
        for (id, why) in missed {
            self.metrics.missed();
            let Some(t) = st.kernels.get_mut(&id) else {
                continue;
            };
            t.rec.misses = t.rec.misses.saturating_add(1);
            let misses = t.rec.misses;
            tracing::info!(kernel = %id, misses, grace = self.cfg.grace, %why, "missed challenge");
            if misses >= self.cfg.grace {
                let reason = format!(
                    "{misses} consecutive challenges missed (grace {}); last: {why}",
                    self.cfg.grace
                );
                self.revoke_locked(&mut st, &id, "missed", &reason, false);
            } else {
                if t.rec.state != AttestationState::Failing {
                    t.rec.since_ms = attestation::now_ms();
                }
                t.rec.state = AttestationState::Failing;
                t.rec.reason = format!(
                    "{misses} of {} allowed challenges missed; last: {why}",
                    self.cfg.grace
                );
                let rec = t.rec.clone();
                self.persist(&rec, Some(("missed", &why)), false);
            }
        }
        let mut i = 0;
        while i < st.pending.len() {
            let due = st.pending.get(i).is_some_and(|p| now >= p.deadline);
            if due {
                let p = st.pending.swap_remove(i);
                let acked = p.acks.values().filter(|a| a.is_some()).count();
                let state = if acked == 0 {
                    completion::UNKNOWN
                } else {
                    completion::PARTIAL
                };
                self.settle(&p, state);
            } else {
                i += 1;
            }
        }
    }

    /// Applies one operator revocation or admission now.
    pub fn operator(&self, kernel_id: &str, what: &str, reason: &str) -> String {
        let Some(mut st) = self.lock() else {
            return "verifier state unavailable".into();
        };
        let Some(t) = st.kernels.get_mut(kernel_id) else {
            return format!("kernel `{kernel_id}` is not registered");
        };
        match what {
            action::REVOKE => {
                let reason = format!("revoked by an operator: {reason}");
                self.revoke_locked(&mut st, kernel_id, "operator", &reason, true);
                "revoked and held".into()
            }
            action::ADMIT => {
                if !t.rec.held {
                    return "not held; nothing to do".into();
                }
                t.rec.held = false;
                let rec = t.rec.clone();
                self.persist(&rec, Some(("admitted", reason)), true);
                "hold lifted; the kernel needs a fresh affirming result to be reinstated".into()
            }
            other => format!("unknown operator action `{other}`"),
        }
    }

    fn apply_operator_commands(&self) {
        let cmds = match self.store.pending_operator_commands() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "operator commands unreadable");
                return;
            }
        };
        for c in cmds {
            let outcome = self.operator(&c.kernel_id, &c.action, &c.reason);
            tracing::info!(kernel = %c.kernel_id, action = %c.action, %outcome, "operator command applied");
            if let Err(e) = self
                .store
                .mark_operator_command(c.id, attestation::now_ms(), &outcome)
            {
                tracing::error!(error = %e, "operator command could not be marked applied");
            }
        }
    }

    /// Makes sure a kernel registered since the last sweep (a ceremony run while the service
    /// runs) is in the in-memory view.
    fn know(&self, kernel_id: &str) {
        let known = self
            .lock()
            .is_some_and(|st| st.kernels.contains_key(kernel_id));
        if !known {
            self.reload_registrations();
        }
    }

    fn reload_registrations(&self) {
        let Ok(mark) = self.store.registration_mark() else {
            return;
        };
        let unchanged = self.lock().is_some_and(|st| st.registration_mark == mark);
        if unchanged {
            return;
        }
        let Ok(records) = self.store.kernel_records() else {
            return;
        };
        let Some(mut st) = self.lock() else { return };
        st.registration_mark = mark;
        let now = Instant::now();
        for rec in records {
            let replace = match st.kernels.get(&rec.kernel_id) {
                None => true,
                Some(t) => {
                    rec.state == AttestationState::Registered
                        && (t.rec.state != AttestationState::Registered
                            || t.rec.ceremony_id != rec.ceremony_id)
                }
            };
            if replace {
                let id = rec.kernel_id.clone();
                insert(&mut st, Tracker::new(rec, now + self.cfg.next_interval()));
                bump(&mut st, &id);
            }
        }
    }

    /// Picks up KIA-id and XPID revocations written by `verifier revoke-identity`: each new
    /// one goes on every kernel's feed at once, and its propagation to every monitored
    /// kernel is tracked to a KEE-1 P8 completion state like a kernel revocation's.
    fn reload_identity_revocations(&self) {
        let Ok(mark) = self.store.identity_mark() else {
            return;
        };
        if self.lock().is_some_and(|st| st.identity_mark == mark) {
            return;
        }
        let rows = match self.store.identity_revocations() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "identity revocations unreadable");
                return;
            }
        };
        let Some(mut st) = self.lock() else { return };
        st.identity_mark = mark;
        let mut fresh = Vec::new();
        for r in rows {
            let set = match r.kind {
                crate::registry::IdentityKind::Kia => &mut st.revoked_kia_ids,
                crate::registry::IdentityKind::Xpid => &mut st.revoked_xpids,
            };
            if set.insert(r.subject.clone()) && r.revocation_id.is_none() {
                fresh.push(r);
            }
        }
        if fresh.is_empty() {
            if st.identity_seq == 0 {
                // Loaded at start: kernels learn the list on their next status.
                st.seq = st.seq.saturating_add(1);
                st.identity_seq = st.seq;
            }
            return;
        }
        let targets: Vec<String> = st
            .kernels
            .iter()
            .filter(|(_, t)| t.monitored())
            .map(|(k, _)| k.clone())
            .collect();
        st.seq = st.seq.saturating_add(1);
        let seq = st.seq;
        st.identity_seq = seq;
        for t in st.kernels.values() {
            t.notify.notify_waiters();
        }
        let now = Instant::now();
        for r in fresh {
            let targets_n = u32::try_from(targets.len()).unwrap_or(u32::MAX);
            let id = match self
                .store
                .track_identity_revocation(r.kind, &r.subject, &r.reason, r.at_ms, targets_n)
            {
                Ok(id) => id,
                Err(e) => {
                    tracing::error!(subject = %r.subject, error = %e, "identity revocation could not be tracked");
                    -1
                }
            };
            self.metrics.revoked();
            tracing::warn!(kind = r.kind.as_str(), subject = %r.subject, reason = %r.reason, targets = targets.len(), "identity revoked");
            if targets.is_empty() {
                // Nobody to tell: nothing can be uncertain.
                self.settle(
                    &PendingRevocation {
                        id,
                        seq,
                        verdict: now,
                        deadline: now,
                        acks: BTreeMap::new(),
                    },
                    completion::CLEAN,
                );
                continue;
            }
            st.pending.push(PendingRevocation {
                id,
                seq,
                verdict: now,
                deadline: now + Duration::from_millis(self.cfg.revocation_deadline_ms),
                acks: targets.iter().map(|k| (k.clone(), None)).collect(),
            });
        }
    }

    fn housekeeping(&self) {
        if let Err(e) = self.store.bound_wal() {
            tracing::warn!(error = %e, "wal truncation failed");
        }
        let now = Instant::now();
        let (purge, metrics) = match self.lock() {
            Some(mut st) => {
                let purge =
                    now.duration_since(st.last_purge).as_millis() >= u128::from(PURGE_EVERY_MS);
                let metrics =
                    now.duration_since(st.last_metrics).as_millis() >= u128::from(METRICS_EVERY_MS);
                if purge {
                    st.last_purge = now;
                }
                if metrics {
                    st.last_metrics = now;
                }
                (purge, metrics)
            }
            None => return,
        };
        let now_ms = attestation::now_ms();
        if purge {
            let before = now_ms.saturating_sub(HISTORY_RETENTION_MS);
            if let Err(e) = self
                .store
                .purge(now_ms, before)
                .and_then(|()| self.store.purge_history(before))
            {
                tracing::warn!(error = %e, "purge failed");
            }
        }
        if metrics {
            self.write_metrics();
        }
    }

    /// Writes the metrics snapshot to the database now.
    pub fn write_metrics(&self) {
        let snap = self.metrics();
        if let Ok(json) = serde_json::to_string(&snap) {
            if let Err(e) = self.store.put_metrics(snap.at_ms, &json) {
                tracing::warn!(error = %e, "metrics snapshot not written");
            }
        }
    }

    /// Runs the sweeper until `shutdown` flips.
    pub async fn run_sweeper(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_millis(self.cfg.sweep_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.sweep(),
                _ = shutdown.changed() => {
                    self.write_metrics();
                    return;
                }
            }
        }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Test hook: `kernel_id`'s next challenge is due now.
    #[cfg(test)]
    pub(crate) fn make_due(&self, kernel_id: &str) {
        if let Some(mut st) = self.lock() {
            if let Some(t) = st.kernels.get_mut(kernel_id) {
                t.next_due = Instant::now();
            }
        }
    }
}

fn insert(st: &mut State, t: Tracker) {
    let id = t.rec.kernel_id.clone();
    let ceremony = t.rec.ceremony_id.clone();
    if let Some(old) = st.kernels.insert(id.clone(), t) {
        if let Some(m) = st.members.get_mut(&old.rec.ceremony_id) {
            m.retain(|k| k != &id);
        }
    }
    let m = st.members.entry(ceremony).or_default();
    if !m.contains(&id) {
        m.push(id);
    }
}

/// A change visible on the feed: new sequence number, wake the ceremony's watchers.
fn bump(st: &mut State, kernel_id: &str) -> u64 {
    st.seq = st.seq.saturating_add(1);
    let seq = st.seq;
    let ceremony = match st.kernels.get_mut(kernel_id) {
        Some(t) => {
            t.changed_seq = seq;
            t.rec.ceremony_id.clone()
        }
        None => return seq,
    };
    if let Some(members) = st.members.get(&ceremony) {
        for m in members {
            if let Some(t) = st.kernels.get(m) {
                t.notify.notify_waiters();
            }
        }
    }
    seq
}

/// Kernels that must learn `kernel_id`'s revocation (for tests and operators).
pub fn ceremony_members(records: &[KernelRecord], kernel_id: &str) -> Vec<String> {
    let Some(c) = records.iter().find(|r| r.kernel_id == kernel_id) else {
        return Vec::new();
    };
    records
        .iter()
        .filter(|r| r.ceremony_id == c.ceremony_id)
        .map(|r| r.kernel_id.clone())
        .collect()
}

#[cfg(test)]
mod tests;
