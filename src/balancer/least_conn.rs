//! `least-conn`: the backend with the fewest requests in flight relative to its weight
//! (`active / weight`, compared without division), read from the counters all workers share.
//! Ties go round-robin from a per-worker cursor, so equal load still spreads. O(backends).

use std::sync::Arc;

use super::backend::{eligible, Backend};

pub fn pick(backends: &[Arc<Backend>], cursor: &mut usize, exclude: Option<u64>) -> Option<usize> {
    let n = backends.len();
    let mut best: Option<(usize, u64, u64)> = None;
    for k in 0..n {
        let i = (*cursor + k) % n;
        let b = &backends[i];
        if !eligible(b, exclude) {
            continue;
        }
        let (active, weight) = (b.active_requests() as u64, u64::from(b.weight()));
        if best.is_none_or(|(_, a, w)| active * w < a * weight) {
            best = Some((i, active, weight));
        }
    }
    let (i, _, _) = best?;
    *cursor = (i + 1) % n.max(1);
    Some(i)
}

/// Which of two backends is less loaded relative to weight (the first on a tie).
#[inline]
pub fn lighter(backends: &[Arc<Backend>], a: usize, b: usize) -> usize {
    let (x, y) = (&backends[a], &backends[b]);
    let lx = x.active_requests() as u64 * u64::from(y.weight());
    let ly = y.active_requests() as u64 * u64::from(x.weight());
    if ly < lx {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{picks, pool};
    use super::super::WorkerPick;
    use crate::config::Strategy;

    #[test]
    fn fewest_in_flight_relative_to_weight_ties_round_robin() {
        let p = pool(Strategy::LeastConn, &[1, 1, 2]);
        let b = p.backends();
        b[0].begin_request();
        b[1].begin_request();
        b[1].begin_request();
        b[2].begin_request();
        b[2].begin_request();
        // active/weight: 1/1, 2/1, 2/2: a tie between 1 and 3, broken round-robin
        let seq = picks(&p, 4);
        assert!(seq.iter().all(|&x| x == 1 || x == 3), "{seq:?}");
        assert_ne!(seq[0], seq[1]);
        b[0].end_request();
        assert_eq!(picks(&p, 1), vec![1]);
    }

    #[test]
    fn equal_load_spreads_over_every_backend() {
        let p = pool(Strategy::LeastConn, &[1, 1, 1, 1]);
        let mut st = WorkerPick::new(0);
        let mut seen = [0; 4];
        for k in 0..400 {
            let b = p.pick(&mut st, k, None).unwrap();
            seen[(b.addr.port() - 1) as usize] += 1;
        }
        assert_eq!(seen, [100; 4]);
    }

    #[test]
    fn a_slow_backend_is_steered_around() {
        let p = pool(Strategy::LeastConn, &[1, 1]);
        let mut st = WorkerPick::new(0);
        // requests that finish at once on backend 2 and never on backend 1 (it is slow)
        for k in 0..100 {
            let b = p.pick(&mut st, k, None).unwrap();
            b.begin_request();
            if b.addr.port() == 2 {
                b.end_request();
            }
        }
        assert_eq!(p.backends()[0].active_requests(), 1);
    }
}
