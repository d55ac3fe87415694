//! KEE-1 P7 / KEE-2 D3: the Governance Audit Record — session blocks, their anchoring by one
//! FROST threshold signature each, and the anchoring watchdog.
//!
//! * ALEs of one session go into a session block ([`attestation::gar::Block`]) whose
//!   `block_id` is the session's OTel trace id. A block closes when its session ends
//!   ([`crate::Kernel::end_session`]), when it reaches [`GarConfig::max_block_ales`], or at the
//!   anchor interval (every open block closes then). Closing computes the RFC 9162 root and
//!   chains the previous block's root, in the same SQLite file as the ALEs.
//! * The anchor task signs every closed, unsigned block with the kernels' existing
//!   `sign_digest` path (t of n, never fewer): while quorum is lost blocks stay stored as
//!   unsigned-pending and are signed once it is back.
//! * The watchdog: no anchoring for more than 1.5x the interval emits
//!   `soos.gar.anchor_gap_detected`; more than 3x switches every Cedar decision to DENY until
//!   a block is anchored again.
//!
//! The watchdog's clock restarts whenever a block is signed and whenever an anchoring pass
//! ends with no closed block left unsigned (a pass runs every [`GarConfig::tick`], so an idle
//! kernel stays anchored, and a busy one that keeps signing does too).

use crate::audit::{ClosePolicy, NewEvent};
use crate::kernel::Kernel;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wire::msg::Response;

/// Longest anchor interval of a gov-tier kernel.
pub const MAX_ANCHOR_INTERVAL_MS: u64 = 60_000;
/// Watchdog event: anchoring gap above 1.5x the interval.
pub const ANCHOR_GAP_DETECTED: &str = attestation::gar::ANCHOR_GAP_EVENT;
/// Watchdog event: anchoring resumed after a gap.
pub const ANCHOR_RESTORED: &str = "soos.gar.anchor_restored";
/// Session id of the watchdog's own events.
pub const GAR_SESSION: &str = "soos.gar";

/// Session-block and anchoring settings.
#[derive(Debug, Clone, Copy)]
pub struct GarConfig {
    /// Every open block closes and is signed at this interval (clamped to 50 ms..=60 s).
    pub anchor_interval_ms: u64,
    /// Most ALEs in one block; a full block closes at once.
    pub max_block_ales: usize,
}

impl Default for GarConfig {
    fn default() -> Self {
        Self {
            anchor_interval_ms: 10_000,
            max_block_ales: 1_024,
        }
    }
}

impl GarConfig {
    /// The interval, clamped to 50 ms..=60 s.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.anchor_interval_ms.clamp(50, MAX_ANCHOR_INTERVAL_MS))
    }
    /// Time between anchoring passes (ended sessions, full blocks, pending signatures).
    pub fn tick(&self) -> Duration {
        (self.interval() / 10).clamp(Duration::from_millis(10), Duration::from_millis(200))
    }
    /// Time between watchdog checks.
    fn watch_tick(&self) -> Duration {
        (self.interval() / 8).max(Duration::from_millis(5))
    }
}

/// What the watchdog reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEvent {
    /// The gap passed 1.5x the interval.
    GapDetected {
        /// Time since the last anchoring (ms).
        gap_ms: u64,
    },
    /// The gap passed 3x: Cedar decisions are DENY from now on.
    DenyAll {
        /// Time since the last anchoring (ms).
        gap_ms: u64,
    },
}

/// The watchdog's state machine (time is passed in, so it is tested without waiting).
#[derive(Debug, Clone)]
pub struct Watchdog {
    interval: Duration,
    last_anchor: Instant,
    reported: bool,
    deny: bool,
}

impl Watchdog {
    /// A watchdog that counts from `now`.
    pub fn new(interval: Duration, now: Instant) -> Self {
        Self {
            interval,
            last_anchor: now,
            reported: false,
            deny: false,
        }
    }

    /// A block was anchored (or nothing was left to anchor) at `now`; true when this ends a
    /// DENY-all period.
    pub fn anchored(&mut self, now: Instant) -> bool {
        let lifted = self.deny;
        self.last_anchor = now;
        self.reported = false;
        self.deny = false;
        lifted
    }

    /// Checks the gap at `now`.
    pub fn check(&mut self, now: Instant) -> Vec<WatchEvent> {
        let gap = now.saturating_duration_since(self.last_anchor);
        let gap_ms = u64::try_from(gap.as_millis()).unwrap_or(u64::MAX);
        let mut out = Vec::new();
        if gap > self.interval.mul_f64(1.5) && !self.reported {
            self.reported = true;
            out.push(WatchEvent::GapDetected { gap_ms });
        }
        if gap > self.interval.saturating_mul(3) && !self.deny {
            self.deny = true;
            out.push(WatchEvent::DenyAll { gap_ms });
        }
        out
    }

    /// Whether Cedar decisions are forced to DENY.
    pub fn deny_all(&self) -> bool {
        self.deny
    }
}

/// A kernel's GAR state.
#[derive(Debug)]
pub struct GarState {
    pub(crate) cfg: GarConfig,
    watchdog: Mutex<Watchdog>,
    deny: AtomicBool,
}

impl GarState {
    /// Fresh state; the watchdog counts from now.
    pub fn new(cfg: GarConfig) -> Self {
        Self {
            cfg,
            watchdog: Mutex::new(Watchdog::new(cfg.interval(), Instant::now())),
            deny: AtomicBool::new(false),
        }
    }

    /// Whether the watchdog has switched Cedar decisions to DENY.
    pub fn deny_all(&self) -> bool {
        self.deny.load(Ordering::Acquire)
    }

    /// Starts the watchdog's clock now (when the kernel starts serving: boot time is no gap).
    pub(crate) fn start(&self) {
        if let Ok(mut w) = self.watchdog.lock() {
            w.anchored(Instant::now());
        }
    }

    fn anchored(&self) -> bool {
        let lifted = self
            .watchdog
            .lock()
            .map(|mut w| w.anchored(Instant::now()))
            .unwrap_or(false);
        self.deny.store(false, Ordering::Release);
        lifted
    }

    fn check(&self) -> Vec<WatchEvent> {
        let Ok(mut w) = self.watchdog.lock() else {
            // A poisoned lock is an unknown state: fail closed.
            self.deny.store(true, Ordering::Release);
            return Vec::new();
        };
        let ev = w.check(Instant::now());
        self.deny.store(w.deny_all(), Ordering::Release);
        ev
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::audit::AuditError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// One anchoring pass: close what is due, sign every pending block in height order. Ok(true)
/// when nothing is left unsigned.
pub async fn anchor_pass(k: &Arc<Kernel>, all: bool) -> Result<bool, String> {
    let audit = k.audit.clone();
    let cap = k.engine.cap_profile_hash();
    let policy = ClosePolicy {
        all,
        max_ales: k.gar.cfg.max_block_ales,
    };
    blocking(move || audit.close_blocks(policy, cap)).await?;
    let audit = k.audit.clone();
    let pending = blocking(move || audit.pending_blocks()).await?;
    for b in pending {
        let digest = b.signing_digest();
        // KEE-1 P6: the anchor span sits in the block's session trace (trace id = block_id).
        let mut span = k
            .otel
            .span(crate::otel::names::GAR_BLOCK_ANCHOR, &b.session_id);
        span.set_hex("soos.gar.block_id", &b.block_id);
        span.set_u64("soos.gar.height", b.height);
        span.set_hex("soos.gar.root", &b.root);
        span.set_u64("soos.gar.ales", b.seqs.len() as u64);
        match crate::frost::coordinate_in(k, &digest, false, Some(&b.session_id)).await {
            Response::Signature(s) => {
                span.set_list("soos.signing.signers", &s.signers);
                let audit = k.audit.clone();
                let height = b.height;
                blocking(move || {
                    audit.store_signature(height, &s.signature, &s.signers, &s.group_public_key)
                })
                .await
                .inspect_err(|e| span.fail(e.clone()))?;
                // Every block anchored is progress: the watchdog measures time without any.
                if k.gar.anchored() {
                    tracing::info!(kernel = %k.kernel_id(), "audit anchoring restored; decisions resume");
                    k.audit_gar(ANCHOR_RESTORED, &"anchored").await;
                }
            }
            Response::Error(e) => {
                span.fail(e.message.clone());
                return Err(format!(
                    "block {} stays unsigned-pending: {}",
                    b.height, e.message
                ));
            }
            _ => return Err(format!("block {}: unexpected signing answer", b.height)),
        }
    }
    Ok(true)
}

/// The anchor task: runs until the kernel halts.
pub async fn run_anchor(k: Arc<Kernel>) {
    let interval = k.gar.cfg.interval();
    let tick = k.gar.cfg.tick();
    let mut last_full = Instant::now();
    let mut failing = false;
    loop {
        tokio::time::sleep(tick).await;
        if k.is_halted() {
            return;
        }
        let full = last_full.elapsed() >= interval;
        if full {
            last_full = Instant::now();
        }
        match anchor_pass(&k, full).await {
            Ok(_) => {
                failing = false;
                if k.gar.anchored() {
                    tracing::info!(kernel = %k.kernel_id(), "audit anchoring restored; decisions resume");
                    k.audit_gar(ANCHOR_RESTORED, &"anchored").await;
                }
            }
            Err(why) => {
                if !failing {
                    tracing::warn!(kernel = %k.kernel_id(), %why, "audit anchoring failed");
                }
                failing = true;
            }
        }
    }
}

/// The watchdog task: runs until the kernel halts.
pub async fn run_watchdog(k: Arc<Kernel>) {
    let tick = k.gar.cfg.watch_tick();
    let interval_ms = u64::try_from(k.gar.cfg.interval().as_millis()).unwrap_or(u64::MAX);
    loop {
        tokio::time::sleep(tick).await;
        if k.is_halted() {
            return;
        }
        for ev in k.gar.check() {
            match ev {
                WatchEvent::GapDetected { gap_ms } => {
                    tracing::warn!(kernel = %k.kernel_id(), gap_ms, "audit anchor gap detected");
                    k.audit_gar(ANCHOR_GAP_DETECTED, &("gap", gap_ms, interval_ms))
                        .await;
                }
                WatchEvent::DenyAll { gap_ms } => {
                    tracing::error!(kernel = %k.kernel_id(), gap_ms, "audit anchor gap over 3x: every decision is deny");
                    k.audit_gar(ANCHOR_GAP_DETECTED, &("deny_all", gap_ms, interval_ms))
                        .await;
                }
            }
        }
    }
}

impl Kernel {
    pub(crate) async fn audit_gar(&self, kind: &str, body: &impl serde::Serialize) {
        let Ok(body) = wire::encode(body) else {
            return;
        };
        if let Err(e) = self
            .audit
            .append(NewEvent {
                session_id: GAR_SESSION.into(),
                kind: kind.into(),
                body,
            })
            .await
        {
            tracing::error!(error = %e, "audit append failed");
        }
    }

    /// Ends a session: its open block closes (and is signed) at the next anchoring pass.
    pub fn end_session(&self, session_id: &str) -> Result<(), crate::audit::AuditError> {
        self.audit.end_session(session_id)
    }

    /// The kernel's audit log (blocks, counts, export).
    pub fn audit_log(&self) -> &crate::audit::AuditLog {
        &self.audit
    }

    /// Whether the GAR watchdog has switched Cedar decisions to DENY.
    pub fn gar_deny_all(&self) -> bool {
        self.gar.deny_all()
    }

    /// Closes every open block and signs every pending one now (before an export).
    pub async fn anchor_now(self: &Arc<Self>) -> Result<(), String> {
        anchor_pass(self, true).await?;
        if self.gar.anchored() {
            self.audit_gar(ANCHOR_RESTORED, &"anchored").await;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn watchdog_reports_at_one_and_a_half_and_denies_at_three_intervals() {
        let t0 = Instant::now();
        let i = Duration::from_millis(1_000);
        let mut w = Watchdog::new(i, t0);
        assert!(w.check(t0 + Duration::from_millis(1_400)).is_empty());
        let ev = w.check(t0 + Duration::from_millis(1_600));
        assert!(matches!(ev.as_slice(), [WatchEvent::GapDetected { .. }]));
        // Reported once per gap.
        assert!(w.check(t0 + Duration::from_millis(2_000)).is_empty());
        assert!(!w.deny_all());
        let ev = w.check(t0 + Duration::from_millis(3_100));
        assert!(matches!(ev.as_slice(), [WatchEvent::DenyAll { .. }]));
        assert!(w.deny_all());
        // Anchoring lifts the deny and re-arms both thresholds.
        assert!(w.anchored(t0 + Duration::from_millis(3_500)));
        assert!(!w.deny_all());
        assert!(w.check(t0 + Duration::from_millis(4_900)).is_empty());
        let ev = w.check(t0 + Duration::from_millis(8_000));
        assert_eq!(ev.len(), 2);
        assert!(w.deny_all());
    }
}
