//! The process's table of rate-limit buckets, shared by every worker without a lock: GCRA (the
//! generic cell rate algorithm, a token bucket kept as one time) in a bounded, set-associative
//! table of atomic words.
//!
//! A key's bucket is one `u64`: the 16 high bits a tag (the high bits of the key's hash), the 48
//! low bits its *theoretical arrival time* (TAT), in microseconds of the process clock
//! (`timer::clock_us`; 48 bits last 8.9 years). A request at `now` for a limit of one request
//! every `t` µs with a burst of `burst` is allowed iff `max(TAT, now) + t - now <= burst × t`
//! (the tolerance); the TAT then moves to `max(TAT, now) + t`. A refused request changes
//! nothing, and may retry once the TAT has come down to `now + tolerance - t`.
//!
//! The table is `2^k` sets of 4 ways (8 bytes a way), a key's set picked by the low bits of its
//! hash. A request reads its set, finds its way by tag, and swaps the new word in with one
//! compare-and-swap (retried a few times if another worker moved the word meanwhile). A key
//! without a way takes the way of its set with the smallest TAT: a TAT in the past is a full
//! bucket, the same as no entry, so the evicted key loses nothing unless every way of the set
//! holds a key still paying for a burst ("oldest evicted"). Two keys with the same set and tag
//! (one chance in 65536 for two keys of one set) share a budget.

use std::sync::atomic::{AtomicU64, Ordering};

/// The TAT's bits in a word.
const TIME: u64 = (1 << 48) - 1;
/// Ways per set.
const WAYS: usize = 4;
/// Compare-and-swap attempts before a request is let through (only another worker's update to
/// the same set can make one fail; it cannot fail this often in practice).
const MAX_ATTEMPTS: usize = 16;
/// The largest tolerance kept: a burst that would take longer than this to earn (2.2 years) is
/// as good as unlimited.
const MAX_TOLERANCE: u64 = 1 << 46;

/// What a limit allows: one request every `interval` µs, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Microseconds between two requests at the sustained rate (at least 1).
    pub interval: u64,
    /// `burst × interval`: how far ahead of the clock a key's TAT may run.
    pub tolerance: u64,
}

impl Rate {
    /// `per_second` requests a second (0.001 to 1,000,000), `burst` at once (at least 1).
    pub fn new(per_second: f64, burst: u32) -> Rate {
        let interval = (1e6 / per_second).round().clamp(1.0, MAX_TOLERANCE as f64) as u64;
        Rate {
            interval,
            tolerance: interval
                .saturating_mul(u64::from(burst.max(1)))
                .min(MAX_TOLERANCE),
        }
    }
}

/// A request's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Over the budget: the next request would be allowed in this many µs (at least 1).
    Refused {
        wait_us: u64,
    },
}

/// The table (see the module header).
#[derive(Debug)]
pub struct Buckets {
    words: Box<[AtomicU64]>,
    /// Sets - 1 (a power of two, less one).
    mask: usize,
}

impl Buckets {
    /// A table of `entries` ways (rounded up to a power of two, at least 64), 8 bytes each.
    pub fn new(entries: usize) -> Buckets {
        let entries = entries.clamp(64, 1 << 30).next_power_of_two();
        Buckets {
            words: (0..entries).map(|_| AtomicU64::new(0)).collect(),
            mask: entries / WAYS - 1,
        }
    }

    /// Its entries (ways).
    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Counts a request of the key whose hash is `hash` at `now` (µs of the process clock)
    /// against `rate`.
    pub fn check(&self, hash: u64, now: u64, rate: Rate) -> Verdict {
        let start = (hash as usize & self.mask) * WAYS;
        let Some(set) = self.words.get(start..start + WAYS) else {
            return Verdict::Allowed;
        };
        let tag = hash & !TIME;
        let now = now.min(TIME);
        // bounded: MAX_ATTEMPTS
        for _ in 0..MAX_ATTEMPTS {
            let (way, old, tat) = find(set, tag);
            let from = tat.max(now);
            let next = from.saturating_add(rate.interval);
            if next - now > rate.tolerance {
                return Verdict::Refused {
                    wait_us: (next - now - rate.tolerance).max(1),
                };
            }
            let word = tag | next.min(TIME);
            if set[way]
                .compare_exchange_weak(old, word, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return Verdict::Allowed;
            }
        }
        Verdict::Allowed
    }
}

/// The key's way in `set` (by `tag`), its word and its TAT; or, when it has none, the way with
/// the smallest TAT, its word, and a TAT of 0 (a full bucket).
fn find(set: &[AtomicU64], tag: u64) -> (usize, u64, u64) {
    let mut victim = (0, 0, u64::MAX);
    for (i, w) in set.iter().enumerate() {
        let word = w.load(Ordering::Relaxed);
        let tat = word & TIME;
        if tat != 0 && word & !TIME == tag {
            return (i, word, tat);
        }
        if tat < victim.2 {
            victim = (i, word, tat);
        }
    }
    (victim.0, victim.1, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000;

    fn allowed(b: &Buckets, key: u64, now: u64, rate: Rate, n: usize) -> usize {
        (0..n)
            .filter(|_| b.check(key, now, rate) == Verdict::Allowed)
            .count()
    }

    #[test]
    fn a_burst_then_refusal_with_the_wait_to_the_next_token() {
        let b = Buckets::new(64);
        let rate = Rate::new(10.0, 5);
        assert_eq!(rate.interval, 100_000);
        let now = 50 * SECOND;
        assert_eq!(allowed(&b, 7, now, rate, 5), 5);
        assert_eq!(b.check(7, now, rate), Verdict::Refused { wait_us: 100_000 });
        // 30 ms later: 70 ms to go
        assert_eq!(
            b.check(7, now + 30_000, rate),
            Verdict::Refused { wait_us: 70_000 }
        );
    }

    #[test]
    fn the_budget_refills_at_the_rate() {
        let b = Buckets::new(64);
        let rate = Rate::new(2.0, 4);
        let now = 10 * SECOND;
        assert_eq!(allowed(&b, 1, now, rate, 10), 4);
        // half a second: one token
        assert_eq!(allowed(&b, 1, now + SECOND / 2, rate, 10), 1);
        // two more seconds: four (the burst), not five
        assert_eq!(allowed(&b, 1, now + SECOND / 2 + 2 * SECOND, rate, 10), 4);
        // a long idle key is a full bucket, not more
        assert_eq!(allowed(&b, 1, now + 1000 * SECOND, rate, 10), 4);
    }

    #[test]
    fn a_fraction_of_a_request_per_second() {
        let b = Buckets::new(64);
        let rate = Rate::new(0.5, 1);
        assert_eq!(rate.interval, 2 * SECOND);
        let now = SECOND;
        assert_eq!(allowed(&b, 3, now, rate, 3), 1);
        assert_eq!(
            b.check(3, now, rate),
            Verdict::Refused {
                wait_us: 2 * SECOND
            }
        );
        assert_eq!(allowed(&b, 3, now + 2 * SECOND, rate, 3), 1);
    }

    #[test]
    fn two_keys_have_their_own_budgets() {
        let b = Buckets::new(64);
        let rate = Rate::new(1.0, 2);
        let now = SECOND;
        // same set (low bits), other tags
        let (k1, k2) = (5u64 | (1 << 48), 5u64 | (2 << 48));
        assert_eq!(allowed(&b, k1, now, rate, 5), 2);
        assert_eq!(allowed(&b, k2, now, rate, 5), 2);
        // other sets
        assert_eq!(allowed(&b, 6, now, rate, 5), 2);
        assert_eq!(allowed(&b, k1, now, rate, 5), 0);
    }

    #[test]
    fn the_table_is_bounded_and_evicts_the_oldest_way_of_a_set() {
        let b = Buckets::new(100);
        assert_eq!(b.len(), 128, "rounded up to a power of two");
        let rate = Rate::new(1.0, 1);
        let now = SECOND;
        // five keys in one set of four ways, each spending its budget a little later
        let keys: Vec<u64> = (1..=5).map(|i| 9 | (i << 48)).collect();
        for (i, &k) in keys.iter().enumerate() {
            assert_eq!(b.check(k, now + i as u64, rate), Verdict::Allowed);
        }
        // the fifth took the first's way (the smallest TAT): the first starts afresh
        assert_eq!(b.check(keys[0], now + 10, rate), Verdict::Allowed);
        // the others are still limited but the second, evicted by the first's return
        for &k in &keys[2..] {
            assert!(matches!(
                b.check(k, now + 10, rate),
                Verdict::Refused { .. }
            ));
        }
        // and no key ever reached beyond its set
        let used = b
            .words
            .iter()
            .filter(|w| w.load(Ordering::Relaxed) != 0)
            .count();
        assert_eq!(used, WAYS);
    }

    #[test]
    fn two_threads_never_get_more_than_the_burst_and_the_rate() {
        let b = std::sync::Arc::new(Buckets::new(64));
        let rate = Rate::new(1000.0, 50);
        let start = std::time::Instant::now();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let b = std::sync::Arc::clone(&b);
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    // bounded: 100 ms
                    while start.elapsed() < std::time::Duration::from_millis(100) {
                        let now = SECOND + start.elapsed().as_micros() as u64;
                        if b.check(42, now, rate) == Verdict::Allowed {
                            n += 1;
                        }
                    }
                    n
                })
            })
            .collect();
        let total: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        let elapsed_us = start.elapsed().as_micros() as u64;
        // the burst, then one per millisecond of the time that passed
        let most = 50 + elapsed_us / 1000 + 1;
        assert!(total <= most, "{total} > {most}");
        assert!(total >= 50, "{total}");
    }
}
