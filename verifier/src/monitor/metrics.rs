//! Re-attestation metrics: appraisals per second, failures by reason, missed challenges,
//! revocations and how long each took to reach the kernels that had to learn it.
//!
//! Counters live in memory; the sweeper writes a [`MetricsSnapshot`] into the database every
//! few seconds so that `verifier metrics` can read it while the service runs.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use tokio::time::Instant;

/// Propagation samples kept for percentiles (the newest ones).
pub const MAX_PROPAGATION_SAMPLES: usize = 100_000;
/// Window over which `appraisals_per_s` is computed.
pub const RATE_WINDOW_MS: u64 = 10_000;

/// Percentiles of revocation propagation times (verdict → acknowledgement by a target).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Propagation {
    /// Acknowledgements measured (all time).
    pub samples: u64,
    /// Median (ms), over the kept samples.
    pub p50_ms: f64,
    /// 99th percentile (ms), over the kept samples.
    pub p99_ms: f64,
    /// Slowest (ms), over the kept samples.
    pub max_ms: f64,
}

/// A point-in-time view of the metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// When taken (Unix ms).
    pub at_ms: u64,
    /// Seconds since the service started.
    pub uptime_s: f64,
    /// Appraisals (boot and challenge).
    pub appraisals_total: u64,
    /// Appraisals that answered a challenge.
    pub challenge_appraisals_total: u64,
    /// Appraisals that were affirming.
    pub affirming_total: u64,
    /// Appraisals per second over the last [`RATE_WINDOW_MS`].
    pub appraisals_per_s: f64,
    /// Failed appraisals and refusals by reason: the trust-vector claim that failed
    /// (`instance-identity`, `hardware`, `executables`, `configuration`), `nonce`,
    /// `attestation-key`, `missed`, `operator`.
    pub failures_by_reason: BTreeMap<String, u64>,
    /// Challenges not answered in time.
    pub missed_challenges_total: u64,
    /// Revocations.
    pub revocations_total: u64,
    /// Revoked kernels reinstated by a fresh affirming result.
    pub reinstatements_total: u64,
    /// Revocation propagation times.
    pub revocation_propagation: Propagation,
    /// Settled revocations by KEE-1 P8 completion state.
    pub revocation_completion: BTreeMap<String, u64>,
    /// Kernels by attestation state.
    pub kernels_by_state: BTreeMap<String, u64>,
    /// Open `watch` connections.
    pub watching: u64,
    /// Feed statuses sent.
    pub statuses_total: u64,
}

#[derive(Default)]
struct Inner {
    appraisals: u64,
    challenge_appraisals: u64,
    affirming: u64,
    failures: BTreeMap<String, u64>,
    missed: u64,
    revocations: u64,
    reinstatements: u64,
    propagation_ms: VecDeque<f64>,
    propagation_count: u64,
    completion: BTreeMap<String, u64>,
    rate: VecDeque<(Instant, u64)>,
    statuses: u64,
}

/// The counters.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Nearest-rank percentile (`per_mille` of 1000) of sorted samples; 0 when there are none.
pub fn percentile(sorted: &[f64], per_mille: usize) -> f64 {
    let rank = per_mille.saturating_mul(sorted.len()).div_ceil(1000).max(1);
    sorted.get(rank.saturating_sub(1)).copied().unwrap_or(0.0)
}

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Inner)) {
        if let Ok(mut g) = self.inner.lock() {
            f(&mut g);
        }
    }

    /// An appraisal finished; `failed` names the claims that were not affirming.
    pub fn appraisal(&self, challenge: bool, affirming: bool, failed: &[String]) {
        self.with(|m| {
            m.appraisals = m.appraisals.saturating_add(1);
            if challenge {
                m.challenge_appraisals = m.challenge_appraisals.saturating_add(1);
            }
            if affirming {
                m.affirming = m.affirming.saturating_add(1);
            }
            for f in failed {
                let e = m.failures.entry(f.clone()).or_insert(0);
                *e = e.saturating_add(1);
            }
        });
    }

    /// A refusal or failure that is not a trust-vector claim (`nonce`, `missed`, …).
    pub fn failure(&self, reason: &str) {
        self.with(|m| {
            let e = m.failures.entry(reason.to_string()).or_insert(0);
            *e = e.saturating_add(1);
        });
    }

    /// A challenge went unanswered.
    pub fn missed(&self) {
        self.with(|m| m.missed = m.missed.saturating_add(1));
        self.failure("missed");
    }

    /// A revocation was decided.
    pub fn revoked(&self) {
        self.with(|m| m.revocations = m.revocations.saturating_add(1));
    }

    /// A revoked kernel was reinstated.
    pub fn reinstated(&self) {
        self.with(|m| m.reinstatements = m.reinstatements.saturating_add(1));
    }

    /// A target acknowledged a revocation `ms` after the verdict.
    pub fn propagated(&self, ms: f64) {
        self.with(|m| {
            m.propagation_count = m.propagation_count.saturating_add(1);
            if m.propagation_ms.len() >= MAX_PROPAGATION_SAMPLES {
                m.propagation_ms.pop_front();
            }
            m.propagation_ms.push_back(ms);
        });
    }

    /// A revocation settled in `state`.
    pub fn completed(&self, state: &str) {
        self.with(|m| {
            let e = m.completion.entry(state.to_string()).or_insert(0);
            *e = e.saturating_add(1);
        });
    }

    /// A feed status was sent.
    pub fn status_sent(&self) {
        self.with(|m| m.statuses = m.statuses.saturating_add(1));
    }

    /// Every kept propagation sample (ms), oldest first.
    pub fn propagation_samples(&self) -> Vec<f64> {
        self.inner
            .lock()
            .map(|m| m.propagation_ms.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Takes a snapshot; `kernels_by_state` and `watching` come from the monitor.
    pub fn snapshot(
        &self,
        started: Instant,
        kernels_by_state: BTreeMap<String, u64>,
        watching: u64,
    ) -> MetricsSnapshot {
        let now = Instant::now();
        let Ok(mut m) = self.inner.lock() else {
            return MetricsSnapshot::default();
        };
        let total = m.appraisals;
        m.rate.push_back((now, total));
        while m.rate.len() > 2
            && m.rate.front().is_some_and(|(t, _)| {
                now.duration_since(*t).as_millis() > u128::from(RATE_WINDOW_MS)
            })
        {
            m.rate.pop_front();
        }
        let per_s = match m.rate.front() {
            Some((t, n)) if now.duration_since(*t).as_secs_f64() > 0.0 => {
                (total.saturating_sub(*n)) as f64 / now.duration_since(*t).as_secs_f64()
            }
            _ => 0.0,
        };
        let mut sorted: Vec<f64> = m.propagation_ms.iter().copied().collect();
        sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        MetricsSnapshot {
            at_ms: attestation::now_ms(),
            uptime_s: now.duration_since(started).as_secs_f64(),
            appraisals_total: total,
            challenge_appraisals_total: m.challenge_appraisals,
            affirming_total: m.affirming,
            appraisals_per_s: per_s,
            failures_by_reason: m.failures.clone(),
            missed_challenges_total: m.missed,
            revocations_total: m.revocations,
            reinstatements_total: m.reinstatements,
            revocation_propagation: Propagation {
                samples: m.propagation_count,
                p50_ms: percentile(&sorted, 500),
                p99_ms: percentile(&sorted, 990),
                max_ms: sorted.last().copied().unwrap_or(0.0),
            },
            revocation_completion: m.completion.clone(),
            kernels_by_state,
            watching,
            statuses_total: m.statuses,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_counters() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 500), 50.0);
        assert_eq!(percentile(&sorted, 990), 99.0);
        assert_eq!(percentile(&[], 990), 0.0);
        assert_eq!(percentile(&[7.0], 990), 7.0);
        let m = Metrics::default();
        m.appraisal(true, false, &["executables".into()]);
        m.appraisal(false, true, &[]);
        m.missed();
        m.propagated(3.0);
        m.propagated(1.0);
        let s = m.snapshot(Instant::now(), BTreeMap::new(), 0);
        assert_eq!(s.appraisals_total, 2);
        assert_eq!(s.challenge_appraisals_total, 1);
        assert_eq!(s.affirming_total, 1);
        assert_eq!(s.failures_by_reason.get("executables"), Some(&1));
        assert_eq!(s.failures_by_reason.get("missed"), Some(&1));
        assert_eq!(s.revocation_propagation.samples, 2);
        assert_eq!(s.revocation_propagation.max_ms, 3.0);
    }
}
