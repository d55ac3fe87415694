//! Rate limits: token buckets for requests (one per connection, and one per peer shared by
//! all its connections, see [`super::peers`]), and a throttle on warnings that peers can
//! trigger.
//!
//! The log throttle is shared by the whole proxy, because a flood of bad connections must
//! not turn into a flood of log lines (the counters still see every event).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Tokens are kept in thousandths so that refill needs no floating point.
const MILLI: u64 = 1_000;

/// A token bucket: `burst` requests at once, then `per_second` sustained.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity_milli: u64,
    tokens_milli: u64,
    per_second: u64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. A `burst` of zero is taken as one, so a connection can always send
    /// its first request.
    pub fn new(per_second: u32, burst: u32, now: Instant) -> Self {
        let capacity_milli = u64::from(burst.max(1)).saturating_mul(MILLI);
        Self {
            capacity_milli,
            tokens_milli: capacity_milli,
            per_second: u64::from(per_second),
            last: now,
        }
    }

    /// Milli-tokens that have accrued since the last refill.
    fn refill_milli(&self, now: Instant) -> u64 {
        let elapsed_ms =
            u64::try_from(now.saturating_duration_since(self.last).as_millis()).unwrap_or(u64::MAX);
        // per_second tokens per 1000 ms = per_second milli-tokens per ms.
        elapsed_ms.saturating_mul(self.per_second)
    }

    /// Whether the bucket would be full at `now` (its owner can be forgotten: a fresh
    /// bucket would grant exactly as much).
    pub fn is_full(&self, now: Instant) -> bool {
        self.tokens_milli.saturating_add(self.refill_milli(now)) >= self.capacity_milli
    }

    /// Takes one token if there is one; `false` means the request is over the limit.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let refill = self.refill_milli(now);
        if refill > 0 {
            self.tokens_milli = self
                .tokens_milli
                .saturating_add(refill)
                .min(self.capacity_milli);
            self.last = now;
        }
        if self.tokens_milli >= MILLI {
            self.tokens_milli -= MILLI;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct Window {
    started: Instant,
    emitted: u32,
    suppressed: u64,
}

/// Lets at most `per_window` warnings through per window and counts the rest.
#[derive(Debug)]
pub struct LogThrottle {
    per_window: u32,
    window: Duration,
    state: Mutex<Window>,
}

impl LogThrottle {
    /// A throttle allowing `per_window` warnings every `window`.
    pub fn new(per_window: u32, window: Duration) -> Self {
        Self {
            per_window,
            window,
            state: Mutex::new(Window {
                started: Instant::now(),
                emitted: 0,
                suppressed: 0,
            }),
        }
    }

    /// `Some(n)` when a warning may be logged now, `n` being how many were suppressed since
    /// the last one that was; `None` when this one must be dropped.
    pub fn admit(&self, now: Instant) -> Option<u64> {
        // A poisoned lock only means another thread panicked mid-update of three integers;
        // the values are still usable for throttling.
        let mut w = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if now.saturating_duration_since(w.started) >= self.window {
            w.started = now;
            w.emitted = 0;
        }
        if w.emitted < self.per_window {
            w.emitted += 1;
            Some(std::mem::take(&mut w.suppressed))
        } else {
            w.suppressed = w.suppressed.saturating_add(1);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_refills_at_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2, 3, t0);
        assert!(b.try_take(t0));
        assert!(b.try_take(t0));
        assert!(b.try_take(t0));
        assert!(!b.try_take(t0));
        // 2 per second: one token every 500 ms.
        assert!(!b.try_take(t0 + Duration::from_millis(400)));
        assert!(b.try_take(t0 + Duration::from_millis(500)));
        assert!(!b.try_take(t0 + Duration::from_millis(500)));
        // Never more than the burst, however long the pause.
        let later = t0 + Duration::from_secs(3600);
        assert!(b.try_take(later));
        assert!(b.try_take(later));
        assert!(b.try_take(later));
        assert!(!b.try_take(later));
    }

    #[test]
    fn bucket_knows_when_it_is_full_again() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 2, t0);
        assert!(b.is_full(t0));
        assert!(b.try_take(t0));
        assert!(!b.is_full(t0));
        assert!(!b.is_full(t0 + Duration::from_millis(50)));
        assert!(b.is_full(t0 + Duration::from_millis(100)));
    }

    #[test]
    fn zero_burst_still_serves_one_request() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(0, 0, t0);
        assert!(b.try_take(t0));
        assert!(!b.try_take(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn throttle_reports_what_it_suppressed() {
        let th = LogThrottle::new(2, Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(th.admit(t0), Some(0));
        assert_eq!(th.admit(t0), Some(0));
        assert_eq!(th.admit(t0), None);
        assert_eq!(th.admit(t0), None);
        assert_eq!(th.admit(t0 + Duration::from_secs(1)), Some(2));
        assert_eq!(th.admit(t0 + Duration::from_secs(1)), Some(0));
        assert_eq!(th.admit(t0 + Duration::from_secs(1)), None);
    }
}
