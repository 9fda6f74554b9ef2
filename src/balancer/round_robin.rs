//! `round-robin` and `weighted-round-robin`: one smooth schedule for the whole proxy.
//!
//! The schedule is one cycle of picks, built when the pool is published: each backend's turns
//! spread evenly over the cycle (its `k`-th turn at `(k + ½) · cycle / weight`), so weights 5:3:2
//! give `A B C A A B A C B A`, interleaved rather than in bursts. Every worker indexes the same
//! schedule through one shared counter, so any `cycle` consecutive requests, whichever workers
//! they land on, split exactly by weight while the pool does not change. A new pool (a weight or
//! membership change) starts a new schedule at once. A turn that falls to an unavailable (or
//! excluded) backend is skipped and the next turn taken, so the others share its turns in
//! proportion to their weights, in the schedule's order; after a bounded number of skips the pick
//! falls back to the first available backend after a rotating start.
//!
//! Cost: one relaxed `fetch_add` on a counter shared by the workers (its own cache line) and a
//! table read. The cycle is `sum(weight) / gcd`, at most [`MAX_CYCLE`] entries: beyond that the
//! weights are scaled down to fit, which rounds their proportions slightly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use super::backend::{eligible, Backend};

/// Longest schedule kept (entries are 4 bytes: 256 KiB).
pub const MAX_CYCLE: usize = 1 << 16;
/// Entries looked at past unavailable ones before falling back to a scan of the backends.
const SCAN: usize = 64;

#[derive(Debug)]
pub struct Schedule {
    /// Backend positions, one cycle.
    order: Vec<u32>,
    next: CachePadded<AtomicUsize>,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Schedule {
    /// The schedule for these weights (by backend position).
    pub fn build(weights: &[u32]) -> Schedule {
        let g = weights
            .iter()
            .fold(0u64, |g, &w| gcd(g, u64::from(w.max(1))));
        let mut w: Vec<u64> = weights
            .iter()
            .map(|&x| u64::from(x.max(1)) / g.max(1))
            .collect();
        let total: u64 = w.iter().sum();
        if total > MAX_CYCLE as u64 {
            for x in &mut w {
                *x = (*x * MAX_CYCLE as u64 / total).max(1);
            }
        }
        let cycle: u64 = w.iter().sum();
        // (position in the cycle, backend): the k-th turn of a backend of weight w at
        // (2k + 1) / 2w of the way through, compared exactly as fractions
        let mut turns: Vec<(u64, u64, u32)> = Vec::with_capacity(cycle as usize);
        for (i, &wi) in w.iter().enumerate() {
            for k in 0..wi {
                turns.push((2 * k + 1, 2 * wi, i as u32));
            }
        }
        turns.sort_by(|a, b| {
            (u128::from(a.0) * u128::from(b.1))
                .cmp(&(u128::from(b.0) * u128::from(a.1)))
                .then(a.2.cmp(&b.2))
        });
        Schedule {
            order: turns.into_iter().map(|t| t.2).collect(),
            next: CachePadded::new(AtomicUsize::new(0)),
        }
    }

    /// Entries in one cycle.
    #[cfg(test)]
    pub fn cycle(&self) -> usize {
        self.order.len()
    }

    pub fn pick(&self, backends: &[Arc<Backend>], exclude: Option<u64>) -> Option<usize> {
        let len = self.order.len();
        if len == 0 {
            return None;
        }
        let mut n = 0;
        for _ in 0..len.min(SCAN) {
            n = self.next.fetch_add(1, Ordering::Relaxed);
            let i = self.order[n % len] as usize;
            if backends.get(i).is_some_and(|b| eligible(b, exclude)) {
                return Some(i);
            }
        }
        // most of the cycle is unavailable: any available backend, rotating
        let count = backends.len();
        (0..count)
            .map(|k| (n.wrapping_add(k)) % count)
            .find(|&i| eligible(&backends[i], exclude))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{picks, pool};
    use super::super::WorkerPick;
    use super::*;
    use crate::config::Strategy;

    fn counts(seq: &[u16], ports: u16) -> Vec<usize> {
        (1..=ports)
            .map(|p| seq.iter().filter(|&&x| x == p).count())
            .collect()
    }

    #[test]
    fn equal_weights_cycle() {
        let p = pool(Strategy::RoundRobin, &[1, 1, 1]);
        assert_eq!(picks(&p, 6), vec![1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn weights_5_3_2_interleave_and_any_ten_split_exactly() {
        let p = pool(Strategy::WeightedRoundRobin, &[5, 3, 2]);
        let seq = picks(&p, 100);
        assert_eq!(&seq[..10], &[1, 2, 3, 1, 1, 2, 1, 3, 2, 1]);
        for window in seq.windows(10) {
            assert_eq!(counts(window, 3), vec![5, 3, 2], "{window:?}");
        }
        // never more than two turns of the heaviest in a row
        assert!(
            !seq.windows(3).any(|w| w.iter().all(|&x| x == 1)),
            "{seq:?}"
        );
    }

    #[test]
    fn the_schedule_is_shared_by_every_worker() {
        let p = pool(Strategy::WeightedRoundRobin, &[5, 3, 2]);
        let mut workers = [WorkerPick::new(0), WorkerPick::new(1)];
        let mut seq = Vec::new();
        // requests alternate irregularly between two workers: still 5/3/2 in every ten
        for k in 0..1000u64 {
            let w = &mut workers[(k * 7 % 3 == 0) as usize];
            seq.push(p.pick(w, k, None).unwrap().addr.port());
        }
        for window in seq.windows(10) {
            assert_eq!(counts(window, 3), vec![5, 3, 2]);
        }
        assert_eq!(counts(&seq, 3), vec![500, 300, 200]);
    }

    #[test]
    fn common_factors_are_removed_and_huge_weights_scaled() {
        assert_eq!(Schedule::build(&[10, 20, 30]).cycle(), 6);
        assert_eq!(Schedule::build(&[7]).cycle(), 1);
        let s = Schedule::build(&[10_000, 9_999, 9_998, 9_997, 9_996, 1, 1, 1]);
        assert!(s.cycle() <= MAX_CYCLE);
        let p = pool(Strategy::WeightedRoundRobin, &[10_000, 1]);
        let seq = picks(&p, 10_001);
        assert_eq!(counts(&seq, 2), vec![10_000, 1]);
    }

    #[test]
    fn turns_of_an_unavailable_backend_pass_on() {
        let p = pool(Strategy::WeightedRoundRobin, &[5, 3, 2]);
        p.backends()[0].set_healthy(false);
        let seq = picks(&p, 1000);
        let c = counts(&seq, 3);
        assert_eq!(c[0], 0);
        // B and C share A's turns in proportion to their weights (3:2), not by adjacency
        assert!(
            (540..=660).contains(&c[1]) && (340..=460).contains(&c[2]),
            "{c:?}"
        );
    }

    #[test]
    fn a_mostly_unavailable_cycle_still_finds_the_one_left() {
        let mut weights = vec![100; 10];
        weights.push(1);
        let p = pool(Strategy::WeightedRoundRobin, &weights);
        for b in &p.backends()[..10] {
            b.set_enabled(false);
        }
        assert!(picks(&p, 100).iter().all(|&x| x == 11));
    }
}
