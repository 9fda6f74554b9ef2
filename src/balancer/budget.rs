//! `retry_budget`: retries across a pool may add at most a share of its requests over the last
//! [`WINDOW_S`] seconds (Envoy's retry budget), with a floor of [`FLOOR_PER_S`] retries a second,
//! so that a failing backend cannot multiply the load on the others.
//!
//! No counter is touched per request. The pool's requests are read off its backends' own
//! counters (`Backend::total_requests`, which counts every attempt): the workers' housekeeping
//! notes that total once a second ([`RetryBudget::sample`]), so the requests of the window are the
//! total now less the total noted at its start, less the retries in it. Only a retry (rare, and
//! already on a failure's path) writes: one slot per second, its second claimed by a
//! compare-and-swap, so every worker counts into the same ring without a lock.
//!
//! Neighbours: the balancer (`mod.rs`) holds one per pool, kept across reloads with the pool;
//! the stream asks before a retry (`stream/backend.rs`); the metrics read the counts.

use std::sync::atomic::{AtomicU64, Ordering};

/// The window, in seconds.
pub const WINDOW_S: u64 = 10;
/// Retries a second that the budget always allows, whatever the pool's traffic.
pub const FLOOR_PER_S: u64 = 3;
/// Slots in the ring: more than the window's seconds, a power of two.
const SLOTS: usize = 16;

/// One pool's retry budget (see the module header).
#[derive(Debug, Default)]
pub struct RetryBudget {
    /// Per second (`second % SLOTS`): the second plus one (0: never used), the pool's attempts
    /// when that second was first seen, and the retries counted in it.
    seconds: [AtomicU64; SLOTS],
    totals: [AtomicU64; SLOTS],
    retries: [AtomicU64; SLOTS],
    /// Retries allowed, ever.
    allowed: AtomicU64,
    /// Retries the budget refused, ever.
    refused: AtomicU64,
}

impl RetryBudget {
    /// The slot of second `sec`, claimed (and started at `attempts`) by the first to see it.
    fn slot(&self, sec: u64, attempts: u64) -> usize {
        let i = (sec % SLOTS as u64) as usize;
        let stamp = sec + 1;
        let seen = self.seconds[i].load(Ordering::Acquire);
        if seen != stamp
            && self.seconds[i]
                .compare_exchange(seen, stamp, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.totals[i].store(attempts, Ordering::Relaxed);
            self.retries[i].store(0, Ordering::Relaxed);
        }
        i
    }

    /// Housekeeping, once a second: the pool has had `attempts` attempts by second `sec`.
    pub fn sample(&self, sec: u64, attempts: u64) {
        self.slot(sec, attempts);
    }

    /// May a request of the pool be retried at second `sec` (the pool's attempts so far:
    /// `attempts`), when retries may add `percent` % of its requests? Counts the retry when it
    /// may, the refusal when not.
    pub fn try_retry(&self, percent: u32, sec: u64, attempts: u64) -> bool {
        // a second first seen here starts before the attempt that failed: that request is the
        // window's too
        let now = self.slot(sec, attempts.saturating_sub(1));
        let mut start: Option<(u64, u64)> = None; // (second, attempts then)
        let mut retries = 0;
        for i in 0..SLOTS {
            let Some(s) = self.seconds[i].load(Ordering::Acquire).checked_sub(1) else {
                continue;
            };
            if s > sec || s + WINDOW_S <= sec {
                continue; // outside the window
            }
            retries += self.retries[i].load(Ordering::Relaxed);
            if start.is_none_or(|(first, _)| s < first) {
                start = Some((s, self.totals[i].load(Ordering::Relaxed)));
            }
        }
        let base = start.map_or(0, |(_, total)| total);
        let requests = attempts.saturating_sub(base).saturating_sub(retries);
        let budget = (requests * u64::from(percent) / 100).max(FLOOR_PER_S * WINDOW_S);
        if retries >= budget {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.retries[now].fetch_add(1, Ordering::Relaxed);
        self.allowed.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Retries allowed, ever.
    pub fn retries(&self) -> u64 {
        self.allowed.load(Ordering::Relaxed)
    }

    /// Retries refused by the budget, ever.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Retries allowed out of `tries` at second `sec`, the pool at `attempts` before them (each
    /// retry allowed is one more attempt, as on a backend's counter).
    fn allowed(b: &RetryBudget, percent: u32, sec: u64, attempts: u64, tries: u64) -> u64 {
        let mut n = 0;
        for _ in 0..tries {
            if b.try_retry(percent, sec, attempts + n) {
                n += 1;
            }
        }
        n
    }

    #[test]
    fn the_floor_holds_for_a_quiet_pool() {
        let b = RetryBudget::default();
        b.sample(100, 0);
        assert_eq!(allowed(&b, 20, 100, 5, 100), FLOOR_PER_S * WINDOW_S);
        assert_eq!(b.refused(), 100 - FLOOR_PER_S * WINDOW_S);
    }

    #[test]
    fn retries_stop_at_the_share_of_the_windows_requests() {
        let b = RetryBudget::default();
        b.sample(10, 0);
        // 1,000 requests (attempts) in the window: 20 % is 200 retries
        assert_eq!(allowed(&b, 20, 11, 1_000, 500), 200);
        assert_eq!(b.retries(), 200);
        // 100 %: as many retries as requests
        let b = RetryBudget::default();
        b.sample(10, 0);
        assert_eq!(allowed(&b, 100, 11, 1_000, 2_000), 1_000);
    }

    #[test]
    fn the_window_slides_and_old_requests_and_retries_leave_it() {
        let b = RetryBudget::default();
        // seconds 0..=9: 1,000 requests in all, 200 retries at second 5
        for s in 0..10 {
            b.sample(s, s * 100);
        }
        assert_eq!(allowed(&b, 20, 5, 500, 1_000), 100);
        // second 20: the window holds seconds 11..=20; a quiet pool since second 11 is at the
        // floor again, the old retries forgotten
        b.sample(11, 1_100);
        assert_eq!(allowed(&b, 20, 20, 1_100, 1_000), FLOOR_PER_S * WINDOW_S);
    }

    #[test]
    fn two_threads_share_one_budget() {
        let b = std::sync::Arc::new(RetryBudget::default());
        // the pool's attempts, one counter both threads count into (as the backends' counters
        // do): every retry allowed is one more attempt, whoever made it
        let attempts = std::sync::Arc::new(AtomicU64::new(10_000));
        b.sample(7, 0);
        let counts: Vec<u64> = (0..2)
            .map(|_| {
                let (b, attempts) = (std::sync::Arc::clone(&b), std::sync::Arc::clone(&attempts));
                std::thread::spawn(move || {
                    let mut n = 0;
                    for _ in 0..1_000 {
                        if b.try_retry(10, 7, attempts.load(Ordering::Relaxed)) {
                            attempts.fetch_add(1, Ordering::Relaxed);
                            n += 1;
                        }
                    }
                    n
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap_or(0))
            .collect();
        // 10 % of 10,000 requests; a check and its count are two steps, and so are a retry and
        // its attempt: the other thread may each time be one off, either way
        let total: u64 = counts.iter().sum();
        assert!((999..=1_001).contains(&total), "{counts:?}");
    }
}
