//! `random`: weighted random. The cumulative weights are computed when the pool is published; a
//! pick draws a number below their total from the worker's own generator and finds its backend by
//! binary search: O(log backends), no shared writes. Draws that land on an unavailable backend
//! are retried a few times, then the pick falls back to a scan from a random start.

use std::sync::Arc;

use super::backend::{eligible, Backend};
use super::rng::Rng;

const TRIES: usize = 4;

#[derive(Debug)]
pub struct Weights {
    /// `cumulative[i]`: the sum of the weights of backends `0..=i`.
    cumulative: Vec<u64>,
}

impl Weights {
    pub fn build(weights: &[u32]) -> Weights {
        let mut sum = 0u64;
        let cumulative = weights
            .iter()
            .map(|&w| {
                sum += u64::from(w.max(1));
                sum
            })
            .collect();
        Weights { cumulative }
    }

    pub fn pick(
        &self,
        backends: &[Arc<Backend>],
        rng: &mut Rng,
        exclude: Option<u64>,
    ) -> Option<usize> {
        let total = *self.cumulative.last()?;
        for _ in 0..TRIES {
            let r = rng.below(total);
            let i = self.cumulative.partition_point(|&c| c <= r);
            if backends.get(i).is_some_and(|b| eligible(b, exclude)) {
                return Some(i);
            }
        }
        let n = backends.len();
        let start = rng.below(n as u64) as usize;
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| eligible(&backends[i], exclude))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{picks, pool};
    use crate::config::Strategy;

    #[test]
    fn weighted_within_two_points_over_ten_thousand() {
        let p = pool(Strategy::Random, &[5, 3, 2]);
        let seq = picks(&p, 10_000);
        let share = |port| seq.iter().filter(|&&x| x == port).count() as f64 / 100.0;
        let (a, b, c) = (share(1), share(2), share(3));
        assert!((a - 50.0).abs() < 2.0 && (b - 30.0).abs() < 2.0 && (c - 20.0).abs() < 2.0);
    }

    #[test]
    fn unavailable_draws_are_redrawn() {
        let p = pool(Strategy::Random, &[1000, 1]);
        p.backends()[0].set_healthy(false);
        assert!(picks(&p, 50).iter().all(|&x| x == 2));
    }
}
