//! `p2c`: the power of two random choices. Two distinct backends drawn at random (from the
//! worker's own generator), the less loaded relative to weight wins (`least_conn::lighter`). It
//! is O(1) however many backends there are and, unlike least-conn over every backend, does not
//! send every worker's next request to the same momentarily idle backend. When the draws find
//! nothing available it falls back to least-conn's scan.

use std::sync::Arc;

use super::backend::{eligible, Backend};
use super::least_conn;
use super::rng::Rng;

/// Draws tried before the scan.
const TRIES: usize = 4;

pub fn pick(
    backends: &[Arc<Backend>],
    rng: &mut Rng,
    cursor: &mut usize,
    exclude: Option<u64>,
) -> Option<usize> {
    let n = backends.len() as u64;
    match n {
        0 => return None,
        1 => return eligible(&backends[0], exclude).then_some(0),
        _ => {}
    }
    for _ in 0..TRIES {
        let a = rng.below(n) as usize;
        let mut b = rng.below(n - 1) as usize;
        if b >= a {
            b += 1;
        }
        match (
            eligible(&backends[a], exclude),
            eligible(&backends[b], exclude),
        ) {
            (true, true) => return Some(least_conn::lighter(backends, a, b)),
            (true, false) => return Some(a),
            (false, true) => return Some(b),
            (false, false) => {}
        }
    }
    least_conn::pick(backends, cursor, exclude)
}

#[cfg(test)]
mod tests {
    use super::super::tests::pool;
    use super::super::WorkerPick;
    use crate::config::Strategy;

    #[test]
    fn the_less_loaded_of_two_wins_and_load_evens_out() {
        let p = pool(Strategy::P2c, &[1; 8]);
        let mut st = WorkerPick::new(0);
        // 800 requests that stay in flight: two choices keep the spread tight
        for k in 0..800 {
            p.pick(&mut st, k, None).unwrap().begin_request();
        }
        let loads: Vec<usize> = p.backends().iter().map(|b| b.active_requests()).collect();
        let (min, max) = (loads.iter().min().unwrap(), loads.iter().max().unwrap());
        assert!(max - min <= 4, "{loads:?}");
    }

    #[test]
    fn a_slow_backend_gets_little() {
        let p = pool(Strategy::P2c, &[1, 1, 1]);
        let mut st = WorkerPick::new(1);
        let mut to_slow = 0;
        for k in 0..300 {
            let b = p.pick(&mut st, k, None).unwrap();
            b.begin_request();
            if b.addr.port() == 1 {
                to_slow += 1; // never finishes
            } else {
                b.end_request();
            }
        }
        assert!(to_slow <= 3, "{to_slow}");
    }

    #[test]
    fn weights_count() {
        let p = pool(Strategy::P2c, &[3, 1]);
        let mut st = WorkerPick::new(2);
        for k in 0..400 {
            p.pick(&mut st, k, None).unwrap().begin_request();
        }
        let a = p.backends()[0].active_requests();
        assert!((290..=310).contains(&a), "{a}");
    }
}
